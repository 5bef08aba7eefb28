import { assert, describe, it } from "@effect/vitest"
import { JobQueue, Migrations } from "@spindle/sql"
import { Databases } from "@spindle/testkit"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

const Payload = Schema.Struct({ url: Schema.String })

let counter = 0
// A queue name of its own per test: tests share a database per suite but never each other's jobs.
const queue = () => JobQueue.make({ name: `q${counter++}`, schema: Payload })
const payloads = (n: number) => Array.from({ length: n }, (_, i) => ({ url: `https://example.com/${i}` }))

for (const database of Databases.all) {
  const suite = database.skip === undefined ? describe : describe.skip
  suite(`JobQueue on ${database.name}${database.skip === undefined ? "" : ` (skipped: ${database.skip})`}`, () => {
    it.layer(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(database.layer)), { timeout: 60_000 })(
      (it) => {
        it.effect("enqueues in order, leases, acks, and counts", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            const ids = yield* q.enqueue(payloads(5))
            assert.strictEqual(ids.length, 5)
            assert.deepStrictEqual([...ids].sort((a, b) => a - b), ids)
            const leased = yield* q.lease({ limit: 3, owner: "w1", lease: "30 seconds" })
            assert.deepStrictEqual(leased.map((j) => j.payload.url), payloads(3).map((p) => p.url))
            assert.isTrue(leased.every((j) => j.status === "leased" && j.leaseOwner === "w1"))
            assert.isTrue(yield* q.ack(leased[0].id, "w1"))
            assert.isFalse(yield* q.ack(leased[0].id, "w1"), "a job is settled once")
            assert.isFalse(yield* q.ack(leased[1].id, "someone-else"), "only the lease owner settles")
            assert.deepStrictEqual(yield* q.counts(), { pending: 2, leased: 2, done: 1, failed: 0, cancelled: 0 })
          }))

        it.effect("concurrent leasers never receive the same job", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(200))
            const seen: Array<number> = []
            yield* Effect.all(
              Array.from({ length: 4 }, (_, w) =>
                Effect.gen(function*() {
                  while (true) {
                    const jobs = yield* q.lease({ limit: 7, owner: `w${w}`, lease: "30 seconds" })
                    if (jobs.length === 0) return
                    for (const job of jobs) seen.push(job.id)
                  }
                })),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(seen.length, 200)
            assert.strictEqual(new Set(seen).size, 200)
          }))

        it.effect("an expired lease makes the job leasable again without counting an attempt", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(1))
            const [first] = yield* q.lease({ limit: 1, owner: "crashed", lease: "10 seconds" })
            assert.deepStrictEqual(yield* q.lease({ limit: 1, owner: "w2", lease: "10 seconds" }), [])
            yield* TestClock.adjust("10 seconds")
            const [again] = yield* q.lease({ limit: 1, owner: "w2", lease: "10 seconds" })
            assert.strictEqual(again.id, first.id)
            assert.strictEqual(again.attempts, 0)
            assert.isFalse(yield* q.ack(first.id, "crashed"), "the crashed owner lost its lease")
            assert.isTrue(yield* q.ack(first.id, "w2"))
          }))

        it.effect("heartbeats extend leases; lost leases are reported", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(2))
            const jobs = yield* q.lease({ limit: 2, owner: "w1", lease: "10 seconds" })
            yield* TestClock.adjust("8 seconds")
            assert.deepStrictEqual(yield* q.heartbeat([jobs[0].id], "w1", "10 seconds"), [jobs[0].id])
            yield* TestClock.adjust("5 seconds")
            // jobs[1] expired at 10 s and is taken over; jobs[0] was extended to 18 s.
            const taken = yield* q.lease({ limit: 2, owner: "w2", lease: "10 seconds" })
            assert.deepStrictEqual(taken.map((j) => j.id), [jobs[1].id])
            assert.deepStrictEqual(yield* q.heartbeat(jobs.map((j) => j.id), "w1", "10 seconds"), [jobs[0].id])
          }))

        it.effect("retry counts the attempt and delays; release does not count; fail is terminal", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(2))
            const [a, b] = yield* q.lease({ limit: 2, owner: "w", lease: "30 seconds" })
            assert.isTrue(yield* q.retry(a.id, "w", { delay: "5 seconds", error: "http 503" }))
            assert.strictEqual(yield* q.release([b.id], "w"), 1)
            const now = yield* q.lease({ limit: 2, owner: "w", lease: "30 seconds" })
            assert.deepStrictEqual(now.map((j) => [j.id, j.attempts]), [[b.id, 0]], "a is not due yet")
            yield* TestClock.adjust("5 seconds")
            const [due] = yield* q.lease({ limit: 2, owner: "w", lease: "30 seconds" })
            assert.deepStrictEqual([due.id, due.attempts, due.lastError], [a.id, 1, "http 503"])
            assert.isTrue(yield* q.fail(due.id, "w", "gave up"))
            assert.deepStrictEqual(yield* q.counts(), { pending: 0, leased: 1, done: 0, failed: 1, cancelled: 0 })
          }))

        it.effect("reclaimExpired puts expired leases back to pending", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(3))
            yield* q.lease({ limit: 3, owner: "gone", lease: "1 second" })
            assert.strictEqual(yield* q.reclaimExpired, 0)
            yield* TestClock.adjust("1 second")
            assert.strictEqual(yield* q.reclaimExpired, 3)
            assert.deepStrictEqual(yield* q.counts(), { pending: 3, leased: 0, done: 0, failed: 0, cancelled: 0 })
          }))

        it.effect("recordAttempt counts a failed attempt under the same lease, and the count survives the lease", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(1))
            const [job] = yield* q.lease({ limit: 1, owner: "w1", lease: "1 second" })
            assert.isTrue(yield* q.recordAttempt(job.id, "w1", "http 503"))
            assert.isTrue(yield* q.recordAttempt(job.id, "w1", "timeout"))
            assert.isFalse(yield* q.recordAttempt(job.id, "w2", "not mine"), "only the lease owner counts")
            assert.deepStrictEqual(yield* q.counts(), { pending: 0, leased: 1, done: 0, failed: 0, cancelled: 0 })
            // w1 crashes; its lease expires and the next worker sees the attempts made so far.
            yield* TestClock.adjust("1 second")
            const [again] = yield* q.lease({ limit: 1, owner: "w2", lease: "30 seconds" })
            assert.deepStrictEqual([again.id, again.attempts, again.lastError], [job.id, 2, "timeout"])
            assert.isFalse(yield* q.recordAttempt(job.id, "w1", "late"), "a lost lease counts nothing")
          }))

        it.effect("liveOwners names the owners holding an unexpired lease, and only them, with their last expiry", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            yield* q.enqueue(payloads(4))
            const start = yield* Clock.currentTimeMillis
            const owners = Effect.map(
              q.liveOwners,
              (live) =>
                [...live].sort((a, b) => a.owner.localeCompare(b.owner)).map((o) => [o.owner, o.expiresAt - start])
            )
            assert.deepStrictEqual(yield* owners, [])
            yield* q.lease({ limit: 1, owner: "short", lease: "1 second" })
            const [first] = yield* q.lease({ limit: 1, owner: "long", lease: "10 seconds" })
            yield* TestClock.adjust("500 millis")
            const [second] = yield* q.lease({ limit: 1, owner: "long", lease: "10 seconds" })
            // Each owner with the moment its last lease expires.
            assert.deepStrictEqual(yield* owners, [["long", 10_500], ["short", 1_000]])
            yield* TestClock.adjust("500 millis")
            assert.deepStrictEqual(yield* owners, [["long", 10_500]], "an expired lease is no sign of life")
            assert.isTrue(yield* q.ack(second.id, "long"))
            assert.deepStrictEqual(yield* owners, [["long", 10_000]], "one lease left: its expiry")
            assert.isTrue(yield* q.ack(first.id, "long"))
            assert.deepStrictEqual(yield* owners, [])
          }))

        it.effect("a large enqueue lets other fibers run between its statements, and keeps the payloads' order", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            // Another fiber that counts its turns (`forever` yields after each): on SQLite, whose driver answers
            // synchronously, it gets one only when the enqueue yields.
            let turns = 0
            const other = yield* Effect.fork(Effect.forever(Effect.sync(() => turns++)))
            yield* Effect.yieldNow()
            const before = turns
            const ids = yield* q.enqueue(payloads(2000))
            const during = turns - before
            yield* Fiber.interrupt(other)
            assert.isAtLeast(during, 3, "one turn at least between each two of its four statements")
            assert.strictEqual(ids.length, 2000)
            assert.deepStrictEqual([...ids].sort((a, b) => a - b), ids)
            const all = yield* q.stream({ pageSize: 1000 }).pipe(Stream.runCollect)
            assert.deepStrictEqual(
              Chunk.toReadonlyArray(all).map((job) => job.payload.url),
              payloads(2000).map((p) => p.url)
            )
          }))

        it.effect("pages by keyset and streams without holding the connection between pages", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            const ids = yield* q.enqueue(payloads(1200))
            const first = yield* q.page({ limit: 500 })
            assert.strictEqual(first.jobs.length, 500)
            const second = yield* q.page({ limit: 500, after: Option.getOrThrow(first.next) })
            assert.strictEqual(second.jobs[0].id, ids[500])
            // Another query between pages: on SQLite's single connection this deadlocks if a page holds it.
            const streamed = yield* q.stream({ pageSize: 500 }).pipe(
              Stream.tap(() => q.counts()),
              Stream.runCollect
            )
            assert.deepStrictEqual(Chunk.toReadonlyArray(streamed).map((j) => j.id), ids)
            const pending = yield* q.stream({ status: "leased" }).pipe(Stream.runCollect)
            assert.strictEqual(Chunk.size(pending), 0)
          }))

        it.effect("groups: counted, paged and cancelled together; results recorded with ack and fail", () =>
          Effect.gen(function*() {
            const q = yield* JobQueue.make({
              name: `q${counter++}`,
              schema: Payload,
              result: Schema.Struct({ bytes: Schema.Number })
            })
            yield* q.enqueue(payloads(3), { group: "job-a" })
            yield* q.enqueue(payloads(2), { group: "job-b" })
            const leased = yield* q.lease({ limit: 5, owner: "w", lease: "30 seconds" })
            const [a1, a2, a3, b1] = leased
            assert.deepStrictEqual(leased.map((j) => j.group), ["job-a", "job-a", "job-a", "job-b", "job-b"])
            assert.isTrue(yield* q.ack(a1.id, "w", { bytes: 10 }))
            assert.isTrue(yield* q.fail(a2.id, "w", "http 404", { bytes: 0 }))
            assert.strictEqual(yield* q.cancelGroup("job-b"), 2)
            assert.isFalse(yield* q.ack(b1.id, "w", { bytes: 1 }), "a cancelled job cannot be settled")
            assert.deepStrictEqual(yield* q.counts("job-a"), {
              pending: 0,
              leased: 1,
              done: 1,
              failed: 1,
              cancelled: 0
            })
            assert.deepStrictEqual(yield* q.counts("job-b"), {
              pending: 0,
              leased: 0,
              done: 0,
              failed: 0,
              cancelled: 2
            })
            // Both groups in one query, and a group with no jobs at all.
            const byGroup = yield* q.countsByGroup(["job-b", "job-a", "none"])
            assert.deepStrictEqual([...byGroup.keys()], ["job-b", "job-a", "none"])
            assert.deepStrictEqual(byGroup.get("job-a"), yield* q.counts("job-a"))
            assert.deepStrictEqual(byGroup.get("job-b"), yield* q.counts("job-b"))
            assert.deepStrictEqual(byGroup.get("none"), { pending: 0, leased: 0, done: 0, failed: 0, cancelled: 0 })
            assert.strictEqual((yield* q.countsByGroup([])).size, 0)
            // job-a still has a leased job; job-b's were all cancelled; a group with no jobs has nothing left to do.
            assert.deepStrictEqual(yield* q.settledGroups(["job-a", "job-b", "none"]), ["job-b", "none"])
            assert.deepStrictEqual(yield* q.settledGroups([]), [])
            const page = yield* q.page({ limit: 10, group: "job-a" })
            assert.deepStrictEqual(page.jobs.map((j) => [j.id, j.status, j.result]), [
              [a1.id, "done", { bytes: 10 }],
              [a2.id, "failed", { bytes: 0 }],
              [a3.id, "leased", null]
            ])
            const settled = yield* q.page({ limit: 10, group: "job-a", status: ["done", "failed"] })
            assert.deepStrictEqual(settled.jobs.map((j) => j.id), [a1.id, a2.id])
            const bad = yield* Effect.flip(q.ack(a3.id, "w", { bytes: "many" } as unknown as { bytes: number }))
            assert.strictEqual(bad._tag, "ParseError")
          }))

        it.effect("settleMany acks and fails many jobs at once, only those whose lease is held", () =>
          Effect.gen(function*() {
            const q = yield* JobQueue.make({
              name: `q${counter++}`,
              schema: Payload,
              result: Schema.Struct({ bytes: Schema.Number })
            })
            yield* q.enqueue(payloads(6), { group: "g" })
            const [a, b, c, d, e, f] = yield* q.lease({ limit: 6, owner: "w", lease: "30 seconds" })
            assert.isTrue(yield* q.ack(e.id, "w"))
            assert.strictEqual(yield* q.release([f.id], "w"), 1)
            const settled = yield* q.settleMany([
              { _tag: "Ack", id: a.id, result: { bytes: 1 } },
              { _tag: "Fail", id: b.id, error: "http 404", result: { bytes: 0 } },
              { _tag: "Ack", id: c.id },
              { _tag: "Fail", id: d.id, error: "timeout" },
              { _tag: "Ack", id: e.id, result: { bytes: 5 } },
              { _tag: "Ack", id: f.id, result: { bytes: 6 } }
            ], "w")
            assert.deepStrictEqual([...settled].sort((x, y) => x - y), [a.id, b.id, c.id, d.id])
            assert.deepStrictEqual(yield* q.settleMany([{ _tag: "Ack", id: a.id }], "w"), new Set(), "settled once")
            const page = yield* q.page({ limit: 10, group: "g" })
            assert.deepStrictEqual(page.jobs.map((j) => [j.status, j.result, j.attempts, j.lastError]), [
              ["done", { bytes: 1 }, 0, null],
              ["failed", { bytes: 0 }, 1, "http 404"],
              ["done", null, 0, null],
              ["failed", null, 1, "timeout"],
              ["done", null, 0, null],
              ["pending", null, 0, null]
            ])
            assert.deepStrictEqual(yield* q.settleMany([], "w"), new Set())
          }))

        it.effect("settleMany settles batches of every size exactly, across its padded statement sizes and chunks", () =>
          Effect.gen(function*() {
            const q = yield* JobQueue.make({
              name: `q${counter++}`,
              schema: Payload,
              result: Schema.Struct({ n: Schema.Number })
            })
            // Sizes 1 to 40 (each statement size and the padding between them), then 1,100 at once (three chunks).
            const sizes = [...Array.from({ length: 40 }, (_, i) => i + 1), 1100]
            const total = sizes.reduce((a, b) => a + b, 0)
            yield* q.enqueue(payloads(total), { group: "sizes" })
            const jobs = [...yield* q.lease({ limit: total, owner: "w", lease: "1 minute" })].sort((x, y) =>
              x.id - y.id
            )
            let at = 0
            for (const size of sizes) {
              const batch = jobs.slice(at, at + size)
              at += size
              // Every third job fails; the others are acknowledged, each with its own result.
              const settled = yield* q.settleMany(
                batch.map((job, i) =>
                  i % 3 === 2
                    ? { _tag: "Fail" as const, id: job.id, error: `e${job.id}`, result: { n: -job.id } }
                    : { _tag: "Ack" as const, id: job.id, result: { n: job.id } }
                ),
                "w"
              )
              assert.deepStrictEqual([...settled].sort((x, y) => x - y), batch.map((job) => job.id), `size ${size}`)
            }
            const all = yield* Stream.runCollect(q.stream({ group: "sizes" }))
            assert.strictEqual(all.length, total)
            let index = 0
            for (const size of sizes) {
              for (let i = 0; i < size; i++) {
                const job = Chunk.unsafeGet(all, index++)
                const failed = i % 3 === 2
                assert.deepStrictEqual(
                  [job.status, job.result, job.lastError, job.attempts],
                  failed ? ["failed", { n: -job.id }, `e${job.id}`, 1] : ["done", { n: job.id }, null, 0]
                )
              }
            }
          }))

        it.effect("leases expired leases first, then due jobs in order, however many wait", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            const ids = yield* q.enqueue(payloads(50))
            const [first] = yield* q.lease({ limit: 1, owner: "crashed", lease: "1 second" })
            assert.strictEqual(first.id, ids[0])
            const [next] = yield* q.lease({ limit: 1, owner: "w", lease: "30 seconds" })
            assert.isTrue(yield* q.retry(next.id, "w", { delay: "2 seconds", error: "http 503" }))
            yield* TestClock.adjust("2 seconds")
            const leased = yield* q.lease({ limit: 3, owner: "w", lease: "30 seconds" })
            // The expired lease, then the due jobs by due time: the retried one is due last.
            assert.deepStrictEqual(leased.map((j) => j.id), [ids[0], ids[2], ids[3]])
            const rest = yield* q.lease({ limit: 100, owner: "w", lease: "30 seconds" })
            assert.strictEqual(rest.length, 47)
            assert.strictEqual(rest[rest.length - 1].id, ids[49])
            assert.isTrue(rest.some((j) => j.id === ids[1]))
          }))

        it.effect("expired leases fill a lease before due jobs, never past its limit, and come back as stored", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            const ids = yield* q.enqueue(payloads(5))
            yield* q.lease({ limit: 3, owner: "crashed", lease: "1 second" })
            yield* q.lease({ limit: 2, owner: "alive", lease: "1 minute" })
            const later = yield* q.enqueue(payloads(2))
            yield* TestClock.adjust("1 second")
            const first = yield* q.lease({ limit: 2, owner: "w", lease: "30 seconds" })
            assert.strictEqual(first.length, 2)
            assert.isTrue(first.every((job) => ids.slice(0, 3).includes(job.id)), "expired leases before due jobs")
            const second = yield* q.lease({ limit: 5, owner: "w", lease: "30 seconds" })
            assert.deepStrictEqual(
              second.map((job) => job.id),
              [...ids.slice(0, 3).filter((id) => !first.some((job) => job.id === id)), ...later]
            )
            // The lease's status, owner and expiry are those it wrote, as a read of the rows finds them.
            const now = yield* Clock.currentTimeMillis
            const { jobs } = yield* q.page({ limit: 10, status: "leased" })
            const stored = new Map(jobs.map((job) => [job.id, job]))
            for (const job of [...first, ...second]) {
              assert.deepStrictEqual(job, stored.get(job.id))
              assert.strictEqual(job.leaseExpiresAt, now + 30_000)
            }
          }))

        it.effect("a payload that does not match the schema is a typed error and writes nothing", () =>
          Effect.gen(function*() {
            const q = yield* queue()
            const error = yield* Effect.flip(q.enqueue([{ url: 42 } as unknown as { url: string }]))
            assert.strictEqual(error._tag, "ParseError")
            assert.deepStrictEqual(yield* q.counts(), { pending: 0, leased: 0, done: 0, failed: 0, cancelled: 0 })
            // Payloads are encoded batch by batch: one in the third batch fails the enqueue after two were inserted,
            // and the transaction takes those back.
            const late = [...payloads(1200), { url: 42 } as unknown as { url: string }]
            assert.strictEqual((yield* Effect.flip(q.enqueue(late)))._tag, "ParseError")
            assert.deepStrictEqual(yield* q.counts(), { pending: 0, leased: 0, done: 0, failed: 0, cancelled: 0 })
            // The queue is as usable as before.
            assert.strictEqual((yield* q.enqueue(payloads(3))).length, 3)
          }))
      }
    )
  })
}

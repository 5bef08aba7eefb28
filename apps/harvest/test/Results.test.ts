import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import { Databases } from "@spindle/testkit"
import * as Wait from "@spindle/testkit/Wait"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type * as Domain from "../src/Domain.js"
import { Instance } from "../src/Instance.js"
import * as LocalFaults from "../src/LocalFaults.js"
import * as Results from "../src/pipeline/Results.js"
import * as Database from "../src/storage/Database.js"
import { Items, layerItems } from "../src/storage/Jobs.js"

const owner = "harvest-results-test"

const succeeded = (url: string, fileId: string): Domain.ItemResult => ({
  url,
  status: "succeeded",
  httpStatus: 200,
  bytes: 4,
  sha256: fileId,
  attempts: 1,
  error: null,
  fileId
})

const hex = (n: number) => n.toString(16).padStart(64, "0")

for (const database of Databases.all) {
  const suite = database.skip === undefined ? describe : describe.skip
  suite(`Results on ${database.name}${database.skip === undefined ? "" : ` (skipped: ${database.skip})`}`, () => {
    const env = Layer.fresh(layerItems).pipe(
      Layer.provideMerge(Layer.effectDiscard(Database.migrate).pipe(Layer.provideMerge(database.layer))),
      Layer.provideMerge(Layer.succeed(Instance, { owner })),
      // Probes that pass: no test here meets a local fault.
      Layer.provideMerge(LocalFaults.layerWith({ probes: { storage: Effect.void, database: Effect.void } })),
      Layer.orDie
    )

    // A job row and `n` items of it, leased by this test's owner.
    const leasedJob = (job: string, n: number) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const items = yield* Items
        yield* sql`INSERT INTO harvest_jobs ${
          sql.insert({ id: job, total: n, options: "{}", cancelled: 0, created_at: 0 })
        }`
        yield* items.enqueue(Array.from({ length: n }, (_, i) => ({ url: `http://${job}.test/${i}` })), { group: job })
        return yield* items.lease({ limit: n, owner, lease: "1 minute" })
      })

    const finishedAt = (job: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(
          sql<{ finished_at: number | string | null }>`SELECT finished_at FROM harvest_jobs WHERE id = ${job}`,
          (rows) => rows[0].finished_at
        ))

    layer(env, { timeout: 60_000, excludeTestServices: true })((it) => {
      it.effect("outcomes handed over are committed together; the last one finishes the job; bodies are referenced", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const items = yield* Items
          const leased = yield* leasedJob("j1", 30)
          const scope = yield* Scope.make()
          const results = yield* Results.make({ window: "20 millis" }).pipe(Scope.extend(scope))
          for (const item of leased.slice(0, 29)) {
            yield* results.settle({
              settlement: { _tag: "Ack", id: item.id, result: succeeded(item.payload.url, hex(item.id)) },
              fileId: hex(item.id),
              job: "j1"
            })
          }
          // Handing over returns at once: nothing is committed yet, and the items are listed as uncommitted (the
          // scheduler's heartbeat keeps their leases meanwhile).
          assert.strictEqual((yield* items.counts("j1")).done, 0)
          const ids = (values: Iterable<number>) => Array.from(values).sort((a, b) => a - b)
          assert.deepStrictEqual(ids(results.uncommitted()), ids(leased.slice(0, 29).map((item) => item.id)))
          yield* Wait.until("the 29 committed", Effect.map(items.counts("j1"), (counts) => counts.done === 29))
          yield* Wait.until("none left uncommitted", Effect.sync(() => ids(results.uncommitted()).length === 0))
          assert.isNull(yield* finishedAt("j1"), "one item is still leased")
          const last = leased[29]
          yield* results.settle({
            settlement: { _tag: "Fail", id: last.id, error: "HTTP 404" },
            fileId: null,
            job: "j1"
          })
          yield* Scope.close(scope, Exit.void)
          const counts = yield* items.counts("j1")
          assert.deepStrictEqual([counts.done, counts.failed, counts.leased], [29, 1, 0])
          assert.isNotNull(yield* finishedAt("j1"))
          const files = yield* sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM harvest_files`
          assert.strictEqual(Number(files[0].n), 29)
        }))

      it.effect("closing commits what is still queued; an item whose lease was lost is not recorded", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const items = yield* Items
          const leased = yield* leasedJob("j2", 3)
          // The third item's lease went to another instance meanwhile.
          yield* sql`UPDATE spindle_jobs SET lease_owner = 'someone-else' WHERE id = ${leased[2].id}`
          const scope = yield* Scope.make()
          // A window longer than the test: only the close can commit these.
          const results = yield* Results.make({ window: "1 hour" }).pipe(Scope.extend(scope))
          for (const item of leased) {
            yield* results.settle({
              settlement: { _tag: "Ack", id: item.id, result: succeeded(item.payload.url, hex(1000 + item.id)) },
              fileId: hex(1000 + item.id),
              job: "j2"
            })
          }
          yield* Scope.close(scope, Exit.void)
          const counts = yield* items.counts("j2")
          assert.deepStrictEqual([counts.done, counts.leased], [2, 1])
          const files = yield* sql<{ file_id: string }>`
            SELECT file_id FROM harvest_files WHERE ${sql.in("file_id", leased.map((item) => hex(1000 + item.id)))}
          `
          assert.deepStrictEqual(
            files.map((row) => row.file_id).sort(),
            [hex(1000 + leased[0].id), hex(1000 + leased[1].id)].sort()
          )
          assert.isNull(yield* finishedAt("j2"))
        }))

      it.effect("two items with the same body record it once", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const leased = yield* leasedJob("j3", 2)
          const scope = yield* Scope.make()
          const results = yield* Results.make().pipe(Scope.extend(scope))
          for (const item of leased) {
            yield* results.settle({
              settlement: { _tag: "Ack", id: item.id, result: succeeded(item.payload.url, hex(9)) },
              fileId: hex(9),
              job: "j3"
            })
          }
          yield* Scope.close(scope, Exit.void)
          const rows = yield* sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM harvest_files WHERE file_id = ${
            hex(9)
          }`
          assert.strictEqual(Number(rows[0].n), 1)
          assert.isNotNull(yield* finishedAt("j3"))
        }))

      // Waiting on for a larger batch lasts only while outcomes keep coming: one that comes alone is committed after its
      // window, long before the scope closes, however long `maxWait` allows.
      it.effect("a lone outcome is committed without waiting for a fuller batch", () =>
        Effect.gen(function*() {
          const items = yield* Items
          const [item] = yield* leasedJob("j4", 1)
          const scope = yield* Scope.make()
          const results = yield* Results.make({ window: "5 millis", maxWait: "1 hour" }).pipe(Scope.extend(scope))
          yield* results.settle({
            settlement: { _tag: "Ack", id: item.id, result: succeeded(item.payload.url, hex(4000)) },
            fileId: hex(4000),
            job: "j4"
          })
          yield* Wait.until("the lone outcome committed", Effect.map(items.counts("j4"), (counts) => counts.done === 1))
          assert.isNotNull(yield* finishedAt("j4"))
          yield* Scope.close(scope, Exit.void)
        }))
    })
  })
}

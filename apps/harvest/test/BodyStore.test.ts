import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Databases from "@spindle/testkit/Databases"
import * as Wait from "@spindle/testkit/Wait"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as RuntimeFlags from "effect/RuntimeFlags"
import type * as Scheduler from "effect/Scheduler"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestContext from "effect/TestContext"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as LocalFaults from "../src/LocalFaults.js"
import * as BodyStore from "../src/storage/BodyStore.js"
import * as Database from "../src/storage/Database.js"
import { Items, layerItems } from "../src/storage/Jobs.js"
import * as StorageThread from "../src/storage/StorageThread.js"
import * as Telemetry from "../src/Telemetry.js"
import * as Tmpfs from "./tmpfs.js"

// Long enough that the store's own periodic sweep stays out of the way of the explicit ones.
const leaseMs = 5000
const hex = (n: number) => n.toString(16).padStart(64, "0")
const write = (file: string, ageMs = 0) => {
  fs.writeFileSync(file, "body")
  if (ageMs > 0) {
    const at = new Date(Date.now() - ageMs)
    fs.utimesSync(file, at, at)
  }
}
const names = (dir: string) => fs.readdirSync(dir).sort()
// This process's threads (Linux), each with its nice value: field 19 of `/proc/self/task/<tid>/stat`, the 17th after
// the command name's closing parenthesis. A thread that ends while it is read is left out.
const niceOfThreads = () =>
  new Map(
    fs.readdirSync("/proc/self/task").flatMap((tid) => {
      try {
        const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8")
        return [[tid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16])] as const]
      } catch {
        return []
      }
    })
  )

for (const database of Databases.all) {
  const suite = database.skip === undefined ? describe : describe.skip
  suite(`BodyStore on ${database.name}${database.skip === undefined ? "" : ` (skipped: ${database.skip})`}`, () => {
    // Fresh per database: the item queue captures its client, and suites must not share one.
    const items = Layer.fresh(layerItems).pipe(
      Layer.provideMerge(Layer.effectDiscard(Database.migrate).pipe(Layer.provideMerge(database.layer))),
      Layer.merge(StorageThread.layer),
      Layer.orDie
    )

    layer(items, { timeout: 60_000, excludeTestServices: true })((it) => {
      it.scoped("a temp file is removed once its owner holds no live lease; a live owner's never is", () =>
        Effect.gen(function*() {
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          const items = yield* Items
          yield* items.enqueue([{ url: "http://a.test/1" }, { url: "http://a.test/2" }], { group: "g1" })
          // "peer" is another live instance on the same DATA_DIR: it holds a lease, so its temp file is in use. The
          // lease is 40 times longer than the steps up to the store's first sweep take here (a busy machine included).
          yield* items.lease({ limit: 1, owner: "peer", lease: "2 seconds" })
          const tmp = path.join(dataDir, "tmp")
          fs.mkdirSync(tmp, { recursive: true })
          write(path.join(tmp, "peer.0001.part"))
          write(path.join(tmp, "crashed.0002.part"), 10 * leaseMs)
          write(path.join(tmp, "crashed.0003.part"))
          write(path.join(tmp, "legacy-old.part"), 10 * leaseMs)
          write(path.join(tmp, "legacy-new.part"))
          const store = yield* BodyStore.make({ dataDir, owner: "me", leaseMs })
          write(path.join(tmp, "me.0004.part"))
          assert.deepStrictEqual(names(tmp), ["legacy-new.part", "me.0004.part", "peer.0001.part"])
          // The peer's lease expires (it crashed): the store removes its temp file by itself as it expires.
          yield* Wait.until("the peer's temp file to go", Effect.sync(() => !names(tmp).includes("peer.0001.part")))
          assert.deepStrictEqual(names(tmp), ["legacy-new.part", "me.0004.part"])
          yield* items.lease({ limit: 1, owner: "other", lease: "30 seconds" })
          assert.deepStrictEqual(yield* store.sweep, { tmp: 0, orphans: 0 })
          assert.deepStrictEqual(names(tmp), ["legacy-new.part", "me.0004.part"])
        }))

      it.scoped("a dead owner's temp files go as its last lease expires, before its items are taken over", () =>
        Effect.gen(function*() {
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          const items = yield* Items
          yield* items.enqueue([{ url: "http://b.test/1" }, { url: "http://b.test/2" }], { group: "g-takeover" })
          // "dead" was killed while writing two bodies (its leases run out); "alive" is another instance at work.
          // (2 s: 40 times what the steps up to the store's first sweep take here, a busy machine included.)
          const leasedAt = Date.now()
          const [mine] = yield* items.lease({ limit: 1, owner: "dead", lease: "2 seconds" })
          yield* items.lease({ limit: 1, owner: "alive", lease: "10 minutes" })
          const tmp = path.join(dataDir, "tmp")
          fs.mkdirSync(tmp, { recursive: true })
          write(path.join(tmp, "dead.0001.part"))
          write(path.join(tmp, "dead.0002.part"))
          write(path.join(tmp, "alive.0003.part"))
          // A lease period far longer than the test: only the expiry of dead's lease can bring the sweep.
          yield* BodyStore.make({ dataDir, owner: "me", leaseMs: 10 * 60_000 })
          assert.deepStrictEqual(names(tmp), ["alive.0003.part", "dead.0001.part", "dead.0002.part"])
          yield* Wait.until(
            "the dead owner's temp files to go",
            Effect.sync(() => !fs.readdirSync(tmp).some((name) => name.startsWith("dead.")))
          )
          assert.isAtLeast(Date.now() - leasedAt, 2000, "not before its lease expired")
          assert.deepStrictEqual(names(tmp), ["alive.0003.part"])
          // Its item is now taken over (expired leases first), and the live owner's temp file stays.
          const [taken] = yield* items.lease({ limit: 1, owner: "me", lease: "1 minute" })
          assert.strictEqual(taken.id, mine.id)
          assert.deepStrictEqual(names(tmp), ["alive.0003.part"])
        }))

      it.scoped("the store sweeps by itself: dead temp files each lease period, files/ listed a grace after start", () =>
        Effect.gen(function*() {
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          yield* BodyStore.make({ dataDir, owner: "me", leaseMs: 200 })
          write(path.join(dataDir, "tmp", "crashed.0001.part"))
          write(path.join(dataDir, "files", hex(7)), 1000)
          yield* Wait.until(
            "the dead temp file to go",
            Effect.sync(() => names(path.join(dataDir, "tmp")).length === 0)
          )
          yield* Wait.until("the orphan body to go", Effect.sync(() => names(path.join(dataDir, "files")).length === 0))
        }))

      it.scoped("between listings a sweep checks the bodies this instance wrote; another owner gone brings one", () =>
        Effect.gen(function*() {
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          const files = path.join(dataDir, "files")
          const sql = yield* SqlClient.SqlClient
          const items = yield* Items
          // Sweeps every 200 ms; `files/` listed at start, a grace (400 ms) later, and then not for ten minutes.
          const store = yield* BodyStore.make({ dataDir, owner: "me", leaseMs: 200, listEveryMs: 600_000 })
          const present = (file: string) => fs.existsSync(path.join(files, file))
          // Another instance's orphan, found by the listing a grace after start.
          write(path.join(files, hex(0x20001)), 10_000)
          yield* Wait.until("the listing a grace after start", Effect.sync(() => !present(hex(0x20001))))
          // This instance's bodies: one whose result was committed, one whose item was cancelled before its commit.
          const kept = yield* store.write(Buffer.from(`kept ${dataDir}`))
          const dropped = yield* store.write(Buffer.from(`dropped ${dataDir}`))
          yield* sql`INSERT INTO harvest_files (file_id, created_at) VALUES (${kept.fileId}, 0)`
          // And another instance's orphan again, old already: no periodic sweep lists files/ now.
          write(path.join(files, hex(0x20002)), 10_000)
          yield* Wait.until("this instance's unrecorded body to go", Effect.sync(() => !present(dropped.fileId)))
          assert.isTrue(present(hex(0x20002)), "the sweeps since did not list files/")
          assert.isTrue(present(kept.fileId))
          // "peer" leases an item, is seen at work by a sweep, and its lease runs out (it died, or its work ended):
          // a grace later files/ is listed, and the other orphan goes.
          yield* items.enqueue([{ url: "http://peer.test/1" }], { group: "g-peer" })
          const leasedAt = Date.now()
          yield* items.lease({ limit: 1, owner: "peer", lease: "1 second" })
          yield* Wait.until("the listing after the peer's lease expired", Effect.sync(() => !present(hex(0x20002))))
          assert.isAtLeast(Date.now() - leasedAt, 1000, "not before its lease expired")
          assert.isTrue(present(kept.fileId))
        }))

      it.scoped("a body no committed result points to is removed after the grace; referenced ones stay", () =>
        Effect.gen(function*() {
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          const files = path.join(dataDir, "files")
          fs.mkdirSync(files, { recursive: true })
          const store = yield* BodyStore.make({ dataDir, owner: "me", leaseMs })
          const sql = yield* SqlClient.SqlClient
          // Committed: recorded with its result (Results does so in the transaction that settles the item).
          write(path.join(files, hex(1)), 10 * leaseMs)
          yield* sql`INSERT INTO harvest_files (file_id, created_at) VALUES (${hex(1)}, 0)`
          // Renamed into place, but its item's result was never committed (the lease was lost, or the instance died).
          write(path.join(files, hex(2)), 10 * leaseMs)
          // Renamed a moment ago by a live instance that has not committed yet: within the grace.
          write(path.join(files, hex(3)))
          // Not a body at all: left alone.
          write(path.join(files, "README"), 10 * leaseMs)
          const recorded = yield* sql<{ file_id: string }>`
            SELECT file_id FROM harvest_files WHERE ${sql.in("file_id", [hex(1), hex(2), hex(3)])} ORDER BY file_id
          `
          assert.deepStrictEqual(recorded.map((row) => row.file_id), [hex(1)])
          assert.deepStrictEqual(yield* store.sweep, { tmp: 0, orphans: 1 })
          assert.deepStrictEqual(names(files), [hex(1), hex(3), "README"])
        }))

      it.scoped("a sweep of many bodies reads files/ a batch at a time, the loop turning meanwhile", () =>
        Effect.gen(function*() {
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          const files = path.join(dataDir, "files")
          fs.mkdirSync(files, { recursive: true })
          const store = yield* BodyStore.make({ dataDir, owner: "me", leaseMs })
          const sql = yield* SqlClient.SqlClient
          // 3,000 old bodies, six queries' worth: every third one recorded, the others orphans. (Their ids are apart
          // from the other tests': they share the database.)
          const total = 3000
          const recorded: Array<string> = []
          for (let i = 0; i < total; i++) {
            write(path.join(files, hex(0x10000 + i)), 10 * leaseMs)
            if (i % 3 === 0) recorded.push(hex(0x10000 + i))
          }
          for (let i = 0; i < recorded.length; i += 500) {
            const rows = recorded.slice(i, i + 500).map((file_id) => ({ file_id, created_at: 0 }))
            yield* sql`INSERT INTO harvest_files ${sql.insert(rows)}`
          }
          // Event-loop turns while the sweep runs: a directory listed whole on the loop's thread allows none between
          // its queries (better-sqlite3 answers synchronously); read through the thread pool, each chunk of 256
          // names is at least one turn.
          let turns = 0
          let counting = true
          const tick = () => {
            turns++
            if (counting) setImmediate(tick)
          }
          setImmediate(tick)
          const swept = yield* store.sweep
          counting = false
          assert.deepStrictEqual(swept, { tmp: 0, orphans: total - recorded.length })
          assert.deepStrictEqual(names(files), [...recorded].sort())
          assert.isAtLeast(turns, Math.floor(total / 256))
          // Nothing remembered from the first sweep: the second looks every body up again and removes nothing.
          assert.deepStrictEqual(yield* store.sweep, { tmp: 0, orphans: 0 })
          assert.deepStrictEqual(names(files).length, recorded.length)
        }))
    })
  })
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const pattern = (size: number, seed = 0) => {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff
  return bytes
}
// The bytes in chunks of `size` (the last one shorter).
const chunked = (bytes: Buffer, size: number) =>
  Stream.fromIterable(
    Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size))
  )

describe("BodyStore files", () => {
  const sqlite = Databases.all.find((database) => database.name === "sqlite")!
  const items = Layer.fresh(layerItems).pipe(
    Layer.provideMerge(Layer.effectDiscard(Database.migrate).pipe(Layer.provideMerge(sqlite.layer))),
    Layer.merge(StorageThread.layer),
    Layer.orDie
  )
  const setupWith = (threadAboveMicros?: number) =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-bodies-")
      const store = yield* Effect.orDie(BodyStore.make({ dataDir, owner: "me", leaseMs, threadAboveMicros }))
      return { store, files: path.join(dataDir, "files"), tmp: path.join(dataDir, "tmp") }
    })
  const setup = setupWith()
  const bodyWrites = (writer: "loop" | "thread") =>
    Metric.value(Metric.tagged(Telemetry.metrics.bodyWrites, "writer", writer)).pipe(Effect.map((state) => state.count))

  layer(items, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("write: bytes or a stream, small or large, renamed into files/ under their SHA-256", () =>
      Effect.gen(function*() {
        const { files, store, tmp } = yield* setup
        const small = pattern(1500)
        const large = pattern(200_000, 7)
        const written = [
          yield* store.write(small),
          // The same body again, in chunks held in memory: the same file.
          yield* store.write(chunked(small, 100)),
          // Past the 64 KiB held in memory: streamed to a temp file.
          yield* store.write(chunked(large, 16_384)),
          yield* store.write(chunked(large, 16_384), { memoryBytes: 0 }),
          yield* store.write(Stream.empty)
        ]
        const expected = (bytes: Buffer) => ({ bytes: bytes.length, sha256: sha256(bytes), fileId: sha256(bytes) })
        assert.deepStrictEqual(written, [
          expected(small),
          expected(small),
          expected(large),
          expected(large),
          expected(Buffer.alloc(0))
        ])
        assert.isTrue(fs.readFileSync(path.join(files, sha256(small))).equals(small))
        assert.isTrue(fs.readFileSync(path.join(files, sha256(large))).equals(large))
        assert.deepStrictEqual(names(files), [sha256(Buffer.alloc(0)), sha256(small), sha256(large)].sort())
        assert.deepStrictEqual(names(tmp), [])
      }))

    it.scoped("write: over maxBytes is BodyTooLarge, and nothing of it is kept", () =>
      Effect.gen(function*() {
        const { files, store, tmp } = yield* setup
        const bytes = pattern(100_001)
        for (
          const body of [
            bytes,
            chunked(bytes, 1000) as Stream.Stream<Uint8Array>,
            chunked(bytes, 70_000) as Stream.Stream<Uint8Array>
          ]
        ) {
          const error = yield* Effect.flip(store.write(body, { maxBytes: 100_000 }))
          assert.strictEqual(error._tag, "BodyTooLarge")
        }
        assert.strictEqual((yield* store.write(bytes.subarray(0, 100_000), { maxBytes: 100_000 })).bytes, 100_000)
        assert.deepStrictEqual(names(files), [sha256(bytes.subarray(0, 100_000))])
        assert.deepStrictEqual(names(tmp), [])
      }))

    it.scoped("write: a failing stream, a failing rename or an interruption removes the temp file", () =>
      Effect.gen(function*() {
        const { files, store, tmp } = yield* setup
        const head = chunked(pattern(100_000), 50_000)
        // The stream fails after its temp file was opened: the stream's own error, and no temp file.
        const failed = yield* Effect.flip(store.write(Stream.concat(head, Stream.fail("upstream reset" as const))))
        assert.strictEqual(failed, "upstream reset")
        assert.deepStrictEqual(names(tmp), [])
        // Interrupted while it waits for more: the temp file (named after its owner) is gone when the fiber is.
        const fiber = yield* Effect.fork(store.write(Stream.concat(head, Stream.never)))
        const temp = yield* Wait.until("the temp file", Effect.sync(() => names(tmp)[0]))
        assert.match(temp, /^me\.[0-9a-f-]{36}\.part$/)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(names(tmp), [])
        // files/ is gone: the rename fails, for a body held in memory as for a streamed one.
        fs.rmSync(files, { recursive: true })
        for (const body of [pattern(10) as Uint8Array, chunked(pattern(100_000), 50_000)]) {
          const error = yield* Effect.flip(store.write(body))
          assert.strictEqual(error._tag, "BodyStoreError")
        }
        assert.deepStrictEqual(names(tmp), [])
      }))

    it.scoped("write: while writes are fast (a TestClock's time stands still), bodies are written on the loop", () =>
      Effect.gen(function*() {
        const { files, store } = yield* setup
        const [loop, thread] = [yield* bodyWrites("loop"), yield* bodyWrites("thread")]
        const bodies = Array.from({ length: 20 }, (_, i) => pattern(2000, i))
        yield* Effect.forEach(bodies, (body) => store.write(body), { concurrency: "unbounded" })
        assert.deepStrictEqual([yield* bodyWrites("loop"), yield* bodyWrites("thread")], [loop + 20, thread])
        assert.strictEqual(names(files).length, 20)
      }).pipe(Effect.provide(TestContext.TestContext)))

    it.scoped("write: by the storage thread (threadAboveMicros 0), in batches; failures typed, no temp file left", () =>
      Effect.gen(function*() {
        const { files, store, tmp } = yield* setupWith(0)
        const [loop, thread] = [yield* bodyWrites("loop"), yield* bodyWrites("thread")]
        // More than one message's worth (256), all queued in the same turn.
        const bodies = Array.from({ length: 600 }, (_, i) => pattern(1000 + (i % 50), i))
        const stored = yield* Effect.forEach(bodies, (body) => store.write(body), { concurrency: "unbounded" })
        assert.deepStrictEqual(stored.map((s) => s.sha256), bodies.map(sha256))
        for (const [i, body] of bodies.entries()) {
          assert.isTrue(fs.readFileSync(path.join(files, sha256(body))).equals(body), `body ${i}`)
        }
        assert.deepStrictEqual(names(tmp), [])
        assert.deepStrictEqual([yield* bodyWrites("loop"), yield* bodyWrites("thread")], [loop, thread + 600])

        // Interrupted as it is handed over: the interruption waits for the thread, and no temp file is left.
        const interrupted = yield* Effect.fork(store.write(pattern(3000, 9999)))
        yield* Fiber.interrupt(interrupted)
        assert.deepStrictEqual(names(tmp), [])

        // files/ is gone: each rename fails on the thread, as a BodyStoreError with the system's code.
        fs.rmSync(files, { recursive: true })
        const errors = yield* Effect.forEach(
          [pattern(10, 1), pattern(10, 2)],
          (body) => Effect.flip(store.write(body)),
          { concurrency: "unbounded" }
        )
        for (const error of errors) {
          assert.strictEqual(error._tag, "BodyStoreError")
          assert.strictEqual((error as BodyStore.BodyStoreError).operation, "write")
          assert.strictEqual(((error as BodyStore.BodyStoreError).cause as { code?: string }).code, "ENOENT")
        }
        assert.deepStrictEqual(names(tmp), [])
        // And the thread goes on writing once the directory is back.
        fs.mkdirSync(files)
        assert.strictEqual((yield* store.write(pattern(10, 3))).bytes, 10)
        assert.deepStrictEqual(names(files), [sha256(pattern(10, 3))])
      }))

    it.scoped.skipIf(Tmpfs.skip !== undefined)(
      `the storage thread on a full disk: ENOSPC, classified storage_full, no temp file left${
        Tmpfs.skip === undefined ? "" : ` (skipped: ${Tmpfs.skip})`
      }`,
      () =>
        Effect.gen(function*() {
          const disk = yield* Tmpfs.mount("1m")
          const store = yield* Effect.orDie(
            BodyStore.make({ dataDir: disk.dir, owner: "me", leaseMs, threadAboveMicros: 0 })
          )
          // 200 KiB bodies, at once: the thread fills the 1 MiB file system and fails the ones that do not fit.
          const bodies = Array.from({ length: 8 }, (_, i) => pattern(200 * 1024, i))
          const written = yield* Effect.forEach(bodies, (body) => Effect.either(store.write(body)), {
            concurrency: "unbounded"
          })
          const failures = written.filter((w) => w._tag === "Left").map((w) => w.left)
          assert.isAbove(failures.length, 0)
          for (const error of failures) {
            assert.strictEqual(error._tag, "BodyStoreError")
            const cause = (error as BodyStore.BodyStoreError).cause
            assert.strictEqual((cause as { code?: string }).code, "ENOSPC")
            assert.strictEqual(LocalFaults.fromFileError("writing a body", cause).reason, "storage_full")
          }
          assert.deepStrictEqual(names(path.join(disk.dir, "tmp")), [])
          // Space again: the thread writes the next body.
          yield* disk.resize("8m")
          assert.strictEqual((yield* store.write(bodies[7])).bytes, 200 * 1024)
        })
    )

    it.scoped("closing the store waits for the bodies it handed to the storage thread", () =>
      Effect.gen(function*() {
        const dataDir = yield* Databases.tempDir("harvest-bodies-")
        const [files, tmp] = [path.join(dataDir, "files"), path.join(dataDir, "tmp")]
        // A storage thread of this test's own, not yet started: the first bodies wait for it to start.
        const thread = yield* Layer.build(StorageThread.layer)
        const scope = yield* Scope.make()
        const store = yield* Effect.orDie(BodyStore.make({ dataDir, owner: "me", leaseMs, threadAboveMicros: 0 })).pipe(
          Effect.provide(thread),
          Scope.extend(scope)
        )
        const bodies = Array.from({ length: 50 }, (_, i) => pattern(5000, i))
        const fibers = yield* Effect.forEach(bodies, (body) => Effect.forkDaemon(store.write(body)))
        // Every write has handed its body over (it waits for the thread, suspended, or is done) before the scope
        // closes.
        yield* Wait.until(
          "every write waiting for the thread",
          Effect.map(
            Effect.forEach(fibers, (fiber) => fiber.status),
            (statuses) => statuses.every((status) => status._tag === "Suspended") ? true : undefined
          )
        )
        yield* Scope.close(scope, Exit.void)
        // Closing waited for them: each is written, whole, and none is left in tmp/.
        const succeeded = (exit: Exit.Exit<unknown, unknown> | null) => exit !== null && Exit.isSuccess(exit)
        assert.deepStrictEqual(fibers.map((fiber) => succeeded(fiber.unsafePoll())), bodies.map(() => true))
        assert.deepStrictEqual(names(files), bodies.map(sha256).sort())
        assert.deepStrictEqual(names(tmp), [])
      }))

    it.scoped(
      "an interrupted write whose answer comes while the interruption is under way ends, its body in place",
      () =>
        Effect.gen(function*() {
          const { files, store } = yield* setupWith(0)
          const thread = yield* bodyWrites("thread")
          // The writing fiber's scheduler: its turns wait in `turns` until the test runs them, and with `yieldOnce`
          // it yields once, at its first operation in an uninterruptible region: in the cleanup of its interruption,
          // before the wait for the thread's answer is set up (the time slice of a busy loop can end there too).
          const turns: Array<Scheduler.Task> = []
          let manual = true
          let yieldOnce = false
          const stepped: Scheduler.Scheduler = {
            shouldYield: (fiber) => {
              const flags = (fiber as unknown as { readonly currentRuntimeFlags: RuntimeFlags.RuntimeFlags })
                .currentRuntimeFlags
              if (!yieldOnce || RuntimeFlags.interruption(flags)) return false
              yieldOnce = false
              return 0
            },
            scheduleTask: (task) => manual ? turns.push(task) : setImmediate(task)
          }
          const body = pattern(3000, 9)
          // One synchronous step, so that no event of the loop (the thread's answer among them) comes in between: the
          // write runs until it waits for the thread; the interruption takes the fiber's resumption, and the fiber
          // stops at its next operation, before it sets up its wait for the thread's answer.
          const fiber = yield* Effect.sync(() => {
            const fiber = Effect.runFork(store.write(body), { scheduler: stepped, immediate: true })
            fiber.unsafeInterruptAsFork(FiberId.none)
            yieldOnce = true
            const interruption = turns.splice(0)
            for (const turn of interruption) turn()
            assert.deepStrictEqual([interruption.length, turns.length, yieldOnce], [1, 1, false])
            return fiber
          })
          // Then the loop runs: the body goes to the thread, which answers while the fiber is stopped.
          yield* Wait.until(
            "the thread's answer",
            Effect.map(bodyWrites("thread"), (n) => n === thread + 1 || undefined)
          )
          manual = false
          for (const turn of turns.splice(0)) turn()
          // The interruption ends: it waits for no answer after the one that came. The body is in place.
          const exit = yield* Fiber.await(fiber).pipe(Effect.timeout("10 seconds"))
          assert.isTrue(Exit.isInterrupted(exit))
          assert.isTrue(fs.readFileSync(path.join(files, sha256(body))).equals(body))
        })
    )

    // Linux only: elsewhere a nice value is the process's, and the thread keeps the loop's priority.
    it.scoped.skipIf(process.platform !== "linux")(
      "the storage thread runs ten nice steps below the loop's thread, which keeps its own (Linux)",
      () =>
        Effect.gen(function*() {
          const before = niceOfThreads()
          const loop = before.get(String(process.pid))!
          const dataDir = yield* Databases.tempDir("harvest-bodies-")
          const scope = yield* Scope.make()
          // A storage thread of this test's own, stopped with its scope.
          const thread = yield* Layer.buildWithScope(StorageThread.layer, scope)
          const store = yield* Effect.orDie(BodyStore.make({ dataDir, owner: "me", leaseMs, threadAboveMicros: 0 }))
            .pipe(
              Effect.provide(thread),
              Scope.extend(scope)
            )
          yield* store.write(pattern(2000, 1))
          const started = Array.from(niceOfThreads()).filter(([tid]) => !before.has(tid))
          // The writer is among the threads its first body started, at its own nice value; the loop's is unchanged.
          assert.isTrue(
            started.some(([, nice]) => nice === Math.min(19, loop + 10)),
            `threads started: ${JSON.stringify(started)}`
          )
          assert.strictEqual(niceOfThreads().get(String(process.pid)), loop)
          yield* Scope.close(scope, Exit.void)
          // Stopped with its layer: none of the threads it started at that value is left.
          const left = niceOfThreads()
          assert.deepStrictEqual(
            started.filter(([tid, nice]) => nice === Math.min(19, loop + 10) && left.has(tid)),
            []
          )
        })
    )

    it.scoped("open: a stored body by its id, None for unknown and malformed ids", () =>
      Effect.gen(function*() {
        const { store } = yield* setup
        const body = pattern(150_000, 3)
        const { fileId } = yield* store.write(body)
        const opened = yield* store.open(fileId)
        assert.isTrue(Option.isSome(opened))
        const file = Option.getOrThrow(opened)
        assert.deepStrictEqual([file.fileId, file.bytes], [fileId, body.length])
        const read = Buffer.concat(Chunk.toReadonlyArray(yield* Stream.runCollect(file.stream)))
        assert.isTrue(read.equals(body))
        for (const id of [hex(1), fileId.toUpperCase(), "../harvest.db", `${fileId}x`, "", "tmp"]) {
          assert.isTrue(Option.isNone(yield* store.open(id)), id)
        }
      }))
  })
})

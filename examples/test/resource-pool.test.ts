import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { fetchUsers, makeDatabase, makePool, query, QueryError, withConnection } from "../src/resource-pool.js"
import type { Database } from "../src/resource-pool.js"

// Connections take 10 ms to open, queries 50 ms.
const database = makeDatabase({ connectLatency: "10 millis", queryLatency: "50 millis" })

// Runs `effect` in a fiber while the test clock moves on by `by`, and returns its exit.
const runFor = <A, E>(effect: Effect.Effect<A, E>, by: Duration.DurationInput = "1 second") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(by)
    return yield* Fiber.await(fiber)
  })

const opensAndCloses = (db: Database) =>
  Effect.map(db.events, (events) => events.map((e) => `${e.event} #${e.connection} @${e.at}`))

describe("resource-pool", () => {
  it.effect("withConnection closes the connection on success, on failure and on interruption", () =>
    Effect.gen(function*() {
      const db = yield* database
      const ok = yield* runFor(withConnection(db, (connection) => connection.query("SELECT 1")))
      assert.deepStrictEqual(ok, Exit.succeed({ connection: 0, sql: "SELECT 1", at: 60 }))

      const failed = yield* runFor(Effect.flip(withConnection(db, (connection) => connection.query("SELEC 1"))))
      assert.deepStrictEqual(failed, Exit.succeed(new QueryError({ connection: 1, sql: "SELEC 1" })))

      const slow = yield* Effect.fork(withConnection(db, (connection) => connection.query("SELECT pg_sleep(60)")))
      yield* TestClock.adjust("30 millis")
      assert.strictEqual(yield* db.open, 1)
      yield* Fiber.interrupt(slow)

      // Each open 10 ms after its use started (at 0, 1 s and 2 s), each close when the use ended: 50 ms later, or
      // at the interruption.
      assert.deepStrictEqual(yield* opensAndCloses(db), [
        "open #0 @10",
        "close #0 @60",
        "open #1 @1010",
        "close #1 @1060",
        "open #2 @2010",
        "close #2 @2030"
      ])
      assert.strictEqual(yield* db.open, 0)
    }))

  it.effect("one pool for 12 concurrent queries: 3 connections opened once and reused, never more open", () =>
    Effect.gen(function*() {
      const db = yield* database
      const exit = yield* runFor(Effect.scoped(Effect.gen(function*() {
        const pool = yield* makePool(db, { max: 3, acquireTimeout: "1 second" })
        const results = yield* fetchUsers(pool, Array.from({ length: 12 }, (_, i) => i))
        return { results, stats: yield* pool.stats, openBeforeClose: yield* db.open }
      })))
      assert.isTrue(Exit.isSuccess(exit))
      if (Exit.isFailure(exit)) return
      const { openBeforeClose, results, stats } = exit.value
      assert.deepStrictEqual(
        results.map((r) => r.sql),
        Array.from({ length: 12 }, (_, i) => `SELECT * FROM users WHERE id = ${i}`)
      )
      // 12 queries of 50 ms, 3 at a time, after 10 ms of connecting: 4 rounds, the last ends at 210 ms.
      assert.deepStrictEqual(results.map((r) => r.at), [60, 60, 60, 110, 110, 110, 160, 160, 160, 210, 210, 210])
      assert.deepStrictEqual(new Set(results.map((r) => r.connection)), new Set([0, 1, 2]))
      assert.deepStrictEqual(stats, { size: 3, inUse: 0, waiting: 0 })
      assert.strictEqual(openBeforeClose, 3, "the pool closed connections it should have kept")
      assert.strictEqual(yield* db.peak, 3)
      // Closing the pool's scope closed all three, once each.
      assert.deepStrictEqual(yield* opensAndCloses(db), [
        "open #0 @10",
        "open #1 @10",
        "open #2 @10",
        "close #0 @210",
        "close #1 @210",
        "close #2 @210"
      ])
      assert.strictEqual(yield* db.open, 0)
    }))

  it.scoped("a borrowed connection goes back however the use ends: failure, interruption, defect", () =>
    Effect.gen(function*() {
      const db = yield* database
      const pool = yield* makePool(db, { max: 1, acquireTimeout: "1 second" })

      const failed = yield* runFor(Effect.flip(query(pool, "DELETE FROM users")))
      assert.deepStrictEqual(failed, Exit.succeed(new QueryError({ connection: 0, sql: "DELETE FROM users" })))

      const slow = yield* Effect.fork(query(pool, "SELECT pg_sleep(60)"))
      yield* TestClock.adjust("20 millis")
      assert.strictEqual((yield* pool.stats).inUse, 1)
      yield* Fiber.interrupt(slow)
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 0, waiting: 0 })

      const died = yield* runFor(pool.use(() => Effect.die("bug in the caller")))
      assert.isTrue(Exit.isFailure(died))

      // With max 1, a connection kept borrowed would make this borrow time out; it gets connection #0 at once.
      const next = yield* runFor(query(pool, "SELECT 1"))
      assert.deepStrictEqual(Exit.map(next, (r) => r.connection), Exit.succeed(0))
      assert.deepStrictEqual(yield* opensAndCloses(db), ["open #0 @10"])
    }))

  it.scoped("validation: a connection the server dropped is closed and replaced, never handed out", () =>
    Effect.gen(function*() {
      const db = yield* database
      const pool = yield* makePool(db, { max: 2, acquireTimeout: "1 second" })
      const before = yield* runFor(fetchUsers(pool, [1, 2]))
      assert.deepStrictEqual(Exit.map(before, (rs) => rs.map((r) => r.connection).sort()), Exit.succeed([0, 1]))

      yield* db.dropConnections
      // Without validation the pool would hand out #0 or #1 and the queries would fail with ConnectionLost.
      const after = yield* runFor(fetchUsers(pool, [3, 4]))
      assert.deepStrictEqual(Exit.map(after, (rs) => rs.map((r) => r.connection).sort()), Exit.succeed([2, 3]))
      const events = yield* opensAndCloses(db)
      // The next borrows (at 1 s) pinged #0 and #1, closed them, and opened two new connections.
      assert.deepStrictEqual(events.slice(0, 2), ["open #0 @10", "open #1 @10"])
      assert.sameMembers(events.slice(2), ["close #0 @1000", "close #1 @1000", "open #2 @1010", "open #3 @1010"])
      assert.strictEqual(yield* db.open, 2)
      assert.deepStrictEqual(yield* pool.stats, { size: 2, inUse: 0, waiting: 0 })
    }))

  it.scoped("a borrow that waits longer than acquireTimeout fails with PoolTimeout; the holder is unaffected", () =>
    Effect.gen(function*() {
      const db = yield* database
      const pool = yield* makePool(db, { max: 1, acquireTimeout: "1 second" })
      const holder = yield* Effect.fork(pool.use((connection) => Effect.as(Effect.sleep("5 seconds"), connection.id)))
      yield* TestClock.adjust("10 millis")

      const waiter = yield* Effect.fork(
        Effect.flip(query(pool, "SELECT now()")).pipe(
          Effect.zip(Clock.currentTimeMillis)
        )
      )
      yield* TestClock.adjust("999 millis")
      assert.isNull(waiter.unsafePoll(), "gave up early")
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* TestClock.adjust("1 millis")
      const [error, at] = yield* Fiber.join(waiter)
      assert.strictEqual(error._tag, "PoolTimeout")
      if (error._tag === "PoolTimeout") {
        assert.strictEqual(error.name, "db")
        assert.strictEqual(Duration.toMillis(error.timeout), 1000)
      }
      assert.strictEqual(at, 1010)
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 1, waiting: 0 })

      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Fiber.join(holder), 0)
      // The connection came back, and the next borrow is served at once.
      const next = yield* runFor(query(pool, "SELECT now()"))
      assert.deepStrictEqual(Exit.map(next, (r) => r.connection), Exit.succeed(0))
      assert.deepStrictEqual(yield* opensAndCloses(db), ["open #0 @10"])
    }))
})

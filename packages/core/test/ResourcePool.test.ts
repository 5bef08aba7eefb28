import { assert, describe, it } from "@effect/vitest"
import type { WaitTimeout } from "@spindle/core"
import { ResourcePool } from "@spindle/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

interface Conn {
  readonly id: number
  broken: boolean
}

// A resource with a visible life: ids are handed out in order, releases are logged.
const makeConnections = Effect.gen(function*() {
  const nextId = yield* Ref.make(0)
  const released = yield* Ref.make<Array<number>>([])
  const acquire = Effect.acquireRelease(
    Ref.getAndUpdate(nextId, (n) => n + 1).pipe(Effect.map((id): Conn => ({ id, broken: false }))),
    (conn) => Ref.update(released, (r) => [...r, conn.id])
  )
  return { acquire, released, created: Ref.get(nextId) }
})

describe("ResourcePool", () => {
  it.scoped("reuses resources and never holds more than max", () =>
    Effect.gen(function*() {
      const { acquire, created } = yield* makeConnections
      const pool = yield* ResourcePool.make({ acquire, max: 2 })
      const peak = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Effect.all(
        Array.from({ length: 6 }, () =>
          pool.use(() =>
            Effect.gen(function*() {
              const { inUse } = yield* pool.stats
              yield* Ref.update(peak, (p) => Math.max(p, inUse))
              yield* Effect.sleep("10 millis")
            })
          )),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.strictEqual(yield* Ref.get(peak), 2)
      assert.strictEqual(yield* created, 2)
      assert.deepStrictEqual(yield* pool.stats, { size: 2, inUse: 0, waiting: 0 })
    }))

  it.scoped("a resource that fails validation is discarded, released and replaced, never handed out", () =>
    Effect.gen(function*() {
      const { acquire, released } = yield* makeConnections
      const pool = yield* ResourcePool.make({
        acquire,
        max: 1,
        validate: (conn) => Effect.succeed(!conn.broken)
      })
      const first = yield* pool.use((conn) => Effect.succeed(conn))
      first.broken = true
      const second = yield* pool.use((conn) => Effect.succeed(conn))
      assert.strictEqual(first.id, 0)
      assert.strictEqual(second.id, 1)
      assert.isFalse(second.broken)
      yield* Effect.yieldNow()
      assert.deepStrictEqual(yield* Ref.get(released), [0])
    }))

  it.scoped("fails with PoolExhausted when no resource validates", () =>
    Effect.gen(function*() {
      const { acquire } = yield* makeConnections
      const pool = yield* ResourcePool.make({ acquire, max: 2, validate: () => Effect.succeed(false) })
      const error = yield* Effect.flip(pool.use(() => Effect.void))
      assert.strictEqual(error._tag, "PoolExhausted")
    }))

  it.scoped("a borrow that waits longer than acquireTimeout fails with PoolTimeout", () =>
    Effect.gen(function*() {
      const { acquire } = yield* makeConnections
      const pool = yield* ResourcePool.make({ acquire, max: 1, acquireTimeout: "100 millis", name: "db" })
      const holder = yield* Effect.fork(pool.use(() => Effect.sleep("1 second")))
      yield* TestClock.adjust("1 millis")
      const waiter = yield* Effect.fork(Effect.flip(pool.use(() => Effect.void)))
      yield* TestClock.adjust("99 millis")
      assert.isNull(waiter.unsafePoll())
      assert.strictEqual((yield* pool.stats).waiting, 1)
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(waiter)
      assert.strictEqual(error._tag, "PoolTimeout")
      if (error._tag === "PoolTimeout") assert.strictEqual(Duration.toMillis(error.timeout), 100)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 0, waiting: 0 })
    }))

  it.effect("releases idle resources after their time to live, and everything when its scope closes", () =>
    Effect.gen(function*() {
      const { acquire, released } = yield* makeConnections
      yield* Effect.scoped(Effect.gen(function*() {
        const pool = yield* ResourcePool.make({ acquire, min: 1, max: 3, idleTimeToLive: "1 second" })
        yield* Effect.all(Array.from({ length: 3 }, () => pool.use(() => Effect.sleep("10 millis"))), {
          concurrency: "unbounded"
        }).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("10 millis")), Effect.flatMap(Fiber.join))
        assert.strictEqual((yield* pool.stats).size, 3)
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual((yield* pool.stats).size, 1, "idle resources above min were released")
        assert.strictEqual((yield* Ref.get(released)).length, 2)
      }))
      assert.strictEqual((yield* Ref.get(released)).length, 3, "closing the scope released the rest")
    }))
})

describe("ResourcePool interruption", () => {
  it.scoped("a borrow interrupted while validating returns the resource: nothing leaks", () =>
    Effect.gen(function*() {
      const { acquire, created } = yield* makeConnections
      const checks = yield* Ref.make(0)
      const pool = yield* ResourcePool.make({
        acquire,
        max: 1,
        acquireTimeout: "50 millis",
        // The first check is slow (longer than the borrow may wait), later ones instant.
        validate: () =>
          Effect.flatMap(Ref.getAndUpdate(checks, (n) => n + 1), (n) =>
            n === 0 ? Effect.as(Effect.sleep("100 millis"), true) : Effect.succeed(true))
      })
      const first = yield* Effect.fork(Effect.flip(pool.use(() =>
        Effect.void
      )))
      yield* TestClock.adjust("50 millis")
      assert.strictEqual((yield* Fiber.join(first))._tag, "PoolTimeout")
      // The only resource went back: the next borrow (with time to validate) gets it.
      assert.strictEqual(yield* pool.use((conn) => Effect.succeed(conn.id)), 0)
      assert.strictEqual(yield* created, 1)
      assert.strictEqual((yield* pool.stats).inUse, 0)
    }))
})

describe("ResourcePool maxWait", () => {
  it.scoped("a borrower that queues fails at exactly maxWait; the next one gets the resource", () =>
    Effect.gen(function*() {
      const { acquire, created } = yield* makeConnections
      const pool = yield* ResourcePool.make({ acquire, max: 1, maxWait: "100 millis", name: "db" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(pool.use(() => Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiter = yield* Effect.fork(pool.use((conn) => Effect.succeed(conn.id)))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.deepStrictEqual([error._tag, (error as WaitTimeout.WaitTimeoutError).module], [
        "WaitTimeoutError",
        "ResourcePool"
      ])
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 1, waiting: 0 })
      const next = yield* Effect.fork(pool.use((conn) => Effect.succeed(conn.id)))
      yield* TestClock.adjust("50 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(next), 0)
      assert.strictEqual(yield* created, 1)
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 0, waiting: 0 })
    }))

  it.scoped("a free resource is borrowed with no timer, and an interrupted borrower leaves no trace", () =>
    Effect.gen(function*() {
      const { acquire } = yield* makeConnections
      const pool = yield* ResourcePool.make({ acquire, max: 1, maxWait: "100 millis" })
      assert.strictEqual(yield* pool.use((conn) => Effect.succeed(conn.id)), 0)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(pool.use(() => Deferred.await(gate)))
      yield* Effect.yieldNow()
      const interrupted = yield* Effect.fork(pool.use((conn) => Effect.succeed(conn.id)))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(interrupted)
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 1, waiting: 0 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* pool.use((conn) => Effect.succeed(conn.id)), 0)
      assert.deepStrictEqual(yield* pool.stats, { size: 1, inUse: 0, waiting: 0 })
    }))
})

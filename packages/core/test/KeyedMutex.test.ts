import { assert, describe, it } from "@effect/vitest"
import { KeyedMutex } from "@spindle/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

describe("KeyedMutex", () => {
  it.effect("serializes effects on one key, in arrival order, and lets other keys run", () =>
    Effect.gen(function*() {
      const mutex = yield* KeyedMutex.make()
      const log = yield* Ref.make<Array<string>>([])
      const step = (key: string, name: string) =>
        mutex.withLock(
          key,
          Effect.gen(function*() {
            yield* Ref.update(log, (l) => [...l, `${name}+`])
            yield* Effect.sleep("10 millis")
            yield* Ref.update(log, (l) => [...l, `${name}-`])
          })
        )
      const fiber = yield* Effect.fork(
        Effect.all([step("a", "a1"), step("a", "a2"), step("b", "b1"), step("a", "a3")], { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("5 millis")
      assert.deepStrictEqual(yield* Ref.get(log), ["a1+", "b1+"])
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)
      const all = yield* Ref.get(log)
      assert.deepStrictEqual(all.filter((e) => e.startsWith("a")), ["a1+", "a1-", "a2+", "a2-", "a3+", "a3-"])
      assert.isBelow(all.indexOf("b1-"), all.indexOf("a2+"), "key b never waited for key a")
      assert.strictEqual(yield* mutex.size, 0, "no lock left behind")
    }))

  it.effect("a read-modify-write race loses updates without the lock and none with it", () =>
    Effect.gen(function*() {
      // A counter kept outside memory (think: a row or a file): read, await something, write back.
      let stored = 0
      const increment = Effect.gen(function*() {
        const read = stored
        yield* Effect.yieldNow()
        stored = read + 1
      })
      yield* Effect.all(Array.from({ length: 50 }, () => increment), { concurrency: "unbounded" })
      assert.isBelow(stored, 50, "the race is real")
      stored = 0
      const mutex = yield* KeyedMutex.make()
      yield* Effect.all(Array.from({ length: 50 }, () => mutex.withLock("counter", increment)), {
        concurrency: "unbounded"
      })
      assert.strictEqual(stored, 50)
    }))

  it.effect("an interrupted waiter leaves; an interrupted holder releases; failures release", () =>
    Effect.gen(function*() {
      const mutex = yield* KeyedMutex.make()
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(mutex.withLock("k", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiter = yield* Effect.fork(mutex.withLock("k", Effect.void))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiter)
      yield* Fiber.interrupt(holder)
      assert.isFalse(yield* mutex.isLocked("k"))
      const failed = yield* Effect.flip(mutex.withLock("k", Effect.fail("boom")))
      assert.strictEqual(failed, "boom")
      assert.strictEqual(yield* mutex.withLock("k", Effect.succeed(1)), 1)
      assert.strictEqual(yield* mutex.size, 0)
    }))
})

describe("KeyedMutex maxWait", () => {
  it.effect("a waiter fails at exactly maxWait naming the key, and the next waiter gets the lock", () =>
    Effect.gen(function*() {
      const mutex = yield* KeyedMutex.make({ maxWait: "100 millis", name: "files" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(mutex.withLock("a.log", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiter = yield* Effect.fork(mutex.withLock("a.log", Effect.succeed("ran")))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      assert.strictEqual(yield* mutex.withLock("b.log", Effect.succeed("b")), "b")
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.deepStrictEqual(
        [error._tag, error.module, error.name, error.key],
        ["WaitTimeoutError", "KeyedMutex", "files", "a.log"]
      )
      const next = yield* Effect.fork(mutex.withLock("a.log", Effect.succeed("next")))
      yield* TestClock.adjust("50 millis")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(next), "next")
      assert.deepStrictEqual([yield* mutex.isLocked("a.log"), yield* mutex.size], [false, 0])
    }))

  it.effect("an interrupted waiter leaves no trace, and a lock granted in time runs to its end", () =>
    Effect.gen(function*() {
      const mutex = yield* KeyedMutex.make<number>({ maxWait: "100 millis" })
      const holder = yield* Effect.fork(mutex.withLock(1, Effect.sleep("60 millis")))
      yield* Effect.yieldNow()
      const interrupted = yield* Effect.fork(mutex.withLock(1, Effect.void))
      const served = yield* Effect.fork(mutex.withLock(1, Effect.as(Effect.sleep("1 second"), "served")))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(interrupted)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(served), "served")
      assert.strictEqual(yield* mutex.size, 0)
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { TaskGroup } from "@spindle/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

describe("TaskGroup", () => {
  it.effect("all: results in input order under a concurrency bound", () =>
    Effect.gen(function*() {
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const fiber = yield* Effect.fork(TaskGroup.all([5, 1, 4, 2, 3], (ms, i) =>
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(running, (n) => n + 1)
          yield* Ref.update(peak, (p) => Math.max(p, now))
          yield* Effect.sleep(ms * 10)
          yield* Ref.update(running, (n) => n - 1)
          return `${i}:${ms}`
        }), { concurrency: 2 }))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(fiber), ["0:5", "1:1", "2:4", "3:2", "4:3"])
      assert.strictEqual(yield* Ref.get(peak), 2)
    }))

  it.effect("all: the first failure interrupts the siblings and their finalizers run before it returns", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make<Array<number>>([])
      const fiber = yield* Effect.fork(
        TaskGroup.all(
          [0, 1, 2, 3],
          (i) =>
            (i === 2 ? Effect.sleep("10 millis").pipe(Effect.zipRight(Effect.fail(`task ${i} failed`))) : Effect.never)
              .pipe(Effect.ensuring(Ref.update(finalized, (f) => [...f, i]))),
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("10 millis")
      const exit = yield* Fiber.await(fiber)
      assert.deepStrictEqual(Exit.isFailure(exit) && Cause.failures(exit.cause).pipe(Array.from), ["task 2 failed"])
      assert.deepStrictEqual([...(yield* Ref.get(finalized))].sort(), [0, 1, 2, 3])
    }))

  it.effect("settle: every outcome kept, typed and in order, defects included", () =>
    Effect.gen(function*() {
      const exits = yield* TaskGroup.settle([1, 2, 3, 4], (n) =>
        n === 2 ? Effect.fail(`bad ${n}`) : n === 4 ? Effect.die("bug") : Effect.succeed(n * 10), { concurrency: 2 })
      assert.deepStrictEqual(exits[0], Exit.succeed(10))
      assert.deepStrictEqual(exits[1], Exit.fail("bad 2"))
      assert.deepStrictEqual(exits[2], Exit.succeed(30))
      assert.isTrue(Exit.isFailure(exits[3]) && Cause.isDie(exits[3].cause))
      const { failures, successes } = TaskGroup.partition(exits)
      assert.deepStrictEqual(successes, [{ index: 0, value: 10 }, { index: 2, value: 30 }])
      assert.deepStrictEqual(
        failures.map((f) =>
          f.index
        ),
        [1, 3]
      )
    }))

  it.effect("settleOrFail: runs everything, then reports every failure with its index", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make(0)
      const error = yield* Effect.flip(TaskGroup.settleOrFail([1, 2, 3, 4, 5], (n) =>
        Ref.update(ran, (r) =>
          r + 1).pipe(Effect.zipRight(n % 2 === 0 ? Effect.fail(`even ${n}`) : Effect.void)), {
        concurrency: 2
      }))
      assert.strictEqual(yield* Ref.get(ran), 5, "no fail fast")
      assert.strictEqual(error._tag, "TaskGroupFailures")
      assert.deepStrictEqual(
        error.failures.map((f) =>
          f.index
        ),
        [1, 3]
      )
      assert.deepStrictEqual(error.errors, ["even 2", "even 4"])
      assert.strictEqual(error.succeeded, 3)
      assert.include(error.message, "2 of 5 tasks failed")
      assert.deepStrictEqual(yield* TaskGroup.settleOrFail([1, 2], (n) => Effect.succeed(n), { concurrency: 1 }), [
        1,
        2
      ])
    }))

  it.effect("scoped: waits for forked members; a failing member interrupts the rest and the body", () =>
    Effect.gen(function*() {
      const done = yield* Ref.make<Array<string>>([])
      const ok = yield* Effect.fork(TaskGroup.scoped((group) =>
        Effect.gen(function*() {
          yield* group.fork(Effect.sleep("20 millis").pipe(Effect.zipRight(Ref.update(done, (d) => [...d, "a"]))))
          yield* group.fork(Effect.sleep("10 millis").pipe(Effect.zipRight(Ref.update(done, (d) => [...d, "b"]))))
          return "body"
        })
      ))
      yield* TestClock.adjust("20 millis")
      assert.strictEqual(yield* Fiber.join(ok), "body")
      assert.deepStrictEqual(yield* Ref.get(done), ["b", "a"], "the group waited for both members")

      const interrupted = yield* Ref.make<Array<string>>([])
      const failing = yield* Effect.fork(TaskGroup.scoped((group) =>
        Effect.gen(function*() {
          yield* group.fork(Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (i) => [...i, "m"]))))
          yield* group.fork(Effect.sleep("5 millis").pipe(Effect.zipRight(Effect.fail("member failed"))))
          return yield* Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (i) => [...i, "body"])))
        })
      ))
      yield* TestClock.adjust("5 millis")
      const error = yield* Effect.flip(Fiber.join(failing))
      assert.strictEqual(error, "member failed")
      assert.deepStrictEqual([...(yield* Ref.get(interrupted))].sort(), ["body", "m"])
    }))
})

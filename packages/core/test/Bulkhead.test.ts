import { assert, describe, it } from "@effect/vitest"
import { Bulkhead, WaitTimeout } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"

describe("Bulkhead", () => {
  it.effect("never runs more than maxConcurrent at once", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3 })
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const task = Effect.gen(function*() {
        const now = yield* Ref.updateAndGet(running, (n) => n + 1)
        yield* Ref.update(peak, (p) => Math.max(p, now))
        yield* Effect.sleep("10 millis")
        yield* Ref.update(running, (n) => n - 1)
      })
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 20 }, () => bulkhead.run(task)), {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("5 millis")
      assert.strictEqual(yield* bulkhead.inFlight, 3)
      assert.strictEqual(yield* bulkhead.queued, 17)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.strictEqual(yield* Ref.get(peak), 3)
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))

  it.effect("hands permits to waiters in arrival order", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const gate = yield* Deferred.make<void>()
      const order = yield* Ref.make<Array<number>>([])
      const holder = yield* Effect.fork(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiters = yield* Effect.forEach([1, 2, 3, 4], (i) =>
        Effect.fork(bulkhead.run(Ref.update(order, (o) => [...o, i]))), { concurrency: 1 })
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(waiters)
      assert.deepStrictEqual(yield* Ref.get(order), [1, 2, 3, 4])
    }))

  it.effect("rejects at once with BulkheadRejected when the queue is full, running nothing", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ name: "shed", maxConcurrent: 2, maxQueued: 1 })
      const gate = yield* Deferred.make<void>()
      const ran = yield* Ref.make(0)
      const task = Effect.zipRight(Ref.update(ran, (n) => n + 1), Deferred.await(gate))
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(bulkhead.run(task)))
      yield* Effect.yieldNow()
      assert.strictEqual(yield* bulkhead.queued, 1)
      const rejected = yield* Effect.flip(bulkhead.run(task))
      assert.strictEqual(rejected._tag, "BulkheadRejected")
      assert.deepStrictEqual(
        { name: rejected.name, maxConcurrent: rejected.maxConcurrent, maxQueued: rejected.maxQueued },
        { name: "shed", maxConcurrent: 2, maxQueued: 1 }
      )
      assert.include(rejected.message, "\"shed\" is full")
      const rejections = yield* Metric.value(
        Metric.taggedWithLabels(Bulkhead.metrics.rejections, [MetricLabel.make("limiter", "shed")])
      )
      assert.strictEqual(rejections.count, 1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(fibers)
      assert.strictEqual(yield* Ref.get(ran), 3)
    }))

  it.effect("maxQueued 0 is pure load shedding", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 0 })
      const holder = yield* Effect.fork(bulkhead.run(Effect.never))
      yield* Effect.yieldNow()
      const exit = yield* Effect.exit(bulkhead.run(Effect.void))
      assert.isTrue(Exit.isFailure(exit))
      yield* Fiber.interrupt(holder)
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(bulkhead.run(Effect.void))))
    }))

  it.effect("an interrupted waiter leaves the queue; an interrupted runner frees its permit", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 5 })
      const runner = yield* Effect.fork(bulkhead.run(Effect.never))
      const waiter = yield* Effect.fork(bulkhead.run(Effect.void))
      yield* Effect.yieldNow()
      assert.strictEqual(yield* bulkhead.queued, 1)
      yield* Fiber.interrupt(waiter)
      assert.strictEqual(yield* bulkhead.queued, 0)
      assert.strictEqual(yield* bulkhead.inFlight, 1)
      yield* Fiber.interrupt(runner)
      assert.strictEqual(yield* bulkhead.inFlight, 0)
      assert.strictEqual(yield* bulkhead.run(Effect.succeed(42)), 42)
    }))

  it.effect("a waiter interrupted just after its permit was handed over passes the permit on", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1 })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.run(Deferred.await(gate)))
      const doomed = yield* Effect.fork(bulkhead.run(Effect.never))
      const next = yield* Effect.fork(bulkhead.run(Effect.succeed("next")))
      yield* Effect.yieldNow()
      // Release and interrupt in the same step: the permit is granted to `doomed`, which is then interrupted.
      yield* Effect.all([Deferred.succeed(gate, undefined), Fiber.interrupt(doomed)], { concurrency: "unbounded" })
      assert.strictEqual(yield* Fiber.join(next), "next")
      yield* Fiber.join(holder)
      assert.strictEqual(yield* bulkhead.inFlight, 0)
      assert.strictEqual(yield* bulkhead.queued, 0)
    }))

  it.effect("forEach keeps order, bounds concurrency with maxConcurrent fibers, and fails fast", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 4 })
      const running = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const results = yield* bulkhead.forEach(Array.from({ length: 50 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(running, (n) => n + 1)
          yield* Ref.update(peak, (p) => Math.max(p, now))
          yield* Effect.yieldNow()
          yield* Ref.update(running, (n) => n - 1)
          return i * 2
        }))
      assert.deepStrictEqual(results, Array.from({ length: 50 }, (_, i) => i * 2))
      assert.strictEqual(yield* Ref.get(peak), 4)

      const finalized = yield* Ref.make(0)
      const pulled = yield* Ref.make(0)
      function* naturals() {
        for (let i = 0;; i++) yield i
      }
      const error = yield* Effect.flip(bulkhead.forEach(naturals(), (i) =>
        Ref.update(pulled, (n) => n + 1).pipe(
          Effect.zipRight(i < 10 ? Effect.void : i === 10 ? Effect.fail("boom" as const) : Effect.never),
          Effect.onInterrupt(() => Ref.update(finalized, (n) => n + 1))
        ), { discard: true }))
      assert.strictEqual(error, "boom")
      // Lazily pulled: an infinite iterable is fine; the running siblings were interrupted and finalized.
      assert.isAtMost(yield* Ref.get(pulled), 14)
      assert.strictEqual(yield* Ref.get(finalized), 3)
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))

  it.effect("forEach shares the bulkhead fairly: an outside caller is not starved until the loop ends", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2 })
      const loop = yield* Effect.fork(
        bulkhead.forEach(Array.from({ length: 100 }, (_, i) => i), () => Effect.sleep("10 millis"), { discard: true })
      )
      yield* TestClock.adjust("15 millis")
      const outside = yield* Effect.fork(bulkhead.run(Clock.currentTimeMillis))
      yield* TestClock.adjust("10 millis")
      // A worker finishing its element at 20 ms sees the waiter and hands over its permit.
      assert.strictEqual(yield* Fiber.join(outside), 20)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(loop)
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))

  it.effect("forEach starts one worker per element, not per permit, for small inputs to large bulkheads", () =>
    Effect.gen(function*() {
      // A worker per permit would mean a million fibers for three elements.
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1_000_000 })
      const supervisor = yield* Supervisor.track
      const live = yield* Ref.make(0)
      const result = yield* bulkhead.forEach([1, 2, 3], (n) =>
        Effect.gen(function*() {
          yield* Effect.yieldNow()
          const fibers = yield* supervisor.value
          yield* Ref.update(live, (m) => Math.max(m, fibers.length))
          return n * 2
        })).pipe(Effect.supervised(supervisor))
      assert.deepStrictEqual(result, [2, 4, 6])
      assert.isAtMost(yield* Ref.get(live), 4, "three workers and at most one fiber joining them")
    }))

  it.effect("rejects invalid options with a message naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Bulkhead.make({ maxConcurrent: 0 }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(exit), "maxConcurrent must be a positive integer")
      const queued = yield* Effect.exit(Bulkhead.make({ maxConcurrent: 1, maxQueued: -1 }))
      assert.include(String(queued), "maxQueued must be a non-negative integer")
    }))
})

describe("Bulkhead maxWait", () => {
  it.effect("a waiter fails at exactly maxWait, holding nothing, and the next waiter is served", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxWait: "100 millis", name: "mw-bulkhead" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiter = yield* Effect.fork(bulkhead.run(Effect.succeed("ran")))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      assert.strictEqual(yield* bulkhead.queued, 1)
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.instanceOf(error, WaitTimeout.WaitTimeoutError)
      assert.deepStrictEqual(
        [error.module, error.name, error.key, Duration.toMillis(error.maxWait)],
        ["Bulkhead", "mw-bulkhead", undefined, 100]
      )
      assert.include(error.message, "Waited 100ms for Bulkhead \"mw-bulkhead\"")
      assert.deepStrictEqual([yield* bulkhead.queued, yield* bulkhead.inFlight], [0, 1])
      const timeouts = yield* Metric.value(
        Metric.taggedWithLabels(Bulkhead.metrics.waitTimeouts, [MetricLabel.make("limiter", "mw-bulkhead")])
      )
      assert.strictEqual(timeouts.count, 1)
      const next = yield* Effect.fork(bulkhead.run(Effect.succeed("next")))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(next), "next")
      assert.deepStrictEqual([yield* bulkhead.queued, yield* bulkhead.inFlight], [0, 0])
    }))

  it.effect("a waiter granted before maxWait runs as long as it needs: only the queueing is bounded", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxWait: "100 millis" })
      const holder = yield* Effect.fork(bulkhead.run(Effect.sleep("60 millis")))
      yield* Effect.yieldNow()
      const waiter = yield* Effect.fork(bulkhead.run(Effect.as(Effect.sleep("500 millis"), "done")))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(waiter), "done")
      assert.deepStrictEqual([yield* bulkhead.queued, yield* bulkhead.inFlight], [0, 0])
    }))

  it.effect("an interrupted waiter leaves no trace: the next one keeps its place and its own deadline", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxWait: "100 millis" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(bulkhead.run(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const first = yield* Effect.fork(bulkhead.run(Effect.succeed(1)))
      yield* TestClock.adjust("50 millis")
      const second = yield* Effect.fork(bulkhead.run(Effect.succeed(2)))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      assert.strictEqual(yield* bulkhead.queued, 1)
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(second)))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(second), 2)
      assert.deepStrictEqual([yield* bulkhead.queued, yield* bulkhead.inFlight], [0, 0])
    }))

  it.effect("maxWait 0 sheds a caller that would queue and runs one that need not", () =>
    Effect.gen(function*() {
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxWait: 0 })
      assert.strictEqual(yield* bulkhead.run(Effect.succeed(1)), 1)
      const holder = yield* Effect.fork(bulkhead.run(Effect.never))
      yield* Effect.yieldNow()
      const error = yield* Effect.flip(bulkhead.run(Effect.succeed(2)))
      assert.strictEqual(error._tag, "WaitTimeoutError")
      assert.strictEqual(yield* bulkhead.queued, 0)
      yield* Fiber.interrupt(holder)
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))
})

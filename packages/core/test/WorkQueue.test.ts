import { assert, describe, it } from "@effect/vitest"
import { WorkQueue } from "@spindle/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

/**
 * The value of one of the work-queue metrics for the queue named `queue` (0 when it has never been updated). There
 * must be one series of it: a queue that updated a second one (another key of the same name) would fail here.
 */
const metric = (name: string, queue: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    const matching = pairs.filter((p) =>
      p.metricKey.name === name && p.metricKey.tags.some((t) => t.key === "queue" && t.value === queue)
    )
    assert.isAtMost(matching.length, 1, `one series of ${name} for ${queue}`)
    const pair = matching[0]
    if (pair === undefined) return 0
    const state = pair.metricState
    return MetricState.isGaugeState(state)
      ? Number(state.value)
      : MetricState.isCounterState(state)
      ? Number(state.count)
      : NaN
  })

const gauges = (queue: string) =>
  Effect.all({
    size: metric("spindle_work_queue_size", queue),
    inFlight: metric("spindle_work_queue_in_flight", queue),
    processed: metric("spindle_work_queue_processed_total", queue),
    failures: metric("spindle_work_queue_failures_total", queue)
  })

describe("WorkQueue", () => {
  it.scoped("several producers and consumers: every item processed once; drain waits for all", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<number>>([])
      const queue = yield* WorkQueue.make({
        capacity: 4,
        workers: 3,
        process: (n: number) => Effect.zipRight(Effect.yieldNow(), Ref.update(seen, (s) => [...s, n]))
      })
      yield* Effect.all([
        queue.offerAll(Array.from({ length: 100 }, (_, i) => i)),
        queue.offerAll(Array.from({ length: 100 }, (_, i) => 100 + i)),
        Effect.forEach(Array.from({ length: 50 }, (_, i) => 200 + i), queue.offer)
      ], { concurrency: "unbounded" })
      yield* queue.drain
      const all = yield* Ref.get(seen)
      assert.strictEqual(all.length, 250)
      assert.deepStrictEqual([...all].sort((a, b) => a - b), Array.from({ length: 250 }, (_, i) => i))
    }))

  it.scoped("offer waits while the queue is full (backpressure); tryOffer refuses", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make({ capacity: 2, workers: 1, process: () => Effect.sleep("1 second") })
      yield* queue.offer(1) // taken by the worker at once
      yield* Effect.yieldNow()
      yield* queue.offer(2)
      yield* queue.offer(3)
      assert.isFalse(yield* queue.tryOffer(4))
      const blocked = yield* Effect.fork(queue.offer(4))
      yield* Effect.yieldNow()
      assert.isNull(blocked.unsafePoll())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(blocked)
      assert.strictEqual(yield* queue.size, 2)
      const drained = yield* Effect.fork(queue.drain)
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(drained)
      assert.strictEqual(yield* queue.size, 0)
    }))

  it.scoped("shutdown(complete) finishes queued work; shutdown(abandon) returns every unprocessed item", () =>
    Effect.gen(function*() {
      const done = yield* Ref.make<Array<number>>([])
      const process = (n: number) => Effect.zipRight(Effect.sleep("10 millis"), Ref.update(done, (d) => [...d, n]))
      const complete = yield* WorkQueue.make({ capacity: 10, workers: 2, process })
      yield* complete.offerAll([1, 2, 3, 4, 5])
      const shutdown = yield* Effect.fork(complete.shutdown("complete"))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(shutdown), { pending: [], interrupted: [] })
      assert.deepStrictEqual([...(yield* Ref.get(done))].sort(), [1, 2, 3, 4, 5])
      assert.strictEqual((yield* Effect.flip(complete.offer(6)))._tag, "WorkQueueClosed")

      // A batch cut short by a shutdown says how much of it was queued.
      const small = yield* WorkQueue.make({ capacity: 2, workers: 1, process: () => Effect.never })
      const batch = yield* Effect.fork(Effect.flip(small.offerAll([1, 2, 3, 4, 5])))
      yield* Effect.yieldNow()
      const cutLeft = yield* small.shutdown("abandon")
      const cut = yield* Fiber.join(batch)
      assert.isAtLeast(cut.accepted ?? 0, 2)
      assert.strictEqual(cut.accepted, cutLeft.pending.length + cutLeft.interrupted.length, "all accepted handed back")

      yield* Ref.set(done, [])
      const abandon = yield* WorkQueue.make({ capacity: 10, workers: 2, process })
      yield* abandon.offerAll([1, 2, 3, 4, 5, 6])
      yield* TestClock.adjust("15 millis") // 1 and 2 done, 3 and 4 in flight
      const left = yield* abandon.shutdown("abandon")
      const processed = yield* Ref.get(done)
      assert.deepStrictEqual([...left.interrupted].sort(), [3, 4])
      assert.deepStrictEqual(left.pending, [5, 6])
      // Nothing lost, nothing twice: processed + interrupted + pending is exactly what was offered.
      assert.deepStrictEqual([...processed, ...left.interrupted, ...left.pending].sort(), [1, 2, 3, 4, 5, 6])
    }))

  it.scoped("continue policy records failures with their items; fail policy closes the queue and fails drain", () =>
    Effect.gen(function*() {
      const tolerant = yield* WorkQueue.make({
        capacity: 10,
        workers: 2,
        process: (n: number) => n % 3 === 0 ? Effect.fail(`bad ${n}`) : Effect.void
      })
      yield* tolerant.offerAll([1, 2, 3, 4, 5, 6])
      yield* tolerant.drain
      const failures = yield* tolerant.failures
      assert.deepStrictEqual(failures.map((f) => f.item).sort(), [3, 6])
      assert.deepStrictEqual(Array.from(Cause.failures(failures[0].cause)), [`bad ${failures[0].item}`])

      const strict = yield* WorkQueue.make({
        capacity: 10,
        workers: 1,
        onError: "fail",
        process: (n: number) => n === 2 ? Effect.fail("stop") : Effect.void
      })
      yield* strict.offerAll([1, 2, 3, 4])
      assert.strictEqual(yield* Effect.flip(strict.drain), "stop")
      assert.strictEqual((yield* Effect.flip(strict.offer(5)))._tag, "WorkQueueClosed")
      const left = yield* strict.shutdown("abandon")
      assert.deepStrictEqual(left.pending, [3, 4], "items after the failure are handed back, not lost")
    }))

  it.scoped("retries an item with a RetryPolicy before the error policy sees it", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const queue = yield* WorkQueue.make({
        capacity: 1,
        workers: 1,
        retry: { jitter: "none", base: "100 millis", maxAttempts: 3 },
        process: () =>
          Ref.updateAndGet(attempts, (n) => n + 1).pipe(
            Effect.flatMap((n) => n < 3 ? Effect.fail("flaky") : Effect.void)
          )
      })
      yield* queue.offer("job")
      const drained = yield* Effect.fork(queue.drain)
      yield* TestClock.adjust("300 millis")
      yield* Fiber.join(drained)
      assert.strictEqual(yield* Ref.get(attempts), 3)
      assert.deepStrictEqual(yield* queue.failures, [])
    }))
})

describe("WorkQueue workers", () => {
  it.scoped("one worker takes items in the order they were offered, across backpressure waits", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const queue = yield* WorkQueue.make({
        capacity: 3,
        workers: 1,
        process: (n: number) =>
          n % 4 === 0 ?
            Effect.zipRight(Effect.yieldNow(), Effect.sync(() => seen.push(n))) :
            Effect.sync(() => seen.push(n))
      })
      yield* Effect.all([
        queue.offerAll(Array.from({ length: 20 }, (_, i) => i)),
        Effect.forEach(Array.from({ length: 10 }, (_, i) => 20 + i), queue.offer)
      ])
      yield* queue.drain
      assert.deepStrictEqual(seen, Array.from({ length: 30 }, (_, i) => i))
    }))

  it.scoped("every worker takes part when processing suspends: 8 one-second items on 4 workers take 2 seconds", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 4,
        process: () => Effect.sleep("1 second"),
        name: "wq-parallel"
      })
      yield* queue.offerAll([1, 2, 3, 4, 5, 6, 7, 8])
      const drained = yield* Effect.fork(queue.drain)
      yield* TestClock.adjust("0 millis")
      assert.strictEqual(yield* queue.inFlight, 4)
      assert.deepStrictEqual(yield* gauges("wq-parallel"), { size: 4, inFlight: 4, processed: 0, failures: 0 })
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* gauges("wq-parallel"), { size: 0, inFlight: 4, processed: 4, failures: 0 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(drained)
      assert.deepStrictEqual(yield* gauges("wq-parallel"), { size: 0, inFlight: 0, processed: 8, failures: 0 })
    }))

  it.scoped("an item offered to a busy queue wakes an idle worker, not only the busy ones", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 2,
        process: (s: string) => Effect.zipRight(Effect.sync(() => started.push(s)), Effect.sleep("1 second"))
      })
      yield* queue.offer("a")
      yield* TestClock.adjust("100 millis")
      yield* queue.offer("b")
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(started, ["a", "b"], "b did not wait for a")
      assert.strictEqual(yield* queue.inFlight, 2)
    }))

  it.scoped("shutdown(abandon) in the middle of synchronous work hands back exactly what was not processed", () =>
    Effect.gen(function*() {
      const done: Array<number> = []
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 1,
        process: (n: number) => n === 4 ? Effect.never : Effect.sync(() => done.push(n)),
        name: "wq-abandon"
      })
      yield* queue.offerAll([1, 2, 3, 4, 5, 6, 7])
      yield* Effect.yieldNow()
      assert.deepStrictEqual(yield* gauges("wq-abandon"), { size: 3, inFlight: 1, processed: 3, failures: 0 })
      const left = yield* queue.shutdown("abandon")
      assert.deepStrictEqual(done, [1, 2, 3])
      assert.deepStrictEqual(left, { pending: [5, 6, 7], interrupted: [4] })
      assert.deepStrictEqual(yield* gauges("wq-abandon"), { size: 0, inFlight: 0, processed: 3, failures: 0 })
      assert.strictEqual(yield* queue.inFlight, 0)
      // A second shutdown hands back the same, it does not invent or lose items.
      assert.deepStrictEqual(yield* queue.shutdown("abandon"), left)

      // Several workers: what was processed, interrupted and left pending is exactly what was offered.
      const processed: Array<number> = []
      const many = yield* WorkQueue.make({
        capacity: 20,
        workers: 3,
        process: (n: number) => n % 5 === 0 ? Effect.never : Effect.sync(() => processed.push(n))
      })
      yield* many.offerAll(Array.from({ length: 20 }, (_, i) => i + 1))
      yield* Effect.yieldNow()
      const rest = yield* many.shutdown("abandon")
      assert.strictEqual(rest.interrupted.length, 3, "each worker stopped on an item that never ends")
      assert.deepStrictEqual(
        [...processed, ...rest.interrupted, ...rest.pending].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 1)
      )
    }))

  it.scoped("a failing item in a run of synchronous ones is recorded and the worker goes on with the next", () =>
    Effect.gen(function*() {
      const done: Array<number> = []
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 1,
        process: (n: number) => n % 3 === 0 ? Effect.fail(`bad ${n}`) : Effect.sync(() => done.push(n)),
        name: "wq-continue"
      })
      yield* queue.offerAll([1, 2, 3, 4, 5, 6, 7])
      yield* queue.drain
      assert.deepStrictEqual(done, [1, 2, 4, 5, 7])
      assert.deepStrictEqual((yield* queue.failures).map((f) => f.item), [3, 6])
      assert.deepStrictEqual(yield* gauges("wq-continue"), { size: 0, inFlight: 0, processed: 7, failures: 2 })

      // Under `fail`, nothing after the failing item is processed: it is all handed back.
      const strictDone: Array<number> = []
      const strict = yield* WorkQueue.make({
        capacity: 10,
        workers: 1,
        onError: "fail",
        process: (n: number) => n === 3 ? Effect.fail("stop") : Effect.sync(() => strictDone.push(n))
      })
      yield* strict.offerAll([1, 2, 3, 4, 5])
      assert.strictEqual(yield* Effect.flip(strict.drain), "stop")
      assert.deepStrictEqual(strictDone, [1, 2])
      assert.deepStrictEqual(yield* strict.shutdown("abandon"), { pending: [4, 5], interrupted: [] })
    }))

  it.scoped("a process that throws instead of returning an effect fails its item, not the worker", () =>
    Effect.gen(function*() {
      const done: Array<number> = []
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 1,
        process: (n: number) => {
          if (n === 2) throw new Error("boom")
          return Effect.sync(() => done.push(n))
        }
      })
      yield* queue.offerAll([1, 2, 3])
      yield* queue.drain
      assert.deepStrictEqual(done, [1, 3])
      const failures = yield* queue.failures
      assert.deepStrictEqual(failures.map((f) => f.item), [2])
      assert.isTrue(Cause.isDie(failures[0].cause))
    }))

  it.scoped("a retried item waits on its own worker while the others go on", () =>
    Effect.gen(function*() {
      const done: Array<number> = []
      let attempts = 0
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 2,
        retry: { jitter: "none", base: "1 second", maxAttempts: 2 },
        process: (n: number) =>
          Effect.suspend(() => {
            if (n === 1 && attempts++ === 0) return Effect.fail("flaky")
            done.push(n)
            return Effect.void
          })
      })
      yield* queue.offerAll([1, 2, 3, 4])
      yield* Effect.yieldNow()
      assert.deepStrictEqual(done, [2, 3, 4])
      const drained = yield* Effect.fork(queue.drain)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(drained)
      assert.deepStrictEqual(done, [2, 3, 4, 1])
      assert.deepStrictEqual(yield* queue.failures, [])
    }))
})

describe("WorkQueue scope", () => {
  it.effect("closing the scope abandons what is left with a warning, but not after an explicit shutdown", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const withQueue = (explicit: boolean) =>
        Effect.scoped(Effect.gen(function*() {
          const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: () => Effect.never })
          yield* queue.offerAll([1, 2, 3])
          yield* Effect.yieldNow()
          if (explicit) {
            const left = yield* queue.shutdown("abandon")
            assert.deepStrictEqual({ pending: left.pending, interrupted: left.interrupted }, {
              pending: [2, 3],
              interrupted: [1]
            })
          }
        })).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* withQueue(true)
      assert.deepStrictEqual(warnings, [])
      yield* withQueue(false)
      assert.deepStrictEqual(warnings, ["work queue closed with unprocessed items"])
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { WorkQueue } from "@spindle/core"
import * as Wait from "@spindle/testkit/Wait"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Ref from "effect/Ref"
import * as Supervisor from "effect/Supervisor"
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

/** Yields until `check` holds (the clock does not move meanwhile); dies naming `what` if it never does. */
const until = <E, R>(what: string, check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      if (yield* check) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })

/**
 * What happened to every item, with the test clock's time: when each started and finished. Its `process` takes
 * `duration` per item.
 */
const ledger = <A>(duration: Duration.DurationInput) => {
  const started: Array<readonly [A, number]> = []
  const finished: Array<readonly [A, number]> = []
  const running = { now: 0, peak: 0 }
  const process = (item: A) =>
    Effect.gen(function*() {
      started.push([item, yield* Clock.currentTimeMillis])
      running.now++
      running.peak = Math.max(running.peak, running.now)
      yield* Effect.sleep(duration).pipe(Effect.ensuring(Effect.sync(() => running.now--)))
      finished.push([item, yield* Clock.currentTimeMillis])
    })
  const items = (list: ReadonlyArray<readonly [A, number]>) => list.map(([item]) => item)
  return { started, finished, running, process, items }
}

/** Every item in exactly one place: processed, interrupted or pending, none twice. */
const assertAccounted = <A>(
  offered: ReadonlyArray<A>,
  processed: ReadonlyArray<A>,
  left: WorkQueue.Unprocessed<A>
) => {
  const all = [...processed, ...left.interrupted, ...left.pending]
  assert.strictEqual(new Set(all).size, all.length, "an item was processed or handed back twice")
  assert.deepStrictEqual([...all].sort(), [...offered].sort(), "an item was lost")
}

const isDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) => Effect.sync(() => fiber.unsafePoll() !== null)

describe("WorkQueue priority", () => {
  it.scoped("items start highest priority first, FIFO within a priority; the default 0 between + and -", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      const queue = yield* WorkQueue.make({
        capacity: 20,
        workers: 1,
        process: (s: string) => Effect.sync(() => started.push(s)),
        name: "wq-priority"
      })
      yield* queue.pause
      yield* queue.offer("a0")
      yield* queue.offer("b5", { priority: 5 })
      yield* queue.offerAll(["c-1", "d-1"], { priority: -1 })
      yield* queue.offer("e5", { priority: 5 })
      assert.isTrue(yield* queue.tryOffer("f9", { priority: 9 }))
      yield* queue.offer("g0", { priority: 0 })
      yield* queue.offer("h0", {})
      yield* queue.offer("i2.5", { priority: 2.5 })
      yield* queue.offer("j-1", { priority: -1 })
      // Point-free, `Effect.forEach` passes each index as a second argument: it is not taken for a priority.
      yield* Effect.forEach(["k0", "l0"], queue.offer, { discard: true })
      assert.strictEqual(yield* queue.size, 12)
      assert.deepStrictEqual((yield* gauges("wq-priority")).size, 12)
      assert.deepStrictEqual(started, [])
      yield* queue.resume
      yield* queue.onIdle
      assert.deepStrictEqual(started, ["f9", "b5", "e5", "i2.5", "a0", "g0", "h0", "k0", "l0", "c-1", "d-1", "j-1"])
      assert.deepStrictEqual(yield* gauges("wq-priority"), { size: 0, inFlight: 0, processed: 12, failures: 0 })
    }))

  it.scoped("each take picks the highest priority waiting then: a later urgent item overtakes queued ones", () =>
    Effect.gen(function*() {
      const work = ledger<string>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: work.process })
      yield* queue.offerAll(["a", "b", "c"])
      yield* until("a started", Effect.sync(() => work.started.length === 1))
      yield* queue.offer("low", { priority: -3 })
      yield* TestClock.adjust("500 millis")
      yield* queue.offer("urgent", { priority: 1 })
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(work.items(work.started), ["a", "urgent", "b", "c", "low"])
      assert.deepStrictEqual(work.started.map(([, at]) => at), [0, 1000, 2000, 3000, 4000])
      // A long run of one priority reuses its level; many distinct priorities over time leave nothing behind.
      const order: Array<number> = []
      const many = yield* WorkQueue.make({
        capacity: 100,
        workers: 1,
        process: (n: number) => Effect.sync(() => order.push(n))
      })
      yield* many.pause
      for (let n = 1; n <= 50; n++) yield* many.offer(n, { priority: n % 7 === 0 ? 0 : -n })
      yield* many.resume
      yield* many.onIdle
      const expected = Array.from({ length: 50 }, (_, i) => i + 1)
      assert.deepStrictEqual(order, [...expected.filter((n) => n % 7 === 0), ...expected.filter((n) => n % 7 !== 0)])
    }))

  it.scoped("priorities share the capacity: a full queue refuses or holds an urgent offer like any other", () =>
    Effect.gen(function*() {
      const work = ledger<string>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 3, workers: 1, process: work.process })
      yield* queue.pause
      yield* queue.offer("a", { priority: 1 })
      yield* queue.offer("b", { priority: -1 })
      yield* queue.offer("c")
      assert.isFalse(yield* queue.tryOffer("d", { priority: 100 }))
      const blocked = yield* Effect.fork(queue.offer("e", { priority: 100 }))
      yield* Effect.yieldNow()
      assert.isNull(blocked.unsafePoll())
      assert.strictEqual(yield* queue.size, 3)
      yield* queue.resume
      yield* TestClock.adjust("1 second")
      // The worker started a, then c at 1 s, which brought the buffer down to half its capacity and let the
      // producer in: e went before b.
      yield* Fiber.join(blocked)
      yield* TestClock.adjust("3 seconds")
      yield* queue.onIdle
      assert.deepStrictEqual(work.started, [["a", 0], ["c", 1000], ["e", 2000], ["b", 3000]])
    }))

  it.scoped("shutdown hands back the pending items in the order they would have started", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: (_: string) => Effect.never })
      yield* queue.offer("first")
      yield* until("first started", Effect.map(queue.inFlight, (n) => n === 1))
      yield* queue.offer("x0")
      yield* queue.offer("y-2", { priority: -2 })
      yield* queue.offer("z7", { priority: 7 })
      yield* queue.offer("w0")
      assert.deepStrictEqual(yield* queue.shutdown("abandon"), {
        pending: ["z7", "x0", "w0", "y-2"],
        interrupted: ["first"]
      })
    }))

  it.scoped("a priority that is not a finite number is a defect naming it, and queues nothing", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: (_: number) => Effect.void })
      yield* queue.pause
      for (
        const attempt of [
          queue.offer(1, { priority: Number.NaN }),
          queue.offerAll([1, 2], { priority: Number.POSITIVE_INFINITY }),
          queue.tryOffer(1, { priority: "high" as unknown as number })
        ]
      ) {
        const exit = yield* Effect.exit(attempt)
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        assert.include(String(exit), "priority must be a finite number")
      }
      assert.strictEqual(yield* queue.size, 0)
    }))
})

describe("WorkQueue pause and resume", () => {
  it.scoped("paused: items in flight finish, none starts, offers queue up to capacity; resume restarts them", () =>
    Effect.gen(function*() {
      const work = ledger<number>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 4, workers: 2, process: work.process, name: "wq-paused" })
      yield* queue.offerAll([1, 2, 3])
      yield* TestClock.adjust("500 millis")
      yield* queue.pause
      assert.isTrue(yield* queue.isPaused)
      yield* TestClock.adjust("500 millis")
      assert.deepStrictEqual(work.items(work.finished).sort(), [1, 2])
      assert.deepStrictEqual(work.items(work.started), [1, 2], "3 did not start")
      yield* queue.offerAll([4, 5, 6])
      assert.isFalse(yield* queue.tryOffer(7))
      const blocked = yield* Effect.fork(queue.offer(7))
      const drained = yield* Effect.fork(queue.drain)
      const idle = yield* Effect.fork(queue.onIdle)
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(work.items(work.started), [1, 2])
      assert.deepStrictEqual(yield* gauges("wq-paused"), { size: 4, inFlight: 0, processed: 2, failures: 0 })
      assert.isNull(blocked.unsafePoll())
      assert.isNull(drained.unsafePoll())
      assert.isNull(idle.unsafePoll())

      const resumedAt = 3_601_000
      yield* queue.resume
      assert.isFalse(yield* queue.isPaused)
      yield* until("two started", Effect.map(queue.inFlight, (n) => n === 2))
      yield* Fiber.join(blocked) // the buffer went down to half its capacity: 7 is in
      yield* TestClock.adjust("2 seconds")
      assert.isNull(idle.unsafePoll(), "7 is still running")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(drained)
      yield* Fiber.join(idle)
      assert.deepStrictEqual(work.started, [
        [1, 0],
        [2, 0],
        [3, resumedAt],
        [4, resumedAt],
        [5, resumedAt + 1000],
        [6, resumedAt + 1000],
        [7, resumedAt + 2000]
      ])
      assert.deepStrictEqual(yield* gauges("wq-paused"), { size: 0, inFlight: 0, processed: 7, failures: 0 })
    }))

  it.scoped("resume wakes one worker per queued item; pausing twice or resuming a running queue does nothing", () =>
    Effect.gen(function*() {
      const work = ledger<number>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 4, process: work.process })
      yield* queue.pause // before the workers have even run
      yield* queue.pause
      yield* queue.offerAll([1, 2])
      yield* Effect.yieldNow()
      assert.strictEqual(yield* queue.inFlight, 0)
      yield* queue.resume
      yield* queue.resume
      yield* until("1 and 2 started", Effect.map(queue.inFlight, (n) => n === 2))
      // The two other workers are idle, not stuck: new items start at once.
      yield* queue.offerAll([3, 4])
      yield* until("3 and 4 started", Effect.map(queue.inFlight, (n) => n === 4))
      yield* TestClock.adjust("1 second")
      yield* queue.onIdle
      assert.deepStrictEqual(work.started.map(([, at]) => at), [0, 0, 0, 0])
    }))

  it.scoped("a paused synchronous run stops between two items", () =>
    Effect.gen(function*() {
      const done: Array<number> = []
      const queue: WorkQueue.WorkQueue<number, never> = yield* WorkQueue.make({
        capacity: 10,
        workers: 1,
        process: (n: number) =>
          Effect.suspend(() => {
            done.push(n)
            return n === 3 ? queue.pause : Effect.void
          })
      })
      yield* queue.offerAll([1, 2, 3, 4, 5])
      yield* until("3 processed", Effect.sync(() => done.length === 3))
      yield* Effect.yieldNow()
      assert.deepStrictEqual(done, [1, 2, 3])
      assert.strictEqual(yield* queue.size, 2)
      yield* queue.resume
      yield* queue.drain
      assert.deepStrictEqual(done, [1, 2, 3, 4, 5])
    }))

  it.scoped("shutdown(complete) while paused: the items in flight finish, the queued ones come back as pending", () =>
    Effect.gen(function*() {
      const work = ledger<string>("1 second")
      const supervisor = yield* Supervisor.track
      const queue = yield* WorkQueue.make({ capacity: 3, workers: 2, process: work.process }).pipe(
        Effect.supervised(supervisor)
      )
      yield* queue.offerAll(["a", "b"])
      yield* until("a and b started", Effect.map(queue.inFlight, (n) => n === 2))
      yield* queue.pause
      yield* queue.offerAll(["c", "d"])
      yield* queue.offer("e", { priority: 1 })
      const refused = yield* Effect.fork(Effect.flip(queue.offer("f")))
      const drained = yield* Effect.fork(queue.drain)
      const idle = yield* Effect.fork(queue.onIdle)
      const shutdown = yield* Effect.fork(queue.shutdown("complete"))
      yield* until("the producer refused", isDone(refused))
      assert.strictEqual((yield* Fiber.join(refused))._tag, "WorkQueueClosed")
      assert.isNull(shutdown.unsafePoll(), "a and b are still running")
      yield* TestClock.adjust("1 second")
      const left = yield* Fiber.join(shutdown)
      assert.deepStrictEqual(left, { pending: ["e", "c", "d"], interrupted: [] })
      assert.deepStrictEqual(work.items(work.finished).sort(), ["a", "b"])
      assertAccounted(["a", "b", "c", "d", "e"], work.items(work.finished), left)
      yield* Fiber.join(drained)
      yield* Fiber.join(idle)
      assert.deepStrictEqual(yield* supervisor.value, [], "every worker stopped")
      assert.strictEqual((yield* Effect.flip(queue.offer("g")))._tag, "WorkQueueClosed")
    }))

  it.scoped("shutdown(abandon) while paused interrupts the items in flight and releases every waiter", () =>
    Effect.gen(function*() {
      const work = ledger<number>("1 second")
      const supervisor = yield* Supervisor.track
      const queue = yield* WorkQueue.make({ capacity: 2, workers: 2, process: work.process }).pipe(
        Effect.supervised(supervisor)
      )
      yield* queue.offerAll([1, 2])
      yield* until("1 and 2 started", Effect.map(queue.inFlight, (n) => n === 2))
      yield* queue.pause
      yield* queue.offerAll([3, 4])
      const blocked = yield* Effect.fork(Effect.flip(queue.offerAll([5, 6])))
      const drained = yield* Effect.fork(queue.drain)
      const idle = yield* Effect.fork(queue.onIdle)
      yield* Effect.yieldNow()
      const left = yield* queue.shutdown("abandon")
      assert.deepStrictEqual(left, { pending: [3, 4], interrupted: [1, 2] })
      assert.strictEqual((yield* Fiber.join(blocked)).accepted, 0)
      yield* Fiber.join(drained)
      yield* Fiber.join(idle)
      assert.deepStrictEqual(yield* supervisor.value, [])
      assert.deepStrictEqual(work.finished, [])
      assert.strictEqual(yield* queue.inFlight, 0)
    }))

  it.scoped("an interrupted producer, drain or onIdle on a paused queue leaves the others and the items alone", () =>
    Effect.gen(function*() {
      const done: Array<number> = []
      const queue = yield* WorkQueue.make({
        capacity: 2,
        workers: 1,
        process: (n: number) => Effect.sync(() => done.push(n))
      })
      yield* queue.pause
      yield* queue.offerAll([1, 2])
      const gaveUp = yield* Effect.fork(queue.offer(3))
      const waits = yield* Effect.fork(queue.offer(4))
      const drainGaveUp = yield* Effect.fork(queue.drain)
      const idleGaveUp = yield* Effect.fork(queue.onIdle)
      const idle = yield* Effect.fork(queue.onIdle)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(gaveUp)
      yield* Fiber.interrupt(drainGaveUp)
      yield* Fiber.interrupt(idleGaveUp)
      assert.strictEqual(yield* queue.size, 2)
      yield* queue.resume
      yield* Fiber.join(waits)
      yield* Fiber.join(idle)
      assert.deepStrictEqual(done, [1, 2, 4], "3 was never queued, 4 was, once")
    }))

  it.effect("closing the scope of a paused queue abandons its items with a warning and stops its workers", () =>
    Effect.gen(function*() {
      const warnings: Array<unknown> = []
      const logger = Logger.make(({ annotations, logLevel }) => {
        if (logLevel._tag === "Warning") warnings.push(Object.fromEntries(HashMap.toEntries(annotations)))
      })
      const supervisor = yield* Supervisor.track
      yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* WorkQueue.make({ capacity: 10, workers: 3, process: () => Effect.never, name: "wq-p" })
        yield* queue.offer(1)
        yield* until("1 started", Effect.map(queue.inFlight, (n) => n === 1))
        yield* queue.pause
        yield* queue.offerAll([2, 3])
      })).pipe(Effect.supervised(supervisor), Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      assert.deepStrictEqual(warnings, [{ queue: "wq-p", pending: 2, interrupted: 1 }])
      assert.deepStrictEqual(yield* supervisor.value, [])
    }))
})

describe("WorkQueue onIdle", () => {
  it.scoped("completes at once on an idle queue, else when nothing is queued or running, offers meanwhile included", () =>
    Effect.gen(function*() {
      const work = ledger<number>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 2, process: work.process })
      yield* queue.onIdle
      yield* queue.offerAll([1, 2, 3])
      const idle = yield* Effect.fork(queue.onIdle)
      yield* TestClock.adjust("1500 millis")
      yield* queue.offer(4) // 3 started at 1 s; 4 starts now on the idle worker
      yield* TestClock.adjust("500 millis")
      assert.isNull(idle.unsafePoll(), "3 finished at 2 s but 4 is running")
      yield* TestClock.adjust("499 millis")
      assert.isNull(idle.unsafePoll())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(idle)
      assert.strictEqual(yield* Clock.currentTimeMillis, 2500)
      assert.deepStrictEqual(work.items(work.finished).sort(), [1, 2, 3, 4])
    }))

  it.scoped("unlike drain it never fails: after a failure under `fail` it waits until shutdown hands back the rest", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make({
        capacity: 10,
        workers: 2,
        onError: "fail",
        process: (n: number) =>
          n === 1 ? Effect.zipRight(Effect.sleep("1 second"), Effect.fail("boom")) : Effect.sleep("3 seconds")
      })
      yield* queue.offerAll([1, 2, 3, 4])
      const drained = yield* Effect.fork(Effect.flip(queue.drain))
      const idle = yield* Effect.fork(queue.onIdle)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(drained), "boom")
      assert.isNull(idle.unsafePoll(), "2 is running, 3 and 4 are queued")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* queue.inFlight, 0)
      assert.strictEqual(yield* queue.size, 2)
      assert.isNull(idle.unsafePoll(), "3 and 4 will never start, but they are still queued")
      assert.deepStrictEqual(yield* queue.shutdown("abandon"), { pending: [3, 4], interrupted: [] })
      yield* Fiber.join(idle)

      // Under `continue`, failures do not concern either.
      const tolerant = yield* WorkQueue.make({ capacity: 10, workers: 1, process: (n: number) => Effect.fail(n) })
      yield* tolerant.offerAll([1, 2])
      yield* tolerant.onIdle
      yield* tolerant.drain
      assert.strictEqual((yield* tolerant.failures).length, 2)
    }))
})

describe("WorkQueue resize", () => {
  it.scoped("growing starts the new workers at once on what is queued", () =>
    Effect.gen(function*() {
      const work = ledger<number>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: work.process, name: "wq-grow" })
      yield* queue.offerAll([1, 2, 3, 4, 5, 6])
      yield* until("1 started", Effect.map(queue.inFlight, (n) => n === 1))
      yield* queue.resize(3)
      assert.strictEqual(yield* queue.workers, 3)
      yield* until("3 in flight", Effect.map(queue.inFlight, (n) => n === 3))
      assert.deepStrictEqual(yield* gauges("wq-grow"), { size: 3, inFlight: 3, processed: 0, failures: 0 })
      yield* TestClock.adjust("2 seconds")
      yield* queue.onIdle
      assert.deepStrictEqual(work.started, [[1, 0], [2, 0], [3, 0], [4, 1000], [5, 1000], [6, 1000]])
      assert.strictEqual(work.running.peak, 3)
    }))

  it.scoped("shrinking lets the extra workers finish their item and stop; nothing is lost or run twice", () =>
    Effect.gen(function*() {
      const work = ledger<number>("1 second")
      const supervisor = yield* Supervisor.track
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 4, process: work.process, name: "wq-shrink" })
        .pipe(Effect.supervised(supervisor))
      yield* queue.offerAll([1, 2, 3, 4, 5, 6, 7, 8])
      yield* TestClock.adjust("500 millis")
      yield* queue.resize(1)
      assert.strictEqual(yield* queue.workers, 1)
      assert.strictEqual(yield* queue.inFlight, 4, "the items in flight go on")
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* queue.inFlight, 1)
      yield* until("three workers stopped", Effect.map(supervisor.value, (fibers) => fibers.length === 1))
      assert.deepStrictEqual(yield* gauges("wq-shrink"), { size: 3, inFlight: 1, processed: 4, failures: 0 })
      yield* TestClock.adjust("4 seconds")
      yield* queue.onIdle
      assert.deepStrictEqual(work.started.map(([, at]) => at), [0, 0, 0, 0, 1000, 2000, 3000, 4000])
      assert.deepStrictEqual(work.items(work.finished).sort(), [1, 2, 3, 4, 5, 6, 7, 8])
    }))

  it.scoped("idle workers beyond a shrink stop at once, and a grow afterwards starts new ones", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const work = ledger<number>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 4, process: work.process }).pipe(
        Effect.supervised(supervisor)
      )
      yield* until("4 workers", Effect.map(supervisor.value, (fibers) => fibers.length === 4))
      yield* queue.pause // paused workers are idle too
      yield* queue.resize(2)
      yield* until("2 workers", Effect.map(supervisor.value, (fibers) => fibers.length === 2))
      yield* queue.resize(5)
      yield* until("5 workers", Effect.map(supervisor.value, (fibers) => fibers.length === 5))
      yield* queue.offerAll([1, 2, 3, 4, 5, 6])
      yield* Effect.yieldNow()
      assert.strictEqual(yield* queue.inFlight, 0, "the new workers are paused too")
      yield* queue.resume
      yield* until("5 in flight", Effect.map(queue.inFlight, (n) => n === 5))
      yield* TestClock.adjust("2 seconds")
      yield* queue.onIdle
      assert.deepStrictEqual(work.started.map(([, at]) => at), [0, 0, 0, 0, 0, 1000])
    }))

  it.scoped("growing again before the retiring workers finish keeps one worker per slot", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const work = ledger<number>("1 second")
      const queue = yield* WorkQueue.make({ capacity: 20, workers: 3, process: work.process }).pipe(
        Effect.supervised(supervisor)
      )
      yield* queue.offerAll(Array.from({ length: 9 }, (_, i) => i + 1))
      yield* TestClock.adjust("500 millis")
      yield* queue.resize(1)
      yield* queue.resize(2)
      yield* queue.resize(3)
      assert.strictEqual((yield* supervisor.value).length, 3)
      yield* TestClock.adjust("3 seconds")
      yield* queue.onIdle
      assert.strictEqual(work.running.peak, 3)
      assert.deepStrictEqual(work.started.map(([, at]) => at), [0, 0, 0, 1000, 1000, 1000, 2000, 2000, 2000])
      assert.strictEqual((yield* supervisor.value).length, 3)
    }))

  it.scoped("resize takes a positive integer, and does nothing once shutdown has begun", () =>
    Effect.gen(function*() {
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 2, process: (_: number) => Effect.void })
      for (const n of [0, -1, 1.5, Number.NaN]) {
        const exit = yield* Effect.exit(queue.resize(n))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        assert.include(String(exit), "workers must be a positive integer")
      }
      assert.strictEqual(yield* queue.workers, 2)
      yield* queue.shutdown("complete")
      yield* queue.resize(5)
      assert.strictEqual(yield* queue.workers, 2)
    }))

  it.scoped("shutdown while shrinking: abandon interrupts the retiring workers' items, complete lets them finish", () =>
    Effect.gen(function*() {
      const abandonWork = ledger<number>("1 second")
      const supervisor = yield* Supervisor.track
      const abandon = yield* WorkQueue.make({ capacity: 10, workers: 3, process: abandonWork.process }).pipe(
        Effect.supervised(supervisor)
      )
      yield* abandon.offerAll([1, 2, 3, 4, 5])
      yield* TestClock.adjust("500 millis")
      yield* abandon.resize(1)
      const left = yield* abandon.shutdown("abandon")
      assert.deepStrictEqual({ pending: left.pending, interrupted: [...left.interrupted].sort() }, {
        pending: [4, 5],
        interrupted: [1, 2, 3]
      })
      assert.deepStrictEqual(yield* supervisor.value, [])

      const completeWork = ledger<number>("1 second")
      const t0 = yield* Clock.currentTimeMillis
      const complete = yield* WorkQueue.make({ capacity: 10, workers: 3, process: completeWork.process }).pipe(
        Effect.supervised(supervisor)
      )
      yield* complete.offerAll([1, 2, 3, 4, 5])
      yield* TestClock.adjust("500 millis")
      yield* complete.resize(1)
      const done = yield* Effect.fork(complete.shutdown("complete"))
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(yield* Fiber.join(done), { pending: [], interrupted: [] })
      // The retiring workers finished 2 and 3; the one left ran 4 and 5 after its own 1.
      assert.deepStrictEqual(completeWork.finished.map(([, at]) => at - t0), [1000, 1000, 1000, 2000, 3000])
      assert.deepStrictEqual(completeWork.items(completeWork.finished).sort(), [1, 2, 3, 4, 5])
      assert.deepStrictEqual(yield* supervisor.value, [])
    }))

  it.scoped("shutdown right after a grow stops the new workers too", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: (_: number) => Effect.never }).pipe(
        Effect.supervised(supervisor)
      )
      yield* queue.offerAll([1, 2, 3, 4])
      yield* queue.resize(4) // the new workers have not run yet
      const left = yield* queue.shutdown("abandon")
      assertAccounted([1, 2, 3, 4], [], left)
      assert.deepStrictEqual(yield* supervisor.value, [])
    }))
})

describe("WorkQueue controls together", () => {
  // A seeded run of offers (with priorities), pauses, resumes and resizes, ending in a shutdown: whatever the
  // interleaving, every item accepted is processed once or handed back, and every fiber is released.
  const scenario = (seed: number) =>
    Effect.gen(function*() {
      // mulberry32: a small generator whose every bit is usable.
      let state = seed
      const random = (n: number) => {
        state = (state + 0x6D2B79F5) | 0
        let t = Math.imul(state ^ (state >>> 15), 1 | state)
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
        return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
      }
      const processed: Array<number> = []
      const starts = new Map<number, number>()
      const supervisor = yield* Supervisor.track
      const queue = yield* WorkQueue.make({
        capacity: 8,
        workers: 1 + random(4),
        process: (n: number) =>
          Effect.suspend(() => {
            starts.set(n, (starts.get(n) ?? 0) + 1)
            return Effect.zipRight(Effect.sleep(`${random(3) * 100} millis`), Effect.sync(() => processed.push(n)))
          })
      }).pipe(Effect.supervised(supervisor))
      const accepted: Array<number> = []
      const producer = (from: number) =>
        Effect.forEach(
          Array.from({ length: 50 }, (_, i) => from + i),
          (n) =>
            Effect.zipRight(
              queue.offer(n, { priority: random(3) - 1 }),
              Effect.sync(() => accepted.push(n))
            ).pipe(Effect.zipRight(Effect.sleep(`${random(2) * 50} millis`))),
          { discard: true }
        ).pipe(Effect.catchTag("WorkQueueClosed", () => Effect.void))
      const producers = yield* Effect.fork(Effect.all([producer(0), producer(100)], { concurrency: "unbounded" }))
      for (let step = 0; step < 30; step++) {
        const action = random(4)
        if (action === 0) yield* queue.pause
        else if (action === 1) yield* queue.resume
        else yield* queue.resize(1 + random(5))
        yield* TestClock.adjust(`${random(4) * 50} millis`)
      }
      const pausedAtEnd = random(2) === 0
      const ending = random(2) === 0 ? "complete" : "abandon"
      yield* pausedAtEnd ? queue.pause : queue.resume
      const done = yield* Effect.fork(queue.shutdown(ending))
      yield* TestClock.adjust("1 hour")
      const left = yield* Fiber.join(done)
      yield* Fiber.join(producers)
      assertAccounted(accepted, processed, left)
      for (const [n, count] of starts) assert.strictEqual(count, 1, `${n} started ${count} times`)
      if (ending === "complete") {
        assert.deepStrictEqual(left.interrupted, [])
        if (!pausedAtEnd) assert.deepStrictEqual(left.pending, [])
      }
      assert.deepStrictEqual(yield* supervisor.value, [])
    })

  it.scoped("seeded runs of offers, pauses, resumes and resizes lose nothing and run nothing twice", () =>
    Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], scenario, { discard: true }))

  it.effect("a worker that yields between its last item and going to sleep still sees an item offered meanwhile", () =>
    // A fiber yields after `maxOpsBeforeYield` operations (2048 by default; under 10 Effect makes no progress):
    // small values put a yield at every step of the worker's way to sleep, where a producer can then offer. Before
    // the worker decided in one step, such an item waited for the next offer: the last ones were never processed.
    Effect.forEach([10, 11], (maxOps) =>
      Effect.forEach([2, 3, 4, 5, 6, 7], (every) =>
        Effect.scoped(Effect.gen(function*() {
          const done: Array<number> = []
          const queue = yield* WorkQueue.make({
            capacity: 10,
            workers: 1,
            process: (n: number) =>
              Effect.sync(() => done.push(n))
          }).pipe(Effect.withMaxOpsBeforeYield(maxOps))
          for (let n = 0; n < 50; n++) {
            yield* queue.offer(n)
            for (let i = 0; i < n % every; i++) yield* Effect.yieldNow()
          }
          yield* until(`every item processed (${maxOps} ops, ${every})`, Effect.sync(() => done.length === 50))
        }))), { discard: true }))
})

describe("WorkQueue controls on the live clock", () => {
  it.scopedLive("pause holds items back for real time, resume and a grow finish them, onIdle completes", () =>
    Effect.gen(function*() {
      const started: Array<number> = []
      const running = { now: 0, peak: 0 }
      const queue = yield* WorkQueue.make({
        capacity: 20,
        workers: 1,
        process: (n: number) =>
          Effect.sync(() => {
            started.push(n)
            running.now++
            running.peak = Math.max(running.peak, running.now)
          }).pipe(Effect.zipRight(Effect.sleep("20 millis")), Effect.ensuring(Effect.sync(() => running.now--)))
      })
      yield* queue.pause
      yield* queue.offerAll([1, 2, 3, 4, 5, 6], { priority: 1 })
      yield* queue.offer(0)
      // Nothing starts while paused, however long: 100 ms here (a lower bound, so no margin is needed).
      yield* Effect.sleep("100 millis")
      assert.deepStrictEqual(started, [])
      yield* queue.resume
      yield* queue.resize(4)
      yield* Wait.until("every item started", Effect.sync(() => started.length === 7))
      yield* queue.onIdle
      assert.deepStrictEqual(started, [1, 2, 3, 4, 5, 6, 0])
      // The new workers started while the first item (20 ms) was still running.
      assert.isAbove(running.peak, 1)
      assert.strictEqual(yield* queue.workers, 4)
    }))
})

/**
 * A bounded producer/consumer queue with its own workers: `offer` waits while the queue is full (backpressure),
 * `drain` waits until every item offered is processed (like `queue.join()`), and `shutdown` either completes the
 * queued work or abandons it — handing every unprocessed item back to the caller, never dropping one.
 *
 * Any number of producers may offer; `workers` fibers consume. What happens when processing an item fails is a
 * policy: fail the queue, or record the failure and continue; either can be preceded by a `RetryPolicy`.
 *
 * p-queue's controls are here too. An offer may carry a `priority`: items start highest priority first, and in the
 * order they were offered within a priority (the default, 0, sits between the positive and the negative ones).
 * `pause` stops the workers from starting items (offers still queue, items in flight finish) until `resume`;
 * `resize` changes the number of workers while the queue runs; `onIdle` waits until nothing is queued or running;
 * `size` and `inFlight` are p-queue's `size` and `pending`.
 *
 * The buffer is a ring with direct hand-off: an item offered while a worker is idle wakes exactly that worker,
 * and a worker drains whatever is buffered in one loop, without suspending between items. Items offered with a
 * priority other than 0 are kept beside the ring, in a structure made when the first of them arrives.
 *
 * Tracing (with a tracer of the application's installed) is per call, never per item: a producer that waits for
 * room is a span (`WorkQueue.offer`, `WorkQueue.offerAll`, with `spindle.queue.wait_ms`), a `tryOffer` refused by a
 * full queue an event (`WorkQueue.rejected`), and `drain`, `onIdle` and `shutdown` are spans. An offer that finds
 * room reports nothing, and an item's processing is the application's to trace (wrap `process` in
 * `Effect.withSpan`): a span or an event per item would cost a check and an allocation on a path that moves
 * millions of items a second, and a million events on one span are more than a tracer keeps.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { LinkedList } from "./internal/linkedList.js"
import * as Metrics from "./internal/metrics.js"
import { PriorityLevels } from "./internal/priorityLevels.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(
 *   WorkQueue.make({ capacity: 10, workers: 1, process: (n: number) => Effect.log(n) }),
 *   (queue) => WorkQueue.TypeId in queue
 * )
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/WorkQueue")

/**
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 *
 * const isWorkQueue = (u: unknown): u is WorkQueue.WorkQueue<unknown, unknown> =>
 *   typeof u === "object" && u !== null && WorkQueue.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The queue no longer takes items: it is shutting down, or it failed under the `fail` policy.
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const queue = yield* WorkQueue.make({
 *     capacity: 10,
 *     workers: 2,
 *     process: (_: string) => Effect.void,
 *     name: "emails"
 *   })
 *   yield* queue.shutdown("complete")
 *   return yield* queue.offer("late@example.com").pipe(
 *     Effect.catchTag("WorkQueueClosed", (e) => Effect.succeed(e.message))
 *   )
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 'Work queue "emails" is closed'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkQueueClosed extends Data.TaggedError("WorkQueueClosed")<{
  readonly name: string
  /** For `offerAll`: how many of its items were queued before the queue closed (the rest were not). */
  readonly accepted?: number | undefined
}> {
  override get message(): string {
    return `Work queue "${this.name}" is closed` +
      (this.accepted === undefined ? "" : ` after accepting ${this.accepted} item(s) of this batch`)
  }
}

/**
 * An item whose processing failed (recorded under the `continue` policy).
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Cause from "effect/Cause"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const queue = yield* WorkQueue.make({
 *     capacity: 10,
 *     workers: 2,
 *     process: (n: number) => n < 0 ? Effect.fail(`negative: ${n}`) : Effect.void
 *   })
 *   yield* queue.offerAll([1, -2, 3])
 *   yield* queue.drain
 *   const failures: ReadonlyArray<WorkQueue.Failure<number, string>> = yield* queue.failures
 *   return failures.map((f) => [f.item, Cause.squash(f.cause)])
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [[-2, "negative: -2"]]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure<A, E> {
  readonly item: A
  readonly cause: Cause.Cause<E>
}

/**
 * Options of a work queue processing `A`s with an effect failing with `E`.
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const sendEmail = (to: string) => to.includes("@") ? Effect.log(`sent to ${to}`) : Effect.fail("bad address")
 *
 * const options: WorkQueue.Options<string, string, never> = {
 *   capacity: 1000, // offer waits once 1000 are buffered
 *   workers: 8,
 *   process: sendEmail,
 *   onError: "continue",
 *   retry: { base: "1 second", maxAttempts: 3, retryable: (e) => e !== "bad address" },
 *   maxRecordedFailures: 100,
 *   name: "emails"
 * }
 *
 * const program = Effect.scoped(Effect.flatMap(WorkQueue.make(options), (queue) => queue.offer("a@example.com")))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A, E, R> {
  /** Items buffered before `offer` waits. */
  readonly capacity: number
  /** Consumer fibers. */
  readonly workers: number
  /** What each item goes through. */
  readonly process: (item: A) => Effect.Effect<unknown, E, R>
  /**
   * On failure (after retries): `"fail"` closes the queue and fails `drain` with the error; `"continue"` records
   * it (see `failures`) and goes on. Default `"continue"`.
   */
  readonly onError?: "fail" | "continue" | undefined
  /** Retries an item's failures before the `onError` policy sees them. */
  readonly retry?: RetryPolicy.Options<E> | undefined
  /** Failures kept for `failures` under `continue` (the oldest are dropped past it; all are counted). */
  readonly maxRecordedFailures?: number | undefined
  /** Label for metrics. Default `"default"`. */
  readonly name?: string | undefined
}

/**
 * Options of one offer (`offer`, `offerAll`, `tryOffer`).
 *
 * `priority` orders the items waiting in the queue: a worker always starts the waiting item of highest priority,
 * and of those the one offered first. The default is 0; negative priorities start after it. An item already
 * started is never overtaken, and priority does not let an offer past a full queue: every item counts against
 * `capacity`, and producers waiting for room are let in in the order they came, whatever their priorities.
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const started: Array<string> = []
 *   const queue = yield* WorkQueue.make({
 *     capacity: 10,
 *     workers: 1,
 *     process: (job: string) => Effect.sync(() => started.push(job))
 *   })
 *   yield* queue.pause // let the items pile up, to show the order they start in
 *   yield* queue.offerAll(["report-1", "report-2"], { priority: -1 })
 *   yield* queue.offer("email-1")
 *   const urgent: WorkQueue.OfferOptions = { priority: 10 }
 *   yield* queue.offer("password-reset", urgent)
 *   yield* queue.offer("email-2")
 *   yield* queue.resume
 *   yield* queue.onIdle
 *   return started
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log)
 * // ["password-reset", "email-1", "email-2", "report-1", "report-2"]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface OfferOptions {
  /** Higher starts first; FIFO among equal priorities. Any finite number; default 0. */
  readonly priority?: number | undefined
}

/**
 * What `shutdown` hands back: items never started (`pending`, in the order they would have started), and items
 * interrupted while being processed.
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const queue = yield* WorkQueue.make({ capacity: 10, workers: 1, process: (_: number) => Effect.never })
 *   yield* queue.offerAll([1, 2, 3])
 *   yield* Effect.sleep("10 millis")
 *   // Nothing is dropped: what was not processed comes back, to be stored or re-queued elsewhere.
 *   const left: WorkQueue.Unprocessed<number> = yield* queue.shutdown("abandon")
 *   return left
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // { pending: [2, 3], interrupted: [1] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Unprocessed<A> {
  readonly pending: ReadonlyArray<A>
  readonly interrupted: ReadonlyArray<A>
}

/**
 * A running work queue.
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Any number of producers offer; backpressure slows them to the workers' pace.
 * const produce = (queue: WorkQueue.WorkQueue<string, never>, prefix: string) =>
 *   Effect.forEach([1, 2, 3], (n) => queue.offer(`${prefix}-${n}`), { discard: true })
 *
 * const program = Effect.gen(function*() {
 *   const done: Array<string> = []
 *   const record = (s: string) => Effect.sync(() => done.push(s))
 *   const queue = yield* WorkQueue.make({ capacity: 2, workers: 2, process: record })
 *   yield* Effect.all([produce(queue, "a"), produce(queue, "b")], { concurrency: "unbounded" })
 *   yield* queue.drain
 *   return [done.length, yield* queue.size, yield* queue.inFlight]
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [6, 0, 0]
 * ```
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Paused while a downstream service is down: offers still queue, no item starts; `resume` picks them up.
 * const program = Effect.gen(function*() {
 *   const queue = yield* WorkQueue.make({
 *     capacity: 100,
 *     workers: 2,
 *     process: (_: number) => Effect.sleep("10 millis")
 *   })
 *   yield* queue.pause
 *   yield* queue.offerAll([1, 2, 3])
 *   const paused = [yield* queue.isPaused, yield* queue.size, yield* queue.inFlight]
 *   yield* queue.resume
 *   yield* queue.onIdle // nothing queued, nothing running
 *   return [paused, [yield* queue.isPaused, yield* queue.size, yield* queue.inFlight]]
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [[true, 3, 0], [false, 0, 0]]
 * ```
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // More workers for a backlog, fewer afterwards: nothing is lost or processed twice.
 * const program = Effect.gen(function*() {
 *   let processed = 0
 *   const queue = yield* WorkQueue.make({
 *     capacity: 100,
 *     workers: 1,
 *     process: (_: number) => Effect.zipRight(Effect.sleep("20 millis"), Effect.sync(() => processed++))
 *   })
 *   yield* queue.offerAll(Array.from({ length: 8 }, (_, i) => i))
 *   yield* queue.resize(4) // three more workers start at once
 *   yield* Effect.sleep("5 millis")
 *   const busy = yield* queue.inFlight
 *   yield* queue.resize(2) // two of them finish the item they are on, then stop
 *   yield* queue.onIdle
 *   return [busy, yield* queue.workers, processed]
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [4, 2, 8]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkQueue<A, E> {
  readonly [TypeId]: TypeId
  readonly name: string
  /**
   * Adds an item, waiting while the queue is full. With a `priority` (see `OfferOptions`) it starts before the
   * waiting items of lower priorities.
   */
  readonly offer: {
    (item: A): Effect.Effect<void, WorkQueueClosed>
    (item: A, options: OfferOptions | undefined): Effect.Effect<void, WorkQueueClosed>
  }
  /**
   * Adds every item in order, all at the options' priority, waiting whenever the queue is full. If the queue
   * closes meanwhile it fails with `WorkQueueClosed` whose `accepted` says how many items of this batch were
   * queued; the others were not.
   */
  readonly offerAll: {
    (items: Iterable<A>): Effect.Effect<void, WorkQueueClosed>
    (items: Iterable<A>, options: OfferOptions | undefined): Effect.Effect<void, WorkQueueClosed>
  }
  /** Adds an item if there is room now. */
  readonly tryOffer: {
    (item: A): Effect.Effect<boolean, WorkQueueClosed>
    (item: A, options: OfferOptions | undefined): Effect.Effect<boolean, WorkQueueClosed>
  }
  /**
   * Waits until every item offered has been processed — it completes when nothing is queued or being processed,
   * so items offered while it waits are waited for too (on a paused queue holding items, that is after `resume`).
   * Fails, at once, when a failure closed the queue under the `fail` policy.
   */
  readonly drain: Effect.Effect<void, E>
  /**
   * Waits until nothing is queued or being processed (p-queue's `onIdle`); completes at once if that is so now.
   * Unlike `drain` it never fails: a failure under the `fail` policy leaves the items still queued unstarted, and
   * `onIdle` completes once `shutdown` has handed them back. On a paused queue holding items it waits for
   * `resume`.
   */
  readonly onIdle: Effect.Effect<void>
  /**
   * Stops taking items. `"complete"` lets the workers finish everything queued, or on a paused queue the items
   * in flight only, handing back the others as `pending`; `"abandon"` interrupts them and returns what was not
   * processed. Either way the workers have stopped when it returns.
   */
  readonly shutdown: (mode: "complete" | "abandon") => Effect.Effect<Unprocessed<A>>
  /** Failures recorded under the `continue` policy, oldest first. */
  readonly failures: Effect.Effect<ReadonlyArray<Failure<A, E>>>
  /** Items queued and not started, whatever their priority (p-queue's `size`). */
  readonly size: Effect.Effect<number>
  /** Items being processed now (p-queue's `pending`). */
  readonly inFlight: Effect.Effect<number>
  /**
   * Stops the workers from starting items until `resume`: items in flight finish, offers still queue (and wait
   * once the queue is full), `drain` and `onIdle` wait. Pausing a paused queue does nothing.
   */
  readonly pause: Effect.Effect<void>
  /**
   * Lets the workers start items again: one idle worker is woken per queued item, as offers do. Resuming a queue
   * that is not paused does nothing.
   */
  readonly resume: Effect.Effect<void>
  /** Whether the queue is paused. */
  readonly isPaused: Effect.Effect<boolean>
  /**
   * Sets the number of workers (a positive integer). Growing starts the new workers at once, on whatever is
   * queued; shrinking lets each worker beyond the new number finish the item it is processing and stop, so until
   * they have, more items than that may be in flight. Either way nothing is lost or processed twice. Returns at
   * once; has no effect once `shutdown` has begun.
   */
  readonly resize: (workers: number) => Effect.Effect<void>
  /** The number of workers: the last `resize`, else `workers` of the options. */
  readonly workers: Effect.Effect<number>
}

type State = "open" | "closing" | "closed"

type Wake = (effect: Effect.Effect<void>) => void

/** Wakes a parked worker: `true` to look for items again, `false` to stop. */
type WakeWorker = (effect: Effect.Effect<boolean>) => void

const goOn = Effect.succeed(true)
const stop = Effect.succeed(false)

/**
 * The priority of an offer. `Effect.forEach(items, queue.offer)` passes each item's index as a second argument
 * (the overloads of `offer` let it type-check), so anything but an options object is the default priority.
 */
const priorityOf = (options: unknown): number => {
  if (typeof options !== "object" || options === null) return 0
  const priority = (options as OfferOptions).priority
  if (priority === undefined) return 0
  if (typeof priority !== "number" || !Number.isFinite(priority)) {
    Validate.illegal("WorkQueue", `priority must be a finite number, got ${String(priority)}`)
  }
  return priority
}

/**
 * Starts a work queue whose workers live in the current scope. Closing the scope abandons what is left, with a
 * warning naming how many items were not processed; call `drain` or `shutdown("complete")` first to finish them.
 *
 * @example
 * ```ts
 * import { WorkQueue } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const queue = yield* WorkQueue.make({
 *     capacity: 100,
 *     workers: 4,
 *     process: (url: string) => Effect.logDebug(`fetched ${url}`),
 *     retry: { base: "100 millis", maxAttempts: 3 }
 *   })
 *   yield* queue.offerAll(["https://a.example/", "https://b.example/"])
 *   // Finish everything queued, then stop the workers.
 *   return yield* queue.shutdown("complete")
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // { pending: [], interrupted: [] }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, E, R>(options: Options<A, E, R>): Effect.Effect<WorkQueue<A, E>, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const name = options.name ?? "default"
    const capacity = Validate.positiveInteger("WorkQueue", "capacity", options.capacity)
    const workers = Validate.positiveInteger("WorkQueue", "workers", options.workers)
    const lowWater = Math.floor(capacity / 2)
    const maxRecorded = Validate.nonNegativeIntegerOr(
      "WorkQueue",
      "maxRecordedFailures",
      options.maxRecordedFailures,
      1000
    )
    const failFast = options.onError === "fail"
    const process = options.retry === undefined
      ? options.process
      : ((retry) => (item: A) => retry(options.process(item)))(RetryPolicy.make(options.retry))
    const labels = Metrics.labels("queue", name)
    // Updated on every item: their states are taken once here rather than looked up by labels on each update.
    const sizeGauge = Metrics.hook(Metrics.queueSizeKey, labels)
    const processedCounter = Metrics.hook(Metrics.queueProcessedKey, labels)
    // Workers added by `resize` run in the runtime `make` ran in, like the first ones.
    const runtime = yield* Effect.runtime<R>()

    // Items offered at the default priority wait in a ring buffer; the others, in `levels`, made when the first of
    // them is offered. `size` counts both, `prioritized` those in `levels`: the ring holds `size - prioritized`.
    const ring = new Array<A | undefined>(capacity)
    let head = 0
    let size = 0
    let levels: PriorityLevels<A> | undefined
    let prioritized = 0
    let state: State = "open"
    let paused = false
    // Workers the queue runs (`resize` changes it); the worker of slot `slot` runs while `slot < target`.
    let target = workers
    // A worker starts an item only while its slot is below this: `target`, or 0 while paused or once closed. One
    // comparison per item covers the three.
    let startLimit = workers
    let outstanding = 0
    let failure: Cause.Cause<E> | undefined
    // What each worker is processing: `busy[slot]` says whether `current[slot]` holds an item (a flag beside a
    // plain slot, so that taking an item allocates nothing). `alive[slot]` says whether a worker runs in the slot.
    // The three grow with `resize`, never shrink.
    const current = new Array<A | undefined>(workers)
    const busy = new Array<boolean>(workers).fill(false)
    const alive = new Array<boolean>(workers).fill(true)
    // The node of each slot's worker in `idleWorkers` while it is parked there, so that a shrink can wake it.
    const parked = new Array<ReturnType<LinkedList<WakeWorker>["push"]> | undefined>(workers)
    const fibers = new Set<Fiber.RuntimeFiber<void>>()
    const recorded: Array<Failure<A, E>> = []
    const idleWorkers = new LinkedList<WakeWorker>()
    const blockedProducers = new LinkedList<Wake>()
    const drainWaiters = new LinkedList<(effect: Effect.Effect<void, E>) => void>()
    const idleWaiters = new LinkedList<Wake>()

    const updateStartLimit = () => {
      startLimit = paused || state === "closed" ? 0 : target
    }

    // An offer wakes one idle worker for its item (direct hand-off): workers whose items suspend then run side by
    // side at once, and the order in which producers and workers are resumed stays what callers have relied on.
    const wakeWorker = () => {
      const node = idleWorkers.shift()
      if (node !== undefined) node.value(goOn)
    }
    const wakeAllWorkers = () => {
      while (idleWorkers.length > 0) wakeWorker()
    }
    const wakeAllProducers = () => {
      for (let node = blockedProducers.shift(); node !== undefined; node = blockedProducers.shift()) {
        node.value(Effect.void)
      }
    }
    // Releases `drain` once nothing is outstanding or the queue failed, and `onIdle` once nothing is outstanding.
    const settleWaiters = () => {
      if (outstanding > 0 && failure === undefined) return
      if (drainWaiters.length > 0) {
        const exit: Exit.Exit<void, E> = failure === undefined ? Exit.void : Exit.failCause(failure)
        for (let node = drainWaiters.shift(); node !== undefined; node = drainWaiters.shift()) node.value(exit)
      }
      if (outstanding === 0) {
        for (let node = idleWaiters.shift(); node !== undefined; node = idleWaiters.shift()) node.value(Exit.void)
      }
    }

    const push = (item: A) => {
      ring[(head + size - prioritized) % capacity] = item
      size++
      outstanding++
      sizeGauge.update(size)
      if (!paused) wakeWorker()
    }

    const pushPrioritized = (item: A, priority: number) => {
      if (levels === undefined) levels = new PriorityLevels<A>()
      levels.push(priority, item)
      prioritized++
      size++
      outstanding++
      sizeGauge.update(size)
      if (!paused) wakeWorker()
    }

    const enqueue = (item: A, priority: number) => {
      if (priority === 0) push(item)
      else pushPrioritized(item, priority)
    }

    // The next item to start, removed from the ring or `levels`; the caller updates `size`. Positive priorities
    // come before the ring (priority 0), negative ones after it.
    const takeFromRing = (): A => {
      const item = ring[head]!
      ring[head] = undefined
      head = head + 1 === capacity ? 0 : head + 1
      return item
    }
    const takePrioritized = (): A => {
      if (levels!.top() > 0 || size === prioritized) {
        prioritized--
        return levels!.shift()
      }
      return takeFromRing()
    }

    const closedError = new WorkQueueClosed({ name })

    // Suspends until woken; an interrupted waiter unlinks itself. Built once per list: the effect is a description,
    // each run registers its own node.
    const waitOn = (list: LinkedList<Wake>): Effect.Effect<void> =>
      Effect.async<void>((resume) => {
        const node = list.push(resume)
        return Effect.sync(() => list.remove(node))
      })
    const producerWait = waitOn(blockedProducers)

    // Queues `item` now if there is room, else waits for it and tries again.
    const offerNow = (item: A, priority: number): Effect.Effect<void, WorkQueueClosed> => {
      if (state !== "open") return Effect.fail(closedError)
      if (size < capacity) {
        enqueue(item, priority)
        return Effect.void
      }
      return Effect.zipRight(producerWait, Effect.suspend(() => offerNow(item, priority)))
    }

    // Tracing (with a tracer of the application's installed): per call, never per item. A producer that waits for
    // room is a span (`WorkQueue.offer`, `WorkQueue.offerAll`), one refused by `tryOffer` an event, and `drain`,
    // `onIdle` and `shutdown` are spans; an offer that finds room reports nothing, and the items' processing is the
    // application's to trace (its `process` runs under the worker's fiber, not the producer's span).
    const traceAttributes = { "spindle.queue.name": name, "spindle.queue.capacity": capacity }
    const traceable = <X, EX>(spanName: string, effect: Effect.Effect<X, EX>): Effect.Effect<X, EX> =>
      Effect.suspend(() => {
        const traced = Tracing.traced()
        return traced === undefined
          ? effect
          : Tracing.measuredWait(traced, spanName, { ...traceAttributes, "spindle.queue.size": size }, waitMs, effect)
      })
    const waitMs = "spindle.queue.wait_ms"

    const offer = (item: A, options?: unknown): Effect.Effect<void, WorkQueueClosed> =>
      Effect.suspend(() => {
        const priority = options === undefined ? 0 : priorityOf(options)
        if (state === "open" && size >= capacity) {
          const traced = Tracing.traced()
          if (traced !== undefined) {
            return Tracing.measuredWait(traced, "WorkQueue.offer", traceAttributes, waitMs, offerNow(item, priority))
          }
        }
        return offerNow(item, priority)
      })

    const offerAll = (items: Iterable<A>, options?: unknown): Effect.Effect<void, WorkQueueClosed> =>
      Effect.suspend(() => {
        const priority = priorityOf(options)
        const iterator = items[Symbol.iterator]()
        let pendingItem: IteratorResult<A> | undefined
        let accepted = 0
        const loop: Effect.Effect<void, WorkQueueClosed> = Effect.suspend(() => {
          while (true) {
            if (state !== "open") return Effect.fail(new WorkQueueClosed({ name, accepted }))
            const next = pendingItem ?? iterator.next()
            pendingItem = undefined
            if (next.done === true) return Effect.void
            if (size < capacity) {
              if (priority === 0) push(next.value)
              else pushPrioritized(next.value, priority)
              accepted++
              continue
            }
            pendingItem = next
            return Effect.zipRight(producerWait, loop)
          }
        })
        const traced = Tracing.traced()
        if (traced === undefined) return loop
        return Tracing.measuredWait(traced, "WorkQueue.offerAll", traceAttributes, waitMs, loop)
      })

    const tryOffer = (item: A, options?: unknown): Effect.Effect<boolean, WorkQueueClosed> =>
      Effect.suspend(() => {
        const priority = priorityOf(options)
        if (state !== "open") return Effect.fail(closedError)
        if (size >= capacity) {
          const traced = Tracing.traced()
          if (traced !== undefined) {
            Tracing.event(traced, "WorkQueue.rejected", { ...traceAttributes, "spindle.queue.size": size })
          }
          return Effect.succeed(false)
        }
        enqueue(item, priority)
        return Effect.succeed(true)
      })

    // Takes the next item into `slot`. The in-flight gauge is the caller's: a worker going straight from one item
    // to the next leaves it as it is.
    const take = (slot: number): A => {
      const item = prioritized === 0 ? takeFromRing() : takePrioritized()
      size--
      sizeGauge.update(size)
      current[slot] = item
      busy[slot] = true
      // Producers wake once the buffer is half empty, not for every freed slot: a full queue would otherwise
      // switch between producer and consumer on every item.
      if (size <= lowWater) wakeAllProducers()
      return item
    }

    const close = () => {
      state = "closed"
      updateStartLimit()
    }

    // Settles the item of `slot`: counts it, records or raises its failure, releases `drain` when it was the last.
    const settle = (slot: number, cause: Cause.Cause<E> | undefined): void => {
      const item = current[slot] as A
      current[slot] = undefined
      busy[slot] = false
      processedCounter.update(1)
      if (cause !== undefined) {
        Metrics.queueFailures.unsafeUpdate(1, labels)
        if (failFast) {
          if (failure === undefined) failure = cause
          close()
          wakeAllProducers()
          wakeAllWorkers()
        } else {
          recorded.push({ item, cause })
          if (recorded.length > maxRecorded) recorded.shift()
        }
      }
      outstanding--
      settleWaiters()
    }

    // A worker drains the buffer in an `Effect.whileLoop` built once: the loop's frame stays on the fiber's stack
    // from one item to the next, so an item that succeeds costs `process` itself and nothing else: `step` settles
    // it, `while` takes the next. A failure ends the loop; the match around it settles that item and starts the
    // loop again. The in-flight gauge moves when a worker starts or stops having an item, not between two items.
    //
    // When the loop ends the worker parks, deciding in the one synchronous step that registers it whether to stop
    // (its slot is beyond `target`, or the queue is shutting down and has nothing it may start), to go on (an item
    // came meanwhile: the fiber may have yielded between the loop's end and here), or to sleep until an offer,
    // `resume`, a shrink or a shutdown wakes it.
    const worker = (slot: number): Effect.Effect<void, never, R> => {
      let active = false
      const takeNext = (): boolean => {
        if (size > 0 && slot < startLimit) {
          if (!active) {
            active = true
            Metrics.queueInFlight.unsafeModify(1, labels)
          }
          take(slot)
          return true
        }
        if (active) {
          active = false
          Metrics.queueInFlight.unsafeModify(-1, labels)
        }
        return false
      }
      const processCurrent = (): Effect.Effect<unknown, E, R> => {
        try {
          return process(current[slot] as A)
        } catch (defect) {
          // A `process` that throws instead of returning an effect fails this item, not the worker.
          return Effect.die(defect)
        }
      }
      const park = Effect.async<boolean>((resume) => {
        if (slot >= target) {
          // Retired by a shrink: a later grow starts a new worker in the slot.
          alive[slot] = false
          return resume(stop)
        }
        if (size > 0 && slot < startLimit) return resume(goOn)
        if (state !== "open") return resume(stop)
        const node = idleWorkers.push(resume)
        parked[slot] = node
        return Effect.sync(() => {
          idleWorkers.remove(node)
        })
      })
      const drain = Effect.whileLoop({ while: takeNext, body: processCurrent, step: () => settle(slot, undefined) })
      const run: Effect.Effect<void, never, R> = Effect.matchCauseEffect(drain, {
        onSuccess: () => sleep,
        onFailure: (cause) => {
          settle(slot, cause)
          return run
        }
      })
      const sleep: Effect.Effect<void, never, R> = Effect.flatMap(park, (again) => again ? run : Effect.void)
      return run
    }

    const track = (fiber: Fiber.RuntimeFiber<void>) => {
      fibers.add(fiber)
      fiber.addObserver(() => {
        fibers.delete(fiber)
      })
    }

    for (let slot = 0; slot < workers; slot++) track(yield* Effect.forkScoped(worker(slot)))

    const spawn = (slot: number) => {
      if (slot === busy.length) {
        current.push(undefined)
        busy.push(false)
        alive.push(false)
        parked.push(undefined)
      }
      alive[slot] = true
      track(Runtime.runFork(runtime)(worker(slot), { immediate: false }))
    }

    const resize = (n: number): Effect.Effect<void> =>
      Effect.sync(() => {
        Validate.positiveInteger("WorkQueue", "workers", n)
        if (state !== "open" || n === target) return
        const previous = target
        target = n
        updateStartLimit()
        if (n > previous) {
          // A worker still finishing its last item after a shrink is in its slot: it goes on instead of stopping.
          for (let slot = 0; slot < n; slot++) if (!alive[slot]) spawn(slot)
          return
        }
        // Workers beyond `n` that are busy stop after their item; the idle ones are woken to stop now.
        for (let slot = n; slot < previous; slot++) {
          const node = parked[slot]
          parked[slot] = undefined
          if (node !== undefined && idleWorkers.remove(node)) node.value(goOn)
        }
      })

    const takePending = (): Array<A> => {
      const pending: Array<A> = []
      while (size > 0) {
        pending.push(prioritized === 0 ? takeFromRing() : takePrioritized())
        size--
      }
      sizeGauge.update(0)
      return pending
    }

    let unprocessed: Unprocessed<A> | undefined
    const shutdown = (mode: "complete" | "abandon") =>
      Effect.uninterruptible(Effect.gen(function*() {
        if (unprocessed !== undefined) return unprocessed
        if (mode === "complete" && state === "open") {
          state = "closing"
          wakeAllProducers()
          wakeAllWorkers()
          yield* Effect.forEach(Array.from(fibers), (fiber) => Effect.interruptible(fiber.await), { discard: true })
        } else {
          close()
          wakeAllProducers()
          const running = Array.from(fibers)
          yield* Effect.forEach(running, (fiber) => fiber.interruptAsFork(FiberId.none), { discard: true })
          yield* Effect.forEach(running, (fiber) => fiber.await, { discard: true })
          // Items whose processing ended before the interruption reached their worker were finished normally.
          const interrupted: Array<A> = []
          for (let slot = 0; slot < busy.length; slot++) {
            if (busy[slot]) interrupted.push(current[slot] as A)
          }
          current.fill(undefined)
          busy.fill(false)
          Metrics.queueInFlight.unsafeModify(-interrupted.length, labels)
          const pending = takePending()
          outstanding -= pending.length + interrupted.length
          unprocessed = { pending, interrupted }
          settleWaiters()
          return unprocessed
        }
        close()
        // Items left when the queue was paused: the workers stopped without starting them.
        const pending = takePending()
        outstanding -= pending.length
        unprocessed = { pending, interrupted: [] }
        settleWaiters()
        return unprocessed
      }))

    // Warn only about items this finalizer abandons: an explicit shutdown has already handed them to its caller.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (unprocessed !== undefined) return Effect.void
        return Effect.flatMap(shutdown("abandon"), (left) => {
          const count = left.pending.length + left.interrupted.length
          return count === 0 ? Effect.void : Effect.logWarning("work queue closed with unprocessed items").pipe(
            Effect.annotateLogs({ queue: name, pending: left.pending.length, interrupted: left.interrupted.length })
          )
        })
      })
    )

    const queue: WorkQueue<A, E> = {
      [TypeId]: TypeId,
      name,
      offer,
      offerAll,
      tryOffer,
      drain: traceable(
        "WorkQueue.drain",
        Effect.async<void, E>((resume) => {
          if (failure !== undefined) return resume(Effect.failCause(failure))
          if (outstanding === 0) return resume(Effect.void)
          const node = drainWaiters.push(resume)
          return Effect.sync(() => {
            drainWaiters.remove(node)
          })
        })
      ),
      onIdle: traceable(
        "WorkQueue.onIdle",
        Effect.async<void>((resume) => {
          if (outstanding === 0) return resume(Effect.void)
          const node = idleWaiters.push(resume)
          return Effect.sync(() => {
            idleWaiters.remove(node)
          })
        })
      ),
      shutdown: (mode) => traceable("WorkQueue.shutdown", shutdown(mode)),
      failures: Effect.sync(() => recorded.slice()),
      size: Effect.sync(() => size),
      inFlight: Effect.sync(() => busy.reduce((n, b) => b ? n + 1 : n, 0)),
      pause: Effect.sync(() => {
        paused = true
        updateStartLimit()
      }),
      resume: Effect.sync(() => {
        if (!paused) return
        paused = false
        updateStartLimit()
        for (let n = Math.min(size, idleWorkers.length); n > 0; n--) wakeWorker()
      }),
      isPaused: Effect.sync(() => paused),
      resize,
      workers: Effect.sync(() => target)
    }
    return queue
  })

/**
 * A bounded producer/consumer queue with its own workers: `offer` waits while the queue is full (backpressure),
 * `drain` waits until everything offered so far is processed (like `queue.join()`), and `shutdown` either
 * completes the queued work or abandons it — handing every unprocessed item back to the caller, never dropping one.
 *
 * Any number of producers may offer; `workers` fibers consume. What happens when processing an item fails is a
 * policy: fail the queue, or record the failure and continue; either can be preceded by a `RetryPolicy`.
 *
 * The buffer is a ring with direct hand-off: an item offered while a worker is idle wakes exactly that worker,
 * and a worker drains whatever is buffered in one loop, without suspending between items.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import { LinkedList } from "./internal/linkedList.js"
import * as Metrics from "./internal/metrics.js"
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
 * What `shutdown` hands back: items never started, and items interrupted while being processed.
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
 * @since 0.1.0
 * @category models
 */
export interface WorkQueue<A, E> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Adds an item, waiting while the queue is full. */
  readonly offer: (item: A) => Effect.Effect<void, WorkQueueClosed>
  /**
   * Adds every item in order, waiting whenever the queue is full. If the queue closes meanwhile it fails with
   * `WorkQueueClosed` whose `accepted` says how many items of this batch were queued; the others were not.
   */
  readonly offerAll: (items: Iterable<A>) => Effect.Effect<void, WorkQueueClosed>
  /** Adds an item if there is room now. */
  readonly tryOffer: (item: A) => Effect.Effect<boolean, WorkQueueClosed>
  /** Waits until every item offered so far has been processed; fails if the queue failed. */
  readonly drain: Effect.Effect<void, E>
  /**
   * Stops taking items. `"complete"` lets the workers finish everything queued; `"abandon"` interrupts them and
   * returns what was not processed. Either way the workers have stopped when it returns.
   */
  readonly shutdown: (mode: "complete" | "abandon") => Effect.Effect<Unprocessed<A>>
  /** Failures recorded under the `continue` policy, oldest first. */
  readonly failures: Effect.Effect<ReadonlyArray<Failure<A, E>>>
  /** Items buffered now. */
  readonly size: Effect.Effect<number>
  /** Items being processed now. */
  readonly inFlight: Effect.Effect<number>
}

type State = "open" | "closing" | "closed"

type Wake = (effect: Effect.Effect<void>) => void

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

    // Ring buffer.
    const ring = new Array<A | undefined>(capacity)
    let head = 0
    let size = 0
    let state: State = "open"
    let outstanding = 0
    let failure: Cause.Cause<E> | undefined
    // What each worker is processing: `busy[slot]` says whether `current[slot]` holds an item (a flag beside a
    // plain slot, so that taking an item allocates nothing).
    const current = new Array<A | undefined>(workers)
    const busy = new Array<boolean>(workers).fill(false)
    const recorded: Array<Failure<A, E>> = []
    const idleWorkers = new LinkedList<Wake>()
    const blockedProducers = new LinkedList<Wake>()
    const drainWaiters: Array<Deferred.Deferred<void, E>> = []

    // An offer wakes one idle worker for its item (direct hand-off): workers whose items suspend then run side by
    // side at once, and the order in which producers and workers are resumed stays what callers have relied on.
    const wakeWorker = () => {
      const node = idleWorkers.shift()
      if (node !== undefined) node.value(Effect.void)
    }
    const wakeAllWorkers = () => {
      while (idleWorkers.length > 0) wakeWorker()
    }
    const wakeAllProducers = () => {
      for (let node = blockedProducers.shift(); node !== undefined; node = blockedProducers.shift()) {
        node.value(Effect.void)
      }
    }
    const settleDrains = () => {
      if (outstanding > 0 && failure === undefined) return
      const exit: Exit.Exit<void, E> = failure === undefined ? Exit.void : Exit.failCause(failure)
      for (const waiter of drainWaiters.splice(0)) Deferred.unsafeDone(waiter, exit)
    }

    const push = (item: A) => {
      ring[(head + size) % capacity] = item
      size++
      outstanding++
      sizeGauge.update(size)
      wakeWorker()
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
    const workerWait = waitOn(idleWorkers)

    const offer = (item: A): Effect.Effect<void, WorkQueueClosed> =>
      Effect.suspend(() => {
        if (state !== "open") return Effect.fail(closedError)
        if (size < capacity) {
          push(item)
          return Effect.void
        }
        return Effect.zipRight(producerWait, offer(item))
      })

    const offerAll = (items: Iterable<A>): Effect.Effect<void, WorkQueueClosed> =>
      Effect.suspend(() => {
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
              push(next.value)
              accepted++
              continue
            }
            pendingItem = next
            return Effect.zipRight(producerWait, loop)
          }
        })
        return loop
      })

    // Takes the oldest buffered item into `slot`. The in-flight gauge is the caller's: a worker going straight
    // from one item to the next leaves it as it is.
    const take = (slot: number): A => {
      const item = ring[head]!
      ring[head] = undefined
      head = head + 1 === capacity ? 0 : head + 1
      size--
      sizeGauge.update(size)
      current[slot] = item
      busy[slot] = true
      // Producers wake once the buffer is half empty, not for every freed slot: a full queue would otherwise
      // switch between producer and consumer on every item.
      if (size <= lowWater) wakeAllProducers()
      return item
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
          state = "closed"
          wakeAllProducers()
          wakeAllWorkers()
        } else {
          recorded.push({ item, cause })
          if (recorded.length > maxRecorded) recorded.shift()
        }
      }
      outstanding--
      settleDrains()
    }

    // A worker drains the buffer in an `Effect.whileLoop` built once: the loop's frame stays on the fiber's stack
    // from one item to the next, so an item that succeeds costs `process` itself and nothing else: `step` settles
    // it, `while` takes the next. A failure ends the loop; the match around it settles that item and starts the
    // loop again. The worker sleeps on `workerWait` only when the buffer is empty. The in-flight gauge moves when a
    // worker starts or stops having an item, not between two items.
    const worker = (slot: number): Effect.Effect<void, never, R> => {
      let active = false
      const takeNext = (): boolean => {
        if (size > 0 && state !== "closed") {
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
      const drain = Effect.whileLoop({ while: takeNext, body: processCurrent, step: () => settle(slot, undefined) })
      const run: Effect.Effect<void, never, R> = Effect.matchCauseEffect(drain, {
        onSuccess: () => state === "open" ? sleep : Effect.void,
        onFailure: (cause) => {
          settle(slot, cause)
          return run
        }
      })
      const sleep: Effect.Effect<void, never, R> = Effect.zipRight(workerWait, run)
      return run
    }

    const fibers = yield* Effect.forEach(
      Array.from({ length: workers }, (_, slot) => slot),
      (slot) => Effect.forkScoped(worker(slot))
    )

    const takePending = (): Array<A> => {
      const pending: Array<A> = []
      while (size > 0) {
        pending.push(ring[head]!)
        ring[head] = undefined
        head = head + 1 === capacity ? 0 : head + 1
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
          yield* Effect.forEach(fibers, (fiber) => Effect.interruptible(fiber.await), { discard: true })
        } else {
          state = "closed"
          wakeAllProducers()
          yield* Effect.forEach(fibers, (fiber) => fiber.interruptAsFork(FiberId.none), { discard: true })
          yield* Effect.forEach(fibers, (fiber) => fiber.await, { discard: true })
          // Items whose processing ended before the interruption reached their worker were finished normally.
          const interrupted: Array<A> = []
          for (let slot = 0; slot < workers; slot++) {
            if (busy[slot]) interrupted.push(current[slot] as A)
          }
          current.fill(undefined)
          busy.fill(false)
          Metrics.queueInFlight.unsafeModify(-interrupted.length, labels)
          const pending = takePending()
          outstanding -= pending.length + interrupted.length
          unprocessed = { pending, interrupted }
          settleDrains()
          return unprocessed
        }
        state = "closed"
        const pending = takePending()
        outstanding -= pending.length
        unprocessed = { pending, interrupted: [] }
        settleDrains()
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
      tryOffer: (item) =>
        Effect.suspend(() => {
          if (state !== "open") return Effect.fail(closedError)
          if (size >= capacity) return Effect.succeed(false)
          push(item)
          return Effect.succeed(true)
        }),
      drain: Effect.suspend(() => {
        if (failure !== undefined) return Effect.failCause(failure)
        if (outstanding === 0) return Effect.void
        const waiter = Deferred.unsafeMake<void, E>(FiberId.none)
        drainWaiters.push(waiter)
        return Deferred.await(waiter)
      }),
      shutdown,
      failures: Effect.sync(() => recorded.slice()),
      size: Effect.sync(() => size),
      inFlight: Effect.sync(() => busy.reduce((n, b) => b ? n + 1 : n, 0))
    }
    return queue
  })

/**
 * A scheduler for Effect's fibers that keeps every turn of the Node event loop short, so that a busy service still
 * answers its health checks, accepts connections and fires its timers on time.
 *
 * Effect's default scheduler runs a resumed fiber in a microtask. Under load that makes a turn of the event loop as
 * long as all the fiber work its I/O callbacks resume: a server with 200 fetches in flight can take the responses of
 * all 200 in one poll phase and spend 50 ms or more before the loop reaches its timers or accepts a connection, and
 * every request that arrives meanwhile waits. This scheduler gives each turn a time slice (4 ms by default): fiber
 * work runs in microtasks as before until the turn has spent its slice, and what is left waits for a `setImmediate`,
 * which runs after the poll phase has taken its I/O callbacks, then gets a fresh slice. The loop then turns every
 * slice or so, whatever the load: pending I/O is polled, timers fire, and the work is the same, only interleaved.
 *
 * One queue serves every fiber, in order within a priority, lower priorities first (as `Scheduler.PriorityBuckets`
 * orders them); a fiber yields after `FiberRef.currentMaxOpsBeforeYield` operations as under the default scheduler.
 * A task is never cut: the slice is checked between tasks, so one long synchronous step still holds the loop (move
 * those to a worker with `Blocking` or `CpuPool`). It is the Node counterpart of keeping asyncio callbacks short
 * under a slow-callback warning, done by the runtime rather than by every callback.
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import type * as Scheduler from "effect/Scheduler"
import { performance } from "node:perf_hooks"
import * as internal from "./internal/timeSlicedScheduler.js"

/**
 * How a time-sliced scheduler is set up.
 *
 * @example
 * ```ts
 * import { TimeSlicedScheduler } from "@spindle/node"
 *
 * const options: TimeSlicedScheduler.Options = { slice: "2 millis" }
 * const scheduler = TimeSlicedScheduler.make(options)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Fiber work a turn of the event loop may run before the rest waits for the next turn. Default 4 ms. */
  readonly slice?: Duration.DurationInput | undefined
  /**
   * The clock the slice is measured with, in milliseconds (default `performance.now`). It runs below Effect's
   * runtime, so it cannot be Effect's `Clock`; a test passes a clock of its own.
   */
  readonly now?: (() => number) | undefined
}

/**
 * The slice a turn gets when `Options.slice` is not given: 4 ms, short against the 20 ms and more at which a loop's
 * delay starts to show in request latencies, long against the microseconds of one fiber's step.
 *
 * @example
 * ```ts
 * import { TimeSlicedScheduler } from "@spindle/node"
 * import * as Duration from "effect/Duration"
 *
 * // Half the default slice: turns twice as often, for a service whose latency matters more than its throughput.
 * const scheduler = TimeSlicedScheduler.make({ slice: Duration.times(TimeSlicedScheduler.defaultSlice, 0.5) })
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultSlice: Duration.Duration = Duration.millis(4)

/**
 * A time-sliced scheduler, for `Effect.withScheduler` or `Layer.setScheduler`.
 *
 * @example
 * ```ts
 * import { TimeSlicedScheduler } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const work = Effect.forEach([1, 2, 3], (n) => Effect.succeed(n * 2), { concurrency: "unbounded" })
 *
 * // Every fiber the program forks inherits the scheduler.
 * const program = work.pipe(Effect.withScheduler(TimeSlicedScheduler.make({ slice: "4 millis" })))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options?: Options): Scheduler.Scheduler => {
  const slice = Duration.toMillis(Duration.decode(options?.slice ?? defaultSlice))
  if (!(slice > 0) || !Number.isFinite(slice)) {
    throw new RangeError(`TimeSlicedScheduler: slice must be > 0, got ${slice} ms`)
  }
  return new internal.TimeSlicedScheduler(slice, options?.now ?? (() => performance.now()))
}

/**
 * A layer that runs the fibers of whatever it is provided to on a time-sliced scheduler: the layers built after it,
 * and the fibers they fork (servers, workers), inherit it.
 *
 * @example
 * ```ts
 * import { TimeSlicedScheduler } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * const Worker = Layer.scopedDiscard(Effect.forkScoped(Effect.never))
 *
 * // The worker's fiber is forked while the layer is built, so it runs on the time-sliced scheduler.
 * const MainLive = Worker.pipe(Layer.provide(TimeSlicedScheduler.layer()))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<never> => Layer.setScheduler(make(options))

/**
 * How long this process's event loop was held up while an effect ran. A live timing test on a busy machine cannot
 * rule out being descheduled for hundreds of milliseconds; what it can do is measure that stall and widen its bound
 * by exactly that much (by nothing on a calm machine), instead of guessing a fixed slack.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { monitorEventLoopDelay } from "node:perf_hooks"

/**
 * Runs `effect` and returns its value with the longest event-loop delay seen meanwhile, in whole milliseconds
 * (rounded up; sampled every 10 ms by `perf_hooks.monitorEventLoopDelay`).
 *
 * @example
 * ```ts
 * import * as Stall from "@spindle/testkit/Stall"
 * import * as Effect from "effect/Effect"
 *
 * // A live bound on a 100 ms sleep: 50 ms of slack, plus whatever stall the machine imposed meanwhile.
 * const program = Effect.gen(function*() {
 *   const started = performance.now()
 *   const [, stallMs] = yield* Stall.measure(Effect.sleep("100 millis"))
 *   return performance.now() - started < 100 + 50 + stallMs
 * })
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category measuring
 */
export const measure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<readonly [A, number], E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: 10 })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.map(effect, (a) => [a, Math.ceil(histogram.max / 1e6)] as const),
    (histogram) => Effect.sync(() => histogram.disable())
  )

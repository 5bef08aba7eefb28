/**
 * The one error every Spindle limit fails with when a caller has waited longer than its `maxWait` for a permit,
 * a token, a lock or a resource: the caller ran nothing and holds nothing, so it is safe to retry or shed.
 *
 * `Bulkhead`, `Limiter`, `KeyedLimiter`, `KeyedMutex`, `TokenBucket` and `ResourcePool` take a `maxWait` option per
 * instance (Resilience4j's `maxWaitDuration`): it bounds the time spent queueing, never the time the effect runs. A
 * caller served at once never starts a timer; the callers that do wait share one timer fiber per limit, however
 * many they are.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * The kinds of limit that can time a waiter out.
 *
 * @example
 * ```ts
 * import type { WaitTimeout } from "@spindle/core"
 *
 * const kinds: ReadonlyArray<WaitTimeout.Module> = ["Bulkhead", "Limiter", "KeyedLimiter"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Module = "Bulkhead" | "Limiter" | "KeyedLimiter" | "KeyedMutex" | "TokenBucket" | "ResourcePool"

/**
 * A caller waited `maxWait` for a limit and was not served: it ran nothing and holds nothing (its place in the
 * queue is gone, no token, permit or resource was taken), and the callers behind it move up.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxWait: "20 millis", name: "reports" })
 *   const [, second] = yield* Effect.all([
 *     bulkhead.run(Effect.sleep("100 millis")),
 *     Effect.flip(bulkhead.run(Effect.void))
 *   ], { concurrency: 2 })
 *   return second.message
 * })
 *
 * Effect.runPromise(program).then(console.log) // 'Waited 20ms for Bulkhead "reports" without being served'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class WaitTimeoutError extends Data.TaggedError("WaitTimeoutError")<{
  /** The kind of limit that timed the caller out. */
  readonly module: Module
  /** The limit's `name`. */
  readonly name: string
  /** The key waited for (`KeyedLimiter`, `KeyedMutex`); `undefined` for the others. */
  readonly key: unknown
  /** The limit's `maxWait`. */
  readonly maxWait: Duration.Duration
}> {
  override get message(): string {
    const key = this.key === undefined ? "" : ` (key ${String(this.key)})`
    return `Waited ${Duration.format(this.maxWait)} for ${this.module} "${this.name}"${key} without being served`
  }
}

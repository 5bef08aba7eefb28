/**
 * Server hints about when to try again, readable from any error.
 *
 * An error that knows how long the other side asked us to wait (an HTTP `429`/`503` with `Retry-After`, an open
 * circuit breaker, a rate-limit store) implements `RetryAfter` by carrying a duration under `RetryAfterTypeId`.
 * `RetryPolicy` then waits at least that long before the next attempt, capped by its `retryAfterMax`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"

/**
 * @example
 * ```ts
 * import { RetryAfter } from "@spindle/core"
 * import * as Data from "effect/Data"
 * import * as Duration from "effect/Duration"
 *
 * // An error that knows how long the server asked us to wait.
 * class RateLimited extends Data.TaggedError("RateLimited")<{ readonly wait: Duration.Duration }>
 *   implements RetryAfter.RetryAfter
 * {
 *   get [RetryAfter.RetryAfterTypeId]() {
 *     return this.wait
 *   }
 * }
 *
 * console.log(RetryAfter.isRetryAfter(new RateLimited({ wait: Duration.seconds(2) }))) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const RetryAfterTypeId: unique symbol = Symbol.for("@spindle/core/RetryAfter")

/**
 * @example
 * ```ts
 * import { RetryAfter } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 *
 * const hint: { readonly [K in RetryAfter.RetryAfterTypeId]: Duration.Duration } = {
 *   [RetryAfter.RetryAfterTypeId]: Duration.seconds(5)
 * }
 *
 * console.log(RetryAfter.isRetryAfter(hint)) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type RetryAfterTypeId = typeof RetryAfterTypeId

/**
 * An error carrying how long to wait before trying again.
 *
 * @example
 * ```ts
 * import { RetryAfter, RetryPolicy } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 * import * as Effect from "effect/Effect"
 *
 * class Throttled implements RetryAfter.RetryAfter {
 *   readonly _tag = "Throttled"
 *   constructor(readonly seconds: number) {}
 *   get [RetryAfter.RetryAfterTypeId]() {
 *     return Duration.seconds(this.seconds)
 *   }
 * }
 *
 * // RetryPolicy waits at least the hinted time (capped by retryAfterMax) before the next attempt.
 * const program = Effect.fail(new Throttled(1)).pipe(
 *   RetryPolicy.retry({ maxAttempts: 3, retryAfterMax: "30 seconds" })
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryAfter {
  readonly [RetryAfterTypeId]: Duration.Duration
}

/**
 * `true` when `u` carries a retry-after hint.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, RetryAfter } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 *
 * const open = new CircuitBreaker.CircuitOpen({ name: "api", retryAfter: Duration.seconds(5) })
 *
 * console.log(RetryAfter.isRetryAfter(open), RetryAfter.isRetryAfter(new Error("plain"))) // true false
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isRetryAfter = (u: unknown): u is RetryAfter =>
  Predicate.hasProperty(u, RetryAfterTypeId) && Duration.isDuration(u[RetryAfterTypeId])

/**
 * The hint carried by `u`, if any.
 *
 * @example
 * ```ts
 * import { RetryAfter } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 * import * as Option from "effect/Option"
 *
 * const hinted = { [RetryAfter.RetryAfterTypeId]: Duration.seconds(3) }
 *
 * console.log(Option.map(RetryAfter.get(hinted), Duration.toSeconds)) // { _id: "Option", _tag: "Some", value: 3 }
 * console.log(RetryAfter.get("no hint")) // { _id: "Option", _tag: "None" }
 * ```
 *
 * @since 0.1.0
 * @category getters
 */
export const get = (u: unknown): Option.Option<Duration.Duration> =>
  isRetryAfter(u) ? Option.some(u[RetryAfterTypeId]) : Option.none()

/**
 * Parses an HTTP `Retry-After` header: a non-negative integer number of seconds, or an HTTP date (read relative
 * to `nowMillis`; a date in the past means "now"). Anything else is `None`.
 *
 * @example
 * ```ts
 * import { RetryAfter } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 * import * as Option from "effect/Option"
 *
 * const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")
 * const seconds = (header: string | null) => Option.map(RetryAfter.parseHeader(header, now), Duration.toSeconds)
 *
 * console.log(seconds("120")) // Some(120)
 * console.log(seconds("Wed, 21 Oct 2015 07:29:00 GMT")) // Some(60)
 * console.log(seconds("soon")) // None
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseHeader = (value: string | null | undefined, nowMillis: number): Option.Option<Duration.Duration> => {
  if (value === null || value === undefined) return Option.none()
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) {
    const seconds = Number(trimmed)
    return Number.isSafeInteger(seconds) ? Option.some(Duration.seconds(seconds)) : Option.none()
  }
  // IMF-fixdate and the two obsolete formats all contain a weekday name and parse with Date.parse.
  if (!/^[A-Za-z]{3,9},? /.test(trimmed)) return Option.none()
  const at = Date.parse(trimmed)
  if (Number.isNaN(at)) return Option.none()
  return Option.some(Duration.millis(Math.max(0, at - nowMillis)))
}

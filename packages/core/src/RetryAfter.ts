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
 * @since 0.1.0
 * @category type ids
 */
export const RetryAfterTypeId: unique symbol = Symbol.for("@spindle/core/RetryAfter")

/**
 * @since 0.1.0
 * @category type ids
 */
export type RetryAfterTypeId = typeof RetryAfterTypeId

/**
 * An error carrying how long to wait before trying again.
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
 * @since 0.1.0
 * @category guards
 */
export const isRetryAfter = (u: unknown): u is RetryAfter =>
  Predicate.hasProperty(u, RetryAfterTypeId) && Duration.isDuration(u[RetryAfterTypeId])

/**
 * The hint carried by `u`, if any.
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

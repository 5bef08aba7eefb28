/**
 * Timeouts that interrupt: a per-attempt limit and an overall deadline that spans all attempts.
 *
 * `within(d)` sets a deadline for everything inside it, retries and backoff included; `attempt(d)` bounds one
 * attempt and is itself bounded by the deadline that remains, so after a retry the next attempt gets whatever
 * time is left. Both interrupt the work (its finalizers run) rather than abandon it, and fail with a typed
 * `TimeoutError` whose `limit` says which of the two fired.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Validate from "./internal/validate.js"

/**
 * A time limit fired and the work was interrupted: `limit` is `"attempt"` for a per-attempt timeout and
 * `"deadline"` for the overall deadline; `duration` is the limit that was set.
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const slow = Effect.sleep("1 second").pipe(Effect.as("done"))
 *
 * const program = slow.pipe(
 *   Deadline.attempt("20 millis"),
 *   Effect.catchTag("TimeoutError", (e) => Effect.succeed(`${e.limit}: ${e.message}`))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "attempt: Attempt timed out after 20ms"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Data.TaggedError("TimeoutError")<{
  readonly limit: "attempt" | "deadline"
  readonly duration: Duration.Duration
}> {
  override get message(): string {
    return this.limit === "attempt"
      ? `Attempt timed out after ${Duration.format(this.duration)}`
      : `Deadline of ${Duration.format(this.duration)} exceeded`
  }
}

/**
 * The deadline in effect, as clock milliseconds, and the duration it was set with.
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as FiberRef from "effect/FiberRef"
 *
 * const program = FiberRef.get(Deadline.currentDeadline).pipe(
 *   Effect.map((deadline) => deadline?.duration),
 *   Deadline.within("2 seconds")
 * )
 *
 * Effect.runPromise(program).then(console.log) // { _id: "Duration", _tag: "Millis", millis: 2000 }
 * ```
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentDeadline: FiberRef.FiberRef<
  { readonly at: number; readonly duration: Duration.Duration } | undefined
> = FiberRef.unsafeMake<{ readonly at: number; readonly duration: Duration.Duration } | undefined>(undefined)

/**
 * The deadline in effect (clock milliseconds), if any.
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * // Pass the deadline on to a downstream service (as a header, say).
 * const deadlineHeader = Effect.map(Deadline.current, Option.map((at) => new Date(at).toISOString()))
 *
 * const program = Effect.all([deadlineHeader, deadlineHeader.pipe(Deadline.within("5 seconds"))])
 *
 * Effect.runPromise(program).then(([outside, inside]) => console.log(Option.isNone(outside), Option.isSome(inside)))
 * // true true
 * ```
 *
 * @since 0.1.0
 * @category getters
 */
export const current: Effect.Effect<Option.Option<number>> = Effect.map(
  FiberRef.get(currentDeadline),
  (deadline) => deadline === undefined ? Option.none() : Option.some(deadline.at)
)

/**
 * Time left before the deadline in effect, if any (zero once it has passed).
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * // Skip optional work when less than 100 ms are left.
 * const enrich = Effect.gen(function*() {
 *   const left = yield* Deadline.remaining
 *   if (Option.isSome(left) && Duration.lessThan(left.value, "100 millis")) return "skipped"
 *   return "enriched"
 * })
 *
 * Effect.runPromise(enrich.pipe(Deadline.within("1 second"))).then(console.log) // "enriched"
 * ```
 *
 * @since 0.1.0
 * @category getters
 */
export const remaining: Effect.Effect<Option.Option<Duration.Duration>> = Effect.flatMap(
  FiberRef.get(currentDeadline),
  (deadline) =>
    deadline === undefined
      ? Effect.succeedNone
      : Effect.map(Clock.currentTimeMillis, (now) => Option.some(Duration.millis(Math.max(0, deadline.at - now))))
)

// Errors capture a stack trace when built, so they are only built when a limit fires.
const timeoutAfter = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  millis: number,
  limit: TimeoutError["limit"],
  duration: Duration.Duration
): Effect.Effect<A, E | TimeoutError, R> => {
  const onTimeout = () => new TimeoutError({ limit, duration })
  return millis <= 0
    ? Effect.fail(onTimeout())
    : Effect.timeoutFail(self, { duration: Duration.millis(millis), onTimeout })
}

/**
 * Runs `self` under an overall deadline of `duration` from now (or the enclosing deadline, if sooner), which
 * every `attempt` and retry inside it respects.
 *
 * @example
 * ```ts
 * import { Deadline, RetryPolicy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const flaky = Effect.fail("503")
 *
 * // The deadline spans every attempt and backoff: no retry starts after it, and a late attempt is cut short.
 * const program = flaky.pipe(
 *   Deadline.attempt("20 millis"),
 *   RetryPolicy.retry({ base: "10 millis", maxAttempts: 100 }),
 *   Deadline.within("100 millis"),
 *   Effect.either
 * )
 *
 * Effect.runPromise(program).then((result) => console.log(result._tag)) // "Left", well before 100 attempts
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const within: {
  (duration: Duration.DurationInput): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput): Effect.Effect<A, E | TimeoutError, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput) => {
  const millis = Validate.positiveDurationMillis("Deadline", "duration", duration)
  return Effect.flatMap(FiberRef.get(currentDeadline), (outer) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const mine = { at: now + millis, duration: Duration.millis(millis) }
      const deadline = outer !== undefined && outer.at <= mine.at ? outer : mine
      return timeoutAfter(
        Effect.locally(self, currentDeadline, deadline),
        deadline.at - now,
        "deadline",
        deadline.duration
      )
    }))
})

/**
 * Runs one attempt of `self` for at most `duration`, or for what remains of the deadline in effect if that is
 * shorter (then a timeout reports `limit: "deadline"`). With no time left it fails without starting `self`.
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * let calls = 0
 * // The first call hangs; the second answers at once.
 * const call = Effect.suspend(() => ++calls === 1 ? Effect.never : Effect.succeed(`answer after ${calls} calls`))
 *
 * const program = call.pipe(Deadline.attempt("20 millis"), Effect.retry({ times: 2 }))
 *
 * Effect.runPromise(program).then(console.log) // "answer after 2 calls"
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const attempt: {
  (duration: Duration.DurationInput): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TimeoutError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput): Effect.Effect<A, E | TimeoutError, R>
} = dual(2, <A, E, R>(self: Effect.Effect<A, E, R>, duration: Duration.DurationInput) => {
  const millis = Validate.positiveDurationMillis("Deadline", "duration", duration)
  const limit = Duration.millis(millis)
  return Effect.flatMap(FiberRef.get(currentDeadline), (deadline) => {
    if (deadline === undefined) return timeoutAfter(self, millis, "attempt", limit)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const left = deadline.at - now
      return left < millis
        ? timeoutAfter(self, left, "deadline", deadline.duration)
        : timeoutAfter(self, millis, "attempt", limit)
    })
  })
})

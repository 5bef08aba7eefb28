/**
 * Timeouts that interrupt: a per-attempt limit and an overall deadline that spans all attempts.
 *
 * `within(d)` sets a deadline for everything inside it, retries and backoff included; `attempt(d)` bounds one
 * attempt and is itself bounded by the deadline that remains, so after a retry the next attempt gets whatever
 * time is left. Both interrupt the work (its finalizers run) rather than abandon it, and fail with a typed
 * `TimeoutError` whose `limit` says which of the two fired. `attemptPromise` is the cooperative form for
 * Promise-based calls: it aborts the call's `AbortSignal` and fails at once.
 *
 * None of them forks a fiber: the work runs in the calling fiber, and its deadline is an entry in one timer shared
 * by every deadline on the same `Clock` (a `setTimeout` armed for the earliest with the live clock; a fiber
 * sleeping on the clock otherwise, so `TestClock` drives deadlines like any other sleep). When an entry fires, the
 * timer interrupts the calling fiber; the boundary of `attempt` or `within` turns exactly that interruption into
 * the `TimeoutError` once the work's finalizers have run, while an interruption from anywhere else stays an
 * interruption. Children the fiber had forked before the boundary are left running, as they would be if the work
 * ran in a fiber of its own. Only a fiber that is already being interrupted (one running a finalizer) still runs
 * the work in a fiber of its own, so that interruptible work there is timed out rather than stopped at once.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as DeadlineTimer from "./internal/deadlineTimer.js"
import * as Tracing from "./internal/tracing.js"
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

/**
 * Called when a boundary reports a timeout (a `Policy` counts and announces them): never on the path where the work
 * ends in time.
 *
 * @internal
 */
export type OnTimeout = (limit: TimeoutError["limit"], duration: Duration.Duration) => void

// Errors capture a stack trace when built, so they are only built when a limit fires. Defects raised while the
// work was being interrupted (a finalizer that died) are kept next to the timeout.
const timeoutCause = (
  cause: Cause.Cause<unknown> | undefined,
  limit: TimeoutError["limit"],
  duration: Duration.Duration,
  onTimeout: OnTimeout | undefined
): Cause.Cause<TimeoutError> => {
  if (onTimeout !== undefined) onTimeout(limit, duration)
  let result: Cause.Cause<TimeoutError> = Cause.fail(new TimeoutError({ limit, duration }))
  if (cause !== undefined) {
    for (const defect of Cause.defects(cause)) result = Cause.sequential(result, Cause.die(defect))
  }
  return result
}

// With a tracer of the application's installed, a bounded call is a span of its own (`Deadline.attempt`,
// `Deadline.within`, `Deadline.attemptPromise`): which limit bounds it, that limit, and the time left when it started.
const traceBounded = <A, E, R>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  effect: Effect.Effect<A, E, R>,
  name: string,
  limit: TimeoutError["limit"],
  duration: Duration.Duration,
  remainingMillis: number
): Effect.Effect<A, E, R> =>
  Tracing.tracedFiber(fiber) === undefined ? effect : Effect.withSpan(effect, name, {
    attributes: {
      "spindle.deadline.limit": limit,
      "spindle.deadline.duration_ms": Duration.toMillis(duration),
      "spindle.deadline.remaining_ms": remainingMillis
    },
    captureStackTrace: false
  })

// Runs `self` (already under `restore`) in the calling fiber with an entry in the clock's shared timer: no fork on
// any path. Must be called inside `uninterruptibleMask`, so that the entry is always taken out again or settled.
const timeoutAfter = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  timer: DeadlineTimer.DeadlineTimer,
  at: number,
  limit: TimeoutError["limit"],
  duration: Duration.Duration,
  onTimeout: OnTimeout | undefined
): Effect.Effect<A, E | TimeoutError, R> => {
  // A fiber that is being interrupted already (running a finalizer, say) would have interruptible work stopped at
  // once: such work runs in a fiber of its own, as `Effect.timeoutFail` runs it, which is how it always ran here.
  if (!Cause.isEmpty(fiber.getFiberRef(FiberRef.interruptedCause))) {
    return Effect.timeoutFail(self, {
      duration: Duration.millis(at - timer.now()),
      onTimeout: () => {
        if (onTimeout !== undefined) onTimeout(limit, duration)
        return new TimeoutError({ limit, duration })
      }
    })
  }
  const entry = DeadlineTimer.fiberEntry(at, fiber)
  timer.add(entry, fiber)
  return Effect.matchCauseEffect(self, {
    onFailure: (cause): Effect.Effect<never, E | TimeoutError> => {
      if (!entry.fired) {
        timer.remove(entry)
        return Effect.failCause(cause)
      }
      return Effect.flatMap(
        DeadlineTimer.settleFired(entry),
        (alone): Effect.Effect<never, E | TimeoutError> =>
          alone ? Effect.failCause(timeoutCause(cause, limit, duration, onTimeout)) : Effect.failCause(cause)
      )
    },
    onSuccess: (value): Effect.Effect<A, TimeoutError> => {
      if (!entry.fired) {
        timer.remove(entry)
        return Effect.succeed(value)
      }
      return Effect.flatMap(
        DeadlineTimer.settleFired(entry),
        (alone) => alone ? Effect.failCause(timeoutCause(undefined, limit, duration, onTimeout)) : Effect.succeed(value)
      )
    }
  })
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
  return withinMillis(self, millis, Duration.millis(millis), undefined)
})

/**
 * `within`, with its duration validated already (`limit` is `millis` as a `Duration`) and a hook called when it
 * reports a timeout.
 *
 * @internal
 */
export const withinMillis = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  millis: number,
  limit: Duration.Duration,
  onTimeout: OnTimeout | undefined
): Effect.Effect<A, E | TimeoutError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.withFiberRuntime<A, E | TimeoutError, R>((fiber) => {
      const timer = DeadlineTimer.timerOf(fiber)
      const now = timer.now()
      const outer = fiber.getFiberRef(currentDeadline)
      const deadline = outer !== undefined && outer.at <= now + millis ? outer : { at: now + millis, duration: limit }
      if (deadline.at <= now) {
        return Effect.failCause(timeoutCause(undefined, "deadline", deadline.duration, onTimeout))
      }
      return traceBounded(
        fiber,
        timeoutAfter(
          restore(Effect.locally(self, currentDeadline, deadline)),
          fiber,
          timer,
          deadline.at,
          "deadline",
          deadline.duration,
          onTimeout
        ),
        "Deadline.within",
        "deadline",
        deadline.duration,
        deadline.at - now
      )
    })
  )

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
  return attemptMillis(self, millis, Duration.millis(millis), undefined)
})

/**
 * `attempt`, with its duration validated already (`limit` is `millis` as a `Duration`) and a hook called when it
 * reports a timeout.
 *
 * @internal
 */
export const attemptMillis = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  millis: number,
  limit: Duration.Duration,
  onTimeout: OnTimeout | undefined
): Effect.Effect<A, E | TimeoutError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.withFiberRuntime<A, E | TimeoutError, R>((fiber) => {
      const timer = DeadlineTimer.timerOf(fiber)
      const now = timer.now()
      const deadline = fiber.getFiberRef(currentDeadline)
      if (deadline !== undefined && deadline.at - now < millis) {
        return deadline.at <= now
          ? Effect.failCause(timeoutCause(undefined, "deadline", deadline.duration, onTimeout))
          : traceBounded(
            fiber,
            timeoutAfter(restore(self), fiber, timer, deadline.at, "deadline", deadline.duration, onTimeout),
            "Deadline.attempt",
            "deadline",
            deadline.duration,
            deadline.at - now
          )
      }
      return traceBounded(
        fiber,
        timeoutAfter(restore(self), fiber, timer, now + millis, "attempt", limit, onTimeout),
        "Deadline.attempt",
        "attempt",
        limit,
        millis
      )
    })
  )

/**
 * Runs one Promise-based call for at most `duration` (or what remains of the deadline in effect, if shorter), with a
 * cooperative timeout: when the limit passes, the `AbortSignal` handed to the call is aborted (its reason is the
 * `TimeoutError`) and the waiting fiber fails with the typed error at once, without forking a fiber or waiting for
 * the promise to settle. A call that ignores the signal is abandoned, not stopped. Interrupting the fiber aborts
 * the signal too.
 *
 * As with `Effect.tryPromise`, a signal is only made when the function declares a parameter for it (making one
 * costs microseconds in Node). Rejections become `UnknownException`, or whatever `catch` maps them to.
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // A call that honours its signal, as fetch does: it settles when aborted.
 * const slowCall = (signal: AbortSignal) =>
 *   new Promise<string>((resolve, reject) => {
 *     const timer = setTimeout(() => resolve("late answer"), 1_000)
 *     signal.addEventListener("abort", () => {
 *       clearTimeout(timer)
 *       reject(signal.reason)
 *     })
 *   })
 *
 * const program = Deadline.attemptPromise(slowCall, "20 millis").pipe(
 *   Effect.catchTag("TimeoutError", (e) => Effect.succeed(`${e.limit}: ${e.message}`))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "attempt: Attempt timed out after 20ms"
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const attemptPromise: {
  <A>(
    evaluate: (signal: AbortSignal) => PromiseLike<A>,
    duration: Duration.DurationInput
  ): Effect.Effect<A, Cause.UnknownException | TimeoutError>
  <A, E>(
    options: { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E },
    duration: Duration.DurationInput
  ): Effect.Effect<A, E | TimeoutError>
} = <A, E>(
  options:
    | ((signal: AbortSignal) => PromiseLike<A>)
    | { readonly try: (signal: AbortSignal) => PromiseLike<A>; readonly catch: (error: unknown) => E },
  duration: Duration.DurationInput
): Effect.Effect<A, E | Cause.UnknownException | TimeoutError> => {
  const millis = Validate.positiveDurationMillis("Deadline", "duration", duration)
  const limit = Duration.millis(millis)
  const evaluate = typeof options === "function" ? options : options.try
  const onError: (error: unknown) => E | Cause.UnknownException = typeof options === "function"
    ? (error) => new Cause.UnknownException(error, "An unknown error occurred in Deadline.attemptPromise")
    : options.catch
  const withSignal = evaluate.length >= 1
  return Effect.withFiberRuntime((fiber) => {
    const timer = DeadlineTimer.timerOf(fiber)
    const now = timer.now()
    const deadline = fiber.getFiberRef(currentDeadline)
    if (deadline !== undefined && deadline.at - now < millis) {
      if (deadline.at <= now) return Effect.failCause(timeoutCause(undefined, "deadline", deadline.duration, undefined))
      return traceBounded(
        fiber,
        promiseCall(evaluate, onError, withSignal, fiber, timer, deadline.at, "deadline", deadline.duration),
        "Deadline.attemptPromise",
        "deadline",
        deadline.duration,
        deadline.at - now
      )
    }
    return traceBounded(
      fiber,
      promiseCall(evaluate, onError, withSignal, fiber, timer, now + millis, "attempt", limit),
      "Deadline.attemptPromise",
      "attempt",
      limit,
      millis
    )
  })
}

const unobserved = new AbortController().signal

const promiseCall = <A, E>(
  evaluate: (signal: AbortSignal) => PromiseLike<A>,
  onError: (error: unknown) => E,
  withSignal: boolean,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  timer: DeadlineTimer.DeadlineTimer,
  at: number,
  limit: TimeoutError["limit"],
  duration: Duration.Duration
): Effect.Effect<A, E | TimeoutError> =>
  // One parameter: `Effect.async` then makes no AbortController of its own.
  Effect.async<A, E | TimeoutError>((resume) => {
    const controller = withSignal ? new AbortController() : undefined
    const entry = DeadlineTimer.callbackEntry(at, () => {
      const error = new TimeoutError({ limit, duration })
      controller?.abort(error)
      resume(Effect.fail(error))
    })
    timer.add(entry, fiber)
    try {
      evaluate(controller === undefined ? unobserved : controller.signal).then(
        (value) => {
          if (entry.fired) return
          timer.remove(entry)
          resume(Effect.succeed(value))
        },
        (error) => {
          if (entry.fired) return
          timer.remove(entry)
          resume(Effect.suspend(() => Effect.fail(onError(error))))
        }
      )
    } catch (error) {
      timer.remove(entry)
      resume(Effect.suspend(() => Effect.fail(onError(error))))
      return
    }
    return Effect.sync(() => {
      timer.remove(entry)
      controller?.abort()
    })
  })

/**
 * Retry policies as `effect/Schedule`s: exponential backoff with a cap and the four jitter kinds of the AWS
 * architecture blog, limits by attempts and by total elapsed time, a typed predicate for retryable errors, and
 * server hints (`RetryAfter`) that raise the next delay, capped.
 *
 * Being plain schedules, they compose with `Effect.retry`, `Stream.retry` and `HttpClient.retry`. Randomness
 * comes from the `Random` service, so a seeded `Random` gives exact, reproducible delays. Every retry is logged
 * at debug level with its attempt and delay, and counted in `spindle_retries_total`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Interval from "effect/ScheduleInterval"
import * as Deadline from "./Deadline.js"
import * as Metrics from "./internal/metrics.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import * as RetryAfter from "./RetryAfter.js"

/**
 * How random the delays are. With `d = min(cap, base · factor^n)` for the n-th retry:
 * - `none`: `d`
 * - `full`: uniform in `[0, d]` (the usual choice: spreads clients best)
 * - `equal`: `d/2` plus uniform in `[0, d/2]` (never shorter than half)
 * - `decorrelated`: uniform in `[base, 3 · previous]`, capped (grows from the previous delay, not from `n`)
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 *
 * // `equal` never waits less than half the exponential delay; `full` spreads clients best.
 * const jitter: RetryPolicy.Jitter = "equal"
 *
 * const policy = RetryPolicy.resolve({ base: "100 millis", jitter })
 *
 * console.log(RetryPolicy.backoffMillis(policy, 2, 0, 0)) // 200 (half of 400, with the lowest random draw)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Jitter = "none" | "full" | "equal" | "decorrelated"

/**
 * A retry policy over errors of type `E`.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 *
 * interface HttpError {
 *   readonly _tag: "HttpError"
 *   readonly status: number
 * }
 *
 * const options: RetryPolicy.Options<HttpError> = {
 *   base: "100 millis",
 *   factor: 2,
 *   cap: "5 seconds",
 *   jitter: "full",
 *   maxAttempts: 5,
 *   maxElapsed: "30 seconds",
 *   retryable: (e) => e.status >= 500 || e.status === 429 || e.status === 408,
 *   retryAfterMax: "60 seconds",
 *   name: "upstream"
 * }
 *
 * const retryUpstream = RetryPolicy.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = unknown> {
  /** First delay before jitter. Default 100 ms. */
  readonly base?: Duration.DurationInput | undefined
  /** Growth per retry. Default 2. */
  readonly factor?: number | undefined
  /** Longest delay before jitter. Default 30 seconds. */
  readonly cap?: Duration.DurationInput | undefined
  /** Default `full`. */
  readonly jitter?: Jitter | undefined
  /** Attempts in all, the first included (so `1` never retries). Default 3. `Infinity` for no limit. */
  readonly maxAttempts?: number | undefined
  /** No retry starts later than this after the first failure. Default: no limit. */
  readonly maxElapsed?: Duration.DurationInput | undefined
  /** Which errors are worth retrying. Default: all. */
  readonly retryable?: ((error: E) => boolean) | undefined
  /** The longest server hint honoured; a longer one waits this long. Default 60 seconds. */
  readonly retryAfterMax?: Duration.DurationInput | undefined
  /** Label for the retry metric and logs. Default `"default"`. */
  readonly name?: string | undefined
}

/**
 * Why a policy stopped retrying, for callers that want to tell.
 *
 * @example
 * ```ts
 * import type { RetryPolicy } from "@spindle/core"
 *
 * const explain = (reason: RetryPolicy.StopReason): string => {
 *   switch (reason) {
 *     case "not_retryable":
 *       return "the error is final"
 *     case "max_attempts":
 *       return "out of attempts"
 *     case "max_elapsed":
 *       return "retried for too long"
 *     case "deadline":
 *       return "the deadline would pass before the next attempt"
 *   }
 * }
 *
 * console.log(explain("max_attempts")) // "out of attempts"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type StopReason = "not_retryable" | "max_attempts" | "max_elapsed" | "deadline"

/**
 * The resolved settings of a policy, in milliseconds.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 *
 * const policy: RetryPolicy.Resolved<unknown> = RetryPolicy.resolve({ base: "1 second", maxAttempts: 4 })
 *
 * console.log(policy.baseMillis, policy.capMillis, policy.jitter, policy.maxAttempts) // 1000 30000 "full" 4
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved<E> {
  readonly name: string
  readonly baseMillis: number
  readonly factor: number
  readonly capMillis: number
  readonly jitter: Jitter
  readonly maxAttempts: number
  readonly maxElapsedMillis: number
  readonly retryAfterMaxMillis: number
  readonly retryable: (error: E) => boolean
}

/**
 * Validates options (a bad value is a defect naming the field) and fills in the defaults.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 *
 * const policy = RetryPolicy.resolve() // every default
 *
 * console.log(policy.baseMillis, policy.factor, policy.maxAttempts, policy.retryAfterMaxMillis) // 100 2 3 60000
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = <E>(options: Options<E> = {}): Resolved<E> => {
  const baseMillis = Validate.durationOr("RetryPolicy", "base", options.base, 100)
  const capMillis = Validate.durationOr("RetryPolicy", "cap", options.cap, 30_000)
  const factor = options.factor ?? 2
  if (!Number.isFinite(factor) || factor < 1) Validate.illegal("RetryPolicy", `factor must be >= 1, got ${factor}`)
  const jitter = options.jitter ?? "full"
  if (!["none", "full", "equal", "decorrelated"].includes(jitter)) {
    Validate.illegal("RetryPolicy", `jitter must be none, full, equal or decorrelated, got ${String(jitter)}`)
  }
  return {
    name: options.name ?? "default",
    baseMillis,
    factor,
    capMillis: Math.max(capMillis, baseMillis),
    jitter,
    maxAttempts: Validate.positiveIntegerOr("RetryPolicy", "maxAttempts", options.maxAttempts, 3, true),
    maxElapsedMillis: Validate.durationOr("RetryPolicy", "maxElapsed", options.maxElapsed, Number.POSITIVE_INFINITY),
    retryAfterMaxMillis: Validate.durationOr("RetryPolicy", "retryAfterMax", options.retryAfterMax, 60_000),
    retryable: options.retryable ?? (() => true)
  }
}

interface State {
  readonly retries: number
  readonly startedAt: number
  readonly previousMillis: number
}

/**
 * The delay before retry number `retries + 1` (0-based `retries`), before any server hint, given a uniform
 * random number in `[0, 1)`.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 *
 * const policy = RetryPolicy.resolve({ base: "100 millis", cap: "1 second", jitter: "none" })
 *
 * // Delays before retries 1 to 5: 100 · 2^n, capped.
 * console.log([0, 1, 2, 3, 4].map((n) => RetryPolicy.backoffMillis(policy, n, 0, Math.random())))
 * // [100, 200, 400, 800, 1000]
 * ```
 *
 * @since 0.1.0
 * @category delays
 */
export const backoffMillis = <E>(
  policy: Resolved<E>,
  retries: number,
  previousMillis: number,
  random: number
): number => {
  const exponential = Math.min(policy.capMillis, policy.baseMillis * Math.pow(policy.factor, retries))
  switch (policy.jitter) {
    case "none":
      return exponential
    case "full":
      return random * exponential
    case "equal":
      return exponential / 2 + random * (exponential / 2)
    case "decorrelated": {
      const upper = Math.max(policy.baseMillis, previousMillis * 3)
      return Math.min(policy.capMillis, policy.baseMillis + random * (upper - policy.baseMillis))
    }
  }
}

const retries = Metric.counter("spindle_retries_total", {
  description: "Retries scheduled by a retry policy",
  incremental: true
})

/**
 * The metrics retry policies update, labelled `policy=<name>`.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const policy = RetryPolicy.make({ base: "1 millis", maxAttempts: 3, name: "docs" })
 *   yield* Effect.either(policy(Effect.fail("503")))
 *   const retries = yield* Metric.value(RetryPolicy.metrics.retries.pipe(Metric.tagged("policy", "docs")))
 *   return retries.count
 * })
 *
 * Effect.runPromise(program).then(console.log) // 2
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = { retries } as const

type Step =
  | { readonly _tag: "Retry"; readonly delayMillis: number; readonly next: State }
  | { readonly _tag: "Stop" }

/**
 * What a policy decided, for a caller that reports it (a `Policy` turns these into events). Called on the decision
 * path only: an attempt that succeeds calls neither.
 *
 * @internal
 */
export interface Hooks {
  /** A retry is scheduled: `attempt` (the first is 1) starts after `delayMillis`. */
  readonly onRetry: (attempt: number, delayMillis: number, error: unknown) => void
  /** The policy stops after `attempt` attempts and the error is final. */
  readonly onStop: (reason: StopReason, attempt: number, error: unknown) => void
}

/**
 * One decision of a policy, shared by the schedule and by `retry`: given the state after `state.retries`
 * retries and the latest error, retry after a delay or stop. Logs and counts what it decides.
 */
const decide = <E>(
  policy: Resolved<E>,
  labels: Metrics.Labels,
  now: number,
  error: E,
  previous: State | undefined,
  hooks: Hooks | undefined,
  /** Whether a retry decided here is reported as an event (`schedule`: Effect's retry sleeps, not the policy). */
  retryEvent: boolean
): Effect.Effect<Step> =>
  Effect.suspend(() => {
    const state: State = previous ?? { retries: 0, startedAt: now, previousMillis: policy.baseMillis }
    const traced = Tracing.traced()
    const stop = (reason: StopReason) => {
      if (hooks !== undefined) hooks.onStop(reason, state.retries + 1, error)
      if (traced !== undefined) {
        Tracing.event(traced, "RetryPolicy.stopped", {
          "spindle.retry.policy": policy.name,
          "spindle.retry.attempt": state.retries + 1,
          "spindle.retry.stop_reason": reason,
          "spindle.retry.reason": Tracing.reasonOf(error)
        })
      }
      return Effect.as(
        Effect.logDebug("retry policy stops").pipe(
          Effect.annotateLogs({ policy: policy.name, attempt: state.retries + 1, reason })
        ),
        stopped
      )
    }
    if (!policy.retryable(error)) return stop("not_retryable")
    if (state.retries + 1 >= policy.maxAttempts) return stop("max_attempts")
    return Effect.flatMap(policy.jitter === "none" ? Effect.succeed(0) : Random.next, (random) => {
      let delay = backoffMillis(policy, state.retries, state.previousMillis, random)
      const hint = RetryAfter.get(error)
      if (Option.isSome(hint)) {
        delay = Math.max(delay, Math.min(Duration.toMillis(hint.value), policy.retryAfterMaxMillis))
      }
      if (now + delay - state.startedAt > policy.maxElapsedMillis) return stop("max_elapsed")
      return Effect.flatMap(Deadline.current, (deadline) => {
        if (Option.isSome(deadline) && now + delay >= deadline.value) return stop("deadline")
        retries.unsafeUpdate(1, labels)
        if (hooks !== undefined) hooks.onRetry(state.retries + 2, delay, error)
        if (traced !== undefined && retryEvent) {
          Tracing.event(traced, "RetryPolicy.retrying", retryAttributes(policy.name, state.retries + 2, delay, error))
        }
        return Effect.as(
          Effect.logDebug("retrying").pipe(
            Effect.annotateLogs({ policy: policy.name, attempt: state.retries + 2, delayMs: Math.round(delay) })
          ),
          {
            _tag: "Retry",
            delayMillis: delay,
            next: { retries: state.retries + 1, startedAt: state.startedAt, previousMillis: delay }
          } as const
        )
      })
    })
  })

const stopped: Step = { _tag: "Stop" }

const retryAttributes = (name: string, attempt: number, delayMillis: number, error: unknown) => ({
  "spindle.retry.policy": name,
  "spindle.retry.attempt": attempt,
  "spindle.retry.delay_ms": delayMillis,
  "spindle.retry.reason": Tracing.reasonOf(error)
})

/**
 * The policy as a schedule fed with the failures of the effect it retries. Its output is the delay it chose.
 * It also stops when the next attempt would start after the `Deadline` in effect, if any.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * let attempts = 0
 * const flaky = Effect.suspend(() => ++attempts < 3 ? Effect.fail("503") : Effect.succeed(`ok after ${attempts}`))
 *
 * // The same policy as a Schedule, for Effect.retry, Stream.retry or HttpClient.retry.
 * const program = Effect.retry(flaky, RetryPolicy.schedule({ base: "10 millis", maxAttempts: 5 }))
 *
 * Effect.runPromise(program).then(console.log) // "ok after 3"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const schedule = <E>(options: Options<E> = {}): Schedule.Schedule<Duration.Duration, E> => {
  const policy = resolve(options)
  const labels = Metrics.labels("policy", policy.name)
  return Schedule.makeWithState<State | undefined, E, Duration.Duration>(
    undefined,
    (now, error, previous) =>
      Effect.map(decide(policy, labels, now, error, previous, undefined, true), (step) =>
        step._tag === "Stop"
          ? [previous, Duration.zero, ScheduleDecision.done] as const
          : [
            step.next,
            Duration.millis(step.delayMillis),
            ScheduleDecision.continueWith(Interval.after(now + step.delayMillis))
          ] as const)
  )
}

/**
 * Retries `self` with a policy: the same decisions as `schedule`, without a schedule driver, so that a call
 * that succeeds at once costs one error handler and nothing else.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * class HttpError {
 *   readonly _tag = "HttpError"
 *   constructor(readonly status: number) {}
 * }
 *
 * let calls = 0
 * const fetchUser = Effect.suspend(() => ++calls < 2 ? Effect.fail(new HttpError(503)) : Effect.succeed({ id: 1 }))
 *
 * const program = fetchUser.pipe(
 *   RetryPolicy.retry({ base: "10 millis", maxAttempts: 3, retryable: (e) => e.status >= 500 })
 * )
 *
 * Effect.runPromise(program).then(console.log) // { id: 1 }
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry: {
  <E>(options: Options<NoInfer<E>>): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, options: Options<NoInfer<E>>): Effect.Effect<A, E, R>
} = ((...args: Array<any>) => {
  if (Effect.isEffect(args[0])) return make(args[1])(args[0])
  return make(args[0])
}) as any

/**
 * Builds the `retry` combinator for a policy once, for callers that wrap many effects with the same policy.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Built once, applied to every call of a client.
 * const withRetries = RetryPolicy.make<string>({ base: "10 millis", maxAttempts: 2, name: "search" })
 *
 * const search = (q: string) => withRetries(q === "" ? Effect.fail("empty query") : Effect.succeed([q]))
 *
 * Effect.runPromise(search("effect")).then(console.log) // ["effect"]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E>(
  options: Options<E> = {}
): <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2, R> => makeWith(options, undefined)

/**
 * `make`, with hooks told what the policy decides.
 *
 * @internal
 */
export const makeWith = <E>(
  options: Options<E>,
  hooks: Hooks | undefined
): <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2, R> => {
  const policy = resolve(options)
  const labels = Metrics.labels("policy", policy.name)
  const onFailure = <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>, error: E2, state: State | undefined) =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(decide(policy, labels, now, error, state, hooks, false), (step) => {
        if (step._tag === "Stop") return Effect.fail(error)
        const sleep = Effect.sleep(Duration.millis(step.delayMillis))
        // The backoff is a span of its own (only with a tracer of the application's installed).
        return Effect.zipRight(
          Tracing.traced() === undefined ? sleep : Effect.withSpan(sleep, "RetryPolicy.backoff", {
            attributes: retryAttributes(policy.name, step.next.retries + 1, step.delayMillis, error),
            captureStackTrace: false
          }),
          attempt(self, step.next)
        )
      })
    })
  // The first attempt allocates one handler closure; the policy work happens only after a failure. The handler is
  // `catchAllCause`'s, which a success passes over at no cost (`catchAll`'s handles successes too, wrapping each
  // again): a cause of one failure, the usual one, is decided here as `catchAll` would pass it, any other through
  // `catchAll` itself.
  const attempt = <A, E2 extends E, R>(
    self: Effect.Effect<A, E2, R>,
    state: State | undefined
  ): Effect.Effect<A, E2, R> =>
    Effect.catchAllCause(self, (cause) =>
      Cause.isFailType(cause)
        ? onFailure(self, cause.error, state)
        : Effect.catchAll(Effect.failCause(cause), (error) => onFailure(self, error, state)))
  return (self) => attempt(self, undefined)
}

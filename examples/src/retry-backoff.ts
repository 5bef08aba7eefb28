// Seed pattern: "Retry Logic with Exponential Backoff" — growing, jittered delays, only for errors worth retrying.
import { Deadline, RetryAfter, RetryPolicy } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { pathToFileURL } from "node:url"

/**
 * The upstream answered with an error status (other than 429, see `RateLimited`).
 */
export class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {
  override get message(): string {
    return `HTTP ${this.status}`
  }
}

/**
 * The upstream answered `429 Too Many Requests`. It implements `RetryAfter`, so a `RetryPolicy` waits at least
 * `retryAfter` (capped by the policy's `retryAfterMax`) before trying again, however short its own backoff is.
 */
export class RateLimited extends Data.TaggedError("RateLimited")<{ readonly retryAfter: Duration.Duration }>
  implements RetryAfter.RetryAfter
{
  get [RetryAfter.RetryAfterTypeId](): Duration.Duration {
    return this.retryAfter
  }
  override get message(): string {
    return `HTTP 429, retry after ${Duration.format(this.retryAfter)}`
  }
}

/**
 * What a call to the upstream can fail with.
 */
export type ApiError = HttpError | RateLimited

/**
 * Which failures are worth another attempt: server errors (5xx), rate limiting (429, after the wait the server
 * asked for), and an attempt that timed out. A client error (400, 404, ...) will fail the same way every time,
 * and once the overall deadline has passed there is no time for another attempt.
 */
export const isRetryable = (error: ApiError | Deadline.TimeoutError): boolean => {
  switch (error._tag) {
    case "HttpError":
      return error.status >= 500
    case "RateLimited":
      return true
    case "TimeoutError":
      return error.limit === "attempt"
  }
}

/**
 * A response as the upstream sends it: a status, and for a 429 perhaps a `Retry-After` header (seconds, or an
 * HTTP date).
 */
export interface Response {
  readonly status: number
  readonly retryAfter?: string | undefined
}

/**
 * What the scripted upstream does on one call: answer with a response, or never answer.
 */
export type Step = Response | "hang"

/**
 * A simulated upstream that plays a script, one step per call (the last step repeats), and records the clock
 * time of every attempt: the retry delays are the gaps between them.
 */
export interface ScriptedUpstream {
  readonly call: Effect.Effect<string, ApiError>
  readonly attempts: Effect.Effect<ReadonlyArray<number>>
}

/**
 * Turns a response into a result, the way an HTTP client wrapper would: 2xx is a body, 429 is `RateLimited` with
 * its parsed `Retry-After` (none means no hint), anything else is an `HttpError`.
 */
export const toResult = (response: Response, nowMillis: number): Effect.Effect<string, ApiError> => {
  if (response.status >= 200 && response.status < 300) return Effect.succeed(`HTTP ${response.status}`)
  if (response.status === 429) {
    const hint = RetryAfter.parseHeader(response.retryAfter, nowMillis)
    return Effect.fail(new RateLimited({ retryAfter: Option.getOrElse(hint, () => Duration.zero) }))
  }
  return Effect.fail(new HttpError({ status: response.status }))
}

/**
 * Creates an upstream that plays `script`.
 */
export const scriptedUpstream = (script: ReadonlyArray<Step>): Effect.Effect<ScriptedUpstream> =>
  Effect.sync(() => {
    const attempts: Array<number> = []
    const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const step = script[Math.min(attempts.length, script.length - 1)]
      attempts.push(now)
      return step === "hang" ? Effect.never : toResult(step, now)
    })
    return { call, attempts: Effect.sync(() => attempts.slice()) }
  })

/**
 * The policy of this example: 100 ms, 200 ms, 400 ms, ... capped at 2 seconds, at most 5 attempts, only for
 * retryable errors. `jitter` picks how random each delay is.
 */
export const apiPolicy = (jitter: RetryPolicy.Jitter): RetryPolicy.Options<ApiError | Deadline.TimeoutError> => ({
  name: "api",
  base: "100 millis",
  factor: 2,
  cap: "2 seconds",
  maxAttempts: 5,
  jitter,
  retryable: isRetryable
})

/**
 * Calls the upstream, retrying under `policy`. With `jitter: "none"` the delays are exact (100, 200, 400, ...);
 * with `jitter: "full"` each delay is drawn uniformly below that, so many clients that failed together do not
 * come back together. When it gives up, the error is the last attempt's, typed.
 */
export const callWithRetry = (
  upstream: ScriptedUpstream,
  policy: RetryPolicy.Options<ApiError>
): Effect.Effect<string, ApiError> => upstream.call.pipe(RetryPolicy.retry(policy))

/**
 * The same policy as an `effect/Schedule`, for `Effect.retry` (and `Stream.retry`, `HttpClient.retry`): same
 * decisions, same delays.
 */
export const callWithSchedule = (
  upstream: ScriptedUpstream,
  policy: RetryPolicy.Options<ApiError>
): Effect.Effect<string, ApiError> => Effect.retry(upstream.call, RetryPolicy.schedule(policy))

/**
 * Runs `self` with a seeded random generator: jittered delays come from the `Random` service, so a seed makes
 * them reproducible (in a test, or to replay an incident).
 */
export const withSeed = (seed: unknown) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withRandom(self, Random.make(seed))

/**
 * Retries and time limits together: each attempt may take `attempt`, the whole call (attempts and delays) may
 * take `deadline`. An attempt that times out is retried; the policy does not start an attempt it would have to
 * begin after the deadline; a late attempt gets only the time left; and the error says which limit fired.
 */
export const callWithinDeadline = (
  upstream: ScriptedUpstream,
  limits: { readonly attempt: Duration.DurationInput; readonly deadline: Duration.DurationInput }
): Effect.Effect<string, ApiError | Deadline.TimeoutError> =>
  upstream.call.pipe(
    Deadline.attempt(limits.attempt),
    RetryPolicy.retry({ ...apiPolicy("none"), maxAttempts: Infinity }),
    Deadline.within(limits.deadline)
  )

/**
 * The delays between consecutive attempts.
 */
export const gaps = (times: ReadonlyArray<number>): Array<number> => times.slice(1).map((t, i) => t - times[i])

const showGaps = (times: ReadonlyArray<number>) => gaps(times).map((g) => Math.round(g)).join(", ")

/**
 * The runnable demo, on the real clock (a few seconds in all).
 */
export const main = Effect.gen(function*() {
  const flaky = yield* scriptedUpstream([{ status: 503 }, { status: 503 }, { status: 502 }, { status: 200 }])
  const result = yield* callWithRetry(flaky, apiPolicy("none"))
  yield* Console.log(`503, 503, 502, 200 without jitter: ${result}, delays (ms): ${showGaps(yield* flaky.attempts)}`)

  for (const seed of [7, 7, 8]) {
    const down = yield* scriptedUpstream([{ status: 503 }])
    const error = yield* Effect.flip(callWithRetry(down, apiPolicy("full")).pipe(withSeed(seed)))
    yield* Console.log(
      `always 503, full jitter, seed ${seed}: ${error.message}, delays: ${showGaps(yield* down.attempts)}`
    )
  }

  const notFound = yield* scriptedUpstream([{ status: 404 }, { status: 200 }])
  const missing = yield* Effect.flip(callWithRetry(notFound, apiPolicy("none")))
  yield* Console.log(`404: ${missing.message} after ${(yield* notFound.attempts).length} attempt, not retried`)

  const throttled = yield* scriptedUpstream([{ status: 429, retryAfter: "1" }, { status: 200 }])
  yield* callWithRetry(throttled, apiPolicy("none"))
  yield* Console.log(`429 with Retry-After: 1 → waited ${showGaps(yield* throttled.attempts)} ms, not 100`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

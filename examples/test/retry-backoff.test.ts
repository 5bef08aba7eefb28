import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import {
  apiPolicy,
  callWithinDeadline,
  callWithRetry,
  callWithSchedule,
  gaps,
  scriptedUpstream,
  withSeed
} from "../src/retry-backoff.js"
import type { ScriptedUpstream, Step } from "../src/retry-backoff.js"

// Runs `program` against a fresh upstream playing `script`, lets the test clock run far enough for every retry,
// and returns the outcome with the time of every attempt, in milliseconds since the program started.
const play = <A, E>(script: ReadonlyArray<Step>, program: (upstream: ScriptedUpstream) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const origin = yield* Clock.currentTimeMillis
    const upstream = yield* scriptedUpstream(script)
    const fiber = yield* Effect.fork(Effect.either(program(upstream)))
    yield* TestClock.adjust("1 hour")
    const attempts = (yield* upstream.attempts).map((t) => t - origin)
    return { result: yield* Fiber.join(fiber), attempts }
  })

const down: ReadonlyArray<Step> = [{ status: 503 }]

// The error a program ended with; fails the test if it succeeded.
const failureOf = <A, E>(result: Either.Either<A, E>): E =>
  Either.isLeft(result) ? result.left : assert.fail(`expected a failure, got ${String(result.right)}`)

// Jittered delays are fractions of a millisecond; the clock times they are read from carry rounding errors.
const assertSameDelays = (actual: ReadonlyArray<number>, expected: ReadonlyArray<number>, message: string) => {
  assert.strictEqual(actual.length, expected.length, message)
  actual.forEach((delay, n) => assert.closeTo(delay, expected[n], 1e-6, `${message} (delay ${n})`))
}

describe("retry-backoff", () => {
  it.effect("a flaky call is retried after 100, 200, 400 ms and its success returned", () =>
    Effect.gen(function*() {
      const upstream = yield* scriptedUpstream([{ status: 503 }, { status: 500 }, { status: 502 }, { status: 200 }])
      const fiber = yield* Effect.fork(callWithRetry(upstream, apiPolicy("none")))
      yield* TestClock.adjust("699 millis")
      assert.deepStrictEqual(yield* upstream.attempts, [0, 100, 300])
      assert.isNull(fiber.unsafePoll(), "the fourth attempt came early")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "HTTP 200")
      assert.deepStrictEqual(yield* upstream.attempts, [0, 100, 300, 700])
    }))

  it.effect("gives up after maxAttempts with the last error, typed; delays stop growing at the cap", () =>
    Effect.gen(function*() {
      const { attempts, result } = yield* play(down, (upstream) => callWithRetry(upstream, apiPolicy("none")))
      assert.deepStrictEqual(gaps(attempts), [100, 200, 400, 800])
      const error = failureOf(result)
      assert.isTrue(error._tag === "HttpError" && error.status === 503)

      const capped = yield* play(
        down,
        (upstream) => callWithRetry(upstream, { ...apiPolicy("none"), maxAttempts: 8 })
      )
      assert.deepStrictEqual(gaps(capped.attempts), [100, 200, 400, 800, 1600, 2000, 2000])
    }))

  it.effect("a client error is not retried, even after retryable ones", () =>
    Effect.gen(function*() {
      const notFound = yield* play(
        [{ status: 404 }, { status: 200 }],
        (upstream) => callWithRetry(upstream, apiPolicy("none"))
      )
      assert.deepStrictEqual(notFound.attempts, [0])
      assert.strictEqual(failureOf(notFound.result).message, "HTTP 404")

      const late = yield* play(
        [{ status: 503 }, { status: 400 }, { status: 200 }],
        (upstream) => callWithRetry(upstream, apiPolicy("none"))
      )
      assert.deepStrictEqual(late.attempts, [0, 100])
      assert.strictEqual(failureOf(late.result).message, "HTTP 400")
    }))

  it.effect("a 429 waits at least what Retry-After asks (seconds or HTTP date), capped by retryAfterMax", () =>
    Effect.gen(function*() {
      // The test clock starts at the epoch: this date ("Thu, 01 Jan 1970 00:00:03 GMT") is 3 s after it.
      const date = yield* play(
        [{ status: 503 }, { status: 429, retryAfter: new Date(3000).toUTCString() }, { status: 200 }],
        (upstream) => callWithRetry(upstream, apiPolicy("none"))
      )
      // The second attempt ran at 100 ms and was asked to come back at 3 s: it waited 2.9 s, not 200 ms.
      assert.deepStrictEqual(date.attempts, [0, 100, 3000])

      const seconds = yield* play(
        [{ status: 429, retryAfter: "2" }, { status: 200 }],
        (upstream) => callWithRetry(upstream, apiPolicy("none"))
      )
      assert.deepStrictEqual(seconds.attempts, [0, 2000])
      assert.deepStrictEqual(seconds.result, Either.right("HTTP 200"))

      const capped = yield* play(
        [{ status: 429, retryAfter: "3600" }, { status: 200 }],
        (upstream) => callWithRetry(upstream, { ...apiPolicy("none"), retryAfterMax: "30 seconds" })
      )
      assert.deepStrictEqual(capped.attempts, [0, 30_000])

      // A hint shorter than the backoff does not shorten it; a 429 without a hint is a plain backoff.
      const short = yield* play(
        [{ status: 503 }, { status: 429, retryAfter: "0" }, { status: 429 }, { status: 200 }],
        (upstream) => callWithRetry(upstream, apiPolicy("none"))
      )
      assert.deepStrictEqual(gaps(short.attempts), [100, 200, 400])
    }))

  it.effect("full jitter with a seeded Random: every delay below its exponential bound, the same for a seed", () =>
    Effect.gen(function*() {
      const run = (seed: number) =>
        Effect.map(
          play(down, (upstream) => callWithRetry(upstream, apiPolicy("full"))).pipe(withSeed(seed)),
          (r) => gaps(r.attempts)
        )
      const first = yield* run(42)
      // The same seed, drawn on its own, predicts each delay exactly: uniform in [0, 100 · 2^n).
      const random = Random.make(42)
      const expected: Array<number> = []
      for (let n = 0; n < 4; n++) expected.push((yield* random.next) * 100 * 2 ** n)
      assert.strictEqual(first.length, 4)
      first.forEach((gap, n) => {
        assert.closeTo(gap, expected[n], 1e-6, `delay ${n}`)
        assert.isAtMost(gap, 100 * 2 ** n)
      })
      assert.notDeepEqual(first, [100, 200, 400, 800], "the delays were not jittered")
      assertSameDelays(yield* run(42), first, "the same seed gave other delays")
      const other = yield* run(43)
      assert.isAbove(Math.abs(other[0] - first[0]), 1, "another seed gave the same delays")
    }))

  it.effect("RetryPolicy.schedule is the same policy for Effect.retry: same decisions, same delays", () =>
    Effect.gen(function*() {
      const script: ReadonlyArray<Step> = [{ status: 503 }, { status: 429, retryAfter: "1" }, { status: 200 }]
      const viaSchedule = yield* play(script, (upstream) => callWithSchedule(upstream, apiPolicy("none")))
      const viaRetry = yield* play(script, (upstream) => callWithRetry(upstream, apiPolicy("none")))
      assert.deepStrictEqual(viaSchedule.attempts, [0, 100, 1100])
      assert.deepStrictEqual(viaSchedule, viaRetry)

      const exhausted = yield* play(down, (upstream) => callWithSchedule(upstream, apiPolicy("none")))
      assert.deepStrictEqual(gaps(exhausted.attempts), [100, 200, 400, 800])
      const notRetried = yield* play([{ status: 404 }], (upstream) => callWithSchedule(upstream, apiPolicy("none")))
      assert.deepStrictEqual(notRetried.attempts, [0])

      const jittered = (program: typeof callWithRetry) =>
        Effect.map(
          play(down, (upstream) => program(upstream, apiPolicy("full"))).pipe(withSeed("s")),
          (r) => gaps(r.attempts)
        )
      assertSameDelays(yield* jittered(callWithSchedule), yield* jittered(callWithRetry), "schedule and retry differ")
    }))

  it.effect("per-attempt timeouts are retried inside an overall deadline, which ends the whole call", () =>
    Effect.gen(function*() {
      const { attempts, result } = yield* play(
        ["hang"],
        (upstream) => callWithinDeadline(upstream, { attempt: "300 millis", deadline: "1 second" })
      )
      // Attempts time out at 300 and 700 ms and are retried after 100 and 200 ms; the third starts at 900 ms with
      // only 100 ms left, and the deadline ends it.
      assert.deepStrictEqual(attempts, [0, 400, 900])
      const error = failureOf(result)
      assert.strictEqual(error._tag, "TimeoutError")
      assert.isTrue(error._tag === "TimeoutError" && error.limit === "deadline")
      assert.isTrue(error._tag === "TimeoutError" && Duration.toMillis(error.duration) === 1000)
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { Deadline, RetryAfter, RetryPolicy } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

class Boom extends Data.TaggedError("Boom")<{ readonly retryable: boolean }> {}

class Throttled extends Data.TaggedError("Throttled")<{ readonly after: Duration.Duration }>
  implements RetryAfter.RetryAfter
{
  get [RetryAfter.RetryAfterTypeId]() {
    return this.after
  }
}

// Runs an always-failing effect under `policy` and returns the clock times of its attempts.
const attemptTimes = <E>(error: E, options: RetryPolicy.Options<E>, horizon: Duration.DurationInput = "1 hour") =>
  Effect.gen(function*() {
    const times = yield* Ref.make<Array<number>>([])
    const fiber = yield* Clock.currentTimeMillis.pipe(
      Effect.flatMap((now) => Ref.update(times, (t) => [...t, now])),
      Effect.zipRight(Effect.fail(error)),
      RetryPolicy.retry(options),
      Effect.flip,
      Effect.fork
    )
    yield* TestClock.adjust(horizon)
    const last = yield* Fiber.join(fiber)
    return { times: yield* Ref.get(times), last }
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - times[i])

describe("RetryPolicy", () => {
  it.effect("exponential backoff without jitter: exact delays, capped, limited by attempts", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptTimes(new Boom({ retryable: true }), {
        jitter: "none",
        base: "100 millis",
        factor: 2,
        cap: "1 second",
        maxAttempts: 7
      })
      assert.deepStrictEqual(gaps(times), [100, 200, 400, 800, 1000, 1000])
    }))

  it.effect("full jitter draws each delay uniformly below the exponential, reproducibly for a seed", () =>
    Effect.gen(function*() {
      const options = { jitter: "full", base: "100 millis", cap: "10 seconds", maxAttempts: 6 } as const
      const run = () => attemptTimes(new Boom({ retryable: true }), options).pipe(Effect.withRandom(Random.make(42)))
      const first = gaps((yield* run()).times)
      // The same seed, drawn independently, predicts every delay.
      const random = Random.make(42)
      const expected: Array<number> = []
      for (let n = 0; n < 5; n++) {
        const u = yield* random.next
        expected.push(u * 100 * 2 ** n)
      }
      assert.strictEqual(first.length, 5)
      first.forEach((gap, n) => {
        assert.closeTo(gap, expected[n], 1e-6, `delay ${n}`)
        assert.isAtMost(gap, 100 * 2 ** n)
      })
      const again = gaps((yield* run()).times)
      again.forEach((gap, n) => assert.closeTo(gap, first[n], 1e-6))
    }))

  it.effect("equal and decorrelated jitter stay within their bounds", () =>
    Effect.gen(function*() {
      const policy = RetryPolicy.resolve({ base: "100 millis", cap: "5 seconds", jitter: "equal" })
      for (let n = 0; n < 6; n++) {
        const exp = Math.min(5000, 100 * 2 ** n)
        assert.strictEqual(RetryPolicy.backoffMillis(policy, n, 0, 0), exp / 2)
        assert.strictEqual(RetryPolicy.backoffMillis(policy, n, 0, 0.999999), exp / 2 + 0.999999 * exp / 2)
      }
      const decorrelated = RetryPolicy.resolve({ base: "100 millis", cap: "5 seconds", jitter: "decorrelated" })
      assert.strictEqual(RetryPolicy.backoffMillis(decorrelated, 3, 400, 0), 100)
      assert.strictEqual(RetryPolicy.backoffMillis(decorrelated, 3, 400, 0.5), 100 + 0.5 * 1100)
      assert.strictEqual(RetryPolicy.backoffMillis(decorrelated, 9, 4000, 0.9), 5000)
      const { times } = yield* attemptTimes(new Boom({ retryable: true }), {
        jitter: "decorrelated",
        base: "100 millis",
        cap: "5 seconds",
        maxAttempts: 8
      }).pipe(Effect.withRandom(Random.make("seed")))
      let previous = 100
      for (const gap of gaps(times)) {
        assert.isAtLeast(gap, 100 - 1)
        assert.isAtMost(gap, Math.min(5000, previous * 3) + 1)
        previous = gap
      }
    }))

  it.effect("stops when the next retry would start after maxElapsed", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptTimes(new Boom({ retryable: true }), {
        jitter: "none",
        base: "1 second",
        maxAttempts: Infinity,
        maxElapsed: "10 seconds"
      })
      // 1 + 2 + 4 = 7 s; the next retry would come at 15 s.
      assert.deepStrictEqual(times, [0, 1000, 3000, 7000])
    }))

  it.effect("does not retry errors the predicate rejects", () =>
    Effect.gen(function*() {
      const { last, times } = yield* attemptTimes(new Boom({ retryable: false }), {
        retryable: (error) => error.retryable,
        maxAttempts: 5
      })
      assert.deepStrictEqual(times, [0])
      assert.isFalse(last.retryable)
    }))

  it.effect("waits at least the server's Retry-After, capped by retryAfterMax", () =>
    Effect.gen(function*() {
      const longHint = yield* attemptTimes(new Throttled({ after: Duration.seconds(5) }), {
        jitter: "none",
        base: "100 millis",
        maxAttempts: 3
      })
      assert.deepStrictEqual(gaps(longHint.times), [5000, 5000])
      const capped = yield* attemptTimes(new Throttled({ after: Duration.minutes(10) }), {
        jitter: "none",
        base: "100 millis",
        maxAttempts: 2,
        retryAfterMax: "2 seconds"
      })
      assert.deepStrictEqual(gaps(capped.times), [2000])
      const shortHint = yield* attemptTimes(new Throttled({ after: Duration.millis(10) }), {
        jitter: "none",
        base: "300 millis",
        maxAttempts: 2
      })
      assert.deepStrictEqual(gaps(shortHint.times), [300])
    }))

  it.effect("counts retries in a metric", () =>
    Effect.gen(function*() {
      yield* attemptTimes(new Boom({ retryable: true }), { name: "counted", jitter: "none", maxAttempts: 4 })
      const value = yield* Metric.value(
        Metric.taggedWithLabels(RetryPolicy.metrics.retries, [MetricLabel.make("policy", "counted")])
      )
      assert.strictEqual(value.count, 3)
    }))

  it.effect("rejects invalid options naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.sync(() => RetryPolicy.schedule({ maxAttempts: 0 })))
      assert.include(String(exit), "maxAttempts must be a positive integer")
      const factor = yield* Effect.exit(Effect.sync(() => RetryPolicy.schedule({ factor: 0.5 })))
      assert.include(String(factor), "factor must be >= 1")
    }))
})

describe("RetryAfter.parseHeader", () => {
  it("reads seconds and HTTP dates, and refuses anything else", () => {
    const now = Date.parse("Wed, 25 Nov 2026 08:00:00 GMT")
    assert.deepStrictEqual(RetryAfter.parseHeader("120", now), Option.some(Duration.seconds(120)))
    assert.deepStrictEqual(RetryAfter.parseHeader(" 0 ", now), Option.some(Duration.seconds(0)))
    assert.deepStrictEqual(
      RetryAfter.parseHeader("Wed, 25 Nov 2026 08:00:30 GMT", now),
      Option.some(Duration.millis(30_000))
    )
    assert.deepStrictEqual(RetryAfter.parseHeader("Wed, 25 Nov 2026 07:00:00 GMT", now), Option.some(Duration.zero))
    assert.deepStrictEqual(RetryAfter.parseHeader("-5", now), Option.none())
    assert.deepStrictEqual(RetryAfter.parseHeader("1.5", now), Option.none())
    assert.deepStrictEqual(RetryAfter.parseHeader("soon", now), Option.none())
    assert.deepStrictEqual(RetryAfter.parseHeader("2026-11-25", now), Option.none())
    assert.deepStrictEqual(RetryAfter.parseHeader(undefined, now), Option.none())
  })
})

describe("Deadline", () => {
  it.effect("an attempt timeout interrupts the work and says which limit fired", () =>
    Effect.gen(function*() {
      const finalized = yield* Ref.make(false)
      const fiber = yield* Effect.never.pipe(
        Effect.onInterrupt(() => Ref.set(finalized, true)),
        Deadline.attempt("300 millis"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("299 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "TimeoutError")
      assert.strictEqual(error.limit, "attempt")
      assert.strictEqual(Duration.toMillis(error.duration), 300)
      assert.isTrue(yield* Ref.get(finalized))
    }))

  it.effect("the deadline spans attempts and backoff: each attempt gets what is left", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make<Array<number>>([])
      const interrupted = yield* Ref.make(0)
      const fiber = yield* Clock.currentTimeMillis.pipe(
        Effect.flatMap((now) => Ref.update(starts, (s) => [...s, now])),
        Effect.zipRight(Effect.never),
        Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)),
        Deadline.attempt("300 millis"),
        RetryPolicy.retry({ jitter: "none", base: "100 millis", maxAttempts: 10 }),
        Deadline.within("1 second"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      // 0–300 timed out, backoff 100; 400–700 timed out, backoff 200; 900–1000 cut short by the deadline.
      assert.deepStrictEqual(yield* Ref.get(starts), [0, 400, 900])
      assert.strictEqual(error.limit, "deadline")
      assert.strictEqual(Duration.toMillis(error.duration), 1000)
      assert.strictEqual(yield* Ref.get(interrupted), 3)
      assert.strictEqual(yield* Clock.currentTimeMillis, 2000)
    }))

  it.effect("does not start an attempt when no time is left, and nested deadlines keep the sooner", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make(0)
      const inner = Ref.update(ran, (n) => n + 1).pipe(Deadline.attempt("1 second"))
      const error = yield* Effect.sleep("500 millis").pipe(
        Effect.zipRight(inner),
        Deadline.within("10 seconds"),
        Deadline.within("500 millis"),
        Effect.flip,
        Effect.fork,
        Effect.tap(() => TestClock.adjust("1 second")),
        Effect.flatMap(Fiber.join)
      )
      assert.strictEqual(error.limit, "deadline")
      assert.strictEqual(Duration.toMillis(error.duration), 500)
      assert.strictEqual(yield* Ref.get(ran), 0)
      const left = yield* Deadline.remaining.pipe(Deadline.within("3 seconds"))
      assert.deepStrictEqual(left, Option.some(Duration.seconds(3)))
      assert.deepStrictEqual(yield* Deadline.remaining, Option.none())
    }))
})

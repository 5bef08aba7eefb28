import { assert, describe, it } from "@effect/vitest"
import type { Deadline, WaitTimeout } from "@spindle/core"
import { Bulkhead, CircuitBreaker, Policy, RetryPolicy, TokenBucket } from "@spindle/core"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Wait from "@spindle/testkit/Wait"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {}

/** Compile-time equality of two types. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
const typeIs = <T extends true>(_: T) => {}

/**
 * A scripted call: attempt `i` (from 1) records when it started, then does what `script(i)` says after `millis`:
 * answer, fail, or hang (`millis` undefined). Its finalizer records when it ran and whether it was interrupted.
 */
const scripted = <E>(
  script: (attempt: number) => { readonly millis?: number | undefined; readonly fail?: E }
) => {
  const starts: Array<number> = []
  const log: Array<string> = []
  let attempts = 0
  const call: Effect.Effect<string, E> = Effect.suspend(() => {
    const attempt = ++attempts
    const step = script(attempt)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      starts.push(now)
      const outcome: Effect.Effect<string, E> = step.millis === undefined
        ? Effect.never
        : Effect.zipRight(
          Effect.sleep(Duration.millis(step.millis)),
          step.fail === undefined ? Effect.succeed(`answer ${attempt}`) : Effect.fail(step.fail)
        )
      return Effect.onExit(outcome, (exit) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          Effect.sync(() => {
            if (Exit.isInterrupted(exit)) log.push(`attempt ${attempt} interrupted at ${at}`)
          })))
    })
  })
  return { call, starts, log, attempts: () => attempts }
}

describe("Policy: composition", () => {
  it.effect("make(options) applies the stages in the canonical order, whatever the order of the keys", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({
        fallback: { value: "fallback" },
        deadline: "10 seconds",
        retry: { maxAttempts: 2 },
        attemptTimeout: "1 second",
        bulkhead: { maxConcurrent: 1 },
        breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
        name: "ordered"
      })
      assert.deepStrictEqual(policy.stages, ["attemptTimeout", "breaker", "retry", "bulkhead", "deadline", "fallback"])
      assert.strictEqual(policy.name, "ordered")
      assert.strictEqual(policy.breaker?.name, "ordered")
      assert.strictEqual(policy.bulkhead?.name, "ordered")
    }))

  it.effect("each stage's error is in the error type only when the stage is present", () =>
    Effect.gen(function*() {
      const call = Effect.fail(new HttpError({ status: 503 })) as Effect.Effect<number, HttpError>
      const bare = yield* Policy.make({ retry: { maxAttempts: 1 } })
      const full = yield* Policy.make({
        attemptTimeout: "1 second",
        breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
        rateLimit: { limit: 10, interval: "1 second", maxWait: "1 second" },
        bulkhead: { maxConcurrent: 4, maxQueued: 10 }
      })
      const unboundedBulkhead = yield* Policy.make({
        bulkhead: { maxConcurrent: 4 },
        rateLimit: { limit: 1, interval: "1 second" }
      })
      const throughBare = bare.run(call)
      const throughFull = full.run(call)
      const throughUnbounded = unboundedBulkhead.run(call)
      typeIs<Equals<Effect.Effect.Error<typeof throughBare>, HttpError>>(true)
      typeIs<
        Equals<
          Effect.Effect.Error<typeof throughFull>,
          | HttpError
          | Deadline.TimeoutError
          | CircuitBreaker.CircuitOpen
          | WaitTimeout.WaitTimeoutError
          | Bulkhead.BulkheadRejected
        >
      >(true)
      typeIs<Equals<Effect.Effect.Error<typeof throughUnbounded>, HttpError>>(true)
      for (const through of [throughBare, throughFull, throughUnbounded]) {
        assert.strictEqual((yield* Effect.flip(through))._tag, "HttpError")
      }
    }))

  it.effect("a builder's stage predicates see exactly the errors that reach them", () =>
    Effect.gen(function*() {
      const seenByBreaker: Array<string> = []
      const seenByRetry: Array<string> = []
      const policy = yield* Policy.define<HttpError>("typed").pipe(
        Policy.attemptTimeout("100 millis"),
        Policy.breaker({
          policy: CircuitBreaker.consecutiveFailures(10),
          isFailure: (e) => {
            typeIs<Equals<typeof e, HttpError | Deadline.TimeoutError>>(true)
            seenByBreaker.push(e._tag)
            return e._tag === "TimeoutError" || e.status >= 500
          }
        }),
        Policy.retry({
          maxAttempts: 2,
          base: "10 millis",
          jitter: "none",
          retryable: (e) => {
            typeIs<Equals<typeof e, HttpError | Deadline.TimeoutError | CircuitBreaker.CircuitOpen>>(true)
            seenByRetry.push(e._tag)
            return true
          }
        }),
        Policy.make
      )
      const fiber = yield* Effect.fork(Effect.flip(policy.run(Effect.never as Effect.Effect<never, HttpError>)))
      yield* TestClock.adjust("210 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "TimeoutError")
      assert.deepStrictEqual(seenByBreaker, ["TimeoutError", "TimeoutError"])
      assert.deepStrictEqual(seenByRetry, ["TimeoutError", "TimeoutError"])
    }))

  it("a stage in the wrong order is a type error and a defect", () => {
    assert.throws(
      () =>
        Policy.define("wrong").pipe(
          // @ts-expect-error: the breaker goes inside the retry ('"breaker"' is not assignable to '"bulkhead" | …')
          Policy.retry({ maxAttempts: 2 }),
          Policy.breaker({ policy: CircuitBreaker.consecutiveFailures(1) })
        ),
      /breaker cannot come after retry/
    )
    assert.throws(
      () =>
        // @ts-expect-error: each stage at most once
        Policy.define("twice").pipe(Policy.retry(), Policy.retry()),
      /retry cannot come after retry/
    )
    Policy.define("after-fallback").pipe(
      // @ts-expect-error: nothing goes outside the fallback
      Policy.fallback({ value: 1 }),
      (self: Policy.Builder<unknown, never, "deadline">) => self
    )
  })

  it.effect("invalid options are a defect naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Policy.make({ attemptTimeout: "-1 seconds" }))
      assert.match(String(Exit.isFailure(exit) && Cause.isDie(exit.cause) ? exit.cause : ""), /attemptTimeout/)
      const hedge = yield* Effect.exit(Policy.make({ hedge: { delay: "10 millis", maxAttempts: 0 } }))
      assert.match(String(Exit.isFailure(hedge) ? hedge.cause : ""), /hedge\.maxAttempts/)
    }))

  it.effect("run builds what the stages build by hand: a retry through the breaker under a deadline", () =>
    Effect.gen(function*() {
      // Attempts at 0, 100, 300 ms time out after 50 ms each (jitter none: 100, 200 ms backoff) and trip the
      // breaker at the third; the deadline of 1 s cuts nothing.
      const { call, starts } = scripted<HttpError>(() => ({}))
      const policy = yield* Policy.make({
        attemptTimeout: "50 millis",
        breaker: { policy: CircuitBreaker.consecutiveFailures(3), cooldown: "10 seconds" },
        retry: { maxAttempts: 3, base: "50 millis", jitter: "none" },
        deadline: "1 second"
      })
      const fiber = yield* Effect.fork(Effect.flip(policy.run(call)))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.isTrue(error._tag === "TimeoutError" && error.limit === "attempt")
      assert.deepStrictEqual(starts, [0, 100, 250])
      assert.strictEqual((yield* policy.breaker!.state)._tag, "Open")
    }))

  it.effect("a shared breaker instance is used as it is, by every policy holding it", () =>
    Effect.gen(function*() {
      const shared = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(2), name: "shared" })
      const a = yield* Policy.define<string>("a").pipe(Policy.breaker(shared), Policy.make)
      const b = yield* Policy.define<string>("b").pipe(Policy.breaker(shared), Policy.make)
      yield* Effect.either(a.run(Effect.fail("down")))
      yield* Effect.either(b.run(Effect.fail("down")))
      const refused = yield* Effect.flip(a.run(Effect.succeed("never")))
      assert.isTrue(refused._tag === "CircuitOpen" && refused.name === "shared")
      assert.strictEqual(a.breaker, shared)
    }))

  it.effect("a rate limit takes a token per attempt, retries included", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 10 })
      const { call } = scripted<string>((i) => i < 3 ? { millis: 0, fail: "503" } : { millis: 0 })
      const policy = yield* Policy.define<string>("paced").pipe(
        Policy.rateLimit(bucket),
        Policy.retry({ maxAttempts: 3, base: "1 millis", jitter: "none" }),
        Policy.make
      )
      const fiber = yield* Effect.fork(policy.run(call))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "answer 3")
      assert.strictEqual(Math.round(yield* bucket.available), 7)
    }))

  it.effect("a layer provides the policy under a tag", () =>
    Effect.gen(function*() {
      const builder = Policy.define("layered").pipe(Policy.retry({ maxAttempts: 2 }))
      class Layered extends Context.Tag("Layered")<Layered, Policy.Of<typeof builder>>() {}
      const answer = yield* Effect.flatMap(Layered, (policy) => policy.run(Effect.succeed(42))).pipe(
        Effect.provide(Policy.layer(Layered, builder))
      )
      assert.strictEqual(answer, 42)
    }))
})

describe("Policy: hedging", () => {
  it.effect("starts a hedge every delay without an answer, at most maxAttempts, and the first answer wins", () =>
    Effect.gen(function*() {
      // Attempt 1 answers after 1 s, attempt 2 after 150 ms (at 250 ms), attempt 3 never.
      const { call, log, starts } = scripted<never>((i) => ({ millis: i === 1 ? 1000 : i === 2 ? 150 : undefined }))
      const policy = yield* Policy.define("hedged").pipe(
        Policy.hedge({ delay: "100 millis", maxAttempts: 3 }),
        Policy.make
      )
      const fiber = yield* policy.run(call).pipe(
        Effect.tap(() => Effect.sync(() => log.push("answered"))),
        Effect.fork
      )
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(starts, [0])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(starts, [0, 100])
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(starts, [0, 100, 200])
      yield* TestClock.adjust("49 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "answer 2")
      // The losers were interrupted at 250 ms, and their finalizers had run before the answer was returned.
      assert.deepStrictEqual(log, ["attempt 1 interrupted at 250", "attempt 3 interrupted at 250", "answered"])
    }))

  it.effect("never more than maxAttempts, however long the call hangs", () =>
    Effect.gen(function*() {
      const { call, log, starts } = scripted<never>(() => ({}))
      const policy = yield* Policy.define("capped").pipe(
        Policy.hedge({ delay: "10 millis", maxAttempts: 3 }),
        Policy.make
      )
      const fiber = yield* Effect.fork(policy.run(call))
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(starts, [0, 10, 20])
      // Interrupting the caller interrupts every attempt, finalizers run.
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(log.slice().sort(), [
        "attempt 1 interrupted at 3600000",
        "attempt 2 interrupted at 3600000",
        "attempt 3 interrupted at 3600000"
      ])
    }))

  it.effect("an error shouldHedge accepts starts the next attempt at once; one it refuses ends the call", () =>
    Effect.gen(function*() {
      // Attempt 1 fails with a 503 at 30 ms: attempt 2 starts then, not at 100 ms. Attempt 2 hangs; the delay runs
      // from its start, so attempt 3 starts at 130 ms and fails with a 404 at 140 ms: final, attempt 2 is interrupted.
      const { call, log, starts } = scripted<HttpError>((i) =>
        i === 1
          ? { millis: 30, fail: new HttpError({ status: 503 }) }
          : i === 2
          ? {}
          : { millis: 10, fail: new HttpError({ status: 404 }) }
      )
      const policy = yield* Policy.define<HttpError>("predicate").pipe(
        Policy.hedge({ delay: "100 millis", maxAttempts: 4, shouldHedge: (e) => e.status >= 500 }),
        Policy.make
      )
      const fiber = yield* Effect.fork(Effect.flip(policy.run(call)))
      yield* TestClock.adjust("30 millis")
      assert.deepStrictEqual(starts, [0, 30])
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(starts, [0, 30])
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(starts, [0, 30, 130])
      yield* TestClock.adjust("10 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.status, 404)
      assert.deepStrictEqual(log, ["attempt 2 interrupted at 140"])
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(starts.length, 3)
    }))

  it.effect("when every attempt fails with an error worth hedging, the last failure is the call's", () =>
    Effect.gen(function*() {
      const { call, starts } = scripted<string>((i) => ({ millis: i === 1 ? 150 : 200, fail: `failure ${i}` }))
      const policy = yield* Policy.define<string>("all-fail").pipe(
        Policy.hedge({ delay: "100 millis", maxAttempts: 2 }),
        Policy.make
      )
      const fiber = yield* Effect.fork(Effect.flip(policy.run(call)))
      yield* TestClock.adjust("299 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "failure 2")
      assert.deepStrictEqual(starts, [0, 100])
    }))

  it.effect("a zero delay starts every attempt at once; an infinite one hedges on errors only", () =>
    Effect.gen(function*() {
      const parallel = scripted<never>((i) => ({ millis: 100 - i * 10 }))
      const all = yield* Policy.define("parallel").pipe(Policy.hedge({ delay: 0, maxAttempts: 3 }), Policy.make)
      const fiber = yield* Effect.fork(all.run(parallel.call))
      yield* TestClock.adjust("70 millis")
      assert.deepStrictEqual(parallel.starts, [0, 0, 0])
      assert.strictEqual(yield* Fiber.join(fiber), "answer 3")

      const onErrors = scripted<string>((i) => i === 1 ? { millis: 500, fail: "503" } : { millis: 10 })
      const fallbackMode = yield* Policy.define<string>("on-errors").pipe(
        Policy.hedge({ delay: Duration.infinity, maxAttempts: 2 }),
        Policy.make
      )
      const second = yield* Effect.fork(fallbackMode.run(onErrors.call))
      yield* TestClock.adjust("500 millis")
      assert.deepStrictEqual(onErrors.starts, [70, 570])
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* Fiber.join(second), "answer 2")
    }))

  it.effect("each hedge has its own attempt timeout; the deadline interrupts them all", () =>
    Effect.gen(function*() {
      const { call, log, starts } = scripted<never>(() => ({}))
      const policy = yield* Policy.define("bounded").pipe(
        Policy.attemptTimeout("150 millis"),
        Policy.hedge({ delay: "100 millis", maxAttempts: 3, shouldHedge: () => false }),
        Policy.deadline("220 millis"),
        Policy.make
      )
      const fiber = yield* Effect.fork(Effect.flip(policy.run(call)))
      // Attempt 1's own timeout fires at 150 ms: a TimeoutError shouldHedge refuses, which ends the call.
      yield* TestClock.adjust("150 millis")
      const error = yield* Fiber.join(fiber)
      assert.isTrue(error._tag === "TimeoutError" && error.limit === "attempt")
      assert.deepStrictEqual(starts, [0, 100])
      assert.deepStrictEqual(log, ["attempt 1 interrupted at 150", "attempt 2 interrupted at 150"])

      const again = scripted<never>(() => ({}))
      const deadlineOnly = yield* Policy.define("deadline-only").pipe(
        Policy.hedge({ delay: "100 millis", maxAttempts: 3 }),
        Policy.deadline("250 millis"),
        Policy.make
      )
      const second = yield* Effect.fork(Effect.flip(deadlineOnly.run(again.call)))
      yield* TestClock.adjust("250 millis")
      const timeout = yield* Fiber.join(second)
      assert.isTrue(timeout._tag === "TimeoutError" && timeout.limit === "deadline")
      assert.deepStrictEqual(again.starts, [150, 250, 350])
      assert.deepStrictEqual(again.log.slice().sort(), [
        "attempt 1 interrupted at 400",
        "attempt 2 interrupted at 400",
        "attempt 3 interrupted at 400"
      ])
    }))

  it.effect("hedges through a breaker stop at an open circuit by default", () =>
    Effect.gen(function*() {
      const { call, starts } = scripted<string>(() => ({ millis: 0, fail: "503" }))
      const policy = yield* Policy.define<string>("guarded").pipe(
        Policy.breaker({ policy: CircuitBreaker.consecutiveFailures(1) }),
        Policy.hedge({ delay: "100 millis", maxAttempts: 3 }),
        Policy.make
      )
      const fiber = yield* Effect.fork(Effect.flip(policy.run(call)))
      yield* TestClock.adjust("1 millis")
      // Attempt 1's 503 opened the circuit and started attempt 2, which the breaker refused: CircuitOpen is not
      // worth a third attempt, and ends the call.
      const error = yield* Fiber.join(fiber)
      assert.isTrue(error instanceof CircuitBreaker.CircuitOpen)
      assert.deepStrictEqual(starts, [0])
    }))
})

describe("Policy: fallback", () => {
  it.effect("by tag: the tags leave the error type, other errors still fail", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.define<HttpError>("tags").pipe(
        Policy.attemptTimeout("100 millis"),
        Policy.fallback({ on: ["TimeoutError"], value: "cached" as const }),
        Policy.make
      )
      const slow = Effect.never as Effect.Effect<number, HttpError>
      const result = policy.run(slow)
      typeIs<Equals<typeof result, Effect.Effect<number | "cached", HttpError>>>(true)
      const fiber = yield* Effect.fork(result)
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "cached")
      const failed = yield* Effect.flip(policy.run(Effect.fail(new HttpError({ status: 500 }))))
      assert.strictEqual(failed.status, 500)
    }))

  it.effect("by refinement, by predicate, or every failure; orElse makes an effect from the error", () =>
    Effect.gen(function*() {
      const byRefinement = yield* Policy.define<HttpError | string>("refinement").pipe(
        Policy.fallback({
          when: (e): e is string => typeof e === "string",
          orElse: (e) => Effect.succeed(e.length)
        }),
        Policy.make
      )
      const r = byRefinement.run(Effect.fail("four") as Effect.Effect<boolean, HttpError | string>)
      typeIs<Equals<typeof r, Effect.Effect<boolean | number, HttpError>>>(true)
      assert.strictEqual(yield* r, 4)

      const byPredicate = yield* Policy.define<HttpError>("predicate").pipe(
        Policy.fallback({ when: (e) => e.status === 404, value: null }),
        Policy.make
      )
      const p = byPredicate.run(Effect.fail(new HttpError({ status: 404 })) as Effect.Effect<string, HttpError>)
      typeIs<Equals<typeof p, Effect.Effect<string | null, HttpError>>>(true)
      assert.isNull(yield* p)
      assert.strictEqual((yield* Effect.flip(byPredicate.run(Effect.fail(new HttpError({ status: 500 }))))).status, 500)

      const every = yield* Policy.define<HttpError>("every").pipe(
        Policy.fallback({ orElse: (e) => Effect.fail(`wrapped ${e.status}`) }),
        Policy.make
      )
      const e = every.run(Effect.fail(new HttpError({ status: 502 })) as Effect.Effect<string, HttpError>)
      typeIs<Equals<typeof e, Effect.Effect<string, string>>>(true)
      assert.strictEqual(yield* Effect.flip(e), "wrapped 502")
    }))

  it.effect("defects are not handled", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({ fallback: { value: 0 } })
      const exit = yield* Effect.exit(policy.run(Effect.die("bug")))
      assert.isTrue(Exit.isFailure(exit))
    }))
})

describe("Policy: events", () => {
  it.scoped("retries scheduled and given up, timeouts and the fallback, in the order decided", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.define<string>("events").pipe(
        Policy.attemptTimeout("50 millis"),
        Policy.retry({ maxAttempts: 3, base: "100 millis", jitter: "none" }),
        Policy.fallback({ value: "fallback" }),
        Policy.make
      )
      const events = yield* policy.subscribe
      const fiber = yield* Effect.fork(policy.run(Effect.never as Effect.Effect<string, string>))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "fallback")
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
      assert.deepStrictEqual(
        seen.map((e) => {
          switch (e._tag) {
            case "TimedOut":
              return `TimedOut ${e.limit} ${Duration.toMillis(e.duration)}`
            case "RetryScheduled":
              return `RetryScheduled #${e.attempt} in ${Duration.toMillis(e.delay)}`
            case "RetryGaveUp":
              return `RetryGaveUp after ${e.attempts} (${e.reason})`
            default:
              return e._tag
          }
        }),
        [
          "TimedOut attempt 50",
          "RetryScheduled #2 in 100",
          "TimedOut attempt 50",
          "RetryScheduled #3 in 200",
          "TimedOut attempt 50",
          "RetryGaveUp after 3 (max_attempts)",
          "FallbackUsed"
        ]
      )
      assert.isTrue(seen.every((e) => e.policy === "events"))
    }))

  it.scoped("rejections by the bulkhead and the rate limit, from options and from instances", () =>
    Effect.gen(function*() {
      const fromOptions = yield* Policy.make({
        name: "shedding",
        rateLimit: { limit: 1, interval: "1 second", maxWait: 0 },
        bulkhead: { maxConcurrent: 1, maxQueued: 0 }
      })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 0, name: "shared-bulkhead" })
      const bucket = yield* TokenBucket.make({ limit: 1, interval: "1 second", maxWait: 0, name: "shared-bucket" })
      const fromInstances = yield* Policy.define("instances").pipe(
        Policy.rateLimit(bucket),
        Policy.bulkhead(bulkhead),
        Policy.make
      )
      for (const policy of [fromOptions, fromInstances]) {
        const events = yield* policy.subscribe
        const slow = yield* Effect.fork(policy.run(Effect.sleep("10 millis")))
        yield* TestClock.adjust("1 millis")
        const shed = yield* Effect.flip(policy.run(Effect.void))
        assert.strictEqual(shed._tag, "BulkheadRejected")
        yield* TestClock.adjust("10 millis")
        yield* Fiber.join(slow)
        // The bucket's one token went to the first call.
        const waited = yield* Effect.flip(policy.run(Effect.void))
        assert.strictEqual(waited._tag, "WaitTimeoutError")
        const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
        assert.deepStrictEqual(seen.map((e) => e._tag === "Rejected" ? `${e.stage}: ${e.error._tag}` : e._tag), [
          "bulkhead: BulkheadRejected",
          "rateLimit: WaitTimeoutError"
        ])
      }
    }))

  it.scoped("hedges and breaker state changes", () =>
    Effect.gen(function*() {
      const { call } = scripted<string>((i) => i === 1 ? { millis: 200 } : { millis: 0, fail: "503" })
      const policy = yield* Policy.define<string>("watched").pipe(
        Policy.breaker({ policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 second" }),
        Policy.hedge({ delay: "100 millis", maxAttempts: 2 }),
        Policy.make
      )
      const events = yield* policy.subscribe
      const fiber = yield* Effect.fork(policy.run(call))
      yield* TestClock.adjust("100 millis")
      // Attempt 2 failed at once and opened the circuit; attempt 1 still answers at 200 ms.
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "answer 1")
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* policy.breaker!.state)._tag, "HalfOpen")
      // The breaker's changes reach subscribers through a fiber of their own: give it its turn.
      yield* Effect.yieldNow()
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
      assert.deepStrictEqual(
        seen.map((e) =>
          e._tag === "Hedged"
            ? `Hedged #${e.attempt} (${e.reason})`
            : e._tag === "BreakerStateChanged"
            ? `Breaker ${e.state._tag}`
            : e._tag
        ),
        ["Hedged #2 (delay)", "Breaker Open", "Breaker HalfOpen"]
      )
    }))

  it.scoped("events as a Stream, and nothing is kept for subscribers that come later", () =>
    Effect.gen(function*() {
      const policy = yield* Policy.make({ name: "streamed", attemptTimeout: "10 millis", fallback: { value: 0 } })
      // Decided with nobody subscribed: never published, never built.
      const before = yield* Effect.fork(policy.run(Effect.never))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(before)
      const collected = yield* Effect.fork(Stream.runCollect(Stream.take(policy.events, 2)))
      yield* Effect.yieldNow()
      const after = yield* Effect.fork(policy.run(Effect.never))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(after)
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      assert.deepStrictEqual(seen.map((e) => e._tag), ["TimedOut", "FallbackUsed"])
    }))
})

describe("Policy: metrics", () => {
  it.effect("timeouts, hedges and fallbacks under the policy's name; stages built from options carry it too", () =>
    Effect.gen(function*() {
      const name = "metrics-policy"
      const { call } = scripted<string>((i) => i === 1 ? {} : { millis: 0, fail: "503" })
      const policy = yield* Policy.make({
        name,
        attemptTimeout: "300 millis",
        breaker: { policy: CircuitBreaker.consecutiveFailures(100) },
        hedge: { delay: "100 millis", maxAttempts: 2 },
        retry: { maxAttempts: 2, base: "10 millis", jitter: "none" },
        fallback: { value: "fallback" }
      })
      const fiber = yield* Effect.fork(policy.run(call))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "fallback")
      const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
      assert.strictEqual(
        yield* count(Policy.metrics.timeouts.pipe(Metric.tagged("policy", name), Metric.tagged("limit", "attempt"))),
        1
      )
      assert.strictEqual(yield* count(Policy.metrics.hedges.pipe(Metric.tagged("policy", name))), 2)
      assert.strictEqual(yield* count(Policy.metrics.fallbacks.pipe(Metric.tagged("policy", name))), 1)
      assert.strictEqual(yield* count(RetryPolicy.metrics.retries.pipe(Metric.tagged("policy", name))), 1)
      const transitions = CircuitBreaker.metrics.transitions.pipe(Metric.tagged("breaker", name))
      assert.strictEqual(
        (yield* Metric.value(transitions.pipe(Metric.tagged("state", "open")))).count,
        0
      )
    }))
})

// Live: loopback HTTP against the testkit upstream, the first request of every fifth call held for 1 s. Hedging after
// 50 ms cuts the slowest call from the held request's latency to about the hedge's. Bounds are loose: a loaded machine
// slows every request, and may hedge a fast one too (its hedge is fast as well).
describe("Policy: hedging over loopback HTTP", () => {
  it.scopedLive("cuts the tail latency: slow requests are overtaken by their hedge and closed", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const calls = 20
      const fetchText = (url: string) =>
        Effect.tryPromise({
          try: (signal) => fetch(url, { signal }).then((response) => response.text()),
          catch: () => new HttpError({ status: 0 })
        })
      // Call i's first request is held when i is a multiple of 5; every other request (hedges too) is fast.
      const callNumber = (i: number) => {
        let attempts = 0
        return Effect.suspend(() => {
          const held = ++attempts === 1 && i % 5 === 0
          return fetchText(upstream.url(`/item?call=${i}&latency=${held ? 1000 : 5}`))
        })
      }
      const slowest = (run: (call: Effect.Effect<string, HttpError>) => Effect.Effect<string, HttpError>) =>
        Effect.gen(function*() {
          let max = 0
          for (let i = 0; i < calls; i++) {
            const start = performance.now()
            yield* run(callNumber(i))
            max = Math.max(max, performance.now() - start)
          }
          return max
        })

      const plain = yield* slowest((call) => call)
      const policy = yield* Policy.define<HttpError>("live-hedge").pipe(
        Policy.hedge({ delay: "50 millis", maxAttempts: 2 }),
        Policy.make
      )
      const events = yield* policy.subscribe
      upstream.resetStats()
      const hedged = yield* slowest(policy.run)

      assert.isAtLeast(plain, 990)
      assert.isBelow(hedged, 500, `slowest hedged call: ${Math.round(hedged)} ms`)
      // Every held request lost to its hedge and was interrupted: its fetch aborted, its connection closed.
      const held = yield* Wait.until(
        "the held requests to be closed by the client",
        Effect.sync(() => {
          const held = upstream.requests().filter((r) => r.url.includes("latency=1000"))
          return held.length === 4 && held.every((r) => r.outcome === "client_closed") && held
        })
      )
      assert.strictEqual(held.length, 4)
      const hedges = Chunk.toReadonlyArray(yield* Queue.takeAll(events)).filter((e) => e._tag === "Hedged")
      assert.isAtLeast(hedges.length, 4)
      // Each call's first request and each held request's hedge reached the upstream. A fast call slowed past 50 ms
      // by a loaded machine is hedged too, and that hedge, interrupted as soon as the first answer won, may be cut
      // before its request was sent: the upstream sees at most one request per attempt started.
      const requests = upstream.requests().length
      assert.isAtLeast(requests, calls + 4)
      assert.isAtMost(requests, calls + hedges.length)
      assert.strictEqual(upstream.inFlight(), 0)
    }))
})

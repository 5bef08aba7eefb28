// @spindle/core as a user installs it: token bucket, retry policy, circuit breaker, bulkhead, a composed policy.
import { Bulkhead, CircuitBreaker, RetryPolicy, TokenBucket } from "@spindle/core"
import * as Policy from "@spindle/core/Policy"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import assert from "node:assert/strict"

class Boom extends Data.TaggedError("Boom")<{ readonly retryable: boolean }> {}

// A bucket of burst 2 refilling 10 a second admits two at once, then one every 100 ms (on the test clock).
const tokenBucket = Effect.gen(function*() {
  const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 2 })
  assert.equal(yield* bucket.tryTake(), true)
  assert.equal(yield* bucket.tryTake(), true)
  assert.equal(yield* bucket.tryTake(), false, "the burst is spent")
  const waiter = yield* Effect.fork(bucket.take())
  yield* TestClock.adjust("99 millis")
  assert.ok(Option.isNone(yield* Fiber.poll(waiter)), "no token before 100 ms")
  assert.equal(yield* bucket.waiting, 1)
  yield* TestClock.adjust("1 millis")
  yield* Fiber.join(waiter)
  assert.equal(yield* bucket.waiting, 0)
}).pipe(Effect.provide(TestContext.TestContext))

// Retries up to maxAttempts in all, and not at all for an error the policy does not retry.
const retryPolicy = Effect.gen(function*() {
  const attempts = yield* Ref.make(0)
  const failing = (retryable: boolean) =>
    Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(new Boom({ retryable })))
  const policy = { base: "1 millis", cap: "4 millis", maxAttempts: 4, retryable: (e: Boom) => e.retryable } as const

  const error = yield* Effect.flip(RetryPolicy.retry(failing(true), policy))
  assert.equal(error._tag, "Boom")
  assert.equal(yield* Ref.get(attempts), 4, "4 attempts in all")

  yield* Ref.set(attempts, 0)
  yield* Effect.flip(RetryPolicy.retry(failing(false), policy))
  assert.equal(yield* Ref.get(attempts), 1, "a non-retryable error is not retried")

  yield* Ref.set(attempts, 0)
  const flaky = Effect.flatMap(
    Ref.updateAndGet(attempts, (n) => n + 1),
    (n) => n < 3 ? Effect.fail(new Boom({ retryable: true })) : Effect.succeed(n)
  )
  assert.equal(yield* RetryPolicy.retry(flaky, policy), 3, "succeeds on the third attempt")
})

// Opens after 3 consecutive failures, then rejects without calling.
const circuitBreaker = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make<Boom>({
    name: "consumer",
    policy: CircuitBreaker.consecutiveFailures(3),
    cooldown: "1 minute"
  })
  const calls = yield* Ref.make(0)
  const call = Effect.zipRight(Ref.update(calls, (n) => n + 1), Effect.fail(new Boom({ retryable: true })))
  for (let i = 0; i < 3; i++) {
    assert.equal((yield* Effect.flip(breaker.run(call)))._tag, "Boom")
  }
  assert.equal((yield* breaker.state)._tag, "Open")
  const rejected = yield* Effect.flip(breaker.run(call))
  assert.equal(rejected._tag, "CircuitOpen")
  assert.equal(yield* Ref.get(calls), 3, "an open breaker does not call")
})

// At most 2 run at once, 1 waits; a fourth is rejected at once; all that were admitted finish.
const bulkhead = Effect.gen(function*() {
  const limited = yield* Bulkhead.make({ name: "consumer", maxConcurrent: 2, maxQueued: 1 })
  const gate = yield* Deferred.make<void>()
  const running = yield* Ref.make(0)
  const peak = yield* Ref.make(0)
  const task = Effect.gen(function*() {
    const now = yield* Ref.updateAndGet(running, (n) => n + 1)
    yield* Ref.update(peak, (p) => Math.max(p, now))
    yield* Deferred.await(gate)
    yield* Ref.update(running, (n) => n - 1)
  })
  const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(limited.run(task)))
  while ((yield* limited.queued) < 1) yield* Effect.yieldNow()
  assert.equal(yield* limited.inFlight, 2)
  const rejected = yield* Effect.flip(limited.run(task))
  assert.equal(rejected._tag, "BulkheadRejected")
  yield* Deferred.succeed(gate, undefined)
  yield* Fiber.joinAll(fibers)
  assert.equal(yield* Ref.get(peak), 2)

  // forEach bounds a large batch the same way.
  yield* Ref.set(peak, 0)
  const open = yield* Deferred.make<void>()
  yield* Deferred.succeed(open, undefined)
  const wide = yield* Bulkhead.make({ maxConcurrent: 3 })
  const results = yield* wide.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
    Effect.as(
      Effect.zipRight(
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(running, (n) => n + 1)
          yield* Ref.update(peak, (p) => Math.max(p, now))
        }),
        Effect.zipRight(Effect.sleep("1 millis"), Ref.update(running, (n) => n - 1))
      ),
      i * 2
    ))
  assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => i * 2))
  assert.equal(yield* Ref.get(peak), 3)
})

// One policy: attempt timeout, breaker, retry and a fallback for the open circuit, from a typed builder.
const policy = Effect.gen(function*() {
  const calls = yield* Ref.make(0)
  const resilient = yield* Policy.define<Boom>("consumer").pipe(
    Policy.attemptTimeout("1 second"),
    Policy.breaker({
      policy: CircuitBreaker.consecutiveFailures(2),
      isFailure: (e) => e._tag === "TimeoutError" || e.retryable
    }),
    // An open circuit is not retried (its retryAfter would be waited for): the fallback answers it.
    Policy.retry({ base: "1 millis", maxAttempts: 2, retryable: (e) => e._tag === "Boom" }),
    Policy.fallback({ on: ["CircuitOpen"], value: "fallback" }),
    Policy.make
  )
  const call = Effect.zipRight(Ref.update(calls, (n) => n + 1), Effect.fail(new Boom({ retryable: true })))
  assert.equal((yield* Effect.flip(resilient.run(call)))._tag, "Boom", "two attempts, then the breaker opens")
  assert.equal(yield* resilient.run(call), "fallback", "an open breaker is answered by the fallback")
  assert.equal(yield* Ref.get(calls), 2)
})

export const checks = [
  ["TokenBucket: burst 2, then one token per 100 ms", tokenBucket],
  ["RetryPolicy: maxAttempts and retryable", retryPolicy],
  ["CircuitBreaker: opens after 3 failures, then rejects", circuitBreaker],
  ["Bulkhead: bounds concurrency and sheds load", bulkhead],
  ["Policy: timeout, breaker, retry and fallback as one value", policy]
] as const

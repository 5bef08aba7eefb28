import { assert, describe, it } from "@effect/vitest"
import { Policy } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import { makePricing, priceOf, pricingPolicy } from "../src/resilience-policy.js"

describe("resilience-policy", () => {
  it.effect("a slow answer is overtaken by its hedge, and the slow call is interrupted", () =>
    Effect.gen(function*() {
      const pricing = yield* makePricing({ slowEvery: 5, slowMillis: 800, fastMillis: 20 })
      const policy = yield* Policy.make(pricingPolicy)
      // Call 1 is slow: at 100 ms the hedge (call 2) starts, answers at 120 ms and wins.
      const fiber = yield* Effect.fork(priceOf(policy, pricing, "sku-1"))
      yield* TestClock.adjust("119 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 105)
      assert.deepStrictEqual(yield* pricing.records, [
        { call: 2, startedAt: 100, endedAt: 120, outcome: "answered" },
        { call: 1, startedAt: 0, endedAt: 120, outcome: "interrupted" }
      ])
      // Calls 3 to 5 are fast: no hedge.
      for (let i = 0; i < 3; i++) {
        const next = yield* Effect.fork(priceOf(policy, pricing, "sku-1"))
        yield* TestClock.adjust("20 millis")
        assert.strictEqual(yield* Fiber.join(next), 105)
      }
      assert.strictEqual((yield* pricing.records).length, 5)
    }))

  it.scoped("an outage: retries, then the breaker opens and every caller gets the fallback at once", () =>
    Effect.gen(function*() {
      const pricing = yield* makePricing({ slowEvery: 0, slowMillis: 0, fastMillis: 20 })
      const policy = yield* Policy.make(pricingPolicy)
      const events = yield* policy.subscribe
      yield* pricing.outage("1 minute")

      // Caller 1: attempts at 0, 120 and 340 ms (100 and 200 ms of backoff) fail with 503s; the third is the last.
      const first = yield* Effect.fork(Effect.either(priceOf(policy, pricing, "sku-1")))
      yield* TestClock.adjust("360 millis")
      const error = yield* Fiber.join(first)
      assert.isTrue(error._tag === "Left" && error.left._tag === "QuoteError" && error.left.status === 503)

      // Caller 2: its first attempt is the fourth failure in a row and opens the breaker; the retry 100 ms later is
      // refused, and the breaker's 10 s cooldown ends after the caller's 2 s deadline: no more attempts, the
      // fallback answers.
      const second = yield* Effect.fork(priceOf(policy, pricing, "sku-1"))
      yield* TestClock.adjust("120 millis")
      assert.isNull(yield* Fiber.join(second))
      assert.strictEqual((yield* policy.breaker!.state)._tag, "Open")

      // Caller 3: refused at once, without calling the service.
      assert.isNull(yield* priceOf(policy, pricing, "sku-1"))
      assert.deepStrictEqual((yield* pricing.records).map((r) => [r.startedAt, r.outcome]), [
        [0, "failed"],
        [120, "failed"],
        [340, "failed"],
        [360, "failed"]
      ])

      yield* Effect.yieldNow()
      const decided = Chunk.toReadonlyArray(yield* Queue.takeAll(events)).map((event) => {
        switch (event._tag) {
          case "RetryScheduled":
            return `retry #${event.attempt}`
          case "RetryGaveUp":
            return `gave up: ${event.reason}`
          case "BreakerStateChanged":
            return `breaker ${event.state._tag}`
          default:
            return event._tag
        }
      })
      const ownDecisions = decided.filter((d) => !d.startsWith("breaker"))
      assert.deepStrictEqual(ownDecisions, [
        "retry #2",
        "retry #3",
        "gave up: max_attempts",
        "retry #2",
        "gave up: deadline",
        "FallbackUsed",
        "gave up: deadline",
        "FallbackUsed"
      ])
      assert.deepStrictEqual(decided.filter((d) => d.startsWith("breaker")), ["breaker Open"])
    }))

  it.effect("the bulkhead sheds the 25th concurrent caller, and the fallback answers it at once", () =>
    Effect.gen(function*() {
      const pricing = yield* makePricing({ slowEvery: 0, slowMillis: 0, fastMillis: 20 })
      const policy = yield* Policy.make(pricingPolicy)
      const callers = yield* Effect.fork(
        Effect.all(Array.from({ length: 25 }, () => priceOf(policy, pricing, "sku-1")), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* policy.bulkhead!.inFlight, 8)
      assert.strictEqual(yield* policy.bulkhead!.queued, 16)
      // 8 at once, 20 ms each: the 24 admitted callers end at 20, 40 and 60 ms.
      yield* TestClock.adjust("59 millis")
      const prices = yield* Fiber.join(callers)
      assert.strictEqual(prices.filter((price) => price === null).length, 1)
      assert.strictEqual(prices.filter((price) => price === 105).length, 24)
      assert.strictEqual((yield* pricing.records).at(-1)?.endedAt, 60)
    }))
})

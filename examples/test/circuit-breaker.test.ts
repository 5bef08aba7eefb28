import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import {
  checkStock,
  checkStockWithRetry,
  inventoryRetry,
  makeBreaker,
  makeDependency,
  recordStates
} from "../src/circuit-breaker.js"

describe("circuit-breaker", () => {
  it.scoped("trips after 3 server errors, fails fast while open, probes after the cooldown, closes on success", () =>
    Effect.gen(function*() {
      const dependency = yield* makeDependency
      const breaker = yield* makeBreaker
      const states = yield* recordStates(breaker)

      // A 404 is an answer, not a failure: it never trips the breaker.
      for (let i = 0; i < 5; i++) {
        const error = yield* Effect.flip(checkStock(breaker, dependency, "missing-1"))
        assert.isTrue(error._tag === "DependencyError" && error.status === 404)
      }
      assert.strictEqual((yield* breaker.state)._tag, "Closed")

      yield* dependency.outage("6 seconds")
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(checkStock(breaker, dependency, "sku-1"))
        assert.strictEqual(error._tag, "DependencyError")
      }
      assert.strictEqual((yield* breaker.state)._tag, "Open")

      // Open: calls fail at once, without reaching the dependency, and say when to come back.
      const refused = yield* Effect.flip(checkStock(breaker, dependency, "sku-1"))
      assert.strictEqual(refused._tag, "CircuitOpen")
      assert.isTrue(refused._tag === "CircuitOpen" && Duration.toMillis(refused.retryAfter) === 5000)
      assert.deepStrictEqual(yield* dependency.received, { total: 8, failed: 3 })
      yield* TestClock.adjust("4999 millis")
      const stillOpen = yield* Effect.flip(checkStock(breaker, dependency, "sku-1"))
      assert.isTrue(stillOpen._tag === "CircuitOpen" && Duration.toMillis(stillOpen.retryAfter) === 1)

      // After the cooldown one probe goes through; the outage is not over, so it opens again for twice as long.
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* breaker.state)._tag, "HalfOpen")
      assert.strictEqual((yield* Effect.flip(checkStock(breaker, dependency, "sku-1")))._tag, "DependencyError")
      const reopened = yield* Effect.flip(checkStock(breaker, dependency, "sku-1"))
      assert.isTrue(reopened._tag === "CircuitOpen" && Duration.toMillis(reopened.retryAfter) === 10_000)

      // The dependency recovered at 6 s; the probe at 15 s succeeds and closes the circuit.
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* checkStock(breaker, dependency, "sku-1"), "sku-1: 12 in stock")
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
      assert.strictEqual(yield* checkStock(breaker, dependency, "sku-2"), "sku-2: 12 in stock")
      assert.deepStrictEqual(yield* dependency.received, { total: 11, failed: 4 })

      assert.deepStrictEqual(yield* states, ["Closed", "Open", "HalfOpen", "Open", "HalfOpen", "Closed"])
    }))

  it.effect("one caller retrying through the breaker waits for each probe instead of its own backoff", () =>
    Effect.gen(function*() {
      const dependency = yield* makeDependency
      const breaker = yield* makeBreaker
      yield* dependency.outage("6 seconds")
      const fiber = yield* Effect.fork(checkStockWithRetry(breaker, dependency, "sku-42"))
      // Attempts at 0, 100 and 300 ms fail and trip the breaker (open until 5.3 s); the attempt at 700 ms is told
      // to wait 4.6 s; the probe at 5.3 s fails (open until 15.3 s); the attempt at 6.9 s waits 8.4 s; the probe
      // at 15.3 s succeeds.
      yield* TestClock.adjust("15299 millis")
      assert.isNull(fiber.unsafePoll())
      assert.deepStrictEqual(yield* dependency.received, { total: 4, failed: 4 })
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "sku-42: 12 in stock")
      assert.deepStrictEqual(yield* dependency.received, { total: 5, failed: 4 })
    }))

  it.effect("callers sharing one breaker send the failing dependency 4 calls instead of 60", () =>
    Effect.gen(function*() {
      const callers = Array.from({ length: 10 }, (_, i) => `sku-${i}`)

      // Without a breaker: every caller retries on its own schedule until the dependency is back at 6 s, and all
      // are done at 6.3 s.
      const alone = yield* makeDependency
      yield* alone.outage("6 seconds")
      const unguarded = yield* Effect.fork(
        Effect.forEach(callers, (sku) => inventoryRetry(alone.call(sku)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("6299 millis")
      assert.isNull(unguarded.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Fiber.join(unguarded)).length, 10)
      // Attempts at 0, 0.1, 0.3, 0.7, 1.5, 3.1 s fail and the one at 6.3 s succeeds, for each of the 10.
      assert.deepStrictEqual(yield* alone.received, { total: 70, failed: 60 })

      // With one breaker: 3 failures trip it, and every caller waits for the probe; the probe at 5 s fails, the one
      // at 15 s succeeds and lets everyone in.
      const shared = yield* makeDependency
      const breaker = yield* makeBreaker
      yield* shared.outage("6 seconds")
      const guarded = yield* Effect.fork(
        Effect.forEach(callers, (sku) => checkStockWithRetry(breaker, shared, sku), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("14999 millis")
      assert.isNull(guarded.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Fiber.join(guarded)).length, 10)
      assert.deepStrictEqual(yield* shared.received, { total: 14, failed: 4 })
      // The price: everyone waited for the probe at 15 s though the dependency was back at 6 s. A longer cooldown
      // protects a struggling dependency more and recovers later; `cooldownFactor` grows it only while it fails.
    }))
})

import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import {
  fetchAllOrFallback,
  fetchAllWithin,
  fetchInSequenceWithin,
  fetchWithTimeout,
  makeUpstream
} from "../src/timeouts.js"
import type { Endpoint } from "../src/timeouts.js"

const endpoints: Array<Endpoint> = [
  { name: "users", latency: "100 millis" },
  { name: "orders", latency: "300 millis" },
  { name: "reports", latency: "10 seconds" }
]

describe("timeouts", () => {
  it.effect("a call that answers within its limit returns its response and closes its connection normally", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const fiber = yield* Effect.fork(fetchWithTimeout(upstream, "fast", "150 millis", "2 seconds"))
      yield* TestClock.adjust("150 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "response from fast")
      assert.deepStrictEqual(yield* upstream.records, [
        { name: "fast", openedAt: 0, closedAt: 150, outcome: "completed" }
      ])
    }))

  it.effect("a slow call is interrupted exactly at its limit, with a typed TimeoutError { limit: \"attempt\" }", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      // Alongside the error, how many connections were open at the moment the caller received it.
      const fiber = yield* Effect.fork(
        Effect.zip(Effect.flip(fetchWithTimeout(upstream, "slow", "1 minute", "2 seconds")), upstream.open)
      )
      yield* TestClock.adjust("1999 millis")
      assert.isNull(fiber.unsafePoll(), "timed out early")
      assert.strictEqual(yield* upstream.open, 1)
      yield* TestClock.adjust("1 millis")
      const [error, openWhenReturned] = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "TimeoutError")
      assert.strictEqual(error.limit, "attempt")
      assert.strictEqual(Duration.toMillis(error.duration), 2000)
      // The finalizer ran before the error was returned: the connection closed at 2 s, not at 1 minute.
      assert.strictEqual(openWhenReturned, 0, "the timeout returned before the call was interrupted")
      assert.deepStrictEqual(yield* upstream.records, [
        { name: "slow", openedAt: 0, closedAt: 2000, outcome: "interrupted" }
      ])
    }))

  it.effect("a group that finishes before its deadline returns every result, in input order", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const fiber = yield* Effect.fork(fetchAllWithin(upstream, endpoints.slice(0, 2).reverse(), "1 second"))
      yield* TestClock.adjust("299 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), ["response from orders", "response from users"])
    }))

  it.effect("one deadline over the group: at the deadline every call still running is interrupted", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const fiber = yield* Effect.fork(
        Effect.zip(Effect.flip(fetchAllWithin(upstream, endpoints, "1 second")), upstream.open)
      )
      yield* TestClock.adjust("999 millis")
      assert.isNull(fiber.unsafePoll())
      assert.strictEqual(yield* upstream.open, 1, "users and orders have answered, reports is still waiting")
      yield* TestClock.adjust("1 millis")
      const [error, openWhenReturned] = yield* Fiber.join(fiber)
      assert.strictEqual(error.limit, "deadline")
      assert.strictEqual(Duration.toMillis(error.duration), 1000)
      assert.strictEqual(openWhenReturned, 0, "the deadline returned before the group was interrupted")
      assert.deepStrictEqual(yield* upstream.records, [
        { name: "users", openedAt: 0, closedAt: 100, outcome: "completed" },
        { name: "orders", openedAt: 0, closedAt: 300, outcome: "completed" },
        { name: "reports", openedAt: 0, closedAt: 1000, outcome: "interrupted" }
      ])
      // Nothing was left running in the background: later time changes nothing.
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* upstream.records).length, 3)
    }))

  it.effect("a per-call limit degrades one call to a fallback; the overall deadline fails the whole group", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const partial = yield* Effect.fork(
        fetchAllOrFallback(upstream, endpoints, { perCall: "500 millis", deadline: "2 seconds" })
      )
      yield* TestClock.adjust("500 millis")
      assert.deepStrictEqual(yield* Fiber.join(partial), [
        { _tag: "Answered", name: "users", body: "response from users" },
        { _tag: "Answered", name: "orders", body: "response from orders" },
        { _tag: "TimedOut", name: "reports", after: Duration.millis(500) }
      ])
      assert.deepStrictEqual((yield* upstream.records).map((r) => [r.name, r.closedAt, r.outcome]), [
        ["users", 100, "completed"],
        ["orders", 300, "completed"],
        ["reports", 500, "interrupted"]
      ])

      // With a deadline shorter than the per-call limit, the deadline fires first and is not mistaken for a
      // per-call timeout: the group fails instead of returning fallbacks.
      const strict = yield* Effect.fork(
        Effect.flip(fetchAllOrFallback(upstream, endpoints, { perCall: "5 seconds", deadline: "200 millis" }))
      )
      yield* TestClock.adjust("200 millis")
      const error = yield* Fiber.join(strict)
      assert.strictEqual(error.limit, "deadline")
      assert.strictEqual(Duration.toMillis(error.duration), 200)
      assert.strictEqual(yield* upstream.open, 0)
    }))

  it.effect("in a sequence under one deadline, the last step gets only the time that is left", () =>
    Effect.gen(function*() {
      const upstream = yield* makeUpstream
      const steps: Array<Endpoint> = [
        { name: "a", latency: "400 millis" },
        { name: "b", latency: "400 millis" },
        { name: "c", latency: "400 millis" }
      ]
      const fiber = yield* Effect.fork(
        Effect.flip(fetchInSequenceWithin(upstream, steps, { perCall: "500 millis", deadline: "1 second" }))
      )
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      // c started at 800 ms with 200 ms left: it fails at the deadline, not 500 ms after it started.
      assert.strictEqual(error.limit, "deadline")
      assert.deepStrictEqual(yield* upstream.records, [
        { name: "a", openedAt: 0, closedAt: 400, outcome: "completed" },
        { name: "b", openedAt: 400, closedAt: 800, outcome: "completed" },
        { name: "c", openedAt: 800, closedAt: 1000, outcome: "interrupted" }
      ])
    }))
})

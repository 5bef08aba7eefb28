import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { traced } from "../src/tracing.js"

describe("tracing", () => {
  it.effect("prints the span tree: waits are spans with their time, decisions events", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(traced)
      // Request 1 fails at once, backs off 100 ms, then answers after 20 ms; request 2 waits for the permit.
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("20 millis")
      yield* TestClock.adjust("20 millis")
      const { results, tree } = yield* Fiber.join(fiber)
      assert.deepStrictEqual(results, [1, 2])
      assert.deepStrictEqual(tree, [
        "request 1 (120 ms)",
        "  · Limiter.admitted in_flight=1",
        "  Policy.run (120 ms) policy.name=upstream",
        "    RetryPolicy.backoff (100 ms) retry.policy=upstream retry.attempt=2 retry.delay_ms=100 retry.reason=UpstreamError",
        "request 2 (140 ms)",
        "  Limiter.wait (120 ms) limiter.name=upstream limiter.queued=0 limiter.wait_ms=120",
        "  Policy.run (20 ms) policy.name=upstream"
      ])
    }))
})

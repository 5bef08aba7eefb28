import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, RetryAfter } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

class Upstream extends Data.TaggedError("Upstream")<{ readonly status: number }> {}

const fail = (status = 503) => Effect.fail(new Upstream({ status }))

describe("CircuitBreaker", () => {
  it.effect("opens after consecutive failures and refuses calls with the time until the next probe", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(3),
        cooldown: "5 seconds"
      })
      const calls = yield* Ref.make(0)
      const call = (effect: Effect.Effect<void, Upstream>) =>
        breaker.run(Effect.zipRight(Ref.update(calls, (n) => n + 1), effect)).pipe(Effect.flip)
      yield* call(fail())
      yield* call(fail())
      yield* Effect.either(breaker.run(Effect.void))
      yield* call(fail())
      yield* call(fail())
      assert.strictEqual((yield* breaker.state)._tag, "Closed", "a success resets the count")
      yield* call(fail())
      assert.strictEqual((yield* breaker.state)._tag, "Open")
      yield* TestClock.adjust("2 seconds")
      const refused = yield* call(fail())
      assert.strictEqual(refused._tag, "CircuitOpen")
      if (refused._tag === "CircuitOpen") {
        assert.strictEqual(Duration.toMillis(refused.retryAfter), 3000)
        assert.deepStrictEqual(RetryAfter.get(refused), Option.some(Duration.millis(3000)))
      }
      assert.strictEqual(yield* Ref.get(calls), 5, "the refused call never ran")
    }))

  it.effect("half-open admits the configured probes, closes on their success, re-opens on failure with growing cooldown", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "1 second",
        cooldownFactor: 2,
        cooldownMax: "3 seconds",
        halfOpenProbes: 2
      })
      yield* Effect.either(breaker.run(fail()))
      assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 1000, openings: 1 }))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* breaker.state)._tag, "HalfOpen")
      // Two probes in flight; a third caller is refused.
      const gate = yield* Deferred.make<void>()
      const probes = yield* Effect.forEach([1, 2], () => Effect.fork(breaker.run(Deferred.await(gate))))
      yield* Effect.yieldNow()
      const third = yield* Effect.flip(breaker.run(Effect.void))
      assert.strictEqual(third._tag, "CircuitOpen")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(probes)
      assert.strictEqual((yield* breaker.state)._tag, "Closed")

      // Failing probes re-open with cooldowns 1 s, 2 s, then capped at 3 s.
      yield* Effect.either(breaker.run(fail()))
      assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 2000, openings: 1 }))
      yield* TestClock.adjust("1 second")
      yield* Effect.either(breaker.run(fail()))
      assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 4000, openings: 2 }))
      yield* TestClock.adjust("2 seconds")
      yield* Effect.either(breaker.run(fail()))
      assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 7000, openings: 3 }))
      yield* TestClock.adjust("3 seconds")
      yield* breaker.run(Effect.void)
      yield* breaker.run(Effect.void)
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
      // Closing resets the cooldown.
      yield* Effect.either(breaker.run(fail()))
      assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 8000, openings: 1 }))
    }))

  it.effect("only errors the predicate counts trip it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make<Upstream>({
        policy: CircuitBreaker.consecutiveFailures(2),
        isFailure: (error) => error.status >= 500
      })
      for (let i = 0; i < 10; i++) yield* Effect.either(breaker.run(fail(404)))
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
      yield* Effect.either(breaker.run(fail(500)))
      yield* Effect.either(breaker.run(fail(502)))
      assert.strictEqual((yield* breaker.state)._tag, "Open")
    }))

  it.effect("failure ratio over a sliding window with a minimum throughput", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 10 }),
        cooldown: "1 second"
      })
      // 4 failures of 9 calls: under the minimum throughput, and under the ratio anyway.
      for (let i = 0; i < 5; i++) yield* breaker.run(Effect.void)
      for (let i = 0; i < 4; i++) yield* Effect.either(breaker.run(fail()))
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
      // The window slides: those calls are forgotten after 10 s.
      yield* TestClock.adjust("11 seconds")
      for (let i = 0; i < 9; i++) yield* Effect.either(breaker.run(fail()))
      assert.strictEqual((yield* breaker.state)._tag, "Closed", "9 calls are below the minimum throughput")
      yield* Effect.either(breaker.run(fail()))
      assert.strictEqual((yield* breaker.state)._tag, "Open")
    }))

  it.effect("an interrupted probe frees its slot: never stuck half-open", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "1 second"
      })
      yield* Effect.either(breaker.run(fail()))
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(breaker.run(Effect.never))
      yield* Effect.yieldNow()
      assert.strictEqual((yield* Effect.flip(breaker.run(Effect.void)))._tag, "CircuitOpen")
      yield* Fiber.interrupt(probe)
      assert.strictEqual((yield* breaker.state)._tag, "HalfOpen")
      yield* breaker.run(Effect.void)
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
    }))

  it.effect("a defect counts as a failure; interruption of a closed call counts as nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(2) })
      const running = yield* Effect.fork(breaker.run(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(running)
      yield* Effect.exit(breaker.run(Effect.die("bug")))
      assert.strictEqual((yield* breaker.state)._tag, "Closed")
      yield* Effect.exit(breaker.run(Effect.die("bug")))
      assert.strictEqual((yield* breaker.state)._tag, "Open")
    }))

  it.scoped("state changes are a stream and metrics", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        name: "observed",
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "1 second"
      })
      const subscribed = yield* Deferred.make<void>()
      const seen = yield* breaker.changes.pipe(
        Stream.tap(() => Deferred.succeed(subscribed, undefined)),
        Stream.take(4),
        Stream.runCollect,
        Effect.fork
      )
      yield* Deferred.await(subscribed)
      const openGauge = Metric.taggedWithLabels(CircuitBreaker.metrics.open, [MetricLabel.make("breaker", "observed")])
      yield* Effect.either(breaker.run(fail()))
      assert.strictEqual((yield* Metric.value(openGauge)).value, 1)
      yield* TestClock.adjust("1 second")
      yield* breaker.run(Effect.void)
      assert.strictEqual((yield* Metric.value(openGauge)).value, 0)
      const states = Chunk.toReadonlyArray(yield* Fiber.join(seen)).map((s) => s._tag)
      assert.deepStrictEqual(states, ["Closed", "Open", "HalfOpen", "Closed"])
      const opened = yield* Metric.value(Metric.taggedWithLabels(CircuitBreaker.metrics.transitions, [
        MetricLabel.make("breaker", "observed"),
        MetricLabel.make("state", "open")
      ]))
      assert.strictEqual(opened.count, 1)
    }))

  it.effect("rejects invalid options naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(0) }))
      assert.include(String(exit), "threshold must be a positive integer")
      const ratio = yield* Effect.exit(CircuitBreaker.make({
        policy: CircuitBreaker.failureRatio({ ratio: 1.5, window: "1 second", minimumThroughput: 1 })
      }))
      assert.include(String(ratio), "ratio must be in (0, 1]")
    }))
})

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

  describe("isolate and reset", () => {
    it.scoped("isolate holds the circuit open until reset: calls are refused as isolated, no cooldown ends it", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          name: "isolated",
          policy: CircuitBreaker.consecutiveFailures(1),
          cooldown: "1 second"
        })
        const subscribed = yield* Deferred.make<void>()
        const seen = yield* breaker.changes.pipe(
          Stream.tap(() => Deferred.succeed(subscribed, undefined)),
          Stream.take(3),
          Stream.runCollect,
          Effect.fork
        )
        yield* Deferred.await(subscribed)
        const calls = yield* Ref.make(0)
        const call = breaker.run(Ref.updateAndGet(calls, (n) => n + 1))
        const labels = [MetricLabel.make("breaker", "isolated")]
        const openGauge = Metric.taggedWithLabels(CircuitBreaker.metrics.open, labels)
        const rejected = Metric.taggedWithLabels(CircuitBreaker.metrics.rejections, labels)

        yield* breaker.isolate
        const isolated = CircuitBreaker.State.Open({ until: Infinity, openings: 0, isolated: true })
        assert.deepStrictEqual(yield* breaker.state, isolated)
        assert.strictEqual((yield* Metric.value(openGauge)).value, 1)
        const refused = yield* Effect.flip(call)
        assert.strictEqual(refused._tag, "CircuitOpen")
        assert.strictEqual(refused.isolated, true)
        assert.isTrue(Duration.equals(refused.retryAfter, Duration.infinity))
        assert.deepStrictEqual(RetryAfter.get(refused), Option.some(Duration.infinity))
        assert.strictEqual(refused.message, "Circuit \"isolated\" is isolated; calls are refused until it is reset")

        // Far past any cooldown: still isolated, never half-open.
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* breaker.state, isolated)
        assert.strictEqual((yield* Effect.flip(call))._tag, "CircuitOpen")
        // Isolating again changes nothing and reports nothing.
        yield* breaker.isolate
        assert.strictEqual(yield* Ref.get(calls), 0, "no refused call ran")
        assert.strictEqual((yield* Metric.value(rejected)).count, 2)

        yield* breaker.reset
        assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Closed())
        assert.strictEqual((yield* Metric.value(openGauge)).value, 0)
        assert.strictEqual(yield* call, 1)
        const states = Chunk.toReadonlyArray(yield* Fiber.join(seen))
        assert.deepStrictEqual(states, [CircuitBreaker.State.Closed(), isolated, CircuitBreaker.State.Closed()])
      }))

    it.effect("an open circuit's refusal does not say isolated", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1) })
        yield* Effect.either(breaker.run(fail()))
        const refused = yield* Effect.flip(breaker.run(Effect.void))
        assert.strictEqual(refused._tag, "CircuitOpen")
        assert.isFalse("isolated" in refused)
        assert.isFalse("isolated" in (yield* breaker.state))
      }))

    it.effect("isolating an open circuit cancels its cooldown; reset closes it and forgets its openings", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(1),
          cooldown: "1 second",
          cooldownFactor: 2
        })
        yield* Effect.either(breaker.run(fail()))
        yield* TestClock.adjust("1 second")
        yield* Effect.either(breaker.run(fail()))
        assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 3000, openings: 2 }))
        yield* breaker.isolate
        assert.deepStrictEqual(
          yield* breaker.state,
          CircuitBreaker.State.Open({ until: Infinity, openings: 2, isolated: true })
        )
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual((yield* Effect.flip(breaker.run(Effect.void)))._tag, "CircuitOpen")
        yield* breaker.reset
        // Now 11 s: the next opening has the base cooldown again.
        yield* Effect.either(breaker.run(fail()))
        assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 12_000, openings: 1 }))
        // Reset from open, without isolating first.
        yield* breaker.reset
        assert.strictEqual(yield* breaker.run(Effect.succeed("through")), "through")
      }))

    it.effect("isolating a half-open circuit: the probes in flight run to their end and decide nothing", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(1),
          cooldown: "1 second",
          halfOpenProbes: 2
        })
        yield* Effect.either(breaker.run(fail()))
        yield* TestClock.adjust("1 second")
        const succeeds = yield* Deferred.make<void>()
        const fails = yield* Deferred.make<void>()
        const good = yield* Effect.fork(breaker.run(Effect.as(Deferred.await(succeeds), "probed")))
        const bad = yield* Effect.fork(breaker.run(Effect.zipRight(Deferred.await(fails), fail())))
        yield* Effect.yieldNow()
        assert.strictEqual((yield* breaker.state)._tag, "HalfOpen")
        yield* breaker.isolate
        const isolated = CircuitBreaker.State.Open({ until: Infinity, openings: 1, isolated: true })
        assert.deepStrictEqual(yield* breaker.state, isolated)
        yield* Deferred.succeed(succeeds, undefined)
        yield* Deferred.succeed(fails, undefined)
        // Not interrupted: each probe's own outcome reaches its caller.
        assert.strictEqual(yield* Fiber.join(good), "probed")
        assert.strictEqual((yield* Effect.flip(Fiber.join(bad)))._tag, "Upstream")
        // A successful probe did not close it, a failed one did not re-open it with a cooldown.
        assert.deepStrictEqual(yield* breaker.state, isolated)
      }))

    it.effect("calls running across isolate and reset: uncounted while isolated, no probe slot carried over", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(2),
          cooldown: "1 second"
        })
        // A failure counted, then a call admitted while closed that fails once the circuit is isolated.
        yield* Effect.either(breaker.run(fail()))
        const gate = yield* Deferred.make<void>()
        const running = yield* Effect.fork(breaker.run(Effect.zipRight(Deferred.await(gate), fail())))
        yield* Effect.yieldNow()
        yield* breaker.isolate
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.flip(Fiber.join(running))
        yield* breaker.reset
        // Reset forgot the first failure, and the second was never counted: one more failure leaves it closed.
        yield* Effect.either(breaker.run(fail()))
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* Effect.either(breaker.run(fail()))
        assert.strictEqual((yield* breaker.state)._tag, "Open")

        // A probe admitted in one half-open period, still running when the next one starts, holds no slot in it.
        yield* TestClock.adjust("1 second")
        const stale = yield* Deferred.make<void>()
        const oldProbe = yield* Effect.fork(breaker.run(Deferred.await(stale)))
        yield* Effect.yieldNow()
        yield* breaker.reset
        yield* Effect.either(breaker.run(fail()))
        yield* Effect.either(breaker.run(fail()))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* breaker.state)._tag, "HalfOpen")
        yield* Deferred.succeed(stale, undefined)
        yield* Fiber.join(oldProbe)
        assert.strictEqual((yield* breaker.state)._tag, "HalfOpen", "the old probe decided nothing")
        const probing = yield* Deferred.make<void>()
        const probe = yield* Effect.fork(breaker.run(Deferred.await(probing)))
        yield* Effect.yieldNow()
        assert.strictEqual((yield* Effect.flip(breaker.run(Effect.void)))._tag, "CircuitOpen", "one probe at once")
        yield* Deferred.succeed(probing, undefined)
        yield* Fiber.join(probe)
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
      }))

    it.effect("reset on a closed circuit empties its window and reports no change", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 4 })
        })
        const transitions = Metric.taggedWithLabels(CircuitBreaker.metrics.transitions, [
          MetricLabel.make("breaker", "default"),
          MetricLabel.make("state", "closed")
        ])
        const before = (yield* Metric.value(transitions)).count
        for (let i = 0; i < 3; i++) yield* Effect.either(breaker.run(fail()))
        yield* breaker.reset
        assert.strictEqual((yield* Metric.value(transitions)).count, before)
        // 3 failures forgotten: one more is 1 call of the 4 needed.
        yield* Effect.either(breaker.run(fail()))
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
      }))
  })

  describe("slow calls", () => {
    // Runs `self` through the breaker as a call lasting `duration` on the test clock.
    const lasting = <A, E>(
      breaker: CircuitBreaker.CircuitBreaker<E>,
      duration: Duration.DurationInput,
      self: Effect.Effect<A, E>
    ) =>
      Effect.gen(function*() {
        const call = yield* Effect.fork(breaker.run(Effect.zipRight(Effect.sleep(duration), self)))
        yield* Effect.yieldNow()
        yield* TestClock.adjust(duration)
        return yield* Fiber.join(call)
      })

    it.effect("without a ratio, a call slower than the threshold counts as a failure, measured exactly", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(2),
          cooldown: "10 seconds",
          slowCalls: { slowerThan: "1 second" }
        })
        // The slow call's own result still reaches the caller.
        assert.strictEqual(yield* lasting(breaker, "1001 millis", Effect.succeed("late")), "late")
        // Exactly the threshold is not slow: a success, which ends the run.
        yield* lasting(breaker, "1 second", Effect.void)
        yield* lasting(breaker, "1001 millis", Effect.void)
        assert.strictEqual((yield* breaker.state)._tag, "Closed", "one slow call in a row")
        yield* lasting(breaker, "1001 millis", Effect.void)
        // 4,003 ms of calls, then the 10 s cooldown.
        assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 14_003, openings: 1 }))
      }))

    it.effect("an error isFailure ignores, when slow, is a slow call", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make<Upstream>({
          policy: CircuitBreaker.consecutiveFailures(1),
          isFailure: (e) => e.status >= 500,
          slowCalls: { slowerThan: "1 second" }
        })
        yield* Effect.either(lasting(breaker, "1 second", fail(404)))
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* Effect.either(lasting(breaker, "2 seconds", fail(404)))
        assert.strictEqual((yield* breaker.state)._tag, "Open")
      }))

    it.effect("a slow probe is a failed probe; an interrupted slow call counts for nothing", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(1),
          cooldown: "1 second",
          slowCalls: { slowerThan: "500 millis" }
        })
        const hung = yield* Effect.fork(breaker.run(Effect.never))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("1 minute")
        yield* Fiber.interrupt(hung)
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* Effect.either(breaker.run(fail()))
        yield* TestClock.adjust("1 second")
        // Now 61 s: the probe succeeds after 501 ms, and the circuit opens again from then.
        yield* lasting(breaker, "501 millis", Effect.void)
        assert.deepStrictEqual(yield* breaker.state, CircuitBreaker.State.Open({ until: 62_501, openings: 2 }))
        yield* TestClock.adjust("1 second")
        yield* lasting(breaker, "500 millis", Effect.void)
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
      }))

    it.effect("with a ratio, slow calls have a rate of their own over the last calls", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 4 }),
          slowCalls: { slowerThan: "100 millis", ratio: 0.75 }
        })
        yield* lasting(breaker, "10 millis", Effect.void)
        yield* lasting(breaker, "101 millis", Effect.void)
        yield* lasting(breaker, "101 millis", Effect.void)
        // As failures, 2 of 3 calls would be over 0.5; as slow calls they are under the minimum of 4.
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* lasting(breaker, "10 millis", Effect.void)
        // 2 slow of 4: under 0.75; no failure.
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        // The oldest (fast) call leaves the window, a slow failure enters: 3 slow of 4, 1 failure of 4.
        yield* Effect.either(lasting(breaker, "101 millis", fail()))
        assert.strictEqual((yield* breaker.state)._tag, "Open")
      }))

    it.effect("with a ratio, slow calls have a rate of their own over a time window", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 4 }),
          slowCalls: { slowerThan: "100 millis", ratio: 0.75 }
        })
        const slow = lasting(breaker, "101 millis", Effect.void)
        yield* slow
        yield* slow
        yield* breaker.run(Effect.void)
        yield* breaker.run(Effect.void)
        yield* slow
        // 3 slow of 5: as failures they would be over 0.5.
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* slow
        yield* slow
        assert.strictEqual((yield* breaker.state)._tag, "Closed", "5 slow of 7")
        yield* slow
        assert.strictEqual((yield* breaker.state)._tag, "Open", "6 slow of 8")
      }))
  })

  describe("failureRatioOfLast", () => {
    it.effect("opens on the ratio of the last N calls, whatever their age, once the minimum have ended", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.75, calls: 4 }),
          cooldown: "1 second"
        })
        const ok = breaker.run(Effect.void)
        const ko = Effect.either(breaker.run(fail()))
        yield* ko
        yield* ko
        yield* ok
        yield* ok // [F F S S]: 2 of 4
        yield* TestClock.adjust("1 hour") // a count window forgets nothing with time
        yield* ok // [F S S S]
        yield* ko // [S S S F]
        yield* ko // [S S F F]: counted since the start, 4 of 7 would be under 0.75 too
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* ko // [S F F F]: 3 of 4
        assert.strictEqual((yield* breaker.state)._tag, "Open")

        // Closing empties the window: 3 failures are under the minimum of 4 again.
        yield* TestClock.adjust("1 second")
        yield* ok
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        for (let i = 0; i < 3; i++) yield* ko
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* ko
        assert.strictEqual((yield* breaker.state)._tag, "Open")
      }))

    it.effect("the call that brings the window to its minimum may open it, success or not", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 100, minimumCalls: 3 })
        })
        yield* Effect.either(breaker.run(fail()))
        yield* Effect.either(breaker.run(fail()))
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
        yield* breaker.run(Effect.void)
        assert.strictEqual((yield* breaker.state)._tag, "Open", "2 failures of 3")
        // Reset empties it too.
        yield* breaker.reset
        yield* Effect.either(breaker.run(fail()))
        yield* Effect.either(breaker.run(fail()))
        assert.strictEqual((yield* breaker.state)._tag, "Closed")
      }))

    it.effect("rejects invalid options naming the field", () =>
      Effect.gen(function*() {
        const message = (options: CircuitBreaker.Options) =>
          Effect.map(Effect.exit(CircuitBreaker.make(options)), String)
        assert.include(
          yield* message({ policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 10, minimumCalls: 11 }) }),
          "minimumCalls must be at most calls (10), got 11"
        )
        assert.include(
          yield* message({ policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 0 }) }),
          "calls must be a positive integer"
        )
        assert.include(
          yield* message({ policy: CircuitBreaker.failureRatioOfLast({ ratio: 0, calls: 10 }) }),
          "ratio must be in (0, 1]"
        )
        assert.include(
          yield* message({
            policy: CircuitBreaker.consecutiveFailures(5),
            slowCalls: { slowerThan: "1 second", ratio: 0.5 }
          }),
          "slowCalls.ratio needs a failureRatio or failureRatioOfLast policy"
        )
        assert.include(
          yield* message({
            policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 10 }),
            slowCalls: { slowerThan: "1 second", ratio: 1.5 }
          }),
          "slowCalls.ratio must be in (0, 1]"
        )
        assert.include(
          yield* message({ policy: CircuitBreaker.consecutiveFailures(5), slowCalls: { slowerThan: 0 } }),
          "slowCalls.slowerThan must be a positive finite duration"
        )
      }))
  })
})

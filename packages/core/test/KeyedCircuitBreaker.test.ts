import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

describe("KeyedCircuitBreaker", () => {
  it.effect("a failing key opens alone; healthy keys keep working", () =>
    Effect.gen(function*() {
      const breakers = yield* KeyedCircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(2),
        cooldown: "10 seconds"
      })
      yield* Effect.either(breakers.run("down.example", Effect.fail("503")))
      yield* Effect.either(breakers.run("down.example", Effect.fail("503")))
      const refused = yield* Effect.flip(breakers.run("down.example", Effect.succeed("never")))
      assert.strictEqual(refused._tag, "CircuitOpen")
      assert.strictEqual(yield* breakers.run("up.example", Effect.succeed("ok")), "ok")
      assert.deepStrictEqual(
        (yield* breakers.unhealthy).map((c) => [c.key, c.state._tag]),
        [["down.example", "Open"]]
      )
      assert.deepStrictEqual(yield* breakers.state("nowhere"), Option.none())
    }))

  it.effect("evicts idle healthy keys, keeps open ones", () =>
    Effect.gen(function*() {
      const breakers = yield* KeyedCircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "10 minutes",
        idleTimeToLive: "1 minute"
      })
      for (let i = 0; i < 1000; i++) yield* breakers.run(`host-${i}`, Effect.void)
      yield* Effect.either(breakers.run("broken", Effect.fail("boom")))
      assert.strictEqual(yield* breakers.size, 1001)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* breakers.size, 1)
      assert.strictEqual(Option.map(yield* breakers.state("broken"), (s) => s._tag).pipe(Option.getOrThrow), "Open")
    }))

  it.scoped("publishes every key's state changes", () =>
    Effect.gen(function*() {
      const breakers = yield* KeyedCircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "1 second"
      })
      const changes = yield* breakers.changes.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      yield* Effect.sleep(0)
      yield* TestClock.adjust(0)
      yield* Effect.either(breakers.run("a", Effect.fail("x")))
      yield* TestClock.adjust("1 second")
      yield* breakers.run("a", Effect.void)
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(changes)).map((c) => `${c.key}:${c.state._tag}`)
      assert.deepStrictEqual(seen, ["a:Open", "a:HalfOpen", "a:Closed"])
    }))

  it.scoped("isolates and resets one key; an isolated key is never evicted", () =>
    Effect.gen(function*() {
      const breakers = yield* KeyedCircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "1 second",
        idleTimeToLive: "1 minute"
      })
      const changes = yield* breakers.changes.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
      yield* Effect.sleep(0)
      yield* TestClock.adjust(0)
      const isolated = CircuitBreaker.State.Open({ until: Infinity, openings: 0, isolated: true })
      // A key not held yet is created isolated.
      yield* breakers.isolate("down.example")
      assert.deepStrictEqual(yield* breakers.state("down.example"), Option.some(isolated))
      const refused = yield* Effect.flip(breakers.run("down.example", Effect.succeed("never")))
      assert.isTrue(refused._tag === "CircuitOpen" && refused.isolated === true)
      assert.strictEqual(yield* breakers.run("up.example", Effect.succeed("ok")), "ok")
      assert.deepStrictEqual(yield* breakers.unhealthy, [{ key: "down.example", state: isolated }])
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(yield* breakers.size, 1, "the healthy key went, the isolated one stayed")
      assert.deepStrictEqual(yield* breakers.state("down.example"), Option.some(isolated))
      // Resetting a key not held does nothing.
      yield* breakers.reset("nowhere")
      assert.deepStrictEqual(yield* breakers.state("nowhere"), Option.none())
      yield* breakers.reset("down.example")
      assert.deepStrictEqual(yield* breakers.state("down.example"), Option.some(CircuitBreaker.State.Closed()))
      assert.strictEqual(yield* breakers.run("down.example", Effect.succeed("back")), "back")
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(changes))
      assert.deepStrictEqual(seen, [
        { key: "down.example", state: isolated },
        { key: "down.example", state: CircuitBreaker.State.Closed() }
      ])
    }))

  it.effect("a key whose last calls hold a failure is kept; one with only successes is evicted", () =>
    Effect.gen(function*() {
      const breakers = yield* KeyedCircuitBreaker.make({
        policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 10 }),
        idleTimeToLive: "1 minute"
      })
      yield* breakers.run("healthy", Effect.void)
      yield* Effect.either(breakers.run("flaky", Effect.fail("503")))
      yield* breakers.run("flaky", Effect.void)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* breakers.size, 1)
      assert.isTrue(Option.isSome(yield* breakers.state("flaky")))
      // Reset forgets the failure: the key is idle again.
      yield* breakers.reset("flaky")
      assert.strictEqual(yield* breakers.size, 0)
    }))
})

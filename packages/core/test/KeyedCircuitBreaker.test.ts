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
})

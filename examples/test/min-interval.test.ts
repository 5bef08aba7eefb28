import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { minInterval, politeStarts, spacedStarts } from "../src/min-interval.js"

describe("min-interval", () => {
  it.effect("starts concurrent calls exactly one interval apart, the first at once", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(spacedStarts(6, "250 millis"))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 250, 500, 750, 1000, 1250])
    }))

  it.effect("never lets a call through early", () =>
    Effect.gen(function*() {
      const gate = yield* minInterval("1 second")
      yield* gate.take()
      const second = yield* Effect.fork(gate.take())
      yield* TestClock.adjust("999 millis")
      assert.isNull(second.unsafePoll(), "the second call started before the interval had passed")
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(second)
      assert.strictEqual(yield* Clock.currentTimeMillis, 1000)
    }))

  it.effect("idle time does not bank calls: after a long pause, one goes at once and the next waits again", () =>
    Effect.gen(function*() {
      const gate = yield* minInterval("1 second")
      yield* gate.take()
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* gate.available, 1)
      yield* gate.take()
      assert.isFalse(yield* gate.tryTake(), "a second call went through right after the first")
      const next = yield* Effect.fork(Effect.zipRight(gate.take(), Clock.currentTimeMillis))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(next), 61_000)
    }))

  it.effect("with a concurrency cap, starts are spaced and a slow call holds a slot, not the rate", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        politeStarts({ calls: 8, concurrency: 3, interval: "100 millis", callDuration: "1 second" })
      )
      yield* TestClock.adjust("10 seconds")
      // 3 slots fill at 0, 100, 200; each later call waits for a slot (a call ends 1 s after it started), then
      // starts at once because the last start is more than 100 ms ago.
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 100, 200, 1000, 1100, 1200, 2000, 2100])
    }))
})

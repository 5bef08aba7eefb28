import { assert, describe, it } from "@effect/vitest"
import { TokenBucket } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { apiBucket, startTimes } from "../src/token-bucket.js"

describe("token-bucket", () => {
  it.effect("a burst of `burst` calls at once, then exactly one per emission interval", () =>
    Effect.gen(function*() {
      const bucket = yield* apiBucket
      const fiber = yield* Effect.fork(startTimes(bucket, 12))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 0, 0, 0, 0, 100, 200, 300, 400, 500, 600, 700])
    }))

  it.effect("holds the rate: nothing starts before its token is due", () =>
    Effect.gen(function*() {
      const bucket = yield* apiBucket
      const fiber = yield* Effect.fork(startTimes(bucket, 8))
      yield* TestClock.adjust("299 millis")
      // 5 from the burst plus tokens due at 100 and 200 ms; the 8th is due at 300 ms.
      assert.isNull(fiber.unsafePoll())
      assert.strictEqual(yield* bucket.waiting, 1)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 0, 0, 0, 0, 100, 200, 300])
    }))

  it.effect("an idle bucket refills up to its burst and no further", () =>
    Effect.gen(function*() {
      const bucket = yield* apiBucket
      const first = yield* Effect.fork(startTimes(bucket, 5))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(first)
      assert.strictEqual(yield* bucket.available, 0)
      yield* TestClock.adjust("299 millis")
      assert.strictEqual(yield* bucket.available, 3)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* bucket.available, 5)
      const second = yield* Effect.fork(startTimes(bucket, 7))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(second), [0, 0, 0, 0, 0, 100, 200])
    }))

  it.effect("other rates: 2 per second with bursts of 3", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 2, interval: "1 second", burst: 3 })
      const fiber = yield* Effect.fork(startTimes(bucket, 6))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 0, 0, 500, 1000, 1500])
    }))
})

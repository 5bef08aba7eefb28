import { assert, describe, it } from "@effect/vitest"
import { Limiter, TokenBucketStore } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

const startTimes = <E>(limiter: Limiter.Limiter<E>, count: number, taskMillis: number) =>
  Effect.gen(function*() {
    const starts = yield* Ref.make<Array<number>>([])
    const fiber = yield* Effect.fork(Effect.all(
      Array.from({ length: count }, () =>
        limiter.run(
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) => Ref.update(starts, (s) => [...s, now])),
            Effect.zipRight(Effect.sleep(taskMillis))
          )
        )),
      { concurrency: "unbounded" }
    ))
    return { starts, fiber }
  })

describe("Limiter", () => {
  it.effect("applies the rate to starts while holding concurrency permits", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({ concurrency: 2, rate: { limit: 10, interval: "1 second", burst: 1 } })
      const { fiber, starts } = yield* startTimes(limiter, 6, 50)
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(yield* limiter.inFlight, 2)
      assert.strictEqual(yield* limiter.queued, 4)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(yield* Ref.get(starts), [0, 100, 200, 300, 400, 500])
      assert.deepStrictEqual(yield* limiter.tokens, Option.some(1))
    }))

  it.effect("applies the concurrency limit when the rate is generous", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({ concurrency: 2, rate: { limit: 1000, interval: "1 second" } })
      const { fiber, starts } = yield* startTimes(limiter, 6, 100)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(yield* Ref.get(starts), [0, 0, 100, 100, 200, 200])
    }))

  it.effect("holds burst + rate·T in every window", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({ concurrency: 50, rate: { limit: 20, interval: "1 second", burst: 5 } })
      const { fiber, starts } = yield* startTimes(limiter, 200, 1)
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(fiber)
      const times = yield* Ref.get(starts)
      assert.strictEqual(times.length, 200)
      for (let i = 0; i < times.length; i++) {
        for (let j = i; j < times.length; j++) {
          const window = (times[j] - times[i]) / 1000
          assert.isAtMost(j - i + 1, 5 + 20 * window + 1e-9, `starts ${i}..${j}`)
        }
      }
      // and it is not slower than the rate allows: 200 starts need (200 - 5) / 20 seconds
      assert.strictEqual(times[199], 9750)
    }))

  it.effect("without a rate it is a bulkhead, and rejects with BulkheadRejected when its queue is full", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({ concurrency: 1, maxQueued: 0 })
      assert.deepStrictEqual(yield* limiter.tokens, Option.none())
      const holder = yield* Effect.fork(limiter.run(Effect.never))
      yield* Effect.yieldNow()
      const error = yield* Effect.flip(limiter.run(Effect.void))
      assert.strictEqual(error._tag, "BulkheadRejected")
      yield* Fiber.interrupt(holder)
    }))

  it.effect("fromStore shares one rate between limiters on the same store and key", () =>
    Effect.gen(function*() {
      const options = { concurrency: 10, rate: { limit: 10, interval: "1 second", burst: 2 }, key: "shared" } as const
      const a = yield* Limiter.fromStore(options)
      const b = yield* Limiter.fromStore(options)
      const runA = yield* startTimes(a, 3, 1)
      const runB = yield* startTimes(b, 3, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(runA.fiber)
      yield* Fiber.join(runB.fiber)
      const all = [...(yield* Ref.get(runA.starts)), ...(yield* Ref.get(runB.starts))].sort((x, y) => x - y)
      assert.deepStrictEqual(all, [0, 0, 100, 200, 300, 400])
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))

  it.effect("layerConfig reads concurrency and rate", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(
        new Map([["concurrency", "3"], ["rateLimit", "5"], ["rateInterval", "1 second"]])
      )
      const limiter = yield* Limiter.Limiter.pipe(
        Effect.provide(Limiter.layerConfig(Limiter.config("cfg"))),
        Effect.withConfigProvider(provider)
      )
      assert.deepStrictEqual(yield* limiter.tokens, Option.some(5))
      const bad = ConfigProvider.fromMap(new Map([["concurrency", "0"]]))
      const error = yield* Limiter.Limiter.pipe(
        Effect.provide(Limiter.layerConfig(Limiter.config())),
        Effect.withConfigProvider(bad),
        Effect.flip
      )
      assert.include(String(error), "concurrency")
      assert.include(String(error), "must be an integer >= 1")
    }))
})

describe("Limiter maxWait", () => {
  it.effect("one deadline spans the permit and the token: the caller fails at maxWait after it arrived", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({
        concurrency: 1,
        rate: { limit: 10, interval: "1 second", burst: 1 },
        maxWait: "80 millis",
        name: "mw-limiter"
      })
      const holder = yield* Effect.fork(limiter.run(Effect.sleep("50 millis")))
      yield* Effect.yieldNow()
      // Its permit comes at 50 ms, its token would come at 100 ms: past 80 ms after it arrived.
      const waiter = yield* Effect.fork(limiter.run(Effect.succeed("ran")))
      yield* TestClock.adjust("79 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      assert.strictEqual(yield* limiter.inFlight, 1)
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(waiter))
      assert.deepStrictEqual([error._tag, error.module, error.name], ["WaitTimeoutError", "Limiter", "mw-limiter"])
      yield* Fiber.join(holder)
      assert.deepStrictEqual([yield* limiter.inFlight, yield* limiter.queued], [0, 0])
      // It took no token: the one due at 100 ms is the next caller's.
      const next = yield* Effect.fork(limiter.run(Clock.currentTimeMillis))
      yield* TestClock.adjust("20 millis")
      assert.strictEqual(yield* Fiber.join(next), 100)
    }))

  it.effect("a caller served within maxWait is unaffected, and an interrupted one leaves no trace", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({
        concurrency: 1,
        rate: { limit: 10, interval: "1 second", burst: 1 },
        maxWait: "150 millis"
      })
      const holder = yield* Effect.fork(limiter.run(Effect.sleep("50 millis")))
      yield* Effect.yieldNow()
      const interrupted = yield* Effect.fork(limiter.run(Effect.succeed(0)))
      const served = yield* Effect.fork(limiter.run(Effect.zipRight(Effect.sleep("1 second"), Clock.currentTimeMillis)))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(interrupted)
      assert.strictEqual(yield* limiter.queued, 1)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(holder)
      // Permit at 50 ms, token at 100 ms, then a second of work.
      assert.strictEqual(yield* Fiber.join(served), 1100)
      assert.deepStrictEqual([yield* limiter.inFlight, yield* limiter.queued], [0, 0])
    }))
})

describe("Limiter.forEach", () => {
  it.effect("holds both limits without a fiber per waiting element", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({ concurrency: 2, rate: { limit: 10, interval: "1 second", burst: 1 } })
      const starts: Array<number> = []
      let running = 0
      let peak = 0
      const fiber = yield* Effect.fork(limiter.forEach(Array.from({ length: 10 }, (_, i) => i), (n) =>
        Effect.gen(function*() {
          starts.push(yield* Clock.currentTimeMillis)
          peak = Math.max(peak, ++running)
          yield* Effect.sleep("250 millis")
          running--
          return n
        })))
      yield* TestClock.adjust("0 millis")
      assert.strictEqual(yield* limiter.inFlight, 2)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      assert.strictEqual(peak, 2)
      // One start per 100 ms at most, and never more than 2 running: the 250 ms tasks bind after the first.
      for (let i = 1; i < starts.length; i++) {
        assert.isAtLeast(starts[i] - starts[i - 1], 100)
      }
      assert.deepStrictEqual([yield* limiter.inFlight, yield* limiter.queued], [0, 0])
    }))

  it.effect("with a rate only, starts every element at the rate", () =>
    Effect.gen(function*() {
      const limiter = yield* Limiter.make({ rate: { limit: 10, interval: "1 second", burst: 1 } })
      const fiber = yield* Effect.fork(limiter.forEach([1, 2, 3], () => Clock.currentTimeMillis))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [0, 100, 200])
    }))
})

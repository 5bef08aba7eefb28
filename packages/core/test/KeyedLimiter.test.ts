import { assert, describe, it } from "@effect/vitest"
import { KeyedLimiter, TokenBucketStore, WaitTimeout } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"

function* keysOf(second: number) {
  for (let i = 0; i < 10_000; i++) yield `host-${second}-${i}`
}

describe("KeyedLimiter", () => {
  it.effect("limits each key on its own: a saturated key does not slow another", () =>
    Effect.gen(function*() {
      const limiter = yield* KeyedLimiter.make({ concurrency: 1, rate: { limit: 1, interval: "1 second" } })
      const starts = yield* Ref.make<Array<string>>([])
      const record = (key: string) =>
        Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => Ref.update(starts, (s) => [...s, `${key}@${now}`])),
          limiter.run(key)
        )
      const fiber = yield* Effect.fork(
        Effect.all([record("a"), record("a"), record("a"), record("b")], { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(yield* Ref.get(starts), ["a@0", "b@0", "a@1000", "a@2000"])
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))

  it.effect("reports per-key stats and evicts idle keys after their time to live", () =>
    Effect.gen(function*() {
      const limiter = yield* KeyedLimiter.make({
        concurrency: 2,
        rate: { limit: 10, interval: "1 second", burst: 3 },
        idleTimeToLive: "30 seconds"
      })
      const gate = yield* Deferred.make<void>()
      const busy = yield* Effect.fork(limiter.run("busy", Deferred.await(gate)))
      yield* limiter.run("idle", Effect.void)
      yield* Effect.yieldNow()
      assert.deepStrictEqual(
        yield* limiter.stats("busy"),
        Option.some({ inFlight: 1, queued: 0, tokens: Option.some(2) })
      )
      assert.strictEqual(yield* limiter.size, 2)
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual(yield* limiter.size, 2)
      yield* TestClock.adjust("1 second")
      // `idle` is gone; `busy` is still running, so it stays however old it is.
      assert.strictEqual(yield* limiter.size, 1)
      assert.deepStrictEqual(yield* limiter.stats("idle"), Option.none())
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(busy)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* limiter.size, 0)
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))

  it.effect("eviction never grants a burst that was not due", () =>
    Effect.gen(function*() {
      const limiter = yield* KeyedLimiter.make({
        rate: { limit: 1, interval: "1 minute", burst: 2 },
        idleTimeToLive: "1 second"
      })
      yield* limiter.run("k", Effect.void)
      yield* limiter.run("k", Effect.void)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* limiter.size, 0)
      // The key's limiter was evicted, but its bucket is empty: the next start is due one minute after the first.
      const fiber = yield* Effect.fork(limiter.run("k", Clock.currentTimeMillis))
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(yield* Fiber.join(fiber), 60_000)
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))

  it.effect("memory stays bounded as 200,000 distinct keys pass through over time", () =>
    Effect.gen(function*() {
      const store = yield* TokenBucketStore.makeMemory
      const limiter = yield* KeyedLimiter.make({
        concurrency: 4,
        rate: { limit: 100, interval: "1 second", burst: 10 },
        idleTimeToLive: "1 second"
      }).pipe(Effect.provideService(TokenBucketStore.TokenBucketStore, store))
      let peakKeys = 0
      let peakBuckets = 0
      // 200,000 keys, 10,000 per simulated second, each used once: ten times what may be held at any moment.
      for (let second = 0; second < 20; second++) {
        yield* Effect.forEach(keysOf(second), (key) => limiter.run(key, Effect.void), { discard: true })
        yield* TestClock.adjust("1 second")
        peakKeys = Math.max(peakKeys, yield* limiter.size)
        peakBuckets = Math.max(peakBuckets, yield* store.size)
      }
      // Only the keys of the last idle window are held, never all of them.
      assert.isAtMost(peakKeys, 20_000)
      assert.isAtMost(peakBuckets, 20_000)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* limiter.size, 0)
      assert.strictEqual(yield* store.size, 0)
    }))

  it.effect("limiters sharing a store share each key's rate", () =>
    Effect.gen(function*() {
      const options = { rate: { limit: 10, interval: "1 second", burst: 1 }, keyPrefix: "hosts" } as const
      const first = yield* KeyedLimiter.make({ ...options, name: "instance-1" })
      const second = yield* KeyedLimiter.make({ ...options, name: "instance-2" })
      const fiber = yield* Effect.fork(Effect.all([
        first.run("example.com", Clock.currentTimeMillis),
        second.run("example.com", Clock.currentTimeMillis),
        first.run("example.com", Clock.currentTimeMillis),
        second.run("other.org", Clock.currentTimeMillis)
      ], { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      const times = yield* Fiber.join(fiber)
      assert.deepStrictEqual([...times.slice(0, 3)].sort((a, b) => a - b), [0, 100, 200])
      assert.strictEqual(times[3], 0)
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))
})

const asTimeout = (error: unknown): WaitTimeout.WaitTimeoutError => {
  assert.instanceOf(error, WaitTimeout.WaitTimeoutError)
  return error as WaitTimeout.WaitTimeoutError
}

describe("KeyedLimiter maxWait", () => {
  it.effect("a caller fails at exactly maxWait with an error naming the key; other keys are unaffected", () =>
    Effect.gen(function*() {
      const perHost = yield* KeyedLimiter.make({ concurrency: 1, maxWait: "100 millis", name: "mw-hosts" })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(perHost.run("a.example", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiter = yield* Effect.fork(perHost.run("a.example", Effect.succeed("a")))
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      assert.strictEqual(yield* perHost.run("b.example", Effect.succeed("b")), "b")
      yield* TestClock.adjust("1 millis")
      const error = asTimeout(yield* Effect.flip(Fiber.join(waiter)))
      assert.deepStrictEqual(
        [error._tag, error.module, error.name, error.key],
        ["WaitTimeoutError", "KeyedLimiter", "mw-hosts", "a.example"]
      )
      assert.include(error.message, "(key a.example)")
      const stats = Option.getOrThrow(yield* perHost.stats("a.example"))
      assert.deepStrictEqual([stats.inFlight, stats.queued], [1, 0])
      const interrupted = yield* Effect.fork(perHost.run("a.example", Effect.succeed("x")))
      const next = yield* Effect.fork(perHost.run("a.example", Effect.succeed("next")))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(interrupted)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Fiber.join(next), "next")
      const after = Option.getOrThrow(yield* perHost.stats("a.example"))
      assert.deepStrictEqual([after.inFlight, after.queued], [0, 0])
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))

  it.effect("the deadline spans the key's permit and its token", () =>
    Effect.gen(function*() {
      const perHost = yield* KeyedLimiter.make({
        rate: { limit: 10, interval: "1 second", burst: 1 },
        maxWait: "150 millis"
      })
      const stamp = perHost.run("h", Clock.currentTimeMillis)
      assert.strictEqual(yield* stamp, 0)
      const served = yield* Effect.fork(stamp) // token at 100 ms
      const late = yield* Effect.fork(stamp) // token at 200 ms: past its deadline
      yield* TestClock.adjust("149 millis")
      assert.strictEqual(yield* Fiber.join(served), 100)
      assert.isTrue(Option.isNone(yield* Fiber.poll(late)))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(asTimeout(yield* Effect.flip(Fiber.join(late))).key, "h")
      const next = yield* Effect.fork(stamp)
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* Fiber.join(next), 200)
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))
})

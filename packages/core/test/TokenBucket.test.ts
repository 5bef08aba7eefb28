import { assert, describe, it } from "@effect/vitest"
import { TokenBucket } from "@spindle/core"
import * as Stall from "@spindle/testkit/Stall"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

// Starts `count` fibers that each take one token and record the clock when they got it.
const recordStarts = (bucket: TokenBucket.TokenBucket, count: number) =>
  Effect.gen(function*() {
    const starts = yield* Ref.make(Chunk.empty<readonly [number, number]>())
    const fibers = yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        bucket.take().pipe(
          Effect.zipRight(Clock.currentTimeMillis),
          Effect.flatMap((now) => Ref.update(starts, Chunk.append([i, now] as const))),
          Effect.fork
        )
    )
    return { starts, fibers }
  })

describe("TokenBucket", () => {
  it.effect("grants the burst at once, then one token per emission interval, exactly", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 5 })
      const { fibers, starts } = yield* recordStarts(bucket, 12)
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      const result = Chunk.toReadonlyArray(yield* Ref.get(starts))
      assert.deepStrictEqual(result.map(([, t]) => t), [0, 0, 0, 0, 0, 100, 200, 300, 400, 500, 600, 700])
      // FIFO: tokens go to the fibers in the order they arrived.
      assert.deepStrictEqual(result.map(([i]) => i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    }))

  it.effect("refills up to the burst and no further while idle", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 2, interval: "1 second", burst: 3 })
      yield* bucket.take(3)
      assert.strictEqual(yield* bucket.available, 0)
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* bucket.available, 1)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* bucket.available, 3)
      assert.isTrue(yield* bucket.tryTake(3))
      assert.isFalse(yield* bucket.tryTake())
    }))

  it.effect("defaults burst to ceil(limit) and supports fractional rates", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 0.5, interval: "1 second" })
      assert.strictEqual(bucket.burst, 1)
      const { fibers, starts } = yield* recordStarts(bucket, 3)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Ref.get(starts)).map(([, t]) => t), [0, 2000, 4000])
    }))

  it.effect("a waiter for many tokens is not overtaken by later waiters for few", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 4 })
      yield* bucket.take(4)
      const order = yield* Ref.make<Array<string>>([])
      const big = yield* bucket.take(4).pipe(Effect.zipRight(Ref.update(order, (o) => [...o, "big"])), Effect.fork)
      yield* TestClock.adjust("1 millis")
      const small = yield* bucket.take(1).pipe(Effect.zipRight(Ref.update(order, (o) => [...o, "small"])), Effect.fork)
      // After 100 ms one token is there: enough for `small`, but `big` came first.
      yield* TestClock.adjust("150 millis")
      assert.deepStrictEqual(yield* Ref.get(order), [])
      assert.isFalse(yield* bucket.tryTake(), "tryTake never jumps the queue")
      yield* TestClock.adjust("250 millis")
      assert.deepStrictEqual(yield* Ref.get(order), ["big"])
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(big)
      yield* Fiber.join(small)
      assert.deepStrictEqual(yield* Ref.get(order), ["big", "small"])
    }))

  it.effect("an interrupted waiter consumes nothing and leaves no state behind", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1 })
      yield* bucket.take()
      const head = yield* Effect.fork(bucket.take())
      const second = yield* Effect.fork(bucket.take())
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* bucket.waiting, 2)
      yield* Fiber.interrupt(head)
      assert.strictEqual(yield* bucket.waiting, 1)
      // The second waiter inherits the head's turn: it starts at 100 ms, as the head would have.
      yield* TestClock.adjust("50 millis")
      const exit = yield* Fiber.await(second)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(yield* bucket.waiting, 0)
      assert.strictEqual(yield* Clock.currentTimeMillis, 100)
      // Interrupting a waiter in the middle of the queue: nothing is consumed either.
      const a = yield* Effect.fork(bucket.take())
      const b = yield* Effect.fork(bucket.take())
      const c = yield* Effect.fork(bucket.take())
      yield* Fiber.interrupt(b)
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(a)
      yield* Fiber.join(c)
      assert.strictEqual(yield* Clock.currentTimeMillis, 300)
      assert.strictEqual(yield* bucket.waiting, 0)
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* bucket.available, 1)
    }))

  it.effect("stays exact while saturated for thousands of intervals at epoch-sized clock readings", () =>
    Effect.gen(function*() {
      // A third of a second is not representable in binary, and at an epoch of 1.7e12 ms doubles are 2.4e-4 ms
      // apart: a bucket that advanced its arrival time by repeated addition would drift after a few steps.
      const origin = 1_700_000_000_123
      yield* TestClock.setTime(origin)
      const bucket = yield* TokenBucket.make({ limit: 3, interval: "1 second", burst: 6 })
      assert.isTrue(yield* bucket.tryTake(6))
      // The bucket stays saturated: exactly 3 tokens become due every second, never one early.
      for (let second = 1; second <= 300; second++) {
        yield* TestClock.setTime(origin + second * 1000 - 1)
        assert.isFalse(yield* bucket.tryTake(3), `second ${second}: early`)
        yield* TestClock.setTime(origin + second * 1000)
        assert.isTrue(yield* bucket.tryTake(3), `second ${second}: due`)
        assert.isFalse(yield* bucket.tryTake(1), `second ${second}: one too many`)
      }
      yield* TestClock.setTime(origin + 302_000)
      assert.strictEqual(yield* bucket.available, 6)
    }))

  it.effect("wraps an effect with withTokens", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 1, interval: "1 second", burst: 1 })
      const counter = yield* Ref.make(0)
      const fiber = yield* Effect.fork(
        Effect.replicateEffect(Ref.update(counter, (n) => n + 1).pipe(bucket.withTokens()), 3)
      )
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(yield* Ref.get(counter), 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Ref.get(counter), 2)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.strictEqual(yield* Ref.get(counter), 3)
    }))

  it.effect("rejects impossible requests and options with a message naming the field", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 5, interval: "1 second", burst: 2 })
      const tooMany = yield* Effect.exit(bucket.take(3))
      assert.isTrue(Exit.isFailure(tooMany) && String(tooMany.cause).includes("must be > 0 and <= burst (2)"))
      const badLimit = yield* Effect.exit(TokenBucket.make({ limit: 0, interval: "1 second" }))
      assert.isTrue(Exit.isFailure(badLimit) && String(badLimit.cause).includes("limit must be a positive"))
      const badBurst = yield* Effect.exit(TokenBucket.make({ limit: 1, interval: "1 second", burst: 1.5 }))
      assert.isTrue(Exit.isFailure(badBurst) && String(badBurst.cause).includes("burst must be a positive integer"))
      const badInterval = yield* Effect.exit(TokenBucket.make({ limit: 1, interval: Duration.zero }))
      assert.isTrue(Exit.isFailure(badInterval) && String(badInterval.cause).includes("interval must be"))
    }))

  it.effect("exports tokens, waiters, grants and rejections as metrics", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ name: "metrics-test", limit: 10, interval: "1 second", burst: 3 })
      const tags = [MetricLabel.make("bucket", "metrics-test")]
      yield* bucket.take(2)
      assert.isFalse(yield* bucket.tryTake(2))
      const waiter = yield* Effect.fork(bucket.take(3))
      yield* Effect.yieldNow()
      const { granted, rejections, tokens, waiters } = TokenBucket.metrics
      const value = <A>(metric: Metric.Metric<any, any, A>) => Metric.value(Metric.taggedWithLabels(metric, tags))
      assert.strictEqual((yield* value(tokens)).value, 1)
      assert.strictEqual((yield* value(waiters)).value, 1)
      assert.strictEqual((yield* value(granted)).count, 2)
      assert.strictEqual((yield* value(rejections)).count, 1)
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(waiter)
      assert.strictEqual((yield* value(waiters)).value, 0)
      assert.strictEqual((yield* value(granted)).count, 5)
      assert.strictEqual((yield* value(tokens)).value, 0)
    }))

  it.effect("layerConfig reads and validates options", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(new Map([["limit", "20"], ["interval", "2 seconds"], ["burst", "4"]]))
      const bucket = yield* TokenBucket.TokenBucket.pipe(
        Effect.provide(TokenBucket.layerConfig(TokenBucket.config("cfg"))),
        Effect.withConfigProvider(provider)
      )
      assert.strictEqual(bucket.limit, 20)
      assert.strictEqual(bucket.burst, 4)
      assert.strictEqual(Duration.toMillis(bucket.interval), 2000)
      const bad = ConfigProvider.fromMap(new Map([["limit", "-1"]]))
      const exit = yield* TokenBucket.TokenBucket.pipe(
        Effect.provide(TokenBucket.layerConfig(TokenBucket.config())),
        Effect.withConfigProvider(bad),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(exit), "limit")
      assert.include(String(exit), "must be a positive finite number")
    }))
})

describe("TokenBucket (live clock)", () => {
  it.live("spaces real starts by the emission interval", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 20, interval: "1 second", burst: 2 })
      const [starts, stall] = yield* Stall.measure(Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        () => Effect.zipRight(bucket.take(), Effect.sync(() => performance.now())),
        { concurrency: "unbounded" }
      ))
      const sorted = [...starts].sort((a, b) => a - b)
      const elapsed = sorted[11] - sorted[0]
      // Starts are recorded after the fiber resumes: 10 ms of slack for a scheduling delay of the first one, plus
      // the longest stall of this process meanwhile (a loaded machine's, measured; nothing on a calm one).
      const slack = 10 + stall
      // 10 tokens after the burst at 50 ms each: 500 ms. Never earlier (a real over-run); later only by timer
      // slack, for which a shared machine gets a generous allowance.
      assert.isAtLeast(elapsed, 500 - slack)
      assert.isBelow(elapsed, 1500 + stall)
      for (let i = 2; i < sorted.length; i++) {
        const window = sorted[i] - sorted[0]
        assert.isAtMost(i + 1, 2 + Math.floor((window + slack) / 50), `start ${i} came ${window} ms after the first`)
      }
    }))
})

describe("TokenBucket maxWait", () => {
  it.effect("a take fails at exactly maxWait, takes nothing, and the next waiter gets the tokens", () =>
    Effect.gen(function*() {
      // 10 per second (one token every 100 ms), burst 5.
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 5, maxWait: "300 millis" })
      yield* bucket.take(5)
      const big = yield* Effect.fork(bucket.take(5)) // due at 500 ms: past its deadline of 300 ms
      yield* TestClock.adjust("100 millis")
      const small = yield* Effect.fork(Effect.zipRight(bucket.take(1), Clock.currentTimeMillis))
      yield* TestClock.adjust("199 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(big)))
      assert.strictEqual(yield* bucket.waiting, 2)
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(big))
      assert.deepStrictEqual(
        [error._tag, error.module, error.name, Duration.toMillis(error.maxWait)],
        ["WaitTimeoutError", "TokenBucket", "default", 300]
      )
      // The timed-out waiter reserved nothing: the next one is served at once from the 3 tokens refilled by now.
      assert.strictEqual(yield* Fiber.join(small), 300)
      assert.strictEqual(yield* bucket.available, 2)
      assert.strictEqual(yield* bucket.waiting, 0)
    }))

  it.effect("a parked waiter behind the head times out at its own deadline; one served in time is unaffected", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1, maxWait: "150 millis" })
      yield* bucket.take()
      const stamp = Effect.zipRight(bucket.take(), Clock.currentTimeMillis)
      const first = yield* Effect.fork(stamp) // due at 100 ms
      const second = yield* Effect.fork(stamp) // due at 200 ms, deadline 150 ms
      yield* TestClock.adjust("149 millis")
      assert.strictEqual(yield* Fiber.join(first), 100)
      assert.isTrue(Option.isNone(yield* Fiber.poll(second)))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Effect.flip(Fiber.join(second)))._tag, "WaitTimeoutError")
      assert.strictEqual(yield* bucket.waiting, 0)
      // Nothing was reserved for it: the token due at 200 ms goes to the next caller.
      const third = yield* Effect.fork(stamp)
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* Fiber.join(third), 200)
      const timeouts = yield* Metric.value(
        Metric.taggedWithLabels(TokenBucket.metrics.waitTimeouts, [MetricLabel.make("bucket", "default")])
      )
      assert.isAtLeast(timeouts.count, 1)
    }))

  it.effect("an interrupted waiter leaves no trace: the ones behind it keep their order and deadlines", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1, maxWait: "250 millis" })
      yield* bucket.take()
      const stamp = Effect.zipRight(bucket.take(), Clock.currentTimeMillis)
      const head = yield* Effect.fork(stamp)
      const middle = yield* Effect.fork(stamp)
      const last = yield* Effect.fork(stamp)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(middle)
      yield* Fiber.interrupt(head)
      assert.strictEqual(yield* bucket.waiting, 1)
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(last), 100)
      assert.strictEqual(yield* bucket.waiting, 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* bucket.available, 1)
    }))

  it.effect("an uninterruptible take stays uninterruptible while it waits", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1 })
      yield* bucket.take()
      const tookAt = yield* Ref.make(-1)
      const taker = yield* Effect.fork(
        Effect.uninterruptible(
          Effect.zipRight(bucket.take(), Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.set(tookAt, now)))
        )
      )
      yield* Effect.yieldNow()
      const interrupting = yield* Effect.fork(Fiber.interrupt(taker))
      yield* TestClock.adjust("50 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(interrupting)))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(interrupting)
      assert.strictEqual(yield* Ref.get(tookAt), 100)
      assert.strictEqual(yield* bucket.waiting, 0)
    }))
})

describe("TokenBucket.forEach and pace", () => {
  it.effect("starts every element at the bucket's rate, in order, with one fiber waiting for all of them", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 2 })
      const starts: Array<readonly [number, number]> = []
      function* elements() {
        for (let i = 0; i < 1_000; i++) yield i
      }
      const fiber = yield* Effect.fork(
        bucket.forEach(elements(), (n, index) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            starts.push([n, now])
            return n * 2 + index
          }))
      )
      yield* TestClock.adjust("0 millis")
      // 1,000 elements waiting, one waiter in the bucket.
      assert.strictEqual(yield* bucket.waiting, 1)
      yield* TestClock.adjust("99.8 seconds")
      const results = yield* Fiber.join(fiber)
      assert.strictEqual(results.length, 1_000)
      assert.strictEqual(results[999], 999 * 3)
      assert.deepStrictEqual(starts.slice(0, 4), [[0, 0], [1, 0], [2, 100], [3, 200]])
      assert.deepStrictEqual(starts[999], [999, 99_800])
      assert.strictEqual(yield* bucket.waiting, 0)
    }))

  it.effect("queues with the bucket's other callers in arrival order", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1 })
      yield* bucket.take()
      const log: Array<string> = []
      const stamp = (label: string) => Effect.map(Clock.currentTimeMillis, (now) => log.push(`${label}@${now}`))
      const loop = yield* Effect.fork(bucket.forEach([1, 2], (n) => stamp(`each${n}`), { discard: true }))
      yield* TestClock.adjust("0 millis")
      const caller = yield* Effect.fork(Effect.zipRight(bucket.take(), stamp("caller")))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(loop)
      yield* Fiber.join(caller)
      assert.deepStrictEqual(log, ["each1@100", "caller@200", "each2@300"])
    }))

  it.effect("fails fast: the first failure interrupts the elements still running and the ones not started", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 10 })
      const interrupted = yield* Ref.make(0)
      const started = yield* Ref.make(0)
      const exit = yield* Effect.exit(bucket.forEach([1, 2, 3, 4, 5], (n) =>
        Effect.zipRight(
          Ref.update(started, (k) => k + 1),
          n === 3 ? Effect.fail("boom") : Effect.onInterrupt(Effect.never, () => Ref.update(interrupted, (k) => k + 1))
        ), { discard: true }))
      assert.deepStrictEqual(exit, Exit.fail("boom"))
      assert.strictEqual(yield* Ref.get(interrupted), (yield* Ref.get(started)) - 1)
      assert.isAtMost(yield* Ref.get(started), 5)
    }))

  it.effect("with a concurrency, at most that many elements run at once", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 100, interval: "1 second", burst: 100 })
      let running = 0
      let peak = 0
      const fiber = yield* Effect.fork(bucket.forEach(Array.from({ length: 20 }, (_, i) => i), () =>
        Effect.suspend(() => {
          peak = Math.max(peak, ++running)
          return Effect.ensuring(Effect.sleep("1 second"), Effect.sync(() => running--))
        }), { concurrency: 3, discard: true }))
      yield* TestClock.adjust("7 seconds")
      yield* Fiber.join(fiber)
      assert.strictEqual(peak, 3)
    }))

  it.effect("pace emits a stream's elements at the bucket's rate", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1 })
      const fiber = yield* Effect.fork(
        Stream.range(1, 4).pipe(
          bucket.pace,
          Stream.mapEffect((n) => Effect.map(Clock.currentTimeMillis, (now) => [n, now] as const)),
          Stream.runCollect
        )
      )
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Fiber.join(fiber)), [[1, 0], [2, 100], [3, 200], [4, 300]])
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { KeyedLimiter, TokenBucket, TokenBucketStore } from "@spindle/core"
import { RedisTokenBucketStore } from "@spindle/redis"
import { Databases, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const redisUrl = new URL(Databases.redis.url)
const available = Databases.redis.skip === undefined

// Every run and test uses keys of its own.
const run = `${process.pid}-${Date.now()}`
let n = 0
const storeLayer = () =>
  RedisTokenBucketStore.layer({ prefix: `spindle-test:${run}:${n++}:` }).pipe(
    Layer.provideMerge(RedisTokenBucketStore.layerConnection(redisUrl.toString()))
  )

const suite = available ? describe : describe.skip

suite(`RedisTokenBucketStore${available ? "" : ` (skipped: ${Databases.redis.skip})`}`, () => {
  it.live("grants the burst, then says how long until the next token, atomically on the server", () =>
    Effect.gen(function*() {
      const store = yield* TokenBucketStore.TokenBucketStore
      // A token a second: the refusal's delay is the rest of that second, less the time between the two calls
      // (half a second allowed for that on a loaded machine).
      const options = { key: "k", burst: 3, emissionMillis: 1000 }
      const granted = yield* store.reserve({ ...options, tokens: 3 })
      assert.deepStrictEqual(granted, { delayMillis: 0, remaining: 0 })
      const refused = yield* store.reserve({ ...options, tokens: 1 })
      assert.isAbove(refused.delayMillis, 500)
      assert.isAtMost(refused.delayMillis, 1000)
      assert.strictEqual(yield* store.available(options), 0)
      assert.strictEqual(yield* store.available({ ...options, key: "other" }), 3)
    }).pipe(Effect.provide(storeLayer())))

  it.live("an idle bucket's key expires when it is full again", () =>
    Effect.gen(function*() {
      const store = yield* TokenBucketStore.TokenBucketStore
      const redis = yield* RedisTokenBucketStore.RedisConnection
      // Two tokens of 500 ms each: full again, and gone, 1 s after the reservation.
      yield* store.reserve({ key: "ttl", burst: 2, emissionMillis: 500, tokens: 2 })
      const keys = yield* Effect.promise(() => redis.keys(`spindle-test:${run}:*ttl`))
      assert.strictEqual(keys.length, 1)
      const ttl = yield* Effect.promise(() => redis.pttl(keys[0]))
      assert.isAbove(ttl, 0)
      assert.isAtMost(ttl, 1001)
      yield* Wait.until(
        "the key to expire",
        Effect.promise(() => redis.exists(keys[0])).pipe(Effect.map((n) => n === 0))
      )
    }).pipe(Effect.provide(storeLayer())))

  it.live("decisions go on across a flushed script cache (a Redis restart): the script is loaded again", () =>
    Effect.gen(function*() {
      const store = yield* TokenBucketStore.TokenBucketStore
      const redis = yield* RedisTokenBucketStore.RedisConnection
      const options = { key: "flush", burst: 2, emissionMillis: 60_000 }
      assert.strictEqual((yield* store.reserve({ ...options, tokens: 1 })).delayMillis, 0)
      yield* Effect.promise(() => redis.script("FLUSH"))
      assert.strictEqual((yield* store.reserve({ ...options, tokens: 1 })).delayMillis, 0, "NOSCRIPT, then EVAL")
      assert.isAbove((yield* store.reserve({ ...options, tokens: 1 })).delayMillis, 0, "the state survived")
    }).pipe(Effect.provide(storeLayer())))

  it.scopedLive("two instances (two connections) share one limit through the same key", () =>
    Effect.gen(function*() {
      const prefix = `spindle-test:${run}:shared:`
      const instance = () =>
        RedisTokenBucketStore.layer({ prefix }).pipe(
          Layer.provide(RedisTokenBucketStore.layerConnection(redisUrl.toString()))
        )
      // Each instance's connection lives as long as the test.
      const limiterOn = (layer: Layer.Layer<TokenBucketStore.TokenBucketStore>) =>
        Effect.flatMap(Layer.build(layer), (context) =>
          KeyedLimiter.make({ rate: { limit: 50, interval: "1 second", burst: 2 } }).pipe(Effect.provide(context)))
      const a = yield* limiterOn(instance())
      const b = yield* limiterOn(instance())
      const starts: Array<number> = []
      const start = Effect.sync(() =>
        starts.push(performance.now())
      )
      yield* Effect.all(
        Array.from({ length: 22 }, (_, i) => (i % 2 === 0 ? a : b).run("host:80", start)),
        { concurrency: "unbounded" }
      )
      starts.sort((x, y) => x - y)
      // 22 starts at 50/s with a burst of 2: never more than 2 + 50·T in a window T, and the last no sooner than
      // 400 ms after the first. Starts are seen by the client, a reply's trip after the server's decision, so each
      // bound allows 50 ms for that trip on a loaded machine. Two instances with separate limits would fail both by
      // far: twice the rate (24 starts allowed in 200 ms where 14.5 are), and all 22 within 200 ms.
      for (let i = 0; i < starts.length; i++) {
        for (let j = i; j < starts.length; j++) {
          const windowSeconds = (starts[j] - starts[i] + 50) / 1000
          assert.isAtMost(j - i + 1, 2 + 50 * windowSeconds + 1e-9, `starts ${i}..${j}`)
        }
      }
      assert.isAtLeast(starts[21] - starts[0], (20 / 50) * 1000 - 50)
    }))

  it.live("an unreachable Redis is a typed, retryable error, never a free pass", () =>
    Effect.gen(function*() {
      const bucket = yield* TokenBucket.fromStore({ key: "down", limit: 10, interval: "1 second" })
      const error = yield* Effect.flip(bucket.take())
      assert.strictEqual(error._tag, "TokenBucketStoreError")
      assert.strictEqual(error.reason, "Unavailable")
    }).pipe(
      Effect.provide(
        RedisTokenBucketStore.layer().pipe(
          Layer.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:1", { connectTimeout: 200 }))
        )
      )
    ))
})

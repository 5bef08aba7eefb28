import { assert, describe, it } from "@effect/vitest"
import { SlotStore } from "@spindle/core"
import { RedisSlotStore, RedisTokenBucketStore } from "@spindle/redis"
import { Databases } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const available = Databases.redis.skip === undefined
// Every run uses keys of its own, removed at the end.
const prefix = `spindle-test:slots:${process.pid}-${Date.now()}:`

// A store on a connection of its own (one per simulated instance), for the test's scope.
const instance = Effect.flatMap(
  Layer.build(
    RedisSlotStore.layer({ prefix }).pipe(
      Layer.provideMerge(RedisTokenBucketStore.layerConnection(Databases.redis.url))
    )
  ),
  (context) =>
    Effect.zip(
      Effect.provide(SlotStore.SlotStore, context),
      Effect.provide(RedisTokenBucketStore.RedisConnection, context)
    )
)

const cleanUp = Effect.flatMap(instance, ([, redis]) =>
  Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const keys = await redis.keys(`${prefix}*`)
      if (keys.length > 0) await redis.del(...keys)
    })
  ))

const suite = available ? describe : describe.skip

suite(`RedisSlotStore${available ? "" : ` (skipped: ${Databases.redis.skip})`}`, () => {
  it.scopedLive("grants at most limit slots, keeps a holder's own, frees released and lapsed ones", () =>
    Effect.gen(function*() {
      yield* cleanUp
      const [store, redis] = yield* instance
      // Leases of 10 s, but a's of 1 s: long enough that the steps below run within it on a loaded machine.
      const slot = (holder: string, ttlMillis = 10_000) => ({ key: "k", limit: 2, holder, ttlMillis })
      assert.isTrue(yield* store.acquire(slot("a", 1000)))
      assert.isTrue(yield* store.acquire(slot("b")))
      assert.isFalse(yield* store.acquire(slot("c")))
      assert.isTrue(yield* store.acquire(slot("b")), "a holder asking again keeps its slot")
      yield* store.release({ key: "k", holder: "b" })
      assert.isTrue(yield* store.acquire(slot("c")))
      assert.isFalse(yield* store.acquire(slot("d")))
      // a's lease (never refreshed: its holder "crashed") lapses on the server's clock.
      yield* Effect.sleep("1100 millis")
      assert.isFalse(yield* store.refresh({ key: "k", holder: "a", ttlMillis: 10_000 }))
      assert.isTrue(yield* store.refresh({ key: "k", holder: "c", ttlMillis: 10_000 }))
      assert.isTrue(yield* store.acquire(slot("d")))
      // The key lives as long as its longest lease.
      const ttl = yield* Effect.promise(() => redis.pttl(`${prefix}k`))
      assert.isAbove(ttl, 5_000)
      assert.isAtMost(ttl, 10_000)
    }))

  it.scopedLive("two instances (two connections) share one limit through the same key, and reach it", () =>
    Effect.gen(function*() {
      yield* cleanUp
      const [a] = yield* instance
      const [b] = yield* instance
      let running = 0
      let peak = 0
      const work = Effect.acquireUseRelease(
        Effect.sync(() => peak = Math.max(peak, ++running)),
        () => Effect.sleep("20 millis"),
        () => Effect.sync(() => running--)
      )
      const options = { key: "shared", limit: 3, ttl: "2 seconds", pollInterval: "5 millis" } as const
      yield* Effect.all(
        Array.from({ length: 16 }, (_, i) => SlotStore.withSlot(i % 2 === 0 ? a : b, options)(work)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(peak, 3)
      const [, redis] = yield* instance
      assert.strictEqual(yield* Effect.promise(() => redis.zcard(`${prefix}shared`)), 0, "every slot came back")
    }))

  it.live("an unreachable Redis is a typed error, and the work does not run", () =>
    Effect.gen(function*() {
      const store = yield* SlotStore.SlotStore
      let ran = false
      const error = yield* Effect.flip(
        SlotStore.withSlot(store, { key: "down", limit: 1, ttl: "1 second" })(Effect.sync(() => ran = true))
      )
      assert.strictEqual(error._tag, "SlotStoreError")
      assert.strictEqual(error.reason, "Unavailable")
      assert.isFalse(ran)
    }).pipe(
      Effect.provide(
        RedisSlotStore.layer().pipe(
          Layer.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:1", { connectTimeout: 200 }))
        )
      )
    ))
})

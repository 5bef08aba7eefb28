/**
 * A `SlotStore` in Redis, so that every process using the same Redis and key shares one concurrency limit.
 *
 * A key is a sorted set of holders scored by the moment their lease lapses, on the server's clock (`TIME`), so the
 * instances' clocks do not matter. Taking and refreshing a slot are each one Lua script (atomic, one round trip)
 * that first drops lapsed holders; giving one back is a `ZREM`. The key's own TTL is the longest lease in it, so an
 * idle key disappears with its last holder, crashed ones included.
 *
 * When Redis cannot answer, the store fails with `SlotStoreError` (reason `Unavailable`): no work runs without a
 * slot, and callers treat the error as retryable.
 *
 * @since 0.1.0
 */
import { SlotStore } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Script from "./internal/script.js"
import { RedisConnection } from "./RedisTokenBucketStore.js"

// KEYS[1]: the set. ARGV: holder, ttl (ms), limit (0 to only refresh a slot the holder has). Returns 1 or 0.
const script = `
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
local held = redis.call("ZSCORE", KEYS[1], holder)
if not held and (limit == 0 or redis.call("ZCARD", KEYS[1]) >= limit) then return 0 end
redis.call("ZADD", KEYS[1], now + ttl, holder)
redis.call("PEXPIRE", KEYS[1], ttl)
return 1
`

const decide = Script.make(script)

const unavailable = (cause: unknown) =>
  new SlotStore.SlotStoreError({
    reason: "Unavailable",
    message: `Redis could not decide: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/**
 * Creates the store over a connection. `prefix` (default `spindle:slots:`) namespaces the keys.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import { RedisSlotStore, RedisTokenBucketStore } from "@spindle/redis"
 * import * as Effect from "effect/Effect"
 *
 * // At most 4 exports at once across every instance.
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisSlotStore.make({ prefix: "myapp:slots:" })
 *   return yield* Effect.succeed("report.csv").pipe(
 *     SlotStore.withSlot(store, { key: "exports", limit: 4, ttl: "30 seconds" })
 *   )
 * }).pipe(Effect.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:6379")))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly prefix?: string | undefined } = {}): Effect.Effect<
  SlotStore.SlotStore,
  never,
  RedisConnection
> =>
  Effect.map(RedisConnection, (redis) => {
    const prefix = options.prefix ?? "spindle:slots:"
    const run = (key: string, holder: string, ttlMillis: number, limit: number) =>
      Effect.tryPromise({
        try: () => decide(redis, 1, prefix + key, holder, Math.max(1, Math.ceil(ttlMillis)), limit),
        catch: unavailable
      }).pipe(
        Effect.flatMap((reply) =>
          reply === 0 || reply === 1
            ? Effect.succeed(reply === 1)
            : Effect.fail(
              new SlotStore.SlotStoreError({
                reason: "Protocol",
                message: `unexpected reply from Redis: ${JSON.stringify(reply)}`
              })
            )
        )
      )
    return {
      acquire: ({ holder, key, limit, ttlMillis }) => run(key, holder, ttlMillis, Math.max(1, limit)),
      refresh: ({ holder, key, ttlMillis }) => run(key, holder, ttlMillis, 0),
      release: ({ holder, key }) =>
        Effect.asVoid(Effect.tryPromise({ try: () => redis.zrem(prefix + key, holder), catch: unavailable }))
    }
  })

/**
 * The store as a layer over the `RedisConnection` in context.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import { RedisSlotStore, RedisTokenBucketStore } from "@spindle/redis"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * const SlotsLive = RedisSlotStore.layer().pipe(Layer.provide(RedisTokenBucketStore.layerConnectionConfig()))
 *
 * // A crashed instance's slots free themselves when their 30 s leases lapse.
 * const perHost = (host: string) =>
 *   Effect.flatMap(SlotStore.SlotStore, (store) =>
 *     Effect.succeed(`GET ${host}`).pipe(
 *       SlotStore.withSlot(store, { key: `host:${host}`, limit: 8, ttl: "30 seconds" })
 *     ))
 *
 * const program = perHost("example.com").pipe(Effect.provide(SlotsLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: { readonly prefix?: string | undefined } = {}
): Layer.Layer<SlotStore.SlotStore, never, RedisConnection> => Layer.effect(SlotStore.SlotStore, make(options))

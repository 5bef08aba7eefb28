/**
 * A `TokenBucketStore` in Redis, so that every process using the same Redis and key shares one limit.
 *
 * Each decision is one Lua script (atomic on the server, one round trip) running the same generic cell rate
 * algorithm as the in-memory store, on the server's clock (`TIME`), so the instances' clocks do not matter. A bucket
 * is a hash `{ a: anchor, c: count }` whose TTL is set to the moment it will be full again: an idle key expires
 * exactly when forgetting it changes nothing.
 *
 * When Redis cannot answer, the store fails with `TokenBucketStoreError` (reason `Unavailable`): the limiter never
 * lets a request through without a decision, and callers treat the error as retryable.
 *
 * Why not `@effect/experimental`'s `RateLimiter/Redis` store: its token bucket refills `limit` tokens per window and
 * has no separate burst capacity; its `delay` mode reserves the token up front (overflowing the bucket), so a waiter
 * interrupted while it waits has still spent its token, where this store's FIFO gate asks "how long until allowed"
 * and takes the token only when the request starts; its fixed-window mode admits up to twice the limit across a
 * window boundary. The connection handling below follows its shape (a scoped `ioredis` client, typed errors).
 * The script is called by its hash (`EVALSHA`), loaded again after the server's script cache is flushed.
 *
 * @since 0.1.0
 */
import { TokenBucketStore } from "@spindle/core"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import * as Script from "./internal/script.js"

// ARGV: tokens, burst, emission (ms, may be fractional), peek ("1" to only read). Returns { wait (string), left }.
const script = `
local tokens = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local emission = tonumber(ARGV[3])
local peek = ARGV[4] == "1"
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call("HMGET", KEYS[1], "a", "c")
local anchor = tonumber(v[1])
local count = tonumber(v[2]) or 0
local lag = -1
if anchor ~= nil and count > 0 then lag = (anchor - now) + count * emission end
local function left(l)
  if l <= 0 then return burst end
  return math.max(0, math.floor(burst - l / emission + 0.000001))
end
if peek then return { "0", left(lag) } end
local fresh = lag <= 0
local base = 0
if not fresh then base = lag end
local wait = base + (tokens - burst) * emission
if wait > 0.000001 then return { tostring(wait), left(lag) } end
if fresh then
  anchor = now
  count = tokens
else
  count = count + tokens
end
local newlag = (anchor - now) + count * emission
redis.call("HSET", KEYS[1], "a", tostring(anchor), "c", tostring(count))
redis.call("PEXPIRE", KEYS[1], math.ceil(newlag) + 1)
return { "0", left(newlag) }
`

const decide = Script.make(script)

/**
 * The Redis connection used by Spindle's Redis stores.
 *
 * @example
 * ```ts
 * import { RedisTokenBucketStore } from "@spindle/redis"
 * import * as Effect from "effect/Effect"
 *
 * // The ioredis client itself, for commands of your own on the same connection.
 * const ping = Effect.flatMap(RedisTokenBucketStore.RedisConnection, (redis) => Effect.promise(() => redis.ping()))
 *
 * const program = ping.pipe(Effect.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:6379")))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class RedisConnection extends Context.Tag("@spindle/redis/RedisConnection")<RedisConnection, Redis>() {}

/**
 * Connects to Redis for the lifetime of the current scope, waiting up to `connectTimeout` (default 2 s) for the first
 * connection. If Redis is not there yet, the service starts anyway (with a warning) and the client keeps
 * reconnecting in the background; meanwhile commands fail fast (no offline queue, one attempt per request), so
 * callers get a typed error instead of a hang.
 *
 * @example
 * ```ts
 * import { RedisTokenBucketStore } from "@spindle/redis"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   // Closed with the scope; if Redis is down the client keeps reconnecting and commands fail fast meanwhile.
 *   const redis = yield* RedisTokenBucketStore.connect("redis://127.0.0.1:6379", { connectTimeout: 1_000 })
 *   return yield* Effect.promise(() => redis.dbsize())
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (url: string, options: RedisOptions = {}): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connectTimeout = options.connectTimeout ?? 2_000
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = new Redis(url, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          connectTimeout,
          retryStrategy: (times) => Math.min(times * 100, 2_000),
          ...options
        })
        // Errors surface on the commands that fail; the event itself is only noise.
        client.on("error", () => {})
        return client
      }),
      (client) => Effect.sync(() => client.disconnect())
    )
    const ready = yield* Effect.async<boolean>((resume) => {
      if (redis.status === "ready") return resume(Effect.succeed(true))
      const onReady = () => resume(Effect.succeed(true))
      redis.once("ready", onReady)
      const timer = setTimeout(() => resume(Effect.succeed(false)), connectTimeout)
      return Effect.sync(() => {
        clearTimeout(timer)
        redis.off("ready", onReady)
      })
    })
    if (!ready) {
      yield* Effect.logWarning("Redis is not reachable yet; limits fail until it is").pipe(
        Effect.annotateLogs({ url: url.replace(/\/\/[^@]*@/, "//***@") })
      )
    }
    return redis
  })

/**
 * A layer providing the connection, from a URL.
 *
 * @example
 * ```ts
 * import { RedisSlotStore, RedisTokenBucketStore } from "@spindle/redis"
 * import * as Layer from "effect/Layer"
 *
 * // One connection shared by both stores.
 * const StoresLive = Layer.mergeAll(RedisTokenBucketStore.layer(), RedisSlotStore.layer()).pipe(
 *   Layer.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:6379", { keyPrefix: "" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConnection = (url: string, options: RedisOptions = {}): Layer.Layer<RedisConnection> =>
  Layer.scoped(RedisConnection, connect(url, options))

/**
 * A layer providing the connection from `REDIS_URL` (read as a secret).
 *
 * @example
 * ```ts
 * import { RedisTokenBucketStore } from "@spindle/redis"
 * import * as Config from "effect/Config"
 * import * as Layer from "effect/Layer"
 *
 * // REDIS_URL by default; here RATE_LIMIT_REDIS_URL.
 * const ConnectionLive = RedisTokenBucketStore.layerConnectionConfig(Config.redacted("RATE_LIMIT_REDIS_URL"))
 *
 * const StoreLive = RedisTokenBucketStore.layer().pipe(Layer.provide(ConnectionLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConnectionConfig = (
  url: Config.Config<Redacted.Redacted> = Config.redacted("REDIS_URL")
): Layer.Layer<RedisConnection, ConfigError.ConfigError> =>
  Layer.scoped(RedisConnection, Effect.flatMap(url, (u) => connect(Redacted.value(u))))

const unavailable = (cause: unknown) =>
  new TokenBucketStore.TokenBucketStoreError({
    reason: "Unavailable",
    message: `Redis could not decide: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/**
 * Creates the store over a connection. `prefix` (default `spindle:tb:`) namespaces the keys.
 *
 * @example
 * ```ts
 * import { TokenBucket, TokenBucketStore } from "@spindle/core"
 * import { RedisTokenBucketStore } from "@spindle/redis"
 * import * as Effect from "effect/Effect"
 *
 * // Every instance taking from "api.example.com" shares its 10 per second, bursts of 20.
 * const program = Effect.gen(function*() {
 *   const store = yield* RedisTokenBucketStore.make({ prefix: "myapp:tb:" })
 *   const options = { key: "api.example.com", limit: 10, interval: "1 second", burst: 20 } as const
 *   const bucket = yield* TokenBucket.fromStore(options).pipe(
 *     Effect.provideService(TokenBucketStore.TokenBucketStore, store)
 *   )
 *   yield* bucket.take()
 * }).pipe(Effect.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:6379")))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly prefix?: string | undefined } = {}): Effect.Effect<
  TokenBucketStore.TokenBucketStore,
  never,
  RedisConnection
> =>
  Effect.map(RedisConnection, (redis) => {
    const prefix = options.prefix ?? "spindle:tb:"
    const run = (key: string, tokens: number, burst: number, emission: number, peek: boolean) =>
      Effect.tryPromise({
        try: () =>
          decide(redis, 1, prefix + key, tokens, burst, emission, peek ? "1" : "0") as Promise<[string, number]>,
        catch: unavailable
      }).pipe(
        Effect.flatMap((reply) => {
          const delayMillis = Number(reply?.[0])
          const remaining = Number(reply?.[1])
          return Number.isFinite(delayMillis) && Number.isFinite(remaining)
            ? Effect.succeed({ delayMillis, remaining })
            : Effect.fail(
              new TokenBucketStore.TokenBucketStoreError({
                reason: "Protocol",
                message: `unexpected reply from Redis: ${JSON.stringify(reply)}`
              })
            )
        })
      )
    return {
      reserve: ({ burst, emissionMillis, key, tokens }) => run(key, tokens, burst, emissionMillis, false),
      available: ({ burst, emissionMillis, key }) =>
        Effect.map(run(key, 1, burst, emissionMillis, true), (d) => d.remaining)
    }
  })

/**
 * The store as a layer over the `RedisConnection` in context.
 *
 * @example
 * ```ts
 * import { KeyedLimiter } from "@spindle/core"
 * import { RedisTokenBucketStore } from "@spindle/redis"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * // The same KeyedLimiter code as in one process; only the store's layer changes.
 * const StoreLive = RedisTokenBucketStore.layer().pipe(
 *   Layer.provide(RedisTokenBucketStore.layerConnection("redis://127.0.0.1:6379"))
 * )
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedLimiter.make({ rate: { limit: 5, interval: "1 second" } })
 *   return yield* perHost.run("example.com", Effect.succeed("fetched"))
 * }).pipe(
 *   // A Redis outage is a typed, retryable TokenBucketStoreError: nothing runs without a decision.
 *   Effect.catchTag("TokenBucketStoreError", (e) => Effect.succeed(`no decision: ${e.message}`)),
 *   Effect.provide(StoreLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: { readonly prefix?: string | undefined } = {}
): Layer.Layer<TokenBucketStore.TokenBucketStore, never, RedisConnection> =>
  Layer.effect(TokenBucketStore.TokenBucketStore, make(options))

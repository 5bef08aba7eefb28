/**
 * One `Limiter` per key — per host, per user, per tenant — created on first use and forgotten when idle.
 *
 * Concurrency is limited in this process; rates live in the `TokenBucketStore` (in memory, or shared through
 * Redis), so the same code serves one instance or many. An entry is evicted only when nothing runs or waits on
 * it and it has been idle for `idleTimeToLive`; since its tokens live in the store (which forgets only full
 * buckets), eviction never grants a burst that was not due. Memory therefore stays proportional to the keys used
 * within the idle window, not to every key ever seen.
 *
 * Metrics are labelled by the limiter's name only (never by key), so a million keys do not become a million
 * metric series; per-key state is available through `stats`.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Bulkhead from "./Bulkhead.js"
import * as Expiry from "./internal/expiry.js"
import * as Metrics from "./internal/metrics.js"
import * as Validate from "./internal/validate.js"
import * as Limiter from "./Limiter.js"
import * as TokenBucket from "./TokenBucket.js"
import * as TokenBucketStore from "./TokenBucketStore.js"
import type { WaitTimeoutError } from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(KeyedLimiter.make({ concurrency: 2 }), (limiter) => KeyedLimiter.TypeId in limiter).pipe(
 *   Effect.provide(TokenBucketStore.layerMemory)
 * )
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/KeyedLimiter")

/**
 * @example
 * ```ts
 * import { KeyedLimiter } from "@spindle/core"
 *
 * const isKeyedLimiter = (u: unknown): u is KeyedLimiter.KeyedLimiter<unknown> =>
 *   typeof u === "object" && u !== null && KeyedLimiter.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Per-key limits plus how long an idle key is kept.
 *
 * @example
 * ```ts
 * import { KeyedLimiter } from "@spindle/core"
 *
 * // Per host: 8 in flight, 5 per second; a host idle for 5 minutes is forgotten.
 * const options: KeyedLimiter.Options = {
 *   concurrency: 8,
 *   rate: { limit: 5, interval: "1 second" },
 *   idleTimeToLive: "5 minutes",
 *   keyPrefix: "crawler",
 *   name: "per-host"
 * }
 *
 * const limiter = KeyedLimiter.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Limiter.Options {
  /** How long an idle key's limiter is kept for reuse. Defaults to one minute. */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  /** Prefix of the store keys, so that several keyed limiters can share one store. Defaults to `name`. */
  readonly keyPrefix?: string | undefined
}

/**
 * What a key's limiter holds now.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedLimiter.make({ concurrency: 4, rate: { limit: 10, interval: "1 second" } })
 *   yield* perHost.run("example.com", Effect.void)
 *   const stats: Option.Option<KeyedLimiter.KeyStats> = yield* perHost.stats("example.com")
 *   return Option.map(stats, (s) => s.inFlight)
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // { _id: "Option", _tag: "Some", value: 0 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyStats {
  readonly inFlight: number
  readonly queued: number
  readonly tokens: Option.Option<number>
}

/**
 * A keyed limiter whose `run` may fail with `E`.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const fetchUrl = (limiter: KeyedLimiter.KeyedLimiter, url: URL) =>
 *   Effect.succeed(`fetched ${url.href}`).pipe(limiter.run(url.host))
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedLimiter.make({ concurrency: 2, maxQueued: 100 })
 *   const pages = yield* Effect.forEach(
 *     ["https://a.example/1", "https://b.example/1", "https://a.example/2"],
 *     (url) => fetchUrl(perHost, new URL(url)),
 *     { concurrency: "unbounded" }
 *   )
 *   return [pages.length, yield* perHost.size]
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // [3, 2]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyedLimiter<
  E = Bulkhead.BulkheadRejected | WaitTimeoutError | TokenBucketStore.TokenBucketStoreError
> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs `self` under the limits of `key`. */
  readonly run: {
    (key: string): <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E | E2, R>
    <A, E2, R>(key: string, self: Effect.Effect<A, E2, R>): Effect.Effect<A, E | E2, R>
  }
  /** The state of `key`'s limiter, or `None` when it is not held in memory. */
  readonly stats: (key: string) => Effect.Effect<Option.Option<KeyStats>, E>
  /** Keys held in memory now. */
  readonly size: Effect.Effect<number>
}

/**
 * The keyed limiter service.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * const PerTenantLive = KeyedLimiter.layer({ rate: { limit: 100, interval: "1 minute" } }).pipe(
 *   Layer.provide(TokenBucketStore.layerMemory)
 * )
 *
 * const handle = (tenant: string) =>
 *   Effect.flatMap(KeyedLimiter.KeyedLimiter, (limiter) => limiter.run(tenant, Effect.succeed(`${tenant}: ok`)))
 *
 * Effect.runPromise(handle("acme").pipe(Effect.provide(PerTenantLive))).then(console.log) // "acme: ok"
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const KeyedLimiter: Context.Tag<KeyedLimiter, KeyedLimiter> = Context.GenericTag<KeyedLimiter>(
  "@spindle/core/KeyedLimiter"
)

/**
 * The metrics of keyed limiters, labelled `limiter=<name>`: keys held in memory. In-flight, queued and rejection
 * figures are those of `Bulkhead.metrics`, summed over the keys under the same label.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedLimiter.make({ concurrency: 1, name: "docs-hosts" })
 *   yield* Effect.forEach(["a", "b", "c"], (host) => perHost.run(host, Effect.void))
 *   const keys = yield* Metric.value(KeyedLimiter.metrics.keys.pipe(Metric.tagged("limiter", "docs-hosts")))
 *   return keys.value
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // 3
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  keys: Metrics.keys
} as const

interface Entry {
  readonly limiter: Limiter.Limiter<any>
  active: number
  lastUsed: number
}

const MIN_SWEEP_SIZE = 256

/**
 * Creates a keyed limiter over the `TokenBucketStore` in context. Invalid options are a defect
 * (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   // One limiter per host, created on first use, evicted after a minute idle.
 *   const perHost = yield* KeyedLimiter.make({ concurrency: 8, rate: { limit: 5, interval: "1 second" } })
 *   return yield* perHost.run("example.com", Effect.succeed(200))
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // 200
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options>(
  options: O
): Effect.Effect<
  KeyedLimiter<Limiter.ErrorFor<O> | TokenBucketStore.TokenBucketStoreError>,
  never,
  TokenBucketStore.TokenBucketStore
> =>
  Effect.gen(function*() {
    const store = yield* TokenBucketStore.TokenBucketStore
    const name = options.name ?? "default"
    const prefix = options.keyPrefix ?? name
    const ttl = Validate.durationOr("KeyedLimiter", "idleTimeToLive", options.idleTimeToLive, 60_000)
    const bulkheadOptions = Limiter.bulkheadOptions(options)
    const rateOptions = Limiter.bucketOptions(options)
    // Validate once, eagerly, so a bad option fails at construction rather than on first use.
    const rate = rateOptions === undefined ? undefined : TokenBucket.resolve(rateOptions)
    Bulkhead.unsafeMake(bulkheadOptions)
    // One expiry (one timer fiber while anyone waits) for every key; the error names the key.
    const wait = Limiter.waitOptions("KeyedLimiter", options, Expiry.make())
    const labels = Metrics.labels("limiter", name)
    const bucketLabels = Metrics.labels("bucket", name)
    const entries = new Map<string, Entry>()
    let nextSweep = MIN_SWEEP_SIZE

    const sweep = (now: number) => {
      for (const [key, entry] of entries) {
        if (entry.active === 0 && now - entry.lastUsed >= ttl) entries.delete(key)
      }
      nextSweep = Math.max(MIN_SWEEP_SIZE, entries.size * 2)
      Metrics.keys.unsafeUpdate(entries.size, labels)
    }

    const entryFor = (key: string, now: number): Entry => {
      let entry = entries.get(key)
      if (entry === undefined) {
        if (entries.size >= nextSweep) sweep(now)
        const keyWait = wait?.(key)
        const names = Limiter.traceNames(name, key)
        const bulkhead = Bulkhead.unsafeMake<any>(bulkheadOptions, labels, keyWait, undefined, names.permit)
        const bucket = rate === undefined
          ? undefined
          : TokenBucket.makeWithStore(store, `${prefix}:${key}`, rate, bucketLabels, keyWait, names.token)
        entry = { limiter: Limiter.fromParts(name, bulkhead, bucket), active: 0, lastUsed: now }
        entries.set(key, entry)
        Metrics.keys.unsafeUpdate(entries.size, labels)
      }
      return entry
    }

    const run = <A, E2, R>(key: string, self: Effect.Effect<A, E2, R>) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const entry = entryFor(key, clock.unsafeCurrentTimeMillis())
          entry.active++
          return Effect.ensuring(
            entry.limiter.run(self),
            Effect.sync(() => {
              entry.active--
              entry.lastUsed = clock.unsafeCurrentTimeMillis()
            })
          )
        })
      )

    return {
      [TypeId]: TypeId,
      name,
      run: ((...args: [string] | [string, Effect.Effect<any, any, any>]) =>
        args.length === 1
          ? (self: Effect.Effect<any, any, any>) => run(args[0], self)
          : run(args[0], args[1])) as any,
      stats: (key: string) =>
        Effect.suspend(() => {
          const entry = entries.get(key)
          if (entry === undefined) return Effect.succeedNone
          return Effect.all({
            inFlight: entry.limiter.inFlight,
            queued: entry.limiter.queued,
            tokens: entry.limiter.tokens
          }).pipe(Effect.asSome)
        }),
      size: Effect.clockWith((clock) =>
        Effect.sync(() => {
          sweep(clock.unsafeCurrentTimeMillis())
          return entries.size
        })
      )
    }
  })

/**
 * A layer providing the `KeyedLimiter` service over the `TokenBucketStore` in context.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Layer from "effect/Layer"
 *
 * // The rates live in the TokenBucketStore: in memory here, in Redis to share them across instances.
 * const PerHostLive = KeyedLimiter.layer({ concurrency: 8, rate: { limit: 5, interval: "1 second" } }).pipe(
 *   Layer.provide(TokenBucketStore.layerMemory)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<KeyedLimiter, never, TokenBucketStore.TokenBucketStore> =>
  Layer.effect(KeyedLimiter, make(options as Options & { readonly maxQueued: number }))

/**
 * A layer providing the `KeyedLimiter` service configured through `Config` (the keys of `Limiter.config`).
 *
 * @example
 * ```ts
 * import { KeyedLimiter, Limiter, TokenBucketStore } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as Layer from "effect/Layer"
 *
 * // PER_HOST_CONCURRENCY, PER_HOST_RATE_LIMIT, … read once when the layer is built.
 * const PerHostLive = KeyedLimiter.layerConfig(Config.nested(Limiter.config("per-host"), "PER_HOST")).pipe(
 *   Layer.provide(TokenBucketStore.layerMemory)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options>
): Layer.Layer<KeyedLimiter, ConfigError.ConfigError, TokenBucketStore.TokenBucketStore> =>
  Layer.effect(KeyedLimiter, Effect.flatMap(options, (o) => make(o as Options & { readonly maxQueued: number })))

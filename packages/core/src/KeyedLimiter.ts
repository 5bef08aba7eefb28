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
import * as Metrics from "./internal/metrics.js"
import * as Validate from "./internal/validate.js"
import * as Limiter from "./Limiter.js"
import * as TokenBucket from "./TokenBucket.js"
import * as TokenBucketStore from "./TokenBucketStore.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/KeyedLimiter")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Per-key limits plus how long an idle key is kept.
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
 * @since 0.1.0
 * @category models
 */
export interface KeyedLimiter<E = Bulkhead.BulkheadRejected | TokenBucketStore.TokenBucketStoreError> {
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
        const bulkhead = Bulkhead.unsafeMake<any>(bulkheadOptions, labels)
        const bucket = rate === undefined
          ? undefined
          : TokenBucket.makeWithStore(store, `${prefix}:${key}`, rate, bucketLabels)
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
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options>
): Layer.Layer<KeyedLimiter, ConfigError.ConfigError, TokenBucketStore.TokenBucketStore> =>
  Layer.effect(KeyedLimiter, Effect.flatMap(options, (o) => make(o as Options & { readonly maxQueued: number })))

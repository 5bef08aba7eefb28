/**
 * A limiter that imposes both limits real APIs impose: at most `concurrency` requests in flight and at most
 * `rate.limit` started per `rate.interval`, with bursts of `rate.burst`.
 *
 * A caller first takes a concurrency permit (waiting FIFO, or rejected when `maxQueued` is full), then a token,
 * and starts its effect immediately after: starts, not reservations, obey the rate, so the window bound
 * "at most burst + rate·T starts in any window T" holds for what the server actually sees.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Bulkhead from "./Bulkhead.js"
import * as TokenBucket from "./TokenBucket.js"
import type * as TokenBucketStore from "./TokenBucketStore.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/Limiter")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Both limits; either may be omitted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Effects in flight at once. Omit (or `Infinity`) for no concurrency limit. */
  readonly concurrency?: number | undefined
  /** Callers waiting for a concurrency permit before new ones are rejected with `BulkheadRejected`. */
  readonly maxQueued?: number | undefined
  /** Starts per interval, with bursts. Omit for no rate limit. */
  readonly rate?: RateOptions | undefined
  /** Label for metrics. Defaults to `"default"`. */
  readonly name?: string | undefined
}

/**
 * The rate part of a limiter: `limit` starts per `interval`, `burst` at once (default `max(1, ceil(limit))`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RateOptions {
  readonly limit: number
  readonly interval: Duration.DurationInput
  readonly burst?: number | undefined
}

/**
 * A combined concurrency and rate limiter whose `run` may fail with `E`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limiter<E = Bulkhead.BulkheadRejected> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs `self` once both a concurrency permit and a token are held; the permit is released when it ends. */
  readonly run: <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E | E2, R>
  /** Effects holding a permit (including those waiting for a token). */
  readonly inFlight: Effect.Effect<number>
  /** Effects waiting for a permit. */
  readonly queued: Effect.Effect<number>
  /** Tokens available now, or `None` without a rate limit. */
  readonly tokens: Effect.Effect<Option.Option<number>, E>
}

/**
 * The limiter service, for apps that want one limiter swapped by layer.
 *
 * @since 0.1.0
 * @category tags
 */
export const Limiter: Context.Tag<Limiter, Limiter> = Context.GenericTag<Limiter>("@spindle/core/Limiter")

/** @internal */
export const fromParts = <E>(
  name: string,
  bulkhead: Bulkhead.Bulkhead<any>,
  bucket: TokenBucket.TokenBucket<any> | undefined
): Limiter<E> => ({
  [TypeId]: TypeId,
  name,
  run: bucket === undefined ? bulkhead.run : (self) => bulkhead.run(Effect.zipRight(bucket.take(1), self)),
  inFlight: bulkhead.inFlight,
  queued: bulkhead.queued,
  tokens: bucket === undefined ? Effect.succeedNone : Effect.asSome(bucket.available)
})

/** @internal */
export const bulkheadOptions = (options: Options): Bulkhead.Options => ({
  name: options.name,
  maxConcurrent: options.concurrency ?? Number.POSITIVE_INFINITY,
  maxQueued: options.maxQueued
})

/** @internal */
export const bucketOptions = (options: Options): TokenBucket.Options | undefined =>
  options.rate === undefined ? undefined : { ...options.rate, name: options.name }

/**
 * Type of the error a limiter with these options can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorFor<O extends Options> = O extends { readonly maxQueued: number } ? Bulkhead.BulkheadRejected : never

/**
 * Creates an in-process limiter. Invalid options are a defect (`IllegalArgumentException`) naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options>(options: O): Effect.Effect<Limiter<ErrorFor<O>>> =>
  Effect.gen(function*() {
    const bulkhead = Bulkhead.unsafeMake<ErrorFor<O>>(bulkheadOptions(options))
    const rate = bucketOptions(options)
    const bucket = rate === undefined ? undefined : yield* TokenBucket.make(rate)
    return fromParts(bulkhead.name, bulkhead, bucket)
  })

/**
 * Creates a limiter whose rate lives in the `TokenBucketStore` under `key` (shared by every process using the
 * same store), while concurrency is limited in this process.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStore = <const O extends Options>(
  options: O & { readonly key: string }
): Effect.Effect<
  Limiter<ErrorFor<O> | TokenBucketStore.TokenBucketStoreError>,
  never,
  TokenBucketStore.TokenBucketStore
> =>
  Effect.gen(function*() {
    const bulkhead = Bulkhead.unsafeMake<ErrorFor<O>>(bulkheadOptions(options))
    const rate = bucketOptions(options)
    const bucket = rate === undefined ? undefined : yield* TokenBucket.fromStore({ ...rate, key: options.key })
    return fromParts(bulkhead.name, bulkhead, bucket)
  })

/**
 * A layer providing one in-process `Limiter`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Limiter> =>
  Layer.effect(Limiter, make(options as Options & { readonly maxQueued: number }))

/**
 * Reads `concurrency`, `maxQueued`, `rateLimit`, `rateInterval` and `rateBurst` from configuration (each
 * optional), validated so that a bad value is a `ConfigError` naming its key.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (name?: string): Config.Config<Options> =>
  Config.all({
    concurrency: optionalInteger("concurrency", 1),
    maxQueued: optionalInteger("maxQueued", 0),
    limit: Config.number("rateLimit").pipe(
      Config.validate({ message: "must be a positive finite number", validation: (n) => Number.isFinite(n) && n > 0 }),
      Config.option
    ),
    interval: Config.duration("rateInterval").pipe(
      Config.withDefault(Duration.seconds(1)),
      Config.validate({
        message: "must be a positive finite duration",
        validation: TokenBucket.positiveFiniteDuration
      })
    ),
    burst: optionalInteger("rateBurst", 1)
  }).pipe(Config.map(({ burst, concurrency, interval, limit, maxQueued }): Options => ({
    name,
    concurrency,
    maxQueued,
    rate: Option.match(limit, {
      onNone: () => undefined,
      onSome: (limit) => ({ limit, interval, burst })
    })
  })))

const optionalInteger = (key: string, min: number): Config.Config<number | undefined> =>
  Config.integer(key).pipe(
    Config.validate({ message: `must be an integer >= ${min}`, validation: (n) => n >= min }),
    Config.option,
    Config.map(Option.getOrUndefined)
  )

/**
 * A layer providing one in-process `Limiter` configured through `Config`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options: Config.Config<Options>): Layer.Layer<Limiter, ConfigError.ConfigError> =>
  Layer.effect(Limiter, Effect.flatMap(options, (o) => make(o as Options & { readonly maxQueued: number })))

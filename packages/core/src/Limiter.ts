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
import * as Expiry from "./internal/expiry.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import * as TokenBucket from "./TokenBucket.js"
import * as TokenBucketStore from "./TokenBucketStore.js"
import { WaitTimeoutError } from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(Limiter.make({ concurrency: 2 }), (limiter) => Limiter.TypeId in limiter)
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/Limiter")

/**
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 *
 * const isLimiter = (u: unknown): u is Limiter.Limiter<unknown> =>
 *   typeof u === "object" && u !== null && Limiter.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Both limits; either may be omitted.
 *
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 *
 * // What a typical API imposes: 4 requests in flight, 10 per second with bursts of 5, 50 callers queued at most.
 * const options: Limiter.Options = {
 *   concurrency: 4,
 *   maxQueued: 50,
 *   rate: { limit: 10, interval: "1 second", burst: 5 },
 *   name: "billing-api"
 * }
 *
 * const limiter = Limiter.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Effects in flight at once. Omit (or `Infinity`) for no concurrency limit. */
  readonly concurrency?: number | undefined
  /** Callers waiting for a concurrency permit before new ones are rejected with `BulkheadRejected`. */
  readonly maxQueued?: number | undefined
  /**
   * How long a caller may wait, for its permit and its token together, before it fails with `WaitTimeoutError`
   * (holding neither). `0` fails at once instead of waiting. Omit to wait as long as it takes.
   */
  readonly maxWait?: Duration.DurationInput | undefined
  /** Starts per interval, with bursts. Omit for no rate limit. */
  readonly rate?: RateOptions | undefined
  /** Label for metrics. Defaults to `"default"`. */
  readonly name?: string | undefined
}

/**
 * The rate part of a limiter: `limit` starts per `interval`, `burst` at once (default `max(1, ceil(limit))`).
 *
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 *
 * const tenPerSecond: Limiter.RateOptions = { limit: 10, interval: "1 second" }
 *
 * const limiter = Limiter.make({ concurrency: 2, rate: tenPerSecond })
 * ```
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
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const callApi = <E>(limiter: Limiter.Limiter<E>, path: string) => limiter.run(Effect.succeed(`GET ${path}`))
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* Limiter.make({ concurrency: 2, rate: { limit: 10, interval: "1 second" } })
 *   const body = yield* callApi(limiter, "/users")
 *   const tokens = yield* limiter.tokens
 *   return [body, tokens] as const
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["GET /users", { _id: "Option", _tag: "Some", value: 9 }]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Limiter<E = Bulkhead.BulkheadRejected | WaitTimeoutError> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs `self` once both a concurrency permit and a token are held; the permit is released when it ends. */
  readonly run: <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E | E2, R>
  /**
   * Runs `f` for every element under both limits, started in order, without a fiber per waiting element: with a
   * concurrency limit, `concurrency` workers pull the elements (as `Bulkhead.forEach`) and each takes a token before
   * it starts one; with a rate only, one fiber takes the tokens for all of them (as `TokenBucket.forEach`). So
   * 100,000 elements wait in memory proportional to the limits, not to their number. Fails fast.
   */
  readonly forEach: {
    <A, B, E2, R>(
      elements: Iterable<A>,
      f: (a: A, index: number) => Effect.Effect<B, E2, R>,
      options: { readonly discard: true }
    ): Effect.Effect<void, E | E2, R>
    <A, B, E2, R>(
      elements: Iterable<A>,
      f: (a: A, index: number) => Effect.Effect<B, E2, R>,
      options?: { readonly discard?: false | undefined }
    ): Effect.Effect<Array<B>, E | E2, R>
  }
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
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const callApi = (path: string) => Effect.flatMap(Limiter.Limiter, (limiter) => limiter.run(Effect.succeed(path)))
 *
 * const program = callApi("/orders").pipe(
 *   Effect.provide(Limiter.layer({ concurrency: 4, maxQueued: 100, rate: { limit: 20, interval: "1 second" } }))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "/orders"
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Limiter: Context.Tag<Limiter, Limiter> = Context.GenericTag<Limiter>("@spindle/core/Limiter")

/** @internal */
export const fromParts = <E>(
  name: string,
  bulkhead: Bulkhead.Internal<any>,
  bucket: TokenBucket.Internal<any> | undefined
): Limiter<E> => ({
  [TypeId]: TypeId,
  name,
  run: bucket === undefined
    ? bulkhead.run
    : bulkhead.maxWaitMillis === undefined
    ? (self) => bulkhead.run(Effect.zipRight(bucket.take(1), self))
    // One deadline for both stages: set by the first that makes the caller wait.
    : (self) =>
      Effect.suspend(() => {
        const ticket = { deadline: Number.NaN }
        return bulkhead.runTicket(Effect.zipRight(bucket.takeTicket(1, ticket), self), ticket)
      }),
  forEach: (bucket === undefined
    ? bulkhead.forEach
    : bulkhead.maxConcurrent === Number.POSITIVE_INFINITY
    ? bucket.forEach
    : (
      elements: Iterable<unknown>,
      f: (a: unknown, i: number) => Effect.Effect<unknown, unknown, unknown>,
      options?: any
    ) => bulkhead.forEach(elements, (a, i) => Effect.zipRight(bucket.takeQuietly, f(a, i)), options)) as Limiter<
      E
    >["forEach"],
  inFlight: bulkhead.inFlight,
  queued: bulkhead.queued,
  tokens: bucket === undefined ? Effect.succeedNone : Effect.asSome(bucket.available)
})

/**
 * How a limiter's stages report to a tracer: its permit as `Limiter.admitted` / `Limiter.wait` /
 * `Limiter.rejected`, its token as `Limiter.token_granted` / `Limiter.token_wait`, every attribute under
 * `spindle.limiter`.
 *
 * @internal
 */
export const traceNames = (name: string, key?: string | undefined) => ({
  permit: Tracing.names("Limiter", "spindle.limiter", name, key),
  token: Tracing.names("Limiter", "spindle.limiter", name, key, {
    admitted: "Limiter.token_granted",
    wait: "Limiter.token_wait"
  })
})

/** @internal */
export const bulkheadOptions = (options: Options): Bulkhead.Options => ({
  name: options.name,
  maxConcurrent: options.concurrency ?? Number.POSITIVE_INFINITY,
  maxQueued: options.maxQueued,
  maxWait: options.maxWait
})

/** @internal */
export const bucketOptions = (options: Options): TokenBucket.Options | undefined =>
  options.rate === undefined ? undefined : { ...options.rate, name: options.name, maxWait: options.maxWait }

/**
 * The `WaitTimeoutError` of a limiter's stages (permit and token), sharing one expiry; `undefined` without
 * `maxWait`.
 *
 * @internal
 */
export const waitOptions = (
  module: "Limiter" | "KeyedLimiter",
  options: Options,
  expiry: Expiry.Expiry
): ((key: string | undefined) => Bulkhead.WaitOptions) | undefined => {
  const millis = Validate.nonNegativeDurationOr(module, "maxWait", options.maxWait, undefined)
  if (millis === undefined) return undefined
  const name = options.name ?? "default"
  const maxWait = Duration.millis(millis)
  return (key) => ({ error: () => new WaitTimeoutError({ module, name, key, maxWait }), expiry })
}

/**
 * Type of the error a limiter with these options can fail with.
 *
 * @example
 * ```ts
 * import type { Bulkhead, Limiter } from "@spindle/core"
 *
 * // A limiter fails with BulkheadRejected only when its queue is bounded, with WaitTimeoutError only with a maxWait.
 * type Bounded = Limiter.ErrorFor<{ concurrency: 4; maxQueued: 10 }> // Bulkhead.BulkheadRejected
 * type Unbounded = Limiter.ErrorFor<{ concurrency: 4 }> // never
 *
 * const bounded: Bounded extends Bulkhead.BulkheadRejected ? true : false = true
 * const unbounded: [Unbounded] extends [never] ? true : false = true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorFor<O extends Options> =
  | (O extends { readonly maxQueued: number } ? Bulkhead.BulkheadRejected : never)
  | ("maxWait" extends keyof O ? O["maxWait"] extends undefined ? never : WaitTimeoutError : never)

// What `make` and `fromStore` share: the wait bound, the trace names and the in-process bulkhead; only where the
// bucket keeps its tokens differs.
const localParts = <const O extends Options>(options: O) => {
  const wait = waitOptions("Limiter", options, Expiry.make())?.(undefined)
  const names = traceNames(options.name ?? "default")
  const bulkhead = Bulkhead.unsafeMake<ErrorFor<O>>(bulkheadOptions(options), undefined, wait, undefined, names.permit)
  return { bulkhead, names, wait }
}

/**
 * Creates an in-process limiter. With `maxWait`, a caller that has waited that long for its permit and token together
 * fails with `WaitTimeoutError`. Invalid options are a defect (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* Limiter.make({ concurrency: 2, rate: { limit: 100, interval: "1 second", burst: 10 } })
 *   // Starts obey the rate; at most two run at once.
 *   return yield* Effect.forEach([1, 2, 3, 4], (n) => limiter.run(Effect.succeed(n * n)), { concurrency: "unbounded" })
 * })
 *
 * Effect.runPromise(program).then(console.log) // [1, 4, 9, 16]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options>(options: O): Effect.Effect<Limiter<ErrorFor<O>>> =>
  Effect.sync(() => {
    const { bulkhead, names, wait } = localParts(options)
    const rate = bucketOptions(options)
    const bucket = rate === undefined ? undefined : TokenBucket.unsafeMake(rate, wait, names.token)
    return fromParts(bulkhead.name, bulkhead, bucket)
  })

/**
 * Creates a limiter whose rate lives in the `TokenBucketStore` under `key` (shared by every process using the
 * same store), while concurrency is limited in this process.
 *
 * @example
 * ```ts
 * import { Limiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // The rate is shared by every process using the store under the same key; the concurrency limit is local.
 * const program = Effect.gen(function*() {
 *   const limiter = yield* Limiter.fromStore({
 *     key: "partner-api",
 *     concurrency: 4,
 *     rate: { limit: 5, interval: "1 second" }
 *   })
 *   return yield* limiter.run(Effect.succeed("ok"))
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // "ok"
 * ```
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
  Effect.map(TokenBucketStore.TokenBucketStore, (store) => {
    const { bulkhead, names, wait } = localParts(options)
    const rate = bucketOptions(options)
    const bucket = rate === undefined
      ? undefined
      : TokenBucket.makeWithStore(store, options.key, TokenBucket.resolve(rate), undefined, wait, names.token)
    return fromParts(bulkhead.name, bulkhead, bucket)
  })

/**
 * A layer providing one in-process `Limiter`.
 *
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const LimiterLive = Limiter.layer({ concurrency: 8, rate: { limit: 50, interval: "1 second" }, name: "geo" })
 *
 * const geocode = (address: string) =>
 *   Effect.flatMap(Limiter.Limiter, (limiter) => limiter.run(Effect.succeed({ address, lat: 0, lon: 0 })))
 *
 * Effect.runPromise(geocode("1 Main St").pipe(Effect.provide(LimiterLive))).then(console.log)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Limiter> =>
  Layer.effect(Limiter, make(options as Options & { readonly maxQueued: number }))

/**
 * Reads `concurrency`, `maxQueued`, `maxWait`, `rateLimit`, `rateInterval` and `rateBurst` from configuration (each
 * optional), validated so that a bad value is a `ConfigError` naming its key.
 *
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Effect from "effect/Effect"
 *
 * // Keys: concurrency, maxQueued, rateLimit, rateInterval, rateBurst (all optional).
 * const options = Config.nested(Limiter.config("geo"), "geo")
 *
 * const provider = ConfigProvider.fromJson({ geo: { concurrency: 4, rateLimit: 10 } })
 *
 * Effect.runPromise(Effect.withConfigProvider(options, provider)).then((o) => console.log(o.concurrency, o.rate))
 * // 4 { limit: 10, interval: Duration(1s), burst: undefined }
 * ```
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
    burst: optionalInteger("rateBurst", 1),
    maxWait: Bulkhead.maxWaitConfig
  }).pipe(Config.map(({ burst, concurrency, interval, limit, maxQueued, maxWait }): Options => ({
    name,
    concurrency,
    maxQueued,
    rate: Option.match(limit, {
      onNone: () => undefined,
      onSome: (limit) => ({ limit, interval, burst })
    }),
    ...(maxWait === undefined ? {} : { maxWait })
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
 * @example
 * ```ts
 * import { Limiter } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as Effect from "effect/Effect"
 *
 * // GEO_CONCURRENCY, GEO_RATE_LIMIT, … from the environment; bad values fail the layer with a ConfigError.
 * const LimiterLive = Limiter.layerConfig(Config.nested(Limiter.config("geo"), "GEO"))
 *
 * const program = Effect.flatMap(Limiter.Limiter, (limiter) => limiter.run(Effect.succeed("ok"))).pipe(
 *   Effect.provide(LimiterLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options: Config.Config<Options>): Layer.Layer<Limiter, ConfigError.ConfigError> =>
  Layer.effect(Limiter, Effect.flatMap(options, (o) => make(o as Options & { readonly maxQueued: number })))

/**
 * A token bucket: at most `burst` operations at once, then `limit` per `interval`, with waiters served in
 * arrival order.
 *
 * The bucket is a generic cell rate algorithm over the clock, not a refill timer: the tokens available are
 * computed from a fixed origin at each decision, so long runs do not drift, and only the fiber at the head of
 * the queue ever sleeps. An interrupted waiter takes nothing with it.
 *
 * @since 0.1.0
 */
import type * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bulkhead from "./Bulkhead.js"
import * as Expiry from "./internal/expiry.js"
import * as Gcra from "./internal/gcra.js"
import * as Metrics from "./internal/metrics.js"
import * as Paced from "./internal/paced.js"
import * as TokenGate from "./internal/tokenGate.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import * as TokenBucketStore from "./TokenBucketStore.js"
import * as WaitTimeout from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const bucket = yield* TokenBucket.make({ limit: 5, interval: "1 second" })
 *   return bucket[TokenBucket.TypeId] === TokenBucket.TypeId
 * })
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/TokenBucket")

/**
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 *
 * const isTokenBucket = (u: unknown): u is TokenBucket.TokenBucket<unknown> =>
 *   typeof u === "object" && u !== null && TokenBucket.TypeId in u
 *
 * console.log(isTokenBucket({})) // false
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * How fast and how bursty a bucket is.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 *
 * // 100 calls a minute, at most 10 back to back after a quiet spell.
 * const options: TokenBucket.Options = { limit: 100, interval: "1 minute", burst: 10, name: "search-api" }
 *
 * const bucket = TokenBucket.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Tokens added per `interval` (may be fractional: `0.5` per second is one every two seconds). */
  readonly limit: number
  /** The period `limit` refers to. */
  readonly interval: Duration.DurationInput
  /** Capacity: tokens available at once after an idle period. Defaults to `max(1, ceil(limit))`. */
  readonly burst?: number | undefined
  /** Label for metrics and logs. Defaults to `"default"`. */
  readonly name?: string | undefined
  /**
   * How long `take` may wait for its tokens before it fails with `WaitTimeoutError` (it takes nothing then). `0`
   * fails at once instead of waiting. Omit to wait as long as it takes.
   */
  readonly maxWait?: Duration.DurationInput | undefined
}

/**
 * Type of the error a bucket with these options adds to its decisions' errors: `WaitTimeoutError` with a
 * `maxWait`, else `never`.
 *
 * @example
 * ```ts
 * import type { TokenBucket, WaitTimeout } from "@spindle/core"
 *
 * type Bounded = TokenBucket.ErrorFor<{ limit: 10; interval: "1 second"; maxWait: "2 seconds" }>
 * type Unbounded = TokenBucket.ErrorFor<{ limit: 10; interval: "1 second" }>
 *
 * const bounded: Bounded extends WaitTimeout.WaitTimeoutError ? true : false = true
 * const unbounded: [Unbounded] extends [never] ? true : false = true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorFor<O extends Options> = "maxWait" extends keyof O
  ? O["maxWait"] extends undefined ? never : WaitTimeout.WaitTimeoutError
  : never

/**
 * A token bucket whose decisions may fail with `E` (never, in memory; a store error with a shared store).
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Anything that needs pacing can take the bucket as a plain value.
 * const callSearch = (bucket: TokenBucket.TokenBucket, query: string) =>
 *   Effect.succeed(`results for ${query}`).pipe(bucket.withTokens())
 *
 * const program = Effect.gen(function*() {
 *   const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second" })
 *   return yield* callSearch(bucket, "effect")
 * })
 *
 * Effect.runPromise(program).then(console.log) // "results for effect"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenBucket<E = never> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly limit: number
  readonly interval: Duration.Duration
  readonly burst: number
  /** Waits, in arrival order, until `tokens` (default 1) are available and takes them (at most `maxWait`). */
  readonly take: (tokens?: number) => Effect.Effect<void, E>
  /** Takes `tokens` (default 1) if they are available now and nobody is waiting; never waits. */
  readonly tryTake: (tokens?: number) => Effect.Effect<boolean, E>
  /** Runs `self` once `tokens` (default 1) have been taken. */
  readonly withTokens: {
    (tokens?: number): <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E | E2, R>
  }
  /**
   * Runs `f` for every element, each started once it has taken a token, in order, at the bucket's rate. Elements
   * waiting for their token are not fibers: one fiber waits in the bucket for all of them (it queues with the
   * bucket's other callers, in arrival order), so 100,000 elements cost no more memory than 10. A started element
   * runs in a fiber of its own; with `concurrency` (default `"unbounded"`: the rate alone limits them) at most that
   * many run at once. Fails fast: the first failure interrupts the rest.
   */
  readonly forEach: {
    <A, B, E2, R>(
      elements: Iterable<A>,
      f: (a: A, index: number) => Effect.Effect<B, E2, R>,
      options: { readonly concurrency?: number | "unbounded" | undefined; readonly discard: true }
    ): Effect.Effect<void, E | E2, R>
    <A, B, E2, R>(
      elements: Iterable<A>,
      f: (a: A, index: number) => Effect.Effect<B, E2, R>,
      options?: { readonly concurrency?: number | "unbounded" | undefined; readonly discard?: false | undefined }
    ): Effect.Effect<Array<B>, E | E2, R>
  }
  /** Paces a stream: each element is emitted once it has taken a token (pulled, never buffered ahead). */
  readonly pace: <A, E2, R>(self: Stream.Stream<A, E2, R>) => Stream.Stream<A, E | E2, R>
  /** Tokens available now. */
  readonly available: Effect.Effect<number, E>
  /** Fibers waiting for tokens now. */
  readonly waiting: Effect.Effect<number>
}

/**
 * The token bucket service, for apps that want one bucket swapped by layer.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const bucket = yield* TokenBucket.TokenBucket
 *   yield* bucket.take()
 *   return yield* bucket.waiting
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(TokenBucket.layer({ limit: 5, interval: "1 second" })))).then(
 *   console.log
 * ) // 0
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const TokenBucket: Context.Tag<TokenBucket, TokenBucket> = Context.GenericTag<TokenBucket>(
  "@spindle/core/TokenBucket"
)

/**
 * The metrics every token bucket updates, labelled `bucket=<name>`: tokens available after the latest decision,
 * fibers waiting, tokens granted and `tryTake` refusals.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const bucket = yield* TokenBucket.make({ limit: 5, interval: "1 second", name: "docs" })
 *   yield* bucket.take(2)
 *   const granted = yield* Metric.value(TokenBucket.metrics.granted.pipe(Metric.tagged("bucket", "docs")))
 *   return granted.count
 * })
 *
 * Effect.runPromise(program).then(console.log) // 2
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  tokens: Metrics.tokensAvailable,
  waiters: Metrics.tokenWaiters,
  granted: Metrics.tokensGranted,
  rejections: Metrics.tokenRejections,
  waitTimeouts: Metrics.tokenWaitTimeouts
} as const

/** @internal */
export interface Resolved {
  readonly name: string
  readonly limit: number
  readonly interval: Duration.Duration
  readonly burst: number
  readonly emissionMillis: number
  readonly maxWaitMillis: number | undefined
}

/**
 * How a bucket names itself in `WaitTimeoutError` (a `Limiter`'s or a `KeyedLimiter` key's, when it is part of
 * one), and the expiry its parked waiters share.
 *
 * @internal
 */
export interface WaitOptions {
  readonly error: () => WaitTimeout.WaitTimeoutError
  readonly expiry: Expiry.Expiry
}

/** @internal */
export interface Internal<E> extends TokenBucket<E> {
  /** `take`, with the caller's wait bounded by `ticket` (shared with a `Limiter`'s bulkhead). */
  readonly takeTicket: (tokens: number, ticket: TokenGate.Ticket) => Effect.Effect<void, E>
  /** One token, never reported to a tracer: the per-element take of a loop (`forEach`, `pace`, a limiter's). */
  readonly takeQuietly: Effect.Effect<void, E>
}

/** @internal */
export const resolve = (options: Options): Resolved => {
  const limit = Validate.positiveNumber("TokenBucket", "limit", options.limit)
  const intervalMillis = Validate.positiveDurationMillis("TokenBucket", "interval", options.interval)
  const burst = Validate.positiveIntegerOr("TokenBucket", "burst", options.burst, Math.max(1, Math.ceil(limit)))
  return {
    name: options.name ?? "default",
    limit,
    interval: Duration.millis(intervalMillis),
    burst,
    emissionMillis: intervalMillis / limit,
    maxWaitMillis: Validate.nonNegativeDurationOr("TokenBucket", "maxWait", options.maxWait, undefined)
  }
}

const bucketNames = (name: string): Tracing.Names =>
  Tracing.names("TokenBucket", "spindle.bucket", name, undefined, { admitted: "TokenBucket.granted" })

const checkTokens = (resolved: Resolved, tokens: number): number => {
  if (!Number.isFinite(tokens) || tokens <= 0 || tokens > resolved.burst) {
    Validate.illegal(
      "TokenBucket",
      `cannot take ${tokens} token(s) from "${resolved.name}": must be > 0 and <= burst (${resolved.burst})`
    )
  }
  return tokens
}

/** @internal */
export const fromGate = <E>(
  resolved: Resolved,
  attempt: (tokens: number) => Effect.Effect<TokenGate.Decision, E>,
  available: Effect.Effect<number, E>,
  sharedLabels?: Metrics.Labels,
  wait?: WaitOptions,
  /** How it reports to a tracer (a `Limiter`'s bucket names its limiter). Default: as a token bucket. */
  traceNames?: Tracing.Names
): Internal<E> => {
  // Buckets sharing labels (the keys of a keyed limiter) add up their waiters and grants; a "tokens available"
  // figure only means something for a single bucket, so it is reported only then.
  const labels = sharedLabels ?? Metrics.labels("bucket", resolved.name)
  const gate = TokenGate.make(
    attempt,
    {
      onWaiters: (delta) => Metrics.tokenWaiters.unsafeModify(delta, labels),
      onGranted: sharedLabels === undefined
        ? (tokens, remaining) => {
          Metrics.tokensGranted.unsafeUpdate(tokens, labels)
          Metrics.tokensAvailable.unsafeUpdate(remaining, labels)
        }
        : (tokens) => Metrics.tokensGranted.unsafeUpdate(tokens, labels),
      onRejected: () => Metrics.tokenRejections.unsafeUpdate(1, labels)
    },
    resolved.maxWaitMillis === undefined ? undefined : {
      maxWaitMillis: resolved.maxWaitMillis,
      error: wait?.error ?? (() =>
        new WaitTimeout.WaitTimeoutError({
          module: "TokenBucket",
          name: resolved.name,
          key: undefined,
          maxWait: Duration.millis(resolved.maxWaitMillis!)
        })),
      expiry: wait?.expiry ?? Expiry.make(),
      onTimeout: () => Metrics.tokenWaitTimeouts.unsafeUpdate(1, labels)
    },
    traceNames ?? bucketNames(resolved.name)
  )
  const take = (tokens = 1) => Effect.suspend(() => gate.take(checkTokens(resolved, tokens)))
  // The loops' per-element take reports nothing to a tracer: a million elements would be a million spans or events.
  const takeOne = gate.take(1, undefined, false)
  const forEach = <A, B, E2, R>(
    elements: Iterable<A>,
    f: (a: A, index: number) => Effect.Effect<B, E2, R>,
    options?: { readonly concurrency?: number | "unbounded" | undefined; readonly discard?: boolean | undefined }
  ): Effect.Effect<Array<B> | void, E | E2, R> => {
    const discard = options?.discard === true
    const concurrency = options?.concurrency ?? "unbounded"
    if (concurrency === "unbounded") return Paced.forEach(elements, takeOne, f, discard)
    // Bounded: `concurrency` workers, each taking a token before each element it pulls.
    // The workers are the loop's own: only the tokens they take are reported.
    const workers = Bulkhead.unsafeMake<never>(
      { maxConcurrent: concurrency, name: resolved.name },
      undefined,
      undefined,
      undefined,
      null
    )
    const paced = (a: A, i: number) => Effect.zipRight(takeOne, f(a, i))
    return discard ? workers.forEach(elements, paced, { discard: true }) : workers.forEach(elements, paced)
  }
  return {
    [TypeId]: TypeId,
    name: resolved.name,
    limit: resolved.limit,
    interval: resolved.interval,
    burst: resolved.burst,
    take,
    tryTake: (tokens = 1) => Effect.suspend(() => gate.tryTake(checkTokens(resolved, tokens))),
    withTokens: (tokens = 1) => (self) => Effect.zipRight(take(tokens), self),
    forEach: forEach as TokenBucket<E>["forEach"],
    pace: (self) => Stream.tap(self, () => takeOne),
    available,
    waiting: Effect.sync(() => gate.waiting()),
    takeTicket: (tokens, ticket) => gate.take(tokens, ticket),
    takeQuietly: takeOne
  }
}

/**
 * Creates an in-process token bucket; with `maxWait`, `take` can fail with `WaitTimeoutError`. Invalid options are a
 * defect (`IllegalArgumentException`) naming the field; use `layerConfig` to get them as a typed `ConfigError`
 * instead.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 2 })
 *   yield* bucket.take()
 *   return yield* bucket.tryTake()
 * })
 *
 * Effect.runPromise(program).then((taken) => console.log(taken)) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options>(options: O): Effect.Effect<TokenBucket<ErrorFor<O>>> =>
  Effect.sync(() => unsafeMake(options) as TokenBucket<any>)

// An in-process bucket decides on the clock's monotonic reading (sub-millisecond, like the timers it sleeps on),
// not on the wall clock: a wall clock being slewed or stepped (NTP, a virtual machine's clock sync) would otherwise
// speed the bucket up, or stall it, by as much. Under TestClock both readings are the same.
const monotonicMillis = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000

/** @internal */
export const unsafeMake = (
  options: Options,
  wait?: WaitOptions,
  traceNames?: Tracing.Names
): Internal<WaitTimeout.WaitTimeoutError> => {
  const resolved = resolve(options)
  const state = Gcra.make()
  const { burst, emissionMillis } = resolved
  return fromGate(
    resolved,
    (tokens) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = monotonicMillis(clock)
          const delayMillis = Gcra.reserve(state, now, tokens, emissionMillis, burst)
          return { delayMillis, remaining: Gcra.available(state, now, emissionMillis, burst) }
        })
      ),
    Effect.clockWith((clock) =>
      Effect.sync(() => Gcra.available(state, monotonicMillis(clock), emissionMillis, burst))
    ),
    undefined,
    wait,
    traceNames
  )
}

/**
 * Creates a token bucket whose state lives in the `TokenBucketStore` under `key`, so that every process using
 * the same store and key shares one limit. Waiters inside this process are still served in arrival order.
 *
 * @example
 * ```ts
 * import { TokenBucket, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Every process that uses the same store and key shares this limit (swap layerMemory for a Redis store).
 * const program = Effect.gen(function*() {
 *   const bucket = yield* TokenBucket.fromStore({ key: "api.example.com", limit: 20, interval: "1 second" })
 *   yield* bucket.take()
 *   return yield* bucket.available
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(TokenBucketStore.layerMemory))).then(console.log) // 19
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromStore = <const O extends Options & { readonly key: string }>(
  options: O
): Effect.Effect<
  TokenBucket<TokenBucketStore.TokenBucketStoreError | ErrorFor<O>>,
  never,
  TokenBucketStore.TokenBucketStore
> =>
  Effect.map(
    TokenBucketStore.TokenBucketStore,
    (store): TokenBucket<any> => makeWithStore(store, options.key, resolve(options))
  )

/** @internal */
export const makeWithStore = (
  store: TokenBucketStore.TokenBucketStore,
  key: string,
  resolved: Resolved,
  sharedLabels?: Metrics.Labels,
  wait?: WaitOptions,
  traceNames?: Tracing.Names
): Internal<TokenBucketStore.TokenBucketStoreError | WaitTimeout.WaitTimeoutError> => {
  const { burst, emissionMillis } = resolved
  return fromGate(
    resolved,
    (tokens) => store.reserve({ key, tokens, burst, emissionMillis }),
    store.available({ key, burst, emissionMillis }),
    sharedLabels,
    wait,
    traceNames
  )
}

/**
 * A layer providing one in-process `TokenBucket`. The service's `take` never fails, so a bucket with a `maxWait` is
 * made with `make` (or is a `Limiter`'s) instead.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const fetchPage = (page: number) =>
 *   Effect.gen(function*() {
 *     const bucket = yield* TokenBucket.TokenBucket
 *     yield* bucket.take()
 *     return `page ${page}`
 *   })
 *
 * const program = Effect.forEach([1, 2, 3], fetchPage).pipe(
 *   Effect.provide(TokenBucket.layer({ limit: 50, interval: "1 second", burst: 5 }))
 * )
 *
 * Effect.runPromise(program).then(console.log) // ["page 1", "page 2", "page 3"]
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options & { readonly maxWait?: undefined }): Layer.Layer<TokenBucket> =>
  Layer.effect(TokenBucket, make(options))

/**
 * Reads bucket options from configuration: `limit`, `interval` (a duration such as `"1 second"`) and an
 * optional `burst`, validated so that a bad value is a `ConfigError` naming its key.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Effect from "effect/Effect"
 *
 * // Reads UPSTREAM_LIMIT, UPSTREAM_INTERVAL and UPSTREAM_BURST.
 * const options = Config.nested(TokenBucket.config("upstream"), "UPSTREAM")
 *
 * // As the environment would give them.
 * const provider = ConfigProvider.fromMap(new Map([["UPSTREAM_LIMIT", "20"], ["UPSTREAM_INTERVAL", "1 second"]]), {
 *   pathDelim: "_"
 * }).pipe(ConfigProvider.constantCase)
 *
 * Effect.runPromise(Effect.withConfigProvider(options, provider)).then((o) => console.log(o.limit, o.burst))
 * // 20 undefined
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const config = (name?: string): Config.Config<Options & { readonly maxWait?: undefined }> =>
  Config.all({
    limit: Config.number("limit").pipe(
      Config.validate({ message: "must be a positive finite number", validation: (n) => Number.isFinite(n) && n > 0 })
    ),
    interval: Config.duration("interval").pipe(
      Config.withDefault(Duration.seconds(1)),
      Config.validate({ message: "must be a positive finite duration", validation: positiveFiniteDuration })
    ),
    burst: Config.integer("burst").pipe(
      Config.validate({ message: "must be a positive integer", validation: (n) => n >= 1 }),
      Config.option,
      Config.map((option) => option._tag === "Some" ? option.value : undefined)
    )
  }).pipe(Config.map((options) => ({ ...options, name })))

/** @internal */
export const positiveFiniteDuration = (duration: Duration.Duration): boolean => {
  const millis = Duration.toMillis(duration)
  return Number.isFinite(millis) && millis > 0
}

/**
 * A layer providing one in-process `TokenBucket` configured through `Config` (for example
 * `Config.nested(TokenBucket.config(), "UPSTREAM")` reads `UPSTREAM_LIMIT`, `UPSTREAM_INTERVAL`, `UPSTREAM_BURST`).
 *
 * @example
 * ```ts
 * import { TokenBucket } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as Effect from "effect/Effect"
 *
 * // A missing or invalid UPSTREAM_LIMIT is a typed ConfigError when the layer is built.
 * const UpstreamBucket = TokenBucket.layerConfig(Config.nested(TokenBucket.config("upstream"), "UPSTREAM"))
 *
 * const program = Effect.flatMap(TokenBucket.TokenBucket, (bucket) => bucket.take()).pipe(
 *   Effect.provide(UpstreamBucket)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options & { readonly maxWait?: undefined }>
): Layer.Layer<TokenBucket, ConfigError.ConfigError> =>
  Layer.effect(TokenBucket, Effect.flatMap(options, (resolved) => make(resolved)))

/**
 * The seam between Spindle's token buckets and the place their state lives.
 *
 * A store makes one atomic decision per call — take these tokens now, or tell me when — with the generic cell
 * rate algorithm. The in-memory store serves a single process; a Redis store (in `@spindle/redis`) implements
 * the same interface with one Lua script so that several processes share one limit.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Gcra from "./internal/gcra.js"

/**
 * What one reservation asks of a store: `tokens` from the bucket `key`, which holds at most `burst` tokens and
 * gains one every `emissionMillis`.
 *
 * @example
 * ```ts
 * import { TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // One token from a bucket of 10 that gains a token every 100 ms (10 per second).
 * const request: TokenBucketStore.ReserveOptions = { key: "example.com", tokens: 1, burst: 10, emissionMillis: 100 }
 *
 * const program = Effect.flatMap(TokenBucketStore.makeMemory, (store) => store.reserve(request))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ReserveOptions {
  readonly key: string
  readonly tokens: number
  readonly burst: number
  readonly emissionMillis: number
}

/**
 * A store's answer: `delayMillis` is `0` when the tokens were taken, otherwise the time after which they would
 * be (nothing was taken); `remaining` is the whole number of tokens left, for metrics.
 *
 * @example
 * ```ts
 * import { TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const describe = (decision: TokenBucketStore.Decision) =>
 *   decision.delayMillis === 0 ? `taken, ${decision.remaining} left` : `retry in ${decision.delayMillis} ms`
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* TokenBucketStore.makeMemory
 *   const decision = yield* store.reserve({ key: "k", tokens: 1, burst: 1, emissionMillis: 1000 })
 *   return describe(decision)
 * })
 *
 * Effect.runPromise(program).then(console.log) // "taken, 0 left"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Decision {
  readonly delayMillis: number
  readonly remaining: number
}

/**
 * A store could not answer (unreachable, timed out, or replied with something unexpected). Callers treat it as
 * retryable: a limiter never lets work through without a decision.
 *
 * @example
 * ```ts
 * import { TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const down = new TokenBucketStore.TokenBucketStoreError({ reason: "Unavailable", message: "connection refused" })
 * const unreachable: TokenBucketStore.TokenBucketStore = {
 *   reserve: () => Effect.fail(down),
 *   available: () => Effect.fail(down)
 * }
 *
 * // A limiter never lets work through without a decision: callers retry or report.
 * const program = unreachable.reserve({ key: "k", tokens: 1, burst: 1, emissionMillis: 1000 }).pipe(
 *   Effect.catchTag("TokenBucketStoreError", (e) => Effect.succeed(`store ${e.reason}`))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "store Unavailable"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenBucketStoreError extends Data.TaggedError("TokenBucketStoreError")<{
  readonly reason: "Unavailable" | "Protocol"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Atomic, keyed token-bucket decisions.
 *
 * @example
 * ```ts
 * import { TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // A store that logs every decision of another one.
 * const logged = (store: TokenBucketStore.TokenBucketStore): TokenBucketStore.TokenBucketStore => ({
 *   reserve: (options) => Effect.tap(store.reserve(options), (d) => Effect.logDebug(options.key, d.delayMillis)),
 *   available: store.available
 * })
 *
 * const program = Effect.gen(function*() {
 *   const store = logged(yield* TokenBucketStore.makeMemory)
 *   return yield* store.available({ key: "k", burst: 5, emissionMillis: 200 })
 * })
 *
 * Effect.runPromise(program).then(console.log) // 5
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenBucketStore {
  /** Takes the tokens if available now, or says when they will be; never takes part of them. */
  readonly reserve: (options: ReserveOptions) => Effect.Effect<Decision, TokenBucketStoreError>
  /** Tokens available now in bucket `key`, without taking any. */
  readonly available: (options: Omit<ReserveOptions, "tokens">) => Effect.Effect<number, TokenBucketStoreError>
}

/**
 * The store service: provide `layerMemory` for one process, or a shared store for several.
 *
 * @example
 * ```ts
 * import { TokenBucket, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* TokenBucketStore.TokenBucketStore
 *   const bucket = yield* TokenBucket.fromStore({ key: "tenant-42", limit: 5, interval: "1 second" })
 *   yield* bucket.take(2)
 *   return yield* store.available({ key: "tenant-42", burst: 5, emissionMillis: 200 })
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // 3
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const TokenBucketStore: Context.Tag<TokenBucketStore, TokenBucketStore> = Context.GenericTag<
  TokenBucketStore
>("@spindle/core/TokenBucketStore")

/**
 * An in-memory store that also reports how many buckets it holds.
 *
 * @example
 * ```ts
 * import { TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store: TokenBucketStore.MemoryTokenBucketStore = yield* TokenBucketStore.makeMemory
 *   yield* store.reserve({ key: "a", tokens: 1, burst: 2, emissionMillis: 60_000 })
 *   return yield* store.size
 * })
 *
 * Effect.runPromise(program).then(console.log) // 1
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryTokenBucketStore extends TokenBucketStore {
  /** Buckets held in memory; a full bucket is forgotten, since a missing key reads as full. */
  readonly size: Effect.Effect<number>
}

const MIN_SWEEP_SIZE = 1024

/**
 * Creates an in-memory store. Buckets that have refilled completely are indistinguishable from missing ones,
 * so they are dropped by a sweep that runs whenever the map has doubled since the last one: memory stays
 * proportional to the keys used within one refill period, with 1M distinct keys over time or more.
 *
 * @example
 * ```ts
 * import { TokenBucket, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* TokenBucketStore.makeMemory
 *   const bucket = yield* TokenBucket.fromStore({ key: "k", limit: 1, interval: "1 second" }).pipe(
 *     Effect.provideService(TokenBucketStore.TokenBucketStore, store)
 *   )
 *   return yield* bucket.tryTake()
 * })
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<MemoryTokenBucketStore> = Effect.sync(() => {
  const buckets = new Map<string, Gcra.GcraState & { emission: number }>()
  let nextSweep = MIN_SWEEP_SIZE

  const sweep = (now: number) => {
    for (const [key, state] of buckets) {
      if (Gcra.isFull(state, now, state.emission)) buckets.delete(key)
    }
    nextSweep = Math.max(MIN_SWEEP_SIZE, buckets.size * 2)
  }

  const reserve = (options: ReserveOptions) =>
    Effect.clockWith((clock) =>
      Effect.sync((): Decision => {
        const now = clock.unsafeCurrentTimeMillis()
        let state = buckets.get(options.key)
        if (state === undefined) {
          if (buckets.size >= nextSweep) sweep(now)
          state = { anchor: Number.NEGATIVE_INFINITY, count: 0, emission: options.emissionMillis }
          buckets.set(options.key, state)
        }
        state.emission = options.emissionMillis
        const delayMillis = Gcra.reserve(state, now, options.tokens, options.emissionMillis, options.burst)
        return {
          delayMillis,
          remaining: Gcra.available(state, now, options.emissionMillis, options.burst)
        }
      })
    )

  const available = (options: Omit<ReserveOptions, "tokens">) =>
    Effect.clockWith((clock) =>
      Effect.sync(() => {
        const state = buckets.get(options.key)
        return state === undefined
          ? options.burst
          : Gcra.available(state, clock.unsafeCurrentTimeMillis(), options.emissionMillis, options.burst)
      })
    )

  return {
    reserve,
    available,
    size: Effect.clockWith((clock) =>
      Effect.sync(() => {
        sweep(clock.unsafeCurrentTimeMillis())
        return buckets.size
      })
    )
  }
})

/**
 * The in-memory store as a layer: the default for a single process.
 *
 * @example
 * ```ts
 * import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedLimiter.make({ rate: { limit: 5, interval: "1 second" } })
 *   return yield* perHost.run("example.com", Effect.succeed("fetched"))
 * }).pipe(Effect.provide(TokenBucketStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // "fetched"
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TokenBucketStore> = Layer.effect(TokenBucketStore, makeMemory)

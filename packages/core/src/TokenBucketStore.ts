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
 * @since 0.1.0
 * @category tags
 */
export const TokenBucketStore: Context.Tag<TokenBucketStore, TokenBucketStore> = Context.GenericTag<
  TokenBucketStore
>("@spindle/core/TokenBucketStore")

/**
 * An in-memory store that also reports how many buckets it holds.
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
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TokenBucketStore> = Layer.effect(TokenBucketStore, makeMemory)

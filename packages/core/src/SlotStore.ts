/**
 * The seam between shared concurrency limits and the place their state lives, as `TokenBucketStore` is for rates.
 *
 * A key has `limit` slots; a holder takes one (`acquire`), keeps it alive (`refresh`) and gives it back
 * (`release`). Since a process that crashes cannot give anything back, every slot is a lease with a time to live:
 * `withSlot` refreshes it every third of that while the work runs, and a dead holder's slot frees itself when its
 * lease lapses.
 *
 * Waiting is by polling (a store has no way to wake another process's waiter), so waiters are not served in order.
 * Within one process a `Bulkhead` is simpler and FIFO; the in-memory store here exists for tests. A Redis store (in
 * `@spindle/redis`) implements the same interface with Lua scripts so that several processes share one limit.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"

/**
 * What one `acquire` asks of a store: a slot of `key` (which has `limit` of them) for `holder`, for `ttlMillis`.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const options: SlotStore.AcquireOptions = { key: "host:example.com", limit: 8, holder: "w-1", ttlMillis: 30_000 }
 *
 * const program = Effect.flatMap(SlotStore.makeMemory, (store) => store.acquire(options))
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AcquireOptions {
  readonly key: string
  readonly limit: number
  readonly holder: string
  readonly ttlMillis: number
}

/**
 * A store could not answer (unreachable, timed out, or replied with something unexpected). Callers treat it as
 * retryable: work never runs without a slot.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* SlotStore.SlotStore
 *   return yield* Effect.succeed("work").pipe(SlotStore.withSlot(store, { key: "k", limit: 1, ttl: "10 seconds" }))
 * }).pipe(
 *   // The work never runs without a slot; a store outage is a typed, retryable failure.
 *   Effect.catchTag("SlotStoreError", (e) => Effect.succeed(`no decision: ${e.message}`)),
 *   Effect.provide(SlotStore.layerMemory)
 * )
 *
 * Effect.runPromise(program).then(console.log) // "work"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class SlotStoreError extends Data.TaggedError("SlotStoreError")<{
  readonly reason: "Unavailable" | "Protocol"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Atomic, keyed slot decisions.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store: SlotStore.SlotStore = yield* SlotStore.makeMemory
 *   const slot = { key: "exports", holder: "job-7", ttlMillis: 5_000 }
 *   const first = yield* store.acquire({ ...slot, limit: 1 })
 *   const other = yield* store.acquire({ ...slot, holder: "job-8", limit: 1 })
 *   yield* store.release(slot)
 *   return [first, other]
 * })
 *
 * Effect.runPromise(program).then(console.log) // [true, false]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SlotStore {
  /**
   * Takes a slot for `holder` if fewer than `limit` unexpired holders have one (`true`), or takes nothing
   * (`false`). A holder that already has a slot keeps it, with its lease extended.
   */
  readonly acquire: (options: AcquireOptions) => Effect.Effect<boolean, SlotStoreError>
  /** Extends `holder`'s lease; `false` if it no longer holds a slot (its lease lapsed). */
  readonly refresh: (options: Omit<AcquireOptions, "limit">) => Effect.Effect<boolean, SlotStoreError>
  /** Gives `holder`'s slot back; nothing happens if it holds none. */
  readonly release: (options: { readonly key: string; readonly holder: string }) => Effect.Effect<void, SlotStoreError>
}

/**
 * The store service.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const exportReport = Effect.gen(function*() {
 *   const store = yield* SlotStore.SlotStore
 *   // At most 2 exports at once across every process that shares the store.
 *   return yield* Effect.succeed("report.csv").pipe(
 *     SlotStore.withSlot(store, { key: "exports", limit: 2, ttl: "30 seconds" })
 *   )
 * })
 *
 * Effect.runPromise(exportReport.pipe(Effect.provide(SlotStore.layerMemory))).then(console.log) // "report.csv"
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const SlotStore: Context.Tag<SlotStore, SlotStore> = Context.GenericTag<SlotStore>("@spindle/core/SlotStore")

/**
 * An in-memory store that also says how many unexpired holders a key has.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store: SlotStore.MemorySlotStore = yield* SlotStore.makeMemory
 *   yield* store.acquire({ key: "k", limit: 3, holder: "a", ttlMillis: 1_000 })
 *   yield* store.acquire({ key: "k", limit: 3, holder: "b", ttlMillis: 1_000 })
 *   return yield* store.holders("k")
 * })
 *
 * Effect.runPromise(program).then(console.log) // 2
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MemorySlotStore extends SlotStore {
  readonly holders: (key: string) => Effect.Effect<number>
}

/**
 * Creates an in-memory store (for tests; one process is better served by a `Bulkhead`).
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* SlotStore.makeMemory
 *   yield* Effect.void.pipe(SlotStore.withSlot(store, { key: "k", limit: 1, ttl: "1 second" }))
 *   return yield* store.holders("k") // released when the work ended
 * })
 *
 * Effect.runPromise(program).then(console.log) // 0
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<MemorySlotStore> = Effect.sync(() => {
  const keys = new Map<string, Map<string, number>>()
  const live = (key: string, now: number) => {
    const holders = keys.get(key) ?? new Map<string, number>()
    for (const [holder, expiresAt] of holders) if (expiresAt <= now) holders.delete(holder)
    if (holders.size === 0) keys.delete(key)
    return holders
  }
  const withNow = <A>(f: (now: number) => A) =>
    Effect.clockWith((clock) => Effect.sync(() => f(clock.unsafeCurrentTimeMillis())))
  return {
    acquire: ({ holder, key, limit, ttlMillis }) =>
      withNow((now) => {
        const holders = live(key, now)
        if (!holders.has(holder) && holders.size >= limit) return false
        keys.set(key, holders.set(holder, now + ttlMillis))
        return true
      }),
    refresh: ({ holder, key, ttlMillis }) =>
      withNow((now) => {
        const holders = live(key, now)
        if (!holders.has(holder)) return false
        holders.set(holder, now + ttlMillis)
        return true
      }),
    release: ({ holder, key }) =>
      Effect.sync(() => {
        const holders = keys.get(key)
        holders?.delete(holder)
        if (holders?.size === 0) keys.delete(key)
      }),
    holders: (key) => withNow((now) => live(key, now).size)
  }
})

/**
 * The in-memory store as a layer.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.flatMap(SlotStore.SlotStore, (store) =>
 *   store.acquire({ key: "k", limit: 1, holder: "me", ttlMillis: 1_000 })).pipe(Effect.provide(SlotStore.layerMemory))
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<SlotStore> = Layer.effect(SlotStore, makeMemory)

/**
 * How `withSlot` holds a slot.
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // 4 slots per host, each a 30 s lease refreshed every 10 s, polled every 50 ms while all are taken.
 * const perHost = (host: string): SlotStore.WithSlotOptions => ({
 *   key: `host:${host}`,
 *   limit: 4,
 *   ttl: "30 seconds",
 *   pollInterval: "50 millis"
 * })
 *
 * const fetchFrom = (store: SlotStore.SlotStore, host: string) =>
 *   Effect.succeed(`GET ${host}`).pipe(SlotStore.withSlot(store, perHost(host)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface WithSlotOptions {
  readonly key: string
  readonly limit: number
  /** The lease of the slot: refreshed every third of it while the effect runs. */
  readonly ttl: Duration.DurationInput
  /** Pause between attempts while the slots are taken, jittered ±50%. Defaults to 20 ms. */
  readonly pollInterval?: Duration.DurationInput | undefined
}

const instance = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`
let nextHolder = 0

/**
 * Runs `self` holding one of the `limit` slots of `key` in `store`: waits (polling) until one is free, refreshes
 * its lease while `self` runs, and gives it back however `self` ends. Interrupting a waiter takes no slot. A store
 * error fails the effect with `SlotStoreError` (the work does not run without a slot).
 *
 * @example
 * ```ts
 * import { SlotStore } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* SlotStore.makeMemory
 *   const limited = SlotStore.withSlot(store, { key: "db-exports", limit: 2, ttl: "10 seconds" })
 *   // Five exports, never more than two holding a slot at once.
 *   return yield* Effect.forEach([1, 2, 3, 4, 5], (n) => limited(Effect.succeed(n * 10)), { concurrency: "unbounded" })
 * })
 *
 * Effect.runPromise(program).then(console.log) // [10, 20, 30, 40, 50]
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSlot =
  (store: SlotStore, options: WithSlotOptions) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | SlotStoreError, R> =>
    Effect.suspend(() => {
      const holder = `${instance}:${nextHolder++}`
      const ttlMillis = Math.max(1, Duration.toMillis(options.ttl))
      const pollMillis = Duration.toMillis(options.pollInterval ?? Duration.millis(20))
      const slot = { key: options.key, holder }
      const release = Effect.ignore(store.release(slot))
      const acquire = Effect.gen(function*() {
        while (!(yield* store.acquire({ ...slot, limit: options.limit, ttlMillis }))) {
          yield* Effect.sleep(Duration.millis(pollMillis * (0.5 + Math.random())))
        }
      })
      const keepAlive = Effect.sleep(Duration.millis(ttlMillis / 3)).pipe(
        Effect.zipRight(Effect.ignore(store.refresh({ ...slot, ttlMillis }))),
        Effect.forever
      )
      return Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(
          // An interrupted wait may have been granted by the store as it was interrupted: give that back too.
          Effect.onInterrupt(restore(acquire), () => release),
          Effect.ensuring(
            Effect.flatMap(
              Effect.fork(Effect.interruptible(keepAlive)),
              (refresher) => Effect.ensuring(restore(self), Fiber.interrupt(refresher))
            ),
            release
          )
        )
      )
    })

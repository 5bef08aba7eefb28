/**
 * One lock per key: effects holding the same key run one at a time, in arrival order; different keys never wait
 * for each other. A key's lock exists only while someone holds or awaits it, so memory is bounded by the keys in
 * use, not by every key ever locked.
 *
 * Prefer not to need it: when the race is over shared state, a `Ref` (atomic `update` / `modify`) or a
 * `SynchronizedRef` (effectful updates, serialized) removes the race without a lock. A keyed mutex is for
 * serializing effects on an outside resource — one writer per file, one refresh per cache key, one migration per
 * tenant — where the state is not in memory.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import { LinkedList, type Node } from "./internal/linkedList.js"

/**
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(KeyedMutex.make(), (mutex) => KeyedMutex.TypeId in mutex)
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/KeyedMutex")

/**
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 *
 * const isKeyedMutex = (u: unknown): u is KeyedMutex.KeyedMutex<unknown> =>
 *   typeof u === "object" && u !== null && KeyedMutex.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A lock per key.
 *
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // One writer per file: appends to the same path never interleave; different paths proceed in parallel.
 * const appendLine = (mutex: KeyedMutex.KeyedMutex, path: string, line: string) =>
 *   Effect.log(`append to ${path}: ${line}`).pipe(mutex.withLock(path))
 *
 * const program = Effect.gen(function*() {
 *   const mutex = yield* KeyedMutex.make()
 *   const writes = [appendLine(mutex, "a.log", "1"), appendLine(mutex, "a.log", "2"), appendLine(mutex, "b.log", "1")]
 *   yield* Effect.all(writes, { concurrency: "unbounded" })
 *   return yield* mutex.size
 * })
 *
 * Effect.runPromise(program).then(console.log) // 0: no key is held once everyone is done
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyedMutex<K = string> {
  readonly [TypeId]: TypeId
  /** Runs `self` while holding `key`'s lock. */
  readonly withLock: {
    (key: K): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    <A, E, R>(key: K, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R>
  }
  /** `true` when `key` is held now. */
  readonly isLocked: (key: K) => Effect.Effect<boolean>
  /** Keys held or awaited now. */
  readonly size: Effect.Effect<number>
}

/**
 * The keyed mutex service (string keys).
 *
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const refreshToken = (tenant: string) =>
 *   Effect.flatMap(KeyedMutex.KeyedMutex, (mutex) => mutex.withLock(tenant, Effect.succeed(`token for ${tenant}`)))
 *
 * Effect.runPromise(refreshToken("acme").pipe(Effect.provide(KeyedMutex.layer))).then(console.log) // "token for acme"
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const KeyedMutex: Context.Tag<KeyedMutex, KeyedMutex> = Context.GenericTag<KeyedMutex>(
  "@spindle/core/KeyedMutex"
)

interface Waiter {
  readonly latch: Deferred.Deferred<void>
  granted: boolean
}

/**
 * Creates a keyed mutex. Keys are compared with `Map` semantics (strings, numbers, or the same object).
 *
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   // Numeric keys: one migration per tenant id at a time.
 *   const mutex = yield* KeyedMutex.make<number>()
 *   const held = yield* mutex.isLocked(42).pipe(mutex.withLock(42))
 *   const after = yield* mutex.isLocked(42)
 *   return [held, after]
 * })
 *
 * Effect.runPromise(program).then(console.log) // [true, false]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <K = string>(): Effect.Effect<KeyedMutex<K>> =>
  Effect.sync(() => {
    // A key is present while its lock is held; its list holds the fibers waiting for it.
    const locks = new Map<K, LinkedList<Waiter>>()

    const release = (key: K) =>
      Effect.sync(() => {
        const waiters = locks.get(key)!
        const next = waiters.shift()
        if (next === undefined) {
          locks.delete(key)
        } else {
          next.value.granted = true
          Deferred.unsafeDone(next.value.latch, Exit.void)
        }
      })

    const leave = (key: K, node: Node<Waiter>) =>
      Effect.suspend(() => {
        if (node.value.granted) return release(key)
        locks.get(key)!.remove(node)
        return Effect.void
      })

    const withLock = <A, E, R>(key: K, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.uninterruptibleMask((restore) => {
        const waiters = locks.get(key)
        if (waiters === undefined) {
          locks.set(key, new LinkedList())
          return Effect.ensuring(restore(self), release(key))
        }
        const node = waiters.push({ latch: Deferred.unsafeMake<void>(FiberId.none), granted: false })
        return Effect.zipRight(
          Effect.onInterrupt(restore(Deferred.await(node.value.latch)), () => leave(key, node)),
          Effect.ensuring(restore(self), release(key))
        )
      })

    return {
      [TypeId]: TypeId,
      withLock: ((...args: [K] | [K, Effect.Effect<any, any, any>]) =>
        args.length === 1
          ? (self: Effect.Effect<any, any, any>) => withLock(args[0], self)
          : withLock(args[0], args[1])) as any,
      isLocked: (key: K) => Effect.sync(() => locks.has(key)),
      size: Effect.sync(() => locks.size)
    }
  })

/**
 * A layer providing the `KeyedMutex` service.
 *
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const mutex = yield* KeyedMutex.KeyedMutex
 *   return yield* mutex.withLock("cache:users", Effect.succeed("refreshed once"))
 * }).pipe(Effect.provide(KeyedMutex.layer))
 *
 * Effect.runPromise(program).then(console.log) // "refreshed once"
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<KeyedMutex> = Layer.effect(KeyedMutex, make<string>())

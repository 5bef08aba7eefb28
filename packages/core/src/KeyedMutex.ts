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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Expiry from "./internal/expiry.js"
import { LinkedList, type Node } from "./internal/linkedList.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import { WaitTimeoutError } from "./WaitTimeout.js"

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
 * Options of a keyed mutex.
 *
 * @example
 * ```ts
 * import { KeyedMutex } from "@spindle/core"
 *
 * // A writer that cannot get its file's lock within 5 seconds gives up with WaitTimeoutError.
 * const options: KeyedMutex.Options = { maxWait: "5 seconds", name: "files" }
 *
 * const mutex = KeyedMutex.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long `withLock` may wait for its key before it fails with `WaitTimeoutError` (holding nothing). `0` fails
   * at once when the key is held. Omit to wait as long as it takes.
   */
  readonly maxWait?: Duration.DurationInput | undefined
  /** Label for errors. Defaults to `"default"`. */
  readonly name?: string | undefined
}

/**
 * A lock per key, whose `withLock` fails with `E` (`WaitTimeoutError` with a `maxWait`, else `never`).
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
export interface KeyedMutex<K = string, E = never> {
  readonly [TypeId]: TypeId
  /** Runs `self` while holding `key`'s lock, waiting for it in arrival order (at most `maxWait`). */
  readonly withLock: {
    (key: K): <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E | E2, R>
    <A, E2, R>(key: K, self: Effect.Effect<A, E2, R>): Effect.Effect<A, E | E2, R>
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
  readonly latch: Deferred.Deferred<void, WaitTimeoutError>
  granted: boolean
  expiry: Node<Expiry.Entry> | undefined
}

/**
 * Creates a keyed mutex. Keys are compared with `Map` semantics (strings, numbers, or the same object). With
 * `maxWait`, `withLock` fails with `WaitTimeoutError` naming the key when it waited that long.
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
export const make: {
  <K = string>(options?: Options & { readonly maxWait?: undefined }): Effect.Effect<KeyedMutex<K>>
  <K = string>(options: Options): Effect.Effect<KeyedMutex<K, WaitTimeoutError>>
} = <K = string>(options?: Options): Effect.Effect<KeyedMutex<K, any>> =>
  Effect.sync(() => {
    const name = options?.name ?? "default"
    const maxWaitMillis = Validate.nonNegativeDurationOr("KeyedMutex", "maxWait", options?.maxWait, undefined)
    const expiry = maxWaitMillis === undefined ? undefined : Expiry.make()
    // A key is present while its lock is held; its list holds the fibers waiting for it.
    const locks = new Map<K, LinkedList<Waiter>>()
    const timeoutError = (key: K) =>
      new WaitTimeoutError({ module: "KeyedMutex", name, key, maxWait: Duration.millis(maxWaitMillis!) })

    const release = (key: K) =>
      Effect.sync(() => {
        const waiters = locks.get(key)!
        const next = waiters.shift()
        if (next === undefined) {
          locks.delete(key)
        } else {
          next.value.granted = true
          if (next.value.expiry !== undefined) expiry!.cancel(next.value.expiry)
          Deferred.unsafeDone(next.value.latch, Exit.void)
        }
      })

    const leave = (key: K, node: Node<Waiter>) =>
      Effect.suspend(() => {
        if (node.value.granted) return release(key)
        if (node.value.expiry !== undefined) expiry!.cancel(node.value.expiry)
        locks.get(key)?.remove(node)
        return Effect.void
      })

    // The waiter's deadline passed: out of the key's queue, holding nothing, and failed.
    const expire = (key: K, node: Node<Waiter>) => () => {
      if (!locks.get(key)?.remove(node)) return
      Deferred.unsafeDone(node.value.latch, Exit.fail(timeoutError(key)))
    }

    const arm = (key: K, node: Node<Waiter>) =>
      Effect.clockWith((clock) =>
        Effect.map(expiry!.add(clock.unsafeCurrentTimeMillis() + maxWaitMillis!, expire(key, node)), (entry) => {
          node.value.expiry = entry
        })
      )

    // With a tracer of the application's installed: a lock taken at once is an event, a wait for it a span.
    const attributes = (key: K) => ({ "spindle.mutex.name": name, "spindle.mutex.key": String(key) })

    const withLock = <A, E, R>(key: K, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | WaitTimeoutError, R> =>
      Effect.uninterruptibleMask((restore) => {
        const waiters = locks.get(key)
        const traced = Tracing.traced()
        if (waiters === undefined) {
          locks.set(key, new LinkedList())
          if (traced !== undefined) Tracing.event(traced, "KeyedMutex.acquired", attributes(key))
          return Effect.ensuring(restore(self), release(key))
        }
        if (maxWaitMillis === 0) {
          if (traced !== undefined) {
            Tracing.event(traced, "KeyedMutex.rejected", { ...attributes(key), "spindle.mutex.queued": waiters.length })
          }
          return Effect.fail(timeoutError(key))
        }
        const ahead = waiters.length
        const node = waiters.push({
          latch: Deferred.unsafeMake<void, WaitTimeoutError>(FiberId.none),
          granted: false,
          expiry: undefined
        })
        const wait = restore(Deferred.await(node.value.latch))
        const served = Effect.zipRight(
          Effect.onInterrupt(
            traced === undefined ? wait : Tracing.measuredWait(
              traced,
              "KeyedMutex.wait",
              {
                ...attributes(key),
                "spindle.mutex.queued": ahead
              },
              "spindle.mutex.wait_ms",
              wait
            ),
            () => leave(key, node)
          ),
          Effect.ensuring(restore(self), release(key))
        )
        return maxWaitMillis === undefined ? served : Effect.zipRight(arm(key, node), served)
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

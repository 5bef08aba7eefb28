/**
 * One `CircuitBreaker` per key (per host, per dependency), created on first use and forgotten when idle, so
 * a failing host opens its own circuit without slowing healthy ones.
 *
 * Only a breaker that is closed with no failures pending can be evicted, once no call has started through it
 * for `idleTimeToLive`: a fresh breaker behaves exactly like it. (A call still running after that long, were it to
 * fail, would be counted by the evicted breaker only.) Open, half-open and isolated breakers are
 * kept, and so is a `failureRatioOfLast` window holding a failure or a slow call. A key can be isolated and reset by
 * hand, like a single breaker. Metrics carry the breaker's name, never the key; state changes of every key are one
 * `Stream`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Metrics from "./internal/metrics.js"
import * as Validate from "./internal/validate.js"

/**
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(
 *   KeyedCircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5) }),
 *   (breakers) => KeyedCircuitBreaker.TypeId in breakers
 * )
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/KeyedCircuitBreaker")

/**
 * @example
 * ```ts
 * import { KeyedCircuitBreaker } from "@spindle/core"
 *
 * const isKeyedCircuitBreaker = (u: unknown): u is KeyedCircuitBreaker.KeyedCircuitBreaker<unknown> =>
 *   typeof u === "object" && u !== null && KeyedCircuitBreaker.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Per-key breaker options plus how long an idle, healthy key is kept.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 *
 * const options: KeyedCircuitBreaker.Options = {
 *   policy: CircuitBreaker.consecutiveFailures(5),
 *   cooldown: "10 seconds",
 *   idleTimeToLive: "10 minutes", // healthy hosts unused for 10 minutes are forgotten
 *   name: "per-host"
 * }
 *
 * const perHost = KeyedCircuitBreaker.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = unknown> extends CircuitBreaker.Options<E> {
  /** Default one minute. */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
}

/**
 * A state change of one key.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedCircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1) })
 *   yield* Effect.either(perHost.run("down.example", Effect.fail("refused")))
 *   const unhealthy: ReadonlyArray<KeyedCircuitBreaker.Change> = yield* perHost.unhealthy
 *   return unhealthy.map((change) => `${change.key}: ${change.state._tag}`)
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["down.example: Open"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Change {
  readonly key: string
  readonly state: CircuitBreaker.State
}

/**
 * A breaker per key.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const fetchFrom = (breakers: KeyedCircuitBreaker.KeyedCircuitBreaker, url: URL) =>
 *   Effect.succeed(`GET ${url.pathname}`).pipe(breakers.run(url.host))
 *
 * const program = Effect.gen(function*() {
 *   const breakers = yield* KeyedCircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(3) })
 *   const body = yield* fetchFrom(breakers, new URL("https://api.example/users"))
 *   return [body, yield* breakers.size] as const
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["GET /users", 1]
 * ```
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedCircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5) })
 *   // An operator takes one host out of rotation; the others are untouched.
 *   yield* perHost.isolate("db-2.example")
 *   const refused = yield* Effect.flip(perHost.run("db-2.example", Effect.succeed("never")))
 *   const other = yield* perHost.run("db-1.example", Effect.succeed("ok"))
 *   yield* perHost.reset("db-2.example")
 *   const back = yield* perHost.run("db-2.example", Effect.succeed("ok again"))
 *   return [refused.isolated, other, back]
 * })
 *
 * Effect.runPromise(program).then(console.log) // [true, "ok", "ok again"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyedCircuitBreaker<E = unknown> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs `self` through `key`'s breaker. */
  readonly run: {
    (key: string): <A, E2 extends E, R>(
      self: Effect.Effect<A, E2, R>
    ) => Effect.Effect<A, E2 | CircuitBreaker.CircuitOpen, R>
    <A, E2 extends E, R>(
      key: string,
      self: Effect.Effect<A, E2, R>
    ): Effect.Effect<A, E2 | CircuitBreaker.CircuitOpen, R>
  }
  /** `key`'s state, or `None` when it is not held (a missing key is closed). */
  readonly state: (key: string) => Effect.Effect<Option.Option<CircuitBreaker.State>>
  /** Every key not closed now. */
  readonly unhealthy: Effect.Effect<ReadonlyArray<Change>>
  /** State changes of every key. */
  readonly changes: Stream.Stream<Change>
  /** Keys held in memory now. */
  readonly size: Effect.Effect<number>
  /**
   * Holds `key`'s circuit open until `reset(key)` (see `CircuitBreaker.isolate`); a key not held yet is created
   * isolated. Other keys are untouched. An isolated key is never evicted.
   */
  readonly isolate: (key: string) => Effect.Effect<void>
  /**
   * Closes `key`'s circuit and forgets its window (see `CircuitBreaker.reset`). A key not held is closed already:
   * nothing happens.
   */
  readonly reset: (key: string) => Effect.Effect<void>
}

/**
 * The keyed circuit breaker service.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const PerHostLive = KeyedCircuitBreaker.layer({
 *   policy: CircuitBreaker.consecutiveFailures(5),
 *   cooldown: "5 seconds"
 * })
 *
 * const call = (host: string) =>
 *   Effect.flatMap(KeyedCircuitBreaker.KeyedCircuitBreaker, (breakers) => breakers.run(host, Effect.succeed(host)))
 *
 * Effect.runPromise(call("example.com").pipe(Effect.provide(PerHostLive))).then(console.log) // "example.com"
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const KeyedCircuitBreaker: Context.Tag<KeyedCircuitBreaker, KeyedCircuitBreaker> = Context.GenericTag<
  KeyedCircuitBreaker
>("@spindle/core/KeyedCircuitBreaker")

interface Entry {
  readonly breaker: ReturnType<typeof CircuitBreaker.unsafeMake<any>>
  lastUsed: number
}

const MIN_SWEEP_SIZE = 256

/**
 * Creates a keyed circuit breaker. Invalid options are a defect (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * const program = Effect.gen(function*() {
 *   const perHost = yield* KeyedCircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1) })
 *   yield* Effect.either(perHost.run("flaky.example", Effect.fail("503")))
 *   // One failing host opens only its own circuit.
 *   const healthy = yield* Effect.either(perHost.run("stable.example", Effect.succeed("200")))
 *   const flaky = yield* perHost.state("flaky.example")
 *   return [healthy._tag, Option.map(flaky, (s) => s._tag)] as const
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["Right", { _id: "Option", _tag: "Some", value: "Open" }]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = unknown>(options: Options<E>): Effect.Effect<KeyedCircuitBreaker<E>> =>
  Effect.gen(function*() {
    const resolved = CircuitBreaker.resolve(options)
    const ttl = Validate.durationOr("KeyedCircuitBreaker", "idleTimeToLive", options.idleTimeToLive, 60_000)
    const labels = Metrics.labels("breaker", resolved.name)
    const clock = yield* Effect.clock
    const pubsub = yield* PubSub.sliding<Change>(4096)
    const entries = new Map<string, Entry>()
    let nextSweep = MIN_SWEEP_SIZE

    const sweep = (now: number) => {
      for (const [key, entry] of entries) {
        if (now - entry.lastUsed >= ttl && entry.breaker.unsafeIdle()) entries.delete(key)
      }
      nextSweep = Math.max(MIN_SWEEP_SIZE, entries.size * 2)
    }

    const entryFor = (key: string, now: number): Entry => {
      let entry = entries.get(key)
      if (entry === undefined) {
        if (entries.size >= nextSweep) sweep(now)
        const breaker = CircuitBreaker.unsafeMake(resolved, clock, {
          labels,
          key,
          onTransition: (_, state) => {
            pubsub.unsafeOffer({ key, state })
          }
        })
        entry = { breaker, lastUsed: now }
        entries.set(key, entry)
      }
      entry.lastUsed = now
      return entry
    }

    const run = <A, E2 extends E, R>(key: string, self: Effect.Effect<A, E2, R>) =>
      Effect.suspend(() => entryFor(key, clock.unsafeCurrentTimeMillis()).breaker.run(self))

    const keyed: KeyedCircuitBreaker<E> = {
      [TypeId]: TypeId,
      name: resolved.name,
      run: ((...args: [string] | [string, Effect.Effect<any, any, any>]) =>
        args.length === 1
          ? (self: Effect.Effect<any, any, any>) => run(args[0], self)
          : run(args[0], args[1])) as any,
      state: (key) =>
        Effect.sync(() => {
          const entry = entries.get(key)
          return entry === undefined
            ? Option.none()
            : Option.some(entry.breaker.unsafeState(clock.unsafeCurrentTimeMillis()))
        }),
      unhealthy: Effect.sync(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const result: Array<Change> = []
        for (const [key, entry] of entries) {
          const state = entry.breaker.unsafeState(now)
          if (state._tag !== "Closed") result.push({ key, state })
        }
        return result
      }),
      changes: Stream.fromPubSub(pubsub),
      size: Effect.sync(() => {
        sweep(clock.unsafeCurrentTimeMillis())
        return entries.size
      }),
      isolate: (key) => Effect.suspend(() => entryFor(key, clock.unsafeCurrentTimeMillis()).breaker.isolate),
      reset: (key) =>
        Effect.suspend(() => {
          const entry = entries.get(key)
          return entry === undefined ? Effect.void : entry.breaker.reset
        })
    }
    return keyed
  })

/**
 * A layer providing the `KeyedCircuitBreaker` service.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, KeyedCircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const PerHostLive = KeyedCircuitBreaker.layer({
 *   policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "1 minute", minimumThroughput: 10 }),
 *   name: "upstreams"
 * })
 *
 * const program = Effect.flatMap(KeyedCircuitBreaker.KeyedCircuitBreaker, (b) => b.unhealthy).pipe(
 *   Effect.provide(PerHostLive)
 * )
 *
 * Effect.runPromise(program).then(console.log) // []
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<KeyedCircuitBreaker> =>
  Layer.effect(KeyedCircuitBreaker, make(options))

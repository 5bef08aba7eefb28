/**
 * A circuit breaker: after enough failures it opens and refuses calls at once with a typed `CircuitOpen` (which
 * carries the time until the next probe, so retry policies wait for it), then after a cooldown admits a few
 * probes (half-open) and closes again when they succeed.
 *
 * Two trip policies: consecutive failures, and a failure ratio over a sliding time window with a minimum number
 * of calls. Only errors the `isFailure` predicate counts can trip it (a `404` says the upstream is alive).
 * Cooldowns may grow exponentially while the upstream keeps failing its probes. State changes are a `Stream`
 * and Metrics; the Open → HalfOpen change needs no timer: it happens when the first call after the cooldown
 * arrives (or when the state is read). An interrupted probe frees its slot, so the breaker can never be stuck
 * half-open. The breaker reads the `Clock` it was created with.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as Metrics from "./internal/metrics.js"
import * as Validate from "./internal/validate.js"
import * as RetryAfter from "./RetryAfter.js"

/**
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(
 *   CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5) }),
 *   (breaker) => CircuitBreaker.TypeId in breaker
 * )
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/CircuitBreaker")

/**
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * const isCircuitBreaker = (u: unknown): u is CircuitBreaker.CircuitBreaker<unknown> =>
 *   typeof u === "object" && u !== null && CircuitBreaker.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The state of a breaker. `Open.until` is the clock time (ms) after which probes are admitted.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * const describe = CircuitBreaker.State.$match({
 *   Closed: () => "closed",
 *   Open: ({ openings, until }) => `open (${openings}x) until ${new Date(until).toISOString()}`,
 *   HalfOpen: () => "probing"
 * })
 *
 * console.log(describe(CircuitBreaker.State.Closed())) // "closed"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type State = Data.TaggedEnum<{
  Closed: {}
  Open: { readonly until: number; readonly openings: number }
  HalfOpen: { readonly openings: number }
}>

/**
 * Constructors and matchers for `State`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * const isOpen = CircuitBreaker.State.$is("Open")
 *
 * console.log(isOpen(CircuitBreaker.State.Open({ until: Date.now() + 5_000, openings: 1 }))) // true
 * console.log(isOpen(CircuitBreaker.State.HalfOpen({ openings: 1 }))) // false
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const State = Data.taggedEnum<State>()

/**
 * When a closed breaker opens.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * // A quiet service: 5 failures in a row. A busy one: half of at least 20 calls over 30 seconds.
 * const policyFor = (callsPerMinute: number): CircuitBreaker.Policy =>
 *   callsPerMinute < 60
 *     ? CircuitBreaker.consecutiveFailures(5)
 *     : CircuitBreaker.failureRatio({ ratio: 0.5, window: "30 seconds", minimumThroughput: 20 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Policy =
  | { readonly _tag: "ConsecutiveFailures"; readonly threshold: number }
  | {
    readonly _tag: "FailureRatio"
    readonly ratio: number
    readonly window: Duration.DurationInput
    readonly minimumThroughput: number
    readonly buckets?: number | undefined
  }

/**
 * Opens after `threshold` counted failures in a row.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 minute" })
 *   const failing = Effect.fail("boom")
 *   yield* Effect.either(breaker.run(failing))
 *   yield* Effect.either(breaker.run(failing))
 *   return (yield* breaker.state)._tag
 * })
 *
 * Effect.runPromise(program).then(console.log) // "Open"
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutiveFailures = (threshold: number): Policy => ({ _tag: "ConsecutiveFailures", threshold })

/**
 * Opens when, over the last `window`, at least `minimumThroughput` calls ended and at least `ratio` of them
 * failed. The window slides in `buckets` steps (default 10).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Opens when at least half of the last 30 seconds' calls failed, once 20 calls have ended in that window.
 * const breaker = CircuitBreaker.make({
 *   policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "30 seconds", minimumThroughput: 20, buckets: 30 }),
 *   cooldown: "5 seconds"
 * })
 *
 * const program = Effect.flatMap(breaker, (b) => b.run(Effect.succeed("ok")))
 * ```
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRatio = (options: {
  readonly ratio: number
  readonly window: Duration.DurationInput
  readonly minimumThroughput: number
  readonly buckets?: number | undefined
}): Policy => ({ _tag: "FailureRatio", ...options })

/**
 * Options of a breaker over errors of type `E`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * class HttpError {
 *   readonly _tag = "HttpError"
 *   constructor(readonly status: number) {}
 * }
 *
 * const options: CircuitBreaker.Options<HttpError> = {
 *   policy: CircuitBreaker.consecutiveFailures(5),
 *   cooldown: "5 seconds",
 *   cooldownFactor: 2, // 5 s, 10 s, 20 s … while probes keep failing
 *   cooldownMax: "2 minutes",
 *   halfOpenProbes: 2,
 *   isFailure: (e) => e.status >= 500, // a 404 says the upstream is alive
 *   name: "payments"
 * }
 *
 * const breaker = CircuitBreaker.make(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = unknown> {
  /** When to open. */
  readonly policy: Policy
  /** How long the circuit stays open before admitting probes. Default 10 seconds. */
  readonly cooldown?: Duration.DurationInput | undefined
  /** Each re-opening after failed probes multiplies the cooldown by this (default 1: constant). */
  readonly cooldownFactor?: number | undefined
  /** The longest cooldown. Default 5 minutes. */
  readonly cooldownMax?: Duration.DurationInput | undefined
  /** Probes admitted at once while half-open; that many successes close the circuit. Default 1. */
  readonly halfOpenProbes?: number | undefined
  /** Which errors count as failures. Others, like successes, show the dependency is alive. Default: all. */
  readonly isFailure?: ((error: E) => boolean) | undefined
  /** Label for metrics and errors. Default `"default"`. */
  readonly name?: string | undefined
}

/**
 * The circuit is open: the call was not made. `retryAfter` is the time until probes are admitted again.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, RetryAfter } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * const program = Effect.gen(function*() {
 *   const policy = CircuitBreaker.consecutiveFailures(1)
 *   const breaker = yield* CircuitBreaker.make({ policy, cooldown: "30 seconds" })
 *   yield* Effect.either(breaker.run(Effect.fail("down")))
 *   const refused = yield* Effect.flip(breaker.run(Effect.succeed("never runs")))
 *   // CircuitOpen carries its retry-after hint, so RetryPolicy waits for the next probe.
 *   return refused._tag === "CircuitOpen" && Option.isSome(RetryAfter.get(refused))
 *     ? Duration.toSeconds(refused.retryAfter)
 *     : -1
 * })
 *
 * Effect.runPromise(program).then(console.log) // 30
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpen extends Data.TaggedError("CircuitOpen")<{
  readonly name: string
  readonly retryAfter: Duration.Duration
}> implements RetryAfter.RetryAfter {
  get [RetryAfter.RetryAfterTypeId](): Duration.Duration {
    return this.retryAfter
  }
  override get message(): string {
    return `Circuit "${this.name}" is open; next probe in ${Duration.format(this.retryAfter)}`
  }
}

/**
 * A circuit breaker for effects failing with `E`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * const program = Effect.gen(function*() {
 *   const breaker: CircuitBreaker.CircuitBreaker<string> = yield* CircuitBreaker.make<string>({
 *     policy: CircuitBreaker.consecutiveFailures(1)
 *   })
 *   yield* Effect.either(breaker.run(Effect.fail("timeout")))
 *   // `changes` starts with the state now.
 *   const states = yield* Stream.runCollect(Stream.take(breaker.changes, 1))
 *   return Array.from(states, (s) => s._tag)
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["Open"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker<E = unknown> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Runs `self` through the breaker, or fails at once with `CircuitOpen`. */
  readonly run: <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2 | CircuitOpen, R>
  /** The state now. */
  readonly state: Effect.Effect<State>
  /** The state now, then every change. */
  readonly changes: Stream.Stream<State>
}

/**
 * The metrics circuit breakers update, labelled `breaker=<name>`: breakers open or half-open (a keyed breaker
 * adds up its keys), transitions labelled with the `state` entered, and refused calls.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1), name: "docs-breaker" })
 *   yield* Effect.either(breaker.run(Effect.fail("down")))
 *   const open = yield* Metric.value(CircuitBreaker.metrics.open.pipe(Metric.tagged("breaker", "docs-breaker")))
 *   return open.value
 * })
 *
 * Effect.runPromise(program).then(console.log) // 1
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  open: Metrics.circuitsOpen,
  transitions: Metrics.circuitTransitions,
  rejections: Metrics.circuitRejections
} as const

/** @internal */
export interface Resolved<E> {
  readonly name: string
  readonly policy: Policy
  readonly cooldownMillis: number
  readonly cooldownFactor: number
  readonly cooldownMaxMillis: number
  readonly halfOpenProbes: number
  readonly isFailure: (error: E) => boolean
  readonly windowMillis: number
  readonly buckets: number
}

/** @internal */
export const resolve = <E>(options: Options<E>): Resolved<E> => {
  const policy = options.policy
  let windowMillis = 0
  let buckets = 1
  if (policy._tag === "ConsecutiveFailures") {
    Validate.positiveInteger("CircuitBreaker", "threshold", policy.threshold)
  } else {
    if (!(policy.ratio > 0 && policy.ratio <= 1)) {
      Validate.illegal("CircuitBreaker", `ratio must be in (0, 1], got ${policy.ratio}`)
    }
    Validate.positiveInteger("CircuitBreaker", "minimumThroughput", policy.minimumThroughput)
    windowMillis = Validate.positiveDurationMillis("CircuitBreaker", "window", policy.window)
    buckets = Validate.positiveInteger("CircuitBreaker", "buckets", policy.buckets ?? 10)
  }
  const cooldownFactor = options.cooldownFactor ?? 1
  if (!Number.isFinite(cooldownFactor) || cooldownFactor < 1) {
    Validate.illegal("CircuitBreaker", `cooldownFactor must be >= 1, got ${cooldownFactor}`)
  }
  return {
    name: options.name ?? "default",
    policy,
    cooldownMillis: Validate.durationOr("CircuitBreaker", "cooldown", options.cooldown, 10_000),
    cooldownFactor,
    cooldownMaxMillis: Validate.durationOr("CircuitBreaker", "cooldownMax", options.cooldownMax, 300_000),
    halfOpenProbes: Validate.positiveIntegerOr("CircuitBreaker", "halfOpenProbes", options.halfOpenProbes, 1),
    isFailure: options.isFailure ?? (() => true),
    windowMillis,
    buckets
  }
}

/** @internal */
export interface Hooks {
  readonly labels: Metrics.Labels
  readonly onTransition: (from: State, to: State) => void
}

const closed: State = State.Closed()

/**
 * The breaker's machinery over plain mutable state: every decision is synchronous, so a call that is admitted
 * and then interrupted cannot race another call's transition.
 *
 * @internal
 */
export const unsafeMake = <E>(resolved: Resolved<E>, clock: Clock.Clock, hooks: Hooks): CircuitBreaker<E> & {
  readonly unsafeState: (now: number) => State
  readonly unsafeIdle: () => boolean
} => {
  const { labels } = hooks
  let state: State = closed
  let consecutive = 0
  let probesInFlight = 0
  let probeSuccesses = 0
  // Sliding window: per bucket, the index of the period it counts and its tallies.
  const bucketMillis = resolved.windowMillis / resolved.buckets
  const periods = new Array<number>(resolved.buckets).fill(-1)
  const successes = new Array<number>(resolved.buckets).fill(0)
  const failures = new Array<number>(resolved.buckets).fill(0)

  const transition = (to: State) => {
    const from = state
    state = to
    if (from._tag === "Closed" && to._tag !== "Closed") Metrics.circuitsOpen.unsafeModify(1, labels)
    if (from._tag !== "Closed" && to._tag === "Closed") Metrics.circuitsOpen.unsafeModify(-1, labels)
    Metrics.circuitTransitions.unsafeUpdate(1, transitionLabels[to._tag])
    hooks.onTransition(from, to)
  }
  const transitionLabels = {
    Closed: [...labels, ...Metrics.labels("state", "closed")],
    Open: [...labels, ...Metrics.labels("state", "open")],
    HalfOpen: [...labels, ...Metrics.labels("state", "half_open")]
  }

  const resetWindow = () => {
    consecutive = 0
    periods.fill(-1)
    successes.fill(0)
    failures.fill(0)
  }

  const open = (now: number, openings: number) => {
    const cooldown = Math.min(
      resolved.cooldownMaxMillis,
      resolved.cooldownMillis * Math.pow(resolved.cooldownFactor, openings)
    )
    transition(State.Open({ until: now + cooldown, openings: openings + 1 }))
  }

  const current = (now: number): State => {
    if (state._tag === "Open" && now >= state.until) {
      probesInFlight = 0
      probeSuccesses = 0
      transition(State.HalfOpen({ openings: state.openings }))
    }
    return state
  }

  // The consecutive policy reads the clock only when it opens; the ratio policy needs it to find its bucket.
  const record = (failed: boolean) => {
    if (resolved.policy._tag === "ConsecutiveFailures") {
      consecutive = failed ? consecutive + 1 : 0
      if (consecutive >= resolved.policy.threshold) open(clock.unsafeCurrentTimeMillis(), 0)
      return
    }
    const now = clock.unsafeCurrentTimeMillis()
    const period = Math.floor(now / bucketMillis)
    const slot = period % resolved.buckets
    if (periods[slot] !== period) {
      periods[slot] = period
      successes[slot] = 0
      failures[slot] = 0
    }
    if (failed) failures[slot]++
    else successes[slot]++
    if (!failed) return
    let total = 0
    let failed_ = 0
    for (let i = 0; i < resolved.buckets; i++) {
      if (periods[i] > period - resolved.buckets) {
        total += successes[i] + failures[i]
        failed_ += failures[i]
      }
    }
    if (total >= resolved.policy.minimumThroughput && failed_ / total >= resolved.policy.ratio) open(now, 0)
  }

  const countsCause = (cause: Cause.Cause<E>): boolean | undefined => {
    if (Cause.isInterruptedOnly(cause)) return undefined
    const failure = Cause.failureOption(cause)
    return failure._tag === "Some" ? resolved.isFailure(failure.value) : true
  }

  const settleClosed = (cause: Cause.Cause<E> | undefined) => {
    const failed = cause === undefined ? false : countsCause(cause)
    // A call admitted while closed may end after the circuit opened: it no longer counts.
    if (failed === undefined || state._tag !== "Closed") return
    record(failed)
  }

  const settleProbe = (generation: State, exit: Exit.Exit<unknown, E>) => {
    probesInFlight--
    const failed = Exit.isSuccess(exit) ? false : countsCause(exit.cause)
    // Only the half-open period that admitted this probe may be decided by it; an interrupted probe decides
    // nothing and frees its slot for the next caller.
    if (state !== generation || failed === undefined) return
    if (failed) {
      open(clock.unsafeCurrentTimeMillis(), generation._tag === "HalfOpen" ? generation.openings : 0)
    } else if (++probeSuccesses >= resolved.halfOpenProbes) {
      resetWindow()
      transition(closed)
    }
  }

  // Built once: the hot path allocates no handlers.
  const closedHandlers = {
    onSuccess: (a: unknown) => {
      settleClosed(undefined)
      return Effect.succeed(a)
    },
    onFailure: (cause: Cause.Cause<E>) => {
      settleClosed(cause)
      return Effect.failCause(cause)
    }
  }

  const run = <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>): Effect.Effect<A, E2 | CircuitOpen, R> =>
    Effect.suspend((): Effect.Effect<A, E2 | CircuitOpen, R> => {
      // A closed breaker needs no clock to admit a call (only an open one has a time to check).
      if (state._tag === "Closed") {
        // The hot path: no finalizer needed, since an interrupted call counts for nothing.
        return Effect.matchCauseEffect(self, closedHandlers as any)
      }
      const now = clock.unsafeCurrentTimeMillis()
      const s = current(now)
      if (s._tag === "Closed") return Effect.matchCauseEffect(self, closedHandlers as any)
      if (s._tag === "Open") {
        Metrics.circuitRejections.unsafeUpdate(1, labels)
        return Effect.fail(new CircuitOpen({ name: resolved.name, retryAfter: Duration.millis(s.until - now) }))
      }
      if (probesInFlight + probeSuccesses >= resolved.halfOpenProbes) {
        Metrics.circuitRejections.unsafeUpdate(1, labels)
        return Effect.fail(new CircuitOpen({ name: resolved.name, retryAfter: Duration.zero }))
      }
      probesInFlight++
      return Effect.onExit(self, (exit) => Effect.sync(() => settleProbe(s, exit)))
    })

  return {
    [TypeId]: TypeId,
    name: resolved.name,
    run,
    state: Effect.sync(() => current(clock.unsafeCurrentTimeMillis())),
    changes: Stream.empty,
    unsafeState: current,
    unsafeIdle: () => state._tag === "Closed" && consecutive === 0
  }
}

/**
 * Creates a circuit breaker. Invalid options are a defect (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * class HttpError {
 *   readonly _tag = "HttpError"
 *   constructor(readonly status: number) {}
 * }
 *
 * const callUpstream = (status: number): Effect.Effect<string, HttpError> =>
 *   status < 400 ? Effect.succeed("ok") : Effect.fail(new HttpError(status))
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make<HttpError>({
 *     policy: CircuitBreaker.consecutiveFailures(3),
 *     isFailure: (e) => e.status >= 500
 *   })
 *   // 404s do not count: the breaker stays closed.
 *   for (let i = 0; i < 5; i++) yield* Effect.either(breaker.run(callUpstream(404)))
 *   return (yield* breaker.state)._tag
 * })
 *
 * Effect.runPromise(program).then(console.log) // "Closed"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = unknown>(options: Options<E>): Effect.Effect<CircuitBreaker<E>> =>
  Effect.gen(function*() {
    const resolved = resolve(options)
    const pubsub = yield* PubSub.sliding<State>(1024)
    const breaker = unsafeMake(resolved, yield* Effect.clock, {
      labels: Metrics.labels("breaker", resolved.name),
      onTransition: (_, to) => {
        pubsub.unsafeOffer(to)
      }
    })
    const changes = Stream.unwrapScoped(Effect.gen(function*() {
      const subscription = yield* PubSub.subscribe(pubsub)
      const now = yield* breaker.state
      return Stream.concat(Stream.make(now), Stream.fromQueue(subscription))
    }))
    return { ...breaker, changes }
  })

/**
 * A circuit breaker: after enough failures it opens and refuses calls at once with a typed `CircuitOpen` (which
 * carries the time until the next probe, so retry policies wait for it), then after a cooldown admits a few
 * probes (half-open) and closes again when they succeed.
 *
 * Three trip policies: consecutive failures, a failure ratio over a sliding time window, and a failure ratio over
 * the last N calls, the last two with a minimum number of calls. Only errors the `isFailure` predicate counts can
 * trip it (a `404` says the upstream is alive). Calls slower than `slowCalls.slowerThan` can count as failures, or
 * towards a slow-call rate of their own. Cooldowns may grow exponentially while the upstream keeps failing its
 * probes. `isolate` holds the circuit open by hand until `reset`, which closes it and forgets its window. State
 * changes are a `Stream` and Metrics; the Open → HalfOpen change needs no timer: it happens when the first call
 * after the cooldown arrives (or when the state is read). An interrupted probe frees its slot, so the breaker can
 * never be stuck half-open. The breaker reads the `Clock` it was created with.
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
import * as FastPath from "./internal/fastPath.js"
import * as Metrics from "./internal/metrics.js"
import * as Tracing from "./internal/tracing.js"
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
 * The state of a breaker. `Open.until` is the clock time (ms) after which probes are admitted. A circuit held open
 * by `isolate` is `Open` with `isolated: true` and `until: Infinity` (no probe until `reset`); `openings` is then
 * what it was before the isolation (0 from `Closed`). A circuit that opened by itself has no `isolated` field.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * const describe = CircuitBreaker.State.$match({
 *   Closed: () => "closed",
 *   Open: ({ isolated, openings, until }) =>
 *     isolated === true ? "isolated until reset" : `open (${openings}x) until ${new Date(until).toISOString()}`,
 *   HalfOpen: () => "probing"
 * })
 *
 * console.log(describe(CircuitBreaker.State.Closed())) // "closed"
 * console.log(describe(CircuitBreaker.State.Open({ until: Infinity, openings: 0, isolated: true }))) // "isolated until reset"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type State = Data.TaggedEnum<{
  Closed: {}
  Open: {
    readonly until: number
    readonly openings: number
    /** `true` when held open by `isolate`; `until` is then `Infinity`. */
    readonly isolated?: boolean | undefined
  }
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
 * When a closed breaker opens: after consecutive failures (`consecutiveFailures`), or at a failure ratio over a
 * window of time (`failureRatio`) or of the last N calls (`failureRatioOfLast`).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 *
 * // A quiet service: 5 failures in a row. A busy one: half of at least 20 calls over 30 seconds. A bursty one:
 * // half of its last 100 calls, once 20 have ended.
 * const policyFor = (callsPerMinute: number, bursty: boolean): CircuitBreaker.Policy =>
 *   callsPerMinute < 60
 *     ? CircuitBreaker.consecutiveFailures(5)
 *     : bursty
 *     ? CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 100, minimumCalls: 20 })
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
  | {
    readonly _tag: "FailureRatioOfLast"
    readonly ratio: number
    readonly calls: number
    readonly minimumCalls?: number | undefined
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
 * Opens when, of the last `calls` calls to end (a count-based window, Resilience4j's `COUNT_BASED` sliding window,
 * cockatiel's `CountBreaker`), at least `ratio` failed, once at least `minimumCalls` of them have ended (default
 * `calls`: a full window). The ratio is checked as each call ends, so the call that brings the window to
 * `minimumCalls` may open it. Unlike `failureRatio`, calls are never forgotten with time: a service called a few
 * times an hour is judged on its last calls however old. Closing after successful probes, and `reset`, empty the
 * window.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   // Half of the last 10 calls, counted once 4 have ended.
 *   const breaker = yield* CircuitBreaker.make({
 *     policy: CircuitBreaker.failureRatioOfLast({ ratio: 0.5, calls: 10, minimumCalls: 4 })
 *   })
 *   yield* breaker.run(Effect.void)
 *   yield* Effect.either(breaker.run(Effect.fail("503")))
 *   yield* Effect.either(breaker.run(Effect.fail("503")))
 *   const afterThree = (yield* breaker.state)._tag // 3 calls: under the minimum
 *   yield* breaker.run(Effect.void) // 2 failed of 4
 *   return [afterThree, (yield* breaker.state)._tag]
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["Closed", "Open"]
 * ```
 *
 * @since 0.2.0
 * @category policies
 */
export const failureRatioOfLast = (options: {
  readonly ratio: number
  readonly calls: number
  readonly minimumCalls?: number | undefined
}): Policy => ({ _tag: "FailureRatioOfLast", ...options })

/**
 * What makes a call slow, and what a slow call does (Resilience4j's `slowCallDurationThreshold` and
 * `slowCallRateThreshold`). A call is slow when more than `slowerThan` passed between its admission and its end,
 * measured on the breaker's `Clock` (its monotonic reading, so a wall clock being stepped does not make calls slow;
 * under `TestClock` the time it was adjusted by). It is judged when it ends: bound a call that may hang with
 * `Deadline.attempt`. An interrupted call counts for nothing, slow or not.
 *
 * - Without `ratio`, a slow call counts as a failure, whatever its outcome, towards any policy (a slow success
 *   breaks a run of `consecutiveFailures` as a failure would extend it).
 * - With `ratio`, slow calls are counted apart, over the window of a `failureRatio` or `failureRatioOfLast` policy
 *   and with its minimum: the circuit opens when at least `ratio` of the window's calls were slow, whether they
 *   succeeded or failed, or when the failure ratio is reached, whichever comes first. A slow call that failed
 *   counts towards both.
 *
 * Either way a slow probe is a failed probe: the circuit opens again.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Fiber from "effect/Fiber"
 * import * as TestClock from "effect/TestClock"
 * import * as TestContext from "effect/TestContext"
 *
 * const slowCalls: CircuitBreaker.SlowCalls = { slowerThan: "2 seconds" }
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(2), slowCalls })
 *   // Two calls of 3 seconds each: they succeed, but count as failures.
 *   for (let i = 0; i < 2; i++) {
 *     const call = yield* Effect.fork(breaker.run(Effect.sleep("3 seconds")))
 *     yield* TestClock.adjust("3 seconds")
 *     yield* Fiber.join(call)
 *   }
 *   return (yield* breaker.state)._tag
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(TestContext.TestContext))).then(console.log) // "Open"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface SlowCalls {
  /** A call that takes longer than this is slow (one that takes exactly this long is not). */
  readonly slowerThan: Duration.DurationInput
  /**
   * In (0, 1]: slow calls open the circuit at this share of the window's calls, counted apart from failures. Needs
   * a `failureRatio` or `failureRatioOfLast` policy. Without it a slow call counts as a failure.
   */
  readonly ratio?: number | undefined
}

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
  /** Slow calls: as failures, or towards a slow-call rate of their own (see `SlowCalls`). Default: not timed. */
  readonly slowCalls?: SlowCalls | undefined
}

/**
 * The circuit is open: the call was not made. `retryAfter` is the time until probes are admitted again. When the
 * circuit was isolated by hand (`isolate`), `isolated` is `true` and `retryAfter` is infinite: no probe comes until
 * it is reset (a `RetryPolicy` still waits no longer than its `retryAfterMax`; leave `CircuitOpen` with `isolated`
 * out of its `retryable` to stop at once). Otherwise `isolated` is absent.
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
  /** `true` when the call was refused because the circuit is isolated (see `CircuitBreaker.isolate`). */
  readonly isolated?: boolean | undefined
}> implements RetryAfter.RetryAfter {
  get [RetryAfter.RetryAfterTypeId](): Duration.Duration {
    return this.retryAfter
  }
  override get message(): string {
    return this.isolated === true
      ? `Circuit "${this.name}" is isolated; calls are refused until it is reset`
      : `Circuit "${this.name}" is open; next probe in ${Duration.format(this.retryAfter)}`
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
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Taking a dependency out of service by hand for a maintenance window, then back.
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5), name: "billing" })
 *   const call = Effect.either(breaker.run(Effect.succeed("charged")))
 *   const during = yield* Effect.acquireUseRelease(breaker.isolate, () => call, () => breaker.reset)
 *   const after = yield* call
 *   return [during._tag === "Left" && during.left.isolated === true ? during.left.message : "?", after]
 * })
 *
 * Effect.runPromise(program).then(console.log)
 * // ['Circuit "billing" is isolated; calls are refused until it is reset', { _id: "Either", _tag: "Right", right: "charged" }]
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
  /**
   * Holds the circuit open until `reset` (Polly's `Isolate`, cockatiel's `isolate()`, Resilience4j's forced-open
   * state): from now on every call fails at once with `CircuitOpen` whose `isolated` is `true`, and no cooldown ends
   * it. The state becomes `Open` with `isolated: true` and `until: Infinity`, reported like any other change
   * (`changes`, the `spindle_circuit_*` metrics with `state="open"`). From half-open, the probes in flight run to
   * their end but decide nothing. Calls already running are not interrupted, and their outcomes are not counted.
   * Isolating an isolated circuit does nothing; there is no count of isolations: one `reset` releases it.
   */
  readonly isolate: Effect.Effect<void>
  /**
   * Closes the circuit, whatever its state (isolated, open, half-open), and forgets what it counted: the
   * consecutive failures, the window's calls, and the openings that lengthen the cooldown. Probes in flight decide
   * nothing; a call admitted before and still running is counted when it ends if the circuit is closed then. On a
   * closed circuit it only empties the window (no state change is reported).
   */
  readonly reset: Effect.Effect<void>
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
  /** The windowed policies' ratio and minimum number of calls (0 for `ConsecutiveFailures`). */
  readonly ratio: number
  readonly minimumCalls: number
  /** `undefined`: calls are not timed. */
  readonly slowMillis: number | undefined
  /** `undefined`: a slow call counts as a failure. */
  readonly slowRatio: number | undefined
}

const validRatio = (field: string, ratio: number): number =>
  ratio > 0 && ratio <= 1 ? ratio : Validate.illegal("CircuitBreaker", `${field} must be in (0, 1], got ${ratio}`)

/** @internal */
export const resolve = <E>(options: Options<E>): Resolved<E> => {
  const policy = options.policy
  let windowMillis = 0
  let buckets = 1
  let ratio = 0
  let minimumCalls = 0
  switch (policy._tag) {
    case "ConsecutiveFailures": {
      Validate.positiveInteger("CircuitBreaker", "threshold", policy.threshold)
      break
    }
    case "FailureRatio": {
      ratio = validRatio("ratio", policy.ratio)
      minimumCalls = Validate.positiveInteger("CircuitBreaker", "minimumThroughput", policy.minimumThroughput)
      windowMillis = Validate.positiveDurationMillis("CircuitBreaker", "window", policy.window)
      buckets = Validate.positiveInteger("CircuitBreaker", "buckets", policy.buckets ?? 10)
      break
    }
    case "FailureRatioOfLast": {
      ratio = validRatio("ratio", policy.ratio)
      const calls = Validate.positiveInteger("CircuitBreaker", "calls", policy.calls)
      minimumCalls = Validate.positiveIntegerOr("CircuitBreaker", "minimumCalls", policy.minimumCalls, calls)
      if (minimumCalls > calls) {
        Validate.illegal("CircuitBreaker", `minimumCalls must be at most calls (${calls}), got ${minimumCalls}`)
      }
      break
    }
    default: {
      Validate.illegal("CircuitBreaker", `unknown policy ${String((policy as { _tag?: unknown })._tag)}`)
    }
  }
  const cooldownFactor = options.cooldownFactor ?? 1
  if (!Number.isFinite(cooldownFactor) || cooldownFactor < 1) {
    Validate.illegal("CircuitBreaker", `cooldownFactor must be >= 1, got ${cooldownFactor}`)
  }
  let slowMillis: number | undefined
  let slowRatio: number | undefined
  if (options.slowCalls !== undefined) {
    slowMillis = Validate.positiveDurationMillis("CircuitBreaker", "slowCalls.slowerThan", options.slowCalls.slowerThan)
    if (options.slowCalls.ratio !== undefined) {
      slowRatio = validRatio("slowCalls.ratio", options.slowCalls.ratio)
      if (policy._tag === "ConsecutiveFailures") {
        Validate.illegal(
          "CircuitBreaker",
          "slowCalls.ratio needs a failureRatio or failureRatioOfLast policy (a window to take the rate over); " +
            "without ratio, slow calls count as failures"
        )
      }
    }
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
    buckets,
    ratio,
    minimumCalls,
    slowMillis,
    slowRatio
  }
}

/** @internal */
export interface Hooks {
  readonly labels: Metrics.Labels
  readonly onTransition: (from: State, to: State) => void
  /** The key of a keyed breaker's circuit, for its span events (`spindle.breaker.key`). */
  readonly key?: string | undefined
}

const closed: State = State.Closed()

// What a call that ended counted as, for the window: bit flags.
const FAILED = 1
const SLOW = 2

// Durations are measured on the clock's monotonic reading (exact under TestClock), as TokenBucket does.
const monotonicMillis = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000

/**
 * The breaker's machinery over plain mutable state: every decision is synchronous, so a call that is admitted
 * and then interrupted cannot race another call's transition.
 *
 * @internal
 */
export const unsafeMake = <E>(resolved: Resolved<E>, clock: Clock.Clock, hooks: Hooks): CircuitBreaker<E> & {
  readonly unsafeState: (now: number) => State
  readonly unsafeIdle: () => boolean
  readonly [FastPath.BreakerId]: FastPath.Breaker
} => {
  const { labels } = hooks
  const { minimumCalls, ratio, slowMillis, slowRatio } = resolved
  const threshold = resolved.policy._tag === "ConsecutiveFailures" ? resolved.policy.threshold : 0
  let state: State = closed
  let consecutive = 0
  let probesInFlight = 0
  let probeSuccesses = 0
  // Sliding time window: per bucket, the index of the period it counts and its tallies (slow calls only when they
  // have a rate of their own).
  const bucketMillis = resolved.windowMillis / resolved.buckets
  const periods = new Array<number>(resolved.buckets).fill(-1)
  const successes = new Array<number>(resolved.buckets).fill(0)
  const failures = new Array<number>(resolved.buckets).fill(0)
  const slows = resolved.policy._tag === "FailureRatio" && slowRatio !== undefined
    ? new Array<number>(resolved.buckets).fill(0)
    : undefined
  // Window of the last N calls: a ring of outcomes (FAILED | SLOW flags) and running counts.
  const ring = resolved.policy._tag === "FailureRatioOfLast" ? new Uint8Array(resolved.policy.calls) : undefined
  let ringNext = 0
  let ringFilled = 0
  let ringFailed = 0
  let ringSlow = 0

  // Span events (only with a tracer of the application's installed): what the breaker decided, on the caller's span.
  const stateNames = { Closed: "closed", Open: "open", HalfOpen: "half_open" } as const
  const traceAttributes = (s: State): Record<string, unknown> =>
    hooks.key === undefined
      ? { "spindle.breaker.name": resolved.name, "spindle.breaker.state": stateNames[s._tag] }
      : {
        "spindle.breaker.name": resolved.name,
        "spindle.breaker.key": hooks.key,
        "spindle.breaker.state": stateNames[s._tag]
      }

  const transition = (to: State) => {
    const from = state
    state = to
    const traced = Tracing.traced()
    if (traced !== undefined) {
      Tracing.event(traced, "CircuitBreaker.transition", {
        ...traceAttributes(to),
        "spindle.breaker.from_state": stateNames[from._tag]
      })
    }
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
    slows?.fill(0)
    if (ring !== undefined) {
      ring.fill(0)
      ringNext = 0
      ringFilled = 0
      ringFailed = 0
      ringSlow = 0
    }
  }

  const open = (now: number, openings: number) => {
    const cooldown = Math.min(
      resolved.cooldownMaxMillis,
      resolved.cooldownMillis * Math.pow(resolved.cooldownFactor, openings)
    )
    transition(State.Open({ until: now + cooldown, openings: openings + 1 }))
  }

  // An isolated circuit is Open until Infinity: no time ever reaches it, so it never turns half-open by itself.
  const current = (now: number): State => {
    if (state._tag === "Open" && now >= state.until) {
      probesInFlight = 0
      probeSuccesses = 0
      transition(State.HalfOpen({ openings: state.openings }))
    }
    return state
  }

  // One recorder per policy, chosen once. `outcome` is 0 for a success (or an error `isFailure` does not count),
  // else FAILED and/or SLOW; a slow call without a rate of its own arrives as FAILED.
  // The consecutive policy reads the clock only when it opens; the time window needs it to find its bucket.
  const recordConsecutive = (outcome: number) => {
    consecutive = outcome === 0 ? 0 : consecutive + 1
    if (consecutive >= threshold) open(clock.unsafeCurrentTimeMillis(), 0)
  }
  const recordTimeWindow = (outcome: number) => {
    const now = clock.unsafeCurrentTimeMillis()
    const period = Math.floor(now / bucketMillis)
    const slot = period % resolved.buckets
    if (periods[slot] !== period) {
      periods[slot] = period
      successes[slot] = 0
      failures[slot] = 0
      if (slows !== undefined) slows[slot] = 0
    }
    if ((outcome & FAILED) !== 0) failures[slot]++
    else successes[slot]++
    if (slows !== undefined && (outcome & SLOW) !== 0) slows[slot]++
    // Only a failed (or slow) call can raise its ratio.
    if (outcome === 0) return
    let total = 0
    let failed = 0
    let slow = 0
    for (let i = 0; i < resolved.buckets; i++) {
      if (periods[i] > period - resolved.buckets) {
        total += successes[i] + failures[i]
        failed += failures[i]
        if (slows !== undefined) slow += slows[i]
      }
    }
    if (
      total >= minimumCalls &&
      (((outcome & FAILED) !== 0 && failed / total >= ratio) ||
        ((outcome & SLOW) !== 0 && slow / total >= slowRatio!))
    ) open(now, 0)
  }
  const recordLastCalls = (outcome: number) => {
    const r = ring!
    if (ringFilled === r.length) {
      const dropped = r[ringNext]
      if ((dropped & FAILED) !== 0) ringFailed--
      if ((dropped & SLOW) !== 0) ringSlow--
    } else {
      ringFilled++
    }
    r[ringNext] = outcome
    if ((outcome & FAILED) !== 0) ringFailed++
    if ((outcome & SLOW) !== 0) ringSlow++
    ringNext = ringNext + 1 === r.length ? 0 : ringNext + 1
    // Checked after every call: the one that brings the window to its minimum may open it, success or not.
    if (
      ringFilled >= minimumCalls &&
      (ringFailed / ringFilled >= ratio || (slowRatio !== undefined && ringSlow / ringFilled >= slowRatio))
    ) open(clock.unsafeCurrentTimeMillis(), 0)
  }
  const record = resolved.policy._tag === "ConsecutiveFailures"
    ? recordConsecutive
    : resolved.policy._tag === "FailureRatio"
    ? recordTimeWindow
    : recordLastCalls

  const countsCause = (cause: Cause.Cause<E>): boolean | undefined => {
    if (Cause.isInterruptedOnly(cause)) return undefined
    const failure = Cause.failureOption(cause)
    return failure._tag === "Some" ? resolved.isFailure(failure.value) : true
  }

  /** Whether a call admitted at `start` (monotonic ms) and ending now was slow. */
  const isSlow = (start: number) => monotonicMillis(clock) - start > slowMillis!

  const settleClosed = (cause: Cause.Cause<E> | undefined) => {
    const failed = cause === undefined ? false : countsCause(cause)
    // A call admitted while closed may end after the circuit opened: it no longer counts.
    if (failed === undefined || state._tag !== "Closed") return
    record(failed ? FAILED : 0)
  }

  const settleTimed = (cause: Cause.Cause<E> | undefined, start: number) => {
    const failed = cause === undefined ? false : countsCause(cause)
    if (failed === undefined || state._tag !== "Closed") return
    const outcome = failed ? FAILED : 0
    record(!isSlow(start) ? outcome : slowRatio === undefined ? FAILED : outcome | SLOW)
  }

  const settleProbe = (generation: State, exit: Exit.Exit<unknown, E>, start: number) => {
    // Only the half-open period that admitted this probe may be decided by it, and only its slots are counted
    // (a later half-open period starts with none); an interrupted probe decides nothing and frees its slot for
    // the next caller.
    if (state !== generation) return
    probesInFlight--
    const failed = Exit.isSuccess(exit) ? false : countsCause(exit.cause)
    if (failed === undefined) return
    if (failed || (slowMillis !== undefined && isSlow(start))) {
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

  // A timed call needs its start: handlers per call, made only when slow calls are configured.
  const timedClosed = <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>): Effect.Effect<A, E2, R> => {
    const start = monotonicMillis(clock)
    return Effect.matchCauseEffect(self, {
      onSuccess: (a) => {
        settleTimed(undefined, start)
        return Effect.succeed(a)
      },
      onFailure: (cause) => {
        settleTimed(cause, start)
        return Effect.failCause(cause)
      }
    })
  }

  // Every state but a closed one: reads the clock to let an open circuit turn half-open, then refuses the call or
  // admits it as a probe.
  const gated = <A, E2 extends E, R>(
    self: Effect.Effect<A, E2, R>,
    traced: Tracing.Traced | undefined
  ): Effect.Effect<A, E2 | CircuitOpen, R> => {
    const now = clock.unsafeCurrentTimeMillis()
    const s = current(now)
    if (s._tag === "Closed") {
      return slowMillis === undefined ? Effect.matchCauseEffect(self, closedHandlers as any) : timedClosed(self)
    }
    if (s._tag === "Open") {
      Metrics.circuitRejections.unsafeUpdate(1, labels)
      const retryAfterMillis = s.isolated === true ? Infinity : s.until - now
      if (traced !== undefined) {
        Tracing.event(traced, "CircuitBreaker.rejected", {
          ...traceAttributes(s),
          "spindle.breaker.retry_after_ms": retryAfterMillis,
          ...(s.isolated === true ? { "spindle.breaker.isolated": true } : {})
        })
      }
      return Effect.fail(
        s.isolated === true
          ? new CircuitOpen({ name: resolved.name, retryAfter: Duration.infinity, isolated: true })
          : new CircuitOpen({ name: resolved.name, retryAfter: Duration.millis(retryAfterMillis) })
      )
    }
    if (probesInFlight + probeSuccesses >= resolved.halfOpenProbes) {
      Metrics.circuitRejections.unsafeUpdate(1, labels)
      if (traced !== undefined) {
        Tracing.event(traced, "CircuitBreaker.rejected", { ...traceAttributes(s), "spindle.breaker.retry_after_ms": 0 })
      }
      return Effect.fail(new CircuitOpen({ name: resolved.name, retryAfter: Duration.zero }))
    }
    probesInFlight++
    if (traced !== undefined) {
      Tracing.event(traced, "CircuitBreaker.admitted", { ...traceAttributes(s), "spindle.breaker.probe": true })
    }
    const start = slowMillis === undefined ? 0 : monotonicMillis(clock)
    return Effect.onExit(self, (exit) => Effect.sync(() => settleProbe(s, exit, start)))
  }

  // A call a closed breaker admits reports nothing, traced or not: it is every call of a healthy dependency, and
  // the hot path stays as it was. What a breaker decides otherwise (a rejection, a probe, a change of state) is an
  // event on the caller's span when a tracer of the application's is installed.
  const run = slowMillis === undefined
    ? <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>): Effect.Effect<A, E2 | CircuitOpen, R> =>
      Effect.suspend((): Effect.Effect<A, E2 | CircuitOpen, R> =>
        // A closed breaker needs no clock to admit a call (only an open one has a time to check). The hot path:
        // no finalizer needed, since an interrupted call counts for nothing.
        state._tag === "Closed" ? Effect.matchCauseEffect(self, closedHandlers as any) : gated(self, Tracing.traced())
      )
    : <A, E2 extends E, R>(self: Effect.Effect<A, E2, R>): Effect.Effect<A, E2 | CircuitOpen, R> =>
      Effect.suspend((): Effect.Effect<A, E2 | CircuitOpen, R> =>
        state._tag === "Closed" ? timedClosed(self) : gated(self, Tracing.traced())
      )

  const isolate = () => {
    if (state._tag === "Open" && state.isolated === true) return
    transition(State.Open({ until: Infinity, openings: state._tag === "Closed" ? 0 : state.openings, isolated: true }))
  }

  const reset = () => {
    resetWindow()
    if (state._tag !== "Closed") transition(closed)
  }

  return {
    [TypeId]: TypeId,
    name: resolved.name,
    run,
    state: Effect.sync(() => current(clock.unsafeCurrentTimeMillis())),
    changes: Stream.empty,
    isolate: Effect.sync(isolate),
    reset: Effect.sync(reset),
    unsafeState: current,
    // Closed with nothing counted that a fresh breaker would not have: no failure in a run, none (nor a slow call)
    // among the last calls. (A time window's tallies are not looked at: they expire by themselves.)
    unsafeIdle: () => state._tag === "Closed" && consecutive === 0 && ringFailed === 0 && ringSlow === 0,
    // What `run` does for a call while closed, without an effect (internal/fastPath.ts).
    [FastPath.BreakerId]: {
      admitsClosed: () => state._tag === "Closed" && slowMillis === undefined,
      settleClosed: settleClosed as (cause: Cause.Cause<unknown> | undefined) => void
    }
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

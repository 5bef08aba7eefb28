/**
 * A resilience policy as one value: attempt timeout, circuit breaker, rate limit, hedging, retry, bulkhead, overall
 * deadline and fallback, composed once and applied to any call with `policy.run(effect)` (Polly v8's resilience
 * pipeline, cockatiel's `wrap`).
 *
 * The stages are Spindle's own (`Deadline`, `CircuitBreaker`, `TokenBucket` or `Limiter`, `RetryPolicy`,
 * `Bulkhead`), built from plain options or handed in as instances to share them; hedging and fallback are new here.
 * `run` builds exactly the effect you would build by hand with the same stages, so a call through a policy costs what
 * the stages cost (bench/RESULTS.md §4), and each stage's error stays in the error type, only for the stages present:
 * `E | TimeoutError | CircuitOpen | BulkheadRejected ...`.
 *
 * **One order, checked.** Stages always wrap one another in this order, innermost first:
 *
 * 1. `attemptTimeout`: bounds one call to the dependency. Innermost, so that a call that hangs is cut, and that
 *    timeout is a failure the breaker counts and the retry retries.
 * 2. `breaker`: sees the outcome of every real attempt (timeouts included) and refuses calls at once with
 *    `CircuitOpen` while open; `CircuitOpen` carries the time to the next probe, which the retry waits for.
 * 3. `rateLimit`: a token for every attempt that goes out, retries and hedges included, as the server counts them.
 *    Outside the breaker, so that a rate limit's `WaitTimeoutError` is never counted as the dependency's failure
 *    (a call the open breaker refuses has taken its token).
 * 4. `hedge`: each hedged attempt is an attempt: its own token, its own passage through the breaker, its own
 *    attempt timeout.
 * 5. `retry`: runs the (hedged) attempt again after a backoff, honouring `Retry-After` and `CircuitOpen`, and
 *    starts no attempt the deadline would cut.
 * 6. `bulkhead`: one permit per call, held across its retries and hedges: bounds the calls in progress and sheds
 *    the excess with `BulkheadRejected`; time spent queueing counts against the deadline.
 * 7. `deadline`: the caller's whole budget (queueing, every attempt and every backoff); attempt timeouts are cut
 *    to what remains of it.
 * 8. `fallback`: outermost, so that it can answer for anything the pipeline failed with, the deadline included.
 *
 * This is Polly's standard pipeline (total timeout, retry, breaker, attempt timeout) with the bulkhead where Polly
 * puts its concurrency limiter and the rate limit per attempt, as `Limiter` counts starts. Another order is a
 * mistake rather than a choice (a retry outside the deadline retries forever; a breaker outside the retry counts one
 * failure per call), so `define(...).pipe(...)` accepts stages in this order only, each at most once: a stage
 * piped after one that belongs outside it is a type error (and a defect for untyped callers). `make(options)` takes
 * the stages as plain options, in any order of keys, and applies them in this order.
 *
 * **Events.** `policy.events` is a `Stream` of what the policy decided (retry scheduled, retry gave up, rejected by
 * the bulkhead or the rate limit, timed out, hedged, breaker state changed, fallback used), for logs, tests and
 * dashboards. Decisions are published only while someone subscribes: with no subscriber an event is never built,
 * and a call that succeeds at once makes no decision at all.
 *
 * **Metrics.** Stages built from options carry the policy's name: `spindle_retries_total{policy}`,
 * `spindle_circuit_*{breaker}`, `spindle_limiter_*{limiter}`, `spindle_token_bucket_*{bucket}`. The policy adds
 * `spindle_policy_timeouts_total{policy,limit}`, `spindle_policy_hedges_total{policy}` and
 * `spindle_policy_fallbacks_total{policy}`.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Pipeable from "effect/Pipeable"
import type { Predicate, Refinement } from "effect/Predicate"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Bulkhead from "./Bulkhead.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Deadline from "./Deadline.js"
import * as DeadlineTimer from "./internal/deadlineTimer.js"
import * as Expiry from "./internal/expiry.js"
import * as FastPath from "./internal/fastPath.js"
import * as Metrics from "./internal/metrics.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import * as Limiter from "./Limiter.js"
import * as RetryPolicy from "./RetryPolicy.js"
import * as TokenBucket from "./TokenBucket.js"
import * as WaitTimeout from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(Policy.make({ retry: { maxAttempts: 3 } }), (policy) => Policy.TypeId in policy)
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.2.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/Policy")

/**
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * const isPolicy = (u: unknown): u is Policy.Policy =>
 *   typeof u === "object" && u !== null && Policy.TypeId in u
 *
 * console.log(isPolicy({})) // false
 * ```
 *
 * @since 0.2.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * console.log(Policy.BuilderTypeId in Policy.define("payments")) // true
 * ```
 *
 * @since 0.2.0
 * @category type ids
 */
export const BuilderTypeId: unique symbol = Symbol.for("@spindle/core/Policy/Builder")

/**
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * const isBuilder = (u: unknown): u is Policy.Builder<unknown, unknown, never, Policy.FallbackTypes> =>
 *   typeof u === "object" && u !== null && Policy.BuilderTypeId in u
 *
 * console.log(isBuilder(Policy.define())) // true
 * ```
 *
 * @since 0.2.0
 * @category type ids
 */
export type BuilderTypeId = typeof BuilderTypeId

/**
 * The stages of a policy, innermost first: the order they always wrap one another in (see the module's
 * documentation for why).
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * const innermost: Policy.Stage = Policy.stages[0]
 *
 * console.log(innermost, Policy.stages.at(-1)) // "attemptTimeout" "fallback"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Stage =
  | "attemptTimeout"
  | "breaker"
  | "rateLimit"
  | "hedge"
  | "retry"
  | "bulkhead"
  | "deadline"
  | "fallback"

/**
 * Every stage, innermost first.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * console.log(Policy.stages.join(" < "))
 * // "attemptTimeout < breaker < rateLimit < hedge < retry < bulkhead < deadline < fallback"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export const stages: ReadonlyArray<Stage> = [
  "attemptTimeout",
  "breaker",
  "rateLimit",
  "hedge",
  "retry",
  "bulkhead",
  "deadline",
  "fallback"
]

/**
 * The stages that may be added after `K`: those that go outside it.
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/core"
 *
 * // After a retry, only the bulkhead, the deadline and the fallback can come.
 * const next: Policy.After<"retry"> = "deadline"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type After<K extends Stage> = {
  readonly attemptTimeout: Exclude<Stage, "attemptTimeout">
  readonly breaker: "rateLimit" | "hedge" | "retry" | "bulkhead" | "deadline" | "fallback"
  readonly rateLimit: "hedge" | "retry" | "bulkhead" | "deadline" | "fallback"
  readonly hedge: "retry" | "bulkhead" | "deadline" | "fallback"
  readonly retry: "bulkhead" | "deadline" | "fallback"
  readonly bulkhead: "deadline" | "fallback"
  readonly deadline: "fallback"
  readonly fallback: never
}[K]

/**
 * What a fallback does to a policy's result, as types: the value type it may answer with (`A`), its own error and
 * requirements (`E`, `R`), and the errors it handles (`Handled`: removed from the error type).
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/core"
 *
 * // A fallback that answers every failure with a cached string, and never fails itself.
 * type Cached = { readonly A: string; readonly E: never; readonly R: never; readonly Handled: unknown }
 *
 * const check: Cached extends Policy.FallbackTypes ? true : false = true
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface FallbackTypes {
  readonly A: unknown
  readonly E: unknown
  readonly R: unknown
  readonly Handled: unknown
}

/**
 * The `FallbackTypes` of a policy without a fallback.
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/core"
 *
 * // A policy without a fallback: `run` keeps the call's value type and adds only its stages' errors.
 * type Plain = Policy.Policy<Error, never, Policy.NoFallback>
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface NoFallback extends FallbackTypes {
  readonly A: never
  readonly E: never
  readonly R: never
  readonly Handled: never
}

/**
 * A policy as data, before its stateful stages exist: built with `define` and the stage combinators in a pipe,
 * turned into a `Policy` by `make` (or `layer`). `E` is the error type of the calls it will run, `S` the errors its
 * stages add, `N` the stages that may still be added (those outside the last one), `F` what its fallback does.
 *
 * @example
 * ```ts
 * import { Deadline, Policy } from "@spindle/core"
 *
 * class HttpError {
 *   readonly _tag = "HttpError"
 *   constructor(readonly status: number) {}
 * }
 *
 * const builder: Policy.Builder<HttpError, Deadline.TimeoutError, "retry" | "bulkhead" | "deadline" | "fallback"> =
 *   Policy.define<HttpError>("search").pipe(Policy.attemptTimeout("2 seconds"), Policy.hedge({ delay: "200 millis" }))
 *
 * console.log(builder.stages) // ["attemptTimeout", "hedge"]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Builder<in E, out S, in N extends Stage, out F extends FallbackTypes = NoFallback>
  extends Pipeable.Pipeable
{
  readonly [BuilderTypeId]: {
    readonly _E: (_: E) => void
    readonly _S: () => S
    readonly _N: (_: N) => void
    readonly _F: () => F
  }
  /** Label of the policy's metrics and events, and the name of the stages it builds from options. */
  readonly name: string
  /** The stages added so far, innermost first. */
  readonly stages: ReadonlyArray<Stage>
}

/**
 * A policy: every call handed to `run` goes through the same stages, and the same breaker, bulkhead and rate limit.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.make({
 *     name: "inventory",
 *     attemptTimeout: "1 second",
 *     breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
 *     retry: { maxAttempts: 3, base: "10 millis" }
 *   })
 *   const answer = yield* policy.run(Effect.succeed("12 in stock"))
 *   return [answer, policy.stages] as const
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["12 in stock", ["attemptTimeout", "breaker", "retry"]]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Policy<in E = unknown, out S = never, out F extends FallbackTypes = NoFallback> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** The stages, innermost first. */
  readonly stages: ReadonlyArray<Stage>
  /** Runs `self` through every stage. */
  readonly run: <A, E2 extends E, R>(
    self: Effect.Effect<A, E2, R>
  ) => Effect.Effect<A | F["A"], Exclude<E2 | S, F["Handled"]> | F["E"], R | F["R"]>
  /**
   * What the policy decides, from the moment the stream starts: a subscription per run of the stream, dropping
   * the oldest events beyond 1,024 unread ones rather than holding the policy up.
   */
  readonly events: Stream.Stream<Event>
  /**
   * The same subscription as a queue, open once this effect has returned (no event published after that is
   * missed), for as long as the scope lasts.
   */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event>, never, Scope.Scope>
  /** The breaker, when the policy has one (to read its `state` or follow its `changes`). */
  readonly breaker: CircuitBreaker.CircuitBreaker<never> | undefined
  /** The bulkhead, when the policy has one (to read `inFlight` and `queued`). */
  readonly bulkhead: Bulkhead.Bulkhead<unknown> | undefined
}

/**
 * The `Policy` a builder makes.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Context from "effect/Context"
 * import * as Effect from "effect/Effect"
 *
 * const search = Policy.define("search").pipe(Policy.attemptTimeout("2 seconds"), Policy.retry({ maxAttempts: 3 }))
 *
 * // A service holding the policy, for layers.
 * class SearchPolicy extends Context.Tag("SearchPolicy")<SearchPolicy, Policy.Of<typeof search>>() {}
 *
 * const program = Effect.flatMap(SearchPolicy, (policy) => policy.run(Effect.succeed(["effect"]))).pipe(
 *   Effect.provide(Policy.layer(SearchPolicy, search))
 * )
 *
 * Effect.runPromise(program).then(console.log) // ["effect"]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Of<B> = B extends Builder<infer E, infer S, never, infer F> ? Policy<E, S, F> : never

/**
 * What a policy decided, as published on `events`. Every event names its policy; `error` is the error the decision
 * was about.
 *
 * - `RetryScheduled`: attempt number `attempt` (the first is 1) starts after `delay`.
 * - `RetryGaveUp`: the retry stopped after `attempts` attempts (`reason` as `RetryPolicy.StopReason`).
 * - `Rejected`: the bulkhead or the rate limit refused the call (`BulkheadRejected`, or `WaitTimeoutError` after
 *   its `maxWait`).
 * - `TimedOut`: the attempt timeout or the deadline fired (`limit`, `duration`, as in `TimeoutError`).
 * - `Hedged`: attempt number `attempt` started because the others had not answered within the delay
 *   (`reason: "delay"`) or because one failed with an error worth hedging (`reason: "error"`).
 * - `BreakerStateChanged`: the breaker entered `state`.
 * - `FallbackUsed`: the fallback answered for `error`.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Duration from "effect/Duration"
 *
 * const describe = Policy.Event.$match({
 *   RetryScheduled: (e) => `retry #${e.attempt} in ${Duration.format(e.delay)}`,
 *   RetryGaveUp: (e) => `gave up after ${e.attempts} (${e.reason})`,
 *   Rejected: (e) => `rejected by the ${e.stage}`,
 *   TimedOut: (e) => `${e.limit} timeout after ${Duration.format(e.duration)}`,
 *   Hedged: (e) => `hedge #${e.attempt} (${e.reason})`,
 *   BreakerStateChanged: (e) => `breaker ${e.state._tag}`,
 *   FallbackUsed: () => "fallback"
 * })
 *
 * console.log(describe(Policy.Event.Hedged({ policy: "search", attempt: 2, reason: "delay" }))) // "hedge #2 (delay)"
 * ```
 *
 * @since 0.2.0
 * @category events
 */
export type Event = Data.TaggedEnum<{
  RetryScheduled: {
    readonly policy: string
    readonly attempt: number
    readonly delay: Duration.Duration
    readonly error: unknown
  }
  RetryGaveUp: {
    readonly policy: string
    readonly attempts: number
    readonly reason: RetryPolicy.StopReason
    readonly error: unknown
  }
  Rejected: {
    readonly policy: string
    readonly stage: "bulkhead" | "rateLimit"
    readonly error: Bulkhead.BulkheadRejected | WaitTimeout.WaitTimeoutError
  }
  TimedOut: {
    readonly policy: string
    readonly limit: Deadline.TimeoutError["limit"]
    readonly duration: Duration.Duration
  }
  Hedged: { readonly policy: string; readonly attempt: number; readonly reason: "delay" | "error" }
  BreakerStateChanged: { readonly policy: string; readonly state: CircuitBreaker.State }
  FallbackUsed: { readonly policy: string; readonly error: unknown }
}>

/**
 * Constructors and matchers for `Event`.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * const isRetry = Policy.Event.$is("RetryScheduled")
 *
 * console.log(isRetry(Policy.Event.FallbackUsed({ policy: "search", error: "down" }))) // false
 * ```
 *
 * @since 0.2.0
 * @category events
 */
export const Event = Data.taggedEnum<Event>()

/**
 * Hedging (Polly v8's hedging strategy): the call starts once, and when it has not answered within `delay` a
 * second attempt starts alongside it, then a third after another `delay`, up to `maxAttempts` in all. The first
 * to succeed wins; the others are interrupted (their finalizers have run when the answer is returned).
 *
 * An attempt that fails with an error `shouldHedge` accepts starts the next attempt at once (the delay then runs
 * from that start); when every attempt has failed so, the call fails with the last failure. An error
 * `shouldHedge` refuses, or a defect, ends the call at once with it.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 *
 * class HttpError {
 *   readonly _tag = "HttpError"
 *   constructor(readonly status: number) {}
 * }
 *
 * // A second request after 150 ms without an answer, a third after 300 ms; a 503 starts the next one at once,
 * // a 404 is an answer.
 * const options: Policy.HedgeOptions<HttpError> = {
 *   delay: "150 millis",
 *   maxAttempts: 3,
 *   shouldHedge: (error) => error.status >= 500
 * }
 *
 * const search = Policy.define<HttpError>("search").pipe(Policy.hedge(options))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface HedgeOptions<E = unknown> {
  /**
   * How long an attempt may go unanswered before the next one starts. `0` starts every attempt at once;
   * `Duration.infinity` never hedges on time, only on errors (Polly's fallback mode).
   */
  readonly delay: Duration.DurationInput
  /** Attempts in all, the first included: at most this many are ever in flight. Default 2. */
  readonly maxAttempts?: number | undefined
  /**
   * Which errors start the next attempt at once; the others end the call. Default: every error but a refusal by a
   * stage inside the hedge (`CircuitOpen`, `WaitTimeoutError`, `BulkheadRejected`), which the next attempt would get
   * too.
   */
  readonly shouldHedge?: ((error: E) => boolean) | undefined
}

/**
 * What answers when a fallback applies: a `value`, or an effect made from the error (`orElse`).
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const cached: Policy.FallbackHandler<unknown, string, never, never> = { value: "cached page" }
 * const logged: Policy.FallbackHandler<Error, string, never, never> = {
 *   orElse: (error) => Effect.as(Effect.logWarning(`serving the cached page: ${error.message}`), "cached page")
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type FallbackHandler<X, B, E3, R3> =
  | { readonly value: B }
  | { readonly orElse: (error: X) => Effect.Effect<B, E3, R3> }

/**
 * The options of `make`: every stage as plain options, or as an instance to share (a breaker, a bulkhead, a
 * bucket or a limiter used by several policies). Keys may come in any order; the stages are applied in the order of
 * `stages`. Predicates here see `unknown` errors: for predicates over your own error type, build the policy with
 * `define` and the stage combinators.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 *
 * const options = {
 *   name: "payments",
 *   deadline: "10 seconds",
 *   attemptTimeout: "2 seconds",
 *   retry: { maxAttempts: 4, base: "100 millis" },
 *   breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "30 seconds" },
 *   bulkhead: { maxConcurrent: 16, maxQueued: 100 },
 *   rateLimit: { limit: 50, interval: "1 second" }
 * } satisfies Policy.Options
 *
 * const payments = Policy.make(options)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Label for metrics and events, and the name of every stage built from options. Default `"default"`. */
  readonly name?: string | undefined
  readonly attemptTimeout?: Duration.DurationInput | undefined
  readonly breaker?: CircuitBreaker.Options<unknown> | CircuitBreaker.CircuitBreaker<any> | undefined
  readonly rateLimit?: TokenBucket.Options | TokenBucket.TokenBucket<any> | Limiter.Limiter<any> | undefined
  readonly hedge?: HedgeOptions<unknown> | undefined
  readonly retry?: RetryPolicy.Options<unknown> | undefined
  readonly bulkhead?: Bulkhead.Options | Bulkhead.Bulkhead<any> | undefined
  readonly deadline?: Duration.DurationInput | undefined
  readonly fallback?:
    | (
      & FallbackHandler<unknown, unknown, unknown, unknown>
      & { readonly on?: ReadonlyArray<string> | undefined; readonly when?: Predicate<unknown> | undefined }
    )
    | undefined
}

type Present<O, K extends keyof Options> = K extends keyof O ? O[K] extends undefined ? false : true : false

type BulkheadErrorOf<B> = B extends Bulkhead.Bulkhead<infer X> ? X
  : B extends Bulkhead.Options ? Bulkhead.ErrorFor<B>
  : never

type RateLimitErrorOf<L> = L extends TokenBucket.TokenBucket<infer X> ? X
  : L extends Limiter.Limiter<infer X> ? X
  : L extends TokenBucket.Options ? TokenBucket.ErrorFor<L>
  : never

/**
 * The errors the stages of options `O` add.
 *
 * @example
 * ```ts
 * import type { Bulkhead, CircuitBreaker, Deadline, Policy } from "@spindle/core"
 *
 * type Errors = Policy.ErrorsOf<{
 *   attemptTimeout: "1 second"
 *   breaker: { policy: CircuitBreaker.Policy }
 *   bulkhead: { maxConcurrent: 4; maxQueued: 10 }
 * }>
 *
 * const check: Errors extends Deadline.TimeoutError | CircuitBreaker.CircuitOpen | Bulkhead.BulkheadRejected ? true
 *   : false = true
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type ErrorsOf<O> =
  | (Present<O, "attemptTimeout"> extends true ? Deadline.TimeoutError : never)
  | (Present<O, "deadline"> extends true ? Deadline.TimeoutError : never)
  | (Present<O, "breaker"> extends true ? CircuitBreaker.CircuitOpen : never)
  | ("rateLimit" extends keyof O ? RateLimitErrorOf<O["rateLimit"]> : never)
  | ("bulkhead" extends keyof O ? BulkheadErrorOf<O["bulkhead"]> : never)

type EffectParts<T> = T extends (error: any) => Effect.Effect<infer B, infer E3, infer R3> ? [B, E3, R3]
  : [never, never, never]

type FallbackOfOptions<FO> = FO extends object ? {
    readonly A: FO extends { readonly value: infer B } ? B
      : FO extends { readonly orElse: infer H } ? EffectParts<H>[0]
      : never
    readonly E: FO extends { readonly orElse: infer H } ? EffectParts<H>[1] : never
    readonly R: FO extends { readonly orElse: infer H } ? EffectParts<H>[2] : never
    readonly Handled: FO extends { readonly on: ReadonlyArray<infer T> } ? { readonly _tag: T }
      : FO extends { readonly when: Refinement<any, infer H> } ? H
      : FO extends { readonly when: Predicate<any> } ? never
      : unknown
  }
  : NoFallback

/**
 * The `Policy` that options `O` make.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const options = { name: "geo", attemptTimeout: "1 second", fallback: { value: null } } as const
 *
 * // A timeout is answered by the fallback, so it is gone from the error type.
 * const program: Effect.Effect<Policy.OfOptions<typeof options>> = Policy.make(options)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type OfOptions<O> = Policy<
  unknown,
  ErrorsOf<O>,
  "fallback" extends keyof O ? FallbackOfOptions<O["fallback"]> : NoFallback
>

// ---------------------------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------------------------

type AnyEffect = Effect.Effect<any, any, any>

interface FallbackSpec {
  readonly select: (error: unknown) => boolean
  readonly handle: (error: unknown) => AnyEffect
}

type StageSpec =
  | { readonly _tag: "attemptTimeout"; readonly duration: Duration.DurationInput }
  | { readonly _tag: "breaker"; readonly breaker: CircuitBreaker.Options<any> | CircuitBreaker.CircuitBreaker<any> }
  | {
    readonly _tag: "rateLimit"
    readonly limit: TokenBucket.Options | TokenBucket.TokenBucket<any> | Limiter.Limiter<any>
  }
  | { readonly _tag: "hedge"; readonly options: HedgeOptions<any> }
  | { readonly _tag: "retry"; readonly options: RetryPolicy.Options<any> }
  | { readonly _tag: "bulkhead"; readonly bulkhead: Bulkhead.Options | Bulkhead.Bulkhead<any> }
  | { readonly _tag: "deadline"; readonly duration: Duration.DurationInput }
  | { readonly _tag: "fallback"; readonly fallback: FallbackSpec }

const SpecsId = Symbol.for("@spindle/core/Policy/specs")

interface BuilderImpl extends Builder<any, any, any, any> {
  readonly [SpecsId]: ReadonlyArray<StageSpec>
}

const builderVariance = { _E: () => {}, _S: () => undefined, _N: () => {}, _F: () => undefined }

const BuilderProto = {
  ...Pipeable.Prototype,
  [BuilderTypeId]: builderVariance
}

const makeBuilder = (name: string, specs: ReadonlyArray<StageSpec>): BuilderImpl => {
  const builder = Object.create(BuilderProto)
  builder.name = name
  builder[SpecsId] = specs
  builder.stages = specs.map((spec) => spec._tag)
  return builder
}

const add = (self: Builder<any, any, any, any>, spec: StageSpec): any => {
  const specs = (self as BuilderImpl)[SpecsId]
  const last = specs.at(-1)
  if (last !== undefined && stages.indexOf(spec._tag) <= stages.indexOf(last._tag)) {
    Validate.illegal(
      "Policy",
      `${spec._tag} cannot come after ${last._tag}: stages go innermost first, in the order ${stages.join(", ")}, ` +
        "each at most once"
    )
  }
  return makeBuilder(self.name, [...specs, spec])
}

const isBuilder = (u: unknown): u is BuilderImpl => typeof u === "object" && u !== null && BuilderTypeId in u

/**
 * Starts a policy for calls failing with `E`, named `name` (default `"default"`); pipe it through the stages,
 * innermost first, then `make`. Each stage's predicates see exactly the errors that reach it: `E` and the errors of
 * the stages inside it.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 * import * as Data from "effect/Data"
 * import * as Effect from "effect/Effect"
 *
 * class HttpError extends Data.TaggedError("HttpError")<{ readonly status: number }> {}
 *
 * let calls = 0
 * const flaky = Effect.suspend(() => ++calls < 3 ? Effect.fail(new HttpError({ status: 503 })) : Effect.succeed(calls))
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define<HttpError>("orders").pipe(
 *     Policy.attemptTimeout("1 second"),
 *     Policy.breaker({
 *       policy: CircuitBreaker.consecutiveFailures(5),
 *       // Sees HttpError | TimeoutError: a timeout counts, a 404 does not.
 *       isFailure: (e) => e._tag === "TimeoutError" || e.status >= 500
 *     }),
 *     Policy.retry({ maxAttempts: 4, base: "10 millis", retryable: (e) => e._tag !== "HttpError" || e.status !== 404 }),
 *     Policy.deadline("5 seconds"),
 *     Policy.make
 *   )
 *   return yield* policy.run(flaky)
 * })
 *
 * Effect.runPromise(program).then(console.log) // 3
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const define = <E = unknown>(name?: string): Builder<E, never, Stage> =>
  makeBuilder(name ?? "default", []) as any

/**
 * A timeout on each attempt (`Deadline.attempt`): the call is interrupted (its finalizers run) and fails with
 * `TimeoutError { limit: "attempt" }`, or `limit: "deadline"` when the policy's deadline is sooner. The innermost
 * stage.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define("slow").pipe(Policy.attemptTimeout("20 millis"), Policy.make)
 *   const error = yield* Effect.flip(policy.run(Effect.never))
 *   return error.message
 * })
 *
 * Effect.runPromise(program).then(console.log) // "Attempt timed out after 20ms"
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const attemptTimeout = (duration: Duration.DurationInput) =>
<E, S>(
  self: Builder<E, S, "attemptTimeout">
): Builder<E, S | Deadline.TimeoutError, After<"attemptTimeout">> => add(self, { _tag: "attemptTimeout", duration })

/**
 * A circuit breaker around each attempt: from options (a new breaker named after the policy, unless the options
 * name it) or an existing breaker, to share its state with other policies or callers. Its `isFailure` sees the
 * call's errors and the attempt timeout's.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define<string>("ledger").pipe(
 *     Policy.breaker({ policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 minute" }),
 *     Policy.make
 *   )
 *   yield* Effect.either(policy.run(Effect.fail("down")))
 *   yield* Effect.either(policy.run(Effect.fail("down")))
 *   const refused = yield* Effect.flip(policy.run(Effect.succeed("never runs")))
 *   return refused._tag
 * })
 *
 * Effect.runPromise(program).then(console.log) // "CircuitOpen"
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const breaker = <E, S>(
  breaker: CircuitBreaker.Options<NoInfer<E | S>> | CircuitBreaker.CircuitBreaker<NoInfer<E | S>>
) =>
(self: Builder<E, S, "breaker">): Builder<E, S | CircuitBreaker.CircuitOpen, After<"breaker">> =>
  add(self, { _tag: "breaker", breaker })

/**
 * A rate limit on attempts: each attempt takes a token first (retries and hedges too). From `TokenBucket` options
 * (a new bucket named after the policy; with `maxWait`, `WaitTimeoutError` joins the error type) or an existing
 * `TokenBucket` or `Limiter`, to share the limit.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define("geo").pipe(
 *     Policy.rateLimit({ limit: 100, interval: "1 second", burst: 5, maxWait: "1 second" }),
 *     Policy.make
 *   )
 *   return yield* Effect.forEach([1, 2, 3], (n) => policy.run(Effect.succeed(n * 10)))
 * })
 *
 * Effect.runPromise(program).then(console.log) // [10, 20, 30]
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const rateLimit: {
  <X>(
    limit: TokenBucket.TokenBucket<X> | Limiter.Limiter<X>
  ): <E, S>(self: Builder<E, S, "rateLimit">) => Builder<E, S | X, After<"rateLimit">>
  <const O extends TokenBucket.Options>(
    options: O
  ): <E, S>(self: Builder<E, S, "rateLimit">) => Builder<E, S | TokenBucket.ErrorFor<O>, After<"rateLimit">>
} =
  (limit: TokenBucket.Options | TokenBucket.TokenBucket<any> | Limiter.Limiter<any>) =>
  (self: Builder<any, any, any>) => add(self, { _tag: "rateLimit", limit })

/**
 * Hedging (see `HedgeOptions`): when an attempt has not answered within `delay`, another starts alongside it; the
 * first success wins and the others are interrupted. Inside the retry: a hedged call that fails is retried as one
 * attempt.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // The first call is stuck; the hedge started after 20 ms answers.
 * let calls = 0
 * const call = Effect.suspend(() => ++calls === 1 ? Effect.never : Effect.succeed(`answered by call ${calls}`))
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define("search").pipe(Policy.hedge({ delay: "20 millis" }), Policy.make)
 *   return yield* policy.run(call)
 * })
 *
 * Effect.runPromise(program).then(console.log) // "answered by call 2"
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const hedge =
  <E, S>(options: HedgeOptions<NoInfer<E | S>>) => (self: Builder<E, S, "hedge">): Builder<E, S, After<"hedge">> =>
    add(self, { _tag: "hedge", options })

/**
 * Retries (`RetryPolicy`): exponential backoff with jitter, `Retry-After` and `CircuitOpen` honoured, no attempt
 * started that the deadline would cut. Named after the policy unless the options name it; its `retryable` sees the
 * call's errors and those of the stages inside it.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * let calls = 0
 * const flaky = Effect.suspend(() => ++calls < 3 ? Effect.fail("503") : Effect.succeed(`ok after ${calls}`))
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define<string>("mail").pipe(
 *     Policy.retry({ maxAttempts: 5, base: "10 millis", retryable: (e) => e !== "400" }),
 *     Policy.make
 *   )
 *   return yield* policy.run(flaky)
 * })
 *
 * Effect.runPromise(program).then(console.log) // "ok after 3"
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const retry =
  <E, S>(options: RetryPolicy.Options<NoInfer<E | S>> = {}) =>
  (self: Builder<E, S, "retry">): Builder<E, S, After<"retry">> => add(self, { _tag: "retry", options })

/**
 * A bulkhead around the whole call (one permit held across its retries and hedges): from options (a new bulkhead
 * named after the policy; `maxQueued` adds `BulkheadRejected`, `maxWait` adds `WaitTimeoutError`) or an existing
 * one, to share the limit.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define("reports").pipe(Policy.bulkhead({ maxConcurrent: 1, maxQueued: 0 }), Policy.make)
 *   const [, second] = yield* Effect.all(
 *     [policy.run(Effect.sleep("20 millis")), Effect.flip(policy.run(Effect.void))],
 *     { concurrency: 2 }
 *   )
 *   return second._tag
 * })
 *
 * Effect.runPromise(program).then(console.log) // "BulkheadRejected"
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const bulkhead: {
  <X>(bulkhead: Bulkhead.Bulkhead<X>): <E, S>(self: Builder<E, S, "bulkhead">) => Builder<E, S | X, After<"bulkhead">>
  <const O extends Bulkhead.Options>(
    options: O
  ): <E, S>(self: Builder<E, S, "bulkhead">) => Builder<E, S | Bulkhead.ErrorFor<O>, After<"bulkhead">>
} = (bulkhead: Bulkhead.Options | Bulkhead.Bulkhead<any>) => (self: Builder<any, any, any>) =>
  add(self, { _tag: "bulkhead", bulkhead })

/**
 * An overall deadline (`Deadline.within`) over everything inside it: the bulkhead's queue, every attempt and every
 * backoff. Attempt timeouts are cut to what remains, and no retry starts after it.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define<string>("quote").pipe(
 *     Policy.attemptTimeout("30 millis"),
 *     Policy.retry({ maxAttempts: 100, base: "10 millis" }),
 *     Policy.deadline("100 millis"),
 *     Policy.make
 *   )
 *   const error = yield* Effect.flip(policy.run(Effect.never))
 *   return error._tag === "TimeoutError" ? error.limit : error
 * })
 *
 * Effect.runPromise(program).then(console.log) // "deadline", long before 100 attempts
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const deadline =
  (duration: Duration.DurationInput) =>
  <E, S>(self: Builder<E, S, "deadline">): Builder<E, S | Deadline.TimeoutError, After<"deadline">> =>
    add(self, { _tag: "deadline", duration })

/**
 * A fallback, the outermost stage: when the pipeline fails with a selected error, answer with `value`, or with the
 * effect `orElse` makes from the error. Select errors by tag (`on`: they leave the error type), by a refinement
 * (`when`: its type leaves the error type), by a predicate (`when`: the error type is unchanged), or not at all
 * (every failure: the error type is the fallback's own). Defects and interruptions are never handled.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.define<string>("prices").pipe(
 *     Policy.breaker({ policy: CircuitBreaker.consecutiveFailures(1) }),
 *     // While the circuit is open, serve the last known price; other errors still fail.
 *     Policy.fallback({ on: ["CircuitOpen"], value: "9.99 (cached)" }),
 *     Policy.make
 *   )
 *   const first = yield* Effect.either(policy.run(Effect.fail("down")))
 *   const second = yield* policy.run(Effect.succeed("10.49"))
 *   return [first._tag, second]
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["Left", "9.99 (cached)"]
 * ```
 *
 * @since 0.2.0
 * @category stages
 */
export const fallback: {
  <E, S, const T extends TagOf<E | S>, B, E3 = never, R3 = never>(
    options: { readonly on: ReadonlyArray<T> } & FallbackHandler<Extract<E | S, { readonly _tag: T }>, B, E3, R3>
  ): (
    self: Builder<E, S, "fallback">
  ) => Builder<E, S, never, { A: B; E: E3; R: R3; Handled: { readonly _tag: T } }>
  <E, S, H extends E | S, B, E3 = never, R3 = never>(
    options: { readonly when: Refinement<NoInfer<E | S>, H> } & FallbackHandler<H, B, E3, R3>
  ): (self: Builder<E, S, "fallback">) => Builder<E, S, never, { A: B; E: E3; R: R3; Handled: H }>
  <E, S, B, E3 = never, R3 = never>(
    options: { readonly when: Predicate<NoInfer<E | S>> } & FallbackHandler<E | S, B, E3, R3>
  ): (self: Builder<E, S, "fallback">) => Builder<E, S, never, { A: B; E: E3; R: R3; Handled: never }>
  <E, S, B, E3 = never, R3 = never>(
    options: FallbackHandler<E | S, B, E3, R3>
  ): (self: Builder<E, S, "fallback">) => Builder<E, S, never, { A: B; E: E3; R: R3; Handled: unknown }>
} = (options: any) => (self: Builder<any, any, any>) => add(self, { _tag: "fallback", fallback: fallbackSpec(options) })

type TagOf<X> = X extends { readonly _tag: infer T extends string } ? T : never

const fallbackSpec = (options: {
  readonly on?: ReadonlyArray<string> | undefined
  readonly when?: Predicate<unknown> | undefined
  readonly value?: unknown
  readonly orElse?: ((error: unknown) => AnyEffect) | undefined
}): FallbackSpec => {
  const on = options.on
  const when = options.when
  const select = on !== undefined
    ? (error: unknown) =>
      typeof error === "object" && error !== null && on.includes((error as { readonly _tag?: unknown })._tag as string)
    : when !== undefined
    ? when
    : () => true
  if (typeof options.orElse === "function") return { select, handle: options.orElse }
  if (!("value" in options)) Validate.illegal("Policy", "fallback needs a value or an orElse function")
  const value = Effect.succeed(options.value)
  return { select, handle: () => value }
}

// ---------------------------------------------------------------------------------------------------------------
// Making a policy
// ---------------------------------------------------------------------------------------------------------------

/** Options in the order `make(options)` applies them. */
const fromOptions = (options: Options): BuilderImpl => {
  const specs: Array<StageSpec> = []
  if (options.attemptTimeout !== undefined) specs.push({ _tag: "attemptTimeout", duration: options.attemptTimeout })
  if (options.breaker !== undefined) specs.push({ _tag: "breaker", breaker: options.breaker })
  if (options.rateLimit !== undefined) specs.push({ _tag: "rateLimit", limit: options.rateLimit })
  if (options.hedge !== undefined) specs.push({ _tag: "hedge", options: options.hedge })
  if (options.retry !== undefined) specs.push({ _tag: "retry", options: options.retry })
  if (options.bulkhead !== undefined) specs.push({ _tag: "bulkhead", bulkhead: options.bulkhead })
  if (options.deadline !== undefined) specs.push({ _tag: "deadline", duration: options.deadline })
  if (options.fallback !== undefined) specs.push({ _tag: "fallback", fallback: fallbackSpec(options.fallback) })
  return makeBuilder(options.name ?? "default", specs)
}

/**
 * Subscribers' queues. Publishing walks them; with none (the usual case) a decision checks `length` and builds
 * nothing.
 */
interface Hub {
  readonly name: string
  readonly queues: Array<Queue.Queue<Event>>
}

const publish = (hub: Hub, event: Event): void => {
  for (const queue of hub.queues) queue.unsafeOffer(event)
}

const EVENT_CAPACITY = 1024

type StageFn = (self: AnyEffect) => AnyEffect

const isShed = (error: unknown): error is Bulkhead.BulkheadRejected | WaitTimeout.WaitTimeoutError =>
  error instanceof Bulkhead.BulkheadRejected || error instanceof WaitTimeout.WaitTimeoutError

/**
 * A stage handed in as an instance cannot tell the policy that it shed a call, so the policy watches it, only while
 * someone subscribes: the call was shed when the stage failed before starting what it wraps.
 */
const watchShedding = (hub: Hub, stage: "bulkhead" | "rateLimit", apply: StageFn): StageFn => (self) =>
  Effect.suspend(() => {
    if (hub.queues.length === 0) return apply(self)
    let started = false
    return Effect.tapError(
      apply(Effect.suspend(() => {
        started = true
        return self
      })),
      (error) =>
        Effect.sync(() => {
          if (!started && isShed(error)) publish(hub, Event.Rejected({ policy: hub.name, stage, error }))
        })
    )
  })

/** The options with the policy's name, unless they name the stage themselves. */
const named = <O extends { readonly name?: string | undefined }>(
  options: O,
  name: string
): O & { readonly name: string } => ({
  ...options,
  name: options.name ?? name
})

const isInstance = (u: unknown, typeId: symbol): boolean => typeof u === "object" && u !== null && typeId in u

type Signal<A, E> =
  | { readonly _tag: "Exit"; readonly fiber: Fiber.RuntimeFiber<A, E>; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "Tick"; readonly generation: number }

interface HedgeResolved {
  readonly delayMillis: number
  readonly maxAttempts: number
  readonly shouldHedge: (error: unknown) => boolean
}

// An attempt refused by a stage inside the hedge (an open breaker, a rate limit's maxWait) says nothing about the
// dependency, and the next attempt would be refused alike.
const notRefused = (error: unknown): boolean => !(error instanceof CircuitBreaker.CircuitOpen || isShed(error))

const resolveHedge = (options: HedgeOptions<any>): HedgeResolved => {
  const decoded = Duration.decodeUnknown(options.delay)
  if (decoded._tag === "None") {
    Validate.illegal("Policy", `hedge.delay is not a valid duration: ${String(options.delay)}`)
  }
  const delayMillis = Duration.toMillis(Option.getOrThrow(decoded))
  if (!(delayMillis >= 0)) Validate.illegal("Policy", `hedge.delay must be a non-negative duration, got ${delayMillis}`)
  return {
    delayMillis,
    maxAttempts: Validate.positiveIntegerOr("Policy", "hedge.maxAttempts", options.maxAttempts, 2),
    shouldHedge: options.shouldHedge ?? notRefused
  }
}

/**
 * Hedged attempts of `self`. Every attempt runs in a fiber of its own (a child of the caller's); the caller waits
 * for their exits and for the hedge delay, which is an entry in the clock's deadline timer (no timer fiber), and
 * interrupts whatever still runs before it returns, however it ends (answer, failure, or its own interruption).
 */
const hedged = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  options: HedgeResolved,
  onHedge: (attempt: number, reason: "delay" | "error") => void
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Queue.unbounded<Signal<A, E>>(), (queue) =>
      Effect.withFiberRuntime<A, E, R>((parent) => {
        const { delayMillis, maxAttempts, shouldHedge } = options
        const timer = DeadlineTimer.timerOf(parent)
        const running = new Set<Fiber.RuntimeFiber<A, E>>()
        let started = 0
        let generation = 0
        let entry: DeadlineTimer.Entry | undefined

        const disarm = () => {
          if (entry !== undefined) {
            timer.remove(entry)
            entry = undefined
          }
        }
        const arm = () => {
          disarm()
          if (started >= maxAttempts || delayMillis === Number.POSITIVE_INFINITY) return
          const current = ++generation
          entry = DeadlineTimer.callbackEntry(timer.now() + delayMillis, () => {
            queue.unsafeOffer({ _tag: "Tick", generation: current })
          })
          timer.add(entry, parent)
        }
        const start = (reason: "delay" | "error" | undefined): Effect.Effect<void, never, R> =>
          Effect.flatMap(Effect.fork(restore(self)), (fiber) => {
            started++
            running.add(fiber)
            fiber.addObserver((exit) => {
              queue.unsafeOffer({ _tag: "Exit", fiber, exit })
            })
            if (reason !== undefined) onHedge(started, reason)
            // A zero delay starts every attempt at once.
            if (delayMillis === 0 && started < maxAttempts) return start("delay")
            arm()
            return Effect.void
          })
        const loop: Effect.Effect<A, E, R> = Effect.flatMap(restore(Queue.take(queue)), (signal) => {
          if (signal._tag === "Tick") {
            if (signal.generation !== generation || started >= maxAttempts) return loop
            entry = undefined
            return Effect.zipRight(start("delay"), loop)
          }
          running.delete(signal.fiber)
          const exit = signal.exit
          if (Exit.isSuccess(exit)) return exit
          const cause = exit.cause
          const failure = Cause.failureOption(cause)
          if (Option.isSome(failure) && !Cause.isDie(cause) && shouldHedge(failure.value)) {
            if (started < maxAttempts) return Effect.zipRight(start("error"), loop)
            // Every attempt has started: the last one to fail answers.
            return running.size === 0 ? exit : loop
          }
          return exit
        })
        const cleanup = Effect.suspend(() => {
          disarm()
          return running.size === 0 ? Effect.void : Fiber.interruptAll(running)
        })
        return Effect.ensuring(Effect.zipRight(start(undefined), loop), cleanup)
      }))
  )

/**
 * Creates a policy: from a builder (`define` piped through stages, then `make`), or from plain options (applied
 * in the order of `stages`). The stateful stages (breaker, bulkhead, bucket) are created here, named after the
 * policy unless their options name them; stages handed in as instances are used as they are. Invalid options are a
 * defect (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 * import * as Data from "effect/Data"
 * import * as Effect from "effect/Effect"
 *
 * class UpstreamError extends Data.TaggedError("UpstreamError")<{ readonly status: number }> {}
 *
 * let calls = 0
 * const callUpstream = Effect.suspend(() =>
 *   ++calls <= 2 ? Effect.fail(new UpstreamError({ status: 503 })) : Effect.succeed(`answer after ${calls} calls`)
 * )
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* Policy.make({
 *     name: "upstream",
 *     attemptTimeout: "2 seconds",
 *     breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "5 seconds" },
 *     rateLimit: { limit: 10, interval: "1 second", burst: 2 },
 *     retry: { base: "20 millis", maxAttempts: 5 },
 *     bulkhead: { maxConcurrent: 4, maxQueued: 100 },
 *     deadline: "10 seconds"
 *   })
 *   // Effect<string, UpstreamError | TimeoutError | CircuitOpen | BulkheadRejected>
 *   return yield* upstream.run(callUpstream)
 * })
 *
 * Effect.runPromise(program).then(console.log) // "answer after 3 calls"
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <const I extends Builder<any, any, never, any> | Options>(
  input: I
): Effect.Effect<I extends Builder<infer E, infer S, never, infer F> ? Policy<E, S, F> : OfOptions<I>> =>
  Effect.suspend(() => {
    const builder = isBuilder(input) ? input : fromOptions(input as Options)
    return build(builder) as Effect.Effect<any>
  })

const build = (builder: BuilderImpl): Effect.Effect<Policy<any, any, any>> =>
  Effect.gen(function*() {
    const name = builder.name
    const hub: Hub = { name, queues: [] }
    const labels = Metrics.labels("policy", name)
    const timeoutLabels = {
      attempt: [...labels, ...Metrics.labels("limit", "attempt")],
      deadline: [...labels, ...Metrics.labels("limit", "deadline")]
    }
    const onTimeout: Deadline.OnTimeout = (limit, duration) => {
      Metrics.policyTimeouts.unsafeUpdate(1, timeoutLabels[limit])
      if (hub.queues.length > 0) publish(hub, Event.TimedOut({ policy: name, limit, duration }))
    }
    const onShed =
      (stage: "bulkhead" | "rateLimit") => (error: Bulkhead.BulkheadRejected | WaitTimeout.WaitTimeoutError) => {
        if (hub.queues.length > 0) publish(hub, Event.Rejected({ policy: name, stage, error }))
      }
    const fns: Array<StageFn> = []
    let theBreaker: CircuitBreaker.CircuitBreaker<any> | undefined
    let theBulkhead: Bulkhead.Bulkhead<any> | undefined
    let fastAttemptTimeout: FastPath.AttemptTimeout | undefined

    for (const spec of builder[SpecsId]) {
      switch (spec._tag) {
        case "attemptTimeout": {
          const millis = Validate.positiveDurationMillis("Policy", "attemptTimeout", spec.duration)
          const limit = Duration.millis(millis)
          fns.push((self) => Deadline.attemptMillis(self, millis, limit, onTimeout))
          fastAttemptTimeout = FastPath.attemptTimeout(millis, limit, onTimeout)
          break
        }
        case "deadline": {
          const millis = Validate.positiveDurationMillis("Policy", "deadline", spec.duration)
          const limit = Duration.millis(millis)
          fns.push((self) => Deadline.withinMillis(self, millis, limit, onTimeout))
          break
        }
        case "breaker": {
          const b = isInstance(spec.breaker, CircuitBreaker.TypeId)
            ? spec.breaker as CircuitBreaker.CircuitBreaker<any>
            : yield* CircuitBreaker.make(named(spec.breaker as CircuitBreaker.Options<any>, name))
          theBreaker = b
          fns.push(b.run)
          break
        }
        case "rateLimit": {
          const limit = spec.limit
          if (isInstance(limit, TokenBucket.TypeId)) {
            fns.push(watchShedding(hub, "rateLimit", (limit as TokenBucket.TokenBucket<any>).withTokens()))
          } else if (isInstance(limit, Limiter.TypeId)) {
            fns.push(watchShedding(hub, "rateLimit", (limit as Limiter.Limiter<any>).run))
          } else {
            const options = named(limit as TokenBucket.Options, name)
            const shed = onShed("rateLimit")
            const maxWaitMillis = Validate.nonNegativeDurationOr("TokenBucket", "maxWait", options.maxWait, undefined)
            const bucket = TokenBucket.unsafeMake(
              options,
              maxWaitMillis === undefined ? undefined : {
                error: () => {
                  const error = new WaitTimeout.WaitTimeoutError({
                    module: "TokenBucket",
                    name: options.name,
                    key: undefined,
                    maxWait: Duration.millis(maxWaitMillis)
                  })
                  shed(error)
                  return error
                },
                expiry: Expiry.make()
              }
            )
            fns.push(bucket.withTokens())
          }
          break
        }
        case "hedge": {
          const resolved = resolveHedge(spec.options)
          const onHedge = (attempt: number, reason: "delay" | "error") => {
            Metrics.policyHedges.unsafeUpdate(1, labels)
            const traced = Tracing.traced()
            if (traced !== undefined) {
              Tracing.event(traced, "Policy.hedged", {
                "spindle.policy.name": name,
                "spindle.hedge.attempt": attempt,
                "spindle.hedge.reason": reason
              })
            }
            if (hub.queues.length > 0) publish(hub, Event.Hedged({ policy: name, attempt, reason }))
          }
          fns.push((self) => hedged(self, resolved, onHedge))
          break
        }
        case "retry": {
          fns.push(RetryPolicy.makeWith(named(spec.options, name), {
            onRetry: (attempt, delayMillis, error) => {
              if (hub.queues.length > 0) {
                publish(
                  hub,
                  Event.RetryScheduled({ policy: name, attempt, delay: Duration.millis(delayMillis), error })
                )
              }
            },
            onStop: (reason, attempts, error) => {
              if (hub.queues.length > 0) publish(hub, Event.RetryGaveUp({ policy: name, attempts, reason, error }))
            }
          }))
          break
        }
        case "bulkhead": {
          if (isInstance(spec.bulkhead, Bulkhead.TypeId)) {
            const b = spec.bulkhead as Bulkhead.Bulkhead<any>
            theBulkhead = b
            fns.push(watchShedding(hub, "bulkhead", b.run))
          } else {
            const b = Bulkhead.unsafeMake<any>(
              named(spec.bulkhead as Bulkhead.Options, name),
              undefined,
              undefined,
              onShed("bulkhead")
            )
            theBulkhead = b
            fns.push(b.run)
          }
          break
        }
        case "fallback": {
          const { handle, select } = spec.fallback
          const onFailure = (error: unknown): AnyEffect => {
            if (!select(error)) return Effect.fail(error)
            Metrics.policyFallbacks.unsafeUpdate(1, labels)
            const traced = Tracing.traced()
            if (traced !== undefined) {
              Tracing.event(traced, "Policy.fallback", {
                "spindle.policy.name": name,
                "spindle.fallback.reason": Tracing.reasonOf(error)
              })
            }
            if (hub.queues.length > 0) publish(hub, Event.FallbackUsed({ policy: name, error }))
            return handle(error)
          }
          fns.push((self) => Effect.catchAll(self, onFailure))
          break
        }
      }
    }

    const count = fns.length
    const spanOptions = { attributes: { "spindle.policy.name": name }, captureStackTrace: false }
    // A call is one span (`Policy.run`), under which the stages report what they decide, when `run` is applied in a
    // fiber with a tracer of the application's installed (`yield* policy.run(call)` in a traced program). Decided
    // here, once per application, and not each time the effect runs: a check per run would be one more operation on
    // every call, the cost issue 20 rules out without a tracer. The stages check for themselves when they run.
    const run = (self: AnyEffect): AnyEffect => {
      let effect = self
      for (let i = 0; i < count; i++) effect = fns[i](effect)
      return Tracing.traced() === undefined ? effect : Effect.withSpan(effect, "Policy.run", spanOptions)
    }

    const breakerForEvents = theBreaker
    const subscribe: Effect.Effect<Queue.Dequeue<Event>, never, Scope.Scope> = Effect.gen(function*() {
      const queue = yield* Effect.acquireRelease(
        Effect.map(Queue.sliding<Event>(EVENT_CAPACITY), (queue) => {
          hub.queues.push(queue)
          return queue
        }),
        (queue) =>
          Effect.zipRight(
            Effect.sync(() => {
              const index = hub.queues.indexOf(queue)
              if (index >= 0) hub.queues.splice(index, 1)
            }),
            Queue.shutdown(queue)
          )
      )
      if (breakerForEvents !== undefined) {
        // The breaker reports its changes on its own stream, which starts with the state now: once that has
        // arrived, no later change can be missed.
        const ready = yield* Deferred.make<void>()
        let first = true
        yield* Effect.forkScoped(Stream.runForEach(breakerForEvents.changes, (state) => {
          if (first) {
            first = false
            return Deferred.succeed(ready, undefined)
          }
          return Effect.sync(() => {
            queue.unsafeOffer(Event.BreakerStateChanged({ policy: name, state }))
          })
        }))
        yield* Deferred.await(ready)
      }
      return queue
    })

    const policy: Policy<any, any, any> = {
      [TypeId]: TypeId,
      name,
      stages: builder.stages,
      run,
      events: Stream.unwrapScoped(Effect.map(subscribe, (queue) => Stream.fromQueue(queue))),
      subscribe,
      breaker: theBreaker,
      bulkhead: theBulkhead
    }
    // The stage functions, for callers that run the innermost stages themselves (internal/fastPath.ts).
    Object.defineProperty(policy, FastPath.PolicyStagesId, { value: fns })
    Object.defineProperty(policy, FastPath.PolicyAttemptTimeoutId, { value: fastAttemptTimeout })
    return policy
  })

/**
 * A layer providing a policy under `tag`, made from a builder or from options.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, Policy } from "@spindle/core"
 * import * as Context from "effect/Context"
 * import * as Effect from "effect/Effect"
 *
 * const inventory = Policy.define("inventory").pipe(
 *   Policy.attemptTimeout("1 second"),
 *   Policy.breaker({ policy: CircuitBreaker.consecutiveFailures(5) }),
 *   Policy.retry({ maxAttempts: 3 })
 * )
 *
 * class InventoryPolicy extends Context.Tag("InventoryPolicy")<InventoryPolicy, Policy.Of<typeof inventory>>() {}
 *
 * const stock = (sku: string) => Effect.flatMap(InventoryPolicy, (policy) => policy.run(Effect.succeed(`${sku}: 12`)))
 *
 * Effect.runPromise(stock("sku-1").pipe(Effect.provide(Policy.layer(InventoryPolicy, inventory)))).then(console.log)
 * // "sku-1: 12"
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <I, const In extends Builder<any, any, never, any> | Options>(
  tag: Context.Tag<I, In extends Builder<infer E, infer S, never, infer F> ? Policy<E, S, F> : OfOptions<In>>,
  input: In
): Layer.Layer<I> => Layer.effect(tag, make(input) as Effect.Effect<any>)

/**
 * The metrics policies update, labelled `policy=<name>`: timeouts (labelled too with the `limit` that fired),
 * hedged attempts started, and fallbacks used. The stages a policy builds from options report under the policy's
 * name as well (`spindle_retries_total{policy}`, `spindle_circuit_*{breaker}`, `spindle_limiter_*{limiter}`,
 * `spindle_token_bucket_*{bucket}`).
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Policy.make({ name: "docs-policy", attemptTimeout: "10 millis", fallback: { value: "late" } })
 *   yield* policy.run(Effect.never)
 *   const timeouts = Policy.metrics.timeouts.pipe(Metric.tagged("policy", "docs-policy"), Metric.tagged("limit", "attempt"))
 *   const fallbacks = Policy.metrics.fallbacks.pipe(Metric.tagged("policy", "docs-policy"))
 *   return [(yield* Metric.value(timeouts)).count, (yield* Metric.value(fallbacks)).count]
 * })
 *
 * Effect.runPromise(program).then(console.log) // [1, 1]
 * ```
 *
 * @since 0.2.0
 * @category metrics
 */
export const metrics = {
  timeouts: Metrics.policyTimeouts,
  hedges: Metrics.policyHedges,
  fallbacks: Metrics.policyFallbacks
} as const

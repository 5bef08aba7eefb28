/**
 * `@spindle/core`'s composed resilience policy (attempt timeout, circuit breaker, rate limit, hedging, retry,
 * bulkhead, overall deadline, fallback) for code that does not use Effect: `policy.execute((signal) => fetch(url,
 * { signal }))` returns a Promise, so a plain async code base can adopt it one call at a time.
 *
 * The policy is the core's `Policy`, made once from the same options, so the stages and their order are the core's
 * (innermost first: attempt timeout, breaker, rate limit, hedge, retry, bulkhead, deadline, fallback): the attempt
 * timeout is a failure the breaker counts and the retry retries, every hedged attempt passes the breaker and the
 * rate limit on its own, the bulkhead holds one place per call across its retries and hedges, the deadline bounds
 * the whole call, and the fallback answers for what is left. Each call runs in a fiber of the policy's runtime:
 * Effect's default runtime, or a `ManagedRuntime` built from the layer you pass (a logger, a tracer, a `TestClock`),
 * released by `dispose()`. What the policy decides (retries, rejections, timeouts, hedges, breaker changes,
 * fallbacks) reaches the listeners of `subscribe`.
 *
 * **A call enters the runtime only when a stage must decide.** While the breaker is closed, a policy of an attempt
 * timeout, a breaker, a retry and a fallback (on the live clock) calls the function directly, times it with an entry
 * in the core's deadline timer and counts its success on the breaker synchronously; a failure, or the timeout
 * firing, continues in a fiber through the same stages, that attempt counted as the first. Every other stage waits
 * on each call (a permit, a token, a hedge, a deadline), so its policy runs every call in a fiber. When nothing but
 * the function can end such a call (no signal of the caller's, no attempt timeout, a function that declares no
 * signal parameter), its Promise is a single `then` on the function's.
 *
 * **Cancellation is an `AbortSignal`, end to end.** The function gets a signal of its own for each attempt (each hedged
 * attempt included), aborted when the attempt's timeout or the deadline passes, when another hedged attempt has
 * won, or when the caller gives up. The caller's own signal
 * (`execute(fn, { signal })`) aborts the whole call: the attempt in flight is aborted, a call waiting in the
 * bulkhead's queue leaves it, its bulkhead place is freed for the next call, no retry starts, and the Promise
 * rejects with `signal.reason` (as `fetch` does).
 *
 * **Errors are classes** (`Errors`): what the policy decided rejects with a `PolicyError` (`TimeoutError`,
 * `BrokenCircuitError`, `BulkheadRejectedError`, `WaitTimeoutError`, `DisposedError`) holding the core's tagged
 * error as its `cause`; what the call threw is passed through unchanged, after the last retry the last attempt's
 * (unless the fallback answers for it).
 *
 * @since 0.1.0
 */
import type * as Bulkhead from "@spindle/core/Bulkhead"
import type * as CircuitBreaker from "@spindle/core/CircuitBreaker"
import type * as Limiter from "@spindle/core/Limiter"
import * as CorePolicy from "@spindle/core/Policy"
import type * as RetryPolicy from "@spindle/core/RetryPolicy"
import type * as TokenBucket from "@spindle/core/TokenBucket"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Errors from "./Errors.js"

/**
 * The stages of a policy, each optional, as the core's options (durations as milliseconds or strings such as
 * `"2 seconds"`), or as an instance of the core's `CircuitBreaker` or `Bulkhead` to share it with other policies or
 * with Effect code. Predicates (`retry.retryable`, `breaker.isFailure`) see the call's errors as thrown, and the
 * core's `Deadline.TimeoutError` for a timeout.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import type { Policy } from "@spindle/promise"
 *
 * const options: Policy.Options = {
 *   name: "payments",
 *   attemptTimeout: "2 seconds",
 *   breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "30 seconds" },
 *   retry: { maxAttempts: 3, base: "100 millis" },
 *   bulkhead: { maxConcurrent: 16, maxQueued: 100 },
 *   deadline: "10 seconds"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The name of the policy and of the stages built from options (metrics, errors, events). Default `"default"`. */
  readonly name?: string | undefined
  /** A timeout on each attempt (innermost); aborts the attempt's signal. */
  readonly attemptTimeout?: Duration.DurationInput | undefined
  /** A circuit breaker around each attempt. */
  readonly breaker?: CircuitBreaker.Options<unknown> | CircuitBreaker.CircuitBreaker<any> | undefined
  /** A token for every attempt that goes out (retries and hedges included). */
  readonly rateLimit?: TokenBucket.Options | TokenBucket.TokenBucket<any> | Limiter.Limiter<any> | undefined
  /**
   * Hedging: another attempt (with a signal of its own) when the others have not answered within `delay`, or at
   * once on an error `shouldHedge` accepts; the first success wins and the others' signals are aborted.
   */
  readonly hedge?: CorePolicy.HedgeOptions<unknown> | undefined
  /** Retries with backoff (`maxAttempts` counts every attempt, the first included). */
  readonly retry?: RetryPolicy.Options<unknown> | undefined
  /** One place per call, held across its retries and hedges. */
  readonly bulkhead?: Bulkhead.Options | Bulkhead.Bulkhead<any> | undefined
  /** A limit over the whole call: queueing, every attempt and every backoff. */
  readonly deadline?: Duration.DurationInput | undefined
  /** What answers instead of a rejection (outermost, so it answers for the deadline too). */
  readonly fallback?: Fallback<unknown> | undefined
}

/**
 * A fallback: a `value`, or a function of the error (`orElse`, which may return a Promise), for every rejection or
 * only those `when` accepts. Both see the error `execute` would reject with (a `PolicyError` class for what the
 * policy decided, the call's own error otherwise); a rejection of `orElse` is the call's rejection.
 *
 * @example
 * ```ts
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const cached: Policy.Fallback<string> = { value: "cached page" }
 * const onlyWhenOpen: Policy.Fallback<string> = {
 *   when: (error) => error instanceof Errors.BrokenCircuitError,
 *   orElse: async () => "the service is resting"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Fallback<B> =
  & ({ readonly value: B } | { readonly orElse: (error: unknown) => B | PromiseLike<B> })
  & { readonly when?: ((error: unknown) => boolean) | undefined }

/**
 * The value type a policy's fallback adds to every call's (`never` without a fallback).
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/promise"
 *
 * const fallbackValue: Policy.FallbackOf<{ fallback: { value: "cached" } }> = "cached"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type FallbackOf<O> = O extends { readonly fallback: infer F } ? F extends { readonly value: infer B } ? B
  : F extends { readonly orElse: (error: any) => infer B } ? Awaited<B>
  : never
  : never

/**
 * A stage of a policy, innermost first in `stages` (the core's `Policy.Stage`).
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ deadline: "5 seconds", retry: { maxAttempts: 3 }, attemptTimeout: 500 })
 * const stages: ReadonlyArray<Policy.Stage> = policy.stages
 *
 * console.log(stages) // ["attemptTimeout", "retry", "deadline"]
 * policy.dispose()
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Stage = CorePolicy.Stage

/**
 * What a policy decided, as its listeners get it (`subscribe`): the core's `Policy.Event` with durations in
 * milliseconds, the breaker's state as `CircuitState`, and the policy's refusals as their `PolicyError` classes.
 *
 * - `retryScheduled`: attempt number `attempt` (the first is 1) starts after `delayMillis`.
 * - `retryGaveUp`: the retry stopped after `attempts` attempts (`reason`: `"max_attempts"`, `"not_retryable"`, ...).
 * - `rejected`: the bulkhead or the rate limit refused the call.
 * - `timedOut`: the attempt timeout or the deadline fired.
 * - `hedged`: attempt number `attempt` started, after the delay (`"delay"`) or on an error (`"error"`).
 * - `breakerStateChanged`: the breaker entered `state`.
 * - `fallbackUsed`: the fallback answered for `error`.
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/promise"
 *
 * const describe = (event: Policy.Event): string => {
 *   switch (event.type) {
 *     case "retryScheduled":
 *       return `retry #${event.attempt} in ${event.delayMillis} ms`
 *     case "breakerStateChanged":
 *       return `breaker ${event.state}`
 *     default:
 *       return event.type
 *   }
 * }
 * ```
 *
 * @since 0.2.0
 * @category events
 */
export type Event =
  | {
    readonly type: "retryScheduled"
    readonly policy: string
    readonly attempt: number
    readonly delayMillis: number
    readonly error: unknown
  }
  | {
    readonly type: "retryGaveUp"
    readonly policy: string
    readonly attempts: number
    readonly reason: RetryPolicy.StopReason
    readonly error: unknown
  }
  | {
    readonly type: "rejected"
    readonly policy: string
    readonly stage: "bulkhead" | "rateLimit"
    readonly error: Errors.PolicyError
  }
  | {
    readonly type: "timedOut"
    readonly policy: string
    readonly limit: "attempt" | "deadline"
    readonly durationMillis: number
  }
  | { readonly type: "hedged"; readonly policy: string; readonly attempt: number; readonly reason: "delay" | "error" }
  | { readonly type: "breakerStateChanged"; readonly policy: string; readonly state: CircuitState }
  | { readonly type: "fallbackUsed"; readonly policy: string; readonly error: unknown }

/**
 * Options of one call.
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/promise"
 *
 * // Give up on the call (and everything it waits for) when the request that asked for it goes away.
 * const options: Policy.ExecuteOptions = { signal: AbortSignal.timeout(5_000) }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecuteOptions {
  /**
   * Aborts the call: the attempt in flight is aborted, a place in a queue is given up, a held bulkhead place is
   * freed, and the Promise rejects with the signal's `reason`. A signal aborted already runs nothing.
   */
  readonly signal?: AbortSignal | undefined
}

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/promise"
 * import * as Logger from "effect/Logger"
 *
 * // The policy's runtime logs as JSON lines.
 * const policy = Policy.make({ retry: { maxAttempts: 3 } }, { layer: Logger.json })
 *
 * policy.dispose()
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  /**
   * Services for the policy's runtime (a logger, a tracer, `TestContext.TestContext` to run its timers on a
   * `TestClock`). It must build synchronously. Default: none, Effect's default runtime.
   */
  readonly layer?: Layer.Layer<never> | undefined
}

/**
 * The breaker's state, as cockatiel names them: `"closed"` (calls run), `"open"` (calls are refused until the
 * cooldown ends), `"half-open"` (probes run), `"isolated"` (held open until `reset`).
 *
 * @example
 * ```ts
 * import type { Policy } from "@spindle/promise"
 *
 * const healthy = (state: Policy.CircuitState | undefined) => state === undefined || state === "closed"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CircuitState = "closed" | "open" | "half-open" | "isolated"

/**
 * A policy for Promise-returning calls.
 *
 * @example
 * ```ts
 * import { Policy } from "@spindle/promise"
 *
 * let calls = 0
 * const flaky = async () => {
 *   if (++calls < 3) throw new Error("503")
 *   return `answer after ${calls} calls`
 * }
 *
 * const policy: Policy.Policy = Policy.make({ attemptTimeout: "1 second", retry: { maxAttempts: 3, base: 10 } })
 *
 * policy.execute(flaky).then(console.log).finally(() => policy.dispose()) // "answer after 3 calls"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy<out B = never> extends AsyncDisposable {
  readonly name: string
  /** The stages, innermost first. */
  readonly stages: ReadonlyArray<Stage>
  /**
   * Runs `fn` through the policy: it is called once per attempt with that attempt's `AbortSignal` (a function
   * declaring no parameter gets none made). Resolves with its value (or the fallback's), or
   * rejects with the policy's error class, the call's own error, or the caller's `signal.reason`.
   */
  readonly execute: <A>(
    fn: (signal: AbortSignal) => A | PromiseLike<A>,
    options?: ExecuteOptions
  ) => Promise<Awaited<A> | B>
  /**
   * Calls `listener` with every decision the policy makes from now on, in order (asynchronously, never inside the
   * call that caused it), until the returned function is called or the policy is disposed. A listener that throws is
   * logged and keeps its subscription. With no listener, no event is ever built.
   */
  readonly subscribe: (listener: (event: Event) => void) => () => void
  /** Calls started and not yet settled. */
  readonly inFlight: () => number
  /** The breaker's state now; `undefined` for a policy without a breaker. */
  readonly circuitState: () => CircuitState | undefined
  /** Holds the breaker open until `reset` (no-op without a breaker). */
  readonly isolate: () => void
  /** Closes the breaker and forgets what it counted (no-op without a breaker). */
  readonly reset: () => void
  /** The breaker, when the policy has one (for Effect code that shares it). */
  readonly breaker: CircuitBreaker.CircuitBreaker<any> | undefined
  /** The bulkhead, when the policy has one (to read `inFlight` and `queued`, or share it). */
  readonly bulkhead: Bulkhead.Bulkhead<any> | undefined
  /** The core's policy the calls run through (its `events` stream, or to share its stages with Effect code). */
  readonly policy: CorePolicy.Policy<unknown, unknown, any>
  /**
   * The runtime the calls run on: Effect's default runtime, or the one built from `make`'s `layer` (to move its
   * `TestClock`: `Runtime.runPromise(policy.runtime, TestClock.adjust("1 minute"))`).
   */
  readonly runtime: Runtime.Runtime<never>
  /**
   * Aborts every call in flight (they reject with `DisposedError`), refuses later calls, and releases the runtime.
   * Resolves once the calls in flight have ended. Also `[Symbol.asyncDispose]`, for `await using`. A call that
   * nothing can abort (run outside the runtime, see the module's notes, with no signal of the caller's, no attempt
   * timeout and a function that declares no signal parameter) rejects with `DisposedError` when its function
   * settles, and counts for nothing; `dispose` does not wait for it.
   */
  readonly dispose: () => Promise<void>
}

const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  (typeof u === "object" || typeof u === "function") && u !== null && typeof (u as any).then === "function"

const unobserved = new AbortController().signal

/** One attempt of `fn` as an effect: its own signal, aborted when the attempt is interrupted. */
const attempt = <A>(fn: (signal: AbortSignal) => A | PromiseLike<A>): Effect.Effect<A, unknown> => {
  const withSignal = fn.length >= 1
  return Effect.async<A, unknown>((resume) => {
    const controller = withSignal ? new AbortController() : undefined
    let result: A | PromiseLike<A>
    try {
      result = fn(controller === undefined ? unobserved : controller.signal)
    } catch (error) {
      resume(Effect.fail(error))
      return
    }
    if (!isThenable(result)) {
      resume(Effect.succeed(result))
      return
    }
    result.then(
      (value) => resume(Effect.succeed(value)),
      (error) => resume(Effect.fail(error))
    )
    if (controller === undefined) return
    return Effect.sync(() => controller.abort())
  })
}

const stateOf = (state: CircuitBreaker.State): CircuitState => {
  switch (state._tag) {
    case "Closed":
      return "closed"
    case "HalfOpen":
      return "half-open"
    case "Open":
      return state.isolated === true ? "isolated" : "open"
  }
}

/** The core's fallback for a Promise fallback: it sees the errors `execute` would reject with. */
const toCoreFallback = (fallback: Fallback<unknown>): NonNullable<CorePolicy.Options["fallback"]> => {
  const when = fallback.when
  const select = when === undefined ? {} : { when: (error: unknown) => when(Errors.fromCore(error)) }
  if ("orElse" in fallback) {
    const orElse = fallback.orElse
    return { ...select, orElse: (error: unknown) => attempt(() => orElse(Errors.fromCore(error))) }
  }
  // Neither a value nor a function: the core refuses it, naming the field.
  return "value" in fallback ? { ...select, value: fallback.value } : select as never
}

const toEvent = (event: CorePolicy.Event): Event => {
  switch (event._tag) {
    case "RetryScheduled":
      return {
        type: "retryScheduled",
        policy: event.policy,
        attempt: event.attempt,
        delayMillis: Duration.toMillis(event.delay),
        error: Errors.fromCore(event.error)
      }
    case "RetryGaveUp":
      return {
        type: "retryGaveUp",
        policy: event.policy,
        attempts: event.attempts,
        reason: event.reason,
        error: Errors.fromCore(event.error)
      }
    case "Rejected":
      return {
        type: "rejected",
        policy: event.policy,
        stage: event.stage,
        error: Errors.fromCore(event.error) as Errors.PolicyError
      }
    case "TimedOut":
      return {
        type: "timedOut",
        policy: event.policy,
        limit: event.limit,
        durationMillis: Duration.toMillis(event.duration)
      }
    case "Hedged":
      return { type: "hedged", policy: event.policy, attempt: event.attempt, reason: event.reason }
    case "BreakerStateChanged":
      return { type: "breakerStateChanged", policy: event.policy, state: stateOf(event.state) }
    case "FallbackUsed":
      return { type: "fallbackUsed", policy: event.policy, error: Errors.fromCore(event.error) }
  }
}

/**
 * A call on the fast path that something other than its function can end (the caller's signal, the attempt timeout,
 * `dispose` aborting its signal), until it settles or enters the runtime: a node of the policy's list of such calls,
 * linked in and out in constant time.
 */
interface FastCall {
  readonly controller: AbortController | undefined
  readonly reject: (reason: unknown) => void
  done: boolean
  /** The attempt timeout's entry, while armed. */
  entry: unknown
  prev: FastCall | undefined
  next: FastCall | undefined
}

/** Internal seams of the core (its internal/fastPath.ts), reached by their global symbols. */
const BreakerFastPathId = Symbol.for("@spindle/core/CircuitBreaker/fastPath")
const PolicyStagesId = Symbol.for("@spindle/core/Policy/stageFunctions")
const PolicyAttemptTimeoutId = Symbol.for("@spindle/core/Policy/attemptTimeout")

interface AttemptTimeoutFastPath {
  readonly arm: (onFire: () => void) => unknown
  readonly disarm: (entry: any) => void
  readonly error: () => unknown
}

interface BreakerFastPath {
  readonly admitsClosed: () => boolean
  readonly settleClosed: (cause: Cause.Cause<unknown> | undefined) => void
}

type StageFn = (self: Effect.Effect<unknown, unknown>) => Effect.Effect<unknown, unknown>

interface FastPath {
  readonly breaker: BreakerFastPath | undefined
  /** The attempt timeout, on the live clock's deadline timer. */
  readonly timeout: AttemptTimeoutFastPath | undefined
  /** Counts a success of an attempt run on the fast path, as the closed breaker would have. */
  readonly succeeded: () => void
  /**
   * Counts a failure of an attempt run on the fast path, as the closed breaker would have, and returns the rest of
   * the call: the stages outside the breaker, whose first attempt is that failure and whose later attempts run
   * through every stage.
   */
  readonly failed: (error: unknown, fn: (signal: AbortSignal) => unknown) => Effect.Effect<unknown, unknown>
}

/**
 * The fast path, for a policy whose stages have nothing to decide while an attempt succeeds in time: an attempt
 * timeout (on the live clock: an entry in the core's deadline timer, no fiber), a breaker (while it is closed and
 * times no call), a retry and a fallback. A success then needs no effect at all: the timeout's entry is taken out,
 * the breaker counts it synchronously, the retry and the fallback do nothing. The other stages wait or decide on
 * every call (a permit, a token, a hedge, a deadline), so such a policy takes the runtime for every call.
 */
const fastPathOf = (core: CorePolicy.Policy<unknown, unknown, any>, liveClock: boolean): FastPath | undefined => {
  const seams = core as unknown as Record<symbol, unknown>
  const fns = seams[PolicyStagesId] as ReadonlyArray<StageFn> | undefined
  if (fns === undefined || fns.length !== core.stages.length) return undefined
  let timeout: AttemptTimeoutFastPath | undefined
  for (const stage of core.stages) {
    if (stage === "attemptTimeout") {
      timeout = seams[PolicyAttemptTimeoutId] as AttemptTimeoutFastPath | undefined
      if (timeout === undefined || !liveClock) return undefined
    } else if (stage !== "breaker" && stage !== "retry" && stage !== "fallback") return undefined
  }
  let breaker: BreakerFastPath | undefined
  if (core.breaker !== undefined) {
    breaker = (core.breaker as unknown as Record<symbol, BreakerFastPath | undefined>)[BreakerFastPathId]
    if (breaker === undefined) return undefined
  }
  // The attempt timeout and the breaker, when present, are the innermost stages: the fast path has run them for the
  // first attempt; the others follow.
  const cut = (timeout === undefined ? 0 : 1) + (breaker === undefined ? 0 : 1)
  const inners = fns.slice(0, cut)
  const outer = fns.slice(cut)
  const count = outer.length
  return {
    breaker,
    timeout,
    succeeded: breaker === undefined ? () => {} : () => breaker.settleClosed(undefined),
    failed: (error, fn) => {
      if (breaker !== undefined) breaker.settleClosed(Cause.fail(error))
      let inner = attempt(fn)
      for (let i = 0; i < cut; i++) inner = inners[i](inner)
      let first = true
      let effect: Effect.Effect<unknown, unknown> = Effect.suspend(() => {
        if (!first) return inner
        first = false
        return Effect.fail(error)
      })
      for (let i = 0; i < count; i++) effect = outer[i](effect)
      return effect
    }
  }
}

/**
 * Makes a Promise-facing policy from its stages' options. Invalid options throw (the core's
 * `IllegalArgumentException`, naming the field).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import { Errors, Policy } from "@spindle/promise"
 * import * as http from "node:http"
 * import type { AddressInfo } from "node:net"
 *
 * const inventory = Policy.make({
 *   name: "inventory",
 *   attemptTimeout: "2 seconds",
 *   breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "30 seconds" },
 *   retry: { maxAttempts: 3, base: "100 millis" },
 *   bulkhead: { maxConcurrent: 10, maxQueued: 100 }
 * })
 *
 * const main = async () => {
 *   const upstream = http.createServer((_, res) => res.end("12 in stock"))
 *   await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
 *   const { port } = upstream.address() as AddressInfo
 *
 *   // The caller's signal (a request that may go away) and each attempt's own, for fetch.
 *   const stock = (signal?: AbortSignal) =>
 *     inventory.execute(async (attemptSignal) => {
 *       const res = await fetch(`http://127.0.0.1:${port}/stock`, { signal: attemptSignal })
 *       if (!res.ok) throw new Error(`HTTP ${res.status}`)
 *       return res.text()
 *     }, { signal })
 *
 *   try {
 *     console.log(await stock(AbortSignal.timeout(10_000))) // "12 in stock"
 *   } catch (error) {
 *     console.log(error instanceof Errors.PolicyError ? `refused: ${error.name}` : error)
 *   } finally {
 *     await inventory.dispose()
 *     upstream.close()
 *   }
 * }
 * main()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options>(input: O, options?: MakeOptions): Policy<FallbackOf<O>> => {
  // With a layer, its services live in a ManagedRuntime built now (the layer must be synchronous), released by
  // `dispose`; without one, calls run on Effect's default runtime, whose fibers start with no fiber refs to copy.
  const managed = options?.layer === undefined ? undefined : ManagedRuntime.make(options.layer)
  const runtime: Runtime.Runtime<never> = managed === undefined
    ? Runtime.defaultRuntime
    : managed.runSync(Effect.runtime<never>())
  const runFork = Runtime.runFork(runtime)
  const runSync = Runtime.runSync(runtime)
  const made = Runtime.runSyncExit(runtime)(CorePolicy.make({
    ...input,
    fallback: input.fallback === undefined ? undefined : toCoreFallback(input.fallback)
  }) as Effect.Effect<CorePolicy.Policy<unknown, unknown, any>>)
  if (made._tag === "Failure") {
    // Invalid options: throw the core's own error (an IllegalArgumentException naming the field).
    void managed?.dispose()
    throw Cause.squash(made.cause)
  }
  const core = made.value
  const name = core.name
  const run = core.run as unknown as (self: Effect.Effect<unknown, unknown>) => Effect.Effect<unknown, unknown>
  const breaker = core.breaker
  const running = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  const listening = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  const fast = fastPathOf(core, managed === undefined)
  // Fast calls that can be ended from outside, linked from `fastCalls` (the newest first).
  let fastCalls: FastCall | undefined
  let fastCount = 0
  // Bare calls: on the fast path with nothing that could end them but their function (see `execute`), counted only.
  let bareCalls = 0
  let disposed = false
  let disposing: Promise<void> | undefined

  const reasonOf = (cause: Cause.Cause<unknown>, signal: AbortSignal | undefined): unknown => {
    if (signal !== undefined && signal.aborted && Cause.isInterrupted(cause)) return signal.reason
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some") return Errors.fromCore(failure.value)
    if (disposed && Cause.isInterruptedOnly(cause)) return new Errors.DisposedError(name)
    return Cause.squash(cause)
  }

  /** Runs `effect` in a fiber of the policy's runtime, settling the call's Promise when it ends. */
  const runFiber = (
    effect: Effect.Effect<unknown, unknown>,
    signal: AbortSignal | undefined,
    resolve: (value: any) => void,
    reject: (reason: unknown) => void
  ): void => {
    const fiber = runFork(effect)
    let onAbort: (() => void) | undefined
    if (signal !== undefined) {
      onAbort = () => fiber.unsafeInterruptAsFork(FiberId.none)
      signal.addEventListener("abort", onAbort, { once: true })
    }
    running.add(fiber)
    fiber.addObserver((exit: Exit.Exit<unknown, unknown>) => {
      running.delete(fiber)
      if (onAbort !== undefined) signal!.removeEventListener("abort", onAbort)
      if (exit._tag === "Success") resolve(exit.value)
      else reject(reasonOf(exit.cause, signal))
    })
  }

  const execute = <A>(
    fn: (signal: AbortSignal) => A | PromiseLike<A>,
    options?: ExecuteOptions
  ): Promise<Awaited<A> | FallbackOf<O>> => {
    if (disposed) return Promise.reject(new Errors.DisposedError(name))
    const signal = options?.signal
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason)
    if (fast === undefined || (fast.breaker !== undefined && !fast.breaker.admitsClosed())) {
      return new Promise((resolve, reject) => runFiber(run(attempt(fn)), signal, resolve, reject))
    }
    // The fast path: the attempt runs here, as the breaker's closed state admits it, and only a failure enters the
    // runtime, through the same stages.
    const controller = fn.length >= 1 ? new AbortController() : undefined
    let result: A | PromiseLike<A>
    try {
      result = fn(controller === undefined ? unobserved : controller.signal)
    } catch (error) {
      return new Promise((resolve, reject) => runFiber(fast.failed(error, fn), signal, resolve, reject))
    }
    if (!isThenable(result)) {
      fast.succeeded()
      return Promise.resolve(result as Awaited<A>)
    }
    const timeout = fast.timeout
    if (controller === undefined && signal === undefined && timeout === undefined && result instanceof Promise) {
      // A bare call: nothing but its function can end it (no signal of the caller's, none of its own to abort, no
      // timeout), so the call's Promise is the one `then` on the function's, with the policy's own success handler;
      // `dispose` cannot end such a call sooner than its function, which then settles it with `DisposedError`.
      bareCalls++
      return result.then(bareSucceeded, (error) => bareFailed(error, fn)) as Promise<Awaited<A>>
    }
    const pending = result
    return new Promise((resolve, reject) => {
      const call: FastCall = { controller, reject, done: false, entry: undefined, prev: undefined, next: fastCalls }
      if (fastCalls !== undefined) fastCalls.prev = call
      fastCalls = call
      fastCount++
      let onAbort: (() => void) | undefined
      /** Ends the call's fast part: nothing later settles it from here. */
      const finish = () => {
        call.done = true
        unlink(call)
        if (onAbort !== undefined) signal!.removeEventListener("abort", onAbort)
      }
      if (signal !== undefined) {
        // As an interrupted attempt: its signal aborted, nothing counted, the call rejected with the reason.
        onAbort = () => {
          if (call.done) return
          finish()
          if (call.entry !== undefined) timeout!.disarm(call.entry)
          controller?.abort()
          reject(signal.reason)
        }
        signal.addEventListener("abort", onAbort, { once: true })
      }
      if (timeout !== undefined) {
        // As the attempt timeout firing: the attempt's signal aborted, then the stage's TimeoutError is the attempt's
        // failure, which the breaker counts and the retry decides on.
        call.entry = timeout.arm(() => {
          if (call.done) return
          finish()
          controller?.abort()
          runFiber(fast.failed(timeout.error(), fn), signal, resolve, reject)
        })
      }
      pending.then(
        (value) => {
          if (call.done) return
          finish()
          if (call.entry !== undefined) timeout!.disarm(call.entry)
          fast.succeeded()
          resolve(value as Awaited<A>)
        },
        (error) => {
          if (call.done) return
          finish()
          if (call.entry !== undefined) timeout!.disarm(call.entry)
          runFiber(fast.failed(error, fn), signal, resolve, reject)
        }
      )
    })
  }

  /** Takes a fast call out of the list (once: `done` guards every caller). */
  const unlink = (call: FastCall): void => {
    fastCount--
    if (call.prev === undefined) fastCalls = call.next
    else call.prev.next = call.next
    if (call.next !== undefined) call.next.prev = call.prev
    call.prev = undefined
    call.next = undefined
  }

  // A bare call's outcome. After `dispose` it counts for nothing and rejects with `DisposedError`, as a call the
  // policy aborted does; before, a success is counted on the closed breaker and a failure continues in the runtime,
  // as every fast call's does.
  const bareSucceeded = (value: unknown): unknown => {
    bareCalls--
    if (disposed) throw new Errors.DisposedError(name)
    fast!.succeeded()
    return value
  }

  const bareFailed = (error: unknown, fn: (signal: AbortSignal) => unknown): Promise<never> => {
    bareCalls--
    if (disposed) return Promise.reject(new Errors.DisposedError(name))
    return new Promise((resolve, reject) => runFiber(fast!.failed(error, fn), undefined, resolve, reject))
  }

  const subscribe = (listener: (event: Event) => void): () => void => {
    if (disposed) return () => {}
    const deliver = (event: CorePolicy.Event) =>
      Effect.catchAllDefect(
        Effect.sync(() => listener(toEvent(event))),
        (defect) => Effect.logError(`a listener of policy "${name}" threw`, Cause.die(defect))
      )
    // The queue joins the policy's hub before runFork returns (the fiber runs at once up to its first wait).
    const fiber = runFork(Effect.scoped(Effect.flatMap(
      core.subscribe,
      (queue) => Effect.forever(Effect.flatMap(Queue.take(queue), deliver))
    )))
    listening.add(fiber)
    return () => {
      if (listening.delete(fiber)) fiber.unsafeInterruptAsFork(FiberId.none)
    }
  }

  const dispose = (): Promise<void> => {
    if (disposing !== undefined) return disposing
    disposed = true
    for (let call = fastCalls; call !== undefined; call = call.next) {
      call.done = true
      if (call.entry !== undefined) fast!.timeout!.disarm(call.entry)
      call.controller?.abort()
      call.reject(new Errors.DisposedError(name))
    }
    fastCalls = undefined
    fastCount = 0
    const ended = Array.from([...running, ...listening], (fiber) =>
      new Promise<void>((resolve) => {
        fiber.addObserver(() => resolve())
        fiber.unsafeInterruptAsFork(FiberId.none)
      }))
    listening.clear()
    disposing = Promise.all(ended).then(() => managed?.dispose())
    return disposing
  }

  return {
    name,
    stages: core.stages,
    execute,
    subscribe,
    inFlight: () => running.size + fastCount + bareCalls,
    circuitState: () => breaker === undefined ? undefined : stateOf(runSync(breaker.state)),
    isolate: () => {
      if (breaker !== undefined) runSync(breaker.isolate)
    },
    reset: () => {
      if (breaker !== undefined) runSync(breaker.reset)
    },
    breaker,
    bulkhead: core.bulkhead,
    policy: core,
    runtime,
    dispose,
    [Symbol.asyncDispose]: dispose
  }
}

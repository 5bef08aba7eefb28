/**
 * `@spindle/core`'s resilience stages (attempt timeout, circuit breaker, retry, bulkhead, overall deadline) for code
 * that does not use Effect: `policy.execute((signal) => fetch(url, { signal }))` returns a Promise, so a plain async
 * code base can adopt it one call at a time.
 *
 * The stages are the core's own (`Deadline.attempt`, `CircuitBreaker`, `RetryPolicy`, `Bulkhead`,
 * `Deadline.within`), built once per policy and applied innermost first in that order: the attempt timeout is a
 * failure the breaker counts and the retry retries, the bulkhead holds one place per call across its retries, and the
 * deadline bounds the whole call. Each call runs in a fiber of the policy's runtime: Effect's default runtime, or a
 * `ManagedRuntime` built from the layer you pass (a logger, a tracer, a `TestClock`), released by `dispose()`.
 *
 * **Cancellation is an `AbortSignal`, end to end.** The function gets a signal of its own for each attempt, aborted
 * when the attempt's timeout or the deadline passes, or when the caller gives up. The caller's own signal
 * (`execute(fn, { signal })`) aborts the whole call: the attempt in flight is aborted, a call waiting in the
 * bulkhead's queue leaves it, its bulkhead place is freed for the next call, no retry starts, and the Promise
 * rejects with `signal.reason` (as `fetch` does).
 *
 * **Errors are classes** (`Errors`): what the policy decided rejects with a `PolicyError` (`TimeoutError`,
 * `BrokenCircuitError`, `BulkheadRejectedError`, `WaitTimeoutError`, `DisposedError`) holding the core's tagged
 * error as its `cause`; what the call threw is passed through unchanged, after the last retry the last attempt's.
 *
 * @since 0.1.0
 */
import * as Bulkhead from "@spindle/core/Bulkhead"
import * as CircuitBreaker from "@spindle/core/CircuitBreaker"
import * as Deadline from "@spindle/core/Deadline"
import * as RetryPolicy from "@spindle/core/RetryPolicy"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
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
  /** The name of the stages built from options (metrics, errors). Default `"default"`. */
  readonly name?: string | undefined
  /** A timeout on each attempt (innermost). */
  readonly attemptTimeout?: Duration.DurationInput | undefined
  /** A circuit breaker around each attempt. */
  readonly breaker?: CircuitBreaker.Options<unknown> | CircuitBreaker.CircuitBreaker<any> | undefined
  /** Retries with backoff (`maxAttempts` counts every attempt, the first included). */
  readonly retry?: RetryPolicy.Options<unknown> | undefined
  /** One place per call, held across its retries. */
  readonly bulkhead?: Bulkhead.Options | Bulkhead.Bulkhead<any> | undefined
  /** A limit over the whole call: queueing, every attempt and every backoff (outermost). */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * A stage of a policy, innermost first in `stages`.
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
export type Stage = "attemptTimeout" | "breaker" | "retry" | "bulkhead" | "deadline"

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
export interface Policy extends AsyncDisposable {
  readonly name: string
  /** The stages, innermost first. */
  readonly stages: ReadonlyArray<Stage>
  /**
   * Runs `fn` through the policy: it is called once per attempt with that attempt's `AbortSignal` (a function
   * declaring no parameter gets none made). Resolves with its value, or rejects with the
   * policy's error class, the call's own error, or the caller's `signal.reason`.
   */
  readonly execute: <A>(
    fn: (signal: AbortSignal) => A | PromiseLike<A>,
    options?: ExecuteOptions
  ) => Promise<Awaited<A>>
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
  /**
   * The runtime the calls run on: Effect's default runtime, or the one built from `make`'s `layer` (to move its
   * `TestClock`: `Runtime.runPromise(policy.runtime, TestClock.adjust("1 minute"))`).
   */
  readonly runtime: Runtime.Runtime<never>
  /**
   * Aborts every call in flight (they reject with `DisposedError`), refuses later calls, and releases the runtime.
   * Resolves once the calls in flight have ended. Also `[Symbol.asyncDispose]`, for `await using`.
   */
  readonly dispose: () => Promise<void>
}

const isInstance = (u: unknown, typeId: symbol): boolean => typeof u === "object" && u !== null && typeId in u

type StageFn = (self: Effect.Effect<unknown, unknown>) => Effect.Effect<unknown, unknown>

interface Built {
  readonly name: string
  readonly stages: ReadonlyArray<Stage>
  readonly run: StageFn
  readonly breaker: CircuitBreaker.CircuitBreaker<any> | undefined
  readonly bulkhead: Bulkhead.Bulkhead<any> | undefined
}

/** The stages, built once, innermost first. */
const build = (options: Options): Effect.Effect<Built> =>
  Effect.gen(function*() {
    const name = options.name ?? "default"
    const stages: Array<Stage> = []
    const fns: Array<StageFn> = []
    let breaker: CircuitBreaker.CircuitBreaker<any> | undefined
    let bulkhead: Bulkhead.Bulkhead<any> | undefined
    if (options.attemptTimeout !== undefined) {
      const duration = options.attemptTimeout
      Duration.decode(duration) // validates the duration now
      stages.push("attemptTimeout")
      fns.push((self) => Deadline.attempt(self, duration))
    }
    if (options.breaker !== undefined) {
      breaker = isInstance(options.breaker, CircuitBreaker.TypeId)
        ? options.breaker as CircuitBreaker.CircuitBreaker<any>
        : yield* CircuitBreaker.make({ name, ...options.breaker as CircuitBreaker.Options<unknown> })
      stages.push("breaker")
      fns.push(breaker.run)
    }
    if (options.retry !== undefined) {
      stages.push("retry")
      fns.push(RetryPolicy.make({ name, ...options.retry }))
    }
    if (options.bulkhead !== undefined) {
      bulkhead = isInstance(options.bulkhead, Bulkhead.TypeId)
        ? options.bulkhead as Bulkhead.Bulkhead<any>
        : yield* Bulkhead.make({ name, ...options.bulkhead as Bulkhead.Options })
      stages.push("bulkhead")
      fns.push(bulkhead.run)
    }
    if (options.deadline !== undefined) {
      const duration = options.deadline
      Duration.decode(duration) // validates the duration now
      stages.push("deadline")
      fns.push((self) => Deadline.within(self, duration))
    }
    const count = fns.length
    const run: StageFn = (self) => {
      let effect = self
      for (let i = 0; i < count; i++) effect = fns[i](effect)
      return effect
    }
    return { name, stages, run, breaker, bulkhead }
  })

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
export const make = (input: Options, options?: MakeOptions): Policy => {
  // With a layer, its services live in a ManagedRuntime built now (the layer must be synchronous), released by
  // `dispose`; without one, calls run on Effect's default runtime, whose fibers start with no fiber refs to copy.
  const managed = options?.layer === undefined ? undefined : ManagedRuntime.make(options.layer)
  const runtime: Runtime.Runtime<never> = managed === undefined
    ? Runtime.defaultRuntime
    : managed.runSync(Effect.runtime<never>())
  const runFork = Runtime.runFork(runtime)
  const core = Runtime.runSync(runtime)(build(input))
  const runSync = Runtime.runSync(runtime)
  const run = core.run
  const breaker = core.breaker
  const running = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  let disposed = false
  let disposing: Promise<void> | undefined

  const reasonOf = (cause: Cause.Cause<unknown>, signal: AbortSignal | undefined): unknown => {
    if (signal !== undefined && signal.aborted && Cause.isInterrupted(cause)) return signal.reason
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some") return Errors.fromCore(failure.value)
    if (disposed && Cause.isInterruptedOnly(cause)) return new Errors.DisposedError(core.name)
    return Cause.squash(cause)
  }

  const execute = <A>(
    fn: (signal: AbortSignal) => A | PromiseLike<A>,
    options?: ExecuteOptions
  ): Promise<Awaited<A>> => {
    if (disposed) return Promise.reject(new Errors.DisposedError(core.name))
    const signal = options?.signal
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason)
    return new Promise<Awaited<A>>((resolve, reject) => {
      const fiber = runFork(run(attempt(fn)))
      let onAbort: (() => void) | undefined
      if (signal !== undefined) {
        onAbort = () => fiber.unsafeInterruptAsFork(FiberId.none)
        signal.addEventListener("abort", onAbort, { once: true })
      }
      running.add(fiber)
      fiber.addObserver((exit: Exit.Exit<unknown, unknown>) => {
        running.delete(fiber)
        if (onAbort !== undefined) signal!.removeEventListener("abort", onAbort)
        if (exit._tag === "Success") resolve(exit.value as Awaited<A>)
        else reject(reasonOf(exit.cause, signal))
      })
    })
  }

  const dispose = (): Promise<void> => {
    if (disposing !== undefined) return disposing
    disposed = true
    const ended = Array.from(running, (fiber) =>
      new Promise<void>((resolve) => {
        fiber.addObserver(() => resolve())
        fiber.unsafeInterruptAsFork(FiberId.none)
      }))
    disposing = Promise.all(ended).then(() => managed?.dispose())
    return disposing
  }

  return {
    name: core.name,
    stages: core.stages,
    execute,
    inFlight: () => running.size,
    circuitState: () => breaker === undefined ? undefined : stateOf(runSync(breaker.state)),
    isolate: () => {
      if (breaker !== undefined) runSync(breaker.isolate)
    },
    reset: () => {
      if (breaker !== undefined) runSync(breaker.reset)
    },
    breaker,
    bulkhead: core.bulkhead,
    runtime,
    dispose,
    [Symbol.asyncDispose]: dispose
  }
}

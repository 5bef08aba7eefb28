/**
 * The errors a policy rejects with, as plain `Error` classes for `instanceof` and `catch`: whatever the policy
 * itself decided (a timeout, an open circuit, a full bulkhead, a wait past `maxWait`, a disposed policy) is a
 * `PolicyError`; whatever the call itself threw or rejected with is passed through unchanged (after the last retry,
 * the last attempt's error, as cockatiel and p-retry do). A call the caller aborted through its `AbortSignal`
 * rejects with the signal's `reason`, as `fetch` does.
 *
 * Each class carries the `@spindle/core` error it stands for as its `cause` (a `Data.TaggedError`, with the same
 * fields), so code that also uses Effect can tell them apart the same way.
 *
 * @since 0.1.0
 */
import * as Bulkhead from "@spindle/core/Bulkhead"
import * as CircuitBreaker from "@spindle/core/CircuitBreaker"
import * as Deadline from "@spindle/core/Deadline"
import * as WaitTimeout from "@spindle/core/WaitTimeout"
import * as Duration from "effect/Duration"

/**
 * The base class of every error a policy decides on: `err instanceof PolicyError` tells a refusal or a timeout by
 * the policy from the call's own failures.
 *
 * @example
 * ```ts
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ attemptTimeout: 20 })
 *
 * policy.execute((signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))))
 *   .catch((error) => console.log(error instanceof Errors.PolicyError, error.name)) // true "TimeoutError"
 *   .finally(() => policy.dispose())
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PolicyError extends Error {
  /**
   * The class's name, as `error.name`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  override readonly name: string = "PolicyError"
}

/**
 * The policy's attempt timeout (`limit: "attempt"`) or overall deadline (`limit: "deadline"`) passed: the call's
 * `AbortSignal` was aborted, and the policy stopped waiting for it. Fields: `limit`, `timeoutMillis`, and `cause`
 * (the core's `Deadline.TimeoutError`).
 *
 * @example
 * ```ts
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ attemptTimeout: "20 millis" })
 * const hang = (signal: AbortSignal) =>
 *   new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)))
 *
 * policy.execute(hang)
 *   .catch((error) => {
 *     if (error instanceof Errors.TimeoutError) console.log(error.limit, error.timeoutMillis) // "attempt" 20
 *   })
 *   .finally(() => policy.dispose())
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends PolicyError {
  /**
   * The class's name, as `error.name`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  override readonly name = "TimeoutError"
  /**
   * Which limit fired: one attempt's timeout or the whole call's deadline.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly limit: "attempt" | "deadline"
  /**
   * The limit's duration in milliseconds.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly timeoutMillis: number
  constructor(override readonly cause: Deadline.TimeoutError) {
    super(cause.message, { cause })
    this.limit = cause.limit
    this.timeoutMillis = Duration.toMillis(cause.duration)
  }
}

/**
 * The circuit breaker is open (or isolated) and refused the call without running it; `retryAfterMillis` says when
 * it lets the next probe through (cockatiel's `BrokenCircuitError`, `IsolatedCircuitError` when `isolated`). Fields:
 * `circuit` (the breaker's name), `retryAfterMillis` (`Infinity` while isolated), `isolated`, and `cause` (the core's
 * `CircuitBreaker.CircuitOpen`).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@spindle/core"
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ breaker: { policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 minute" } })
 *
 * const main = async () => {
 *   await policy.execute(() => Promise.reject(new Error("down"))).catch(() => {})
 *   try {
 *     await policy.execute(() => "never runs")
 *   } catch (error) {
 *     if (error instanceof Errors.BrokenCircuitError) console.log(error.isolated, error.retryAfterMillis > 0) // false true
 *   }
 *   await policy.dispose()
 * }
 * main()
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BrokenCircuitError extends PolicyError {
  /**
   * The class's name, as `error.name`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  override readonly name = "BrokenCircuitError"
  /**
   * The breaker's name.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly circuit: string
  /**
   * Milliseconds until the breaker lets a probe through (`Infinity` while isolated).
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly retryAfterMillis: number
  /**
   * `true` when the circuit is held open by `isolate` until a `reset`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly isolated: boolean
  constructor(override readonly cause: CircuitBreaker.CircuitOpen) {
    super(cause.message, { cause })
    this.circuit = cause.name
    this.retryAfterMillis = Duration.toMillis(cause.retryAfter)
    this.isolated = cause.isolated === true
  }
}

/**
 * The bulkhead is full, its queue included: the call was shed without running (cockatiel's
 * `BulkheadRejectedError`). Fields: `bulkhead` (its name), `maxConcurrent`, `maxQueued`, and `cause` (the core's
 * `Bulkhead.BulkheadRejected`).
 *
 * @example
 * ```ts
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ bulkhead: { maxConcurrent: 1, maxQueued: 0 } })
 *
 * const main = async () => {
 *   const first = policy.execute(() => new Promise((resolve) => setTimeout(resolve, 20)))
 *   const second = await policy.execute(() => "never runs").catch((error) => error)
 *   console.log(second instanceof Errors.BulkheadRejectedError, second.maxConcurrent) // true 1
 *   await first
 *   await policy.dispose()
 * }
 * main()
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BulkheadRejectedError extends PolicyError {
  /**
   * The class's name, as `error.name`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  override readonly name = "BulkheadRejectedError"
  /**
   * The bulkhead's name.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly bulkhead: string
  /**
   * The bulkhead's `maxConcurrent`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly maxConcurrent: number
  /**
   * The bulkhead's `maxQueued`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly maxQueued: number
  constructor(override readonly cause: Bulkhead.BulkheadRejected) {
    super(cause.message, { cause })
    this.bulkhead = cause.name
    this.maxConcurrent = cause.maxConcurrent
    this.maxQueued = cause.maxQueued
  }
}

/**
 * The call waited the bulkhead's `maxWait` for a place and was not served: it ran
 * nothing and holds nothing. Fields: `limit` (the kind of limit: `"Bulkhead"`, ...), `limitName`,
 * `maxWaitMillis`, and `cause` (the core's `WaitTimeout.WaitTimeoutError`).
 *
 * @example
 * ```ts
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ bulkhead: { maxConcurrent: 1, maxWait: "10 millis" } })
 *
 * const main = async () => {
 *   const first = policy.execute(() => new Promise((resolve) => setTimeout(resolve, 200)))
 *   const error = await policy.execute(() => "second").catch((e) => e)
 *   console.log(error instanceof Errors.WaitTimeoutError, error.limit) // true "Bulkhead"
 *   await first
 *   await policy.dispose()
 * }
 * main()
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class WaitTimeoutError extends PolicyError {
  /**
   * The class's name, as `error.name`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  override readonly name = "WaitTimeoutError"
  /**
   * The kind of limit waited for (`"Bulkhead"`, `"TokenBucket"`, `"Limiter"`, ...).
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly limit: string
  /**
   * The limit's name.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly limitName: string
  /**
   * The limit's `maxWait` in milliseconds.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  readonly maxWaitMillis: number
  constructor(override readonly cause: WaitTimeout.WaitTimeoutError) {
    super(cause.message, { cause })
    this.limit = cause.module
    this.limitName = cause.name
    this.maxWaitMillis = Duration.toMillis(cause.maxWait)
  }
}

/**
 * The policy was disposed: calls in flight were aborted, and calls made afterwards are refused.
 *
 * @example
 * ```ts
 * import { Errors, Policy } from "@spindle/promise"
 *
 * const policy = Policy.make({ name: "search", retry: { maxAttempts: 3 } })
 *
 * policy.dispose().then(() =>
 *   policy.execute(() => "never runs").catch((error) => console.log(error instanceof Errors.DisposedError))
 * ) // true
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class DisposedError extends PolicyError {
  /**
   * The class's name, as `error.name`.
   *
   * @ignore (the reference lists the fields in the class's description)
   */
  override readonly name = "DisposedError"
  constructor(readonly policy: string) {
    super(`Policy "${policy}" is disposed`)
  }
}

/**
 * The Promise-facing error for an error of `@spindle/core` (`TimeoutError`, `CircuitOpen`, `BulkheadRejected`,
 * `WaitTimeoutError`), keeping it as `cause`; any other value is returned unchanged. For code that runs Effect
 * programs itself and hands their failures to Promise-based callers.
 *
 * @example
 * ```ts
 * import { Deadline } from "@spindle/core"
 * import { Errors } from "@spindle/promise"
 * import * as Duration from "effect/Duration"
 *
 * const core = new Deadline.TimeoutError({ limit: "deadline", duration: Duration.seconds(2) })
 * const error = Errors.fromCore(core)
 *
 * console.log(error instanceof Errors.TimeoutError, (error as Errors.TimeoutError).cause === core) // true true
 * console.log(Errors.fromCore("anything else")) // "anything else"
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromCore = (error: unknown): unknown => {
  if (typeof error !== "object" || error === null) return error
  if (error instanceof Deadline.TimeoutError) return new TimeoutError(error)
  if (error instanceof CircuitBreaker.CircuitOpen) return new BrokenCircuitError(error)
  if (error instanceof Bulkhead.BulkheadRejected) return new BulkheadRejectedError(error)
  if (error instanceof WaitTimeout.WaitTimeoutError) return new WaitTimeoutError(error)
  return error
}

/**
 * Synchronous seams for callers that run a call outside the Effect runtime when no stage has anything to decide
 * (`@spindle/promise`'s happy path). They are reached through global symbols, so a package that depends on
 * `@spindle/core` needs no import of an internal module; nothing here is public API.
 */
import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Deadline from "../Deadline.js"
import * as DeadlineTimer from "./deadlineTimer.js"

/**
 * On a circuit breaker: whether a call would be admitted the way a closed breaker admits it (no clock read, no
 * timing), and that call's outcome counted exactly as `run` counts it (`undefined` for a success; a call that ends
 * after the circuit left the closed state counts for nothing).
 */
export const BreakerId: unique symbol = Symbol.for("@spindle/core/CircuitBreaker/fastPath")

export interface Breaker {
  readonly admitsClosed: () => boolean
  readonly settleClosed: (cause: Cause.Cause<unknown> | undefined) => void
}

/** On a policy: its stage functions, one per entry of `stages`, innermost first. */
export const PolicyStagesId: unique symbol = Symbol.for("@spindle/core/Policy/stageFunctions")

/**
 * On a policy with an attempt timeout: the same timeout for an attempt run outside a fiber, on the live clock's
 * shared deadline timer (the one `Deadline.attempt` uses there). `arm` registers `onFire` for the attempt's limit
 * from now; `disarm` takes it out; `error` is what the stage fails with when it fires, its hook (the policy's metric
 * and `TimedOut` event) called as the stage calls it.
 */
export const PolicyAttemptTimeoutId: unique symbol = Symbol.for("@spindle/core/Policy/attemptTimeout")

export interface AttemptTimeout {
  readonly arm: (onFire: () => void) => DeadlineTimer.Entry
  readonly disarm: (entry: DeadlineTimer.Entry) => void
  readonly error: () => Deadline.TimeoutError
}

export const attemptTimeout = (
  millis: number,
  limit: Duration.Duration,
  onTimeout: Deadline.OnTimeout
): AttemptTimeout => {
  const timer = DeadlineTimer.liveTimer()
  return {
    arm: (onFire) => {
      const entry = DeadlineTimer.callbackEntry(timer.now() + millis, onFire)
      timer.add(entry, undefined)
      return entry
    },
    disarm: (entry) => timer.remove(entry),
    error: () => {
      onTimeout("attempt", limit)
      return new Deadline.TimeoutError({ limit: "attempt", duration: limit })
    }
  }
}

/**
 * Synchronous seams for callers that run a call outside the Effect runtime when no stage has anything to decide
 * (`@spindle/promise`'s happy path). They are reached through global symbols, so a package that depends on
 * `@spindle/core` needs no import of an internal module; nothing here is public API.
 */
import type * as Cause from "effect/Cause"

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

/**
 * Spans and span events of the core modules, at no cost when the application installs no tracer.
 *
 * Effect always has a tracer: without one installed it is the native tracer, whose spans go nowhere but still cost a
 * span object, clock reads and fiber-ref lookups each (and `Effect.fn` a stack trace per call), far more than the
 * 100–300 ns a bulkhead or breaker decision costs. So every operation first asks `traced()`, which reads the running
 * fiber's tracer (a field of the fiber) and compares it with the native one: only when an application has installed
 * its own tracer (`Layer.setTracer`, `Effect.withTracer`, `@effect/opentelemetry`) and left tracing enabled does an
 * operation make a span or an event. `traced()` must be called from code that runs inside a fiber (the callback of
 * `Effect.suspend`, `Effect.sync`, `uninterruptibleMask`, a `matchCauseEffect` handler): it reads the fiber Effect
 * is running now.
 *
 * Decisions that take no time are events on the caller's current span (when it has one); waits are spans of their
 * own, children of the caller's span, from the moment the caller started waiting to the moment it stopped. A wait is
 * recorded when it ends (its start time given to the tracer then), since only then is it known to have been one.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/** The tracer of every fiber whose application installed none. */
const nativeTracer: Tracer.Tracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** A fiber with a tracer of the application's: what the functions below report through. */
export type Traced = Fiber.RuntimeFiber<unknown, unknown>

/**
 * The running fiber when it has a tracer installed by the application and tracing enabled, else `undefined` (the
 * usual case, answered with one global read and one comparison).
 *
 * @internal
 */
export const traced = (): Traced | undefined => {
  const current = Fiber.getCurrentFiber()
  return current._tag === "None" ? undefined : tracedFiber(current.value)
}

/**
 * `fiber` when it has a tracer installed by the application and tracing enabled, else `undefined`.
 *
 * @internal
 */
export const tracedFiber = (fiber: Fiber.RuntimeFiber<any, any>): Traced | undefined => {
  if (fiber.currentTracer === nativeTracer) return undefined
  return fiber.getFiberRef(FiberRef.currentTracerEnabled) ? fiber : undefined
}

/**
 * Now, in the nanoseconds of the fiber's clock (Effect times its own spans on it; under `TestClock`, the test's
 * time).
 *
 * @internal
 */
export const nowNanos = (fiber: Traced): bigint =>
  Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeNanos()

/**
 * Milliseconds between two readings of `nowNanos`.
 *
 * @internal
 */
export const millisBetween = (start: bigint, end: bigint): number => Number(end - start) / 1_000_000

const parentOf = (fiber: Traced): Option.Option<Tracer.AnySpan> => {
  const span = fiber.currentSpan
  if (span === undefined) return Option.none()
  // A span that asked not to propagate (`Tracer.DisablePropagation`) gets no children.
  if (span._tag === "Span" && Context.get(span.context, Tracer.DisablePropagation)) return Option.none()
  return Option.some(span)
}

/**
 * An event on the caller's current span, if it has one of its own (an external parent cannot take events).
 *
 * @internal
 */
export const event = (fiber: Traced, name: string, attributes: Record<string, unknown>): void => {
  const span = fiber.currentSpan
  if (span !== undefined && span._tag === "Span") span.event(name, nowNanos(fiber), attributes)
}

/**
 * A span that has already happened (a wait, measured from `startNanos` to now), as a child of the caller's span.
 *
 * @internal
 */
export const pastSpan = (
  fiber: Traced,
  name: string,
  startNanos: bigint,
  attributes: Record<string, unknown>,
  exit: Exit.Exit<unknown, unknown>
): void => {
  const span = fiber.currentTracer.span(name, parentOf(fiber), Context.empty(), [], startNanos, "internal", {
    attributes
  })
  for (const key in attributes) span.attribute(key, attributes[key])
  span.end(nowNanos(fiber), exit)
}

/**
 * The `spindle.*.reason` of an error: its `_tag`, else its class name, else its type.
 *
 * @internal
 */
export const reasonOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
    return error.constructor?.name ?? "object"
  }
  return typeof error
}

/**
 * How a limit reports itself: the names of its event for a caller served at once, of its span for a caller that
 * waited, of its event for a caller refused, and the attributes every one carries (its name, a keyed limit's key),
 * their keys under one prefix (`spindle.bulkhead`, `spindle.limiter`, `spindle.bucket`).
 *
 * @internal
 */
export interface Names {
  readonly admitted: string
  readonly wait: string
  readonly rejected: string
  readonly attributes: Readonly<Record<string, unknown>>
  readonly keys: {
    readonly waitMs: string
    readonly queued: string
    readonly inFlight: string
    readonly tokens: string
    readonly reason: string
  }
}

/** @internal */
export const names = (
  module: string,
  prefix: string,
  name: string,
  key?: string | undefined,
  events?: { readonly admitted?: string; readonly wait?: string; readonly rejected?: string }
): Names => ({
  admitted: events?.admitted ?? `${module}.admitted`,
  wait: events?.wait ?? `${module}.wait`,
  rejected: events?.rejected ?? `${module}.rejected`,
  attributes: key === undefined ? { [`${prefix}.name`]: name } : { [`${prefix}.name`]: name, [`${prefix}.key`]: key },
  keys: {
    waitMs: `${prefix}.wait_ms`,
    queued: `${prefix}.queued`,
    inFlight: `${prefix}.in_flight`,
    tokens: `${prefix}.tokens`,
    reason: `${prefix}.reason`
  }
})

/**
 * `wait`, reported when it ends (done, failed or interrupted) as a span `name` from now to then, with `attributes`
 * and the time it took under `waitMsKey`.
 *
 * @internal
 */
export const measuredWait = <A, E, R>(
  fiber: Traced,
  name: string,
  attributes: Record<string, unknown>,
  waitMsKey: string,
  wait: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const start = nowNanos(fiber)
  return Effect.onExit(
    wait,
    (exit) =>
      Effect.sync(() =>
        pastSpan(fiber, name, start, { ...attributes, [waitMsKey]: millisBetween(start, nowNanos(fiber)) }, exit)
      )
  )
}

import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/** A span as the recording tracer kept it. */
export interface RecordedSpan extends Tracer.Span {
  readonly attributes: Map<string, unknown>
  readonly events: Array<
    { readonly name: string; readonly millis: number; readonly attributes: Record<string, unknown> }
  >
  /** The span's start and end on the test's clock, in milliseconds. */
  readonly startMillis: number
  endMillis: number | undefined
  exit: Exit.Exit<unknown, unknown> | undefined
}

let ids = 0

/**
 * A tracer that keeps every span it makes, with its attributes and events, for a test to look at: a tracer of the
 * application's, as `@effect/opentelemetry` would install one.
 */
export const make = () => {
  const spans: Array<RecordedSpan> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const id = String(++ids).padStart(16, "0")
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      const span: RecordedSpan = {
        _tag: "Span",
        name,
        spanId: id,
        traceId: parent._tag === "Some" ? parent.value.traceId : id.padStart(32, "0"),
        parent,
        context,
        get status() {
          return status
        },
        attributes: new Map(),
        links,
        sampled: true,
        kind,
        events: [],
        startMillis: Number(startTime) / 1e6,
        endMillis: undefined,
        exit: undefined,
        end(endTime, exit) {
          status = { _tag: "Ended", startTime, endTime, exit }
          span.endMillis = Number(endTime) / 1e6
          span.exit = exit
        },
        attribute(key, value) {
          span.attributes.set(key, value)
        },
        event(name, startTime, attributes) {
          span.events.push({ name, millis: Number(startTime) / 1e6, attributes: attributes ?? {} })
        },
        addLinks() {}
      }
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  const named = (name: string): Array<RecordedSpan> => spans.filter((span) => span.name === name)
  const one = (name: string): RecordedSpan => {
    const found = named(name)
    if (found.length !== 1) throw new Error(`expected one span ${name}, found ${found.length} (${names()})`)
    return found[0]
  }
  const names = () => spans.map((span) => span.name).join(", ")
  const parentName = (span: RecordedSpan): string | undefined =>
    Option.match(span.parent, { onNone: () => undefined, onSome: (p) => (p._tag === "Span" ? p.name : "external") })
  const attributesOf = (span: RecordedSpan): Record<string, unknown> => Object.fromEntries(span.attributes)
  /** `effect` under this tracer, inside a root span `test`. */
  const traced = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withTracer(Effect.withSpan(effect, "test"), tracer)
  return { spans, tracer, named, one, parentName, attributesOf, traced }
}

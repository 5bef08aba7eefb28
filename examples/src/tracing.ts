// Issue 20: what Spindle's services report to a tracer. A tracer that records its spans stands in for an
// OpenTelemetry exporter, and the run prints the span tree of two calls through a policy and a limiter: the waits are
// spans (with how long they took), the decisions events on the span they happened under.
import { CircuitBreaker, Limiter, Policy } from "@spindle/core"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { pathToFileURL } from "node:url"

/**
 * The upstream answered with an error status.
 */
export class UpstreamError extends Data.TaggedError("UpstreamError")<{ readonly status: number }> {}

/**
 * A span as the recording tracer kept it.
 */
export interface Recorded {
  readonly name: string
  readonly parent: Recorded | undefined
  readonly startNanos: bigint
  endNanos: bigint | undefined
  readonly attributes: Map<string, unknown>
  readonly events: Array<{ readonly name: string; readonly attributes: Record<string, unknown> }>
}

/**
 * A tracer that keeps every span (an exporter would send them instead), and the spans it kept.
 */
export const recordingTracer = (): { readonly tracer: Tracer.Tracer; readonly spans: Array<Recorded> } => {
  const spans: Array<Recorded> = []
  const byId = new Map<string, Recorded>()
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const id = String(spans.length + 1).padStart(16, "0")
      const recorded: Recorded = {
        name,
        parent: Option.match(parent, { onNone: () => undefined, onSome: (p) => byId.get(p.spanId) }),
        startNanos: startTime,
        endNanos: undefined,
        attributes: new Map(),
        events: []
      }
      spans.push(recorded)
      byId.set(id, recorded)
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      return {
        _tag: "Span",
        name,
        spanId: id,
        traceId: parent._tag === "Some" ? parent.value.traceId : id.padStart(32, "0"),
        parent,
        context,
        get status() {
          return status
        },
        attributes: recorded.attributes,
        links,
        sampled: true,
        kind,
        end: (endTime, exit) => {
          status = { _tag: "Ended", startTime, endTime, exit }
          recorded.endNanos = endTime
        },
        attribute: (key, value) => {
          recorded.attributes.set(key, value)
        },
        event: (eventName, _time, attributes) => {
          recorded.events.push({ name: eventName, attributes: attributes ?? {} })
        },
        addLinks: () => {}
      }
    },
    context: (f) => f()
  })
  return { tracer, spans }
}

const show = (value: unknown): string => (typeof value === "number" ? String(Math.round(value)) : String(value))

/**
 * The spans as an indented tree, each with its duration and its `spindle.*` attributes, its events under it.
 */
export const renderTree = (spans: ReadonlyArray<Recorded>): Array<string> => {
  const lines: Array<string> = []
  const visit = (span: Recorded, depth: number) => {
    const pad = "  ".repeat(depth)
    const millis = span.endNanos === undefined ? "open" : `${Number(span.endNanos - span.startNanos) / 1e6} ms`
    const attributes = Array.from(span.attributes)
      .filter(([key]) => key.startsWith("spindle."))
      .map(([key, value]) => `${key.slice("spindle.".length)}=${show(value)}`)
    lines.push(`${pad}${span.name} (${millis})${attributes.length === 0 ? "" : ` ${attributes.join(" ")}`}`)
    for (const event of span.events) {
      const shown = Object.entries(event.attributes)
        .filter(([key]) => !key.endsWith(".name"))
        .map(([key, value]) => `${key.slice(key.lastIndexOf(".") + 1)}=${show(value)}`)
      lines.push(`${pad}  · ${event.name}${shown.length === 0 ? "" : ` ${shown.join(" ")}`}`)
    }
    // Children in the order they started.
    for (const child of spans.filter((s) => s.parent === span)) visit(child, depth + 1)
  }
  for (const root of spans.filter((s) => s.parent === undefined)) visit(root, 0)
  return lines
}

/**
 * Two calls through a limiter (one at a time) and a policy (retry + breaker): the first fails once with a 503 and
 * is retried after 100 ms; the second waits for the limiter's permit meanwhile.
 */
export const program = Effect.gen(function*() {
  let calls = 0
  const upstream = (id: number) =>
    Effect.suspend(() =>
      ++calls === 1 ? Effect.fail(new UpstreamError({ status: 503 })) : Effect.as(Effect.sleep("20 millis"), id)
    )
  const limiter = yield* Limiter.make({ concurrency: 1, name: "upstream" })
  const policy = yield* Policy.make({
    name: "upstream",
    breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
    retry: { base: "100 millis", jitter: "none", maxAttempts: 3 }
  })
  const call = (id: number) => limiter.run(policy.run(upstream(id))).pipe(Effect.withSpan(`request ${id}`))
  return yield* Effect.all([call(1), call(2)], { concurrency: 2 })
})

/**
 * Runs `program` under a recording tracer, as an application runs under an OpenTelemetry one, and returns the tree.
 */
export const traced = Effect.gen(function*() {
  const { spans, tracer } = recordingTracer()
  const results = yield* Effect.withTracer(program, tracer)
  return { results, tree: renderTree(spans) }
})

const main = Effect.gen(function*() {
  const { results, tree } = yield* traced
  yield* Console.log(`answers: ${results.join(", ")}`)
  for (const line of tree) yield* Console.log(line)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

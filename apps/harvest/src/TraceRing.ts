/**
 * The dashboard's memory of recent traces: the span trees of the last `HARVEST_TRACE_RING` items (1,000 by default),
 * kept in this process so that an item's waterfall can be drawn with no tracing backend at all. It is an
 * OpenTelemetry span processor beside the OTLP exporter's, so it holds the very spans the export gets (an item's
 * trace: `harvest.item`, `harvest.queued`, `harvest.host_gate`, each attempt's `GET` with `harvest.body.write`,
 * `harvest.settle`, and any span Spindle's own operations open inside them); with no OTLP endpoint, it is the only
 * processor of a tracer that samples items only.
 *
 * A trace is kept from its `harvest.item` span's start: its spans are gathered as they end, and the trace enters the
 * ring when the item's span ends (an item still in flight is not shown). The ring is keyed by job and URL (a URL is
 * one item of its job): an item fetched again replaces its older trace. Memory is bounded by the capacity, by
 * `maxSpansPerTrace` spans a trace (more are counted, not kept) and by attribute values cut to 512 characters: about
 * 1.5 KiB per span, so some 10 MiB at the default capacity for items of a few attempts each.
 *
 * @since 0.1.0
 */
import type { Context as OtelContext } from "@opentelemetry/api"
import type { ReadableSpan, Sampler, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ParentBasedSampler, SamplingDecision } from "@opentelemetry/sdk-trace-base"
import * as Context from "effect/Context"

/**
 * The most spans one trace keeps; past it, spans are counted in `droppedSpans` only.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxSpansPerTrace = 256

const maxValueLength = 512
const itemSpan = "harvest.item"

/**
 * One span of a recent trace, timed in milliseconds of the Unix epoch.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedSpan {
  readonly spanId: string
  readonly parentSpanId: string | null
  readonly name: string
  readonly kind: "internal" | "server" | "client" | "producer" | "consumer"
  readonly startMs: number
  readonly endMs: number
  readonly status: "unset" | "ok" | "error"
  readonly statusMessage: string | null
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  readonly events: ReadonlyArray<{ readonly name: string; readonly atMs: number }>
}

/**
 * One item's trace as the ring keeps it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedTrace {
  readonly traceId: string
  readonly jobId: string
  readonly url: string
  readonly itemId: number | null
  /** Spans in the order they ended (children before their parents); the item's span last. */
  readonly spans: ReadonlyArray<RecordedSpan>
  readonly droppedSpans: number
}

/**
 * The ring of recent traces.
 *
 * @since 0.1.0
 * @category models
 */
export interface TraceRing {
  /** The most traces kept; `0`: the ring is off and keeps nothing. */
  readonly capacity: number
  /** Traces kept now. */
  readonly size: () => number
  /** The latest trace of the job's item for `url`, if still kept. */
  readonly get: (jobId: string, url: string) => RecordedTrace | undefined
  /** The processor that fills the ring (`undefined` when the ring is off). */
  readonly processor: SpanProcessor | undefined
}

const kinds = ["internal", "server", "client", "producer", "consumer"] as const
const statuses = ["unset", "ok", "error"] as const

const millis = (time: readonly [number, number]) => time[0] * 1e3 + time[1] / 1e6

const valueOf = (value: unknown): string | number | boolean | undefined => {
  if (typeof value === "number" || typeof value === "boolean") return value
  if (typeof value === "string") return value.length > maxValueLength ? `${value.slice(0, maxValueLength)}…` : value
  if (Array.isArray(value)) return valueOf(value.join(","))
  return undefined
}

const record = (span: ReadableSpan): RecordedSpan => {
  const attributes: Record<string, string | number | boolean> = {}
  for (const key in span.attributes) {
    const value = valueOf(span.attributes[key])
    if (value !== undefined) attributes[key] = value
  }
  return {
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    name: span.name,
    kind: kinds[span.kind] ?? "internal",
    startMs: millis(span.startTime),
    endMs: millis(span.endTime),
    status: statuses[span.status.code] ?? "unset",
    statusMessage: span.status.message === undefined || span.status.message === ""
      ? null
      : valueOf(span.status.message) as string,
    attributes,
    events: span.events.map((event) => ({ name: event.name, atMs: millis(event.time) }))
  }
}

interface Pending {
  readonly spans: Array<RecordedSpan>
  dropped: number
}

/**
 * A ring of `capacity` traces (`0`: off, no processor).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (capacity: number): TraceRing => {
  if (capacity <= 0) return { capacity: 0, size: () => 0, get: () => undefined, processor: undefined }
  // Items in flight, by trace id; an item whose span never ends (a process cut short) is dropped, oldest first, once
  // there are more than the ring holds.
  const pending = new Map<string, Pending>()
  // Oldest first (a Map keeps insertion order): the first key is the next to go.
  const kept = new Map<string, RecordedTrace>()
  const key = (jobId: string, url: string) => `${jobId} ${url}`
  const processor: SpanProcessor = {
    onStart: (span: Span, _context: OtelContext) => {
      if (span.name !== itemSpan || span.parentSpanContext !== undefined) return
      pending.set(span.spanContext().traceId, { spans: [], dropped: 0 })
      if (pending.size > capacity) pending.delete(pending.keys().next().value!)
    },
    onEnd: (span: ReadableSpan) => {
      const traceId = span.spanContext().traceId
      const trace = pending.get(traceId)
      if (trace === undefined) return
      const root = span.name === itemSpan && span.parentSpanContext === undefined
      if (trace.spans.length < maxSpansPerTrace || root) trace.spans.push(record(span))
      else trace.dropped++
      if (!root) return
      pending.delete(traceId)
      const jobId = span.attributes["harvest.job.id"]
      const url = span.attributes["url.full"]
      if (typeof jobId !== "string" || typeof url !== "string") return
      const itemId = span.attributes["harvest.item.id"]
      const k = key(jobId, url)
      kept.delete(k)
      kept.set(k, {
        traceId,
        jobId,
        url,
        itemId: typeof itemId === "number" ? itemId : null,
        spans: trace.spans,
        droppedSpans: trace.dropped
      })
      if (kept.size > capacity) kept.delete(kept.keys().next().value!)
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve()
  }
  return { capacity, size: () => kept.size, get: (jobId, url) => kept.get(key(jobId, url)), processor }
}

/**
 * The ring of this process (a ring that is off unless the telemetry layer provides one).
 *
 * @since 0.1.0
 * @category tags
 */
export class TraceRingRef extends Context.Reference<TraceRingRef>()("@spindle/harvest/TraceRing", {
  defaultValue: (): TraceRing => make(0)
}) {}

/**
 * The sampler of a tracer that only fills the ring (no OTLP endpoint): an item's trace is recorded, whole; any other
 * trace (an HTTP request's, a database query's outside an item) is not recorded at all, so it costs next to nothing.
 *
 * @since 0.1.0
 * @category tracing
 */
export const itemsOnlySampler: Sampler = new ParentBasedSampler({
  root: {
    shouldSample: (_context, _traceId, name) => ({
      decision: name === itemSpan ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD
    }),
    toString: () => "HarvestItemsOnly"
  }
})

/**
 * The dashboard's memory of recent traces: the span trees of the last `HARVEST_TRACE_RING` items (none unless set;
 * `pnpm demo` keeps 1,000), kept in this process so that an item's waterfall can be drawn with no tracing backend at
 * all. It is an OpenTelemetry span processor beside the OTLP exporter's, so it holds the very spans the export gets (an item's
 * trace: `harvest.item`, `harvest.queued`, `harvest.host_gate`, each attempt's `GET` with `harvest.body.write`,
 * `harvest.settle`, and any span Spindle's own operations open inside them). With no OTLP endpoint, no OpenTelemetry
 * SDK runs at all: the process's tracer is the ring's own (`tracer`), whose spans cost about what Effect's native ones
 * do and which records the spans of items' traces only.
 *
 * A trace is kept from its `harvest.item` span's start: its spans are gathered as they end, and the trace enters the
 * ring when the item's span ends (an item still in flight is not shown). The ring is keyed by job and URL (a URL is
 * one item of its job): an item fetched again replaces its older trace. Memory is bounded by the capacity, by
 * `maxSpansPerTrace` spans a trace (more are counted, not kept) and by attribute values cut to 512 characters:
 * measured, 1,000 traces of a URL retried once (12 spans each, Harvest's attributes, a 90-character URL) hold about
 * 7 MiB of heap (some 630 bytes a span), and 6,000 more leave it there.
 *
 * @since 0.1.0
 */
import type { Context as OtelContext } from "@opentelemetry/api"
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

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
  /** The OpenTelemetry processor that fills the ring (`undefined` when the ring is off). */
  readonly processor: SpanProcessor | undefined
  /** Starts gathering the spans of the item trace `traceId` (its `harvest.item` span has just started). */
  readonly begin: (traceId: string) => Pending | undefined
  /** A span of a trace begun, ended: kept; the item's own span (`root`) ends the trace and puts it in the ring. */
  readonly add: (pending: Pending, span: RecordedSpan, root: boolean) => void
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

/**
 * The spans of an item's trace gathered so far.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pending {
  readonly traceId: string
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
  if (capacity <= 0) {
    return {
      capacity: 0,
      size: () => 0,
      get: () => undefined,
      processor: undefined,
      begin: () => undefined,
      add: () => {}
    }
  }
  // Items in flight, by trace id; an item whose span never ends (a process cut short) is dropped, oldest first, once
  // there are more than the ring holds.
  const pending = new Map<string, Pending>()
  // Oldest first (a Map keeps insertion order): the first key is the next to go.
  const kept = new Map<string, RecordedTrace>()
  const key = (jobId: string, url: string) => `${jobId} ${url}`
  const begin = (traceId: string): Pending => {
    const trace: Pending = { traceId, spans: [], dropped: 0 }
    pending.set(traceId, trace)
    if (pending.size > capacity) pending.delete(pending.keys().next().value!)
    return trace
  }
  const add = (trace: Pending, span: RecordedSpan, root: boolean) => {
    if (trace.spans.length < maxSpansPerTrace - 1 || root) trace.spans.push(span)
    else trace.dropped++
    if (!root) return
    pending.delete(trace.traceId)
    const jobId = span.attributes["harvest.job.id"]
    const url = span.attributes["url.full"]
    if (typeof jobId !== "string" || typeof url !== "string") return
    const itemId = span.attributes["harvest.item.id"]
    const k = key(jobId, url)
    kept.delete(k)
    kept.set(k, {
      traceId: trace.traceId,
      jobId,
      url,
      itemId: typeof itemId === "number" ? itemId : null,
      spans: trace.spans,
      droppedSpans: trace.dropped
    })
    if (kept.size > capacity) kept.delete(kept.keys().next().value!)
  }
  const processor: SpanProcessor = {
    onStart: (span: Span, _context: OtelContext) => {
      if (span.name === itemSpan && span.parentSpanContext === undefined) begin(span.spanContext().traceId)
    },
    onEnd: (span: ReadableSpan) => {
      const trace = pending.get(span.spanContext().traceId)
      if (trace === undefined) return
      add(trace, record(span), span.name === itemSpan && span.parentSpanContext === undefined)
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve()
  }
  return { capacity, size: () => kept.size, get: (jobId, url) => kept.get(key(jobId, url)), processor, begin, add }
}

const hex = "0123456789abcdef"
const randomHex = (length: number) => {
  let id = ""
  for (let i = 0; i < length; i++) id += hex[(Math.random() * 16) | 0]
  return id
}

const statusOf = (exit: Exit.Exit<unknown, unknown>): Pick<RecordedSpan, "status" | "statusMessage"> => {
  if (exit._tag === "Success") return { status: "ok", statusMessage: null }
  if (Cause.isInterruptedOnly(exit.cause)) return { status: "error", statusMessage: "interrupted" }
  const squashed = Cause.squash(exit.cause)
  const message = squashed instanceof Error ? squashed.message : String(squashed)
  return { status: "error", statusMessage: valueOf(message) as string }
}

// A span of the ring's own tracer: what Effect's native span keeps, ids made on first use (most spans outside an
// item's trace are never asked for theirs), and, inside an item's trace, recorded into the ring as it ends.
class RingSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly sampled = true
  status: Tracer.SpanStatus
  readonly attributes = new Map<string, unknown>()
  links: Array<Tracer.SpanLink>
  private spanId_: string | undefined
  private traceId_: string | undefined
  private events_: Array<{ readonly name: string; readonly atMs: number }> | undefined

  constructor(
    private readonly ring: TraceRing,
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind,
    readonly trace: Pending | undefined
  ) {
    this.status = { _tag: "Started", startTime }
    this.links = links.length === 0 ? [] : Array.from(links)
    if (trace !== undefined) this.traceId_ = trace.traceId
  }

  get spanId(): string {
    return this.spanId_ ??= randomHex(16)
  }

  get traceId(): string {
    return this.traceId_ ??= this.parent._tag === "Some" ? this.parent.value.traceId : randomHex(32)
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    const startTime = this.status.startTime
    this.status = { _tag: "Ended", startTime, endTime, exit }
    if (this.trace === undefined) return
    const attributes: Record<string, string | number | boolean> = {}
    for (const [key, value] of this.attributes) {
      const kept = valueOf(value)
      if (kept !== undefined) attributes[key] = kept
    }
    const root = this.parent._tag === "None"
    this.ring.add(this.trace, {
      spanId: this.spanId,
      parentSpanId: root ? null : this.parent.value.spanId,
      name: this.name,
      kind: this.kind,
      startMs: Number(startTime) / 1e6,
      endMs: Number(endTime) / 1e6,
      ...statusOf(exit),
      attributes,
      events: this.events_ ?? []
    }, root)
  }

  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }

  event(name: string, startTime: bigint): void {
    if (this.trace === undefined) return
    ;(this.events_ ??= []).push({ name, atMs: Number(startTime) / 1e6 })
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    for (const link of links) this.links.push(link)
  }
}

/**
 * The process's tracer when traces are kept in the ring but not exported (no OTLP endpoint): Effect's spans as cheap
 * as its native ones, those of an item's trace (from its `harvest.item` root down) recorded into `ring` as they end,
 * every other span (an HTTP request's, a query outside an item) kept nowhere.
 *
 * @since 0.1.0
 * @category tracing
 */
export const tracer = (ring: TraceRing): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      let trace: Pending | undefined
      if (Option.isNone(parent)) {
        if (name === itemSpan) trace = ring.begin(randomHex(32))
      } else if (parent.value instanceof RingSpan) {
        trace = parent.value.trace
      }
      return new RingSpan(ring, name, parent, context, links, startTime, kind, trace)
    },
    context: (f) => f()
  })

/**
 * The ring of this process (a ring that is off unless the telemetry layer provides one).
 *
 * @since 0.1.0
 * @category tags
 */
export class TraceRingRef extends Context.Reference<TraceRingRef>()("@spindle/harvest/TraceRing", {
  defaultValue: (): TraceRing => make(0)
}) {}

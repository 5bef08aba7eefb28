/**
 * What Harvest tells about itself: its own metrics (defined here, recorded where their events happen: `Fetcher`,
 * `HostGate`, `Results`), and `/metrics` in the Prometheus text format produced by OpenTelemetry's Prometheus
 * exporter. Every Effect metric of the process (Spindle's limiters, breakers, queues and pools, and Harvest's own)
 * reaches the exporter through `@effect/opentelemetry`'s metric producer, which reads Effect's metric registry at each
 * scrape: nothing is copied on the hot path, and a metric costs what an Effect metric update costs.
 *
 * The hot path updates its metrics through hooks found once (`Recorder`), not by looking a metric's state up by its
 * labels on every update.
 *
 * Traces go over OTLP/HTTP when the OpenTelemetry environment names an endpoint (`tracingConfig`), and into the
 * dashboard's ring of recent traces (`TraceRing`, `HARVEST_TRACE_RING`) either way: each item is a trace of its own
 * (`harvest.item`, from its lease, linked to its job), with `harvest.queued` for its wait for a worker, a
 * `harvest.host_gate` span for each wait at its host's gate, a `GET` client span for each attempt (its body's
 * writing, `harvest.body.write`, inside), and `harvest.settle` for its result's commit; log lines carry the running
 * span's `trace_id` and `span_id`. With no endpoint and the ring off there is no tracer at all, and the pipeline does
 * no tracing work per item (`TracingRef` is `undefined`).
 *
 * @since 0.1.0
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricHook from "effect/MetricHook"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { InvalidEnvironment } from "./HarvestConfig.js"
import * as TraceRing from "./TraceRing.js"

// 1 ms to about 33 s, doubling: a loopback fetch and a slow host's 30 s timeout both land in a bucket of their own.
const secondsBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 })

const itemsKey = MetricKey.counter("harvest_items_total", {
  description: "Items settled (their results recorded in the database), by outcome, and for a failure its error code",
  incremental: true
})
const attemptsKey = MetricKey.counter("harvest_attempts_total", {
  description: "Fetch attempts that reached a host or its address check, by error code (ok: the body was stored)",
  incremental: true
})
const fetchDurationKey = MetricKey.histogram(
  "harvest_fetch_duration_seconds",
  secondsBoundaries,
  "Time of one fetch attempt, from the address check to the body's last byte stored (or the error)"
)
const hostGateWaitKey = MetricKey.histogram(
  "harvest_host_gate_wait_seconds",
  secondsBoundaries,
  "Time an attempt waited at its host's gate for the host's concurrency slot and rate token"
)
const bodyWritesKey = MetricKey.counter("harvest_body_writes_total", {
  description: "Bodies held in memory written into files/, by the thread that wrote them: the event loop's (loop) or " +
    "the storage thread (thread), which takes them while writes are slow",
  incremental: true
})
const settleDurationKey = MetricKey.histogram(
  "harvest_settle_duration_seconds",
  secondsBoundaries,
  "Time from an item's outcome handed to Results to its result committed in the database"
)

/**
 * Harvest's own metrics, by name in `/metrics`:
 *
 * - `harvest_items_total{outcome="succeeded"}` and `harvest_items_total{outcome="failed",code="<error code>"}`:
 *   items whose result is recorded in the database;
 * - `harvest_attempts_total{code="ok"|"<error code>"}`: attempts made;
 * - `harvest_fetch_duration_seconds`: histogram of one attempt's time;
 * - `harvest_host_gate_wait_seconds`: histogram of an attempt's wait for its host's slot and token;
 * - `harvest_settle_duration_seconds`: histogram of the time from an item's outcome to its row committed;
 * - `harvest_body_writes_total{writer="loop"|"thread"}`: bodies written into `files/` on the event loop's thread, or
 *   by the storage thread (on slow storage).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  items: Metric.fromMetricKey(itemsKey),
  attempts: Metric.fromMetricKey(attemptsKey),
  fetchDuration: Metric.fromMetricKey(fetchDurationKey),
  hostGateWait: Metric.fromMetricKey(hostGateWaitKey),
  settleDuration: Metric.fromMetricKey(settleDurationKey),
  bodyWrites: Metric.fromMetricKey(bodyWritesKey)
} as const

const hook = <In, Out>(
  key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<In, Out>>,
  labels: ReadonlyArray<MetricLabel.MetricLabel> = []
): MetricHook.MetricHook<In, Out> =>
  Metric.globalMetricRegistry.get(labels.length === 0 ? key : MetricKey.taggedWithLabels(key, labels))

// One hook per label value, found on first use and kept: label values are few (the outcomes and the error codes).
const hooksBy = <In, Out>(
  key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<In, Out>>,
  labels: (value: string) => ReadonlyArray<MetricLabel.MetricLabel>
) => {
  const hooks = new Map<string, MetricHook.MetricHook<In, Out>>()
  return (value: string): MetricHook.MetricHook<In, Out> => {
    let found = hooks.get(value)
    if (found === undefined) {
      found = hook(key, labels(value))
      hooks.set(value, found)
    }
    return found
  }
}

const seconds = (startNanos: bigint, endNanos: bigint) => Number(endNanos - startNanos) / 1e9

/**
 * The hot path's side of `metrics`: plain functions that update a metric's state directly (no effect, no fiber),
 * for the places where the events happen. Times are a `Clock`'s nanoseconds.
 *
 * @since 0.1.0
 * @category recording
 */
export interface Recorder {
  /** An attempt ended with `code` (`"ok"`: its body was stored), having started at `startNanos`. */
  readonly attempt: (code: string, startNanos: bigint, endNanos: bigint) => void
  /** An attempt passed its host's gate, having arrived at `startNanos`. */
  readonly gateWait: (startNanos: bigint, endNanos: bigint) => void
  /** An item's result was committed: failed with `code`, or succeeded (`undefined`). */
  readonly settled: (code: string | undefined, handedNanos: bigint, endNanos: bigint) => void
  /** `count` bodies were written into `files/` by `writer`. */
  readonly bodiesWritten: (writer: "loop" | "thread", count: number) => void
}

const makeRecorder = (): Recorder => {
  const fetchDuration = hook(fetchDurationKey)
  const gateWait = hook(hostGateWaitKey)
  const settleDuration = hook(settleDurationKey)
  const attempts = hooksBy(attemptsKey, (code) => [MetricLabel.make("code", code)])
  const succeeded = hook(itemsKey, [MetricLabel.make("outcome", "succeeded")])
  const failed = hooksBy(itemsKey, (code) => [MetricLabel.make("outcome", "failed"), MetricLabel.make("code", code)])
  const bodyWrites = {
    loop: hook(bodyWritesKey, [MetricLabel.make("writer", "loop")]),
    thread: hook(bodyWritesKey, [MetricLabel.make("writer", "thread")])
  }
  // Found now, so that `/metrics` shows each family (at zero) before its first event.
  attempts("ok")
  return {
    attempt: (code, start, end) => {
      attempts(code).update(1)
      fetchDuration.update(seconds(start, end))
    },
    gateWait: (start, end) => gateWait.update(seconds(start, end)),
    settled: (code, handed, end) => {
      ;(code === undefined ? succeeded : failed(code)).update(1)
      settleDuration.update(seconds(handed, end))
    },
    bodiesWritten: (writer, count) => bodyWrites[writer].update(count)
  }
}

let recorder_: Recorder | undefined

/**
 * The process's recorder (the metrics are global, as Effect's registry is); its hooks are found on first use.
 *
 * @since 0.1.0
 * @category recording
 */
export const recorder = (): Recorder => (recorder_ ??= makeRecorder())

/**
 * `OTEL_SERVICE_NAME` (the OpenTelemetry environment's name; default `harvest`): the `service.name` of the resource
 * every metric (`target_info`) and span is reported under.
 *
 * @since 0.1.0
 * @category config
 */
export const serviceName: Config.Config<string> = Config.string("OTEL_SERVICE_NAME").pipe(
  Config.withDefault("harvest")
)

/**
 * The OpenTelemetry resource Harvest reports as: `service.name` from `OTEL_SERVICE_NAME`, its version, and the SDK.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerResource: Layer.Layer<OtelResource.Resource, InvalidEnvironment> = Layer.unwrapEffect(
  Effect.map(
    Effect.mapError(serviceName, InvalidEnvironment.fromConfigError),
    (name) => OtelResource.layer({ serviceName: name, serviceVersion: "0.1.0" })
  )
)

/**
 * `/metrics`: every Effect metric of the process, in the Prometheus text format, collected on request.
 *
 * @since 0.1.0
 * @category models
 */
export interface Prometheus {
  /** The exposition text now. */
  readonly scrape: Effect.Effect<string>
}

/**
 * The Prometheus exposition's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Prometheus: Context.Tag<Prometheus, Prometheus> = Context.GenericTag<Prometheus>(
  "@spindle/harvest/Telemetry/Prometheus"
)

/**
 * OpenTelemetry's Prometheus exporter as a pull reader (its own HTTP server not started: Harvest serves `/metrics`
 * itself), fed by `@effect/opentelemetry`'s producer of Effect's metrics, and serialized by the exporter's own
 * serializer at each scrape. Samples carry their metric's labels only (no `otel_scope_name`); the resource is one
 * `target_info` sample.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPrometheus: Layer.Layer<Prometheus, never, OtelResource.Resource> = Layer.scoped(
  Prometheus,
  Effect.gen(function*() {
    recorder()
    const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true })
    const producer = yield* OtelMetrics.makeProducer
    yield* OtelMetrics.registerProducer(producer, () => exporter)
    const serializer = new PrometheusSerializer("", false, undefined, false, true)
    return Prometheus.of({
      scrape: Effect.map(
        Effect.promise(() => exporter.collect()),
        (collected) => serializer.serialize(collected.resourceMetrics)
      )
    })
  })
)

/**
 * Where and how traces are exported, read from the OpenTelemetry environment (the specification's names):
 * `OTEL_SDK_DISABLED` (`true`: nothing is exported), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL, e.g.
 * `http://collector:4318/v1/traces`) or else `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL, `/v1/traces` appended),
 * `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (the default),
 * `parentbased_always_off`, `parentbased_traceidratio`) with `OTEL_TRACES_SAMPLER_ARG` (the ratio, default 1); and
 * Harvest's own `HARVEST_TRACE_RING`: how many items' traces the dashboard's ring keeps (`TraceRing`); default 0,
 * off, since tracing every item costs the pipeline about half again its CPU per URL (`pnpm demo` sets 1000). No
 * endpoint and no ring: no tracer at all. A value Harvest cannot use stops it at start (`InvalidEnvironment`), like any
 * other.
 *
 * @since 0.1.0
 * @category config
 */
export const tracingConfig = Config.all({
  disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
  tracesEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
  endpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  sampler: Config.literal(
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio"
  )("OTEL_TRACES_SAMPLER").pipe(Config.withDefault("parentbased_always_on" as const)),
  ratio: Config.number("OTEL_TRACES_SAMPLER_ARG").pipe(
    Config.validate({ message: "a ratio from 0 to 1", validation: (ratio) => ratio >= 0 && ratio <= 1 }),
    Config.withDefault(1)
  ),
  ring: Config.integer("HARVEST_TRACE_RING").pipe(
    Config.validate({
      message: "an integer from 0 (off) to 100000",
      validation: (size) => size >= 0 && size <= 100_000
    }),
    Config.withDefault(0)
  )
}).pipe(Config.map((config) => ({
  ...config,
  url: config.disabled ? Option.none<string>() : Option.orElse(
    config.tracesEndpoint,
    () => Option.map(config.endpoint, (base) => `${base.replace(/\/+$/, "")}/v1/traces`)
  )
})))

/**
 * What `tracingConfig` reads.
 *
 * @since 0.1.0
 * @category config
 */
export type TracingConfig = Config.Config.Success<typeof tracingConfig>

/**
 * The pipeline's side of tracing, present while traces are exported or kept in the ring: with no tracer, the
 * pipeline does no per-item tracing work at all (it asks once, at start, whether this is present).
 *
 * @since 0.1.0
 * @category models
 */
export interface Tracing {
  /** A span that has already happened (a wait measured by the pipeline), as a child of `parent`. */
  readonly past: (
    name: string,
    parent: Tracer.AnySpan | undefined,
    startNanos: bigint,
    endNanos: bigint,
    attributes?: Record<string, unknown>
  ) => void
  /** A span opened now and ended by whoever holds it (an item's, ended once its result is committed). */
  readonly open: (
    name: string,
    options: Tracer.SpanOptions & { readonly startNanos?: bigint | undefined }
  ) => Tracer.Span
  /** The span of the running fiber, if any. */
  readonly current: Effect.Effect<Tracer.AnySpan | undefined>
  /** Now, in the nanoseconds of the clock Effect's own spans are timed with. */
  readonly now: () => bigint
}

/**
 * Whether (and how) the pipeline traces: `undefined` unless the tracing layer is provided.
 *
 * @since 0.1.0
 * @category tags
 */
export class TracingRef extends Context.Reference<TracingRef>()("@spindle/harvest/Telemetry/Tracing", {
  defaultValue: (): Tracing | undefined => undefined
}) {}

// A tracer's `span` leaves the attributes of its options to the caller (as `Effect.withSpan` does).
const annotate = (span: Tracer.Span, attributes: Record<string, unknown> | undefined) => {
  if (attributes === undefined) return span
  for (const key in attributes) if (attributes[key] !== undefined) span.attribute(key, attributes[key])
  return span
}

/**
 * The pipeline's `Tracing` over an Effect tracer, timed by `clock`.
 *
 * @since 0.1.0
 * @category tracing
 */
export const makeTracing = (tracer: Tracer.Tracer, clock: Clock.Clock): Tracing => {
  const now = () => clock.unsafeCurrentTimeNanos()
  return {
    now,
    past: (name, parent, start, end, attributes) => {
      const span = tracer.span(name, Option.fromNullable(parent), Context.empty(), [], start, "internal")
      annotate(span, attributes).end(end, Exit.void)
    },
    open: (name, options) =>
      annotate(
        tracer.span(
          name,
          Option.fromNullable(options.parent),
          Context.empty(),
          options.links ?? [],
          options.startNanos ?? now(),
          options.kind ?? "internal",
          options
        ),
        options.attributes
      ),
    current: Effect.map(
      FiberRef.get(FiberRef.currentContext),
      (context) => Option.getOrUndefined(Context.getOption(context, Tracer.ParentSpan))
    )
  }
}

/**
 * Opens the span of one item (`harvest.item`, the root of its own trace), linked to its job: the job's id is a UUID,
 * whose 32 hex digits are the trace id the link names, so every item of a job links to one trace id. The span starts
 * when the item was leased (`leasedNanos`, a `leased` event marks it), with its wait for a worker until now as a
 * `harvest.queued` child. It is ended by whoever ends the item: `Results`, once its result is committed (with a
 * `harvest.settle` child), or the scheduler, when the item goes back to the queue.
 *
 * @since 0.1.0
 * @category tracing
 */
export const openItem = (
  tracing: Tracing,
  item: { readonly id: number; readonly url: string; readonly job: string; readonly attempts: number },
  leasedNanos?: bigint
): Tracer.Span => {
  const now = tracing.now()
  const leased = leasedNanos !== undefined && leasedNanos < now ? leasedNanos : now
  const hex = item.job.replace(/-/g, "")
  const job = Tracer.externalSpan({ traceId: hex, spanId: hex.slice(0, 16), sampled: true })
  const span = tracing.open("harvest.item", {
    root: true,
    links: [{ _tag: "SpanLink", span: job, attributes: { "harvest.job.id": item.job } }],
    attributes: {
      "harvest.job.id": item.job,
      "harvest.item.id": item.id,
      "harvest.item.previous_attempts": item.attempts,
      "url.full": item.url
    },
    startNanos: leased
  })
  span.event("leased", leased)
  tracing.past("harvest.queued", span, leased, now)
  return span
}

/**
 * Ends an item's span now.
 *
 * @since 0.1.0
 * @category tracing
 */
export const endItem = (tracing: Tracing, span: Tracer.Span, exit: Exit.Exit<unknown, unknown> = Exit.void): void =>
  span.end(tracing.now(), exit)

/**
 * `self` with the running span's `trace_id` and `span_id` among each message's annotations (when a span is running),
 * so that a log line can be found from a trace and a trace from a log line.
 *
 * @since 0.1.0
 * @category tracing
 */
export const withTraceIds = <Message, Output>(self: Logger.Logger<Message, Output>): Logger.Logger<Message, Output> =>
  Logger.mapInputOptions(self, (options) => {
    const span = Context.getOption(FiberRefs.getOrDefault(options.context, FiberRef.currentContext), Tracer.ParentSpan)
    if (Option.isNone(span)) return options
    return {
      ...options,
      annotations: options.annotations.pipe(
        HashMap.set("trace_id", span.value.traceId as unknown),
        HashMap.set("span_id", span.value.spanId as unknown)
      )
    }
  })

/**
 * Traces over OTLP/HTTP (JSON) as `tracingConfig` says, in batches, under the resource from the environment, and the
 * dashboard's ring of recent traces (`TraceRing`) fed from the same spans; the Effect tracer of everything built on
 * this layer, and `TracingRef` for the pipeline. With no endpoint (or `OTEL_SDK_DISABLED=true`) but a ring, no
 * OpenTelemetry SDK runs: the tracer is the ring's own (`TraceRing.tracer`), which records items' traces into the ring
 * and nothing else, and exports nothing. With neither: nothing at all, not even a tracer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTracing: Layer.Layer<TracingRef | TraceRing.TraceRingRef, InvalidEnvironment> = Layer
  .unwrapEffect(
    Effect.map(
      Effect.mapError(tracingConfig, InvalidEnvironment.fromConfigError),
      (config): Layer.Layer<TracingRef | TraceRing.TraceRingRef, InvalidEnvironment> => {
        const ring = TraceRing.make(config.ring)
        const ringRef = Layer.succeed(TraceRing.TraceRingRef, ring)
        const logger = Logger.replace(Logger.defaultLogger, withTraceIds(Logger.defaultLogger))
        if (Option.isNone(config.url)) {
          if (ring.capacity === 0) return Layer.merge(Layer.succeed(TracingRef, undefined), ringRef)
          // Kept, not exported: the ring's own tracer, no OpenTelemetry SDK.
          const tracer = TraceRing.tracer(ring)
          const ref = Layer.effect(TracingRef, Effect.map(Effect.clock, (clock) => makeTracing(tracer, clock)))
          return Layer.mergeAll(ref, Layer.setTracer(tracer), logger, ringRef)
        }
        // The OpenTelemetry SDK and the OTLP exporter are loaded only when traces are exported.
        const url = config.url.value
        return Layer.unwrapEffect(Effect.map(
          Effect.promise(() => import("./TelemetryOtlp.js")),
          (otlp) =>
            Layer.merge(otlp.layer({ url, sampler: config.sampler, ratio: config.ratio }, ring), logger).pipe(
              Layer.provide(layerResource),
              Layer.merge(ringRef)
            )
        ))
      }
    )
  )

/**
 * Harvest's telemetry: the Prometheus exposition, under the resource from the environment, and traces when an
 * OTLP endpoint is configured.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Prometheus | TracingRef | TraceRing.TraceRingRef, InvalidEnvironment> = Layer.merge(
  layerPrometheus.pipe(Layer.provide(layerResource)),
  layerTracing
)

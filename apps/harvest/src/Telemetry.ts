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
 * @since 0.1.0
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricHook from "effect/MetricHook"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"

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
 * - `harvest_settle_duration_seconds`: histogram of the time from an item's outcome to its row committed.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  items: Metric.fromMetricKey(itemsKey),
  attempts: Metric.fromMetricKey(attemptsKey),
  fetchDuration: Metric.fromMetricKey(fetchDurationKey),
  hostGateWait: Metric.fromMetricKey(hostGateWaitKey),
  settleDuration: Metric.fromMetricKey(settleDurationKey)
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
}

const makeRecorder = (): Recorder => {
  const fetchDuration = hook(fetchDurationKey)
  const gateWait = hook(hostGateWaitKey)
  const settleDuration = hook(settleDurationKey)
  const attempts = hooksBy(attemptsKey, (code) => [MetricLabel.make("code", code)])
  const succeeded = hook(itemsKey, [MetricLabel.make("outcome", "succeeded")])
  const failed = hooksBy(itemsKey, (code) => [MetricLabel.make("outcome", "failed"), MetricLabel.make("code", code)])
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
    }
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
export const layerResource: Layer.Layer<OtelResource.Resource, never> = Layer.unwrapEffect(
  Effect.map(
    Effect.orDie(serviceName),
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
 * Harvest's telemetry: the Prometheus exposition, under the resource from the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Prometheus> = layerPrometheus.pipe(Layer.provide(layerResource))

/**
 * Watches the event loop the way production services need to: delay percentiles over a rolling window, event-loop
 * utilization, a warning log with the duration whenever the loop was blocked longer than a threshold, metrics, and
 * a value other services read (health checks, load shedding).
 *
 * Delay is measured by one unref'd timer per `resolution` recording how late it ran into an HDR histogram
 * (`perf_hooks.createHistogram`), utilization by `performance.eventLoopUtilization`. Every `sampleInterval` the
 * histogram is moved into a ring of per-sample histograms, and the window's percentiles come from their merge. It is the Node
 * counterpart of asyncio's debug mode "slow callback" warnings: in JavaScript the culprit is whatever ran
 * synchronously for that long.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { createHistogram, performance, type RecordableHistogram } from "node:perf_hooks"
import * as Metrics from "./internal/metrics.js"

/**
 * What the loop looked like over the window.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const isHealthy = (s: EventLoopMonitor.Snapshot) => s.p99Ms < 100 && s.utilization < 0.9
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* EventLoopMonitor.make({ resolution: "5 millis" })
 *   return isHealthy(yield* monitor.sample)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true while the loop keeps up
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Share of time the loop was busy during the last sample, 0 to 1. */
  readonly utilization: number
  /** Longest delay during the last sample alone. */
  readonly lastMaxMs: number
}

/**
 * Options of the monitor.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 *
 * const options: EventLoopMonitor.Options = {
 *   sampleInterval: "500 millis",
 *   window: "30 seconds", // percentiles over the last 30 s
 *   blockedThreshold: "50 millis", // warn about any stall longer than this
 *   resolution: "5 millis"
 * }
 *
 * const MonitorLive = EventLoopMonitor.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How often a sample is taken. Default 1 second. */
  readonly sampleInterval?: Duration.DurationInput | undefined
  /** How much history the percentiles cover. Default 10 seconds. */
  readonly window?: Duration.DurationInput | undefined
  /** A sample whose longest delay exceeds this logs a warning. Default 100 ms. */
  readonly blockedThreshold?: Duration.DurationInput | undefined
  /** The histogram's timer resolution. Default 10 ms (Node's default). */
  readonly resolution?: Duration.DurationInput | undefined
}

/**
 * A running monitor.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // A /health body built from the monitor.
 * const health = (monitor: EventLoopMonitor.EventLoopMonitor) =>
 *   Effect.map(monitor.current, ({ maxMs, p50Ms, p99Ms }) => ({ status: "ok", eventLoop: { p50Ms, p99Ms, maxMs } }))
 *
 * const program = Effect.scoped(Effect.flatMap(EventLoopMonitor.make(), health))
 *
 * Effect.runPromise(program).then(console.log) // { status: "ok", eventLoop: { p50Ms: 0, p99Ms: 0, maxMs: 0 } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface EventLoopMonitor {
  /** The latest snapshot. */
  readonly current: Effect.Effect<Snapshot>
  /** The latest snapshot, read synchronously (for hot paths such as load shedding). */
  readonly unsafeCurrent: () => Snapshot
  /** The latest snapshot, then each new one. */
  readonly changes: Stream.Stream<Snapshot>
  /** Takes a sample now instead of waiting for the next interval. */
  readonly sample: Effect.Effect<Snapshot>
}

/**
 * The monitor service.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* EventLoopMonitor.EventLoopMonitor
 *   const { utilization } = yield* monitor.sample
 *   return utilization >= 0 && utilization <= 1
 * }).pipe(Effect.provide(EventLoopMonitor.layer({ sampleInterval: "1 second" })))
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const EventLoopMonitor: Context.Tag<EventLoopMonitor, EventLoopMonitor> = Context.GenericTag<
  EventLoopMonitor
>("@spindle/node/EventLoopMonitor")

/**
 * The metrics the monitor updates: delay percentiles over the window, utilization, blocked samples.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* EventLoopMonitor.make()
 *   yield* monitor.sample
 *   // What a Prometheus scrape reports as spindle_event_loop_delay_p99_ms.
 *   const p99 = yield* Metric.value(EventLoopMonitor.metrics.p99)
 *   return p99.value >= 0
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  p50: Metrics.delayP50,
  p99: Metrics.delayP99,
  max: Metrics.delayMax,
  utilization: Metrics.utilization,
  blocked: Metrics.blocked
} as const

const empty: Snapshot = { p50Ms: 0, p99Ms: 0, maxMs: 0, utilization: 0, lastMaxMs: 0 }

const toMs = (nanos: number) => Math.round(nanos / 1e4) / 100

/**
 * Starts a monitor for the lifetime of the current scope.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const monitor = yield* EventLoopMonitor.make({ blockedThreshold: "20 millis", resolution: "5 millis" })
 *   const started = Date.now()
 *   while (Date.now() - started < 50) {
 *     // block the loop for 50 ms: the next sample logs "event loop blocked"
 *   }
 *   yield* Effect.sleep("10 millis")
 *   return (yield* monitor.sample).lastMaxMs >= 20
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<EventLoopMonitor, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sampleMillis = Duration.toMillis(options.sampleInterval ?? "1 second")
    const windowMillis = Duration.toMillis(options.window ?? "10 seconds")
    const thresholdMillis = Duration.toMillis(options.blockedThreshold ?? "100 millis")
    const resolution = Math.max(1, Math.round(Duration.toMillis(options.resolution ?? "10 millis")))
    const slots = Math.max(1, Math.ceil(windowMillis / sampleMillis))

    // Node's own monitorEventLoopDelay forgets the delay in progress when it is reset (a block that starts just
    // after a sample would go unseen), and its histograms cannot be merged. So the monitor keeps its own timer:
    // one unref'd callback per `resolution`, recording how late it ran into the current sample's histogram.
    let histogram = createHistogram()
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        let previous = performance.now()
        const timer = setInterval(() => {
          const now = performance.now()
          const lateMillis = now - previous - resolution
          previous = now
          histogram.record(Math.max(1, Math.round(lateMillis * 1e6)))
        }, resolution)
        timer.unref()
        return timer
      }),
      (timer) => Effect.sync(() => clearInterval(timer))
    )
    const ring: Array<RecordableHistogram> = []
    let elu = performance.eventLoopUtilization()
    let latest = empty
    const ref = yield* SubscriptionRef.make(empty)
    // The gauges say what `current` says, from the start: a scrape before the first sample finds every series (at
    // zero, as `current` answers then) rather than none.
    const publish = (snapshot: Snapshot) => {
      Metrics.delayP50.unsafeUpdate(snapshot.p50Ms, [])
      Metrics.delayP99.unsafeUpdate(snapshot.p99Ms, [])
      Metrics.delayMax.unsafeUpdate(snapshot.maxMs, [])
      Metrics.utilization.unsafeUpdate(snapshot.utilization, [])
    }
    publish(empty)

    const takeSample = Effect.suspend(() => {
      const slice = histogram
      histogram = createHistogram()
      ring.push(slice)
      if (ring.length > slots) ring.shift()
      const merged = createHistogram()
      for (const h of ring) merged.add(h)
      const next = performance.eventLoopUtilization()
      const utilization = performance.eventLoopUtilization(next, elu).utilization
      elu = next
      // Recorded values are already net of the timer's own period.
      const lastMaxMs = slice.count === 0 ? 0 : toMs(slice.max)
      latest = merged.count === 0 ? { ...empty, utilization } : {
        p50Ms: toMs(merged.percentile(50)),
        p99Ms: toMs(merged.percentile(99)),
        maxMs: toMs(merged.max),
        utilization,
        lastMaxMs
      }
      publish(latest)
      const snapshot = latest
      const warn = lastMaxMs > thresholdMillis
        ? Effect.zipRight(
          Effect.sync(() => Metrics.blocked.unsafeUpdate(1, [])),
          Effect.logWarning("event loop blocked").pipe(
            Effect.annotateLogs({ blockedMs: lastMaxMs, thresholdMs: thresholdMillis })
          )
        )
        : Effect.void
      return Effect.as(Effect.zipRight(warn, SubscriptionRef.set(ref, snapshot)), snapshot)
    })

    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(sampleMillis)), takeSample)))

    return {
      current: Effect.sync(() => latest),
      unsafeCurrent: () => latest,
      changes: ref.changes,
      sample: takeSample
    }
  })

/**
 * A layer running the monitor for the lifetime of the layer.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor, LoadShedder } from "@spindle/node"
 * import * as Layer from "effect/Layer"
 *
 * // One monitor for the process, read by the load shedder and the health check.
 * const MonitorLive = EventLoopMonitor.layer({ sampleInterval: "1 second", window: "10 seconds" })
 *
 * const ShedderLive = LoadShedder.layer({ maxEventLoopDelay: "200 millis" }).pipe(Layer.provideMerge(MonitorLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<EventLoopMonitor> =>
  Layer.scoped(EventLoopMonitor, make(options))

/**
 * Reads `sampleInterval`, `window` and `blockedThreshold` (durations such as `"500 millis"`) from configuration.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Effect from "effect/Effect"
 *
 * const provider = ConfigProvider.fromJson({ sampleInterval: "250 millis", blockedThreshold: "50 millis" })
 *
 * Effect.runPromise(Effect.withConfigProvider(EventLoopMonitor.config, provider)).then((o) => console.log(o.window))
 * // { _id: "Duration", _tag: "Millis", millis: 10000 } (the default)
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  sampleInterval: Config.duration("sampleInterval").pipe(Config.withDefault(Duration.seconds(1))),
  window: Config.duration("window").pipe(Config.withDefault(Duration.seconds(10))),
  blockedThreshold: Config.duration("blockedThreshold").pipe(Config.withDefault(Duration.millis(100)))
})

/**
 * A layer running the monitor configured through `Config`.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor } from "@spindle/node"
 * import * as Config from "effect/Config"
 *
 * // LOOP_SAMPLE_INTERVAL, LOOP_WINDOW and LOOP_BLOCKED_THRESHOLD from the environment.
 * const MonitorLive = EventLoopMonitor.layerConfig(Config.nested(EventLoopMonitor.config, "LOOP"))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options: Config.Config<Options> = config): Layer.Layer<
  EventLoopMonitor,
  ConfigError.ConfigError
> => Layer.scoped(EventLoopMonitor, Effect.flatMap(options, make))

/**
 * What the dashboard shows. The per-host view is folded from the host gate's events (attempts waiting, sent, done
 * and failed; circuits changing), which this module subscribes to: the pipeline keeps no state for the dashboard.
 * One fiber samples it with the jobs (`Jobs.list`, the query behind `GET /jobs`), the fetches on the wire and the
 * event loop every `interval`, and publishes a snapshot. Every subscriber reads through a sliding buffer of one (the
 * latest snapshot wins), so a slow or vanished reader never slows the sampler, let alone the fetch pipeline, and
 * holds at most one snapshot in memory.
 *
 * @since 0.1.0
 */
import { EventLoopMonitor } from "@spindle/node"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import type * as Domain from "../Domain.js"
import { HarvestConfig } from "../HarvestConfig.js"
import * as LocalFaults from "../LocalFaults.js"
import * as HostGate from "../pipeline/HostGate.js"
import { Scheduler } from "../pipeline/Scheduler.js"
import { Items, Jobs } from "../storage/Jobs.js"

/**
 * One host (`host:port`) as this process saw it lately: requests on the wire and attempts waiting for its limits, the
 * rate tokens left at its latest request (`null` without a rate limit), its circuit, its requests so far and its latest
 * failures.
 *
 * @since 0.1.0
 * @category models
 */
export interface HostState {
  readonly host: string
  readonly inFlight: number
  readonly queued: number
  readonly tokens: number | null
  readonly circuit: HostGate.Circuit
  readonly attempts: number
  readonly recentErrors: ReadonlyArray<{ readonly at: number; readonly code: string; readonly message: string }>
  readonly lastActiveAt: number
}

/**
 * One event-loop sample for the chart: `[epoch ms, p50 ms, p99 ms]`.
 *
 * @since 0.1.0
 * @category models
 */
export type LoopPoint = readonly [at: number, p50Ms: number, p99Ms: number]

/**
 * A job as `GET /jobs/:id` shows it, plus how many of its items are being fetched now (the rest of `pending` waits).
 *
 * @since 0.1.0
 * @category models
 */
export interface JobProgress extends Domain.JobView {
  readonly running: number
}

/**
 * The state of the service at one moment, as the dashboard renders it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  /** Increases by one with every sample. */
  readonly seq: number
  readonly at: number
  readonly draining: boolean
  /**
   * While a local fault degrades the instance (leasing paused, `POST /jobs` refused): its reason, its message and
   * when it began (epoch ms); `null` otherwise.
   */
  readonly degraded: LocalFaults.Degraded | null
  /** Requests on the wire now (attempts waiting for a host's limits are not in flight). */
  readonly inFlight: number
  readonly maxConcurrency: number
  /** The most recent jobs, newest first. */
  readonly jobs: ReadonlyArray<JobProgress>
  readonly hosts: ReadonlyArray<HostState>
  readonly eventLoop: {
    readonly p50Ms: number
    readonly p99Ms: number
    readonly maxMs: number
    readonly utilization: number
    /** Oldest first, one point per `historyStep`, covering `history`. */
    readonly history: ReadonlyArray<LoopPoint>
  }
  /** Live subscriptions (dashboard connections) when the sample was taken. */
  readonly subscribers: number
}

/**
 * Sampling options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How often a snapshot is taken and published. Default 1 second. */
  readonly interval?: Duration.DurationInput | undefined
  /** How many recent jobs a snapshot lists. Default 25. */
  readonly jobs?: number | undefined
  /** How much event-loop history the chart covers. Default 5 minutes. */
  readonly history?: Duration.DurationInput | undefined
  /** The spacing of the chart's points. Default 1 second. */
  readonly historyStep?: Duration.DurationInput | undefined
}

/**
 * The sampler's output.
 *
 * @since 0.1.0
 * @category models
 */
export interface Events {
  /** The latest snapshot. */
  readonly latest: Effect.Effect<Snapshot>
  /**
   * The latest snapshot, then each new one. A reader slower than the sampler skips the snapshots it had no time
   * for; its subscription ends with the stream (a client that goes away interrupts it).
   */
  readonly changes: Stream.Stream<Snapshot>
  /** Subscriptions to `changes` open now. */
  readonly subscribers: Effect.Effect<number>
}

/**
 * The events service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Events: Context.Tag<Events, Events> = Context.GenericTag<Events>("@spindle/harvest/Events")

/**
 * Starts the sampler for the lifetime of the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Events.make")(function*(options: Options = {}) {
  const config = yield* HarvestConfig
  const jobs = yield* Jobs
  const items = yield* Items
  const gate = yield* HostGate.HostGate
  const scheduler = yield* Scheduler
  const monitor = yield* EventLoopMonitor.EventLoopMonitor
  const faults = yield* LocalFaults.LocalFaults
  const interval = Duration.decode(options.interval ?? "1 second")
  const jobLimit = options.jobs ?? 25
  const historyStep = Duration.toMillis(options.historyStep ?? "1 second")
  const historyLength = Math.max(2, Math.ceil(Duration.toMillis(options.history ?? "5 minutes") / historyStep))

  const pubsub = yield* Effect.acquireRelease(PubSub.sliding<Snapshot>(1), PubSub.shutdown)
  const history: Array<LoopPoint> = []
  let subscribers = 0
  let seq = 0

  // The per-host view, folded from the gate's events as they come (kept a while after a host goes quiet, then
  // forgotten).
  interface Activity {
    queued: number
    inFlight: number
    attempts: number
    tokens: number | null
    circuit: HostGate.Circuit
    lastActiveAt: number
    readonly errors: Array<{ readonly at: number; readonly code: string; readonly message: string }>
  }
  const hosts = new Map<string, Activity>()
  const fold = (event: HostGate.HostEvent) => {
    let activity = hosts.get(event.host)
    if (activity === undefined) {
      activity = { queued: 0, inFlight: 0, attempts: 0, tokens: null, circuit: "closed", lastActiveAt: 0, errors: [] }
      hosts.set(event.host, activity)
    }
    activity.lastActiveAt = event.at
    if (event._tag === "Circuit") {
      activity.circuit = event.circuit
      return
    }
    activity.queued += event.waiting - event.left - event.sent
    activity.inFlight += event.sent - event.done
    activity.attempts += event.sent
    if (event.tokens !== undefined) activity.tokens = event.tokens
    for (const error of event.errors) activity.errors.push(error)
    if (activity.errors.length > 5) activity.errors.splice(0, activity.errors.length - 5)
  }
  yield* gate.events.pipe(
    Stream.runForEachChunk((chunk) =>
      Effect.sync(() => {
        for (const event of chunk) fold(event)
      })
    ),
    Effect.forkScoped
  )
  const hostStates = (now: number): ReadonlyArray<HostState> => {
    const result: Array<HostState> = []
    for (const [host, a] of hosts) {
      if (a.inFlight === 0 && a.queued === 0 && a.circuit === "closed" && now - a.lastActiveAt > 10 * 60_000) {
        hosts.delete(host)
        continue
      }
      result.push({
        host,
        inFlight: a.inFlight,
        queued: a.queued,
        tokens: a.tokens,
        circuit: a.circuit,
        attempts: a.attempts,
        recentErrors: a.errors.slice(),
        lastActiveAt: a.lastActiveAt
      })
    }
    return result
      .sort((a, b) => b.inFlight - a.inFlight || b.queued - a.queued || b.lastActiveAt - a.lastActiveAt)
      .slice(0, 100)
  }

  // The most recent jobs, as `GET /jobs` lists them, with how many of each one's items are leased now. A finished
  // job's counts never change again, so they are read once.
  const finished = new Map<string, JobProgress>()
  const jobViews = Effect.gen(function*() {
    const page = yield* jobs.list({ statuses: [], limit: jobLimit, after: undefined })
    const views = yield* Effect.forEach(page.items, (view) => {
      const known = finished.get(view.id)
      if (known !== undefined) return Effect.succeed(known)
      if (view.finishedAt !== null) return Effect.succeed<JobProgress>({ ...view, running: 0 })
      return Effect.map(items.counts(view.id), (counts): JobProgress => ({ ...view, running: counts.leased }))
    })
    const listed = new Set<string>()
    for (const view of views) {
      listed.add(view.id)
      if (view.finishedAt !== null) finished.set(view.id, view)
    }
    for (const id of finished.keys()) if (!listed.has(id)) finished.delete(id)
    return views
  })

  const sample = (previous: Snapshot | undefined) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const loop = monitor.unsafeCurrent()
      const last = history[history.length - 1]
      if (last === undefined || now - last[0] >= historyStep) {
        history.push([now, loop.p50Ms, loop.p99Ms])
        if (history.length > historyLength) history.shift()
      }
      // A database that does not answer is a local fault (reported, shown as the degraded state, not logged every
      // second): the jobs shown are the previous sample's meanwhile.
      const views = yield* jobViews.pipe(
        Effect.catchAllCause((cause) => {
          const fault = LocalFaults.fromCause("reading jobs", cause)
          return Effect.as(
            fault !== undefined ? faults.report(fault) : Effect.logWarning("dashboard could not read jobs").pipe(
              Effect.annotateLogs({ cause: Cause.pretty(cause) })
            ),
            previous?.jobs ?? []
          )
        })
      )
      const snapshot: Snapshot = {
        seq: ++seq,
        at: now,
        draining: scheduler.isDraining(),
        degraded: faults.degraded() ?? null,
        inFlight: gate.onWire(),
        maxConcurrency: config.maxConcurrency,
        jobs: views,
        hosts: hostStates(now),
        eventLoop: {
          p50Ms: loop.p50Ms,
          p99Ms: loop.p99Ms,
          maxMs: loop.maxMs,
          utilization: Math.round(loop.utilization * 1000) / 1000,
          history: history.slice()
        },
        subscribers
      }
      return snapshot
    })

  let latest = yield* sample(undefined)
  yield* Effect.forkScoped(Effect.forever(
    Effect.gen(function*() {
      yield* Effect.sleep(interval)
      latest = yield* sample(latest).pipe(
        Effect.catchAllCause((cause) =>
          Effect.as(
            Effect.logWarning("dashboard sample failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(cause) })),
            latest
          )
        )
      )
      // Sliding: never suspends, whatever the readers do.
      yield* PubSub.publish(pubsub, latest)
    })
  ))

  const changes: Stream.Stream<Snapshot> = Stream.unwrapScoped(Effect.gen(function*() {
    const subscription = yield* PubSub.subscribe(pubsub)
    yield* Effect.acquireRelease(
      Effect.sync(() => subscribers++),
      () => Effect.sync(() => subscribers--)
    )
    // A snapshot published between subscribing and reading `latest` would otherwise come twice.
    let sent = -1
    return Stream.concat(Stream.sync(() => latest), Stream.fromQueue(subscription)).pipe(
      Stream.filter((snapshot) => {
        if (snapshot.seq <= sent) return false
        sent = snapshot.seq
        return true
      })
    )
  }))

  return Events.of({
    latest: Effect.sync(() => latest),
    changes,
    subscribers: Effect.sync(() => subscribers)
  })
})

/**
 * The sampler as a layer, running while the layer lives.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  Events,
  never,
  | HarvestConfig
  | Items
  | Jobs
  | HostGate.HostGate
  | Scheduler
  | EventLoopMonitor.EventLoopMonitor
  | LocalFaults.LocalFaults
> => Layer.scoped(Events, make(options))

/**
 * The fetch pipeline: leases items from the queue, fetches each under the global limit, the job's own limits, a
 * per-host limiter and circuit breaker, per-attempt timeouts and retries with backoff and Retry-After, and records
 * exactly one result per item.
 *
 * Shutdown (closing the layer): leasing stops, fetches in flight get `SHUTDOWN_GRACE_MS` to finish, the rest are
 * interrupted and their items released back to pending without counting the attempt. A job's cancellation
 * interrupts that job's fetches only.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Bulkhead, CircuitBreaker, KeyedCircuitBreaker, KeyedLimiter, RetryPolicy } from "@spindle/core"
import { SlotStore, TokenBucketStore } from "@spindle/core"
import type { JobQueue } from "@spindle/sql"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { randomUUID } from "node:crypto"
import type * as Domain from "../Domain.js"
import { HarvestConfig } from "../HarvestConfig.js"
import * as BodyStore from "../storage/BodyStore.js"
import { Items, Jobs } from "../storage/Jobs.js"
import * as Fetcher from "./Fetcher.js"

type Item = JobQueue.Job<Domain.ItemPayload, Domain.ItemResult>

/**
 * What the rest of the service reads from the pipeline.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pipeline {
  /** Fetches in flight in this process. */
  readonly inFlight: () => number
  /** Interrupts this process's fetches of a job (after the job was cancelled in the database). */
  readonly interruptJob: (jobId: string) => Effect.Effect<void>
  /** `true` once shutdown has begun. */
  readonly isDraining: () => boolean
  /** Jobs whose state this process holds now (those with fetches in flight). */
  readonly activeJobs: () => number
  /** Hosts fetched from recently, busiest first (the dashboard's per-host view). */
  readonly hosts: Effect.Effect<ReadonlyArray<HostState>>
}

/**
 * One host (`host:port`) as this process sees it now: attempts in flight and waiting in its per-job limiters, the
 * fewest rate tokens left in any of them (`null` without a rate limit), its circuit, and its latest failed attempts.
 *
 * @since 0.1.0
 * @category models
 */
export interface HostState {
  readonly host: string
  readonly inFlight: number
  readonly queued: number
  readonly tokens: number | null
  readonly circuit: "closed" | "open" | "half-open"
  readonly attempts: number
  readonly recentErrors: ReadonlyArray<{ readonly at: number; readonly code: string; readonly message: string }>
  readonly lastActiveAt: number
}

/**
 * The pipeline service.
 *
 * @since 0.1.0
 * @category tags
 */
export class PipelineTag extends Context.Tag("@spindle/harvest/Pipeline")<PipelineTag, Pipeline>() {}

const itemsFetched = Metric.counter("harvest_items_total", {
  description: "Items settled, by outcome",
  incremental: true
})

const failed = (url: string, attempts: number, error: { code: string; message: string }, httpStatus: number | null) =>
  ({
    url,
    status: "failed",
    httpStatus,
    bytes: null,
    sha256: null,
    attempts,
    error,
    fileId: null
  }) satisfies Domain.ItemResult

/**
 * Runs the pipeline for the lifetime of the layer, and provides its body store (which the files route reads).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  PipelineTag | BodyStore.BodyStore,
  never,
  HarvestConfig | Items | Jobs | TokenBucketStore.TokenBucketStore | SqlClient.SqlClient
> = Layer.scopedContext(
  Effect.gen(function*() {
    const config = yield* HarvestConfig
    const items = yield* Items
    const jobs = yield* Jobs
    const store = yield* TokenBucketStore.TokenBucketStore
    // Provided with REDIS_URL: per-host concurrency shared by every instance, not only this process's.
    const sharedSlots = yield* Effect.serviceOption(SlotStore.SlotStore)
    const owner = `harvest-${randomUUID()}`
    // Start-up recovery of files: dead instances' temp files and bodies no result points to are swept now and then
    // once per lease period (leases of crashed instances expire on their own, and their items are leased again).
    const bodies = yield* Effect.orDie(BodyStore.make({ dataDir: config.dataDir, owner, leaseMs: config.leaseMs }))
    // Interim wiring (issue 16): the fetcher writes through this pipeline's body store, which the files route reads.
    const fetcher = yield* Fetcher.make({
      allowPrivateNetworks: config.allowPrivateNetworks,
      maxBodyBytes: config.maxBodyBytes
    }).pipe(Effect.provideService(BodyStore.BodyStore, bodies))

    const breakers = yield* KeyedCircuitBreaker.make<Fetcher.FetchFailure>({
      name: "hosts",
      // A host that fails half of at least 20 calls within 10 s is given a rest; 429 is throttling (handled by
      // Retry-After), and 4xx and oversized bodies say nothing about the host's health.
      policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 20 }),
      cooldown: "2 seconds",
      cooldownFactor: 2,
      cooldownMax: "30 seconds",
      isFailure: (error) => error.code === "network" || error.code === "timeout" || (error.httpStatus ?? 0) >= 500
    })

    // Per-job state, created once per job however many items ask for it at the same time (two creators would
    // mean two per-host limiters, splitting the job's limits), and dropped when the job is cancelled.
    interface JobState {
      readonly options: Domain.JobOptions
      readonly bulkhead: Bulkhead.Bulkhead<never>
      readonly hosts: KeyedLimiter.KeyedLimiter<any>
      readonly retries: Map<
        number,
        <A, E extends Fetcher.FetchFailure, R>(
          self: Effect.Effect<A, E, R>
        ) => Effect.Effect<A, E, R>
      >
    }
    const jobStates = new Map<string, Deferred.Deferred<Option.Option<JobState>>>()
    const jobFibers = new Map<string, Set<Fiber.RuntimeFiber<void, never>>>()
    const loadJobState = (jobId: string) =>
      Effect.gen(function*() {
        const job = yield* Effect.orDie(jobs.find(jobId))
        if (Option.isNone(job)) return Option.none<JobState>()
        const options = job.value.options
        const hosts = yield* KeyedLimiter.make({
          name: "hosts",
          keyPrefix: `harvest:${jobId}`,
          concurrency: options.perHostConcurrency,
          rate: options.perHostRps === null
            ? undefined
            : { limit: options.perHostRps, interval: "1 second", burst: options.perHostBurst }
        }).pipe(Effect.provideService(TokenBucketStore.TokenBucketStore, store))
        const bulkhead = yield* Bulkhead.make({ name: "jobs", maxConcurrent: options.concurrency })
        return Option.some<JobState>({ options, bulkhead, hosts, retries: new Map() })
      })
    const jobState = (jobId: string) =>
      Effect.suspend(() => {
        const existing = jobStates.get(jobId)
        if (existing !== undefined) return Deferred.await(existing)
        const created = Deferred.unsafeMake<Option.Option<JobState>>(FiberId.none)
        jobStates.set(jobId, created)
        return Effect.flatMap(Effect.exit(loadJobState(jobId)), (exit) =>
          Effect.zipRight(Deferred.done(created, exit), exit))
      })

    // What the dashboard shows per host: attempts past the limiter, and the latest failures (kept a while after the
    // host goes quiet, then forgotten).
    interface HostActivity {
      inFlight: number
      attempts: number
      lastActiveAt: number
      readonly errors: Array<{ readonly at: number; readonly code: string; readonly message: string }>
    }
    const hostActivity = new Map<string, HostActivity>()
    const trackHost = <A, R>(hostKey: string, effect: Effect.Effect<A, Fetcher.FetchFailure, R>) =>
      Effect.suspend(() => {
        let activity = hostActivity.get(hostKey)
        if (activity === undefined) {
          activity = { inFlight: 0, attempts: 0, lastActiveAt: Date.now(), errors: [] }
          hostActivity.set(hostKey, activity)
        }
        const entry = activity
        entry.inFlight++
        entry.attempts++
        return effect.pipe(
          Effect.tapError((error) =>
            Effect.sync(() => {
              entry.errors.push({ at: Date.now(), code: error.code, message: error.message })
              if (entry.errors.length > 5) entry.errors.shift()
            })
          ),
          Effect.ensuring(Effect.sync(() => {
            entry.inFlight--
            entry.lastActiveAt = Date.now()
          }))
        )
      })
    const hostStates = Effect.gen(function*() {
      const now = Date.now()
      const result: Array<HostState> = []
      for (const [host, activity] of hostActivity) {
        if (activity.inFlight === 0 && now - activity.lastActiveAt > 10 * 60_000) {
          hostActivity.delete(host)
          continue
        }
        let queued = 0
        let tokens: number | null = null
        for (const deferred of jobStates.values()) {
          const polled = yield* Deferred.poll(deferred)
          const exit = Option.isSome(polled) ? yield* Effect.exit(polled.value) : undefined
          if (exit === undefined || exit._tag === "Failure" || Option.isNone(exit.value)) continue
          const stats = yield* Effect.orElseSucceed(exit.value.value.hosts.stats(host), () => Option.none())
          if (Option.isNone(stats)) continue
          queued += stats.value.queued
          if (Option.isSome(stats.value.tokens)) {
            tokens = Math.min(tokens ?? Number.POSITIVE_INFINITY, Math.floor(stats.value.tokens.value * 100) / 100)
          }
        }
        const breaker = yield* breakers.state(host)
        const circuit = Option.match(breaker, {
          onNone: () => "closed" as const,
          onSome: (s) => s._tag === "Open" ? "open" as const : s._tag === "HalfOpen" ? "half-open" as const : "closed"
        })
        result.push({
          host,
          inFlight: activity.inFlight,
          queued,
          tokens,
          circuit,
          attempts: activity.attempts,
          recentErrors: activity.errors.slice(),
          lastActiveAt: activity.lastActiveAt
        })
      }
      return result
        .sort((a, b) => b.inFlight - a.inFlight || b.queued - a.queued || b.lastActiveAt - a.lastActiveAt)
        .slice(0, 100)
    })

    // The per-item path builds no more than it must: the handlers below are shared, the retry combinator is built
    // once per job and attempt budget, and the attempt count is a plain counter (bench/RESULTS.md, section 7).
    const circuitOpen = (open: { readonly message: string; readonly retryAfter: Duration.Duration | undefined }) =>
      Effect.fail(
        new Fetcher.FetchFailure({
          code: "circuit_open",
          message: open.message,
          retryable: true,
          httpStatus: null,
          retryAfter: open.retryAfter
        })
      )
    // The shared limit stores (Redis) being unreachable says nothing about the item or its host: no request is sent
    // without their decision, and the attempt waits for them (backing off, logged, interruptible) instead of spending
    // the item's attempts. With every slot waiting, leasing pauses by itself until the store answers again.
    const storeDown = (error: { readonly _tag: string }) =>
      error._tag === "SlotStoreError" || error._tag === "TokenBucketStoreError"
    const storeBackoff = Schedule.exponential("100 millis", 2).pipe(
      Schedule.either(Schedule.spaced("5 seconds")),
      // One warning every few seconds for the whole process, not one per waiting item. Every error of the attempt
      // passes through the schedule (`retry` asks `while` after it), so only the store's own are reported.
      Schedule.tapInput((error: { readonly _tag: string; readonly message: string }) =>
        Effect.suspend(() => {
          if (!storeDown(error)) return Effect.void
          const now = Date.now()
          if (now - lastStoreWarning < 5_000) return Effect.void
          lastStoreWarning = now
          return Effect.logWarning("limit store unavailable; fetches wait for it").pipe(
            Effect.annotateLogs({ error: error.message })
          )
        })
      )
    )
    let lastStoreWarning = 0
    const retryFor = (state: JobState, maxAttempts: number) => {
      let retry = state.retries.get(maxAttempts)
      if (retry === undefined) {
        retry = RetryPolicy.make<Fetcher.FetchFailure>({
          name: "fetch",
          base: "200 millis",
          cap: "10 seconds",
          jitter: "full",
          maxAttempts,
          retryable: (error) => error.retryable,
          retryAfterMax: Duration.millis(config.retryAfterMaxMs)
        })
        state.retries.set(maxAttempts, retry)
      }
      return retry
    }
    interface Fetch {
      readonly fetched: Either.Either<Fetcher.Fetched, Fetcher.FetchFailure>
      readonly count: number
    }

    const fetchItem = (item: Item, state: JobState): Effect.Effect<Fetch> => {
      let attempts = 0
      const attempted = Effect.sync(() => {
        attempts++
      })
      // The URL was validated when the job was created; its address is resolved and checked inside each attempt.
      const hostKey = new URL(item.payload.url).host
      const attempt = Effect.catchTag(
        breakers.run(hostKey, fetcher.fetch(item.payload.url, { timeoutMs: state.options.timeoutMs })),
        "CircuitOpen",
        circuitOpen
      )
      const limited = state.hosts.run(hostKey, Effect.zipRight(attempted, trackHost(hostKey, attempt)))
      // The shared slot is taken first, so the in-process limiter inside it never waits and its rate token is
      // still taken right before the request starts; the slot is a lease, refreshed like the items' leases.
      const once = Effect.retry(
        Option.isNone(sharedSlots) ? limited : SlotStore.withSlot(sharedSlots.value, {
          key: `harvest:${item.group}:${hostKey}`,
          limit: state.options.perHostConcurrency,
          ttl: Duration.millis(config.leaseMs)
        })(limited),
        { schedule: storeBackoff, while: storeDown as (error: unknown) => boolean }
      ) as Effect.Effect<Fetcher.Fetched, Fetcher.FetchFailure>
      // A failed attempt that will be retried is counted in the queue at once: after a crash the next lease
      // goes on from there instead of granting maxAttempts afresh (an attempt cut short by the crash counts
      // nothing).
      const counted = Effect.tapError(
        once,
        (error) => error.retryable ? Effect.ignore(items.recordAttempt(item.id, owner, error.message)) : Effect.void
      )
      return retryFor(state, Math.max(1, state.options.maxAttempts - item.attempts))(counted).pipe(
        Effect.either,
        Effect.map((fetched): Fetch => ({ fetched, count: Math.max(1, item.attempts + attempts) }))
      )
    }

    // The item's slot is freed as soon as its fetch ends, before its result is committed (with others, in a group
    // commit): the lease loop can start the next fetch meanwhile.
    const process = (item: Item, slot: Slot) =>
      Effect.flatMap(jobState(item.group!), (state) => {
        if (Option.isNone(state)) {
          return bodies.settle({ _tag: "Fail", id: item.id, error: "job not found" }, null, item.group)
        }
        return Effect.flatMap(state.value.bulkhead.run(fetchItem(item, state.value)), ({ count, fetched }) => {
          freeSlot(slot)
          if (fetched._tag === "Right") {
            const result: Domain.ItemResult = {
              url: item.payload.url,
              status: "succeeded",
              httpStatus: fetched.right.httpStatus,
              bytes: fetched.right.bytes,
              sha256: fetched.right.sha256,
              attempts: count,
              error: null,
              fileId: fetched.right.fileId
            }
            itemsFetched.unsafeUpdate(1, [])
            return bodies.settle({ _tag: "Ack", id: item.id, result }, result.fileId, item.group)
          }
          const error = fetched.left
          return bodies.settle(
            {
              _tag: "Fail",
              id: item.id,
              error: error.message,
              result: failed(item.payload.url, count, { code: error.code, message: error.message }, error.httpStatus)
            },
            null,
            item.group
          )
        })
      }).pipe(Effect.orDie)

    // `inFlight`: fetches running (the slots the lease loop fills); `active`: items held, until their result is
    // committed (what shutdown waits for).
    let inFlight = 0
    let active = 0
    let draining = false
    const held = new Set<number>()
    const running = new Set<Fiber.RuntimeFiber<void, never>>()
    interface Slot {
      open: boolean
    }
    const freeSlot = (slot: Slot) => {
      if (!slot.open) return
      slot.open = false
      inFlight--
      if (wakeLeaser !== undefined && config.maxConcurrency - inFlight >= refill) wakeLeaser()
    }
    const logFailure = (item: Item) => (cause: Cause.Cause<never>) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.logError("item processing failed").pipe(
          Effect.annotateLogs({ item: item.id, cause: Cause.pretty(cause) })
        )

    const start = (item: Item) =>
      Effect.suspend(() => {
        inFlight++
        active++
        held.add(item.id)
        const slot: Slot = { open: true }
        let fiber: Fiber.RuntimeFiber<void, never> | undefined
        const finished = Effect.sync(() => {
          freeSlot(slot)
          active--
          held.delete(item.id)
          if (fiber === undefined) return
          running.delete(fiber)
          // A job with nothing in flight here forgets its state: rebuilding it is lossless (its tokens live in the
          // store, its bulkhead holds no permits), and a long-running process must not keep every job.
          const group = jobFibers.get(item.group!)
          group?.delete(fiber)
          if (group !== undefined && group.size === 0) {
            jobFibers.delete(item.group!)
            jobStates.delete(item.group!)
          }
        })
        return Effect.map(
          Effect.forkDaemon(
            Effect.ensuring(Effect.catchAllCause(Effect.asVoid(process(item, slot)), logFailure(item)), finished)
          ),
          (forked) => {
            fiber = forked
            running.add(forked)
            const group = jobFibers.get(item.group!) ?? new Set()
            jobFibers.set(item.group!, group.add(forked))
          }
        )
      })

    // While every slot is busy the lease loop waits for a quarter of them to free up, or 10 ms at most: on a fixed
    // 10 ms tick, a slot freed by a 25 ms fetch idled 5 ms on average, a sixth of the capacity (bench section 7).
    let wakeLeaser: (() => void) | undefined
    const refill = Math.max(1, Math.floor(config.maxConcurrency / 4))
    const slotsFreed = Effect.async<void>((resume) => {
      const timer = setTimeout(() => {
        wakeLeaser = undefined
        resume(Effect.void)
      }, 10)
      wakeLeaser = () => {
        clearTimeout(timer)
        wakeLeaser = undefined
        resume(Effect.void)
      }
      return Effect.sync(() => {
        clearTimeout(timer)
        wakeLeaser = undefined
      })
    })

    const leaseLoop = Effect.gen(function*() {
      while (!draining) {
        const free = config.maxConcurrency - inFlight
        if (free <= 0) {
          yield* slotsFreed
          continue
        }
        const leased = yield* items.lease({
          limit: Math.min(free, 200),
          owner,
          lease: Duration.millis(config.leaseMs)
        }).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(Effect.logWarning("leasing failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(cause) })), [])
          )
        )
        for (const item of leased) yield* start(item)
        if (leased.length === 0) yield* Effect.sleep("50 millis")
      }
    })

    const heartbeat = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.max(100, Math.floor(config.leaseMs / 3))))
        if (held.size > 0) {
          yield* items.heartbeat(Array.from(held), owner, Duration.millis(config.leaseMs)).pipe(
            Effect.catchAllCause((cause) =>
              Effect.logWarning("heartbeat failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(cause) }))
            )
          )
        }
      }
    })

    yield* Effect.forkScoped(leaseLoop)
    yield* Effect.forkScoped(heartbeat)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        draining = true
        const deadline = Date.now() + config.shutdownGraceMs
        while (active > 0 && Date.now() < deadline) yield* Effect.sleep("20 millis")
        const left = Array.from(running)
        const ids = Array.from(held)
        yield* Effect.forEach(left, (fiber) => Fiber.interruptAs(fiber, FiberId.none), { discard: true })
        if (ids.length > 0) {
          // Cut short by the shutdown, not by the items: back to pending, attempt not counted.
          yield* items.release(ids, owner).pipe(Effect.ignoreLogged)
          yield* Effect.logInfo("released unfinished items").pipe(Effect.annotateLogs({ items: ids.length }))
        }
      })
    )

    const pipeline: Pipeline = {
      inFlight: () => inFlight,
      isDraining: () => draining,
      activeJobs: () => jobStates.size,
      hosts: hostStates,
      interruptJob: (jobId: string) =>
        Effect.suspend(() => {
          const fibers = jobFibers.get(jobId)
          jobStates.delete(jobId)
          jobFibers.delete(jobId)
          if (fibers === undefined) return Effect.void
          return Effect.forEach(Array.from(fibers), (fiber) => Fiber.interrupt(fiber), { discard: true })
        })
    }
    return Context.make(PipelineTag, pipeline).pipe(Context.add(BodyStore.BodyStore, bodies))
  })
)

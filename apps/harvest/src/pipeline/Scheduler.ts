/**
 * The scheduler: it leases items from the queue and keeps `MAX_CONCURRENCY` long-lived workers busy with them.
 *
 * The flow of one item: the lease loop leases as many items as there are idle workers and hands them to the waiting
 * workers (`internal/handoff.ts`); a worker takes one and runs its fetch on its own fiber, registered as work of the
 * item's job (`Jobs.unsafeEnter`: cancelling the job interrupts the worker, and the worker's slot starts another),
 * under the job's own limits: its
 * concurrency, then, for each attempt, the host gate (breaker, per-host limiter) and the fetcher, with retries; the
 * outcome is handed to `Results`, and the worker takes the next item. No fiber is made per item. With nothing to lease,
 * the loop polls the queue every 50 ms (for work other instances or expired leases make available), and a job created
 * by this instance wakes it at once (`Jobs.nextCreated`).
 *
 * Shutdown (closing the layer): leasing stops and the items not started go back to pending; fetches in flight get
 * `SHUTDOWN_GRACE_MS` to finish; the rest are interrupted and their items released back to pending without counting
 * the attempt. `Results` commits what was handed to it when its own layer closes, after this one.
 *
 * Local faults (`LocalFaults`: a body the store cannot write, a database that cannot be written or reached) are not
 * the item's or its host's: an attempt that meets one leaves the host gate as an interruption does, the one ending
 * that neither the host's circuit breaker nor the retry policy counts, and is not counted as an attempt; the item is
 * *parked*. While the instance is degraded, leasing pauses (until `LocalFaults.healthy`), a worker parks the items it
 * takes instead of fetching them, and the parked items go back to pending (`release`, no attempt counted) so that
 * another instance may take them; those the database cannot release now (it is the fault), or whose failed attempts
 * it could not record, stay held, and go back to the workers once the fault clears. The common path pays for this
 * with one read of the state per item and per attempt; the rest happens on the failure path.
 *
 * @since 0.1.0
 */
import { Bulkhead, RetryPolicy } from "@spindle/core"
import type { JobQueue } from "@spindle/sql"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import type * as Domain from "../Domain.js"
import { HarvestConfig } from "../HarvestConfig.js"
import { Instance } from "../Instance.js"
import { Handoff, type Taker } from "../internal/handoff.js"
import * as LocalFaults from "../LocalFaults.js"
import { Items, Jobs } from "../storage/Jobs.js"
import * as Telemetry from "../Telemetry.js"
import * as Fetcher from "./Fetcher.js"
import * as HostGate from "./HostGate.js"
import * as Results from "./Results.js"

type Item = JobQueue.Job<Domain.ItemPayload, Domain.ItemResult>

/**
 * What the rest of the service reads from the scheduler.
 *
 * @since 0.1.0
 * @category models
 */
export interface Scheduler {
  /** `true` once shutdown has begun: no more items are leased, and the API takes no new jobs. */
  readonly isDraining: () => boolean
}

/**
 * The scheduler's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Scheduler: Context.Tag<Scheduler, Scheduler> = Context.GenericTag<Scheduler>(
  "@spindle/harvest/Scheduler"
)

// What a job's items share in this process while any of them is held: its options, its concurrency limit, its gate
// (its per-host limiter) and its retry policies. Made once per job however many workers ask at the same time (two
// would split the job's limits), and forgotten when the job has nothing held here.
interface JobState {
  readonly options: Domain.JobOptions
  /** The job's concurrency limit, or none when the workers themselves bound it (`concurrency >= MAX_CONCURRENCY`). */
  readonly bulkhead: Bulkhead.Bulkhead<never> | undefined
  readonly gate: HostGate.JobGate
  readonly retries: Map<
    number,
    <A>(self: Effect.Effect<A, Fetcher.FetchFailure>) => Effect.Effect<A, Fetcher.FetchFailure>
  >
}

interface JobEntry {
  readonly state: Deferred.Deferred<Option.Option<JobState>>
  /** The state once loaded: later workers take it without waiting on the deferred. */
  loaded: Option.Option<JobState> | undefined
  users: number
}

// An item that met a local fault, or was taken while the instance was degraded: not settled but parked, with the
// attempts it made here (none of which met the fault) and whether each was recorded in the queue.
class Parked {
  constructor(readonly counted: number, readonly unrecorded: boolean) {}
}

// How an attempt that met a local fault leaves the host gate and the retry policy: as an interruption, the one ending
// that neither the breaker (a failure would count against the host, a success for it) nor the retry counts. It is
// not a real interruption of the fiber, so `fetchItem` sees it and turns it into `Parked`.
const leaveForFault: Effect.Effect<never> = Effect.failCause(Cause.interrupt(FiberId.none))

// `Effect.catchAll`, with a handler that a success passes over at no cost (`catchAll` handles successes too, wrapping
// each again): a cause of one failure, the usual one, goes to `f` as `catchAll` would send it, any other through
// `catchAll` itself.
const catchFailure = <A, E, R, A2, E2, R2>(
  self: Effect.Effect<A, E, R>,
  f: (error: E) => Effect.Effect<A2, E2, R2>
): Effect.Effect<A | A2, E2, R | R2> =>
  Effect.catchAllCause(
    self,
    (cause) => Cause.isFailType(cause) ? f(cause.error) : Effect.catchAll(Effect.failCause(cause), f)
  )

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
 * Starts the lease loop, the workers and the heartbeat for the life of the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  Scheduler,
  never,
  | HarvestConfig
  | Instance
  | Items
  | Jobs
  | HostGate.HostGate
  | Fetcher.Fetcher
  | Results.Results
  | LocalFaults.LocalFaults
  | Scope.Scope
> = Effect.gen(function*() {
  const config = yield* HarvestConfig
  const { owner } = yield* Instance
  const items = yield* Items
  const jobs = yield* Jobs
  const gate = yield* HostGate.HostGate
  const fetcher = yield* Fetcher.Fetcher
  const results = yield* Results.Results
  const faults = yield* LocalFaults.LocalFaults
  const clock = yield* Effect.clock
  const lease = Duration.millis(config.leaseMs)
  // Present only while traces are exported or kept in the ring: then each item has a span (`Telemetry.openItem`),
  // from its lease (`leasedAt`, filled only then), otherwise nothing.
  const tracing = yield* Telemetry.TracingRef
  const leasedAt = new Map<number, bigint>()

  const entries = new Map<string, JobEntry>()
  const loadJob = (jobId: string) =>
    Effect.gen(function*() {
      const job = yield* Effect.orDie(jobs.find(jobId))
      if (Option.isNone(job)) return Option.none<JobState>()
      const options = job.value.options
      return Option.some<JobState>({
        options,
        bulkhead: options.concurrency >= config.maxConcurrency
          ? undefined
          : yield* Bulkhead.make({ name: "jobs", maxConcurrent: options.concurrency }),
        gate: yield* gate.forJob(jobId, options),
        retries: new Map()
      })
    })
  const acquireJob = (jobId: string) =>
    Effect.suspend(() => {
      let entry = entries.get(jobId)
      if (entry === undefined) {
        const created: JobEntry = { state: Deferred.unsafeMake(FiberId.none), loaded: undefined, users: 0 }
        entries.set(jobId, created)
        entry = created
        entry.users++
        return Effect.flatMap(Effect.exit(loadJob(jobId)), (exit) => {
          if (exit._tag === "Success") created.loaded = exit.value
          return Effect.zipRight(Deferred.done(created.state, exit), exit)
        })
      }
      entry.users++
      return entry.loaded !== undefined ? Effect.succeed(entry.loaded) : Deferred.await(entry.state)
    })
  const retryFor = (state: JobState, maxAttempts: number) => {
    let retry = state.retries.get(maxAttempts)
    if (retry === undefined) {
      // The fetch policy's backoff (POLICY_FETCH_RETRY_*); the job's maxAttempts (its default is the policy's).
      retry = RetryPolicy.make<Fetcher.FetchFailure>({
        retryAfterMax: Duration.millis(config.retryAfterMaxMs),
        ...config.fetchPolicy.retry,
        name: "fetch",
        maxAttempts,
        retryable: (error) => error.retryable
      })
      state.retries.set(maxAttempts, retry)
    }
    return retry
  }

  // One item, start to outcome. `attempts` counts requests made: an attempt refused by an open circuit made none, nor
  // did one whose body the store could not write (a local fault). A failed request that will be retried is recorded
  // in the queue at once, so that after a crash the next lease goes on from there instead of granting `maxAttempts`
  // afresh (an attempt cut short by the crash counts nothing). An attempt that meets a local fault, or that would
  // start while the instance is degraded, ends the item as `Parked`.
  const fetchItem = (item: Item, state: JobState): Effect.Effect<Results.Outcome | Parked> => {
    const url = item.payload.url
    const host = new URL(url).host
    const started = clock.unsafeCurrentTimeMillis()
    let attempts = 0
    let parked = false
    let unrecorded = false
    const record = (error: Fetcher.FetchFailure) =>
      Effect.catchAll(items.recordAttempt(item.id, owner, error.message), (sqlError) => {
        unrecorded = true
        const fault = LocalFaults.fromSqlError("recording an attempt", sqlError)
        return fault === undefined ? Effect.void : faults.report(fault)
      })
    const attempt = Effect.suspend(() => {
      if (faults.current() !== undefined) {
        parked = true
        return leaveForFault
      }
      attempts++
      return catchFailure(fetcher.fetch(url, { timeoutMs: state.options.timeoutMs }), (error) => {
        if (error._tag === "LocalFault") {
          attempts--
          parked = true
          return Effect.zipRight(faults.report(error), leaveForFault)
        }
        return error.retryable ? Effect.zipRight(record(error), Effect.fail(error)) : Effect.fail(error)
      })
    })
    const retried = retryFor(state, Math.max(1, state.options.maxAttempts - item.attempts))(
      state.gate.run(host, attempt)
    )
    return Effect.matchCauseEffect(state.bulkhead === undefined ? retried : state.bulkhead.run(retried), {
      onSuccess: (fetched) =>
        Effect.succeed<Results.Outcome>({
          settlement: {
            _tag: "Ack",
            id: item.id,
            result: {
              url,
              status: "succeeded",
              httpStatus: fetched.httpStatus,
              bytes: fetched.bytes,
              sha256: fetched.sha256,
              attempts: item.attempts + attempts,
              error: null,
              fileId: fetched.fileId,
              durationMs: clock.unsafeCurrentTimeMillis() - started
            }
          },
          fileId: fetched.fileId,
          job: item.group!
        }),
      onFailure: (cause): Effect.Effect<Results.Outcome | Parked> => {
        if (parked) return Effect.succeed(new Parked(attempts, unrecorded))
        const failure = Cause.failureOption(cause)
        if (failure._tag === "None") return Effect.failCause(cause as Cause.Cause<never>)
        const error = failure.value
        return Effect.succeed<Results.Outcome>({
          settlement: {
            _tag: "Fail",
            id: item.id,
            error: error.message,
            result: {
              ...failed(url, item.attempts + attempts, { code: error.code, message: error.message }, error.httpStatus),
              durationMs: clock.unsafeCurrentTimeMillis() - started
            }
          },
          fileId: null,
          job: item.group!
        })
      }
    })
  }

  let draining = false
  // Leased and not yet handed over: what the heartbeat keeps leased, and what shutdown releases.
  const held = new Set<number>()
  const ready = new Handoff<Item>()
  let wakeLeaser: Deferred.Deferred<void> | undefined
  // Parked items (held still), with their attempts counted so far; those whose failed attempts the queue may not have
  // recorded are not released (the queue's count would be short) but kept for this instance to go on with.
  const parked: Array<Item> = []
  const unreleasable = new Set<number>()
  let wakeParker: Deferred.Deferred<void> | undefined

  const logFailure = (item: Item) => (cause: Cause.Cause<unknown>) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Effect.logError("item processing failed").pipe(
        Effect.annotateLogs({ item: item.id, cause: Cause.pretty(cause) })
      )

  // The item runs on the worker's own fiber, as work of its job (registered by `handle`): a cancel of the job
  // interrupts the worker, which its slot replaces.
  const withState = (item: Item, state: Option.Option<JobState>) =>
    Option.isNone(state)
      ? Effect.succeed<Results.Outcome>({
        settlement: { _tag: "Fail", id: item.id, error: "job not found" },
        fileId: null,
        job: item.group!
      })
      : fetchItem(item, state.value)
  // The job's state already loaded (every item of a job but its first): taken at once, with no effect on the way.
  const processItem = (item: Item) => {
    const entry = entries.get(item.group!)
    if (entry !== undefined && entry.loaded !== undefined) {
      entry.users++
      return withState(item, entry.loaded)
    }
    return Effect.flatMap(acquireJob(item.group!), (state) => withState(item, state))
  }

  const letJobGo = (item: Item) => {
    const entry = entries.get(item.group!)
    if (entry !== undefined && --entry.users === 0) entries.delete(item.group!)
  }
  // The lease loop waits for a quarter of the workers to be free (leasing one item at a time costs a query per item),
  // and is woken as soon as they are.
  const wakeLeaserIfRoom = () => {
    if (wakeLeaser !== undefined && free() >= refill) {
      Deferred.unsafeDone(wakeLeaser, Effect.void)
      wakeLeaser = undefined
    }
  }
  // A worker holds at most one item at a time. An item handed over to Results is no longer held; one cut by a cancel
  // is let go; one cut by the shutdown stays held, for the shutdown to release.
  const unsafeDone = (item: Item, handedOver: boolean) => {
    if (handedOver || !draining) held.delete(item.id)
    letJobGo(item)
    wakeLeaserIfRoom()
  }
  const done = (item: Item, handedOver: boolean) => Effect.sync(() => unsafeDone(item, handedOver))
  // Parked: still held, its job's state let go (`acquired`: the worker had taken it), for the parker to release.
  const park = (item: Item, counted: number, unrecorded: boolean, acquired: boolean) =>
    Effect.sync(() => {
      if (acquired) letJobGo(item)
      parked.push(counted === 0 ? item : { ...item, attempts: item.attempts + counted })
      if (unrecorded) unreleasable.add(item.id)
      if (wakeParker !== undefined) {
        Deferred.unsafeDone(wakeParker, Effect.void)
        wakeParker = undefined
      }
    })
  // One uninterruptible region per item, around its only interruptible part, the processing: once it has an outcome,
  // handing the outcome over and letting the item go cannot be cut in between. An interruption (a cancel, the
  // shutdown) takes effect right after, when the worker next waits. The worker is work of the item's job
  // (`Jobs.unsafeEnter`) from the region's start to its outcome: a cancel meanwhile interrupts the processing.
  // While the instance is degraded, an item taken is parked at once, not fetched.
  const handle = (item: Item, fiber: Fiber.RuntimeFiber<never, never>) =>
    faults.current() !== undefined ?
      Effect.zipRight(Effect.sync(() => leasedAt.delete(item.id)), park(item, 0, false, false)) :
      Effect.uninterruptibleMask((restore) => {
        const leave = jobs.unsafeEnter(item.group!, fiber)
        let span: Tracer.Span | undefined
        if (tracing !== undefined) {
          const leased = leasedAt.get(item.id)
          leasedAt.delete(item.id)
          span = Telemetry.openItem(tracing, {
            id: item.id,
            url: item.payload.url,
            job: item.group!,
            attempts: item.attempts
          }, leased)
        }
        return Effect.matchCauseEffect(
          restore(span === undefined ? processItem(item) : Effect.withParentSpan(processItem(item), span)),
          {
            onFailure: (cause) => {
              leave()
              if (span !== undefined) Telemetry.endItem(tracing!, span, Exit.failCause(cause))
              return processingFailed(item, cause)
            },
            onSuccess: (outcome) => {
              leave()
              if (span === undefined) return processed(item, outcome)
              // Settled: Results ends the span once the result is committed; parked: it ends here.
              if (outcome instanceof Parked) Telemetry.endItem(tracing!, span)
              return processed(item, outcome instanceof Parked ? outcome : { ...outcome, span })
            }
          }
        )
      })
  const processingFailed = (item: Item, cause: Cause.Cause<unknown>): Effect.Effect<void> => {
    // Its job's row could not be read, say: a local fault parks the item; anything else is logged.
    const fault = LocalFaults.fromCause("starting an item", cause)
    return fault === undefined
      ? Effect.zipRight(logFailure(item)(cause), done(item, false))
      : Effect.zipRight(faults.report(fault), park(item, 0, false, true))
  }
  const processed = (item: Item, outcome: Results.Outcome | Parked): Effect.Effect<void> =>
    outcome instanceof Parked
      ? park(item, outcome.counted, outcome.unrecorded, true)
      : Effect.matchCauseEffect(results.settle(outcome), {
        onFailure: (cause) => Effect.zipRight(logFailure(item)(cause), done(item, false)),
        // Still within the item's region (the handler runs before it ends): no effect of its own needed.
        onSuccess: () => {
          unsafeDone(item, true)
          return Effect.void
        }
      })
  // Not `Effect.forever`, which yields the thread after every item: `take` suspends when there is nothing to do,
  // and the runtime yields a busy fiber by itself.
  // Each worker takes through a taker of its own (`Handoff.taker`: waiting with no region of its own).
  const takers = new Map<Fiber.RuntimeFiber<never, never>, Taker<Item>>()
  const worker: Effect.Effect<never> = Effect.withFiberRuntime<never, never, never>((fiber) => {
    const taker = ready.taker(fiber)
    takers.set(fiber, taker)
    const handleHere = (item: Item) => handle(item, fiber)
    const loop: Effect.Effect<never> = Effect.flatMap(Effect.flatMap(taker.take, handleHere), () => loop)
    return loop
  })
  // A slot keeps one worker running: a worker interrupted by a cancel is replaced. An item handed to the worker in
  // the instant it was interrupted (a cancel of the job it had just finished an item of, say), which it never
  // received, goes to another worker: it is still held, and would otherwise wait for the shutdown to release it.
  const current = new Set<Fiber.RuntimeFiber<never, never>>()
  const workerEnded = (fiber: Fiber.RuntimeFiber<never, never>) =>
    Effect.sync(() => {
      current.delete(fiber)
      // The slot itself interrupted (the shutdown) may get here before its worker has ended; while draining, held
      // items are the shutdown's to release.
      if (draining || fiber.unsafePoll() === null) return
      const unreceived = takers.get(fiber)?.unsafeReclaim()
      takers.delete(fiber)
      if (unreceived !== undefined) ready.unsafeOfferAll([unreceived])
    })
  const slot = Effect.forever(
    Effect.flatMap(Effect.fork(worker), (fiber) => {
      current.add(fiber)
      return Effect.ensuring(Fiber.await(fiber), workerEnded(fiber))
    })
  )
  // Items held (leased and not yet handed over, waiting for a worker or being fetched) never outnumber the workers.
  const free = () => config.maxConcurrency - held.size
  const refill = Math.max(1, Math.floor(config.maxConcurrency / 4))

  // Leasing that fails for a reason other than a local fault (a bug, say) backs off from 50 ms to 5 s and is logged at
  // most every 30 s.
  let leaseFailures = 0
  let lastLeaseWarning = Number.NEGATIVE_INFINITY
  const leaseFailed = (cause: Cause.Cause<unknown>) =>
    Effect.suspend(() => {
      const fault = LocalFaults.fromCause("leasing items", cause)
      if (fault !== undefined) return Effect.as(faults.report(fault), [])
      leaseFailures++
      const now = clock.unsafeCurrentTimeMillis()
      const warn = now - lastLeaseWarning >= 30_000
      if (warn) lastLeaseWarning = now
      return Effect.as(
        Effect.zipRight(
          warn
            ? Effect.logWarning("leasing failed").pipe(
              Effect.annotateLogs({ failures: leaseFailures, cause: Cause.pretty(cause) })
            )
            : Effect.void,
          Effect.sleep(Duration.millis(Math.min(5_000, 50 * 2 ** Math.min(leaseFailures - 1, 10))))
        ),
        []
      )
    })

  const leaseLoop = Effect.gen(function*() {
    while (!draining) {
      // Degraded: leasing waits for the fault to clear (the prober's backoff).
      if (faults.current() !== undefined) {
        yield* faults.healthy
        continue
      }
      const room = free()
      if (room < refill) {
        // Armed before the workers can free anything (no suspension in between), so no wake-up is missed.
        const woken = Deferred.unsafeMake<void>(FiberId.none)
        wakeLeaser = woken
        yield* Deferred.await(woken)
        continue
      }
      // At most 50 a lease: every item leased wakes a worker in the same turn of the event loop.
      const failures = leaseFailures
      // Taken before the lease: a job created here while the lease runs ends the wait below at once.
      const created = jobs.nextCreated()
      const leased = yield* items.lease({ limit: Math.min(room, 50), owner, lease }).pipe(
        Effect.catchAllCause(leaseFailed)
      )
      if (leaseFailures === failures) leaseFailures = 0
      // An item whose lease expired while the database could not renew it may come back here while this instance
      // still has it (held by a worker or parked, or its outcome waiting for Results to commit it): it is not
      // started twice.
      let fresh: ReadonlyArray<Item> = leased
      for (const item of leased) {
        if (held.has(item.id) || results.holds(item.id)) {
          fresh = leased.filter((other) => !held.has(other.id) && !results.holds(other.id))
          break
        }
      }
      for (const item of fresh) held.add(item.id)
      if (tracing !== undefined && fresh.length > 0) {
        const now = tracing.now()
        for (const item of fresh) leasedAt.set(item.id, now)
      }
      ready.unsafeOfferAll(fresh)
      // Nothing to do: the next poll in 50 ms (for jobs created by other instances, items released or whose leases
      // expired), or at once when a job is created here, so that a job submitted to an idle instance starts without
      // waiting for the poll.
      if (leased.length === 0) yield* Effect.raceFirst(Effect.sleep("50 millis"), created)
    }
  })

  const heartbeat = Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(Duration.millis(Math.max(100, Math.floor(config.leaseMs / 3))))
      // The items held, and those whose outcomes wait for Results to commit them: this instance's until then.
      const ids = Array.from(held)
      for (const id of results.uncommitted()) ids.push(id)
      if (ids.length > 0) {
        yield* items.heartbeat(ids, owner, lease).pipe(
          Effect.catchAllCause((cause) => {
            const fault = LocalFaults.fromCause("renewing leases", cause)
            return fault !== undefined
              ? faults.report(fault)
              : Effect.logWarning("heartbeat failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(cause) }))
          })
        )
      }
    }
  })

  // Parked items: back to pending while the instance is degraded (once a second, those parked meanwhile too), so that
  // another instance may take them; back to the workers, still held, as soon as it is healthy again.
  const parker = Effect.gen(function*() {
    while (true) {
      if (parked.length === 0) {
        const wake = Deferred.unsafeMake<void>(FiberId.none)
        wakeParker = wake
        yield* Deferred.await(wake)
        continue
      }
      if (faults.current() === undefined) {
        const back = parked.splice(0)
        unreleasable.clear()
        ready.unsafeOfferAll(back)
        continue
      }
      const ids = parked.filter((item) => !unreleasable.has(item.id)).map((item) => item.id)
      if (ids.length > 0) {
        const exit = yield* Effect.exit(items.release(ids, owner))
        if (Exit.isSuccess(exit)) {
          const released = new Set(ids)
          let kept = 0
          for (const item of parked) if (!released.has(item.id)) parked[kept++] = item
          parked.length = kept
          for (const id of ids) held.delete(id)
          wakeLeaserIfRoom()
        } else {
          const fault = LocalFaults.fromCause("releasing parked items", exit.cause)
          if (fault !== undefined) yield* faults.report(fault)
          else {
            // Not a fault of this machine: tried once, then kept for when the instance is healthy again.
            for (const id of ids) unreleasable.add(id)
            yield* Effect.logWarning("releasing parked items failed").pipe(
              Effect.annotateLogs({ items: ids.length, cause: Cause.pretty(exit.cause) })
            )
          }
        }
      }
      yield* Effect.raceFirst(faults.healthy, Effect.sleep("1 second"))
    }
  })

  const slots = yield* Effect.forEach(
    Array.from({ length: config.maxConcurrency }),
    () => Effect.forkDaemon(slot)
  )
  // The lease loop and the heartbeat query the database every few milliseconds while idle: their SQL spans would be
  // traces of nothing, many a second, so they are left out of tracing (an item's trace starts with its span).
  const loop = yield* Effect.forkDaemon(Effect.withTracerEnabled(leaseLoop, false))
  const parking = yield* Effect.forkDaemon(parker)
  yield* Effect.forkScoped(Effect.withTracerEnabled(heartbeat, false))

  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      draining = true
      yield* Fiber.interrupt(loop)
      yield* Fiber.interrupt(parking)
      // Not started, or parked: back to pending at once.
      const waiting = ready.unsafeTakeAll().map((item) => item.id)
      for (const item of parked.splice(0)) waiting.push(item.id)
      for (const id of waiting) held.delete(id)
      const deadline = (yield* Clock.currentTimeMillis) + config.shutdownGraceMs
      while (held.size > 0 && (yield* Clock.currentTimeMillis) < deadline) yield* Effect.sleep("20 millis")
      const workers = Array.from(current)
      yield* Fiber.interruptAll(slots)
      yield* Fiber.interruptAll(workers)
      const cut = Array.from(held)
      held.clear()
      const released = [...waiting, ...cut]
      if (released.length > 0) {
        // Cut short by the shutdown, not by the items: back to pending, attempt not counted. A database that cannot
        // take it leaves them leased: they are fetched again once their leases expire.
        yield* items.release(released, owner).pipe(
          Effect.catchAllCause((cause) => {
            const fault = LocalFaults.fromCause("releasing unfinished items", cause)
            return Effect.logWarning(
              "releasing unfinished items failed; they are fetched again once their leases expire"
            )
              .pipe(Effect.annotateLogs({ items: released.length, cause: fault?.message ?? Cause.pretty(cause) }))
          })
        )
        yield* Effect.logInfo("released unfinished items").pipe(Effect.annotateLogs({ items: released.length }))
      }
    })
  )

  return Scheduler.of({
    isDraining: () => draining
  })
})

/**
 * The scheduler as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  Scheduler,
  never,
  | HarvestConfig
  | Instance
  | Items
  | Jobs
  | HostGate.HostGate
  | Fetcher.Fetcher
  | Results.Results
  | LocalFaults.LocalFaults
> = Layer.scoped(Scheduler, make)

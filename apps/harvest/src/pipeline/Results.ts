/**
 * Where the pipeline's outcomes become durable: each item's settlement (its result, and the body it stored) is put on
 * an Effect `Queue`, and one committer fiber commits what is queued in one transaction (a group commit): the items'
 * rows settled (`JobQueue.settleMany`, the lease owner checked row by row), the stored bodies recorded as referenced
 * in `harvest_files` (so that `BodyStore`'s sweep can tell orphans apart), and the jobs whose last item this commit
 * settled given their `finished_at`.
 *
 * A worker hands its item over and moves on at once: it does not wait for the commit. Closing the layer commits
 * what is still queued before the database closes (the layers are released in reverse), so nothing handed over is
 * lost by a graceful shutdown; a crash leaves the items leased, to be fetched again once their leases expire.
 *
 * A commit that meets a local fault (a full disk, a database that does not answer: `LocalFaults`) is not given up:
 * its outcomes are kept, the fault reported (the instance is degraded, leasing pauses), and they are committed once
 * the instance is healthy again, so an item whose body was fetched and stored is not fetched again.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
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
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import type * as Domain from "../Domain.js"
import { Instance } from "../Instance.js"
import * as LocalFaults from "../LocalFaults.js"
import { Items } from "../storage/Jobs.js"
import * as Telemetry from "../Telemetry.js"

/**
 * One item's outcome: its settlement in the queue, the body it stored (if any), and its job.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome {
  readonly settlement: JobQueue.Settlement<Domain.ItemResult>
  readonly fileId: string | null
  readonly job: string
  /** The item's span, while traces are exported: ended once the result is committed (see `Telemetry.openItem`). */
  readonly span?: Tracer.Span | undefined
}

/**
 * The results service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Results {
  /** Hands an outcome over to be committed with others; returns at once. */
  readonly settle: (outcome: Outcome) => Effect.Effect<void>
  /**
   * Whether the outcome of item `id` waits to be committed because the database met a local fault: the item is still
   * this instance's, so it must not be leased and fetched again meanwhile, even if its lease has expired.
   */
  readonly holds: (id: number) => boolean
  /**
   * The items whose outcomes were handed over and are not committed (nor given up) yet. They are still this
   * instance's: the scheduler's heartbeat renews their leases with those of the items it holds, so that a slow commit
   * does not let them expire and another instance fetch them again.
   */
  readonly uncommitted: () => Iterable<number>
}

/**
 * The results service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Results: Context.Tag<Results, Results> = Context.GenericTag<Results>("@spindle/harvest/Results")

/**
 * Commit tuning: a commit takes up to `maxBatch` outcomes, and waits `window` (default 5 ms) after the first one for
 * others (items finish a few at a time; without the wait nearly every commit held one item). While outcomes keep
 * coming (the last window brought some), it waits on, a window at a time, until it holds `maxBatch` or has waited
 * `maxWait` (default 50 ms) in all.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly maxBatch?: number | undefined
  readonly window?: Duration.DurationInput | undefined
  readonly maxWait?: Duration.DurationInput | undefined
}

const stop = Symbol("stop")

/**
 * Starts the committer for the life of the scope; closing the scope commits what is queued.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Results, never, SqlClient.SqlClient | Items | Instance | LocalFaults.LocalFaults | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const items = yield* Items
    const { owner } = yield* Instance
    const faults = yield* LocalFaults.LocalFaults
    const clock = yield* Effect.clock
    const recorder = Telemetry.recorder()
    const tracing = yield* Telemetry.TracingRef
    const maxBatch = options.maxBatch ?? 200
    const window = Duration.decode(options.window ?? "5 millis")
    const maxWait = Duration.toMillis(options.maxWait ?? "50 millis")
    const queue = yield* Queue.unbounded<Outcome | typeof stop>()
    let closed = false
    const closed_ = Deferred.unsafeMake<void>(FiberId.none)
    const closing = Deferred.await(closed_)

    const commit = Effect.fn("Results.commit")(function*(batch: ReadonlyArray<Outcome>) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const settled = yield* items.settleMany(batch.map((outcome) => outcome.settlement), owner)
        const now = yield* Clock.currentTimeMillis
        const files = new Set<string>()
        const jobs = new Set<string>()
        for (const outcome of batch) {
          if (!settled.has(outcome.settlement.id)) continue
          if (outcome.fileId !== null) files.add(outcome.fileId)
          jobs.add(outcome.job)
        }
        if (files.size > 0) {
          yield* sql`
            INSERT INTO harvest_files ${sql.insert(Array.from(files, (file_id) => ({ file_id, created_at: now })))}
            ON CONFLICT (file_id) DO NOTHING
          `
        }
        // The jobs whose last item this commit settled finish now, not when someone first reads them.
        const finished = yield* items.settledGroups(Array.from(jobs))
        if (finished.length > 0) {
          yield* sql`
            UPDATE harvest_jobs SET finished_at = ${now} WHERE ${sql.in("id", finished)} AND finished_at IS NULL
          `
        }
        return settled
      }))
    })

    // Outcomes whose commit met a local fault (a full disk, a database that does not answer): committed again once the
    // instance is healthy, the outcomes handed over meanwhile with them, rather than left for their items to be
    // fetched again. `waiting` holds their items' ids (see `holds`); both are empty unless a commit met a fault.
    const backlog: Array<Outcome> = []
    const waiting = new Set<number>()
    const keep = (outcome: Outcome) => {
      backlog.push(outcome)
      waiting.add(outcome.settlement.id)
    }

    // When each outcome was handed over (a Clock's nanoseconds), for `harvest_settle_duration_seconds`: an entry lives
    // from `settle` to its commit, or to its batch being given up. Its keys are the uncommitted items (`uncommitted`).
    const handedAt = new Map<number, bigint>()
    const forget = (batch: ReadonlyArray<Outcome>) => {
      for (const outcome of batch) {
        handedAt.delete(outcome.settlement.id)
        if (outcome.span !== undefined && tracing !== undefined) {
          Telemetry.endItem(tracing, outcome.span, Exit.fail("result not committed"))
        }
      }
    }

    const count = (batch: ReadonlyArray<Outcome>, settled: ReadonlySet<number>) => {
      const now = clock.unsafeCurrentTimeNanos()
      for (const outcome of batch) {
        const id = outcome.settlement.id
        const handed = handedAt.get(id)
        if (handed !== undefined) handedAt.delete(id)
        if (outcome.span !== undefined && tracing !== undefined) {
          // The commit as the item's last child, then the item itself, ending now.
          if (settled.has(id)) tracing.past("harvest.settle", outcome.span, handed ?? now, now)
          outcome.span.end(now, settled.has(id) ? Exit.void : Exit.fail("lease lost"))
        }
        if (!settled.has(id)) continue
        const settlement = outcome.settlement
        recorder.settled(
          settlement._tag === "Ack" ? undefined : settlement.result?.error?.code ?? "unknown",
          handed ?? now,
          now
        )
        if (waiting.size > 0) waiting.delete(id)
      }
    }

    // A commit that fails otherwise leaves its items leased: they are fetched again once their leases expire (at most
    // once recorded, as ever); the committer goes on with the next batch.
    const dropped = (items: number, cause: Cause.Cause<unknown>, fault: LocalFaults.LocalFault | undefined) =>
      Effect.logWarning("committing results failed; their items will be fetched again").pipe(
        Effect.annotateLogs({ items, cause: fault === undefined ? Cause.pretty(cause) : fault.message })
      )

    const commitLogged = (batch: ReadonlyArray<Outcome>) =>
      Effect.matchCauseEffect(commit(batch), {
        onSuccess: (settled) => Effect.sync(() => count(batch, settled)),
        onFailure: (cause) => {
          const fault = LocalFaults.fromCause("committing results", cause)
          if (fault === undefined) {
            forget(batch)
            return dropped(batch.length, cause, fault)
          }
          for (const outcome of batch) keep(outcome)
          return faults.report(fault)
        }
      })

    // Once the instance is healthy again (or the layer closes), the backlog and what was handed over since are
    // committed, `maxBatch` at a time. Another local fault keeps the rest for the next time, except while closing,
    // when one try is all: what cannot be committed then stays leased, to be fetched again. Whether `stop` was met.
    const catchUp = Effect.gen(function*() {
      yield* Effect.raceFirst(faults.healthy, closing)
      let stopped = false
      for (const outcome of yield* Queue.takeAll(queue)) {
        if (outcome === stop) stopped = true
        else keep(outcome)
      }
      while (backlog.length > 0) {
        const batch = backlog.slice(0, maxBatch)
        const exit = yield* Effect.exit(commit(batch))
        if (Exit.isSuccess(exit)) {
          count(batch, exit.value)
          backlog.splice(0, batch.length)
          for (const outcome of batch) waiting.delete(outcome.settlement.id)
          continue
        }
        const fault = LocalFaults.fromCause("committing results", exit.cause)
        if (fault !== undefined && !closed) {
          yield* faults.report(fault)
          return stopped
        }
        const gone = fault === undefined ? batch.length : backlog.length
        yield* dropped(gone, exit.cause, fault)
        const given = backlog.splice(0, gone)
        forget(given)
        for (const outcome of given) waiting.delete(outcome.settlement.id)
      }
      return stopped
    })

    // The committer is never interrupted (an interrupted `Queue.take` can lose the outcome it was just handed): closing
    // puts `stop` at the end of the queue, and the committer commits everything before it, then ends.
    const committer = Effect.gen(function*() {
      while (true) {
        if (backlog.length > 0) {
          if (yield* catchUp) return
          continue
        }
        const first = yield* Queue.take(queue)
        if (first === stop) return
        // The window ends early when the layer closes. A further window is waited only while the last one brought
        // outcomes: a commit pays its statements, its `COMMIT` and their effects once however many items it holds,
        // so while the pipeline is busy, fewer, larger commits cost the main thread less per item (10,000 items of
        // one job: 59 commits instead of 240); a trickle is still committed after one window.
        let size = yield* Queue.size(queue)
        if (size < maxBatch - 1) {
          const start = clock.unsafeCurrentTimeMillis()
          while (true) {
            yield* Effect.raceFirst(Effect.sleep(window), closing)
            const grown = yield* Queue.size(queue)
            if (
              closed || grown >= maxBatch - 1 || grown === size ||
              clock.unsafeCurrentTimeMillis() - start >= maxWait
            ) break
            size = grown
          }
        }
        const rest = Array.from(yield* Queue.takeUpTo(queue, maxBatch - 1))
        const end = rest.indexOf(stop)
        yield* commitLogged(
          end < 0 ? [first, ...rest] as Array<Outcome> : [first, ...rest.slice(0, end)] as Array<Outcome>
        )
        if (end >= 0) return
      }
    })

    const fiber = yield* Effect.forkDaemon(committer)
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.sync(() => {
          closed = true
          Deferred.unsafeDone(closed_, Effect.void)
        }),
        Effect.zipRight(Queue.offer(queue, stop), Fiber.await(fiber))
      )
    )

    return Results.of({
      // Past the close, an outcome is not taken: its item stays leased and is fetched again once the lease expires.
      settle: (outcome) => {
        if (closed) return Effect.interrupt
        handedAt.set(outcome.settlement.id, clock.unsafeCurrentTimeNanos())
        if (backlog.length > 0) waiting.add(outcome.settlement.id)
        return Effect.asVoid(Queue.offer(queue, outcome))
      },
      holds: (id) => waiting.size > 0 && waiting.has(id),
      uncommitted: () => handedAt.keys()
    })
  })

/**
 * The results service as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Results, never, SqlClient.SqlClient | Items | Instance | LocalFaults.LocalFaults> =>
  Layer.scoped(Results, make(options))

/**
 * Harvest's jobs: a row in `harvest_jobs` plus one work item per distinct URL in `@spindle/sql`'s queue, grouped
 * by job, all committed in one transaction before the job is acknowledged.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import { JobQueue } from "@spindle/sql"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import * as Domain from "../Domain.js"

// Rolls back a cancellation that finds the job finished.
class AlreadyFinished extends Data.TaggedError("AlreadyFinished") {}

/**
 * The item queue shared by the API and the pipeline: one work item per distinct URL of a job, grouped by job.
 *
 * @since 0.1.0
 * @category models
 */
export interface Items extends JobQueue.JobQueue<Domain.ItemPayload, Domain.ItemResult> {}

/**
 * The item queue's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Items: Context.Tag<Items, Items> = Context.GenericTag<Items>("@spindle/harvest/Items")

/**
 * The item queue over the database in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerItems: Layer.Layer<Items, never, SqlClient.SqlClient> = Layer.effect(
  Items,
  JobQueue.make({ name: "harvest", schema: Domain.ItemPayload, result: Domain.ItemResult })
)

interface JobRow {
  readonly id: string
  readonly total: number | string
  readonly options: string
  readonly cancelled: number | string
  readonly created_at: number | string
  readonly finished_at: number | string | null
}

const decodeOptions = Schema.decodeUnknownSync(Schema.parseJson(Domain.JobOptions))
const encodeOptions = Schema.encodeSync(Schema.parseJson(Domain.JobOptions))

/**
 * A job as stored.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job {
  readonly id: string
  readonly total: number
  readonly options: Domain.JobOptions
  readonly cancelled: boolean
  readonly createdAt: number
  readonly finishedAt: number | null
}

const toJob = (row: JobRow): Job => ({
  id: row.id,
  total: Number(row.total),
  options: decodeOptions(row.options),
  cancelled: Number(row.cancelled) === 1,
  createdAt: Number(row.created_at),
  finishedAt: row.finished_at === null ? null : Number(row.finished_at)
})

/**
 * What reading or writing jobs can fail with: the database, or a stored row that does not decode.
 *
 * @since 0.1.0
 * @category errors
 */
export type StoreError = SqlError.SqlError | ParseResult.ParseError

/**
 * Jobs: their records, their results, and the fibers fetching their items in this process, so that cancelling a job
 * is one operation covering both.
 *
 * @since 0.1.0
 * @category models
 */
export interface Jobs {
  /** The job `id`, if it exists. */
  readonly find: (id: string) => Effect.Effect<Option.Option<Job>, StoreError>
  /** Stores a job and one item per distinct URL, in one transaction. */
  readonly create: (
    urls: ReadonlyArray<string>,
    options: Domain.JobOptions
  ) => Effect.Effect<{ readonly id: string; readonly total: number }, StoreError>
  /** The job as the API shows it. */
  readonly view: (job: Job) => Effect.Effect<Domain.JobView, StoreError>
  /** Jobs newest first, `limit` of those whose status is in `statuses` (any, if empty), after the cursor's job. */
  readonly list: (options: {
    readonly statuses: ReadonlyArray<Domain.JobView["status"]>
    readonly limit: number
    readonly after: { readonly createdAt: number; readonly id: string } | undefined
  }) => Effect.Effect<
    {
      readonly items: ReadonlyArray<Domain.JobView>
      readonly next: Option.Option<{ readonly createdAt: number; readonly id: string }>
    },
    StoreError
  >
  /** A page of the job's settled results, by item id. */
  readonly results: (
    id: string,
    limit: number,
    cursor: number | undefined
  ) => Effect.Effect<
    { readonly items: ReadonlyArray<Domain.ItemResult>; readonly nextCursor: string | null },
    StoreError
  >
  /** Every settled result of the job, read from a cursor. */
  readonly exportResults: (id: string) => Stream.Stream<Domain.ItemResult, StoreError>
  /**
   * Registers `fiber`, running the fetch of one of the job's items, as work of the job's (`cancel` interrupts it) and
   * returns the function that ends it. The caller must call it on every exit, from a region `cancel` cannot cut (the
   * scheduler registers inside the uninterruptible region it already holds around an item), and the fiber must take
   * an interruption as its end (a cancel delivered as the item ends may land just after it): the scheduler's workers
   * are replaced when interrupted.
   */
  readonly unsafeEnter: (job: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) => () => void
  /**
   * Cancels a job that has not finished: its row marked and its unsettled items cancelled in one transaction, then
   * its fibers in this process interrupted. The number of items cancelled, or `None` when the job had already finished
   * (completed or cancelled), in which case nothing changes.
   */
  readonly cancel: (id: string) => Effect.Effect<Option.Option<number>, StoreError>
  /**
   * Waits for the next job this instance creates, from the moment of the call: `create` completes it once the job's
   * items are committed (and at once if one was created since the call). The scheduler, idle, waits on it beside its
   * poll, so a job submitted here is leased at once rather than at the next poll.
   */
  readonly nextCreated: () => Effect.Effect<void>
}

/**
 * The jobs service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Jobs: Context.Tag<Jobs, Jobs> = Context.GenericTag<Jobs>("@spindle/harvest/Jobs")

/**
 * The jobs service over the database in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Jobs, never, SqlClient.SqlClient | Items> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const items = yield* Items
  // The fibers fetching items in this process, by item id, and the item ids of each job: a cancel interrupts the
  // job's fibers and nothing else.
  const byJob = new Map<string, Set<Fiber.RuntimeFiber<unknown, unknown>>>()

  const find = Effect.fn("Jobs.find")(function*(id: string) {
    const rows = yield* sql<JobRow>`SELECT * FROM harvest_jobs WHERE id = ${id}`
    return rows.length === 0 ? Option.none<Job>() : Option.some(toJob(rows[0]))
  })

  // Completed by each job created here, then replaced: who called `nextCreated` before it is woken by it.
  let created = Deferred.unsafeMake<void>(FiberId.none)
  const nextCreated = () => Deferred.await(created)

  const create = Effect.fn("Jobs.create")(function*(urls: ReadonlyArray<string>, options: Domain.JobOptions) {
    const id = randomUUID()
    const distinct = Array.from(new Set(urls))
    const now = yield* Clock.currentTimeMillis
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO harvest_jobs ${
        sql.insert({ id, total: distinct.length, options: encodeOptions(options), cancelled: 0, created_at: now })
      }`
      yield* items.enqueue(distinct.map((url) => ({ url })), { group: id })
    }))
    const waiting = created
    created = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(waiting, Effect.void)
    return { id, total: distinct.length }
  })

  // The row and the counts are two reads: the commit that settles a job's last item (and writes its `finished_at`)
  // may fall between them. Counts read after the row that show the job complete, while the row has no `finished_at`,
  // mean the row is older than the counts: it is read again, so a completed job is never shown without its end.
  const fresh = (job: Job, counts: JobQueue.Counts) =>
    !job.cancelled && job.finishedAt === null && counts.pending + counts.leased === 0
      ? Effect.map(find(job.id), Option.getOrElse(() => job))
      : Effect.succeed(job)

  const view = Effect.fn("Jobs.view")(function*(job: Job) {
    const counts = yield* items.counts(job.id)
    return viewWith(yield* fresh(job, counts), counts)
  })

  const viewWith = (job: Job, counts: JobQueue.Counts): Domain.JobView => {
    const pending = counts.pending + counts.leased
    // Written when the job's last item settled (Results' commit) or when it was cancelled (`cancel`).
    const finishedAt = job.finishedAt
    const status: Domain.JobView["status"] = job.cancelled
      ? "cancelled"
      : pending === 0
      ? "completed"
      : counts.done + counts.failed + counts.leased > 0
      ? "running"
      : "queued"
    return {
      id: job.id,
      status,
      total: job.total,
      succeeded: counts.done,
      failed: counts.failed,
      pending,
      createdAt: new Date(job.createdAt).toISOString(),
      finishedAt: finishedAt === null ? null : new Date(finishedAt).toISOString()
    }
  }

  // Jobs newest first, `limit` of those whose status is in `statuses` (any, if empty), after the cursor's job. The
  // status derives from the items, so jobs are read in batches, counted in one query a batch, and filtered.
  const list = Effect.fn("Jobs.list")(function*(options: {
    readonly statuses: ReadonlyArray<Domain.JobView["status"]>
    readonly limit: number
    readonly after: { readonly createdAt: number; readonly id: string } | undefined
  }) {
    const found: Array<Domain.JobView> = []
    let after = options.after
    const batch = Math.max(options.limit, 100)
    while (true) {
      const rows = yield* sql<JobRow>`
          SELECT * FROM harvest_jobs
          ${
        after === undefined
          ? sql``
          : sql`WHERE created_at < ${after.createdAt} OR (created_at = ${after.createdAt} AND id < ${after.id})`
      }
          ORDER BY created_at DESC, id DESC
          LIMIT ${batch}
        `
      const jobs = rows.map(toJob)
      const counts = yield* items.countsByGroup(jobs.map((job) => job.id))
      for (const row of jobs) {
        const job = yield* fresh(row, counts.get(row.id)!)
        const jobView = viewWith(job, counts.get(job.id)!)
        if (options.statuses.length > 0 && !options.statuses.includes(jobView.status)) continue
        // One more than the page, to know whether a next page exists (a full last page gets no cursor).
        if (found.length === options.limit) {
          const last = found[found.length - 1]
          return { items: found, next: Option.some({ createdAt: Date.parse(last.createdAt), id: last.id }) }
        }
        found.push(jobView)
      }
      if (rows.length < batch) return { items: found, next: Option.none() }
      const last = jobs[jobs.length - 1]
      after = { createdAt: last.createdAt, id: last.id }
    }
  })

  const settledResult = (job: JobQueue.Job<Domain.ItemPayload, Domain.ItemResult>): Domain.ItemResult =>
    job.result ?? {
      url: job.payload.url,
      status: "failed",
      httpStatus: null,
      bytes: null,
      sha256: null,
      attempts: job.attempts,
      error: { code: "cancelled", message: "the job was cancelled" },
      fileId: null
    }

  const results = Effect.fn("Jobs.results")(function*(id: string, limit: number, cursor: number | undefined) {
    const page = yield* items.page({ group: id, limit, after: cursor, status: ["done", "failed", "cancelled"] })
    return {
      items: page.jobs.map(settledResult),
      nextCursor: Option.match(page.next, { onNone: () => null, onSome: String })
    }
  })

  const exportResults = (id: string) =>
    items.stream({ group: id, status: ["done", "failed", "cancelled"], pageSize: 500 }).pipe(
      Stream.map(settledResult)
    )

  // Cancels a job that has not finished: its row marked and its unsettled items cancelled, in one transaction; the
  // number of items cancelled, or none when the job had already finished (cancelled, or completed: nothing left to
  // cancel, the last item possibly settling meanwhile), in which case nothing changes.
  const cancel = Effect.fn("Jobs.cancel")(function*(id: string) {
    const finished = Effect.fail(new AlreadyFinished())
    return yield* sql.withTransaction(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const marked = yield* sql`
          UPDATE harvest_jobs SET cancelled = 1, finished_at = ${now} WHERE id = ${id} AND cancelled = 0 RETURNING id
        `
      if (marked.length === 0) return yield* finished
      const cancelled = yield* items.cancelGroup(id)
      return cancelled === 0 ? yield* finished : cancelled
    })).pipe(
      Effect.tap(() => interrupt(id)),
      Effect.map(Option.some),
      Effect.catchTag("AlreadyFinished", () => Effect.succeedNone)
    )
  })

  // The interruptions are sent in one synchronous step: every fiber found here is inside the job's `effect` when the
  // message is sent (it can only leave by running, and it is not running while this runs).
  const interrupt = (job: string) =>
    Effect.withFiberRuntime<void>((canceller) => {
      const running = byJob.get(job)
      if (running !== undefined) { for (const fiber of running) fiber.unsafeInterruptAsFork(canceller.id()) }
      return Effect.void
    })

  const unsafeEnter = (job: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) => {
    let running = byJob.get(job)
    if (running === undefined) {
      running = new Set()
      byJob.set(job, running)
    }
    const set = running.add(fiber)
    return () => {
      set.delete(fiber)
      if (set.size === 0 && byJob.get(job) === set) byJob.delete(job)
    }
  }

  return Jobs.of({ find, create, view, list, results, exportResults, unsafeEnter, cancel, nextCreated })
})

/**
 * The jobs service as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Jobs, never, SqlClient.SqlClient | Items> = Layer.effect(Jobs, make)

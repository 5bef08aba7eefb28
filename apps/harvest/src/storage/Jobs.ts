/**
 * Harvest's jobs: a row in `harvest_jobs` plus one work item per distinct URL in `@spindle/sql`'s queue, grouped
 * by job, all committed in one transaction before the job is acknowledged.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { JobQueue } from "@spindle/sql"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import * as Domain from "../Domain.js"

// Rolls back a cancellation that finds the job finished.
class AlreadyFinished extends Data.TaggedError("AlreadyFinished") {}

/**
 * The item queue shared by the API and the pipeline.
 *
 * @since 0.1.0
 * @category tags
 */
export class Items extends Context.Tag("@spindle/harvest/Items")<
  Items,
  JobQueue.JobQueue<Domain.ItemPayload, Domain.ItemResult>
>() {}

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
 * Job storage and queries.
 *
 * @since 0.1.0
 * @category services
 */
export class Jobs extends Effect.Service<Jobs>()("@spindle/harvest/Jobs", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const items = yield* Items

    const find = Effect.fn("Jobs.find")(function*(id: string) {
      const rows = yield* sql<JobRow>`SELECT * FROM harvest_jobs WHERE id = ${id}`
      return rows.length === 0 ? Option.none<Job>() : Option.some(toJob(rows[0]))
    })

    const create = Effect.fn("Jobs.create")(function*(urls: ReadonlyArray<string>, options: Domain.JobOptions) {
      const id = randomUUID()
      const distinct = Array.from(new Set(urls))
      const now = Date.now()
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO harvest_jobs ${
          sql.insert({ id, total: distinct.length, options: encodeOptions(options), cancelled: 0, created_at: now })
        }`
        yield* items.enqueue(distinct.map((url) => ({ url })), { group: id })
      }))
      return { id, total: distinct.length }
    })

    const view = Effect.fn("Jobs.view")(function*(job: Job) {
      return viewWith(job, yield* items.counts(job.id))
    })

    const viewWith = (job: Job, counts: JobQueue.Counts): Domain.JobView => {
      const pending = counts.pending + counts.leased
      // Written when the job's last item settled (BodyStore's commit) or when it was cancelled (`cancel`).
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
        for (const job of jobs) {
          const jobView = viewWith(job, counts.get(job.id)!)
          if (options.statuses.length > 0 && !options.statuses.includes(jobView.status)) continue
          found.push(jobView)
          if (found.length === options.limit) {
            return { items: found, next: Option.some({ createdAt: job.createdAt, id: job.id }) }
          }
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
        Effect.map(Option.some),
        Effect.catchTag("AlreadyFinished", () => Effect.succeedNone)
      )
    })

    const recent = Effect.fn("Jobs.recent")(function*(limit: number) {
      const rows = yield* sql<JobRow>`SELECT * FROM harvest_jobs ORDER BY created_at DESC, id LIMIT ${limit}`
      return rows.map(toJob)
    })

    return { find, create, view, list, results, exportResults, cancel, recent } as const
  })
}) {}

/**
 * A durable work queue in a SQL table, the same code on SQLite (embedded) and Postgres (several instances).
 *
 * Jobs are enqueued in one transaction; workers `lease` a batch (Postgres: `FOR UPDATE SKIP LOCKED`, so concurrent
 * instances never lease the same job; SQLite: one atomic `UPDATE … RETURNING`, its writes being serialized),
 * extend their leases with `heartbeat`, and settle each job with `ack`, `retry` (back to pending after a delay,
 * counted as an attempt), `fail` (terminal) or `release` (back to pending, not counted: the attempt was cut short
 * by a shutdown, not by the job). A lease that expires — its owner crashed — makes the job leasable again, with its
 * attempt count untouched. Every settlement names the owner, so a worker whose lease was taken over cannot settle
 * the job twice.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

/**
 * Where a job is.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "pending" | "leased" | "done" | "failed" | "cancelled"

/**
 * A job as read from the table.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job<A, R = unknown> {
  readonly id: number
  readonly payload: A
  /** The group the job was enqueued in, if any. */
  readonly group: string | null
  /** What `ack` or `fail` recorded, if anything. */
  readonly result: R | null
  readonly status: Status
  /** Attempts that ran to an end (`retry` or `fail`); a crashed or released attempt is not counted. */
  readonly attempts: number
  readonly availableAt: number
  readonly leaseOwner: string | null
  readonly leaseExpiresAt: number | null
  readonly lastError: string | null
}

/**
 * Jobs per status.
 *
 * @since 0.1.0
 * @category models
 */
export interface Counts {
  readonly pending: number
  readonly leased: number
  readonly done: number
  readonly failed: number
  readonly cancelled: number
}

/**
 * A queue of `A`s stored in `spindle_jobs` under one queue name.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobQueue<A, R = unknown> {
  readonly name: string
  /** Inserts every payload in one transaction (optionally in a group) and returns the new ids in order. */
  readonly enqueue: (
    payloads: Iterable<A>,
    options?: {
      readonly delay?: Duration.DurationInput | undefined
      readonly group?: string | undefined
    }
  ) => Effect.Effect<ReadonlyArray<number>, SqlError.SqlError | ParseResult.ParseError>
  /** Leases up to `limit` ready jobs (pending and due, or leased with an expired lease), oldest first. */
  readonly lease: (options: {
    readonly limit: number
    readonly owner: string
    readonly lease: Duration.DurationInput
  }) => Effect.Effect<ReadonlyArray<Job<A, R>>, SqlError.SqlError | ParseResult.ParseError>
  /** Extends the leases `owner` still holds among `ids`, and returns those ids (a missing id was lost). */
  readonly heartbeat: (
    ids: ReadonlyArray<number>,
    owner: string,
    lease: Duration.DurationInput
  ) => Effect.Effect<ReadonlyArray<number>, SqlError.SqlError>
  /** Marks the job done, recording `result` if given; `false` if `owner` no longer holds its lease. */
  readonly ack: (
    id: number,
    owner: string,
    result?: R | undefined
  ) => Effect.Effect<boolean, SqlError.SqlError | ParseResult.ParseError>
  /**
   * Counts a failed attempt of a job its worker goes on retrying itself, keeping the lease: a worker that crashes
   * then leaves the count behind for the next one (`Job.attempts`), so retries do not start over. `false` if the
   * lease was lost.
   */
  readonly recordAttempt: (id: number, owner: string, error: string) => Effect.Effect<boolean, SqlError.SqlError>
  /** Counts the attempt and makes the job pending again after `delay`; `false` if the lease was lost. */
  readonly retry: (
    id: number,
    owner: string,
    options: { readonly delay: Duration.DurationInput; readonly error: string }
  ) => Effect.Effect<boolean, SqlError.SqlError>
  /** Counts the attempt and marks the job failed for good, recording `result` if given; `false` if the lease was lost. */
  readonly fail: (
    id: number,
    owner: string,
    error: string,
    result?: R | undefined
  ) => Effect.Effect<boolean, SqlError.SqlError | ParseResult.ParseError>
  /**
   * Cancels every pending or leased job of `group` and returns how many. A worker holding one of them finds its
   * lease gone when it settles (`false`), so nothing is recorded twice.
   */
  readonly cancelGroup: (group: string) => Effect.Effect<number, SqlError.SqlError>
  /** Makes leased jobs pending again without counting an attempt; returns how many. */
  readonly release: (ids: ReadonlyArray<number>, owner: string) => Effect.Effect<number, SqlError.SqlError>
  /** Makes every job whose lease has expired pending again (start-up recovery); returns how many. */
  readonly reclaimExpired: Effect.Effect<number, SqlError.SqlError>
  /**
   * The owners holding at least one unexpired lease now: the workers known to be alive. A worker's scratch state
   * (temp files, say) may be removed by others once its owner is missing here.
   */
  readonly liveOwners: Effect.Effect<ReadonlyArray<string>, SqlError.SqlError>
  /** Jobs per status (of one group, if given). */
  readonly counts: (group?: string | undefined) => Effect.Effect<Counts, SqlError.SqlError>
  /** One keyset page of jobs after `after` (by id), optionally of some statuses and one group. */
  readonly page: (options: {
    readonly after?: number | undefined
    readonly limit: number
    readonly status?: Status | ReadonlyArray<Status> | undefined
    readonly group?: string | undefined
  }) => Effect.Effect<
    { readonly jobs: ReadonlyArray<Job<A, R>>; readonly next: Option.Option<number> },
    SqlError.SqlError | ParseResult.ParseError
  >
  /**
   * Every job (optionally of one status) as a stream read in keyset pages: each page is one short query, so the
   * stream never holds a connection — SQLite's only one included — between pages.
   */
  readonly stream: (options?: {
    readonly status?: Status | ReadonlyArray<Status> | undefined
    readonly group?: string | undefined
    readonly pageSize?: number | undefined
  }) => Stream.Stream<Job<A, R>, SqlError.SqlError | ParseResult.ParseError>
}

interface Row {
  readonly id: number | string
  readonly payload: string
  readonly status: string
  readonly attempts: number | string
  readonly available_at: number | string
  readonly lease_owner: string | null
  readonly lease_expires_at: number | string | null
  readonly last_error: string | null
  readonly group_key: string | null
  readonly result: string | null
}

const nullableNumber = (value: number | string | null): number | null => value === null ? null : Number(value)

/**
 * Creates a queue over the `SqlClient` in context. Run `Migrations.run` once first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I, R = unknown, RI = unknown>(options: {
  readonly name: string
  readonly schema: Schema.Schema<A, I>
  /** How results are stored. Default: any JSON value. */
  readonly result?: Schema.Schema<R, RI> | undefined
}): Effect.Effect<JobQueue<A, R>, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const queue = options.name
    const codec = Schema.parseJson(options.schema)
    const encode = Schema.encode(codec)
    const decode = Schema.decodeUnknown(codec)
    const resultCodec = Schema.parseJson((options.result ?? Schema.Unknown) as Schema.Schema<R, RI>)
    const encodeResult = (result: R | undefined) =>
      result === undefined ? Effect.succeed(null) : Schema.encode(resultCodec)(result)
    const decodeResult = Schema.decodeUnknown(resultCodec)
    const now = Clock.currentTimeMillis

    const toJob = (row: Row): Effect.Effect<Job<A, R>, ParseResult.ParseError> =>
      Effect.zipWith(decode(row.payload), row.result === null ? Effect.succeed(null) : decodeResult(row.result), (
        payload,
        result
      ) => ({
        id: Number(row.id),
        payload,
        group: row.group_key,
        result,
        status: row.status as Status,
        attempts: Number(row.attempts),
        availableAt: Number(row.available_at),
        leaseOwner: row.lease_owner,
        leaseExpiresAt: nullableNumber(row.lease_expires_at),
        lastError: row.last_error
      }))
    const toJobs = (rows: ReadonlyArray<Row>) =>
      Effect.forEach([...rows].sort((a, b) => Number(a.id) - Number(b.id)), toJob)

    const columns =
      sql`id, payload, status, attempts, available_at, lease_owner, lease_expires_at, last_error, group_key, result`

    const enqueue: JobQueue<A, R>["enqueue"] = (payloads, enqueueOptions) =>
      Effect.gen(function*() {
        const items = Array.from(payloads)
        if (items.length === 0) return []
        const encoded = yield* Effect.forEach(items, (p) => encode(p))
        const at = yield* now
        const availableAt = at + (enqueueOptions?.delay === undefined ? 0 : Duration.toMillis(enqueueOptions.delay))
        const ids: Array<number> = []
        // Batches keep each statement well under SQLite's and Postgres' parameter limits.
        yield* sql.withTransaction(Effect.forEach(chunks(encoded, 500), (batch) =>
          Effect.map(
            sql<{ id: number | string }>`INSERT INTO spindle_jobs ${
              sql.insert(batch.map((payload) => ({
                queue,
                group_key: enqueueOptions?.group ?? null,
                payload,
                status: "pending",
                attempts: 0,
                available_at: availableAt,
                created_at: at
              })))
            } RETURNING id`,
            (rows) => {
              for (const row of [...rows].sort((a, b) => Number(a.id) - Number(b.id))) ids.push(Number(row.id))
            }
          ), { discard: true }))
        return ids
      })

    const lease: JobQueue<A, R>["lease"] = ({ lease: leaseDuration, limit, owner }) =>
      Effect.gen(function*() {
        const at = yield* now
        const expires = at + Duration.toMillis(leaseDuration)
        const ready = sql`
          SELECT id FROM spindle_jobs
          WHERE queue = ${queue}
            AND ((status = 'pending' AND available_at <= ${at}) OR (status = 'leased' AND lease_expires_at <= ${at}))
          ORDER BY id
          LIMIT ${limit}
        `
        const candidates = sql.onDialectOrElse({
          pg: () => sql`${ready} FOR UPDATE SKIP LOCKED`,
          orElse: () => ready
        })
        const rows = yield* sql<Row>`
          UPDATE spindle_jobs
          SET status = 'leased', lease_owner = ${owner}, lease_expires_at = ${expires}
          WHERE id IN (${candidates})
          RETURNING ${columns}
        `
        return yield* toJobs(rows)
      })

    const settle = (id: number, owner: string, set: ReturnType<typeof sql.unsafe>) =>
      Effect.map(
        sql<{ id: number | string }>`
          UPDATE spindle_jobs SET ${set}
          WHERE id = ${id} AND status = 'leased' AND lease_owner = ${owner} AND queue = ${queue}
          RETURNING id
        `,
        (rows) => rows.length === 1
      )

    const statusFilter = (status: Status | ReadonlyArray<Status> | undefined) =>
      status === undefined
        ? sql``
        : typeof status === "string"
        ? sql`AND status = ${status}`
        : sql`AND status IN ${sql.in(status)}`

    const jobQueue: JobQueue<A, R> = {
      name: queue,
      enqueue,
      lease,
      heartbeat: (ids, owner, leaseDuration) =>
        ids.length === 0 ? Effect.succeed([]) : Effect.flatMap(now, (at) =>
          Effect.map(
            sql<{ id: number | string }>`
              UPDATE spindle_jobs SET lease_expires_at = ${at + Duration.toMillis(leaseDuration)}
              WHERE id IN ${sql.in(ids)} AND status = 'leased' AND lease_owner = ${owner} AND queue = ${queue}
              RETURNING id
            `,
            (rows) => rows.map((row) => Number(row.id)).sort((a, b) => a - b)
          )),
      ack: (id, owner, result) =>
        Effect.flatMap(Effect.zip(now, encodeResult(result)), ([at, stored]) =>
          settle(
            id,
            owner,
            sql`status = 'done', lease_owner = NULL, lease_expires_at = NULL, finished_at = ${at}, result = ${stored}`
          )),
      recordAttempt: (id, owner, error) =>
        settle(id, owner, sql`status = 'leased', attempts = attempts + 1, last_error = ${error}`),
      retry: (id, owner, { delay, error }) =>
        Effect.flatMap(now, (at) =>
          settle(
            id,
            owner,
            sql`status = 'pending', lease_owner = NULL, lease_expires_at = NULL, attempts = attempts + 1,
              available_at = ${at + Duration.toMillis(delay)}, last_error = ${error}`
          )),
      fail: (id, owner, error, result) =>
        Effect.flatMap(Effect.zip(now, encodeResult(result)), ([at, stored]) =>
          settle(
            id,
            owner,
            sql`status = 'failed', lease_owner = NULL, lease_expires_at = NULL, attempts = attempts + 1,
              finished_at = ${at}, last_error = ${error}, result = ${stored}`
          )),
      cancelGroup: (group) =>
        Effect.flatMap(now, (at) =>
          Effect.map(
            sql<{ id: number | string }>`
              UPDATE spindle_jobs
              SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, finished_at = ${at}
              WHERE queue = ${queue} AND group_key = ${group} AND status IN ('pending', 'leased')
              RETURNING id
            `,
            (rows) => rows.length
          )),
      release: (ids, owner) =>
        ids.length === 0 ? Effect.succeed(0) : Effect.map(
          sql<{ id: number | string }>`
            UPDATE spindle_jobs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
            WHERE id IN ${sql.in(ids)} AND status = 'leased' AND lease_owner = ${owner} AND queue = ${queue}
            RETURNING id
          `,
          (rows) => rows.length
        ),
      reclaimExpired: Effect.flatMap(now, (at) =>
        Effect.map(
          sql<{ id: number | string }>`
            UPDATE spindle_jobs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
            WHERE queue = ${queue} AND status = 'leased' AND lease_expires_at <= ${at}
            RETURNING id
          `,
          (rows) => rows.length
        )),
      liveOwners: Effect.flatMap(now, (at) =>
        Effect.map(
          sql<{ lease_owner: string }>`
            SELECT DISTINCT lease_owner FROM spindle_jobs
            WHERE queue = ${queue} AND status = 'leased' AND lease_expires_at > ${at}
          `,
          (rows) => rows.map((row) => row.lease_owner)
        )),
      counts: (group) =>
        Effect.map(
          sql<{ status: string; n: number | string }>`
            SELECT status, COUNT(*) AS n FROM spindle_jobs
            WHERE queue = ${queue} ${group === undefined ? sql`` : sql`AND group_key = ${group}`}
            GROUP BY status
          `,
          (rows) => {
            const counts = { pending: 0, leased: 0, done: 0, failed: 0, cancelled: 0 }
            for (const row of rows) counts[row.status as Status] = Number(row.n)
            return counts
          }
        ),
      page: ({ after, group, limit, status }) =>
        Effect.flatMap(
          sql<Row>`
            SELECT ${columns} FROM spindle_jobs
            WHERE queue = ${queue} AND id > ${after ?? 0} ${statusFilter(status)}
              ${group === undefined ? sql`` : sql`AND group_key = ${group}`}
            ORDER BY id
            LIMIT ${limit}
          `,
          (rows) =>
            Effect.map(toJobs(rows), (jobs) => ({
              jobs,
              next: jobs.length === limit ? Option.some(jobs[jobs.length - 1].id) : Option.none()
            }))
        ),
      stream: (streamOptions) =>
        Stream.paginateChunkEffect(0 as number, (after) =>
          Effect.map(
            jobQueue.page({
              after,
              limit: streamOptions?.pageSize ?? 500,
              status: streamOptions?.status,
              group: streamOptions?.group
            }),
            ({ jobs, next }) => [Chunk.unsafeFromArray(jobs as Array<Job<A, R>>), next] as const
          ))
    }
    return jobQueue
  })

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * A durable work queue in a SQL table, the same code on SQLite (embedded) and Postgres (several instances).
 *
 * Jobs are enqueued in one transaction; workers `lease` a batch (Postgres: `FOR UPDATE SKIP LOCKED`, so concurrent
 * instances never lease the same job; SQLite: one atomic `UPDATE … RETURNING`, its writes being serialized),
 * extend their leases with `heartbeat`, and settle each job with `ack` (or many at once with `settleMany`), `retry`
 * (back to pending after a delay,
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
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as JsonCodec from "./internal/jsonCodec.js"

/**
 * Where a job is.
 *
 * @example
 * ```ts
 * import type { JobQueue } from "@spindle/sql"
 *
 * const isFinished = (status: JobQueue.Status) => status === "done" || status === "failed" || status === "cancelled"
 *
 * console.log(isFinished("leased"), isFinished("cancelled")) // false true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "pending" | "leased" | "done" | "failed" | "cancelled"

/**
 * A job as read from the table.
 *
 * @example
 * ```ts
 * import { JobQueue, Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * const describe = (job: JobQueue.Job<{ readonly url: string }>) =>
 *   `#${job.id} ${job.payload.url}: ${job.status}, ${job.attempts} attempt(s), lease held by ${job.leaseOwner}`
 *
 * const program = Effect.gen(function*() {
 *   yield* Migrations.run
 *   const queue = yield* JobQueue.make({ name: "fetch", schema: Schema.Struct({ url: Schema.String }) })
 *   yield* queue.enqueue([{ url: "https://example.com/" }])
 *   const [job] = yield* queue.lease({ limit: 1, owner: "worker-1", lease: "30 seconds" })
 *   return describe(job)
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then(console.log)
 * // "#1 https://example.com/: leased, 0 attempt(s), lease held by worker-1"
 * ```
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
 * @example
 * ```ts
 * import { JobQueue, Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * const progress = (c: JobQueue.Counts) => {
 *   const finished = c.done + c.failed + c.cancelled
 *   return `${finished}/${finished + c.pending + c.leased}`
 * }
 *
 * const program = Effect.gen(function*() {
 *   yield* Migrations.run
 *   const queue = yield* JobQueue.make({ name: "emails", schema: Schema.String })
 *   const [first] = yield* queue.enqueue(["a@example.com", "b@example.com"], { group: "newsletter-42" })
 *   yield* queue.lease({ limit: 1, owner: "w1", lease: "1 minute" })
 *   yield* queue.ack(first, "w1")
 *   return progress(yield* queue.counts("newsletter-42"))
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then(console.log) // "1/2"
 * ```
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
 * An owner holding at least one unexpired lease, and when the last of its leases expires (epoch milliseconds, on the
 * queue's `Clock`): from that moment, unless it renews or leases again, its jobs may be taken over and its scratch
 * state is garbage.
 *
 * @example
 * ```ts
 * import { JobQueue, Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * const program = Effect.gen(function*() {
 *   yield* Migrations.run
 *   const queue = yield* JobQueue.make({ name: "owners", schema: Schema.String })
 *   yield* queue.enqueue(["a"])
 *   yield* queue.lease({ limit: 1, owner: "worker-1", lease: "1 minute" })
 *   const [live] = yield* queue.liveOwners
 *   return live.owner
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then(console.log) // "worker-1"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface LiveOwner {
  readonly owner: string
  readonly expiresAt: number
}

/**
 * One settlement of `settleMany`: an `ack` (the job is done) or a `fail` (failed for good, the attempt counted).
 *
 * @example
 * ```ts
 * import { JobQueue, Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * const program = Effect.gen(function*() {
 *   yield* Migrations.run
 *   const result = Schema.Struct({ status: Schema.Int })
 *   const queue = yield* JobQueue.make({ name: "fetch", schema: Schema.String, result })
 *   yield* queue.enqueue(["https://a.example/", "https://b.example/"])
 *   const [a, b] = yield* queue.lease({ limit: 2, owner: "w1", lease: "30 seconds" })
 *   // Settle a batch in one statement per kind (group commit).
 *   const settlements: Array<JobQueue.Settlement<{ readonly status: number }>> = [
 *     { _tag: "Ack", id: a.id, result: { status: 200 } },
 *     { _tag: "Fail", id: b.id, error: "http_status", result: { status: 404 } }
 *   ]
 *   const settled = yield* queue.settleMany(settlements, "w1")
 *   return [settled.size, yield* queue.counts()] as const
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then(console.log)
 * // [2, { pending: 0, leased: 0, done: 1, failed: 1, cancelled: 0 }]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Settlement<R> =
  | { readonly _tag: "Ack"; readonly id: number; readonly result?: R | undefined }
  | { readonly _tag: "Fail"; readonly id: number; readonly error: string; readonly result?: R | undefined }

/**
 * A queue of `A`s stored in `spindle_jobs` under one queue name.
 *
 * @example
 * ```ts
 * import { JobQueue, Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * // One worker's loop body: lease a batch, keep the leases alive, settle each job.
 * const work = (queue: JobQueue.JobQueue<string>, owner: string) =>
 *   Effect.gen(function*() {
 *     const jobs = yield* queue.lease({ limit: 10, owner, lease: "30 seconds" })
 *     yield* queue.heartbeat(jobs.map((j) => j.id), owner, "30 seconds")
 *     for (const job of jobs) {
 *       if (job.payload.startsWith("https://")) yield* queue.ack(job.id, owner)
 *       else yield* queue.retry(job.id, owner, { delay: "1 minute", error: "not https" })
 *     }
 *     return jobs.length
 *   })
 *
 * const program = Effect.gen(function*() {
 *   yield* Migrations.run
 *   const queue = yield* JobQueue.make({ name: "urls", schema: Schema.String })
 *   yield* queue.enqueue(["https://a.example/", "http://b.example/"])
 *   yield* work(queue, "worker-1")
 *   return yield* queue.counts()
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then(console.log) // { pending: 1, leased: 0, done: 1, failed: 0, cancelled: 0 }
 * ```
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
  /**
   * Leases up to `limit` ready jobs in one statement: those whose lease expired first (earliest expiry first), then
   * pending jobs that are due (earliest due first, then by id). Each kind is one indexed, limited select, so the cost
   * does not grow with the number of jobs waiting. Returned in id order.
   */
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
   * Settles many jobs `owner` leased — each as `ack` or `fail` would — in one statement per kind, and returns the ids
   * whose settlement took (a missing id's lease was lost). Each job is settled atomically on its own; run it in a
   * transaction to commit it together with other writes.
   */
  readonly settleMany: (
    settlements: ReadonlyArray<Settlement<R>>,
    owner: string
  ) => Effect.Effect<ReadonlySet<number>, SqlError.SqlError | ParseResult.ParseError>
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
   * The owners holding at least one unexpired lease now (the workers known to be alive), each with the moment its
   * last lease expires. A worker's scratch state (temp files, say) may be removed by others once its owner is missing
   * here; `expiresAt` says when to look again for an owner that may have died.
   */
  readonly liveOwners: Effect.Effect<ReadonlyArray<LiveOwner>, SqlError.SqlError>
  /** Jobs per status (of one group, if given). */
  readonly counts: (group?: string | undefined) => Effect.Effect<Counts, SqlError.SqlError>
  /** Jobs per status of each of `groups` in one query (a list of groups, say); a group with no jobs counts zeros. */
  readonly countsByGroup: (
    groups: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyMap<string, Counts>, SqlError.SqlError>
  /**
   * Those of `groups` that have no pending or leased job left: the groups whose last job has been settled or
   * cancelled. One indexed lookup per group, however many jobs it holds (counting them would read every row).
   */
  readonly settledGroups: (groups: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string>, SqlError.SqlError>
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

type LeasedRow = Omit<Row, "status" | "lease_owner" | "lease_expires_at">

const nullableNumber = (value: number | string | null): number | null => value === null ? null : Number(value)

/**
 * Creates a queue over the `SqlClient` in context. Run `Migrations.run` once first.
 *
 * @example
 * ```ts
 * import { JobQueue, Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 * import * as Stream from "effect/Stream"
 *
 * const Payload = Schema.Struct({ url: Schema.String, depth: Schema.Int })
 *
 * const program = Effect.gen(function*() {
 *   yield* Migrations.run
 *   const queue = yield* JobQueue.make({ name: "crawl", schema: Payload })
 *   yield* queue.enqueue([{ url: "https://example.com/", depth: 0 }, { url: "https://example.com/a", depth: 1 }])
 *   // Keyset pages, one short query each: no connection is held between pages.
 *   return yield* queue.stream({ status: "pending", pageSize: 100 }).pipe(
 *     Stream.map((job) => job.payload.url),
 *     Stream.runCollect
 *   )
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then((urls) => console.log(Array.from(urls)))
 * // ["https://example.com/", "https://example.com/a"]
 * ```
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
    const payloads = JsonCodec.make(options.schema)
    const encode = payloads.encode
    const results = JsonCodec.make((options.result ?? Schema.Unknown) as Schema.Schema<R, RI>)
    const encodeResult = (result: R | undefined): Either.Either<string | null, ParseResult.ParseError> =>
      result === undefined ? Either.right(null) : results.encode(result)
    const now = Clock.currentTimeMillis

    // Decoded synchronously, without an effect per row: a lease or a page brings hundreds of them.
    const decodeEither = payloads.decode
    const decodeResultEither = results.decode
    // `leased`: the lease a lease statement has just written, which it does not read back (see `leaseColumnsText`).
    const toJob = (
      row: Row | LeasedRow,
      leased: { readonly owner: string; readonly expiresAt: number } | undefined
    ): Either.Either<Job<A, R>, ParseResult.ParseError> => {
      const payload = decodeEither(row.payload)
      if (Either.isLeft(payload)) return Either.left(payload.left)
      const result = row.result === null ? Either.right(null) : decodeResultEither(row.result)
      if (Either.isLeft(result)) return Either.left(result.left)
      return Either.right({
        id: Number(row.id),
        payload: payload.right,
        group: row.group_key,
        result: result.right,
        status: leased === undefined ? (row as Row).status as Status : "leased",
        attempts: Number(row.attempts),
        availableAt: Number(row.available_at),
        leaseOwner: leased === undefined ? (row as Row).lease_owner : leased.owner,
        leaseExpiresAt: leased === undefined ? nullableNumber((row as Row).lease_expires_at) : leased.expiresAt,
        lastError: row.last_error
      })
    }
    const toJobs = (
      rows: ReadonlyArray<Row | LeasedRow>,
      leased?: { readonly owner: string; readonly expiresAt: number }
    ): Effect.Effect<Array<Job<A, R>>, ParseResult.ParseError> =>
      Effect.suspend(() => {
        const sorted = [...rows].sort((a, b) => Number(a.id) - Number(b.id))
        const jobs: Array<Job<A, R>> = new Array(sorted.length)
        for (let i = 0; i < sorted.length; i++) {
          const job = toJob(sorted[i], leased)
          if (Either.isLeft(job)) return Effect.fail(job.left)
          jobs[i] = job.right
        }
        return Effect.succeed(jobs)
      })

    const columnsText =
      "id, payload, status, attempts, available_at, lease_owner, lease_expires_at, last_error, group_key, result"
    const columns = sql.unsafe(columnsText)
    // What a lease reads back: not the status, owner and expiry it has just written itself.
    const leaseColumnsText = "id, payload, attempts, available_at, last_error, group_key, result"

    const enqueue: JobQueue<A, R>["enqueue"] = (payloads, enqueueOptions) =>
      Effect.gen(function*() {
        const items = Array.isArray(payloads) ? payloads as ReadonlyArray<A> : Array.from(payloads)
        if (items.length === 0) return []
        const at = yield* now
        const availableAt = at + (enqueueOptions?.delay === undefined ? 0 : Duration.toMillis(enqueueOptions.delay))
        const ids: Array<number> = []
        const group = enqueueOptions?.group ?? null
        // Batches keep each statement well under SQLite's and Postgres' parameter limits. Each batch's text is built
        // once per size (a job's batches are all of one size but its last), not compiled again from a template with
        // seven parameters per row, and the fiber yields between batches: 100,000 payloads are 200 statements, and
        // on SQLite (whose driver answers synchronously) they would otherwise hold the event loop for their whole
        // run, half a second.
        yield* sql.withTransaction(Effect.forEach(chunks(items, maxEnqueueRows), (batch, i): Effect.Effect<
          void,
          SqlError.SqlError | ParseResult.ParseError
        > => {
          // Encoded batch by batch, synchronously, without an effect per payload: a job may bring 100,000 of them,
          // whose encoding in one piece held the loop for tens of milliseconds. A payload that does not encode fails
          // the enqueue, and the transaction takes back the batches inserted before it.
          const params: Array<unknown> = []
          for (const payload of batch) {
            const encoded = encode(payload)
            if (Either.isLeft(encoded)) return Effect.fail(encoded.left)
            params.push(queue, group, encoded.right, availableAt, at)
          }
          const insert = Effect.map(sql.unsafe<{ id: number | string }>(enqueueText(batch.length), params), (rows) => {
            for (const row of [...rows].sort((a, b) => Number(a.id) - Number(b.id))) ids.push(Number(row.id))
          })
          return i === 0 ? insert : Effect.zipRight(Effect.yieldNow(), insert)
        }, { discard: true }))
        return ids
      })

    // Statements whose text is built once per queue, with the dialect's placeholders.
    const placeholder = sql.onDialectOrElse({ pg: () => (n: number) => `$${n}`, orElse: () => (_: number) => "?" })

    // A full batch's text is built once and reused; a shorter one (a job's last batch) is built for its one use.
    let fullBatchText: string | undefined
    const enqueueText = (rows: number): string => {
      if (rows === maxEnqueueRows && fullBatchText !== undefined) return fullBatchText
      let n = 0
      const values: Array<string> = []
      for (let i = 0; i < rows; i++) {
        values.push(
          `(${placeholder(++n)}, ${placeholder(++n)}, ${placeholder(++n)}, 'pending', 0, ${placeholder(++n)}, ${
            placeholder(++n)
          })`
        )
      }
      const text =
        "INSERT INTO spindle_jobs (queue, group_key, payload, status, attempts, available_at, created_at) VALUES " +
        `${values.join(", ")} RETURNING id`
      if (rows === maxEnqueueRows) fullBatchText = text
      return text
    }

    // One statement, two indexed selects each stopping at its `LIMIT`: expired leases (`spindle_jobs_leases`), then
    // due pending jobs in the order of `spindle_jobs_ready`, as many as the expired ones left room for. One `OR` of
    // both made SQLite gather every ready row through two indexes and sort them before the `LIMIT`, 3 ms per lease
    // with 10,000 jobs pending. Postgres locks what it selects, skipping rows other leasers hold.
    // The statement's text is built once (compiling the template again for every lease showed in the profile).
    // On SQLite, the expired and the due jobs are one `UNION ALL` under the `LIMIT`: SQLite runs its arms in order and
    // stops at the `LIMIT`, so expired leases still come first, without the common table expressions Postgres needs
    // for its row locks (materializing `expired` and counting it again took a third of the lease's time: 0.25 ms of
    // 0.75 ms for 50 jobs of 10,000).
    const leaseText = sql.onDialectOrElse({
      pg: () =>
        `WITH expired AS (
            SELECT id FROM spindle_jobs
            WHERE queue = $1 AND status = 'leased' AND lease_expires_at <= $2
            ORDER BY lease_expires_at
            LIMIT $3 FOR UPDATE SKIP LOCKED
          ), due AS (
            SELECT id FROM spindle_jobs
            WHERE queue = $4 AND status = 'pending' AND available_at <= $5
            ORDER BY available_at, id
            LIMIT ($6 - (SELECT COUNT(*) FROM expired)) FOR UPDATE SKIP LOCKED
          )
          UPDATE spindle_jobs
          SET status = 'leased', lease_owner = $7, lease_expires_at = $8
          WHERE id IN (SELECT id FROM expired UNION ALL SELECT id FROM due)
          RETURNING ${leaseColumnsText}`,
      orElse: () =>
        `UPDATE spindle_jobs
          SET status = 'leased', lease_owner = ?, lease_expires_at = ?
          WHERE id IN (
            SELECT id FROM (
              SELECT id FROM spindle_jobs
              WHERE queue = ? AND status = 'leased' AND lease_expires_at <= ?
              ORDER BY lease_expires_at
              LIMIT ?
            )
            UNION ALL
            SELECT id FROM (
              SELECT id FROM spindle_jobs
              WHERE queue = ? AND status = 'pending' AND available_at <= ?
              ORDER BY available_at, id
              LIMIT ?
            )
            LIMIT ?
          )
          RETURNING ${leaseColumnsText}`
    })
    const sqliteLease = sql.onDialectOrElse({ pg: () => false, orElse: () => true })
    const lease: JobQueue<A, R>["lease"] = ({ lease: leaseDuration, limit, owner }) =>
      Effect.flatMap(now, (at) => {
        const expiresAt = at + Duration.toMillis(leaseDuration)
        return Effect.flatMap(
          sql.unsafe<LeasedRow>(
            leaseText,
            sqliteLease
              ? [owner, expiresAt, queue, at, limit, queue, at, limit, limit]
              : [queue, at, limit, queue, at, limit, owner, expiresAt]
          ),
          (rows) => toJobs(rows, { owner, expiresAt })
        )
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

    // One `UPDATE` for many jobs: per-job values through `CASE id WHEN … THEN … END`, the owner checked per row, and
    // `RETURNING id` naming the jobs whose lease was still held. The statement's text depends only on its kind and on
    // its number of rows, rounded up to one of a few sizes (padded with id 0, which no job has): a steady stream of
    // batches of varying sizes reuses a handful of statements, each built once here and prepared once by the driver,
    // instead of compiling and preparing a new one for nearly every batch.
    const texts = new Map<string, string>()
    const settleText = (failed: boolean, size: number) => {
      const key = `${failed ? "failed" : "done"}:${size}`
      let text = texts.get(key)
      if (text !== undefined) return text
      let n = 0
      const next = () => placeholder(++n)
      const finishedAt = next()
      const cases = (): string => {
        let out = ""
        for (let i = 0; i < size; i++) out += ` WHEN ${next()} THEN ${next()}`
        return `CASE id${out} END`
      }
      const set = failed
        ? `status = 'failed', lease_owner = NULL, lease_expires_at = NULL, attempts = attempts + 1, ` +
          `finished_at = ${finishedAt}, last_error = ${cases()}, result = ${cases()}`
        : `status = 'done', lease_owner = NULL, lease_expires_at = NULL, finished_at = ${finishedAt}, ` +
          `result = ${cases()}`
      const ids = Array.from({ length: size }, next).join(", ")
      text = `UPDATE spindle_jobs SET ${set} WHERE id IN (${ids}) AND status = 'leased' ` +
        `AND lease_owner = ${next()} AND queue = ${next()} RETURNING id`
      texts.set(key, text)
      return text
    }
    const settleMany: JobQueue<A, R>["settleMany"] = (settlements, owner) =>
      Effect.gen(function*() {
        const settled = new Set<number>()
        if (settlements.length === 0) return settled
        const at = yield* now
        const acks: Array<{ readonly id: number; readonly stored: string | null; readonly error: null }> = []
        const fails: Array<{ readonly id: number; readonly stored: string | null; readonly error: string }> = []
        for (const settlement of settlements) {
          const stored = yield* encodeResult(settlement.result)
          if (settlement._tag === "Ack") acks.push({ id: settlement.id, stored, error: null })
          else fails.push({ id: settlement.id, stored, error: settlement.error })
        }
        const run = (failed: boolean, rows: ReadonlyArray<typeof fails[number] | typeof acks[number]>) => {
          const size = paddedSize(rows.length)
          const params: Array<unknown> = [at]
          const cases = (value: (row: typeof rows[number]) => string | null) => {
            for (const row of rows) params.push(row.id, value(row))
            for (let i = rows.length; i < size; i++) params.push(0, null)
          }
          if (failed) cases((row) => row.error)
          cases((row) => row.stored)
          for (const row of rows) params.push(row.id)
          for (let i = rows.length; i < size; i++) params.push(0)
          params.push(owner, queue)
          return Effect.map(sql.unsafe<{ id: number | string }>(settleText(failed, size), params), (rows) => {
            for (const row of rows) settled.add(Number(row.id))
          })
        }
        for (const batch of chunks(acks, maxSettleRows)) yield* run(false, batch)
        for (const batch of chunks(fails, maxSettleRows)) yield* run(true, batch)
        return settled
      })

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
      settleMany,
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
          sql<{ lease_owner: string; expires_at: number | string }>`
            SELECT lease_owner, MAX(lease_expires_at) AS expires_at FROM spindle_jobs
            WHERE queue = ${queue} AND status = 'leased' AND lease_expires_at > ${at}
            GROUP BY lease_owner
          `,
          (rows) => rows.map((row) => ({ owner: row.lease_owner, expiresAt: Number(row.expires_at) }))
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
      countsByGroup: (groups) => {
        const byGroup = new Map<
          string,
          { pending: number; leased: number; done: number; failed: number; cancelled: number }
        >(
          groups.map((group) => [group, { pending: 0, leased: 0, done: 0, failed: 0, cancelled: 0 }])
        )
        if (groups.length === 0) return Effect.succeed(byGroup)
        return Effect.map(
          sql<{ group_key: string; status: string; n: number | string }>`
            SELECT group_key, status, COUNT(*) AS n FROM spindle_jobs
            WHERE queue = ${queue} AND group_key IN ${sql.in(groups)}
            GROUP BY group_key, status
          `,
          (rows) => {
            for (const row of rows) {
              const counts = byGroup.get(row.group_key)
              if (counts !== undefined) counts[row.status as Status] = Number(row.n)
            }
            return byGroup
          }
        )
      },
      settledGroups: (groups) =>
        Effect.map(
          Effect.forEach(groups, (group) =>
            sql<{ open: number }>`
              SELECT 1 AS open FROM spindle_jobs
              WHERE queue = ${queue} AND group_key = ${group} AND status IN ('pending', 'leased')
              LIMIT 1
            `),
          (found) => groups.filter((_, i) => found[i].length === 0)
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

// The sizes a settlement statement is padded to: at most a third of its parameters are padding, and a queue settling
// batches of any size up to the largest uses at most these few statements of each kind.
const settleSizes = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 500]
const maxSettleRows = 500
const maxEnqueueRows = 500
const paddedSize = (rows: number): number => {
  for (const size of settleSizes) if (size >= rows) return size
  return maxSettleRows
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * The schema of `@spindle/sql`, as `@effect/sql` migrations that run unchanged on SQLite and Postgres.
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/**
 * The migrations, by name (applied in order of their numeric prefix).
 *
 * @example
 * ```ts
 * import { Migrations } from "@spindle/sql"
 * import * as Migrator from "@effect/sql/Migrator"
 *
 * // Run Spindle's migrations under a table name of your own, alongside your application's.
 * const runSpindleMigrations = Migrator.make({})({ loader: Migrations.loader, table: "app_spindle_migrations" })
 * ```
 *
 * @since 0.1.0
 * @category migrations
 */
export const loader: Migrator.Loader = Migrator.fromRecord({
  "1_spindle_jobs": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const id = sql.onDialectOrElse({ pg: () => sql`BIGSERIAL PRIMARY KEY`, orElse: () => sql`INTEGER PRIMARY KEY` })
    yield* sql`
      CREATE TABLE spindle_jobs (
        id ${id},
        queue TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        available_at BIGINT NOT NULL,
        lease_owner TEXT,
        lease_expires_at BIGINT,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        finished_at BIGINT
      )
    `
    yield* sql`CREATE INDEX spindle_jobs_ready ON spindle_jobs (queue, status, available_at, id)`
    yield* sql`CREATE INDEX spindle_jobs_leases ON spindle_jobs (queue, status, lease_expires_at)`
  }),
  "2_spindle_jobs_groups": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // A group is a batch of jobs settled or cancelled together (a Harvest job's URLs); `result` is what `ack` or
    // `fail` recorded.
    yield* sql`ALTER TABLE spindle_jobs ADD COLUMN group_key TEXT`
    yield* sql`ALTER TABLE spindle_jobs ADD COLUMN result TEXT`
    yield* sql`CREATE INDEX spindle_jobs_groups ON spindle_jobs (queue, group_key, id)`
  }),
  // Whether a group has anything left to do, and its counts per status, without reading each of its rows.
  "3_spindle_jobs_group_status": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE INDEX spindle_jobs_group_status ON spindle_jobs (queue, group_key, status)`
  }),
  // The lease's two indexes hold only the rows it looks for: pending jobs by when they are due, leased jobs by when
  // their lease expires. Keyed on `status`, every job stayed in both for good, and each change of status moved an
  // entry within each of them: a job's lease and settlement updated four index entries there, now two (measured on
  // SQLite with 10,000 jobs: lease and settlement together about half the time). Leases name the status as a literal,
  // so both SQLite and Postgres match these predicates.
  "4_spindle_jobs_partial_indexes": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP INDEX spindle_jobs_ready`
    yield* sql`DROP INDEX spindle_jobs_leases`
    yield* sql`CREATE INDEX spindle_jobs_ready ON spindle_jobs (queue, available_at, id) WHERE status = 'pending'`
    yield* sql`CREATE INDEX spindle_jobs_leases ON spindle_jobs (queue, lease_expires_at) WHERE status = 'leased'`
  })
})

/**
 * Applies every pending migration, recording them in `spindle_migrations`.
 *
 * @example
 * ```ts
 * import { Migrations } from "@spindle/sql"
 * import { SqliteClient } from "@effect/sql-sqlite-node"
 * import * as Effect from "effect/Effect"
 *
 * // Idempotent: a second run applies nothing.
 * const program = Effect.gen(function*() {
 *   const first = yield* Migrations.run
 *   const second = yield* Migrations.run
 *   return [first.map(([, name]) => name), second.length] as const
 * }).pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
 *
 * Effect.runPromise(program).then(console.log)
 * // [["spindle_jobs", "spindle_jobs_groups", "spindle_jobs_group_status", "spindle_jobs_partial_indexes"], 0]
 * ```
 *
 * @since 0.1.0
 * @category migrations
 */
export const run: Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  Migrator.MigrationError | SqlError.SqlError,
  SqlClient.SqlClient
> = Migrator.make({})({ loader, table: "spindle_migrations" })

/**
 * Harvest's database: SQLite in `DATA_DIR/harvest.db` by default, Postgres when `DATABASE_URL` is set; the same
 * code and migrations for both.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import { Migrations } from "@spindle/sql"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as path from "node:path"
import { HarvestConfig } from "../HarvestConfig.js"
import * as Startup from "../Startup.js"
import { StorageThread } from "./StorageThread.js"

/**
 * Harvest's own tables (the work items live in `@spindle/sql`'s `spindle_jobs`).
 *
 * @since 0.1.0
 * @category migrations
 */
export const loader: Migrator.Loader = Migrator.fromRecord({
  "1_harvest_jobs": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE harvest_jobs (
        id TEXT PRIMARY KEY,
        total INTEGER NOT NULL,
        options TEXT NOT NULL,
        cancelled INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        finished_at BIGINT
      )
    `
  }),
  // Every stored body a result points to, written in the transaction that records the result, so that a body no
  // result points to can be told apart cheaply (see BodyStore). Results recorded before this table are added here.
  "2_harvest_files": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE harvest_files (file_id TEXT PRIMARY KEY, created_at BIGINT NOT NULL)`
    const rows = yield* sql<{ result: string }>`
      SELECT result FROM spindle_jobs WHERE queue = 'harvest' AND result IS NOT NULL
    `
    const ids = new Set<string>()
    for (const row of rows) {
      const fileId = (JSON.parse(row.result) as { fileId?: unknown }).fileId
      if (typeof fileId === "string") ids.add(fileId)
    }
    const now = yield* Clock.currentTimeMillis
    yield* Effect.forEach(
      ids,
      (fileId) => sql`INSERT INTO harvest_files (file_id, created_at) VALUES (${fileId}, ${now})`,
      { discard: true }
    )
  }),
  // finished_at is now written when a job's last item settles, not when the job is first read: jobs that finished
  // unread before get the time their last item settled.
  "3_harvest_jobs_finished_at": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      UPDATE harvest_jobs SET finished_at = (
        SELECT MAX(s.finished_at) FROM spindle_jobs s WHERE s.queue = 'harvest' AND s.group_key = harvest_jobs.id
      )
      WHERE finished_at IS NULL AND NOT EXISTS (
        SELECT 1 FROM spindle_jobs s
        WHERE s.queue = 'harvest' AND s.group_key = harvest_jobs.id AND s.status IN ('pending', 'leased')
      )
    `
  }),
  // One row that `probe` writes while the instance is degraded, to learn whether the database takes writes again.
  "4_harvest_probe": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE harvest_probe (id INTEGER PRIMARY KEY, probed_at BIGINT NOT NULL)`
  })
})

/**
 * Whether the database takes a write now: one row of `harvest_probe` written (SQLite must append to its log, so a
 * full disk fails it; Postgres must be connected). Run only while the instance is degraded (`LocalFaults`).
 *
 * @since 0.1.0
 * @category probes
 */
export const probe: Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      sql`
        INSERT INTO harvest_probe (id, probed_at) VALUES (1, ${now})
        ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at
      `.pipe(Effect.asVoid))
)

// How long a SQLite write waits for another connection's lock (better-sqlite3's default is 5 s). The wait holds the
// event loop, and a write lock is held for milliseconds by Harvest: past this, the database is locked by something
// else, and the write fails with `SQLITE_BUSY` (a local fault: the instance is degraded until the lock goes).
const busyTimeout = "PRAGMA busy_timeout = 250"

// Commits under WAL are durable against a crash of the process (SIGKILL included) without an fsync each: with the
// default `synchronous = FULL` every commit waited for the disk, 3.5-4 ms on this project's virtual disks against
// 0.16 ms (a loop of 2,000 commits), and better-sqlite3 waits on the event loop, so a job's commits held it for
// seconds. With `NORMAL` the WAL is synced at checkpoints: an operating-system crash or a power cut can lose the
// last commits, whose items are then leased and fetched again (at-least-once, as after any lost lease); the bodies
// they name are not synced either, and a body left without its row is swept.
const synchronous = "PRAGMA synchronous = NORMAL"

// Checkpoints (copying the WAL's frames into the database file, with an fsync before and after) run on the storage
// thread (`StorageThread`) every 200 ms, not on the connection that commits, where SQLite runs them by default after
// each thousand pages, on the event loop's thread. Measured on disk, the 10,000-URL job of `pnpm bench` had a loop p99
// of 17.7 to 24.4 ms (median 22.6) with checkpoints on the loop and 16.9 to 22.0 (median 17.7) on a thread, lower in
// six of six alternated pairs, in the same time. The loop's connection keeps a checkpoint of its own past
// `backstopPages` (40 MB of WAL at 4 KiB pages), for a thread that falls behind; if the thread cannot open the
// database, SQLite's default stays, and a warning says so.
const checkpointEveryMs = 200
const backstopPages = 10_000

const checkpoints = (filename: string) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const thread = yield* StorageThread
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const warn = (message: string, cause: string) =>
      runFork(Effect.logWarning(message).pipe(Effect.annotateLogs({ cause })))
    const started = yield* Effect.acquireRelease(
      Effect.tryPromise(() =>
        thread.checkpoints({
          filename,
          intervalMs: checkpointEveryMs,
          onError: (cause) => warn("checkpointing the database on the storage thread failed", cause)
        })
      ),
      // Closed before the loop's connection, whose close is then the last and checkpoints what is left.
      (stop) => Effect.promise(stop)
    ).pipe(Effect.either)
    if (Either.isRight(started)) return yield* Effect.orDie(sql.unsafe(`PRAGMA wal_autocheckpoint = ${backstopPages}`))
    yield* Effect.logWarning("the storage thread cannot checkpoint the database; SQLite checkpoints on the loop").pipe(
      Effect.annotateLogs({ cause: String(started.left.error) })
    )
  }))

// Any fixed 64-bit number Harvest alone uses as an advisory lock key.
const migrationLock = 7_291_050_523

/**
 * Applies `@spindle/sql`'s migrations and Harvest's.
 *
 * @since 0.1.0
 * @category migrations
 */
export const migrate = Effect.flatMap(SqlClient.SqlClient, (sql) => {
  const all = Effect.zipRight(Migrations.run, Migrator.make({})({ loader, table: "harvest_migrations" }))
  // Instances started together on a fresh Postgres database migrate one at a time, under an advisory lock held by
  // a connection of its own (the migrator runs on others): otherwise their creations of the migration tables race
  // and all but one crash. A crashed holder's session ends, and its lock with it.
  const locked = Effect.scoped(Effect.gen(function*() {
    const connection = yield* sql.reserve
    yield* connection.execute("SELECT pg_advisory_lock($1)", [migrationLock], undefined)
    yield* Effect.addFinalizer(() =>
      Effect.ignore(connection.execute("SELECT pg_advisory_unlock($1)", [migrationLock], undefined))
    )
    return yield* all
  }))
  return sql.onDialectOrElse({ pg: () => locked, orElse: () => all })
})

/**
 * The client chosen by configuration, migrated. It fails at start with `DataDirUnwritable` when SQLite's `DATA_DIR`
 * cannot be written, and with `DatabaseUnreachable` when Postgres cannot be connected to. SQLite's checkpoints run on
 * the storage thread (`StorageThread`), which must outlive the client.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  SqlClient.SqlClient,
  Startup.DataDirUnwritable | Startup.DatabaseUnreachable,
  HarvestConfig | StorageThread
> = Layer.unwrapEffect(
  Effect.map(HarvestConfig, (config) => {
    const sqliteFile = path.join(config.dataDir, "harvest.db")
    const client: Layer.Layer<
      SqlClient.SqlClient,
      Startup.DataDirUnwritable | Startup.DatabaseUnreachable,
      StorageThread
    > = Option
      .match(config.databaseUrl, {
        onSome: (url) =>
          // A connection that cannot be made in 5 s fails its query (node-postgres would wait for ever), so a
          // database that went away degrades the instance (`LocalFaults`) instead of hanging its work.
          PgClient.layer({ url, maxConnections: 20, connectTimeout: Duration.seconds(5) }).pipe(
            Layer.mapError((error) =>
              new Startup.DatabaseUnreachable({ url: Startup.redactUrl(Redacted.value(url)), cause: error.cause })
            )
          ),
        onNone: () =>
          Layer.unwrapEffect(
            Effect.as(
              Startup.ensureDirectory(config.dataDir),
              checkpoints(sqliteFile).pipe(
                Layer.provideMerge(
                  Layer.orDie(SqliteClient.layer({ filename: sqliteFile })).pipe(
                    Layer.tap((context) => {
                      const sql = Context.get(context, SqlClient.SqlClient)
                      return Effect.orDie(Effect.zipRight(sql.unsafe(busyTimeout), sql.unsafe(synchronous)))
                    })
                  )
                )
              )
            )
          )
      })
    // A failing migration is not an operator's fault to fix: it stays a defect, with its cause in full.
    return Layer.effectDiscard(Effect.orDie(migrate)).pipe(Layer.provideMerge(client))
  })
)

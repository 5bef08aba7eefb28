/**
 * Where Harvest keeps fetched bodies, and how that place stays clean when instances crash or share it.
 *
 * `files/` holds complete bodies named by their SHA-256; `tmp/` holds bodies being written, each named after the
 * instance writing it (`<owner>.<uuid>.part`). A body is renamed into `files/` only once complete, and its file id
 * is recorded in `harvest_files` in the same transaction as its item's result (`settle`: the items settled within the
 * same moment are committed together, one transaction for all of them). Two kinds of leftovers follow from a
 * crash, and each instance removes both, at start and then once per lease period:
 *
 * - a temp file whose owner holds no unexpired lease: its writer is gone (it crashed, or stopped without finishing
 *   it), whoever finds it. A live instance's temp files are never touched, so a shared `DATA_DIR` is safe.
 * - a body in `files/` that no result records and that is older than two lease periods: it was renamed into place
 *   by an instance that died (or whose item was cancelled) before the result was committed. Two lease periods is the
 *   grace a live instance has between its rename and its commit.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type { JobQueue } from "@spindle/sql"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as ParseResult from "effect/ParseResult"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import type * as Domain from "../Domain.js"
import type * as Fetcher from "../pipeline/Fetcher.js"
import { Items } from "./Jobs.js"

/**
 * What one sweep removed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Swept {
  readonly tmp: number
  readonly orphans: number
}

/**
 * The body store of one instance.
 *
 * @since 0.1.0
 * @category models
 */
export interface BodyStore {
  /** The directories, with this instance's owner name for its temp files. */
  readonly directories: Fetcher.Directories
  /**
   * Settles an item this instance leased (`JobQueue.settleMany`) and, when that took and a body was stored, records
   * `fileId` as referenced, in one transaction: a body is referenced exactly when its result is committed. `false`
   * if the lease was lost. Settlements arriving while a commit runs are committed together in the next one (a group
   * commit: one transaction, one `UPDATE` per outcome and one `INSERT` for up to 200 items). A job whose last item
   * the commit settled gets its `finished_at` in the same transaction.
   */
  readonly settle: (
    settlement: JobQueue.Settlement<Domain.ItemResult>,
    fileId: string | null,
    job: string | null
  ) => Effect.Effect<boolean, SqlError.SqlError | ParseResult.ParseError>
  /** Removes dead temp files and orphan bodies now. */
  readonly sweep: Effect.Effect<Swept, SqlError.SqlError>
}

const fileIdPattern = /^[0-9a-f]{64}$/

const statMillis = (file: string): number | undefined => {
  try {
    return fs.statSync(file).mtimeMs
  } catch {
    return undefined
  }
}

const remove = (file: string) => {
  try {
    fs.rmSync(file, { force: true })
    return 1
  } catch {
    return 0
  }
}

/**
 * A body store under `dataDir` for the instance `owner`, sweeping every `leaseMs` for the life of the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly dataDir: string
  readonly owner: string
  readonly leaseMs: number
}): Effect.Effect<BodyStore, SqlError.SqlError, SqlClient.SqlClient | Items | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const items = yield* Items
    const directories = {
      files: path.join(options.dataDir, "files"),
      tmp: path.join(options.dataDir, "tmp"),
      owner: options.owner
    }
    fs.mkdirSync(directories.files, { recursive: true })
    fs.mkdirSync(directories.tmp, { recursive: true })
    const grace = 2 * options.leaseMs
    // Bodies known to be referenced stay referenced (results are never deleted), so each is looked up once.
    const referenced = new Set<string>()

    const sweepTmp = Effect.gen(function*() {
      const live = new Set(yield* items.liveOwners)
      live.add(options.owner)
      const now = yield* Clock.currentTimeMillis
      let removed = 0
      for (const name of fs.readdirSync(directories.tmp)) {
        const file = path.join(directories.tmp, name)
        const dot = name.indexOf(".")
        const owner = name.slice(0, dot)
        if (name.endsWith(".part") && dot > 0 && name.indexOf(".", dot + 1) > 0) {
          if (!live.has(owner)) removed += remove(file)
        } else {
          // Not named after an owner (an older version's, or not ours): gone once it is older than the grace.
          const mtime = statMillis(file)
          if (mtime !== undefined && mtime < now - grace) removed += remove(file)
        }
      }
      return removed
    })

    const sweepFiles = Effect.gen(function*() {
      const candidates = fs.readdirSync(directories.files).filter((name) => !referenced.has(name))
      const now = yield* Clock.currentTimeMillis
      let removed = 0
      for (let i = 0; i < candidates.length; i += 500) {
        const batch = candidates.slice(i, i + 500).filter((name) => fileIdPattern.test(name))
        if (batch.length === 0) continue
        const rows = yield* sql<{ file_id: string }>`
          SELECT file_id FROM harvest_files WHERE ${sql.in("file_id", batch)}
        `
        for (const row of rows) referenced.add(row.file_id)
        for (const name of batch) {
          if (referenced.has(name)) continue
          const file = path.join(directories.files, name)
          const mtime = statMillis(file)
          if (mtime !== undefined && mtime < now - grace) removed += remove(file)
        }
      }
      return removed
    })

    const sweep = Effect.gen(function*() {
      const tmp = yield* sweepTmp
      const orphans = yield* sweepFiles
      if (tmp + orphans > 0) {
        yield* Effect.logInfo("removed leftover bodies").pipe(Effect.annotateLogs({ tmp, orphans }))
      }
      return { tmp, orphans }
    }).pipe(Effect.withSpan("BodyStore.sweep"))

    // The group commit: settlements wait in `waiting` while a commit runs; one fiber commits them in batches.
    interface Waiting {
      readonly settlement: JobQueue.Settlement<Domain.ItemResult>
      readonly fileId: string | null
      readonly job: string | null
      readonly done: Deferred.Deferred<boolean, SqlError.SqlError | ParseResult.ParseError>
    }
    let waiting: Array<Waiting> = []
    let wake: (() => void) | undefined
    let closed = false
    const maxBatch = 200
    const windowMs = 5

    const settle: BodyStore["settle"] = (settlement, fileId, job) =>
      Effect.suspend(() => {
        if (closed) return Effect.interrupt
        const done = Deferred.unsafeMake<boolean, SqlError.SqlError | ParseResult.ParseError>(FiberId.none)
        waiting.push({ settlement, fileId, job, done })
        if (wake !== undefined) wake()
        return Deferred.await(done)
      })

    const commit = (batch: ReadonlyArray<Waiting>) =>
      sql.withTransaction(Effect.gen(function*() {
        const settled = yield* items.settleMany(batch.map((entry) => entry.settlement), options.owner)
        const files = new Set<string>()
        for (const entry of batch) {
          if (entry.fileId !== null && settled.has(entry.settlement.id)) files.add(entry.fileId)
        }
        const now = yield* Clock.currentTimeMillis
        if (files.size > 0) {
          yield* sql`
            INSERT INTO harvest_files ${sql.insert(Array.from(files, (file_id) => ({ file_id, created_at: now })))}
            ON CONFLICT (file_id) DO NOTHING
          `
        }
        // The jobs this commit settled the last item of finish now, not when someone first reads them.
        const jobs = new Set<string>()
        for (const entry of batch) if (entry.job !== null && settled.has(entry.settlement.id)) jobs.add(entry.job)
        const counts = yield* items.countsByGroup(Array.from(jobs))
        const finished = Array.from(counts).filter(([, c]) => c.pending + c.leased === 0).map(([job]) => job)
        if (finished.length > 0) {
          yield* sql`UPDATE harvest_jobs SET finished_at = ${now} WHERE id IN ${
            sql.in(finished)
          } AND finished_at IS NULL`
        }
        return settled
      }))

    // A commit waits for work, then up to `windowMs` for more (or until a batch is full): items finish a few at a
    // time, and without the wait nearly every batch held one item.
    const gather = Effect.async<void>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const go = () => {
        wake = undefined
        if (timer !== undefined) clearTimeout(timer)
        resume(Effect.void)
      }
      const arm = () => {
        timer = setTimeout(go, windowMs)
        wake = () => {
          if (waiting.length >= maxBatch) go()
        }
      }
      if (waiting.length >= maxBatch) go()
      else if (waiting.length > 0) arm()
      else wake = arm
      return Effect.sync(() => {
        wake = undefined
        if (timer !== undefined) clearTimeout(timer)
      })
    })

    let committing: ReadonlyArray<Waiting> = []
    const committer = Effect.gen(function*() {
      while (true) {
        yield* gather
        const batch = waiting.length <= maxBatch ? waiting : waiting.slice(0, maxBatch)
        waiting = waiting.length <= maxBatch ? [] : waiting.slice(maxBatch)
        // Every waiter learns its outcome, the batch's failure or interruption included.
        committing = batch
        const exit = yield* Effect.exit(commit(batch))
        committing = []
        for (const entry of batch) {
          Deferred.unsafeDone(entry.done, Exit.map(exit, (settled) => settled.has(entry.settlement.id)))
        }
      }
    }).pipe(
      Effect.ensuring(Effect.sync(() => {
        closed = true
        for (const entry of [...committing, ...waiting]) Deferred.unsafeDone(entry.done, Exit.interrupt(FiberId.none))
        waiting = []
      }))
    )

    yield* sweep
    yield* Effect.forkScoped(committer)
    yield* Effect.forkScoped(
      Effect.sleep(Duration.millis(options.leaseMs)).pipe(
        Effect.zipRight(sweep),
        Effect.catchAllCause((cause) =>
          Effect.logWarning("sweeping leftover bodies failed").pipe(
            Effect.annotateLogs({ cause: Cause.pretty(cause) })
          )
        ),
        Effect.forever
      )
    )
    return { directories, settle, sweep } satisfies BodyStore
  })

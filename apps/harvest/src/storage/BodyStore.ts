/**
 * Where Harvest keeps fetched bodies, and how that place stays clean when instances crash or share it. This module is
 * the only one that knows the layout of the data directory's `files/` and `tmp/`: the fetcher stores bodies through
 * `write`, the files route reads them through `open`.
 *
 * `files/` holds complete bodies named by their SHA-256; `tmp/` holds bodies being written, each named after the
 * instance writing it (`<owner>.<uuid>.part`). A body is renamed into `files/` only once complete (an interrupted or
 * failed write removes its temp file before it returns), and its file id is recorded in `harvest_files` in the same
 * transaction as its item's result (by `Results`, which commits the outcomes of many items together). A body held in
 * memory is written on the event loop's thread while that is cheap (tmpfs), and by the instance's storage thread
 * while the storage is slow (a disk), so that the kernel's work does not hold the loop (see `make`).
 *
 * Two kinds of leftovers follow from a crash, and each instance removes both, at start and then once per lease period:
 *
 * - a temp file whose owner holds no unexpired lease: its writer is gone (it crashed, or stopped without finishing
 *   it), whoever finds it. A live instance's temp files are never touched, so a shared `DATA_DIR` is safe. Each
 *   sweep also notes when the other live owners' last leases expire, and the store sweeps again at the earliest of
 *   those moments: a dead owner's temp files go as soon as its items can be taken over, so a job completed by the
 *   instance that took them over leaves none behind.
 * - a body in `files/` that no result records and that is older than two lease periods: it was renamed into place
 *   by an instance that died (or whose item was cancelled) before the result was committed. Two lease periods is the
 *   grace a live instance has between its rename and its commit.
 *
 * Orphan bodies are looked for in two ways, so that a periodic sweep costs what was written since the last one rather
 * than what is stored. The bodies this instance wrote are remembered until a committed result is seen to record them,
 * and each periodic sweep checks those. The whole of `files/` is listed (and every name looked up) only where another
 * instance may have left orphans: at start and once more a grace later (a crashed predecessor's bodies were still
 * young at start), a grace after another instance's last lease expired (it may have died), and every twenty lease
 * periods in any case.
 *
 * @since 0.1.0
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as crypto from "node:crypto"
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { HarvestConfig } from "../HarvestConfig.js"
import { Instance } from "../Instance.js"
import * as Startup from "../Startup.js"
import * as Telemetry from "../Telemetry.js"
import { Items } from "./Jobs.js"
import { StorageThread } from "./StorageThread.js"

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
 * A body stored in `files/`: its size, its SHA-256 (lowercase hex) and the id it is served under.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stored {
  readonly bytes: number
  readonly sha256: string
  readonly fileId: string
}

/**
 * A stored body opened for reading: its size, and its bytes as a stream that opens the file when it is run (and
 * closes it when it ends or is interrupted), so a response that is never sent holds no file open.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredBody {
  readonly fileId: string
  readonly bytes: number
  readonly stream: Stream.Stream<Uint8Array, BodyStoreError>
}

/**
 * Reading or writing the store's files failed (a full disk, a missing directory, permissions).
 *
 * @since 0.1.0
 * @category errors
 */
export class BodyStoreError extends Data.TaggedError("BodyStoreError")<{
  readonly operation: "write" | "open" | "read" | "sweep"
  readonly cause: unknown
}> {
  override get message(): string {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    if (this.operation === "sweep") return `sweeping leftover bodies: ${reason}`
    return `${this.operation === "write" ? "storing" : "reading"} the body: ${reason}`
  }
}

/**
 * A body passed `maxBytes` while it was written; nothing of it was kept.
 *
 * @since 0.1.0
 * @category errors
 */
export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{
  readonly maxBytes: number
}> {
  override get message(): string {
    return `body exceeds ${this.maxBytes} bytes`
  }
}

/**
 * How `write` treats a body: `maxBytes` fails a larger one with `BodyTooLarge`; a stream is gathered in memory up to
 * `memoryBytes` (default 64 KiB) and written with one call when it ends within that, and streamed to its temp file
 * beyond it.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteOptions {
  readonly maxBytes?: number | undefined
  readonly memoryBytes?: number | undefined
}

/**
 * The body store of one instance.
 *
 * @since 0.1.0
 * @category models
 */
export interface BodyStore {
  /**
   * Stores a body (bytes, or a stream of them): written to a temp file of this instance while it is hashed, then
   * renamed into `files/` under its SHA-256. A failure or an interruption removes the temp file before it returns.
   */
  readonly write: <E = never>(
    body: Uint8Array | Stream.Stream<Uint8Array, E>,
    options?: WriteOptions
  ) => Effect.Effect<Stored, E | BodyStoreError | BodyTooLarge>
  /** The stored body `fileId` names, or `None` for an unknown or malformed id. */
  readonly open: (fileId: string) => Effect.Effect<Option.Option<StoredBody>, BodyStoreError>
  /** Removes dead temp files and orphan bodies now, listing the whole of `files/`. */
  readonly sweep: Effect.Effect<Swept, SqlError.SqlError | BodyStoreError>
  /**
   * Whether bodies can be written again: the file system has `headroom` bytes free (when it says), and a probe of
   * `probeBytes` is written to a temp file of this instance and removed. Run only while the instance is degraded
   * (`LocalFaults`), never on the way of a body.
   */
  readonly probe: Effect.Effect<void, BodyStoreError>
}

/**
 * The body store's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const BodyStore: Context.Tag<BodyStore, BodyStore> = Context.GenericTag<BodyStore>(
  "@spindle/harvest/BodyStore"
)

const fileIdPattern = /^[0-9a-f]{64}$/

const defaultMemoryBytes = 64 * 1024

/**
 * The size of `probe`'s body: a body held in memory at most, a common size.
 *
 * @since 0.1.0
 * @category constants
 */
export const probeBytes = defaultMemoryBytes

/**
 * The free space `probe` asks for by default before bodies are written again after a full disk: room for `workers`
 * bodies of 64 KiB twice over, from 1 MiB to 16 MiB. Writing resumes where it can go on, rather than as soon as a few
 * failed bodies' temp files were removed (which would fill the disk again at once).
 *
 * @since 0.1.0
 * @category constants
 */
export const headroomFor = (workers: number): number =>
  Math.min(16 * 1024 * 1024, Math.max(1024 * 1024, 2 * workers * defaultMemoryBytes))

// The modification time of `file`, or undefined once it is gone; through the thread pool.
const mtimeOf = (file: string): Effect.Effect<number | undefined> =>
  Effect.async<number | undefined>((resume) => {
    fs.stat(file, (error, stats) => resume(Effect.succeed(error === null ? stats.mtimeMs : undefined)))
  })

// Removes `files` one after another, through the thread pool; how many went (or were already gone).
const removeAll = (files: ReadonlyArray<string>): Effect.Effect<number> =>
  Effect.reduce(files, 0, (removed, file) =>
    Effect.async<number>((resume) => {
      fs.rm(file, { force: true }, (error) => resume(Effect.succeed(error === null ? removed + 1 : removed)))
    }))

const remove = (file: string) => {
  try {
    fs.rmSync(file, { force: true })
    return 1
  } catch {
    return 0
  }
}

// The names in `directory`, `size` at a time, each batch handed to `f` before the next is read. The directory is read
// through the thread pool in chunks (`opendir`), never listed whole on the loop's thread: a `readdirSync` of `files/`
// held the loop about 150 ms at 100,000 bodies, and its array lived as long as the sweep. A batch read is not
// interrupted midway (an open read would keep the directory busy as it is closed); the sweep stops between batches.
const forEachBatch = <E, R>(
  directory: string,
  size: number,
  f: (names: ReadonlyArray<string>) => Effect.Effect<void, E, R>
): Effect.Effect<void, E | BodyStoreError, R> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: () => fs.promises.opendir(directory, { bufferSize: 256 }),
      catch: (cause) => new BodyStoreError({ operation: "sweep", cause })
    }),
    (dir) => {
      const next = Effect.tryPromise({
        try: async () => {
          const names: Array<string> = []
          while (names.length < size) {
            const entry = await dir.read()
            if (entry === null) break
            names.push(entry.name)
          }
          return names
        },
        catch: (cause) => new BodyStoreError({ operation: "sweep", cause })
      }).pipe(Effect.uninterruptible)
      const loop: Effect.Effect<void, E | BodyStoreError, R> = Effect.flatMap(next, (names) =>
        names.length === 0
          ? Effect.void
          : Effect.zipRight(f(names), names.length < size ? Effect.void : Effect.suspend(() => loop)))
      return loop
    },
    (dir) => Effect.promise(() => dir.close().catch(() => undefined))
  )

// A body's SHA-256 in one call (`crypto.hash`, Node 20.12 and later: no hash object made and fed, half the time of
// `createHash` on a small body), or through a hash object where there is none.
const sha256Of: (body: Uint8Array) => string = typeof crypto.hash === "function"
  ? (body) => crypto.hash("sha256", body, "hex")
  : (body) => createHash("sha256").update(body).digest("hex")

const writeError = (cause: unknown) => new BodyStoreError({ operation: "write", cause })

// One file operation as an effect. It is not interruptible (each one is short): an interrupted write waits for the
// operation in flight, so that the temp file it removes afterwards cannot reappear.
const fsCall = <A>(run: (done: (error: NodeJS.ErrnoException | null, value: A) => void) => void) =>
  Effect.async<A, BodyStoreError>((resume) => {
    run((error, value) => resume(error === null ? Effect.succeed(value) : Effect.fail(writeError(error))))
  }).pipe(Effect.uninterruptible)

// Writes every byte of `buffers` at the file's current position.
const writeAll = (fd: number, buffers: ReadonlyArray<Uint8Array>): Effect.Effect<void, BodyStoreError> =>
  fsCall<number>((done) => fs.writev(fd, buffers as Array<Uint8Array>, done)).pipe(
    Effect.flatMap((written) => {
      let left = written
      let i = 0
      while (i < buffers.length && left >= buffers[i].length) left -= buffers[i++].length
      if (i === buffers.length) return Effect.void
      // A short write (rare on a file): the rest goes in another call.
      return writeAll(fd, [buffers[i].subarray(left), ...buffers.slice(i + 1)])
    })
  )

/**
 * A body store under `dataDir` for the instance `owner`, sweeping every `leaseMs` for the life of the scope. It fails
 * with `DataDirUnwritable` when `files/` or `tmp/` cannot be created or written.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly dataDir: string
  readonly owner: string
  readonly leaseMs: number
  /** The free space `probe` asks for; default `headroomFor(64)`. */
  readonly headroom?: number | undefined
  /**
   * Bodies go to the storage thread while the recent time to write one is at least this (default 60 µs, between
   * tmpfs and a disk); with 0, every body does.
   */
  readonly threadAboveMicros?: number | undefined
  /**
   * How often a periodic sweep lists the whole of `files/` even when nothing calls for it (default twenty lease
   * periods): the backstop for orphans no other trigger covers.
   */
  readonly listEveryMs?: number | undefined
}): Effect.Effect<
  BodyStore,
  SqlError.SqlError | Startup.DataDirUnwritable,
  SqlClient.SqlClient | Items | StorageThread | Scope.Scope
> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const items = yield* Items
    const clock = yield* Effect.clock
    const directories = {
      files: path.join(options.dataDir, "files"),
      tmp: path.join(options.dataDir, "tmp")
    }
    yield* Startup.ensureDirectory(directories.files)
    yield* Startup.ensureDirectory(directories.tmp)
    const grace = 2 * options.leaseMs
    const tempPrefix = `${directories.tmp}${path.sep}${options.owner}.`
    const filesPrefix = `${directories.files}${path.sep}`
    // A body's temp file, named after its owner (`<owner>.<uuid>.part`, as the sweep reads it), and its place in
    // files/.
    const newTemp = () => `${tempPrefix}${randomUUID()}.part`
    const placeOf = (sha256: string) => `${filesPrefix}${sha256}`

    // The bodies this instance renamed into `files/` and has not yet seen recorded by a committed result, each with
    // the time of its rename: what the periodic sweep checks (see `sweepOwn`). About one lease period's bodies.
    const unconfirmed = new Map<string, number>()
    const stored = (bytes: number, sha256: string): Stored => {
      unconfirmed.set(sha256, clock.unsafeCurrentTimeMillis())
      return { bytes, sha256, fileId: sha256 }
    }

    // A body held in memory is written in one of two ways: on the loop's thread, with four short system calls (open,
    // write, close, rename), or by the storage thread (`StorageThread`, `internal/storageThread.ts`), which makes the
    // same calls on a thread of its own. On fast storage the first costs the least CPU (tmpfs: 10 to 20 µs a body, less
    // than the thread's share of its messages and wake-ups) but holds the loop; so each turn of the event loop writes
    // synchronously for at most `syncBudgetNanos`, and the bodies past it go to the thread. The budget is 3 ms of a
    // turn: Harvest's scheduler (`TimeSlicedScheduler`) already ends a turn's fiber work after its slice, writes
    // included. On slower storage (ext4: 50 to 300 µs a body, about 1.5 s of a 10,000-URL job) those calls would make
    // the loop's thread the bottleneck of the job; so while the recent time per body, written either way, is at least
    // `threadAboveNanos`, every body goes to the thread and the loop only hashes it. The recent time is an average over
    // about the last 16 bodies, each counted as at most twice the threshold (a write that stalled behind a collection
    // or a busy machine is one sample, not a trend); the thread reports its own writes' time, so storage that turns
    // fast brings the bodies back to the loop. Time is read from the `Clock`: under a `TestClock`, whose time stands
    // still, every write is synchronous unless the threshold is 0.
    const syncBudgetNanos = 3_000_000n
    const threadAboveNanos = 1000 * (options.threadAboveMicros ?? 60)
    let spentThisTurn = 0n
    let turnEnds = false
    let perBodyNanos = 0
    const newTurn = () => {
      spentThisTurn = 0n
      turnEnds = false
    }
    const took = (count: number, nanos: number) => {
      if (count === 0) return
      const keep = Math.pow(15 / 16, count)
      perBodyNanos = perBodyNanos * keep + Math.min(nanos / count, 2 * threadAboveNanos) * (1 - keep)
    }
    const writer = yield* StorageThread
    const recorder = Telemetry.recorder()
    const unobserve = writer.observeWrites(took)
    // Closing the store waits for the bodies it handed to the thread; the thread itself stops with its own layer.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => writer.drained()).pipe(Effect.ensuring(Effect.sync(unobserve)))
    )

    const writeSync = (body: Uint8Array, sha256: string): Effect.Effect<Stored, BodyStoreError> => {
      const started = clock.unsafeCurrentTimeNanos()
      const temp = newTemp()
      try {
        fs.writeFileSync(temp, body)
        fs.renameSync(temp, placeOf(sha256))
      } catch (error) {
        remove(temp)
        return Effect.fail(writeError(error))
      }
      const nanos = clock.unsafeCurrentTimeNanos() - started
      spentThisTurn += nanos
      if (!turnEnds) {
        turnEnds = true
        setImmediate(newTurn)
      }
      took(1, Number(nanos))
      recorder.bodiesWritten("loop", 1)
      return Effect.succeed(stored(body.length, sha256))
    }

    // By the storage thread. An interruption waits until the thread is done with the body: it is then in place (and
    // the sweep removes it if no result ever points to it) or failed, its temp file removed either way. The thread's
    // answer may come after the interruption has taken the fiber's resumption and before the wait below is set up
    // (the fiber can yield between the two, and the answer is an event of the loop): then the answer is dropped, and
    // the wait, set up later, must see that it came rather than wait for another.
    const writeThread = (body: Uint8Array, sha256: string): Effect.Effect<Stored, BodyStoreError> =>
      Effect.async<Stored, BodyStoreError>((resume) => {
        let answered = false
        let cancelled: (() => void) | undefined
        // The answer's callback holds the body's size, not the body: nothing keeps the bytes once the thread has them.
        const bytes = body.length
        writer.write(newTemp(), placeOf(sha256), body, (error) => {
          answered = true
          if (error === undefined) recorder.bodiesWritten("thread", 1)
          if (cancelled !== undefined) return cancelled()
          resume(
            error === undefined
              ? Effect.succeed(stored(bytes, sha256))
              : Effect.fail(writeError(error))
          )
        })
        return Effect.async<void>((resumeCancel) => {
          if (answered) resumeCancel(Effect.void)
          else cancelled = () => resumeCancel(Effect.void)
        })
      })

    // Called when the write is to happen (it may write at once, synchronously), not ahead of it.
    const writeBytes = (body: Uint8Array, sha256: string): Effect.Effect<Stored, BodyStoreError> =>
      perBodyNanos < threadAboveNanos && spentThisTurn < syncBudgetNanos
        ? writeSync(body, sha256)
        : writeThread(body, sha256)

    // A stream: gathered in memory while it fits in `memoryBytes`, then written with `writeBytes`; a larger one
    // spills into a temp file opened once, the rest appended as it arrives. One pass over the stream either way.
    const writeStream = <E>(
      body: Stream.Stream<Uint8Array, E>,
      maxBytes: number,
      memoryBytes: number
    ): Effect.Effect<Stored, E | BodyStoreError | BodyTooLarge> =>
      Effect.suspend(() => {
        const hash = createHash("sha256")
        let held: Array<Uint8Array> = []
        let bytes = 0
        let file: { readonly fd: number; readonly temp: string; closed: boolean } | undefined
        // `file` is set in the callback, so an interruption right after the open still finds the file to remove.
        const spill = Effect.async<void, BodyStoreError>((resume) => {
          const temp = newTemp()
          fs.open(temp, "w", (error, fd) => {
            if (error !== null) return resume(Effect.fail(writeError(error)))
            file = { fd, temp, closed: false }
            resume(Effect.void)
          })
        }).pipe(
          Effect.uninterruptible,
          Effect.zipRight(Effect.suspend(() => {
            const buffers = held
            held = []
            return writeAll(file!.fd, buffers)
          }))
        )
        const close = (opened: NonNullable<typeof file>) =>
          fsCall<void>((done) => {
            opened.closed = true
            fs.close(opened.fd, (error) => done(error, undefined))
          })
        const run = Stream.runForEachChunk(body, (chunk): Effect.Effect<void, BodyStoreError | BodyTooLarge> => {
          const buffers = Chunk.toReadonlyArray(chunk)
          for (const buffer of buffers) {
            bytes += buffer.length
            if (bytes > maxBytes) return Effect.fail(new BodyTooLarge({ maxBytes }))
            hash.update(buffer)
          }
          if (file !== undefined) return writeAll(file.fd, buffers)
          for (const buffer of buffers) held.push(buffer)
          return bytes > memoryBytes ? spill : Effect.void
        })
        return Effect.flatMap(run, (): Effect.Effect<Stored, BodyStoreError> => {
          const sha256 = hash.digest("hex")
          const opened = file
          if (opened === undefined) return writeBytes(held.length === 1 ? held[0] : Buffer.concat(held), sha256)
          return Effect.zipRight(
            close(opened),
            fsCall<void>((done) => fs.rename(opened.temp, placeOf(sha256), (error) => done(error, undefined))).pipe(
              Effect.map(() => stored(bytes, sha256))
            )
          )
        }).pipe(
          Effect.onExit((exit): Effect.Effect<void> => {
            const opened = file
            if (Exit.isSuccess(exit) || opened === undefined) return Effect.void
            return Effect.async<void>((resume) => {
              const removeTemp = () => fs.rm(opened.temp, { force: true }, () => resume(Effect.void))
              if (opened.closed) return removeTemp()
              opened.closed = true
              fs.close(opened.fd, removeTemp)
            })
          })
        )
      })

    const write: BodyStore["write"] = (body, writeOptions) => {
      const maxBytes = writeOptions?.maxBytes ?? Number.POSITIVE_INFINITY
      if (body instanceof Uint8Array) {
        if (body.length > maxBytes) return Effect.fail(new BodyTooLarge({ maxBytes }))
        return Effect.suspend(() => writeBytes(body, sha256Of(body)))
      }
      return writeStream(body, maxBytes, Math.min(writeOptions?.memoryBytes ?? defaultMemoryBytes, maxBytes))
    }

    const open: BodyStore["open"] = (fileId) =>
      Effect.async<Option.Option<StoredBody>, BodyStoreError>((resume) => {
        if (!fileIdPattern.test(fileId)) return resume(Effect.succeed(Option.none()))
        const file = placeOf(fileId)
        fs.stat(file, (error, stats) => {
          if (error !== null) {
            return resume(
              error.code === "ENOENT" || error.code === "ENOTDIR"
                ? Effect.succeed(Option.none())
                : Effect.fail(new BodyStoreError({ operation: "open", cause: error }))
            )
          }
          if (!stats.isFile()) return resume(Effect.succeed(Option.none()))
          resume(Effect.succeed(Option.some({
            fileId,
            bytes: stats.size,
            stream: NodeStream.fromReadable(
              () => fs.createReadStream(file),
              (cause) => new BodyStoreError({ operation: "read", cause })
            )
          })))
        })
      })

    // The probe body is named like this instance's temp files, so a crash before its removal leaves nothing for long.
    const headroom = options.headroom ?? headroomFor(64)
    const probeBody = Buffer.alloc(probeBytes, 0x68)
    const probe: BodyStore["probe"] = Effect.async<void, BodyStoreError>((resume) => {
      const write = () => {
        const temp = `${tempPrefix}probe-${randomUUID()}.part`
        fs.writeFile(temp, probeBody, (error) => {
          fs.rm(temp, { force: true }, () => resume(error === null ? Effect.void : Effect.fail(writeError(error))))
        })
      }
      fs.statfs(directories.tmp, (error, stats) => {
        // A file system that does not say is asked by the write alone.
        if (error !== null || stats.bavail * stats.bsize >= headroom) return write()
        const short = new Error(`${stats.bavail * stats.bsize} bytes free, ${headroom} needed to write bodies again`)
        resume(Effect.fail(writeError(Object.assign(short, { code: "ENOSPC" }))))
      })
    })

    // When the earliest of the other live owners' last leases expires: if that owner is dead (crashed, killed), its
    // temp files go at that moment, the first at which any instance may take its items over, rather than at the next
    // periodic sweep (a job could complete meanwhile with a dead owner's temp files still in `tmp/`).
    let wakeAt = Number.POSITIVE_INFINITY
    let lastSweep = yield* Clock.currentTimeMillis
    // When a periodic sweep next lists the whole of `files/`: a grace after start (the start-up sweep lists it too),
    // then a grace after another owner is seen gone, and `listEveryMs` after the last listing at the latest.
    const listEveryMs = options.listEveryMs ?? 20 * options.leaseMs
    let listAt = lastSweep + grace
    // The other owners that held a lease at the last sweep.
    let others = new Set<string>()

    const sweepTmp = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      // The owners holding an unexpired lease, each with the time its last lease expires.
      const live = new Set<string>([options.owner])
      let next = Number.POSITIVE_INFINITY
      for (const { expiresAt, owner } of yield* items.liveOwners) {
        live.add(owner)
        if (owner !== options.owner) next = Math.min(next, expiresAt)
      }
      // An owner gone since the last sweep either finished its work or died; if it died, the bodies it renamed into
      // place without committing are orphans once they are a grace old, and only a listing finds them.
      for (const owner of others) {
        if (!live.has(owner)) listAt = Math.min(listAt, now + grace)
      }
      others = new Set(live)
      others.delete(options.owner)
      wakeAt = next
      lastSweep = now
      // Removed once the listing is closed: entries removed while a directory is read may make the read skip others.
      const dead: Array<string> = []
      yield* forEachBatch(directories.tmp, 256, (names) =>
        Effect.forEach(names, (name) => {
          const file = path.join(directories.tmp, name)
          const dot = name.indexOf(".")
          if (name.endsWith(".part") && dot > 0 && name.indexOf(".", dot + 1) > 0) {
            if (!live.has(name.slice(0, dot))) dead.push(file)
            return Effect.void
          }
          // Not named after an owner (an older version's, or not ours): gone once it is older than the grace.
          return Effect.map(mtimeOf(file), (mtime) => {
            if (mtime !== undefined && mtime < now - grace) dead.push(file)
          })
        }, { discard: true }))
      return yield* removeAll(dead)
    })

    // Of `ids` (500 at most: one query), those a committed result records.
    const recordedAmong = (ids: ReadonlyArray<string>) =>
      Effect.map(
        sql<{ file_id: string }>`SELECT file_id FROM harvest_files WHERE ${sql.in("file_id", ids)}`,
        (rows) => new Set(rows.map((row) => row.file_id))
      )
    // Whether the body `id` is older than the grace at `now`, by its file's own time (a body renamed into place again
    // since, the same content fetched again, is within its grace again), or gone.
    const ageOf = (id: string, now: number): Effect.Effect<"old" | "young" | "gone"> =>
      Effect.map(mtimeOf(placeOf(id)), (mtime) => mtime === undefined ? "gone" : mtime < now - grace ? "old" : "young")

    // The bodies this instance wrote since they were last checked, looked up 500 to a query: those recorded are
    // forgotten, those no result records are removed (and forgotten) once they are older than the grace, and the
    // younger ones are checked again at the next sweep.
    const sweepOwn = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const orphans: Array<string> = []
      const ids = Array.from(unconfirmed.keys())
      for (let i = 0; i < ids.length; i += 500) {
        const batch = ids.slice(i, i + 500)
        const recorded = yield* recordedAmong(batch)
        yield* Effect.forEach(batch, (id) => {
          const writtenAt = unconfirmed.get(id)
          if (recorded.has(id)) unconfirmed.delete(id)
          else if (writtenAt !== undefined && writtenAt < now - grace) {
            return Effect.map(ageOf(id, now), (age) => {
              if (age !== "young") unconfirmed.delete(id)
              if (age === "old") orphans.push(placeOf(id))
            })
          }
          return Effect.void
        }, { discard: true })
      }
      return yield* removeAll(orphans)
    })

    // Every body in `files/` is looked up in `harvest_files`, 500 names to a query: nothing is remembered between
    // listings, so one holds one batch of names and the orphans it found, whatever the number of bodies (a set of the
    // bodies found referenced, kept to look each up once, grew with every body stored). A body no result records is
    // removed once it is older than the grace; only those are looked at on disk.
    const sweepFiles = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const orphans: Array<string> = []
      yield* forEachBatch(directories.files, 500, (names) => {
        const batch = names.filter((name) => fileIdPattern.test(name))
        if (batch.length === 0) return Effect.void
        return Effect.flatMap(recordedAmong(batch), (recorded) => {
          if (recorded.size === batch.length) return Effect.void
          return Effect.forEach(batch, (name) => {
            if (recorded.has(name)) return Effect.void
            return Effect.map(ageOf(name, now), (age) => {
              if (age === "old") orphans.push(placeOf(name))
            })
          }, { discard: true })
        })
      })
      return yield* removeAll(orphans)
    })

    // Every sweep removes dead temp files and checks this instance's own bodies; it lists `files/` when `list` says.
    const sweepWith = (list: (now: number) => boolean) =>
      Effect.gen(function*() {
        const tmp = yield* sweepTmp
        const now = yield* Clock.currentTimeMillis
        let orphans = yield* sweepOwn
        if (list(now)) {
          // A listing due later (another owner's bodies still within their grace) stays due.
          listAt = listAt <= now ? now + listEveryMs : Math.min(listAt, now + listEveryMs)
          orphans += yield* sweepFiles
        }
        if (tmp + orphans > 0) {
          yield* Effect.logInfo("removed leftover bodies").pipe(Effect.annotateLogs({ tmp, orphans }))
        }
        return { tmp, orphans }
      }).pipe(Effect.withSpan("BodyStore.sweep"))
    const sweep = sweepWith(() => true)
    const periodicSweep = sweepWith((now) => now >= listAt)

    // At start-up first: what a crash left behind is gone before this instance writes anything. Then once per lease
    // period, as soon as another owner's last lease expires (1 ms past it: a lease expiring now is still held), and
    // when a listing of `files/` is due.
    // A directory that cannot be read at start stops the process like one that cannot be written.
    yield* Effect.catchTag(
      sweep,
      "BodyStoreError",
      (error) => new Startup.DataDirUnwritable({ path: options.dataDir, cause: error.cause })
    )
    yield* Effect.forkScoped(
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          Effect.sleep(Duration.millis(Math.max(0, Math.min(lastSweep + options.leaseMs, wakeAt + 1, listAt) - now)))
      ).pipe(
        Effect.zipRight(periodicSweep),
        // A database that does not answer (the instance is degraded meanwhile, see `LocalFaults`) is one line, once
        // per sweep; anything else is logged in full.
        Effect.catchAllCause((cause) => {
          const failure = Cause.failureOption(cause)
          return Effect.logWarning("sweeping leftover bodies failed").pipe(
            Effect.annotateLogs({
              cause: failure._tag === "Some" ? Startup.describe(failure.value.cause) : Cause.pretty(cause)
            })
          )
        }),
        Effect.forever
      )
    )
    return { write, open, sweep, probe } satisfies BodyStore
  })

/**
 * The body store of this instance (`Instance`), under `DATA_DIR`, sweeping once per `LEASE_MS`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  BodyStore,
  SqlError.SqlError | Startup.DataDirUnwritable,
  HarvestConfig | Instance | SqlClient.SqlClient | Items | StorageThread
> = Layer.scoped(
  BodyStore,
  Effect.gen(function*() {
    const config = yield* HarvestConfig
    const instance = yield* Instance
    return yield* make({
      dataDir: config.dataDir,
      owner: instance.owner,
      leaseMs: config.leaseMs,
      headroom: headroomFor(config.maxConcurrency)
    })
  })
)

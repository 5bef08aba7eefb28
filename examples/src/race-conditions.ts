// Seed pattern: "Shared Mutable State" — the lost update of read, await, write; fixed with a Ref, or a KeyedMutex.
import { KeyedMutex } from "@spindle/core"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as SynchronizedRef from "effect/SynchronizedRef"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/**
 * Runs `increment` `times` times, all at once.
 */
const concurrently = <E, R>(times: number, increment: Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
  Effect.all(Array.from({ length: times }, () => increment), { concurrency: "unbounded", discard: true })

/**
 * The seed's bug. Each increment reads the counter, suspends (any await: a query, a log write, a sleep), and writes
 * back what it read plus one. Fibers run one at a time on the one JavaScript thread, but they interleave at every
 * suspension: all of them read 0 before any writes, and the updates overwrite each other.
 */
export const racyCounter = (times: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    let counter = 0
    yield* concurrently(
      times,
      Effect.gen(function*() {
        const read = counter
        yield* Effect.yieldNow()
        counter = read + 1
      })
    )
    return counter
  })

/**
 * A `Ref` used like a variable is no better: `get`, suspend, `set` is the same race, one step at a time.
 */
export const refGetThenSet = (times: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const counter = yield* Ref.make(0)
    yield* concurrently(
      times,
      Effect.gen(function*() {
        const read = yield* Ref.get(counter)
        yield* Effect.yieldNow()
        yield* Ref.set(counter, read + 1)
      })
    )
    return yield* Ref.get(counter)
  })

/**
 * The fix, and the first choice: `Ref.update` reads and writes in one atomic step, so no other fiber can come in
 * between. No lock, nothing to wait for; the suspension stays, outside the update.
 */
export const refUpdate = (times: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const counter = yield* Ref.make(0)
    yield* concurrently(times, Effect.zipRight(Effect.yieldNow(), Ref.update(counter, (n) => n + 1)))
    return yield* Ref.get(counter)
  })

/**
 * When computing the new value must itself suspend (it is fetched, or validated elsewhere), `SynchronizedRef`
 * runs the effectful updates one at a time: the in-memory counterpart of the seed's lock around the critical
 * section.
 */
export const synchronizedUpdate = (times: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const counter = yield* SynchronizedRef.make(0)
    yield* concurrently(times, SynchronizedRef.updateEffect(counter, (n) => Effect.as(Effect.yieldNow(), n + 1)))
    return yield* SynchronizedRef.get(counter)
  })

/**
 * The seed's other way out: share nothing. Each task returns its contribution and the results are combined at the
 * end.
 */
export const noSharedState = (times: number): Effect.Effect<number> =>
  Effect.map(
    Effect.all(Array.from({ length: times }, () => Effect.as(Effect.yieldNow(), 1)), { concurrency: "unbounded" }),
    (ones) => ones.reduce((sum, one) => sum + one, 0)
  )

/**
 * Reading or writing a counter file failed.
 */
export class FileError extends Data.TaggedError("FileError")<{ readonly path: string; readonly cause: unknown }> {
  override get message(): string {
    return `${this.path}: ${String(this.cause)}`
  }
}

const attempt = <A>(file: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new FileError({ path: file, cause }) })

/**
 * A fresh temporary directory for the counter files, removed with its contents when the scope closes.
 */
export const tempDir: Effect.Effect<string, FileError, Scope.Scope> = Effect.acquireRelease(
  attempt(os.tmpdir(), () => fs.mkdtemp(path.join(os.tmpdir(), "spindle-race-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/**
 * Reads the counter stored in `file` (a missing file counts as 0).
 */
export const readCounter = (file: string): Effect.Effect<number, FileError> =>
  attempt(file, () => fs.readFile(file, "utf8").catch((e) => e.code === "ENOENT" ? "0" : Promise.reject(e))).pipe(
    Effect.map(Number)
  )

/**
 * Writes `value` to `file` atomically: to a temporary file first, then renamed over it, so a reader sees the old
 * value or the new one, never a half-written file. Atomic writes do not make read-modify-write atomic, though.
 */
export const writeCounter = (file: string, value: number): Effect.Effect<void, FileError> =>
  attempt(file, async () => {
    const temporary = `${file}.${randomUUID()}.tmp`
    await fs.writeFile(temporary, String(value))
    await fs.rename(temporary, file)
  })

/**
 * One increment of a counter kept in a file: read it, write it back plus one. The state is outside memory, so a
 * `Ref` cannot hold it; two of these running at once lose an update just like the in-memory version.
 */
export const incrementFile = (file: string): Effect.Effect<void, FileError> =>
  Effect.flatMap(readCounter(file), (value) => writeCounter(file, value + 1))

/**
 * `times` increments of one counter file, all at once, unprotected. Returns the final value.
 */
export const racyFileCounter = (file: string, times: number): Effect.Effect<number, FileError> =>
  Effect.zipRight(concurrently(times, incrementFile(file)), readCounter(file))

/**
 * The same increments, each holding the file's lock: one key per file, so increments of one file run one at a
 * time, in arrival order, while other files are not held up. The lock is released when an increment ends, fails
 * or is interrupted.
 */
export const lockedFileCounter = (
  mutex: KeyedMutex.KeyedMutex,
  file: string,
  times: number
): Effect.Effect<number, FileError> =>
  Effect.zipRight(concurrently(times, mutex.withLock(file, incrementFile(file))), readCounter(file))

/**
 * What `lockedFiles` saw: each file's final value, and how many increments held a lock at once, on one file and
 * across all of them.
 */
export interface LockReport {
  readonly values: ReadonlyArray<number>
  readonly peakPerFile: number
  readonly peakOverall: number
}

/**
 * `times` increments of each of `files`, all at once, under one `KeyedMutex`: each file's increments take turns,
 * while increments of different files overlap.
 */
export const lockedFiles = (
  mutex: KeyedMutex.KeyedMutex,
  files: ReadonlyArray<string>,
  times: number
): Effect.Effect<LockReport, FileError> =>
  Effect.gen(function*() {
    const holding = new Map<string, number>()
    let overall = 0
    let peakPerFile = 0
    let peakOverall = 0
    const enter = (file: string) =>
      Effect.sync(() => {
        const now = (holding.get(file) ?? 0) + 1
        holding.set(file, now)
        overall++
        peakPerFile = Math.max(peakPerFile, now)
        peakOverall = Math.max(peakOverall, overall)
      })
    const leave = (file: string) =>
      Effect.sync(() => {
        holding.set(file, holding.get(file)! - 1)
        overall--
      })
    const increment = (file: string) =>
      mutex.withLock(file, Effect.ensuring(Effect.zipRight(enter(file), incrementFile(file)), leave(file)))
    yield* Effect.all(files.flatMap((file) => Array.from({ length: times }, () => increment(file))), {
      concurrency: "unbounded",
      discard: true
    })
    const values = yield* Effect.forEach(files, readCounter)
    return { values, peakPerFile, peakOverall }
  })

/**
 * The runnable demo: 100 concurrent increments each way.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const times = 100
  yield* Console.log(`${times} concurrent increments of a counter in memory:`)
  yield* Console.log(`  read, await, write:       ${yield* racyCounter(times)}`)
  yield* Console.log(`  Ref.get, await, Ref.set:  ${yield* refGetThenSet(times)}`)
  yield* Console.log(`  await, Ref.update:        ${yield* refUpdate(times)}`)
  yield* Console.log(`  SynchronizedRef.update:   ${yield* synchronizedUpdate(times)}`)
  yield* Console.log(`  no shared state:          ${yield* noSharedState(times)}`)
  const dir = yield* tempDir
  const mutex = yield* KeyedMutex.make()
  yield* Console.log(`${times} concurrent increments of a counter in a file (${dir}):`)
  yield* Console.log(`  unprotected:              ${yield* racyFileCounter(path.join(dir, "racy"), times)}`)
  yield* Console.log(`  KeyedMutex.withLock:      ${yield* lockedFileCounter(mutex, path.join(dir, "locked"), times)}`)
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

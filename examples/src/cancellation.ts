// Seed pattern: "Not Handling Task Cancellation" — cleanup that runs when a fiber is interrupted; a critical section.
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/**
 * A connection opened by `Connections.acquire`, numbered in opening order.
 */
export interface Connection {
  readonly id: number
}

/**
 * A stand-in for a connection pool that records, on the clock in use, when each connection opened and closed. A
 * connection open after its fiber ended is a leak.
 */
export interface Connections {
  readonly acquire: Effect.Effect<Connection>
  readonly close: (connection: Connection) => Effect.Effect<void>
  /** Connections open now. */
  readonly open: Effect.Effect<number>
  /** `opened <id> at <ms>` and `closed <id> at <ms>` lines, in order. */
  readonly log: Effect.Effect<ReadonlyArray<string>>
}

/**
 * Creates a pool with no connections yet.
 */
export const makeConnections: Effect.Effect<Connections> = Effect.sync(() => {
  let next = 1
  const open = new Set<number>()
  const log: Array<string> = []
  return {
    acquire: Effect.map(Clock.currentTimeMillis, (at) => {
      const id = next++
      open.add(id)
      log.push(`opened ${id} at ${at}`)
      return { id }
    }),
    close: (connection) =>
      Effect.map(Clock.currentTimeMillis, (at) => {
        open.delete(connection.id)
        log.push(`closed ${connection.id} at ${at}`)
      }),
    open: Effect.sync(() => open.size),
    log: Effect.sync(() => log.slice())
  }
})

/**
 * The long operation the connection is used for: an hour of waiting (a query, a download).
 */
export const longOperation: Effect.Effect<void> = Effect.sleep("1 hour")

/**
 * Bad: the close is just the next step. It runs when the operation completes, so the code looks right in testing;
 * when the fiber is interrupted (a timeout, a failed sibling, shutdown) during the operation, the steps after it
 * never run and the connection stays open.
 */
export const closeAfterwards = (connections: Connections): Effect.Effect<void> =>
  Effect.gen(function*() {
    const connection = yield* connections.acquire
    yield* longOperation
    yield* connections.close(connection)
  })

/**
 * Good: `Effect.ensuring` (the seed's `try`/`finally`) runs the close however the operation ends: success, failure,
 * defect or interruption. A gap remains between `acquire` and `ensuring`, where an interruption would still leak.
 */
export const closeEnsuring = (connections: Connections): Effect.Effect<void> =>
  Effect.gen(function*() {
    const connection = yield* connections.acquire
    yield* Effect.ensuring(longOperation, connections.close(connection))
  })

/**
 * Good for interruption only: `Effect.onInterrupt` runs its handler when the operation is interrupted (e.g. to tell
 * the server to cancel the query), so the normal path must close too, and a failure would skip both.
 */
export const closeOnInterrupt = (connections: Connections): Effect.Effect<void> =>
  Effect.gen(function*() {
    const connection = yield* connections.acquire
    yield* Effect.onInterrupt(longOperation, () => connections.close(connection))
    yield* connections.close(connection)
  })

/**
 * Best: `Effect.acquireRelease` (the seed's `async with`). Acquiring is uninterruptible and the release is
 * registered with the scope in the same step, so there is no gap; `Effect.scoped` runs the release when the block
 * ends, however it ends.
 */
export const closeWithScope = (connections: Connections): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    yield* Effect.acquireRelease(connections.acquire, (connection) => connections.close(connection))
    yield* longOperation
  }))

/**
 * Writing or renaming a file failed.
 */
export class FileError extends Data.TaggedError("FileError")<{ readonly path: string; readonly cause: unknown }> {}

const attempt = <A>(file: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new FileError({ path: file, cause }) })

/**
 * A fresh temporary directory, removed with its contents when the scope closes.
 */
export const tempDir: Effect.Effect<string, FileError, Scope.Scope> = Effect.acquireRelease(
  attempt(os.tmpdir(), () => fs.mkdtemp(path.join(os.tmpdir(), "spindle-cancel-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/**
 * Replaces `file` with `content`: written to `<file>.tmp`, then renamed over it, so a reader never sees half a file.
 * `betweenSteps` runs between the write and the rename (the demo slows it down, the tests pause it there).
 */
const writeThenRename = (file: string, content: string, betweenSteps: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const temporary = `${file}.tmp`
    yield* attempt(temporary, () => fs.writeFile(temporary, content))
    yield* betweenSteps
    yield* attempt(file, () => fs.rename(temporary, file))
  })

/**
 * The write-then-rename with nothing protecting it: interrupted between its two steps, it leaves the temporary file
 * behind and the file not updated.
 */
export const saveInterruptibly = (
  file: string,
  content: string,
  betweenSteps: Effect.Effect<void> = Effect.void
): Effect.Effect<void, FileError> => writeThenRename(file, content, betweenSteps)

/**
 * The write-then-rename as a critical section: `Effect.uninterruptible` makes an interruption that arrives during it
 * wait until both steps are done, and take effect at the first step after it. Keep such sections short: whoever
 * interrupts (a timeout, a shutdown) waits for them.
 */
export const saveCritically = (
  file: string,
  content: string,
  betweenSteps: Effect.Effect<void> = Effect.void
): Effect.Effect<void, FileError> => Effect.uninterruptible(writeThenRename(file, content, betweenSteps))

/**
 * A job that saves a report and then announces it; `announced` records the announcements that ran.
 */
export const publish = (
  save: Effect.Effect<void, FileError>,
  announced: Array<string>,
  name: string
): Effect.Effect<void, FileError> => Effect.zipRight(save, Effect.sync(() => void announced.push(name)))

/**
 * The runnable demo, on the real clock.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  for (
    const [label, program] of [
      ["close afterwards", closeAfterwards],
      ["Effect.ensuring", closeEnsuring],
      ["Effect.onInterrupt", closeOnInterrupt],
      ["Effect.acquireRelease", closeWithScope]
    ] as const
  ) {
    const connections = yield* makeConnections
    yield* Effect.timeout(program(connections), "20 millis").pipe(Effect.ignore)
    yield* Console.log(
      `${label.padEnd(22)} interrupted by a timeout: ${yield* connections.open} connection(s) left open`
    )
  }

  const dir = yield* tempDir
  const announced: Array<string> = []
  const slowly = Effect.sleep("50 millis")
  for (const [name, save] of [["interruptible", saveInterruptibly], ["uninterruptible", saveCritically]] as const) {
    const file = path.join(dir, `${name}.json`)
    // The timeout fires while the save sits between its write and its rename.
    const exit = yield* Effect.exit(
      Effect.timeout(publish(save(file, `{"saved":"${name}"}`, slowly), announced, name), "10 millis")
    )
    const files = (yield* attempt(dir, () => fs.readdir(dir))).filter((entry) => entry.startsWith(name))
    yield* Console.log(
      `${name} save, timed out: ${Exit.isFailure(exit) ? "failed" : "done"}; files: ${files.join(", ")}`
    )
  }
  yield* Console.log(`announced: [${announced.join(", ")}] (the interruption took effect right after the rename)`)
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

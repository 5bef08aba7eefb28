// Seed pattern: "Task Groups for Structured Concurrency" — fail fast with nothing left running, or keep every outcome.
import { TaskGroup } from "@spindle/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Ref from "effect/Ref"
import { pathToFileURL } from "node:url"

/**
 * The file does not exist on the server.
 */
export class NotFound extends Data.TaggedError("NotFound")<{ readonly name: string }> {
  override get message(): string {
    return `${this.name}: not found`
  }
}

/**
 * The connection broke in the middle of the transfer.
 */
export class ConnectionReset extends Data.TaggedError("ConnectionReset")<{ readonly name: string }> {
  override get message(): string {
    return `${this.name}: connection reset`
  }
}

/**
 * What a download can fail with.
 */
export type DownloadError = NotFound | ConnectionReset

/**
 * A file to download: how long the transfer takes, and whether it ends in an error instead.
 */
export interface RemoteFile {
  readonly name: string
  readonly latency: Duration.DurationInput
  readonly fails?: DownloadError["_tag"] | undefined
}

/**
 * A simulated local disk. A download writes to a partial file and renames it when complete; a download that
 * fails or is interrupted removes its partial file in a finalizer. What the disk saw is the witness that nothing
 * was left half-written or still running.
 */
export interface Disk {
  /** Downloads that started, in the order they did. */
  readonly started: Effect.Effect<ReadonlyArray<string>>
  /** Files saved completely, with the clock time (ms) each was saved. */
  readonly saved: Effect.Effect<ReadonlyArray<{ readonly name: string; readonly at: number }>>
  /** Partial files removed because their download failed or was interrupted, with when and why. */
  readonly cleanedUp: Effect.Effect<
    ReadonlyArray<{ readonly name: string; readonly at: number; readonly why: "failed" | "interrupted" }>
  >
  /** Partial files on disk now. */
  readonly partials: Effect.Effect<number>
  readonly download: (file: RemoteFile) => Effect.Effect<string, DownloadError>
}

/**
 * Creates an empty disk.
 */
export const makeDisk: Effect.Effect<Disk> = Effect.sync(() => {
  const started: Array<string> = []
  const saved: Array<{ name: string; at: number }> = []
  const cleanedUp: Array<{ name: string; at: number; why: "failed" | "interrupted" }> = []
  let partials = 0
  const transfer = (file: RemoteFile): Effect.Effect<string, DownloadError> => {
    switch (file.fails) {
      case "NotFound":
        return Effect.fail(new NotFound({ name: file.name }))
      case "ConnectionReset":
        return Effect.fail(new ConnectionReset({ name: file.name }))
      case undefined:
        return Effect.map(Clock.currentTimeMillis, (at) => {
          saved.push({ name: file.name, at })
          return `downloads/${file.name}`
        })
    }
  }
  const download = (file: RemoteFile): Effect.Effect<string, DownloadError> =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        started.push(file.name)
        partials++
      }),
      () => Effect.zipRight(Effect.sleep(file.latency), transfer(file)),
      (_, exit) =>
        Effect.map(Clock.currentTimeMillis, (at) => {
          partials--
          if (Exit.isFailure(exit)) {
            cleanedUp.push({ name: file.name, at, why: Exit.isInterrupted(exit) ? "interrupted" : "failed" })
          }
        })
    )
  return {
    started: Effect.sync(() => started.slice()),
    saved: Effect.sync(() => saved.slice()),
    cleanedUp: Effect.sync(() => cleanedUp.slice()),
    partials: Effect.sync(() => partials),
    download
  }
})

/**
 * The seed's task group: download every file, at most `concurrency` at once, paths in input order. The first
 * failure interrupts the downloads still running and waits for their finalizers (their partial files are gone
 * when the error comes back), and files not started yet are never started: when this returns, nothing it began
 * is still running. (Over an array, `Effect.forEach(files, f, { concurrency })` behaves the same way; `TaskGroup`
 * also pulls a lazy iterable one element at a time, and names the three contracts side by side.)
 */
export const downloadAll = (
  disk: Disk,
  files: ReadonlyArray<RemoteFile>,
  concurrency: number
): Effect.Effect<Array<string>, DownloadError> => TaskGroup.all(files, disk.download, { concurrency })

/**
 * The outcome of one input of a settled group.
 */
export interface Outcome {
  readonly name: string
  readonly exit: Exit.Exit<string, DownloadError>
}

/**
 * The seed's "gather with return_exceptions", without its trap: every download runs to its end, and every
 * outcome comes back next to the file it belongs to, as a typed `Exit`. A failure cannot be filtered away by
 * accident: the caller has to look at each one to get at the values.
 */
export const downloadSettled = (
  disk: Disk,
  files: ReadonlyArray<RemoteFile>,
  concurrency: number
): Effect.Effect<Array<Outcome>> =>
  Effect.map(
    TaskGroup.settle(files, disk.download, { concurrency }),
    (exits) => exits.map((exit, i) => ({ name: files[i].name, exit }))
  )

/**
 * What `downloadOrReport` hands back when some downloads failed: the paths that were saved, and the failures
 * grouped by kind, like `except*` handlers on an exception group.
 */
export interface FailureReport {
  readonly saved: number
  readonly notFound: ReadonlyArray<string>
  readonly reset: ReadonlyArray<string>
}

/**
 * The seed's TaskGroup with `except*`: run everything (no fail fast), then either every path, or a
 * `TaskGroupFailures` holding every failure with its input index, which this handles by kind.
 */
export const downloadOrReport = (
  disk: Disk,
  files: ReadonlyArray<RemoteFile>,
  concurrency: number
): Effect.Effect<Array<string>, FailureReport> =>
  TaskGroup.settleOrFail(files, disk.download, { concurrency }).pipe(
    Effect.catchTag("TaskGroupFailures", (failures) => {
      const named = failures.failures.flatMap((failure) =>
        Array.from(Cause.failures(failure.cause), (error) => ({ name: files[failure.index].name, error }))
      )
      return Effect.fail<FailureReport>({
        saved: failures.succeeded,
        notFound: named.filter((f) => f.error._tag === "NotFound").map((f) => f.name),
        reset: named.filter((f) => f.error._tag === "ConnectionReset").map((f) => f.name)
      })
    })
  )

/**
 * The pages of a small simulated website: how long each takes to fetch, and the pages it links to.
 */
export type Pages = Readonly<
  Record<string, { readonly latency: Duration.DurationInput; readonly links: ReadonlyArray<string> }>
>

/**
 * A simulated website, with what it served: pages fetched in full, and fetches interrupted midway.
 */
export interface Site {
  /** The links of `page`, after its latency; `NotFound` for a page that does not exist. */
  readonly fetch: (page: string) => Effect.Effect<ReadonlyArray<string>, NotFound>
  readonly fetched: Effect.Effect<ReadonlyArray<string>>
  readonly interrupted: Effect.Effect<ReadonlyArray<string>>
}

/**
 * Creates a website serving `pages`.
 */
export const makeSite = (pages: Pages): Effect.Effect<Site> =>
  Effect.sync(() => {
    const fetched: Array<string> = []
    const interrupted: Array<string> = []
    return {
      fetch: (page) => {
        const entry = pages[page]
        if (entry === undefined) return Effect.fail(new NotFound({ name: page }))
        return Effect.sleep(entry.latency).pipe(
          Effect.map(() => {
            fetched.push(page)
            return entry.links
          }),
          Effect.onInterrupt(() => Effect.sync(() => interrupted.push(page)))
        )
      },
      fetched: Effect.sync(() => fetched.slice()),
      interrupted: Effect.sync(() => interrupted.slice())
    }
  })

/**
 * Fetches every page reachable from `start`, each as soon as a link to it turns up: work that is not known in
 * advance, so it cannot be a list handed to `TaskGroup.all`. `TaskGroup.scoped` forks a member per page as links
 * are found and returns when the last member is done; a broken link fails the crawl and interrupts every fetch
 * still running. Returns the number of pages fetched.
 */
export const crawl = (site: Site, start: string): Effect.Effect<number, NotFound> =>
  Effect.gen(function*() {
    // `Ref.modify` checks and marks a page in one atomic step, so two fetches that find the same link cannot both
    // go on to fetch it.
    const seen = yield* Ref.make<ReadonlySet<string>>(new Set())
    const claim = (page: string) =>
      Ref.modify(seen, (pages) => pages.has(page) ? [false, pages] : [true, new Set([...pages, page])])

    yield* TaskGroup.scoped((group: TaskGroup.Group<NotFound>) => {
      const visit = (page: string): Effect.Effect<void, NotFound> =>
        Effect.gen(function*() {
          for (const link of yield* site.fetch(page)) {
            if (yield* claim(link)) yield* group.fork(visit(link))
          }
        })
      return Effect.zipRight(claim(start), group.fork(visit(start)))
    })
    return (yield* Ref.get(seen)).size
  })

const files: Array<RemoteFile> = [
  { name: "a.csv", latency: "100 millis" },
  { name: "b.csv", latency: "150 millis" },
  { name: "c.csv", latency: "130 millis", fails: "NotFound" },
  { name: "d.csv", latency: "300 millis" },
  { name: "e.csv", latency: "250 millis", fails: "ConnectionReset" }
]

/**
 * The website of the demo and the tests: every page reachable from "/", some by several links.
 */
export const pages: Pages = {
  "/": { latency: "30 millis", links: ["/docs", "/blog"] },
  "/docs": { latency: "50 millis", links: ["/docs/api", "/"] },
  "/blog": { latency: "20 millis", links: ["/blog/1", "/blog/2", "/docs"] },
  "/docs/api": { latency: "40 millis", links: [] },
  "/blog/1": { latency: "10 millis", links: ["/docs/api"] },
  "/blog/2": { latency: "15 millis", links: [] }
}

/**
 * The runnable demo, on the real clock.
 */
export const main = Effect.gen(function*() {
  const failFast = yield* makeDisk
  const error = yield* Effect.flip(downloadAll(failFast, files, 5))
  yield* Console.log(
    `all (fail fast): ${error.message}; saved ${(yield* failFast.saved).map((s) => s.name).join(", ")}; cleaned up ` +
      `${(yield* failFast.cleanedUp).map((c) => `${c.name} (${c.why})`).join(", ")}; partial files left: ` +
      `${yield* failFast.partials}`
  )

  const outcomes = yield* downloadSettled(yield* makeDisk, files, 5)
  yield* Console.log(
    `settle (every outcome): ${
      outcomes.map((o) =>
        Exit.isSuccess(o.exit)
          ? `${o.name} saved`
          : Array.from(Cause.failures(o.exit.cause), (error) => error.message).join(", ")
      ).join("; ")
    }`
  )

  const report = yield* Effect.flip(downloadOrReport(yield* makeDisk, files, 5))
  yield* Console.log(
    `settleOrFail: ${report.saved} saved, not found: ${report.notFound.join(", ")}, reset: ${report.reset.join(", ")}`
  )

  const site = yield* makeSite(pages)
  const count = yield* crawl(site, "/")
  yield* Console.log(`scoped (crawl): ${count} pages, fetched in this order: ${(yield* site.fetched).join(", ")}`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

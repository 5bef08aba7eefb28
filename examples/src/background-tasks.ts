// Seed pattern: "Background Task Management" — tracked background tasks that restart, report status, and shut down.
import { TaskSupervisor } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { pathToFileURL } from "node:url"

/**
 * What the background tasks did, each line stamped with the clock time (ms) it happened: the witness of what ran
 * when, and of what stopped.
 */
export interface Journal {
  readonly write: (line: string) => Effect.Effect<void>
  readonly lines: Effect.Effect<ReadonlyArray<string>>
}

/**
 * Creates an empty journal.
 */
export const makeJournal: Effect.Effect<Journal> = Effect.sync(() => {
  const lines: Array<string> = []
  return {
    write: (line) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        lines.push(`${now} ${line}`)
      }),
    lines: Effect.sync(() => lines.slice())
  }
})

/**
 * The synchronisation with the remote store failed.
 */
export class SyncFailed extends Data.TaggedError("SyncFailed")<{ readonly run: number }> {
  override get message(): string {
    return `sync run ${this.run} failed: remote store not ready`
  }
}

/**
 * Beats once a second until the supervisor asks its tasks to drain, then ends.
 */
export const heartbeat = (journal: Journal): TaskSupervisor.Task<never, never> => ({
  name: "heartbeat",
  run: (drain) => Effect.raceFirst(Effect.repeat(journal.write("heartbeat"), Schedule.spaced("1 second")), drain.await)
})

/**
 * Syncs every 500 ms until drain; its first `crashes` runs crash at start-up (the remote store is not ready). The
 * supervisor restarts it after 100 ms, then 200 ms, 400 ms, ..., and gives up (status `failed`) after 5 restarts
 * within a minute, rather than spin on a task that cannot start.
 */
export const syncer = (journal: Journal, crashes: number): TaskSupervisor.Task<SyncFailed, never> => {
  let runs = 0
  return {
    name: "syncer",
    restart: TaskSupervisor.onFailure(Schedule.exponential("100 millis")),
    maxRestarts: 5,
    window: "1 minute",
    run: (drain) =>
      Effect.suspend(() => {
        const run = ++runs
        if (run <= crashes) return Effect.zipRight(journal.write(`syncer run ${run} crashed`), new SyncFailed({ run }))
        return Effect.raceFirst(
          Effect.repeat(journal.write(`syncer run ${run} synced`), Schedule.spaced("500 millis")),
          drain.await
        )
      })
  }
}

/**
 * Sends the mails queued in `outbox`, 300 ms each. When drain begins it finishes the mail it is sending and takes
 * no more; what is left stays in the outbox for the next start.
 */
export const mailer = (journal: Journal, outbox: Queue.Dequeue<string>): TaskSupervisor.Task<never, never> => ({
  name: "mailer",
  run: (drain) =>
    Effect.gen(function*() {
      while (!(yield* drain.isDraining)) {
        const mail = yield* Effect.raceFirst(Queue.take(outbox), Effect.as(drain.await, undefined))
        if (mail === undefined) break
        yield* Effect.sleep("300 millis")
        yield* journal.write(`mailer sent ${mail}`)
      }
      yield* journal.write("mailer stopped")
    })
})

/**
 * A poller that knows nothing of drain: it only stops when interrupted, after the grace period. Its finalizer
 * still runs.
 */
export const legacyPoller = (journal: Journal): TaskSupervisor.Task<never, never> => ({
  name: "legacy-poller",
  run: () =>
    Effect.forever(Effect.zipRight(journal.write("legacy-poller polled"), Effect.sleep("2 seconds"))).pipe(
      Effect.onInterrupt(() => journal.write("legacy-poller interrupted"))
    )
})

/**
 * Starts the four tasks in `supervisor`, with `mails` queued for the mailer.
 */
export const startAll = (
  supervisor: TaskSupervisor.TaskSupervisor,
  journal: Journal,
  mails: ReadonlyArray<string>
): Effect.Effect<void, TaskSupervisor.TaskAlreadyRunning | TaskSupervisor.SupervisorShuttingDown> =>
  Effect.gen(function*() {
    const outbox = yield* Queue.unbounded<string>()
    yield* Queue.offerAll(outbox, mails)
    yield* supervisor.start(heartbeat(journal))
    yield* supervisor.start(syncer(journal, 2))
    yield* supervisor.start(mailer(journal, outbox))
    yield* supervisor.start(legacyPoller(journal))
  })

/**
 * The seed's fire-and-forget, in Effect: `Effect.forkDaemon` starts a fiber nobody owns. It is not lost to a
 * garbage collector as an untracked asyncio task can be, but nothing stops it either: it outlives the scope, the
 * request or the test that started it. Returned so that a caller can at least interrupt it.
 */
export const fireAndForget = (journal: Journal): Effect.Effect<Fiber.RuntimeFiber<never>> =>
  Effect.forkDaemon(Effect.forever(Effect.zipRight(journal.write("untracked beat"), Effect.sleep("1 second"))))

/**
 * The service: a supervisor with the four tasks started, living in the caller's scope. Closing that scope shuts
 * the supervisor down (drain first, interruption after `grace`), whether the body ended, failed or was
 * interrupted: nothing started here outlives it.
 */
export const startService = (
  journal: Journal,
  options: { readonly mails: ReadonlyArray<string>; readonly grace: Duration.DurationInput }
): Effect.Effect<
  TaskSupervisor.TaskSupervisor,
  TaskSupervisor.TaskAlreadyRunning | TaskSupervisor.SupervisorShuttingDown,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const supervisor = yield* TaskSupervisor.make({ grace: options.grace })
    yield* startAll(supervisor, journal, options.mails)
    return supervisor
  })

/**
 * The runnable demo, on the real clock (about 3 seconds). The supervisor logs every crash and restart; the demo
 * turns logging off and prints the journal instead.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const journal = yield* makeJournal
  const mails = ["mail-1", "mail-2", "mail-3", "mail-4", "mail-5", "mail-6"]
  const supervisor = yield* startService(journal, { mails, grace: "10 seconds" })
  yield* Effect.sleep("1 second")
  for (const task of yield* supervisor.tasks) {
    yield* Console.log(`${task.name.padEnd(14)} ${task.status.padEnd(10)} restarts: ${task.restarts}`)
  }
  const [elapsed, report] = yield* Effect.timed(supervisor.shutdown("1500 millis"))
  yield* Console.log(
    `shutdown took ${Math.round(Duration.toMillis(elapsed))} ms: finished ` +
      `${report.finished.join(", ")}; interrupted ${report.interrupted.join(", ")}`
  )
  const origin = Number((yield* journal.lines)[0].split(" ")[0])
  for (const line of yield* journal.lines) {
    const [at, ...rest] = line.split(" ")
    yield* Console.log(`  +${String(Number(at) - origin).padStart(4)} ms  ${rest.join(" ")}`)
  }
})).pipe(Logger.withMinimumLogLevel(LogLevel.None))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

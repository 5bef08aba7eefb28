/**
 * Supervised background tasks: named long-running fibers with a restart policy, observable status, and a
 * shutdown that first asks, then insists.
 *
 * A task is an effect given a `Drain` signal. On `shutdown(grace)` the signal fires and tasks get `grace` to
 * finish what they are doing (a worker stops taking new jobs, a poller ends its loop); whatever still runs after
 * that is interrupted, its finalizers run, and the report says which tasks finished and which were interrupted.
 * Closing the supervisor's scope shuts it down with its default grace, so nothing started here outlives it: the
 * Effect answer to fire-and-forget tasks that nobody awaits.
 *
 * Restart policies: `never`; `onFailure(schedule)` (a crash restarts after the schedule's delay, a clean end
 * completes); `always(schedule)`. A restart intensity (`maxRestarts` within `window`) turns a crash loop into a
 * `failed` task instead of a hot spin. Status, restart counts and the last error are queryable and exported as
 * metrics.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Metrics from "./internal/metrics.js"
import * as Validate from "./internal/validate.js"

/**
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(TaskSupervisor.make(), (supervisor) => TaskSupervisor.TypeId in supervisor)
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/TaskSupervisor")

/**
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 *
 * const isTaskSupervisor = (u: unknown): u is TaskSupervisor.TaskSupervisor =>
 *   typeof u === "object" && u !== null && TaskSupervisor.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The signal a task observes to finish gracefully.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // A poller that ends its loop when shutdown begins instead of being interrupted mid-poll.
 * const poller = (drain: TaskSupervisor.Drain) =>
 *   Effect.gen(function*() {
 *     let polls = 0
 *     while (!(yield* drain.isDraining)) {
 *       polls++
 *       yield* Effect.race(Effect.sleep("5 millis"), drain.await)
 *     }
 *     return polls
 *   })
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   yield* supervisor.start({ name: "poller", run: poller })
 *   yield* Effect.sleep("20 millis")
 *   return yield* supervisor.shutdown("1 second")
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // { finished: ["poller"], interrupted: [] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Drain {
  /** Completes when shutdown begins. Race it against waiting for the next job. */
  readonly await: Effect.Effect<void>
  /** `true` once shutdown has begun. */
  readonly isDraining: Effect.Effect<boolean>
}

/**
 * When a task that ended is started again.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Schedule from "effect/Schedule"
 *
 * const policyFor = (kind: "oneshot" | "worker" | "ticker"): TaskSupervisor.RestartPolicy =>
 *   kind === "oneshot"
 *     ? TaskSupervisor.never
 *     : kind === "worker"
 *     ? TaskSupervisor.onFailure(Schedule.exponential("1 second"))
 *     : TaskSupervisor.always(Schedule.spaced("1 minute"))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type RestartPolicy =
  | { readonly _tag: "Never" }
  | { readonly _tag: "OnFailure"; readonly schedule: Schedule.Schedule<unknown, unknown> }
  | { readonly _tag: "Always"; readonly schedule: Schedule.Schedule<unknown, unknown> }

/**
 * Never restart.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   yield* supervisor.start({ name: "warm-cache", run: () => Effect.fail("cold"), restart: TaskSupervisor.never })
 *   yield* Effect.sleep("10 millis")
 *   return (yield* supervisor.tasks).map((t) => `${t.name}: ${t.status}`)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // ["warm-cache: failed"]
 * ```
 *
 * @since 0.1.0
 * @category restart policies
 */
export const never: RestartPolicy = { _tag: "Never" }

/**
 * Restart after a failure (a defect included), waiting the schedule's delays; a clean end completes the task.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Schedule from "effect/Schedule"
 *
 * let runs = 0
 * // Crashes twice, then ends cleanly: restarted after each crash, then completed.
 * const flaky = () => Effect.suspend(() => ++runs <= 2 ? Effect.die("crash") : Effect.void)
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   const restart = TaskSupervisor.onFailure(Schedule.spaced("1 millis"))
 *   yield* supervisor.start({ name: "sync", run: flaky, restart })
 *   yield* Effect.sleep("50 millis")
 *   return yield* supervisor.tasks
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then((tasks) => console.log(tasks[0].status, tasks[0].restarts))
 * // "completed" 2
 * ```
 *
 * @since 0.1.0
 * @category restart policies
 */
export const onFailure = (schedule: Schedule.Schedule<unknown, unknown>): RestartPolicy => ({
  _tag: "OnFailure",
  schedule
})

/**
 * Restart whenever the task ends, waiting the schedule's delays.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Schedule from "effect/Schedule"
 *
 * // Runs a sweep, then again every 10 minutes, until the supervisor shuts down.
 * const sweeper = TaskSupervisor.layer({ grace: "5 seconds" })
 *
 * const startSweeper = Effect.flatMap(TaskSupervisor.TaskSupervisor, (supervisor) =>
 *   supervisor.start({
 *     name: "sweep-temp-files",
 *     run: () => Effect.log("sweeping"),
 *     restart: TaskSupervisor.always(Schedule.spaced("10 minutes"))
 *   }))
 * ```
 *
 * @since 0.1.0
 * @category restart policies
 */
export const always = (schedule: Schedule.Schedule<unknown, unknown>): RestartPolicy => ({ _tag: "Always", schedule })

/**
 * A task to supervise.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Schedule from "effect/Schedule"
 *
 * const consumer: TaskSupervisor.Task<string, never> = {
 *   name: "consumer",
 *   run: (drain) => Effect.race(drain.await, Effect.never),
 *   restart: TaskSupervisor.onFailure(Schedule.exponential("100 millis")),
 *   // More than 5 crashes in a minute: give up and mark it failed rather than spin.
 *   maxRestarts: 5,
 *   window: "1 minute"
 * }
 *
 * const program = Effect.flatMap(TaskSupervisor.make(), (s) => s.start(consumer)).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Task<E, R> {
  readonly name: string
  readonly run: (drain: Drain) => Effect.Effect<unknown, E, R>
  /** Default `never`. */
  readonly restart?: RestartPolicy | undefined
  /** At most this many restarts within `window`, else the task is `failed`. Default 10 within 1 minute. */
  readonly maxRestarts?: number | undefined
  readonly window?: Duration.DurationInput | undefined
}

/**
 * Where a task is in its life.
 *
 * @example
 * ```ts
 * import type { TaskSupervisor } from "@spindle/core"
 *
 * const isAlive = (status: TaskSupervisor.Status) => status === "running" || status === "restarting"
 *
 * console.log(isAlive("restarting"), isAlive("stopped")) // true false
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "running" | "restarting" | "completed" | "failed" | "stopped"

/**
 * What a supervisor knows of a task.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * const health = (info: TaskSupervisor.TaskInfo) =>
 *   `${info.name} ${info.status} (restarts: ${info.restarts}, last error: ${Option.isSome(info.lastError)})`
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   yield* supervisor.start({ name: "idle", run: (drain) => drain.await })
 *   return Option.map(yield* supervisor.status("idle"), health)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log)
 * // { _id: "Option", _tag: "Some", value: "idle running (restarts: 0, last error: false)" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskInfo {
  readonly name: string
  readonly status: Status
  readonly restarts: number
  readonly lastError: Option.Option<Cause.Cause<unknown>>
}

/**
 * What a shutdown did: tasks that ended within the grace period, and tasks it had to interrupt.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   yield* supervisor.start({ name: "polite", run: (drain) => drain.await })
 *   yield* supervisor.start({ name: "stubborn", run: () => Effect.never })
 *   const report: TaskSupervisor.ShutdownReport = yield* supervisor.shutdown("20 millis")
 *   return report
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // { finished: ["polite"], interrupted: ["stubborn"] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownReport {
  readonly finished: ReadonlyArray<string>
  readonly interrupted: ReadonlyArray<string>
}

/**
 * A task with this name is already supervised and not finished.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   const task = { name: "indexer", run: (drain: TaskSupervisor.Drain) => drain.await }
 *   yield* supervisor.start(task)
 *   return yield* supervisor.start(task).pipe(
 *     Effect.catchTag("TaskAlreadyRunning", (e) => Effect.succeed(e.message))
 *   )
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 'Task "indexer" is already running'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskAlreadyRunning extends Data.TaggedError("TaskAlreadyRunning")<{ readonly name: string }> {
  override get message(): string {
    return `Task "${this.name}" is already running`
  }
}

/**
 * The supervisor is shutting down and takes no new tasks.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   yield* supervisor.shutdown()
 *   return yield* supervisor.start({ name: "late", run: () => Effect.void }).pipe(
 *     Effect.catchTag("SupervisorShuttingDown", () => Effect.succeed("refused: shutting down"))
 *   )
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // "refused: shutting down"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class SupervisorShuttingDown extends Data.TaggedError("SupervisorShuttingDown")<{}> {}

/**
 * A supervisor of background tasks.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const startWorkers = (supervisor: TaskSupervisor.TaskSupervisor, n: number) =>
 *   Effect.forEach(Array.from({ length: n }, (_, i) => `worker-${i}`), (name) =>
 *     supervisor.start({ name, run: (drain) => drain.await }))
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make({ grace: "1 second" })
 *   yield* startWorkers(supervisor, 3)
 *   yield* supervisor.stop("worker-1")
 *   return (yield* supervisor.tasks).map((t) => t.status)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // ["running", "stopped", "running"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskSupervisor {
  readonly [TypeId]: TypeId
  /** Starts supervising a task; returns once it is started. */
  readonly start: <E, R>(
    task: Task<E, R>
  ) => Effect.Effect<void, TaskAlreadyRunning | SupervisorShuttingDown, R>
  /** One task's status. */
  readonly status: (name: string) => Effect.Effect<Option.Option<TaskInfo>>
  /** Every task's status, in start order. */
  readonly tasks: Effect.Effect<ReadonlyArray<TaskInfo>>
  /** Interrupts one task now (no restart); its status becomes `stopped`. */
  readonly stop: (name: string) => Effect.Effect<void>
  /** Signals drain, waits up to `grace` for tasks to end, interrupts the rest. Idempotent. */
  readonly shutdown: (grace?: Duration.DurationInput) => Effect.Effect<ShutdownReport>
}

/**
 * The supervisor service.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const startHeartbeat = Effect.flatMap(TaskSupervisor.TaskSupervisor, (supervisor) =>
 *   supervisor.start({ name: "heartbeat", run: (drain) => drain.await }))
 *
 * // The layer's release shuts the supervisor down: no background task outlives the program.
 * Effect.runPromise(startHeartbeat.pipe(Effect.provide(TaskSupervisor.layer()))).then(() => console.log("stopped"))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const TaskSupervisor: Context.Tag<TaskSupervisor, TaskSupervisor> = Context.GenericTag<TaskSupervisor>(
  "@spindle/core/TaskSupervisor"
)

/**
 * The metrics supervisors update, labelled `task=<name>`: 1 while running, and restarts.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const supervisor = yield* TaskSupervisor.make()
 *   yield* supervisor.start({ name: "docs-task", run: (drain) => drain.await })
 *   yield* Effect.sleep("5 millis") // the task's fiber has begun
 *   const running = yield* Metric.value(TaskSupervisor.metrics.running.pipe(Metric.tagged("task", "docs-task")))
 *   return running.value
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 1
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  running: Metrics.taskRunning,
  restarts: Metrics.taskRestarts
} as const

interface Entry {
  info: TaskInfo
  fiber: Fiber.RuntimeFiber<void> | undefined
  readonly labels: Metrics.Labels
}

/**
 * Creates a supervisor in the current scope; closing the scope shuts it down with `grace` (default 10 seconds).
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Schedule from "effect/Schedule"
 *
 * const program = Effect.gen(function*() {
 *   // Closing the scope shuts the supervisor down with a 10 second grace.
 *   const supervisor = yield* TaskSupervisor.make({ grace: "10 seconds" })
 *   yield* supervisor.start({
 *     name: "poller",
 *     run: (drain) => Effect.race(drain.await, Effect.never),
 *     restart: TaskSupervisor.onFailure(Schedule.exponential("1 second")),
 *     maxRestarts: 5,
 *     window: "1 minute"
 *   })
 *   return (yield* supervisor.tasks).length
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 1
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly grace?: Duration.DurationInput | undefined } = {}): Effect.Effect<
  TaskSupervisor,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const defaultGrace = Validate.durationOr("TaskSupervisor", "grace", options.grace, 10_000)
    const draining = yield* Deferred.make<void>()
    const drain: Drain = { await: Deferred.await(draining), isDraining: Deferred.isDone(draining) }
    const entries = new Map<string, Entry>()
    let report: Deferred.Deferred<ShutdownReport> | undefined

    const setInfo = (entry: Entry, patch: Partial<TaskInfo>) => {
      entry.info = { ...entry.info, ...patch }
      Metrics.taskRunning.unsafeUpdate(entry.info.status === "running" ? 1 : 0, entry.labels)
    }

    // Interrupts a task's fiber; one interrupted before it ever ran has no finalizer to record it, hence the check.
    const markStopped = (entry: Entry) =>
      entry.fiber === undefined ? Effect.void : Effect.zipRight(
        Fiber.interrupt(entry.fiber),
        Effect.sync(() => {
          if (entry.info.status === "running" || entry.info.status === "restarting") {
            setInfo(entry, { status: "stopped" })
          }
        })
      )

    const supervise = <E, R>(task: Task<E, R>, entry: Entry) =>
      Effect.gen(function*() {
        const policy = task.restart ?? never
        const maxRestarts = Validate.nonNegativeIntegerOr("TaskSupervisor", "maxRestarts", task.maxRestarts, 10)
        const windowMillis = Validate.durationOr("TaskSupervisor", "window", task.window, 60_000)
        const driver = policy._tag === "Never" ? undefined : yield* Schedule.driver(policy.schedule)
        const restartTimes: Array<number> = []
        while (true) {
          setInfo(entry, { status: "running" })
          const exit = yield* Effect.exit(task.run(drain))
          const isDraining = yield* drain.isDraining
          if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
            setInfo(entry, { lastError: Option.some(exit.cause) })
            yield* Effect.logWarning("supervised task failed").pipe(
              Effect.annotateLogs({ task: task.name, cause: Cause.pretty(exit.cause) })
            )
          }
          const failed = Exit.isFailure(exit)
          if (isDraining) return setInfo(entry, { status: failed ? "stopped" : "completed" })
          const restart = driver !== undefined && (policy._tag === "Always" || failed)
          if (!restart) return setInfo(entry, { status: failed ? "failed" : "completed" })
          const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          while (restartTimes.length > 0 && restartTimes[0] <= now - windowMillis) restartTimes.shift()
          if (restartTimes.length >= maxRestarts) {
            yield* Effect.logError("supervised task restarts too often; giving up").pipe(
              Effect.annotateLogs({ task: task.name, restarts: restartTimes.length, windowMs: windowMillis })
            )
            return setInfo(entry, { status: "failed" })
          }
          setInfo(entry, { status: "restarting" })
          // Wait the schedule's delay, unless shutdown begins first; a finished schedule means give up.
          const next = yield* Effect.raceFirst(
            Effect.map(
              Effect.option(driver.next(exit)),
              (o) => o._tag === "Some" ? "restart" as const : "done" as const
            ),
            Effect.as(drain.await, "drain" as const)
          )
          if (next === "drain") return setInfo(entry, { status: "stopped" })
          if (next === "done") return setInfo(entry, { status: failed ? "failed" : "completed" })
          restartTimes.push(yield* Effect.clockWith((clock) => clock.currentTimeMillis))
          setInfo(entry, { restarts: entry.info.restarts + 1 })
          Metrics.taskRestarts.unsafeUpdate(1, entry.labels)
          yield* Effect.logInfo("restarting supervised task").pipe(
            Effect.annotateLogs({ task: task.name, restart: entry.info.restarts })
          )
        }
      }).pipe(
        Effect.onInterrupt(() => Effect.sync(() => setInfo(entry, { status: "stopped" })))
      )

    const start = <E, R>(task: Task<E, R>) =>
      Effect.gen(function*() {
        if (yield* drain.isDraining) return yield* new SupervisorShuttingDown()
        const existing = entries.get(task.name)
        if (existing !== undefined && (existing.info.status === "running" || existing.info.status === "restarting")) {
          return yield* new TaskAlreadyRunning({ name: task.name })
        }
        const entry: Entry = {
          info: { name: task.name, status: "running", restarts: 0, lastError: Option.none() },
          fiber: undefined,
          labels: Metrics.labels("task", task.name)
        }
        entries.delete(task.name)
        entries.set(task.name, entry)
        entry.fiber = yield* Effect.forkDaemon(supervise(task, entry))
      })

    const shutdown = (grace?: Duration.DurationInput) =>
      Effect.uninterruptible(Effect.suspend(() => {
        if (report !== undefined) return Deferred.await(report)
        const done = Deferred.unsafeMake<ShutdownReport>(FiberId.none)
        report = done
        const graceMillis = Validate.durationOr("TaskSupervisor", "grace", grace, defaultGrace)
        return Effect.gen(function*() {
          yield* Deferred.succeed(draining, undefined)
          const live = Array.from(entries.values()).filter((e) => e.fiber !== undefined)
          const waiting = live.filter((e) => e.fiber!.unsafePoll() === null)
          yield* Effect.logInfo("supervisor draining").pipe(
            Effect.annotateLogs({ tasks: waiting.length, graceMs: graceMillis })
          )
          const finished: Array<string> = []
          const interrupted: Array<string> = []
          // Shutdown runs uninterruptibly (it is a scope finalizer too), so the wait itself is marked interruptible:
          // otherwise the timeout could not cut it short.
          yield* Effect.forEach(waiting, (entry) =>
            Effect.interruptible(Fiber.await(entry.fiber!)).pipe(
              Effect.timeout(Duration.millis(graceMillis)),
              Effect.matchEffect({
                onSuccess: () => Effect.sync(() => finished.push(entry.info.name)),
                onFailure: () =>
                  Effect.zipRight(
                    Effect.sync(() => interrupted.push(entry.info.name)),
                    markStopped(entry)
                  )
              })
            ), { concurrency: "unbounded", discard: true })
          if (interrupted.length > 0) {
            yield* Effect.logWarning("supervisor interrupted tasks that outlived the grace period").pipe(
              Effect.annotateLogs({ tasks: interrupted.join(", ") })
            )
          }
          const result: ShutdownReport = { finished, interrupted }
          yield* Deferred.succeed(done, result)
          return result
        })
      }))

    yield* Effect.addFinalizer(() => shutdown())

    const supervisor: TaskSupervisor = {
      [TypeId]: TypeId,
      start,
      status: (name) => Effect.sync(() => Option.fromNullable(entries.get(name)?.info)),
      tasks: Effect.sync(() => Array.from(entries.values(), (e) => e.info)),
      stop: (name) =>
        Effect.suspend(() => {
          const entry = entries.get(name)
          return entry === undefined ? Effect.void : markStopped(entry)
        }),
      shutdown
    }
    return supervisor
  })

/**
 * A layer providing a `TaskSupervisor` that shuts down when the layer is released.
 *
 * @example
 * ```ts
 * import { TaskSupervisor } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * // Background work of an app, started with the app and drained when it stops.
 * const BackgroundLive = Layer.effectDiscard(
 *   Effect.flatMap(TaskSupervisor.TaskSupervisor, (supervisor) =>
 *     supervisor.start({ name: "outbox-relay", run: (drain) => drain.await }))
 * ).pipe(Layer.provideMerge(TaskSupervisor.layer({ grace: "5 seconds" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly grace?: Duration.DurationInput | undefined } = {}): Layer.Layer<
  TaskSupervisor
> => Layer.scoped(TaskSupervisor, make(options))

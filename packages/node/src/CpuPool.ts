/**
 * CPU-bound work on a pool of worker threads, so the event loop keeps serving while hashes, compression or
 * number crunching run on the other cores — the Node counterpart of a process pool executor.
 *
 * A task is an exported function of a module (workers cannot receive closures), called with structured-cloneable
 * arguments; `task` adds Schema-typed requests and responses on both sides of the boundary. The pool keeps `size`
 * workers (default: the cores available), hands each task to an idle one in arrival order, and queues the rest.
 *
 * Interruption is exact: interrupting the caller of a running task terminates that worker (a CPU loop cannot be
 * asked to stop) and starts a replacement; a queued task simply leaves the queue. A worker that crashes fails its
 * task with a typed `CpuTaskError` and is replaced; the pool never shrinks.
 *
 * This pool is its own small protocol over `worker_threads` rather than `@effect/platform`'s `WorkerPool`: on this
 * kind of machine the latter measured 225 tasks/s against piscina's 290 with 3× the memory (see PEERS.md and
 * `pnpm bench`).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { availableParallelism } from "node:os"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import * as ExecArgv from "./internal/execArgv.js"
// A copy of core's intrusive list (core keeps its internals private).
import { LinkedList } from "./internal/linkedList.js"

/**
 * A task failed: the function threw (`Threw`, `cause` is what it threw), its worker crashed (`WorkerCrashed`), or
 * the module or export could not be loaded (`LoadFailed`).
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* CpuPool.CpuPool
 *   return yield* pool.run<string>(new URL("./hash.js", import.meta.url), "sha256", "payload")
 * }).pipe(
 *   Effect.catchTag("CpuTaskError", (e) =>
 *     // Threw: the function threw; WorkerCrashed: the worker died (it is replaced); LoadFailed: bad module or export.
 *     Effect.logError(`${e.exportName} failed: ${e.reason}`))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CpuTaskError extends Data.TaggedError("CpuTaskError")<{
  readonly reason: "Threw" | "WorkerCrashed" | "LoadFailed"
  readonly module: string
  readonly exportName: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.module}#${this.exportName}: ${this.reason}: ${detail}`
  }
}

/**
 * Options of a pool.
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as os from "node:os"
 *
 * // Leave one core to the event loop.
 * const options: CpuPool.Options = { size: Math.max(1, os.availableParallelism() - 1), name: "thumbnails" }
 *
 * const PoolLive = CpuPool.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Worker threads. Default `os.availableParallelism()`. */
  readonly size?: number | undefined
  /**
   * Flags for the workers' Node. Default: the module-loader flags of the process's `execArgv` (so a loader such as
   * tsx applies), without V8 and process-wide flags, which workers refuse.
   */
  readonly execArgv?: ReadonlyArray<string> | undefined
  /** Label for metrics. Default `"default"`. */
  readonly name?: string | undefined
}

/**
 * What a pool is doing now.
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const report = (stats: CpuPool.Stats) =>
 *   `${stats.busy}/${stats.size} busy, ${stats.queued} queued, ${stats.replaced} replaced`
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* CpuPool.make({ size: 1 })
 *   return report(yield* pool.stats)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // "0/1 busy, 0 queued, 0 replaced"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly size: number
  readonly busy: number
  readonly queued: number
  /** Workers replaced since the start, after a crash or an interrupted task. */
  readonly replaced: number
}

/**
 * A pool of worker threads.
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 * import * as Schema from "effect/Schema"
 *
 * // resize.js: export const resize = ({ width, height }) => ({ pixels: width * height })
 * const resize = (pool: CpuPool.CpuPool) =>
 *   pool.task({
 *     module: new URL("./resize.js", import.meta.url),
 *     exportName: "resize",
 *     request: Schema.Struct({ width: Schema.Int, height: Schema.Int }),
 *     response: Schema.Struct({ pixels: Schema.Number })
 *   })
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* CpuPool.make()
 *   const { pixels } = yield* resize(pool)({ width: 640, height: 480 })
 *   return pixels
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CpuPool {
  /** Calls `module`'s export `exportName` with `args` on a worker and returns its (awaited) result. */
  readonly run: <A = unknown>(
    module: string | URL,
    exportName: string,
    ...args: ReadonlyArray<unknown>
  ) => Effect.Effect<A, CpuTaskError>
  /**
   * A typed task: the input is encoded with `request` before it crosses to the worker (where the function receives
   * the encoded form), and the result is decoded with `response` on the way back.
   */
  readonly task: <I, IE, O, OE>(definition: {
    readonly module: string | URL
    readonly exportName: string
    readonly request: Schema.Schema<I, IE>
    readonly response: Schema.Schema<O, OE>
  }) => (input: I) => Effect.Effect<O, CpuTaskError | ParseResult.ParseError>
  readonly stats: Effect.Effect<Stats>
}

/**
 * The pool service.
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // hash.js: export const sha256 = (text) => createHash("sha256").update(text).digest("hex")
 * const sha256 = (text: string) =>
 *   Effect.flatMap(CpuPool.CpuPool, (pool) => pool.run<string>(new URL("./hash.js", import.meta.url), "sha256", text))
 *
 * const program = Effect.forEach(["a", "b", "c"], sha256, { concurrency: "unbounded" }).pipe(
 *   Effect.provide(CpuPool.layer({ size: 2 }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const CpuPool: Context.Tag<CpuPool, CpuPool> = Context.GenericTag<CpuPool>("@spindle/node/CpuPool")

const tasksRun = Metric.counter("spindle_cpu_pool_tasks_total", {
  description: "Tasks a CPU pool finished",
  incremental: true
})

const workersReplaced = Metric.counter("spindle_cpu_pool_replaced_total", {
  description: "Workers a CPU pool replaced after a crash or an interrupted task",
  incremental: true
})

/**
 * The metrics pools update, labelled `pool=<name>`.
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * // Tasks finished and workers replaced by the pool named "images".
 * const snapshot = Effect.all({
 *   tasks: Metric.value(CpuPool.metrics.tasks.pipe(Metric.tagged("pool", "images"))),
 *   replaced: Metric.value(CpuPool.metrics.replaced.pipe(Metric.tagged("pool", "images")))
 * })
 *
 * Effect.runPromise(snapshot).then(({ replaced, tasks }) => console.log(tasks.count, replaced.count)) // 0 0
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = { tasks: tasksRun, replaced: workersReplaced } as const

// The worker: loads modules once, runs one task at a time, answers with the task's id.
const workerSource = `
const { parentPort } = require("node:worker_threads")
const modules = new Map()
parentPort.on("message", async (task) => {
  let fn
  try {
    let mod = modules.get(task.module)
    if (mod === undefined) {
      mod = await import(task.module)
      modules.set(task.module, mod)
    }
    fn = mod[task.exportName]
    if (typeof fn !== "function") throw new Error("export " + task.exportName + " is not a function")
  } catch (error) {
    parentPort.postMessage({ id: task.id, ok: false, load: true, error })
    return
  }
  try {
    parentPort.postMessage({ id: task.id, ok: true, result: await fn(...task.args) })
  } catch (error) {
    parentPort.postMessage({ id: task.id, ok: false, error })
  }
})
`

interface Task {
  readonly id: number
  readonly module: string
  readonly exportName: string
  readonly args: ReadonlyArray<unknown>
  readonly resume: (effect: Effect.Effect<any, CpuTaskError>) => void
}

interface Slot {
  worker: Worker
  current: Task | undefined
}

const toUrl = (module: string | URL): string => {
  const id = module.toString()
  return id.includes("://") ? id : pathToFileURL(id).href
}

/**
 * Starts a pool for the lifetime of the current scope; closing it terminates the workers (tasks still running
 * are interrupted).
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // primes.js: export const countPrimes = (limit) => { …a CPU-bound loop… }
 * const program = Effect.gen(function*() {
 *   const pool = yield* CpuPool.make({ size: 4 })
 *   const counts = yield* Effect.forEach(
 *     [1e6, 2e6, 3e6],
 *     (limit) => pool.run<number>(new URL("./primes.js", import.meta.url), "countPrimes", limit),
 *     { concurrency: "unbounded" }
 *   )
 *   return counts
 * }).pipe(Effect.scoped) // closing the scope terminates the workers
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<CpuPool, never, Scope.Scope> =>
  Effect.gen(function*() {
    const size = options.size ?? Math.max(1, availableParallelism())
    const execArgv = [...(options.execArgv ?? ExecArgv.forWorkers())]
    const tags = [MetricLabel.make("pool", options.name ?? "default")]
    const slots: Array<Slot> = []
    const queue = new LinkedList<Task>()
    let nextId = 0
    let replaced = 0
    let closed = false

    const fail = (task: Task, reason: CpuTaskError["reason"], cause: unknown) =>
      task.resume(Effect.fail(new CpuTaskError({ reason, module: task.module, exportName: task.exportName, cause })))

    const dispatch = (slot: Slot) => {
      const next = queue.shift()
      if (next === undefined) return
      slot.current = next.value
      slot.worker.postMessage({
        id: next.value.id,
        module: next.value.module,
        exportName: next.value.exportName,
        args: next.value.args
      })
    }

    const spawn = (slot: Slot) => {
      const worker = new Worker(workerSource, { eval: true, execArgv })
      worker.unref()
      slot.worker = worker
      slot.current = undefined
      worker.on(
        "message",
        (message: { id: number; ok: boolean; result?: unknown; error?: unknown; load?: boolean }) => {
          const task = slot.current
          if (task === undefined || task.id !== message.id) return
          slot.current = undefined
          tasksRun.unsafeUpdate(1, tags)
          if (message.ok) task.resume(Effect.succeed(message.result))
          else fail(task, message.load === true ? "LoadFailed" : "Threw", message.error)
          dispatch(slot)
        }
      )
      const onCrash = (cause: unknown) => {
        if (slot.worker !== worker || closed) return
        const task = slot.current
        replace(slot)
        if (task !== undefined) fail(task, "WorkerCrashed", cause)
      }
      worker.on("error", onCrash)
      worker.on("exit", (code) => onCrash(new Error(`worker exited with code ${code}`)))
    }

    const replace = (slot: Slot) => {
      const old = slot.worker
      replaced++
      workersReplaced.unsafeUpdate(1, tags)
      spawn(slot)
      void old.terminate()
      dispatch(slot)
    }

    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (let i = 0; i < size; i++) {
          const slot: Slot = { worker: undefined as unknown as Worker, current: undefined }
          spawn(slot)
          slots.push(slot)
        }
      }),
      () =>
        Effect.promise(() => {
          closed = true
          return Promise.all(slots.map((slot) => slot.worker.terminate()))
        })
    )

    const run = <A>(module: string | URL, exportName: string, ...args: ReadonlyArray<unknown>) =>
      Effect.async<A, CpuTaskError>((resume) => {
        const task: Task = { id: nextId++, module: toUrl(module), exportName, args, resume }
        const node = queue.push(task)
        const idle = slots.find((slot) => slot.current === undefined)
        if (idle !== undefined) dispatch(idle)
        return Effect.sync(() => {
          if (queue.remove(node)) return
          const running = slots.find((slot) => slot.current === task)
          // A CPU loop cannot be asked to stop: its worker is replaced.
          if (running !== undefined) replace(running)
        })
      })

    const pool: CpuPool = {
      run,
      task: (definition) => {
        const encode = Schema.encode(definition.request)
        const decode = Schema.decodeUnknown(definition.response)
        return (input) =>
          Effect.flatMap(encode(input), (encoded) =>
            Effect.flatMap(run(definition.module, definition.exportName, encoded), decode))
      },
      stats: Effect.sync(() => ({
        size,
        busy: slots.filter((slot) =>
          slot.current !== undefined
        ).length,
        queued: queue.length,
        replaced
      }))
    }
    return pool
  })

/**
 * A layer providing a `CpuPool`.
 *
 * @example
 * ```ts
 * import { CpuPool } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const PoolLive = CpuPool.layer({ name: "hashing" })
 *
 * const program = Effect.flatMap(CpuPool.CpuPool, (pool) => pool.stats).pipe(Effect.provide(PoolLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<CpuPool> => Layer.scoped(CpuPool, make(options))

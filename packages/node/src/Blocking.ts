/**
 * Calling a synchronous, blocking function without blocking the event loop: the call runs on a worker thread and
 * the calling fiber waits for it asynchronously, so timers, sockets and other fibers keep running meanwhile.
 *
 * This is the Node counterpart of `run_in_executor` with a thread pool, for code that has no asynchronous
 * version: a synchronous compression or hashing call on a large buffer, `fs.*Sync` in a library you do not
 * control, a synchronous driver. The function must live in a module (workers cannot receive closures): name the
 * module and the export, and pass structured-cloneable arguments.
 *
 * Each call runs on a fresh worker, which isolates it completely (a crash or a hang affects only that call) and
 * makes interruption exact: interrupting the caller terminates the worker, stopping the blocking call itself (a
 * JavaScript loop at once; a native call such as `zlib.gzipSync` when it returns — the caller does not wait).
 * Starting a worker costs a few milliseconds: for many short CPU tasks use `CpuPool` instead.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import * as ExecArgv from "./internal/execArgv.js"

/**
 * The blocking call threw (`cause` is the error it threw), or its worker could not start or died.
 *
 * @example
 * ```ts
 * import { Blocking } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // `legacy.js` exports a synchronous `parseHuge(text)` that may throw on bad input.
 * const parse = (text: string) =>
 *   Blocking.call<unknown>(new URL("./legacy.js", import.meta.url), "parseHuge", text).pipe(
 *     Effect.catchTag("BlockingCallError", (e) =>
 *       e.reason === "Threw" ? Effect.succeed(null) : Effect.die(e)) // a dead worker is a defect here
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BlockingCallError extends Data.TaggedError("BlockingCallError")<{
  readonly module: string
  readonly exportName: string
  readonly reason: "Threw" | "WorkerFailed"
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.module}#${this.exportName}: ${this.reason === "Threw" ? "threw" : "worker failed"}: ${
      this.cause instanceof Error ? this.cause.message : String(this.cause)
    }`
  }
}

// The worker imports the module, calls the export with the arguments, and posts the result or the error.
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads")
import(workerData.module).then(async (mod) => {
  try {
    const result = await mod[workerData.exportName](...workerData.args)
    parentPort.postMessage({ ok: true, result })
  } catch (error) {
    parentPort.postMessage({ ok: false, error })
  }
}, (error) => parentPort.postMessage({ ok: false, error, load: true }))
`

/**
 * Runs `module`'s export `exportName` with `args` on a worker thread and returns its result. The module is an
 * absolute path or URL (for example `new URL("./compress.js", import.meta.url)`); the worker inherits the
 * process's `execArgv`, so a module loader in use (such as `tsx`) applies there too.
 *
 * @example
 * ```ts
 * import { Blocking } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // node:zlib's gzipSync would block the loop on a large buffer; a module of our own re-exports it:
 * //   // gzip.js
 * //   export { gzipSync } from "node:zlib"
 * const gzip = (data: Uint8Array) => Blocking.call<Uint8Array>(new URL("./gzip.js", import.meta.url), "gzipSync", data)
 *
 * // Timers and other fibers keep running while it compresses; a timeout terminates the worker.
 * const program = gzip(new Uint8Array(50_000_000)).pipe(Effect.timeout("5 seconds"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const call = <A = unknown>(
  module: string | URL,
  exportName: string,
  ...args: ReadonlyArray<unknown>
): Effect.Effect<A, BlockingCallError> => {
  const moduleId = module.toString()
  const url = moduleId.includes("://") ? moduleId : pathToFileURL(moduleId).href
  return Effect.async<A, BlockingCallError>((resume) => {
    const fail = (reason: "Threw" | "WorkerFailed", cause: unknown) =>
      resume(Effect.fail(new BlockingCallError({ module: moduleId, exportName, reason, cause })))
    let settled = false
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { module: url, exportName, args },
      execArgv: ExecArgv.forWorkers()
    })
    worker.once("message", (message: { ok: boolean; result?: unknown; error?: unknown; load?: boolean }) => {
      settled = true
      if (message.ok) resume(Effect.succeed(message.result as A))
      else fail(message.load === true ? "WorkerFailed" : "Threw", message.error)
      void worker.terminate()
    })
    worker.once("error", (error) => {
      if (settled) return
      settled = true
      fail("WorkerFailed", error)
    })
    worker.once("exit", (code) => {
      if (settled) return
      settled = true
      fail("WorkerFailed", new Error(`worker exited with code ${code} before answering`))
    })
    // Not awaited: a native call in progress (a sync zlib or crypto call) ends before its thread can, and the
    // caller should not wait for it; the thread is gone as soon as the call returns.
    return Effect.sync(() => {
      settled = true
      void worker.terminate()
    })
  })
}

// Seed pattern: "Mixing Sync and Async Code Incorrectly" / "Running the Event Loop" — one runtime, made once.
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Runtime from "effect/Runtime"
import { EventEmitter } from "node:events"
import { setTimeout as sleep } from "node:timers/promises"
import { pathToFileURL } from "node:url"

// Node has one event loop per thread and it is always running, so there is no `asyncio.run` to call once or to
// nest by mistake. The counterpart of the seed's pitfall is the *runtime*: the services an application's Effects
// need (connections, pools, logs). Build it once with `ManagedRuntime.make` and hand it to the synchronous code that
// must start Effects (event listeners, callbacks of a library that knows nothing of Effect); dispose of it once, at
// shutdown. Inside an Effect never call `Effect.runPromise` again: `yield*` the inner Effect instead.

/**
 * How often the audit log was opened and closed: the witness that a runtime was built once, or once per call.
 */
export interface AuditStats {
  opened: number
  closed: number
}

/**
 * A service with a resource behind it (a file, a connection): opened when a runtime is built, closed when it is
 * disposed.
 */
export class AuditLog extends Context.Tag("examples/sync-and-async/AuditLog")<AuditLog, {
  readonly record: (line: string) => Effect.Effect<void>
  readonly lines: Effect.Effect<ReadonlyArray<string>>
}>() {}

/**
 * The audit log as a layer whose `acquireRelease` counts opens and closes in `stats`.
 */
export const auditLayer = (stats: AuditStats): Layer.Layer<AuditLog> =>
  Layer.scoped(
    AuditLog,
    Effect.acquireRelease(
      Effect.sync(() => {
        stats.opened++
        const lines: Array<string> = []
        return AuditLog.of({
          record: (line) => Effect.sync(() => void lines.push(line)),
          lines: Effect.sync(() => lines.slice())
        })
      }),
      () => Effect.sync(() => void stats.closed++)
    )
  )

/**
 * The application's handler for one order: asynchronous (it waits a little, as a real write would), and it needs
 * the `AuditLog`.
 */
export const handleOrder = (id: string): Effect.Effect<void, never, AuditLog> =>
  Effect.gen(function*() {
    yield* Effect.sleep("1 millis")
    const audit = yield* AuditLog
    yield* audit.record(`order ${id}`)
  })

/**
 * The right way from a synchronous callback: an `EventEmitter` listener (it cannot be async, and its return value is
 * ignored) starts the handler on the one runtime with `runFork` and returns at once. The fibers are handed back so a
 * caller can wait for them; a real service would let the runtime's disposal interrupt any still running.
 */
export const listen = (
  emitter: EventEmitter,
  runtime: ManagedRuntime.ManagedRuntime<AuditLog, never>
): Array<Fiber.RuntimeFiber<void>> => {
  const fibers: Array<Fiber.RuntimeFiber<void>> = []
  emitter.on("order", (id: string) => {
    fibers.push(runtime.runFork(handleOrder(id)))
  })
  return fibers
}

/**
 * The seed's "sync wrapper calling async repeatedly": a fresh runtime per call (`Effect.runPromise` with the layer
 * provided each time) opens and closes the audit log for every order, and each order lands in a log of its own.
 */
export const handleWithFreshRuntime = (stats: AuditStats, id: string): Promise<ReadonlyArray<string>> =>
  Effect.runPromise(
    Effect.provide(
      Effect.zipRight(handleOrder(id), Effect.flatMap(AuditLog, (audit) => audit.lines)),
      auditLayer(stats)
    )
  )

/**
 * A sum computed synchronously: `Effect.runSync` can run it.
 */
export const syncTotal = (amounts: ReadonlyArray<number>): Effect.Effect<number> =>
  Effect.sync(() => amounts.reduce((sum, amount) => sum + amount, 0))

/**
 * The same sum behind an asynchronous step: `Effect.runSync` cannot wait for it.
 */
export const asyncTotal = (amounts: ReadonlyArray<number>): Effect.Effect<number> =>
  Effect.zipRight(Effect.sleep("1 millis"), syncTotal(amounts))

/**
 * What `runSyncOrFiber` got: the effect's `Exit`, or the fiber still running the asynchronous rest of it.
 */
export type SyncOutcome<A, E> =
  | { readonly _tag: "Done"; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "Async"; readonly fiber: Fiber.RuntimeFiber<A, E> }

/**
 * Runs `effect` synchronously with `Effect.runSyncExit`, which does not throw. An effect that reaches an asynchronous
 * step dies with an `AsyncFiberException` (`Effect.runSync` would throw it, wrapped in a `FiberFailure`); the fiber
 * it carries has not stopped, so it is handed back to be awaited or interrupted instead of being left behind.
 */
export const runSyncOrFiber = <A, E>(effect: Effect.Effect<A, E>): SyncOutcome<A, E> => {
  const exit = Effect.runSyncExit(effect)
  if (Exit.isFailure(exit)) {
    const defect = Cause.dieOption(exit.cause)
    if (defect._tag === "Some" && Runtime.isAsyncFiberException(defect.value)) {
      return { _tag: "Async", fiber: defect.value.fiber as Fiber.RuntimeFiber<A, E> }
    }
  }
  return { _tag: "Done", exit }
}

/**
 * A rate lookup failed.
 */
export class RateError extends Data.TaggedError("RateError")<{ readonly currency: string; readonly cause: unknown }> {}

/**
 * A Promise-based client from a library that knows nothing of Effect. It honours an `AbortSignal`, and `aborted`
 * records the lookups that were cancelled through it.
 */
export const makeRateClient = (latencyMs: number) => {
  const aborted: Array<string> = []
  const rates: Record<string, number> = { EUR: 1.08, GBP: 1.27 }
  return {
    aborted,
    lookup: async (currency: string, signal?: AbortSignal): Promise<number> => {
      signal?.addEventListener("abort", () => aborted.push(currency), { once: true })
      await sleep(latencyMs, undefined, { signal })
      const rate = rates[currency]
      if (rate === undefined) throw new Error(`no rate for ${currency}`)
      return rate
    }
  }
}

/**
 * Calling the Promise API from an Effect: `Effect.tryPromise` turns the rejection into a typed `RateError`, and
 * passes its `AbortSignal` on, so interrupting the fiber cancels the lookup.
 */
export const lookupRate = (
  client: ReturnType<typeof makeRateClient>,
  currency: string
): Effect.Effect<number, RateError> =>
  Effect.tryPromise({
    try: (signal) => client.lookup(currency, signal),
    catch: (cause) => new RateError({ currency, cause })
  })

/**
 * The runnable demo.
 */
export const main = Effect.gen(function*() {
  const stats: AuditStats = { opened: 0, closed: 0 }
  const runtime = ManagedRuntime.make(auditLayer(stats))
  const emitter = new EventEmitter()
  const fibers = listen(emitter, runtime)
  for (const id of ["a-1", "a-2", "a-3"]) emitter.emit("order", id)
  const lines = yield* Effect.promise(() =>
    runtime.runPromise(
      Effect.zipRight(Fiber.joinAll(fibers), Effect.flatMap(AuditLog, (audit) => audit.lines))
    )
  )
  yield* Effect.promise(() => runtime.dispose())
  yield* Console.log(`one runtime: ${lines.length} orders in one log; opened ${stats.opened}, closed ${stats.closed}`)

  const fresh: AuditStats = { opened: 0, closed: 0 }
  for (const id of ["b-1", "b-2", "b-3"]) yield* Effect.promise(() => handleWithFreshRuntime(fresh, id))
  yield* Console.log(`a runtime per call: opened ${fresh.opened}, closed ${fresh.closed}`)

  const sync = runSyncOrFiber(syncTotal([1, 2, 3]))
  yield* Console.log(`runSyncExit on a synchronous effect: ${sync._tag}`)
  const pending = runSyncOrFiber(asyncTotal([1, 2, 3]))
  if (pending._tag === "Async") {
    const total = yield* Fiber.join(pending.fiber)
    yield* Console.log(`runSyncExit on an asynchronous one: AsyncFiberException; its fiber went on to ${total}`)
  }

  const client = makeRateClient(5)
  yield* Console.log(`EUR rate: ${yield* lookupRate(client, "EUR")}`)
  const error = yield* Effect.flip(lookupRate(client, "XYZ"))
  yield* Console.log(`XYZ: ${error._tag}`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

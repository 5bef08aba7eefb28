/**
 * Process shutdown that always ends: a replacement for `NodeRuntime.runMain` with a deadline, ordered and logged
 * phases, and a second signal that is heard.
 *
 * `NodeRuntime.runMain` in this Effect version waits forever on a finalizer that hangs, exits 0 on signals, and
 * lets a second signal kill the process with nothing logged. `Shutdown.runMain` interrupts the program on the
 * first SIGTERM/SIGINT, releases its layers (each wrapped in `phase` is logged as it closes and timed against its
 * own deadline), and exits 0 when everything closed in time. If the whole shutdown outlives `deadline`, it logs the
 * phases still closing and exits 1; a second signal logs itself and exits 130 at once.
 *
 * One Ctrl-C can arrive as two signals: the terminal sends SIGINT to the whole foreground process group, and a
 * wrapper in it (a package manager, a TypeScript loader) may relay it to its child once more. A signal within
 * `repeatWindow` (one second) of the first is therefore taken as the same keypress and logged at debug level; only
 * a later one is the operator insisting.
 *
 * Phases close in reverse order of construction, as layers do: build readiness and HTTP (`HttpDrain`) on top of
 * background work (`TaskSupervisor`), on top of resources (database, files), and they close in the order
 * readiness → HTTP drain → background work → resources.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"

/**
 * Options of `runMain`.
 *
 * @example
 * ```ts
 * import { Shutdown } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const options: Shutdown.Options = {
 *   deadline: "30 seconds", // past it, the closing phases are logged and the process exits 1
 *   signals: ["SIGTERM", "SIGINT", "SIGHUP"]
 * }
 *
 * export const main = () => Shutdown.runMain(Effect.never, options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The whole shutdown must end within this; then the process exits 1. Default 30 seconds. */
  readonly deadline?: Duration.DurationInput | undefined
  /** Signals that start a shutdown. Default SIGTERM and SIGINT. */
  readonly signals?: ReadonlyArray<NodeJS.Signals> | undefined
  /** How the process ends (tests replace it). Default `process.exit`. */
  readonly exit?: ((code: number) => void) | undefined
  /**
   * A signal this soon after the first is the same keypress relayed again (a wrapper's copy of the terminal's
   * SIGINT), not a second request. Default 1 second.
   */
  readonly repeatWindow?: Duration.DurationInput | undefined
  /**
   * Reports a failure of the program in its own way and returns the exit code, instead of the default (the cause
   * logged at error level, stack traces included, exit 1): a start-up fault the operator has to fix (a port in use,
   * say) is better said in one line. `undefined` keeps the default for that failure. Not called for a shutdown.
   */
  readonly onFailure?: ((cause: Cause.Cause<unknown>) => number | undefined) | undefined
}

interface Running {
  readonly name: string
  readonly since: number
}

// Phases closing now, for the deadline report.
const closing = globalValue("@spindle/node/Shutdown/closing", () => new Set<Running>())

/**
 * Names a layer as a shutdown phase: its release is logged when it starts and ends, and a warning names it if it
 * takes longer than `deadline` (default 10 seconds). Behaviour is otherwise unchanged.
 *
 * @example
 * ```ts
 * import { Shutdown } from "@spindle/node"
 * import * as Context from "effect/Context"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * class Database extends Context.Tag("Database")<
 *   Database,
 *   { readonly query: (sql: string) => Effect.Effect<number> }
 * >() {}
 *
 * // Its release is logged ("shutdown phase started/finished", with how long it took) and warned about past 5 s.
 * const DatabaseLive = Layer.scoped(
 *   Database,
 *   Effect.acquireRelease(Effect.succeed({ query: () => Effect.succeed(1) }), () => Effect.log("pool closed"))
 * ).pipe(Shutdown.phase("database", { deadline: "5 seconds" }))
 *
 * const program = Effect.flatMap(Database, (db) => db.query("select 1")).pipe(Effect.provide(DatabaseLive))
 *
 * Effect.runPromise(program).then(console.log) // 1
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const phase =
  (name: string, options: { readonly deadline?: Duration.DurationInput | undefined } = {}) =>
  <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
    Layer.scopedContext(Effect.gen(function*() {
      const deadlineMillis = Duration.toMillis(options.deadline ?? "10 seconds")
      const scope = yield* Scope.make()
      const context = yield* Effect.onError(Layer.buildWithScope(layer, scope), (cause) =>
        Scope.close(scope, Exit.failCause(cause)))
      yield* Effect.addFinalizer((exit) =>
        Effect.gen(function*() {
          const running: Running = { name, since: Date.now() }
          closing.add(running)
          yield* Effect.logInfo("shutdown phase started").pipe(Effect.annotateLogs({ phase: name }))
          const release = yield* Effect.fork(Scope.close(scope, exit))
          // Finalizers run uninterruptibly: the wait is made interruptible so that the timeout can cut it short.
          const finished = yield* Effect.interruptible(Fiber.await(release)).pipe(
            Effect.timeout(Duration.millis(deadlineMillis)),
            Effect.option
          )
          if (finished._tag === "None") {
            yield* Effect.logWarning("shutdown phase exceeds its deadline").pipe(
              Effect.annotateLogs({ phase: name, deadlineMs: deadlineMillis })
            )
            yield* Fiber.await(release)
          }
          closing.delete(running)
          yield* Effect.logInfo("shutdown phase finished").pipe(
            Effect.annotateLogs({ phase: name, tookMs: Date.now() - running.since })
          )
        })
      )
      return context
    }))

/**
 * Runs `program` as the process's main effect with signal handling and a shutdown deadline; see the module
 * documentation. Exit codes: 0 after a clean end or a clean shutdown, 1 after a failure (or what `onFailure` returns)
 * or a shutdown past its deadline, 130 on a second signal.
 *
 * @example
 * ```ts
 * import { Shutdown } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 * import * as Schedule from "effect/Schedule"
 *
 * const worker = Effect.log("tick").pipe(
 *   Effect.repeat(Schedule.spaced("1 second")),
 *   Effect.ensuring(Effect.log("worker stopped"))
 * )
 *
 * // Runs until SIGTERM/SIGINT, then interrupts the worker (its finalizers run) and exits 0, or 1 after 10 s.
 * export const main = () => Shutdown.runMain(worker, { deadline: "10 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const runMain = <A, E>(program: Effect.Effect<A, E>, options: Options = {}): void => {
  const deadlineMillis = Duration.toMillis(options.deadline ?? "30 seconds")
  const signals = options.signals ?? ["SIGTERM", "SIGINT"]
  const exit = options.exit ?? ((code: number) => process.exit(code))
  const fiber = Effect.runFork(program)
  const repeatWindowMillis = Duration.toMillis(options.repeatWindow ?? "1 second")
  let signalled: NodeJS.Signals | undefined
  let signalledAt = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const log = (effect: Effect.Effect<void>) => Effect.runSync(effect)

  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled !== undefined && performance.now() - signalledAt < repeatWindowMillis) {
      log(
        Effect.logDebug("signal repeated within the same keypress: ignored").pipe(
          Effect.annotateLogs({ signal, first: signalled })
        )
      )
      return
    }
    if (signalled !== undefined) {
      log(
        Effect.logWarning("second signal during shutdown: exiting now").pipe(
          Effect.annotateLogs({ signal, first: signalled, closing: Array.from(closing, (p) => p.name).join(", ") })
        )
      )
      exit(130)
      return
    }
    signalled = signal
    signalledAt = performance.now()
    log(Effect.logInfo("shutting down").pipe(Effect.annotateLogs({ signal, deadlineMs: deadlineMillis })))
    timer = setTimeout(() => {
      const hanging = Array.from(closing, (p) => `${p.name} (${Date.now() - p.since} ms)`)
      log(
        Effect.logError("shutdown deadline exceeded").pipe(
          Effect.annotateLogs({
            deadlineMs: deadlineMillis,
            closing: hanging.length > 0 ? hanging.join(", ") : "unknown"
          })
        )
      )
      exit(1)
    }, deadlineMillis)
    fiber.unsafeInterruptAsFork(FiberId.none)
  }
  for (const signal of signals) process.on(signal, onSignal)

  fiber.addObserver((result) => {
    for (const signal of signals) process.off(signal, onSignal)
    if (timer !== undefined) clearTimeout(timer)
    if (Exit.isSuccess(result) || (signalled !== undefined && Cause.isInterruptedOnly(result.cause))) {
      if (signalled !== undefined) log(Effect.logInfo("shutdown complete"))
      exit(0)
      return
    }
    const code = options.onFailure?.(result.cause)
    if (code !== undefined) {
      exit(code)
      return
    }
    log(Effect.logError("program failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(result.cause) })))
    exit(1)
  })
}

/**
 * `runMain` for a program that is a layer (a server): builds it and keeps it running until a signal.
 *
 * @example
 * ```ts
 * import { HttpDrain, Shutdown } from "@spindle/node"
 * import * as HttpServer from "@effect/platform/HttpServer"
 * import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
 * import * as Layer from "effect/Layer"
 * import { createServer } from "node:http"
 *
 * const ServerLive = HttpServer.serve(HttpServerResponse.text("ok")).pipe(
 *   Layer.provide(HttpDrain.layer(createServer, { port: 8080 })),
 *   Shutdown.phase("http")
 * )
 *
 * export const main = () => Shutdown.runLayer(ServerLive, { deadline: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const runLayer = <E>(layer: Layer.Layer<never, E>, options: Options = {}): void =>
  runMain(Layer.launch(layer), options)

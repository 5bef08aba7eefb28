/**
 * `pnpm harvest …`: the command line client (see `Cli.ts`). Ctrl-C interrupts the running command, so that its
 * finalizers (cancelling or releasing work, printing the summary) run before the process exits 130. With `--local`
 * (the default without a server) this process runs Harvest itself, so its old generation grows as `pnpm start`'s does
 * (`Startup.limitHeapGrowth`).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Runtime from "@effect/platform/Runtime"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Cli from "./cli/Cli.js"
import * as Startup from "./Startup.js"

Startup.limitHeapGrowth()

// Logs (a local Harvest's included) go to stderr, errors only unless `--log-level` says otherwise, so that stdout
// carries just the output.
const Quiet = Layer.mergeAll(
  Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
  Logger.minimumLogLevel(LogLevel.Error)
)

// A wrapper (pnpm, tsx) may pass on the Ctrl-C the terminal already sent to this process: a second signal within this
// long is that same Ctrl-C. A later one means "stop now" and exits 130 at once, finalizers or not.
const duplicateSignalMs = 1000

// `NodeRuntime.runMain`, except for the signals: the first interrupts the program, a repeat (above) is ignored, and a
// later one exits at once (`NodeRuntime` leaves that one to Node's default, which a wrapper's relay can trigger).
const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  let signalledAt: number | undefined
  const onSignal = () => {
    if (signalledAt === undefined) {
      signalledAt = Date.now()
      fiber.unsafeInterruptAsFork(fiber.id())
    } else if (Date.now() - signalledAt > duplicateSignalMs) {
      process.exit(130)
    }
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    clearInterval(keepAlive)
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    teardown(exit, (code) => process.exit(code))
  })
})

// `pnpm harvest …` runs where pnpm runs scripts (the repository's root, or the package it was typed in), as
// `pnpm start` does: a relative DATA_DIR, and the default ./.data, are resolved from there so that the server and
// `--local` share one data directory. Paths typed on the command line are meant from where the command was typed.
const scriptDirectory = process.cwd()
const invokedBy = Effect.runSync(Config.all({
  script: Config.string("npm_lifecycle_event").pipe(Config.withDefault("")),
  cwd: Config.option(Config.string("INIT_CWD"))
}))
if (invokedBy.script === "harvest" && Option.isSome(invokedBy.cwd)) process.chdir(invokedBy.cwd.value)

runMain(
  Cli.run(process.argv, { scriptDirectory }).pipe(
    Effect.provide(Layer.mergeAll(NodeContext.layer, NodeHttpClient.layer, Quiet))
  ),
  {
    disablePrettyLogger: true,
    teardown: (exit, onExit) =>
      onExit(
        Exit.isSuccess(exit)
          ? (typeof exit.value === "number" ? exit.value : 0)
          : Cause.isInterruptedOnly(exit.cause)
          ? 130
          : 1
      )
  }
)

/**
 * `harvest`, the command line client: `fetch <file|->`, `status <job>`, `export <job>`, `cancel <job>`.
 *
 * There is one code path: every command talks to Harvest's public HTTP API. With `--server` (or `HARVEST_SERVER`)
 * that is a running server; otherwise (`--local`, the default) the command starts Harvest's own layers in this
 * process and talks to it over loopback. That Harvest reads the server's environment
 * (`HarvestConfig.fromEnvironment`: `DATA_DIR`, `DATABASE_URL`, `REDIS_URL`, `MAX_CONCURRENCY`, the fetch policy's
 * `POLICY_FETCH_*` and `POLICIES_FILE`, …), the command's flags taking precedence, except what would expose it or
 * slow its Ctrl-C: it listens on a free loopback port with a bearer token made for the run (not
 * `PORT`, `HOST`, `API_TOKEN`) and gives in-flight fetches no grace (not `SHUTDOWN_GRACE_MS`). When the command ends
 * (or Ctrl-C interrupts it) those layers shut down: in-flight fetches interrupted, their items released back to
 * pending, no temp file left.
 *
 * Exit codes: 0 success; 1 some URLs failed (`fetch` without `--allow-failures`); 2 usage, input or connection
 * errors (an unreachable server, `401`, `400`, an unknown job); 130 after Ctrl-C, once the summary is printed.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as CliCommand from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeSink from "@effect/platform-node/NodeSink"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as Path from "@effect/platform/Path"
import type * as Terminal from "@effect/platform/Terminal"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import * as NodePath from "node:path"
import type * as Domain from "../Domain.js"
import * as HarvestConfig from "../HarvestConfig.js"
import * as Server from "../Server.js"
import * as BodyStore from "../storage/BodyStore.js"
import * as Database from "../storage/Database.js"
import * as Jobs from "../storage/Jobs.js"
import * as StorageThread from "../storage/StorageThread.js"
import * as Client from "./Client.js"
import * as Input from "./Input.js"
import * as Progress from "./Progress.js"

/**
 * The command line was well formed but meaningless (`--local` with `--server`, `--batch 0`).
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/**
 * Where a command's exit code is kept until the command returns (a run with failed URLs is not an error).
 *
 * @since 0.1.0
 * @category models
 */
export interface ExitCode extends Ref.Ref<number> {}

/**
 * The exit code's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const ExitCode: Context.Tag<ExitCode, ExitCode> = Context.GenericTag<ExitCode>("@spindle/harvest/Cli/ExitCode")

/**
 * The directory a relative `DATA_DIR` (and the default `./.data`) is resolved from: where the process started, which
 * for `pnpm harvest` is where pnpm runs the script (the repository's root, or the package typed in), exactly as for
 * `pnpm start`, so the server and `--local` share one data directory. Paths typed on the command line (`<file>`,
 * `--data-dir`, `--out`) are resolved from the current directory instead: where the command was typed.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptDirectory {
  readonly path: string
}

/**
 * The script directory's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const ScriptDirectory: Context.Tag<ScriptDirectory, ScriptDirectory> = Context.GenericTag<ScriptDirectory>(
  "@spindle/harvest/Cli/ScriptDirectory"
)

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

const connectionOptions = {
  server: Options.text("server").pipe(
    Options.withAlias("s"),
    Options.withDescription("Harvest's base URL (default: $HARVEST_SERVER; without either, --local)"),
    Options.optional
  ),
  token: Options.redacted("token").pipe(
    Options.withDescription("bearer token for a server with API_TOKEN set (default: $HARVEST_TOKEN)"),
    Options.optional
  ),
  local: Options.boolean("local").pipe(
    Options.withDescription(
      "run Harvest in this process (the default without a server), configured as `pnpm start` is: it reads " +
        "DATA_DIR, DATABASE_URL, REDIS_URL, MAX_CONCURRENCY, HARVEST_ALLOW_PRIVATE_NETWORKS, MAX_BODY_BYTES, " +
        "LEASE_MS, RETRY_AFTER_MAX_MS and MAX_URLS_PER_JOB, flags taking precedence; it listens on a free loopback " +
        "port with a token of its own and stops at once on Ctrl-C (PORT, HOST, API_TOKEN, SHUTDOWN_GRACE_MS unused)"
    )
  ),
  dataDir: Options.text("data-dir").pipe(
    Options.withDescription(
      "--local: where the database, bodies and temp files live, instead of $DATA_DIR (default ./.data, the " +
        "server's)"
    ),
    Options.optional
  ),
  allowPrivateNetworks: Options.boolean("allow-private-networks").pipe(
    Options.withDescription(
      "--local: allow loopback and private addresses, as HARVEST_ALLOW_PRIVATE_NETWORKS=true does (default: that " +
        "variable, else false)"
    )
  )
}

interface ConnectionArgs {
  readonly server: Option.Option<string>
  readonly token: Option.Option<Redacted.Redacted>
  readonly local: boolean
  readonly dataDir: Option.Option<string>
  readonly allowPrivateNetworks: boolean
}

const jobArg = Args.text({ name: "job" }).pipe(Args.withDescription("a job id, as printed by `harvest fetch`"))

const optionalInteger = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional)

const jobOptions = {
  concurrency: optionalInteger(
    "concurrency",
    "in-flight fetches for the job, 1 to MAX_CONCURRENCY (default: all); --local raises MAX_CONCURRENCY to it"
  ),
  perHostConcurrency: optionalInteger("per-host-concurrency", "in-flight fetches per host:port, 1 to 1000 (8)"),
  perHostRps: Options.float("per-host-rps").pipe(
    Options.withDescription("request starts per second per host, 0 < r <= 1e6 (default: no limit)"),
    Options.optional
  ),
  perHostBurst: optionalInteger("per-host-burst", "burst above the per-host rate, 1 to 1e6 (max(1, ceil(rps)))"),
  timeoutMs: optionalInteger("timeout-ms", "one attempt, connect to last byte, 1 to 600000 ms (30000)"),
  maxAttempts: optionalInteger("max-attempts", "attempts per URL, 1 to 20 (3)")
}

const fetchConfig = {
  file: Args.text({ name: "file" }).pipe(
    Args.withDescription("a file of URLs, one a line (`#` comments), or - for stdin")
  ),
  connection: connectionOptions,
  job: jobOptions,
  batch: Options.integer("batch").pipe(
    Options.withDescription(
      "URLs per job, at most MAX_URLS_PER_JOB (default 10000, or --local's MAX_URLS_PER_JOB if lower); a longer " +
        "input becomes several jobs"
    ),
    Options.optional
  ),
  allowFailures: Options.boolean("allow-failures").pipe(
    Options.withDescription("exit 0 even when some URLs failed")
  ),
  progress: Options.choice("progress", ["auto", "bar", "lines", "none"]).pipe(
    Options.withDescription("progress on stderr: a bar on a terminal, a line a second otherwise (auto)"),
    Options.withDefault("auto" as const)
  )
}

const defaultBatch = 10_000

interface FetchArgs {
  readonly file: string
  readonly connection: ConnectionArgs
  readonly job: Client.JobSettings
  readonly batch: Option.Option<number>
  readonly allowFailures: boolean
  readonly progress: "auto" | "bar" | "lines" | "none"
}

// ---------------------------------------------------------------------------------------------------------------
// Connecting: a server, or Harvest in this process
// ---------------------------------------------------------------------------------------------------------------

/**
 * The configuration of a Harvest run by `--local`: the server's environment, each flag given replacing its variable
 * (which is then not read), and what a process-private Harvest needs whatever the environment says (a free loopback
 * port, a bearer token of its own, no grace for in-flight fetches on Ctrl-C), so `PORT`, `HOST`, `API_TOKEN` and
 * `SHUTDOWN_GRACE_MS` are not read. A relative `DATA_DIR` is resolved from `scriptDirectory`, a relative
 * `--data-dir` from the current directory; `concurrency` (a job's) raises `MAX_CONCURRENCY` to it.
 *
 * @since 0.1.0
 * @category connecting
 */
export const localConfig = (flags: {
  readonly dataDir: Option.Option<string>
  readonly allowPrivateNetworks: boolean
  readonly concurrency: Option.Option<number>
  readonly scriptDirectory: string
}): Effect.Effect<HarvestConfig.HarvestConfig, HarvestConfig.InvalidEnvironment> => {
  const { settings } = HarvestConfig
  return HarvestConfig.fromEnvironment({
    dataDir: Option.match(flags.dataDir, {
      onNone: () => Config.map(settings.dataDir, (dir) => NodePath.resolve(flags.scriptDirectory, dir)),
      onSome: (dir) => Config.succeed(NodePath.resolve(dir))
    }),
    allowPrivateNetworks: flags.allowPrivateNetworks ? Config.succeed(true) : settings.allowPrivateNetworks,
    maxConcurrency: Option.match(flags.concurrency, {
      onNone: () => settings.maxConcurrency,
      onSome: (concurrency) => Config.map(settings.maxConcurrency, (max) => Math.max(max, concurrency))
    }),
    port: Config.succeed(0),
    host: Config.succeed("127.0.0.1"),
    apiToken: Config.sync(() => Option.some(Redacted.make(randomUUID()))),
    shutdownGraceMs: Config.succeed(0)
  })
}

/**
 * Harvest's own layers in this process with `settings` (see `localConfig`), for the current scope; returns the base
 * URL it listens on. Closing the scope shuts it down as SIGTERM would, with `settings.shutdownGraceMs` of grace.
 *
 * @since 0.1.0
 * @category connecting
 */
export const startLocal = Effect.fn("Cli.startLocal")(function*(settings: HarvestConfig.HarvestConfig) {
  const config = Layer.succeed(HarvestConfig.HarvestConfig, settings)
  // Runs once Harvest has shut down (finalizers run in reverse): the temp files of fetches it interrupted are
  // removed by one more sweep, which spares those of any other live instance on the same data dir.
  yield* Effect.addFinalizer(() => finalSweep(settings.dataDir, config))
  const context = yield* Layer.build(Server.make(config))
  const server = Context.get(context, HttpServer.HttpServer)
  return `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
})

const finalSweep = (dataDir: string, config: Layer.Layer<HarvestConfig.HarvestConfig>) =>
  Effect.gen(function*() {
    const { leaseMs } = yield* HarvestConfig.HarvestConfig
    const sweepOnce = Effect.scoped(BodyStore.make({ dataDir, owner: `harvest-cli-${randomUUID()}`, leaseMs }))
    // This runs in a finalizer, often of an interrupted fiber: in a fiber of its own, made interruptible so that the
    // periodic sweep the store forks stops with its scope (it would inherit the finalizer's uninterruptibility).
    yield* Fiber.join(yield* Effect.fork(Effect.interruptible(sweepOnce)))
  }).pipe(
    Effect.provide(
      Layer.provideMerge(
        Jobs.layerItems,
        Layer.provideMerge(Database.layer, Layer.merge(config, StorageThread.layer))
      )
    ),
    Effect.catchAllCause((cause) =>
      Effect.logWarning("sweeping temp files failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(cause) }))
    )
  )

/** Where a command's requests go: a server's client, and for `--local` the settings of the Harvest it started. */
interface Connection {
  readonly client: Client.Client
  readonly local: Option.Option<HarvestConfig.HarvestConfig>
}

const connect = Effect.fn("Cli.connect")(function*(
  args: ConnectionArgs,
  job: { readonly concurrency: Option.Option<number> } = { concurrency: Option.none() }
) {
  const server = args.server // an explicit --server; HARVEST_SERVER applies only without --local
  const fromEnv = yield* Config.option(Config.nonEmptyString("HARVEST_SERVER")).pipe(Effect.orElseSucceed(Option.none))
  const target = Option.orElse(server, () => args.local ? Option.none() : fromEnv)
  if (args.local && Option.isSome(server)) {
    return yield* new UsageError({ reason: "--local and --server exclude each other" })
  }
  if (Option.isNone(target)) {
    // The environment is read only here: a bad MAX_CONCURRENCY is no reason to refuse talking to a server.
    const settings = yield* localConfig({
      dataDir: args.dataDir,
      allowPrivateNetworks: args.allowPrivateNetworks,
      concurrency: job.concurrency,
      scriptDirectory: (yield* ScriptDirectory).path
    })
    const base = yield* startLocal(settings)
    return { client: yield* Client.make(base, settings.apiToken), local: Option.some(settings) } satisfies Connection
  }
  const token = Option.isSome(args.token)
    ? args.token
    : yield* Config.option(Config.redacted(Config.nonEmptyString("HARVEST_TOKEN"))).pipe(
      Effect.orElseSucceed(Option.none)
    )
  return { client: yield* Client.make(target.value, token), local: Option.none() } satisfies Connection
})

// ---------------------------------------------------------------------------------------------------------------
// fetch
// ---------------------------------------------------------------------------------------------------------------

interface Display {
  /** Shows the progress (a bar redrawn each time, or a line at most once a second). */
  readonly tick: (run: Progress.Run) => Effect.Effect<void>
  /** Takes the bar off the terminal, so that what follows starts on a clean line. */
  readonly clear: Effect.Effect<void>
  /** The last progress line, when the run is over. */
  readonly end: (run: Progress.Run) => Effect.Effect<void>
}

const displayFor = (mode: FetchArgs["progress"]): Display => {
  const resolved = mode === "auto" ? (process.stderr.isTTY ? "bar" : "lines") : mode
  if (resolved === "bar") {
    // A terminal that reports no width (0 under some pseudo-terminals) gets 80 columns.
    const columns = () => process.stderr.columns >= 20 ? process.stderr.columns : 80
    const draw = (text: string) => Effect.sync(() => process.stderr.write(`\r\x1b[2K${text}`))
    let drawn = false
    return {
      tick: (run) => Effect.zipRight(draw(Progress.bar(run, columns())), Effect.sync(() => drawn = true)),
      clear: Effect.suspend(() => drawn ? Effect.zipRight(draw(""), Effect.sync(() => drawn = false)) : Effect.void),
      end: () => Effect.void
    }
  }
  if (resolved === "lines") {
    let last = 0
    return {
      tick: (run) =>
        Effect.suspend(() => {
          const now = Date.now()
          if (last === 0) last = now // the first line after a second, when there is a rate to show
          if (now - last < 1000) return Effect.void
          last = now
          return Console.error(Progress.line(run, now))
        }),
      clear: Effect.void,
      end: (run) => Console.error(Progress.line(run))
    }
  }
  return { tick: () => Effect.void, clear: Effect.void, end: () => Effect.void }
}

const toProgress = (view: Domain.JobView): Progress.JobProgress => ({
  id: view.id,
  total: view.total,
  succeeded: view.succeeded,
  failed: view.failed,
  pending: view.pending,
  status: view.status
})

// Polls every job of the run that may still change.
const poll = (client: Client.Client, run: Progress.Run) =>
  Effect.forEach(
    run.jobs.filter((job) => !Progress.isFinished(job)),
    (job) => Effect.map(client.job(job.id), (view) => run.update(toProgress(view))),
    { concurrency: 8, discard: true }
  )

// Reads the input and submits it in batches, each acknowledged job recorded at once: a submission is uninterruptible
// (but for its waits after a 503) so that every job this run created is known to it, to be cancelled after Ctrl-C.
const submitAll = (client: Client.Client, args: FetchArgs, batchSize: number, run: Progress.Run) =>
  Input.urls(args.file).pipe(
    Stream.grouped(batchSize),
    Stream.runForEach((batch) => {
      const urls = Array.from(batch, (entry) => entry.url)
      return Effect.uninterruptible(Effect.map(client.submit(urls, args.job), (created) => {
        run.submittedUrls += urls.length
        run.update({
          id: created.id,
          total: created.total,
          succeeded: 0,
          failed: 0,
          pending: created.total,
          status: "queued"
        })
      }))
    }),
    Effect.zipRight(Effect.sync(() => {
      run.inputDone = true
    }))
  )

const watch = (client: Client.Client, run: Progress.Run, display: Display) =>
  Effect.gen(function*() {
    while (true) {
      yield* poll(client, run)
      if (run.finished()) break
      if (run.jobs.length > 0) yield* display.tick(run)
      yield* Effect.sleep("250 millis")
    }
  })

const noFailures: Progress.Failures = { byCode: new Map(), examples: [], complete: true }

// Failed items by error code, read from each job's NDJSON export as a stream (constant memory).
const breakdown = (client: Client.Client, run: Progress.Run) =>
  Effect.gen(function*() {
    const byCode = new Map<string, number>()
    const examples: Array<{ url: string; code: string; message: string }> = []
    for (const job of run.jobs) {
      if (job.failed === 0) continue
      yield* client.export(job.id).pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.runForEach((text) =>
          Effect.sync(() => {
            if (text === "") return
            const result = JSON.parse(text) as { url: string; status: string; error: { code: string; message: string } }
            if (result.status !== "failed" || result.error === null) return
            byCode.set(result.error.code, (byCode.get(result.error.code) ?? 0) + 1)
            if (examples.length < 5) examples.push({ url: result.url, ...result.error })
          })
        )
      )
    }
    return { byCode, examples, complete: true } satisfies Progress.Failures
  })

const fetchCommand = Effect.fn("Cli.fetch")(function*(args: FetchArgs) {
  if (Option.exists(args.batch, (batch) => !Number.isInteger(batch) || batch < 1)) {
    return yield* new UsageError({ reason: "--batch must be a positive integer" })
  }
  const exitCode = yield* ExitCode
  const run = new Progress.Run()
  const display = displayFor(args.progress)
  let failures = noFailures

  // After Ctrl-C, while Harvest is still reachable: jobs of a server cancelled (a local Harvest instead releases
  // their items when it shuts down), the last counts and failures read, each step bounded in time.
  const stopped = (client: Client.Client, local: boolean) =>
    Effect.gen(function*() {
      run.interrupted = true
      yield* display.clear
      if (!local) {
        yield* Effect.forEach(
          run.jobs.filter((job) => !Progress.isFinished(job)),
          (job) => client.cancel(job.id).pipe(Effect.timeout("5 seconds"), Effect.ignore),
          { concurrency: 8, discard: true }
        )
      }
      yield* poll(client, run).pipe(Effect.timeout("5 seconds"), Effect.ignore)
      failures = yield* breakdown(client, run).pipe(
        Effect.timeout("3 seconds"),
        Effect.orElseSucceed(() => ({ ...noFailures, complete: false }))
      )
    })

  const body = Effect.scoped(Effect.gen(function*() {
    const { client, local } = yield* connect(args.connection, { concurrency: args.job.concurrency })
    // A local Harvest's MAX_URLS_PER_JOB is known: the default batch fits it. A server's refuses a larger one (400).
    const batchSize = Option.getOrElse(
      args.batch,
      () => Math.min(defaultBatch, Option.match(local, { onNone: () => defaultBatch, onSome: (s) => s.maxUrlsPerJob }))
    )
    const work = Effect.gen(function*() {
      if (args.file !== Input.stdin) run.expectedUrls = yield* Input.count(args.file)
      const submit = submitAll(client, args, batchSize, run).pipe(
        // A bad line met after some batches went out (stdin): those jobs are cancelled, nothing half-submitted.
        Effect.tapError(() =>
          Effect.forEach(run.jobs, (job) =>
            client.cancel(job.id).pipe(
              Effect.zipRight(Console.error(`harvest: cancelled job ${job.id}, submitted before the error`)),
              Effect.ignore
            ), { discard: true })
        )
      )
      yield* Effect.all([submit, watch(client, run, display)], { concurrency: 2, discard: true }).pipe(
        Effect.ensuring(display.clear)
      )
      yield* display.end(run)
      failures = yield* breakdown(client, run)
    })
    yield* Effect.onInterrupt(work, () => stopped(client, Option.isSome(local)))
  }))

  yield* Effect.onExit(body, (exit) =>
    Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)
      ? Console.log(Progress.summary(run, failures))
      : Effect.void)
  const totals = run.totals()
  if ((totals.failed > 0 || totals.unfinished > 0) && !args.allowFailures) yield* Ref.set(exitCode, 1)
})

const fetch = CliCommand.make("fetch", fetchConfig, fetchCommand).pipe(
  CliCommand.withDescription(
    "Fetch every URL of a file (or stdin with -), one a line, and wait for the results: a progress on stderr, a " +
      "summary table on stdout. Exits 1 when any URL failed (0 with --allow-failures), 2 on usage or connection " +
      "errors, 130 after Ctrl-C (jobs on a server are cancelled; a local run releases its items)."
  )
)

// ---------------------------------------------------------------------------------------------------------------
// status, export, cancel
// ---------------------------------------------------------------------------------------------------------------

const viewTable = (view: Domain.JobView) =>
  Object.entries(view)
    .map(([key, value]) => `${key.padEnd(11)}${value === null ? "-" : String(value)}`)
    .join("\n")

const status = CliCommand.make(
  "status",
  {
    job: jobArg,
    connection: connectionOptions,
    json: Options.boolean("json").pipe(Options.withDescription("print the job as the API returns it (JSON)"))
  },
  Effect.fn("Cli.status")(
    function*(args: { readonly job: string; readonly connection: ConnectionArgs; readonly json: boolean }) {
      const view = yield* Effect.scoped(
        Effect.flatMap(connect(args.connection), ({ client }) => client.job(args.job))
      )
      yield* Console.log(args.json ? JSON.stringify(view) : viewTable(view))
    }
  )
).pipe(CliCommand.withDescription("Print a job's status and counts."))

// Streams the export to `out` through a temp file in the same directory, renamed into place only when complete.
const exportToFile = (stream: Stream.Stream<Uint8Array, Client.ClientError>, out: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = NodePath.resolve(out)
    const temp = NodePath.join(NodePath.dirname(target), `.${NodePath.basename(target)}.${randomUUID()}.tmp`)
    yield* Effect.onExit(
      Effect.zipRight(Stream.run(stream, fs.sink(temp)), fs.rename(temp, target)),
      (exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(fs.remove(temp, { force: true }))
    )
  })

const exportCommand = CliCommand.make(
  "export",
  {
    job: jobArg,
    connection: connectionOptions,
    out: Options.text("out").pipe(
      Options.withAlias("o"),
      Options.withDescription("write to this file (complete or not at all) instead of stdout (-)"),
      Options.optional
    )
  },
  Effect.fn("Cli.export")(function*(args: {
    readonly job: string
    readonly connection: ConnectionArgs
    readonly out: Option.Option<string>
  }) {
    yield* Effect.scoped(Effect.gen(function*() {
      const { client } = yield* connect(args.connection)
      let lines = 0
      const stream = client.export(args.job).pipe(Stream.tap((bytes) =>
        Effect.sync(() => {
          for (const byte of bytes) if (byte === 10) lines++
        })
      ))
      // `--out -` is stdout, like no `--out` (the command line hands `-` over as `Input.stdin`).
      const out = Option.filter(args.out, (file) => file !== Input.stdin && file !== "-")
      if (Option.isNone(out)) {
        yield* Stream.run(stream, NodeSink.stdout)
      } else {
        yield* exportToFile(stream, out.value)
        yield* Console.error(`exported ${lines} results to ${out.value}`)
      }
    }))
  })
).pipe(CliCommand.withDescription("Write a job's results as NDJSON, one result a line, to stdout or --out."))

const cancel = CliCommand.make(
  "cancel",
  { job: jobArg, connection: connectionOptions },
  Effect.fn("Cli.cancel")(function*(args: { readonly job: string; readonly connection: ConnectionArgs }) {
    const view = yield* Effect.scoped(
      Effect.flatMap(connect(args.connection), ({ client }) => client.cancel(args.job))
    )
    yield* Console.log(
      `job ${view.id} ${view.status}: ${view.succeeded} succeeded, ${view.failed} failed, ` +
        `${view.total - view.succeeded - view.failed} not fetched`
    )
  })
).pipe(CliCommand.withDescription("Cancel a job: its in-flight fetches are interrupted, nothing more is fetched."))

/**
 * The `harvest` command and its subcommands.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = CliCommand.make("harvest").pipe(
  CliCommand.withDescription("Harvest's command line: fetch URLs through a Harvest server or in this process."),
  CliCommand.withSubcommands([fetch, status, exportCommand, cancel])
)

/**
 * Runs the command line `argv` (as `process.argv`: runtime and script first) and returns the process's exit code;
 * errors are printed to stderr here. Interruption (Ctrl-C) is not caught: the caller maps it to 130.
 * `scriptDirectory` (see `ScriptDirectory`) is the current directory unless given.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  argv: ReadonlyArray<string>,
  options: { readonly scriptDirectory?: string } = {}
): Effect.Effect<number, never, FileSystem.FileSystem | Path.Path | Terminal.Terminal | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const exitCode = yield* Ref.make(0)
    const cli = CliCommand.run(command, { name: "harvest", version: "0.1.0" })
    const args = argv.map((arg, i) => i >= 2 && arg === "-" ? Input.stdin : arg)
    return yield* cli(args).pipe(
      Effect.provideService(ExitCode, exitCode),
      Effect.provideService(ScriptDirectory, { path: options.scriptDirectory ?? process.cwd() }),
      Effect.zipRight(Ref.get(exitCode)),
      Effect.catchAll((error) =>
        // @effect/cli has printed its own usage errors already.
        ValidationError.isValidationError(error)
          ? Effect.succeed(2)
          : Effect.as(Console.error(`harvest: ${error.message}`), 2)
      )
    )
  })

import * as HttpServer from "@effect/platform/HttpServer"
import { assert } from "@effect/vitest"
import { Databases } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as HarvestConfig from "../src/HarvestConfig.js"
import * as Server from "../src/Server.js"
import * as Harness from "./harness.js"

// What the command-line suites share: running the CLI as a real process, a Harvest server, files of URLs.
export interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface Running {
  readonly kill: (signal: NodeJS.Signals) => void
  /** Writes to stdin (left open while `whileRunning` runs when `stdin` is `"open"`). */
  readonly write: (text: string) => void
  readonly endInput: () => void
}

export interface CliOptions {
  /** Environment variables on top of this process's, from which Harvest's own (`DATA_DIR`…) are removed. */
  readonly env?: Record<string, string>
  /** The child's working directory (this process's by default). */
  readonly cwd?: string
  /** What stdin gives: this text, or whatever `whileRunning` writes (`"open"`); nothing by default. */
  readonly stdin?: string | { readonly open: true }
  /** Runs alongside the child: may feed it, watch its effects, send it a signal. */
  readonly whileRunning?: (child: Running) => Effect.Effect<void>
}

// The variables Harvest reads (DESIGN.md's table): a `--local` run reads them, so the tests set each one they mean.
export const harvestVariables = [
  "PORT",
  "HOST",
  "DATA_DIR",
  "DATABASE_URL",
  "REDIS_URL",
  "MAX_CONCURRENCY",
  "SHUTDOWN_GRACE_MS",
  "API_TOKEN",
  "HARVEST_ALLOW_PRIVATE_NETWORKS",
  "MAX_BODY_BYTES",
  "LEASE_MS",
  "RETRY_AFTER_MAX_MS",
  "MAX_URLS_PER_JOB"
]

export const childEnv = (env: Record<string, string> = {}) => {
  const inherited: Record<string, string | undefined> = { ...process.env, HARVEST_SERVER: "", HARVEST_TOKEN: "" }
  for (const name of [...harvestVariables, "npm_lifecycle_event", "INIT_CWD"]) delete inherited[name]
  return { ...inherited, ...env }
}

// `harvest …` as a real child process (the run's build of the command line), stdout and stderr captured; never a TTY here.
export const harvest = (args: ReadonlyArray<string>, options: CliOptions = {}) =>
  Effect.gen(function*() {
    const child = spawn(process.execPath, [Harness.built("cli-main"), ...args], {
      env: childEnv(options.env),
      stdio: ["pipe", "pipe", "pipe"],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd })
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => stdout += chunk)
    child.stderr.on("data", (chunk) => stderr += chunk)
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    if (typeof options.stdin === "string") child.stdin.end(options.stdin)
    else if (options.stdin === undefined) child.stdin.end()
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
    if (options.whileRunning !== undefined) {
      yield* options.whileRunning({
        kill: (signal) => child.kill(signal),
        write: (text) => child.stdin.write(text),
        endInput: () => child.stdin.end()
      })
    }
    const code = yield* Effect.promise(() => exited)
    return { code, stdout, stderr } satisfies Finished
  })

export const expectCode = (result: Finished, code: number) =>
  assert.strictEqual(
    result.code,
    code,
    `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`
  )

// A Harvest server in this process, as a separate server the CLI connects to.
export const server = (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Effect.gen(function*() {
    const dataDir = yield* Databases.tempDir("harvest-cli-server-")
    const context = yield* Layer.build(Server.make(HarvestConfig.layerWith({
      dataDir,
      port: 0,
      allowPrivateNetworks: true,
      shutdownGraceMs: 200,
      shedEventLoopDelayMs: 60_000,
      ...overrides
    })))
    const address = (yield* HttpServer.HttpServer.pipe(Effect.provide(context))).address as HttpServer.TcpAddress
    return { base: `http://127.0.0.1:${address.port}`, dataDir }
  })

export const api = (base: string, route: string, init: RequestInit & { readonly token?: string } = {}) =>
  Effect.promise(async () => {
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
    const response = await fetch(`${base}${route}`, { ...init, headers })
    return { status: response.status, json: (await response.json()) as any }
  })

export const writeFile = (dir: string, name: string, lines: ReadonlyArray<string>) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, lines.join("\n") + "\n")
  return file
}

// Job ids with their status, as the summary lists them.
export const jobsOf = (stdout: string) =>
  Array.from(stdout.matchAll(/^ {2}([0-9a-f-]{36}) {2}(\w+) {2}(\d+) URLs$/gm), (m) => ({
    id: m[1],
    status: m[2],
    total: Number(m[3])
  }))

export const row = (stdout: string, name: string) => {
  const match = new RegExp(`^ +${name} +(\\d+)$`, "m").exec(stdout)
  return match === null ? undefined : Number(match[1])
}

export const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })
)

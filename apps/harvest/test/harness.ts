/**
 * How Harvest's tests run Harvest: in this process on a free port (`inProcess`, on SQLite in a temp dir or on a
 * fresh Postgres database), or as a real child process (`spawn`), talked to over loopback either way.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { Databases } from "@spindle/testkit"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn as spawnChild } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inject } from "vitest"
import * as HarvestConfig from "../src/HarvestConfig.js"
import * as Server from "../src/Server.js"

/** A reply, its body as text and, when it parses, as JSON. */
export interface Reply {
  readonly status: number
  readonly json: any
  readonly text: string
  readonly headers: Headers
}

/**
 * Sends a request; a body that is not a string is sent as JSON. Like any client the contract describes, it retries a
 * `503 overloaded` (a real Harvest process on a busy machine may shed load for a moment); every other reply is
 * returned as it came.
 */
export const request = (url: string, init: {
  readonly method?: string
  readonly body?: unknown
  readonly headers?: Record<string, string>
} = {}): Effect.Effect<Reply> =>
  Effect.gen(function*() {
    const deadline = performance.now() + 30_000
    while (true) {
      const reply = yield* once(url, init)
      const overloaded = reply.status === 503 && reply.json?.error?.code === "overloaded"
      if (!overloaded || performance.now() > deadline) return reply
      yield* Effect.sleep("100 millis")
    }
  })

const once = (url: string, init: {
  readonly method?: string
  readonly body?: unknown
  readonly headers?: Record<string, string>
}) =>
  Effect.promise(async (): Promise<Reply> => {
    const body = init.body === undefined || typeof init.body === "string" ? init.body : JSON.stringify(init.body)
    const response = await fetch(url, {
      method: init.method ?? "GET",
      headers: { "content-type": "application/json", ...init.headers },
      ...(body === undefined ? {} : { body })
    })
    const text = await response.text()
    let json: any = undefined
    try {
      json = JSON.parse(text)
    } catch {
      // not JSON
    }
    return { status: response.status, json, text, headers: response.headers }
  })

/** A running Harvest and the calls the tests make to it. */
export interface Harvest {
  readonly base: string
  readonly dataDir: string
  readonly context: Context.Context<any>
  readonly call: (
    method: string,
    route: string,
    body?: unknown,
    headers?: Record<string, string>
  ) => Effect.Effect<Reply>
  /** POST /jobs, expecting a 202; the job's id. */
  readonly submit: (body: Record<string, unknown>) => Effect.Effect<string>
  /** Polls the job until it has `status` (dies after `timeoutMs`, 60 s by default: a bound for a stuck test); the view. */
  readonly waitFor: (id: string, status: string, timeoutMs?: number) => Effect.Effect<any>
  /** The job's results, up to 1,000. */
  readonly results: (id: string) => Effect.Effect<ReadonlyArray<any>>
}

const client = (base: string) => {
  const call = (method: string, route: string, body?: unknown, headers?: Record<string, string>) =>
    request(`${base}${route}`, { method, body, ...(headers === undefined ? {} : { headers }) })
  const submit = (body: Record<string, unknown>) =>
    Effect.flatMap(call("POST", "/jobs", body), (reply) =>
      reply.status === 202
        ? Effect.succeed(reply.json.id as string)
        : Effect.dieMessage(`POST /jobs answered ${reply.status}: ${reply.text}`))
  const waitFor = (id: string, status: string, timeoutMs = 60_000) =>
    Effect.gen(function*() {
      const until = Date.now() + timeoutMs
      while (Date.now() < until) {
        const job = yield* call("GET", `/jobs/${id}`)
        if (job.json?.status === status) return job.json
        yield* Effect.sleep("25 millis")
      }
      return yield* Effect.dieMessage(`job ${id} never reached ${status}`)
    })
  const results = (id: string) =>
    Effect.map(call("GET", `/jobs/${id}/results?limit=1000`), (reply) => reply.json.items as ReadonlyArray<any>)
  return { call, submit, waitFor, results }
}

/**
 * Harvest in this process on a free port, its files in a temp dir, on SQLite (in that dir) or a fresh Postgres
 * database; private networks allowed (the upstream is on loopback). Closed with the scope.
 */
export const inProcess = (
  overrides: Partial<HarvestConfig.HarvestConfig> = {},
  options: { readonly database?: "sqlite" | "pg" } = {}
): Effect.Effect<Harvest, never, Scope.Scope> =>
  Effect.gen(function*() {
    const dataDir = yield* Databases.tempDir("harvest-test-")
    const databaseUrl = options.database === "pg"
      ? Option.some(Redacted.make(yield* Databases.freshPostgres))
      : Option.none()
    const context = yield* Layer.build(
      Server.make(HarvestConfig.layerWith({
        dataDir,
        databaseUrl,
        port: 0,
        allowPrivateNetworks: true,
        maxConcurrency: 16,
        shutdownGraceMs: 500,
        // The test runner's own stalls on a busy machine are not Harvest's overload: no test here is about shedding.
        shedEventLoopDelayMs: 60_000,
        ...overrides
      })).pipe(Layer.orDie)
    )
    const server = yield* HttpServer.HttpServer.pipe(Effect.provide(context))
    const base = `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
    return { base, dataDir, context, ...client(base) }
  })

/** Harvest as a real process. */
export interface Instance extends Omit<Harvest, "dataDir" | "context"> {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** An entry point of the build made for this test run (`test/globalSetup.ts`): `main`, `demo` or `cli-main`. */
export const built = (name: "main" | "demo" | "cli-main"): string => path.join(inject("harvestBuild"), `${name}.mjs`)

/**
 * Starts Harvest as a real process (PORT=0, private networks allowed, `env` on top) and resolves once it logs the
 * address it listens on; SIGKILLed with the scope if still running. By default the run's build of `main`; with
 * `command`, that command instead (`["pnpm", "start"]` from the repository's root, as a user starts it), as the
 * leader of a process group of its own, so that a signal can reach the whole group as a terminal's Ctrl-C does.
 */
export const spawn = (
  env: Record<string, string>,
  options: { readonly command?: readonly [string, ...Array<string>] } = {}
): Effect.Effect<Instance, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Instance>((resume) => {
      const [file, ...args] = options.command ?? [process.execPath, built("main")]
      const child = spawnChild(file, args, {
        env: { ...process.env, PORT: "0", HARVEST_ALLOW_PRIVATE_NETWORKS: "true", ...env },
        stdio: ["ignore", "pipe", "pipe"],
        ...(options.command === undefined ? {} : { cwd: repositoryRoot, detached: true })
      })
      let output = ""
      let resolved = false
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)))
      void exited.then((code) => {
        if (!resolved) resume(Effect.dieMessage(`Harvest exited (${code}) before listening:\n${output}`))
      })
      const onData = (chunk: Buffer) => {
        output += chunk
        const match = /Harvest listening" url=(http:\/\/[^\s]+)/.exec(output)
        if (match !== null && !resolved) {
          resolved = true
          const base = match[1]
          resume(Effect.succeed({ child, base, output: () => output, exited, ...client(base) }))
        }
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
    }),
    (instance) =>
      Effect.sync(() => {
        if (options.command === undefined) instance.child.kill("SIGKILL")
        else {
          // The whole group: a process it started may outlive its leader.
          try {
            process.kill(-instance.child.pid!, "SIGKILL")
          } catch {
            // the group is gone already
          }
        }
      })
  )

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as Cli from "../src/cli/Cli.js"
import * as HarvestConfig from "../src/HarvestConfig.js"
import * as Server from "../src/Server.js"
import * as Harness from "./harness.js"

interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

interface Running {
  readonly kill: (signal: NodeJS.Signals) => void
  /** Writes to stdin (left open while `whileRunning` runs when `stdin` is `"open"`). */
  readonly write: (text: string) => void
  readonly endInput: () => void
}

interface CliOptions {
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
const harvestVariables = [
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

const childEnv = (env: Record<string, string> = {}) => {
  const inherited: Record<string, string | undefined> = { ...process.env, HARVEST_SERVER: "", HARVEST_TOKEN: "" }
  for (const name of [...harvestVariables, "npm_lifecycle_event", "INIT_CWD"]) delete inherited[name]
  return { ...inherited, ...env }
}

// `harvest …` as a real child process (the run's build of the command line), stdout and stderr captured; never a TTY here.
const harvest = (args: ReadonlyArray<string>, options: CliOptions = {}) =>
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

const expectCode = (result: Finished, code: number) =>
  assert.strictEqual(
    result.code,
    code,
    `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`
  )

// A Harvest server in this process, as a separate server the CLI connects to.
const server = (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
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

const api = (base: string, route: string, init: RequestInit & { readonly token?: string } = {}) =>
  Effect.promise(async () => {
    const headers: Record<string, string> = { "content-type": "application/json" }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
    const response = await fetch(`${base}${route}`, { ...init, headers })
    return { status: response.status, json: (await response.json()) as any }
  })

const writeFile = (dir: string, name: string, lines: ReadonlyArray<string>) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, lines.join("\n") + "\n")
  return file
}

// Job ids with their status, as the summary lists them.
const jobsOf = (stdout: string) =>
  Array.from(stdout.matchAll(/^ {2}([0-9a-f-]{36}) {2}(\w+) {2}(\d+) URLs$/gm), (m) => ({
    id: m[1],
    status: m[2],
    total: Number(m[3])
  }))

const row = (stdout: string, name: string) => {
  const match = new RegExp(`^ +${name} +(\\d+)$`, "m").exec(stdout)
  return match === null ? undefined : Number(match[1])
}

const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })
)

describe("harvest command line (real processes)", () => {
  it.scopedLive(
    "fetch against a server: summary on stdout, plain progress lines on stderr, exit 0",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server({ apiToken: Option.some(Redacted.make("s3cret")) })
        const dir = yield* Databases.tempDir("harvest-cli-")
        // Two at a time, each at least 200 ms: the run lasts over 3 s, long enough for periodic progress lines.
        const urls = Array.from({ length: 30 }, (_, i) => upstream.url(`/ok/${i}?latency=200-300&bytes=${300 + i}`))
        urls.push(upstream.url("/flaky?fail=1&key=cli-flaky&status=503"))
        const file = writeFile(dir, "urls.txt", ["# a comment", "", ...urls, "   "])

        const result = yield* harvest([
          "fetch",
          file,
          "--server",
          base,
          "--token",
          "s3cret",
          "--max-attempts",
          "3",
          "--per-host-concurrency",
          "2"
        ])
        expectCode(result, 0)
        assert.strictEqual(row(result.stdout, "succeeded"), 31)
        assert.strictEqual(row(result.stdout, "failed"), 0)
        assert.strictEqual(row(result.stdout, "total"), 31)
        assert.match(result.stderr, /^fetched 31\/31 \(100%\) [\d.]+\/s eta 0s$/m, "the last progress line")
        const periodic = Array.from(result.stderr.matchAll(/^fetched (\d+)\/31 \(\d+%\) [\d.]+\/s eta \S+$/gm))
        assert.isTrue(periodic.some((m) => Number(m[1]) < 31), `a progress line while running:\n${result.stderr}`)
        assert.isAtMost(upstream.peakInFlight(), 2, "--per-host-concurrency reached the job")
        assert.notInclude(result.stderr, "\x1b[", "no terminal escapes when stderr is not a TTY")
        const [job] = jobsOf(result.stdout)
        const view = yield* api(base, `/jobs/${job.id}`, { token: "s3cret" })
        assert.deepStrictEqual([view.json.status, view.json.total, view.json.succeeded], ["completed", 31, 31])

        // The same server without the token: 401, reported, exit 2, nothing submitted.
        const denied = yield* harvest(["fetch", file, "--server", base])
        expectCode(denied, 2)
        assert.match(denied.stderr, /answered 401 unauthorized/)
        assert.notMatch(denied.stdout, /Summary/)
      })
  )

  it.scopedLive(
    "failed URLs: exit 1 with failures by code; --allow-failures exits 0; batches become several jobs",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const file = writeFile(dir, "urls.txt", [
          ...Array.from({ length: 5 }, (_, i) => upstream.url(`/ok/${i}`)),
          upstream.url("/missing/1?status=404"),
          upstream.url("/missing/2?status=410")
        ])

        const failing = yield* harvest(["fetch", file, "--server", base, "--batch", "3", "--progress", "none"])
        expectCode(failing, 1)
        assert.strictEqual(row(failing.stdout, "succeeded"), 5)
        assert.strictEqual(row(failing.stdout, "failed"), 2)
        assert.strictEqual(row(failing.stdout, "http_status"), 2)
        assert.include(failing.stdout, upstream.url("/missing/1?status=404"))
        const jobs = jobsOf(failing.stdout)
        assert.deepStrictEqual(jobs.map((j) => j.total), [3, 3, 1], "7 URLs in batches of 3")
        for (const job of jobs) {
          assert.strictEqual((yield* api(base, `/jobs/${job.id}`)).json.status, "completed")
        }
        assert.strictEqual(failing.stderr, "", "--progress none prints nothing on stderr")

        const allowed = yield* harvest(["fetch", file, "--server", base, "--allow-failures"])
        expectCode(allowed, 0)
        assert.strictEqual(row(allowed.stdout, "failed"), 2)
      })
  )

  it.scopedLive(
    "stdin (-): lines streamed in and submitted; a bad line cancels the jobs already submitted",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const urls = Array.from({ length: 12 }, (_, i) => upstream.url(`/in/${i}`))
        const piped = yield* harvest(["fetch", "-", "--server", base, "--batch", "5"], {
          stdin: ["# from a pipe", ...urls, ""].join("\r\n")
        })
        expectCode(piped, 0)
        assert.strictEqual(row(piped.stdout, "succeeded"), 12)
        assert.deepStrictEqual(jobsOf(piped.stdout).map((j) => j.total), [5, 5, 2])

        // Stdin cannot be read twice: a bad line that comes after whole batches went out cancels their jobs.
        const slow = Array.from({ length: 4 }, (_, i) => upstream.url(`/slow/${i}?latency=3000`))
        const bad = yield* harvest(["fetch", "-", "--server", base, "--batch", "2"], {
          stdin: { open: true },
          whileRunning: (child) =>
            Effect.gen(function*() {
              child.write([...slow, ""].join("\n"))
              yield* Wait.until("two batches submitted", Effect.sync(() => upstream.inFlight() === 4))
              child.write(["", "ftp://example.com/file", upstream.url("/never"), ""].join("\n"))
              child.endInput()
            })
        })
        expectCode(bad, 2)
        assert.match(bad.stderr, /stdin:6: "ftp:\/\/example\.com\/file" must use http or https/)
        const cancelled = Array.from(bad.stderr.matchAll(/cancelled job ([0-9a-f-]{36})/g), (m) => m[1])
        assert.strictEqual(cancelled.length, 2)
        for (const id of cancelled) assert.strictEqual((yield* api(base, `/jobs/${id}`)).json.status, "cancelled")
        assert.isFalse(upstream.requests().some((r) => r.path === "/never"))
      })
  )

  it.scopedLive(
    "a bad line in a file is reported with its number before anything is submitted",
    () =>
      Effect.gen(function*() {
        // The "server" is an upstream that records every request: there must be none.
        const recorder = yield* Upstream.make()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const file = writeFile(dir, "urls.txt", [recorder.url("/a"), "# ok", "not a url", recorder.url("/b")])
        const result = yield* harvest(["fetch", file, "--server", recorder.origin])
        expectCode(result, 2)
        assert.include(result.stderr, `${file}:3: "not a url" is not an absolute URL`)
        assert.deepStrictEqual(recorder.requests(), [])
      })
  )

  it.scopedLive(
    "--local: Harvest in the process, bodies in --data-dir; status and export read them back",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-cli-local-")
        const dir = yield* Databases.tempDir("harvest-cli-")
        const sizes = Array.from({ length: 20 }, (_, i) => 1000 + i * 37)
        const file = writeFile(dir, "urls.txt", sizes.map((bytes) => upstream.url(`/local/${bytes}?bytes=${bytes}`)))
        const local = ["--data-dir", dataDir, "--allow-private-networks"]

        const result = yield* harvest(["fetch", file, ...local])
        expectCode(result, 0)
        assert.strictEqual(row(result.stdout, "succeeded"), 20)
        assert.notMatch(result.stdout, /Harvest listening|level=/, "Harvest's logs stay out of the output")
        assert.notMatch(result.stderr, /level=INFO/, "and its info logs out of stderr")
        const [job] = jobsOf(result.stdout)
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "tmp")), [])
        const stored = new Set(fs.readdirSync(path.join(dataDir, "files")))
        for (const bytes of sizes) assert.isTrue(stored.has(Upstream.expectedSha256(bytes)))

        const status = yield* harvest(["status", job.id, ...local, "--json"])
        expectCode(status, 0)
        const view = JSON.parse(status.stdout)
        assert.deepStrictEqual([view.status, view.total, view.succeeded, view.failed], ["completed", 20, 20, 0])

        const out = path.join(dir, "results.ndjson")
        const exported = yield* harvest(["export", job.id, ...local, "--out", out])
        expectCode(exported, 0)
        assert.include(exported.stderr, `exported 20 results to ${out}`)
        const lines = fs.readFileSync(out, "utf8").trim().split("\n").map((line) => JSON.parse(line))
        assert.strictEqual(lines.length, 20)
        for (const line of lines) {
          const bytes = Number(/bytes=(\d+)/.exec(line.url)![1])
          assert.deepStrictEqual([line.status, line.sha256], ["succeeded", Upstream.expectedSha256(bytes)])
          const body = fs.readFileSync(path.join(dataDir, "files", line.fileId))
          assert.strictEqual(createHash("sha256").update(body).digest("hex"), line.sha256)
        }
        assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["results.ndjson", "urls.txt"], "no temp file left")
      })
  )

  it.scopedLive(
    "--local reads the server's environment: DATA_DIR, HARVEST_ALLOW_PRIVATE_NETWORKS, MAX_BODY_BYTES, MAX_URLS_PER_JOB",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const root = yield* Databases.tempDir("harvest-cli-env-")
        const dataDir = path.join(root, "from-env")
        const sizes = Array.from({ length: 6 }, (_, i) => 500 + i)
        const file = writeFile(root, "urls.txt", [
          ...sizes.map((bytes) => upstream.url(`/env/${bytes}?bytes=${bytes}`)),
          upstream.url("/big?bytes=5000")
        ])
        const env = {
          DATA_DIR: dataDir,
          HARVEST_ALLOW_PRIVATE_NETWORKS: "true",
          MAX_BODY_BYTES: "4096",
          MAX_URLS_PER_JOB: "4"
        }

        const allowed = yield* harvest(["fetch", file, "--progress", "none"], { env })
        expectCode(allowed, 1)
        assert.strictEqual(row(allowed.stdout, "succeeded"), 6)
        assert.strictEqual(row(allowed.stdout, "body_too_large"), 1, "MAX_BODY_BYTES=4096 refused the 5000 bytes")
        assert.deepStrictEqual(jobsOf(allowed.stdout).map((j) => j.total), [4, 3], "batches fit MAX_URLS_PER_JOB=4")
        const stored = new Set(fs.readdirSync(path.join(dataDir, "files")))
        for (const bytes of sizes) assert.isTrue(stored.has(Upstream.expectedSha256(bytes)), `${bytes} in DATA_DIR`)
        assert.isTrue(fs.existsSync(path.join(dataDir, "harvest.db")))

        // The same without HARVEST_ALLOW_PRIVATE_NETWORKS: every item fails blocked_address, no request is made.
        const requestsBefore = upstream.requests().length
        const blocked = yield* harvest(["fetch", file, "--progress", "none"], { env: { DATA_DIR: dataDir } })
        expectCode(blocked, 1)
        assert.strictEqual(row(blocked.stdout, "succeeded"), 0)
        assert.strictEqual(row(blocked.stdout, "blocked_address"), 7)
        assert.strictEqual(upstream.requests().length, requestsBefore, "no connection to a blocked address")

        // Both runs' jobs are in DATA_DIR's database: `status` finds them there.
        const [job] = jobsOf(blocked.stdout)
        const status = yield* harvest(["status", job.id, "--json"], { env: { DATA_DIR: dataDir } })
        expectCode(status, 0)
        assert.strictEqual(JSON.parse(status.stdout).failed, 7, "one job: MAX_URLS_PER_JOB is back to its default")
      })
  )

  it.scopedLive(
    "--local: flags override the environment; relative paths as the server's (DATA_DIR) or as typed (--data-dir)",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const root = yield* Databases.tempDir("harvest-cli-flags-")
        const envDir = path.join(root, "from-env")
        const flagDir = path.join(root, "from-flag")
        const file = writeFile(root, "urls.txt", [upstream.url("/flag?bytes=321")])
        const stored = (dir: string) => fs.readdirSync(path.join(dir, "files"))

        const overridden = yield* harvest(["fetch", file, "--data-dir", flagDir, "--allow-private-networks"], {
          env: { DATA_DIR: envDir, HARVEST_ALLOW_PRIVATE_NETWORKS: "false" }
        })
        expectCode(overridden, 0)
        assert.deepStrictEqual(stored(flagDir), [Upstream.expectedSha256(321)], "--data-dir over DATA_DIR")
        assert.isFalse(fs.existsSync(envDir), "DATA_DIR left alone")

        // As `pnpm harvest` runs: started where pnpm runs scripts (as `pnpm start` is), typed in another directory.
        const scriptDir = path.join(root, "repo")
        const typedDir = path.join(scriptDir, "docs")
        fs.mkdirSync(typedDir, { recursive: true })
        fs.copyFileSync(file, path.join(typedDir, "urls.txt"))
        const asPnpm = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
          harvest(["fetch", "urls.txt", "--progress", "none", ...args], {
            cwd: scriptDir,
            env: { npm_lifecycle_event: "harvest", INIT_CWD: typedDir, HARVEST_ALLOW_PRIVATE_NETWORKS: "1", ...env }
          })
        expectCode(yield* asPnpm([]), 0)
        assert.deepStrictEqual(stored(path.join(scriptDir, ".data")), [Upstream.expectedSha256(321)], "the default")
        expectCode(yield* asPnpm([], { DATA_DIR: "relative-env" }), 0)
        assert.isTrue(fs.existsSync(path.join(scriptDir, "relative-env", "harvest.db")), "DATA_DIR from the script's")
        expectCode(yield* asPnpm(["--data-dir", "relative-flag"]), 0)
        assert.isTrue(fs.existsSync(path.join(typedDir, "relative-flag", "harvest.db")), "--data-dir from the typed")
        assert.isFalse(fs.existsSync(path.join(typedDir, ".data")))
      })
  )

  it.scopedLive(
    "an invalid environment: exit 2 with a message naming the variable, no stack trace; a server is unaffected",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const root = yield* Databases.tempDir("harvest-cli-badenv-")
        const dataDir = path.join(root, "data")
        const file = writeFile(root, "urls.txt", [upstream.url("/never")])

        const notInteger = yield* harvest(["fetch", file], { env: { DATA_DIR: dataDir, MAX_CONCURRENCY: "abc" } })
        expectCode(notInteger, 2)
        assert.strictEqual(
          notInteger.stderr,
          "harvest: invalid environment: MAX_CONCURRENCY: Expected an integer value but received \"abc\"\n"
        )
        assert.strictEqual(notInteger.stdout, "")

        const outOfRange = yield* harvest(["status", "x", "--local"], {
          env: { DATA_DIR: dataDir, LEASE_MS: "0", HARVEST_ALLOW_PRIVATE_NETWORKS: "maybe" }
        })
        expectCode(outOfRange, 2)
        assert.include(outOfRange.stderr, "LEASE_MS: must be a positive integer but received 0")
        assert.include(outOfRange.stderr, "HARVEST_ALLOW_PRIVATE_NETWORKS: Expected a boolean value")
        assert.notMatch(outOfRange.stderr, /^\s+at /m, "no stack trace")
        assert.isFalse(fs.existsSync(dataDir), "nothing started")
        assert.deepStrictEqual(upstream.requests(), [])

        // The environment configures a local Harvest only: a command sent to a server does not read it.
        const { base } = yield* server()
        const job =
          (yield* api(base, "/jobs", { method: "POST", body: JSON.stringify({ urls: [upstream.url("/s")] }) }))
            .json
        const status = yield* harvest(["status", job.id, "--server", base], { env: { MAX_CONCURRENCY: "abc" } })
        expectCode(status, 0)
      })
  )

  it.scopedLive.skipIf(Databases.postgresSkip !== undefined)(
    "--local with DATABASE_URL keeps its records in Postgres, bodies in DATA_DIR",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const root = yield* Databases.tempDir("harvest-cli-pg-")
        const databaseUrl = yield* Databases.freshPostgres
        const dataDir = path.join(root, "data")
        const file = writeFile(root, "urls.txt", [upstream.url("/pg?bytes=777")])
        const env = { DATA_DIR: dataDir, DATABASE_URL: databaseUrl, HARVEST_ALLOW_PRIVATE_NETWORKS: "true" }

        const result = yield* harvest(["fetch", file, "--progress", "none"], { env })
        expectCode(result, 0)
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "files")), [Upstream.expectedSha256(777)])
        assert.isFalse(fs.existsSync(path.join(dataDir, "harvest.db")), "no SQLite database")
        const [job] = jobsOf(result.stdout)
        const { base } = yield* server({ dataDir, databaseUrl: Option.some(Redacted.make(databaseUrl)) })
        const view = (yield* api(base, `/jobs/${job.id}`)).json
        assert.deepStrictEqual([view.status, view.succeeded], ["completed", 1])
      })
  )

  it.scopedLive(
    "Ctrl-C in --local mode: summary printed, exit 130, no temp files, items released not failed",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-cli-sigint-")
        const dir = yield* Databases.tempDir("harvest-cli-")
        // Slow bodies: while they drip in, their temp files exist under tmp/. All 40 at once (one wave of 3 s here,
        // and one when the server finishes them), so the test waits for bodies, not for a per-host queue.
        const urls = Array.from({ length: 40 }, (_, i) => upstream.url(`/slow/${i}?bytes=30000&drip=1000&every=100`))
        const file = writeFile(dir, "urls.txt", urls)
        let sawTemp = false
        const args = ["fetch", file, "--data-dir", dataDir, "--allow-private-networks", "--per-host-concurrency", "40"]
        const result = yield* harvest(args, {
          whileRunning: (child) =>
            Effect.gen(function*() {
              yield* Wait.until(
                "bodies being written",
                Effect.sync(() => {
                  const tmp = path.join(dataDir, "tmp")
                  sawTemp = fs.existsSync(tmp) && fs.readdirSync(tmp).length > 0
                  return sawTemp && upstream.inFlight() >= 4
                })
              )
              child.kill("SIGINT")
            })
        })
        expectCode(result, 130)
        assert.isTrue(sawTemp)
        assert.match(result.stdout, /^Interrupted: summary so far$/m)
        assert.strictEqual(row(result.stdout, "failed"), 0, "the interruption fails nothing")
        assert.isAbove(row(result.stdout, "not fetched") ?? 0, 0)
        assert.strictEqual(row(result.stdout, "total"), 40)
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "tmp")), [], "no temp file left")
        const [job] = jobsOf(result.stdout)

        // The interrupted items went back to pending: Harvest on the same data dir finishes them, each in one attempt.
        const { base } = yield* server({ dataDir })
        const view = yield* Wait.until(
          "the server to finish the job",
          Effect.map(api(base, `/jobs/${job.id}`), (reply) => reply.json.status === "completed" && reply.json)
        )
        assert.deepStrictEqual([view.status, view.succeeded, view.failed], ["completed", 40, 0])
        const results = (yield* api(base, `/jobs/${job.id}/results?limit=100`)).json
        assert.isTrue(results.items.every((r: any) => r.attempts === 1), "an interrupted attempt does not count")
      })
  )

  it.scopedLive(
    "Ctrl-C against a server: the run's jobs are cancelled, summary printed, exit 130",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const file = writeFile(
          dir,
          "urls.txt",
          Array.from({ length: 30 }, (_, i) => upstream.url(`/s/${i}?latency=30000`))
        )
        // Ctrl-C once every batch is submitted and fetching (all 30 in flight), so the run has all three jobs.
        const args = ["fetch", file, "--server", base, "--batch", "10", "--per-host-concurrency", "30"]
        const result = yield* harvest(args, {
          whileRunning: (child) =>
            Effect.gen(function*() {
              yield* Wait.until("all three batches fetching", Effect.sync(() => upstream.inFlight() === 30))
              child.kill("SIGINT")
            })
        })
        expectCode(result, 130)
        assert.match(result.stdout, /^Interrupted: summary so far$/m)
        const jobs = jobsOf(result.stdout)
        assert.strictEqual(jobs.length, 3)
        for (const job of jobs) {
          assert.strictEqual(job.status, "cancelled")
          assert.strictEqual((yield* api(base, `/jobs/${job.id}`)).json.status, "cancelled")
        }
        yield* Wait.until("in-flight fetches interrupted", Effect.sync(() => upstream.inFlight() === 0), {
          timeout: "5 seconds"
        })
      })
  )

  it.scopedLive(
    "status, export and cancel against a server; unknown jobs and unreachable servers exit 2",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const done = (yield* api(base, "/jobs", {
          method: "POST",
          body: JSON.stringify({ urls: [upstream.url("/a?bytes=10"), upstream.url("/b?status=404")] })
        })).json
        let view = (yield* api(base, `/jobs/${done.id}`)).json
        while (view.status !== "completed") {
          yield* Effect.sleep("25 millis")
          view = (yield* api(base, `/jobs/${done.id}`)).json
        }

        const status = yield* harvest(["status", done.id, "--server", base])
        expectCode(status, 0)
        assert.match(status.stdout, /^status +completed$/m)
        assert.match(status.stdout, /^succeeded +1$/m)
        assert.match(status.stdout, /^failed +1$/m)

        const exported = yield* harvest(["export", done.id, "-s", base])
        expectCode(exported, 0)
        const lines = exported.stdout.trim().split("\n").map((line) => JSON.parse(line))
        assert.deepStrictEqual(lines.map((r) => r.status).sort(), ["failed", "succeeded"])

        const slow = (yield* api(base, "/jobs", {
          method: "POST",
          body: JSON.stringify({ urls: [upstream.url("/hang?hang=1")] })
        })).json
        yield* Wait.until("the fetch in flight", Effect.sync(() => upstream.inFlight() === 1))
        const cancelled = yield* harvest(["cancel", slow.id, "--server", base])
        expectCode(cancelled, 0)
        assert.match(cancelled.stdout, new RegExp(`job ${slow.id} cancelled`))
        assert.strictEqual((yield* api(base, `/jobs/${slow.id}`)).json.status, "cancelled")
        yield* Wait.until("the fetch interrupted", Effect.sync(() => upstream.inFlight() === 0), {
          timeout: "5 seconds"
        })

        const unknown = yield* harvest(["status", "00000000-0000-0000-0000-000000000000", "--server", base])
        expectCode(unknown, 2)
        assert.match(unknown.stderr, /answered 404 not_found/)

        const port = yield* freePort
        const unreachable = yield* harvest([
          "fetch",
          writeFile(dir, "u.txt", [upstream.url("/x")]),
          "-s",
          `http://127.0.0.1:${port}`
        ])
        expectCode(unreachable, 2)
        assert.match(
          unreachable.stderr,
          new RegExp(`cannot reach Harvest at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`)
        )
      })
  )

  it.scopedLive(
    "--help of every command exits 0 and names its options; bad usage exits 2",
    () =>
      Effect.gen(function*() {
        const expected: Record<string, ReadonlyArray<string>> = {
          "": ["fetch", "status", "export", "cancel"],
          fetch: [
            "--server",
            "--token",
            "--local",
            "--data-dir",
            "--allow-private-networks",
            "--concurrency",
            "--per-host-concurrency",
            "--per-host-rps",
            "--per-host-burst",
            "--timeout-ms",
            "--max-attempts",
            "--batch",
            "--allow-failures",
            "--progress",
            "<file>"
          ],
          status: ["--server", "--token", "--local", "--json", "<job>"],
          export: ["--server", "--out", "<job>"],
          cancel: ["--server", "--token", "<job>"]
        }
        yield* Effect.forEach(Object.entries(expected), ([command, words]) =>
          Effect.gen(function*() {
            const result = yield* harvest(command === "" ? ["--help"] : [command, "--help"])
            expectCode(result, 0)
            for (const word of words) assert.include(result.stdout, word, `harvest ${command} --help`)
          }), { concurrency: 2 })
        const local = yield* harvest(["status", "--help"])
        for (const variable of harvestVariables) {
          assert.include(local.stdout, variable, "--local's help says which variables it reads and which it does not")
        }
        const bad = yield* harvest(["fetch", "--no-such-option", "x"])
        expectCode(bad, 2)
        const both = yield* harvest(["status", "x", "--local", "--server", "http://127.0.0.1:1"])
        expectCode(both, 2)
        assert.include(both.stderr, "--local and --server exclude each other")
      })
  )
})

describe("the configuration of a --local Harvest (in process)", () => {
  const environment = ConfigProvider.fromMap(
    new Map([
      ["DATA_DIR", "relative/data"],
      ["MAX_CONCURRENCY", "16"],
      ["LEASE_MS", "1234"],
      ["REDIS_URL", "redis://127.0.0.1:6399"],
      ["PORT", "9999"],
      ["HOST", "0.0.0.0"],
      ["API_TOKEN", "shared"],
      ["SHUTDOWN_GRACE_MS", "5000"]
    ])
  )
  const noFlags = {
    dataDir: Option.none<string>(),
    allowPrivateNetworks: false,
    concurrency: Option.none<number>(),
    scriptDirectory: "/srv/harvest"
  }
  const read = (flags: Partial<typeof noFlags>, provider = environment) =>
    Effect.withConfigProvider(Cli.localConfig({ ...noFlags, ...flags }), provider)

  it.effect("the environment first, the flags on top, then a free loopback port, a token of its own and no grace", () =>
    Effect.gen(function*() {
      const plain = yield* read({})
      assert.strictEqual(plain.dataDir, "/srv/harvest/relative/data")
      assert.deepStrictEqual([plain.maxConcurrency, plain.leaseMs, plain.allowPrivateNetworks], [16, 1234, false])
      assert.strictEqual(Option.map(plain.redisUrl, Redacted.value).pipe(Option.getOrNull), "redis://127.0.0.1:6399")
      assert.deepStrictEqual([plain.port, plain.host, plain.shutdownGraceMs], [0, "127.0.0.1", 0])
      const token = Option.map(plain.apiToken, Redacted.value).pipe(Option.getOrNull)
      assert.isTrue(token !== null && token !== "shared", "a token of its own, not API_TOKEN")

      const flagged = yield* read({
        dataDir: Option.some("flag-dir"),
        allowPrivateNetworks: true,
        concurrency: Option.some(100)
      })
      assert.strictEqual(flagged.dataDir, path.resolve("flag-dir"))
      assert.deepStrictEqual([flagged.allowPrivateNetworks, flagged.maxConcurrency], [true, 100])
      assert.strictEqual((yield* read({ concurrency: Option.some(4) })).maxConcurrency, 16, "raised, never lowered")

      const defaults = yield* read({}, ConfigProvider.fromMap(new Map()))
      assert.deepStrictEqual([defaults.dataDir, defaults.maxConcurrency], ["/srv/harvest/.data", 64])
    }))

  it.effect("an invalid value fails with InvalidEnvironment naming each variable", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(read({}, ConfigProvider.fromMap(new Map([["MAX_CONCURRENCY", "abc"]]))))
      assert.strictEqual(error._tag, "InvalidEnvironment")
      assert.deepStrictEqual(error.problems.map((p) => p.variable), ["MAX_CONCURRENCY"])
      const several = yield* Effect.flip(read(
        {},
        ConfigProvider.fromMap(new Map([["MAX_BODY_BYTES", "-1"], ["RETRY_AFTER_MAX_MS", "soon"], ["PORT", "x"]]))
      ))
      assert.deepStrictEqual(several.problems.map((p) => p.variable).sort(), ["MAX_BODY_BYTES", "RETRY_AFTER_MAX_MS"])
      assert.include(several.message, "MAX_BODY_BYTES: must be a positive integer but received -1")

      // A variable a flag replaces (or a --local Harvest does not use: PORT above) is not read, so not refused.
      const flagged = yield* read(
        { allowPrivateNetworks: true, dataDir: Option.some("d") },
        ConfigProvider.fromMap(new Map([["HARVEST_ALLOW_PRIVATE_NETWORKS", "maybe"], ["DATA_DIR", ""]]))
      )
      assert.isTrue(flagged.allowPrivateNetworks)
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream } from "@spindle/testkit"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Cli from "../src/cli/Cli.js"
import { api, expectCode, harvest, jobsOf, row, server, writeFile } from "./cliHarness.js"

describe("harvest --local (real processes)", () => {
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

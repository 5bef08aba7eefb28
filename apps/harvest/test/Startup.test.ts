import { assert, describe, it } from "@effect/vitest"
import { Databases } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as Startup from "../src/Startup.js"
import * as Harness from "./harness.js"

// The run's build of `main` with `env`, until it exits by itself (it is SIGKILLed with the scope if it does not).
const runToExit = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [Harness.built("main")], {
        env: { ...process.env, PORT: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk) => (stdout += chunk))
      child.stderr.on("data", (chunk) => (stderr += chunk))
      const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.on("close", (code) => resolve({ code, stdout, stderr }))
      )
      return { child, exited }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  ).pipe(Effect.flatMap(({ exited }) => Effect.promise(() => exited)))

// A loopback port bound for the life of the scope (in use), or bound and closed again (nothing listens on it).
const boundPort = Effect.acquireRelease(
  Effect.async<net.Server>((resume) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
).pipe(Effect.map((server) => (server.address() as net.AddressInfo).port))
const closedPort = Effect.scoped(boundPort)

// Exit 2, one line on stderr naming the cause, no stack frame anywhere.
const assertStartupFault = (
  result: { readonly code: number | null; readonly stdout: string; readonly stderr: string },
  cause: RegExp
) => {
  const output = `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`
  assert.strictEqual(result.code, Startup.exitCode, output)
  const lines = result.stderr.split("\n").filter((line) => line !== "")
  assert.strictEqual(lines.length, 1, output)
  assert.match(lines[0], /^harvest: /, output)
  assert.match(lines[0], cause, output)
  assert.notMatch(result.stdout + result.stderr, /^\s+at /m, output)
  assert.notMatch(result.stdout, /program failed/, output)
}

describe("Harvest start-up faults (real processes)", () => {
  it.scopedLive("DATA_DIR under a regular file: one line naming the directory and ENOTDIR, exit 2", () =>
    Effect.gen(function*() {
      const dir = yield* Databases.tempDir("harvest-startup-")
      const file = path.join(dir, "a-file")
      fs.writeFileSync(file, "")
      const result = yield* runToExit({ DATA_DIR: path.join(file, "data") })
      assertStartupFault(result, new RegExp(`cannot write DATA_DIR ${file}/data: not a directory \\(ENOTDIR\\)`))
    }))

  it.scopedLive("a database on a closed loopback port: one line, the URL's password redacted, exit 2", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-startup-")
      const port = yield* closedPort
      const result = yield* runToExit({
        DATA_DIR: dataDir,
        DATABASE_URL: `postgres://harvest:s3cret-pw@127.0.0.1:${port}/harvest`
      })
      assertStartupFault(
        result,
        new RegExp(
          `database unreachable at postgres://harvest:\\*\\*\\*@127\\.0\\.0\\.1:${port}/harvest: ` +
            `connection refused \\(ECONNREFUSED\\)`
        )
      )
      assert.notInclude(result.stdout + result.stderr, "s3cret-pw")
    }))

  it.scopedLive("PORT already bound: one line naming the port and host, exit 2", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-startup-")
      const port = yield* boundPort
      const result = yield* runToExit({ DATA_DIR: dataDir, PORT: String(port) })
      assertStartupFault(result, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use`))
    }))

  it.scopedLive("bad configuration values: one line naming every variable, exit 2", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-startup-")
      const result = yield* runToExit({ DATA_DIR: dataDir, PORT: "abc", MAX_CONCURRENCY: "0" })
      assertStartupFault(result, /invalid environment: PORT: .*"abc".*; MAX_CONCURRENCY: .*received 0/)
      // Nothing was started: the database was not even created.
      assert.deepStrictEqual(fs.readdirSync(dataDir), [])
    }))

  it.scopedLive("a bad fetch policy key: one line naming the variable and the key, exit 2", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-startup-")
      const result = yield* runToExit({ DATA_DIR: dataDir, POLICY_FETCH_RETRY_MAX_ATTEMPTS: "0" })
      assertStartupFault(
        result,
        /invalid environment: POLICY_FETCH_RETRY_MAX_ATTEMPTS: must be an integer from 1 to 1000, got "0" \(policies\.fetch\.retry\.maxAttempts\)$/
      )
      assert.deepStrictEqual(fs.readdirSync(dataDir), [])
    }))
})

describe("Startup", () => {
  it("redactUrl hides passwords and secret-looking parameters, and never shows what is not a URL", () => {
    assert.strictEqual(
      Startup.redactUrl("postgres://u:p%40ss@db:5432/x?sslmode=require&password=z"),
      "postgres://u:***@db:5432/x?sslmode=require&password=***"
    )
    assert.strictEqual(Startup.redactUrl("redis://db:6379"), "redis://db:6379")
    assert.strictEqual(Startup.redactUrl("not a url:secret"), "<not a URL>")
  })

  it("describe: a system error's code in words, anything else by the first line of its message", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })
    assert.strictEqual(Startup.describe(refused), "connection refused (ECONNREFUSED)")
    assert.strictEqual(Startup.describe(new AggregateError([refused], "")), "connection refused (ECONNREFUSED)")
    assert.strictEqual(
      Startup.describe(Object.assign(new Error("password authentication failed for user \"u\"\nmore"), {
        code: "28P01"
      })),
      "password authentication failed for user \"u\" (28P01)"
    )
  })
})

import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const script = fileURLToPath(new URL("../src/graceful-shutdown.ts", import.meta.url))
const examples = fileURLToPath(new URL("..", import.meta.url))

// The example as its own process (`node --import tsx`, as in production minus the build), its output collected
// line by line. Killed outright if the test ends first.
const start = Effect.gen(function*() {
  const exited = yield* Deferred.make<number | null>()
  const child = yield* Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, ["--import", "tsx", script], {
        cwd: examples,
        env: { ...process.env, PORT: "0", GRACE_MS: "1000" },
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk) => {
    stdout += chunk
  })
  child.stderr.on("data", (chunk) => {
    stderr += chunk
  })
  child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
  const lines = () => stdout.split("\n").filter((line) => line.length > 0)
  // Waits until a line matches `pattern`, and returns the match.
  const waitFor = (pattern: RegExp) =>
    Effect.sync(() => pattern.exec(stdout)).pipe(
      Effect.flatMap(Effect.fromNullable),
      Effect.retry(Schedule.spaced("10 millis")),
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => `no ${pattern} in:\n${stdout}\n${stderr}` })
    )
  return {
    waitFor,
    lines,
    output: () => `${stdout}\n${stderr}`,
    signal: (signal: NodeJS.Signals) => Effect.sync(() => child.kill(signal)),
    exited: Deferred.await(exited)
  }
})

// A GET that reports a broken connection instead of failing.
const get = (url: string) =>
  Effect.promise(async () => {
    try {
      const response = await fetch(url)
      return { status: response.status, body: await response.text() }
    } catch (error) {
      return { status: 0, body: String(error) }
    }
  })

describe("graceful-shutdown", () => {
  it.scopedLive("SIGTERM: the slow request completes, the stuck one is interrupted, http closes before the db", () =>
    Effect.gen(function*() {
      const app = yield* start
      const [, address] = yield* app.waitFor(/^listening on (\S+)$/m)
      assert.deepStrictEqual(yield* get(`${address}/health`), { status: 200, body: "ok" })
      const slow = yield* Effect.fork(get(`${address}/slow`))
      const stuck = yield* Effect.fork(get(`${address}/export`))
      yield* app.waitFor(/^query started: select \* from reports$/m)
      yield* app.waitFor(/^query started: select \* from everything$/m)
      yield* app.signal("SIGTERM")
      // The request in flight was allowed to finish, against an open database.
      assert.deepStrictEqual(yield* Fiber.join(slow), { status: 200, body: "result of select * from reports" })
      // The one that would have taken a minute was interrupted when the grace period (1 s) ran out: a 503.
      assert.strictEqual((yield* Fiber.join(stuck)).status, 503)
      assert.strictEqual(yield* app.exited, 0, app.output())

      const lines = app.lines()
      const at = (pattern: RegExp) => {
        const index = lines.findIndex((line) => pattern.test(line))
        assert.isAtLeast(index, 0, `no line matches ${pattern}:\n${app.output()}`)
        return index
      }
      const order = [
        at(/message="shutting down".*signal=SIGTERM/),
        at(/message="shutdown phase started".*phase=http/),
        at(/^query finished: select \* from reports$/),
        at(/message="interrupting requests still running after the grace period".*requests=1/),
        at(/^query interrupted: select \* from everything$/),
        at(/message="shutdown phase finished".*phase=http/),
        at(/message="shutdown phase started".*phase=database/),
        at(/^database closed$/),
        at(/message="shutdown phase finished".*phase=database/),
        at(/message="shutdown complete"/)
      ]
      assert.deepStrictEqual(order, [...order].sort((a, b) => a - b), `out of order:\n${app.output()}`)
      assert.notMatch(app.output(), /database closed under/)
    }))
})

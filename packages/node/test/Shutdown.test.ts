import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Shutdown } from "../src/index.js"

const app = fileURLToPath(new URL("./fixtures/shutdown-app.ts", import.meta.url))

// Starts the fixture, waits for "ready", sends `signals` (spaced by 100 ms), and collects its exit and output.
const run = (mode: string, signals: ReadonlyArray<NodeJS.Signals>, deadline = "1 second", spacingMillis = 100) =>
  Effect.async<{ code: number | null; stdout: string; stderr: string; ms: number }>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", app, mode, deadline], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let sentAt = 0
    child.stdout.on("data", (chunk) => {
      stdout += chunk
      if (sentAt === 0 && stdout.includes("ready\n")) {
        sentAt = Date.now()
        signals.forEach((signal, i) => setTimeout(() => child.kill(signal), i * spacingMillis))
      }
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.on("exit", (code) => resume(Effect.succeed({ code, stdout, stderr, ms: Date.now() - sentAt })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("Shutdown", () => {
  it.live("SIGTERM closes the phases in order, logs them and exits 0", () =>
    Effect.gen(function*() {
      const result = yield* run("clean", ["SIGTERM"])
      assert.strictEqual(result.code, 0, result.stderr + result.stdout)
      const downs = result.stdout.split("\n").filter((l) => l.startsWith("down"))
      assert.deepStrictEqual(downs, ["down readiness", "down http", "down background", "down resources"])
      assert.include(result.stdout, "shutting down")
      assert.include(result.stdout, "shutdown complete")
      assert.match(result.stdout, /shutdown phase finished.*phase=resources/)
    }))

  it.live("a phase that hangs is named, and the process exits 1 at the deadline", () =>
    Effect.gen(function*() {
      const result = yield* run("hang", ["SIGTERM"])
      assert.strictEqual(result.code, 1)
      assert.match(result.stdout, /shutdown phase exceeds its deadline.*phase=resources/)
      assert.match(result.stdout + result.stderr, /shutdown deadline exceeded.*closing="?resources/)
      assert.isAtLeast(result.ms, 900)
    }))

  it.live("a second signal is logged and ends the process at once with 130", () =>
    Effect.gen(function*() {
      // A 20 s deadline: an exit well before it (5 s allowed for a loaded machine) is the second signal's doing. The
      // second comes 1.5 s after the first, past the window in which it would be the same keypress.
      const result = yield* run("hang", ["SIGINT", "SIGINT"], "20 seconds", 1_500)
      assert.strictEqual(result.code, 130)
      assert.match(result.stdout + result.stderr, /second signal during shutdown/)
      assert.isBelow(result.ms, 5_000, "it did not wait for the deadline")
    }))

  it.live("a signal repeated within a second (one Ctrl-C relayed by a wrapper) is one shutdown, finished in full", () =>
    Effect.gen(function*() {
      const result = yield* run("slow", ["SIGINT", "SIGINT"], "20 seconds", 100)
      assert.strictEqual(result.code, 0, result.stderr + result.stdout)
      assert.notMatch(result.stdout + result.stderr, /second signal during shutdown/)
      const downs = result.stdout.split("\n").filter((l) => l.startsWith("down"))
      assert.deepStrictEqual(downs, ["down readiness", "down http", "down background", "down resources"])
      assert.include(result.stdout, "shutdown complete")
    }))

  it.live("onFailure reports a failure its own way and picks the exit code; undefined keeps the default", () =>
    Effect.gen(function*() {
      const reported: Array<string> = []
      const onFailure = (cause: Cause.Cause<unknown>) =>
        Option.match(Cause.failureOption(cause), {
          onNone: () => undefined,
          onSome: (error) => {
            reported.push(String(error))
            return 2
          }
        })
      const exitOf = (program: Effect.Effect<never, string>) =>
        Effect.async<number>((resume) => {
          Shutdown.runMain(program, { onFailure, exit: (code) => resume(Effect.succeed(code)) })
        })
      assert.strictEqual(yield* exitOf(Effect.fail("port 8080 is in use")), 2)
      assert.deepStrictEqual(reported, ["port 8080 is in use"])
      assert.strictEqual(yield* exitOf(Effect.dieMessage("a bug")), 1)
      assert.deepStrictEqual(reported, ["port 8080 is in use"])
    }))
})

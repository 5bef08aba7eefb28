import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import {
  closeAfterwards,
  closeEnsuring,
  closeOnInterrupt,
  closeWithScope,
  makeConnections,
  publish,
  saveCritically,
  saveInterruptibly,
  tempDir
} from "../src/cancellation.js"
import type { Connections } from "../src/cancellation.js"

const programs: Array<readonly [string, (connections: Connections) => Effect.Effect<void>]> = [
  ["close afterwards", closeAfterwards],
  ["Effect.ensuring", closeEnsuring],
  ["Effect.onInterrupt", closeOnInterrupt],
  ["Effect.acquireRelease", closeWithScope]
]

/** The connection log with times relative to `start`. */
const logSince = (connections: Connections, start: number) =>
  Effect.map(connections.log, (lines) => lines.map((line) => line.replace(/\d+$/, (ms) => String(Number(ms) - start))))

/** The directory's entries, sorted. */
const entries = (dir: string) => Effect.promise(() => fs.readdir(dir).then((names) => names.sort()))

/**
 * A pause for the save's `betweenSteps`: signals `written`, then waits for `proceed`.
 */
const pauseBetween = Effect.gen(function*() {
  const written = yield* Deferred.make<void>()
  const proceed = yield* Deferred.make<void>()
  return {
    written,
    proceed,
    betweenSteps: Effect.zipRight(Deferred.succeed(written, undefined), Deferred.await(proceed))
  }
})

describe("cancellation", () => {
  it.effect("left to complete, every version closes its connection when the operation ends", () =>
    Effect.gen(function*() {
      for (const [label, program] of programs) {
        const connections = yield* makeConnections
        const start = yield* Clock.currentTimeMillis
        const fiber = yield* Effect.fork(program(connections))
        yield* TestClock.adjust("1 hour")
        yield* Fiber.join(fiber)
        assert.deepStrictEqual(yield* logSince(connections, start), ["opened 1 at 0", "closed 1 at 3600000"], label)
      }
    }))

  it.effect("interrupted at 1 s: the close written afterwards never runs; ensuring, onInterrupt and scope run it", () =>
    Effect.gen(function*() {
      const results: Record<string, ReadonlyArray<string>> = {}
      for (const [label, program] of programs) {
        const connections = yield* makeConnections
        const start = yield* Clock.currentTimeMillis
        const fiber = yield* Effect.fork(program(connections))
        yield* TestClock.adjust("1 second")
        assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(fiber)))
        assert.strictEqual(yield* connections.open, label === "close afterwards" ? 1 : 0, label)
        results[label] = yield* logSince(connections, start)
      }
      assert.deepStrictEqual(results, {
        "close afterwards": ["opened 1 at 0"],
        "Effect.ensuring": ["opened 1 at 0", "closed 1 at 1000"],
        "Effect.onInterrupt": ["opened 1 at 0", "closed 1 at 1000"],
        "Effect.acquireRelease": ["opened 1 at 0", "closed 1 at 1000"]
      })
    }))

  it.scoped("interrupted between write and rename, an unprotected save leaves the temporary file and no file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "report.json")
      const { betweenSteps, written } = yield* pauseBetween
      const announced: Array<string> = []
      const fiber = yield* Effect.fork(publish(saveInterruptibly(file, "new", betweenSteps), announced, "report"))
      yield* Deferred.await(written)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(fiber)))
      assert.deepStrictEqual(yield* entries(dir), ["report.json.tmp"])
      assert.deepStrictEqual(announced, [])
    }))

  it.scoped("an uninterruptible save completes first; the interruption takes effect right after it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "report.json")
      const { betweenSteps, proceed, written } = yield* pauseBetween
      const announced: Array<string> = []
      const fiber = yield* Effect.fork(publish(saveCritically(file, "new", betweenSteps), announced, "report"))
      yield* Deferred.await(written)
      // Fiber.interrupt waits for the fiber to end: it cannot while the critical section is paused.
      const interrupter = yield* Effect.fork(Fiber.interrupt(fiber))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
      assert.isNull(interrupter.unsafePoll(), "the interruption did not wait for the critical section")
      assert.deepStrictEqual(yield* entries(dir), ["report.json.tmp"])
      yield* Deferred.succeed(proceed, undefined)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.join(interrupter)))
      assert.deepStrictEqual(yield* entries(dir), ["report.json"])
      assert.strictEqual(yield* Effect.promise(() => fs.readFile(file, "utf8")), "new")
      assert.deepStrictEqual(announced, [], "the step after the critical section ran")
    }))

  it.scoped("not interrupted, both saves replace the file and the job announces it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const announced: Array<string> = []
      yield* publish(saveInterruptibly(path.join(dir, "a.json"), "a"), announced, "a")
      yield* publish(saveCritically(path.join(dir, "b.json"), "b"), announced, "b")
      assert.deepStrictEqual(yield* entries(dir), ["a.json", "b.json"])
      assert.deepStrictEqual(announced, ["a", "b"])
    }))
})

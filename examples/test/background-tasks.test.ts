import { assert, describe, it } from "@effect/vitest"
import { TaskSupervisor } from "@spindle/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { fireAndForget, makeJournal, startService, syncer, SyncFailed } from "../src/background-tasks.js"
import type { Journal } from "../src/background-tasks.js"

const mails = ["mail-1", "mail-2", "mail-3", "mail-4", "mail-5"]

// The journal lines written by one task (their text starts with its name).
const linesOf = (journal: Journal, task: string) =>
  Effect.map(journal.lines, (lines) => lines.filter((line) => line.split(" ")[1] === task))

describe("background-tasks", () => {
  it.scoped("tasks run in the background; a crashing one restarts with backoff; status says where each is", () =>
    Effect.gen(function*() {
      const journal = yield* makeJournal
      const supervisor = yield* startService(journal, { mails, grace: "1 second" })
      yield* TestClock.adjust("1 second")
      // Restarted after 100 ms, then 200 ms.
      assert.deepStrictEqual(yield* linesOf(journal, "syncer"), [
        "0 syncer run 1 crashed",
        "100 syncer run 2 crashed",
        "300 syncer run 3 synced",
        "800 syncer run 3 synced"
      ])
      assert.deepStrictEqual(yield* linesOf(journal, "heartbeat"), ["0 heartbeat", "1000 heartbeat"])
      assert.deepStrictEqual(yield* linesOf(journal, "mailer"), [
        "300 mailer sent mail-1",
        "600 mailer sent mail-2",
        "900 mailer sent mail-3"
      ])
      const tasks = yield* supervisor.tasks
      assert.deepStrictEqual(tasks.map((t) => [t.name, t.status, t.restarts]), [
        ["heartbeat", "running", 0],
        ["syncer", "running", 2],
        ["mailer", "running", 0],
        ["legacy-poller", "running", 0]
      ])
      const lastError = Option.getOrThrow(tasks[1].lastError)
      assert.deepStrictEqual(Array.from(Cause.failures(lastError)), [new SyncFailed({ run: 2 })])

      // Shut down here: closing the test's scope would wait out the grace period on a test clock nobody moves.
      const shutdown = yield* Effect.fork(supervisor.shutdown())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(shutdown)
    }))

  it.scoped("shutdown(grace) lets draining tasks finish, interrupts the one that ignores drain, and reports both", () =>
    Effect.gen(function*() {
      const journal = yield* makeJournal
      const supervisor = yield* startService(journal, { mails, grace: "10 seconds" })
      yield* TestClock.adjust("1 second")
      const shutdown = yield* Effect.fork(supervisor.shutdown("1500 millis"))
      // The mailer finishes the mail it is sending (900 → 1200 ms) and takes no more; the legacy poller knows
      // nothing of drain and is interrupted when the grace period ends, at 2.5 s.
      yield* TestClock.adjust("1499 millis")
      assert.isNull(shutdown.unsafePoll())
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(shutdown)
      assert.deepStrictEqual([...report.finished].sort(), ["heartbeat", "mailer", "syncer"])
      assert.deepStrictEqual(report.interrupted, ["legacy-poller"])
      assert.deepStrictEqual((yield* linesOf(journal, "mailer")).slice(-2), [
        "1200 mailer sent mail-4",
        "1200 mailer stopped"
      ])
      assert.deepStrictEqual(yield* linesOf(journal, "legacy-poller"), [
        "0 legacy-poller polled",
        "2000 legacy-poller polled",
        "2500 legacy-poller interrupted"
      ])
      assert.deepStrictEqual((yield* supervisor.tasks).map((t) => t.status), [
        "completed",
        "completed",
        "completed",
        "stopped"
      ])
      // Nothing runs after the shutdown, and no new task can start.
      const before = yield* journal.lines
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(yield* journal.lines, before)
      const refused = yield* Effect.flip(supervisor.start(syncer(journal, 0)))
      assert.strictEqual(refused._tag, "SupervisorShuttingDown")
    }))

  it.scoped("a task that keeps crashing is given up on (failed) instead of restarting forever", () =>
    Effect.gen(function*() {
      const journal = yield* makeJournal
      const supervisor = yield* TaskSupervisor.make()
      yield* supervisor.start(syncer(journal, 1000))
      yield* TestClock.adjust("1 hour")
      // Runs at 0, then restarts after 100, 200, 400, 800 and 1600 ms: 5 restarts within a minute is the limit.
      assert.deepStrictEqual((yield* journal.lines).map((line) => Number(line.split(" ")[0])), [
        0,
        100,
        300,
        700,
        1500,
        3100
      ])
      const info = Option.getOrThrow(yield* supervisor.status("syncer"))
      assert.strictEqual(info.status, "failed")
      assert.strictEqual(info.restarts, 5)
    }))

  it.effect("closing the scope shuts everything down: nothing started in it outlives it", () =>
    Effect.gen(function*() {
      const journal = yield* makeJournal
      const service = yield* Effect.fork(Effect.scoped(
        Effect.zipRight(startService(journal, { mails, grace: "500 millis" }), Effect.sleep("1 second"))
      ))
      // The scope closes at 1 s: drain, the mailer finishes at 1.2 s, the poller is interrupted at 1.5 s.
      yield* TestClock.adjust("1499 millis")
      assert.isNull(service.unsafePoll(), "the scope closed without waiting for its tasks")
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(service)
      const lines = yield* journal.lines
      assert.deepStrictEqual(lines.slice(-1), ["1500 legacy-poller interrupted"])
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(yield* journal.lines, lines, "a task kept running after its scope closed")
    }))

  it.effect("by contrast, a fire-and-forget daemon fiber outlives the scope that started it", () =>
    Effect.gen(function*() {
      const journal = yield* makeJournal
      const daemon = yield* Effect.scoped(fireAndForget(journal))
      yield* TestClock.adjust("3 seconds")
      assert.deepStrictEqual(yield* journal.lines, [
        "0 untracked beat",
        "1000 untracked beat",
        "2000 untracked beat",
        "3000 untracked beat"
      ])
      yield* Fiber.interrupt(daemon)
    }))
})

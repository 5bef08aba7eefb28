import { assert, describe, it } from "@effect/vitest"
import { TaskSupervisor } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"

const recordStart = (starts: Ref.Ref<Array<number>>) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(starts, (s) => [...s, now]))

describe("TaskSupervisor", () => {
  it.scoped("restarts a failing task with exponential backoff until the restart intensity is exceeded", () =>
    Effect.gen(function*() {
      const supervisor = yield* TaskSupervisor.make()
      const starts = yield* Ref.make<Array<number>>([])
      yield* supervisor.start({
        name: "flaky",
        run: () => Effect.zipRight(recordStart(starts), Effect.fail("crashed")),
        restart: TaskSupervisor.onFailure(Schedule.exponential("100 millis")),
        maxRestarts: 3,
        window: "1 minute"
      })
      yield* TestClock.adjust("150 millis")
      const mid = Option.getOrThrow(yield* supervisor.status("flaky"))
      assert.strictEqual(mid.status, "restarting")
      assert.strictEqual(mid.restarts, 1)
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Ref.get(starts), [0, 100, 300, 700])
      const info = Option.getOrThrow(yield* supervisor.status("flaky"))
      assert.strictEqual(info.status, "failed")
      assert.strictEqual(info.restarts, 3)
      assert.isTrue(Option.isSome(info.lastError))
      const restarts = yield* Metric.value(
        Metric.taggedWithLabels(TaskSupervisor.metrics.restarts, [MetricLabel.make("task", "flaky")])
      )
      assert.strictEqual(restarts.count, 3)
    }))

  it.scoped("onFailure completes a task that ends cleanly; always restarts it; never leaves it failed", () =>
    Effect.gen(function*() {
      const supervisor = yield* TaskSupervisor.make()
      const runs = yield* Ref.make<Array<number>>([])
      yield* supervisor.start({
        name: "once",
        run: () => Effect.void,
        restart: TaskSupervisor.onFailure(Schedule.spaced("1 second"))
      })
      yield* supervisor.start({
        name: "poller",
        run: () => recordStart(runs),
        restart: TaskSupervisor.always(Schedule.spaced("1 second")),
        maxRestarts: 100
      })
      yield* supervisor.start({ name: "fragile", run: () => Effect.die("bug") })
      yield* TestClock.adjust("3500 millis")
      assert.deepStrictEqual(yield* Ref.get(runs), [0, 1000, 2000, 3000])
      const statuses = (yield* supervisor.tasks).map((t) => [t.name, t.status])
      assert.deepStrictEqual(statuses, [["once", "completed"], ["poller", "restarting"], ["fragile", "failed"]])
    }))

  it.effect("shutdown signals drain, waits for the grace period, interrupts the rest and reports both", () =>
    Effect.scoped(Effect.gen(function*() {
      const supervisor = yield* TaskSupervisor.make()
      const log = yield* Ref.make<Array<string>>([])
      yield* supervisor.start({
        name: "worker",
        // Takes jobs until drain, then finishes its current job (50 ms) and stops.
        run: (drain) =>
          Effect.zipRight(
            drain.await,
            Effect.sleep("50 millis").pipe(Effect.zipRight(Ref.update(log, (l) => [...l, "worker finished"])))
          )
      })
      yield* supervisor.start({
        name: "stubborn",
        run: () => Effect.never.pipe(Effect.onInterrupt(() => Ref.update(log, (l) => [...l, "stubborn interrupted"])))
      })
      const shutdown = yield* Effect.fork(supervisor.shutdown("1 second"))
      yield* TestClock.adjust("999 millis")
      assert.isNull(shutdown.unsafePoll())
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(shutdown)
      assert.deepStrictEqual(report, { finished: ["worker"], interrupted: ["stubborn"] })
      assert.deepStrictEqual(yield* Ref.get(log), ["worker finished", "stubborn interrupted"])
      assert.deepStrictEqual((yield* supervisor.tasks).map((t) => t.status), ["completed", "stopped"])
      // Shutting down again returns the same report; new tasks are refused.
      assert.deepStrictEqual(yield* supervisor.shutdown(), report)
      const refused = yield* Effect.flip(supervisor.start({ name: "late", run: () => Effect.void }))
      assert.strictEqual(refused._tag, "SupervisorShuttingDown")
    })))

  it.effect("closing the scope shuts the supervisor down: nothing it started outlives it", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(false)
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const supervisor = yield* TaskSupervisor.make({ grace: "100 millis" })
        yield* supervisor.start({
          name: "background",
          run: () => Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))
        })
      })))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)
      assert.isTrue(yield* Ref.get(interrupted))
    }))

  it.scoped("refuses a second task with a running name; stop interrupts one task", () =>
    Effect.gen(function*() {
      const supervisor = yield* TaskSupervisor.make()
      yield* supervisor.start({ name: "job", run: () => Effect.never })
      const duplicate = yield* Effect.flip(supervisor.start({ name: "job", run: () => Effect.void }))
      assert.strictEqual(duplicate._tag, "TaskAlreadyRunning")
      yield* supervisor.stop("job")
      assert.strictEqual(Option.getOrThrow(yield* supervisor.status("job")).status, "stopped")
      yield* supervisor.start({ name: "job", run: () => Effect.void })
      yield* Effect.yieldNow()
      assert.strictEqual(Option.getOrThrow(yield* supervisor.status("job")).status, "completed")
    }))
})

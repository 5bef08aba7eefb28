import { assert, describe, it } from "@effect/vitest"
import { TimeSlicedScheduler } from "@spindle/node"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scheduler from "effect/Scheduler"

// The scheduler's own clock, moved by hand: each task says how long it "took".
const manualClock = () => {
  let now = 0
  return { now: () => now, advance: (millis: number) => (now += millis) }
}

// Synchronous work of `millis`, like a parse or a hash of a large body.
const busy = (millis: number) => {
  const end = performance.now() + millis
  while (performance.now() < end) {
    // spin
  }
}

const microtasks = () => new Promise<void>((resolve) => queueMicrotask(resolve))
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe("TimeSlicedScheduler", () => {
  it("runs tasks in microtasks until the turn has spent its slice, the rest after setImmediate", async () => {
    const clock = manualClock()
    const scheduler = TimeSlicedScheduler.make({ slice: "4 millis", now: clock.now })
    const ran: Array<number> = []
    for (let i = 0; i < 10; i++) {
      scheduler.scheduleTask(() => {
        ran.push(i)
        clock.advance(1)
      }, 0)
    }
    assert.deepStrictEqual(ran, [], "nothing runs synchronously")
    await microtasks()
    // 4 ms of a 4 ms slice: the fifth task waits for the next turn.
    assert.deepStrictEqual(ran, [0, 1, 2, 3])
    // A task scheduled now, its turn spent, goes behind the others, not into a microtask of its own.
    scheduler.scheduleTask(() => ran.push(10), 0)
    await microtasks()
    await microtasks()
    assert.deepStrictEqual(ran, [0, 1, 2, 3])
    await nextTurn()
    assert.deepStrictEqual(ran, [0, 1, 2, 3, 4, 5, 6, 7])
    await nextTurn()
    assert.deepStrictEqual(ran, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  })

  it("gives a new turn a fresh slice, and a task that takes no time never waits", async () => {
    const clock = manualClock()
    const scheduler = TimeSlicedScheduler.make({ slice: "4 millis", now: clock.now })
    const ran: Array<string> = []
    scheduler.scheduleTask(() => {
      ran.push("long")
      clock.advance(10)
    }, 0)
    await microtasks()
    assert.deepStrictEqual(ran, ["long"], "a task is never cut, however long")
    scheduler.scheduleTask(() => ran.push("after"), 0)
    await microtasks()
    assert.deepStrictEqual(ran, ["long"], "the turn has spent its slice")
    await nextTurn()
    assert.deepStrictEqual(ran, ["long", "after"])
    await nextTurn()
    // The turn is over: a task scheduled from a callback of the next one runs in a microtask again.
    for (let i = 0; i < 1000; i++) scheduler.scheduleTask(() => ran.push("quick"), 0)
    await microtasks()
    assert.strictEqual(ran.length, 1002)
  })

  it("runs lower priorities first and keeps the order within one", async () => {
    const scheduler = TimeSlicedScheduler.make()
    const ran: Array<string> = []
    scheduler.scheduleTask(() => ran.push("b0"), 1)
    scheduler.scheduleTask(() => ran.push("a0"), 0)
    scheduler.scheduleTask(() => ran.push("b1"), 1)
    scheduler.scheduleTask(() => ran.push("c0"), -1)
    scheduler.scheduleTask(() => ran.push("a1"), 0)
    await microtasks()
    assert.deepStrictEqual(ran, ["c0", "a0", "a1", "b0", "b1"])
  })

  it("keeps draining after a task throws", async () => {
    const scheduler = TimeSlicedScheduler.make()
    const ran: Array<number> = []
    const errors: Array<unknown> = []
    const onError = (error: unknown) => errors.push(error)
    process.on("uncaughtException", onError)
    try {
      scheduler.scheduleTask(() => {
        throw new Error("boom")
      }, 0)
      scheduler.scheduleTask(() => ran.push(1), 0)
      await nextTurn()
      await nextTurn()
    } finally {
      process.off("uncaughtException", onError)
    }
    assert.deepStrictEqual(ran, [1])
  })

  it("refuses a slice that is not positive", () => {
    assert.throws(() => TimeSlicedScheduler.make({ slice: 0 }), /slice must be > 0/)
  })

  it.effect("runs an Effect program and its forked fibers, interruption included", () =>
    Effect.gen(function*() {
      const results = yield* Effect.forEach(
        Array.from({ length: 500 }, (_, i) => i),
        (i) => Effect.yieldNow().pipe(Effect.as(i * 2)),
        { concurrency: 50 }
      )
      assert.strictEqual(results.length, 500)
      assert.strictEqual(results[499], 998)
      const child = yield* Effect.fork(Effect.withFiberRuntime((fiber) => Effect.succeed(fiber.currentScheduler)))
      assert.notStrictEqual(yield* Fiber.join(child), Scheduler.defaultScheduler)
      const fiber = yield* Effect.fork(Effect.never)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
    }).pipe(Effect.provide(TimeSlicedScheduler.layer())))

  it.effect("is the scheduler of fibers forked from a layer it is provided to", () =>
    Effect.gen(function*() {
      const sliced = TimeSlicedScheduler.make()
      let seen: Scheduler.Scheduler | undefined
      const Probe = Layer.scopedDiscard(
        Effect.forkScoped(Effect.withFiberRuntime<void>((fiber) => {
          seen = fiber.currentScheduler
          return Effect.void
        }))
      )
      yield* Layer.build(Probe.pipe(Layer.provide(Layer.setScheduler(sliced))))
      yield* Effect.yieldNow()
      yield* Effect.sleep(0)
      assert.strictEqual(seen, sliced)
    }).pipe(Effect.scoped))

  // Live: 100 fibers with 150 steps of 1 ms of synchronous work between them hold the loop for 150 ms a round under
  // Effect's default scheduler (every resumed fiber runs in the turn's microtasks). With a 4 ms slice the loop turns
  // every slice or so: a plain timer chain sees gaps of a few ms. The bound is 60 ms, room for a loaded machine that
  // deschedules the process, still well below the default scheduler's gaps, which the same test measures first.
  it.live("keeps the loop turning while fibers keep it busy (live)", () =>
    Effect.gen(function*() {
      const work = Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        () =>
          Effect.forEach([1, 2, 3], () => Effect.sync(() => busy(0.5)).pipe(Effect.zipRight(Effect.yieldNow())), {
            discard: true
          }),
        { concurrency: "unbounded", discard: true }
      )
      const largestGap = (scheduler: Scheduler.Scheduler) =>
        Effect.promise(async () => {
          let last = performance.now()
          let largest = 0
          let ticking = true
          const tick = () => {
            const now = performance.now()
            largest = Math.max(largest, now - last)
            last = now
            if (ticking) setTimeout(tick, 1)
          }
          setTimeout(tick, 1)
          await Effect.runPromise(work.pipe(Effect.withScheduler(scheduler)))
          ticking = false
          await new Promise((resolve) => setTimeout(resolve, 5))
          return largest
        })
      const defaultGap = yield* largestGap(Scheduler.defaultScheduler)
      const slicedGap = yield* largestGap(TimeSlicedScheduler.make({ slice: "4 millis" }))
      assert.isAbove(defaultGap, 100, `default scheduler: ${defaultGap} ms`)
      assert.isBelow(slicedGap, 60, `time-sliced scheduler: ${slicedGap} ms`)
    }))
})

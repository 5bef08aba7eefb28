import { assert, describe, it } from "@effect/vitest"
import { Blocking, EventLoopMonitor } from "@spindle/node"
import { Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { busy } from "./fixtures/blocking.mjs"

const fixture = new URL("./fixtures/blocking.mjs", import.meta.url)

describe("Blocking", () => {
  it.live("a blocking call on a worker leaves the loop responsive; the same call inline blocks it", () =>
    Effect.scoped(Effect.gen(function*() {
      const monitor = yield* EventLoopMonitor.make({ sampleInterval: "1 hour", resolution: "5 millis" })
      yield* monitor.sample
      const result = yield* Blocking.call<{ ms: number }>(fixture, "busy", 1000)
      assert.strictEqual(result.ms, 1000)
      yield* Effect.sleep("20 millis")
      const offloaded = yield* monitor.sample
      yield* Effect.sync(() => busy(1000))
      // The histogram records a delay when its timer finally fires, after the block: let it.
      yield* Effect.sleep("20 millis")
      const inline = yield* monitor.sample
      // Inline, the loop could not run a single timer for 1 s; offloaded, it barely noticed (half a second is left
      // for a loaded machine's own stalls).
      assert.isAtLeast(inline.lastMaxMs, 900)
      assert.isBelow(offloaded.lastMaxMs, 500)
    })))

  it.live("an error thrown by the call is a typed BlockingCallError; a missing export too", () =>
    Effect.gen(function*() {
      const threw = yield* Effect.flip(Blocking.call(fixture, "reject", "bad input"))
      assert.strictEqual(threw.reason, "Threw")
      assert.include(threw.message, "rejected: bad input")
      const missing = yield* Effect.flip(Blocking.call(fixture, "nope"))
      assert.strictEqual(missing.reason, "Threw")
      const noModule = yield* Effect.flip(Blocking.call(new URL("./fixtures/missing.mjs", import.meta.url), "x"))
      assert.strictEqual(noModule.reason, "WorkerFailed")
    }))

  it.live("interrupting the caller terminates the worker and the call with it", () =>
    Effect.gen(function*() {
      const shared = new SharedArrayBuffer(4)
      const counter = new Int32Array(shared)
      const call = yield* Effect.fork(Blocking.call(fixture, "spinCounting", shared))
      yield* Wait.until("the call running on its thread", Effect.sync(() => Atomics.load(counter, 0) > 0))
      const exit = yield* Fiber.interrupt(call)
      assert.isTrue(Exit.isInterrupted(exit))
      // The thread is terminated (asynchronously: the interruption does not wait for it), so the counter it was
      // incrementing soon stands still; a call left running would move it for as long as the test lasts.
      yield* Wait.until(
        "the counter to stand still",
        Effect.gen(function*() {
          const before = Atomics.load(counter, 0)
          yield* Effect.sleep("100 millis")
          return Atomics.load(counter, 0) === before
        }),
        { timeout: "5 seconds" }
      )
    }))
})

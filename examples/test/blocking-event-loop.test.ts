import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { inline, observe, offloaded, suspended } from "../src/blocking-event-loop.js"

const ms = 400

describe("blocking-event-loop", () => {
  it.live("a synchronous call made inline stalls the whole loop: no other fiber or timer runs until it returns", () =>
    Effect.gen(function*() {
      const report = yield* observe(inline(ms))
      assert.isAtLeast(report.result.ranMs, ms)
      assert.strictEqual(report.ticksDuring, 0, "another fiber ran while the call held the thread")
      // The loop's delay is the call's duration: every timer due meanwhile ran that late.
      assert.isAtLeast(report.loopDelayMs, ms * 0.8)
      assert.isAtLeast(report.longestTickGapMs, ms * 0.9)
    }))

  it.live("the same call through Blocking.call runs on a worker thread: the ticker keeps ticking", () =>
    Effect.gen(function*() {
      const report = yield* observe(offloaded(ms))
      // The function really ran, for as long as inline: on another thread.
      assert.isAtLeast(report.result.ranMs, ms)
      assert.isAtLeast(report.callMs, ms)
      assert.isBelow(report.loopDelayMs, ms / 2, "the loop stalled during the offloaded call")
      assert.isBelow(report.longestTickGapMs, ms / 2)
      assert.isAtLeast(report.ticksDuring, report.expectedTicks / 3, "the ticker could not run meanwhile")
    }))

  it.live("waiting asynchronously (Effect.sleep, the seed's asyncio.sleep) leaves the loop free too", () =>
    Effect.gen(function*() {
      const report = yield* observe(suspended(ms))
      assert.isAtLeast(report.callMs, ms - 1)
      assert.isBelow(report.loopDelayMs, ms / 2)
      assert.isAtLeast(report.ticksDuring, report.expectedTicks / 3)
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { EventLoopMonitor } from "@spindle/node"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import { busy } from "./fixtures/blocking.mjs"

describe("EventLoopMonitor", () => {
  it.live("detects a blocked loop, logs it with its duration, and reports percentiles", () =>
    Effect.gen(function*() {
      const logs: Array<{ message: unknown; blockedMs: unknown }> = []
      const logger = Logger.make(({ annotations, message }) => {
        logs.push({ message, blockedMs: annotations.pipe((m) => (m as any).unsafeMap?.get?.("blockedMs")) })
      })
      const blockedBefore = (yield* Metric.value(EventLoopMonitor.metrics.blocked)).count
      yield* Effect.scoped(Effect.gen(function*() {
        const monitor = yield* EventLoopMonitor.make({
          sampleInterval: "1 hour",
          blockedThreshold: "400 millis",
          resolution: "5 millis"
        })
        // A calm moment is one a loaded machine may also stall by itself: 400 ms are allowed for that, against a
        // block of 600 ms.
        yield* monitor.sample
        yield* Effect.sleep("50 millis")
        const calm = yield* monitor.sample
        assert.isBelow(calm.lastMaxMs, 400)
        yield* Effect.sync(() => busy(600))
        // The histogram records a delay when its timer finally fires, after the block: let it.
        yield* Effect.sleep("20 millis")
        const blocked = yield* monitor.sample
        assert.isAtLeast(blocked.lastMaxMs, 550)
        assert.isAtLeast(blocked.maxMs, 550)
        assert.isAtLeast(blocked.p99Ms, blocked.p50Ms)
        assert.isAbove(blocked.utilization, 0.5)
        assert.deepStrictEqual(yield* monitor.current, blocked)
        assert.deepStrictEqual(monitor.unsafeCurrent(), blocked)
      })).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const warnings = logs.filter((l) => String(l.message).includes("event loop blocked"))
      assert.strictEqual(warnings.length, 1)
      const blockedAfter = (yield* Metric.value(EventLoopMonitor.metrics.blocked)).count
      assert.strictEqual(blockedAfter - blockedBefore, 1)
      const p99 = yield* Metric.value(EventLoopMonitor.metrics.p99)
      assert.isAtLeast(p99.value, 0)
    }))

  it.live("samples on its own every interval and publishes each snapshot", () =>
    Effect.scoped(Effect.gen(function*() {
      const monitor = yield* EventLoopMonitor.make({ sampleInterval: "50 millis", window: "1 second" })
      const snapshots = yield* monitor.changes.pipe(Stream.take(4), Stream.runCollect)
      assert.strictEqual(Chunk.size(snapshots), 4)
      for (const s of snapshots) assert.isAtLeast(s.utilization, 0)
    })))
})

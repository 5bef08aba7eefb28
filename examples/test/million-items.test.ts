import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { sumWithBulkhead, sumWithStream } from "../src/million-items.js"

// 0 + 1 + ... + (n - 1)
const sumBelow = (n: number) => n === 0 ? 0 : (n * (n - 1)) / 2

const items = 1_000_000
const concurrency = 50
const expectedSum = sumBelow(items)

describe("million-items", () => {
  it.effect("Bulkhead.forEach: a million items, all counted, at most `concurrency` in flight or even pulled", () =>
    Effect.gen(function*() {
      const report = yield* sumWithBulkhead({ items, concurrency })
      assert.strictEqual(report.count, items)
      assert.strictEqual(report.sum, expectedSum)
      assert.isAtMost(report.peakInFlight, concurrency)
      // The limit was used (items overlapped), not merely respected by running them one at a time.
      assert.strictEqual(report.peakInFlight, concurrency)
      // Lazy: a worker takes the next item only when it is free, so nothing piles up between source and workers.
      assert.isAtMost(report.peakPending, concurrency)
    }))

  it.effect("Stream: a million items, all counted, at most `concurrency` in flight and one chunk pulled", () =>
    Effect.gen(function*() {
      const report = yield* sumWithStream({ items, concurrency })
      assert.strictEqual(report.count, items)
      assert.strictEqual(report.sum, expectedSum)
      assert.isAtMost(report.peakInFlight, concurrency)
      assert.strictEqual(report.peakInFlight, concurrency)
      // Memory is bounded by one chunk of the source (Stream.range emits 4096 at a time), not by the million.
      assert.isAtMost(report.peakPending, 4096)
    }))

  it.effect("small and uneven inputs come out right too", () =>
    Effect.gen(function*() {
      for (const [n, k] of [[0, 3], [1, 3], [7, 3], [10, 1], [5, 100]] as const) {
        const expected = { count: n, sum: sumBelow(n), peakInFlight: Math.min(n, k) }
        const reports = [
          yield* sumWithBulkhead({ items: n, concurrency: k }),
          yield* sumWithStream({ items: n, concurrency: k })
        ]
        for (const report of reports) {
          assert.deepStrictEqual(
            { count: report.count, sum: report.sum, peakInFlight: report.peakInFlight },
            expected,
            `items ${n}, concurrency ${k}`
          )
        }
      }
    }))
})

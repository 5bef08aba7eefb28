import { assert, describe, it } from "@effect/vitest"
import { CpuPool } from "@spindle/node"
import * as Effect from "effect/Effect"
import { Digest, digestTask, hashAllInline, hashAllOnPool, measured, mixedWorkload, seedsOf } from "../src/cpu-pool.js"
import { hashRounds } from "../src/workers/hash.mjs"

const seeds = seedsOf(8)
const rounds = 40_000

describe("cpu-pool", () => {
  it.scopedLive("the same results inline and on a pool of 2 threads; only the pool leaves the loop responsive", () =>
    Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 2 })
      const inline = yield* measured(hashAllInline(seeds, rounds))
      const pooled = yield* measured(hashAllOnPool(pool, seeds, rounds))
      assert.deepStrictEqual(pooled.result, inline.result)
      assert.strictEqual(inline.result[3], hashRounds("seed-3", rounds))
      // Inline, the loop was stuck for (most of) the whole run; on the pool it kept turning. (Compared with each
      // other rather than with fixed numbers: on a loaded machine both get slower.)
      assert.isAtLeast(inline.loopDelayMs, inline.elapsedMs * 0.5)
      assert.isBelow(pooled.loopDelayMs, inline.loopDelayMs / 2, "the loop stalled while the pool computed")
      assert.deepStrictEqual(yield* pool.stats, { size: 2, busy: 0, queued: 0, replaced: 0 })
    }))

  it.scopedLive("a typed task validates its request before it crosses, and decodes the answer into a Digest", () =>
    Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 1 })
      const digest = yield* digestTask(pool)({ seed: "typed", rounds: 1000 })
      assert.instanceOf(digest, Digest)
      assert.deepStrictEqual({ ...digest }, { seed: "typed", rounds: 1000, hex: hashRounds("typed", 1000) })
      // The worker would throw on these (a CpuTaskError); the schema refuses them first, with a ParseError.
      for (const rounds of [0, 2.5]) {
        const error = yield* Effect.flip(digestTask(pool)({ seed: "typed", rounds }))
        assert.strictEqual(error._tag, "ParseError", `rounds ${rounds} reached the worker`)
      }
    }))

  it.scopedLive("I/O on fibers, a blocking call on a thread and CPU work on the pool, all at once", () =>
    Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 2 })
      // The yardstick: the same CPU work done inline.
      const inline = yield* measured(hashAllInline(seeds, rounds))
      const mixed = yield* measured(mixedWorkload(pool, { requests: 20, seeds, rounds }))
      assert.deepStrictEqual(mixed.result.responses, Array.from({ length: 20 }, (_, i) => `response ${i}`))
      assert.isAbove(mixed.result.compressedBytes, 0)
      assert.deepStrictEqual(mixed.result.digests, seeds.map((seed) => hashRounds(seed, rounds)))
      assert.isBelow(mixed.loopDelayMs, inline.loopDelayMs / 2, "something held the event loop")
    }))
})

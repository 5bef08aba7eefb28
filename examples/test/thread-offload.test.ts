import { assert, describe, it } from "@effect/vitest"
import { Wait } from "@spindle/testkit"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { gunzipSync } from "node:zlib"
import {
  busyWithLimit,
  compress,
  deriveKeyInline,
  deriveKeyOffloaded,
  pingServer,
  sampleData,
  serveDuring
} from "../src/thread-offload.js"

const iterations = 600_000

describe("thread-offload", () => {
  it.scopedLive("pbkdf2Sync inline: the HTTP service cannot answer a single request until it returns", () =>
    Effect.gen(function*() {
      const url = yield* pingServer
      const report = yield* serveDuring(url, deriveKeyInline("hunter2", "salt", iterations))
      assert.match(report.result, /^[0-9a-f]{64}$/)
      assert.strictEqual(report.answeredDuring, 0, "a request was served while the call held the thread")
      assert.isAtLeast(report.longestSilenceMs, report.callMs)
    }))

  it.scopedLive("pbkdf2Sync through Blocking.call: the same key, and the service keeps answering meanwhile", () =>
    Effect.gen(function*() {
      const url = yield* pingServer
      const report = yield* serveDuring(url, deriveKeyOffloaded("hunter2", "salt", iterations))
      assert.strictEqual(report.result, yield* deriveKeyInline("hunter2", "salt", iterations))
      assert.isAtLeast(report.answeredDuring, 3, "the service stopped answering during the offloaded call")
      assert.isBelow(report.longestSilenceMs, report.callMs / 2)
    }))

  it.live("gzipSync on a thread: the bytes cross both ways intact", () =>
    Effect.gen(function*() {
      const data = sampleData(20_000)
      const zipped = yield* compress(data)
      assert.instanceOf(zipped, Uint8Array)
      assert.isBelow(zipped.length, data.length)
      assert.isTrue(gunzipSync(zipped).equals(data))
    }))

  it.live("a timeout interrupts the call: its worker thread is terminated, nothing keeps spinning", () =>
    Effect.gen(function*() {
      const heartbeat = new Int32Array(new SharedArrayBuffer(4))
      // A limit of 2 s: time for a worker thread to start on a loaded machine, so that the call does run.
      const [took, outcome] = yield* Effect.timed(Effect.either(busyWithLimit(60_000, "2 seconds", heartbeat)))
      assert.strictEqual(outcome._tag === "Left" && outcome.left._tag, "TimeoutException")
      // Back after the limit, not after the minute the call wanted.
      assert.isBelow(Duration.toMillis(took), 10_000)
      // The call did run on its thread, and stops: its thread is terminated (asynchronously, so the timeout need not
      // wait for it) and the heartbeat soon stands still, where a call left running would beat for a minute.
      assert.isAbove(Atomics.load(heartbeat, 0), 0)
      yield* Wait.until(
        "the heartbeat to stand still",
        Effect.gen(function*() {
          const before = Atomics.load(heartbeat, 0)
          yield* Effect.sleep("100 millis")
          return Atomics.load(heartbeat, 0) === before
        }),
        { timeout: "5 seconds" }
      )
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { awaitSnapshot, get, monitorOptions, sheddingServer, watch, workloadWithStall } from "../src/loop-monitor.js"

interface Captured {
  readonly level: string
  readonly message: string
  readonly blockedMs: unknown
}

// Runs `effect` with a logger that records every log line instead of printing it.
const capturingLogs = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const logs: Array<Captured> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      logs.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.join(" ") : String(message),
        blockedMs: Option.getOrUndefined(HashMap.get(annotations, "blockedMs"))
      })
    })
    const result = yield* Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger))
    return [result, logs] as const
  })

const servedOk = (url: string) => Effect.map(get(`${url}/hello`), (answer) => answer.status === 200 && answer)

describe("loop-monitor", () => {
  it.live("a slow callback is logged as `event loop blocked` with its duration, and shows in the max", () =>
    Effect.gen(function*() {
      const [snapshot, logs] = yield* capturingLogs(watch(workloadWithStall(250)))
      const warnings = logs.filter((log) => log.message === "event loop blocked")
      assert.isAtLeast(warnings.length, 1, "the stall was not logged")
      assert.strictEqual(warnings[0].level, "WARN")
      const longest = Math.max(...warnings.map((log) => Number(log.blockedMs)))
      assert.isAtLeast(longest, 200)
      assert.isBelow(longest, 2_000)
      // Over the window: most timer callbacks ran on time, the worst one waited out the stall.
      assert.isAtLeast(snapshot.maxMs, 200)
      assert.isBelow(snapshot.p50Ms, 50)
      assert.isAtLeast(snapshot.p99Ms, snapshot.p50Ms)
      assert.isAtMost(snapshot.p99Ms, snapshot.maxMs)
    }))

  it.live("a loop that only waits asynchronously logs nothing", () =>
    Effect.gen(function*() {
      // Waiting a second asynchronously: the same wait done synchronously would show as a 1,000 ms stall. A loaded
      // machine stalls the loop by itself now and then, so the threshold here leaves 500 ms for that.
      const options = { ...monitorOptions, blockedThreshold: "500 millis" } as const
      const [snapshot, logs] = yield* capturingLogs(watch(Effect.sleep("1 second"), options))
      assert.deepStrictEqual(logs.filter((log) => log.message === "event loop blocked"), [])
      assert.isBelow(snapshot.maxMs, 500)
    }))

  it.scopedLive("LoadShedder answers 503 with Retry-After while the loop lags, and serves again once it recovers", () =>
    Effect.gen(function*() {
      const server = yield* sheddingServer
      // A loaded machine can lag past the threshold by itself: "served while healthy" is what eventually holds.
      const healthy = yield* Wait.until("a 200 while the loop is healthy", servedOk(server.url))
      assert.deepStrictEqual(healthy, { status: 200, retryAfter: null, body: "hello" })
      const lagging = yield* Effect.fork(awaitSnapshot(server.monitor, (s) => s.lastMaxMs > 100))
      // This handler holds the loop for 300 ms: it is served (it was admitted before the lag), and causes it.
      assert.strictEqual((yield* get(`${server.url}/report`)).status, 200)
      const seen = yield* Fiber.join(lagging)
      assert.isTrue(Option.isSome(seen), "the monitor never saw the loop lag")
      assert.strictEqual((yield* server.shedder.pressure)._tag, "EventLoopDelay")
      const shed = yield* get(`${server.url}/hello`)
      assert.strictEqual(shed.status, 503)
      assert.strictEqual(shed.retryAfter, "2")
      const error = JSON.parse(shed.body).error
      assert.strictEqual(error.code, "overloaded")
      assert.match(error.message, /^Event loop delay \d+ ms exceeds 100 ms/)
      assert.isTrue(Option.isSome(yield* awaitSnapshot(server.monitor, (s) => s.lastMaxMs <= 100)))
      yield* Wait.until("a 200 once the loop has recovered", servedOk(server.url))
    }))
})

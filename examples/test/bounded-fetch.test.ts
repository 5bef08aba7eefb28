import { assert, describe, it } from "@effect/vitest"
import { Bulkhead } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { fetchAll, fetchText, loopbackServer } from "../src/bounded-fetch.js"
import type { LoopbackServer, ServerStats } from "../src/bounded-fetch.js"

const urlsOf = (server: LoopbackServer, count: number) =>
  Array.from({ length: count }, (_, i) => `${server.baseUrl}/item/${i}`)

const bodiesOf = (count: number) => Array.from({ length: count }, (_, i) => `body of /item/${i}`)

// Polls the server (on the real clock) until `done` holds; fails the test instead of hanging if it never does.
const awaitStats = (server: LoopbackServer, done: (stats: ServerStats) => boolean) =>
  server.stats.pipe(
    Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: done }),
    Effect.zipRight(server.stats),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "server never reached the expected state" as const })
  )

describe("bounded-fetch", () => {
  it.scopedLive("fetches every URL over loopback HTTP with at most K requests at the server", () =>
    Effect.gen(function*() {
      const server = yield* loopbackServer({ delay: "40 millis" })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 4 })
      const bodies = yield* fetchAll(bulkhead, urlsOf(server, 30))
      // Every response arrived, each with its own body, in input order.
      assert.deepStrictEqual(bodies, bodiesOf(30))
      const stats = yield* server.stats
      assert.isAtMost(stats.peak, 4, "the server saw more than K requests at once")
      // ...and the limit was used, not just respected (40 ms per request keeps K of them overlapping).
      assert.strictEqual(stats.peak, 4)
      assert.deepStrictEqual({ served: stats.served, aborted: stats.aborted, inFlight: stats.inFlight }, {
        served: 30,
        aborted: 0,
        inFlight: 0
      })
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))

  it.scopedLive("the server's gauge is real: without a limit it sees every request at once", () =>
    Effect.gen(function*() {
      const server = yield* loopbackServer({ delay: "100 millis" })
      const bodies = yield* Effect.forEach(urlsOf(server, 12), fetchText, { concurrency: "unbounded" })
      assert.deepStrictEqual(bodies, bodiesOf(12))
      assert.isAbove((yield* server.stats).peak, 4)
    }))

  it.scopedLive("batches sharing one bulkhead share its limit", () =>
    Effect.gen(function*() {
      const server = yield* loopbackServer({ delay: "30 millis" })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3 })
      const [a, b] = yield* Effect.all(
        [fetchAll(bulkhead, urlsOf(server, 12)), fetchAll(bulkhead, urlsOf(server, 12))],
        {
          concurrency: "unbounded"
        }
      )
      assert.deepStrictEqual(a, bodiesOf(12))
      assert.deepStrictEqual(b, bodiesOf(12))
      const stats = yield* server.stats
      assert.strictEqual(stats.served, 24)
      assert.isAtMost(stats.peak, 3)
    }))

  it.scopedLive("interrupting the batch aborts the requests in flight and starts no more", () =>
    Effect.gen(function*() {
      const server = yield* loopbackServer({ delay: "1 minute" })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3 })
      const fiber = yield* Effect.fork(fetchAll(bulkhead, urlsOf(server, 10)))
      yield* awaitStats(server, (stats) => stats.inFlight === 3)
      yield* Fiber.interrupt(fiber)
      // The AbortSignal closed each connection: the server sees its 3 clients hang up.
      const stats = yield* awaitStats(server, (stats) => stats.inFlight === 0)
      assert.deepStrictEqual({ peak: stats.peak, served: stats.served, aborted: stats.aborted }, {
        peak: 3,
        served: 0,
        aborted: 3
      })
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))

  it.scopedLive("an error status fails the batch with a typed FetchError and aborts the requests still running", () =>
    Effect.gen(function*() {
      const server = yield* loopbackServer({ delay: "200 millis" })
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 3 })
      const urls = urlsOf(server, 10)
      urls[1] = `${server.baseUrl}/error/1`
      const error = yield* Effect.flip(fetchAll(bulkhead, urls))
      assert.strictEqual(error._tag, "FetchError")
      assert.strictEqual(error.url, `${server.baseUrl}/error/1`)
      assert.include(error.message, "HTTP 500")
      // Fail fast: the 500 came back after 100 ms; the two siblings still running were aborted, and the other
      // seven URLs were never requested.
      const stats = yield* awaitStats(server, (stats) => stats.inFlight === 0)
      assert.deepStrictEqual({ peak: stats.peak, served: stats.served, aborted: stats.aborted }, {
        peak: 3,
        served: 1,
        aborted: 2
      })
      assert.strictEqual(yield* bulkhead.inFlight, 0)
    }))
})

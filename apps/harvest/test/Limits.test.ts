import { assert, describe, it } from "@effect/vitest"
import { Databases, Stall, Traffic, Upstream } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as net from "node:net"
import type * as HarvestConfig from "../src/HarvestConfig.js"
import * as Harness from "./harness.js"

// Every limit of the contract, measured where it matters: at the upstream, from the requests it recorded.

const harvestOn = (database: "sqlite" | "pg") => (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Harness.inProcess(overrides, { database })

// Several upstreams (one host each: host:port differs) and `count` URLs on each, interleaved host by host so that
// every host always has work waiting. With `wave`, their requests wait at one shared gate until that many are there
// at once: a limit is shown to be reached by the gate filling, not by latencies happening to overlap on a busy
// machine (a limit never reached leaves a wave waiting until the gate's timeout, and the assertion fails).
const upstreams = (hosts: number, wave?: number) =>
  Effect.gen(function*() {
    const gate = wave === undefined ? undefined : yield* Upstream.gate(wave)
    return yield* Effect.all(Array.from({ length: hosts }, () => Upstream.make({ gate })))
  })
const interleaved = (servers: ReadonlyArray<Upstream.Upstream>, count: number, query: string) =>
  Array.from({ length: count }, (_, i) => servers.map((server) => server.url(`/item/${i}?${query}&bytes=${50 + i}`)))
    .flat()

const requestsOf = (servers: ReadonlyArray<Upstream.Upstream>) => servers.flatMap((server) => server.requests())

// A loopback port nothing listens on.
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
)

// A TCP proxy on `port` to `target`, closed with the scope (its connections too: `close` alone waits for them).
const proxy = (port: number, target: URL) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }>((resolve) => {
        const sockets = new Set<net.Socket>()
        const server = net.createServer((client) => {
          const upstream = net.connect(Number(target.port || 6379), target.hostname)
          for (const socket of [client, upstream]) {
            sockets.add(socket)
            socket.on("error", () => socket.destroy())
            socket.on("close", () => sockets.delete(socket))
          }
          // Both ways (Node streams; two statements, so the Effect diagnostics do not read it as a pipe chain).
          client.pipe(upstream)
          upstream.pipe(client)
        })
        server.listen(port, "127.0.0.1", () => resolve({ server, sockets }))
      })
    ),
    ({ server, sockets }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.close(() => resolve())
          for (const socket of sockets) socket.destroy()
        })
      )
  )

for (const database of ["sqlite", "pg"] as const) {
  const skip = database === "pg" ? Databases.postgresSkip : undefined
  const suite = skip === undefined ? describe : describe.skip
  const harvest = harvestOn(database)
  suite(`Harvest limits on ${database}${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
    it.scopedLive("per host: never more than perHostConcurrency in flight, and exactly that many when busy", () =>
      Effect.gen(function*() {
        const servers = yield* upstreams(2, 6)
        const { submit, waitFor } = yield* harvest()
        const id = yield* submit({ urls: interleaved(servers, 12, "latency=5"), perHostConcurrency: 3 })
        const done = yield* waitFor(id, "completed")
        assert.deepStrictEqual([done.succeeded, done.failed], [24, 0])
        for (const server of servers) {
          assert.strictEqual(server.requests().length, 12)
          assert.strictEqual(Traffic.maxConcurrency(server.requests()), 3, server.origin)
        }
        // The two hosts ran side by side: each host's bound is its own.
        assert.strictEqual(Traffic.maxConcurrency(requestsOf(servers)), 6)
      }))

    it.scopedLive("per host: in every window of T at most perHostBurst + perHostRps·T starts, and that many", () =>
      Effect.gen(function*() {
        const servers = yield* upstreams(2)
        const { submit, waitFor } = yield* harvest()
        // 2.5 per second (a start every 400 ms), bursts of 3; 16 URLs per host keep each bucket empty for 5.2 s.
        // The interval is long so that its half, the slack below, absorbs how long a request takes from its token to
        // the upstream (a first connection, a database write) even on a loaded machine.
        const rate = { burst: 3, perSecond: 2.5 }
        const interval = 1000 / rate.perSecond
        const id = yield* submit({
          urls: interleaved(servers, 16, "latency=5-15"),
          perHostRps: rate.perSecond,
          perHostBurst: rate.burst
        })
        const [done, stallMillis] = yield* Stall.measure(waitFor(id, "completed"))
        assert.deepStrictEqual([done.succeeded, done.failed], [32, 0])
        for (const server of servers) {
          const records = server.requests()
          assert.strictEqual(records.length, 16)
          // Windows of k + ½ emission intervals: the bound ⌊burst + rps·T⌋ = burst + k is exact, and the half
          // interval either side absorbs the time a request takes from its token to the upstream. A burst one token
          // larger would exceed it in the windows that hold the burst; a missing limiter would exceed it at once.
          // Requests whose tokens fell due while this process was stalled reach the upstream together once it runs
          // again, so each window is widened by the longest stall measured (nothing on a calm machine).
          let reached = 0
          for (let k = 0; k <= 12; k++) {
            const windowMillis = (k + 0.5) * interval
            const allowed = Traffic.rateAllowance(rate, windowMillis)
            assert.strictEqual(allowed, rate.burst + k)
            const seen = Traffic.maxStartsInWindow(records, windowMillis)
            assert.isAtMost(
              seen,
              Traffic.rateAllowance(rate, windowMillis + stallMillis),
              `${server.origin}: starts within ${windowMillis} ms (longest stall ${stallMillis} ms)`
            )
            if (seen >= allowed) reached++
          }
          // The workload kept the bucket empty, so the bound was not merely respected but met (the burst included:
          // the shortest window holds it whole).
          const burst = Traffic.maxStartsInWindow(records, interval / 2)
          assert.isAtLeast(burst, rate.burst, server.origin)
          assert.isAtMost(burst, Traffic.rateAllowance(rate, interval / 2 + stallMillis), server.origin)
          assert.isAtLeast(reached, 7, `${server.origin}: the bound was reached`)
        }
      }))

    it.scopedLive("MAX_CONCURRENCY bounds the whole process across hosts, and is reached", () =>
      Effect.gen(function*() {
        const servers = yield* upstreams(4, 6)
        const { submit, waitFor } = yield* harvest({ maxConcurrency: 6 })
        const id = yield* submit({ urls: interleaved(servers, 9, "latency=5"), perHostConcurrency: 4 })
        const done = yield* waitFor(id, "completed")
        assert.deepStrictEqual([done.succeeded, done.failed], [36, 0])
        // 4 hosts × 4 per host would allow 16.
        assert.strictEqual(Traffic.maxConcurrency(requestsOf(servers)), 6)
        for (const server of servers) assert.isAtMost(Traffic.maxConcurrency(server.requests()), 4)
      }))

    it.scopedLive("a job's concurrency bounds that job only, and is reached", () =>
      Effect.gen(function*() {
        // Waves of five: two of the first job's and three of the second's (8 and 12 URLs: four waves).
        const [a, b] = yield* upstreams(2, 5)
        const { submit, waitFor } = yield* harvest()
        const first = yield* submit({ urls: interleaved([a], 8, "latency=5"), concurrency: 2 })
        const second = yield* submit({ urls: interleaved([b], 12, "latency=5"), concurrency: 3 })
        for (const [id, total] of [[first, 8], [second, 12]] as const) {
          const done = yield* waitFor(id, "completed")
          assert.deepStrictEqual([done.succeeded, done.failed], [total, 0])
        }
        assert.strictEqual(Traffic.maxConcurrency(a.requests()), 2)
        assert.strictEqual(Traffic.maxConcurrency(b.requests()), 3)
        // Both jobs ran at once, each within its own bound.
        assert.strictEqual(Traffic.maxConcurrency([...a.requests(), ...b.requests()]), 5)
      }))

    it.scopedLive.skipIf(Databases.redis.skip !== undefined)(
      "Redis down: no request is sent and nothing fails or counts; once it is back the job completes",
      () =>
        Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          // Harvest's Redis is a loopback port that refuses connections until the test opens it, as a proxy to the
          // real Redis: an outage from the start, then a recovery, with the reconnect Harvest does by itself.
          const port = yield* closedPort
          const { results, submit, waitFor } = yield* harvest({
            redisUrl: Option.some(Redacted.make(`redis://127.0.0.1:${port}`))
          })
          const urls = [upstream.url("/a"), upstream.url("/b"), upstream.url("/c")]
          const id = yield* submit({ urls, perHostRps: 1000, maxAttempts: 2 })
          yield* waitFor(id, "running")
          // Longer than two attempts' backoff: with the store's errors spent as attempts, the items would fail now.
          yield* Effect.sleep("2500 millis")
          assert.strictEqual(upstream.requests().length, 0, "no request is sent without the limiter's decision")
          assert.deepStrictEqual((yield* results(id)).map((item: any) => item.status), [], "nothing settled")
          yield* proxy(port, new URL(Databases.redis.url))
          const done = yield* waitFor(id, "completed")
          assert.deepStrictEqual([done.succeeded, done.failed], [3, 0])
          assert.deepStrictEqual((yield* results(id)).map((item: any) => item.attempts), [1, 1, 1])
          assert.strictEqual(upstream.requests().length, 3)
        })
    )
  })
}

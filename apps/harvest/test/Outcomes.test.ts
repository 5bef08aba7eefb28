import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type * as HarvestConfig from "../src/HarvestConfig.js"
import * as Harness from "./harness.js"

// Every fetch outcome of the contract, end to end: a job submitted over HTTP, fetched from the simulated upstream,
// its results read back over HTTP, and what the upstream saw.
const harvestOn = (database: "sqlite" | "pg") => (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Effect.gen(function*() {
    const { dataDir, results, submit, waitFor } = yield* Harness.inProcess({ shutdownGraceMs: 200, ...overrides }, {
      database
    })
    // Submits a job, waits for it to complete, and returns its results by URL path.
    const run = (body: Record<string, unknown>) =>
      Effect.gen(function*() {
        const id = yield* submit(body)
        yield* waitFor(id, "completed")
        const items = yield* results(id)
        assert.strictEqual(items.length, new Set(body.urls as Array<string>).size, "every URL settled")
        return new Map<string, any>(items.map((r: any) => [new URL(r.url).pathname, r]))
      })
    const stored = () => fs.readdirSync(path.join(dataDir, "files"))
    const temp = () => fs.readdirSync(path.join(dataDir, "tmp"))
    return { run, stored, temp }
  })

const arrivals = (upstream: Upstream.Upstream, pathname: string) =>
  upstream.requests().filter((r) => r.path === pathname).map((r) => r.arrivedAt)

for (const database of ["sqlite", "pg"] as const) {
  const skip = database === "pg" ? Databases.postgresSkip : undefined
  const suite = skip === undefined ? describe : describe.skip
  const harvest = harvestOn(database)
  suite(`Harvest outcomes on ${database}${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
    it.scopedLive(
      "429 and 503 with Retry-After: the wait is honoured as the upstream measures it, and capped",
      () =>
        Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          const { run } = yield* harvest({ retryAfterMaxMs: 400 })
          const results = yield* run({
            urls: [
              upstream.url("/throttled?fail=1&key=t1&status=429&retryAfter=1"),
              upstream.url("/dated?fail=1&key=t2&status=503&retryAfter=date:2"),
              upstream.url("/capped?fail=1&key=t3&status=429&retryAfter=30")
            ],
            maxAttempts: 2
          })
          for (const name of ["/throttled", "/dated", "/capped"]) {
            assert.deepStrictEqual([results.get(name).status, results.get(name).attempts], ["succeeded", 2], name)
          }
          // RETRY_AFTER_MAX_MS is 400 here: "1 second" and "30 seconds" both wait the cap; a date wait does too.
          for (const name of ["/throttled", "/dated", "/capped"]) {
            const [first, second] = arrivals(upstream, name)
            assert.isAtLeast(second - first, 390, `${name} waited ${second - first} ms`)
          }
        })
    )

    it.scopedLive("Retry-After under the cap is waited in full", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { run } = yield* harvest()
        const results = yield* run({ urls: [upstream.url("/slowdown?fail=1&key=s1&status=429&retryAfter=1")] })
        assert.deepStrictEqual([results.get("/slowdown").status, results.get("/slowdown").attempts], ["succeeded", 2])
        const [first, second] = arrivals(upstream, "/slowdown")
        assert.isAtLeast(second - first, 990, `waited ${second - first} ms`)
      }))

    it.scopedLive(
      "timeouts: a hanging answer and a body too slow to finish in time, each attempt closed upstream",
      () =>
        Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          const { run, temp } = yield* harvest()
          const results = yield* run({
            urls: [
              upstream.url("/hang?hang=1"),
              // 20 chunks 25 ms apart: about 500 ms of body, more than the 300 ms an attempt may take.
              upstream.url("/trickle?bytes=2000&drip=100&every=25")
            ],
            timeoutMs: 300,
            maxAttempts: 2
          })
          for (const name of ["/hang", "/trickle"]) {
            const result = results.get(name)
            assert.deepStrictEqual([result.status, result.error.code, result.attempts], ["failed", "timeout", 2], name)
            assert.deepStrictEqual(
              upstream.requests().filter((r) => r.path === name).map((r) => r.outcome),
              ["client_closed", "client_closed"],
              name
            )
          }
          assert.deepStrictEqual(temp(), [], "no partial body kept")
        })
    )

    it.scopedLive("a slow body that finishes within the timeout succeeds", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { run } = yield* harvest()
        const results = yield* run({ urls: [upstream.url("/drip?bytes=2000&drip=200&every=20")], timeoutMs: 5000 })
        const result = results.get("/drip")
        assert.deepStrictEqual(
          [result.status, result.bytes, result.sha256, result.attempts],
          ["succeeded", 2000, Upstream.expectedSha256(2000), 1]
        )
      }))

    it.scopedLive(
      "oversized bodies fail once with body_too_large, declared or chunked, and nothing is kept",
      () =>
        Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          const { run, stored, temp } = yield* harvest({ maxBodyBytes: 1000 })
          const results = yield* run({
            urls: [
              upstream.url("/declared?bytes=5000"),
              upstream.url("/chunked?bytes=5000&chunked=1"),
              upstream.url("/fits?bytes=1000")
            ]
          })
          for (const name of ["/declared", "/chunked"]) {
            const result = results.get(name)
            assert.deepStrictEqual(
              [result.status, result.error.code, result.attempts, result.fileId],
              ["failed", "body_too_large", 1, null],
              name
            )
            assert.strictEqual(arrivals(upstream, name).length, 1, `${name} is not retried`)
          }
          assert.strictEqual(results.get("/fits").status, "succeeded")
          assert.deepStrictEqual(stored(), [results.get("/fits").fileId])
          assert.deepStrictEqual(temp(), [])
        })
    )

    it.scopedLive(
      "a failing host's circuit opens; a healthy host beside it is served in full",
      () =>
        Effect.gen(function*() {
          // Two hosts on one address (a host is host:port). The healthy one's requests wait at a gate until four are
          // there, so "full concurrency" is checked by the gate filling rather than by latencies overlapping in time.
          const failing = yield* Upstream.make()
          const healthy = yield* Upstream.make({ gate: yield* Upstream.gate(4) })
          const { run } = yield* harvest({ maxConcurrency: 8 })
          const bad = Array.from({ length: 60 }, (_, i) => failing.url(`/bad/${i}?status=503&latency=5`))
          const good = Array.from({ length: 32 }, (_, i) => healthy.url(`/good/${i}?latency=5`))
          const urls = bad.flatMap((url, i) => i < good.length ? [url, good[i]] : [url])
          const results = yield* run({ urls, maxAttempts: 1, perHostConcurrency: 4 })
          const codes = new Map<string, number>()
          for (const [name, result] of results) {
            if (name.startsWith("/bad/")) codes.set(result.error.code, (codes.get(result.error.code) ?? 0) + 1)
            else assert.strictEqual(result.status, "succeeded", name)
          }
          // The breaker opens after 20 calls with half of them failed; later items never reach the host.
          assert.isAbove(codes.get("circuit_open") ?? 0, 0, JSON.stringify([...codes]))
          assert.isBelow(failing.requests().length, 60)
          // Attempts count requests made, as the failing host counted them: a refusal by the open circuit made none
          // (it took no slot and no attempt), and every request the host saw is one attempt of one item.
          let attempts = 0
          for (const [name, result] of results) {
            if (!name.startsWith("/bad/")) continue
            attempts += result.attempts
            if (result.error.code === "circuit_open") assert.strictEqual(result.attempts, 0, name)
            else assert.deepStrictEqual([result.error.code, result.attempts], ["http_status", 1], name)
          }
          assert.strictEqual(attempts, failing.requests().length)
          assert.strictEqual(healthy.requests().length, 32, "the healthy host got every item, once")
          assert.strictEqual(healthy.peakInFlight(), 4, "and at its full per-host concurrency")
        })
    )
  })
}

import { assert, describe, it } from "@effect/vitest"
import { Traffic, Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { createHash } from "node:crypto"

const get = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const buffer = Buffer.from(await response.arrayBuffer())
    return { status: response.status, headers: response.headers, buffer }
  })

const attempt = (url: string, init: RequestInit = {}) =>
  Effect.tryPromise(async () => {
    const response = await fetch(url, init)
    return Buffer.from(await response.arrayBuffer())
  })

describe("Upstream", () => {
  it.scoped("serves deterministic bodies whose hash is known, and records requests", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const response = yield* get(upstream.url("/file?bytes=100000"))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.buffer.length, 100_000)
      assert.strictEqual(createHash("sha256").update(response.buffer).digest("hex"), Upstream.expectedSha256(100_000))
      const [record] = upstream.requests()
      assert.strictEqual(record.path, "/file")
      assert.strictEqual(record.outcome, "answered")
      assert.strictEqual(record.host, `127.0.0.1:${upstream.port}`)
    }))

  it.scoped("scripts statuses, first-k failures and Retry-After in seconds or as a date", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      assert.strictEqual((yield* get(upstream.url("/x?status=404"))).status, 404)
      const statuses: Array<number> = []
      for (let i = 0; i < 4; i++) statuses.push((yield* get(upstream.url("/x?fail=2&key=k1&status=500"))).status)
      assert.deepStrictEqual(statuses, [500, 500, 200, 200])
      const throttled = yield* get(upstream.url("/x?status=429&retryAfter=3"))
      assert.strictEqual(throttled.headers.get("retry-after"), "3")
      const dated = yield* get(upstream.url("/x?status=503&retryAfter=date:30"))
      const at = Date.parse(dated.headers.get("retry-after")!)
      assert.isAtLeast(at - Date.now(), 28_000)
    }))

  it.scoped("holds latency, drips slow bodies, and tracks concurrency", () =>
    Effect.gen(function*() {
      // The gate holds the five until all have arrived, however slowly this machine sends them.
      const gated = yield* Upstream.make({ gate: yield* Upstream.gate(5) })
      yield* Effect.all(Array.from({ length: 5 }, () => get(gated.url("/slow?latency=100"))), {
        concurrency: "unbounded"
      })
      assert.strictEqual(gated.peakInFlight(), 5)
      for (const r of gated.requests()) assert.isAtLeast(r.endedAt! - r.arrivedAt, 95)
      const upstream = yield* Upstream.make()
      const dripped = yield* get(upstream.url("/drip?bytes=1000&drip=100&every=20"))
      assert.strictEqual(dripped.buffer.length, 1000)
      const [record] = upstream.requests()
      assert.isAtLeast(record.endedAt! - record.arrivedAt, 9 * 20 - 5, "ten chunks, nine waits")
    }))

  it.scopedLive("resets connections, cuts bodies short, and hangs until the client leaves", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      assert.strictEqual((yield* Effect.either(attempt(upstream.url("/r?reset=1"))))._tag, "Left")
      assert.strictEqual((yield* Effect.either(attempt(upstream.url("/r?bytes=4096&resetAfter=1000"))))._tag, "Left")
      const hung = yield* Effect.either(attempt(upstream.url("/h?hang=1"), { signal: AbortSignal.timeout(100) }))
      assert.strictEqual(hung._tag, "Left")
      yield* Wait.until("every exchange ended", Effect.sync(() => upstream.inFlight() === 0))
      assert.deepStrictEqual(upstream.requests().map((r) => r.outcome), ["reset", "reset", "client_closed"])
      assert.strictEqual(upstream.inFlight(), 0)
    }))

  it.scoped("paginates with Link rel=next until the last page", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      let next: string | null = "/items?pages=3&per=2"
      const pages: Array<unknown> = []
      while (next !== null) {
        const response: { headers: Headers; buffer: Buffer } = yield* get(upstream.url(next))
        pages.push(JSON.parse(response.buffer.toString()))
        next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("link") ?? "")?.[1] ?? null
      }
      assert.deepStrictEqual(pages, [
        { page: 1, items: [0, 1] },
        { page: 2, items: [2, 3] },
        { page: 3, items: [4, 5] }
      ])
    }))

  it.scoped("plays distinct hosts on distinct ports of 127.0.0.1", () =>
    Effect.gen(function*() {
      const a = yield* Upstream.make()
      const b = yield* Upstream.make()
      yield* get(a.url("/"))
      yield* get(b.url("/"))
      assert.notStrictEqual(a.port, b.port)
      assert.strictEqual(a.requests()[0].host, `127.0.0.1:${a.port}`)
      assert.strictEqual(b.requests()[0].host, `127.0.0.1:${b.port}`)
    }))

  it.scopedLive("a gate shared by two upstreams lets requests through in waves of its size", () =>
    Effect.gen(function*() {
      const gate = yield* Upstream.gate(3)
      const a = yield* Upstream.make({ gate })
      const b = yield* Upstream.make({ gate })
      const first = yield* Effect.fork(Effect.all([get(a.url("/1")), get(b.url("/2"))], { concurrency: 2 }))
      // Two wait at the gate (however long that takes here); none is answered until a third arrives.
      yield* Wait.until("two requests at the gate", Effect.sync(() => gate.waiting() === 2))
      assert.strictEqual(a.requests()[0].outcome, undefined)
      assert.strictEqual(b.requests()[0].outcome, undefined)
      yield* get(a.url("/3"))
      yield* Fiber.join(first)
      assert.deepStrictEqual([gate.filled(), gate.timedOut(), gate.waiting()], [1, 0, 0])
      assert.strictEqual(Traffic.maxConcurrency([...a.requests(), ...b.requests()]), 3)
    }))

  it.scopedLive("a wave that does not fill is let through after the gate's timeout", () =>
    Effect.gen(function*() {
      const gate = yield* Upstream.gate(5, { timeoutMillis: 50 })
      const upstream = yield* Upstream.make({ gate })
      const started = performance.now()
      const replies = yield* Effect.all([get(upstream.url("/1")), get(upstream.url("/2"))], { concurrency: 2 })
      assert.deepStrictEqual(replies.map((reply) => reply.status), [200, 200])
      assert.deepStrictEqual([gate.filled(), gate.timedOut()], [0, 1])
      assert.isAtLeast(performance.now() - started, 50)
    }))

  it.scopedLive("a request whose client leaves while it waits at a gate is withdrawn from the wave", () =>
    Effect.gen(function*() {
      const gate = yield* Upstream.gate(2)
      const upstream = yield* Upstream.make({ gate })
      const controller = new AbortController()
      const left = yield* Effect.fork(Effect.either(attempt(upstream.url("/gone"), { signal: controller.signal })))
      yield* Wait.until("the request at the gate", Effect.sync(() => gate.waiting() === 1))
      controller.abort()
      yield* Fiber.join(left)
      yield* Wait.until("the request ended", Effect.sync(() => upstream.inFlight() === 0))
      assert.strictEqual(gate.waiting(), 0)
      // The next two make a full wave of their own.
      yield* Effect.all([get(upstream.url("/a")), get(upstream.url("/b"))], { concurrency: 2 })
      assert.deepStrictEqual([gate.filled(), gate.timedOut()], [1, 0])
      assert.deepStrictEqual(upstream.requests().map((r) => r.outcome), ["client_closed", "answered", "answered"])
    }))
})

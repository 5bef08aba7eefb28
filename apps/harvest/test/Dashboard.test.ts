import { assert, describe, it } from "@effect/vitest"
import { Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as net from "node:net"
import * as Events from "../src/dashboard/Events.js"
import type * as HarvestConfig from "../src/HarvestConfig.js"
import * as Harness from "./harness.js"

// Harvest on a free port, SQLite and files in a temp dir.
const harvest = (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Effect.gen(function*() {
    const { base, context } = yield* Harness.inProcess(overrides)
    const port = Number(new URL(base).port)
    const events = yield* Events.Events.pipe(Effect.provide(context))
    const post = (urls: ReadonlyArray<string>, headers: Record<string, string> = {}) =>
      Effect.promise(async () => {
        const response = await fetch(`${base}/jobs`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ urls })
        })
        return (await response.json()) as { id: string; total: number }
      })
    const jobStatus = (id: string) =>
      Effect.promise(async () => ((await (await fetch(`${base}/jobs/${id}`)).json()) as { status: string }).status)
    return { base, port, events, post, jobStatus, context }
  })

// Reads an SSE response with fetch, as the page does, yielding each `data:` payload as JSON.
const sse = (url: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const controller = new AbortController()
      const response = await fetch(url, { headers, signal: controller.signal })
      return { response, controller }
    }),
    ({ controller }) => Effect.sync(() => controller.abort())
  ).pipe(Effect.map(({ response }) => {
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let buffer = ""
    const next = Effect.promise(async (): Promise<Events.Snapshot> => {
      for (;;) {
        const end = buffer.indexOf("\n\n")
        if (end >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6))
          if (data.length > 0) return JSON.parse(data.join("\n"))
          continue
        }
        const chunk = await reader.read()
        if (chunk.done) throw new Error("event stream ended")
        buffer += decoder.decode(chunk.value, { stream: true })
      }
    })
    return { response, next }
  }))

// A client that sends the request and then never reads a byte of the answer.
const stalledClient = (port: number, path: string) =>
  Effect.acquireRelease(
    Effect.async<net.Socket>((resume) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.pause()
        socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
        resume(Effect.succeed(socket))
      })
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

describe("Dashboard", () => {
  it.scopedLive("serves the page, and the event stream carries a job's progress to completion", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const { base, post } = yield* harvest()
      const page = yield* Effect.promise(() => fetch(`${base}/`))
      assert.strictEqual(page.status, 200)
      assert.include(page.headers.get("content-type") ?? "", "text/html")
      const html = yield* Effect.promise(() => page.text())
      assert.include(html, "/dashboard/events")

      const { next, response } = yield* sse(`${base}/dashboard/events`)
      assert.strictEqual(response.status, 200)
      assert.include(response.headers.get("content-type") ?? "", "text/event-stream")
      const first = yield* next
      assert.strictEqual(first.maxConcurrency, 16)

      const urls = Array.from({ length: 6 }, (_, i) => upstream.url(`/p${i}?latency=1200&bytes=100`))
      urls.push(upstream.url("/broken?status=404"))
      const job = yield* post(urls)
      const seen: Array<Events.JobProgress> = []
      let previousSeq = first.seq
      let hosts: ReadonlyArray<{ host: string; attempts: number; recentErrors: ReadonlyArray<{ code: string }> }> = []
      for (let i = 0; i < 30; i++) {
        const snapshot = yield* next
        assert.isAbove(snapshot.seq, previousSeq)
        previousSeq = snapshot.seq
        const mine = snapshot.jobs.find((j) => j.id === job.id)
        if (mine === undefined) continue
        seen.push(mine)
        hosts = snapshot.hosts
        if (mine.status === "completed") break
      }
      const final = seen[seen.length - 1]
      assert.deepStrictEqual([final.status, final.succeeded, final.failed, final.pending], ["completed", 6, 1, 0])
      // Progress was visible on the way: the job was seen fetching, with items in flight, before it completed.
      assert.isTrue(seen.some((j) => j.status === "running" && j.running > 0 && j.pending > 0), JSON.stringify(seen))
      const host = hosts.find((h) => h.host === new URL(upstream.origin).host)
      assert.isDefined(host)
      assert.strictEqual(host!.attempts, 7)
      assert.deepStrictEqual(host!.recentErrors.map((e) => e.code), ["http_status"])
    }))

  it.scopedLive("in flight means on the wire: attempts waiting for a host's limit are shown as queued", () =>
    Effect.gen(function*() {
      // Five requests to one host that never answer; the job allows two at a time to that host.
      const upstream = yield* Upstream.make()
      const { base, events } = yield* harvest({ maxConcurrency: 16 })
      const response = yield* Effect.promise(() =>
        fetch(`${base}/jobs`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            urls: Array.from({ length: 5 }, (_, i) => upstream.url(`/w${i}?hang=1`)),
            perHostConcurrency: 2
          })
        })
      )
      assert.strictEqual(response.status, 202)
      const host = new URL(upstream.origin).host
      const seen = yield* Wait.until(
        "a snapshot with two on the wire and three waiting",
        Effect.map(events.latest, (snapshot) => {
          const state = snapshot.hosts.find((h) => h.host === host)
          return snapshot.inFlight === 2 && state?.inFlight === 2 && state.queued === 3 ? snapshot : undefined
        })
      )
      assert.strictEqual(upstream.inFlight(), 2, "the upstream agrees: two requests, not five")
      assert.strictEqual(seen.jobs[0].running, 5, "all five are leased (held by the job), two of them fetching")
    }))

  it.scopedLive("a stalled or vanished reader slows nothing and leaves no subscription behind", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const { base, events, jobStatus, port, post } = yield* harvest()
      // Three clients that never read, and one that reads a single event and goes away.
      const stalled = yield* Effect.forEach([1, 2, 3], () => stalledClient(port, "/dashboard/events"))
      const gone = yield* Effect.promise(async () => {
        const controller = new AbortController()
        const response = await fetch(`${base}/dashboard/events`, { signal: controller.signal })
        await response.body!.getReader().read()
        return controller
      })
      yield* Wait.until("four subscriptions", Effect.map(events.subscribers, (n) => n === 4))
      gone.abort()
      yield* Wait.until("the aborted reader's subscription ended", Effect.map(events.subscribers, (n) => n === 3))

      const job = yield* post(Array.from({ length: 40 }, (_, i) => upstream.url(`/s${i}?latency=20-80`)))
      yield* Wait.until("the job completed", Effect.map(jobStatus(job.id), (s) => s === "completed"))
      // Two samples begun after the job completed (one may have been under way already) show it completed.
      const before = (yield* events.latest).seq
      yield* Wait.until("the sampler kept publishing", Effect.map(events.latest, (s) => s.seq >= before + 2))
      const latest = yield* events.latest
      assert.strictEqual(latest.jobs.find((j) => j.id === job.id)?.succeeded, 40)
      assert.strictEqual(yield* events.subscribers, 3)

      // The browsers vanish: their connections close, their streams end, their subscriptions are released.
      for (const socket of stalled) socket.destroy()
      yield* Wait.until("no subscription left", Effect.map(events.subscribers, (n) => n === 0))
    }))

  it.scopedLive("a reader that falls behind skips to the latest snapshot instead of queueing old ones", () =>
    Effect.gen(function*() {
      const { context } = yield* harvest()
      // A second sampler, fast, over the same service, to see the buffering without waiting on the default interval.
      const events = yield* Events.make({ interval: "5 millis" }).pipe(Effect.provide(context))
      const seen: Array<number> = []
      const gate = yield* Effect.makeLatch(false)
      const reader = yield* Effect.fork(
        Stream.runForEach(events.changes, (snapshot) =>
          Effect.zipRight(
            Effect.sync(() => seen.push(snapshot.seq)),
            gate.await
          ))
      )
      yield* Wait.until("the first snapshot", Effect.sync(() => seen.length === 1))
      // The reader is stuck on its first snapshot; meanwhile the sampler publishes many more, never waiting for it.
      yield* Wait.until("the sampler moved on", Effect.map(events.latest, (s) => s.seq >= seen[0] + 20))
      yield* gate.open
      yield* Wait.until("the reader resumed", Effect.sync(() => seen.length >= 2))
      // What it reads next is recent, not the snapshot after its first: nothing queued up behind the slow reader.
      assert.isAtLeast(seen[1], seen[0] + 15)
      assert.strictEqual(yield* events.subscribers, 1)
      yield* Fiber.interrupt(reader)
      assert.strictEqual(yield* events.subscribers, 0)
    }))

  it.scopedLive("with API_TOKEN the data routes need the bearer token; the page itself does not", () =>
    Effect.gen(function*() {
      const { base } = yield* harvest({ apiToken: Option.some(Redacted.make("s3cret")) })
      const status = (path: string, headers: Record<string, string> = {}) =>
        Effect.promise(async () => {
          const response = await fetch(`${base}${path}`, { headers })
          const text = await response.text()
          return { status: response.status, text }
        })
      assert.strictEqual((yield* status("/")).status, 200)
      for (const path of ["/dashboard/events", "/dashboard/state"]) {
        const missing = yield* status(path)
        assert.strictEqual(missing.status, 401, path)
        assert.strictEqual(JSON.parse(missing.text).error.code, "unauthorized")
        assert.strictEqual((yield* status(path, { authorization: "Bearer wrong" })).status, 401, path)
      }
      const state = yield* status("/dashboard/state", { authorization: "Bearer s3cret" })
      assert.strictEqual(state.status, 200)
      assert.isAbove(JSON.parse(state.text).seq, 0)
      const { next, response } = yield* sse(`${base}/dashboard/events`, { authorization: "Bearer s3cret" })
      assert.strictEqual(response.status, 200)
      assert.isAbove((yield* next).seq, 0)
    }))
})

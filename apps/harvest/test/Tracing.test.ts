import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { spawn } from "node:child_process"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Telemetry from "../src/Telemetry.js"
import * as TraceRing from "../src/TraceRing.js"
import * as Harness from "./harness.js"

// An OTLP/HTTP (JSON) receiver on loopback: what a collector would be sent, body by body.
const receiver = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly bodies: Array<any>; readonly close: () => void }>((resume) => {
    const bodies: Array<any> = []
    const server = createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        if (req.method === "POST" && req.url === "/v1/traces") {
          bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        } else {
          res.writeHead(404).end()
        }
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, bodies, close: () => server.close() }))
    })
  }),
  (receiver) => Effect.sync(receiver.close)
)

interface Span {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: number
  readonly start: bigint
  readonly end: bigint
  readonly attributes: Record<string, unknown>
  readonly links: ReadonlyArray<{ readonly traceId: string }>
  readonly resource: Record<string, unknown>
}

const valueOf = (value: any): unknown =>
  value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : undefined) ?? value.doubleValue ??
    value.boolValue

const attributesOf = (list: ReadonlyArray<any> | undefined) =>
  Object.fromEntries((list ?? []).map((a: any) => [a.key, valueOf(a.value)]))

const spansOf = (bodies: ReadonlyArray<any>): Array<Span> =>
  bodies.flatMap((body) =>
    body.resourceSpans.flatMap((rs: any) =>
      rs.scopeSpans.flatMap((ss: any) =>
        ss.spans.map((s: any): Span => ({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId === "" ? undefined : s.parentSpanId,
          name: s.name,
          kind: s.kind,
          start: BigInt(s.startTimeUnixNano),
          end: BigInt(s.endTimeUnixNano),
          attributes: attributesOf(s.attributes),
          links: s.links ?? [],
          resource: attributesOf(rs.resource?.attributes)
        }))
      )
    )
  )

describe("Tracing", () => {
  const settings = (env: Record<string, string>) =>
    Effect.withConfigProvider(Telemetry.tracingConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("reads the OpenTelemetry environment: no endpoint or a disabled SDK means no traces", () =>
    Effect.gen(function*() {
      const url = (env: Record<string, string>) => Effect.map(settings(env), (config) => config.url)
      assert.deepStrictEqual(yield* url({}), Option.none())
      assert.deepStrictEqual(
        yield* url({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }),
        Option.some("http://collector:4318/v1/traces")
      )
      assert.deepStrictEqual(
        yield* url({
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:9999/otlp"
        }),
        Option.some("http://traces:9999/otlp")
      )
      assert.deepStrictEqual(
        yield* url({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }),
        Option.none()
      )
      const sampled = yield* settings({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25" })
      assert.deepStrictEqual([sampled.sampler, sampled.ratio], ["traceidratio", 0.25])
      assert.strictEqual((yield* settings({})).sampler, "parentbased_always_on")
      // A sampler the specification does not name, or a ratio past 1, is refused rather than ignored.
      assert.isTrue(Either.isLeft(yield* Effect.either(settings({ OTEL_TRACES_SAMPLER: "sometimes" }))))
      assert.isTrue(Either.isLeft(yield* Effect.either(settings({ OTEL_TRACES_SAMPLER_ARG: "1.5" }))))
      // The dashboard's ring: off unless told (tracing every item costs CPU), a size turns it on, anything else is
      // refused.
      assert.strictEqual((yield* settings({})).ring, 0)
      assert.strictEqual((yield* settings({ HARVEST_TRACE_RING: "1000" })).ring, 1000)
      for (const bad of ["-1", "many", "1.5", "100001"]) {
        assert.isTrue(Either.isLeft(yield* Effect.either(settings({ HARVEST_TRACE_RING: bad }))), bad)
      }
    }))

  it.scopedLive("a value Harvest cannot use stops it at start: one line naming the variable, exit 2", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-otel-")
      const result = yield* Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
        const child = spawn(process.execPath, [Harness.built("main")], {
          env: { ...process.env, PORT: "0", DATA_DIR: dataDir, OTEL_TRACES_SAMPLER: "sometimes" },
          stdio: ["ignore", "pipe", "pipe"]
        })
        let output = ""
        child.stdout.on("data", (chunk: Buffer) => output += chunk)
        child.stderr.on("data", (chunk: Buffer) => output += chunk)
        child.on("exit", (code) => resume(Effect.succeed({ code, output })))
        return Effect.sync(() => child.kill("SIGKILL"))
      })
      assert.strictEqual(result.code, 2, result.output)
      assert.match(result.output, /invalid environment: OTEL_TRACES_SAMPLER: /)
      assert.notInclude(result.output, "    at ", "no stack trace")
    }))

  it.scoped("by default (no endpoint, no ring) there is no tracer: the pipeline sees no tracing", () =>
    Effect.gen(function*() {
      for (const env of [[], [["HARVEST_TRACE_RING", "0"]]] as const) {
        const context = yield* Layer.build(Telemetry.layerTracing).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env)))
        )
        assert.isUndefined(Context.get(context, Telemetry.TracingRef))
        assert.strictEqual(Context.get(context, TraceRing.TraceRingRef).capacity, 0)
      }
    }))

  it.scoped("with no endpoint but the ring on, a tracer records items' traces (and only those) into the ring", () =>
    Effect.gen(function*() {
      const tracing = yield* Telemetry.TracingRef
      const ring = yield* TraceRing.TraceRingRef
      assert.isDefined(tracing)
      assert.strictEqual(ring.capacity, 3)
      const job = crypto.randomUUID()
      const traced = (i: number) =>
        Effect.gen(function*() {
          const item = Telemetry.openItem(tracing!, { id: i, url: `http://x/${i}`, job, attempts: 0 })
          yield* Effect.withSpan(Effect.void, "inside").pipe(Effect.withParentSpan(item))
          Telemetry.endItem(tracing!, item)
        })
      // Another trace (an HTTP request's, say) is not recorded at all.
      yield* Effect.withSpan(Effect.void, "http.server GET")
      for (let i = 0; i < 5; i++) yield* traced(i)
      // Three kept, the oldest gone; each whole: the item, its wait for a worker, the span inside it.
      assert.strictEqual(ring.size(), 3)
      assert.isUndefined(ring.get(job, "http://x/1"))
      const kept = ring.get(job, "http://x/4")!
      assert.deepStrictEqual(kept.spans.map((s) => s.name).sort(), ["harvest.item", "harvest.queued", "inside"])
      assert.strictEqual(kept.itemId, 4)
      const root = kept.spans.find((s) => s.name === "harvest.item")!
      assert.isNull(root.parentSpanId)
      assert.isTrue(kept.spans.every((s) => s === root || s.parentSpanId === root.spanId))

      // A trace keeps at most maxSpansPerTrace spans, its item's own among them; the rest are counted.
      const big = Telemetry.openItem(tracing!, { id: 99, url: "http://x/big", job, attempts: 0 })
      for (let i = 0; i < 300; i++) yield* Effect.withSpan(Effect.void, `step ${i}`).pipe(Effect.withParentSpan(big))
      Telemetry.endItem(tracing!, big)
      const capped = ring.get(job, "http://x/big")!
      assert.strictEqual(capped.spans.length, TraceRing.maxSpansPerTrace)
      assert.strictEqual(capped.droppedSpans, 302 - TraceRing.maxSpansPerTrace)
      assert.strictEqual(capped.spans.at(-1)!.name, "harvest.item")
      assert.strictEqual(ring.size(), 3)
    }).pipe(
      Effect.provide(Telemetry.layerTracing),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["HARVEST_TRACE_RING", "3"]])))
    ))

  it.effect("log lines carry the running span's trace and span ids, and only then", () => {
    const lines: Array<Record<string, unknown>> = []
    const capture = Logger.make(({ annotations, message }) => {
      lines.push({ message, ...Object.fromEntries(HashMap.toEntries(annotations)) })
    })
    return Effect.gen(function*() {
      const span = yield* Effect.withSpan(
        Effect.zipRight(Effect.logInfo("inside"), Effect.orDie(Effect.currentSpan)),
        "outer"
      )
      yield* Effect.logInfo("outside")
      assert.deepStrictEqual(lines, [
        { message: ["inside"], trace_id: span.traceId, span_id: span.spanId },
        { message: ["outside"] }
      ])
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Telemetry.withTraceIds(capture))))
  })

  it.scopedLive("polled routes make no traces: /health, /metrics and the dashboard's; the API's routes do", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver
      const upstream = yield* Upstream.make()
      const provider = ConfigProvider.fromMap(new Map([["OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url]])).pipe(
        ConfigProvider.orElse(() => ConfigProvider.fromEnv())
      )
      const id = yield* Effect.scoped(Effect.gen(function*() {
        const harvest = yield* Harness.inProcess()
        for (let round = 0; round < 3; round++) {
          for (const route of ["/health", "/metrics", "/", "/dashboard/state", "/metrics?x=1"]) {
            assert.strictEqual((yield* harvest.call("GET", route)).status, 200, route)
          }
        }
        const id = yield* harvest.submit({ urls: [upstream.url("/one")] })
        yield* harvest.waitFor(id, "completed")
        return id
      })).pipe(Effect.withConfigProvider(provider))

      const until = Date.now() + 10_000
      const posted = () =>
        spansOf(otlp.bodies).find((s) =>
          s.kind === 2 && s.attributes["url.path"] === "/jobs" &&
          s.attributes["http.request.method"] === "POST"
        )
      while (posted() === undefined && Date.now() < until) yield* Effect.sleep("20 millis")
      const servers = spansOf(otlp.bodies).filter((s) => s.kind === 2)
      assert.isDefined(posted(), `no POST /jobs server span among ${servers.map((s) => s.name).join(", ")}`)
      const polled = servers.filter((s) =>
        ["/health", "/metrics", "/"].includes(String(s.attributes["url.path"])) ||
        String(s.attributes["url.path"]).startsWith("/dashboard/")
      )
      assert.deepStrictEqual(polled.map((s) => s.attributes["url.path"]), [])
      // The job's own polling (GET /jobs/:id) is the API's, traced.
      assert.isTrue(servers.some((s) => s.attributes["url.path"] === `/jobs/${id}`))
    }))

  it.scopedLive("a URL retried once is one trace: item, host gate, two attempts, body written, settled", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver
      const upstream = yield* Upstream.make()
      const url = upstream.url(`/flaky?fail=1&key=${crypto.randomUUID()}&status=500&bytes=300`)
      const provider = ConfigProvider.fromMap(
        new Map([
          ["OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url],
          ["OTEL_SERVICE_NAME", "harvest-traced"],
          // The ring is off unless set; the dashboard's view of the trace is compared with the export's.
          ["HARVEST_TRACE_RING", "1000"]
        ])
      ).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))

      // Harvest runs, and is shut down (its spans flushed), within this scope; the dashboard's view of the trace is
      // read meanwhile.
      const { id: job, view } = yield* Effect.scoped(Effect.gen(function*() {
        const harvest = yield* Harness.inProcess()
        const id = yield* harvest.submit({ urls: [url], maxAttempts: 3 })
        yield* harvest.waitFor(id, "completed")
        const [result] = yield* harvest.results(id)
        assert.deepStrictEqual([result.status, result.attempts], ["succeeded", 2])
        // The item's span ends right after its commit, a moment after the job reads as completed.
        const route = `/jobs/${id}/trace?url=${encodeURIComponent(url)}`
        const reply = yield* Wait.until(
          "the item's trace in the ring",
          Effect.map(harvest.call("GET", route), (r) => r.status === 404 ? undefined : r),
          { timeout: "10 seconds", interval: "20 millis" }
        )
        assert.strictEqual(reply.status, 200, reply.text)
        // Not kept: a URL that is no item of the job, and a request with no URL.
        const missing = yield* harvest.call("GET", `/jobs/${id}/trace?url=${encodeURIComponent(url + "&other")}`)
        assert.deepStrictEqual([missing.status, missing.json.error.code], [404, "trace_not_found"])
        const bad = yield* harvest.call("GET", `/jobs/${id}/trace`)
        assert.deepStrictEqual([bad.status, bad.json.error.code], [400, "invalid_field"])
        const latency = yield* harvest.call("GET", `/jobs/${id}/latency`)
        assert.strictEqual(latency.status, 200, latency.text)
        assert.strictEqual(latency.json.count, 1)
        assert.strictEqual(latency.json.p50Ms, result.durationMs)
        assert.deepStrictEqual(latency.json.slowest.map((s: any) => [s.url, s.attempts]), [[url, 2]])
        return { id, view: reply.json }
      })).pipe(Effect.withConfigProvider(provider))

      // The batch processor exports on shutdown; a body may still be on its way.
      const until = Date.now() + 10_000
      const settled = () => spansOf(otlp.bodies).some((s) => s.name === "harvest.settle")
      while (!settled() && Date.now() < until) yield* Effect.sleep("20 millis")
      const all = spansOf(otlp.bodies)
      const item = all.find((s) => s.name === "harvest.item" && s.attributes["url.full"] === url)
      assert.isDefined(item, `no harvest.item span among ${all.map((s) => s.name).join(", ")}`)
      const trace = all.filter((s) => s.traceId === item!.traceId)
      const byId = new Map(trace.map((s) => [s.spanId, s]))
      const names = (list: ReadonlyArray<Span>) => list.map((s) => s.name)

      // The item is the trace's root, reported as this service, linked to its job.
      assert.isUndefined(item!.parentSpanId)
      assert.strictEqual(item!.resource["service.name"], "harvest-traced")
      assert.strictEqual(item!.attributes["harvest.job.id"], job)
      assert.deepStrictEqual(item!.links.map((l) => l.traceId), [job.replace(/-/g, "")])

      // Every span of the trace hangs from the item, and lies within its parent's time.
      const ancestors = (span: Span): Array<Span> => {
        const chain: Array<Span> = []
        let current = span
        while (current.parentSpanId !== undefined) {
          const parent = byId.get(current.parentSpanId)
          assert.isDefined(parent, `${current.name}'s parent is in the trace`)
          chain.push(parent!)
          current = parent!
        }
        return chain
      }
      for (const span of trace) {
        if (span === item) continue
        assert.strictEqual(ancestors(span).at(-1), item, `${span.name} descends from the item`)
        const parent = byId.get(span.parentSpanId!)!
        assert.isTrue(span.start >= parent.start && span.end <= parent.end, `${span.name} within ${parent.name}`)
        assert.isTrue(span.start <= span.end, `${span.name} ends after it starts`)
      }

      // In order: a gate wait, the 500; a gate wait, the 200 with its body written; then the commit.
      const ordered = [...trace].filter((s) => s !== item && s.name !== "harvest.body.write").sort((a, b) =>
        a.start < b.start ? -1 : a.start > b.start ? 1 : 0
      )
      const ours = ordered.filter((s) => ["harvest.host_gate", "GET", "harvest.settle"].includes(s.name))
      assert.deepStrictEqual(names(ours), ["harvest.host_gate", "GET", "harvest.host_gate", "GET", "harvest.settle"])
      const [gate1, first, gate2, second, settle] = ours
      assert.isTrue(gate1.end <= first.start && first.end <= gate2.start && gate2.end <= second.start)
      assert.isTrue(second.end <= settle.start, "the result is committed after the body is stored")
      assert.strictEqual(settle.parentSpanId, item!.spanId)
      assert.strictEqual(gate1.attributes["server.address"], `${upstream.host}:${upstream.port}`)

      // The attempts: HTTP client spans with the semantic conventions' attributes.
      const { port } = new URL(url)
      for (const attempt of [first, second]) {
        assert.strictEqual(attempt.kind, 3, "SPAN_KIND_CLIENT")
        assert.strictEqual(attempt.attributes["http.request.method"], "GET")
        assert.strictEqual(attempt.attributes["url.full"], url)
        assert.strictEqual(attempt.attributes["server.address"], "127.0.0.1")
        assert.strictEqual(attempt.attributes["server.port"], Number(port))
      }
      assert.strictEqual(first.attributes["http.response.status_code"], 500)
      assert.strictEqual(first.attributes["error.type"], "http_status")
      assert.strictEqual(second.attributes["http.response.status_code"], 200)
      assert.strictEqual(second.attributes["http.response.body.size"], 300)
      assert.notProperty(second.attributes, "error.type")
      const writes = trace.filter((s) => s.name === "harvest.body.write")
      assert.strictEqual(writes.length, 1)
      assert.strictEqual(writes[0].parentSpanId, second.spanId)
      // The item's span covers its whole life, the commit included; it starts with the item's lease, its wait for a
      // worker the first span in it.
      assert.isTrue(item!.end >= settle.end)
      const [queued] = trace.filter((s) => s.name === "harvest.queued")
      assert.strictEqual(queued?.parentSpanId, item!.spanId)
      assert.isTrue(queued.start === item!.start && queued.end <= gate1.start)

      // `GET /jobs/:id/trace` shows the very spans OTLP got, timed from the item's start, parents first.
      assert.strictEqual(view.traceId, item!.traceId)
      assert.deepStrictEqual([view.jobId, view.url, view.droppedSpans], [job, url, 0])
      assert.deepStrictEqual(
        view.spans.map((s: any) => s.spanId).sort(),
        trace.map((s) => s.spanId).sort(),
        "the same spans"
      )
      const ms = (nanos: bigint) => Number(nanos) / 1e6
      for (const exported of trace) {
        const shown = view.spans.find((s: any) => s.spanId === exported.spanId)
        assert.strictEqual(shown.name, exported.name)
        assert.strictEqual(shown.parentSpanId, exported.parentSpanId ?? null)
        assert.approximately(shown.startMs, ms(exported.start - item!.start), 0.01, exported.name)
        assert.approximately(shown.durationMs, ms(exported.end - exported.start), 0.01, exported.name)
      }
      assert.strictEqual(view.spans[0].name, "harvest.item")
      assert.approximately(view.durationMs, ms(item!.end - item!.start), 0.01)
      const attempts = view.spans.filter((s: any) => s.name === "GET")
      assert.deepStrictEqual(attempts.map((s: any) => s.attributes["http.response.status_code"]), [500, 200])
      assert.deepStrictEqual(attempts.map((s: any) => s.status), ["error", "ok"])
      assert.include(attempts[0].statusMessage, "HTTP 500")
      // Spindle's own operations may add events of their own (a bulkhead's admission, say): the lease is the first.
      assert.deepStrictEqual([view.spans[0].events[0].name, view.spans[0].events[0].atMs], ["leased", 0])
    }))
})

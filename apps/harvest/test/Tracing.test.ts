import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream } from "@spindle/testkit"
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

  it.scoped("with no endpoint there is no tracer: the pipeline sees no tracing", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(Telemetry.layerTracing)
      assert.isUndefined(Context.get(context, Telemetry.TracingRef))
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))

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

  it.scopedLive("a URL retried once is one trace: item, host gate, two attempts, body written, settled", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver
      const upstream = yield* Upstream.make()
      const url = upstream.url(`/flaky?fail=1&key=${crypto.randomUUID()}&status=500&bytes=300`)
      const provider = ConfigProvider.fromMap(
        new Map([["OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url], ["OTEL_SERVICE_NAME", "harvest-traced"]])
      ).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))

      // Harvest runs, and is shut down (its spans flushed), within this scope.
      const job = yield* Effect.scoped(Effect.gen(function*() {
        const harvest = yield* Harness.inProcess()
        const id = yield* harvest.submit({ urls: [url], maxAttempts: 3 })
        yield* harvest.waitFor(id, "completed")
        const [result] = yield* harvest.results(id)
        assert.deepStrictEqual([result.status, result.attempts], ["succeeded", 2])
        return id
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
      // The item's span covers its whole life, the commit included.
      assert.isTrue(item!.end >= settle.end)
    }))
})

/**
 * Harvest's HTTP layer: the handlers of `Api.HarvestApi`, the OpenAPI document at `/openapi.json`, the docs page at
 * `/docs`, the dashboard's routes beside them, and the contract's JSON body for every error, unknown routes included.
 *
 * @since 0.1.0
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { EventLoopMonitor } from "@spindle/node"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash, timingSafeEqual } from "node:crypto"
import * as Dashboard from "../dashboard/Dashboard.js"
import * as Domain from "../Domain.js"
import { HarvestConfig } from "../HarvestConfig.js"
import * as LocalFaults from "../LocalFaults.js"
import { HostGate } from "../pipeline/HostGate.js"
import { Scheduler } from "../pipeline/Scheduler.js"
import * as Startup from "../Startup.js"
import * as BodyStore from "../storage/BodyStore.js"
import { Jobs } from "../storage/Jobs.js"
import * as Telemetry from "../Telemetry.js"
import * as TraceRing from "../TraceRing.js"
import * as Api from "./Api.js"

/**
 * The largest request body the server reads (10 MiB); a larger one is refused with `413 body_too_large`. It bounds
 * `POST /jobs` (so `MAX_URLS_PER_JOB` of long URLs may not fit) and any other body read through the platform.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxRequestBytes = 10 * 1024 * 1024

const errorResponse = (status: number, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

/**
 * The `503` of a local fault: `{ error: { code: <reason>, message } }` with `Retry-After`, for `POST /jobs` while the
 * instance is degraded and for any route whose data the fault keeps it from reading or writing.
 *
 * @since 0.1.0
 * @category responses
 */
export const unavailable = (fault: LocalFaults.LocalFault, retryAfterSeconds: number, doing: string) =>
  HttpServerResponse.unsafeJson(
    { error: { code: fault.reason, message: `cannot ${doing} now: ${Startup.describe(fault.cause)}; retry later` } },
    { status: 503, headers: { "retry-after": String(retryAfterSeconds) } }
  )

const jobIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
// `GET /jobs` cursors: the last job's creation time and id.
const jobsCursorPattern = /^(\d{1,15})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/

const decodeJobRequest = Schema.decodeUnknown(Domain.JobRequest)

// `POST /jobs` is decoded with the limits this server is configured with.
const JobLimitsLive = Layer.effect(Domain.JobLimits, HarvestConfig)

const jobNotFound = new Api.NotFound({ code: "not_found", message: "job not found" })

const requireJob = (id: string) =>
  Effect.flatMap(Jobs, (jobs) => jobIdPattern.test(id) ? Effect.orDie(jobs.find(id)) : Effect.succeed(Option.none()))
    .pipe(
      Effect.flatMap(Option.match({ onNone: () => Effect.fail(jobNotFound), onSome: Effect.succeed }))
    )

// Reads the body up to `limit` bytes. Past the limit it fails at once but keeps the request flowing (the rest is
// discarded as it arrives) rather than destroying it, as the platform's readers do: destroying an unfinished request
// destroys its socket, and the client would see a dropped connection instead of the 413.
const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number) =>
  Effect.async<string, Api.PayloadTooLarge | Api.BadRequest>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const tooLarge = () =>
      Effect.fail(new Api.PayloadTooLarge({ code: "body_too_large", message: `the body exceeds ${limit} bytes` }))
    if (Number(incoming.headers["content-length"]) > limit) {
      incoming.resume()
      return resume(tooLarge())
    }
    const chunks: Array<Buffer> = []
    let bytes = 0
    let settled = false
    const settle = (effect: Effect.Effect<string, Api.PayloadTooLarge | Api.BadRequest>) => {
      if (settled) return
      settled = true
      chunks.length = 0
      resume(effect)
    }
    const onData = (chunk: Buffer) => {
      if (settled) return
      bytes += chunk.length
      if (bytes > limit) settle(tooLarge())
      else chunks.push(chunk)
    }
    const onEnd = () => settle(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    const onError = () =>
      settle(Effect.fail(new Api.BadRequest({ code: "invalid_body", message: "the body could not be read" })))
    incoming.on("data", onData)
    incoming.once("end", onEnd)
    incoming.once("error", onError)
    // Interrupted (the client went away, or the server is draining): the listeners stay, inert, and the rest flows away.
    return Effect.sync(() => {
      settled = true
      chunks.length = 0
      incoming.resume()
    })
  })

// `GET /jobs/:id/latency`'s buckets: upper bounds in milliseconds, then one without a bound.
const latencyBounds = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 60000]

// A job's durations gathered from its results, one pass: counts per bucket, the durations (for the percentiles) and
// the ten slowest items.
const latencyOf = () => {
  const counts = new Array<number>(latencyBounds.length + 1).fill(0)
  const durations: Array<number> = []
  const slowest: Array<Domain.JobLatency["slowest"][number]> = []
  let sum = 0
  const add = (result: Domain.ItemResult) => {
    const duration = result.durationMs
    if (duration === undefined) return
    durations.push(duration)
    sum += duration
    let bucket = latencyBounds.findIndex((bound) => duration <= bound)
    if (bucket === -1) bucket = latencyBounds.length
    counts[bucket]++
    if (slowest.length < 10 || duration > slowest[slowest.length - 1].durationMs) {
      slowest.push({
        url: result.url,
        status: result.status,
        durationMs: duration,
        attempts: result.attempts,
        httpStatus: result.httpStatus,
        errorCode: result.error?.code ?? null
      })
      slowest.sort((a, b) => b.durationMs - a.durationMs)
      if (slowest.length > 10) slowest.pop()
    }
  }
  const view = (jobId: string): Domain.JobLatency => {
    const sorted = Float64Array.from(durations).sort()
    const n = sorted.length
    const rank = (p: number) => n === 0 ? null : sorted[Math.max(0, Math.ceil(p * n) - 1)]
    return {
      jobId,
      count: n,
      minMs: n === 0 ? null : sorted[0],
      maxMs: n === 0 ? null : sorted[n - 1],
      meanMs: n === 0 ? null : Math.round((sum / n) * 1000) / 1000,
      p50Ms: rank(0.5),
      p90Ms: rank(0.9),
      p99Ms: rank(0.99),
      buckets: counts.map((count, i) => ({ leMs: i < latencyBounds.length ? latencyBounds[i] : null, count })),
      slowest
    }
  }
  return { add, view }
}

const round3 = (ms: number) => Math.round(ms * 1000) / 1000

// A recorded trace as `GET /jobs/:id/trace` shows it: spans by start, parents before children, timed from the root.
const traceView = (trace: TraceRing.RecordedTrace): Domain.ItemTrace => {
  const root = trace.spans.find((span) => span.parentSpanId === null) ?? trace.spans[trace.spans.length - 1]
  const byId = new Map(trace.spans.map((span) => [span.spanId, span]))
  const depth = (span: TraceRing.RecordedSpan) => {
    let d = 0
    for (let at = span; at.parentSpanId !== null && d < trace.spans.length; d++) {
      const parent = byId.get(at.parentSpanId)
      if (parent === undefined) break
      at = parent
    }
    return d
  }
  const spans = trace.spans.map((span) => ({ span, depth: depth(span) }))
    .sort((a, b) => a.span.startMs - b.span.startMs || a.depth - b.depth)
  return {
    jobId: trace.jobId,
    url: trace.url,
    itemId: trace.itemId,
    traceId: trace.traceId,
    startedAt: new Date(root.startMs).toISOString(),
    durationMs: round3(root.endMs - root.startMs),
    droppedSpans: trace.droppedSpans,
    spans: spans.map(({ span }) => ({
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      name: span.name,
      kind: span.kind,
      startMs: round3(span.startMs - root.startMs),
      durationMs: round3(span.endMs - span.startMs),
      status: span.status,
      statusMessage: span.statusMessage,
      attributes: span.attributes,
      events: span.events.map((event) => ({ name: event.name, atMs: round3(event.atMs - root.startMs) }))
    }))
  }
}

/**
 * The `jobs` group's handlers.
 *
 * @since 0.1.0
 * @category handlers
 */
export const JobsLive = HttpApiBuilder.group(Api.HarvestApi, "jobs", (handlers) =>
  handlers
    // Raw: the body is read here, so that a body over the limit is answered with a 413 rather than a dropped
    // connection, then decoded by the endpoint's own schema; every refusal carries the contract's body and message.
    .handleRaw("create", ({ request }) =>
      Effect.gen(function*() {
        const scheduler = yield* Scheduler
        if (scheduler.isDraining()) {
          return yield* new Api.ShuttingDown({ code: "shutting_down", message: "the server is shutting down" })
        }
        // Degraded by a local fault: no job is taken (the body is not read) until it clears.
        const faults = yield* LocalFaults.LocalFaults
        const fault = faults.current()
        if (fault !== undefined) return unavailable(fault, faults.retryAfterSeconds(), "take jobs")
        const text = yield* readBody(request, maxRequestBytes)
        const body = yield* Effect.try({
          try: (): unknown => JSON.parse(text),
          catch: () => new Api.BadRequest({ code: "invalid_json", message: "the body is not valid JSON" })
        })
        const job = yield* Effect.mapError(decodeJobRequest(body), (error) => new Api.BadRequest(Domain.refusal(error)))
        const jobs = yield* Jobs
        const created = yield* Effect.either(jobs.create(job.urls, job.options))
        if (created._tag === "Left") {
          const met = created.left._tag === "SqlError"
            ? LocalFaults.fromSqlError("storing a job", created.left)
            : undefined
          if (met === undefined) return yield* Effect.die(created.left)
          yield* faults.report(met)
          return unavailable(met, faults.retryAfterSeconds(), "take jobs")
        }
        return { id: created.right.id, status: "queued" as const, total: created.right.total }
      }))
    .handle("list", ({ urlParams }) =>
      Effect.gen(function*() {
        const statuses = urlParams.status === undefined || urlParams.status === "" ? [] : urlParams.status.split(",")
        const unknown = statuses.find((status) => !Schema.is(Domain.JobStatus)(status))
        if (unknown !== undefined) {
          return yield* new Api.BadRequest({
            code: "invalid_field",
            message: `status: "${unknown}" is not one of queued, running, completed, cancelled`
          })
        }
        const cursor = urlParams.cursor === undefined || urlParams.cursor === ""
          ? undefined
          : jobsCursorPattern.exec(urlParams.cursor)
        if (cursor === null) {
          return yield* new Api.BadRequest({
            code: "invalid_field",
            message: "cursor is not a cursor this API returned"
          })
        }
        const jobs = yield* Jobs
        const page = yield* Effect.orDie(jobs.list({
          statuses: statuses as ReadonlyArray<Domain.JobView["status"]>,
          limit: urlParams.limit ?? 50,
          after: cursor === undefined ? undefined : { createdAt: Number(cursor[1]), id: cursor[2] }
        }))
        return {
          items: page.items,
          nextCursor: Option.match(page.next, { onNone: () => null, onSome: (job) => `${job.createdAt}.${job.id}` })
        }
      }))
    .handle("get", ({ path }) =>
      Effect.gen(function*() {
        const job = yield* requireJob(path.id)
        return yield* Effect.orDie(Effect.flatMap(Jobs, (jobs) => jobs.view(job)))
      }))
    .handle("results", ({ path, urlParams }) =>
      Effect.gen(function*() {
        const job = yield* requireJob(path.id)
        const cursor = urlParams.cursor === undefined || urlParams.cursor === "" ? undefined : Number(urlParams.cursor)
        if (cursor !== undefined && (!Number.isSafeInteger(cursor) || cursor < 0)) {
          return yield* new Api.BadRequest({
            code: "invalid_field",
            message: "cursor is not a cursor this API returned"
          })
        }
        return yield* Effect.orDie(Effect.flatMap(Jobs, (jobs) => jobs.results(job.id, urlParams.limit ?? 100, cursor)))
      }))
    .handle("export", ({ path }) =>
      Effect.gen(function*() {
        const job = yield* requireJob(path.id)
        const jobs = yield* Jobs
        const lines = jobs.exportResults(job.id).pipe(
          Stream.map((result) => `${JSON.stringify(result)}\n`),
          Stream.encodeText
        )
        return HttpServerResponse.stream(lines, { contentType: "application/x-ndjson" })
      }))
    .handle("latency", ({ path }) =>
      Effect.gen(function*() {
        const job = yield* requireJob(path.id)
        const jobs = yield* Jobs
        const latency = yield* Effect.orDie(Stream.runFold(jobs.exportResults(job.id), latencyOf(), (acc, result) => {
          acc.add(result)
          return acc
        }))
        return latency.view(job.id)
      }))
    .handle("trace", ({ path, urlParams }) =>
      Effect.gen(function*() {
        const job = yield* requireJob(path.id)
        const ring = yield* TraceRing.TraceRingRef
        const trace = ring.get(job.id, urlParams.url)
        if (trace === undefined) {
          return yield* new Api.NotFound({
            code: "trace_not_found",
            message: ring.capacity === 0
              ? "no trace: the ring of recent traces is off (HARVEST_TRACE_RING=0)"
              : `no trace of this item on this instance: the ring keeps the last ${ring.capacity} items' traces, ` +
                "and an item in flight has none yet"
          })
        }
        return traceView(trace)
      }))
    .handle("cancel", ({ path }) =>
      Effect.gen(function*() {
        const job = yield* requireJob(path.id)
        const jobs = yield* Jobs
        // One operation: the rows, then this process's fibers of the job.
        const cancelled = yield* Effect.orDie(jobs.cancel(job.id))
        if (Option.isNone(cancelled)) {
          const fresh = yield* requireJob(job.id)
          return yield* new Api.Conflict({
            code: "already_finished",
            message: `job ${job.id} has already ${fresh.cancelled ? "been cancelled" : "completed"}; nothing changed`
          })
        }
        const fresh = yield* requireJob(job.id)
        return yield* Effect.orDie(jobs.view(fresh))
      })))

/**
 * The `files` group's handlers.
 *
 * @since 0.1.0
 * @category handlers
 */
export const FilesLive = HttpApiBuilder.group(
  Api.HarvestApi,
  "files",
  (handlers) =>
    handlers.handle("get", ({ path: { fileId } }) =>
      Effect.gen(function*() {
        const store = yield* BodyStore.BodyStore
        const file = yield* Effect.orDie(store.open(fileId))
        if (Option.isNone(file)) return yield* new Api.NotFound({ code: "not_found", message: "file not found" })
        return HttpServerResponse.stream(file.value.stream, {
          contentType: "application/octet-stream",
          contentLength: file.value.bytes
        })
      }))
)

/**
 * The `system` group's handlers.
 *
 * @since 0.1.0
 * @category handlers
 */
export const SystemLive = HttpApiBuilder.group(Api.HarvestApi, "system", (handlers) =>
  handlers
    .handle("health", () =>
      Effect.gen(function*() {
        const monitor = yield* EventLoopMonitor.EventLoopMonitor
        const scheduler = yield* Scheduler
        const gate = yield* HostGate
        const faults = yield* LocalFaults.LocalFaults
        const loop = monitor.unsafeCurrent()
        const draining = scheduler.isDraining()
        const degraded = faults.degraded()
        const body: typeof Domain.Health.Type = {
          status: draining ? "draining" : degraded !== undefined ? "degraded" : "ok",
          ...(degraded === undefined ? {} : {
            reason: degraded.reason,
            message: degraded.message,
            since: new Date(degraded.since).toISOString()
          }),
          eventLoop: { p50Ms: loop.p50Ms, p99Ms: loop.p99Ms, maxMs: loop.maxMs },
          inFlight: gate.onWire()
        }
        if (degraded !== undefined) {
          return HttpServerResponse.unsafeJson(body, {
            status: 503,
            headers: { "retry-after": String(faults.retryAfterSeconds()) }
          })
        }
        return draining ? HttpServerResponse.unsafeJson(body, { status: 503 }) : body
      }))
    .handle("metrics", () => Effect.flatMap(Telemetry.Prometheus, (prometheus) => prometheus.scrape)))

const sameSecret = (a: string, b: string) =>
  timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest())

/**
 * The bearer-token check: with `API_TOKEN` unset everything passes; otherwise the request must carry exactly
 * `Authorization: Bearer <API_TOKEN>`.
 *
 * @since 0.1.0
 * @category security
 */
export const AuthorizationLive: Layer.Layer<Api.Authorization, never, HarvestConfig> = Layer.effect(
  Api.Authorization,
  Effect.map(HarvestConfig, (config) =>
    Api.Authorization.of({
      bearer: (token) =>
        Effect.gen(function*() {
          if (Option.isNone(config.apiToken)) return
          const request = yield* HttpServerRequest.HttpServerRequest
          const scheme = (request.headers.authorization ?? "").slice(0, "Bearer ".length)
          if (
            scheme.toLowerCase() !== "bearer " ||
            !sameSecret(Redacted.value(token), Redacted.value(config.apiToken.value))
          ) {
            return yield* new Api.Unauthorized({ code: "unauthorized", message: "missing or wrong bearer token" })
          }
        })
    }))
)

const describeDecodeError = (error: HttpApiError.HttpApiDecodeError) => {
  const issue = error.issues[0]
  if (issue === undefined) return error.message
  return issue.path.length === 0 ? issue.message : `${issue.path.join(".")}: ${issue.message}`
}

// Path and query parameters are decoded by `HttpApi`, whose own error body is not the contract's: answer with ours.
// (The app's type says it cannot fail, but before `HttpApi` encodes them it fails with the API's errors.)
const ContractDecodeErrorsLive = HttpApiBuilder.middleware((app) =>
  Effect.catchIf(
    app as HttpApp.Default<unknown>,
    (error): error is HttpApiError.HttpApiDecodeError => error instanceof HttpApiError.HttpApiDecodeError,
    (error) => Effect.succeed(errorResponse(400, "invalid_field", describeDecodeError(error)))
  ) as HttpApp.Default
)

// `GET /docs`: Swagger UI's page holds its whole code (a few MB as a string, and again as the response's bytes), so it
// is imported and built on the first request for it, then kept, rather than at start.
const DocsLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const { api } = yield* HttpApi.Api
    const page = yield* Effect.cached(
      Effect.flatMap(Effect.promise(() => import("./Docs.js")), (docs) => docs.page(api))
    )
    yield* router.get("/docs", page)
  })
)

/**
 * Everything the app is built from: the API with its handlers and security, `GET /openapi.json`, and `GET /docs`
 * (Swagger UI inlined in the page, so it works offline; built on its first request).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = Layer.mergeAll(
  HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" }),
  DocsLive,
  ContractDecodeErrorsLive
).pipe(
  Layer.provideMerge(
    HttpApiBuilder.api(Api.HarvestApi).pipe(
      Layer.provide([JobsLive, FilesLive, SystemLive]),
      Layer.provide(AuthorizationLive),
      Layer.provide(JobLimitsLive)
    )
  ),
  Layer.provideMerge(HttpApiBuilder.Router.Live),
  Layer.provideMerge(HttpApiBuilder.Middleware.layer)
)

const isRouteNotFound = (error: unknown): error is HttpServerError.RouteNotFound =>
  HttpServerError.isServerError(error) && error._tag === "RouteNotFound"

/**
 * The app: the API first, then the dashboard's routes, then the contract's JSON 404; request bodies are capped at
 * `maxRequestBytes`. A failure that is a local fault (the database does not answer, say) is reported and answered
 * with its `503` (`unavailable`); any other unexpected failure is logged and answered with a JSON 500.
 *
 * @since 0.1.0
 * @category apps
 */
export const app = Effect.gen(function*() {
  const api = (yield* HttpApiBuilder.httpApp) as HttpApp.Default<unknown, HttpRouter.HttpRouter.DefaultServices>
  const dashboard = yield* HttpRouter.toHttpApp(Dashboard.router)
  const faults = yield* LocalFaults.LocalFaults
  return api.pipe(
    Effect.catchIf(isRouteNotFound, () => dashboard),
    Effect.catchIf(isRouteNotFound, () => Effect.succeed(errorResponse(404, "not_found", "no such route"))),
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const fault = LocalFaults.fromCause("answering a request", cause)
      if (fault !== undefined) {
        return Effect.as(faults.report(fault), unavailable(fault, faults.retryAfterSeconds(), "answer"))
      }
      return Effect.as(
        Effect.logError("request failed", cause),
        errorResponse(500, "internal", "unexpected error")
      )
    }),
    HttpIncomingMessage.withMaxBodySize(Option.some(maxRequestBytes))
  )
})

/**
 * Harvest's HTTP routes (DESIGN.md's contract): jobs, results, export, files, cancel, health, metrics.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { EventLoopMonitor } from "@spindle/node"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Dashboard from "./Dashboard.js"
import { HarvestConfig } from "./HarvestConfig.js"
import { Jobs } from "./Jobs.js"
import { PipelineTag } from "./Pipeline.js"
import * as Validation from "./Validation.js"

const error = (status: number, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

const notFound = (what: string) => error(404, "not_found", `${what} not found`)

const jobIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const fileIdPattern = /^[0-9a-f]{64}$/

const routeParam = (name: string) => Effect.map(HttpRouter.params, (params) => params[name] ?? "")

const findJob = (id: string) =>
  Effect.flatMap(Jobs, (jobs) => jobIdPattern.test(id) ? jobs.find(id) : Effect.succeed(Option.none()))

/**
 * Prometheus text for every metric in the registry.
 *
 * @since 0.1.0
 * @category metrics
 */
export const prometheus = Effect.map(Metric.snapshot, (pairs) => {
  const lines: Array<string> = []
  const seen = new Set<string>()
  const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_")
  for (const pair of pairs) {
    const name = sanitize(pair.metricKey.name)
    const labels = pair.metricKey.tags.map((t) => `${sanitize(t.key)}="${t.value.replace(/["\\\n]/g, "_")}"`)
    const labelText = labels.length === 0 ? "" : `{${labels.join(",")}}`
    const state = pair.metricState
    const type = MetricState.isCounterState(state) ? "counter" : MetricState.isGaugeState(state) ? "gauge" : undefined
    if (type === undefined) continue
    if (!seen.has(name)) {
      seen.add(name)
      if (Option.isSome(pair.metricKey.description)) lines.push(`# HELP ${name} ${pair.metricKey.description.value}`)
      lines.push(`# TYPE ${name} ${type}`)
    }
    const value = MetricState.isCounterState(state)
      ? state.count
      : (state as MetricState.MetricState.Gauge<number>).value
    lines.push(`${name}${labelText} ${Number(value)}`)
  }
  return lines.join("\n") + "\n"
})

const requireToken = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.gen(function*() {
    const config = yield* HarvestConfig
    if (Option.isNone(config.apiToken)) return yield* handler
    const request = yield* HttpServerRequest.HttpServerRequest
    const header = request.headers.authorization ?? ""
    if (header !== `Bearer ${Redacted.value(config.apiToken.value)}`) {
      return error(401, "unauthorized", "missing or wrong bearer token")
    }
    return yield* handler
  })

/**
 * The router.
 *
 * @since 0.1.0
 * @category routes
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/jobs",
    requireToken(Effect.gen(function*() {
      const config = yield* HarvestConfig
      const pipeline = yield* PipelineTag
      if (pipeline.isDraining()) return error(503, "shutting_down", "the server is shutting down")
      const request = yield* HttpServerRequest.HttpServerRequest
      const text = yield* Effect.either(request.text)
      if (Either.isLeft(text)) return error(413, "body_too_large", "the request body is too large")
      let body: unknown
      try {
        body = JSON.parse(text.right)
      } catch {
        return error(400, "invalid_json", "the body is not valid JSON")
      }
      const parsed = Validation.jobRequest(body, config)
      if (Either.isLeft(parsed)) return error(400, parsed.left.code, parsed.left.message)
      const jobs = yield* Jobs
      const created = yield* jobs.create(parsed.right.urls, parsed.right.options)
      return HttpServerResponse.unsafeJson({ id: created.id, status: "queued", total: created.total }, { status: 202 })
    }))
  ),
  HttpRouter.get(
    "/jobs/:id",
    requireToken(Effect.gen(function*() {
      const job = yield* Effect.flatMap(routeParam("id"), findJob)
      if (Option.isNone(job)) return notFound("job")
      return HttpServerResponse.unsafeJson(yield* Effect.flatMap(Jobs, (jobs) => jobs.view(job.value)))
    }))
  ),
  HttpRouter.get(
    "/jobs/:id/results",
    requireToken(Effect.gen(function*() {
      const job = yield* Effect.flatMap(routeParam("id"), findJob)
      if (Option.isNone(job)) return notFound("job")
      const request = yield* HttpServerRequest.HttpServerRequest
      const query = new URL(request.url, "http://harvest").searchParams
      const limit = query.get("limit") === null ? 100 : Number(query.get("limit"))
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        return error(400, "invalid_field", "limit must be an integer between 1 and 1000")
      }
      const cursorText = query.get("cursor")
      const cursor = cursorText === null || cursorText === "" ? undefined : Number(cursorText)
      if (cursor !== undefined && (!Number.isSafeInteger(cursor) || cursor < 0)) {
        return error(400, "invalid_field", "cursor is not a cursor this API returned")
      }
      const jobs = yield* Jobs
      return HttpServerResponse.unsafeJson(yield* jobs.results(job.value.id, limit, cursor))
    }))
  ),
  HttpRouter.get(
    "/jobs/:id/export",
    requireToken(Effect.gen(function*() {
      const job = yield* Effect.flatMap(routeParam("id"), findJob)
      if (Option.isNone(job)) return notFound("job")
      const jobs = yield* Jobs
      const lines = jobs.exportResults(job.value.id).pipe(
        Stream.map((result) => `${JSON.stringify(result)}\n`),
        Stream.encodeText
      )
      return HttpServerResponse.stream(lines, { contentType: "application/x-ndjson" })
    }))
  ),
  HttpRouter.del(
    "/jobs/:id",
    requireToken(Effect.gen(function*() {
      const job = yield* Effect.flatMap(routeParam("id"), findJob)
      if (Option.isNone(job)) return notFound("job")
      const jobs = yield* Jobs
      const pipeline = yield* PipelineTag
      yield* jobs.cancel(job.value.id)
      yield* pipeline.interruptJob(job.value.id)
      const fresh = yield* jobs.find(job.value.id)
      return HttpServerResponse.unsafeJson(yield* jobs.view(Option.getOrThrow(fresh)))
    }))
  ),
  HttpRouter.get(
    "/files/:fileId",
    requireToken(Effect.gen(function*() {
      const fileId = yield* routeParam("fileId")
      const config = yield* HarvestConfig
      const file = path.join(config.dataDir, "files", fileId)
      if (!fileIdPattern.test(fileId) || !fs.existsSync(file)) return notFound("file")
      return yield* HttpServerResponse.file(file, { contentType: "application/octet-stream" })
    }))
  ),
  HttpRouter.get(
    "/health",
    Effect.gen(function*() {
      const monitor = yield* EventLoopMonitor.EventLoopMonitor
      const pipeline = yield* PipelineTag
      const loop = monitor.unsafeCurrent()
      const body = {
        status: pipeline.isDraining() ? "draining" : "ok",
        eventLoop: { p50Ms: loop.p50Ms, p99Ms: loop.p99Ms, maxMs: loop.maxMs },
        inFlight: pipeline.inFlight()
      }
      return HttpServerResponse.unsafeJson(body, { status: pipeline.isDraining() ? 503 : 200 })
    })
  ),
  HttpRouter.get(
    "/metrics",
    Effect.map(prometheus, (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4" }))
  ),
  HttpRouter.concat(Dashboard.router),
  HttpRouter.catchAll((cause) =>
    Effect.as(
      Effect.logError("request failed").pipe(Effect.annotateLogs({ cause: String(cause) })),
      error(500, "internal", "unexpected error")
    )
  )
)

/**
 * The router as an app whose unknown routes answer with the contract's JSON 404.
 *
 * @since 0.1.0
 * @category routes
 */
export const app = Effect.map(
  HttpRouter.toHttpApp(router),
  (handler) => Effect.catchTag(handler, "RouteNotFound", () => Effect.succeed(error(404, "not_found", "no such route")))
)

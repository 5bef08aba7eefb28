/**
 * Harvest's public HTTP API as an `HttpApi` (DESIGN.md's contract): routes, request and response schemas, errors and
 * security. The implementation is in `Handlers.ts`; the OpenAPI document and the docs page are generated from this.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import * as Domain from "../Domain.js"

const errorFields = { code: Schema.String, message: Schema.String }

interface ErrorClass<Self> extends Schema.Schema<Self, any> {
  new(props: { readonly code: string; readonly message: string }): Self
}

// The contract's error body is `{ error: { code, message } }`, whatever the status: each error class is carried in
// that shape rather than in its own encoding (which would add a `_tag`).
const asErrorBody = <Self extends { readonly code: string; readonly message: string }>(
  self: ErrorClass<Self>,
  status: number,
  description: string
) =>
  Schema.transform(Domain.ErrorBody, Schema.typeSchema(self), {
    strict: true,
    decode: (body) => new self(body.error),
    encode: (error) => ({ error: { code: error.code, message: error.message } })
  }).annotations(HttpApiSchema.annotations({ status, description }))

/**
 * `400`: the request is invalid; `code` is `invalid_json`, `invalid_body`, `invalid_field` or `too_many_urls`.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", errorFields) {}

/**
 * `401`: `API_TOKEN` is set and the request does not carry it as a bearer token.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", errorFields) {}

/**
 * `404`: no such job, file or route (malformed ids included), or (`code: trace_not_found`) no trace of the item in this
 * instance's ring of recent traces.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", errorFields) {}

/**
 * `409`: the job has already finished (`code: already_finished`): a completed or cancelled job cannot be cancelled,
 * and is left as it was.
 *
 * @since 0.1.0
 * @category errors
 */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", errorFields) {}

/**
 * `413`: the request body exceeds the server's limit.
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", errorFields) {}

/**
 * `503`: the server is shutting down and takes no new jobs.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", errorFields) {}

/**
 * `503`: a fault of the server's own machine keeps it from taking jobs now, with `Retry-After`; `code` names it:
 * `storage_full`, `storage_error` or `database_unavailable` (see `GET /health`). It clears by itself.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", errorFields) {}

const badRequestDescription = "Invalid request; the message names the field"
const BadRequestBody = asErrorBody(BadRequest, 400, badRequestDescription)
const UnauthorizedBody = asErrorBody(Unauthorized, 401, "Missing or wrong bearer token (only when API_TOKEN is set)")
const NotFoundBody = asErrorBody(NotFound, 404, "No such job or file")
const ConflictBody = asErrorBody(
  Conflict,
  409,
  "The job has already finished (completed or cancelled); nothing changed"
)
const PayloadTooLargeBody = asErrorBody(PayloadTooLarge, 413, "The request body exceeds the server's limit")
const ShuttingDownBody = asErrorBody(ShuttingDown, 503, "The server is shutting down; retry on another instance")
const unavailableDescription = "The server is shutting down (shutting_down: retry on another instance), or a " +
  "fault of its own machine keeps it from taking jobs (storage_full, storage_error, database_unavailable: retry " +
  "after Retry-After)"
const UnavailableBody = asErrorBody(Unavailable, 503, unavailableDescription)

/**
 * Bearer-token authorization for `/jobs*` and `/files*`; it lets everything through while `API_TOKEN` is unset.
 *
 * @since 0.1.0
 * @category security
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("@spindle/harvest/Api/Authorization", {
  failure: UnauthorizedBody,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "`Authorization: Bearer <API_TOKEN>`, required when API_TOKEN is set"
      )
    )
  }
}) {}

// The keyset-pagination parameters every paged route takes: a page size of 1 to 1000 (default `defaultLimit`) and the
// previous page's cursor.
const pageParams = (defaultLimit: number) => ({
  limit: Schema.optional(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)).annotations({
      jsonSchema: { type: "integer", minimum: 1, maximum: 1000, description: `page size (default ${defaultLimit})` }
    })
  ),
  cursor: Schema.optional(Schema.String.annotations({ description: "`nextCursor` of the previous page" }))
})

const JobId = Schema.Struct({ id: Schema.String.annotations({ description: "a job id as POST /jobs returned it" }) })

/**
 * Jobs: submit, inspect, page through and export results, cancel.
 *
 * @since 0.1.0
 * @category groups
 */
export class JobsGroup extends HttpApiGroup.make("jobs").add(
  HttpApiEndpoint.post("create", "/jobs")
    .setPayload(Domain.JobRequest)
    .addSuccess(Domain.JobCreated, { status: 202 })
    .addError(BadRequestBody)
    .addError(PayloadTooLargeBody)
    .addError(ShuttingDownBody)
    .addError(UnavailableBody)
    .annotate(OpenApi.Summary, "Submit a job")
    .annotate(
      OpenApi.Description,
      "The job and all its items are committed before the reply. Duplicate URLs in one job are stored once. " +
        "`503` while the server shuts down (`shutting_down`) or while a fault of its own machine (a full disk, a " +
        "database that does not answer) keeps it from storing jobs: `code` names the fault (`storage_full`, " +
        "`storage_error`, `database_unavailable`) and `Retry-After` says when to try again."
    )
).add(
  HttpApiEndpoint.get("list", "/jobs")
    .setUrlParams(Schema.Struct({
      status: Schema.optional(Schema.String.annotations({
        description: "one or more of queued, running, completed, cancelled, comma-separated (default: all)"
      })),
      ...pageParams(50)
    }))
    .addSuccess(Domain.JobsPage)
    .addError(BadRequestBody)
    .annotate(OpenApi.Summary, "A page of jobs, newest first (keyset pagination), optionally of some statuses")
    .annotate(
      OpenApi.Description,
      "Jobs newest first, as `JobView`s. `status` keeps the jobs of the statuses named; `nextCursor` continues after " +
        "the last job of the page, so jobs created meanwhile never shift a page."
    )
).add(
  HttpApiEndpoint.get("get", "/jobs/:id")
    .setPath(JobId)
    .addSuccess(Domain.JobView)
    .addError(NotFoundBody)
    .annotate(OpenApi.Summary, "A job's status and counts")
    .annotate(
      OpenApi.Description,
      "The job's status and how many of its distinct URLs succeeded, failed or are still pending. `404` for any id " +
        "that names no job, malformed ones included."
    )
).add(
  HttpApiEndpoint.get("results", "/jobs/:id/results")
    .setPath(JobId)
    .setUrlParams(Schema.Struct({
      ...pageParams(100)
    }))
    .addSuccess(Domain.ResultsPage)
    .addError(BadRequestBody)
    .addError(NotFoundBody)
    .annotate(OpenApi.Summary, "A page of a job's results (keyset pagination)")
    .annotate(
      OpenApi.Description,
      "The settled items of a job, in a stable order: `limit` per page (1 to 1000, default 100); pass the page's " +
        "`nextCursor` as `cursor` for the next one, until it is null. Items still pending are not listed."
    )
).add(
  HttpApiEndpoint.get("export", "/jobs/:id/export")
    .setPath(JobId)
    .addSuccess(
      Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "application/x-ndjson" })).annotations(
        {
          description: "one ItemResult as JSON per line, streamed from a database cursor"
        }
      )
    )
    .addError(NotFoundBody)
    .annotate(OpenApi.Summary, "All of a job's results as NDJSON")
    .annotate(
      OpenApi.Description,
      "Every settled item of the job, one `ItemResult` as JSON per line, read from the database page by page while " +
        "the response is written, so a job of any size is exported in constant memory."
    )
).add(
  HttpApiEndpoint.get("latency", "/jobs/:id/latency")
    .setPath(JobId)
    .addSuccess(Domain.JobLatency)
    .addError(NotFoundBody)
    .annotate(OpenApi.Summary, "The distribution of a job's item durations: histogram, percentiles, slowest items")
    .annotate(
      OpenApi.Description,
      "Each settled item's `durationMs` (from a worker taking it to its outcome) counted in fixed buckets (1 ms to " +
        "60 s, roughly 1-2-5 steps, and one unbounded), with the count, min, max, mean, nearest-rank p50, p90 and p99, " +
        "and the ten slowest items. Read from the job's results, so it covers every instance's items; items still " +
        "pending or cancelled are not counted."
    )
).add(
  HttpApiEndpoint.get("trace", "/jobs/:id/trace")
    .setPath(JobId)
    .setUrlParams(Schema.Struct({
      url: Schema.String.annotations({ description: "the item's URL, as the job's results list it" })
    }))
    .addSuccess(Domain.ItemTrace)
    .addError(BadRequestBody)
    .addError(NotFoundBody)
    .annotate(OpenApi.Summary, "An item's latest trace (its waterfall), from this instance's ring of recent traces")
    .annotate(
      OpenApi.Description,
      "The spans of the item's latest trace as this instance recorded them (the same spans OTLP exports): " +
        "`harvest.item` from its lease, `harvest.queued`, each `harvest.host_gate` wait, each attempt's `GET` " +
        "client span (status code, error, body size) with `harvest.body.write`, and `harvest.settle`, each with its " +
        "start offset and duration in milliseconds. The ring keeps the last `HARVEST_TRACE_RING` items' traces " +
        "(1000 by default) of this instance only: `404 trace_not_found` for an item not traced here, evicted, still " +
        "in flight, or when the ring is off."
    )
).add(
  HttpApiEndpoint.del("cancel", "/jobs/:id")
    .setPath(JobId)
    .addSuccess(Domain.JobView)
    .addError(NotFoundBody)
    .addError(ConflictBody)
    .annotate(OpenApi.Summary, "Cancel a job: its in-flight fetches are interrupted, its status becomes cancelled")
    .annotate(
      OpenApi.Description,
      "Marks the job cancelled, interrupts its fetches in flight and answers with its view. Items not yet settled " +
        "end as failed with `code: cancelled`; other jobs are not affected. A job that has already finished " +
        "(completed or cancelled) answers `409 already_finished` and is left as it was."
    )
).middleware(Authorization).annotate(OpenApi.Title, "Jobs").annotate(
  OpenApi.Description,
  "Submit a job of URLs, follow its progress, page through or export its results, cancel it. Needs the bearer " +
    "token when API_TOKEN is set."
) {}

/**
 * Stored bodies.
 *
 * @since 0.1.0
 * @category groups
 */
export class FilesGroup extends HttpApiGroup.make("files").add(
  HttpApiEndpoint.get("get", "/files/:fileId")
    .setPath(Schema.Struct({
      fileId: Schema.String.annotations({ description: "a result's fileId: the body's sha256 in lowercase hex" })
    }))
    .addSuccess(
      HttpApiSchema.Uint8Array({ contentType: "application/octet-stream" }).annotations({
        description: "the stored body, streamed from disk"
      })
    )
    .addError(NotFoundBody)
    .annotate(OpenApi.Summary, "A stored body")
    .annotate(
      OpenApi.Description,
      "The body of a succeeded fetch, exactly as received, streamed from disk. Bodies are stored by content, so " +
        "`fileId` is the body's SHA-256 and identical bodies share one file."
    )
).middleware(Authorization).annotate(OpenApi.Title, "Files").annotate(
  OpenApi.Description,
  "The stored bodies of succeeded fetches, addressed by their SHA-256. Needs the bearer token when API_TOKEN is set."
) {}

/**
 * Health and metrics; open even when `API_TOKEN` is set.
 *
 * @since 0.1.0
 * @category groups
 */
export class SystemGroup extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("health", "/health")
    .addSuccess(Domain.Health)
    .addError(Domain.Health.annotations({ description: "Draining, or degraded by a local fault" }), { status: 503 })
    .annotate(OpenApi.Summary, "Readiness: 200 when ok, 503 while draining or degraded")
    .annotate(
      OpenApi.Description,
      "`200` with `status: ok` while the instance takes jobs; `503` with `status: draining` once SIGTERM or SIGINT " +
        "was received, and with `status: degraded` and a `reason` (`storage_full`, `storage_error`, " +
        "`database_unavailable`), with `Retry-After`, while a fault of its own machine pauses its work; that state " +
        "ends by itself once the fault clears. Also reports the event loop's delay and the fetches in flight. " +
        "Needs no token."
    )
).add(
  HttpApiEndpoint.get("metrics", "/metrics")
    .addSuccess(
      HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4" }).annotations({
        description: "Prometheus text format"
      })
    )
    .annotate(OpenApi.Summary, "Prometheus metrics")
    .annotate(
      OpenApi.Description,
      "Every metric of the process (Spindle's limiters, breakers, queues and pools, and Harvest's own counters, " +
        "gauges and histograms) in the Prometheus text exposition format, written by OpenTelemetry's Prometheus " +
        "exporter. Needs no token."
    )
).annotate(OpenApi.Title, "System").annotate(
  OpenApi.Description,
  "Readiness and metrics for load balancers and monitoring; open even when API_TOKEN is set."
) {}

// `HttpApi.make` documents its own decode error (`HttpApiDecodeError`) for every endpoint, but Harvest answers every
// decode error with its contract body (see `Handlers.ts`), so the document must not show the former.
const withoutDecodeError = (spec: Record<string, any>): Record<string, any> => {
  const decodeError = "#/components/schemas/HttpApiDecodeError"
  for (const operations of Object.values<Record<string, any>>(spec.paths)) {
    for (const operation of Object.values<any>(operations)) {
      const bad = operation.responses?.["400"]
      const content = bad?.content?.["application/json"]
      if (content === undefined) continue
      const members: Array<any> = content.schema.anyOf ?? [content.schema]
      const kept = members.filter((member) => member.$ref !== decodeError)
      if (kept.length === 0) delete operation.responses["400"]
      else if (kept.length !== members.length) {
        content.schema = kept.length === 1 ? kept[0] : { anyOf: kept }
        bad.description = badRequestDescription
      }
    }
  }
  delete spec.components.schemas.HttpApiDecodeError
  delete spec.components.schemas.Issue
  delete spec.components.schemas.PropertyKey
  return spec
}

// `OpenApi` has no annotation for the info object's contact.
const withContact = (spec: Record<string, any>): Record<string, any> => {
  spec.info.contact = { name: "Spindle contributors" }
  return spec
}

// Nor for response headers: the `503`s a local fault causes carry `Retry-After`. (A status's description is its first
// error's: `POST /jobs`'s `503` is given one for both.)
const withRetryAfter = (spec: Record<string, any>): Record<string, any> => {
  const header = {
    description: "on a 503 of a local fault: seconds to wait before trying again",
    schema: { type: "integer", minimum: 1 }
  }
  for (const [path, method] of [["/jobs", "post"], ["/health", "get"]] as const) {
    const unavailable = spec.paths[path]?.[method]?.responses?.["503"]
    if (unavailable !== undefined) unavailable.headers = { "Retry-After": header }
  }
  const submit = spec.paths["/jobs"]?.post?.responses?.["503"]
  if (submit !== undefined) submit.description = unavailableDescription
  return spec
}

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class HarvestApi extends HttpApi.make("harvest")
  .add(JobsGroup)
  .add(FilesGroup)
  .add(SystemGroup)
  .annotate(OpenApi.Title, "Harvest")
  .annotate(OpenApi.Version, "0.1.0")
  .annotate(
    OpenApi.Description,
    "A resilient URL fetch service. Every 4xx carries `{ error: { code, message } }`; any route may answer 503 " +
      "with Retry-After while the process sheds load (`overloaded`) or while a fault of its own machine keeps it " +
      "from reading or writing its data (`storage_full`, `storage_error`, `database_unavailable`)."
  )
  .annotate(OpenApi.License, { name: "MIT", url: "https://spdx.org/licenses/MIT.html" })
  .annotate(OpenApi.Servers, [{ url: "/", description: "the Harvest instance that serves this document" }])
  .annotate(OpenApi.Transform, (spec) => withRetryAfter(withContact(withoutDecodeError(spec))))
{}

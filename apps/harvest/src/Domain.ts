/**
 * Harvest's data: job options, item payloads and results, and the API's view of them.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A job's settings after defaults are applied.
 *
 * @since 0.1.0
 * @category models
 */
export const JobOptions = Schema.Struct({
  concurrency: Schema.Number,
  perHostConcurrency: Schema.Number,
  perHostRps: Schema.NullOr(Schema.Number),
  perHostBurst: Schema.Number,
  timeoutMs: Schema.Number,
  maxAttempts: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type JobOptions = typeof JobOptions.Type

/**
 * What a work item carries: its URL.
 *
 * @since 0.1.0
 * @category models
 */
export const ItemPayload = Schema.Struct({ url: Schema.String })

/**
 * @since 0.1.0
 * @category models
 */
export type ItemPayload = typeof ItemPayload.Type

/**
 * A failed item's error.
 *
 * @since 0.1.0
 * @category models
 */
export const ItemError = Schema.Struct({ code: Schema.String, message: Schema.String })

/**
 * One result row (DESIGN.md: `GET /jobs/:id/results`).
 *
 * @since 0.1.0
 * @category models
 */
export const ItemResult = Schema.Struct({
  url: Schema.String,
  status: Schema.Literal("succeeded", "failed"),
  httpStatus: Schema.NullOr(Schema.Number),
  bytes: Schema.NullOr(Schema.Number),
  sha256: Schema.NullOr(Schema.String),
  attempts: Schema.Number,
  error: Schema.NullOr(ItemError),
  fileId: Schema.NullOr(Schema.String)
}).annotations({ identifier: "ItemResult" })

/**
 * @since 0.1.0
 * @category models
 */
export type ItemResult = typeof ItemResult.Type

/**
 * A job as `GET /jobs/:id` shows it.
 *
 * @since 0.1.0
 * @category models
 */
export const JobView = Schema.Struct({
  id: Schema.String,
  status: Schema.Literal("queued", "running", "completed", "cancelled"),
  total: Schema.Number,
  succeeded: Schema.Number,
  failed: Schema.Number,
  pending: Schema.Number,
  createdAt: Schema.String,
  finishedAt: Schema.NullOr(Schema.String)
}).annotations({ identifier: "JobView" })

/**
 * @since 0.1.0
 * @category models
 */
export type JobView = typeof JobView.Type

/**
 * A job's status, as `JobView` reports it and `GET /jobs?status=` filters by it.
 *
 * @since 0.1.0
 * @category models
 */
export const JobStatus = Schema.Literal("queued", "running", "completed", "cancelled")

/**
 * A page of jobs, newest first.
 *
 * @since 0.1.0
 * @category models
 */
export const JobsPage = Schema.Struct({
  items: Schema.Array(JobView),
  nextCursor: Schema.NullOr(Schema.String).annotations({
    description: "pass as `cursor` for the next page; null at the end"
  })
}).annotations({ identifier: "JobsPage" })

/**
 * A page of results.
 *
 * @since 0.1.0
 * @category models
 */
export const ResultsPage = Schema.Struct({
  items: Schema.Array(ItemResult),
  nextCursor: Schema.NullOr(Schema.String).annotations({
    description: "pass as `cursor` for the next page; null at the end"
  })
}).annotations({ identifier: "ResultsPage" })

/**
 * The API's error body: `{ error: { code, message } }`.
 *
 * @since 0.1.0
 * @category models
 */
export const ErrorBody = Schema.Struct({ error: ItemError }).annotations({
  identifier: "Error",
  description: "`code` for machines, `message` (naming the bad field, if any) for people"
})

/**
 * A numeric job option's allowed range.
 *
 * @since 0.1.0
 * @category models
 */
export interface Range {
  readonly min: number
  readonly max: number
  readonly exclusiveMin?: boolean
  readonly integer: boolean
}

/**
 * The ranges of the job options whose bounds are fixed (DESIGN.md), shared by the validation and the OpenAPI schema
 * so that the two cannot disagree. `concurrency` is bounded by `MAX_CONCURRENCY` instead.
 *
 * @since 0.1.0
 * @category models
 */
export const optionRanges = {
  perHostConcurrency: { min: 1, max: 1000, integer: true },
  perHostRps: { min: 0, exclusiveMin: true, max: 1e6, integer: false },
  perHostBurst: { min: 1, max: 1e6, integer: true },
  timeoutMs: { min: 1, max: 600_000, integer: true },
  maxAttempts: { min: 1, max: 20, integer: true }
} as const satisfies Record<string, Range>

const ranged = (range: Range, description: string) => {
  const number: Schema.Schema<number> = range.integer ? Schema.Int : Schema.Number
  return number.pipe(
    range.exclusiveMin === true ? Schema.greaterThan(range.min) : Schema.greaterThanOrEqualTo(range.min),
    Schema.lessThanOrEqualTo(range.max)
  ).annotations({ description })
}

/**
 * The body of `POST /jobs` as the API documents it. The server validates it with `Validation.jobRequest`, whose
 * errors name the field, and which reads the same ranges.
 *
 * @since 0.1.0
 * @category models
 */
export const JobRequest = Schema.Struct({
  urls: Schema.Array(Schema.String.annotations({ description: "an absolute http or https URL" })).pipe(
    Schema.minItems(1)
  ).annotations({
    description:
      "the URLs to fetch: at least one, at most MAX_URLS_PER_JOB (default 100000); duplicates are stored once"
  }),
  concurrency: Schema.optional(
    Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)).annotations({
      description: "fetches of this job in flight at once; at most (and by default) MAX_CONCURRENCY"
    })
  ),
  perHostConcurrency: Schema.optional(
    ranged(optionRanges.perHostConcurrency, "fetches in flight per host:port (default 8)")
  ),
  perHostRps: Schema.optional(
    ranged(optionRanges.perHostRps, "requests started per second per host:port (default: no rate limit)")
  ),
  perHostBurst: Schema.optional(
    ranged(optionRanges.perHostBurst, "requests a host may receive at once (default max(1, ceil(perHostRps)))")
  ),
  timeoutMs: Schema.optional(
    ranged(optionRanges.timeoutMs, "one attempt, from connect to the body's last byte (default 30000)")
  ),
  maxAttempts: Schema.optional(ranged(optionRanges.maxAttempts, "attempts per URL (default 3)"))
}).annotations({ identifier: "JobRequest" })

/**
 * The reply to `POST /jobs`.
 *
 * @since 0.1.0
 * @category models
 */
export const JobCreated = Schema.Struct({
  id: Schema.String,
  status: Schema.Literal("queued"),
  total: Schema.Number.annotations({ description: "distinct URLs in the job" })
}).annotations({ identifier: "JobCreated" })

/**
 * `GET /health`'s body, for `200` (`ok`) and `503` (`draining`) alike.
 *
 * @since 0.1.0
 * @category models
 */
export const Health = Schema.Struct({
  status: Schema.Literal("ok", "draining"),
  eventLoop: Schema.Struct({ p50Ms: Schema.Number, p99Ms: Schema.Number, maxMs: Schema.Number }),
  inFlight: Schema.Number.annotations({ description: "fetches in flight in this process" })
}).annotations({ identifier: "Health" })

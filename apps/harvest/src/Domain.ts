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
})

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
})

/**
 * @since 0.1.0
 * @category models
 */
export type JobView = typeof JobView.Type

/**
 * A page of results.
 *
 * @since 0.1.0
 * @category models
 */
export const ResultsPage = Schema.Struct({
  items: Schema.Array(ItemResult),
  nextCursor: Schema.NullOr(Schema.String)
})

/**
 * The API's error body: `{ error: { code, message } }`.
 *
 * @since 0.1.0
 * @category models
 */
export const ErrorBody = Schema.Struct({ error: ItemError })

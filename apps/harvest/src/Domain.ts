/**
 * Harvest's data: job options, item payloads and results, and the API's view of them.
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"

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
  error: Schema.NullOr(ItemError).annotations({
    description: "A failed item's error. `code` is one of `http_status`, `timeout`, `body_too_large`, `network`, " +
      "`unresolvable_host` (the host does not exist), `tls` (its certificate does not verify), `blocked_address`, " +
      "`circuit_open`, `cancelled`"
  }),
  fileId: Schema.NullOr(Schema.String),
  durationMs: Schema.optional(Schema.Number.annotations({
    description: "Milliseconds from the item's processing start (a worker took it) to its outcome, its attempts, " +
      "gate waits and backoffs included; absent for an item cancelled before its outcome"
  }))
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
 * The ranges of the job options whose bounds are fixed (DESIGN.md). `JobRequest` checks them, names them in its
 * messages and shows them in the OpenAPI document, so the three cannot disagree. `concurrency` is bounded by
 * `MAX_CONCURRENCY` instead (see `JobLimits`).
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

/**
 * The defaults of the job options that do not depend on anything else (DESIGN.md). `concurrency` defaults to
 * `MAX_CONCURRENCY`, `perHostRps` to no rate limit and `perHostBurst` to max(1, ⌈perHostRps⌉).
 *
 * @since 0.1.0
 * @category models
 */
export const optionDefaults = {
  perHostConcurrency: 8,
  timeoutMs: 30_000,
  maxAttempts: 3
} as const

/**
 * The bounds of a job request that the server's configuration sets (`MAX_CONCURRENCY`, `MAX_URLS_PER_JOB`).
 * `JobRequest` reads them while decoding, so one schema serves every configuration; `HarvestConfig` is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobLimits {
  readonly maxConcurrency: number
  readonly maxUrlsPerJob: number
  /**
   * The fetch policy as configured (`HarvestConfig.fetchPolicy`): its `attemptTimeout` and `retry.maxAttempts` are
   * the defaults of a job's `timeoutMs` and `maxAttempts` (`optionDefaults` when absent).
   */
  readonly fetchPolicy?: {
    readonly attemptTimeout?: Duration.DurationInput | undefined
    readonly retry?: { readonly maxAttempts?: number | undefined } | undefined
  } | undefined
}

/**
 * The limits `JobRequest` decodes with.
 *
 * @since 0.1.0
 * @category tags
 */
export const JobLimits: Context.Tag<JobLimits, JobLimits> = Context.GenericTag<JobLimits>(
  "@spindle/harvest/Domain/JobLimits"
)

/**
 * The annotation giving the refusal `code` of a schema that does not fail with `invalid_field` (see `refusal`).
 *
 * @since 0.1.0
 * @category annotations
 */
export const RefusalCode: unique symbol = Symbol.for("@spindle/harvest/Domain/RefusalCode")

const says = (message: string) => ({ message: () => message })

const httpScheme = /^https?:/i

/**
 * Why `text` is not a URL `POST /jobs` accepts (an absolute `http:` or `https:` URL), or `undefined` when it is one.
 *
 * @since 0.1.0
 * @category validation
 */
export const urlProblem = (text: string): string | undefined => {
  // Text that starts with the scheme and parses has that scheme: `URL.canParse` makes no URL object (a cold 100,000-URL
  // job checked in 40 ms instead of 220). Anything else goes the long way, for the reason.
  if (httpScheme.test(text) && URL.canParse(text)) return undefined
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return "is not an absolute URL"
  }
  return url.protocol === "http:" || url.protocol === "https:" ? undefined : "must use http or https"
}

// Each URL from `from` on, `urlCheckChunk` at a time with a yield between chunks: a 100,000-URL job's URLs take about
// 30 ms to check, which would otherwise hold the event loop in one piece (and then beside the body's parsing and the
// rows' inserts). The first URL with a problem is refused, by its index.
const urlCheckChunk = 2000
const checkUrls = (
  urls: ReadonlyArray<string>,
  from: number
): Effect.Effect<true | { readonly path: ReadonlyArray<number>; readonly message: string }> => {
  const end = Math.min(urls.length, from + urlCheckChunk)
  for (let i = from; i < end; i++) {
    const problem = urlProblem(urls[i])
    if (problem !== undefined) return Effect.succeed({ path: [i], message: problem })
  }
  // The next chunk is checked once the fiber has yielded (`suspend`), not while this effect is built.
  return end === urls.length
    ? Effect.succeed(true)
    : Effect.zipRight(Effect.yieldNow(), Effect.suspend(() => checkUrls(urls, end)))
}

// Checked in this order: an array of strings, not empty, not more than the server takes (before any URL is parsed, so
// that an oversized job is refused at once), then each URL.
const urlDescription = "an absolute http or https URL"
const UrlString = Schema.String.annotations({
  ...says("must be a string"),
  description: urlDescription,
  jsonSchema: { format: "uri" }
})

// An array of strings, as `Schema.Array(UrlString)` decodes it but in one plain pass that keeps the input array: for
// 100,000 URLs Schema's own pass took about 30 ms of a first `POST` (an `Either` and a copy per element), this one 2
// to 3. The refusals are Schema's: the array's message, or the first element's at its index.
const UrlArray = Schema.declare(
  [],
  {
    decode: () => (input, _options, ast) => {
      if (!Array.isArray(input)) return ParseResult.fail(new ParseResult.Type(ast, input))
      for (let i = 0; i < input.length; i++) {
        if (typeof input[i] !== "string") {
          return ParseResult.fail(new ParseResult.Pointer(i, input, new ParseResult.Type(UrlString.ast, input[i])))
        }
      }
      return ParseResult.succeed(input as ReadonlyArray<string>)
    },
    encode: () => (input) => ParseResult.succeed(input as ReadonlyArray<string>)
  },
  {
    ...says("must be an array of strings"),
    jsonSchema: {
      type: "array",
      items: { type: "string", description: urlDescription, format: "uri" }
    }
  }
)

const Urls = UrlArray.pipe(
  Schema.minItems(1, says("must not be empty")),
  Schema.filterEffect((urls) =>
    Effect.map(
      JobLimits,
      ({ maxUrlsPerJob }) =>
        urls.length <= maxUrlsPerJob || `has ${urls.length} entries; at most ${maxUrlsPerJob} are allowed`
    )
  ),
  (self) =>
    self.annotations({
      [RefusalCode]: "too_many_urls",
      description: "the URLs to fetch: at least one, at most MAX_URLS_PER_JOB (default 100000); duplicates are " +
        "stored once"
    }),
  Schema.filterEffect((urls) => checkUrls(urls, 0))
)

const bounded = (range: Range, description: string, fallback?: number) => {
  const bounds = says(`must be ${range.exclusiveMin === true ? ">" : ">="} ${range.min} and <= ${range.max}`)
  const number: Schema.Schema<number> = Schema.Number.annotations(says("must be a number"))
  return (range.integer ? number.pipe(Schema.int(says("must be an integer"))) : number).pipe(
    range.exclusiveMin === true
      ? Schema.greaterThan(range.min, bounds)
      : Schema.greaterThanOrEqualTo(range.min, bounds),
    Schema.lessThanOrEqualTo(range.max, bounds)
  ).annotations(fallback === undefined ? { description } : { description, default: fallback })
}

const Concurrency = Schema.Number.annotations(says("must be a number")).pipe(
  Schema.int(says("must be an integer")),
  Schema.greaterThanOrEqualTo(1, says("must be >= 1")),
  Schema.filterEffect((concurrency) =>
    Effect.map(
      JobLimits,
      ({ maxConcurrency }) => concurrency <= maxConcurrency || `must be >= 1 and <= ${maxConcurrency} (MAX_CONCURRENCY)`
    )
  )
).annotations({ description: "fetches of this job in flight at once; at most (and by default) MAX_CONCURRENCY" })

const JobRequestBody = Schema.Struct({
  urls: Schema.propertySignature(Urls).annotations({ missingMessage: () => "is required" }),
  concurrency: Schema.optional(Concurrency),
  perHostConcurrency: Schema.optional(
    bounded(optionRanges.perHostConcurrency, "fetches in flight per host:port", optionDefaults.perHostConcurrency)
  ),
  perHostRps: Schema.optional(
    bounded(optionRanges.perHostRps, "requests started per second per host:port (default: no rate limit)")
  ),
  perHostBurst: Schema.optional(
    bounded(optionRanges.perHostBurst, "requests a host may receive at once (default max(1, ceil(perHostRps)))")
  ),
  timeoutMs: Schema.optional(
    bounded(optionRanges.timeoutMs, "one attempt, from connect to the body's last byte", optionDefaults.timeoutMs)
  ),
  maxAttempts: Schema.optional(bounded(optionRanges.maxAttempts, "attempts per URL", optionDefaults.maxAttempts))
}).annotations({ ...says("must be a JSON object"), [RefusalCode]: "invalid_body" })

// The URLs once `JobRequestBody` has checked each of them: the decoded side asks only for an array, rather than
// checking every string a second time (a second pass over up to 100,000 URLs, about a tenth of a `POST`'s CPU).
const CheckedUrls = Schema.declare(
  (input: unknown): input is ReadonlyArray<string> => Array.isArray(input),
  { identifier: "CheckedUrls", description: "the URLs to fetch, as checked by the request's schema" }
)

/**
 * The body of `POST /jobs`, decoded into what `Jobs.create` takes: the URLs and the job's options with every default
 * applied. Decoding needs the server's `JobLimits`; the OpenAPI document shows the body as sent (the encoded side).
 * A refusal becomes the contract's `{ code, message }` through `refusal`.
 *
 * @since 0.1.0
 * @category models
 */
export const JobRequest = Schema.transformOrFail(
  JobRequestBody,
  Schema.Struct({ urls: CheckedUrls, options: JobOptions }),
  {
    strict: true,
    decode: (body) =>
      Effect.map(JobLimits, ({ fetchPolicy, maxConcurrency }) => ({
        urls: body.urls,
        options: {
          concurrency: body.concurrency ?? maxConcurrency,
          perHostConcurrency: body.perHostConcurrency ?? optionDefaults.perHostConcurrency,
          perHostRps: body.perHostRps ?? null,
          perHostBurst: body.perHostBurst ?? Math.max(1, Math.ceil(body.perHostRps ?? 1)),
          timeoutMs: body.timeoutMs ??
            (fetchPolicy?.attemptTimeout === undefined
              ? optionDefaults.timeoutMs
              : Duration.toMillis(fetchPolicy.attemptTimeout)),
          maxAttempts: body.maxAttempts ?? fetchPolicy?.retry?.maxAttempts ?? optionDefaults.maxAttempts
        }
      })),
    encode: ({ options: { perHostRps, ...options }, urls }) =>
      ParseResult.succeed({ urls, ...options, ...(perHostRps === null ? {} : { perHostRps }) })
  }
).annotations({ identifier: "JobRequest" })

/**
 * @since 0.1.0
 * @category models
 */
export type JobRequest = typeof JobRequest.Type

// The first issue of a failed decode, and where it is. Issues nest as deep as the schema, not as deep as the input.
const firstIssue = (
  issue: ParseResult.ParseIssue,
  path: ReadonlyArray<PropertyKey>
): readonly [
  ParseResult.Type | ParseResult.Missing | ParseResult.Unexpected | ParseResult.Forbidden,
  ReadonlyArray<PropertyKey>
] => {
  switch (issue._tag) {
    case "Pointer":
      return firstIssue(issue.issue, [...path, ...Arr.ensure(issue.path)])
    case "Composite":
      return firstIssue(Arr.ensure(issue.issues)[0], path)
    case "Refinement":
    case "Transformation":
      return firstIssue(issue.issue, path)
    default:
      return [issue, path]
  }
}

const label = (path: ReadonlyArray<PropertyKey>) =>
  path.length === 0 ? "body" : path.reduce<string>(
    (label, key) =>
      typeof key === "number" ? `${label}[${key}]` : label === "" ? String(key) : `${label}.${String(key)}`,
    ""
  )

/**
 * The contract's refusal of a body that `JobRequest` (or any schema annotated the same way) did not decode: its first
 * issue, as `code` (`RefusalCode`, `invalid_field` by default) and a message that names where it is (`urls[3] is not
 * an absolute URL`, `perHostRps must be > 0 and <= 1000000`, `body must be a JSON object`), from the schema's own
 * messages. The input is never printed, so however large or deeply nested it is, the message stays short.
 *
 * @since 0.1.0
 * @category errors
 */
export const refusal = (error: ParseResult.ParseError): { readonly code: string; readonly message: string } => {
  const [issue, path] = firstIssue(error.issue, [])
  const annotation = issue._tag === "Unexpected" ? Option.none() : AST.getAnnotation<string>(issue.ast, RefusalCode)
  const described = issue._tag !== "Type" || issue.message !== undefined ||
    Option.isSome(AST.getMessageAnnotation(issue.ast))
  const message = described ? ParseResult.ArrayFormatter.formatIssueSync(issue)[0]?.message : undefined
  return {
    code: Option.getOrElse(annotation, () => "invalid_field"),
    message: `${label(path)} ${message ?? "is not valid"}`
  }
}

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
 * Why an instance is degraded by a fault of its own machine (see `LocalFaults`): `storage_full`, `storage_error`,
 * `database_unavailable`.
 *
 * @since 0.1.0
 * @category models
 */
export const DegradedReason = Schema.Literal("storage_full", "storage_error", "database_unavailable").annotations({
  identifier: "DegradedReason",
  description: "storage_full: DATA_DIR has no space (or its quota is spent); storage_error: its disk fails " +
    "otherwise; database_unavailable: the database cannot be reached, is locked, or refuses writes"
})

/**
 * `GET /health`'s body, for `200` (`ok`) and `503` (`draining`, `degraded`) alike. While the instance is degraded by
 * a local fault, `reason`, `message` and `since` say why and since when (while draining too).
 *
 * @since 0.1.0
 * @category models
 */
export const Health = Schema.Struct({
  status: Schema.Literal("ok", "draining", "degraded").annotations({
    description: "ok: takes jobs; draining: shutting down; degraded: a local fault (see reason) pauses leasing and " +
      "POST /jobs until it clears, by itself"
  }),
  reason: Schema.optional(DegradedReason),
  message: Schema.optional(
    Schema.String.annotations({ description: "while degraded: what failed, in one line" })
  ),
  since: Schema.optional(
    Schema.String.annotations({ description: "while degraded: when it began (ISO 8601)" })
  ),
  eventLoop: Schema.Struct({ p50Ms: Schema.Number, p99Ms: Schema.Number, maxMs: Schema.Number }),
  inFlight: Schema.Number.annotations({ description: "fetches in flight in this process" })
}).annotations({ identifier: "Health" })

/**
 * `GET /jobs/:id/latency`'s body: the distribution of the job's settled items' `durationMs` (items settled before
 * durations were recorded, and cancelled ones, are not counted), as counts per bucket, nearest-rank percentiles, and
 * the slowest items.
 *
 * @since 0.1.0
 * @category models
 */
export const JobLatency = Schema.Struct({
  jobId: Schema.String,
  count: Schema.Number.annotations({ description: "items counted (settled, with a duration)" }),
  minMs: Schema.NullOr(Schema.Number),
  maxMs: Schema.NullOr(Schema.Number),
  meanMs: Schema.NullOr(Schema.Number),
  p50Ms: Schema.NullOr(Schema.Number),
  p90Ms: Schema.NullOr(Schema.Number),
  p99Ms: Schema.NullOr(Schema.Number),
  buckets: Schema.Array(Schema.Struct({
    leMs: Schema.NullOr(Schema.Number).annotations({ description: "the bucket's upper bound; null: no bound" }),
    count: Schema.Number.annotations({ description: "items above the previous bound and at most this one" })
  })),
  slowest: Schema.Array(Schema.Struct({
    url: Schema.String,
    status: Schema.Literal("succeeded", "failed"),
    durationMs: Schema.Number,
    attempts: Schema.Number,
    httpStatus: Schema.NullOr(Schema.Number),
    errorCode: Schema.NullOr(Schema.String)
  })).annotations({ description: "the ten slowest items, slowest first" })
}).annotations({ identifier: "JobLatency" })

/**
 * @since 0.1.0
 * @category models
 */
export type JobLatency = typeof JobLatency.Type

const TraceSpan = Schema.Struct({
  spanId: Schema.String,
  parentSpanId: Schema.NullOr(Schema.String).annotations({ description: "null for the item's own span" }),
  name: Schema.String,
  kind: Schema.Literal("internal", "server", "client", "producer", "consumer"),
  startMs: Schema.Number.annotations({ description: "milliseconds from the item's span's start" }),
  durationMs: Schema.Number,
  status: Schema.Literal("unset", "ok", "error"),
  statusMessage: Schema.NullOr(Schema.String),
  attributes: Schema.Record({ key: Schema.String, value: Schema.Union(Schema.String, Schema.Number, Schema.Boolean) }),
  events: Schema.Array(Schema.Struct({
    name: Schema.String,
    atMs: Schema.Number.annotations({ description: "milliseconds from the item's span's start" })
  }))
}).annotations({ identifier: "TraceSpan" })

/**
 * `GET /jobs/:id/trace?url=`'s body: the item's latest trace from this instance's ring of recent traces, its spans
 * in start order (parents before their children), timed from the item's span's start.
 *
 * @since 0.1.0
 * @category models
 */
export const ItemTrace = Schema.Struct({
  jobId: Schema.String,
  url: Schema.String,
  itemId: Schema.NullOr(Schema.Number),
  traceId: Schema.String.annotations({ description: "the OpenTelemetry trace id, as exported over OTLP" }),
  startedAt: Schema.String.annotations({ description: "ISO 8601: when the item's span started (its lease)" }),
  durationMs: Schema.Number,
  droppedSpans: Schema.Number.annotations({ description: "spans past the ring's limit per trace, not kept" }),
  spans: Schema.Array(TraceSpan)
}).annotations({ identifier: "ItemTrace" })

/**
 * @since 0.1.0
 * @category models
 */
export type ItemTrace = typeof ItemTrace.Type

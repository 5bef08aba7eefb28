/**
 * `POST /jobs` input validation, with an error naming the field (DESIGN.md's ranges and defaults). The HTTP API
 * documents the body as `Domain.JobRequest` but decodes it here: its messages are the contract's.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Domain from "../Domain.js"

/**
 * A request refused: `code` for machines, `message` naming the field for people.
 *
 * @since 0.1.0
 * @category models
 */
export interface Invalid {
  readonly code: string
  readonly message: string
}

/**
 * A validated job request.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobRequest {
  readonly urls: ReadonlyArray<string>
  readonly options: Domain.JobOptions
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const numberField = (
  body: Record<string, unknown>,
  field: string,
  range: Domain.Range,
  fallback: number | null
): Either.Either<number | null, Invalid> => {
  const value = body[field]
  if (value === undefined || value === null) return Either.right(fallback)
  const low = range.exclusiveMin === true ? `> ${range.min}` : `>= ${range.min}`
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return Either.left({ code: "invalid_field", message: `${field} must be a number` })
  }
  if (range.integer && !Number.isInteger(value)) {
    return Either.left({ code: "invalid_field", message: `${field} must be an integer` })
  }
  if ((range.exclusiveMin === true ? value <= range.min : value < range.min) || value > range.max) {
    return Either.left({ code: "invalid_field", message: `${field} must be ${low} and <= ${range.max}` })
  }
  return Either.right(value)
}

/**
 * Validates a parsed JSON body against the contract, applying defaults.
 *
 * @since 0.1.0
 * @category validation
 */
export const jobRequest = (
  body: unknown,
  limits: { readonly maxConcurrency: number; readonly maxUrlsPerJob: number }
): Either.Either<JobRequest, Invalid> => {
  if (!isRecord(body)) return Either.left({ code: "invalid_body", message: "body must be a JSON object" })
  const urls = body.urls
  if (urls === undefined) return Either.left({ code: "invalid_field", message: "urls is required" })
  if (!Array.isArray(urls)) return Either.left({ code: "invalid_field", message: "urls must be an array of strings" })
  if (urls.length === 0) return Either.left({ code: "invalid_field", message: "urls must not be empty" })
  if (urls.length > limits.maxUrlsPerJob) {
    return Either.left({
      code: "too_many_urls",
      message: `urls has ${urls.length} entries; at most ${limits.maxUrlsPerJob} are allowed`
    })
  }
  for (let i = 0; i < urls.length; i++) {
    const url = urls[i]
    if (typeof url !== "string") return Either.left({ code: "invalid_field", message: `urls[${i}] must be a string` })
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return Either.left({ code: "invalid_field", message: `urls[${i}] is not an absolute URL` })
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      return Either.left({ code: "invalid_field", message: `urls[${i}] must use http or https` })
    }
  }
  const fields = {
    concurrency: numberField(
      body,
      "concurrency",
      { min: 1, max: limits.maxConcurrency, integer: true },
      limits.maxConcurrency
    ),
    perHostConcurrency: numberField(body, "perHostConcurrency", Domain.optionRanges.perHostConcurrency, 8),
    perHostRps: numberField(body, "perHostRps", Domain.optionRanges.perHostRps, null),
    perHostBurst: numberField(body, "perHostBurst", Domain.optionRanges.perHostBurst, null),
    timeoutMs: numberField(body, "timeoutMs", Domain.optionRanges.timeoutMs, 30_000),
    maxAttempts: numberField(body, "maxAttempts", Domain.optionRanges.maxAttempts, 3)
  }
  for (const value of Object.values(fields)) if (Either.isLeft(value)) return Either.left(value.left)
  const get = (name: keyof typeof fields) => (fields[name] as Either.Right<Invalid, number | null>).right
  const perHostRps = get("perHostRps")
  return Either.right({
    urls: urls as ReadonlyArray<string>,
    options: {
      concurrency: get("concurrency")!,
      perHostConcurrency: get("perHostConcurrency")!,
      perHostRps,
      perHostBurst: get("perHostBurst") ?? Math.max(1, Math.ceil(perHostRps ?? 1)),
      timeoutMs: get("timeoutMs")!,
      maxAttempts: get("maxAttempts")!
    }
  })
}

/**
 * The command line's view of Harvest: its public HTTP API (`POST /jobs`, `GET /jobs/:id`, `GET /jobs/:id/export`,
 * `DELETE /jobs/:id`) through `@effect/platform`'s `HttpClient`, with a bearer token when one is given, `503`s
 * retried as the contract asks, and every way a call can go wrong as a typed error that names the server.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Domain from "../Domain.js"

/**
 * Harvest could not be reached at all (refused, reset, unknown host): nothing was done there.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unreachable extends Data.TaggedError("Unreachable")<{
  readonly server: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot reach Harvest at ${this.server}: ${this.reason}`
  }
}

/**
 * Harvest answered with an error (`401`, `400`, `404`…), or with something that is not the contract's JSON.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApiError extends Data.TaggedError("ApiError")<{
  readonly server: string
  readonly status: number
  readonly code: string
  readonly detail: string
}> {
  override get message(): string {
    return `Harvest at ${this.server} answered ${this.status} ${this.code}: ${this.detail}`
  }
}

/**
 * What a call to Harvest can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type ClientError = Unreachable | ApiError

/**
 * The `POST /jobs` fields besides `urls`; an absent field takes the server's default.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobSettings {
  readonly concurrency: Option.Option<number>
  readonly perHostConcurrency: Option.Option<number>
  readonly perHostRps: Option.Option<number>
  readonly perHostBurst: Option.Option<number>
  readonly timeoutMs: Option.Option<number>
  readonly maxAttempts: Option.Option<number>
}

/**
 * A job as `POST /jobs` acknowledges it.
 *
 * @since 0.1.0
 * @category models
 */
export const Submitted = Schema.Struct({ id: Schema.String, status: Schema.String, total: Schema.Number })

/**
 * @since 0.1.0
 * @category models
 */
export type Submitted = typeof Submitted.Type

/**
 * A client for one Harvest server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Client {
  /** The server's base URL, `http://host:port`. */
  readonly server: string
  readonly submit: (urls: ReadonlyArray<string>, settings: JobSettings) => Effect.Effect<Submitted, ClientError>
  readonly job: (id: string) => Effect.Effect<Domain.JobView, ClientError>
  readonly cancel: (id: string) => Effect.Effect<Domain.JobView, ClientError>
  /** `GET /jobs/:id/export`: the NDJSON bytes as they arrive. */
  readonly export: (id: string) => Stream.Stream<Uint8Array, ClientError>
}

const decodeErrorBody = Schema.decodeUnknownOption(Domain.ErrorBody)

// A 503 means "not now" (load shedding, a restart): retried this many times, waiting `Retry-After` (capped).
const busyRetries = 20
const busyWaitCap = Duration.seconds(5)

/**
 * A client for the server at `server` (`http://host:port`), with `token` as its bearer token when given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fn("Client.make")(function*(server: string, token: Option.Option<Redacted.Redacted>) {
  const base = server.replace(/\/+$/, "")
  const http = (yield* HttpClient.HttpClient).pipe(
    HttpClient.mapRequest((request) => {
      const withBase = HttpClientRequest.prependUrl(request, base)
      return Option.match(token, {
        onNone: () => withBase,
        onSome: (value) => HttpClientRequest.bearerToken(withBase, value)
      })
    })
  )

  const transport = (error: HttpClientError.HttpClientError) =>
    error._tag === "RequestError"
      ? new Unreachable({ server: base, reason: describe(error.cause) ?? error.reason })
      : new ApiError({ server: base, status: error.response.status, code: "bad_response", detail: error.message })

  // Sends a request; a 503 is retried, any other non-2xx becomes an `ApiError` carrying the server's JSON message.
  const send = (
    request: HttpClientRequest.HttpClientRequest,
    attempt = 0
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, ClientError> =>
    Effect.flatMap(Effect.mapError(http.execute(request), transport), (response) => {
      if (response.status >= 200 && response.status < 300) return Effect.succeed(response)
      if (response.status === 503 && attempt < busyRetries) {
        const seconds = Number(response.headers["retry-after"])
        const wait = Number.isFinite(seconds) && seconds >= 0
          ? Duration.min(Duration.seconds(seconds), busyWaitCap)
          : Duration.millis(250)
        return response.text.pipe(
          Effect.ignore,
          // Interruptible even inside a caller's uninterruptible submission: no job exists while it waits.
          Effect.zipRight(Effect.interruptible(Effect.sleep(wait))),
          Effect.zipRight(send(request, attempt + 1))
        )
      }
      return Effect.flatMap(Effect.orElseSucceed(response.json, () => undefined), (body) => {
        const parsed = decodeErrorBody(body)
        return Effect.fail(
          new ApiError({
            server: base,
            status: response.status,
            code: Option.match(parsed, { onNone: () => "error", onSome: (b) => b.error.code }),
            detail: Option.match(parsed, { onNone: () => "unexpected answer", onSome: (b) => b.error.message })
          })
        )
      })
    })

  const json = <A, I>(schema: Schema.Schema<A, I>, request: HttpClientRequest.HttpClientRequest) =>
    Effect.flatMap(send(request), (response) =>
      response.json.pipe(
        Effect.flatMap(Schema.decodeUnknown(schema)),
        Effect.mapError((error) =>
          new ApiError({ server: base, status: response.status, code: "bad_response", detail: error.message })
        )
      ))

  const jobPath = (id: string) => `/jobs/${encodeURIComponent(id)}`

  const client: Client = {
    server: base,
    submit: (urls, settings) => {
      const body: Record<string, unknown> = { urls }
      for (const [field, value] of Object.entries(settings)) {
        if (Option.isSome(value)) body[field] = value.value
      }
      return json(Submitted, HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post("/jobs"), body)).pipe(
        Effect.withSpan("Client.submit", { attributes: { urls: urls.length } })
      )
    },
    job: (id) => json(Domain.JobView, HttpClientRequest.get(jobPath(id))).pipe(Effect.withSpan("Client.job")),
    cancel: (id) => json(Domain.JobView, HttpClientRequest.del(jobPath(id))).pipe(Effect.withSpan("Client.cancel")),
    export: (id) =>
      Stream.unwrap(
        Effect.map(send(HttpClientRequest.get(`${jobPath(id)}/export`)), (response) =>
          Stream.mapError(response.stream, transport))
      )
  }
  return client
})

// The most useful words of a transport failure: Node's error code (ECONNREFUSED…) or its message.
const describe = (cause: unknown): string | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const record = cause as { code?: unknown; message?: unknown; cause?: unknown }
  if (typeof record.code === "string") return record.code
  const inner = describe(record.cause)
  if (inner !== undefined) return inner
  return typeof record.message === "string" && record.message !== "" ? record.message : undefined
}

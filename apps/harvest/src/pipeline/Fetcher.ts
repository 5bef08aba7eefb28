/**
 * One fetch attempt, bytes only: resolve the URL's host and check the address (`AddressGuard`), connect to exactly
 * that address, and stream the body into the `BodyStore`. The attempt is the unit a retry repeats, so a name that
 * does not resolve yet, a refused connection or a reset is retried like any network error, while what cannot change
 * by trying again (a host that does not exist, a certificate that does not verify, a forbidden address) fails at
 * once with its own code.
 *
 * Requests go through `@effect/platform`'s `HttpClient` over an undici `Agent`. The request is addressed to the checked
 * IP address itself, with the URL's host in the `Host` header (and, for https, as the TLS server name, so the
 * certificate is checked against the host, not the address): no second lookup can change where it goes, and undici
 * keeps a pool of keep-alive connections per address and port. Interrupting an attempt (its timeout, a cancelled job,
 * a shutdown) aborts the request, which destroys its connection, and the body store removes the partial file.
 *
 * The path is built for many small bodies, where per-request overhead is most of the cost (measured on 10,000
 * bodies of about 1 KiB at concurrency 200, CPU per URL of the whole process): the client is the platform's
 * `HttpClient` over undici's `dispatch` (`internal/undiciClient.ts`), not `NodeHttpClient.makeUndici`, whose Node
 * stream per body, cached read effect, abort controller and finalization registry cost about 110 µs more per
 * request than undici itself, and whose body `Stream` costs hundreds more; a small body is read from the client's
 * buffer in one step; the timeout is a timer of the exchange, not `Effect.timeout`; and an attempt opens no span
 * unless a tracer is installed (`Telemetry.TracingRef`: traces exported, or kept in the dashboard's ring; a span per
 * URL measured about 70 µs): then it is an HTTP client span (`GET`, with the semantic conventions' `http.*`,
 * `url.full`, `server.*` and `error.type` attributes) with the body's writing (`harvest.body.write`) as its child. Each attempt is counted and timed (`Telemetry.metrics`) where
 * its outcome is known, with no effect of its own.
 *
 * @since 0.1.0
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { RetryAfter } from "@spindle/core"
import { AddressGuard } from "@spindle/node"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as dns from "node:dns"
import { lookup as dnsLookup } from "node:dns"
import type * as tls from "node:tls"
import { Agent } from "undici"
import { HarvestConfig } from "../HarvestConfig.js"
import * as UndiciClient from "../internal/undiciClient.js"
import * as LocalFaults from "../LocalFaults.js"
import * as BodyStore from "../storage/BodyStore.js"
import * as Telemetry from "../Telemetry.js"

/**
 * The codes a failed item carries (DESIGN.md, and docs/harvest.md for `unresolvable_host` and `tls`).
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorCode =
  | "http_status"
  | "timeout"
  | "body_too_large"
  | "network"
  | "unresolvable_host"
  | "tls"
  | "blocked_address"
  | "circuit_open"
  | "cancelled"

/**
 * An attempt failed. `retryable` says whether another attempt may succeed; `retryAfter` carries the server's hint.
 *
 * @since 0.1.0
 * @category errors
 */
export class FetchFailure extends Data.TaggedError("FetchFailure")<{
  readonly code: ErrorCode
  readonly message: string
  readonly retryable: boolean
  readonly httpStatus: number | null
  readonly retryAfter: Duration.Duration | undefined
}> implements RetryAfter.RetryAfter {
  get [RetryAfter.RetryAfterTypeId](): Duration.Duration {
    return this.retryAfter ?? Duration.zero
  }
}

/**
 * A body stored on disk.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fetched {
  readonly httpStatus: number
  readonly bytes: number
  readonly sha256: string
  readonly fileId: string
}

/**
 * The fetcher: one attempt at a URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fetcher {
  /**
   * One attempt: resolve and check the address, connect to it, stream the body into the BodyStore. A body the store
   * cannot write (a full disk, an I/O error) is a `LocalFault`, not a `FetchFailure`: it is no fault of the host.
   */
  readonly fetch: (
    url: string,
    options: { readonly timeoutMs: number }
  ) => Effect.Effect<Fetched, FetchFailure | LocalFaults.LocalFault>
}

/**
 * The fetcher's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Fetcher: Context.Tag<Fetcher, Fetcher> = Context.GenericTag<Fetcher>("@spindle/harvest/Fetcher")

/**
 * How a fetcher is made: `allowPrivateNetworks` and `maxBodyBytes` as configured; `lookup` replaces DNS (tests, or a
 * resolver of one's own); `tls` adds to the options of every TLS connection (a private CA, say).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly allowPrivateNetworks: boolean
  readonly maxBodyBytes: number
  readonly lookup?: ((host: string) => Promise<ReadonlyArray<dns.LookupAddress>>) | undefined
  readonly tls?: Pick<tls.ConnectionOptions, "ca" | "rejectUnauthorized"> | undefined
}

const failure = (code: ErrorCode, message: string, retryable: boolean, httpStatus: number | null = null) =>
  new FetchFailure({ code, message, retryable, httpStatus, retryAfter: undefined })

// Name resolution that keeps the resolver's error code (the guard reports only its message).
const systemLookup = (host: string) =>
  new Promise<ReadonlyArray<dns.LookupAddress>>((resolve, reject) =>
    dnsLookup(
      host,
      { all: true, verbatim: true },
      (error, addresses) => error === null ? resolve(addresses) : reject(error)
    )
  )

// The error that says what happened: the first in the chain (the platform's error, undici's, the system's) with a
// code of its own, or the innermost.
const rootCause = (error: unknown): unknown => {
  let current = error
  for (let depth = 0; depth < 8 && typeof current === "object" && current !== null; depth++) {
    if (typeof (current as { readonly code?: unknown }).code === "string") return current
    const cause = (current as { readonly cause?: unknown }).cause
    if (cause === undefined) return current
    current = cause
  }
  return current
}

// Resolution answers that no attempt will change: the name does not exist, or has no address.
const permanentlyUnresolvable = new Set(["ENOTFOUND", "ENODATA", "EAI_NONAME", "EAI_NODATA"])

// A certificate that does not verify (OpenSSL's verification codes, and Node's name check), or a TLS handshake the
// two sides cannot agree on: the same on every attempt.
const isTlsFailure = (code: string) =>
  code.includes("CERT") || code.includes("CRL") || code.startsWith("ERR_SSL_") || code === "HOSTNAME_MISMATCH" ||
  code === "INVALID_CA" || code === "PATH_LENGTH_EXCEEDED" || code === "INVALID_PURPOSE"

/**
 * What a failed connection, request or body read means for the item: permanent failures (`unresolvable_host`,
 * `tls`, `body_too_large`) are not retried; everything else (refused, reset, timed out, closed early, a name server
 * that did not answer) is a retryable `network` or `timeout`.
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (error: unknown, httpStatus: number | null = null): FetchFailure => {
  const root = rootCause(error)
  const code = typeof root === "object" && root !== null ? (root as { readonly code?: unknown }).code : undefined
  const message = root instanceof Error ? root.message : String(root)
  if (typeof code !== "string") return failure("network", message, true, httpStatus)
  if (permanentlyUnresolvable.has(code)) return failure("unresolvable_host", message, false, httpStatus)
  if (code === "UND_ERR_RES_EXCEEDED_MAX_SIZE") return failure("body_too_large", message, false, httpStatus)
  if (code === "HARVEST_EXCHANGE_TIMEOUT") return failure("timeout", `Attempt timed out: ${message}`, true, httpStatus)
  if (code === "UND_ERR_CONNECT_TIMEOUT" || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return failure("timeout", message, true, httpStatus)
  }
  if (isTlsFailure(code)) return failure("tls", message, false, httpStatus)
  return failure("network", `${message}${message.includes(code) ? "" : ` (${code})`}`, true, httpStatus)
}

// `Effect.catchAll`, with a handler that a success passes over at no cost (`catchAll` handles successes too, wrapping
// each again): a cause of one failure, the usual one, goes to `f` as `catchAll` would send it, any other through
// `catchAll` itself.
const catchFailure = <A, E, R, A2, E2, R2>(
  self: Effect.Effect<A, E, R>,
  f: (error: E) => Effect.Effect<A2, E2, R2>
): Effect.Effect<A | A2, E2, R | R2> =>
  Effect.catchAllCause(
    self,
    (cause) => Cause.isFailType(cause) ? f(cause.error) : Effect.catchAll(Effect.failCause(cause), f)
  )

// How storing a body can fail: its reading, its size, or the store.
type BodyStoreFailure = HttpClientError.ResponseError | BodyStore.BodyStoreError | BodyStore.BodyTooLarge

// Bodies up to this size are gathered in memory and written with one call; larger ones stream to their temp file.
const memoryBytes = 64 * 1024

// A span's call-site stack trace (Effect captures one per span, an Error made on every call, for a failure's
// `code.stacktrace`) would name Harvest's own plumbing at a cost on every attempt: the attempt's spans go without.
const noStackTrace = { captureStackTrace: false } as const

const userAgent = "harvest/0.1"

// A response header by its lowercase name, read from the client's raw headers when it is ours (the platform's
// `headers` copies every header of the response into an object of its own).
const header = (response: HttpClientResponse.HttpClientResponse, name: string): string | undefined =>
  response instanceof UndiciClient.UndiciResponse ? response.header(name) : response.headers[name]

/**
 * A fetcher over an undici `Agent` of its own, closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Fetcher, never, BodyStore.BodyStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* BodyStore.BodyStore
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Agent({
          // undici stops reading past the limit and destroys the connection: no more than this is ever received.
          maxResponseSize: options.maxBodyBytes,
          ...(options.tls === undefined ? {} : { connect: options.tls })
        })
      ),
      (agent) => Effect.promise(() => agent.destroy())
    )
    // The attempt's limit, connect to last byte, is a timer of the client's exchange (not `Effect.timeout`, whose
    // race costs more CPU than fetching a small body). A response comes with up to `memoryBytes` of its body: a small
    // body is complete by then, read without a wait.
    const client = UndiciClient.make(agent, { prefetch: memoryBytes })
    const lookup = options.lookup ?? systemLookup
    const maxBodyBytes = options.maxBodyBytes
    // Every attempt that ends with an outcome (not an interruption, nor a local fault: neither counts as an attempt)
    // is counted and timed where the outcome is known: no effect of its own on the way.
    const clock = yield* Effect.clock
    const recorder = Telemetry.recorder()
    // Present only with a tracer (OTLP or the ring): then an attempt is a client span, its body's writing a child of it.
    const tracing = yield* Telemetry.TracingRef
    const ended = <A extends FetchFailure | string>(outcome: A, start: bigint): A => {
      recorder.attempt(typeof outcome === "string" ? outcome : outcome.code, start, clock.unsafeCurrentTimeNanos())
      return outcome
    }

    const guardFailure = (error: AddressGuard.BlockedAddress | AddressGuard.UnresolvableHost, resolver: unknown) => {
      if (error._tag === "BlockedAddress") return failure("blocked_address", error.message, false)
      // The resolver's own error says whether the name is gone for good or the name server did not answer.
      if (resolver !== undefined) {
        const classified = classify(resolver)
        return classified.code === "unresolvable_host" ? classified : failure("network", error.message, true)
      }
      // Not an http(s) URL, or no address at all: no attempt changes that.
      return failure("unresolvable_host", error.message, false)
    }

    const statusFailure = (response: HttpClientResponse.HttpClientResponse, start: bigint) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const status = response.status
        const retryable = status === 408 || status === 429 || status >= 500
        const retryAfter = Option.getOrUndefined(RetryAfter.parseHeader(header(response, "retry-after"), now))
        return ended(
          new FetchFailure({
            code: "http_status",
            message: `HTTP ${status}`,
            retryable,
            httpStatus: status,
            retryAfter
          }),
          start
        )
      })

    // What a failure of the exchange means for the attempt: the request's own (no response) and a body that could not
    // be read are classified here, and counted; a body too large for the limit is the item's; one the store could not
    // write is a local fault (not counted: no attempt); the rest was classified where it happened.
    const storeFailure = (status: number, start: bigint) =>
    (
      error: FetchFailure | HttpClientError.RequestError | BodyStoreFailure
    ): FetchFailure | LocalFaults.LocalFault => {
      switch (error._tag) {
        case "RequestError":
          return ended(classify(error), start)
        case "BodyTooLarge":
          return ended(failure("body_too_large", error.message, false, status), start)
        case "BodyStoreError":
          return LocalFaults.fromFileError("writing a body", error.cause)
        case "ResponseError":
          return ended(classify(error, status), start)
        default:
          return error
      }
    }

    // A 2xx body into the store: a small one (the usual case) taken whole from the client's buffer, with no effect on
    // the way when it has all arrived with the response, and written with one call; past `memoryBytes` what was read
    // is written first and the rest streamed after it. Its failures are classified by `send`.
    const store2xx = (
      response: HttpClientResponse.HttpClientResponse
    ): Effect.Effect<BodyStore.Stored, BodyStoreFailure> => {
      let stored: Effect.Effect<BodyStore.Stored, BodyStoreFailure>
      if (response instanceof UndiciClient.UndiciResponse) {
        const whole = response.takeComplete()
        stored = whole !== undefined
          ? store.write(whole.length === 1 ? whole[0] : Buffer.concat(whole), { maxBytes: maxBodyBytes })
          : Effect.flatMap(response.collect(memoryBytes), (collected) =>
            collected.done
              ? store.write(collected.chunks.length === 1 ? collected.chunks[0] : Buffer.concat(collected.chunks), {
                maxBytes: maxBodyBytes
              })
              : store.write(Stream.concat(Stream.fromIterable(collected.chunks), response.stream), {
                maxBytes: maxBodyBytes,
                memoryBytes: 0
              }))
      } else {
        stored = store.write(response.stream, { maxBytes: maxBodyBytes, memoryBytes })
      }
      return tracing === undefined ? stored : Effect.withSpan(stored, "harvest.body.write", noStackTrace)
    }

    // A response: a 2xx body stored; anything else read to its end and failed (classified and counted here).
    const handle = (
      response: HttpClientResponse.HttpClientResponse,
      start: bigint
    ): Effect.Effect<BodyStore.Stored, FetchFailure | BodyStoreFailure> => {
      const status = response.status
      if (status < 200 || status >= 300) {
        // Read to the end and dropped (at most `maxBodyBytes`, the agent sees to it), so the connection is reused.
        const drained = response instanceof UndiciClient.UndiciResponse
          ? response.drain
          : Stream.runDrain(response.stream)
        return Effect.zipRight(Effect.ignore(drained), Effect.flatMap(statusFailure(response, start), Effect.fail))
      }
      const declared = Number(header(response, "content-length") ?? Number.NaN)
      if (declared > maxBodyBytes) {
        // Not read at all: the connection is closed (`send` abandons the exchange).
        return Effect.fail(
          ended(failure("body_too_large", `body of ${declared} bytes exceeds ${maxBodyBytes}`, false, status), start)
        )
      }
      return store2xx(response)
    }

    // The request headers of a host, kept for the next request to it (a bounded number of hosts: a job of many
    // hosts starts the cache again rather than growing it).
    const templates = new Map<string, HttpClientRequest.HttpClientRequest>()
    const templateFor = (host: string) => {
      let template = templates.get(host)
      if (template === undefined) {
        if (templates.size >= 1024) templates.clear()
        template = HttpClientRequest.get("", {
          headers: { host, "user-agent": userAgent, "accept-encoding": "identity" }
        })
        templates.set(host, template)
      }
      return template
    }

    const send = (
      destination: AddressGuard.Destination,
      timeoutMs: number,
      start: bigint
    ): Effect.Effect<Fetched, FetchFailure | LocalFaults.LocalFault> => {
      const url = destination.url
      const address = destination.family === 6 ? `[${destination.address}]` : destination.address
      const port = url.port === "" ? "" : `:${url.port}`
      // To the checked address; the host travels in `Host`, which undici also uses as the TLS server name.
      const request = HttpClientRequest.setUrl(
        templateFor(url.host),
        `${url.protocol}//${address}${port}${url.pathname}${url.search}`
      )
      // One region for the request and its body: whatever ends the attempt (an interruption too), the exchange is
      // abandoned, which aborts a request whose body was not read to the end, closing its connection (a complete one
      // has nothing left to abort).
      // The attempt's outcome is counted and timed here too, except a response's failure, counted where it was known.
      return Effect.uninterruptibleMask((restore) => {
        const exchange = client.exchange(request, timeoutMs)
        let status = 0
        const exchanged = Effect.flatMap(exchange.head, (response) => {
          status = response.status
          return handle(response, start)
        })
        return Effect.matchCauseEffect(restore(exchanged), {
          onFailure: (cause): Effect.Effect<never, FetchFailure | LocalFaults.LocalFault> => {
            exchange.abandon()
            // One failure, the usual cause, mapped at once; any other as `catchAll` treats it.
            return cause._tag === "Fail"
              ? Effect.fail(storeFailure(status, start)(cause.error))
              : Effect.catchAll(Effect.failCause(cause), (error) => Effect.fail(storeFailure(status, start)(error)))
          },
          onSuccess: (body) => {
            exchange.abandon()
            ended("ok", start)
            return Effect.succeed({ httpStatus: status, bytes: body.bytes, sha256: body.sha256, fileId: body.fileId })
          }
        })
      })
    }

    const untraced: Fetcher["fetch"] = (url, { timeoutMs }) =>
      Effect.suspend(() => {
        const start = clock.unsafeCurrentTimeNanos()
        let resolverError: unknown
        const guarded = (host: string) =>
          lookup(host).catch((error: unknown) => {
            resolverError = error
            throw error
          })
        return Effect.flatMap(
          catchFailure(
            AddressGuard.check(url, { allowPrivate: options.allowPrivateNetworks, lookup: guarded }),
            (error) => Effect.fail(ended(guardFailure(error, resolverError), start))
          ),
          (destination) => send(destination, timeoutMs, start)
        )
      })

    // The attempt as an HTTP client span, with the semantic conventions' attributes.
    const traced: Fetcher["fetch"] = (url, options) => {
      const parsed = URL.canParse(url) ? new URL(url) : null
      const port = parsed === null ? undefined : Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80))
      return Effect.withSpan(
        Effect.tapBoth(untraced(url, options), {
          onSuccess: (fetched) =>
            Effect.annotateCurrentSpan({
              "http.response.status_code": fetched.httpStatus,
              "http.response.body.size": fetched.bytes
            }),
          onFailure: (error) =>
            Effect.annotateCurrentSpan(
              error._tag === "FetchFailure"
                ? {
                  "error.type": error.code,
                  ...(error.httpStatus === null ? {} : { "http.response.status_code": error.httpStatus })
                }
                : { "error.type": error.reason }
            )
        }),
        "GET",
        {
          ...noStackTrace,
          kind: "client",
          attributes: {
            "http.request.method": "GET",
            "url.full": url,
            ...(parsed === null ? {} : { "server.address": parsed.hostname, "server.port": port })
          }
        }
      )
    }

    return { fetch: tracing === undefined ? untraced : traced } satisfies Fetcher
  })

/**
 * The fetcher as configured (`HARVEST_ALLOW_PRIVATE_NETWORKS`, `MAX_BODY_BYTES`), writing through the body store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Fetcher, never, HarvestConfig | BodyStore.BodyStore> = Layer.scoped(
  Fetcher,
  Effect.flatMap(
    HarvestConfig,
    (config) => make({ allowPrivateNetworks: config.allowPrivateNetworks, maxBodyBytes: config.maxBodyBytes })
  )
)

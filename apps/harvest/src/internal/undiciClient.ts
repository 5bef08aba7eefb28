/**
 * An `@effect/platform` `HttpClient` over an undici `Dispatcher`, built for fetching many small bodies: the request
 * goes through undici's `dispatch` with a handler of its own, and the response's body is a buffer that the handler
 * fills (pausing the connection when a reader falls behind), read in one step by `UndiciResponse.collect` when it is
 * small. `NodeHttpClient.makeUndici` wraps every body in a Node stream and every read in a cached effect, and the
 * platform's `HttpClient.make` adds an `AbortController`, a finalization registry and a span per request: together
 * about 110 µs of CPU per request more than undici's own `request`, most of a small fetch's budget (Fetcher.ts).
 *
 * Interrupting `execute`, or a read of the body, aborts the request; undici then destroys its connection.
 *
 * @internal
 */
import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Inspectable from "effect/Inspectable"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Dispatcher } from "undici"

/** What the body's buffer holds, with no reader waiting, before it pauses the connection. */
const highWaterMark = 64 * 1024

/**
 * The exchange ran out of its time (`timeouts`): its error, as the cause of the client's error.
 *
 * @internal
 */
export class Timeout extends Error {
  readonly code = "HARVEST_EXCHANGE_TIMEOUT"
  constructor(readonly timeoutMs: number) {
    super(`no complete response within ${timeoutMs} ms`)
  }
}

/** @internal */
export interface Collected {
  /** The chunks read, in order. */
  readonly chunks: ReadonlyArray<Uint8Array>
  readonly bytes: number
  /** Whether they are the whole body; if not, the rest is still to be read (`collect` again, or `stream`). */
  readonly done: boolean
}

// The reason given to undici when a request is aborted: made once (an error's stack trace costs more than a request).
const aborted = new Error("the request was abandoned (interrupted, or its body not read to the end)")

// One exchange: undici's handler (new-style callbacks) and, once the head arrived, the body's buffer.
class Exchange implements Dispatcher.DispatchHandler, ExchangeHandle {
  controller: Dispatcher.DispatchController | undefined
  chunks: Array<Uint8Array> = []
  buffered = 0
  ended = false
  error: unknown = undefined
  abortReason: unknown = undefined
  // Resumed with the response (or the request's failure), then by each change of the body's state.
  onHead:
    | ((exit: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>) => void)
    | undefined
  onBody: (() => void) | undefined

  timer: ReturnType<typeof setTimeout> | undefined = undefined
  // The response, once its head arrived, held back from `onHead` until the body has ended or `prefetch` bytes of it
  // are buffered (`prefetch` 0: at once).
  response: UndiciResponse | undefined = undefined

  constructor(
    readonly request: HttpClientRequest.HttpClientRequest,
    private readonly dispatcher: Dispatcher,
    readonly prefetch: number,
    private readonly timeoutMs: number | undefined
  ) {}

  // Dispatches the request; `resume` is called once, with the response (see `prefetch`) or the request's failure.
  start(
    resume: (exit: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>) => void
  ): void {
    const request = this.request
    const prepared = prepare(request)
    if (prepared instanceof HttpClientError.RequestError) return resume(Effect.fail(prepared))
    this.onHead = resume
    if (this.timeoutMs !== undefined) this.arm(this.timeoutMs)
    try {
      this.dispatcher.dispatch({
        origin: prepared.origin,
        path: prepared.path,
        method: request.method,
        headers: request.headers,
        body: prepared.body,
        // The caller bounds the whole exchange; no idle timeout of undici's own cuts it first.
        headersTimeout: 0,
        bodyTimeout: 0
      }, this)
    } catch (cause) {
      this.onHead = undefined
      this.disarm()
      resume(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause })))
    }
  }

  /**
   * The response, once it comes (`start`). It has no canceler: whoever runs it aborts the exchange (`abandon`) when it
   * gives up on it, an interruption included.
   */
  get head(): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError> {
    return Effect.async((resume) => {
      this.start(resume)
    })
  }

  /**
   * Gives the exchange up: nobody waits for its response any more, and a request not yet complete (its body not read
   * to the end) is aborted, which closes its connection. Nothing happens to a complete one.
   */
  abandon(): void {
    this.onHead = undefined
    this.abort(aborted)
  }

  // Runs `timeoutMs` from the dispatch to the body's last byte; then the exchange fails with a `Timeout` and is
  // aborted. It fails at once, whatever undici is doing: a request still waiting for a connection, or connecting,
  // hears of the abort only once it has one.
  arm(timeoutMs: number) {
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (this.ended || this.error !== undefined) return
      const timeout = new Timeout(timeoutMs)
      this.abort(timeout)
      this.onResponseError(this.controller, timeout)
    }, timeoutMs)
  }

  disarm() {
    if (this.timer === undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
  }

  abort(reason: unknown) {
    this.disarm()
    if (this.ended || this.error !== undefined) return
    if (this.controller === undefined) this.abortReason = reason
    else if (!this.controller.aborted) this.controller.abort(reason as Error)
  }

  onRequestStart(controller: Dispatcher.DispatchController) {
    this.controller = controller
    if (this.abortReason !== undefined) controller.abort(this.abortReason as Error)
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | Array<string> | undefined>
  ) {
    this.response = new UndiciResponse(this.request, statusCode, headers, this)
    if (this.prefetch === 0) this.release()
  }

  // Hands the response to whoever waits for its head.
  release() {
    const resume = this.onHead
    if (resume === undefined || this.response === undefined) return
    this.onHead = undefined
    resume(Effect.succeed(this.response))
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Uint8Array) {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    if (this.onHead !== undefined) {
      if (this.buffered >= this.prefetch) this.release()
      return
    }
    // Nobody is waiting for more: past the mark, the connection waits until someone is.
    if (this.buffered >= highWaterMark && this.onBody === undefined) controller.pause()
    this.wake()
  }

  onResponseEnd() {
    this.ended = true
    this.disarm()
    this.release()
    this.wake()
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error) {
    if (this.error !== undefined) return
    this.error = error
    this.disarm()
    const resume = this.onHead
    if (resume !== undefined) {
      this.onHead = undefined
      // A response held back for its body fails like one whose body failed while being read.
      resume(
        this.response !== undefined
          ? Effect.succeed(this.response)
          : Effect.fail(new HttpClientError.RequestError({ request: this.request, reason: "Transport", cause: error }))
      )
    }
    this.wake()
  }

  wake() {
    const wake = this.onBody
    if (wake === undefined) return
    this.onBody = undefined
    wake()
  }

  take(): Array<Uint8Array> {
    const chunks = this.chunks
    this.chunks = []
    this.buffered = 0
    if (this.controller?.paused === true) this.controller.resume()
    return chunks
  }
}

/**
 * A response whose body is read from the exchange's buffer.
 *
 * @internal
 */
export class UndiciResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpIncomingMessage.TypeId]: HttpIncomingMessage.TypeId = HttpIncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId
  private cachedHeaders: Headers.Headers | undefined

  constructor(
    readonly request: HttpClientRequest.HttpClientRequest,
    readonly status: number,
    readonly rawHeaders: Readonly<Record<string, string | Array<string> | undefined>>,
    private readonly exchange: Exchange
  ) {
    super()
  }

  get headers(): Headers.Headers {
    return this.cachedHeaders ??= Headers.fromInput(this.rawHeaders)
  }

  /**
   * The value of the header `name` (lowercase) as `headers` has it, without building `headers` (a response's every
   * header, copied).
   */
  header(name: string): string | undefined {
    const value = this.rawHeaders[name]
    return Array.isArray(value) ? value.join(", ") : value
  }

  get cookies(): Cookies.Cookies {
    const header = this.rawHeaders["set-cookie"]
    if (header === undefined) return Cookies.empty
    return Cookies.fromSetCookie(Array.isArray(header) ? header : [header])
  }

  get remoteAddress(): Option.Option<string> {
    return Option.none()
  }

  private decodeError(cause: unknown) {
    return new HttpClientError.ResponseError({ request: this.request, response: this, reason: "Decode", cause })
  }

  /**
   * Waits until the body has ended or more than `limit` bytes are buffered, and takes what is buffered. Interrupted,
   * it aborts the request.
   */
  collect(limit: number): Effect.Effect<Collected, HttpClientError.ResponseError> {
    // Answered at once when the buffer already holds the answer (a prefetched small body, the usual case): no wait,
    // so no interruptible region to set up.
    return Effect.suspend(() => this.ready(limit) ? this.collected() : this.awaitCollect(limit))
  }

  private ready(limit: number): boolean {
    const exchange = this.exchange
    return exchange.error !== undefined || exchange.ended || exchange.buffered > limit
  }

  private collected(): Effect.Effect<Collected, HttpClientError.ResponseError> {
    const exchange = this.exchange
    if (exchange.error !== undefined) return Effect.fail(this.decodeError(exchange.error))
    const bytes = exchange.buffered
    const done = exchange.ended
    return Effect.succeed({ chunks: exchange.take(), bytes, done })
  }

  private awaitCollect(limit: number): Effect.Effect<Collected, HttpClientError.ResponseError> {
    return Effect.async<Collected, HttpClientError.ResponseError>((resume) => {
      const exchange = this.exchange
      const check = () => {
        if (this.ready(limit)) return resume(this.collected())
        exchange.onBody = check
        // Waiting for more than is buffered: the connection goes on if it was paused.
        if (exchange.controller?.paused === true) exchange.controller.resume()
      }
      check()
      return Effect.sync(() => {
        exchange.onBody = undefined
        exchange.abort(aborted)
      })
    })
  }

  /**
   * The whole body, taken at once, when it has all arrived and nothing failed (a small body prefetched with its
   * response, the usual case); otherwise `undefined`, and it is read with `collect`.
   */
  takeComplete(): ReadonlyArray<Uint8Array> | undefined {
    const exchange = this.exchange
    if (!exchange.ended || exchange.error !== undefined) return undefined
    return exchange.take()
  }

  /** Whether the whole body has arrived: then `discard` has nothing to abort and reading it needs no wait. */
  get complete(): boolean {
    return this.exchange.ended
  }

  /** Aborts the exchange unless its body has been read to the end (undici then closes the connection). */
  get discard(): Effect.Effect<void> {
    return Effect.sync(() => this.exchange.abort(aborted))
  }

  /** Reads the body to its end and drops it, so that the connection can serve another request. */
  get drain(): Effect.Effect<void, HttpClientError.ResponseError> {
    const loop: Effect.Effect<void, HttpClientError.ResponseError> = Effect.flatMap(
      this.collect(0),
      (collected) => collected.done ? Effect.void : loop
    )
    return loop
  }

  get stream(): Stream.Stream<Uint8Array, HttpClientError.ResponseError> {
    let done = false
    return Stream.repeatEffectChunkOption(
      Effect.suspend(() =>
        done ? Effect.fail(Option.none()) : Effect.map(
          Effect.mapError(this.collect(0), Option.some),
          (collected) => {
            done = collected.done
            return Chunk.unsafeFromArray(collected.chunks as Array<Uint8Array>)
          }
        )
      )
    ).pipe(Stream.ensuring(this.discard))
  }

  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> {
    return Effect.map(this.collect(Number.POSITIVE_INFINITY), ({ bytes, chunks }) => {
      const out = new Uint8Array(bytes)
      let offset = 0
      for (const chunk of chunks) {
        out.set(chunk, offset)
        offset += chunk.length
      }
      return out.buffer
    })
  }

  get text(): Effect.Effect<string, HttpClientError.ResponseError> {
    return Effect.map(this.arrayBuffer, (buffer) => new TextDecoder().decode(buffer))
  }

  get json(): Effect.Effect<unknown, HttpClientError.ResponseError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({
        try: () => text === "" ? null : JSON.parse(text) as unknown,
        catch: (cause) => this.decodeError(cause)
      }))
  }

  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.ResponseError> {
    return Effect.map(this.text, (text) => UrlParams.fromInput(new URLSearchParams(text)))
  }

  get formData(): Effect.Effect<FormData, HttpClientError.ResponseError> {
    return Effect.flatMap(this.arrayBuffer, (buffer) =>
      Effect.tryPromise({
        try: () => new Response(buffer, { headers: this.headers as Record<string, string> }).formData(),
        catch: (cause) => this.decodeError(cause)
      }))
  }

  toJSON(): unknown {
    return { _id: "@effect/platform/HttpClientResponse", request: this.request.toJSON(), status: this.status }
  }
}

const encodeError = (request: HttpClientRequest.HttpClientRequest, description: string) =>
  new HttpClientError.RequestError({ request, reason: "Encode", description })

// Where a request goes and what it sends, as undici's `dispatch` takes them, or why it cannot be sent.
const prepare = (
  request: HttpClientRequest.HttpClientRequest
):
  | { readonly origin: string; readonly path: string; readonly body: string | Uint8Array | null }
  | HttpClientError.RequestError =>
{
  const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
  if (url._tag === "Left") return new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause: url.left })
  let body: string | Uint8Array | null
  switch (request.body._tag) {
    case "Empty":
      body = null
      break
    case "Uint8Array":
      body = request.body.body
      break
    case "Raw":
      if (typeof request.body.body !== "string" && !(request.body.body instanceof Uint8Array)) {
        return encodeError(request, "a raw body must be a string or bytes")
      }
      body = request.body.body
      break
    default:
      return encodeError(request, `${request.body._tag} bodies are not supported`)
  }
  return { origin: url.right.origin, path: `${url.right.pathname}${url.right.search}`, body }
}

/**
 * One exchange, for a caller that keeps it in hand: `head` dispatches the request and waits for the response,
 * and `abandon` aborts the request unless it is complete. `head` has no canceler of its own (an `Effect.async` with a
 * canceler is a region of its own, on every request): the caller abandons the exchange when it is done with it,
 * whatever ended it, an interruption included, in one region that can cover the reading of the body too.
 *
 * @internal
 */
export interface ExchangeHandle {
  readonly head: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>
  readonly abandon: () => void
}

/**
 * The client, with `exchange` besides `execute`. Request bodies may be empty, bytes or a string (`HttpBody.raw`);
 * others fail with an `Encode` error.
 *
 * @internal
 */
export interface Client extends HttpClient.HttpClient {
  /** The exchange of `request`, not dispatched until its `head` runs, with `timeoutMs` from then to the last byte. */
  readonly exchange: (request: HttpClientRequest.HttpClientRequest, timeoutMs?: number | undefined) => ExchangeHandle
}

/**
 * The client. `execute` aborts the request when it is interrupted; `exchange` leaves that to its caller.
 *
 * @internal
 */
export const make = (
  dispatcher: Dispatcher,
  options: {
    /**
     * The time a request of `execute` may take from its dispatch to its body's last byte, looked up per request (the
     * platform keeps per-request state the same way, in a `WeakMap` keyed by the request).
     */
    readonly timeoutMs?: ((request: HttpClientRequest.HttpClientRequest) => number | undefined) | undefined
    /**
     * How many bytes of the body a response waits for before it is answered (at most 64 KiB; default 0, answering
     * with the head). A body no longer than that comes with its response complete, so that reading it needs no wait.
     */
    readonly prefetch?: number | undefined
  } = {}
): Client => {
  const prefetch = Math.min(Math.max(0, options.prefetch ?? 0), highWaterMark)
  const client = HttpClient.makeWith(
    (effect: Effect.Effect<HttpClientRequest.HttpClientRequest>) =>
      Effect.flatMap(effect, (request): Effect.Effect<
        HttpClientResponse.HttpClientResponse,
        HttpClientError.HttpClientError
      > =>
        Effect.async<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>((resume) => {
          const exchange = new Exchange(request, dispatcher, prefetch, options.timeoutMs?.(request))
          exchange.start(resume)
          return Effect.sync(() => exchange.abandon())
        })),
    Effect.succeed
  )
  return Object.assign(client, {
    exchange: (request: HttpClientRequest.HttpClientRequest, timeoutMs?: number | undefined): ExchangeHandle =>
      new Exchange(request, dispatcher, prefetch, timeoutMs)
  })
}

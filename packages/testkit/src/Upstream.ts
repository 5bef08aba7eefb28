/**
 * A simulated upstream HTTP server for testing clients and fetch pipelines over real loopback connections.
 *
 * Every request's query string scripts its response, so one server plays every kind of upstream at once:
 *
 * | parameter | effect |
 * |---|---|
 * | `latency=25` or `latency=10-50` | wait that many ms (fixed, or uniform in the range) before answering |
 * | `status=503` | answer with that status |
 * | `fail=2&key=a` | the first 2 requests with key `a` fail (with `status`, default 503); later ones succeed |
 * | `retryAfter=3` or `retryAfter=date:3` | add `Retry-After`: seconds, or an HTTP date that many seconds ahead |
 * | `bytes=1024` | the body's size (default 64); the body is deterministic, so its SHA-256 is checkable |
 * | `drip=100&every=10` | send the body 100 bytes at a time, `every` ms apart (a slow body) |
 * | `chunked=1` | send no `Content-Length` (chunked encoding) |
 * | `reset=1` | destroy the connection without answering |
 * | `resetAfter=512` | send headers and that many body bytes, then destroy the connection |
 * | `hang=1` | never answer (the connection stays open until the client gives up) |
 * | `page=2&pages=5&per=10` | a JSON listing page with `Link: <…>; rel="next"` until the last page |
 *
 * Every request is recorded with its arrival and end times and host, so tests can assert rates and concurrency
 * as the upstream saw them. Distinct ports on 127.0.0.1 play distinct hosts (clients key hosts by `host:port`), which
 * works on every platform; other 127.0.0.x addresses answer on Linux only (macOS needs loopback aliases).
 *
 * A `Gate` shared by one or more upstreams holds requests until a given number are waiting at once, then lets them
 * all through: a test that asserts a limit is reached waits for the limit to be reached instead of hoping a latency
 * is long enough on a busy machine.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"

/**
 * One request as the upstream saw it.
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * const summary = (r: Upstream.RequestRecord) =>
 *   `${r.method} ${r.path} -> ${r.status} (${r.outcome}) in ${Math.round((r.endedAt ?? r.arrivedAt) - r.arrivedAt)} ms`
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* Upstream.make()
 *   yield* Effect.promise(() => fetch(upstream.url("/items?status=404")).then((res) => res.text()))
 *   return upstream.requests().map(summary)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // ["GET /items -> 404 (answered) in 1 ms"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestRecord {
  readonly method: string
  readonly path: string
  readonly url: string
  /** The `Host` header. */
  readonly host: string
  /** `performance.now()` when the request arrived and when the upstream finished with it (or the client left). */
  readonly arrivedAt: number
  endedAt: number | undefined
  /** How the exchange ended: answered, reset on purpose, or closed by the client first. */
  outcome: "answered" | "reset" | "client_closed" | undefined
  readonly status: number
}

/**
 * A running upstream.
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * // A client under test, pointed at the upstream.
 * const fetchAll = (upstream: Upstream.Upstream, n: number) =>
 *   Effect.forEach(
 *     Array.from({ length: n }, (_, i) => upstream.url(`/item/${i}?latency=20`)),
 *     (url) => Effect.promise(() => fetch(url).then((res) => res.status)),
 *     { concurrency: 3 }
 *   )
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* Upstream.make()
 *   yield* fetchAll(upstream, 9)
 *   // What the upstream saw: a client limited to 3 at once never had more in flight.
 *   return [upstream.requests().length, upstream.peakInFlight() <= 3, upstream.inFlight()]
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [9, true, 0]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Upstream {
  readonly host: string
  readonly port: number
  /** `http://host:port` */
  readonly origin: string
  /** An absolute URL on this upstream. */
  readonly url: (pathAndQuery: string) => string
  /** Every request so far, in arrival order. */
  readonly requests: () => ReadonlyArray<RequestRecord>
  /** Requests being handled now. */
  readonly inFlight: () => number
  /** The most requests handled at once since the start (or `resetStats`). */
  readonly peakInFlight: () => number
  /** Forgets recorded requests, the peak and the `fail` counters. */
  readonly resetStats: () => void
}

/**
 * Options of an upstream.
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const options: Upstream.Options = { host: "127.0.0.1", port: 0 }
 *   // Two upstreams on distinct ports play two hosts (clients key hosts by host:port).
 *   const a = yield* Upstream.make(options)
 *   const b = yield* Upstream.make(options)
 *   return a.origin !== b.origin
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default `127.0.0.1`, which answers on every platform (other 127.0.0.x only on Linux). */
  readonly host?: string | undefined
  /** Default 0 (any free port). */
  readonly port?: number | undefined
  /** Holds every request until the gate opens (before its `latency`). */
  readonly gate?: Gate | undefined
}

/**
 * Holds requests, from any of the upstreams that share it, until `size` are waiting at once, then lets that wave
 * through together; a wave that does not fill within `timeoutMillis` of its first request is let through as it is
 * (so a limit that is never reached fails the test's assertion instead of hanging it).
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const gate: Upstream.Gate = yield* Upstream.gate(4, { timeoutMillis: 5_000 })
 *   const upstream = yield* Upstream.make({ gate })
 *   // A client allowed 4 at once: the gate opens only when 4 requests are waiting together.
 *   yield* Effect.forEach([1, 2, 3, 4], (i) => Effect.promise(() => fetch(upstream.url(`/${i}`))), { concurrency: 4 })
 *   return [gate.filled(), gate.timedOut()]
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [1, 0]: the limit was reached
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Gate {
  readonly size: number
  /** Waves let through because they filled. */
  readonly filled: () => number
  /** Waves let through because `timeoutMillis` passed first. */
  readonly timedOut: () => number
  /** Requests waiting now. */
  readonly waiting: () => number
  /** @internal Holds `pass` until the gate opens; the returned function withdraws it (its client left). */
  readonly hold: (pass: () => void) => () => void
}

/**
 * A gate of `size` requests for the lifetime of the current scope (default `timeoutMillis`: 10 seconds).
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * // One gate shared by two hosts: waves of 2 requests across both.
 * const program = Effect.gen(function*() {
 *   const gate = yield* Upstream.gate(2)
 *   const a = yield* Upstream.make({ gate })
 *   const b = yield* Upstream.make({ gate })
 *   yield* Effect.all([a.url("/x"), b.url("/y")].map((url) => Effect.promise(() => fetch(url))), { concurrency: 2 })
 *   return gate.waiting()
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 0
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const gate = (
  size: number,
  options: { readonly timeoutMillis?: number | undefined } = {}
): Effect.Effect<Gate, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeoutMillis = options.timeoutMillis ?? 10_000
    let held = new Set<() => void>()
    let timer: ReturnType<typeof setTimeout> | undefined
    let filled = 0
    let timedOut = 0
    const open = () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      const wave = held
      held = new Set()
      for (const pass of wave) pass()
    }
    yield* Effect.addFinalizer(() => Effect.sync(open))
    return {
      size,
      filled: () => filled,
      timedOut: () => timedOut,
      waiting: () => held.size,
      hold: (pass) => {
        const entry = () => pass()
        held.add(entry)
        if (held.size >= size) {
          filled++
          open()
        } else if (timer === undefined) {
          timer = setTimeout(() => {
            timer = undefined
            timedOut++
            open()
          }, timeoutMillis)
        }
        return () => {
          held.delete(entry)
          if (held.size === 0 && timer !== undefined) {
            clearTimeout(timer)
            timer = undefined
          }
        }
      }
    }
  })

/**
 * The body served for `bytes=n`: deterministic, so clients' hashes can be checked with `expectedSha256`.
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 *
 * const expected = Upstream.body(100)
 *
 * console.log(expected.length, expected.subarray(0, 16).toString()) // 100 "spindle-upstream"
 * ```
 *
 * @since 0.1.0
 * @category bodies
 */
export const body = (bytes: number): Buffer => {
  const pattern = Buffer.from("spindle-upstream-0123456789abcdefghijklmnopqrstuvwxyz\n")
  const out = Buffer.allocUnsafe(bytes)
  for (let i = 0; i < bytes; i += pattern.length) pattern.copy(out, i, 0, Math.min(pattern.length, bytes - i))
  return out
}

/**
 * The lowercase hex SHA-256 of `body(bytes)`.
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 * import { createHash } from "node:crypto"
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* Upstream.make()
 *   const bytes = yield* Effect.promise(() =>
 *     fetch(upstream.url("/file?bytes=4096&drip=1024&every=1")).then((res) => res.arrayBuffer())
 *   )
 *   // A slow, dripped body still arrives whole.
 *   return createHash("sha256").update(Buffer.from(bytes)).digest("hex") === Upstream.expectedSha256(4096)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category bodies
 */
export const expectedSha256 = (bytes: number): string => createHash("sha256").update(body(bytes)).digest("hex")

const numberParam = (params: URLSearchParams, name: string, fallback: number): number => {
  const raw = params.get(name)
  if (raw === null) return fallback
  const n = Number(raw)
  return Number.isFinite(n) ? n : fallback
}

const latencyOf = (params: URLSearchParams): number => {
  const raw = params.get("latency")
  if (raw === null) return 0
  const range = /^(\d+)-(\d+)$/.exec(raw)
  if (range !== null) {
    const low = Number(range[1])
    const high = Number(range[2])
    return low + Math.random() * (high - low)
  }
  return numberParam(params, "latency", 0)
}

/**
 * Starts an upstream for the lifetime of the current scope.
 *
 * @example
 * ```ts
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* Upstream.make()
 *   // The first 2 requests with key "a" fail with 429 and Retry-After: 1; the third succeeds.
 *   const url = upstream.url("/flaky?fail=2&key=a&status=429&retryAfter=1")
 *   const statuses: Array<string> = []
 *   for (let i = 0; i < 3; i++) {
 *     const res = yield* Effect.promise(() => fetch(url))
 *     statuses.push(`${res.status} ${res.headers.get("retry-after") ?? "-"}`)
 *     yield* Effect.promise(() => res.arrayBuffer())
 *   }
 *   return statuses
 * })
 *
 * // ["429 1", "429 1", "200 1"]: `retryAfter` applies to every answer, `fail` to the first two
 * Effect.runPromise(Effect.scoped(program)).then(console.log)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Upstream, never, Scope.Scope> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    let records: Array<RequestRecord> = []
    let inFlight = 0
    let peak = 0
    let failures = new Map<string, number>()
    const sockets = new Set<Socket>()
    const timers = new Set<ReturnType<typeof setTimeout>>()

    const later = (ms: number, f: () => void) => {
      if (ms <= 0) return f()
      const timer = setTimeout(() => {
        timers.delete(timer)
        f()
      }, ms)
      timers.add(timer)
    }

    const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const url = new URL(req.url ?? "/", "http://upstream")
      const params = url.searchParams
      let status = numberParam(params, "status", 200)
      const key = params.get("key")
      const failFirst = numberParam(params, "fail", 0)
      if (failFirst > 0 && key !== null) {
        const seen = failures.get(key) ?? 0
        failures.set(key, seen + 1)
        status = seen < failFirst ? numberParam(params, "status", 503) : 200
      }
      const record: RequestRecord = {
        method: req.method ?? "GET",
        path: url.pathname,
        url: req.url ?? "/",
        host: req.headers.host ?? "",
        arrivedAt: performance.now(),
        endedAt: undefined,
        outcome: undefined,
        status
      }
      records.push(record)
      inFlight++
      peak = Math.max(peak, inFlight)
      let finished = false
      const finish = (outcome: NonNullable<RequestRecord["outcome"]>) => {
        if (finished) return
        finished = true
        inFlight--
        record.endedAt = performance.now()
        record.outcome = outcome
      }
      let withdraw: (() => void) | undefined
      res.on("close", () => {
        withdraw?.()
        finish(res.writableFinished ? "answered" : "client_closed")
      })

      const answer = () => {
        if (res.destroyed) return
        if (params.get("reset") === "1") {
          finish("reset")
          req.socket.destroy()
          return
        }
        const headers: Record<string, string> = { "content-type": "application/octet-stream" }
        const retryAfter = params.get("retryAfter")
        if (retryAfter !== null) {
          headers["retry-after"] = retryAfter.startsWith("date:")
            ? new Date(Date.now() + Number(retryAfter.slice(5)) * 1000).toUTCString()
            : retryAfter
        }
        const page = params.get("page")
        if (page !== null || params.get("pages") !== null) {
          const n = Number(page ?? "1")
          const pages = numberParam(params, "pages", 1)
          const per = numberParam(params, "per", 10)
          const items = n <= pages ? Array.from({ length: per }, (_, i) => (n - 1) * per + i) : []
          if (n < pages) {
            const next = new URLSearchParams(params)
            next.set("page", String(n + 1))
            headers.link = `<${url.pathname}?${next.toString()}>; rel="next"`
          }
          headers["content-type"] = "application/json"
          res.writeHead(status, headers).end(JSON.stringify({ page: n, items }))
          return
        }
        const payload = body(numberParam(params, "bytes", 64))
        // `chunked=1` sends no Content-Length, so a client only learns the size as the body arrives.
        if (params.get("chunked") !== "1") headers["content-length"] = String(payload.length)
        const resetAfter = params.get("resetAfter")
        if (resetAfter !== null) {
          res.writeHead(status, headers)
          res.write(payload.subarray(0, Number(resetAfter)), () => {
            finish("reset")
            req.socket.destroy()
          })
          return
        }
        const drip = numberParam(params, "drip", 0)
        if (drip <= 0) {
          res.writeHead(status, headers).end(payload)
          return
        }
        res.writeHead(status, headers)
        const every = numberParam(params, "every", 10)
        let offset = 0
        const sendNext = () => {
          if (res.destroyed) return
          const chunk = payload.subarray(offset, offset + drip)
          offset += chunk.length
          if (offset >= payload.length) res.end(chunk)
          else res.write(chunk, () => later(every, sendNext))
        }
        sendNext()
      }

      if (params.get("hang") === "1") return
      const respond = () => later(latencyOf(params), answer)
      if (options.gate === undefined) respond()
      else {
        withdraw = options.gate.hold(() => {
          withdraw = undefined
          respond()
        })
      }
    }

    const server = yield* Effect.acquireRelease(
      Effect.async<http.Server>((resume) => {
        const s = http.createServer({ keepAlive: true }, handle)
        s.on("connection", (socket) => {
          sockets.add(socket)
          socket.on("close", () => sockets.delete(socket))
        })
        s.listen(options.port ?? 0, host, () => resume(Effect.succeed(s)))
      }),
      (s) =>
        Effect.async<void>((resume) => {
          for (const timer of timers) clearTimeout(timer)
          for (const socket of sockets) socket.destroy()
          s.close(() => resume(Effect.void))
        })
    )
    const port = (server.address() as AddressInfo).port
    const origin = `http://${host}:${port}`
    return {
      host,
      port,
      origin,
      url: (pathAndQuery) => `${origin}${pathAndQuery.startsWith("/") ? "" : "/"}${pathAndQuery}`,
      requests: () => records,
      inFlight: () => inFlight,
      peakInFlight: () => peak,
      resetStats: () => {
        records = []
        peak = inFlight
        failures = new Map()
      }
    }
  })

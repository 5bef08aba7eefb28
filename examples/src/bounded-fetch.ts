// Seed pattern: "Rate Limiting" — the semaphore for a concurrent request limit (fetch many URLs, K at a time).
import { Bulkhead } from "@spindle/core"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { pathToFileURL } from "node:url"

/**
 * A request failed: the connection broke, the server answered with an error status, or the body could not be read.
 */
export class FetchError extends Data.TaggedError("FetchError")<{
  readonly url: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `GET ${this.url} failed: ${String(this.cause)}`
  }
}

/**
 * One GET over real HTTP. The `signal` Effect hands to the promise is passed to `fetch`, so interrupting this
 * effect (a timeout, a failed sibling, Ctrl-C) aborts the request and closes its connection instead of leaving it
 * running in the background.
 */
export const fetchText = (url: string): Effect.Effect<string, FetchError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, { signal })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      return await response.text()
    },
    catch: (cause) => new FetchError({ url, cause })
  })

/**
 * Fetches every URL with at most `bulkhead.maxConcurrent` requests in flight, results in input order.
 *
 * The limit lives in the bulkhead, not in this call: batches that share one bulkhead share one limit, which is
 * what an upstream's "at most K connections" actually means. `forEach` pulls URLs lazily with `maxConcurrent`
 * fibers, and the first failure interrupts (and so aborts) the requests still running.
 */
export const fetchAll = <E>(
  bulkhead: Bulkhead.Bulkhead<E>,
  urls: Iterable<string>
): Effect.Effect<Array<string>, E | FetchError> => bulkhead.forEach(urls, fetchText)

/**
 * What the loopback server has seen so far.
 */
export interface ServerStats {
  /** Requests being handled now. */
  readonly inFlight: number
  /** The most requests it ever handled at once. */
  readonly peak: number
  /** Responses sent in full. */
  readonly served: number
  /** Requests whose client went away before the response was sent. */
  readonly aborted: number
}

/**
 * A small `node:http` server on 127.0.0.1 that answers each request after `delay` (or with a 500, in half that time,
 * for paths under `/error`) and counts how many it is handling at once: the upstream of this example, and the
 * witness its test questions.
 */
export interface LoopbackServer {
  readonly baseUrl: string
  readonly stats: Effect.Effect<ServerStats>
}

/**
 * The loopback server could not start listening.
 */
export class ServerError extends Data.TaggedError("ServerError")<{ readonly cause: unknown }> {}

/**
 * Starts the server on an ephemeral port as a scoped resource: it is closed, with every connection it still
 * holds, when the scope closes.
 */
export const loopbackServer = (options: {
  readonly delay: Duration.DurationInput
}): Effect.Effect<LoopbackServer, ServerError, Scope.Scope> => {
  const delayMillis = Duration.toMillis(options.delay)
  const counts = { inFlight: 0, peak: 0, served: 0, aborted: 0 }

  const handler: http.RequestListener = (req, res) => {
    counts.inFlight++
    counts.peak = Math.max(counts.peak, counts.inFlight)
    const failing = req.url?.startsWith("/error") === true
    const timer = setTimeout(() => {
      // Counted as done before the body leaves, so the client can never see a slot free up that the server has not.
      counts.inFlight--
      counts.served++
      res.writeHead(failing ? 500 : 200, { "content-type": "text/plain" })
      res.end(`body of ${req.url}`)
    }, failing ? delayMillis / 2 : delayMillis)
    res.on("close", () => {
      if (!res.writableEnded) {
        // The client hung up first (an aborted fetch): stop the work for it.
        clearTimeout(timer)
        counts.inFlight--
        counts.aborted++
      }
    })
  }

  return Effect.acquireRelease(
    Effect.async<http.Server, ServerError>((resume) => {
      const server = http.createServer(handler)
      const onError = (cause: Error) => resume(Effect.fail(new ServerError({ cause })))
      server.once("error", onError)
      server.listen(0, "127.0.0.1", () => {
        server.off("error", onError)
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        // Keep-alive sockets would otherwise hold `close` open until they time out.
        server.closeAllConnections()
      })
  ).pipe(Effect.map((server) => ({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: Effect.sync((): ServerStats => ({ ...counts }))
  })))
}

/**
 * The runnable demo: 24 URLs against a server that takes 100 ms per request, at most 4 in flight.
 */
export const main = Effect.scoped(
  Effect.gen(function*() {
    const count = 24
    const maxInFlight = 4
    const server = yield* loopbackServer({ delay: "100 millis" })
    const bulkhead = yield* Bulkhead.make({ name: "bounded-fetch", maxConcurrent: maxInFlight })
    const urls = Array.from({ length: count }, (_, i) => `${server.baseUrl}/item/${i}`)
    const [elapsed, bodies] = yield* Effect.timed(fetchAll(bulkhead, urls))
    const stats = yield* server.stats
    yield* Console.log(`fetched ${bodies.length} URLs from ${server.baseUrl} with at most ${maxInFlight} in flight`)
    yield* Console.log(`  first: "${bodies[0]}", last: "${bodies[bodies.length - 1]}"`)
    yield* Console.log(`  the server saw at most ${stats.peak} at once (unbounded, it would have seen ${count})`)
    yield* Console.log(
      `  took ${Math.round(Duration.toMillis(elapsed))} ms: ${count} requests of 100 ms, ${maxInFlight} at a time, ` +
        `need at least ${(count / maxInFlight) * 100} ms`
    )
  })
)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

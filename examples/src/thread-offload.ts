// Seed patterns: "run_in_executor with a thread pool" and "Combining Async and Threads" — a sync call on a thread.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Blocking } from "@spindle/node"
import type * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"
import { gunzipSync } from "node:zlib"
import { deriveKey } from "./workers/sync-library.mjs"

const syncLibrary = new URL("./workers/sync-library.mjs", import.meta.url)

/**
 * The seed's `loop.run_in_executor(pool, blocking_function, arg)`: `crypto.pbkdf2Sync` (one native call that holds
 * its thread for the whole computation) run on a worker thread. The calling fiber suspends until the worker posts
 * the key back, which is all the bridging between the thread and the loop there is: no second event loop, no
 * thread-safe queue, no callback to marshal back onto the loop's thread.
 */
export const deriveKeyOffloaded = (
  password: string,
  salt: string,
  iterations: number
): Effect.Effect<string, Blocking.BlockingCallError> =>
  Blocking.call<string>(syncLibrary, "deriveKey", password, salt, iterations)

/**
 * The same call made inline, for comparison: the seed's blocking call inside a coroutine.
 */
export const deriveKeyInline = (password: string, salt: string, iterations: number): Effect.Effect<string> =>
  Effect.sync(() => deriveKey(password, salt, iterations))

/**
 * `zlib.gzipSync` on a worker thread. The arguments and the result are copied between threads by structured clone:
 * the `Buffer` goes over as a `Uint8Array`, and the compressed `Buffer` comes back as one.
 */
export const compress = (data: Uint8Array, level = 9): Effect.Effect<Uint8Array, Blocking.BlockingCallError> =>
  Blocking.call<Uint8Array>(syncLibrary, "gzip", data, level)

/**
 * A synchronous call that would spin for `ms`, given `limit` to finish. When the limit interrupts the fiber,
 * `Blocking.call` terminates the worker thread and waits until it has stopped, so the call really ends instead of
 * running on unobserved, and the fiber gets a `TimeoutException`. The call counts `heartbeat` up while it runs.
 *
 * Terminating a thread stops JavaScript; a single native call (a huge `pbkdf2Sync`, say) can only be stopped once
 * it returns to JavaScript, and the interruption waits for that.
 */
export const busyWithLimit = (
  ms: number,
  limit: Duration.DurationInput,
  heartbeat: Int32Array = new Int32Array(new SharedArrayBuffer(4))
): Effect.Effect<{ readonly ranMs: number }, Blocking.BlockingCallError | Cause.TimeoutException> =>
  Blocking.call<{ readonly ranMs: number }>(syncLibrary, "busyWait", ms, heartbeat).pipe(Effect.timeout(limit))

/**
 * A tiny HTTP service on 127.0.0.1 built with `@effect/platform`: every request is handled by its own fiber and
 * answered with `pong` at once. It stops when the scope closes.
 */
export const pingServer: Effect.Effect<string, HttpServerError.ServeError, Scope.Scope> = Effect.gen(function*() {
  const context = yield* Layer.build(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
  yield* HttpServer.serveEffect(Effect.succeed(HttpServerResponse.text("pong"))).pipe(Effect.provide(context))
  const address = Context.get(context, HttpServer.HttpServer).address as HttpServer.TcpAddress
  return `http://127.0.0.1:${address.port}/`
})

/**
 * How the service fared while a call ran next to it.
 */
export interface ServeReport<A> {
  readonly result: A
  /** How long the call took, as its caller saw it. */
  readonly callMs: number
  /** Pings the service answered while the call ran. */
  readonly answeredDuring: number
  /** The longest the client went without an answer. */
  readonly longestSilenceMs: number
}

/**
 * Runs `call` while a client fiber pings the service at `url` every 10 ms, and reports what the client saw.
 */
export const serveDuring = <A, E>(url: string, call: Effect.Effect<A, E>): Effect.Effect<ServeReport<A>, E> =>
  Effect.scoped(Effect.gen(function*() {
    const ping = Effect.promise(async (signal) => (await fetch(url, { signal })).text())
    yield* ping
    const answers: Array<number> = [performance.now()]
    yield* Effect.forkScoped(Effect.forever(ping.pipe(
      Effect.zipRight(Effect.sync(() => answers.push(performance.now()))),
      Effect.zipRight(Effect.sleep("10 millis"))
    )))
    // The client is answering before the call starts, and has been answered again after it ends (however long a
    // busy machine makes either take), so the silence around the call is measured from answers on both sides.
    while (answers.length < 3) yield* Effect.sleep("5 millis")
    const start = performance.now()
    const result = yield* call
    const end = performance.now()
    while (answers[answers.length - 1] <= end) yield* Effect.sleep("5 millis")
    let longestSilenceMs = 0
    for (let i = 1; i < answers.length; i++) longestSilenceMs = Math.max(longestSilenceMs, answers[i] - answers[i - 1])
    return {
      result,
      callMs: Math.round(end - start),
      answeredDuring: answers.filter((t) => t > start && t < end).length,
      longestSilenceMs: Math.round(longestSilenceMs)
    }
  }))

/**
 * Some text that compresses well: `lines` lines of CSV.
 */
export const sampleData = (lines: number): Buffer =>
  Buffer.from(Array.from({ length: lines }, (_, i) => `${i},item-${i % 97},${(i * 7919) % 10007}\n`).join(""))

/**
 * The runnable demo: a key derivation inline and on a thread next to a live HTTP service, a compression, and a
 * call cut short by a timeout.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const url = yield* pingServer
  const iterations = 1_000_000
  yield* Console.log(`pbkdf2Sync with ${iterations} iterations while a client pings ${url} every 10 ms:`)
  const inline = yield* serveDuring(url, deriveKeyInline("hunter2", "salt", iterations))
  yield* Console.log(
    `  inline:        ${inline.callMs} ms; the service answered ${inline.answeredDuring} pings meanwhile ` +
      `(silent for ${inline.longestSilenceMs} ms)`
  )
  const offloaded = yield* serveDuring(url, deriveKeyOffloaded("hunter2", "salt", iterations))
  yield* Console.log(
    `  Blocking.call: ${offloaded.callMs} ms; the service answered ${offloaded.answeredDuring} pings meanwhile ` +
      `(silent for at most ${offloaded.longestSilenceMs} ms); same key: ${offloaded.result === inline.result}`
  )
  const data = sampleData(100_000)
  const [took, zipped] = yield* Effect.timed(compress(data))
  yield* Console.log(
    `gzipSync on a thread: ${data.length} bytes -> ${zipped.length} in ${Math.round(Duration.toMillis(took))} ms; ` +
      `round trip intact: ${gunzipSync(zipped).equals(data)}`
  )
  const [waited, outcome] = yield* Effect.timed(Effect.either(busyWithLimit(60_000, "200 millis")))
  yield* Console.log(
    `a 60 s call with a 200 ms timeout: ${outcome._tag === "Left" ? outcome.left._tag : "finished?"} after ` +
      `${Math.round(Duration.toMillis(waited))} ms, its thread terminated`
  )
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

// Seed patterns: "Debug mode: slow callbacks" and "LoopMonitor: detecting blocking code" — watch the loop, shed load.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { EventLoopMonitor, LoadShedder } from "@spindle/node"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"
import { busyWait } from "./workers/sync-library.mjs"

/**
 * A callback that runs too long: anything synchronous (a big `JSON.parse`, a regular expression gone quadratic, a
 * `*Sync` call) holds the loop for its whole duration. In asyncio, debug mode names the slow callback; in
 * JavaScript the culprit is whatever ran synchronously, and the monitor reports how long the loop was held.
 */
export const slowCallback = (ms: number): Effect.Effect<void> => Effect.asVoid(Effect.sync(() => busyWait(ms)))

/**
 * The monitor's settings in this example: a sample every 100 ms, and a warning for any stall over 100 ms (asyncio's
 * `slow_callback_duration` default). Timer resolution 5 ms, so short stalls register too.
 */
export const monitorOptions: EventLoopMonitor.Options = {
  sampleInterval: "100 millis",
  window: "10 seconds",
  blockedThreshold: "100 millis",
  resolution: "5 millis"
}

/**
 * Runs `workload` under an `EventLoopMonitor` and returns its snapshot once two more samples have been taken after
 * the workload ended (the stall is recorded when the monitor's timer finally runs, after it). Each sample that saw
 * a stall longer than the threshold has logged the warning `event loop blocked`, annotated with `blockedMs`.
 */
export const watch = <A, E>(
  workload: Effect.Effect<A, E>,
  options: EventLoopMonitor.Options = monitorOptions
): Effect.Effect<EventLoopMonitor.Snapshot, E> =>
  Effect.scoped(Effect.gen(function*() {
    const monitor = yield* EventLoopMonitor.make(options)
    yield* workload
    // `changes` starts with the current snapshot: skip it, and wait for the next two.
    yield* monitor.changes.pipe(Stream.drop(1), Stream.take(2), Stream.runDrain)
    return yield* monitor.current
  }))

/**
 * A service's ordinary life with one slow callback in it: short waits (I/O) around a synchronous stall of `stallMs`.
 */
export const workloadWithStall = (stallMs: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < 10; i++) yield* Effect.sleep("10 millis")
    yield* slowCallback(stallMs)
    for (let i = 0; i < 10; i++) yield* Effect.sleep("10 millis")
  })

/**
 * A server behind `LoadShedder.middleware`, and the monitor it reads.
 */
export interface SheddingServer {
  readonly url: string
  readonly monitor: EventLoopMonitor.EventLoopMonitor
  readonly shedder: LoadShedder.LoadShedder
}

/**
 * A real HTTP server on 127.0.0.1 with two routes: `/hello`, which answers at once, and `/report`, which renders a
 * report synchronously for 300 ms (the bug: it holds the loop). Every request goes through the load shedder:
 * while the monitor's last sample saw the loop lag more than 100 ms, requests are answered at once with `503` and
 * `Retry-After: 2` instead of queueing behind work that is already late.
 */
export const sheddingServer: Effect.Effect<SheddingServer, HttpServerError.ServeError, Scope.Scope> = Effect.gen(
  function*() {
    const context = yield* Layer.build(Layer.mergeAll(
      NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }),
      LoadShedder.layer({ maxEventLoopDelay: "100 millis", retryAfter: "2 seconds" }).pipe(
        Layer.provideMerge(EventLoopMonitor.layer({ ...monitorOptions, sampleInterval: "500 millis" }))
      )
    ))
    const shedder = Context.get(context, LoadShedder.LoadShedder)
    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/hello", Effect.succeed(HttpServerResponse.text("hello"))),
      HttpRouter.get("/report", Effect.as(slowCallback(300), HttpServerResponse.text("report")))
    )
    // The middleware is typed as a generic `HttpMiddleware`, which forgets the app's type: the router needs nothing.
    yield* HttpServer.serveEffect(shedder.middleware(router) as HttpApp.Default).pipe(Effect.provide(context))
    const address = Context.get(context, HttpServer.HttpServer).address as HttpServer.TcpAddress
    return {
      url: `http://127.0.0.1:${address.port}`,
      monitor: Context.get(context, EventLoopMonitor.EventLoopMonitor),
      shedder
    }
  }
)

/**
 * What a GET came back with.
 */
export interface Answer {
  readonly status: number
  readonly retryAfter: string | null
  readonly body: string
}

/**
 * One GET with `fetch`.
 */
export const get = (url: string): Effect.Effect<Answer> =>
  Effect.promise(async (signal) => {
    const response = await fetch(url, { signal })
    return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.text() }
  })

/**
 * Waits for the monitor's next snapshot that satisfies `predicate` (the current one counts).
 */
export const awaitSnapshot = (
  monitor: EventLoopMonitor.EventLoopMonitor,
  predicate: (snapshot: EventLoopMonitor.Snapshot) => boolean
): Effect.Effect<Option.Option<EventLoopMonitor.Snapshot>> =>
  monitor.changes.pipe(
    Stream.filter(predicate),
    Stream.runHead,
    Effect.timeoutTo({
      duration: "5 seconds",
      onSuccess: (snapshot) => snapshot,
      onTimeout: () => Option.none()
    })
  )

/**
 * The runnable demo: a stall caught and logged, the percentiles, then a server shedding load while its loop lags.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  yield* Console.log("a 250 ms slow callback among short waits, under the monitor:")
  const snapshot = yield* watch(workloadWithStall(250))
  yield* Console.log(
    `  delay over the window: p50 ${snapshot.p50Ms} ms, p99 ${snapshot.p99Ms} ms, max ${snapshot.maxMs} ms`
  )

  const server = yield* sheddingServer
  yield* Console.log(`a server behind LoadShedder.middleware on ${server.url}:`)
  yield* Console.log(`  GET /hello  -> ${(yield* get(`${server.url}/hello`)).status}`)
  const lagging = yield* Effect.fork(awaitSnapshot(server.monitor, (s) => s.lastMaxMs > 100))
  yield* Console.log(`  GET /report -> ${(yield* get(`${server.url}/report`)).status} (rendered synchronously: 300 ms)`)
  yield* Fiber.join(lagging)
  const shed = yield* get(`${server.url}/hello`)
  yield* Console.log(`  GET /hello  -> ${shed.status}, Retry-After: ${shed.retryAfter}, ${shed.body}`)
  yield* awaitSnapshot(server.monitor, (s) => s.lastMaxMs <= 100)
  yield* Console.log(`  GET /hello  -> ${(yield* get(`${server.url}/hello`)).status} once a sample saw a calm loop`)
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

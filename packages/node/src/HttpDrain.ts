/**
 * An HTTP server that shuts down gracefully: a drop-in for `NodeHttpServer.layer` whose release stops accepting
 * connections, lets requests in flight finish for a grace period, answers requests arriving on kept-alive
 * connections meanwhile with `503` and `Connection: close`, then interrupts what is left — and waits for it.
 *
 * The waiting is the point. `NodeHttpServer` runs each request as a root fiber tied to no scope, so when the
 * layers are released a handler can still be running after the database layer it uses was closed. Here every
 * request fiber is tracked, and the server layer's release returns only once all of them have ended. Since the
 * server layer is built on top of (and so released before) the layers its handlers use, no handler ever runs
 * against a released resource.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Http from "node:http"
import type * as Net from "node:net"

/**
 * How the server drains.
 *
 * @example
 * ```ts
 * import { HttpDrain } from "@spindle/node"
 * import { createServer } from "node:http"
 *
 * // Requests in flight get 10 seconds to finish once shutdown starts.
 * const options: HttpDrain.Options = { grace: "10 seconds" }
 *
 * const ServerLive = HttpDrain.layer(createServer, { port: 8080 }, options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long requests in flight may finish once draining starts. Default 10 seconds. */
  readonly grace?: Duration.DurationInput | undefined
}

/**
 * What the draining server exposes besides `HttpServer`: its state, for readiness checks.
 *
 * @example
 * ```ts
 * import { HttpDrain } from "@spindle/node"
 * import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
 * import * as Effect from "effect/Effect"
 *
 * // A readiness probe: 503 as soon as draining starts, so the load balancer stops sending traffic.
 * const ready = (drain: HttpDrain.HttpDrain) =>
 *   Effect.map(drain.isDraining, (draining) =>
 *     draining ? HttpServerResponse.text("draining", { status: 503 }) : HttpServerResponse.text("ready"))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpDrain {
  /** `true` once draining has started. */
  readonly isDraining: Effect.Effect<boolean>
  /** Requests being handled now. */
  readonly inFlight: Effect.Effect<number>
  /** Starts draining without closing the layer (new requests get 503); idempotent. */
  readonly startDraining: Effect.Effect<void>
}

/**
 * The draining server's service.
 *
 * @example
 * ```ts
 * import { HttpDrain } from "@spindle/node"
 * import * as HttpRouter from "@effect/platform/HttpRouter"
 * import * as HttpServer from "@effect/platform/HttpServer"
 * import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 * import { createServer } from "node:http"
 *
 * const app = HttpRouter.empty.pipe(
 *   HttpRouter.get(
 *     "/ready",
 *     Effect.flatMap(HttpDrain.HttpDrain, (drain) =>
 *       Effect.map(drain.inFlight, (n) => HttpServerResponse.text(`in flight: ${n}`)))
 *   )
 * )
 *
 * const ServerLive = HttpServer.serve(app).pipe(
 *   Layer.provide(HttpDrain.layer(createServer, { port: 8080 }, { grace: "10 seconds" }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const HttpDrain: Context.Tag<HttpDrain, HttpDrain> = Context.GenericTag<HttpDrain>("@spindle/node/HttpDrain")

const drainingResponse = HttpServerResponse.unsafeJson(
  { error: { code: "shutting_down", message: "The server is shutting down; retry on another connection" } },
  { status: 503, headers: { connection: "close", "retry-after": "1" } }
)

/**
 * Creates the server and its drain control in the current scope; closing the scope drains it.
 *
 * @example
 * ```ts
 * import { HttpDrain } from "@spindle/node"
 * import * as HttpServer from "@effect/platform/HttpServer"
 * import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
 * import * as Effect from "effect/Effect"
 * import { createServer } from "node:http"
 *
 * // Serve until `stop` completes, then drain: the scope's release waits for every handler.
 * const serveUntil = (stop: Effect.Effect<void>) =>
 *   Effect.scoped(Effect.gen(function*() {
 *     const listen = { port: 0, host: "127.0.0.1" }
 *     const [server, drain] = yield* HttpDrain.make(createServer, listen, { grace: "5 seconds" })
 *     yield* Effect.forkScoped(server.serve(HttpServerResponse.text("hello")))
 *     yield* stop
 *     yield* drain.startDraining
 *   }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  evaluate: () => Http.Server,
  listen: Net.ListenOptions,
  options: Options = {}
): Effect.Effect<readonly [HttpServer.HttpServer, HttpDrain], HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    const graceMillis = Duration.toMillis(options.grace ?? "10 seconds")
    const node = evaluate()
    // The platform server listens here but takes requests only once `serve` runs, after whatever layers are built in
    // between: a request that arrived meanwhile met no listener and was never answered (a health check polling a
    // starting service hung for good). Until `serve` attaches the handler, requests get `503` with `Retry-After`.
    const beforeServe = (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
      response.writeHead(503, { "content-type": "text/plain", "retry-after": "1", connection: "close" })
      response.end("starting")
    }
    node.on("request", beforeServe)
    // The platform server owns listening and the final close; draining happens before, in `serve`'s finalizer.
    const inner = yield* NodeHttpServer.make(() => node, listen)
    const requests = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
    let draining = false
    let closed: Promise<void> | undefined

    const startDraining = Effect.sync(() => {
      if (draining) return
      draining = true
      // Stop accepting connections; Node also closes the idle kept-alive ones.
      closed = new Promise((resolve) => node.close(() => resolve()))
    })

    const track = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
      Effect.withFiberRuntime((fiber) => {
        if (draining) return Effect.succeed(drainingResponse)
        requests.add(fiber)
        // The platform runs request fibers uninterruptibly and only its routers make handlers interruptible again;
        // a plain app must be too, or neither a client abort nor the end of the grace period could stop it.
        return Effect.ensuring(Effect.interruptible(app), Effect.sync(() => requests.delete(fiber)))
      })

    const drain = Effect.gen(function*() {
      yield* startDraining
      const deadline = (yield* Clock.currentTimeMillis) + graceMillis
      while (requests.size > 0 && (yield* Clock.currentTimeMillis) < deadline) yield* Effect.sleep(Duration.millis(10))
      const left = Array.from(requests)
      if (left.length > 0) {
        yield* Effect.logWarning("interrupting requests still running after the grace period").pipe(
          Effect.annotateLogs({ requests: left.length, graceMs: graceMillis })
        )
        // Interrupt them and wait until each has really ended (its finalizers included).
        yield* Effect.forEach(left, (fiber) => Fiber.interruptAs(fiber, FiberId.none), { discard: true })
      }
      node.closeAllConnections()
      if (closed !== undefined) yield* Effect.promise(() => closed!)
    })

    const server = HttpServer.make({
      address: inner.address,
      serve: (app, middleware) =>
        Effect.gen(function*() {
          // Registered before the platform's own finalizer (which unhooks the handler), so it runs after draining.
          const tracked = middleware === undefined
            ? track(app)
            : track((middleware as HttpMiddleware.HttpMiddleware)(app) as HttpApp.Default<unknown>)
          yield* inner.serve(tracked)
          node.off("request", beforeServe)
          yield* Effect.addFinalizer(() => drain)
        })
    })
    const control: HttpDrain = {
      isDraining: Effect.sync(() => draining),
      inFlight: Effect.sync(() => requests.size),
      startDraining
    }
    return [server, control] as const
  })

/**
 * A layer providing `HttpServer` (plus the platform services `NodeHttpServer.layer` provides) and `HttpDrain`.
 *
 * @example
 * ```ts
 * import { HttpDrain, Shutdown } from "@spindle/node"
 * import * as HttpServer from "@effect/platform/HttpServer"
 * import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
 * import * as Layer from "effect/Layer"
 * import { createServer } from "node:http"
 *
 * const ServerLive = HttpServer.serve(HttpServerResponse.text("hello")).pipe(
 *   Layer.provide(HttpDrain.layer(createServer, { port: 8080, host: "0.0.0.0" }, { grace: "10 seconds" })),
 *   Shutdown.phase("http")
 * )
 *
 * // On SIGTERM: stop accepting, let handlers finish for 10 s, interrupt the rest, wait for them, exit 0.
 * export const main = () => Shutdown.runLayer(ServerLive, { deadline: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  evaluate: () => Http.Server,
  listen: Net.ListenOptions,
  options: Options = {}
): Layer.Layer<
  HttpServer.HttpServer | HttpDrain | Layer.Layer.Success<typeof NodeHttpServer.layerContext>,
  HttpServerError.ServeError
> =>
  Layer.mergeAll(
    Layer.scopedContext(Effect.map(make(evaluate, listen, options), ([server, control]) =>
      Context.make(HttpServer.HttpServer, server).pipe(Context.add(HttpDrain, control)))),
    NodeHttpServer.layerContext
  )

/**
 * Load shedding for HTTP servers: while the event loop is lagging or too many requests are in flight, new requests
 * are answered at once with `503` and `Retry-After` instead of queueing behind the work that is already late —
 * what `@fastify/under-pressure` does for Fastify, as an `HttpMiddleware` for `@effect/platform` servers.
 *
 * The loop delay comes from the `EventLoopMonitor` (the longest delay in its last sample), so shedding stops as soon
 * as the loop has recovered rather than when a long window has forgotten the spike.
 *
 * @since 0.1.0
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as EventLoopMonitor from "./EventLoopMonitor.js"

/**
 * Limits past which requests are shed.
 *
 * @example
 * ```ts
 * import { LoadShedder } from "@spindle/node"
 *
 * const options: LoadShedder.Options = {
 *   maxEventLoopDelay: "200 millis",
 *   maxInFlight: 500,
 *   retryAfter: "2 seconds" // what Retry-After tells shed clients
 * }
 *
 * const ShedderLive = LoadShedder.layer(options)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Shed while the loop's recent delay exceeds this. Default 200 ms. */
  readonly maxEventLoopDelay?: Duration.DurationInput | undefined
  /** Shed while this many requests are in flight. Default: no limit. */
  readonly maxInFlight?: number | undefined
  /** What `Retry-After` tells clients. Default 1 second. */
  readonly retryAfter?: Duration.DurationInput | undefined
}

/**
 * Why requests are being shed now, if they are.
 *
 * @example
 * ```ts
 * import { LoadShedder } from "@spindle/node"
 *
 * const describe = (pressure: LoadShedder.Pressure): string => {
 *   switch (pressure._tag) {
 *     case "None":
 *       return "accepting"
 *     case "EventLoopDelay":
 *       return `shedding: loop ${pressure.delayMs} ms late (limit ${pressure.limitMs})`
 *     case "InFlight":
 *       return `shedding: ${pressure.inFlight} in flight (limit ${pressure.limit})`
 *   }
 * }
 *
 * console.log(describe({ _tag: "InFlight", inFlight: 500, limit: 500 })) // "shedding: 500 in flight (limit 500)"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Pressure =
  | { readonly _tag: "None" }
  | { readonly _tag: "EventLoopDelay"; readonly delayMs: number; readonly limitMs: number }
  | { readonly _tag: "InFlight"; readonly inFlight: number; readonly limit: number }

/**
 * A load shedder: its middleware, and what it sees.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor, LoadShedder } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const shedder: LoadShedder.LoadShedder = yield* LoadShedder.make({ maxInFlight: 100 })
 *   return [(yield* shedder.pressure)._tag, yield* shedder.inFlight] as const
 * }).pipe(Effect.provide(EventLoopMonitor.layer()))
 *
 * Effect.runPromise(program).then(console.log) // ["None", 0]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadShedder {
  /** Wrap an `HttpApp` (or the whole server) with it; the app keeps its type. */
  readonly middleware: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R>
  /** Requests in flight through the middleware now. */
  readonly inFlight: Effect.Effect<number>
  /** The pressure now. */
  readonly pressure: Effect.Effect<Pressure>
  /** The pressure now, synchronously. */
  readonly unsafePressure: () => Pressure
}

/**
 * The load shedder service.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor, LoadShedder } from "@spindle/node"
 * import * as HttpServer from "@effect/platform/HttpServer"
 * import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * const app = HttpServerResponse.text("hello")
 *
 * // Every request passes the shedder first; under pressure it answers 503 with Retry-After.
 * const ServeLive = Layer.unwrapEffect(
 *   Effect.map(LoadShedder.LoadShedder, (shedder) => HttpServer.serve(shedder.middleware(app)))
 * ).pipe(Layer.provide(LoadShedder.layer({ maxInFlight: 500 })), Layer.provide(EventLoopMonitor.layer()))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const LoadShedder: Context.Tag<LoadShedder, LoadShedder> = Context.GenericTag<LoadShedder>(
  "@spindle/node/LoadShedder"
)

const shed = Metric.counter("spindle_http_shed_total", {
  description: "Requests answered 503 by the load shedder",
  incremental: true
})

/**
 * The metrics the shedder updates: requests shed.
 *
 * @example
 * ```ts
 * import { LoadShedder } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const shedSoFar = Effect.map(Metric.value(LoadShedder.metrics.shed), (state) => state.count)
 *
 * Effect.runPromise(shedSoFar).then(console.log) // 0
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = { shed } as const

/**
 * Creates a load shedder reading the `EventLoopMonitor` in context.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor, LoadShedder } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const shedder = yield* LoadShedder.make({ maxEventLoopDelay: "100 millis" })
 *   // A synchronous read, for hot paths.
 *   return shedder.unsafePressure()._tag
 * }).pipe(Effect.provide(EventLoopMonitor.layer()))
 *
 * Effect.runPromise(program).then(console.log) // "None"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<LoadShedder, never, EventLoopMonitor.EventLoopMonitor> =>
  Effect.map(EventLoopMonitor.EventLoopMonitor, (monitor) => {
    const limitMs = Duration.toMillis(options.maxEventLoopDelay ?? "200 millis")
    const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY
    const retryAfterSeconds = Math.max(1, Math.ceil(Duration.toSeconds(options.retryAfter ?? "1 second")))
    let inFlight = 0

    const unsafePressure = (): Pressure => {
      const delayMs = monitor.unsafeCurrent().lastMaxMs
      if (delayMs > limitMs) return { _tag: "EventLoopDelay", delayMs, limitMs }
      if (inFlight >= maxInFlight) return { _tag: "InFlight", inFlight, limit: maxInFlight }
      return { _tag: "None" }
    }

    const release = Effect.sync(() => {
      inFlight--
    })

    const middleware = HttpMiddleware.make(<E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
      Effect.suspend(() => {
        const pressure = unsafePressure()
        if (pressure._tag !== "None") {
          shed.unsafeUpdate(1, [])
          return Effect.succeed(HttpServerResponse.unsafeJson({
            error: {
              code: "overloaded",
              message: pressure._tag === "InFlight"
                ? `Too many requests in flight (${pressure.inFlight}); retry later`
                : `Event loop delay ${Math.round(pressure.delayMs)} ms exceeds ${pressure.limitMs} ms; retry later`
            }
          }, { status: 503, headers: { "retry-after": String(retryAfterSeconds) } }))
        }
        inFlight++
        return Effect.ensuring(app, release)
      })
    )

    return {
      middleware,
      inFlight: Effect.sync(() => inFlight),
      pressure: Effect.sync(unsafePressure),
      unsafePressure
    }
  })

/**
 * A layer providing the `LoadShedder` service.
 *
 * @example
 * ```ts
 * import { EventLoopMonitor, LoadShedder } from "@spindle/node"
 * import * as Layer from "effect/Layer"
 *
 * const ShedderLive = LoadShedder.layer({ maxEventLoopDelay: "200 millis", maxInFlight: 1000 }).pipe(
 *   Layer.provide(EventLoopMonitor.layer())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<LoadShedder, never, EventLoopMonitor.EventLoopMonitor> =>
  Layer.effect(LoadShedder, make(options))

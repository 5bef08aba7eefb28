/**
 * Harvest assembled, each part a layer on the ones it needs: configuration → database → storage (the item queue, jobs,
 * the body store) → the local faults it may meet (`LocalFaults`, probing the body store and the database) → the
 * pipeline (results, the host gate with its limit store, the fetcher, the scheduler) → the dashboard's events → HTTP.
 * The storage thread, which the database and the body store share, comes first. Shutdown releases them in reverse: HTTP
 * drains first; the scheduler stops leasing, lets fetches in flight finish for `SHUTDOWN_GRACE_MS` and releases what is
 * left; `Results` commits what was handed to it; then the database closes. A fault at start (`Startup`: a data
 * directory it cannot write, a database it cannot reach, an address it cannot listen on) fails the layer with a typed
 * error whose message is one line.
 *
 * @since 0.1.0
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { TokenBucketStore } from "@spindle/core"
import { EventLoopMonitor, HttpDrain, LoadShedder, Shutdown, TimeSlicedScheduler } from "@spindle/node"
import { RedisSlotStore, RedisTokenBucketStore } from "@spindle/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as Events from "./dashboard/Events.js"
import { HarvestConfig } from "./HarvestConfig.js"
import * as Http from "./http/Handlers.js"
import * as Instance from "./Instance.js"
import * as LocalFaults from "./LocalFaults.js"
import * as Fetcher from "./pipeline/Fetcher.js"
import * as HostGate from "./pipeline/HostGate.js"
import * as Results from "./pipeline/Results.js"
import * as Scheduler from "./pipeline/Scheduler.js"
import * as Startup from "./Startup.js"
import * as BodyStore from "./storage/BodyStore.js"
import * as Database from "./storage/Database.js"
import * as Jobs from "./storage/Jobs.js"
import * as StorageThread from "./storage/StorageThread.js"
import * as Telemetry from "./Telemetry.js"

// With REDIS_URL, one connection serves the per-host rates (token buckets) and the per-host concurrency (slots), so
// that both hold across instances. The host gate looks the slot store up as an optional service: without Redis, its
// in-process limiter is the whole per-host concurrency limit.
const LimitStoreLive = Layer.unwrapEffect(Effect.map(
  HarvestConfig,
  (config): Layer.Layer<TokenBucketStore.TokenBucketStore> =>
    Option.match(config.redisUrl, {
      onNone: () => TokenBucketStore.layerMemory,
      onSome: (url) =>
        Layer.merge(RedisTokenBucketStore.layer(), RedisSlotStore.layer()).pipe(
          Layer.provide(RedisTokenBucketStore.layerConnection(Redacted.value(url)))
        )
    })
))

// Requests polled or scraped all day long (`/health` by load balancers, `/metrics` by Prometheus, the dashboard's page
// and its snapshots): a trace of each would flood the tracing backend with traces of nothing. The API's routes keep
// their server spans.
const untracedPaths = new Set(["/", "/health", "/metrics", "/favicon.ico", "/openapi.json", "/docs"])
const untracedRequest = (request: HttpServerRequest.HttpServerRequest) => {
  const query = request.url.indexOf("?")
  const path = query === -1 ? request.url : request.url.slice(0, query)
  return untracedPaths.has(path) || path.startsWith("/dashboard/")
}

const HttpLive = Layer.unwrapEffect(Effect.map(HarvestConfig, (config) => {
  const routes = Layer.scopedDiscard(Effect.gen(function*() {
    const app = yield* Http.app
    const shedder = yield* LoadShedder.LoadShedder
    yield* HttpServer.serveEffect(shedder.middleware(app)).pipe(
      HttpMiddleware.withTracerDisabledWhenEffect(untracedRequest)
    )
    const server = yield* HttpServer.HttpServer
    const address = server.address as HttpServer.TcpAddress
    yield* Effect.logInfo("Harvest listening").pipe(
      Effect.annotateLogs({ url: `http://${config.host}:${address.port}` })
    )
  }))
  return routes.pipe(
    Layer.provide(Http.layer),
    Layer.provide(LoadShedder.layer({ maxEventLoopDelay: `${config.shedEventLoopDelayMs} millis` })),
    Layer.provideMerge(
      HttpDrain.layer(createServer, { port: config.port, host: config.host }, {
        grace: `${config.shutdownGraceMs} millis`
      }).pipe(
        Layer.mapError((error) =>
          new Startup.CannotListen({ host: config.host, port: config.port, cause: error.cause })
        )
      )
    )
  )
}))

/**
 * The whole service over a configuration layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const make = <E>(config: Layer.Layer<HarvestConfig, E>) => {
  // The storage thread (bodies on slow storage, SQLite's checkpoints) outlives the database and the body store.
  const data = Database.layer.pipe(Shutdown.phase("database"), Layer.provideMerge(StorageThread.layer))
  // A data directory it cannot write stops Harvest with its reason; a database error in the first sweep is a defect.
  const bodies = BodyStore.layer.pipe(
    Layer.catchAll((error) => error._tag === "SqlError" ? Layer.die(error) : Layer.fail(error))
  )
  const storage = Layer.mergeAll(Jobs.layer, bodies).pipe(Layer.provideMerge(Jobs.layerItems))
  const pipeline = Scheduler.layer.pipe(
    Shutdown.phase("pipeline"),
    Layer.provideMerge(Fetcher.layer),
    Layer.provideMerge(Layer.provide(HostGate.layer, LimitStoreLive)),
    Layer.provideMerge(Results.layer())
  )
  return HttpLive.pipe(
    Shutdown.phase("http"),
    Layer.provideMerge(Events.layer()),
    Layer.provideMerge(pipeline),
    Layer.provideMerge(EventLoopMonitor.layer()),
    Layer.provideMerge(Telemetry.layer),
    Layer.provideMerge(LocalFaults.layer),
    Layer.provideMerge(storage),
    Layer.provideMerge(Instance.layer),
    Layer.provideMerge(data),
    Layer.provideMerge(config),
    // Every fiber of the service, built after it, runs on a scheduler that gives each turn of the event loop 1 ms of
    // fiber work: under a job, the responses of 200 fetches in flight no longer make one turn of 40 ms and more, in
    // which the loop neither accepts connections nor answers /health. Alternated runs of the 10,000-URL job put the
    // loop's p99 at 16-17 ms with 1 ms, 19-22 with 2 and 20-25 with the default 4, at the same job time and CPU.
    Layer.provide(TimeSlicedScheduler.layer({ slice: "1 millis" }))
  )
}

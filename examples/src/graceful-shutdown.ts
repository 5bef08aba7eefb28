// Seed pattern: "Background Task Management" — its graceful shutdown, for a service: drain HTTP, then the database.
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { HttpDrain, Shutdown } from "@spindle/node"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"

/**
 * A query reached the database after it was closed: the bug a graceful shutdown exists to prevent.
 */
export class DatabaseClosed extends Data.TaggedError("DatabaseClosed")<{ readonly sql: string }> {}

/**
 * A stand-in for a connection pool: queries take time, and fail once it is closed.
 */
export class Database extends Context.Tag("examples/Database")<Database, {
  readonly query: (sql: string, ms: number) => Effect.Effect<string, DatabaseClosed>
}>() {}

/**
 * The database as a scoped resource: opened when the layer is built, closed (after flushing for 50 ms) when it is
 * released. Each step is printed, so the order of events is visible from outside the process.
 */
export const DatabaseLive: Layer.Layer<Database> = Layer.scoped(
  Database,
  Effect.gen(function*() {
    let open = true
    const ensureOpen = (sql: string) =>
      Effect.suspend(() => open ? Effect.void : Effect.fail(new DatabaseClosed({ sql })))
    yield* Effect.acquireRelease(
      Console.log("database opened"),
      () =>
        Effect.sleep("50 millis").pipe(
          Effect.zipRight(Effect.sync(() => {
            open = false
          })),
          Effect.zipRight(Console.log("database closed"))
        )
    )
    return {
      query: (sql, ms) =>
        ensureOpen(sql).pipe(
          Effect.zipRight(Console.log(`query started: ${sql}`)),
          Effect.zipRight(Effect.sleep(ms)),
          Effect.zipRight(ensureOpen(sql)),
          Effect.zipRight(Console.log(`query finished: ${sql}`)),
          Effect.as(`result of ${sql}`),
          Effect.onInterrupt(() => Console.log(`query interrupted: ${sql}`))
        )
    }
  })
)

const queryRoute = (sql: string, ms: number) =>
  Database.pipe(
    Effect.flatMap((db) => db.query(sql, ms)),
    Effect.map((rows) => HttpServerResponse.text(rows)),
    Effect.catchTag(
      "DatabaseClosed",
      (error) => Effect.succeed(HttpServerResponse.text(`database closed under ${error.sql}`, { status: 500 }))
    )
  )

/**
 * The routes: `/health` answers at once, `/slow` runs a 500 ms query, `/export` a query that would take a minute.
 * A query that finds the database closed is a 500, so a client would see it if shutdown ever closed the database
 * under a running request.
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/health", Effect.succeed(HttpServerResponse.text("ok"))),
  HttpRouter.get("/slow", queryRoute("select * from reports", 500)),
  HttpRouter.get("/export", queryRoute("select * from everything", 60_000))
)

/**
 * How the service listens and drains.
 */
export interface AppOptions {
  readonly port: number
  /** How long requests in flight may finish once shutdown starts; those still running then are interrupted. */
  readonly grace: Duration.DurationInput
}

/**
 * The HTTP phase: the router served by `HttpDrain.layer` instead of `NodeHttpServer.layer`. On release it stops
 * accepting connections, lets requests in flight finish for the grace period, interrupts those still running,
 * and returns only when every handler has ended. It prints its address once it listens; a port already in use is
 * a typed `ServeError`, which makes `Shutdown.runLayer` log the failure and exit 1.
 */
export const HttpLive = (options: AppOptions): Layer.Layer<never, HttpServerError.ServeError, Database> =>
  Layer.mergeAll(
    HttpServer.serve(router),
    Layer.effectDiscard(HttpServer.addressFormattedWith((address) => Console.log(`listening on ${address}`)))
  ).pipe(
    Layer.provide(HttpDrain.layer(createServer, { port: options.port, host: "127.0.0.1" }, { grace: options.grace })),
    Shutdown.phase("http")
  )

/**
 * The service: HTTP built on top of the database, so it is released first. Each layer is a named shutdown phase:
 * on SIGTERM, the `http` phase closes (draining), then the `database` phase.
 */
export const AppLive = (options: AppOptions): Layer.Layer<never, HttpServerError.ServeError> =>
  HttpLive(options).pipe(Layer.provide(DatabaseLive.pipe(Shutdown.phase("database"))))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 0)
  const grace = Duration.millis(Number(process.env.GRACE_MS ?? 5_000))
  console.log("try: curl <address>/slow (or /export), and press Ctrl-C (or send SIGTERM) while it runs")
  // Runs until SIGTERM or SIGINT; a shutdown that outlives 10 seconds exits 1 and names the phase still closing.
  Shutdown.runLayer(AppLive({ port, grace }), { deadline: "10 seconds" })
}

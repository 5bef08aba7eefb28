/**
 * Harvest's dashboard: the page at `GET /` and the routes that feed it. Routes outside the HTTP API's contract live
 * here so that the API definition stays a description of the public API only.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"

/**
 * The dashboard's routes.
 *
 * @since 0.1.0
 * @category routes
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.succeed(HttpServerResponse.html(
      `<!doctype html><title>Harvest</title><h1>Harvest</h1><p>The dashboard arrives with issue 8. Meanwhile: ` +
        `<code>POST /jobs</code>, <code>GET /jobs/:id</code>, <a href="/health">/health</a>, ` +
        `<a href="/metrics">/metrics</a>.</p>`
    ))
  )
)

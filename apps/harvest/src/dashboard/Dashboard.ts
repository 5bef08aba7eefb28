/**
 * Harvest's dashboard: the page at `GET /` and the routes that feed it. Routes outside the HTTP API's contract live
 * here so that the API definition stays a description of the public API only.
 *
 * - `GET /` — the page (static; it asks for the API token itself when the data routes answer `401`).
 * - `GET /dashboard/state` — the latest snapshot as JSON.
 * - `GET /dashboard/events` — Server-Sent Events, one `data:` line of JSON per snapshot: the latest at once, then
 *   each new one. A reader too slow for the sampler skips snapshots; a client that goes away ends its stream.
 *
 * With `API_TOKEN` set, both data routes need `Authorization: Bearer <token>`, like `/jobs*`.
 *
 * @since 0.1.0
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { timingSafeEqual } from "node:crypto"
import { HarvestConfig } from "../HarvestConfig.js"
import * as DashboardPage from "./DashboardPage.js"
import * as Events from "./Events.js"

const unauthorized = HttpServerResponse.unsafeJson(
  { error: { code: "unauthorized", message: "missing or wrong bearer token" } },
  { status: 401, headers: { "www-authenticate": "Bearer" } }
)

const authorized = Effect.gen(function*() {
  const config = yield* HarvestConfig
  if (Option.isNone(config.apiToken)) return true
  const request = yield* HttpServerRequest.HttpServerRequest
  const given = Buffer.from(request.headers.authorization ?? "")
  const expected = Buffer.from(`Bearer ${Redacted.value(config.apiToken.value)}`)
  return given.length === expected.length && timingSafeEqual(given, expected)
})

const withToken = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(authorized, (ok) => ok ? handler : Effect.succeed(unauthorized))

const encoder = new TextEncoder()

// Every connection sends the same snapshots: each is encoded once, however many browsers watch.
const encoded = new WeakMap<Events.Snapshot, Uint8Array>()
const encode = (snapshot: Events.Snapshot) => {
  let bytes = encoded.get(snapshot)
  if (bytes === undefined) {
    bytes = encoder.encode(`data: ${JSON.stringify(snapshot)}\n\n`)
    encoded.set(snapshot, bytes)
  }
  return bytes
}

const noStore = { "cache-control": "no-store" }

/**
 * The dashboard's routes.
 *
 * @since 0.1.0
 * @category routes
 */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.succeed(HttpServerResponse.html(DashboardPage.html).pipe(HttpServerResponse.setHeaders(noStore)))
  ),
  HttpRouter.get(
    "/dashboard/state",
    withToken(Effect.gen(function*() {
      const events = yield* Events.Events
      return HttpServerResponse.unsafeJson(yield* events.latest, { headers: noStore })
    }))
  ),
  HttpRouter.get(
    "/dashboard/events",
    withToken(Effect.gen(function*() {
      const events = yield* Events.Events
      const request = yield* HttpServerRequest.HttpServerRequest
      // A browser that vanished without closing its connection is noticed by TCP keep-alive, which closes the
      // socket and so interrupts the stream.
      NodeHttpServerRequest.toIncomingMessage(request).socket?.setKeepAlive(true, 15_000)
      const body = Stream.map(events.changes, encode)
      return HttpServerResponse.stream(body, {
        contentType: "text/event-stream",
        headers: { ...noStore, "x-accel-buffering": "no" }
      })
    }))
  )
)

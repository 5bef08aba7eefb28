// @spindle/node as a user installs it: Shutdown.runMain over an HttpDrain server, shut down by a real SIGTERM.
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { HttpDrain, Shutdown } from "@spindle/node"
import * as Effect from "effect/Effect"
import assert from "node:assert/strict"
import { createServer } from "node:http"

interface Observed {
  port?: number
  slow?: Promise<{ readonly status: number; readonly body: string }>
  signalledAt?: number
}

const app = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  if (request.url.startsWith("/slow")) yield* Effect.sleep("300 millis")
  return HttpServerResponse.text(`ok ${request.url}`)
})

const program = (observed: Observed) =>
  Effect.gen(function*() {
    yield* HttpServer.serveEffect(app)
    const server = yield* HttpServer.HttpServer
    const drain = yield* HttpDrain.HttpDrain
    const port = (server.address as HttpServer.TcpAddress).port
    observed.port = port

    const first = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()))
    assert.equal(first, "ok /")

    // A slow request is in flight when SIGTERM arrives: the drain lets it finish.
    observed.slow = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => ({
      status: r.status,
      body: await r.text()
    }))
    while ((yield* drain.inFlight) < 1) yield* Effect.sleep("5 millis")
    observed.signalledAt = Date.now()
    process.kill(process.pid, "SIGTERM")
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.provide(HttpDrain.layer(createServer, { port: 0, host: "127.0.0.1" }, { grace: "5 seconds" }))
  )

const refused = (port: number) => fetch(`http://127.0.0.1:${port}/`).then(() => false, () => true)

// Resolves once runMain has shut the program down and everything observed is as it should be.
export const shutdownWithHttpDrain = (): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const observed: Observed = {}
    Shutdown.runMain(program(observed), {
      deadline: "10 seconds",
      exit: (code) => {
        const verify = async () => {
          assert.equal(code, 0, "a clean shutdown exits 0")
          assert.ok(observed.slow !== undefined && observed.port !== undefined && observed.signalledAt !== undefined)
          const slow = await observed.slow
          assert.deepEqual(slow, { status: 200, body: "ok /slow" }, "the in-flight request finished during the drain")
          const took = Date.now() - observed.signalledAt
          assert.ok(took < 5_000, `drained within the grace period (${took} ms)`)
          assert.equal(await refused(observed.port), true, "the server no longer accepts connections")
        }
        verify().then(resolve, reject)
      }
    })
  })

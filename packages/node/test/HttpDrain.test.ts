import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { assert, describe, it } from "@effect/vitest"
import { HttpDrain } from "@spindle/node"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { createServer } from "node:http"
import * as net from "node:net"

// A raw HTTP/1.1 client on one socket, so a test controls exactly which connection a request uses.
const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.async<net.Socket>((resume) => {
      const socket = net.connect(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

const request = (socket: net.Socket, path: string) =>
  Effect.async<{ status: number; head: string; body: string }>((resume) => {
    let data = ""
    const onData = (chunk: Buffer) => {
      data += chunk.toString()
      const end = data.indexOf("\r\n\r\n")
      if (end < 0) return
      const head = data.slice(0, end)
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? "0")
      const body = data.slice(end + 4)
      if (body.length < length) return
      socket.off("data", onData)
      resume(Effect.succeed({ status: Number(head.split(" ")[1]), head: head.toLowerCase(), body }))
    }
    socket.on("data", onData)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`)
  })

class Resource extends Context.Tag("Resource")<Resource, { released: boolean }>() {}

// The resource handlers use, released after the server (it is below it in the layer graph).
const ResourceLive = Layer.scoped(
  Resource,
  Effect.acquireRelease(Effect.sync((): { released: boolean } => ({ released: false })), (r) =>
    Effect.sync(() => {
      r.released = true
    }))
)

describe("HttpDrain", () => {
  it.scoped("answers 503 with Retry-After to a request that arrives before the routes are served, then serves", () =>
    Effect.gen(function*() {
      const [server] = yield* HttpDrain.make(createServer, { port: 0, host: "127.0.0.1" })
      const port = (server.address as HttpServer.TcpAddress).port
      // Listening, with nothing served yet: the layers above a server are still being built.
      // Without an answer the request would wait for good: 5 s, then it fails.
      const early = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5_000) })
      )
      assert.strictEqual(early.status, 503)
      assert.strictEqual(early.headers.get("retry-after"), "1")
      assert.strictEqual(yield* Effect.promise(() => early.text()), "starting")
      yield* server.serve(HttpServerResponse.text("ok"))
      const served = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`))
      assert.strictEqual(served.status, 200)
      assert.strictEqual(yield* Effect.promise(() => served.text()), "ok")
    }))

  it.live("drains: in-flight requests finish, kept-alive connections get 503 + close, the rest is interrupted", () =>
    Effect.gen(function*() {
      const observations: Array<string> = []
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Layer.provideMerge(
          HttpDrain.layer(createServer, { port: 0, host: "127.0.0.1" }, { grace: "600 millis" }),
          ResourceLive
        ),
        scope
      )
      const routes = Effect.gen(function*() {
        const resource = yield* Resource
        const req = (yield* HttpServerRequest.HttpServerRequest).url
        const ms = req.includes("slow") ? 300 : req.includes("stuck") ? 60_000 : 0
        yield* Effect.sleep(ms).pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => observations.push(`interrupted ${req}; released=${resource.released}`))
          )
        )
        observations.push(`finished ${req}; released=${resource.released}`)
        return HttpServerResponse.text(`ok ${req}`)
      })
      yield* HttpServer.serveEffect(routes).pipe(Scope.extend(scope), Effect.provide(context))
      const address = Context.get(context, HttpServer.HttpServer).address as HttpServer.TcpAddress
      const drain = Context.get(context, HttpDrain.HttpDrain)

      yield* Effect.scoped(Effect.gen(function*() {
        const a = yield* connect(address.port)
        const b = yield* connect(address.port)
        assert.strictEqual((yield* request(a, "/fast")).status, 200)
        const slow = yield* Effect.fork(request(a, "/slow"))
        const stuck = yield* Effect.fork(request(b, "/stuck"))
        while ((yield* drain.inFlight) < 2) yield* Effect.sleep("5 millis")
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        while (!(yield* drain.isDraining)) yield* Effect.sleep("5 millis")
        // The slow request, already in flight, finishes normally.
        assert.strictEqual((yield* Fiber.join(slow)).status, 200)
        // A new request on the same kept-alive connection is refused politely.
        const refused = yield* request(a, "/fast")
        assert.strictEqual(refused.status, 503)
        assert.include(refused.head, "connection: close")
        // The stuck request is interrupted once the grace period is over; the release waits for it.
        yield* Fiber.join(closing)
        yield* Fiber.interrupt(stuck)
      }))
      assert.deepStrictEqual(observations, [
        "finished /fast; released=false",
        "finished /slow; released=false",
        "interrupted /stuck; released=false"
      ], "no handler ever saw the resource released")
    }))
})

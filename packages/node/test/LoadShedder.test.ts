import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { assert, describe, it } from "@effect/vitest"
import { EventLoopMonitor, LoadShedder } from "@spindle/node"
import { Wait } from "@spindle/testkit"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { busy } from "./fixtures/blocking.mjs"

// A real server on loopback whose handler waits on `gate`, behind the shedder; the layers live as long as the test.
const serve = (gate: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const shedder = yield* LoadShedder.LoadShedder
    const monitor = yield* EventLoopMonitor.EventLoopMonitor
    const app = Effect.as(Deferred.await(gate), HttpServerResponse.text("done"))
    yield* HttpServer.serveEffect(shedder.middleware(app))
    const server = yield* HttpServer.HttpServer
    const address = server.address as HttpServer.TcpAddress
    return { shedder, monitor, url: `http://127.0.0.1:${address.port}/` }
  })

const layer = (options: LoadShedder.Options) =>
  Layer.mergeAll(
    NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }),
    LoadShedder.layer(options).pipe(
      Layer.provideMerge(EventLoopMonitor.layer({ sampleInterval: "1 hour", resolution: "5 millis" }))
    )
  )

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.text() }
  })

describe("LoadShedder", () => {
  it.live("sheds with 503 and Retry-After once maxInFlight requests are in flight", () =>
    Effect.scoped(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { shedder, url } = yield* serve(gate)
      const held = yield* Effect.fork(Effect.all([get(url), get(url)], { concurrency: "unbounded" }))
      while ((yield* shedder.inFlight) < 2) yield* Effect.sleep("5 millis")
      const refused = yield* get(url)
      assert.strictEqual(refused.status, 503)
      assert.strictEqual(refused.retryAfter, "3")
      assert.deepStrictEqual(JSON.parse(refused.body).error.code, "overloaded")
      yield* Deferred.succeed(gate, undefined)
      const served = yield* Fiber.join(held)
      assert.deepStrictEqual(served.map((r) => r.status), [200, 200])
      assert.strictEqual((yield* get(url)).status, 200)
      assert.strictEqual(yield* shedder.inFlight, 0)
    })).pipe(Effect.provide(layer({ maxInFlight: 2, retryAfter: "3 seconds" }))))

  it.live("sheds while the event loop lags and recovers when it does", () =>
    Effect.scoped(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Deferred.succeed(gate, undefined)
      const { monitor, shedder, url } = yield* serve(gate)
      // A sample of a calm loop lets requests through. (On a loaded machine a sample may see lag by itself: what holds
      // is that one soon sees none.)
      const servedOnceCalm = Effect.zipRight(monitor.sample, Effect.map(get(url), (reply) => reply.status === 200))
      yield* Wait.until("a request served after a calm sample", servedOnceCalm)
      yield* Effect.sync(() => busy(300))
      yield* Effect.sleep("20 millis")
      yield* monitor.sample
      const pressure = yield* shedder.pressure
      assert.strictEqual(pressure._tag, "EventLoopDelay")
      const refused = yield* get(url)
      assert.strictEqual(refused.status, 503)
      assert.strictEqual(refused.retryAfter, "1")
      assert.include(JSON.parse(refused.body).error.message, "Event loop delay")
      // A later sample sees a calm loop: requests are served again.
      yield* Wait.until("a request served once the loop is calm again", servedOnceCalm)
    })).pipe(Effect.provide(layer({ maxEventLoopDelay: "100 millis" }))))
})

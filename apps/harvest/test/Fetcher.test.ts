import { assert, describe, it, layer } from "@effect/vitest"
import * as Databases from "@spindle/testkit/Databases"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Wait from "@spindle/testkit/Wait"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type * as dns from "node:dns"
import * as fs from "node:fs"
import * as https from "node:https"
import * as net from "node:net"
import * as path from "node:path"
import { Agent } from "undici"
import * as HarvestConfig from "../src/HarvestConfig.js"
import * as Instance from "../src/Instance.js"
import * as UndiciClient from "../src/internal/undiciClient.js"
import * as Fetcher from "../src/pipeline/Fetcher.js"
import * as BodyStore from "../src/storage/BodyStore.js"
import * as Database from "../src/storage/Database.js"
import { layerItems } from "../src/storage/Jobs.js"
import * as StorageThread from "../src/storage/StorageThread.js"

// A certificate for `tls.example` (and nothing else), valid 2000–2100, its own issuer.
const tlsKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyaLUHnyxZj2ZYIDA
oMlSSN6KoTuohgBfoRz11LXqCUWhRANCAAQDccrEz47BlIKPUji1l26Jt8uCuAp8
ZyqGNHrRLokJubOqMQGAuWBSU8j54B+zirN7RG/S2v9RhKsXlsk/DWW0
-----END PRIVATE KEY-----
`
const tlsCert = `-----BEGIN CERTIFICATE-----
MIIBZTCCAQugAwIBAgICEAAwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLdGxzLmV4
YW1wbGUwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBYxFDASBgNV
BAMMC3Rscy5leGFtcGxlMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEA3HKxM+O
wZSCj1I4tZduibfLgrgKfGcqhjR60S6JCbmzqjEBgLlgUlPI+eAfs4qze0Rv0tr/
UYSrF5bJPw1ltKNHMEUwFgYDVR0RBA8wDYILdGxzLmV4YW1wbGUwDAYDVR0TAQH/
BAIwADAdBgNVHQ4EFgQUOHVwDbfvmmjC8QdskmVvHejm7GkwCgYIKoZIzj0EAwID
SAAwRQIhANrZuLNmD1QzmaPBwSD8/i4SNEjZYZqVQQtf9mBVcfP3AiBkJkUXbVT4
wN3EA6wKRrG43aOqPyYBjl0E67HV6rroNw==
-----END CERTIFICATE-----
`

const sqlite = Databases.all.find((database) => database.name === "sqlite")!
// The body store's sweep reads the queue's leases: one SQLite database for the file.
const Items = Layer.fresh(layerItems).pipe(
  Layer.provideMerge(Layer.effectDiscard(Database.migrate).pipe(Layer.provideMerge(sqlite.layer))),
  Layer.merge(StorageThread.layer),
  Layer.orDie
)

const setup = (options: Partial<Fetcher.Options> = {}) =>
  Effect.gen(function*() {
    const upstream = yield* Upstream.make()
    const dataDir = yield* Databases.tempDir("harvest-fetcher-")
    const store = yield* Effect.orDie(BodyStore.make({ dataDir, owner: "test", leaseMs: 60_000 }))
    const made = yield* Fetcher.make({ allowPrivateNetworks: true, maxBodyBytes: 1_000_000, ...options }).pipe(
      Effect.provideService(BodyStore.BodyStore, store)
    )
    // The store here always has room: a local fault would be a defect of the test (LocalFaults.test covers them).
    const fetcher = {
      fetch: (url: string, o: { readonly timeoutMs: number }) =>
        made.fetch(url, o).pipe(Effect.catchTag("LocalFault", Effect.die))
    }
    const dirs = { files: path.join(dataDir, "files"), tmp: path.join(dataDir, "tmp") }
    const fetch = (pathAndQuery: string, timeoutMs = 20_000) => fetcher.fetch(upstream.url(pathAndQuery), { timeoutMs })
    return { upstream, dirs, fetch, fetcher }
  })

const names = (dir: string) => fs.readdirSync(dir)

// A port nothing listens on: bound, then closed.
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

// An https server with the certificate above, recording the server name each client asked for.
const tlsServer = Effect.acquireRelease(
  Effect.async<{ readonly server: https.Server; readonly port: number; readonly names: Array<string> }>((resume) => {
    const names: Array<string> = []
    const server = https.createServer({
      key: tlsKey,
      cert: tlsCert,
      SNICallback: (name, done) => {
        names.push(name)
        done(null)
      }
    }, (_request, response) => response.end("over tls"))
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, names }))
    )
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

describe("UndiciClient", () => {
  it.scopedLive("an HttpClient: bodies read whole, as text or as a stream, large ones through the paused buffer", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const agent = yield* Effect.acquireRelease(
        Effect.sync(() => new Agent()),
        (agent) => Effect.promise(() => agent.destroy())
      )
      const client = UndiciClient.make(agent)
      const whole = yield* Effect.flatMap(client.get(upstream.url("/a?bytes=500000&chunked=1")), (r) => r.arrayBuffer)
      assert.isTrue(Buffer.from(whole).equals(Upstream.body(500_000)))
      const streamed = yield* Effect.flatMap(
        client.get(upstream.url("/b?bytes=300000")),
        (r) => Stream.runCollect(r.stream)
      )
      assert.isTrue(Buffer.concat(Chunk.toReadonlyArray(streamed)).equals(Upstream.body(300_000)))
      const json = yield* Effect.flatMap(client.get(upstream.url("/c?page=1&pages=1&per=3")), (r) => r.json)
      assert.deepStrictEqual(json, { page: 1, items: [0, 1, 2] })
      const response = yield* client.get(upstream.url("/d?status=503&retryAfter=2"))
      assert.deepStrictEqual([response.status, response.headers["retry-after"]], [503, "2"])
      assert.strictEqual(yield* response.text, Upstream.body(64).toString())
    }))
})

describe("UndiciClient prefetch", () => {
  it.scopedLive("a response waits for up to `prefetch` bytes of its body: small ones come complete, large ones stream", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const agent = yield* Effect.acquireRelease(
        Effect.sync(() => new Agent()),
        (agent) => Effect.promise(() => agent.destroy())
      )
      const timeouts = new Map<string, number>()
      const client = UndiciClient.make(agent, {
        prefetch: 64 * 1024,
        timeoutMs: (request) => timeouts.get(request.url)
      })
      const complete = (response: unknown) =>
        response instanceof UndiciClient.UndiciResponse ? response.complete : assert.fail("an UndiciResponse")
      // A small body dripped in ten pieces: the response is answered once all of it is there.
      const dripped = yield* client.get(upstream.url("/small?bytes=1000&drip=100&every=5"))
      assert.isTrue(complete(dripped), "the dripped small body came with its response")
      assert.isTrue(Buffer.from(yield* dripped.arrayBuffer).equals(Upstream.body(1000)))
      const chunked = yield* client.get(upstream.url("/chunked?bytes=20000&chunked=1"))
      assert.isTrue(complete(chunked))
      assert.isTrue(Buffer.from(yield* chunked.arrayBuffer).equals(Upstream.body(20_000)))
      // A large body: answered past 64 KiB, the rest still to come, read whole through the stream.
      const large = yield* client.get(upstream.url("/large?bytes=2000000&drip=65536&every=5"))
      assert.isFalse(complete(large), "a 2 MB body is not held back whole")
      const streamed = yield* Stream.runCollect(large.stream)
      assert.isTrue(Buffer.concat(Chunk.toReadonlyArray(streamed)).equals(Upstream.body(2_000_000)))
      // A status with a body: the same.
      const unavailable = yield* client.get(upstream.url("/busy?status=503"))
      assert.deepStrictEqual([unavailable.status, complete(unavailable)], [503, true])
      // A body cut by the server while held back: the response is answered, and reading it fails.
      const cut = yield* client.get(upstream.url("/cut?bytes=10000&resetAfter=512"))
      assert.strictEqual(cut.status, 200)
      assert.strictEqual((yield* Effect.flip(cut.arrayBuffer))._tag, "ResponseError")
      // A body that stalls past the exchange's time while held back: reading it fails with the timeout.
      timeouts.set(upstream.url("/slow?bytes=1000&drip=10&every=1000"), 300)
      const slow = yield* client.get(upstream.url("/slow?bytes=1000&drip=10&every=1000"))
      const timedOut = yield* Effect.flip(slow.arrayBuffer)
      assert.instanceOf(timedOut.cause, UndiciClient.Timeout)
    }))
})

describe("UndiciClient timeouts", () => {
  it.scopedLive("a request still waiting for a connection fails at its time, not when it finally gets one", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      // One connection per origin: the second request waits behind the first, which never gets an answer.
      const agent = yield* Effect.acquireRelease(
        Effect.sync(() => new Agent({ connections: 1 })),
        (agent) => Effect.promise(() => agent.destroy())
      )
      const timeouts = new Map<string, number>([[upstream.url("/hang?hang=1"), 60_000], [upstream.url("/queued"), 200]])
      const client = UndiciClient.make(agent, { timeoutMs: (request) => timeouts.get(request.url) })
      const hanging = yield* Effect.fork(client.get(upstream.url("/hang?hang=1")))
      yield* Wait.until("the first request upstream", Effect.sync(() => upstream.requests().length === 1))
      const queued = yield* Effect.flip(client.get(upstream.url("/queued")))
      assert.strictEqual(queued._tag, "RequestError")
      assert.instanceOf(queued.cause, UndiciClient.Timeout)
      assert.strictEqual(upstream.requests().length, 1)
      yield* Fiber.interrupt(hanging)
    }))
})

describe("Fetcher", () => {
  layer(Items, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("stores a 2xx body under its SHA-256, renamed into place, nothing left in tmp", () =>
      Effect.gen(function*() {
        const { dirs, fetch } = yield* setup()
        // One small body (gathered in memory), one sent chunked, one large enough to be streamed to its temp file.
        // Around the 64 KiB held in memory too, where the client's buffer also pauses the connection.
        const sizes = [65_535, 65_536, 65_537, 131_072].flatMap((n) => [`bytes=${n}`, `bytes=${n}&chunked=1`])
        for (const query of ["bytes=1000", "bytes=3000&chunked=1", "bytes=300000&chunked=1", ...sizes]) {
          const bytes = Number(/bytes=(\d+)/.exec(query)![1])
          const fetched = yield* fetch(`/page?${query}`)
          assert.deepStrictEqual(fetched, {
            httpStatus: 200,
            bytes,
            sha256: Upstream.expectedSha256(bytes),
            fileId: Upstream.expectedSha256(bytes)
          })
          assert.isTrue(fs.readFileSync(path.join(dirs.files, fetched.fileId)).equals(Upstream.body(bytes)))
        }
        assert.deepStrictEqual(names(dirs.tmp), [])
      }))

    it.scoped("classifies statuses: 4xx final, 408/429/5xx retryable with Retry-After", () =>
      Effect.gen(function*() {
        const { dirs, fetch, upstream } = yield* setup()
        const notFound = yield* Effect.flip(fetch("/x?status=404&bytes=5000"))
        assert.deepStrictEqual([notFound.code, notFound.httpStatus, notFound.retryable], ["http_status", 404, false])
        const throttled = yield* Effect.flip(fetch("/x?status=429&retryAfter=7"))
        assert.deepStrictEqual([throttled.code, throttled.retryable], ["http_status", true])
        assert.strictEqual(Duration.toMillis(throttled.retryAfter!), 7000)
        const dated = yield* Effect.flip(fetch("/x?status=503&retryAfter=date:30"))
        assert.isTrue(dated.retryable)
        // An HTTP date is read against the clock: about 30 s ahead, rounded to the second by the format.
        const millis = Duration.toMillis(dated.retryAfter!)
        assert.isTrue(millis > 20_000 && millis <= 30_000, `${millis}`)
        const timeout = yield* Effect.flip(fetch("/x?status=408"))
        assert.isTrue(timeout.retryable)
        assert.deepStrictEqual(names(dirs.files), [])
        // The refused bodies were read to their end, so the connection was kept: every request was answered in full.
        assert.strictEqual(upstream.requests().length, 4)
        assert.isTrue(upstream.requests().every((request) => request.outcome === "answered"))
      }))

    it.scoped("refuses bodies over the limit, declared or streamed, and keeps nothing partial", () =>
      Effect.gen(function*() {
        const { dirs, fetch } = yield* setup({ maxBodyBytes: 100_000 })
        const declared = yield* Effect.flip(fetch("/big?bytes=100001"))
        assert.deepStrictEqual([declared.code, declared.retryable, declared.httpStatus], ["body_too_large", false, 200])
        // Chunked, so the size is learned as it arrives: past the 64 KiB held in memory it goes to a temp file first.
        const streamed = yield* Effect.flip(fetch("/big?bytes=150000&chunked=1&drip=20000&every=1"))
        assert.deepStrictEqual([streamed.code, streamed.retryable], ["body_too_large", false])
        const small = yield* Effect.flip(
          Effect.flatMap(setup({ maxBodyBytes: 1000 }), (s) => s.fetch("/s?bytes=1001&chunked=1"))
        )
        assert.strictEqual(small.code, "body_too_large")
        assert.deepStrictEqual(names(dirs.tmp), [])
        assert.deepStrictEqual(names(dirs.files), [])
        const fits = yield* fetch("/fits?bytes=100000&chunked=1")
        assert.strictEqual(fits.bytes, 100_000)
      }))

    it.scoped("a reset or a cut body is a retryable network failure with no file kept", () =>
      Effect.gen(function*() {
        const { dirs, fetch } = yield* setup()
        const reset = yield* Effect.flip(fetch("/r?reset=1"))
        assert.deepStrictEqual([reset.code, reset.retryable], ["network", true])
        const cut = yield* Effect.flip(fetch("/r?bytes=100000&resetAfter=80000"))
        assert.deepStrictEqual([cut.code, cut.retryable], ["network", true])
        const cutSmall = yield* Effect.flip(fetch("/r?bytes=1000&resetAfter=500"))
        assert.deepStrictEqual([cutSmall.code, cutSmall.retryable], ["network", true])
        assert.deepStrictEqual(names(dirs.tmp), [])
        assert.deepStrictEqual(names(dirs.files), [])
      }))

    it.scoped("a refused connection is a retryable network failure", () =>
      Effect.gen(function*() {
        const { fetcher } = yield* setup()
        const port = yield* closedPort
        const refused = yield* Effect.flip(fetcher.fetch(`http://127.0.0.1:${port}/x`, { timeoutMs: 10_000 }))
        assert.deepStrictEqual([refused.code, refused.retryable], ["network", true])
        assert.include(refused.message, "ECONNREFUSED")
      }))

    it.scoped("a host that does not exist is unresolvable_host, not retried; a name server that fails is", () =>
      Effect.gen(function*() {
        const { fetcher } = yield* setup()
        // `.invalid` never resolves (RFC 6761), offline or not.
        const missing = yield* Effect.flip(fetcher.fetch("http://no-such-host.invalid/x", { timeoutMs: 10_000 }))
        assert.deepStrictEqual([missing.code, missing.retryable], ["unresolvable_host", false])
        const failing = yield* setup({
          lookup: () =>
            Promise.reject(Object.assign(new Error("getaddrinfo EAI_AGAIN flaky.example"), { code: "EAI_AGAIN" }))
        })
        const again = yield* Effect.flip(failing.fetcher.fetch("http://flaky.example/x", { timeoutMs: 10_000 }))
        assert.deepStrictEqual([again.code, again.retryable], ["network", true])
      }))

    it.scoped("connects to the address it checked, once resolved, with the host in Host", () =>
      Effect.gen(function*() {
        const lookups: Array<string> = []
        // Each lookup answers differently: a client that resolved again would go to a closed port's address.
        const answers = ["127.0.0.1", "127.0.0.3", "127.0.0.1", "127.0.0.3"]
        const lookup = (host: string): Promise<ReadonlyArray<dns.LookupAddress>> => {
          lookups.push(host)
          return Promise.resolve([{ address: answers[lookups.length - 1], family: 4 }])
        }
        const { fetcher, upstream } = yield* setup({ lookup })
        const url = `http://pinned.example:${upstream.port}/item?bytes=10`
        const fetched = yield* fetcher.fetch(url, { timeoutMs: 10_000 })
        assert.strictEqual(fetched.bytes, 10)
        assert.deepStrictEqual(lookups, ["pinned.example"])
        assert.strictEqual(upstream.requests()[0].host, `pinned.example:${upstream.port}`)
        // The next attempt resolves again and goes where that answer says, not over the connection kept from before.
        const moved = yield* Effect.flip(fetcher.fetch(url, { timeoutMs: 10_000 }))
        assert.deepStrictEqual([moved.code, moved.retryable], ["network", true])
        assert.include(moved.message, "127.0.0.3")
        assert.strictEqual(upstream.requests().length, 1)
        yield* fetcher.fetch(url, { timeoutMs: 10_000 })
        assert.strictEqual(upstream.requests().length, 2)
      }))

    it.scoped("refuses private addresses unless allowed, before any connection", () =>
      Effect.gen(function*() {
        const { fetcher, upstream } = yield* setup({ allowPrivateNetworks: false })
        const blocked = yield* Effect.flip(fetcher.fetch(upstream.url("/x"), { timeoutMs: 10_000 }))
        assert.deepStrictEqual([blocked.code, blocked.retryable], ["blocked_address", false])
        const rebinding = yield* setup({
          allowPrivateNetworks: false,
          lookup: () => Promise.resolve([{ address: "93.184.216.34", family: 4 }, { address: "10.0.0.5", family: 4 }])
        })
        const mixed = yield* Effect.flip(rebinding.fetcher.fetch("http://rebind.example/", { timeoutMs: 10_000 }))
        assert.strictEqual(mixed.code, "blocked_address")
        assert.strictEqual(upstream.requests().length, 0)
      }))

    it.scoped("https: the certificate is checked against the host name, which is also sent as the server name", () =>
      Effect.gen(function*() {
        const tls = yield* tlsServer
        const lookup = () => Promise.resolve([{ address: "127.0.0.1", family: 4 }])
        // Not trusted: a certificate failure, not retried.
        const untrusted = yield* setup({ lookup })
        const refused = yield* Effect.flip(
          untrusted.fetcher.fetch(`https://tls.example:${tls.port}/`, { timeoutMs: 10_000 })
        )
        assert.deepStrictEqual([refused.code, refused.retryable], ["tls", false])
        // Trusted, and asked for by the name on the certificate although the connection goes to 127.0.0.1.
        const trusting = yield* setup({ lookup, tls: { ca: tlsCert } })
        const fetched = yield* trusting.fetcher.fetch(`https://tls.example:${tls.port}/`, { timeoutMs: 10_000 })
        assert.strictEqual(fetched.bytes, "over tls".length)
        // Another name for the same address does not match the certificate.
        const mismatch = yield* Effect.flip(
          trusting.fetcher.fetch(`https://other.example:${tls.port}/`, { timeoutMs: 10_000 })
        )
        assert.deepStrictEqual([mismatch.code, mismatch.retryable], ["tls", false])
        assert.includeMembers(tls.names, ["tls.example", "other.example"])
        assert.notInclude(tls.names, "127.0.0.1")
      }))

    it.scoped("an attempt over its time is a retryable timeout, its connection closed and nothing kept", () =>
      Effect.gen(function*() {
        const { dirs, fetch, upstream } = yield* setup()
        const hung = yield* Effect.flip(fetch("/hang?hang=1", 200))
        assert.deepStrictEqual([hung.code, hung.retryable], ["timeout", true])
        const slow = yield* Effect.flip(fetch("/slow?bytes=300000&drip=70000&every=1000", 300))
        assert.deepStrictEqual([slow.code, slow.retryable], ["timeout", true])
        assert.deepStrictEqual(names(dirs.tmp), [])
        assert.deepStrictEqual(names(dirs.files), [])
        yield* Wait.until(
          "the upstream to see both connections closed",
          Effect.sync(() =>
            upstream.requests().length === 2 &&
            upstream.requests().every((request) => request.outcome === "client_closed")
          )
        )
      }))

    it.scoped("interrupting an attempt closes the connection upstream and removes the partial file", () =>
      Effect.gen(function*() {
        const { dirs, fetch, upstream } = yield* setup()
        // The first 70 kB pass the 64 KiB held in memory: the body is being written to its temp file.
        const fiber = yield* Effect.fork(fetch("/slow?bytes=300000&drip=70000&every=60000"))
        yield* Wait.until("the body's temp file", Effect.sync(() => names(dirs.tmp).length === 1))
        yield* Fiber.interrupt(fiber)
        // The interruption returns only once the partial file is gone: a process exiting right after leaves nothing.
        assert.deepStrictEqual(names(dirs.tmp), [])
        assert.deepStrictEqual(names(dirs.files), [])
        yield* Wait.until(
          "the upstream to see the client leave",
          Effect.sync(() => upstream.requests()[0]?.outcome === "client_closed")
        )
      }))

    it.scoped("interrupted at any moment, still leaves nothing behind", () =>
      Effect.gen(function*() {
        const { dirs, fetch } = yield* setup()
        for (let i = 0; i < 20; i++) {
          const fiber = yield* Effect.fork(fetch(`/fast/${i}?bytes=${i % 2 === 0 ? 50_000 : 200_000}&latency=${i % 4}`))
          // Interrupted after a varying number of turns of the event loop: before the request, during it, or after.
          for (let turn = 0; turn < i; turn++) yield* Effect.promise(() => new Promise((done) => setImmediate(done)))
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual(names(dirs.tmp), [], `round ${i}`)
        }
      }))

    it.scoped("the layer follows the configuration and writes through the BodyStore service", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-fetcher-")
        const build = (settings: Partial<HarvestConfig.HarvestConfig>) =>
          Effect.map(
            Layer.build(
              Fetcher.layer.pipe(
                Layer.provide(BodyStore.layer),
                Layer.provide([HarvestConfig.layerWith({ dataDir, ...settings }), Instance.layer])
              )
            ),
            Context.get(Fetcher.Fetcher)
          )
        const strict = yield* build({ allowPrivateNetworks: false })
        const blocked = yield* Effect.flip(strict.fetch(upstream.url("/x"), { timeoutMs: 10_000 }))
        assert.strictEqual(blocked._tag === "FetchFailure" && blocked.code, "blocked_address")
        const small = yield* build({ allowPrivateNetworks: true, maxBodyBytes: 500 })
        const tooLarge = yield* Effect.flip(small.fetch(upstream.url("/x?bytes=501"), { timeoutMs: 10_000 }))
        assert.strictEqual(tooLarge._tag === "FetchFailure" && tooLarge.code, "body_too_large")
        const fetched = yield* small.fetch(upstream.url("/x?bytes=500"), { timeoutMs: 10_000 })
        assert.isTrue(fs.existsSync(path.join(dataDir, "files", fetched.fileId)))
      }))
  })
})

import { assert, describe, it } from "@effect/vitest"
import { AddressGuard } from "@spindle/node"
import { Upstream } from "@spindle/testkit"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Fetcher from "../src/pipeline/Fetcher.js"

const directories = Effect.acquireRelease(
  Effect.sync(() => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-fetcher-"))
    const dirs = { files: path.join(root, "files"), tmp: path.join(root, "tmp") }
    fs.mkdirSync(dirs.files)
    fs.mkdirSync(dirs.tmp)
    return { root, ...dirs }
  }),
  ({ root }) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
)

const setup = Effect.gen(function*() {
  const upstream = yield* Upstream.make()
  const dirs = yield* directories
  const fetch = (pathAndQuery: string, maxBodyBytes = 1_000_000) =>
    Effect.flatMap(
      Effect.orDie(AddressGuard.check(upstream.url(pathAndQuery), { allowPrivate: true })),
      (destination) => Fetcher.attempt(destination, { directories: dirs, maxBodyBytes })
    )
  return { upstream, dirs, fetch }
})

const tmpFiles = (dir: string) => fs.readdirSync(dir)

describe("Fetcher.attempt", () => {
  it.scopedLive("stores a 2xx body under its SHA-256, renamed into place, nothing left in tmp", () =>
    Effect.gen(function*() {
      const { dirs, fetch } = yield* setup
      const fetched = yield* fetch("/page?bytes=70000")
      assert.deepStrictEqual(fetched, {
        httpStatus: 200,
        bytes: 70_000,
        sha256: Upstream.expectedSha256(70_000),
        fileId: Upstream.expectedSha256(70_000)
      })
      const stored = fs.readFileSync(path.join(dirs.files, fetched.fileId))
      assert.isTrue(stored.equals(Upstream.body(70_000)))
      assert.deepStrictEqual(tmpFiles(dirs.tmp), [])
    }))

  it.scopedLive("classifies statuses: 4xx final, 408/429/5xx retryable with Retry-After", () =>
    Effect.gen(function*() {
      const { dirs, fetch } = yield* setup
      const notFound = yield* Effect.flip(fetch("/x?status=404"))
      assert.deepStrictEqual([notFound.code, notFound.httpStatus, notFound.retryable], ["http_status", 404, false])
      const throttled = yield* Effect.flip(fetch("/x?status=429&retryAfter=7"))
      assert.deepStrictEqual([throttled.code, throttled.retryable], ["http_status", true])
      assert.strictEqual(Duration.toMillis(throttled.retryAfter!), 7000)
      const unavailable = yield* Effect.flip(fetch("/x?status=503"))
      assert.isTrue(unavailable.retryable)
      const timeout = yield* Effect.flip(fetch("/x?status=408"))
      assert.isTrue(timeout.retryable)
      assert.deepStrictEqual(tmpFiles(dirs.files), [])
    }))

  it.scopedLive("refuses bodies over the limit, declared or not, and keeps nothing partial", () =>
    Effect.gen(function*() {
      const { dirs, fetch } = yield* setup
      const declared = yield* Effect.flip(fetch("/big?bytes=5000", 4096))
      assert.deepStrictEqual([declared.code, declared.retryable], ["body_too_large", false])
      const streamed = yield* Effect.flip(fetch("/big?bytes=5000&chunked=1&drip=500&every=1", 1000))
      assert.strictEqual(streamed.code, "body_too_large")
      yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(tmpFiles(dirs.tmp), [])
      assert.deepStrictEqual(tmpFiles(dirs.files), [])
    }))

  it.scopedLive("a reset or a cut body is a retryable network failure with no file kept", () =>
    Effect.gen(function*() {
      const { dirs, fetch } = yield* setup
      const reset = yield* Effect.flip(fetch("/r?reset=1"))
      assert.deepStrictEqual([reset.code, reset.retryable], ["network", true])
      const cut = yield* Effect.flip(fetch("/r?bytes=100000&resetAfter=20000"))
      assert.deepStrictEqual([cut.code, cut.retryable], ["network", true])
      yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(tmpFiles(dirs.tmp), [])
      assert.deepStrictEqual(tmpFiles(dirs.files), [])
    }))

  it.scopedLive("interrupting an attempt closes the connection upstream and removes the partial file", () =>
    Effect.gen(function*() {
      const { dirs, fetch, upstream } = yield* setup
      const fiber = yield* Effect.fork(fetch("/slow?bytes=100000&drip=1000&every=20"))
      yield* Effect.sleep("150 millis")
      assert.strictEqual(tmpFiles(dirs.tmp).length, 1, "the body is being written")
      yield* Fiber.interrupt(fiber)
      // The interruption returns only once the partial file is gone: a process exiting right after leaves nothing.
      assert.deepStrictEqual(tmpFiles(dirs.tmp), [])
      assert.deepStrictEqual(tmpFiles(dirs.files), [])
      yield* Effect.sleep("50 millis")
      assert.strictEqual(upstream.requests()[0].outcome, "client_closed")
    }))

  it.scopedLive("interrupted at once, before the temp file is even open, still leaves nothing behind", () =>
    Effect.gen(function*() {
      const { dirs, fetch } = yield* setup
      for (let i = 0; i < 20; i++) {
        const fiber = yield* Effect.fork(fetch(`/fast/${i}?bytes=50000&latency=${i % 4}`))
        yield* Effect.sleep(`${i % 5} millis`)
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(tmpFiles(dirs.tmp), [], `round ${i}`)
      }
    }))
})

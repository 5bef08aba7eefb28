import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Harness from "./harness.js"

const start = Harness.spawn

const json = (url: string, init?: RequestInit) =>
  Effect.promise(async () => (await (await fetch(url, init)).json()) as any)

describe("Harvest lifecycle (real processes)", () => {
  it.scopedLive(
    "one Ctrl-C to the whole process group of `pnpm start`: one graceful drain, in-flight fetches finish, exit 0",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-ctrl-c-")
        const env = { DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: "20000" }
        const harvest = yield* start(env, { command: ["pnpm", "start"] })
        const urls = Array.from({ length: 6 }, (_, i) => upstream.url(`/slow/${i}?latency=1500&bytes=${200 + i}`))
        const job = yield* harvest.submit({ urls })
        yield* Wait.until("six fetches in flight", Effect.sync(() => upstream.inFlight() === 6))
        // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group (pnpm, its shell, node).
        process.kill(-harvest.child.pid!, "SIGINT")
        const code = yield* Effect.promise(() => harvest.exited)
        assert.strictEqual(code, 0, harvest.output())
        assert.notMatch(harvest.output(), /second signal/)
        assert.notMatch(harvest.output(), /ELIFECYCLE/)
        assert.strictEqual(harvest.output().match(/message="shutting down"/g)?.length, 1, harvest.output())
        // The fetches on the wire were let finish (answered, not cut), and were recorded: a restart has nothing left.
        assert.deepStrictEqual(upstream.requests().map((r) => r.outcome), Array(6).fill("answered"))
        const again = yield* start(env)
        const done = yield* again.waitFor(job, "completed")
        assert.deepStrictEqual([done.succeeded, done.failed], [6, 0])
        assert.strictEqual(upstream.requests().length, 6, "nothing was fetched twice")
      })
  )

  it.scopedLive(
    "SIGTERM mid-job: exits 0 within the grace period, fails nothing, and a restart finishes the job",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-sigterm-")
        const env = { DATA_DIR: dataDir, MAX_CONCURRENCY: "4", SHUTDOWN_GRACE_MS: "1000", LEASE_MS: "2000" }
        const urls = Array.from({ length: 40 }, (_, i) => upstream.url(`/item/${i}?latency=200&bytes=${100 + i}`))
        const first = yield* start(env)
        const job = yield* json(`${first.base}/jobs`, { method: "POST", body: JSON.stringify({ urls }) })
        while (upstream.requests().filter((r) => r.outcome === "answered").length < 8) yield* Effect.sleep("20 millis")
        const sentAt = Date.now()
        first.child.kill("SIGTERM")
        const code = yield* Effect.promise(() => first.exited)
        assert.strictEqual(code, 0, first.output())
        assert.isBelow(Date.now() - sentAt, 1000 + 2000)
        const second = yield* start(env)
        const done = yield* second.waitFor(job.id, "completed")
        assert.deepStrictEqual([done.succeeded, done.failed], [40, 0], "nothing was failed by the shutdown")
        const results = yield* json(`${second.base}/jobs/${job.id}/results?limit=100`)
        assert.deepStrictEqual(new Set(results.items.map((r: any) => r.url)).size, 40)
        assert.isTrue(results.items.every((r: any) => r.attempts === 1), "an attempt cut short does not count")
      })
  )

  it.scopedLive(
    "SIGKILL at random moments: every URL ends exactly once, no partial or orphan temp files",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-sigkill-")
        const env = { DATA_DIR: dataDir, MAX_CONCURRENCY: "8", LEASE_MS: "600", SHUTDOWN_GRACE_MS: "200" }
        // Every other body is over 64 KiB, so it is streamed through a temp file (smaller ones are written at once):
        // the kills find temp files being written.
        const urls = Array.from({ length: 60 }, (_, i) =>
          upstream.url(
            i % 2 === 0
              ? `/item/${i}?latency=20-120&bytes=${2000 + i * 97}&drip=500&every=5`
              : `/item/${i}?latency=20-120&bytes=${70_000 + i * 97}&drip=5000&every=5`
          ))
        let instance = yield* start(env)
        const job = yield* json(`${instance.base}/jobs`, { method: "POST", body: JSON.stringify({ urls }) })
        for (let round = 0; round < 3; round++) {
          yield* Effect.sleep(Math.floor(150 + Math.random() * 350))
          instance.child.kill("SIGKILL")
          yield* Effect.promise(() => instance.exited)
          instance = yield* start(env)
        }
        yield* instance.waitFor(job.id, "completed")
        // The killed instances' temp files went as their leases expired, before their items could be taken over: the
        // completed job leaves none (the running instance has none left either, every body of the job being stored).
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "tmp")), [], "no temp file once the job completed")
        const results = yield* json(`${instance.base}/jobs/${job.id}/results?limit=100`)
        assert.strictEqual(results.items.length, 60)
        assert.strictEqual(new Set(results.items.map((r: any) => r.url)).size, 60, "each URL exactly once")
        for (const result of results.items) {
          assert.strictEqual(result.status, "succeeded", JSON.stringify(result))
          const body = fs.readFileSync(path.join(dataDir, "files", result.fileId))
          assert.strictEqual(createHash("sha256").update(body).digest("hex"), result.sha256)
          assert.strictEqual(body.length, result.bytes)
        }
        // Temp files of killed instances are gone once their leases have expired and an instance has started; bodies
        // renamed into place by an instance killed before its result was committed are gone after two lease periods.
        instance.child.kill("SIGTERM")
        yield* Effect.promise(() => instance.exited)
        yield* Effect.sleep("1300 millis")
        instance = yield* start(env)
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "tmp")), [])
        const referenced = new Set(results.items.map((r: any) => r.fileId))
        let stored: Array<string> = []
        for (let i = 0; i < 40; i++) {
          stored = fs.readdirSync(path.join(dataDir, "files"))
          if (stored.every((name) => referenced.has(name))) break
          yield* Effect.sleep("100 millis")
        }
        assert.deepStrictEqual(stored.sort(), Array.from(referenced).sort(), "no orphan bodies")
      })
  )

  it.scopedLive(
    "a crash neither loses nor refunds finished attempts: maxAttempts holds across restarts",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-attempts-")
        const env = { DATA_DIR: dataDir, LEASE_MS: "600", SHUTDOWN_GRACE_MS: "200" }
        // Always 503, asking for a second between attempts: the crash falls well between two attempts.
        const url = upstream.url("/down?status=503&retryAfter=1")
        let instance = yield* start(env)
        const job = yield* json(`${instance.base}/jobs`, {
          method: "POST",
          body: JSON.stringify({ urls: [url], maxAttempts: 3 })
        })
        while (upstream.requests().length < 1) yield* Effect.sleep("10 millis")
        yield* Effect.sleep("300 millis")
        instance.child.kill("SIGKILL")
        yield* Effect.promise(() => instance.exited)
        instance = yield* start(env)
        yield* instance.waitFor(job.id, "completed")
        const results = yield* json(`${instance.base}/jobs/${job.id}/results`)
        assert.deepStrictEqual(
          [results.items[0].status, results.items[0].attempts, results.items[0].error.code],
          ["failed", 3, "http_status"]
        )
        const answered = upstream.requests().filter((r) => r.outcome === "answered")
        assert.strictEqual(answered.length, 3, "three attempts in all, the one before the crash included")
      })
  )
})

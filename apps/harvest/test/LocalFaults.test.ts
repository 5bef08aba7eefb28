import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Harness from "./harness.js"
import * as Tmpfs from "./tmpfs.js"

// Faults of Harvest's own machine, for real: DATA_DIR on a tmpfs too small for the job, then grown. Harvest runs as a
// real process, so that what it logs is checked too.

const maxConcurrency = 16
// 200 bodies of about 64 KiB (12.8 MB, on a 3 MB disk), all different: half held in memory and written at once, half
// streamed through a temp file.
const sizes = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 65_536 - i : 65_536 + i))

// When the upstream saw a request, on the wall clock Harvest's `since` is read on.
const arrivedAt = (record: Upstream.RequestRecord) => performance.timeOrigin + record.arrivedAt

const metric = (text: string, name: string) => {
  const match = new RegExp(`^${name.replace(/[{}"=]/g, "\\$&")} (\\S+)$`, "m").exec(text)
  return match === null ? undefined : Number(match[1])
}

const skipReason = (database: "sqlite" | "pg") => Tmpfs.skip ?? (database === "pg" ? Databases.postgresSkip : undefined)

for (const database of ["sqlite", "pg"] as const) {
  const skip = skipReason(database)
  const suite = skip === undefined ? describe : describe.skip
  suite(`Harvest on a full disk, on ${database}${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
    it.scopedLive(
      "a full DATA_DIR: degraded and saying so, nothing failed, counted or sent; resumes by itself once space is back",
      () =>
        Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          const disk = yield* Tmpfs.mount("3m")
          const env: Record<string, string> = {
            DATA_DIR: disk.dir,
            MAX_CONCURRENCY: String(maxConcurrency),
            SHUTDOWN_GRACE_MS: "500"
          }
          if (database === "pg") env.DATABASE_URL = yield* Databases.freshPostgres
          const harvest = yield* Harness.spawn(env)
          const urls = sizes.map((bytes, i) => upstream.url(`/item/${i}?bytes=${bytes}`))
          const id = yield* harvest.submit({ urls })

          // The disk fills up: the instance says it is degraded, and why.
          const health = yield* Wait.until(
            "the instance to be degraded",
            Effect.map(harvest.call("GET", "/health"), (reply) => reply.status === 503 && reply),
            { timeout: "30 seconds", interval: "20 millis" }
          )
          assert.strictEqual(health.json.status, "degraded", health.text)
          assert.strictEqual(health.json.reason, "storage_full", health.text)
          assert.match(health.json.message, /ENOSPC|SQLITE_FULL|no space|full/, health.text)
          assert.isAtLeast(Number(health.headers.get("retry-after")), 1)
          const since = Date.parse(health.json.since)

          const refused = yield* harvest.call("POST", "/jobs", { urls: [upstream.url("/later")] })
          assert.strictEqual(refused.status, 503, refused.text)
          assert.strictEqual(refused.json.error.code, "storage_full", refused.text)
          assert.match(refused.json.error.message, /no space|full/)
          assert.isAtLeast(Number(refused.headers.get("retry-after")), 1)

          // The fault lasts: nothing fails, the host's circuit stays closed and sees no error, no new request starts.
          yield* Effect.sleep("2500 millis")
          const during = (yield* harvest.call("GET", `/jobs/${id}`)).json
          assert.strictEqual(during.status, "running")
          assert.strictEqual(during.failed, 0, JSON.stringify(during))
          assert.isBelow(during.succeeded, 200)
          const state = (yield* harvest.call("GET", "/dashboard/state")).json
          assert.strictEqual(state.degraded?.reason, "storage_full", JSON.stringify(state.degraded))
          const host = state.hosts.find((h: any) => h.host === `${upstream.host}:${upstream.port}`)
          assert.strictEqual(host.circuit, "closed")
          assert.deepStrictEqual(host.recentErrors, [], "a local fault is no error of the host")
          const metrics = (yield* harvest.call("GET", "/metrics")).text
          assert.strictEqual(metric(metrics, `harvest_degraded{reason="storage_full"}`), 1)
          assert.strictEqual(metric(metrics, `harvest_degraded{reason="database_unavailable"}`), 0)
          // Requests on their way when the disk filled still arrive (connecting takes a moment); none starts later.
          const late = upstream.requests().filter((record) => arrivedAt(record) > since + 1000)
          assert.deepStrictEqual(late.map((record) => record.path), [], "no request starts while degraded")
          const sentDuringFault = upstream.requests().length

          // Space comes back: the instance heals by itself within seconds and finishes the job.
          yield* disk.resize("64m")
          const grownAt = Date.now()
          yield* Wait.until(
            "the instance to be healthy again",
            Effect.map(harvest.call("GET", "/health"), (reply) => reply.status === 200 && reply.json.status === "ok"),
            { timeout: "10 seconds", interval: "20 millis" }
          )
          assert.isBelow(Date.now() - grownAt, 5000, "healed within seconds")
          const done = yield* harvest.waitFor(id, "completed", 60_000)
          assert.deepStrictEqual([done.succeeded, done.failed], [200, 0])

          // Exact results: each URL exactly once, one attempt each (the host never failed), every body in place.
          const results = yield* harvest.results(id)
          assert.strictEqual(results.length, 200)
          assert.deepStrictEqual(new Set(results.map((result: any) => result.url)), new Set(urls))
          for (const result of results) {
            const bytes = Number(new URL(result.url).searchParams.get("bytes"))
            assert.deepStrictEqual(
              [result.status, result.attempts, result.error, result.bytes, result.sha256],
              ["succeeded", 1, null, bytes, Upstream.expectedSha256(bytes)],
              JSON.stringify(result)
            )
            const body = fs.readFileSync(path.join(disk.dir, "files", result.fileId))
            assert.strictEqual(createHash("sha256").update(body).digest("hex"), result.sha256)
          }

          // The upstream got every URL, and a second request only for a body the full disk refused: those were on
          // their way when it filled up, at most one per worker.
          const seen = new Map<string, Array<Upstream.RequestRecord>>()
          for (const record of upstream.requests()) {
            const key = record.path
            seen.set(key, [...(seen.get(key) ?? []), record])
          }
          assert.strictEqual(seen.size, 200)
          const again = Array.from(seen.values()).filter((records) => records.length > 1)
          for (const records of again) {
            assert.strictEqual(records.length, 2, records[0].path)
            assert.isAtMost(arrivedAt(records[0]), since + 1000, `${records[0].path}: first sent before the fault`)
          }
          assert.isAtMost(again.length, maxConcurrency)
          assert.strictEqual(upstream.requests().length, 200 + again.length)
          assert.isAtMost(sentDuringFault, 200 + again.length)

          const healthy = yield* harvest.call("GET", "/health")
          assert.deepStrictEqual([healthy.status, healthy.json.status, healthy.json.reason], [200, "ok", undefined])
          const after = (yield* harvest.call("GET", "/metrics")).text
          assert.strictEqual(metric(after, `harvest_degraded{reason="storage_full"}`), 0)

          // The log said so once as it began and once as it ended, one line each: no stack trace, no line per retry.
          const output = harvest.output()
          assert.strictEqual(output.match(/degraded by a local fault/g)?.length, 1, output)
          assert.strictEqual(output.match(/local fault cleared/g)?.length, 1, output)
          assert.notMatch(output, /leasing failed|committing results failed/)
          assert.notMatch(output, /\n\s+at /, "no stack trace")
        })
    )
  })
}

import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as fs from "node:fs"
import * as path from "node:path"
import type * as HarvestConfig from "../src/HarvestConfig.js"
import * as Harness from "./harness.js"

const harvestOn = (database: "sqlite" | "pg") => (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Effect.gen(function*() {
    return yield* Harness.inProcess(overrides, { database })
  })

for (const database of ["sqlite", "pg"] as const) {
  const skip = database === "pg" ? Databases.postgresSkip : undefined
  const suite = skip === undefined ? describe : describe.skip
  const harvest = harvestOn(database)
  suite(`Harvest on ${database}${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
    it.scopedLive("fetches a job end to end: every outcome recorded once, bodies stored under their hash", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { call, dataDir, waitFor } = yield* harvest()
        const urls = [
          upstream.url("/ok?bytes=3000"),
          upstream.url("/ok?bytes=3000"), // a duplicate, stored once
          upstream.url("/flaky?fail=1&key=f1&status=503"),
          upstream.url("/missing?status=404"),
          upstream.url("/gone?reset=1")
        ]
        const created = yield* call("POST", "/jobs", { urls, maxAttempts: 2 })
        assert.strictEqual(created.status, 202)
        assert.deepStrictEqual([created.json.status, created.json.total], ["queued", 4])
        const done = yield* waitFor(created.json.id, "completed")
        assert.deepStrictEqual([done.succeeded, done.failed, done.pending], [2, 2, 0])
        const results = yield* call("GET", `/jobs/${created.json.id}/results?limit=10`)
        const byPath = new Map<string, any>(results.json.items.map((r: any) => [new URL(r.url).pathname, r]))
        assert.deepStrictEqual(
          [byPath.get("/ok").sha256, byPath.get("/ok").bytes, byPath.get("/ok").attempts],
          [Upstream.expectedSha256(3000), 3000, 1]
        )
        assert.deepStrictEqual([byPath.get("/flaky").status, byPath.get("/flaky").attempts], ["succeeded", 2])
        assert.deepStrictEqual(
          [byPath.get("/missing").error.code, byPath.get("/missing").httpStatus, byPath.get("/missing").attempts],
          ["http_status", 404, 1]
        )
        assert.deepStrictEqual([byPath.get("/gone").error.code, byPath.get("/gone").attempts], ["network", 2])
        const file = yield* call("GET", `/files/${byPath.get("/ok").fileId}`)
        assert.strictEqual(file.text.length, 3000)
        const exported = yield* call("GET", `/jobs/${created.json.id}/export`)
        assert.strictEqual(exported.headers.get("content-type"), "application/x-ndjson")
        assert.strictEqual(exported.text.trim().split("\n").length, 4)
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "tmp")), [])
      }))

    it.scopedLive("refuses bad input with a 400 naming the field, and unknown ids with a 404", () =>
      Effect.gen(function*() {
        const { call } = yield* harvest({ maxUrlsPerJob: 3 })
        const cases: Array<[unknown, string]> = [
          ["{not json", "not valid JSON"],
          [{}, "urls is required"],
          [{ urls: [] }, "urls must not be empty"],
          [{ urls: "http://a" }, "urls must be an array"],
          [{ urls: ["http://a", "http://b", "http://c", "http://d"] }, "at most 3"],
          [{ urls: ["not a url"] }, "urls[0] is not an absolute URL"],
          [{ urls: ["ftp://x/y"] }, "urls[0] must use http or https"],
          [{ urls: ["http://a"], concurrency: 0 }, "concurrency must be >= 1"],
          [{ urls: ["http://a"], perHostRps: 0 }, "perHostRps must be > 0"],
          [{ urls: ["http://a"], maxAttempts: 21 }, "maxAttempts must be >= 1 and <= 20"],
          [{ urls: ["http://a"], timeoutMs: "fast" }, "timeoutMs must be a number"]
        ]
        for (const [body, message] of cases) {
          const response = yield* call("POST", "/jobs", body)
          assert.strictEqual(response.status, 400, JSON.stringify(body))
          assert.include(response.json.error.message, message)
        }
        for (const route of ["/jobs/nope", "/jobs/00000000-0000-0000-0000-000000000000", "/files/abc", "/no/route"]) {
          const response = yield* call("GET", route)
          assert.strictEqual(response.status, 404, route)
          assert.strictEqual(response.json.error.code, "not_found")
        }
      }))

    it.scopedLive("DELETE cancels a job: its fetches are interrupted upstream, other jobs go on", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        // Three workers: the cancel interrupts the two holding the stuck job's items, and they are replaced.
        const { call, waitFor } = yield* harvest({ maxConcurrency: 3 })
        const stuck = yield* call("POST", "/jobs", { urls: [upstream.url("/a?hang=1"), upstream.url("/b?hang=1")] })
        const other = yield* call("POST", "/jobs", { urls: [upstream.url("/c?latency=300")] })
        yield* waitFor(stuck.json.id, "running")
        while (upstream.inFlight() < 3) yield* Effect.sleep("10 millis")
        const cancelled = yield* call("DELETE", `/jobs/${stuck.json.id}`)
        assert.strictEqual(cancelled.json.status, "cancelled")
        const stuckRequests = () => upstream.requests().filter((r) => r.path !== "/c")
        yield* Wait.until("the cancelled fetches to end", Effect.sync(() => stuckRequests().every((r) => r.outcome)))
        const outcomes = stuckRequests().map((r) => r.outcome)
        assert.deepStrictEqual(outcomes, ["client_closed", "client_closed"])
        const finished = yield* waitFor(other.json.id, "completed")
        assert.strictEqual(finished.succeeded, 1)
        const results = yield* call("GET", `/jobs/${stuck.json.id}/results`)
        assert.deepStrictEqual(results.json.items.map((r: any) => r.error.code), ["cancelled", "cancelled"])
        // All three workers are there again: a job whose three requests are answered only once all three wait.
        const gated = yield* Upstream.make({ gate: yield* Upstream.gate(3) })
        const after = yield* call("POST", "/jobs", { urls: [gated.url("/x"), gated.url("/y"), gated.url("/z")] })
        assert.strictEqual((yield* waitFor(after.json.id, "completed")).succeeded, 3)
        assert.strictEqual(gated.peakInFlight(), 3)
      }))

    it.scopedLive("DELETE on a finished job answers 409 already_finished and changes nothing", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { call, results, submit, waitFor } = yield* harvest()
        const completed = yield* submit({ urls: [upstream.url("/a"), upstream.url("/b?status=404")] })
        const before = yield* waitFor(completed, "completed")
        const refused = yield* call("DELETE", `/jobs/${completed}`)
        assert.strictEqual(refused.status, 409, refused.text)
        assert.deepStrictEqual(Object.keys(refused.json.error).sort(), ["code", "message"])
        assert.strictEqual(refused.json.error.code, "already_finished")
        assert.deepStrictEqual((yield* call("GET", `/jobs/${completed}`)).json, before, "the job is left as it was")
        assert.deepStrictEqual((yield* results(completed)).map((r: any) => r.status), ["succeeded", "failed"])

        // A cancelled job is finished too: a second DELETE changes nothing either.
        const stuck = yield* submit({ urls: [upstream.url("/c?hang=1")] })
        yield* waitFor(stuck, "running")
        assert.strictEqual((yield* call("DELETE", `/jobs/${stuck}`)).status, 200)
        const cancelled = (yield* call("GET", `/jobs/${stuck}`)).json
        const again = yield* call("DELETE", `/jobs/${stuck}`)
        assert.strictEqual(again.status, 409)
        assert.strictEqual(again.json.error.code, "already_finished")
        assert.deepStrictEqual((yield* call("GET", `/jobs/${stuck}`)).json, cancelled)
      }))

    it.scopedLive("upstream errors are retried without a word about the limit store (there is none)", () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        const capture = Logger.make(({ message }) => {
          logs.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        yield* Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          const { results, submit, waitFor } = yield* harvest()
          const id = yield* submit({ urls: [upstream.url("/x?fail=2&key=k&status=503")], maxAttempts: 3 })
          yield* waitFor(id, "completed")
          assert.deepStrictEqual((yield* results(id)).map((r: any) => [r.status, r.attempts]), [["succeeded", 3]])
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
        assert.isNotEmpty(logs, "the logs were captured")
        assert.isFalse(logs.some((line) => line.includes("limit store")), logs.join("\n"))
      }))

    it.scopedLive("finishedAt is when the last item settled (or the cancel), not when the job is first read", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { call, results, submit, waitFor } = yield* harvest()
        const id = yield* submit({ urls: [upstream.url("/a"), upstream.url("/b?latency=100")] })
        // The job itself is not read until a second after both results were visible.
        yield* Wait.until("both results", Effect.map(results(id), (items) => items.length === 2))
        const seenSettled = Date.now()
        yield* Effect.sleep("1 second")
        const view = (yield* call("GET", `/jobs/${id}`)).json
        assert.strictEqual(view.status, "completed")
        assert.isAtMost(Date.parse(view.finishedAt), seenSettled, "written with the last result, not at this read")
        assert.isAtLeast(Date.parse(view.finishedAt), Date.parse(view.createdAt))

        const stuck = yield* submit({ urls: [upstream.url("/c?hang=1")] })
        yield* waitFor(stuck, "running")
        const before = Date.now()
        const cancelled = (yield* call("DELETE", `/jobs/${stuck}`)).json
        const after = Date.now()
        assert.isAtLeast(Date.parse(cancelled.finishedAt), before - 1)
        assert.isAtMost(Date.parse(cancelled.finishedAt), after)
      }))

    it.scopedLive("GET /jobs: newest first in keyset pages, filtered by status, bad parameters named", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { call, submit, waitFor } = yield* harvest()
        const completed = yield* submit({ urls: [upstream.url("/a")] })
        yield* waitFor(completed, "completed")
        const cancelled = yield* submit({ urls: [upstream.url("/b?hang=1")] })
        yield* waitFor(cancelled, "running")
        assert.strictEqual((yield* call("DELETE", `/jobs/${cancelled}`)).status, 200)
        const running = yield* submit({ urls: [upstream.url("/c?hang=1"), upstream.url("/d")] })
        yield* waitFor(running, "running")
        const ids = (reply: Harness.Reply) => reply.json.items.map((job: any) => job.id)

        const all = yield* call("GET", "/jobs")
        assert.strictEqual(all.status, 200, all.text)
        assert.deepStrictEqual(ids(all), [running, cancelled, completed])
        assert.deepStrictEqual(all.json.items.map((job: any) => job.status), ["running", "cancelled", "completed"])
        assert.deepStrictEqual(all.json.items[2], (yield* call("GET", `/jobs/${completed}`)).json, "the same views")
        assert.strictEqual(all.json.nextCursor, null)

        const first = yield* call("GET", "/jobs?limit=2")
        assert.deepStrictEqual(ids(first), [running, cancelled])
        // A job created now is newer than every page: it never shifts the next one.
        const newest = yield* submit({ urls: [upstream.url("/e?hang=1")] })
        const second = yield* call("GET", `/jobs?limit=2&cursor=${encodeURIComponent(first.json.nextCursor)}`)
        assert.deepStrictEqual(ids(second), [completed])
        assert.strictEqual(second.json.nextCursor, null)

        assert.deepStrictEqual(ids(yield* call("GET", "/jobs?status=completed,cancelled")), [cancelled, completed])
        yield* waitFor(newest, "running")
        const runningOnly = yield* call("GET", "/jobs?status=running&limit=1")
        assert.deepStrictEqual(ids(runningOnly), [newest])
        const nextRunning = yield* call("GET", `/jobs?status=running&limit=1&cursor=${runningOnly.json.nextCursor}`)
        assert.deepStrictEqual(ids(nextRunning), [running])
        assert.strictEqual(nextRunning.json.nextCursor, null, "a full last page has no next one")

        for (const [query, field] of [["status=done", "status"], ["cursor=12", "cursor"], ["limit=0", "limit"]]) {
          const refused = yield* call("GET", `/jobs?${query}`)
          assert.strictEqual(refused.status, 400, query)
          assert.strictEqual(refused.json.error.code, "invalid_field", query)
          assert.include(refused.json.error.message, field, query)
        }
      }))

    it.scopedLive("refuses private addresses unless allowed, without connecting", () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { call, waitFor } = yield* harvest({ allowPrivateNetworks: false })
        const created = yield* call("POST", "/jobs", { urls: [upstream.url("/secret")] })
        yield* waitFor(created.json.id, "completed")
        const results = yield* call("GET", `/jobs/${created.json.id}/results`)
        assert.strictEqual(results.json.items[0].error.code, "blocked_address")
        assert.strictEqual(upstream.requests().length, 0)
      }))
  })
}

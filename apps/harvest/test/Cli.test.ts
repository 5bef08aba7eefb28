import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as path from "node:path"
import { api, expectCode, freePort, harvest, harvestVariables, jobsOf, row, server, writeFile } from "./cliHarness.js"

describe("harvest command line (real processes)", () => {
  it.scopedLive(
    "fetch against a server: summary on stdout, plain progress lines on stderr, exit 0",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server({ apiToken: Option.some(Redacted.make("s3cret")) })
        const dir = yield* Databases.tempDir("harvest-cli-")
        // Two at a time, each at least 200 ms: the run lasts over 3 s, long enough for periodic progress lines.
        const urls = Array.from({ length: 30 }, (_, i) => upstream.url(`/ok/${i}?latency=200-300&bytes=${300 + i}`))
        urls.push(upstream.url("/flaky?fail=1&key=cli-flaky&status=503"))
        const file = writeFile(dir, "urls.txt", ["# a comment", "", ...urls, "   "])

        const result = yield* harvest([
          "fetch",
          file,
          "--server",
          base,
          "--token",
          "s3cret",
          "--max-attempts",
          "3",
          "--per-host-concurrency",
          "2"
        ])
        expectCode(result, 0)
        assert.strictEqual(row(result.stdout, "succeeded"), 31)
        assert.strictEqual(row(result.stdout, "failed"), 0)
        assert.strictEqual(row(result.stdout, "total"), 31)
        assert.match(result.stderr, /^fetched 31\/31 \(100%\) [\d.]+\/s eta 0s$/m, "the last progress line")
        const periodic = Array.from(result.stderr.matchAll(/^fetched (\d+)\/31 \(\d+%\) [\d.]+\/s eta \S+$/gm))
        assert.isTrue(periodic.some((m) => Number(m[1]) < 31), `a progress line while running:\n${result.stderr}`)
        assert.isAtMost(upstream.peakInFlight(), 2, "--per-host-concurrency reached the job")
        assert.notInclude(result.stderr, "\x1b[", "no terminal escapes when stderr is not a TTY")
        const [job] = jobsOf(result.stdout)
        const view = yield* api(base, `/jobs/${job.id}`, { token: "s3cret" })
        assert.deepStrictEqual([view.json.status, view.json.total, view.json.succeeded], ["completed", 31, 31])

        // The same server without the token: 401, reported, exit 2, nothing submitted.
        const denied = yield* harvest(["fetch", file, "--server", base])
        expectCode(denied, 2)
        assert.match(denied.stderr, /answered 401 unauthorized/)
        assert.notMatch(denied.stdout, /Summary/)
      })
  )

  it.scopedLive(
    "failed URLs: exit 1 with failures by code; --allow-failures exits 0; batches become several jobs",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const file = writeFile(dir, "urls.txt", [
          ...Array.from({ length: 5 }, (_, i) => upstream.url(`/ok/${i}`)),
          upstream.url("/missing/1?status=404"),
          upstream.url("/missing/2?status=410")
        ])

        const failing = yield* harvest(["fetch", file, "--server", base, "--batch", "3", "--progress", "none"])
        expectCode(failing, 1)
        assert.strictEqual(row(failing.stdout, "succeeded"), 5)
        assert.strictEqual(row(failing.stdout, "failed"), 2)
        assert.strictEqual(row(failing.stdout, "http_status"), 2)
        assert.include(failing.stdout, upstream.url("/missing/1?status=404"))
        const jobs = jobsOf(failing.stdout)
        assert.deepStrictEqual(jobs.map((j) => j.total), [3, 3, 1], "7 URLs in batches of 3")
        for (const job of jobs) {
          assert.strictEqual((yield* api(base, `/jobs/${job.id}`)).json.status, "completed")
        }
        assert.strictEqual(failing.stderr, "", "--progress none prints nothing on stderr")

        const allowed = yield* harvest(["fetch", file, "--server", base, "--allow-failures"])
        expectCode(allowed, 0)
        assert.strictEqual(row(allowed.stdout, "failed"), 2)
      })
  )

  it.scopedLive(
    "stdin (-): lines streamed in and submitted; a bad line cancels the jobs already submitted",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const urls = Array.from({ length: 12 }, (_, i) => upstream.url(`/in/${i}`))
        const piped = yield* harvest(["fetch", "-", "--server", base, "--batch", "5"], {
          stdin: ["# from a pipe", ...urls, ""].join("\r\n")
        })
        expectCode(piped, 0)
        assert.strictEqual(row(piped.stdout, "succeeded"), 12)
        assert.deepStrictEqual(jobsOf(piped.stdout).map((j) => j.total), [5, 5, 2])

        // Stdin cannot be read twice: a bad line that comes after whole batches went out cancels their jobs.
        const slow = Array.from({ length: 4 }, (_, i) => upstream.url(`/slow/${i}?latency=3000`))
        const bad = yield* harvest(["fetch", "-", "--server", base, "--batch", "2"], {
          stdin: { open: true },
          whileRunning: (child) =>
            Effect.gen(function*() {
              child.write([...slow, ""].join("\n"))
              yield* Wait.until("two batches submitted", Effect.sync(() => upstream.inFlight() === 4))
              child.write(["", "ftp://example.com/file", upstream.url("/never"), ""].join("\n"))
              child.endInput()
            })
        })
        expectCode(bad, 2)
        assert.match(bad.stderr, /stdin:6: "ftp:\/\/example\.com\/file" must use http or https/)
        const cancelled = Array.from(bad.stderr.matchAll(/cancelled job ([0-9a-f-]{36})/g), (m) => m[1])
        assert.strictEqual(cancelled.length, 2)
        for (const id of cancelled) assert.strictEqual((yield* api(base, `/jobs/${id}`)).json.status, "cancelled")
        assert.isFalse(upstream.requests().some((r) => r.path === "/never"))
      })
  )

  it.scopedLive(
    "a bad line in a file is reported with its number before anything is submitted",
    () =>
      Effect.gen(function*() {
        // The "server" is an upstream that records every request: there must be none.
        const recorder = yield* Upstream.make()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const file = writeFile(dir, "urls.txt", [recorder.url("/a"), "# ok", "not a url", recorder.url("/b")])
        const result = yield* harvest(["fetch", file, "--server", recorder.origin])
        expectCode(result, 2)
        assert.include(result.stderr, `${file}:3: "not a url" is not an absolute URL`)
        assert.deepStrictEqual(recorder.requests(), [])
      })
  )

  it.scopedLive(
    "Ctrl-C in --local mode: summary printed, exit 130, no temp files, items released not failed",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const dataDir = yield* Databases.tempDir("harvest-cli-sigint-")
        const dir = yield* Databases.tempDir("harvest-cli-")
        // Slow bodies: while they drip in, their temp files exist under tmp/ (bodies over 64 KiB are streamed to disk;
        // smaller ones are gathered in memory and written at once). All 40 at once (one wave of 2.5 s here, and one
        // when the server finishes them), so the test waits for bodies, not for a per-host queue.
        const urls = Array.from({ length: 40 }, (_, i) => upstream.url(`/slow/${i}?bytes=100000&drip=4000&every=100`))
        const file = writeFile(dir, "urls.txt", urls)
        let sawTemp = false
        const args = ["fetch", file, "--data-dir", dataDir, "--allow-private-networks", "--per-host-concurrency", "40"]
        const result = yield* harvest(args, {
          whileRunning: (child) =>
            Effect.gen(function*() {
              yield* Wait.until(
                "bodies being written",
                Effect.sync(() => {
                  const tmp = path.join(dataDir, "tmp")
                  sawTemp = fs.existsSync(tmp) && fs.readdirSync(tmp).length > 0
                  return sawTemp && upstream.inFlight() >= 4
                })
              )
              child.kill("SIGINT")
            })
        })
        expectCode(result, 130)
        assert.isTrue(sawTemp)
        assert.match(result.stdout, /^Interrupted: summary so far$/m)
        assert.strictEqual(row(result.stdout, "failed"), 0, "the interruption fails nothing")
        assert.isAbove(row(result.stdout, "not fetched") ?? 0, 0)
        assert.strictEqual(row(result.stdout, "total"), 40)
        assert.deepStrictEqual(fs.readdirSync(path.join(dataDir, "tmp")), [], "no temp file left")
        const [job] = jobsOf(result.stdout)

        // The interrupted items went back to pending: Harvest on the same data dir finishes them, each in one attempt.
        const { base } = yield* server({ dataDir })
        const view = yield* Wait.until(
          "the server to finish the job",
          Effect.map(api(base, `/jobs/${job.id}`), (reply) => reply.json.status === "completed" && reply.json)
        )
        assert.deepStrictEqual([view.status, view.succeeded, view.failed], ["completed", 40, 0])
        const results = (yield* api(base, `/jobs/${job.id}/results?limit=100`)).json
        assert.isTrue(results.items.every((r: any) => r.attempts === 1), "an interrupted attempt does not count")
      })
  )

  it.scopedLive(
    "Ctrl-C against a server: the run's jobs are cancelled, summary printed, exit 130",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const file = writeFile(
          dir,
          "urls.txt",
          Array.from({ length: 30 }, (_, i) => upstream.url(`/s/${i}?latency=30000`))
        )
        // Ctrl-C once every batch is submitted and fetching (all 30 in flight), so the run has all three jobs.
        const args = ["fetch", file, "--server", base, "--batch", "10", "--per-host-concurrency", "30"]
        const result = yield* harvest(args, {
          whileRunning: (child) =>
            Effect.gen(function*() {
              yield* Wait.until("all three batches fetching", Effect.sync(() => upstream.inFlight() === 30))
              child.kill("SIGINT")
            })
        })
        expectCode(result, 130)
        assert.match(result.stdout, /^Interrupted: summary so far$/m)
        const jobs = jobsOf(result.stdout)
        assert.strictEqual(jobs.length, 3)
        for (const job of jobs) {
          assert.strictEqual(job.status, "cancelled")
          assert.strictEqual((yield* api(base, `/jobs/${job.id}`)).json.status, "cancelled")
        }
        yield* Wait.until("in-flight fetches interrupted", Effect.sync(() => upstream.inFlight() === 0), {
          timeout: "5 seconds"
        })
      })
  )

  it.scopedLive(
    "status, export and cancel against a server; unknown jobs and unreachable servers exit 2",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const { base } = yield* server()
        const dir = yield* Databases.tempDir("harvest-cli-")
        const done = (yield* api(base, "/jobs", {
          method: "POST",
          body: JSON.stringify({ urls: [upstream.url("/a?bytes=10"), upstream.url("/b?status=404")] })
        })).json
        let view = (yield* api(base, `/jobs/${done.id}`)).json
        while (view.status !== "completed") {
          yield* Effect.sleep("25 millis")
          view = (yield* api(base, `/jobs/${done.id}`)).json
        }

        const status = yield* harvest(["status", done.id, "--server", base])
        expectCode(status, 0)
        assert.match(status.stdout, /^status +completed$/m)
        assert.match(status.stdout, /^succeeded +1$/m)
        assert.match(status.stdout, /^failed +1$/m)

        const exported = yield* harvest(["export", done.id, "-s", base])
        expectCode(exported, 0)
        const lines = exported.stdout.trim().split("\n").map((line) => JSON.parse(line))
        assert.deepStrictEqual(lines.map((r) => r.status).sort(), ["failed", "succeeded"])

        const slow = (yield* api(base, "/jobs", {
          method: "POST",
          body: JSON.stringify({ urls: [upstream.url("/hang?hang=1")] })
        })).json
        yield* Wait.until("the fetch in flight", Effect.sync(() => upstream.inFlight() === 1))
        const cancelled = yield* harvest(["cancel", slow.id, "--server", base])
        expectCode(cancelled, 0)
        assert.match(cancelled.stdout, new RegExp(`job ${slow.id} cancelled`))
        assert.strictEqual((yield* api(base, `/jobs/${slow.id}`)).json.status, "cancelled")
        yield* Wait.until("the fetch interrupted", Effect.sync(() => upstream.inFlight() === 0), {
          timeout: "5 seconds"
        })

        const unknown = yield* harvest(["status", "00000000-0000-0000-0000-000000000000", "--server", base])
        expectCode(unknown, 2)
        assert.match(unknown.stderr, /answered 404 not_found/)

        const port = yield* freePort
        const unreachable = yield* harvest([
          "fetch",
          writeFile(dir, "u.txt", [upstream.url("/x")]),
          "-s",
          `http://127.0.0.1:${port}`
        ])
        expectCode(unreachable, 2)
        assert.match(
          unreachable.stderr,
          new RegExp(`cannot reach Harvest at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`)
        )
      })
  )

  it.scopedLive(
    "--help of every command exits 0 and names its options; bad usage exits 2",
    () =>
      Effect.gen(function*() {
        const expected: Record<string, ReadonlyArray<string>> = {
          "": ["fetch", "status", "export", "cancel"],
          fetch: [
            "--server",
            "--token",
            "--local",
            "--data-dir",
            "--allow-private-networks",
            "--concurrency",
            "--per-host-concurrency",
            "--per-host-rps",
            "--per-host-burst",
            "--timeout-ms",
            "--max-attempts",
            "--batch",
            "--allow-failures",
            "--progress",
            "<file>"
          ],
          status: ["--server", "--token", "--local", "--json", "<job>"],
          export: ["--server", "--out", "<job>"],
          cancel: ["--server", "--token", "<job>"]
        }
        yield* Effect.forEach(Object.entries(expected), ([command, words]) =>
          Effect.gen(function*() {
            const result = yield* harvest(command === "" ? ["--help"] : [command, "--help"])
            expectCode(result, 0)
            for (const word of words) assert.include(result.stdout, word, `harvest ${command} --help`)
          }), { concurrency: 2 })
        const local = yield* harvest(["status", "--help"])
        for (const variable of harvestVariables) {
          assert.include(local.stdout, variable, "--local's help says which variables it reads and which it does not")
        }
        const bad = yield* harvest(["fetch", "--no-such-option", "x"])
        expectCode(bad, 2)
        const both = yield* harvest(["status", "x", "--local", "--server", "http://127.0.0.1:1"])
        expectCode(both, 2)
        assert.include(both.stderr, "--local and --server exclude each other")
      })
  )
})

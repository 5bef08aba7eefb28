import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import type * as HarvestConfig from "../src/HarvestConfig.js"
import * as Harness from "./harness.js"

// End to end in a real headless Chromium (Debian's): the page, its live updates and its actions, through the
// public API only. Chromium is required under CI=true; elsewhere its absence skips the suite with a reason.
const executablePath = "/usr/bin/chromium"
// The functions passed to `page.waitForFunction` run in the page; this project compiles without the DOM library.
declare const document: {
  querySelector(selector: string): {
    readonly textContent: string | null
    readonly value?: string
    readonly disabled?: boolean
    readonly firstChild: { readonly textContent: string | null } | null
  } | null
  querySelectorAll(selector: string): ArrayLike<{ getAttribute(name: string): string | null }>
}

const here = path.dirname(fileURLToPath(import.meta.url))
const artifacts = path.join(here, "artifacts")
// HARVEST_DOCS_SCREENSHOT=true runs the first test a minute longer (so that the chart has history) and also writes
// the README's docs/dashboard.png, and the waterfall test the README's docs/dashboard-waterfall.png.
const docsScreenshot = Effect.runSync(Config.boolean("HARVEST_DOCS_SCREENSHOT").pipe(Config.withDefault(false)))

const skip = ((): string | undefined => {
  if (fs.existsSync(executablePath)) return undefined
  const ci = Effect.runSync(Config.boolean("CI").pipe(Config.withDefault(false)))
  if (ci) throw new Error(`Chromium is required in CI but ${executablePath} is missing (apt-get install chromium)`)
  console.warn(`[spindle] skipping browser suites: no Chromium at ${executablePath}`)
  return `no Chromium at ${executablePath}`
})()

const harvest = (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Effect.gen(function*() {
    const { base } = yield* Harness.inProcess({ maxConcurrency: 32, ...overrides })
    return base
  })

// A fresh browser profile per test, closed (browser and all) with the scope.
const browser = Effect.gen(function*() {
  const profile = yield* Databases.tempDir("harvest-chromium-")
  const context = yield* Effect.acquireRelease(
    Effect.promise(() =>
      chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        viewport: { width: 1360, height: 940 },
        deviceScaleFactor: 1,
        acceptDownloads: true,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--disable-dev-shm-usage"
        ]
      })
    ),
    (context) => Effect.promise(() => context.close())
  )
  const page = context.pages()[0] ?? (yield* Effect.promise(() => context.newPage()))
  const errors: Array<string> = []
  page.on("pageerror", (error) => errors.push(error.message))
  page.on("console", (message) => {
    // A 401 the page answers by asking for the token is expected; nothing else may be logged as an error.
    if (message.type() === "error" && !message.text().includes("401")) errors.push(message.text())
  })
  return { context: context as BrowserContext, page, errors }
})

const submitThroughForm = async (
  page: Page,
  urls: ReadonlyArray<string>,
  options: { readonly rps?: number; readonly upload?: boolean } = {}
) => {
  if (options.upload === true) {
    // A text file, one URL a line, read by the page into the form.
    await page.fill("#urls", "")
    await page.setInputFiles("#file", {
      name: "urls.txt",
      mimeType: "text/plain",
      buffer: Buffer.from(`# exported list\n${urls.join("\r\n")}\n`)
    })
    await page.waitForFunction(() => document.querySelector("#urls")?.value !== "")
  } else {
    await page.fill("#urls", urls.join("\n"))
  }
  await page.fill("#o-rps", options.rps === undefined ? "" : String(options.rps))
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/jobs") && r.request().method() === "POST"),
    page.click("#submit")
  ])
  assert.strictEqual(response.status(), 202, await response.text())
  return ((await response.json()) as { id: string }).id
}

const rowText = (page: Page, id: string, selector: string, expected: string, timeout = 20_000) =>
  page.waitForFunction(
    ([id, selector, expected]) =>
      document.querySelector(`tr[data-job="${id}"] ${selector}`)?.textContent?.trim() === expected,
    [id, selector, expected] as const,
    { timeout }
  )

// Waits until the jobs table lists exactly `ids`, in that order.
const rowsAre = (page: Page, ids: ReadonlyArray<string>) =>
  page.waitForFunction(
    (ids) =>
      Array.from(document.querySelectorAll("#jobs tr[data-job]")).map((tr) => tr.getAttribute("data-job"))
        .join() === ids.join(),
    ids,
    { timeout: 10_000 }
  ).catch(async (error) => {
    const shown = await page.$$eval("#jobs tr[data-job]", (trs) => trs.map((tr) => tr.getAttribute("data-job")))
    throw new Error(`expected rows ${ids.join()}, the page shows ${shown.join()}`, { cause: error })
  })

const disabled = (page: Page, selector: string, expected: boolean) =>
  page.waitForFunction(
    ([selector, expected]) => document.querySelector(selector)?.disabled === expected,
    [selector, expected] as const,
    { timeout: 10_000 }
  )

const suite = skip === undefined ? describe : describe.skip

suite(`Dashboard in Chromium${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
  it.scopedLive(
    "submits a job and watches it reach 100 %, cancels another, exports, screenshots",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const second = yield* Upstream.make()
        const failing = yield* Upstream.make()
        const base = yield* harvest()
        const { errors, page } = yield* browser
        yield* Effect.promise(async () => {
          await page.goto(base)
          await page.waitForSelector("#conn.live")

          // A job submitted through the form runs to 100 %, live.
          const urls = Array.from({ length: 12 }, (_, i) => upstream.url(`/doc/${i}?latency=100-600&bytes=2000`))
          urls.push(upstream.url("/missing?status=404"))
          const done = await submitThroughForm(page, urls)
          await rowText(page, done, ".pct", "100%")
          await rowText(page, done, ".status", "completed")
          const counts = await page.textContent(`tr[data-job="${done}"] .counts`)
          assert.include(counts!.replace(/\s+/g, " "), "12 ok · 1 failed · 13 total")

          // Its NDJSON export downloads through the public API.
          const [download] = await Promise.all([
            page.waitForEvent("download"),
            page.click(`tr[data-job="${done}"] button[data-action=export]`)
          ])
          const exported = fs.readFileSync((await download.path())!, "utf8").trim().split("\n").map((l) =>
            JSON.parse(l)
          )
          assert.strictEqual(exported.length, 13)
          assert.strictEqual(exported.filter((r) => r.status === "succeeded").length, 12)

          // A slow job is cancelled from the page: its row and the API both say cancelled.
          const slow = await submitThroughForm(page, [upstream.url("/slow/1?hang=1"), upstream.url("/slow/2?hang=1")])
          await rowText(page, slow, ".status", "running")
          await page.click(`tr[data-job="${slow}"] button[data-action=cancel]`)
          await rowText(page, slow, ".status", "cancelled")
          const api = (await (await fetch(`${base}/jobs/${slow}`)).json()) as { status: string }
          assert.strictEqual(api.status, "cancelled")

          // Something in flight for the picture: a host that fails until its circuit opens, then a rate-limited
          // job on a second host.
          await submitThroughForm(page, Array.from({ length: 40 }, (_, i) => failing.url(`/api/${i}?status=503`)))
          await page.waitForFunction(() => document.querySelector("tr[data-host] .badge.open") !== null, undefined, {
            timeout: 20_000
          })
          await submitThroughForm(
            page,
            Array.from({ length: 300 }, (_, i) => second.url(`/feed/${i}?latency=200-900&bytes=5000`)),
            { rps: 15 }
          )
          await page.waitForFunction(
            () => Number(document.querySelector("#s-inflight")?.firstChild?.textContent ?? "0") > 0,
            undefined,
            { timeout: 10_000 }
          )
          await page.waitForTimeout(1500)
          fs.mkdirSync(artifacts, { recursive: true })
          await page.screenshot({ path: path.join(artifacts, "dashboard.png"), fullPage: true })
          if (docsScreenshot) {
            for (let round = 0; round < 3; round++) {
              await page.waitForTimeout(20_000)
              await submitThroughForm(
                page,
                Array.from({ length: 80 }, (_, i) => upstream.url(`/round${round}/${i}?latency=300-1500&bytes=3000`))
              )
            }
            await page.waitForTimeout(8_000)
            await page.screenshot({ path: path.join(here, "..", "..", "..", "docs", "dashboard.png"), fullPage: true })
          }
        })
        assert.deepStrictEqual(errors, [])
      }),
    docsScreenshot ? 180_000 : 90_000
  )

  it.scopedLive(
    "with API_TOKEN the page asks for the token once, then works (SSE included)",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const base = yield* harvest({ apiToken: Option.some(Redacted.make("let-me-in")) })
        const { errors, page } = yield* browser
        yield* Effect.promise(async () => {
          await page.goto(base)
          await page.waitForSelector("#modal.show")
          await page.fill("#token", "wrong")
          await page.click("#token-form button")
          await page.waitForFunction(() =>
            document.querySelector("#token-msg")?.textContent === "That token was refused."
          )
          await page.fill("#token", "let-me-in")
          await page.click("#token-form button")
          await page.waitForSelector("#conn.live")
          const id = await submitThroughForm(page, [upstream.url("/a?latency=200"), upstream.url("/b?latency=300")], {
            upload: true
          })
          await rowText(page, id, ".pct", "100%")
          await rowText(page, id, ".counts", "2 ok · 0 failed · 2 total")

          // The token is kept for the tab: a reload connects without asking again.
          await page.reload()
          await page.waitForSelector("#conn.live")
          assert.isFalse(await page.isVisible("#modal"))
          await rowText(page, id, ".status", "completed")
        })
        assert.deepStrictEqual(errors, [])
      })
  )

  it.scopedLive(
    "the jobs list comes from GET /jobs: a status filter, older pages by cursor, membership kept current",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const harvest = yield* Harness.inProcess({ maxConcurrency: 32 })
        // Six jobs, one at a time so that each is created after the one before: three completed, one cancelled,
        // two running (their only URL never answers within the test).
        const completed: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const id = yield* harvest.submit({ urls: [upstream.url(`/done/${i}`)] })
          yield* harvest.waitFor(id, "completed")
          completed.push(id)
        }
        const hanging = (name: string) => ({ urls: [upstream.url(`/${name}?hang=1`)], timeoutMs: 600_000 })
        const cancelled = yield* harvest.submit(hanging("cancelled"))
        yield* harvest.waitFor(cancelled, "running")
        assert.strictEqual((yield* harvest.call("DELETE", `/jobs/${cancelled}`)).status, 200)
        const running: Array<string> = []
        for (const name of ["run1", "run2"]) {
          const id = yield* harvest.submit(hanging(name))
          yield* harvest.waitFor(id, "running")
          running.push(id)
        }
        const [c1, c2, c3] = completed
        const [r1, r2] = running

        const { errors, page } = yield* browser
        const listed: Array<URLSearchParams> = []
        page.on("request", (request) => {
          const url = new URL(request.url())
          if (url.pathname === "/jobs" && request.method() === "GET") listed.push(url.searchParams)
        })
        yield* Effect.promise(async () => {
          // Two jobs a page: all jobs, newest first, and older ones page by page.
          await page.goto(`${harvest.base}/?limit=2`)
          await page.waitForSelector("#conn.live")
          await rowsAre(page, [r2, r1])
          await disabled(page, "#jobs-newer", true)
          await page.click("#jobs-older")
          await rowsAre(page, [cancelled, c3])
          await page.click("#jobs-older")
          await rowsAre(page, [c2, c1])
          await page.click("#jobs-newer")
          await rowsAre(page, [cancelled, c3])

          // A status filter shows exactly that status's jobs, from the first page again.
          await page.selectOption("#jobs-status", "completed")
          await rowsAre(page, [c3, c2])
          await page.click("#jobs-older")
          await rowsAre(page, [c1])
          await disabled(page, "#jobs-older", true)
          await page.selectOption("#jobs-status", "cancelled")
          await rowsAre(page, [cancelled])
          assert.strictEqual((await page.textContent(`tr[data-job="${cancelled}"] .status`))?.trim(), "cancelled")
          await page.selectOption("#jobs-status", "queued")
          await rowsAre(page, [])
          await page.waitForFunction(() => document.querySelector("#jobs-empty")?.textContent === "No queued jobs.")
          await page.selectOption("#jobs-status", "running")
          await rowsAre(page, [r2, r1])
          // The filter is kept in the page's address.
          assert.strictEqual(new URL(page.url()).searchParams.get("status"), "running")

          // A job that stops running leaves the running list without a reload, and joins the cancelled one.
          const cancel = await fetch(`${harvest.base}/jobs/${r2}`, { method: "DELETE" })
          assert.strictEqual(cancel.status, 200)
          await rowsAre(page, [r1])
          await page.selectOption("#jobs-status", "cancelled")
          await rowsAre(page, [r2, cancelled])
          // Cancelling from the page works on a filtered list too.
          await page.selectOption("#jobs-status", "running")
          await rowsAre(page, [r1])
          await page.click(`tr[data-job="${r1}"] button[data-action=cancel]`)
          await rowsAre(page, [])
        })

        // Every read went through GET /jobs with the page size, the filter and, for older pages, a cursor.
        const query = (params: URLSearchParams) => `${params.get("status") ?? ""}|${params.has("cursor")}`
        const seen = new Set(listed.map(query))
        for (const expected of ["|false", "|true", "completed|false", "completed|true", "cancelled|false"]) {
          assert.isTrue(seen.has(expected), `no GET /jobs ${expected} among ${[...seen].join(" ")}`)
        }
        assert.isTrue(listed.every((params) => params.get("limit") === "2"))
        assert.deepStrictEqual(errors, [])
      }),
    60_000
  )

  it.scopedLive(
    "a job's latency histogram, and a retried URL's waterfall: gate waits, two attempts (the first a 500), the backoff",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        // The ring of recent traces is off unless set; its layer reads the variable once, as it is built.
        const harvest = yield* Harness.inProcess({ maxConcurrency: 32 }).pipe(
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["HARVEST_TRACE_RING", "1000"]])).pipe(
              ConfigProvider.orElse(() => ConfigProvider.fromEnv())
            )
          )
        )
        const flaky = upstream.url(`/flaky?fail=1&key=${crypto.randomUUID()}&status=500&bytes=300`)
        const slow = upstream.url("/slow?latency=600&bytes=1000")
        const id = yield* harvest.submit({ urls: [flaky, slow], maxAttempts: 3 })
        yield* harvest.waitFor(id, "completed")
        const results = yield* harvest.results(id)
        const flakyResult = results.find((r) => r.url === flaky)
        assert.deepStrictEqual([flakyResult.status, flakyResult.attempts], ["succeeded", 2])
        // The API's trace of the retried URL: the page must draw exactly this. (An item's span ends right after its
        // commit, a moment after the job reads as completed.)
        const route = `/jobs/${id}/trace?url=${encodeURIComponent(flaky)}`
        const reply = yield* Wait.until(
          "the item's trace in the ring",
          Effect.map(harvest.call("GET", route), (r) => r.status === 404 ? undefined : r),
          { timeout: "10 seconds", interval: "20 millis" }
        )
        assert.strictEqual(reply.status, 200, reply.text)
        const trace = reply.json as { durationMs: number; spans: Array<{ spanId: string; name: string }> }

        const { errors, page } = yield* browser
        const rows = yield* Effect.promise(async () => {
          await page.goto(harvest.base)
          await page.waitForSelector("#conn.live")
          await page.getByRole("button", { name: `Latency of job ${id.slice(0, 8)}` }).click()

          // The histogram: both items counted, the three percentiles marked.
          await page.getByRole("img", { name: /^Latency histogram of job .*: 2 items · p50/ }).waitFor()
          const bars = await page.$$eval("#histogram rect.bucket", (rects: Array<any>) =>
            rects.map((r) => Number(r.getAttribute("data-count"))))
          assert.strictEqual(
            bars.reduce((a, b) =>
              a + b, 0),
            2
          )
          const marks = await page.$$eval(
            "#histogram line[data-percentile]",
            (lines: Array<any>) => lines.map((l) => l.getAttribute("data-percentile"))
          )
          assert.deepStrictEqual(marks, ["p50", "p90", "p99"])
          // The slowest items, slowest first, as their results' durations say.
          const byDuration = [...results].sort((a, b) => b.durationMs - a.durationMs).map((r) => r.url)
          const listed = await page.$$eval(
            "#slowest button[data-url]",
            (buttons: Array<any>) => buttons.map((b) => b.getAttribute("data-url"))
          )
          assert.deepStrictEqual(listed, byDuration)

          // The retried URL's waterfall.
          await page.getByRole("button", { name: `Waterfall of ${flaky}` }).click()
          await page.waitForSelector("#waterfall-spans li[data-name='harvest.settle']")
          assert.isTrue(await page.getByRole("list", { name: "Spans of the item's trace" }).isVisible())
          await page.getByRole("listitem", { name: /^Attempt 1, status 500, error http_status/ }).waitFor()
          await page.getByRole("listitem", { name: /^Attempt 2, status 200/ }).waitFor()
          fs.mkdirSync(artifacts, { recursive: true })
          await page.screenshot({ path: path.join(artifacts, "dashboard-waterfall.png"), fullPage: true })
          if (docsScreenshot) {
            await page.locator("#details").screenshot({
              path: path.join(here, "..", "..", "..", "docs", "dashboard-waterfall.png")
            })
          }
          const drawn = await page.$$eval("#waterfall-spans li", (items: Array<any>) =>
            items.map((li) => ({
              name: li.getAttribute("data-name") as string,
              start: Number(li.getAttribute("data-start")),
              duration: Number(li.getAttribute("data-duration")),
              depth: Number(li.getAttribute("data-depth")),
              http: li.getAttribute("data-http-status") as string | null,
              left: li.querySelector(".wbar").getBoundingClientRect().left as number,
              width: li.querySelector(".wbar").getBoundingClientRect().width as number,
              trackWidth: li.querySelector(".track").getBoundingClientRect().width as number
            })))

          // Any URL of the job, typed: the slow one made one attempt, no backoff; a URL the job does not have, none.
          await page.getByRole("textbox", { name: "URL of an item of this job" }).fill(slow)
          await page.getByRole("button", { name: "Waterfall", exact: true }).click()
          await page.getByRole("listitem", { name: /^Attempt 1, status 200/ }).waitFor()
          assert.strictEqual(await page.locator("#waterfall-spans li[data-name='GET']").count(), 1)
          assert.strictEqual(await page.locator("#waterfall-spans li[data-name='backoff']").count(), 0)
          await page.getByRole("textbox", { name: "URL of an item of this job" }).fill(upstream.url("/never"))
          await page.getByRole("button", { name: "Waterfall", exact: true }).click()
          await page.waitForFunction(() =>
            /no trace of this item/.test(document.querySelector("#waterfall-msg")?.textContent ?? "")
          )
          assert.strictEqual(await page.locator("#waterfall-spans li").count(), 0)
          return drawn
        })

        // Harvest's own steps, in order (Spindle's operations may add spans of their own between them).
        const ours = rows.filter((r) =>
          [
            "harvest.item",
            "harvest.queued",
            "harvest.host_gate",
            "GET",
            "backoff",
            "harvest.body.write",
            "harvest.settle"
          ]
            .includes(r.name)
        )
        assert.deepStrictEqual(ours.map((r) => r.name), [
          "harvest.item",
          "harvest.queued",
          "harvest.host_gate",
          "GET",
          "backoff",
          "harvest.host_gate",
          "GET",
          "harvest.body.write",
          "harvest.settle"
        ])
        const [item, queued, gate1, get1, backoff, gate2, get2, write, settle] = ours
        assert.deepStrictEqual([get1.http, get2.http], ["500", "200"])
        // Every span the API returned is drawn, with the API's numbers (the backoff is the page's own row).
        assert.strictEqual(rows.filter((r) => r.name !== "backoff").length, trace.spans.length)
        assert.strictEqual(item.duration, trace.durationMs)
        // Nested by parent: the body's writing inside the second attempt.
        assert.strictEqual(write.depth, get2.depth + 1)
        // Offsets in order, each step after the one before (0.002 ms: the API rounds to microseconds).
        const end = (r: { start: number; duration: number }) => r.start + r.duration
        const steps = [queued, gate1, get1, backoff, gate2, get2, settle]
        for (let i = 1; i < steps.length; i++) {
          assert.isAtLeast(steps[i].start, end(steps[i - 1]) - 0.002, `${steps[i].name} after ${steps[i - 1].name}`)
        }
        assert.isTrue(write.start >= get2.start - 0.002 && end(write) <= end(get2) + 0.002, "the write in its attempt")
        // The backoff row spans exactly the gap between the first attempt and the next gate wait.
        assert.approximately(backoff.start, end(get1), 0.002)
        assert.approximately(end(backoff), gate2.start, 0.002)
        // The steps add up to the item: what they leave unaccounted (hand-offs between them, the result's batching
        // window) is at most 50 ms plus 10 % of the item on a busy machine.
        const accounted = steps.reduce((sum, r) => sum + r.duration, 0)
        assert.isAtMost(accounted, item.duration + 0.002)
        assert.isAtMost(item.duration - accounted, 50 + item.duration * 0.1, JSON.stringify(ours))
        // The item's span (lease to commit) covers the result's duration (a worker taking it to its outcome).
        assert.isAtLeast(item.duration + 1, flakyResult.durationMs)
        // Drawn to scale: bars offset left to right in time, each as wide as its share of the item (2 px at least).
        assert.isTrue(get1.left < backoff.left && backoff.left <= gate2.left && gate2.left <= get2.left)
        for (const r of rows) {
          const expected = Math.max(2, (r.duration / item.duration) * r.trackWidth)
          assert.approximately(r.width, expected, 3, `${r.name}'s bar`)
        }
        // The one error logged is the 404 of the trace asked for a URL the job does not have.
        assert.deepStrictEqual(errors, [
          "Failed to load resource: the server responded with a status of 404 (Not Found)"
        ])
      }),
    60_000
  )

  it.scopedLive(
    "a local fault shows as a banner naming its reason while it lasts, and the banner goes once it clears",
    () =>
      Effect.gen(function*() {
        const { base, dataDir } = yield* Harness.inProcess({ maxConcurrency: 32 })
        const { errors, page } = yield* browser
        yield* Effect.promise(async () => {
          await page.goto(base)
          await page.waitForSelector("#conn.live")
          assert.isFalse(await page.isVisible("#degraded"))
        })
        // Another connection takes SQLite's write lock and keeps it: Harvest's next write fails with SQLITE_BUSY.
        const sql = Context.get(
          yield* Layer.build(
            SqliteClient.layer({ filename: path.join(dataDir, "harvest.db"), disableWAL: true }).pipe(Layer.orDie)
          ),
          SqlClient.SqlClient
        )
        yield* Effect.orDie(sql.unsafe("BEGIN IMMEDIATE"))
        yield* Effect.promise(async () => {
          await page.waitForSelector("#degraded", { state: "visible", timeout: 15_000 })
          assert.strictEqual(await page.textContent("#degraded-reason"), "database_unavailable")
          assert.match((await page.textContent("#degraded-message")) ?? "", /SQLITE_BUSY/)
          await page.screenshot({ path: path.join(artifacts, "dashboard-degraded.png") })
        })
        yield* Effect.orDie(sql.unsafe("ROLLBACK"))
        yield* Effect.promise(() => page.waitForSelector("#degraded", { state: "hidden", timeout: 15_000 }))
        assert.deepStrictEqual(errors, [])
      }),
    60_000
  )
})

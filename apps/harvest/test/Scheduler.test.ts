import { assert, describe, it } from "@effect/vitest"
import { Upstream, Wait } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as TestServices from "effect/TestServices"
import * as Harness from "./harness.js"

describe("Scheduler", () => {
  // Harvest runs under the test's `TestClock`, which nothing moves: an idle lease loop that only polled (every 50 ms)
  // would never lease the job. The waits below are the real clock's.
  it.scoped(
    "a job submitted to an idle instance is leased at once, not at the lease loop's next poll",
    () =>
      Effect.gen(function*() {
        const upstream = yield* Upstream.make()
        const harvest = yield* Harness.inProcess()
        // The lease loop has found nothing and waits for its next poll.
        yield* TestServices.provideLive(Effect.sleep("200 millis"))
        const urls = [upstream.url("/a"), upstream.url("/b")]
        const created = yield* Harness.request(`${harvest.base}/jobs`, { method: "POST", body: { urls } })
        assert.strictEqual(created.status, 202, created.text)
        const paths = yield* TestServices.provideLive(
          Wait.until(
            "both URLs fetched",
            Effect.sync(() => {
              const seen = upstream.requests().map((request) => request.path).sort()
              return seen.length === 2 && seen
            }),
            { timeout: "10 seconds" }
          )
        )
        assert.deepStrictEqual(paths, ["/a", "/b"])
      }),
    30_000
  )
})

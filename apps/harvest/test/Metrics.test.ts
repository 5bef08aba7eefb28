import { assert, describe, it } from "@effect/vitest"
import { Upstream } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Harness from "./harness.js"
import * as Prometheus from "./prometheusText.js"

// The checker itself: what it must refuse, on texts written by hand.
describe("Prometheus text checks", () => {
  const valid = [
    "# HELP a_total Things.",
    "# TYPE a_total counter",
    "a_total{kind=\"x\"} 1",
    "a_total{kind=\"y\"} 2",
    "# HELP h_seconds Times.",
    "# TYPE h_seconds histogram",
    "h_seconds_count 3",
    "h_seconds_sum 0.5",
    "h_seconds_bucket{le=\"0.1\"} 1",
    "h_seconds_bucket{le=\"1\"} 3",
    "h_seconds_bucket{le=\"+Inf\"} 3",
    ""
  ].join("\n")

  it("reads a valid text", () => {
    const families = Prometheus.parse(valid)
    assert.deepStrictEqual(families.map((f) => [f.name, f.type, f.help]), [
      ["a_total", "counter", "Things."],
      ["h_seconds", "histogram", "Times."]
    ])
    assert.strictEqual(Prometheus.valueOf(Prometheus.family(families, "a_total"), { kind: "y" }), 2)
    assert.strictEqual(Prometheus.valueOf(Prometheus.family(families, "h_seconds"), {}, "h_seconds_sum"), 0.5)
  })

  it("refuses what the format forbids", () => {
    const breaches: ReadonlyArray<readonly [string, string, RegExp]> = [
      ["ungrouped", valid + "a_total{kind=\"z\"} 1\n", /not grouped/],
      ["decreasing buckets", valid.replace("le=\"1\"} 3", "le=\"1\"} 0"), /decreases/],
      ["+Inf not _count", valid.replace("h_seconds_count 3", "h_seconds_count 4"), /is not _count/],
      ["no +Inf", valid.replace("h_seconds_bucket{le=\"+Inf\"} 3\n", ""), /no \+Inf/],
      ["series twice", valid.replace("kind=\"y\"", "kind=\"x\""), /series twice/],
      ["HELP twice", valid.replace("# TYPE a_total", "# HELP a_total Again.\n# TYPE a_total"), /second HELP/],
      ["TYPE after samples", valid + "# TYPE a_total counter\n", /not grouped/],
      ["le off a bucket", valid.replace("h_seconds_sum 0.5", "h_seconds_sum{le=\"1\"} 0.5"), /le belongs/],
      ["bad label value", valid.replace("kind=\"y\"", "kind=\"a\\qb\""), /malformed labels/],
      ["no line feed at the end", valid.slice(0, -1), /line feed/],
      ["bad value", valid.replace("} 2", "} two"), /not a number/],
      ["bad name", valid.replace("a_total{kind=\"y\"}", "a-total{kind=\"y\"}"), /invalid metric name/]
    ]
    for (const [what, text, error] of breaches) {
      assert.throws(() => Prometheus.parse(text), error, undefined, what)
    }
  })
})

const histograms = [
  "harvest_fetch_duration_seconds",
  "harvest_host_gate_wait_seconds",
  "harvest_settle_duration_seconds"
] as const

const countOf = (families: ReadonlyArray<Prometheus.Family>, name: string) =>
  Prometheus.valueOf(Prometheus.family(families, name), {}, `${name}_count`)

// What the counters and histograms say, as numbers, for comparing two scrapes.
const reading = (families: ReadonlyArray<Prometheus.Family>) => {
  const items = Prometheus.family(families, "harvest_items_total")
  const attempts = Prometheus.family(families, "harvest_attempts_total")
  const bodyWrites = Prometheus.family(families, "harvest_body_writes_total")
  return {
    succeeded: Prometheus.valueOf(items, { outcome: "succeeded" }),
    failedHttp: Prometheus.valueOf(items, { outcome: "failed", code: "http_status" }),
    attemptsOk: Prometheus.valueOf(attempts, { code: "ok" }),
    attemptsHttp: Prometheus.valueOf(attempts, { code: "http_status" }),
    fetches: countOf(families, "harvest_fetch_duration_seconds"),
    gateWaits: countOf(families, "harvest_host_gate_wait_seconds"),
    settled: countOf(families, "harvest_settle_duration_seconds"),
    // On the loop's thread or by the storage thread, as the storage's speed decides.
    bodyWrites: Prometheus.valueOf(bodyWrites, { writer: "loop" }) +
      Prometheus.valueOf(bodyWrites, { writer: "thread" })
  }
}

describe("GET /metrics", () => {
  it.scopedLive("is OpenTelemetry's Prometheus exposition, and its counters and histograms match a job's results", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const harvest = yield* Harness.inProcess()
      const scrape = Effect.map(harvest.call("GET", "/metrics"), (reply) => {
        assert.strictEqual(reply.status, 200)
        assert.match(reply.headers.get("content-type") ?? "", /^text\/plain/)
        return Prometheus.parse(reply.text)
      })

      // Metrics are the process's: the test compares a scrape after the job with one before it.
      const before = reading(yield* scrape)
      const id = yield* harvest.submit({
        urls: [
          ...Array.from({ length: 4 }, (_, i) => upstream.url(`/ok/${i}?bytes=512`)),
          // Once a 500, then a success: two attempts each.
          upstream.url(`/flaky/a?fail=1&key=${crypto.randomUUID()}&status=500`),
          upstream.url(`/flaky/b?fail=1&key=${crypto.randomUUID()}&status=500`),
          // Always 500: fails after its two attempts; a 404 fails at once.
          upstream.url("/down?status=500"),
          upstream.url("/missing?status=404")
        ],
        maxAttempts: 2
      })
      yield* harvest.waitFor(id, "completed")
      const results = yield* harvest.results(id)
      const succeeded = results.filter((r) => r.status === "succeeded").length
      const failed = results.filter((r) => r.status === "failed")
      const attempts = results.reduce((sum, r) => sum + r.attempts, 0)
      assert.deepStrictEqual([succeeded, failed.length, attempts], [6, 2, 11])
      assert.deepStrictEqual(failed.map((r) => r.error.code), ["http_status", "http_status"])

      // A result counts once its commit is done, a moment after the job reads completed: wait for it.
      const expected = {
        succeeded: before.succeeded + 6,
        failedHttp: before.failedHttp + 2,
        attemptsOk: before.attemptsOk + 6,
        attemptsHttp: before.attemptsHttp + 5,
        fetches: before.fetches + 11,
        gateWaits: before.gateWaits + 11,
        settled: before.settled + 8,
        bodyWrites: before.bodyWrites + 6
      }
      let families = yield* scrape
      const until = Date.now() + 10_000
      while (Date.now() < until && reading(families).settled < expected.settled) {
        yield* Effect.sleep("20 millis")
        families = yield* scrape
      }
      assert.deepStrictEqual(reading(families), expected)

      const typeOf = (name: string) => Prometheus.family(families, name).type
      assert.strictEqual(typeOf("harvest_items_total"), "counter")
      assert.strictEqual(typeOf("harvest_attempts_total"), "counter")
      assert.strictEqual(typeOf("harvest_body_writes_total"), "counter")
      for (const name of histograms) assert.strictEqual(typeOf(name), "histogram", name)
      // Every family says what it is (Harvest's own, and the core's, whose names and types are unchanged).
      for (const f of families) assert.notStrictEqual(f.help, "", `${f.name} has a HELP line`)
      for (const f of families) assert.notStrictEqual(f.type, "untyped", `${f.name} has a TYPE line`)
      assert.strictEqual(typeOf("spindle_limiter_in_flight"), "gauge")
      assert.strictEqual(typeOf("spindle_retries_total"), "counter")
      assert.strictEqual(typeOf("spindle_event_loop_delay_p99_ms"), "gauge")
      assert.strictEqual(typeOf("harvest_degraded"), "gauge")
      // The resource is `target_info`.
      assert.strictEqual(typeOf("target_info"), "gauge")
      assert.strictEqual(Prometheus.family(families, "target_info").samples[0]?.labels.service_name, "harvest")

      // Label sets: an outcome, and for a failure its code; an attempt's code.
      const labelSets = (name: string) =>
        Prometheus.family(families, name).samples.map((s) => Object.keys(s.labels).sort().join(","))
      assert.includeMembers(labelSets("harvest_items_total"), ["outcome", "code,outcome"])
      for (const set of labelSets("harvest_items_total")) assert.oneOf(set, ["outcome", "code,outcome"])
      for (const set of labelSets("harvest_attempts_total")) assert.strictEqual(set, "code")
      for (const sample of Prometheus.family(families, "harvest_items_total").samples) {
        if (sample.labels.outcome === "succeeded") assert.notProperty(sample.labels, "code")
        else assert.strictEqual(sample.labels.outcome, "failed")
      }

      // The fetch histogram: the attempts took some time, each on loopback well under 8 s.
      const fetches = Prometheus.family(families, "harvest_fetch_duration_seconds")
      assert.isAbove(Prometheus.valueOf(fetches, {}, "harvest_fetch_duration_seconds_sum"), 0)
      assert.strictEqual(
        Prometheus.valueOf(fetches, { le: "8.192" }, "harvest_fetch_duration_seconds_bucket"),
        countOf(families, "harvest_fetch_duration_seconds")
      )
    }))
})

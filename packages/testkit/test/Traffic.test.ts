import { assert, describe, it } from "@effect/vitest"
import { Traffic, type Upstream } from "@spindle/testkit"

const record = (host: string, arrivedAt: number, endedAt: number | undefined): Upstream.RequestRecord => ({
  method: "GET",
  path: "/",
  url: "/",
  host,
  arrivedAt,
  endedAt,
  outcome: endedAt === undefined ? undefined : "answered",
  status: 200
})

describe("Traffic", () => {
  it("counts the most requests in flight at once, an end and a start at one moment not overlapping", () => {
    const records = [record("a", 0, 10), record("a", 5, 20), record("a", 10, 30), record("b", 12, 14)]
    assert.strictEqual(Traffic.maxConcurrency(records), 3)
    assert.strictEqual(Traffic.maxConcurrency(Traffic.byHost(records).get("a")!), 2)
    assert.strictEqual(Traffic.maxConcurrency([record("a", 0, undefined), record("a", 1000, 1001)]), 2)
    assert.strictEqual(Traffic.maxConcurrency([]), 0)
  })

  it("counts the most starts in any closed window", () => {
    const records = [0, 0, 0, 50, 100, 150, 400].map((t, i) => record(i % 2 === 0 ? "a" : "b", t, t + 1))
    assert.strictEqual(Traffic.maxStartsInWindow(records, 0), 3)
    assert.strictEqual(Traffic.maxStartsInWindow(records, 49), 3)
    assert.strictEqual(Traffic.maxStartsInWindow(records, 50), 4)
    assert.strictEqual(Traffic.maxStartsInWindow(records, 150), 6)
    assert.strictEqual(Traffic.maxStartsInWindow(records, 1000), 7)
    assert.deepStrictEqual(Array.from(Traffic.byHost(records).keys()), ["a", "b"])
    assert.strictEqual(Traffic.rateAllowance({ burst: 5, perSecond: 10 }, 250), 7)
    assert.strictEqual(Traffic.rateAllowance({ burst: 5, perSecond: 10 }, 300), 8)
  })
})

/**
 * Analysis of the requests an `Upstream` recorded: how many were in flight at once and how many started within
 * any window of a given length, per host or over all of them, so tests can assert concurrency and rate limits as
 * the upstream saw them.
 *
 * Times are the records' `performance.now()` readings, so requests recorded by several upstreams in one process can
 * be analysed together.
 *
 * @since 0.1.0
 */
import type { RequestRecord } from "./Upstream.js"

/**
 * The records grouped by their `Host` header (`host:port`), each group in arrival order.
 *
 * @example
 * ```ts
 * import * as Traffic from "@spindle/testkit/Traffic"
 * import type * as Upstream from "@spindle/testkit/Upstream"
 *
 * const record = (host: string, arrivedAt: number): Upstream.RequestRecord => ({
 *   method: "GET", path: "/", url: "/", host, arrivedAt, endedAt: arrivedAt + 10, outcome: "answered", status: 200
 * })
 *
 * const groups = Traffic.byHost([record("a:80", 5), record("b:80", 1), record("a:80", 0)])
 *
 * console.log(Array.from(groups, ([host, records]) => [host, records.map((r) => r.arrivedAt)]))
 * // [["a:80", [0, 5]], ["b:80", [1]]]
 * ```
 *
 * @since 0.1.0
 * @category grouping
 */
export const byHost = (records: Iterable<RequestRecord>): Map<string, Array<RequestRecord>> => {
  const groups = new Map<string, Array<RequestRecord>>()
  for (const record of records) {
    const group = groups.get(record.host)
    if (group === undefined) groups.set(record.host, [record])
    else group.push(record)
  }
  for (const group of groups.values()) group.sort((a, b) => a.arrivedAt - b.arrivedAt)
  return groups
}

/**
 * The most requests in flight at once: a request counts from its arrival until it ended (or, if it has not ended,
 * until now). A request ending at the very moment another arrives is not counted with it.
 *
 * @example
 * ```ts
 * import * as Traffic from "@spindle/testkit/Traffic"
 * import type * as Upstream from "@spindle/testkit/Upstream"
 *
 * const record = (arrivedAt: number, endedAt: number): Upstream.RequestRecord => ({
 *   method: "GET", path: "/", url: "/", host: "a:80", arrivedAt, endedAt, outcome: "answered", status: 200
 * })
 *
 * // [0, 10) and [5, 15) overlap; [10, 20) starts as the first ends.
 * console.log(Traffic.maxConcurrency([record(0, 10), record(5, 15), record(10, 20)])) // 2
 * ```
 *
 * @since 0.1.0
 * @category analysis
 */
export const maxConcurrency = (records: Iterable<RequestRecord>): number => {
  const events: Array<readonly [time: number, delta: 1 | -1]> = []
  for (const record of records) {
    events.push([record.arrivedAt, 1])
    events.push([record.endedAt ?? Number.POSITIVE_INFINITY, -1])
  }
  // Ends before starts at equal times.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let current = 0
  let peak = 0
  for (const [, delta] of events) {
    current += delta
    peak = Math.max(peak, current)
  }
  return peak
}

/**
 * The most requests that arrived within any closed window `[t, t + windowMillis]`.
 *
 * @example
 * ```ts
 * import * as Traffic from "@spindle/testkit/Traffic"
 * import * as Upstream from "@spindle/testkit/Upstream"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const upstream = yield* Upstream.make()
 *   yield* Effect.forEach([1, 2, 3], () => Effect.promise(() => fetch(upstream.url("/")).then((r) => r.text())))
 *   // A limiter of 5 per second with bursts of 2 may start at most rateAllowance(...) in any second.
 *   const started = Traffic.maxStartsInWindow(upstream.requests(), 1000)
 *   return started <= Traffic.rateAllowance({ burst: 2, perSecond: 5 }, 1000)
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true: 3 starts, 7 allowed
 * ```
 *
 * @since 0.1.0
 * @category analysis
 */
export const maxStartsInWindow = (records: Iterable<RequestRecord>, windowMillis: number): number => {
  const times = Array.from(records, (record) => record.arrivedAt).sort((a, b) => a - b)
  let peak = 0
  let first = 0
  for (let last = 0; last < times.length; last++) {
    while (times[last] - times[first] > windowMillis) first++
    peak = Math.max(peak, last - first + 1)
  }
  return peak
}

/**
 * The most starts a token bucket of `burst` tokens refilled at `perSecond` admits in a window of `windowMillis`:
 * `⌊burst + perSecond · T⌋`.
 *
 * @example
 * ```ts
 * import * as Traffic from "@spindle/testkit/Traffic"
 *
 * // A bucket of 10 refilled at 5 per second admits at most 10 + 5·2 starts in any 2 seconds.
 * console.log(Traffic.rateAllowance({ burst: 10, perSecond: 5 }, 2000)) // 20
 * ```
 *
 * @since 0.1.0
 * @category analysis
 */
export const rateAllowance = (
  options: { readonly burst: number; readonly perSecond: number },
  windowMillis: number
): number => Math.floor(options.burst + (options.perSecond * windowMillis) / 1000 + 1e-9)

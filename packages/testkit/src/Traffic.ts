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
 * @since 0.1.0
 * @category analysis
 */
export const rateAllowance = (
  options: { readonly burst: number; readonly perSecond: number },
  windowMillis: number
): number => Math.floor(options.burst + (options.perSecond * windowMillis) / 1000 + 1e-9)

// Seed pattern: "Creating Too Many Tasks" — a million items through a bounded number of workers, never a million tasks.
import { Bulkhead } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { pathToFileURL } from "node:url"

/**
 * The work done per item. It stands in for real asynchronous work (a request, a query): it suspends, letting the
 * other items in flight run, then produces its result.
 */
export const processItem = (n: number): Effect.Effect<number> => Effect.as(Effect.yieldNow(), n)

/**
 * What a run did.
 */
export interface Report {
  /** Items processed. */
  readonly count: number
  /** Sum of their results. */
  readonly sum: number
  /** The most items being processed at the same moment. */
  readonly peakInFlight: number
  /** The most items taken from the source and not finished yet: in flight, or pulled and waiting their turn. */
  readonly peakPending: number
}

/**
 * Counters for one run. Plain variables are enough: every fiber runs on the one JavaScript thread, and each update
 * happens inside a single synchronous step.
 */
const makeMeter = () => {
  let pulled = 0
  let finished = 0
  let inFlight = 0
  let peakInFlight = 0
  let peakPending = 0
  return {
    pulled: (items: number) => {
      pulled += items
      peakPending = Math.max(peakPending, pulled - finished)
    },
    // `processItem` cannot fail, so counting an item as finished when it succeeds is exact.
    measure: <A>(self: Effect.Effect<A>): Effect.Effect<A> =>
      Effect.suspend(() => {
        inFlight++
        peakInFlight = Math.max(peakInFlight, inFlight)
        return Effect.map(self, (a) => {
          inFlight--
          finished++
          return a
        })
      }),
    report: (sum: number): Report => ({ count: finished, sum, peakInFlight, peakPending })
  }
}

/**
 * The items as a lazy sequence: each number exists only once a worker asks for it, so the million-element list the
 * naive version starts from is never built.
 */
function* naturals(count: number, onPull: () => void): Generator<number> {
  for (let n = 0; n < count; n++) {
    onPull()
    yield n
  }
}

/**
 * For an in-memory or iterable source: `Bulkhead.forEach` starts `concurrency` workers, and each pulls the next item
 * only when it is free. A million items cost `concurrency` fibers, not a million, and with `discard: true` nothing
 * per item is kept (the running sum is the only result). The first failure would interrupt the other workers.
 */
export const sumWithBulkhead = (options: {
  readonly items: number
  readonly concurrency: number
}): Effect.Effect<Report> =>
  Effect.gen(function*() {
    const meter = makeMeter()
    const bulkhead = yield* Bulkhead.make({ name: "million-items", maxConcurrent: options.concurrency })
    let sum = 0
    yield* bulkhead.forEach(
      naturals(options.items, () => meter.pulled(1)),
      (n) =>
        Effect.map(meter.measure(processItem(n)), (result) => {
          sum += result
        }),
      { discard: true }
    )
    return meter.report(sum)
  })

/**
 * For a source that is itself a `Stream` (pages of a query, lines of a file): the stream is pulled a chunk at a
 * time, each chunk goes through the bulkhead with `concurrency` items in flight, and the results are folded as they
 * come, so memory is bounded by one chunk (4096 numbers for `Stream.range`).
 *
 * Why not `Stream.mapEffect(processItem, { concurrency })`? It is the right tool when every element is real I/O, but
 * it forks several fibers per element (tens of microseconds each): a million trivial items take a minute or more.
 * Batching by chunk keeps the per-item cost to that of the work itself.
 */
export const sumWithStream = (options: {
  readonly items: number
  readonly concurrency: number
}): Effect.Effect<Report> =>
  Effect.gen(function*() {
    const meter = makeMeter()
    const bulkhead = yield* Bulkhead.make({ name: "million-items-stream", maxConcurrent: options.concurrency })
    const sum = yield* Stream.range(0, options.items - 1).pipe(
      Stream.mapChunksEffect((chunk) => {
        meter.pulled(chunk.length)
        return Effect.map(bulkhead.forEach(chunk, (n) => meter.measure(processItem(n))), Chunk.unsafeFromArray)
      }),
      Stream.runFold(0, (sum, result) => sum + result)
    )
    return meter.report(sum)
  })

const describeRun = (label: string, elapsed: Duration.Duration, report: Report) =>
  Console.log(
    `${label.padEnd(34)}: ${report.count.toLocaleString("en-US")} items, sum ${report.sum.toLocaleString("en-US")}, ` +
      `at most ${report.peakInFlight} in flight and ${report.peakPending} pending, ` +
      `${Math.round(Duration.toMillis(elapsed))} ms, heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB`
  )

/**
 * The runnable demo: one million items, 100 at a time, both ways.
 */
export const main = Effect.gen(function*() {
  const options = { items: 1_000_000, concurrency: 100 }
  const [bulkheadTime, bulkheadReport] = yield* Effect.timed(sumWithBulkhead(options))
  yield* describeRun("Bulkhead.forEach over a generator", bulkheadTime, bulkheadReport)
  const [streamTime, streamReport] = yield* Effect.timed(sumWithStream(options))
  yield* describeRun("Stream.range, chunk by chunk", streamTime, streamReport)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

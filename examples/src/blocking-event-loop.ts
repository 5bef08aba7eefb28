// Seed pattern: "Blocking the Event Loop" — a synchronous call stalls every fiber and timer; on a worker thread, none.
import { Blocking, EventLoopMonitor } from "@spindle/node"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { pathToFileURL } from "node:url"
import { busyWait } from "./workers/sync-library.mjs"

const syncLibrary = new URL("./workers/sync-library.mjs", import.meta.url)

/**
 * What the busy call reports: how long it was asked to run, and how long it ran.
 */
export interface BusyResult {
  readonly requestedMs: number
  readonly ranMs: number
}

/**
 * The seed's bug: a synchronous call made straight from a fiber. JavaScript runs one thing at a time on the event
 * loop's thread, and a fiber gives the thread back only when it suspends; a synchronous call never suspends, so for
 * its whole duration no other fiber, timer, socket or HTTP handler in the process runs.
 */
export const inline = (ms: number): Effect.Effect<BusyResult> => Effect.sync(() => busyWait(ms))

/**
 * The fix when an asynchronous version exists: wait without holding the thread (the seed's `asyncio.sleep`). The
 * fiber suspends on a timer and the loop serves everything else meanwhile.
 */
export const suspended = (ms: number): Effect.Effect<BusyResult> =>
  Effect.map(
    Effect.timed(Effect.sleep(Duration.millis(ms))),
    ([took]) => ({ requestedMs: ms, ranMs: Math.round(Duration.toMillis(took)) })
  )

/**
 * The fix when there is none: the very same synchronous function, run by `Blocking.call` on a worker thread. The
 * calling fiber suspends until the worker answers, so only the worker's thread is held.
 */
export const offloaded = (ms: number): Effect.Effect<BusyResult, Blocking.BlockingCallError> =>
  Blocking.call<BusyResult>(syncLibrary, "busyWait", ms)

/**
 * What the rest of the process experienced while one call ran.
 */
export interface LoopReport<A> {
  readonly result: A
  /** How long the call took, as its caller saw it. */
  readonly callMs: number
  /** The longest any timer callback was late meanwhile: `EventLoopMonitor`'s delay for this stretch. */
  readonly loopDelayMs: number
  /** Ticks of a 10 ms ticker fiber that happened while the call ran... */
  readonly ticksDuring: number
  /** ...and how many it would have managed on a free loop. */
  readonly expectedTicks: number
  /** The longest the ticker went without ticking. */
  readonly longestTickGapMs: number
}

const tickMs = 10

/**
 * Runs `call` with a witness next to it: a fiber that ticks every 10 ms, and an `EventLoopMonitor` sampled by hand
 * just before and just after the call, so that its snapshot covers this call and nothing else.
 */
export const observe = <A, E>(call: Effect.Effect<A, E>): Effect.Effect<LoopReport<A>, E> =>
  Effect.scoped(Effect.gen(function*() {
    const monitor = yield* EventLoopMonitor.make({ sampleInterval: "1 hour", resolution: "5 millis" })
    const ticks: Array<number> = []
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(
      Effect.sleep(Duration.millis(tickMs)),
      Effect.sync(() => {
        ticks.push(performance.now())
      })
    )))
    // Let the ticker get going, and start the monitor's sample on a calm loop.
    yield* Effect.sleep("30 millis")
    yield* monitor.sample
    const start = performance.now()
    const result = yield* call
    const end = performance.now()
    // The monitor's timer records a delay when it finally runs, after the stall: let it, then read the sample.
    yield* Effect.sleep("20 millis")
    const snapshot = yield* monitor.sample
    let longestTickGapMs = 0
    for (let i = 1; i < ticks.length; i++) longestTickGapMs = Math.max(longestTickGapMs, ticks[i] - ticks[i - 1])
    return {
      result,
      callMs: Math.round(end - start),
      loopDelayMs: snapshot.lastMaxMs,
      ticksDuring: ticks.filter((t) => t > start && t < end).length,
      expectedTicks: Math.floor((end - start) / tickMs),
      longestTickGapMs: Math.round(longestTickGapMs)
    }
  }))

const describeReport = (label: string, report: LoopReport<BusyResult>) => {
  const delay = String(Math.round(report.loopDelayMs)).padStart(4)
  return Console.log(
    `${label.padEnd(28)} took ${String(report.callMs).padStart(4)} ms; loop delay ${delay} ms; ` +
      `ticker ticked ${report.ticksDuring} of ${report.expectedTicks} times (longest gap ${report.longestTickGapMs} ms)`
  )
}

/**
 * The runnable demo: a 500 ms call three ways, next to a 10 ms ticker.
 */
export const main = Effect.gen(function*() {
  const ms = 500
  yield* Console.log(`a ${ms} ms call while another fiber ticks every ${tickMs} ms:`)
  yield* describeReport("inline (synchronous):", yield* observe(inline(ms)))
  yield* describeReport("Effect.sleep (async):", yield* observe(suspended(ms)))
  yield* describeReport("Blocking.call (thread):", yield* observe(offloaded(ms)))
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

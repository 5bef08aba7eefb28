// Seed pattern: "Async Queue for Producer/Consumer" — several producers, N workers, backpressure, drain, clean stop.
import { WorkQueue } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import { pathToFileURL } from "node:url"

/**
 * A producer: its name (its items are `<name>-0`, `<name>-1`, ...), how many items it produces, and how: one
 * `offer` at a time with a pause of `every` between them (events arriving; `0 millis` for a burst), or a single
 * `offerAll` for the lot (`"batch"`, an import).
 */
export interface Producer {
  readonly name: string
  readonly items: number
  readonly every: Duration.DurationInput | "batch"
}

/**
 * What happened to every item, kept outside the queue: the witness that each item offered was processed exactly
 * once, or handed back by the shutdown.
 */
export interface Ledger {
  /** Items the queue accepted, in the order it did. */
  readonly offered: ReadonlyArray<string>
  /** Items a producer could not offer because the queue had been shut down. */
  readonly refused: ReadonlyArray<string>
  /** Items processed to the end, in the order they finished. */
  readonly processed: ReadonlyArray<string>
  /** Most items being processed at once. */
  readonly peakInFlight: number
  /** Most items waiting in the queue at once. */
  readonly peakBuffered: number
  /** When each producer had all its items accepted (ms since the run started). */
  readonly producerDone: Readonly<Record<string, number>>
}

// The ledger while a run writes it. Plain mutable fields are enough: each update is one synchronous step.
interface Tally {
  readonly origin: number
  readonly offered: Array<string>
  readonly refused: Array<string>
  readonly processed: Array<string>
  readonly producerDone: Record<string, number>
  inFlight: number
  peakInFlight: number
  peakBuffered: number
}

const makeTally = (origin: number): Tally => ({
  origin,
  offered: [],
  refused: [],
  processed: [],
  producerDone: {},
  inFlight: 0,
  peakInFlight: 0,
  peakBuffered: 0
})

const snapshot = (tally: Tally): Effect.Effect<Ledger> =>
  Effect.sync(() => ({
    offered: tally.offered.slice(),
    refused: tally.refused.slice(),
    processed: tally.processed.slice(),
    peakInFlight: tally.peakInFlight,
    peakBuffered: tally.peakBuffered,
    producerDone: { ...tally.producerDone }
  }))

/**
 * The settings of a run: queue capacity, workers, and how long one item takes to process.
 */
export interface Settings {
  readonly capacity: number
  readonly workers: number
  readonly processTime: Duration.DurationInput
}

const itemsOf = (producer: Producer) => Array.from({ length: producer.items }, (_, n) => `${producer.name}-${n}`)

/**
 * Starts the queue and its workers in the current scope: `capacity` items may wait, `workers` fibers process them.
 * No sentinel values and no `task_done` bookkeeping: `drain` knows what is outstanding, `shutdown` stops the
 * workers.
 */
const startQueue = (
  settings: Settings,
  tally: Tally
): Effect.Effect<WorkQueue.WorkQueue<string, never>, never, Scope.Scope> =>
  Effect.gen(function*() {
    // The queue is at its fullest just before a worker takes an item: its size then is its size when the worker
    // starts on the item, plus that item.
    let buffered: Effect.Effect<number> = Effect.succeed(0)
    const queue = yield* WorkQueue.make({
      name: "orders",
      capacity: settings.capacity,
      workers: settings.workers,
      process: (item: string) =>
        Effect.flatMap(buffered, (size) => {
          tally.peakBuffered = Math.max(tally.peakBuffered, size + 1)
          tally.inFlight++
          tally.peakInFlight = Math.max(tally.peakInFlight, tally.inFlight)
          return Effect.sleep(settings.processTime).pipe(
            Effect.zipRight(Effect.sync(() => tally.processed.push(item))),
            Effect.ensuring(Effect.sync(() => tally.inFlight--))
          )
        })
    })
    buffered = queue.size
    return queue
  })

/**
 * Runs one producer against the queue. `offer` and `offerAll` wait while the queue is full: that wait is the
 * backpressure that keeps a fast producer from piling up items faster than the workers take them. A producer
 * that finds the queue shut down stops, and its items not accepted are counted as refused.
 */
const produce = (queue: WorkQueue.WorkQueue<string, never>, producer: Producer, tally: Tally): Effect.Effect<void> => {
  const items = itemsOf(producer)
  const every = producer.every
  const accepted = (items: ReadonlyArray<string>) =>
    Effect.sync(() => {
      for (const item of items) tally.offered.push(item)
    })
  const body = every === "batch"
    ? Effect.zipRight(queue.offerAll(items), accepted(items))
    : Effect.forEach(
      items,
      (item, n) =>
        Effect.zipRight(
          n === 0 ? Effect.void : Effect.sleep(every),
          Effect.zipRight(queue.offer(item), accepted([item]))
        ),
      { discard: true }
    )
  return body.pipe(
    Effect.zipRight(Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        tally.producerDone[producer.name] = now - tally.origin
      }))),
    Effect.catchTag("WorkQueueClosed", () =>
      Effect.sync(() => {
        for (const item of items) if (!tally.offered.includes(item)) tally.refused.push(item)
      }))
  )
}

/**
 * The seed's "multiple producers, multiple consumers", start to finish: the producers run concurrently, `drain`
 * waits until every item offered has been processed (the seed's `queue.join()`), and `shutdown("complete")` stops
 * the workers. Returns the ledger and when everything was done (ms since the start).
 */
export const runToCompletion = (
  settings: Settings,
  producers: ReadonlyArray<Producer>
): Effect.Effect<{ readonly ledger: Ledger; readonly doneAt: number }> =>
  Effect.scoped(Effect.gen(function*() {
    const origin = yield* Clock.currentTimeMillis
    const tally = makeTally(origin)
    const queue = yield* startQueue(settings, tally)
    yield* Effect.forEach(producers, (producer) => produce(queue, producer, tally), {
      concurrency: "unbounded",
      discard: true
    })
    yield* queue.drain
    const doneAt = (yield* Clock.currentTimeMillis) - origin
    yield* queue.shutdown("complete")
    return { ledger: yield* snapshot(tally), doneAt }
  }))

/**
 * Stops a busy queue after `after`, abandoning its work: the workers are interrupted, producers still waiting to
 * offer are refused, and `shutdown("abandon")` hands back every item that was accepted and not processed, split
 * into those never started (`pending`) and those interrupted midway (`interrupted`). Nothing is silently lost.
 *
 * Producers here offer one item at a time: an `offerAll` cut short by the shutdown fails with `WorkQueueClosed`
 * without saying how many of its items it had placed, so its caller could not account for them exactly.
 */
export const stopEarly = (
  settings: Settings,
  producers: ReadonlyArray<Producer & { readonly every: Duration.DurationInput }>,
  after: Duration.DurationInput
): Effect.Effect<{ readonly ledger: Ledger; readonly unprocessed: WorkQueue.Unprocessed<string> }> =>
  Effect.scoped(Effect.gen(function*() {
    const tally = makeTally(yield* Clock.currentTimeMillis)
    const queue = yield* startQueue(settings, tally)
    const producing = yield* Effect.fork(
      Effect.forEach(producers, (producer) => produce(queue, producer, tally), {
        concurrency: "unbounded",
        discard: true
      })
    )
    yield* Effect.sleep(after)
    const unprocessed = yield* queue.shutdown("abandon")
    // Producers blocked in `offer` are woken and refused; the ones still pausing between items are refused at
    // their next offer. Wait for all of them to see it.
    yield* Fiber.join(producing)
    return { ledger: yield* snapshot(tally), unprocessed }
  }))

/**
 * What the queue looked like when it was paused and when it was resumed.
 */
export interface Outage {
  /** Items processed and items being processed when the queue was paused. */
  readonly atPause: { readonly processed: number; readonly inFlight: number }
  /** Items processed, being processed and waiting when it was resumed. */
  readonly atResume: { readonly processed: number; readonly inFlight: number; readonly waiting: number }
}

/**
 * Rides out an outage of whatever the workers call: the queue is paused from `from` until `until` (after the
 * start). While it is paused the items in flight finish and none starts; the producers keep offering until the queue
 * is full, then wait (the same backpressure). `resume` starts the workers on the backlog, and `onIdle` waits until
 * nothing is queued or running. Nothing is lost and nothing is processed twice.
 */
export const rideOutOutage = (
  settings: Settings,
  producers: ReadonlyArray<Producer>,
  from: Duration.DurationInput,
  until: Duration.DurationInput
): Effect.Effect<{ readonly ledger: Ledger; readonly outage: Outage; readonly doneAt: number }> =>
  Effect.scoped(Effect.gen(function*() {
    const origin = yield* Clock.currentTimeMillis
    const tally = makeTally(origin)
    const queue = yield* startQueue(settings, tally)
    const producing = yield* Effect.fork(
      Effect.forEach(producers, (producer) => produce(queue, producer, tally), {
        concurrency: "unbounded",
        discard: true
      })
    )
    yield* Effect.sleep(from)
    yield* queue.pause
    const atPause = { processed: tally.processed.length, inFlight: yield* queue.inFlight }
    const elapsed = (yield* Clock.currentTimeMillis) - origin
    yield* Effect.sleep(Duration.subtract(Duration.decode(until), Duration.millis(elapsed)))
    const atResume = {
      processed: tally.processed.length,
      inFlight: yield* queue.inFlight,
      waiting: yield* queue.size
    }
    yield* queue.resume
    yield* Fiber.join(producing)
    yield* queue.onIdle
    const doneAt = (yield* Clock.currentTimeMillis) - origin
    yield* queue.shutdown("complete")
    return { ledger: yield* snapshot(tally), outage: { atPause, atResume }, doneAt }
  }))

/**
 * The producers of the demo and the tests: events arriving every 50 ms, and two batch imports.
 */
export const producers: ReadonlyArray<Producer> = [
  { name: "web", items: 10, every: "50 millis" },
  { name: "import", items: 15, every: "batch" },
  { name: "backfill", items: 5, every: "batch" }
]

/**
 * The producers of the early stop: events every 50 ms, and a burst offered one item at a time.
 */
export const streaming: ReadonlyArray<Producer & { readonly every: Duration.DurationInput }> = [
  { name: "web", items: 10, every: "50 millis" },
  { name: "burst", items: 15, every: "0 millis" }
]

/**
 * The settings of the demo and the tests: 4 items may wait, 3 workers, 100 ms per item.
 */
export const settings: Settings = { capacity: 4, workers: 3, processTime: "100 millis" }

/**
 * The runnable demo, on the real clock.
 */
export const main = Effect.gen(function*() {
  const complete = yield* runToCompletion(settings, producers)
  yield* Console.log(
    `${complete.ledger.processed.length} items from ${producers.length} producers, ${settings.workers} workers: ` +
      `at most ${complete.ledger.peakBuffered} waiting (capacity ${settings.capacity}) and ` +
      `${complete.ledger.peakInFlight} in flight`
  )
  const outage = yield* rideOutOutage(settings, producers, "250 millis", "650 millis")
  yield* Console.log(
    `paused from 250 to 650 ms: ${outage.outage.atPause.inFlight} items in flight finished, none started, ` +
      `${outage.outage.atResume.waiting} waiting at the resume; all ${outage.ledger.processed.length} processed ` +
      `by ${outage.doneAt} ms`
  )
  // The queue's scope finalizer logs a warning about unprocessed items even when `shutdown("abandon")` has already
  // handed them back, as here; the demo accounts for them itself, so that warning is silenced.
  const stopped = yield* stopEarly(settings, streaming, "450 millis").pipe(Logger.withMinimumLogLevel(LogLevel.Error))
  const { interrupted, pending } = stopped.unprocessed
  yield* Console.log(
    `stopped after 450 ms: ${stopped.ledger.processed.length} processed, ${interrupted.length} interrupted ` +
      `(${interrupted.join(", ")}), ${pending.length} pending (${pending.join(", ")}), ` +
      `${stopped.ledger.refused.length} refused to producers; accepted ${stopped.ledger.offered.length} = ` +
      `${stopped.ledger.processed.length + interrupted.length + pending.length} accounted for`
  )
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

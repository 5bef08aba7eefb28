import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { producers, rideOutOutage, runToCompletion, settings, stopEarly, streaming } from "../src/producer-consumer.js"
import type { Producer } from "../src/producer-consumer.js"

const itemsOf = (list: ReadonlyArray<Producer>) =>
  list.flatMap((p) => Array.from({ length: p.items }, (_, n) => `${p.name}-${n}`))

const sorted = (items: ReadonlyArray<string>) => [...items].sort()

const assertNoDuplicates = (items: ReadonlyArray<string>, what: string) =>
  assert.strictEqual(new Set(items).size, items.length, `an item was ${what} twice`)

describe("producer-consumer", () => {
  it.effect("three producers, three workers: every item processed exactly once, and drain waits for the last", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(runToCompletion(settings, producers))
      yield* TestClock.adjust("1 hour")
      const { doneAt, ledger } = yield* Fiber.join(fiber)
      const all = itemsOf(producers)
      assert.strictEqual(all.length, 30)
      assertNoDuplicates(ledger.processed, "processed")
      assert.deepStrictEqual(sorted(ledger.processed), sorted(all))
      assert.deepStrictEqual(sorted(ledger.offered), sorted(all))
      assert.deepStrictEqual(ledger.refused, [])
      // 30 items of 100 ms on 3 workers need at least 1 s; the web producer's last event (offered at 1 s, after
      // waiting for room) is what drain waited for.
      assert.strictEqual(doneAt, 1100)
      assert.strictEqual(ledger.peakInFlight, settings.workers)
    }))

  it.effect("backpressure: producers wait while the queue is full, so no more than `capacity` items ever wait", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(runToCompletion(settings, producers))
      yield* TestClock.adjust("1 hour")
      const { ledger } = yield* Fiber.join(fiber)
      assert.strictEqual(ledger.peakBuffered, settings.capacity, "the buffer overflowed or was never full")
      // The import's 15 items could not be handed over at once: the producer ran at the workers' pace, about 3
      // items per 100 ms, sharing the room with the backfill's 5.
      assert.deepStrictEqual(ledger.producerDone, { import: 400, backfill: 500, web: 1000 })

      const alone = yield* Effect.fork(
        runToCompletion({ capacity: 4, workers: 1, processTime: "100 millis" }, [
          { name: "bulk", items: 20, every: "batch" }
        ])
      )
      yield* TestClock.adjust("1 hour")
      const single = yield* Fiber.join(alone)
      assert.strictEqual(single.ledger.peakBuffered, 4)
      assert.strictEqual(single.ledger.peakInFlight, 1)
      // 20 items, one worker: the producer had to wait until 1.5 s for room for its last items; the work ends at
      // 2 s (20 × 100 ms).
      assert.deepStrictEqual(single.ledger.producerDone, { bulk: 1500 })
      assert.strictEqual(single.doneAt, 2000)
    }))

  it.effect("shutdown(\"abandon\") hands back every unprocessed item: nothing lost, nothing processed twice", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(stopEarly(settings, streaming, "450 millis"))
      yield* TestClock.adjust("1 hour")
      const { ledger, unprocessed } = yield* Fiber.join(fiber)
      // At 450 ms: 12 items were done (3 workers, 4 rounds of 100 ms), 3 were being processed, 3 were waiting.
      assert.strictEqual(ledger.processed.length, 12)
      assert.deepStrictEqual(sorted(unprocessed.interrupted), ["burst-11", "burst-12", "burst-13"])
      assert.deepStrictEqual(unprocessed.pending, ["burst-14", "web-1", "web-2"])
      // The web producer was waiting for room when the queue shut down: its other items were refused, not lost.
      assert.deepStrictEqual(ledger.refused, ["web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "web-9"])

      // Every accepted item is in exactly one place: processed, interrupted midway, or still pending.
      const accountedFor = [...ledger.processed, ...unprocessed.interrupted, ...unprocessed.pending]
      assertNoDuplicates(accountedFor, "accounted for")
      assert.deepStrictEqual(sorted(accountedFor), sorted(ledger.offered))
      // And every item produced was either accepted or refused.
      assert.deepStrictEqual(sorted([...ledger.offered, ...ledger.refused]), sorted(itemsOf(streaming)))
    }))

  it.effect("pause during an outage: the items in flight finish, none starts, producers fill the queue and wait", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(rideOutOutage(settings, producers, "250 millis", "650 millis"))
      yield* TestClock.adjust("1 hour")
      const { doneAt, ledger, outage } = yield* Fiber.join(fiber)
      // At 250 ms: two rounds of three were done and the third round (started at 200 ms) was in flight.
      assert.deepStrictEqual(outage.atPause, { processed: 6, inFlight: 3 })
      // That round finished at 300 ms and nothing started until 650 ms; the producers filled the queue meanwhile.
      assert.deepStrictEqual(outage.atResume, { processed: 9, inFlight: 0, waiting: settings.capacity })
      assert.strictEqual(ledger.peakBuffered, settings.capacity, "the pause did not lift the backpressure")
      const all = itemsOf(producers)
      assertNoDuplicates(ledger.processed, "processed")
      assert.deepStrictEqual(sorted(ledger.processed), sorted(all))
      // The import could place its last items only after the resume; the web producer's last event, offered at
      // 1.3 s (its 50 ms pauses began again once it had room), is the last item done.
      assert.deepStrictEqual(ledger.producerDone, { import: 650, backfill: 850, web: 1300 })
      assert.strictEqual(doneAt, 1400)
    }))
})

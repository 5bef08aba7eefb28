import { assert, describe, it } from "@effect/vitest"
import { SlotStore } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"

describe("SlotStore", () => {
  it.effect("memory store: at most limit holders, a holder keeps its slot, a lapsed lease frees it", () =>
    Effect.gen(function*() {
      const store = yield* SlotStore.makeMemory
      const slot = (holder: string) => ({ key: "k", limit: 2, holder, ttlMillis: 100 })
      assert.isTrue(yield* store.acquire(slot("a")))
      assert.isTrue(yield* store.acquire(slot("b")))
      assert.isFalse(yield* store.acquire(slot("c")))
      assert.isTrue(yield* store.acquire(slot("a")), "a holder asking again keeps its slot")
      assert.isTrue(yield* store.acquire({ ...slot("c"), key: "other" }), "keys are independent")
      yield* store.release({ key: "k", holder: "b" })
      assert.isTrue(yield* store.acquire(slot("c")))
      yield* TestClock.adjust("60 millis")
      assert.isTrue(yield* store.refresh({ key: "k", holder: "a", ttlMillis: 100 }))
      yield* TestClock.adjust("60 millis")
      // c lapsed at 100 ms; a was refreshed at 60 ms, until 160 ms.
      assert.isFalse(yield* store.refresh({ key: "k", holder: "c", ttlMillis: 100 }))
      assert.strictEqual(yield* store.holders("k"), 1)
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* store.holders("k"), 0)
    }))

  it.live("withSlot: never more than limit at once, and exactly that many when busy; slots come back", () =>
    Effect.gen(function*() {
      const store = yield* SlotStore.makeMemory
      let running = 0
      let peak = 0
      const work = Effect.acquireUseRelease(
        Effect.sync(() => peak = Math.max(peak, ++running)),
        () => Effect.sleep("15 millis"),
        () => Effect.sync(() => running--)
      )
      const limited = SlotStore.withSlot(store, { key: "k", limit: 3, ttl: "1 second", pollInterval: "2 millis" })
      yield* Effect.all(Array.from({ length: 12 }, () => limited(work)), { concurrency: "unbounded" })
      assert.strictEqual(peak, 3)
      assert.strictEqual(yield* store.holders("k"), 0)
      // A failure gives the slot back as well.
      const failed = yield* Effect.flip(limited(Effect.fail("boom")))
      assert.strictEqual(failed, "boom")
      assert.strictEqual(yield* store.holders("k"), 0)
    }))

  it.live("withSlot: the lease is refreshed while the work runs; an interrupted waiter takes nothing", () =>
    Effect.gen(function*() {
      const store = yield* SlotStore.makeMemory
      const limited = SlotStore.withSlot(store, { key: "k", limit: 1, ttl: "60 millis", pollInterval: "5 millis" })
      const long = yield* Effect.fork(limited(Effect.sleep("250 millis")))
      yield* Effect.sleep("20 millis")
      const waiter = yield* Effect.fork(limited(Effect.void))
      // Four leases' worth later the long holder still has the slot, so the waiter still waits.
      yield* Effect.sleep("200 millis")
      assert.strictEqual(yield* store.holders("k"), 1)
      assert.isTrue((yield* Fiber.poll(waiter))._tag === "None")
      yield* Fiber.interrupt(waiter)
      yield* Fiber.join(long)
      assert.strictEqual(yield* store.holders("k"), 0)
    }))

  it.live("withSlot: a store that cannot answer fails with SlotStoreError and the work does not run", () =>
    Effect.gen(function*() {
      const down: SlotStore.SlotStore = {
        acquire: () => Effect.fail(new SlotStore.SlotStoreError({ reason: "Unavailable", message: "down" })),
        refresh: () => Effect.succeed(false),
        release: () => Effect.void
      }
      let ran = false
      const error = yield* Effect.flip(
        SlotStore.withSlot(down, { key: "k", limit: 1, ttl: "1 second" })(Effect.sync(() => ran = true))
      )
      assert.strictEqual(error._tag, "SlotStoreError")
      assert.isFalse(ran)
    }))
})

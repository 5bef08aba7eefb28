import { assert, describe, it } from "@effect/vitest"
import * as Wait from "@spindle/testkit/Wait"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import { Handoff, type Taker } from "../src/internal/handoff.js"

// A fiber that takes one item through a taker of its own, and the taker.
const forkTaker = (handoff: Handoff<number>) =>
  Effect.gen(function*() {
    let taker: Taker<number> | undefined
    const fiber = yield* Effect.fork(Effect.withFiberRuntime<number>((self) => {
      taker = handoff.taker(self)
      return taker.take
    }))
    yield* Wait.until("the taker to wait", Effect.sync(() => handoff.waiting === 1))
    return { fiber, taker: taker! }
  })

describe("Handoff", () => {
  it.live("buffers items while no one waits and hands them out first in, first out", () =>
    Effect.gen(function*() {
      const handoff = new Handoff<number>()
      handoff.unsafeOfferAll([1, 2, 3])
      assert.strictEqual(handoff.size, 3)
      assert.deepStrictEqual([yield* handoff.take, yield* handoff.take], [1, 2])
      assert.deepStrictEqual(handoff.unsafeTakeAll(), [3])
      assert.strictEqual(handoff.size, 0)
    }))

  it.live("hands an item to the worker that has waited longest", () =>
    Effect.gen(function*() {
      const handoff = new Handoff<number>()
      const first = yield* Effect.fork(handoff.take)
      yield* Wait.until("the first worker to wait", Effect.sync(() => handoff.waiting === 1))
      const second = yield* Effect.fork(handoff.take)
      yield* Wait.until("the second worker to wait", Effect.sync(() => handoff.waiting === 2))
      handoff.unsafeOfferAll([10, 20])
      assert.strictEqual(yield* Fiber.join(first), 10)
      assert.strictEqual(yield* Fiber.join(second), 20)
      assert.strictEqual(handoff.size, 0)
    }))

  it.live("passes over a taker whose fiber was interrupted while it waited", () =>
    Effect.gen(function*() {
      const handoff = new Handoff<number>()
      const { fiber, taker } = yield* forkTaker(handoff)
      yield* Fiber.interrupt(fiber)
      handoff.unsafeOfferAll([7])
      // Buffered for the next worker, not handed to the ended one.
      assert.strictEqual(handoff.size, 1)
      assert.strictEqual(taker.unsafeReclaim(), undefined)
      assert.strictEqual(yield* handoff.take, 7)
    }))

  it.live("gives back an item handed over in the instant the taker's fiber was interrupted", () =>
    Effect.gen(function*() {
      const handoff = new Handoff<number>()
      const { fiber, taker } = yield* forkTaker(handoff)
      // One synchronous step, as a cancel and the lease loop can be: the interruption is delivered first, so the
      // fiber ends without running again and never receives the item.
      fiber.unsafeInterruptAsFork(FiberId.none)
      handoff.unsafeOfferAll([42])
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.strictEqual(handoff.size, 0)
      assert.strictEqual(taker.unsafeReclaim(), 42)
      // Once only.
      assert.strictEqual(taker.unsafeReclaim(), undefined)
    }))

  it.live("an item the taker's fiber received is not given back", () =>
    Effect.gen(function*() {
      const handoff = new Handoff<number>()
      const { fiber, taker } = yield* forkTaker(handoff)
      handoff.unsafeOfferAll([5])
      assert.strictEqual(yield* Fiber.join(fiber), 5)
      assert.strictEqual(taker.unsafeReclaim(), undefined)
    }))
})

import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Runtime from "effect/Runtime"
import { EventEmitter } from "node:events"
import {
  asyncTotal,
  auditLayer,
  AuditLog,
  handleWithFreshRuntime,
  listen,
  lookupRate,
  makeRateClient,
  runSyncOrFiber,
  syncTotal
} from "../src/sync-and-async.js"
import type { AuditStats } from "../src/sync-and-async.js"

describe("sync-and-async", () => {
  it("a synchronous listener starts Effects on one runtime; dispose() closes its resources", async () => {
    const stats: AuditStats = { opened: 0, closed: 0 }
    const runtime = ManagedRuntime.make(auditLayer(stats))
    const emitter = new EventEmitter()
    const fibers = listen(emitter, runtime)
    for (const id of ["1", "2", "3"]) {
      // `emit` calls the listener synchronously, and the listener returns before its Effect finishes.
      assert.isTrue(emitter.emit("order", id))
    }
    assert.strictEqual(fibers.length, 3)
    const lines = await runtime.runPromise(
      Effect.zipRight(Fiber.joinAll(fibers), Effect.flatMap(AuditLog, (audit) => audit.lines))
    )
    assert.sameMembers([...lines], ["order 1", "order 2", "order 3"])
    assert.deepStrictEqual(stats, { opened: 1, closed: 0 }, "the runtime was built more than once")
    await runtime.dispose()
    assert.deepStrictEqual(stats, { opened: 1, closed: 1 }, "dispose() did not release the audit log")
  })

  it("a runtime per call opens and closes the resources for every call, each with a log of its own", async () => {
    const stats: AuditStats = { opened: 0, closed: 0 }
    for (const id of ["1", "2", "3"]) {
      assert.deepStrictEqual(await handleWithFreshRuntime(stats, id), [`order ${id}`])
    }
    assert.deepStrictEqual(stats, { opened: 3, closed: 3 })
  })

  it("runSync runs a synchronous Effect; an asynchronous one gives a typed AsyncFiberException", async () => {
    assert.strictEqual(Effect.runSync(syncTotal([1, 2, 3])), 6)
    const done = runSyncOrFiber(syncTotal([1, 2, 3]))
    assert.strictEqual(done._tag, "Done")
    if (done._tag === "Done") assert.deepStrictEqual(done.exit, Exit.succeed(6))

    // Effect.runSyncExit does not throw: the Exit is a defect holding the AsyncFiberException.
    const exit = Effect.runSyncExit(asyncTotal([1, 2, 3]))
    assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
    if (Exit.isFailure(exit)) {
      const defect = Cause.dieOption(exit.cause)
      assert.isTrue(defect._tag === "Some" && Runtime.isAsyncFiberException(defect.value))
    }
    // Effect.runSync throws it, wrapped in a FiberFailure.
    assert.throws(() => Effect.runSync(asyncTotal([1])), /AsyncFiberException|cannot be resolved synchronously/)

    // The fiber behind the exception keeps running: runSyncOrFiber hands it back, and it finishes.
    const pending = runSyncOrFiber(asyncTotal([1, 2, 3]))
    assert.strictEqual(pending._tag, "Async")
    if (pending._tag === "Async") assert.strictEqual(await Effect.runPromise(Fiber.join(pending.fiber)), 6)
  })

  it.live("Effect.tryPromise: a value, a typed error, and interruption aborting the Promise API's call", () =>
    Effect.gen(function*() {
      const client = makeRateClient(1)
      assert.strictEqual(yield* lookupRate(client, "EUR"), 1.08)
      const error = yield* Effect.flip(lookupRate(client, "XYZ"))
      assert.strictEqual(error._tag, "RateError")
      assert.strictEqual(error.currency, "XYZ")
      assert.match(String(error.cause), /no rate for XYZ/)

      const slow = makeRateClient(60_000)
      const fiber = yield* Effect.fork(lookupRate(slow, "GBP"))
      yield* Effect.sleep("5 millis")
      assert.deepStrictEqual(slow.aborted, [])
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.deepStrictEqual(slow.aborted, ["GBP"], "interrupting the fiber did not abort the lookup")
    }))
})

/**
 * Heap held by each fiber waiting in a rate limiter: `waiters` fibers forked with `Effect.forkDaemon`, each parked,
 * and the heap measured (after two forced GCs) before and after.
 *
 *   --variant=async          a bare fiber parked in `Effect.async((_resume) => {})`, the floor for any waiter that
 *                            is a fiber (the register function takes exactly one parameter: with any other count,
 *                            `Effect.async` allocates an `AbortController` per call)
 *   --variant=deferred       a bare fiber parked on one shared `Deferred` (`Deferred.await`)
 *   --variant=token-bucket   a fiber parked in Spindle's `TokenBucket` (`bucket.withTokens(1)(Effect.void)`, as in
 *                            the rate benchmark), the bucket allowing 1 per hour with a burst of 1
 */
import { TokenBucket } from "@spindle/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["async", "deferred", "token-bucket"])
const waiters = numberArg("waiters", 20_000)

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i
}

const collect = (): void => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with --expose-gc")
  gc()
  gc()
}

const waiter: Effect.Effect<Effect.Effect<void>> = (() => {
  switch (variant) {
    case "async":
      return Effect.succeed(Effect.async<void>((_resume) => {}))
    case "deferred":
      return Effect.map(Deferred.make<void>(), (deferred) => Deferred.await(deferred))
    case "token-bucket":
      return Effect.map(
        TokenBucket.make({ limit: 1, interval: "1 hour", burst: 1 }),
        (bucket) => bucket.withTokens(1)(Effect.void)
      )
  }
})()

runVariant(async () => {
  const park = await Effect.runPromise(waiter)
  // The bucket's one token goes to a fiber of its own, before the measurement.
  if (variant === "token-bucket") await Effect.runPromise(park)
  collect()
  const before = process.memoryUsage()
  await Effect.runPromise(Effect.forEach(range(waiters), () => Effect.forkDaemon(park), { discard: true }))
  // Forked fibers start on Effect's scheduler: let them all run until they park.
  await new Promise((resolve) => setTimeout(resolve, 100))
  collect()
  const after = process.memoryUsage()
  return {
    waiters,
    heapBytesPerWaiter: (after.heapUsed - before.heapUsed) / waiters,
    rssBytesPerWaiter: (after.rss - before.rss) / waiters
  }
})

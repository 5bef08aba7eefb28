/**
 * Peak memory of `n` tiny asynchronous tasks (`Effect.yieldNow()`: each task gives up the thread once) with at
 * most `concurrency` at once.
 *
 *   --variant=spindle          `bulkhead.forEach(lazy generator, () => Effect.yieldNow(), { discard: true })`
 *   --variant=effect-forEach   `Effect.forEach(array, () => Effect.yieldNow(), { concurrency, discard: true })`
 */
import { Bulkhead } from "@spindle/core"
import * as Effect from "effect/Effect"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["spindle", "effect-forEach"])
const n = numberArg("n", 1_000_000)
const concurrency = numberArg("concurrency", 100)

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i
}

let ran = 0
const task = Effect.zipRight(
  Effect.yieldNow(),
  Effect.sync(() => {
    ran++
  })
)

runVariant(async () => {
  const start = performance.now()
  await Effect.runPromise(
    variant === "spindle"
      ? Effect.flatMap(
        Bulkhead.make({ maxConcurrent: concurrency }),
        (bulkhead) => bulkhead.forEach(range(n), () => task, { discard: true })
      )
      // The array is built inside the measurement: holding every item is part of this way of working.
      : Effect.suspend(() => Effect.forEach(Array.from(range(n)), () => task, { concurrency, discard: true }))
  )
  const seconds = (performance.now() - start) / 1000
  if (ran !== n) throw new Error(`ran ${ran} of ${n} tasks`)
  return { n, seconds, itemsPerSec: n / seconds }
})

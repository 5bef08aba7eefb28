/**
 * Throughput of Spindle and of Effect's built-ins: `n` no-op effects with at most `concurrency` at once.
 *
 *   --variant=bulkhead-forEach   Spindle `bulkhead.forEach(lazy generator, noop, { discard: true })`
 *   --variant=bulkhead-run       `Effect.forEach(array, () => bulkhead.run(noop), { concurrency, discard: true })`
 *   --variant=effect-forEach     `Effect.forEach(array, noop, { concurrency, discard: true })`
 *   --variant=semaphore          `Effect.forEach(array, () => semaphore.withPermits(1)(noop), { concurrency, ... })`
 */
import { Bulkhead } from "@spindle/core"
import * as Effect from "effect/Effect"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["bulkhead-forEach", "bulkhead-run", "effect-forEach", "semaphore"])
const n = numberArg("n", 1_000_000)
const concurrency = numberArg("concurrency", 100)

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i
}

const noop = Effect.void
let ran = 0
const task = Effect.sync(() => {
  ran++
})

const program = (items: ReadonlyArray<number>): Effect.Effect<void> => {
  switch (variant) {
    case "bulkhead-forEach":
      return Effect.flatMap(
        Bulkhead.make({ maxConcurrent: concurrency }),
        (bulkhead) => bulkhead.forEach(range(n), () => task, { discard: true })
      )
    case "bulkhead-run":
      return Effect.flatMap(
        Bulkhead.make({ maxConcurrent: concurrency }),
        (bulkhead) => Effect.forEach(items, () => bulkhead.run(task), { concurrency, discard: true })
      )
    case "effect-forEach":
      return Effect.forEach(items, () => task, { concurrency, discard: true })
    case "semaphore":
      return Effect.flatMap(
        Effect.makeSemaphore(concurrency),
        (semaphore) => Effect.forEach(items, () => semaphore.withPermits(1)(task), { concurrency, discard: true })
      )
  }
}

runVariant(async () => {
  // Only the lazy variant goes without the array: the others are written the way their users write them.
  const items = variant === "bulkhead-forEach" ? [] : Array.from(range(n))
  const start = performance.now()
  await Effect.runPromise(program(items))
  const seconds = (performance.now() - start) / 1000
  if (ran !== n) throw new Error(`ran ${ran} of ${n} tasks`)
  return { n, seconds, opsPerSec: n / seconds }
})

export {}
void noop

/**
 * Peak memory of the unbounded anti-pattern: `Promise.all` over `n` promises created at once, each an async
 * function that awaits an already-resolved promise (the tiny asynchronous task of the Effect variants).
 */
import { numberArg, runVariant } from "../lib/child.js"

const n = numberArg("n", 1_000_000)

let ran = 0
const task = async (): Promise<void> => {
  await Promise.resolve()
  ran++
}

runVariant(async () => {
  const start = performance.now()
  await Promise.all(Array.from({ length: n }, () => task()))
  const seconds = (performance.now() - start) / 1000
  if (ran !== n) throw new Error(`ran ${ran} of ${n} tasks`)
  return { n, seconds, itemsPerSec: n / seconds }
})

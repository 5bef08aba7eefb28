/**
 * Throughput of the promise libraries: `n` no-op async tasks with at most `concurrency` running at once, each
 * library used the way its README shows.
 *
 *   --variant=p-limit      `Promise.all(items.map(() => limit(noop)))`: every task submitted at once
 *   --variant=p-queue      `queue.add(noop)`, awaiting `queue.onSizeLessThan(concurrency)` whenever `concurrency`
 *                          tasks are already queued (backpressure, as in p-queue's README), then `onIdle()`
 *   --variant=bottleneck   `Promise.all(items.map(() => limiter.schedule(noop)))`: every task submitted at once
 */
import Bottleneck from "bottleneck"
import pLimit from "p-limit"
import PQueue from "p-queue"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["p-limit", "p-queue", "bottleneck"])
const n = numberArg("n", 1_000_000)
const concurrency = numberArg("concurrency", 100)

let ran = 0
const noop = async (): Promise<void> => {
  ran++
}

const workload = async (items: ReadonlyArray<number>): Promise<void> => {
  switch (variant) {
    case "p-limit": {
      const limit = pLimit(concurrency)
      await Promise.all(items.map(() => limit(noop)))
      return
    }
    case "p-queue": {
      const queue = new PQueue({ concurrency })
      for (let i = 0; i < n; i++) {
        if (queue.size >= concurrency) await queue.onSizeLessThan(concurrency)
        void queue.add(noop)
      }
      await queue.onIdle()
      return
    }
    case "bottleneck": {
      const limiter = new Bottleneck({ maxConcurrent: concurrency })
      await Promise.all(items.map(() => limiter.schedule(noop)))
      return
    }
  }
}

runVariant(async () => {
  const items = variant === "p-queue" ? [] : Array.from({ length: n }, (_, i) => i)
  const start = performance.now()
  await workload(items)
  const seconds = (performance.now() - start) / 1000
  if (ran !== n) throw new Error(`ran ${ran} of ${n} tasks`)
  return { n, seconds, opsPerSec: n / seconds }
})

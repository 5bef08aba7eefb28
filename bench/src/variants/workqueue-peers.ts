/**
 * Work-queue throughput with promises: `n` items through a buffer of `capacity` with `workers` consumers, the
 * work a synchronous counter increment.
 *
 *   --variant=p-queue    `new PQueue({ concurrency: workers })`, `queue.add(work)`, awaiting
 *                        `queue.onSizeLessThan(capacity)` whenever `capacity` items wait (p-queue's README
 *                        pattern for backpressure), then `onIdle()`
 *   --variant=p-queue-priority  the same with `queue.add(work, { priority: i % 3 })`
 *   --variant=channel    a hand-rolled bounded channel (a ring buffer, a list of waiting consumers and one of
 *                        waiting producers) with `workers` async consumer loops; `put` and `take` return a value
 *                        at once when they can and a promise only when they must wait
 */
import PQueue from "p-queue"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["p-queue", "p-queue-priority", "channel"])
const n = numberArg("n", 1_000_000)
const capacity = numberArg("capacity", 100)
const workers = numberArg("workers", 8)

let processed = 0
const work = (): void => {
  processed++
}

const END = Symbol("end")
type Item = number | typeof END

/** A bounded FIFO channel: what a programmer would write by hand in a few dozen lines. */
class Channel {
  private readonly ring: Array<Item | undefined>
  private head = 0
  private size = 0
  private readonly takers: Array<(item: Item) => void> = []
  private readonly putters: Array<() => void> = []

  constructor(private readonly capacity: number) {
    this.ring = new Array<Item | undefined>(capacity)
  }

  /** `undefined` when the item went in at once, else a promise settled once it has. */
  put(item: Item): Promise<void> | undefined {
    const taker = this.takers.shift()
    if (taker !== undefined) {
      taker(item)
      return undefined
    }
    if (this.size < this.capacity) {
      this.ring[(this.head + this.size) % this.capacity] = item
      this.size++
      return undefined
    }
    return new Promise((resolve) => {
      this.putters.push(() => {
        this.ring[(this.head + this.size) % this.capacity] = item
        this.size++
        resolve()
      })
    })
  }

  /** The next item at once if there is one, else a promise of it. */
  take(): Item | Promise<Item> {
    if (this.size === 0) return new Promise((resolve) => this.takers.push(resolve))
    const item = this.ring[this.head]!
    this.ring[this.head] = undefined
    this.head = (this.head + 1) % this.capacity
    this.size--
    this.putters.shift()?.()
    return item
  }
}

const channel = async (): Promise<void> => {
  const ch = new Channel(capacity)
  const consume = async (): Promise<void> => {
    for (;;) {
      let item = ch.take()
      if (item instanceof Promise) item = await item
      if (item === END) return
      work()
    }
  }
  const consumers = Array.from({ length: workers }, consume)
  for (let i = 0; i < n; i++) {
    const wait = ch.put(i)
    if (wait !== undefined) await wait
  }
  for (let i = 0; i < workers; i++) {
    const wait = ch.put(END)
    if (wait !== undefined) await wait
  }
  await Promise.all(consumers)
}

const priorities = [{ priority: 0 }, { priority: 1 }, { priority: 2 }]

const pQueue = async (withPriority: boolean): Promise<void> => {
  const queue = new PQueue({ concurrency: workers })
  for (let i = 0; i < n; i++) {
    if (queue.size >= capacity) await queue.onSizeLessThan(capacity)
    void (withPriority ? queue.add(work, priorities[i % 3]) : queue.add(work))
  }
  await queue.onIdle()
}

runVariant(async () => {
  const start = performance.now()
  await (variant === "channel" ? channel() : pQueue(variant === "p-queue-priority"))
  const seconds = (performance.now() - start) / 1000
  if (processed !== n) throw new Error(`processed ${processed} of ${n} items`)
  return { n, seconds, itemsPerSec: n / seconds }
})

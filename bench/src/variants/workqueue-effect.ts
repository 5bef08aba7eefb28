/**
 * Work-queue throughput in Effect: `n` items through a buffer of `capacity` with `workers` consumers, the work a
 * synchronous counter increment.
 *
 *   --variant=spindle   `WorkQueue.make({ capacity, workers, process })`, fed with `offerAll(generator)`, then
 *                       `drain`
 *   --variant=spindle-priority  the same queue fed one item at a time, each with a priority:
 *                       `offer(i, { priority: i % 3 })` in an `Effect.whileLoop`, then `drain`
 *   --variant=effect    `Queue.bounded(capacity)` and `workers` fibers taking in a loop
 *                       (`Effect.whileLoop`); one producer offering each item (suspending while the queue is full);
 *                       the consumer that processes the last item completes a `Deferred`, which the program awaits
 *                       before interrupting the consumers
 *   --variant=effect-forever  the same with each consumer written `Effect.forever(take ▸ process)`, which yields
 *                       the thread after every item (`forever` is `flatMap(self, yieldNow)` in a loop)
 */
import { WorkQueue } from "@spindle/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["spindle", "spindle-priority", "effect", "effect-forever"])
const n = numberArg("n", 1_000_000)
const capacity = numberArg("capacity", 100)
const workers = numberArg("workers", 8)

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i
}

let processed = 0
const work = Effect.sync(() => {
  processed++
})

const spindle: Effect.Effect<void, WorkQueue.WorkQueueClosed> = Effect.scoped(Effect.gen(function*() {
  const queue = yield* WorkQueue.make({ capacity, workers, process: () => work })
  yield* queue.offerAll(range(n))
  yield* queue.drain
}))

// Priorities 0 (the default), 1 and 2 in turn; the options are built once, as a caller with a few classes would.
const priorities: ReadonlyArray<WorkQueue.OfferOptions> = [{ priority: 0 }, { priority: 1 }, { priority: 2 }]

const spindlePriority: Effect.Effect<void, WorkQueue.WorkQueueClosed> = Effect.scoped(Effect.gen(function*() {
  const queue = yield* WorkQueue.make({ capacity, workers, process: (_: number) => work })
  let i = 0
  yield* Effect.whileLoop({
    while: () => i < n,
    body: () => queue.offer(i, priorities[i % 3]),
    step: () => {
      i++
    }
  })
  yield* queue.drain
}))

const effect: Effect.Effect<void> = Effect.gen(function*() {
  const queue = yield* Queue.bounded<number>(capacity)
  const done = yield* Deferred.make<void>()
  const process = Effect.suspend(() => {
    processed++
    return processed === n ? Deferred.succeed(done, undefined) : Effect.void
  })
  const consume = variant === "effect-forever"
    ? Effect.forever(Effect.zipRight(Queue.take(queue), process))
    : Effect.whileLoop({ while: () => true, body: () => Effect.zipRight(Queue.take(queue), process), step: () => {} })
  const consumers = yield* Effect.forEach(range(workers), () => Effect.fork(consume))
  let i = 0
  yield* Effect.whileLoop({
    while: () => i < n,
    body: () => Queue.offer(queue, i),
    step: () => {
      i++
    }
  })
  yield* Deferred.await(done)
  yield* Fiber.interruptAll(consumers)
})

runVariant(async () => {
  const start = performance.now()
  await Effect.runPromise(variant === "spindle" ? spindle : variant === "spindle-priority" ? spindlePriority : effect)
  const seconds = (performance.now() - start) / 1000
  if (processed !== n) throw new Error(`processed ${processed} of ${n} items`)
  return { n, seconds, itemsPerSec: n / seconds }
})

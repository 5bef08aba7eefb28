/**
 * The scheduler's ready items on their way to idle workers: a FIFO buffer and the workers waiting for it. An item
 * offered while a worker waits goes straight to the longest-waiting one; `take` answers at once from the buffer when
 * it holds something, and otherwise waits with one interruptible region (an interrupted waiter withdraws). Effect's
 * `Queue.take` costs two such regions and a `Deferred` per wait, on every item of a job.
 *
 * As with `Queue`, an item handed to a waiter whose fiber is interrupted in the same instant is not taken back: the
 * scheduler counts every item it leased as held until its outcome is committed or it is released, so such an item is
 * released with the rest at shutdown.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** @internal */
export class Handoff<A> {
  private buffer: Array<A> = []
  private head = 0
  // In the order they began to wait (a `Set` iterates in insertion order).
  private readonly waiters = new Set<(effect: Effect.Effect<A>) => void>()

  /** Items waiting for a worker. */
  get size(): number {
    return this.buffer.length - this.head
  }

  /** Hands each item to a waiting worker, the longest-waiting first, or buffers it. */
  unsafeOfferAll(items: Iterable<A>): void {
    for (const item of items) {
      const next = this.waiters.values().next()
      if (next.done === true) {
        this.buffer.push(item)
        continue
      }
      this.waiters.delete(next.value)
      next.value(Effect.succeed(item))
    }
  }

  /** Takes every buffered item. */
  unsafeTakeAll(): Array<A> {
    const all = this.buffer.slice(this.head)
    this.buffer = []
    this.head = 0
    return all
  }

  private poll(): A {
    const item = this.buffer[this.head]
    this.buffer[this.head] = undefined as A
    this.head++
    if (this.head === this.buffer.length) {
      this.buffer = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
      this.buffer = this.buffer.slice(this.head)
      this.head = 0
    }
    return item
  }

  private readonly wait: Effect.Effect<A> = Effect.async<A>((resume) => {
    // Looked at again: the runtime may have let other fibers run (and offer) since `take` found the buffer empty.
    if (this.size > 0) return resume(Effect.succeed(this.poll()))
    this.waiters.add(resume)
    return Effect.sync(() => {
      this.waiters.delete(resume)
    })
  })

  /** The next item, at once if one is buffered. */
  readonly take: Effect.Effect<A> = Effect.suspend(() => this.size > 0 ? Effect.succeed(this.poll()) : this.wait)
}

/**
 * The scheduler's ready items on their way to idle workers: a FIFO buffer and the workers waiting for it. An item
 * offered while a worker waits goes straight to the longest-waiting one; `take` answers at once from the buffer when
 * it holds something, and otherwise waits with one interruptible region (an interrupted waiter withdraws). Effect's
 * `Queue.take` costs two such regions and a `Deferred` per wait, on every item of a job. A long-lived worker takes
 * through a `taker` of its own, which waits with no region at all (its wait is passed over once its fiber has ended).
 *
 * As with `Queue`, an item handed to a `take` whose fiber is interrupted in the same instant is not taken back. A
 * `taker` keeps the item it was handed until its fiber has received it, so that the fiber's owner can take back
 * (`unsafeReclaim`) an item handed over as the fiber ended, and offer it again.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"

/** @internal */
export class Handoff<A> {
  private buffer: Array<A> = []
  private head = 0
  // In the order they began to wait (a `Set` iterates in insertion order). A waiter of a `taker` names its fiber.
  private readonly waiters = new Set<Waiter<A>>()

  /** Items waiting for a worker. */
  get size(): number {
    return this.buffer.length - this.head
  }

  /** Hands each item to a waiting worker, the longest-waiting first, or buffers it. */
  unsafeOfferAll(items: Iterable<A>): void {
    for (const item of items) {
      let waiter: Waiter<A> | undefined
      for (const next of this.waiters) {
        this.waiters.delete(next)
        // A taker's fiber that has ended (interrupted while it waited) takes nothing more.
        if (next.fiber === undefined || next.fiber.unsafePoll() === null) {
          waiter = next
          break
        }
      }
      if (waiter === undefined) {
        this.buffer.push(item)
        continue
      }
      const resume = waiter.resume!
      waiter.resume = undefined
      if (waiter.fiber === undefined) {
        resume(Effect.succeed(item))
      } else {
        // Kept until the fiber receives it: a fiber interrupted in this instant ends without running again.
        waiter.handed = item
        waiter.holding = true
        resume(waiter.receive!)
      }
    }
  }

  /** Workers waiting for an item. */
  get waiting(): number {
    return this.waiters.size
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
    const waiter: Waiter<A> = { fiber: undefined, resume, handed: undefined, holding: false, receive: undefined }
    this.waiters.add(waiter)
    return Effect.sync(() => {
      this.waiters.delete(waiter)
    })
  })

  /** The next item, at once if one is buffered. */
  readonly take: Effect.Effect<A> = Effect.suspend(() => this.size > 0 ? Effect.succeed(this.poll()) : this.wait)

  /**
   * `take` for `fiber` alone (made once, run for every item), whose wait has no canceler: an `Effect.async` with one
   * is an uninterruptible region of its own on every wait. An interrupted wait stays listed until the next offer,
   * which passes over it, its fiber having ended (`fiber` must run nothing but its takes and what it does with the
   * items, so that an interruption while it waits ends it). An item handed over in the instant the fiber is
   * interrupted, before the fiber has run again, is never received: once the fiber has ended, `unsafeReclaim` gives
   * it back (once), for its owner to offer again.
   */
  taker(fiber: Fiber.RuntimeFiber<unknown, unknown>): Taker<A> {
    const waiter: Waiter<A> = { fiber, resume: undefined, handed: undefined, holding: false, receive: undefined }
    waiter.receive = Effect.sync(() => {
      const item = waiter.handed as A
      waiter.handed = undefined
      waiter.holding = false
      return item
    })
    const wait = Effect.async<A>((resume) => {
      if (this.size > 0) return resume(Effect.succeed(this.poll()))
      waiter.resume = resume
      this.waiters.add(waiter)
    })
    return {
      take: Effect.suspend(() => this.size > 0 ? Effect.succeed(this.poll()) : wait),
      unsafeReclaim: () => {
        if (!waiter.holding) return undefined
        const item = waiter.handed as A
        waiter.handed = undefined
        waiter.holding = false
        return item
      }
    }
  }
}

/**
 * A worker's own way of taking items (`Handoff.taker`).
 *
 * @internal
 */
export interface Taker<A> {
  readonly take: Effect.Effect<A>
  /** The item handed to the taker's fiber that it never received (it ended first), given back once; else `undefined`. */
  readonly unsafeReclaim: () => A | undefined
}

// A worker waiting for an item: `resume` is set while it waits.
// A taker's waiter also keeps the item handed to it (`holding`) until its fiber receives it (`receive`).
interface Waiter<A> {
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  resume: ((effect: Effect.Effect<A>) => void) | undefined
  handed: A | undefined
  holding: boolean
  receive: Effect.Effect<A> | undefined
}

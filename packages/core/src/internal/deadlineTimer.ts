/**
 * One timer per `Clock` for every pending deadline, so that a deadline costs a heap entry instead of a fiber.
 *
 * A guarded region registers an `Entry` (when it must stop) and runs in the calling fiber. When the entry's time
 * comes, the timer either interrupts that fiber with an interruptor made for the entry (the Effect form: the
 * region's finalizers run, and its boundary turns exactly that interruption into a typed error) or calls the
 * entry's callback (the cooperative Promise form: abort a signal and resume the waiting fiber).
 *
 * Time is read through the fiber's `Clock`. With the live clock one `setTimeout` is armed for the earliest entry
 * (re-armed only when a sooner one arrives) and is unref'd while no entry is pending, so an idle timer never keeps
 * the process alive. Any other clock (`TestClock`, a custom one) is serviced by a daemon fiber that waits with
 * `clock.sleep`, so `TestClock.adjust` drives deadlines exactly like any other sleep; a new sleeper starts only when
 * an entry sooner than every pending sleeper's wake-up arrives.
 *
 * This module reads two fields of Effect 3's fiber runtime that its public types do not expose (`_children` and
 * `getChildren`): when a deadline interrupts a fiber, the children it had before the region started are kept out of
 * the interruption, as they would be if the region ran in a fiber of its own.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Runtime from "effect/Runtime"

type AnyFiber = Fiber.RuntimeFiber<unknown, unknown>

/** The parts of Effect 3's `FiberRuntime` that its public interface leaves out. */
interface FiberInternals {
  _children?: Set<AnyFiber> | null
  getChildren?: () => Set<AnyFiber>
}

const childrenOf = (fiber: AnyFiber): ReadonlyArray<AnyFiber> | undefined => {
  const children = (fiber as unknown as FiberInternals)._children
  return children === undefined || children === null || children.size === 0 ? undefined : Array.from(children)
}

/** @internal */
export class Entry {
  /** Position in the timer's heap, -1 when not in it. */
  index = -1
  fired = false
  /** The interruptor made when the entry fired (Effect form only). */
  interruptor: FiberId.FiberId | undefined = undefined
  /** Children that were kept out of the interruption, to be given back to the fiber at the boundary. */
  detached: Array<AnyFiber> | undefined = undefined

  constructor(
    readonly at: number,
    /** The fiber to interrupt (Effect form), or undefined for the callback form. */
    readonly fiber: AnyFiber | undefined,
    /** The fiber's children when the region started. */
    readonly keep: ReadonlyArray<AnyFiber> | undefined,
    readonly onFire: (() => void) | undefined
  ) {}
}

/**
 * An entry that interrupts `fiber` when it fires.
 *
 * @internal
 */
export const fiberEntry = (at: number, fiber: AnyFiber): Entry => new Entry(at, fiber, childrenOf(fiber), undefined)

/**
 * An entry that calls `onFire` when it fires.
 *
 * @internal
 */
export const callbackEntry = (at: number, onFire: () => void): Entry => new Entry(at, undefined, undefined, onFire)

const MAX_DELAY = 2_147_483_647

interface NodeTimeout {
  ref?: () => unknown
  unref?: () => unknown
}

/** @internal */
export class DeadlineTimer {
  private readonly heap: Array<Entry> = []
  /** The earliest time a pending `setTimeout` or sleeper wakes up (Infinity: none that matters). */
  private armedAt = Number.POSITIVE_INFINITY
  private handle: ReturnType<typeof setTimeout> | undefined = undefined
  private refed = false

  constructor(readonly clock: Clock.Clock, private readonly live: boolean) {}

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  /**
   * Registers `entry`; `fiber` is the caller, whose fiber refs a new sleeper inherits (non-live clocks; on the live
   * clock it may be `undefined`).
   */
  add(entry: Entry, fiber: AnyFiber | undefined): void {
    const heap = this.heap
    entry.index = heap.length
    heap.push(entry)
    this.siftUp(entry.index)
    if (this.live) {
      if (entry.at < this.armedAt) this.armLive(entry.at)
      else if (!this.refed && this.handle !== undefined) {
        ;(this.handle as NodeTimeout).ref?.()
        this.refed = true
      }
    } else if (entry.at < this.armedAt) {
      this.armedAt = entry.at
      const runtime = Runtime.make({
        context: fiber!.currentContext,
        runtimeFlags: Runtime.defaultRuntimeFlags,
        fiberRefs: fiber!.getFiberRefs()
      })
      Runtime.runFork(runtime)(this.sleeper(entry.at))
    }
  }

  /** Takes `entry` out if it has not fired. */
  remove(entry: Entry): void {
    const index = entry.index
    if (index < 0) return
    const heap = this.heap
    const last = heap.pop()!
    entry.index = -1
    if (index < heap.length) {
      heap[index] = last
      last.index = index
      this.siftDown(index)
      this.siftUp(last.index)
    }
    if (heap.length === 0 && this.refed) {
      ;(this.handle as NodeTimeout).unref?.()
      this.refed = false
    }
  }

  private armLive(at: number): void {
    if (this.handle !== undefined) clearTimeout(this.handle)
    this.armedAt = at
    this.handle = setTimeout(this.onTimeout, Math.min(Math.max(at - this.now(), 0), MAX_DELAY))
    this.refed = true
  }

  private readonly onTimeout = (): void => {
    this.handle = undefined
    this.refed = false
    this.armedAt = Number.POSITIVE_INFINITY
    this.fire(this.now())
    const next = this.heap[0]
    if (next !== undefined) this.armLive(next.at)
  }

  private sleeper(wake: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      const delay = wake - this.now()
      return Effect.flatMap(delay > 0 ? this.clock.sleep(Duration.millis(delay)) : Effect.void, () => {
        if (this.armedAt === wake) this.armedAt = Number.POSITIVE_INFINITY
        this.fire(this.now())
        const next = this.heap[0]
        if (next === undefined || next.at >= this.armedAt) return Effect.void
        this.armedAt = next.at
        return this.sleeper(next.at)
      })
    })
  }

  private fire(now: number): void {
    const heap = this.heap
    while (heap.length > 0 && heap[0].at <= now) {
      const entry = heap[0]
      this.remove(entry)
      entry.fired = true
      if (entry.fiber === undefined) {
        entry.onFire!()
        continue
      }
      if (entry.keep !== undefined) {
        const children = (entry.fiber as unknown as FiberInternals)._children
        if (children !== undefined && children !== null) {
          for (const child of entry.keep) {
            if (children.delete(child)) (entry.detached ??= []).push(child)
          }
        }
      }
      entry.interruptor = FiberId.unsafeMake()
      entry.fiber.unsafeInterruptAsFork(entry.interruptor)
    }
  }

  private siftUp(index: number): void {
    const heap = this.heap
    const entry = heap[index]
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = heap[parentIndex]
      if (parent.at <= entry.at) break
      heap[index] = parent
      parent.index = index
      index = parentIndex
    }
    heap[index] = entry
    entry.index = index
  }

  private siftDown(index: number): void {
    const heap = this.heap
    const length = heap.length
    const entry = heap[index]
    while (true) {
      const left = 2 * index + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && heap[right].at < heap[left].at ? right : left
      if (heap[child].at >= entry.at) break
      heap[index] = heap[child]
      heap[index].index = index
      index = child
    }
    heap[index] = entry
    entry.index = index
  }
}

const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)
const timers = new WeakMap<Clock.Clock, DeadlineTimer>()
let lastServices: Context.Context<DefaultServices.DefaultServices> | undefined
let lastTimer: DeadlineTimer | undefined

/**
 * The timer of the live clock (Effect's default services), for callers outside a fiber.
 *
 * @internal
 */
export const liveTimer = (): DeadlineTimer => {
  let timer = timers.get(liveClock)
  if (timer === undefined) {
    timer = new DeadlineTimer(liveClock, true)
    timers.set(liveClock, timer)
  }
  return timer
}

/**
 * The timer of the clock `fiber` reads time from.
 *
 * @internal
 */
export const timerOf = (fiber: AnyFiber): DeadlineTimer => {
  const services = fiber.currentDefaultServices
  if (services === lastServices) return lastTimer!
  const clock = Context.get(services, Clock.Clock)
  let timer = timers.get(clock)
  if (timer === undefined) {
    timer = new DeadlineTimer(clock, clock === liveClock)
    timers.set(clock, timer)
  }
  lastServices = services
  lastTimer = timer
  return timer
}

/**
 * At a boundary whose entry fired: gives the kept children back to the fiber, takes the entry's interruptor out
 * of the fiber's interruption, and says whether the interruption was the entry's alone (then the boundary reports
 * a timeout) or someone else interrupts the fiber too (then the interruption goes on).
 *
 * @internal
 */
export const settleFired = (entry: Entry): Effect.Effect<boolean> =>
  Effect.withFiberRuntime((fiber) => {
    const interrupted = fiber.getFiberRef(FiberRef.interruptedCause)
    let others: Cause.Cause<never> = Cause.empty
    for (const id of Cause.interruptors(interrupted)) {
      if (!Equal.equals(id, entry.interruptor)) others = Cause.sequential(others, Cause.interrupt(id))
    }
    const alone = Cause.isEmpty(others)
    if (entry.detached !== undefined) {
      const children = (fiber as unknown as FiberInternals).getChildren?.()
      for (const child of entry.detached) {
        if (child.unsafePoll() !== null) continue
        children?.add(child)
        if (!alone) child.unsafeInterruptAsFork(fiber.id())
      }
      entry.detached = undefined
    }
    return Effect.as(FiberRef.set(FiberRef.interruptedCause, others), alone)
  })

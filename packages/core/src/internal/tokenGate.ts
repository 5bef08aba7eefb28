import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { WaitTimeoutError } from "../WaitTimeout.js"
import type * as Expiry from "./expiry.js"
import type { Node } from "./linkedList.js"
import * as Tracing from "./tracing.js"

/**
 * What a token store answers to a reservation: granted (`delayMillis === 0`) or the time after which it
 * would be, plus the tokens left for metrics.
 *
 * @internal
 */
export interface Decision {
  readonly delayMillis: number
  readonly remaining: number
}

/**
 * The instant a caller's wait ends (clock milliseconds), shared with the stage before the gate (a `Limiter`'s
 * bulkhead): `NaN` until a stage makes the caller wait.
 *
 * @internal
 */
export interface Ticket {
  deadline: number
}

/** @internal */
export interface Gate<E> {
  /** `report: false`: never reported to a tracer (a loop's per-element take; the loop is what the caller sees). */
  readonly take: (tokens: number, ticket?: Ticket | undefined, report?: boolean) => Effect.Effect<void, E>
  readonly tryTake: (tokens: number) => Effect.Effect<boolean, E>
  readonly waiting: () => number
}

/** @internal */
export interface WaitOptions {
  readonly maxWaitMillis: number
  readonly error: () => WaitTimeoutError
  readonly expiry: Expiry.Expiry
  readonly onTimeout: () => void
}

type Resume = (effect: Effect.Effect<void, any>) => void

// Every field counts: 100,000 of these may be parked at once.
interface Waiter {
  readonly tokens: number
  readonly core: Core
  // The queue is intrusive: no node object per waiter.
  prev: Waiter | undefined
  next: Waiter | undefined
  // The parked fiber's resume callback once it has suspended, or the effect it is to be woken with before then.
  wakeup: Resume | Effect.Effect<void, any> | undefined
  // Only with a `maxWait`.
  readonly timer: Timer | undefined
}

interface Timer {
  deadline: number
  expiry: Node<Expiry.Entry> | undefined
}

/** A FIFO of waiters linked through their own fields. */
class Queue {
  head: Waiter | undefined = undefined
  tail: Waiter | undefined = undefined
  length = 0

  push(waiter: Waiter): void {
    waiter.prev = this.tail
    if (this.tail === undefined) this.head = waiter
    else this.tail.next = waiter
    this.tail = waiter
    this.length++
  }

  has(waiter: Waiter): boolean {
    return waiter.prev !== undefined || this.head === waiter
  }

  remove(waiter: Waiter): boolean {
    if (!this.has(waiter)) return false
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = undefined
    waiter.next = undefined
    this.length--
    return true
  }
}

// What a waiter needs from its gate.
interface Core {
  readonly enqueue: (waiter: Waiter) => Effect.Effect<void, any>
  readonly turn: (waiter: Waiter) => Effect.Effect<void, any>
  readonly leave: (waiter: Waiter) => void
}

// The waiter each fiber in `take` waits as. A fiber waits in one gate at a time, so one map serves every gate, and
// the effect a waiter runs is the same for all (`taking`, below): a parked fiber holds its waiter, its list node and
// this map's entry, and beyond that only what any fiber suspended in `Effect.async` holds.
const takingBy = new WeakMap<Fiber.RuntimeFiber<any, any>, Waiter>()

const currentFiber = (): Fiber.RuntimeFiber<any, any> => Option.getOrThrow(Fiber.getCurrentFiber())

const current = (): Waiter => takingBy.get(currentFiber())!

const done = (): Waiter => {
  const fiber = currentFiber()
  const waiter = takingBy.get(fiber)!
  takingBy.delete(fiber)
  return waiter
}

// One parameter exactly: any other count makes `Effect.async` allocate an AbortController per call.
const register = (resume: Resume): void => {
  const waiter = current()
  const pending = waiter.wakeup
  if (pending === undefined) {
    waiter.wakeup = resume
  } else {
    waiter.wakeup = undefined
    resume(pending as Effect.Effect<void, any>)
  }
}

/** @internal */
export const parked: Effect.Effect<void, any> = Effect.async<void, any>(register)

const enqueue = Effect.suspend(() => {
  const waiter = current()
  return waiter.core.enqueue(waiter)
})

const turn = Effect.suspend(() => {
  const waiter = current()
  return waiter.core.turn(waiter)
})

// However the turn ends (granted, interrupted, timed out, or a store error), the waiter leaves the queue; the
// handlers run uninterruptibly.
const handlers = {
  onFailure: (cause: Cause.Cause<any>) => {
    const waiter = done()
    waiter.core.leave(waiter)
    return Effect.failCause(cause)
  },
  onSuccess: () => {
    const waiter = done()
    waiter.core.leave(waiter)
    return Effect.void
  }
}

// Built once: the waiter is the current fiber's. The turn is interruptible only if the caller was.
const takingInterruptible = Effect.uninterruptible(
  Effect.zipRight(enqueue, Effect.matchCauseEffect(Effect.interruptible(turn), handlers))
)
const takingUninterruptible = Effect.zipRight(enqueue, Effect.matchCauseEffect(turn, handlers))

// Effects are objects, never functions: a function here is the parked fiber's resume callback.
const wake = (waiter: Waiter, effect: Effect.Effect<void, any>): void => {
  const wakeup = waiter.wakeup
  if (typeof wakeup === "function") {
    waiter.wakeup = undefined
    wakeup(effect)
  } else {
    waiter.wakeup = effect
  }
}

/**
 * A FIFO gate in front of a token store. Only the fiber at the head of the queue talks to the store and sleeps
 * until its tokens are due (or its `maxWait` ends); the others are parked, and the head, when it leaves, wakes the
 * next one with the work of a head. So a release wakes exactly one waiter, an arrival never overtakes a waiter
 * (fairness), and an interrupted or timed-out waiter simply leaves the list: it has reserved nothing, so there is
 * nothing to give back. A parked waiter holds no continuation of its own: what it runs when its turn comes is built
 * then.
 *
 * @internal
 */
export const make = <E>(
  attempt: (tokens: number) => Effect.Effect<Decision, E>,
  hooks: {
    readonly onWaiters: (delta: number) => void
    readonly onGranted: (tokens: number, remaining: number) => void
    readonly onRejected: () => void
  },
  wait?: WaitOptions | undefined,
  /** How the gate reports to a tracer; `undefined`: never. */
  trace?: Tracing.Names | undefined
): Gate<E> => {
  const waiters = new Queue()
  const maxWaitMillis = wait?.maxWaitMillis
  // Times the head slept for its tokens: a take that saw it change while it was the head waited.
  let sleeps = 0

  const promote = (): void => {
    const next = waiters.head
    if (next === undefined) return
    // The head watches its own deadline.
    const timer = next.timer
    if (timer !== undefined && timer.expiry !== undefined) {
      wait!.expiry.cancel(timer.expiry)
      timer.expiry = undefined
    }
    wake(next, loop(next))
  }

  const leave = (waiter: Waiter): void => {
    const timer = waiter.timer
    if (timer !== undefined && timer.expiry !== undefined) {
      wait!.expiry.cancel(timer.expiry)
      timer.expiry = undefined
    }
    const wasHead = waiters.head === waiter
    if (!waiters.remove(waiter)) return
    hooks.onWaiters(-1)
    if (wasHead) promote()
  }

  const timedOut = (): Effect.Effect<never, E> => {
    wait!.onTimeout()
    return Effect.fail(wait!.error() as E)
  }

  const loop = (waiter: Waiter): Effect.Effect<void, E> =>
    Effect.flatMap(attempt(waiter.tokens), (decision) => {
      if (decision.delayMillis <= 0) {
        hooks.onGranted(waiter.tokens, decision.remaining)
        return Effect.void
      }
      sleeps++
      if (maxWaitMillis === undefined) {
        return Effect.zipRight(Effect.sleep(Duration.millis(decision.delayMillis)), loop(waiter))
      }
      return Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        const timer = waiter.timer!
        if (Number.isNaN(timer.deadline)) timer.deadline = now + maxWaitMillis
        const left = timer.deadline - now
        if (left <= 0) return timedOut()
        return Effect.zipRight(
          Effect.sleep(Duration.millis(Math.min(decision.delayMillis, left))),
          loop(waiter)
        )
      })
    })

  // A parked waiter whose deadline passed: out of the queue at once (it is not the head), then woken to fail.
  const expire = (waiter: Waiter) => () => {
    waiter.timer!.expiry = undefined
    if (waiters.remove(waiter)) hooks.onWaiters(-1)
    wake(waiter, timedOut())
  }

  const arm = (waiter: Waiter): Effect.Effect<void> =>
    Effect.clockWith((clock) => {
      const timer = waiter.timer!
      if (Number.isNaN(timer.deadline)) timer.deadline = clock.unsafeCurrentTimeMillis() + maxWaitMillis!
      return Effect.map(wait!.expiry.add(timer.deadline, expire(waiter)), (entry) => {
        // Promoted (or gone) while the entry was being added: the head watches its own deadline.
        if (waiters.head === waiter || !waiters.has(waiter)) wait!.expiry.cancel(entry)
        else timer.expiry = entry
      })
    })

  const core: Core = {
    enqueue: (waiter) => {
      const isHead = waiters.length === 0
      if (!isHead && maxWaitMillis === 0) return timedOut()
      waiters.push(waiter)
      hooks.onWaiters(1)
      return isHead || maxWaitMillis === undefined ? Effect.void : arm(waiter)
    },
    turn: (waiter) => waiters.head === waiter ? loop(waiter) : parked,
    leave
  }

  const newWaiter = (tokens: number, ticket: Ticket | undefined): Waiter => ({
    tokens,
    core,
    prev: undefined,
    next: undefined,
    wakeup: undefined,
    timer: maxWaitMillis === undefined
      ? undefined
      : { deadline: ticket === undefined ? Number.NaN : ticket.deadline, expiry: undefined }
  })

  // Waits as a parked fiber: the waiter is the fiber's, the effect is shared.
  const wait_ = (tokens: number, ticket: Ticket | undefined): Effect.Effect<void, E> =>
    Effect.checkInterruptible((interruptible) => {
      takingBy.set(currentFiber(), newWaiter(tokens, ticket))
      return interruptible ? takingInterruptible : takingUninterruptible
    })

  // Nobody waiting: the caller is the head at once and talks to the store in its own fiber (the common case, kept
  // as cheap as it was before waiters were parked).
  const takeAsHead = (tokens: number, ticket: Ticket | undefined): Effect.Effect<void, E> =>
    Effect.uninterruptibleMask((restore) => {
      if (waiters.length > 0) return restore(wait_(tokens, ticket))
      const waiter = newWaiter(tokens, ticket)
      waiters.push(waiter)
      hooks.onWaiters(1)
      return Effect.matchCauseEffect(restore(loop(waiter)), {
        onFailure: (cause) => {
          leave(waiter)
          return Effect.failCause(cause)
        },
        onSuccess: () => {
          leave(waiter)
          return Effect.void
        }
      })
    })

  // With a tracer of the application's installed: a take that waited (queued behind others, or slept for its
  // tokens) is a span from its start to its end; one granted at once an event; one refused without waiting (a
  // `maxWait` of 0) an event too.
  const traceTake = (traced: Tracing.Traced, tokens: number, take: Effect.Effect<void, E>): Effect.Effect<void, E> => {
    const names = trace!
    const ahead = waiters.length
    const sleptBefore = sleeps
    const start = Tracing.nowNanos(traced)
    return Effect.onExit(take, (exit) =>
      Effect.sync(() => {
        const waitMs = Tracing.millisBetween(start, Tracing.nowNanos(traced))
        if (ahead > 0 || sleeps !== sleptBefore) {
          Tracing.pastSpan(traced, names.wait, start, {
            ...names.attributes,
            [names.keys.tokens]: tokens,
            [names.keys.queued]: ahead,
            [names.keys.waitMs]: waitMs
          }, exit)
        } else if (Exit.isSuccess(exit)) {
          Tracing.event(traced, names.admitted, { ...names.attributes, [names.keys.tokens]: tokens })
        } else {
          const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
          if (failure !== undefined && failure._tag === "Some") {
            Tracing.event(traced, names.rejected, {
              ...names.attributes,
              [names.keys.tokens]: tokens,
              [names.keys.reason]: Tracing.reasonOf(failure.value)
            })
          }
        }
      }))
  }

  const take = (tokens: number, ticket?: Ticket | undefined, report = true): Effect.Effect<void, E> =>
    Effect.suspend(() => {
      const effect = waiters.length === 0 ? takeAsHead(tokens, ticket) : wait_(tokens, ticket)
      const traced = trace === undefined || !report ? undefined : Tracing.traced()
      return traced === undefined ? effect : traceTake(traced, tokens, effect)
    })

  const tryTake = (tokens: number): Effect.Effect<boolean, E> =>
    Effect.suspend(() => {
      const traced = trace === undefined ? undefined : Tracing.traced()
      const refused = (reason: string) => {
        hooks.onRejected()
        if (traced !== undefined) {
          Tracing.event(traced, trace!.rejected, {
            ...trace!.attributes,
            [trace!.keys.tokens]: tokens,
            [trace!.keys.reason]: reason
          })
        }
        return false
      }
      if (waiters.length > 0) return Effect.succeed(refused("waiters"))
      return Effect.map(attempt(tokens), (decision) => {
        if (decision.delayMillis <= 0) {
          hooks.onGranted(tokens, decision.remaining)
          if (traced !== undefined) {
            Tracing.event(traced, trace!.admitted, { ...trace!.attributes, [trace!.keys.tokens]: tokens })
          }
          return true
        }
        return refused("unavailable")
      })
    })

  return { take, tryTake, waiting: () => waiters.length }
}

import type * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { WaitTimeoutError } from "../WaitTimeout.js"
import type * as Expiry from "./expiry.js"
import { LinkedList, type Node } from "./linkedList.js"

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
  readonly take: (tokens: number, ticket?: Ticket | undefined) => Effect.Effect<void, E>
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

interface Waiter {
  readonly tokens: number
  readonly core: Core
  node: Node<Waiter> | undefined
  // The parked fiber's resume callback once it has suspended; `pending` holds what it is woken with before then.
  resume: ((effect: Effect.Effect<void, any>) => void) | undefined
  pending: Effect.Effect<void, any> | undefined
  deadline: number
  expiry: Node<Expiry.Entry> | undefined
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
const register = (resume: (effect: Effect.Effect<void, any>) => void): void => {
  const waiter = current()
  const pending = waiter.pending
  if (pending !== undefined) {
    waiter.pending = undefined
    return resume(pending)
  }
  waiter.resume = resume
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

const wake = (waiter: Waiter, effect: Effect.Effect<void, any>): void => {
  const resume = waiter.resume
  if (resume === undefined) {
    waiter.pending = effect
  } else {
    waiter.resume = undefined
    resume(effect)
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
  wait?: WaitOptions | undefined
): Gate<E> => {
  const waiters = new LinkedList<Waiter>()
  const maxWaitMillis = wait?.maxWaitMillis

  const promote = (): void => {
    const head = waiters.head
    if (head === undefined) return
    const next = head.value
    // The head watches its own deadline.
    if (next.expiry !== undefined) {
      wait!.expiry.cancel(next.expiry)
      next.expiry = undefined
    }
    wake(next, loop(next))
  }

  const leave = (waiter: Waiter): void => {
    if (waiter.expiry !== undefined) {
      wait!.expiry.cancel(waiter.expiry)
      waiter.expiry = undefined
    }
    const node = waiter.node
    if (node === undefined) return
    const wasHead = waiters.head === node
    if (!waiters.remove(node)) return
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
      if (maxWaitMillis === undefined) {
        return Effect.zipRight(Effect.sleep(Duration.millis(decision.delayMillis)), loop(waiter))
      }
      return Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        if (Number.isNaN(waiter.deadline)) waiter.deadline = now + maxWaitMillis
        const left = waiter.deadline - now
        if (left <= 0) return timedOut()
        return Effect.zipRight(
          Effect.sleep(Duration.millis(Math.min(decision.delayMillis, left))),
          loop(waiter)
        )
      })
    })

  // A parked waiter whose deadline passed: out of the queue at once (it is not the head), then woken to fail.
  const expire = (waiter: Waiter) => () => {
    waiter.expiry = undefined
    if (waiters.remove(waiter.node!)) hooks.onWaiters(-1)
    wake(waiter, timedOut())
  }

  const arm = (waiter: Waiter): Effect.Effect<void> =>
    Effect.clockWith((clock) => {
      if (Number.isNaN(waiter.deadline)) waiter.deadline = clock.unsafeCurrentTimeMillis() + maxWaitMillis!
      return Effect.map(wait!.expiry.add(waiter.deadline, expire(waiter)), (entry) => {
        // Promoted (or gone) while the entry was being added: the head watches its own deadline.
        if (waiters.head === waiter.node || !waiter.node!.linked) wait!.expiry.cancel(entry)
        else waiter.expiry = entry
      })
    })

  const core: Core = {
    enqueue: (waiter) => {
      const isHead = waiters.length === 0
      if (!isHead && maxWaitMillis === 0) {
        waiter.node = undefined
        return timedOut()
      }
      waiter.node = waiters.push(waiter)
      hooks.onWaiters(1)
      return isHead || maxWaitMillis === undefined ? Effect.void : arm(waiter)
    },
    turn: (waiter) => waiters.head === waiter.node ? loop(waiter) : parked,
    leave
  }

  const newWaiter = (tokens: number, ticket: Ticket | undefined): Waiter => ({
    tokens,
    core,
    node: undefined,
    resume: undefined,
    pending: undefined,
    deadline: ticket === undefined ? Number.NaN : ticket.deadline,
    expiry: undefined
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
      waiter.node = waiters.push(waiter)
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

  const take = (tokens: number, ticket?: Ticket | undefined): Effect.Effect<void, E> =>
    Effect.suspend(() => waiters.length === 0 ? takeAsHead(tokens, ticket) : wait_(tokens, ticket))

  const tryTake = (tokens: number): Effect.Effect<boolean, E> =>
    Effect.suspend(() => {
      if (waiters.length > 0) {
        hooks.onRejected()
        return Effect.succeed(false)
      }
      return Effect.map(attempt(tokens), (decision) => {
        if (decision.delayMillis <= 0) {
          hooks.onGranted(tokens, decision.remaining)
          return true
        }
        hooks.onRejected()
        return false
      })
    })

  return { take, tryTake, waiting: () => waiters.length }
}

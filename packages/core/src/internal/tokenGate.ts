import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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

/** @internal */
export interface Gate<E> {
  readonly take: (tokens: number) => Effect.Effect<void, E>
  readonly tryTake: (tokens: number) => Effect.Effect<boolean, E>
  readonly waiting: () => number
}

interface Waiter {
  // Set when the waiter reaches the head of the queue; `wake` resumes its fiber if it is already suspended.
  promoted: boolean
  wake: ((effect: Effect.Effect<void>) => void) | undefined
}

/**
 * A FIFO gate in front of a token store. Only the fiber at the head of the queue talks to the store and sleeps
 * until its tokens are due; the others wait on a latch that is opened when they reach the head. So a release
 * wakes exactly one waiter, an arrival never overtakes a waiter (fairness), and an interrupted waiter simply
 * leaves the list: it has reserved nothing, so there is nothing to give back.
 *
 * @internal
 */
export const make = <E>(
  attempt: (tokens: number) => Effect.Effect<Decision, E>,
  hooks: {
    readonly onWaiters: (delta: number) => void
    readonly onGranted: (tokens: number, remaining: number) => void
    readonly onRejected: () => void
  }
): Gate<E> => {
  const waiters = new LinkedList<Waiter>()

  const leave = (node: Node<Waiter>): void => {
    const wasHead = waiters.head === node
    if (waiters.remove(node)) hooks.onWaiters(-1)
    if (wasHead && waiters.head !== undefined) {
      const next = waiters.head.value
      next.promoted = true
      if (next.wake !== undefined) next.wake(Effect.void)
    }
  }

  const loop = (tokens: number): Effect.Effect<void, E> =>
    Effect.flatMap(attempt(tokens), (decision) => {
      if (decision.delayMillis <= 0) {
        hooks.onGranted(tokens, decision.remaining)
        return Effect.void
      }
      return Effect.zipRight(Effect.sleep(Duration.millis(decision.delayMillis)), loop(tokens))
    })

  // Suspends until the waiter is promoted (at once if it already was). No canceler: an interrupted waiter leaves
  // through `take`'s finalizer, like every other.
  const awaitTurn = (waiter: Waiter) =>
    Effect.async<void>((resume) => {
      if (waiter.promoted) return resume(Effect.void)
      waiter.wake = resume
    })

  const take = (tokens: number): Effect.Effect<void, E> =>
    Effect.suspend(() => {
      const isHead = waiters.length === 0
      const node = waiters.push({ promoted: isHead, wake: undefined })
      hooks.onWaiters(1)
      const turn = isHead ? loop(tokens) : Effect.zipRight(awaitTurn(node.value), loop(tokens))
      return Effect.ensuring(turn, Effect.sync(() => leave(node)))
    })

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

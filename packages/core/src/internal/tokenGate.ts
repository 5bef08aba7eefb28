import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
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
  readonly latch: Deferred.Deferred<void> | undefined
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
      Deferred.unsafeDone(waiters.head.value.latch!, Exit.void)
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

  const take = (tokens: number): Effect.Effect<void, E> =>
    Effect.suspend(() => {
      // The latch is created in the same synchronous step as the node, so a promotion can never be missed.
      const isHead = waiters.length === 0
      const node = waiters.push({ latch: isHead ? undefined : Deferred.unsafeMake<void>(FiberId.none) })
      hooks.onWaiters(1)
      const turn = isHead ? loop(tokens) : Effect.zipRight(Deferred.await(node.value.latch!), loop(tokens))
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

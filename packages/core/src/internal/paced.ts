import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"

/**
 * Runs `f` for every element, each started once `admit` (a token) lets it, in order: the driver forks one element
 * at a time and waits until it has its token, so elements waiting their turn are never fibers (100,000 of them cost
 * their iterator, nothing more); an element runs in its fiber from its token to its end. Fails fast: the first failure interrupts the driver and
 * every element still running.
 *
 * @internal
 */
export const forEach = <A, B, E, R, E2>(
  elements: Iterable<A>,
  admit: Effect.Effect<void, E2>,
  f: (a: A, index: number) => Effect.Effect<B, E, R>,
  discard: boolean
): Effect.Effect<Array<B> | void, E | E2, R> =>
  Effect.scoped(Effect.flatMap(FiberSet.make<unknown, E | E2>(), (running) => {
    const iterator = elements[Symbol.iterator]()
    const results: Array<B> = []
    let index = 0
    let more = true
    const start = (a: A, i: number): Effect.Effect<void, E, R> => {
      const effect = f(a, i)
      return discard ? Effect.asVoid(effect) : Effect.map(effect, (b) => {
        results[i] = b
      })
    }
    const driver = Effect.zipRight(
      Effect.whileLoop({
        while: () => more,
        body: () =>
          Effect.suspend(() => {
            const next = iterator.next()
            if (next.done === true) {
              more = false
              return Effect.void
            }
            const i = index++
            // The element's own fiber takes its token and starts at once: a start handed to another fiber after
            // the token would begin whenever the scheduler gets to it, and late starts bunch up. The driver forks
            // the next one when this one has its token, so one element at a time waits in the bucket.
            const admitted = Deferred.unsafeMake<void>(FiberId.none)
            const element = Effect.zipRight(
              Effect.zipRight(admit, Deferred.succeed(admitted, undefined)),
              start(next.value, i)
            )
            return Effect.zipRight(FiberSet.run(running, element), Deferred.await(admitted))
          }),
        step: () => {}
      }),
      FiberSet.awaitEmpty(running)
    )
    return Effect.as(Effect.raceFirst(driver, FiberSet.join(running)), discard ? undefined : results)
  }))

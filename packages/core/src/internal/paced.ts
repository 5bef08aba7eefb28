import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"

/**
 * Runs `f` for every element, each started once `admit` (a token) lets it: one fiber, the driver, waits for the
 * starts, so elements waiting their turn are never fibers (100,000 of them cost their iterator, nothing more); a
 * started element runs in a fiber of its own until it ends. Fails fast: the first failure interrupts the driver and
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
  Effect.scoped(Effect.flatMap(FiberSet.make<unknown, E>(), (running) => {
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
            return Effect.zipRight(admit, FiberSet.run(running, start(next.value, i)))
          }),
        step: () => {}
      }),
      FiberSet.awaitEmpty(running)
    )
    return Effect.as(Effect.raceFirst(driver, FiberSet.join(running)), discard ? undefined : results)
  }))

/**
 * Waiting for a condition instead of sleeping: live tests on a busy machine cannot know how long a thing takes, only
 * what it looks like once done, so they poll for that with a generous deadline and fail naming what never happened.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * How long `until` polls and how often.
 *
 * @example
 * ```ts
 * import * as Wait from "@spindle/testkit/Wait"
 * import * as Effect from "effect/Effect"
 *
 * // Poll every 50 ms for up to a minute (a bound for a stuck test, not a timing assertion).
 * const patient: Wait.Options = { timeout: "1 minute", interval: "50 millis" }
 *
 * const ready = Wait.until("the flag", Effect.succeed(true), patient)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default 20 seconds: a bound for a stuck test, not a timing assertion. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Default 10 milliseconds. */
  readonly interval?: Duration.DurationInput | undefined
}

/**
 * Runs `check` until it yields a value other than `undefined` or `false`, and returns that value; dies with a message
 * naming `what` if the timeout passes first. Uses the live clock, so it belongs in `it.live` / `it.scopedLive` tests.
 *
 * @example
 * ```ts
 * import * as Wait from "@spindle/testkit/Wait"
 * import * as Effect from "effect/Effect"
 * import * as Ref from "effect/Ref"
 *
 * const program = Effect.gen(function*() {
 *   const processed = yield* Ref.make(0)
 *   const work = Effect.zipRight(Effect.sleep("5 millis"), Ref.update(processed, (n) => n + 1))
 *   yield* Effect.fork(Effect.forEach([1, 2, 3], () => work))
 *   // Returns the first value that is neither undefined nor false; dies naming "three items" after the timeout.
 *   return yield* Wait.until("three items", Effect.map(Ref.get(processed), (n) => n === 3 && n))
 * })
 *
 * Effect.runPromise(program).then(console.log) // 3
 * ```
 *
 * @since 0.1.0
 * @category waiting
 */
export const until = <A, E, R>(
  what: string,
  check: Effect.Effect<A | undefined | false, E, R>,
  options: Options = {}
): Effect.Effect<Exclude<A, undefined | false>, E, R> =>
  Effect.gen(function*() {
    const timeoutMillis = Duration.toMillis(options.timeout ?? "20 seconds")
    const interval = options.interval ?? "10 millis"
    const deadline = performance.now() + timeoutMillis
    while (true) {
      const value = yield* check
      if (value !== undefined && value !== false) return value as Exclude<A, undefined | false>
      if (performance.now() > deadline) {
        return yield* Effect.dieMessage(`timed out after ${timeoutMillis} ms waiting for ${what}`)
      }
      yield* Effect.sleep(interval)
    }
  })

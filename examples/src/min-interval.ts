// Seed pattern: "Rate Limiting with Semaphores" — a minimum delay between requests, optionally with a concurrency cap.
import { Limiter, TokenBucket } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { pathToFileURL } from "node:url"

/**
 * At most one start every `interval`. A token bucket that holds a single token is exactly that: the first call
 * after an idle period goes at once, every later one waits until `interval` has passed since the previous start.
 * Idle time never banks extra calls (the bucket is full at one), and waiters are served in arrival order.
 *
 * Unlike "sleep until `interval` after the last start", the schedule is computed from a fixed origin, so it does
 * not drift by the time spent deciding, and an interrupted waiter gives its slot to the next one in line.
 */
export const minInterval = (interval: Duration.DurationInput): Effect.Effect<TokenBucket.TokenBucket> =>
  TokenBucket.make({ name: "min-interval", limit: 1, interval, burst: 1 })

/**
 * Runs `calls` effects concurrently, each spaced by `interval` from the previous, and returns when each started,
 * in milliseconds since the first: `[0, interval, 2 * interval, ...]`.
 */
export const spacedStarts = (
  calls: number,
  interval: Duration.DurationInput
): Effect.Effect<Array<number>> =>
  Effect.gen(function*() {
    const gate = yield* minInterval(interval)
    const origin = yield* Clock.currentTimeMillis
    const startedAt = Effect.map(Clock.currentTimeMillis, (now) => now - origin)
    return yield* Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      () => gate.withTokens()(startedAt),
      { concurrency: "unbounded" }
    )
  })

/**
 * The seed's combined limiter: at most `concurrency` calls in flight AND at most one start every `interval`.
 * `Limiter` takes a concurrency permit first, then the token, and starts the call right after, so the spacing holds
 * for what the upstream sees, and a slow call holds a slot, not the rate.
 */
export const politeClient = (options: {
  readonly concurrency: number
  readonly interval: Duration.DurationInput
}): Effect.Effect<Limiter.Limiter<never>> =>
  Limiter.make({
    name: "polite-client",
    concurrency: options.concurrency,
    rate: { limit: 1, interval: options.interval, burst: 1 }
  })

/**
 * Runs `calls` effects that each take `callDuration`, through a `politeClient`, and returns when each started (in
 * milliseconds since the first), in call order.
 */
export const politeStarts = (options: {
  readonly calls: number
  readonly concurrency: number
  readonly interval: Duration.DurationInput
  readonly callDuration: Duration.DurationInput
}): Effect.Effect<Array<number>> =>
  Effect.gen(function*() {
    const limiter = yield* politeClient(options)
    const origin = yield* Clock.currentTimeMillis
    const call = Effect.map(Clock.currentTimeMillis, (now) => now - origin).pipe(
      Effect.zipLeft(Effect.sleep(options.callDuration))
    )
    return yield* Effect.forEach(
      Array.from({ length: options.calls }, (_, i) => i),
      () => limiter.run(call),
      { concurrency: "unbounded" }
    )
  })

/**
 * The runnable demo, on the real clock.
 */
export const main = Effect.gen(function*() {
  const spaced = yield* spacedStarts(6, "150 millis")
  yield* Console.log(`6 concurrent calls, at most one every 150 ms, started at (ms): ${spaced.join(", ")}`)
  const polite = yield* politeStarts({ calls: 8, concurrency: 3, interval: "100 millis", callDuration: "500 millis" })
  yield* Console.log(
    `8 calls of 500 ms, at most 3 in flight and one start every 100 ms, started at (ms): ${polite.join(", ")}`
  )
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

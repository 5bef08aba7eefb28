// Seed pattern: "Rate Limiting" — token bucket rate limiting (a steady rate that allows short bursts).
import { TokenBucket } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { pathToFileURL } from "node:url"

/**
 * "10 requests per second, bursts of 5": after an idle period five calls go at once, then one every 100 ms. The
 * bucket refills continuously up to `burst` and never beyond, waiters are served in arrival order, and only the
 * waiter at the head of the queue sleeps.
 */
export const apiBucket: Effect.Effect<TokenBucket.TokenBucket> = TokenBucket.make({
  name: "api",
  limit: 10,
  interval: "1 second",
  burst: 5
})

/**
 * Runs `calls` effects concurrently through `bucket` and returns when each started, in milliseconds since this
 * effect began, in call order.
 */
export const startTimes = (bucket: TokenBucket.TokenBucket, calls: number): Effect.Effect<Array<number>> =>
  Effect.gen(function*() {
    const origin = yield* Clock.currentTimeMillis
    const startedAt = Effect.map(Clock.currentTimeMillis, (now) => now - origin)
    return yield* Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      () => bucket.withTokens()(startedAt),
      { concurrency: "unbounded" }
    )
  })

/**
 * The runnable demo, on the real clock: 12 calls, then a pause that refills the bucket, then 7 more.
 */
export const main = Effect.gen(function*() {
  const bucket = yield* apiBucket
  yield* Console.log(`bucket "${bucket.name}": ${bucket.limit} per second, bursts of ${bucket.burst}`)
  const first = yield* startTimes(bucket, 12)
  yield* Console.log(`12 calls started at (ms): ${first.join(", ")}`)
  yield* Effect.sleep("600 millis")
  yield* Console.log(`after 600 ms idle, tokens available: ${yield* bucket.available}`)
  const second = yield* startTimes(bucket, 7)
  yield* Console.log(`7 more calls started at (ms): ${second.join(", ")}`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

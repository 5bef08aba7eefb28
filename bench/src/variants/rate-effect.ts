/**
 * Rate accuracy of Spindle's `TokenBucket` and of Effect's `RateLimiter`: `waiters` fibers queued at once, each
 * recording when it is let through; the window is `duration` ms of granting once all are queued (see
 * `makeRecorder`).
 *
 *   --variant=spindle           `TokenBucket.make({ limit: rate, interval: "1 second", burst })`, `bucket.take()`
 *   --variant=effect            `RateLimiter.make({ limit: burst, interval: burst * 1000 / rate ms, algorithm:
 *                               "token-bucket" })`: Effect's bucket holds `limit` tokens, so this is the
 *                               configuration with capacity `burst` and one token every 1000 / rate ms (5 ms)
 *   --variant=effect-1s         `RateLimiter.make({ limit: rate, interval: "1 second", algorithm: "token-bucket" })`:
 *                               the same rate, written the obvious way, with a capacity of `rate` tokens
 */
import { TokenBucket } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as RateLimiter from "effect/RateLimiter"
import * as Scope from "effect/Scope"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"
import { analyse, makeRecorder } from "../lib/rate.js"

const variant = choiceArg("variant", ["spindle", "effect", "effect-1s"])
const waiters = numberArg("waiters", 2_000)
const durationMillis = numberArg("duration", 10_000)
const rate = numberArg("rate", 200)
const burst = numberArg("burst", 10)

type Limit = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const limiter: Effect.Effect<Limit> = variant === "spindle"
  ? Effect.map(TokenBucket.make({ limit: rate, interval: "1 second", burst }), (bucket) => bucket.withTokens(1))
  // The scope is never closed: the limiter's refill fiber must live as long as the process.
  : Effect.flatMap(Scope.make(), (scope) =>
    Scope.extend(
      RateLimiter.make(
        variant === "effect"
          ? { limit: burst, interval: `${(burst * 1000) / rate} millis`, algorithm: "token-bucket" }
          : { limit: rate, interval: "1 second", algorithm: "token-bucket" }
      ),
      scope
    ))

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i
}

runVariant(async () => {
  const recorder = makeRecorder(waiters, durationMillis)
  const start = Effect.sync(recorder.record)
  // The waiter counts itself queued in the same synchronous step in which it enters the limiter's queue.
  const waiter = (limit: Limit) => Effect.zipRight(Effect.sync(recorder.queued), limit(start))
  await Effect.runPromise(
    Effect.flatMap(
      limiter,
      (limit) => Effect.forEach(range(waiters), () => Effect.forkDaemon(waiter(limit)), { discard: true })
    )
  )
  await recorder.done
  return {
    waiters,
    ...analyse(recorder.times(), recorder.origin, recorder.queuedAt(), {
      ratePerSecond: rate,
      burst,
      toleranceMillis: 1
    })
  }
})

/**
 * Rate accuracy of Spindle's `TokenBucket` and of Effect's `RateLimiter`: `waiters` fibers queued at once, each
 * recording when it is let through; the window is `duration` ms of granting once all are queued (see
 * `makeRecorder`).
 *
 *   --variant=spindle           `TokenBucket.make({ limit: rate, interval: "1 second", burst })`, `bucket.take()`
 *                               in one fiber per waiter
 *   --variant=spindle-foreach   the same bucket, every item handed to `bucket.forEach(items, start, { discard: true })`
 *                               at once: no fiber per waiting item
 *   --variant=spindle-pace      the same bucket, the items a `Stream` paced by `bucket.pace`
 *   --variant=spindle-limiter   `Limiter.make({ concurrency: 100, rate: { limit: rate, interval: "1 second", burst } })`,
 *                               every item handed to `limiter.forEach(items, start, { discard: true })` at once
 *   --variant=effect            `RateLimiter.make({ limit: burst, interval: burst * 1000 / rate ms, algorithm:
 *                               "token-bucket" })`: Effect's bucket holds `limit` tokens, so this is the
 *                               configuration with capacity `burst` and one token every 1000 / rate ms (5 ms)
 *   --variant=effect-1s         `RateLimiter.make({ limit: rate, interval: "1 second", algorithm: "token-bucket" })`:
 *                               the same rate, written the obvious way, with a capacity of `rate` tokens
 */
import { Limiter, TokenBucket } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as RateLimiter from "effect/RateLimiter"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as os from "node:os"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"
import { analyse, makeRecorder } from "../lib/rate.js"

const variant = choiceArg("variant", [
  "spindle",
  "spindle-foreach",
  "spindle-pace",
  "spindle-limiter",
  "effect",
  "effect-1s"
])
const waiters = numberArg("waiters", 2_000)
const durationMillis = numberArg("duration", 10_000)
const rate = numberArg("rate", 200)
const burst = numberArg("burst", 10)

type Limit = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const limiter: Effect.Effect<Limit> = variant.startsWith("spindle")
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

// The whole input goes to one call: every item is queued when the call is made.
const wholeInput = (start: Effect.Effect<void>): Effect.Effect<void> | undefined => {
  const items = range(waiters)
  switch (variant) {
    case "spindle-foreach":
      return Effect.flatMap(
        TokenBucket.make({ limit: rate, interval: "1 second", burst }),
        (bucket) => bucket.forEach(items, () => start, { discard: true })
      )
    case "spindle-pace":
      return Effect.flatMap(
        TokenBucket.make({ limit: rate, interval: "1 second", burst }),
        (bucket) => Stream.runForEach(bucket.pace(Stream.fromIterable(items)), () => start)
      )
    case "spindle-limiter":
      return Effect.flatMap(
        Limiter.make({ concurrency: 100, rate: { limit: rate, interval: "1 second", burst } }),
        (limiter) => limiter.forEach(items, () => start, { discard: true })
      )
    default:
      return undefined
  }
}

runVariant(async () => {
  const recorder = makeRecorder(waiters, durationMillis)
  const start = Effect.sync(recorder.record)
  const whole = wholeInput(start)
  if (whole !== undefined) {
    for (let i = 0; i < waiters; i++) recorder.queued()
    // The rest of the input is still waiting when the window closes; the process ends with it.
    Effect.runFork(whole)
    await recorder.done
    return {
      waiters,
      ...analyse(recorder.times(), recorder.origin, recorder.queuedAt(), {
        ratePerSecond: rate,
        burst,
        toleranceMillis: 1
      }),
      clockDriftPpm: recorder.clockDriftPpm(),
      // How busy the machine was (other work shares it): the 1-minute load average when the window closed.
      loadAverage: os.loadavg()[0]
    }
  }
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
    }),
    clockDriftPpm: recorder.clockDriftPpm(),
    // How busy the machine was (other work shares it): the 1-minute load average when the window closed.
    loadAverage: os.loadavg()[0]
  }
})

// Seed pattern: follows "Retry with Exponential Backoff" — when a dependency is down, stop calling it for a while.
import { CircuitBreaker, RetryPolicy } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { pathToFileURL } from "node:url"

/**
 * The dependency answered with an error status.
 */
export class DependencyError extends Data.TaggedError("DependencyError")<{ readonly status: number }> {
  override get message(): string {
    return `inventory service answered ${this.status}`
  }
}

/**
 * A simulated dependency (an inventory service) that can have an outage, and counts the calls that reached it:
 * what a breaker is there to keep low while it is down.
 */
export interface Dependency {
  readonly call: (sku: string) => Effect.Effect<string, DependencyError>
  /** From now on, every call fails with a 503 for `duration`. */
  readonly outage: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** Calls that reached the dependency, and how many of them failed. */
  readonly received: Effect.Effect<{ readonly total: number; readonly failed: number }>
}

/**
 * Creates a healthy dependency. Unknown SKUs (`"missing-…"`) get a 404 whatever its health: an answer that
 * shows the service is up.
 */
export const makeDependency: Effect.Effect<Dependency> = Effect.sync(() => {
  let downUntil = Number.NEGATIVE_INFINITY
  let total = 0
  let failed = 0
  return {
    call: (sku) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        total++
        if (now < downUntil) {
          failed++
          return Effect.fail(new DependencyError({ status: 503 }))
        }
        if (sku.startsWith("missing-")) return Effect.fail(new DependencyError({ status: 404 }))
        return Effect.succeed(`${sku}: 12 in stock`)
      }),
    outage: (duration) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        downUntil = now + Duration.toMillis(duration)
      }),
    received: Effect.sync(() => ({ total, failed }))
  }
})

/**
 * The breaker of this example: it opens after 3 server errors in a row, refuses calls for 5 seconds, then lets
 * one probe through; a failed probe opens it again for twice as long (10 s, 20 s, ... up to a minute). A 404 is
 * not a failure: the service answered.
 */
export const makeBreaker: Effect.Effect<CircuitBreaker.CircuitBreaker<DependencyError>> = CircuitBreaker.make<
  DependencyError
>({
  name: "inventory",
  policy: CircuitBreaker.consecutiveFailures(3),
  cooldown: "5 seconds",
  cooldownFactor: 2,
  cooldownMax: "1 minute",
  isFailure: (error) => error.status >= 500
})

/**
 * One call through the breaker: the dependency's answer, or at once a `CircuitOpen` (with `retryAfter`, the
 * time until the next probe) without calling it.
 */
export const checkStock = (
  breaker: CircuitBreaker.CircuitBreaker<DependencyError>,
  dependency: Dependency,
  sku: string
): Effect.Effect<string, DependencyError | CircuitBreaker.CircuitOpen> => breaker.run(dependency.call(sku))

/**
 * The retry policy callers use: 100 ms, 200 ms, 400 ms, ... up to 10 attempts, for server errors and for an open
 * circuit. `CircuitOpen` implements `RetryAfter`, so while the circuit is open a retry waits for the next probe
 * instead of knocking every few hundred milliseconds.
 */
export const inventoryRetry = RetryPolicy.make<DependencyError | CircuitBreaker.CircuitOpen>({
  name: "inventory",
  base: "100 millis",
  cap: "5 seconds",
  jitter: "none",
  maxAttempts: 10,
  retryable: (error) => error._tag === "CircuitOpen" || error.status >= 500
})

/**
 * Retries around the breaker, the way the two are meant to be combined: the retry rides out a short blip; when
 * the dependency is really down the breaker trips, and every caller sharing it stops calling until the next probe.
 */
export const checkStockWithRetry = (
  breaker: CircuitBreaker.CircuitBreaker<DependencyError>,
  dependency: Dependency,
  sku: string
): Effect.Effect<string, DependencyError | CircuitBreaker.CircuitOpen> =>
  inventoryRetry(checkStock(breaker, dependency, sku))

/**
 * Follows `breaker.changes` in the background (for as long as the scope lasts) and returns an effect reading the
 * states seen so far: the current state first, then every transition. The follower is another fiber: a
 * transition is seen once it has had a chance to run, which reading the states gives it.
 */
export const recordStates = (
  breaker: CircuitBreaker.CircuitBreaker<DependencyError>
): Effect.Effect<Effect.Effect<Array<CircuitBreaker.State["_tag"]>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const seen: Array<CircuitBreaker.State["_tag"]> = []
    const subscribed = yield* Deferred.make<void>()
    yield* breaker.changes.pipe(
      Stream.runForEach((state) =>
        Effect.zipRight(Effect.sync(() => seen.push(state._tag)), Deferred.succeed(subscribed, undefined))
      ),
      Effect.forkScoped
    )
    // The stream starts with the current state: once it has arrived, no later transition can be missed.
    yield* Deferred.await(subscribed)
    return Effect.zipRight(Effect.yieldNow(), Effect.sync(() => seen.slice()))
  })

/**
 * The runnable demo, on the real clock with a short cooldown: a 1.5 second outage seen by one caller that
 * retries through the breaker.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const dependency = yield* makeDependency
  const breaker = yield* CircuitBreaker.make<DependencyError>({
    name: "inventory-demo",
    policy: CircuitBreaker.consecutiveFailures(3),
    cooldown: "500 millis",
    cooldownFactor: 2,
    isFailure: (error) => error.status >= 500
  })
  const states = yield* recordStates(breaker)
  yield* dependency.outage("1500 millis")
  const [elapsed, answer] = yield* Effect.timed(checkStockWithRetry(breaker, dependency, "sku-42"))
  const received = yield* dependency.received
  yield* Console.log(`after a 1.5 s outage: "${answer}" in ${Math.round(Duration.toMillis(elapsed))} ms`)
  yield* Console.log(`  calls that reached the dependency: ${received.total} (${received.failed} failed)`)
  yield* Console.log(`  breaker states: ${(yield* states).join(" → ")}`)
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

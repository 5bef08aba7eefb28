// Seed pattern: follows "Retry with Exponential Backoff" and the circuit breaker — one policy for every call to a dependency.
import { CircuitBreaker, Policy } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { pathToFileURL } from "node:url"

/**
 * The pricing service answered with an error status.
 */
export class QuoteError extends Data.TaggedError("QuoteError")<{ readonly status: number }> {
  override get message(): string {
    return `pricing service answered ${this.status}`
  }
}

/**
 * One call to the pricing service, as the service saw it.
 */
export interface CallRecord {
  readonly call: number
  /** Clock time (ms) the call arrived and ended. */
  readonly startedAt: number
  readonly endedAt: number
  readonly outcome: "answered" | "failed" | "interrupted"
}

/**
 * A simulated pricing service with a slow tail: call `n` (from 1) takes `slowMillis` when `n % slowEvery === 1`,
 * `fastMillis` otherwise. During an outage every call fails with a 503 after `fastMillis`. It records every call,
 * including those a hedge overtook and interrupted.
 */
export interface PricingService {
  readonly quote: (sku: string) => Effect.Effect<number, QuoteError>
  /** From now on, every call fails with a 503 for `duration`. */
  readonly outage: (duration: Duration.DurationInput) => Effect.Effect<void>
  /** Every call that has ended, in the order it ended. */
  readonly records: Effect.Effect<ReadonlyArray<CallRecord>>
}

/**
 * Creates the service. `slowEvery: 0` makes no call slow.
 */
export const makePricing = (options: {
  readonly slowEvery: number
  readonly slowMillis: number
  readonly fastMillis: number
}): Effect.Effect<PricingService> =>
  Effect.sync(() => {
    let calls = 0
    let downUntil = Number.NEGATIVE_INFINITY
    const records: Array<CallRecord> = []
    const quote = (sku: string): Effect.Effect<number, QuoteError> =>
      Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
        const call = ++calls
        const down = startedAt < downUntil
        const slow = options.slowEvery > 0 && call % options.slowEvery === 1
        const answer: Effect.Effect<number, QuoteError> = Effect.zipRight(
          Effect.sleep(Duration.millis(slow && !down ? options.slowMillis : options.fastMillis)),
          down ? Effect.fail(new QuoteError({ status: 503 })) : Effect.succeed(100 + sku.length)
        )
        return Effect.onExit(answer, (exit) =>
          Effect.map(Clock.currentTimeMillis, (endedAt) => {
            const outcome = Exit.isSuccess(exit) ? "answered" : Exit.isInterrupted(exit) ? "interrupted" : "failed"
            records.push({ call, startedAt, endedAt, outcome })
          }))
      })
    return {
      quote,
      outage: (duration) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          downUntil = now + Duration.toMillis(duration)
        }),
      records: Effect.sync(() => records.slice())
    }
  })

/**
 * Every call to the pricing service goes through this policy, innermost stage first:
 *
 * - each attempt gets 1 second;
 * - 4 failures in a row (a 5xx or a timeout; a 404 is an answer) open the breaker for 10 seconds;
 * - an attempt with no answer after 100 ms is hedged: a second one starts, the first answer wins and the other is
 *   interrupted;
 * - a failed attempt is retried after 100 ms, then 200 ms (3 attempts in all); an open breaker's `retryAfter` is
 *   waited for, unless it ends after the deadline;
 * - 8 calls at once, 16 waiting, the next is shed;
 * - 2 seconds for the whole call, queueing and retries included;
 * - an open breaker or a shed call answers `null` at once: the page shows the cached price.
 */
export const pricingPolicy = Policy.define<QuoteError>("pricing").pipe(
  Policy.attemptTimeout("1 second"),
  Policy.breaker({
    policy: CircuitBreaker.consecutiveFailures(4),
    cooldown: "10 seconds",
    isFailure: (error) => error._tag === "TimeoutError" || error.status >= 500
  }),
  Policy.hedge({ delay: "100 millis", maxAttempts: 2, shouldHedge: () => false }),
  Policy.retry({
    base: "100 millis",
    jitter: "none",
    maxAttempts: 3,
    retryable: (error) => error._tag !== "QuoteError" || error.status >= 500
  }),
  Policy.bulkhead({ maxConcurrent: 8, maxQueued: 16 }),
  Policy.deadline("2 seconds"),
  Policy.fallback({ on: ["CircuitOpen", "BulkheadRejected"], value: null })
)

/**
 * The policy as a value with its state (the breaker, the bulkhead), made once and shared by every caller.
 */
export type PricingPolicy = Policy.Of<typeof pricingPolicy>

/**
 * One price through the policy: the price, `null` (serve the cached one), or a typed failure the fallback does not
 * cover: `QuoteError | TimeoutError`.
 */
export const priceOf = (policy: PricingPolicy, pricing: PricingService, sku: string) => policy.run(pricing.quote(sku))

/** The largest of the latencies (ms) of `count` calls made one after another. */
const slowest = <E>(count: number, call: Effect.Effect<unknown, E>): Effect.Effect<number, E> =>
  Effect.gen(function*() {
    let max = 0
    for (let i = 0; i < count; i++) {
      const [elapsed] = yield* Effect.timed(call)
      max = Math.max(max, Duration.toMillis(elapsed))
    }
    return max
  })

/**
 * The runnable demo, on the real clock: the slow tail with and without the policy, then an outage seen by three
 * callers, and what the policy decided meanwhile.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const options = { slowEvery: 5, slowMillis: 800, fastMillis: 20 }
  const plain = yield* makePricing(options)
  const withoutPolicy = yield* slowest(10, plain.quote("sku-1"))
  const pricing = yield* makePricing(options)
  const policy = yield* Policy.make(pricingPolicy)
  const withPolicy = yield* slowest(10, priceOf(policy, pricing, "sku-1"))
  yield* Console.log(`slowest of 10 calls, every fifth held 800 ms: ${Math.round(withoutPolicy)} ms alone,`)
  yield* Console.log(`  ${Math.round(withPolicy)} ms through the policy (hedged after 100 ms)`)

  const events = yield* policy.subscribe
  yield* pricing.outage("1 minute")
  for (const caller of [1, 2, 3]) {
    const [elapsed, result] = yield* Effect.timed(Effect.either(priceOf(policy, pricing, "sku-1")))
    const shown = result._tag === "Right" ? String(result.right) : result.left.message
    yield* Console.log(`caller ${caller} during an outage: ${shown} after ${Math.round(Duration.toMillis(elapsed))} ms`)
  }
  const decided = yield* events.takeAll
  yield* Console.log(`the policy decided: ${Array.from(decided, (event) => event._tag).join(", ")}`)
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

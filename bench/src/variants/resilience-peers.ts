/**
 * Overhead per call of resilience wrappers around a successful async no-op (`async () => 1`) in the promise
 * libraries: `n` calls awaited one after another, after `warmup` calls of the same kind.
 *
 *   --variant=bare                 `await noop()`, the baseline
 *   --variant=cockatiel            `wrap(retry, breaker).execute(noop)`: `retry(handleAll, { maxAttempts: 3,
 *                                  backoff: new ExponentialBackoff() })`, `circuitBreaker(handleAll,
 *                                  { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })`
 *   --variant=cockatiel-timeout    `wrap(retry, breaker, timeout(1000, TimeoutStrategy.Cooperative)).execute(noop)`
 *   --variant=p-retry              `pRetry(noop, { retries: 3 })`
 */
import {
  circuitBreaker,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
  timeout,
  TimeoutStrategy,
  wrap
} from "cockatiel"
import pRetry from "p-retry"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["bare", "cockatiel", "cockatiel-timeout", "p-retry"])
const n = numberArg("n", 200_000)
const warmup = numberArg("warmup", 20_000)

const noop = async (): Promise<number> => 1

// Policies are built once, as an application builds them once and calls through them many times.
const call = ((): () => Promise<number> => {
  const retryPolicy = retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })
  const breaker = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
  switch (variant) {
    case "bare":
      return noop
    case "cockatiel": {
      const policy = wrap(retryPolicy, breaker)
      return () => policy.execute(noop)
    }
    case "cockatiel-timeout": {
      const policy = wrap(retryPolicy, breaker, timeout(1000, TimeoutStrategy.Cooperative))
      return () => policy.execute(noop)
    }
    case "p-retry":
      return () => pRetry(noop, { retries: 3 })
  }
})()

const calls = async (count: number): Promise<number> => {
  let sum = 0
  for (let i = 0; i < count; i++) sum += await call()
  return sum
}

runVariant(async () => {
  await calls(warmup)
  const start = performance.now()
  const sum = await calls(n)
  const millis = performance.now() - start
  if (sum !== n) throw new Error(`${sum} of ${n} calls returned 1`)
  return { n, warmup, millis, nsPerCall: (millis * 1e6) / n }
})

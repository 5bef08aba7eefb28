/**
 * Overhead per call of `@spindle/promise` around a successful async no-op (`async () => 1`), the same stack as the
 * cockatiel rows: `n` calls awaited one after another, after `warmup` calls of the same kind.
 *
 *   --variant=promise          `Policy.make({ breaker, retry }).execute(noop)`: `consecutiveFailures(5)`,
 *                              `{ maxAttempts: 3 }` (the fast path: no fiber while the breaker is closed)
 *   --variant=promise-timeout  the same with `attemptTimeout: "1 second"` (an entry in the core's deadline timer)
 */
import { CircuitBreaker } from "@spindle/core"
import { Policy } from "@spindle/promise"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["promise", "promise-timeout"])
const n = numberArg("n", 200_000)
const warmup = numberArg("warmup", 20_000)

const noop = async (): Promise<number> => 1

const policy = Policy.make({
  breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "10 seconds" },
  retry: { maxAttempts: 3 },
  ...(variant === "promise-timeout" ? { attemptTimeout: "1 second" } : {})
})

const calls = async (count: number): Promise<number> => {
  let sum = 0
  for (let i = 0; i < count; i++) sum += await policy.execute(noop)
  return sum
}

runVariant(async () => {
  await calls(warmup)
  const start = performance.now()
  const sum = await calls(n)
  const millis = performance.now() - start
  if (sum !== n) throw new Error(`${sum} of ${n} calls returned 1`)
  await policy.dispose()
  return { n, warmup, millis, nsPerCall: (millis * 1e6) / n }
})

// @spindle/promise from plain JavaScript (no TypeScript, no Effect): the consumer test runs this with node as it is.
import { CircuitBreaker } from "@spindle/core"
import { Errors, Policy } from "@spindle/promise"
import assert from "node:assert/strict"

const policy = Policy.make({
  attemptTimeout: "50 millis",
  breaker: { policy: CircuitBreaker.consecutiveFailures(3), cooldown: "1 minute" },
  retry: { maxAttempts: 3, base: 1 }
})

let calls = 0
assert.equal(await policy.execute(async () => (++calls < 3 ? Promise.reject(new Error("503")) : "ok")), "ok")
assert.equal(calls, 3)

const hang = (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)))
const error = await policy.execute(hang).catch((e) => e)
assert.ok(error instanceof Errors.TimeoutError, String(error))

await policy.dispose()
console.log("ok   @spindle/promise from plain JavaScript")

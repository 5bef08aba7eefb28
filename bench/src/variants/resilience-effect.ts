/**
 * Overhead per call of resilience wrappers around a successful async no-op, in Effect: `n` calls made one after
 * another in one fiber, after `warmup` calls of the same kind.
 *
 *   --variant=bare               `Effect.promise(() => Promise.resolve(1))`, the baseline
 *   --variant=spindle            `RetryPolicy.make({ maxAttempts: 3 })(breaker.run(noop))`, breaker
 *                                `CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5) })`
 *   --variant=spindle-timeout    the same around `Deadline.attempt(noop, "1 second")`
 *   --variant=effect-timeout     `noop.pipe(Effect.timeout("1 second"), Effect.retry(exponential("100 millis") ▸
 *                                jittered ▸ compose(recurs(3))))` (Effect has no circuit breaker)
 *   --variant=spindle-timeout-promise  the same around `Deadline.attemptPromise(() => Promise.resolve(1), "1 second")`
 *                                (the cooperative form: the promise is called without an Effect.promise around it)
 *   --variant=deadline           `Deadline.attempt(noop, "1 second")` alone (where the timeout's cost comes from)
 *   --variant=deadline-promise   `Deadline.attemptPromise(() => Promise.resolve(1), "1 second")` alone
 *   --variant=deadline-promise-signal  `Deadline.attemptPromise((signal) => …, "1 second")` alone: the function
 *                                takes the signal, so an AbortController is made per call
 *   --variant=effect-timeout-only `Effect.timeout(noop, "1 second")` alone
 *   --variant=policy             `policy.run(noop)`, `Policy.make({ breaker: { policy: consecutiveFailures(5) },
 *                                retry: { maxAttempts: 3 } })`: the stages of `spindle`, composed by a policy
 *   --variant=policy-timeout     the same with `attemptTimeout: "1 second"`: the stages of `spindle-timeout`
 *   --variant=policy-paired      `policy-timeout` and `spindle-timeout` (by hand) in one process, in alternating
 *                                blocks of calls, so that both see the same machine: prints both and their ratio
 */
import { CircuitBreaker, Deadline, Policy, RetryPolicy } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", [
  "bare",
  "spindle",
  "spindle-timeout",
  "spindle-timeout-promise",
  "effect-timeout",
  "deadline",
  "deadline-promise",
  "deadline-promise-signal",
  "effect-timeout-only",
  "policy",
  "policy-timeout",
  "policy-paired"
])
const n = numberArg("n", 200_000)
const warmup = numberArg("warmup", 20_000)

const noop: Effect.Effect<number> = Effect.promise(() => Promise.resolve(1))
const noopPromise = Deadline.attemptPromise(() => Promise.resolve(1), "1 second")

// The stages of `spindle-timeout`, by hand.
const byHand: Effect.Effect<Effect.Effect<number, unknown>> = Effect.map(
  CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5) }),
  (breaker) => RetryPolicy.make({ maxAttempts: 3 })(breaker.run(Deadline.attempt(noop, "1 second")))
)

// The same stages, composed by a policy.
const composed = (timeout: boolean): Effect.Effect<Effect.Effect<number, unknown>> =>
  Effect.map(
    Policy.make({
      breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
      retry: { maxAttempts: 3 },
      ...(timeout ? { attemptTimeout: "1 second" } : {})
    }),
    (policy) => policy.run(noop)
  )

// The wrapped call is built once, as an application builds its policy once and calls through it many times.
const call: Effect.Effect<Effect.Effect<number, unknown>> = (() => {
  switch (variant) {
    case "policy":
      return composed(false)
    case "policy-timeout":
    case "policy-paired":
      return composed(true)
    case "bare":
      return Effect.succeed(noop)
    case "spindle":
    case "spindle-timeout":
    case "spindle-timeout-promise":
      return Effect.map(
        CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(5) }),
        (breaker) => {
          const retry = RetryPolicy.make({ maxAttempts: 3 })
          return retry(breaker.run(
            variant === "spindle"
              ? noop
              : variant === "spindle-timeout"
              ? Deadline.attempt(noop, "1 second")
              : noopPromise
          ))
        }
      )
    case "effect-timeout":
      return Effect.succeed(noop.pipe(
        Effect.timeout("1 second"),
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.jittered, Schedule.compose(Schedule.recurs(3))))
      ))
    case "deadline":
      return Effect.succeed(Deadline.attempt(noop, "1 second"))
    case "deadline-promise":
      return Effect.succeed(noopPromise)
    case "deadline-promise-signal":
      return Effect.succeed(Deadline.attemptPromise((signal) => Promise.resolve(signal.aborted ? 0 : 1), "1 second"))
    case "effect-timeout-only":
      return Effect.succeed(Effect.timeout(noop, "1 second"))
  }
})()

let sum = 0
const calls = (count: number, effect: Effect.Effect<number, unknown>): Effect.Effect<void, unknown> => {
  let i = 0
  return Effect.whileLoop({
    while: () => i < count,
    body: () => effect,
    step: (value) => {
      sum += value
      i++
    }
  })
}

// Blocks of calls, alternating between the two (and which goes first), so that both see the same machine.
const paired = async () => {
  const policy = await Effect.runPromise(call)
  const hand = await Effect.runPromise(byHand)
  await Effect.runPromise(calls(warmup, policy))
  await Effect.runPromise(calls(warmup, hand))
  const blocks = 20
  const perBlock = Math.max(1, Math.floor(n / blocks))
  let policyMillis = 0
  let handMillis = 0
  const time = async (effect: Effect.Effect<number, unknown>) => {
    const start = performance.now()
    await Effect.runPromise(calls(perBlock, effect))
    return performance.now() - start
  }
  sum = 0
  for (let block = 0; block < blocks; block++) {
    if (block % 2 === 0) {
      policyMillis += await time(policy)
      handMillis += await time(hand)
    } else {
      handMillis += await time(hand)
      policyMillis += await time(policy)
    }
  }
  const each = perBlock * blocks
  if (sum !== 2 * each) throw new Error(`${sum} of ${2 * each} calls returned 1`)
  const nsPerCall = (policyMillis * 1e6) / each
  const handNsPerCall = (handMillis * 1e6) / each
  return { n: each, warmup, millis: policyMillis, nsPerCall, handNsPerCall, ratio: nsPerCall / handNsPerCall }
}

runVariant(async () => {
  if (variant === "policy-paired") return paired()
  const effect = await Effect.runPromise(call)
  await Effect.runPromise(calls(warmup, effect))
  sum = 0
  const start = performance.now()
  await Effect.runPromise(calls(n, effect))
  const millis = performance.now() - start
  if (sum !== n) throw new Error(`${sum} of ${n} calls returned 1`)
  return { n, warmup, millis, nsPerCall: (millis * 1e6) / n }
})

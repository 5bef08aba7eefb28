import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, Deadline, WaitTimeout } from "@spindle/core"
import { Errors, Policy } from "@spindle/promise"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Wait from "@spindle/testkit/Wait"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"

// Real loopback HTTP with fetch. Time-based decisions (timeouts, cooldowns, backoffs) run on a TestClock, provided
// to the policy's runtime, and the tests move it once the upstream holds the request; nothing asserts on wall-clock
// durations, and waiting is for a condition (Wait.until, a bound for a stuck test).

class HttpError extends Error {
  override readonly name = "HttpError"
  constructor(readonly status: number) {
    super(`HTTP ${status}`)
  }
}

let scope: Scope.CloseableScope
let upstream: Upstream.Upstream

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  upstream = await Effect.runPromise(Scope.extend(Upstream.make(), scope))
})

afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

const get = async (path: string, signal: AbortSignal): Promise<string> => {
  const res = await fetch(upstream.url(path), { signal })
  const text = await res.text()
  if (!res.ok) throw new HttpError(res.status)
  return text
}

const until = <A>(what: string, check: () => A | undefined | false): Promise<A> =>
  Effect.runPromise(Wait.until(what, Effect.sync(check), { timeout: "30 seconds" })) as Promise<A>

/** The requests to `path` the upstream has seen. */
const seen = (path: string) => upstream.requests().filter((r) => r.path === path)

/** Moves the policy's clock 50 ms at a time until `check` holds (a timer may not be set yet when it is first moved). */
const advanceUntil = async (policy: Policy.Policy, what: string, check: () => boolean): Promise<void> => {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > 30_000) throw new Error(`timed out waiting for ${what}`)
    await adjust(policy, "50 millis")
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const adjust = (policy: Policy.Policy, duration: Parameters<typeof TestClock.adjust>[0]) =>
  Runtime.runPromise(policy.runtime, TestClock.adjust(duration))

describe("Policy.execute", () => {
  it("resolves with the value of a Promise or a plain return, and passes the call's own errors through", async () => {
    const policy = Policy.make({ retry: { maxAttempts: 1 } })
    try {
      await expect(policy.execute(async () => 42)).resolves.toBe(42)
      await expect(policy.execute(() => "sync")).resolves.toBe("sync")
      const thrown = new HttpError(404)
      await expect(policy.execute(() => Promise.reject(thrown))).rejects.toBe(thrown)
      await expect(policy.execute(() => {
        throw thrown
      })).rejects.toBe(thrown)
      expect(policy.inFlight()).toBe(0)
    } finally {
      await policy.dispose()
    }
  })

  it("an attempt timeout aborts the request's signal: the upstream sees the connection closed", async () => {
    const policy = Policy.make({ name: "slow", attemptTimeout: "2 seconds" }, { layer: TestContext.TestContext })
    try {
      const call = policy.execute((signal) => get("/timeout?hang=1", signal))
      const outcome = call.then(() => "resolved", (error) => error)
      await until("the upstream to hold the request", () => seen("/timeout").length === 1)
      await adjust(policy, "2 seconds")
      const error = await outcome
      expect(error).toBeInstanceOf(Errors.TimeoutError)
      expect(error).toBeInstanceOf(Errors.PolicyError)
      expect(error).toBeInstanceOf(Error)
      expect(error.name).toBe("TimeoutError")
      expect(error.limit).toBe("attempt")
      expect(error.timeoutMillis).toBe(2000)
      expect(error.cause).toBeInstanceOf(Deadline.TimeoutError)
      const record = await until("the upstream to see the client leave", () => {
        const r = seen("/timeout")[0]
        return r.outcome !== undefined && r
      })
      expect(record.outcome).toBe("client_closed")
    } finally {
      await policy.dispose()
    }
  })

  it("the caller's signal aborts the call, rejects with its reason, and frees the bulkhead place for the next", async () => {
    const policy = Policy.make({ bulkhead: { maxConcurrent: 1, maxQueued: 5 } })
    try {
      const caller = new AbortController()
      const first = policy.execute((signal) => get("/abort-first?hang=1", signal), { signal: caller.signal })
      const firstOutcome = first.then(() => "resolved", (error) => error)
      // Queued behind it: two calls, one of which gives up while it waits.
      const queuedCaller = new AbortController()
      const leaving = policy.execute((signal) => get("/abort-leaving", signal), { signal: queuedCaller.signal })
      const leavingOutcome = leaving.then(() => "resolved", (error) => error)
      const second = policy.execute((signal) => get("/abort-second", signal))
      await until("the upstream to hold the first request", () => seen("/abort-first").length === 1)
      expect(await Runtime.runPromise(policy.runtime, policy.bulkhead!.queued)).toBe(2)

      const leaveReason = new Error("no longer needed")
      queuedCaller.abort(leaveReason)
      expect(await leavingOutcome).toBe(leaveReason)
      expect(await Runtime.runPromise(policy.runtime, policy.bulkhead!.queued)).toBe(1)

      const reason = new Error("the user went away")
      caller.abort(reason)
      expect(await firstOutcome).toBe(reason)
      await expect(second).resolves.toHaveLength(64)
      await until("the upstream to see the first client leave", () => seen("/abort-first")[0].outcome)
      expect(seen("/abort-first")[0].outcome).toBe("client_closed")
      expect(seen("/abort-leaving")).toHaveLength(0)
      expect(policy.inFlight()).toBe(0)
    } finally {
      await policy.dispose()
    }
  })

  it("a signal aborted already runs nothing", async () => {
    const policy = Policy.make({ retry: { maxAttempts: 3 } })
    try {
      let calls = 0
      const reason = new Error("too late")
      await expect(policy.execute(() => ++calls, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
      expect(calls).toBe(0)
    } finally {
      await policy.dispose()
    }
  })

  it("retries a failing call with backoff, then succeeds", async () => {
    const policy = Policy.make(
      { retry: { maxAttempts: 4, base: "100 millis", retryable: (e) => e instanceof HttpError && e.status >= 500 } },
      { layer: TestContext.TestContext }
    )
    try {
      const call = policy.execute((signal) => get("/retry?fail=2&key=retry&status=503", signal))
      // The test clock stands still: no retry starts until it is moved past the backoff (full jitter, at most 100
      // then 200 ms), which happens only after the failed attempt's response has been read.
      await until("attempt 1 to fail", () => seen("/retry").filter((r) => r.outcome).length === 1)
      expect(seen("/retry")).toHaveLength(1)
      await advanceUntil(policy, "the third attempt", () => seen("/retry").length === 3)
      await expect(call).resolves.toHaveLength(64)
      expect(seen("/retry").map((r) => r.status)).toEqual([503, 503, 200])
    } finally {
      await policy.dispose()
    }
  })

  it("after the last attempt, rejects with that attempt's error, unchanged", async () => {
    const policy = Policy.make({ retry: { maxAttempts: 2, base: 1 } })
    try {
      const error = await policy.execute((signal) => get("/exhausted?status=502", signal)).catch((e) => e)
      expect(error).toBeInstanceOf(HttpError)
      expect(error.status).toBe(502)
      expect(seen("/exhausted")).toHaveLength(2)
    } finally {
      await policy.dispose()
    }
  })

  it("the breaker opens after consecutive failures and rejects with BrokenCircuitError until its cooldown ends", async () => {
    const policy = Policy.make({
      name: "ledger",
      breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "30 seconds" }
    }, { layer: TestContext.TestContext })
    try {
      expect(policy.circuitState()).toBe("closed")
      for (let i = 0; i < 2; i++) {
        await expect(policy.execute((signal) => get("/breaker?status=500", signal))).rejects.toBeInstanceOf(HttpError)
      }
      expect(policy.circuitState()).toBe("open")
      const error = await policy.execute((signal) => get("/breaker", signal)).catch((e) => e)
      expect(error).toBeInstanceOf(Errors.BrokenCircuitError)
      expect(error).toBeInstanceOf(Errors.PolicyError)
      expect(error.name).toBe("BrokenCircuitError")
      expect(error.circuit).toBe("ledger")
      expect(error.isolated).toBe(false)
      expect(error.retryAfterMillis).toBe(30_000)
      expect(error.cause).toBeInstanceOf(CircuitBreaker.CircuitOpen)
      expect(seen("/breaker")).toHaveLength(2)

      await adjust(policy, "30 seconds")
      await expect(policy.execute((signal) => get("/breaker", signal))).resolves.toHaveLength(64)
      expect(policy.circuitState()).toBe("closed")

      policy.isolate()
      expect(policy.circuitState()).toBe("isolated")
      const isolated = await policy.execute(() => "never").catch((e) => e)
      expect(isolated).toBeInstanceOf(Errors.BrokenCircuitError)
      expect(isolated.isolated).toBe(true)
      policy.reset()
      await expect(policy.execute(() => "runs")).resolves.toBe("runs")
    } finally {
      await policy.dispose()
    }
  })

  it("a full bulkhead rejects with BulkheadRejectedError, a wait past maxWait with WaitTimeoutError", async () => {
    const policy = Policy.make({ name: "reports", bulkhead: { maxConcurrent: 1, maxQueued: 0 } })
    const limited = Policy.make(
      { name: "geo", bulkhead: { maxConcurrent: 1, maxWait: "1 second" } },
      { layer: TestContext.TestContext }
    )
    try {
      let release!: () => void
      const first = policy.execute(() => new Promise<void>((resolve) => (release = resolve)))
      const shed = await policy.execute(() => "never").catch((e) => e)
      expect(shed).toBeInstanceOf(Errors.BulkheadRejectedError)
      expect(shed).toBeInstanceOf(Errors.PolicyError)
      expect(shed.name).toBe("BulkheadRejectedError")
      expect([shed.bulkhead, shed.maxConcurrent, shed.maxQueued]).toEqual(["reports", 1, 0])
      expect(shed.cause).toBeInstanceOf(Bulkhead.BulkheadRejected)
      release()
      await first

      let free!: () => void
      const holding = limited.execute(() => new Promise<void>((resolve) => (free = resolve)))
      const waiting = limited.execute(() => "never").catch((e) => e)
      await advanceUntil(limited, "the waiter to give up", () => limited.inFlight() === 1)
      const waited = await waiting
      expect(waited).toBeInstanceOf(Errors.WaitTimeoutError)
      expect(waited).toBeInstanceOf(Errors.PolicyError)
      expect(waited.name).toBe("WaitTimeoutError")
      expect([waited.limit, waited.limitName, waited.maxWaitMillis]).toEqual(["Bulkhead", "geo", 1000])
      expect(waited.cause).toBeInstanceOf(WaitTimeout.WaitTimeoutError)
      free()
      await holding
    } finally {
      await Promise.all([policy.dispose(), limited.dispose()])
    }
  })

  it("a deadline over retries rejects with TimeoutError limit deadline", async () => {
    const policy = Policy.make({
      attemptTimeout: "1 second",
      retry: { maxAttempts: 100, base: "10 millis" },
      deadline: "3 seconds"
    }, { layer: TestContext.TestContext })
    try {
      const outcome = policy.execute((signal) =>
        new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)))
      ).catch((e) => e)
      await advanceUntil(policy, "the call to end", () => policy.inFlight() === 0)
      const error = await outcome
      expect(error).toBeInstanceOf(Errors.TimeoutError)
      expect(error.limit).toBe("deadline")
      expect(error.timeoutMillis).toBe(3000)
    } finally {
      await policy.dispose()
    }
  })

  it("dispose aborts the calls in flight with DisposedError and refuses later calls", async () => {
    const policy = Policy.make({ name: "search", retry: { maxAttempts: 3 } })
    const outcome = policy.execute((signal) => get("/dispose?hang=1", signal)).catch((e) => e)
    await until("the upstream to hold the request", () => seen("/dispose").length === 1)
    await policy[Symbol.asyncDispose]()
    const error = await outcome
    expect(error).toBeInstanceOf(Errors.DisposedError)
    expect(error).toBeInstanceOf(Errors.PolicyError)
    expect(error.name).toBe("DisposedError")
    expect(error.policy).toBe("search")
    await until("the upstream to see the client leave", () => seen("/dispose")[0].outcome)
    expect(seen("/dispose")[0].outcome).toBe("client_closed")
    await expect(policy.execute(() => "late")).rejects.toBeInstanceOf(Errors.DisposedError)
    await policy.dispose()
  })

  it("shares a core breaker with Effect code", async () => {
    const breaker = Effect.runSync(
      CircuitBreaker.make({ name: "shared", policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 hour" })
    )
    const policy = Policy.make({ breaker })
    try {
      await Effect.runPromise(Effect.either(breaker.run(Effect.fail("down"))))
      expect(policy.circuitState()).toBe("open")
      await expect(policy.execute(() => "never")).rejects.toBeInstanceOf(Errors.BrokenCircuitError)
    } finally {
      await policy.dispose()
    }
  })
})

describe("Errors.fromCore", () => {
  it("maps every core error to its class and leaves other values alone", () => {
    const open = new CircuitBreaker.CircuitOpen({ name: "b", retryAfter: Duration.seconds(1) })
    expect(Errors.fromCore(open)).toBeInstanceOf(Errors.BrokenCircuitError)
    const rejected = new Bulkhead.BulkheadRejected({ name: "h", maxConcurrent: 1, maxQueued: 0 })
    expect(Errors.fromCore(rejected)).toBeInstanceOf(Errors.BulkheadRejectedError)
    const plain = new Error("mine")
    expect(Errors.fromCore(plain)).toBe(plain)
    expect(Errors.fromCore(undefined)).toBe(undefined)
  })
})

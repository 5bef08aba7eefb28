import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Bulkhead, CircuitBreaker, Deadline, WaitTimeout } from "@spindle/core"
import { Errors, Policy } from "@spindle/promise"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Wait from "@spindle/testkit/Wait"
import * as Cause from "effect/Cause"
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
const advanceUntil = async (policy: Policy.Policy<unknown>, what: string, check: () => boolean): Promise<void> => {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > 30_000) throw new Error(`timed out waiting for ${what}`)
    await adjust(policy, "50 millis")
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const adjust = (policy: Policy.Policy<unknown>, duration: Parameters<typeof TestClock.adjust>[0]) =>
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

describe("Policy.execute through the core's other stages", () => {
  it("hedging: a second attempt with its own signal after the delay; the winner answers, the loser is aborted", async () => {
    const policy = Policy.make(
      { name: "search", hedge: { delay: "1 second", maxAttempts: 2 } },
      { layer: TestContext.TestContext }
    )
    const events: Array<Policy.Event> = []
    const unsubscribe = policy.subscribe((event) => events.push(event))
    try {
      const signals: Array<AbortSignal> = []
      const call = policy.execute((signal) => {
        signals.push(signal)
        // The first attempt hangs; the hedged one answers.
        return get(signals.length === 1 ? "/hedge-slow?hang=1" : "/hedge-fast", signal)
      })
      await until("the upstream to hold the first attempt", () => seen("/hedge-slow").length === 1)
      expect(seen("/hedge-fast")).toHaveLength(0)
      await advanceUntil(policy, "the hedged attempt", () => seen("/hedge-fast").length === 1)
      await expect(call).resolves.toHaveLength(64)
      expect(signals).toHaveLength(2)
      expect(signals[0]).not.toBe(signals[1])
      expect(signals[0].aborted).toBe(true)
      expect(signals[1].aborted).toBe(false)
      await until("the upstream to see the loser leave", () => seen("/hedge-slow")[0].outcome)
      expect(seen("/hedge-slow")[0].outcome).toBe("client_closed")
      await until("the hedge event", () => events.length === 1)
      expect(events).toEqual([{ type: "hedged", policy: "search", attempt: 2, reason: "delay" }])
    } finally {
      unsubscribe()
      await policy.dispose()
    }
  })

  it("hedging on an error starts the next attempt at once", async () => {
    const policy = Policy.make({ hedge: { delay: "1 hour", maxAttempts: 3 } })
    try {
      let calls = 0
      const call = policy.execute((signal) => get(++calls < 3 ? "/hedge-error?status=503" : "/hedge-error", signal))
      await expect(call).resolves.toHaveLength(64)
      expect(seen("/hedge-error").map((r) => r.status)).toEqual([503, 503, 200])
    } finally {
      await policy.dispose()
    }
  })

  it("a fallback answers with a value, or a function of the Promise-facing error, only for what `when` selects", async () => {
    const byValue = Policy.make({
      breaker: { policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 hour" },
      fallback: { when: (error) => error instanceof Errors.BrokenCircuitError, value: "cached" }
    })
    const seenByOrElse: Array<unknown> = []
    const byFunction = Policy.make({
      attemptTimeout: "1 second",
      fallback: {
        orElse: async (error: unknown) => {
          seenByOrElse.push(error)
          if (error instanceof HttpError) throw new Error("no fallback for HTTP errors")
          return 0
        }
      }
    }, { layer: TestContext.TestContext })
    try {
      // The first failure is not selected (the breaker was closed): it passes through and opens the breaker.
      await expect(byValue.execute((signal) => get("/fallback?status=500", signal))).rejects.toBeInstanceOf(HttpError)
      const answer: string = await byValue.execute(() => "never runs")
      expect(answer).toBe("cached")
      expect(seen("/fallback")).toHaveLength(1)

      const late = byFunction.execute((signal) => get("/fallback-late?hang=1", signal))
      await until("the upstream to hold the request", () => seen("/fallback-late").length === 1)
      await adjust(byFunction, "1 second")
      await expect(late).resolves.toBe(0)
      expect(seenByOrElse[0]).toBeInstanceOf(Errors.TimeoutError)
      await until("the upstream to see the client leave", () => seen("/fallback-late")[0].outcome)
      expect(seen("/fallback-late")[0].outcome).toBe("client_closed")
      await expect(byFunction.execute((signal) => get("/fallback?status=404", signal))).rejects.toThrow(
        "no fallback for HTTP errors"
      )
    } finally {
      await Promise.all([byValue.dispose(), byFunction.dispose()])
    }
  })

  it("a rate limit delays an attempt until its token, and rejects with WaitTimeoutError past maxWait", async () => {
    const policy = Policy.make(
      { name: "quota", rateLimit: { limit: 1, interval: "10 seconds", maxWait: "15 seconds" } },
      { layer: TestContext.TestContext }
    )
    const events: Array<Policy.Event> = []
    const unsubscribe = policy.subscribe((event) => events.push(event))
    try {
      await expect(policy.execute(() => 1)).resolves.toBe(1)
      let ran = false
      const second = policy.execute(() => (ran = true))
      let thirdRan = false
      let thirdSettled = false
      const third = policy.execute(() => (thirdRan = true)).catch((e) => e).finally(() => (thirdSettled = true))
      // The second starts once the next token is there (10 s); the third, which would start at 20 s, gives up at its
      // maxWait (15 s).
      await advanceUntil(policy, "the second call's token", () => ran)
      await expect(second).resolves.toBe(true)
      await advanceUntil(policy, "the third call to give up", () => thirdSettled)
      const refused = await third
      expect(refused).toBeInstanceOf(Errors.WaitTimeoutError)
      expect([refused.limit, refused.limitName, refused.maxWaitMillis]).toEqual(["TokenBucket", "quota", 15_000])
      expect(thirdRan).toBe(false)
      await until("the rejection event", () => events.length === 1)
      expect(events[0]).toMatchObject({ type: "rejected", stage: "rateLimit", policy: "quota" })
      expect((events[0] as { error: unknown }).error).toBeInstanceOf(Errors.WaitTimeoutError)
    } finally {
      unsubscribe()
      await policy.dispose()
    }
  })

  it("subscribe: retries, gave up, timeouts and breaker changes, until unsubscribed; a throwing listener is logged", async () => {
    const policy = Policy.make({
      name: "ledger",
      attemptTimeout: "1 second",
      breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 minute" },
      retry: { maxAttempts: 2, base: "100 millis" }
    }, { layer: TestContext.TestContext })
    const events: Array<Policy.Event> = []
    const unsubscribe = policy.subscribe((event) => events.push(event))
    const throwing = policy.subscribe(() => {
      throw new Error("a listener that throws keeps nobody else from hearing")
    })
    try {
      const call = policy.execute((signal) => get("/events?hang=1", signal)).catch((e) => e)
      await advanceUntil(policy, "the call to end", () => policy.inFlight() === 0)
      expect(await call).toBeInstanceOf(Errors.TimeoutError)
      expect(seen("/events")).toHaveLength(2)
      await until("five events", () => events.length === 5)
      // The breaker's changes come from its own stream: in order among themselves, not with the call's decisions.
      const decisions = events.filter((e) => e.type !== "breakerStateChanged")
      expect(decisions.map((e) => e.type)).toEqual(["timedOut", "retryScheduled", "timedOut", "retryGaveUp"])
      expect(decisions[0]).toEqual({ type: "timedOut", policy: "ledger", limit: "attempt", durationMillis: 1000 })
      expect(decisions[1]).toMatchObject({ type: "retryScheduled", attempt: 2 })
      expect((decisions[1] as { error: unknown }).error).toBeInstanceOf(Errors.TimeoutError)
      expect(decisions[3]).toMatchObject({ type: "retryGaveUp", attempts: 2, reason: "max_attempts" })
      expect(events.filter((e) => e.type === "breakerStateChanged")).toEqual([
        { type: "breakerStateChanged", policy: "ledger", state: "open" }
      ])

      unsubscribe()
      policy.reset()
      await expect(policy.execute(() => "after")).resolves.toBe("after")
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(events).toHaveLength(5)
    } finally {
      throwing()
      await policy.dispose()
    }
  })

  it("invalid options throw the core's IllegalArgumentException naming the field", () => {
    expect(() => Policy.make({ retry: { maxAttempts: 0 } })).toThrow(Cause.IllegalArgumentException)
    expect(() => Policy.make({ hedge: { delay: "soon" as never } })).toThrow(/hedge\.delay/)
    expect(() => Policy.make({ fallback: {} as never })).toThrow(/fallback/)
  })
})

describe("Policy.execute without the runtime (breaker closed, retry, fallback: nothing to wait for)", () => {
  it("a failure on the fast path is counted by the breaker and retried through the same stages", async () => {
    const policy = Policy.make({
      breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 hour" },
      retry: { maxAttempts: 2, base: 1, retryable: (error) => error instanceof HttpError }
    })
    const events: Array<Policy.Event> = []
    const unsubscribe = policy.subscribe((event) => events.push(event))
    try {
      let calls = 0
      const down = new HttpError(503)
      // Attempt 1 runs on the fast path and fails (1 counted), attempt 2 runs through the breaker (2: open).
      await expect(policy.execute(async () => {
        calls++
        throw down
      })).rejects.toBe(down)
      expect(calls).toBe(2)
      expect(policy.circuitState()).toBe("open")
      await until("the retry's events", () => events.some((e) => e.type === "retryGaveUp"))
      expect(events.filter((e) => e.type === "retryScheduled").map((e) => e.error)).toEqual([down])
      await expect(policy.execute(async () => ++calls)).rejects.toBeInstanceOf(Errors.BrokenCircuitError)
      expect(calls).toBe(2)

      // A success on the fast path resets a run of failures, as through the runtime.
      policy.reset()
      let n = 0
      await expect(policy.execute(async () => {
        if (++n === 1) throw down
        return "second attempt"
      })).resolves.toBe("second attempt")
      await expect(policy.execute(async () => "fine")).resolves.toBe("fine")
      await expect(policy.execute(() => Promise.reject(down))).rejects.toBe(down)
      expect(policy.circuitState()).toBe("open")
    } finally {
      unsubscribe()
      await policy.dispose()
    }
  })

  it("live clock: an attempt timeout on the fast path aborts the request, is counted by the breaker and retried", async () => {
    // Real time over loopback: 200 ms attempts; the test waits for outcomes, never for a duration.
    const policy = Policy.make({
      name: "live",
      attemptTimeout: "200 millis",
      breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 hour" },
      retry: { maxAttempts: 2, base: 1 }
    })
    const events: Array<Policy.Event> = []
    const unsubscribe = policy.subscribe((event) => events.push(event))
    try {
      const signals: Array<AbortSignal> = []
      const error = await policy.execute((signal) => {
        signals.push(signal)
        return get(`/fast-timeout?hang=1&n=${signals.length}`, signal)
      }).catch((e) => e)
      expect(error).toBeInstanceOf(Errors.TimeoutError)
      expect([error.limit, error.timeoutMillis]).toEqual(["attempt", 200])
      expect(signals.map((s) => s.aborted)).toEqual([true, true])
      expect(policy.circuitState()).toBe("open")
      await until(
        "the upstream to see both clients leave",
        () => seen("/fast-timeout").length === 2 && seen("/fast-timeout").every((r) => r.outcome !== undefined)
      )
      expect(seen("/fast-timeout").map((r) => r.outcome)).toEqual(["client_closed", "client_closed"])
      await until("the events", () => events.some((e) => e.type === "retryGaveUp"))
      expect(events.filter((e) => e.type !== "breakerStateChanged").map((e) => e.type)).toEqual([
        "timedOut",
        "retryScheduled",
        "timedOut",
        "retryGaveUp"
      ])
      // A call that answers in time leaves nothing armed behind it, and resets nothing it should not.
      policy.reset()
      await expect(policy.execute((signal) => get("/fast-timeout-ok", signal))).resolves.toHaveLength(64)
      expect(policy.circuitState()).toBe("closed")
    } finally {
      unsubscribe()
      await policy.dispose()
    }
  })

  it("a fallback answers for a failure that started on the fast path", async () => {
    const policy = Policy.make({ retry: { maxAttempts: 2, base: 1 }, fallback: { value: "fallback" } })
    try {
      let calls = 0
      await expect(policy.execute(() => {
        calls++
        throw new HttpError(500)
      })).resolves.toBe("fallback")
      expect(calls).toBe(2)
    } finally {
      await policy.dispose()
    }
  })

  it("the caller's signal and dispose abort an attempt on the fast path, which then counts for nothing", async () => {
    const policy = Policy.make({ breaker: { policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 hour" } })
    try {
      const caller = new AbortController()
      const signals: Array<AbortSignal> = []
      const call = policy.execute((signal) => {
        signals.push(signal)
        return get("/fast-abort?hang=1", signal)
      }, { signal: caller.signal }).catch((e) => e)
      await until("the upstream to hold the request", () => seen("/fast-abort").length === 1)
      expect(policy.inFlight()).toBe(1)
      const reason = new Error("gone")
      caller.abort(reason)
      expect(await call).toBe(reason)
      expect(signals[0].aborted).toBe(true)
      expect(policy.inFlight()).toBe(0)
      await until("the upstream to see the client leave", () => seen("/fast-abort")[0].outcome)
      expect(seen("/fast-abort")[0].outcome).toBe("client_closed")
      // fetch rejected once aborted: not a failure the breaker counts.
      expect(policy.circuitState()).toBe("closed")

      const disposed = policy.execute((signal) => get("/fast-dispose?hang=1", signal)).catch((e) => e)
      await until("the upstream to hold the request", () => seen("/fast-dispose").length === 1)
      await policy.dispose()
      expect(await disposed).toBeInstanceOf(Errors.DisposedError)
      await until("the upstream to see the client leave", () => seen("/fast-dispose")[0].outcome)
      expect(seen("/fast-dispose")[0].outcome).toBe("client_closed")
    } finally {
      await policy.dispose()
    }
  })
})

describe("Policy.execute on the fast path: calls in flight", () => {
  /** A Promise the test settles by hand (a function that declares no signal parameter). */
  const deferred = <A>() => {
    let resolve!: (value: A) => void
    let reject!: (error: unknown) => void
    const promise = new Promise<A>((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }

  it("a bare call (no signal either way, no timeout) is counted in flight and settles through the policy", async () => {
    const policy = Policy.make({
      breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 hour" },
      retry: { maxAttempts: 2, base: 1 }
    })
    try {
      const first = deferred<string>()
      const second = deferred<string>()
      const a = policy.execute(() => first.promise)
      const b = policy.execute(() => second.promise)
      expect(policy.inFlight()).toBe(2)
      second.resolve("b")
      await expect(b).resolves.toBe("b")
      expect(policy.inFlight()).toBe(1)
      // A failure continues in the runtime: counted by the breaker and retried (the second attempt gets the same
      // rejected Promise), so two failures open the breaker and the call rejects with the error unchanged.
      const down = new HttpError(503)
      first.reject(down)
      expect(await a.catch((e) => e)).toBe(down)
      expect(policy.inFlight()).toBe(0)
      expect(policy.circuitState()).toBe("open")
    } finally {
      await policy.dispose()
    }
  })

  it("the caller's signal aborted mid-call rejects with its reason, also for a function that takes no signal", async () => {
    const policy = Policy.make({ breaker: { policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 hour" } })
    try {
      const callers = [new AbortController(), new AbortController(), new AbortController()]
      const pending = [deferred<string>(), deferred<string>(), deferred<string>()]
      const calls = pending.map((d, i) =>
        policy.execute(() => d.promise, { signal: callers[i].signal }).catch((e) => e)
      )
      expect(policy.inFlight()).toBe(3)
      // The middle call of the three leaves first, then the newest settles: the others are unaffected.
      const reason = new Error("gone")
      callers[1].abort(reason)
      expect(await calls[1]).toBe(reason)
      expect(policy.inFlight()).toBe(2)
      pending[2].resolve("third")
      expect(await calls[2]).toBe("third")
      // The aborted call's function fails later: nothing counts it, the breaker stays closed.
      pending[1].reject(new HttpError(503))
      pending[0].resolve("first")
      expect(await calls[0]).toBe("first")
      expect(policy.inFlight()).toBe(0)
      expect(policy.circuitState()).toBe("closed")
    } finally {
      await policy.dispose()
    }
  })

  it("dispose rejects calls it can end at once; a bare call rejects when its function settles, counted for nothing", async () => {
    const policy = Policy.make({ breaker: { policy: CircuitBreaker.consecutiveFailures(1), cooldown: "1 hour" } })
    const bare = deferred<string>()
    const bareFailing = deferred<string>()
    const withCaller = deferred<string>()
    const signals: Array<AbortSignal> = []
    const calls = [
      policy.execute(() => bare.promise).catch((e) => e),
      policy.execute(() => bareFailing.promise).catch((e) => e),
      policy.execute(() => withCaller.promise, { signal: new AbortController().signal }).catch((e) => e),
      policy.execute((signal) => {
        signals.push(signal)
        return new Promise<string>(() => {})
      }).catch((e) => e)
    ]
    expect(policy.inFlight()).toBe(4)
    // dispose does not wait for the bare calls, which nothing can end sooner than their functions.
    await policy.dispose()
    expect(await calls[2]).toBeInstanceOf(Errors.DisposedError)
    expect(await calls[3]).toBeInstanceOf(Errors.DisposedError)
    expect(signals[0].aborted).toBe(true)
    expect(policy.inFlight()).toBe(2)
    bare.resolve("too late")
    bareFailing.reject(new HttpError(503))
    const [late, failed] = [await calls[0], await calls[1]]
    expect(late).toBeInstanceOf(Errors.DisposedError)
    expect(failed).toBeInstanceOf(Errors.DisposedError)
    expect(failed.policy).toBe("default")
    expect(policy.inFlight()).toBe(0)
    // Neither the success nor the failure after dispose was counted.
    expect(policy.circuitState()).toBe("closed")
    withCaller.resolve("ignored")
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

// @spindle/promise as a user installs it: plain async code over real loopback HTTP with fetch and AbortSignal, no
// Effect in sight. Each check is an async function that throws on failure.
import { CircuitBreaker } from "@spindle/core"
import { Errors, Policy } from "@spindle/promise"
import assert from "node:assert/strict"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

class HttpError extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`)
  }
}

/** A server whose paths script it: `/hang` never answers, `/fail-<n>-<key>` fails n times with 503, else 200 "ok". */
const serve = async () => {
  const failures = new Map<string, number>()
  const arrived: Array<string> = []
  const closed: Array<string> = []
  const server = http.createServer((req, res) => {
    const path = req.url ?? "/"
    arrived.push(path)
    res.on("close", () => {
      if (!res.writableFinished) closed.push(path)
    })
    if (path === "/hang") return
    const fail = /^\/fail-(\d+)-(\w+)$/.exec(path)
    if (fail !== null) {
      const seen = failures.get(fail[2]) ?? 0
      failures.set(fail[2], seen + 1)
      if (seen < Number(fail[1])) {
        res.statusCode = 503
        return res.end("busy")
      }
    }
    if (path === "/down") {
      res.statusCode = 500
      return res.end("down")
    }
    res.end("ok")
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  const get = async (path: string, signal: AbortSignal) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal })
    const text = await res.text()
    if (!res.ok) throw new HttpError(res.status)
    return text
  }
  const close = () => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return { get, arrived, closed, close }
}

/** Polls `check` every 10 ms for up to 20 s (a bound for a stuck check, not a timing assertion). */
const until = async (what: string, check: () => boolean) => {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > 20_000) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const timeoutAbortsTheRequest = async () => {
  const upstream = await serve()
  const policy = Policy.make({ attemptTimeout: 100 })
  try {
    const error = await policy.execute((signal) => upstream.get("/hang", signal)).catch((e: unknown) => e)
    assert.ok(error instanceof Errors.TimeoutError, `expected a TimeoutError, got ${String(error)}`)
    assert.ok(error instanceof Errors.PolicyError)
    assert.equal(error.limit, "attempt")
    assert.equal(error.timeoutMillis, 100)
    await until("the server to see the request closed", () => upstream.closed.includes("/hang"))
  } finally {
    await policy.dispose()
    await upstream.close()
  }
}

const retriesThenSucceeds = async () => {
  const upstream = await serve()
  const policy = Policy.make({ retry: { maxAttempts: 3, base: 5 } })
  try {
    assert.equal(await policy.execute((signal) => upstream.get("/fail-2-a", signal)), "ok")
    const last = await policy.execute((signal) => upstream.get("/fail-5-b", signal)).catch((e: unknown) => e)
    assert.ok(last instanceof HttpError, "the last attempt's own error, unchanged")
    assert.equal(last.status, 503)
  } finally {
    await policy.dispose()
    await upstream.close()
  }
}

const breakerOpens = async () => {
  const upstream = await serve()
  const policy = Policy.make({ breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 minute" } })
  try {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(policy.execute((signal) => upstream.get("/down", signal)), HttpError)
    }
    assert.equal(policy.circuitState(), "open")
    const error = await policy.execute(() => "never runs").catch((e: unknown) => e)
    assert.ok(error instanceof Errors.BrokenCircuitError)
    assert.ok(error.retryAfterMillis > 0)
  } finally {
    await policy.dispose()
    await upstream.close()
  }
}

const callerSignalFreesTheBulkhead = async () => {
  const upstream = await serve()
  const policy = Policy.make({ bulkhead: { maxConcurrent: 1, maxQueued: 0 } })
  try {
    const caller = new AbortController()
    const first = policy.execute((signal) => upstream.get("/hang", signal), { signal: caller.signal })
    await until("the server to hold the first request", () => upstream.arrived.includes("/hang"))
    const full = await policy.execute(() => "shed").catch((e: unknown) => e)
    assert.ok(full instanceof Errors.BulkheadRejectedError)
    const reason = new Error("the user left")
    caller.abort(reason)
    await assert.rejects(first, (e) => e === reason)
    assert.equal(await policy.execute((signal) => upstream.get("/next", signal)), "ok")
    await until("the server to see the request closed", () => upstream.closed.includes("/hang"))
  } finally {
    await policy.dispose()
    await upstream.close()
  }
}

export const checks: ReadonlyArray<readonly [string, () => Promise<void>]> = [
  ["@spindle/promise: an attempt timeout aborts the fetch and rejects with TimeoutError", timeoutAbortsTheRequest],
  ["@spindle/promise: retries then succeeds; the last attempt's error is passed through", retriesThenSucceeds],
  ["@spindle/promise: the breaker opens and rejects with BrokenCircuitError", breakerOpens],
  ["@spindle/promise: the caller's signal aborts the call and frees its bulkhead place", callerSignalFreesTheBulkhead]
]

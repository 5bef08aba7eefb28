/**
 * Tail latency with and without hedging: `n` GETs against the testkit upstream over loopback, `concurrency` at a time,
 * each attempt's latency drawn from a seeded heavy tail (`1 - tail` uniform in 5–15 ms, `tail` uniform in 200–400 ms)
 * and scripted into its URL (`?latency=`), so that a hedged attempt draws afresh, as a second request to a real
 * replica would. Every attempt is a `fetch` with its own `AbortSignal`; an attempt that loses is aborted.
 *
 * Every variant first makes `warmup / 3` calls that answer at once (connections, JIT), then `warmup` calls without
 * hedging, and takes their 95th percentile as the hedging delay (the hedged variants use it; `--delay=<ms>` fixes it
 * instead), so that the delay is the p95 of unhedged calls on the machine as it is during the run.
 *
 *   --variant=none            core, no hedging: `Effect.forEach({ concurrency })` of the attempt
 *   --variant=core            core `Policy.make({ hedge: { delay, maxAttempts: 2 } })`, `policy.run(attempt)`
 *   --variant=promise-none    `async` workers calling the attempt (`fetch`) directly
 *   --variant=promise         `@spindle/promise` `Policy.make({ hedge: { delay, maxAttempts: 2 } })`, `execute`
 *
 * Prints every call's latency (ms, in call order), the delay, the attempts sent (`requests`) and the requests the
 * upstream saw (`served`: an attempt aborted before its request arrived is not among them).
 */
import { Policy as CorePolicy } from "@spindle/core"
import { Policy } from "@spindle/promise"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", ["none", "core", "promise-none", "promise"])
const n = numberArg("n", 2_000)
const warmup = numberArg("warmup", 300)
const concurrency = numberArg("concurrency", 8)
const fixedDelay = numberArg("delay", Number.NaN)
const seed = numberArg("seed", 19)
const tailShare = numberArg("tail", 0.04)

/** mulberry32: a small seeded generator, so that every variant draws the same kind of sequence. */
const random = (() => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()

/** One attempt's latency in ms: the heavy tail. */
const draw = (): number => {
  const tail = random() < tailShare
  const [low, high] = tail ? [200, 400] : [5, 15]
  return Math.round(low + random() * (high - low))
}

const main = async (): Promise<Record<string, unknown>> => {
  // The upstream runs in this process: its work shares the event loop with the client's, alike in every variant.
  const scope = Effect.runSync(Scope.make())
  const upstream = await Effect.runPromise(Scope.extend(Upstream.make(), scope))
  let sent = 0
  const get = async (signal: AbortSignal): Promise<string> => {
    sent++
    const res = await fetch(upstream.url(`/h?latency=${draw()}`), { signal })
    const text = await res.text()
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    return text
  }

  /** Runs `count` calls of `one`, `concurrency` at a time, and returns each call's latency in ms. */
  const workers = async (count: number, one: () => Promise<unknown>): Promise<Array<number>> => {
    const latencies = new Array<number>(count)
    let next = 0
    const worker = async () => {
      while (next < count) {
        const i = next++
        const start = performance.now()
        await one()
        latencies[i] = performance.now() - start
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    return latencies
  }

  // First calls that answer at once, to open the connections and warm the JIT, so that neither is in the delay.
  await workers(Math.ceil(warmup / 3), async () => {
    const res = await fetch(upstream.url("/warm"))
    await res.text()
  })
  // The delay: the p95 of unhedged calls, measured here.
  const calibration = (await workers(warmup, () => get(new AbortController().signal))).sort((a, b) => a - b)
  const measuredP95 = calibration[Math.ceil(0.95 * calibration.length) - 1]
  const delayMillis = Math.round(Number.isNaN(fixedDelay) ? measuredP95 : fixedDelay)
  const hedge = { delay: delayMillis, maxAttempts: 2 }

  const calls = await (async (): Promise<(count: number) => Promise<Array<number>>> => {
    switch (variant) {
      case "none":
      case "core": {
        const attempt = Effect.tryPromise({ try: get, catch: (error) => error })
        const run = variant === "none"
          ? attempt
          : (await Effect.runPromise(CorePolicy.make({ hedge }))).run(attempt)
        return (count) =>
          Effect.runPromise(Effect.forEach(
            Array.from({ length: count }, (_, i) => i),
            () =>
              Effect.suspend(() => {
                const start = performance.now()
                return Effect.map(run, () => performance.now() - start)
              }),
            { concurrency }
          ))
      }
      case "promise-none":
        return (count) => workers(count, () => get(new AbortController().signal))
      case "promise": {
        const policy = Policy.make({ hedge })
        return (count) => workers(count, () => policy.execute(get))
      }
    }
  })()

  upstream.resetStats()
  sent = 0
  const started = performance.now()
  const latencies = await calls(n)
  const millis = performance.now() - started
  const requests = sent
  const served = upstream.requests().length
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return {
    n,
    concurrency,
    delayMillis,
    calibrationP95: Math.round(measuredP95 * 100) / 100,
    millis,
    requests,
    served,
    extraPercent: ((requests - n) / n) * 100,
    latencies: latencies.map((ms) => Math.round(ms * 100) / 100)
  }
}

runVariant(main)

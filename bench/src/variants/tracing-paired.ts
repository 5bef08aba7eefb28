/**
 * Issue 20: what the core's spans cost with no tracer installed (and with one), measured against the core as it was
 * before them, in one process. Both cores are bundles of their own (`lib/untraced.ts` builds them next to this
 * variant) on one Effect runtime; the same workload is built once on each and timed in alternating blocks (which
 * goes first alternates too), so both see the same machine and the same JIT state.
 *
 *   --variant=bulkhead-run      `Effect.forEach(array, () => bulkhead.run(task), { concurrency: 100 })`, §1's row
 *   --variant=bulkhead-forEach  `bulkhead.forEach(range, () => task, { discard: true })`, §1's headline row
 *   --variant=spindle           `RetryPolicy.make({ maxAttempts: 3 })(breaker.run(noop))`, §4's row
 *   --variant=spindle-timeout   the same around `Deadline.attempt(noop, "1 second")`, §4's row
 *   --variant=policy-timeout    `Policy.make({ attemptTimeout, breaker, retry }).run(noop)`, §4's row
 *   --traced=true               times a copy of the shipped core under a tracer that makes and drops a span object
 *                               per span (what an SDK whose exporter drops everything costs), inside a root span,
 *                               so that span events have a span to go to, in place of the shipped core without one
 *
 * Each core is timed as two copies bundled apart (its figure their total); one untraced copy's time over the
 * other's is the A/A control of the method.
 * Prints per-contender time per operation (ns) and operations per second, and the ratios to the untraced core.
 */
import type * as Core from "@spindle/core"
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"
import * as Os from "node:os"
import { args, choiceArg, numberArg, runVariant } from "../lib/child.js"

const variant = choiceArg("variant", [
  "bulkhead-run",
  "bulkhead-forEach",
  "spindle",
  "spindle-timeout",
  "policy-timeout"
])
const n = numberArg("n", 200_000)
const warmup = numberArg("warmup", 20_000)
const blocks = numberArg("blocks", 100)
const concurrency = numberArg("concurrency", 100)
const withTracer = args.get("traced") === "true"

type Module = typeof Core

// A tracer whose spans go nowhere: what an application pays for the core's spans and events with tracing on, less
// its exporter.
let spans = 0
let events = 0
const dropping = Tracer.make({
  span: (name, parent, context, links, startTime, kind) => {
    spans++
    let status: Tracer.SpanStatus = { _tag: "Started", startTime }
    const span: Tracer.Span = {
      _tag: "Span",
      name,
      spanId: "0000000000000000",
      traceId: "00000000000000000000000000000000",
      parent,
      context,
      get status() {
        return status
      },
      attributes: new Map(),
      links,
      sampled: true,
      kind,
      end: (endTime, exit) => {
        status = { _tag: "Ended", startTime, endTime, exit }
      },
      attribute: () => {},
      event: () => {
        events++
      },
      addLinks: () => {}
    }
    return span
  },
  context: (f) => f()
})

let ran = 0
const task = Effect.sync(() => {
  ran++
})
const noop: Effect.Effect<number> = Effect.promise(() => Promise.resolve(1))

function* range(count: number): Generator<number> {
  for (let i = 0; i < count; i++) yield i
}

/** One block of `count` operations on `core`, as an effect built once per core and run once per block. */
const workload = async (core: Module): Promise<(count: number) => Effect.Effect<void, unknown>> => {
  switch (variant) {
    case "bulkhead-run": {
      const bulkhead = await Effect.runPromise(core.Bulkhead.make({ maxConcurrent: concurrency }))
      return (count) => {
        const items = Array.from(range(count))
        return Effect.forEach(items, () => bulkhead.run(task), { concurrency, discard: true })
      }
    }
    case "bulkhead-forEach": {
      const bulkhead = await Effect.runPromise(core.Bulkhead.make({ maxConcurrent: concurrency }))
      return (count) => bulkhead.forEach(range(count), () => task, { discard: true })
    }
    case "spindle":
    case "spindle-timeout":
    case "policy-timeout": {
      const call = await Effect.runPromise(
        variant === "policy-timeout"
          ? Effect.map(
            core.Policy.make({
              breaker: { policy: core.CircuitBreaker.consecutiveFailures(5) },
              retry: { maxAttempts: 3 },
              attemptTimeout: "1 second"
            }),
            (policy) => policy.run(noop) as Effect.Effect<number, unknown>
          )
          : Effect.map(
            core.CircuitBreaker.make({ policy: core.CircuitBreaker.consecutiveFailures(5) }),
            (breaker) =>
              core.RetryPolicy.make({ maxAttempts: 3 })(
                breaker.run(variant === "spindle" ? noop : core.Deadline.attempt(noop, "1 second"))
              ) as Effect.Effect<number, unknown>
          )
      )
      return (count) => {
        let i = 0
        return Effect.whileLoop({
          while: () => i < count,
          body: () => call,
          step: (value) => {
            ran += value
            i++
          }
        })
      }
    }
  }
}

const tracedBlock = (block: Effect.Effect<void, unknown>): Effect.Effect<void, unknown> =>
  Effect.withTracer(Effect.withSpan(block, "bench.block"), dropping)

runVariant(async () => {
  const here = import.meta.url
  // Loaded (and below warmed) alternately, so that each core has one copy early and one late.
  const untraced = (await import(new URL("./core-untraced.mjs", here).href)) as Module
  const shipped = (await import(new URL("./core-shipped.mjs", here).href)) as Module
  const control = (await import(new URL("./core-untraced-copy.mjs", here).href)) as Module
  const shippedCopy = (await import(new URL("./core-shipped-copy.mjs", here).href)) as Module
  const contenders: Array<{ readonly name: string; readonly run: (count: number) => Effect.Effect<void, unknown> }> = []
  if (withTracer) {
    // A process of its own (the tracer's garbage would land in the other contenders' blocks), on a copy of the
    // shipped core of its own.
    const tracedCore = (await import(new URL("./core-shipped-traced.mjs", here).href)) as Module
    const run = await workload(tracedCore)
    contenders.push(
      { name: "untraced", run: await workload(untraced) },
      { name: "traced", run: (count) => tracedBlock(run(count)) },
      // The untraced core again, bundled apart: identical code, so its ratio is the method's own error.
      { name: "control", run: await workload(control) }
    )
  } else {
    contenders.push(
      { name: "untraced", run: await workload(untraced) },
      { name: "shipped", run: await workload(shipped) },
      { name: "control", run: await workload(control) },
      { name: "shippedCopy", run: await workload(shippedCopy) }
    )
  }
  for (const contender of contenders) await Effect.runPromise(contender.run(warmup))
  const perBlock = Math.max(1, Math.floor(n / blocks))
  const millis = new Map(contenders.map((c) => [c.name, 0]))
  ran = 0
  for (let block = 0; block < blocks; block++) {
    // Each block in a different order, so that none always runs first (after the others' garbage).
    const order = contenders.map((_, i) => contenders[(i + block) % contenders.length])
    for (const contender of order) {
      // Built before the clock starts (bulkhead-run's array of items, as §1 builds it before timing).
      const effect = contender.run(perBlock)
      const start = performance.now()
      await Effect.runPromise(effect)
      millis.set(contender.name, millis.get(contender.name)! + performance.now() - start)
    }
  }
  const each = perBlock * blocks
  if (ran !== each * contenders.length) throw new Error(`ran ${ran} of ${each * contenders.length} operations`)
  // How busy the machine was: the one-minute load average at the end (2 cores: above 2, processes waited for a core).
  const result: Record<string, unknown> = { n: each, blocks, warmup, loadAverage: Os.loadavg()[0] }
  for (const [name, ms] of millis) {
    result[`${name}NsPerOp`] = (ms * 1e6) / each
    result[`${name}OpsPerSec`] = each / (ms / 1000)
  }
  // Each core's figure is its two copies' total (the control is the untraced core's second copy).
  const untracedMillis = millis.get("untraced")! + millis.get("control")!
  result.untracedNsPerOp = (untracedMillis * 1e6) / (2 * each)
  result.untracedOpsPerSec = (2 * each) / (untracedMillis / 1000)
  result.controlOverUntraced = millis.get("control")! / millis.get("untraced")!
  if (!withTracer) {
    const shippedMillis = millis.get("shipped")! + millis.get("shippedCopy")!
    result.shippedNsPerOp = (shippedMillis * 1e6) / (2 * each)
    result.shippedOpsPerSec = (2 * each) / (shippedMillis / 1000)
    result.shippedOverUntraced = shippedMillis / untracedMillis
  } else {
    result.tracedOverUntraced = millis.get("traced")! / (untracedMillis / 2)
    result.spans = spans
    result.events = events
  }
  return result
}, { memory: false })

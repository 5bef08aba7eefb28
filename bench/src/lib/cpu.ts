/**
 * The CPU offload benchmark's measurement, shared by its variants: `n` tasks of the task module's `pbkdf2`, with
 * the main thread's event-loop delay recorded by `monitorEventLoopDelay({ resolution })` while they run.
 *
 * Kept free of Effect and of every peer library, like `child.ts`.
 */
import { readFileSync } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { setTimeout as sleep } from "node:timers/promises"
import { args, numberArg, runVariant } from "./child.js"

/** The argument of the task module's `pbkdf2`. */
export interface Task {
  readonly iterations: number
  readonly seed: number
}

/** A started executor: how to run one task, and how to stop (not timed). */
export interface Executor {
  readonly run: (task: Task) => Promise<string>
  readonly close: () => Promise<void>
}

/** How the variant's tasks are driven once the clock runs. */
export type Drive = "loop" | "loop-yielding" | "all-at-once"

export const n = numberArg("n", 200)
export const threads = numberArg("threads", 2)
export const iterations = numberArg("iterations", 30_000)
const resolution = numberArg("resolution", 5)

/** The file URL of the task module (`src/fixtures/cpu-task.mjs`), absolute: variants run from `.tmp/variants`. */
export const moduleUrl: string = (() => {
  const url = args.get("module")
  if (url === undefined) throw new Error("--module=<file URL of the task module> is required")
  return url
})()

/** Clock ticks per second of `/proc/stat` (`USER_HZ`, 100 on Linux). */
const USER_HZ = 100

/** CPU seconds the whole machine has spent busy since boot (`/proc/stat`), or `NaN` where there is none. */
const machineBusySeconds = (): number => {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number)
    // user, nice, system, idle, iowait, irq, softirq, steal: all but idle and iowait are busy time.
    const [user, nice, system, , , irq, softirq, steal] = fields
    return (user + nice + system + irq + softirq + steal) / USER_HZ
  } catch {
    return Number.NaN
  }
}

/** CPU seconds this process (main thread and worker threads) has used. */
const processSeconds = (): number => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1e6
}

/**
 * Starts the executor, warms it with `warm` tasks at once (one per thread), then runs `n` tasks driven as `drive`
 * says while the event-loop delay is recorded, and prints the figures.
 */
export const runCpuVariant = (options: {
  readonly start: () => Promise<Executor>
  readonly warm: number
  readonly drive: Drive
}): void =>
  runVariant(async () => {
    const started = performance.now()
    const executor = await options.start()
    await Promise.all(Array.from({ length: options.warm }, (_, i) => executor.run({ iterations, seed: -1 - i })))
    const startupMillis = performance.now() - started

    const delay = monitorEventLoopDelay({ resolution })
    delay.enable()
    // The histogram records the interval between two ticks of its timer; the first tick only starts the count, so
    // it must have happened before the work starts, or a loop blocked from here to the end would record nothing
    // (`reset()` would restart the count, so the one or two idle intervals of this wait stay in the histogram).
    await sleep(2 * resolution)
    const machineBefore = machineBusySeconds()
    const processBefore = processSeconds()
    const clock = performance.now()
    let results: Array<string> = []
    switch (options.drive) {
      case "loop":
        // The event loop does not turn until the last task is done: one thread working as fast as it can.
        for (let seed = 0; seed < n; seed++) results.push(await executor.run({ iterations, seed }))
        break
      case "loop-yielding":
        for (let seed = 0; seed < n; seed++) {
          results.push(await executor.run({ iterations, seed }))
          await new Promise((resolve) => setImmediate(resolve))
        }
        break
      case "all-at-once":
        results = await Promise.all(Array.from({ length: n }, (_, seed) => executor.run({ iterations, seed })))
        break
    }
    const seconds = (performance.now() - clock) / 1000
    const processCpu = processSeconds() - processBefore
    // What the rest of the machine took from the same cores meanwhile, in cores (0.5: half a core on average).
    const otherCores = (machineBusySeconds() - machineBefore - processCpu) / seconds
    // Let the delay timer fire once more, so that a loop blocked until the very end is recorded too.
    await sleep(2 * resolution)
    delay.disable()
    await executor.close()
    if (results.length !== n || results.some((key) => key.length !== 64)) throw new Error("wrong results")
    // The histogram records each interval between ticks of a `resolution` ms timer: minus the resolution, the delay.
    const extra = (nanos: number) => Math.max(0, nanos / 1e6 - resolution)
    return {
      n,
      threads,
      iterations,
      seconds,
      tasksPerSec: n / seconds,
      startupMillis,
      delayP50Millis: extra(delay.percentile(50)),
      delayP99Millis: extra(delay.percentile(99)),
      delayMaxMillis: extra(delay.max),
      delaySamples: delay.count,
      processCores: processCpu / seconds,
      otherCores: Math.max(0, otherCores)
    }
  })

/**
 * What every variant process shares: its arguments, a peak-RSS probe, and the one JSON line it prints.
 *
 * Kept free of Effect and of every peer library, so that loading it costs a variant nothing it does not use.
 */

const MB = 1024 * 1024

/** `--name=value` arguments of a variant process. */
export const args: ReadonlyMap<string, string> = new Map(
  process.argv.slice(2).flatMap((arg) => {
    const match = /^--([^=]+)=(.*)$/.exec(arg)
    return match === null ? [] : [[match[1], match[2]] as const]
  })
)

/** A numeric argument, or `fallback` when it is absent. */
export const numberArg = (name: string, fallback: number): number => {
  const raw = args.get(name)
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value)) throw new Error(`--${name} must be a number, got ${raw}`)
  return value
}

/** A string argument that must be one of `choices`. */
export const choiceArg = <const C extends string>(name: string, choices: ReadonlyArray<C>): C => {
  const raw = args.get(name)
  const found = choices.find((choice) => choice === raw)
  if (found === undefined) throw new Error(`--${name} must be one of ${choices.join(", ")}, got ${String(raw)}`)
  return found
}

const collect = (): void => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) {
    gc()
    gc()
  }
}

/** What the probe saw: the RSS before the workload and the highest RSS during it, in MiB. */
export interface Memory {
  readonly baselineRssMb: number
  /** Highest of the sampled RSS and the kernel's high-water mark (`ru_maxrss`) for the whole process. */
  readonly peakRssMb: number
  /** Highest RSS seen by sampling every few milliseconds (only when the event loop lets the timer run). */
  readonly sampledPeakRssMb: number
}

/**
 * Starts watching memory: collects garbage (with `--expose-gc`), records the baseline RSS, then samples the RSS
 * every `everyMillis` until `stop`. The kernel's `maxRSS` is read at `stop` as well, because a busy event loop
 * can starve the sampler exactly when memory peaks.
 */
export const watchMemory = (everyMillis = 5): { readonly stop: () => Memory } => {
  collect()
  const baseline = process.memoryUsage.rss()
  let sampled = baseline
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss()
    if (rss > sampled) sampled = rss
  }, everyMillis)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      const rss = process.memoryUsage.rss()
      if (rss > sampled) sampled = rss
      const kernelPeak = process.resourceUsage().maxRSS * 1024
      return {
        baselineRssMb: round(baseline / MB),
        peakRssMb: round(Math.max(sampled, kernelPeak) / MB),
        sampledPeakRssMb: round(sampled / MB)
      }
    }
  }
}

const round = (value: number): number => Math.round(value * 10) / 10

/**
 * Runs the workload with the memory probe around it, prints its result and the memory figures as one JSON line
 * on stdout, and exits (a limiter with waiters left, or a timer, must not keep the process alive). With
 * `memory: false` (a variant that only coordinates a process it measures itself) the figures are the workload's
 * alone.
 */
export const runVariant = (
  workload: () => Promise<Record<string, unknown>>,
  options: { readonly memory?: boolean } = {}
): void => {
  const memory = options.memory === false ? { stop: () => ({}) } : watchMemory()
  process.once("beforeExit", () => {
    process.stderr.write("the workload never finished: nothing was left to keep the event loop alive\n")
    process.exit(2)
  })
  workload().then(
    (result) => {
      process.stdout.write(JSON.stringify({ ...result, ...memory.stop() }) + "\n", () => process.exit(0))
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
      process.exit(1)
    }
  )
}

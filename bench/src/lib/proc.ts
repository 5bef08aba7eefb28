/**
 * Figures of another process read from Linux's `/proc`, for the benchmarks that run the application as a process of
 * its own (Harvest as `pnpm start` runs it): its CPU time, by thread too, and its peak RSS.
 *
 * Kept free of Effect, like `child.ts`.
 */
import { readFileSync } from "node:fs"

/** Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux). */
const USER_HZ = 100

/** user + system CPU ms of `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` (fields 14 and 15). */
const statCpuMillis = (file: string): number => {
  const text = readFileSync(file, "utf8")
  // The command name (field 2) is in parentheses and may hold spaces: the fields are counted after it.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / USER_HZ
}

/** CPU ms the process `pid` has used since it started, all its threads (user + system). */
export const cpuMillisOf = (pid: number): number => statCpuMillis(`/proc/${pid}/stat`)

/** The process's peak resident set (`VmHWM` of `/proc/<pid>/status`) in MiB, or `NaN` when it cannot be read. */
export const peakRssMbOf = (pid: number): number => {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? Number.NaN : Math.round((Number(match[1]) / 1024) * 10) / 10
  } catch {
    return Number.NaN
  }
}

/**
 * Starts counting the CPU of `pid`'s main thread and of its other threads; `stop` gives the CPU ms each used meanwhile.
 * Node 20 names every thread `node`, so the others (libuv's pool doing file system work, V8's helpers doing
 * concurrent GC and compilation, the inspector) are counted together.
 */
export const watchThreads = (pid: number) => {
  const read = () => {
    const main = statCpuMillis(`/proc/${pid}/task/${pid}/stat`)
    return { main, all: cpuMillisOf(pid) }
  }
  const start = read()
  return {
    stop: (): { readonly mainThreadCpuMillis: number; readonly otherThreadsCpuMillis: number } => {
      const end = read()
      const main = end.main - start.main
      return { mainThreadCpuMillis: main, otherThreadsCpuMillis: end.all - start.all - main }
    }
  }
}

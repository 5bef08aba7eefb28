/**
 * What the fetch benchmarks (Harvest and the baseline client) share: the simulated upstream in a process of its
 * own, the URLs, a data directory on tmpfs or disk, and the event-loop delay of the client's main thread.
 *
 * Kept free of Effect, so that the baseline client loads none of it.
 */
import { type ChildProcess, fork } from "node:child_process"
import { mkdirSync, rmSync } from "node:fs"
import { createServer as createNetServer } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"

export interface UpstreamStats {
  readonly requests: number
  /** The sum over hosts of each host's most requests in flight at once. */
  readonly peakInFlight: number
  /** CPU time the upstream process used since it listened (user + system). */
  readonly cpuMillis: number
}

export interface RunningUpstream {
  readonly origins: ReadonlyArray<string>
  readonly reset: () => void
  readonly stats: () => Promise<UpstreamStats>
  readonly stop: () => void
}

/** Forks `upstream.mjs` (a sibling of the running variant in `.tmp/scale`) and waits until every host listens. */
export const startUpstream = (hosts: number): Promise<RunningUpstream> =>
  new Promise((resolve, reject) => {
    const script = new URL("./upstream.mjs", import.meta.url)
    const child: ChildProcess = fork(script, [`--hosts=${hosts}`], { stdio: ["ignore", "ignore", "inherit", "ipc"] })
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`the upstream exited with code ${code}`)))
    child.once("message", (message) => {
      const { origins } = message as { readonly origins: ReadonlyArray<string> }
      resolve({
        origins,
        reset: () => child.send("reset"),
        stats: () =>
          new Promise((done) => {
            child.once("message", (reply) => done((reply as { readonly stats: UpstreamStats }).stats))
            child.send("stats")
          }),
        stop: () => {
          child.removeAllListeners("exit")
          child.disconnect()
        }
      })
    })
  })

/**
 * `n` distinct URLs spread round-robin over the origins, each answered after `latency` ms with a distinct JSON body
 * of about 1 KiB (a listing page of 150 numbers: 0.5 KiB for the first pages, 1.2 KiB for the last), so that no two
 * bodies share a SHA-256 and every body is a file of its own for Harvest (which names files by hash) as for the
 * baseline.
 */
export const urls = (origins: ReadonlyArray<string>, n: number, latency: number): Array<string> =>
  Array.from(
    { length: n },
    (_, i) => `${origins[i % origins.length]}/item/${i}?latency=${latency}&page=${i + 1}&pages=${n}&per=150`
  )

/** Where the bodies go: tmpfs (`/dev/shm`) or the disk (`os.tmpdir()`). */
export type Storage = "shm" | "disk"

/** A fresh directory on `storage`, removed by `remove`. */
export const dataDir = (storage: Storage): { readonly path: string; readonly remove: () => void } => {
  const root = storage === "shm" ? "/dev/shm" : Os.tmpdir()
  const path = Path.join(root, `spindle-bench-${process.pid}-${Math.random().toString(36).slice(2, 8)}`)
  mkdirSync(path, { recursive: true })
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** Starts recording the main thread's event-loop delay; `stop` gives its p50, p99 and maximum in ms. */
export const loopDelay = (resolutionMillis = 5) => {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMillis })
  histogram.enable()
  return {
    stop: () => {
      histogram.disable()
      // The histogram holds the whole delay of each tick of the sampling timer: its resolution is subtracted, so
      // the figures are how late the loop was.
      const late = (ns: number) => Math.max(0, ns / 1e6 - resolutionMillis)
      return {
        loopP50Ms: late(histogram.percentile(50)),
        loopP99Ms: late(histogram.percentile(99)),
        loopMaxMs: late(histogram.max)
      }
    }
  }
}

/** The machine's load while a run went: CPU time of this process and of the whole machine, from `/proc/stat`. */
export const machineLoad = () => {
  const read = () => {
    const cpus = Os.cpus()
    let busy = 0
    let total = 0
    for (const cpu of cpus) {
      const t = cpu.times
      busy += t.user + t.nice + t.sys + t.irq
      total += t.user + t.nice + t.sys + t.irq + t.idle
    }
    return { busy, total }
  }
  const start = read()
  const selfStart = process.cpuUsage()
  return {
    stop: () => {
      const end = read()
      const self = process.cpuUsage(selfStart)
      return {
        machineBusyPercent: (100 * (end.busy - start.busy)) / Math.max(1, end.total - start.total),
        clientCpuMillis: (self.user + self.system) / 1000
      }
    }
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createNetServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

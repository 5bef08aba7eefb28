/**
 * Harvest left running: the compiled entry point `pnpm start` runs, as a process of its own (`startHarvest`, as in
 * `harvest-start.ts`), fed a steady stream of jobs for several minutes, to show that a long run leaks nothing. One
 * job of `--jobSize` URLs is submitted every `jobSize ÷ rate` seconds, the rate being `--urls` over `--minutes`, so
 * the process works at a steady fraction of what it can do for the whole run. Every second this process reads the
 * Harvest process's RSS and open file descriptors from `/proc/<pid>`; the preloaded probe writes the event loop's
 * delay for each minute (`BENCH_PROBE_EVERY`). At the end every job must be completed with every URL succeeded, and
 * the upstream must have served each URL once.
 *
 *   --main=<absolute path of main.mjs> --urls=200000 --minutes=5 --jobSize=2000 --hosts=20 --latency=25
 *   --concurrency=200 --storage=shm|disk
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { setTimeout as sleep } from "node:timers/promises"
import { args, choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"
import { startHarvest } from "../../lib/harvestProcess.js"
import { cpuMillisOf } from "../../lib/proc.js"

const n = numberArg("urls", 200_000)
const minutes = numberArg("minutes", 5)
const jobSize = numberArg("jobSize", 2000)
const hosts = numberArg("hosts", 20)
const latency = numberArg("latency", 25)
const concurrency = numberArg("concurrency", 200)
const storage = choiceArg("storage", ["shm", "disk"])
const main = args.get("main")
if (main === undefined || !existsSync(main)) throw new Error(`--main must name the built main.mjs, got ${main}`)

const minuteMillis = 60_000

interface JobView {
  readonly id: string
  readonly status: string
  readonly total: number
  readonly succeeded: number
  readonly failed: number
}

const rssMbOf = (pid: number): number => {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return match === null ? Number.NaN : Number(match[1]) / 1024
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length === 0 ? Number.NaN : sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

runVariant(async () => {
  const upstream = await startUpstream(hosts)
  const harvest = await startHarvest({
    main,
    storage,
    concurrency,
    probeEnv: { BENCH_PROBE_EVERY: String(minuteMillis) }
  }).catch((error) => {
    upstream.stop()
    throw error
  })
  const { alive, base, pid } = harvest
  try {
    const list = urls(upstream.origins, n, latency)
    upstream.reset()
    process.kill(pid, "SIGUSR2")
    await harvest.awaitProbe("started.json", 10_000)
    const fdsBefore = readdirSync(`/proc/${pid}/fd`).length

    const cpuBefore = cpuMillisOf(pid)
    const load = machineLoad()
    const started = performance.now()
    const jobs = Math.ceil(n / jobSize)
    const spacingMillis = (minutes * minuteMillis) / jobs
    const samples: Array<{ readonly atMs: number; readonly rssMb: number; readonly fds: number }> = []
    const sampler = setInterval(() => {
      try {
        samples.push({
          atMs: performance.now() - started,
          rssMb: rssMbOf(pid),
          fds: readdirSync(`/proc/${pid}/fd`).length
        })
      } catch {
        // The process is gone: `alive` says so.
      }
    }, 1000)

    // Submits job k at k × spacing, polls the unfinished ones once a second, until all are completed.
    const open = new Map<string, number>()
    const done: Array<JobView & { readonly completedAtMs: number }> = []
    let submitted = 0
    let refused = 0
    let postsRefused = 0
    while (done.length < jobs) {
      alive()
      const now = performance.now() - started
      while (submitted < jobs && now >= submitted * spacingMillis) {
        const slice = list.slice(submitted * jobSize, (submitted + 1) * jobSize)
        const body = JSON.stringify({ urls: slice, perHostConcurrency: 1000 })
        let job: JobView | undefined
        // Refused while the loop is slow (the load shedder's 503): submitted again after its Retry-After, as a
        // client would, and counted.
        while (job === undefined) {
          alive()
          const response = await fetch(`${base}/jobs`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body
          })
          if (response.status === 202) job = (await response.json()) as JobView
          else if (response.status === 503) {
            postsRefused++
            await response.arrayBuffer()
            await sleep(1000 * Math.max(0.1, Number(response.headers.get("retry-after") ?? "1")))
          } else throw new Error(`POST /jobs answered ${response.status}: ${await response.text()}`)
        }
        open.set(job.id, slice.length)
        submitted++
      }
      for (const id of open.keys()) {
        const polled = await fetch(`${base}/jobs/${id}`)
        if (polled.status !== 200) {
          refused++
          await polled.arrayBuffer()
          continue
        }
        const view = (await polled.json()) as JobView
        if (view.status === "completed" || view.status === "failed" || view.status === "cancelled") {
          open.delete(id)
          done.push({ ...view, completedAtMs: performance.now() - started })
        }
      }
      await sleep(Math.min(1000, Math.max(10, (submitted < jobs ? submitted * spacingMillis : Infinity) - now)))
    }
    const totalMillis = performance.now() - started
    clearInterval(sampler)
    const cpuMillis = cpuMillisOf(pid) - cpuBefore
    const { clientCpuMillis: _coordinator, ...machine } = load.stop()
    process.kill(pid, "SIGUSR2")
    await harvest.awaitProbe("report.json", 120_000)
    const periodsFile = `${harvest.probeDir}/periods.jsonl`
    const periods = existsSync(periodsFile)
      ? readFileSync(periodsFile, "utf8").trim().split("\n").filter((line) => line !== "").map((line) =>
        JSON.parse(line) as { readonly atMs: number; readonly loopP99Ms: number; readonly loopMaxMs: number }
      )
      : []
    const upstreamStats = await upstream.stats()
    // Idle connections to the upstream close after their keep-alive timeout (seconds): the count is read once it is
    // back to where it started, or after 15 s.
    const fdsOf = () => readdirSync(`/proc/${pid}/fd`).length
    const settleBy = performance.now() + 15_000
    while (fdsOf() > fdsBefore && performance.now() < settleBy) await sleep(100)
    const fdsAtEnd = fdsOf()
    await harvest.stop()

    const notCompleted = done.filter((job) => job.status !== "completed")
    if (notCompleted.length > 0) throw new Error(`${notCompleted.length} job(s) did not complete`)
    const succeeded = done.reduce((sum, job) => sum + job.succeeded, 0)
    const failed = done.reduce((sum, job) => sum + job.failed, 0)

    // Per whole minute of the run: the RSS and descriptor samples taken in it, the loop's delay over it, and the
    // URLs of the jobs completed in it.
    const wholeMinutes = Math.floor(totalMillis / minuteMillis)
    const perMinute = Array.from({ length: wholeMinutes }, (_, m) => {
      const inMinute = samples.filter((s) => s.atMs >= m * minuteMillis && s.atMs < (m + 1) * minuteMillis)
      // The probe's period that ends at this minute's end (its timer fires a little late, never early).
      const period = periods.find((p) => p.atMs >= (m + 1) * minuteMillis && p.atMs < (m + 1) * minuteMillis + 30_000)
      return {
        minute: m + 1,
        urls: done
          .filter((job) => job.completedAtMs >= m * minuteMillis && job.completedAtMs < (m + 1) * minuteMillis)
          .reduce((sum, job) => sum + job.total, 0),
        rssMb: Math.round(median(inMinute.map((s) => s.rssMb)) * 10) / 10,
        fds: median(inMinute.map((s) => s.fds)),
        loopP99Ms: period === undefined ? Number.NaN : Math.round(period.loopP99Ms * 10) / 10,
        loopMaxMs: period === undefined ? Number.NaN : Math.round(period.loopMaxMs)
      }
    })
    return {
      urls: n,
      jobs,
      jobSize,
      succeeded,
      failed,
      totalMillis,
      targetMillis: minutes * minuteMillis,
      cpuMillis,
      pollsRefused: refused,
      postsRefused,
      upstreamRequests: upstreamStats.requests,
      fdsBefore,
      fdsAtEnd,
      ...machine,
      perMinute
    }
  } finally {
    harvest.dispose()
    upstream.stop()
  }
}, { memory: false })

/**
 * Harvest left running: the compiled entry point `pnpm start` runs, as a process of its own (as in
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
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { args, choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { dataDir, freePort, machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"
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

const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
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
  const dir = dataDir(storage)
  const probeDir = Path.join(dir.path, "probe")
  const dataPath = Path.join(dir.path, "data")
  mkdirSync(probeDir)
  mkdirSync(dataPath)
  const port = await freePort()
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataPath,
    MAX_CONCURRENCY: String(concurrency),
    HARVEST_ALLOW_PRIVATE_NETWORKS: "true",
    SHUTDOWN_GRACE_MS: "1000",
    BENCH_PROBE_DIR: probeDir,
    BENCH_PROBE_EVERY: String(minuteMillis)
  }
  delete env.DATABASE_URL
  delete env.REDIS_URL
  const probe = fileURLToPath(new URL("./probe.mjs", import.meta.url))
  const child = spawn(process.execPath, ["--import", probe, main], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const keep = (chunk: string) => {
    output = (output + chunk).slice(-4000)
  }
  child.stdout.setEncoding("utf8").on("data", keep)
  child.stderr.setEncoding("utf8").on("data", keep)
  let exited: number | string | undefined
  const exit = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = code ?? signal ?? "unknown"
      resolve()
    })
  )
  const alive = () => {
    if (exited !== undefined) throw new Error(`Harvest exited (${exited}): ${output.trim().split("\n").at(-1) ?? ""}`)
  }
  try {
    const pid = child.pid!
    const base = `http://127.0.0.1:${port}`
    const spawned = performance.now()
    for (;;) {
      alive()
      const health = await fetch(`${base}/health`).then((response) => response.status, () => 0)
      if (health === 200) break
      if (performance.now() - spawned > 60_000) throw new Error("Harvest did not answer /health within 60 s")
      await sleep(20)
    }
    const list = urls(upstream.origins, n, latency)
    upstream.reset()
    process.kill(pid, "SIGUSR2")
    const startedFile = Path.join(probeDir, "started.json")
    while (!existsSync(startedFile)) {
      alive()
      await sleep(5)
    }

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
    const reportFile = Path.join(probeDir, "report.json")
    while (!existsSync(reportFile)) {
      alive()
      await sleep(5)
    }
    const periodsFile = Path.join(probeDir, "periods.jsonl")
    const periods = existsSync(periodsFile)
      ? readFileSync(periodsFile, "utf8").trim().split("\n").filter((line) => line !== "").map((line) =>
        JSON.parse(line) as { readonly atMs: number; readonly loopP99Ms: number; readonly loopMaxMs: number }
      )
      : []
    const upstreamStats = await upstream.stats()
    const fdsAtEnd = readdirSync(`/proc/${pid}/fd`).length
    child.kill("SIGTERM")
    await Promise.race([exit, sleep(30_000)])

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
      fdsAtEnd,
      ...machine,
      perMinute
    }
  } finally {
    if (exited === undefined) child.kill("SIGKILL")
    upstream.stop()
    dir.remove()
  }
}, { memory: false })

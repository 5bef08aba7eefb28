/**
 * Harvest as users start it: the compiled entry point `pnpm start` runs (`node <dist>/main.mjs`, built by Harvest's
 * own `scripts/build.mjs`) as a process of its own, configured through the environment, against the simulated
 * upstream; this process only coordinates: it submits one job of `--urls` URLs over HTTP, polls it, and measures the
 * Harvest process from outside (its CPU time and peak RSS from `/proc/<pid>`), and from inside through the
 * preloaded `probe.mjs` (its event-loop delay, and with `--profile` a CPU profile of the job).
 *
 *   --main=<absolute path of main.mjs> --urls=10000 --hosts=20 --latency=25 --concurrency=200 --storage=shm|disk
 *   [--profile=<sampling interval in µs>]
 *
 * Environment of the Harvest process: this process's, plus `PORT` (a free port), `HOST=127.0.0.1`, `DATA_DIR`
 * (fresh, on tmpfs or disk), `MAX_CONCURRENCY`, `HARVEST_ALLOW_PRIVATE_NETWORKS=true` (the upstream is on
 * loopback), `SHUTDOWN_GRACE_MS=1000`; `DATABASE_URL` and `REDIS_URL` are removed (SQLite in `DATA_DIR`, like a
 * first `pnpm start`).
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { args, choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { dataDir, freePort, machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"
import { cpuMillisOf, peakRssMbOf, watchThreads } from "../../lib/proc.js"
import { splitProfile } from "../../lib/profileSplit.js"

const n = numberArg("urls", 10_000)
const hosts = numberArg("hosts", 20)
const latency = numberArg("latency", 25)
const concurrency = numberArg("concurrency", 200)
const storage = choiceArg("storage", ["shm", "disk"])
const pollMillis = numberArg("poll", 250)
const profileInterval = numberArg("profile", 0)
const main = args.get("main")
if (main === undefined || !existsSync(main)) throw new Error(`--main must name the built main.mjs, got ${main}`)

/** The repository's root: `pnpm start` runs there. */
const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

interface JobView {
  readonly id: string
  readonly status: string
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly finishedAt?: string | null
}

/** Waits until `file` exists (the probe writes its answers whole, by rename), or fails after `timeoutMillis`. */
const awaitFile = async (file: string, timeoutMillis: number, alive: () => void): Promise<string> => {
  const deadline = performance.now() + timeoutMillis
  while (!existsSync(file)) {
    alive()
    if (performance.now() > deadline) throw new Error(`the probe did not write ${Path.basename(file)}`)
    await sleep(5)
  }
  return readFileSync(file, "utf8")
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
    BENCH_PROBE_PROFILE: String(profileInterval)
  }
  delete env.DATABASE_URL
  delete env.REDIS_URL
  const probe = fileURLToPath(new URL("./probe.mjs", import.meta.url))
  const spawned = performance.now()
  const child = spawn(process.execPath, ["--import", probe, main], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  // The last lines of its output, to say why it failed if it does.
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
    for (;;) {
      alive()
      const health = await fetch(`${base}/health`).then((response) => response.status, () => 0)
      if (health === 200) break
      if (performance.now() - spawned > 60_000) throw new Error("Harvest did not answer /health within 60 s")
      await sleep(20)
    }
    const startupMillis = performance.now() - spawned
    const list = urls(upstream.origins, n, latency)
    const body = JSON.stringify({ urls: list, perHostConcurrency: 1000 })
    upstream.reset()
    process.kill(pid, "SIGUSR2")
    await awaitFile(Path.join(probeDir, "started.json"), 10_000, alive)

    const cpuBefore = cpuMillisOf(pid)
    const threads = watchThreads(pid)
    const load = machineLoad()
    const startedAt = Date.now()
    const started = performance.now()
    const response = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body
    })
    if (response.status !== 202) throw new Error(`POST /jobs answered ${response.status}: ${await response.text()}`)
    const job = (await response.json()) as JobView
    const submitMillis = performance.now() - started
    let view = job
    // Polls that were not answered 200 (the load shedder answers 503 while the loop is slow): tried again.
    let pollsRefused = 0
    while (view.status === "queued" || view.status === "running") {
      await sleep(pollMillis)
      alive()
      const polled = await fetch(`${base}/jobs/${job.id}`)
      if (polled.status === 200) view = (await polled.json()) as JobView
      else {
        pollsRefused++
        await polled.arrayBuffer()
      }
    }
    const seenMillis = performance.now() - started
    const harvestCpuMillis = cpuMillisOf(pid) - cpuBefore
    const threadFigures = threads.stop()
    const loadFigures = load.stop()
    process.kill(pid, "SIGUSR2")
    const report = JSON.parse(await awaitFile(Path.join(probeDir, "report.json"), 120_000, alive)) as {
      readonly loopP50Ms: number
      readonly loopP99Ms: number
      readonly loopMaxMs: number
      readonly profile?: string
      readonly error?: string
    }
    if (report.error !== undefined) throw new Error(`the probe failed: ${report.error}`)
    const health = (await (await fetch(`${base}/health`)).json()) as { readonly eventLoop?: { p99Ms?: number } }
    const peakRssMb = peakRssMbOf(pid)
    const upstreamStats = await upstream.stats()
    if (view.status !== "completed") throw new Error(`the job ended ${view.status}`)
    if (typeof view.finishedAt !== "string") throw new Error("the completed job has no finishedAt")

    child.kill("SIGTERM")
    const stopping = performance.now()
    await Promise.race([exit, sleep(30_000)])
    if (exited === undefined) child.kill("SIGKILL")
    const shutdownMillis = performance.now() - stopping

    const { profile: profileFile, ...loopFigures } = report
    const profile = profileFile === undefined ? undefined : splitProfile(profileFile, [main])
    const { clientCpuMillis: coordinatorCpuMillis, ...machine } = loadFigures
    return {
      urls: n,
      total: view.total,
      succeeded: view.succeeded,
      failed: view.failed,
      // From just before the POST to the job's `finishedAt` (the moment its last item settled, ms precision).
      millis: Date.parse(view.finishedAt) - startedAt,
      submitMillis,
      seenMillis,
      pollsRefused,
      startupMillis,
      shutdownMillis,
      exitCode: exited ?? "killed",
      idealMillis: (n / concurrency) * latency,
      ...loopFigures,
      healthLoopP99Ms: health.eventLoop?.p99Ms,
      ...machine,
      clientCpuMillis: harvestCpuMillis,
      ...threadFigures,
      coordinatorCpuMillis,
      peakRssMb,
      upstreamRequests: upstreamStats.requests,
      upstreamPeakInFlight: upstreamStats.peakInFlight,
      upstreamCpuMillis: upstreamStats.cpuMillis,
      ...(profile === undefined ? {} : { profileIntervalMicros: profileInterval, profile })
    }
  } finally {
    if (exited === undefined) child.kill("SIGKILL")
    upstream.stop()
    dir.remove()
  }
}, { memory: false })

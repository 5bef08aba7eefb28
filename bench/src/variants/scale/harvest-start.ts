/**
 * Harvest as users start it: the compiled entry point `pnpm start` runs (`node <dist>/main.mjs`, built by Harvest's
 * own `scripts/build.mjs`) as a process of its own, configured through the environment, against the simulated
 * upstream; this process only coordinates: it submits one job of `--urls` URLs over HTTP, polls it, and measures the
 * Harvest process from outside (its CPU time and peak RSS from `/proc/<pid>`), and from inside through the
 * preloaded `probe.mjs` (its event-loop delay, and with `--profile` a CPU profile of the job).
 *
 *   --main=<absolute path of main.mjs> --urls=10000 --hosts=20 --latency=25 --concurrency=200 --storage=shm|disk
 *   [--profile=<sampling interval in µs>] [--warmup=1]
 *
 * With `--warmup=1` a first job of as many URLs (the same ones, marked so that their paths differ) runs to its end
 * before the measured one, in the same Harvest process: the measured job then runs on code V8 has already compiled,
 * as every job but the first does in a server left running.
 *
 * The Harvest process is started by `startHarvest` (`lib/harvestProcess.ts`, which says its environment).
 */
import { existsSync } from "node:fs"
import * as Path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { args, choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"
import { startHarvest } from "../../lib/harvestProcess.js"
import { cpuMillisOf, peakRssMbOf, watchThreads } from "../../lib/proc.js"
import { splitProfile, type StatementTime } from "../../lib/profileSplit.js"

const n = numberArg("urls", 10_000)
const hosts = numberArg("hosts", 20)
const latency = numberArg("latency", 25)
const concurrency = numberArg("concurrency", 200)
const storage = choiceArg("storage", ["shm", "disk"])
const pollMillis = numberArg("poll", 250)
const profileInterval = numberArg("profile", 0)
const warmup = numberArg("warmup", 0) > 0
const main = args.get("main")
if (main === undefined || !existsSync(main)) throw new Error(`--main must name the built main.mjs, got ${main}`)

interface JobView {
  readonly id: string
  readonly status: string
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly finishedAt?: string | null
}

runVariant(async () => {
  const upstream = await startUpstream(hosts)
  const harvest = await startHarvest({
    main,
    storage,
    concurrency,
    probeEnv: { BENCH_PROBE_PROFILE: String(profileInterval) }
  }).catch((error) => {
    upstream.stop()
    throw error
  })
  const { alive, base, pid, startupMillis } = harvest
  // `POST /jobs` of `body`, its answer checked.
  const submit = async (body: string): Promise<JobView> => {
    const response = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body
    })
    if (response.status !== 202) throw new Error(`POST /jobs answered ${response.status}: ${await response.text()}`)
    return (await response.json()) as JobView
  }
  // Polls `job` until it has ended; `refused` counts polls not answered 200 (the load shedder answers 503 while the
  // loop is slow), which are tried again.
  const untilEnded = async (job: JobView): Promise<{ readonly view: JobView; readonly refused: number }> => {
    let view = job
    let refused = 0
    while (view.status === "queued" || view.status === "running") {
      await sleep(pollMillis)
      alive()
      const polled = await fetch(`${base}/jobs/${job.id}`)
      if (polled.status === 200) view = (await polled.json()) as JobView
      else {
        refused++
        await polled.arrayBuffer()
      }
    }
    return { view, refused }
  }
  try {
    const list = urls(upstream.origins, n, latency)
    const body = JSON.stringify({ urls: list, perHostConcurrency: 1000 })
    if (warmup) {
      const warm = JSON.stringify({ urls: list.map((url) => `${url}&warmup=1`), perHostConcurrency: 1000 })
      const { view } = await untilEnded(await submit(warm))
      if (view.status !== "completed") throw new Error(`the warm-up job ended ${view.status}`)
    }
    upstream.reset()
    process.kill(pid, "SIGUSR2")
    await harvest.awaitProbe("started.json", 10_000)

    const cpuBefore = cpuMillisOf(pid)
    const threads = watchThreads(pid)
    const load = machineLoad()
    const startedAt = Date.now()
    const started = performance.now()
    const job = await submit(body)
    const submitMillis = performance.now() - started
    const { refused: pollsRefused, view } = await untilEnded(job)
    const seenMillis = performance.now() - started
    const harvestCpuMillis = cpuMillisOf(pid) - cpuBefore
    const threadFigures = threads.stop()
    const loadFigures = load.stop()
    process.kill(pid, "SIGUSR2")
    const report = JSON.parse(await harvest.awaitProbe("report.json", 120_000)) as {
      readonly loopP50Ms: number
      readonly loopP99Ms: number
      readonly loopMaxMs: number
      readonly profile?: string
      readonly statements?: ReadonlyArray<StatementTime>
      readonly error?: string
    }
    if (report.error !== undefined) throw new Error(`the probe failed: ${report.error}`)
    const health = (await (await fetch(`${base}/health`)).json()) as { readonly eventLoop?: { p99Ms?: number } }
    const peakRssMb = peakRssMbOf(pid)
    const upstreamStats = await upstream.stats()
    if (view.status !== "completed") throw new Error(`the job ended ${view.status}`)
    if (typeof view.finishedAt !== "string") throw new Error("the completed job has no finishedAt")

    const { exitCode, shutdownMillis } = await harvest.stop()

    const { profile: profileFile, statements, ...loopFigures } = report
    const profile = profileFile === undefined ? undefined : splitProfile(profileFile, Path.dirname(main))
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
      exitCode,
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
      ...(profile === undefined ? {} : { profileIntervalMicros: profileInterval, profile, statements })
    }
  } finally {
    harvest.dispose()
    upstream.stop()
  }
}, { memory: false })

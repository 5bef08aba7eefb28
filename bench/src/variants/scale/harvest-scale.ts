/**
 * Harvest scaled out: `--instances` processes of Harvest (`harvest-instance`) on one Postgres database (fresh,
 * dropped afterwards) and one Redis, sharing one `DATA_DIR`, each with `MAX_CONCURRENCY=--concurrency`. One job of
 * `--urls` URLs is submitted to the first instance and timed from the submission to its last item settled; every
 * instance leases from the same queue. The coordinator (this process) only submits, polls and reads the result; it
 * measures each instance's CPU time and peak RSS from `/proc/<pid>`, and its event-loop delay through the preloaded
 * `probe.mjs` (as `harvest-start` does).
 *
 *   --instances=1|3 --urls=10000 --hosts=20 --latency=25 --concurrency=50 --storage=shm
 *
 * `SPINDLE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`) names the server used to create the
 * database, `REDIS_URL` (default `redis://127.0.0.1:6379`) the Redis.
 */
import * as Databases from "@spindle/testkit/Databases"
import * as Effect from "effect/Effect"
import { type ChildProcess, fork } from "node:child_process"
import { existsSync, mkdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { dataDir, freePort, machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"
import { cpuMillisOf, peakRssMbOf } from "../../lib/proc.js"

const instances = numberArg("instances", 1)
const n = numberArg("urls", 10_000)
const hosts = numberArg("hosts", 20)
const latency = numberArg("latency", 25)
const concurrency = numberArg("concurrency", 50)
const storage = choiceArg("storage", ["shm", "disk"])
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

interface Instance {
  readonly port: number
  readonly child: ChildProcess
  readonly query: (sql: string) => Promise<ReadonlyArray<Record<string, unknown>>>
  /** Where its probe answers. */
  readonly probeDir: string
}

/** Waits until the probe has written `file` (whole, by rename) and reads it. */
const awaitFile = async (file: string): Promise<string> => {
  const deadline = performance.now() + 30_000
  while (!existsSync(file)) {
    if (performance.now() > deadline) throw new Error(`the probe did not write ${file}`)
    await sleep(5)
  }
  return readFileSync(file, "utf8")
}

const startInstance = async (databaseUrl: string, dir: string, probes: string, index: number): Promise<Instance> => {
  const port = await freePort()
  const script = fileURLToPath(new URL("./harvest-instance.mjs", import.meta.url))
  const probe = fileURLToPath(new URL("./probe.mjs", import.meta.url))
  const probeDir = Path.join(probes, String(index))
  mkdirSync(probeDir)
  const child = fork(script, [], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    execArgv: [...process.execArgv, "--import", probe],
    env: {
      BENCH_PROBE_DIR: probeDir,
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: dir,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      MAX_CONCURRENCY: String(concurrency),
      HARVEST_ALLOW_PRIVATE_NETWORKS: "true",
      SHUTDOWN_GRACE_MS: "1000"
    }
  })
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve())
    child.once("exit", (code) => reject(new Error(`an instance exited with code ${code} before it was ready`)))
  })
  child.removeAllListeners("exit")
  return {
    port,
    child,
    probeDir,
    query: (sql) =>
      new Promise((resolve, reject) => {
        child.once("message", (reply) => {
          const { error, rows } = reply as { readonly rows?: ReadonlyArray<Record<string, unknown>>; error?: string }
          if (rows !== undefined) resolve(rows)
          else reject(new Error(error))
        })
        child.send({ query: sql })
      })
  }
}

const stopAll = (running: ReadonlyArray<Instance>) =>
  Promise.all(running.map((instance) =>
    new Promise<void>((resolve) => {
      if (instance.child.exitCode !== null) return resolve()
      const timer = setTimeout(() => {
        instance.child.kill("SIGKILL")
        resolve()
      }, 15_000)
      instance.child.once("exit", () => {
        clearTimeout(timer)
        resolve()
      })
      instance.child.disconnect()
    })
  ))

runVariant(async () => {
  const upstream = await startUpstream(hosts)
  const dir = dataDir(storage)
  // Not in `DATA_DIR`, which is Harvest's.
  const probes = dataDir("shm")
  try {
    return await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const databaseUrl = yield* Databases.freshPostgres
      const running: Array<Instance> = []
      // The instances stop before the database is dropped (when the scope closes).
      return yield* Effect.promise(() => run(databaseUrl, running).finally(() => stopAll(running)))
    })))
  } finally {
    upstream.stop()
    dir.remove()
    probes.remove()
  }

  async function run(databaseUrl: string, running: Array<Instance>) {
    // The first instance migrates the fresh database; the others start once it has.
    running.push(await startInstance(databaseUrl, dir.path, probes.path, 0))
    await Promise.all(Array.from({ length: instances - 1 }, async (_, i) => {
      running.push(await startInstance(databaseUrl, dir.path, probes.path, i + 1))
    }))
    const base = `http://127.0.0.1:${running[0].port}`
    const list = urls(upstream.origins, n, latency)
    upstream.reset()
    for (const instance of running) instance.child.kill("SIGUSR2")
    await Promise.all(running.map((instance) => awaitFile(Path.join(instance.probeDir, "started.json"))))
    const cpuBefore = running.map((instance) => cpuMillisOf(instance.child.pid!))
    const load = machineLoad()
    const startedAt = Date.now()
    const response = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ urls: list, perHostConcurrency: 1000 })
    })
    if (response.status !== 202) throw new Error(`POST /jobs answered ${response.status}`)
    const job = (await response.json()) as { readonly id: string }
    if (!/^[0-9a-f-]{36}$/.test(job.id)) throw new Error(`unexpected job id ${job.id}`)
    let view = { status: "queued", succeeded: 0, failed: 0 }
    while (view.status !== "completed") {
      await sleep(250)
      view = (await (await fetch(`${base}/jobs/${job.id}`)).json()) as typeof view
    }
    const loadFigures = load.stop()
    const cpu = running.map((instance, i) => cpuMillisOf(instance.child.pid!) - cpuBefore[i])
    for (const instance of running) instance.child.kill("SIGUSR2")
    const loops = await Promise.all(
      running.map(async (instance) =>
        JSON.parse(await awaitFile(Path.join(instance.probeDir, "report.json"))) as { readonly loopP99Ms: number }
      )
    )
    const rss = running.map((instance) => peakRssMbOf(instance.child.pid!))
    const stats = await upstream.stats()
    const rows = await running[0].query(
      `SELECT MAX(finished_at) AS last FROM spindle_jobs WHERE group_key = '${job.id}'`
    )
    const millis = Number(rows[0]?.last) - startedAt
    return {
      instances,
      concurrencyPerInstance: concurrency,
      urls: n,
      succeeded: view.succeeded,
      failed: view.failed,
      millis,
      idealMillis: (n / (concurrency * instances)) * latency,
      upstreamRequests: stats.requests,
      upstreamCpuMillis: stats.cpuMillis,
      ...loadFigures,
      // The instances' own figures (`clientCpuMillis` above is the coordinator's).
      harvestCpuMillis: cpu.reduce((sum, millis) => sum + millis, 0),
      instanceCpuMillis: cpu,
      loopP99Ms: Math.max(...loops.map((loop) => loop.loopP99Ms)),
      instanceLoopP99Ms: loops.map((loop) => loop.loopP99Ms),
      peakRssMb: Math.max(...rss),
      instancePeakRssMb: rss
    }
  }
}, { memory: false })

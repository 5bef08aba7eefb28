/**
 * Harvest scaled out: `--instances` processes of Harvest (`harvest-instance`) on one Postgres database (fresh,
 * dropped afterwards) and one Redis, sharing one `DATA_DIR`, each with `MAX_CONCURRENCY=--concurrency`. One job of
 * `--urls` URLs is submitted to the first instance and timed from the submission to its last item settled; every
 * instance leases from the same queue. The coordinator (this process) only submits, polls and reads the result.
 *
 *   --instances=1|3 --urls=10000 --hosts=20 --latency=25 --concurrency=50 --storage=shm
 *
 * `SPINDLE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`) names the server used to create the
 * database, `REDIS_URL` (default `redis://127.0.0.1:6379`) the Redis.
 */
import * as Databases from "@spindle/testkit/Databases"
import * as Effect from "effect/Effect"
import { type ChildProcess, fork } from "node:child_process"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { dataDir, freePort, machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"

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
}

const startInstance = async (databaseUrl: string, dir: string): Promise<Instance> => {
  const port = await freePort()
  const script = fileURLToPath(new URL("./harvest-instance.mjs", import.meta.url))
  const child = fork(script, [], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    env: {
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
  }

  async function run(databaseUrl: string, running: Array<Instance>) {
    // The first instance migrates the fresh database; the others start once it has.
    running.push(await startInstance(databaseUrl, dir.path))
    await Promise.all(Array.from({ length: instances - 1 }, async () => {
      running.push(await startInstance(databaseUrl, dir.path))
    }))
    const base = `http://127.0.0.1:${running[0].port}`
    const list = urls(upstream.origins, n, latency)
    upstream.reset()
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
      ...loadFigures
    }
  }
})

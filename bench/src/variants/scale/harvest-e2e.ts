/**
 * Harvest end to end, bundled in the bench: the real service (`Server.make` from `apps/harvest/src/Server.ts`,
 * configured from the environment like `pnpm start`) in this process, bundled with it by `appLauncher.ts`, the
 * simulated upstream in another, one job of `--urls` URLs submitted over HTTP, timed from the submission to the
 * moment its last item was settled.
 *
 *   --urls=10000 --hosts=20 --latency=25 --concurrency=200 --storage=shm|disk
 *
 * Environment set here: `PORT` (a free port), `DATA_DIR` (fresh, on tmpfs or disk), `MAX_CONCURRENCY`,
 * `HARVEST_ALLOW_PRIVATE_NETWORKS=true` (the upstream is on loopback), `SHUTDOWN_GRACE_MS=1000`. `DATABASE_URL` and
 * `REDIS_URL` pass through from the parent when set. The process is set up as Harvest's own entry points set theirs
 * up (`Startup.limitHeapGrowth`, the first thing `main.ts` does), so that only the way the code is loaded differs
 * from the row that starts Harvest as users do.
 */
import * as HarvestConfig from "@spindle/harvest/src/HarvestConfig.js"
import * as Server from "@spindle/harvest/src/Server.js"
import * as Startup from "@spindle/harvest/src/Startup.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { setTimeout as sleep } from "node:timers/promises"
import { choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { dataDir, freePort, loopDelay, machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"

const n = numberArg("urls", 10_000)
const hosts = numberArg("hosts", 20)
const latency = numberArg("latency", 25)
const concurrency = numberArg("concurrency", 200)
const storage = choiceArg("storage", ["shm", "disk"])
const pollMillis = numberArg("poll", 250)

Startup.limitHeapGrowth()

/**
 * The part of `@effect/sql`'s `SqlClient` this benchmark reads, under the same tag key, so the settled times of the
 * job's items can be read from Harvest's own database connection (`@effect/sql` is Harvest's dependency, not the
 * benchmark's).
 */
interface SqlReader {
  readonly unsafe: (sql: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, unknown>
}
const SqlReader = Context.GenericTag<SqlReader>("@effect/sql/SqlClient")

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
  const dir = dataDir(storage)
  try {
    const port = await freePort()
    Object.assign(process.env, {
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: dir.path,
      MAX_CONCURRENCY: String(concurrency),
      HARVEST_ALLOW_PRIVATE_NETWORKS: "true",
      SHUTDOWN_GRACE_MS: "1000"
    })
    const base = `http://127.0.0.1:${port}`
    const list = urls(upstream.origins, n, latency)
    const body = JSON.stringify({ urls: list, perHostConcurrency: 1000 })
    const program = Effect.gen(function*() {
      const context = yield* Layer.build(Server.make(HarvestConfig.layer))
      return yield* Effect.promise(async () => {
        upstream.reset()
        const loop = loopDelay()
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
        while (view.status !== "completed") {
          await sleep(pollMillis)
          const polled = await fetch(`${base}/jobs/${job.id}`)
          view = (await polled.json()) as JobView
        }
        const seenMillis = performance.now() - started
        const loopFigures = loop.stop()
        const loadFigures = load.stop()
        const upstreamStats = await upstream.stats()
        if (!/^[0-9a-f-]{36}$/.test(job.id)) throw new Error(`unexpected job id ${job.id}`)
        const rows = await Effect.runPromise(
          Context.unsafeGet(context, SqlReader).unsafe(
            `SELECT MAX(finished_at) AS last FROM spindle_jobs WHERE group_key = '${job.id}'`
          )
        )
        const lastSettled = Number(rows[0]?.last)
        return {
          urls: n,
          total: view.total,
          succeeded: view.succeeded,
          failed: view.failed,
          millis: lastSettled - startedAt,
          // The same end as the job's `finishedAt` (what the row that runs Harvest as a process of its own reads).
          finishedAtMillis: typeof view.finishedAt === "string" ? Date.parse(view.finishedAt) - startedAt : null,
          submitMillis,
          seenMillis,
          idealMillis: (n / concurrency) * latency,
          ...loopFigures,
          ...loadFigures,
          upstreamRequests: upstreamStats.requests,
          upstreamPeakInFlight: upstreamStats.peakInFlight,
          upstreamCpuMillis: upstreamStats.cpuMillis
        }
      })
    })
    return await Effect.runPromise(
      program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))
    )
  } finally {
    upstream.stop()
    dir.remove()
  }
})

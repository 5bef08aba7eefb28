/**
 * The baseline fetch client: what a programmer would write in a few lines instead of running Harvest. `p-limit`
 * bounds the GETs in flight, undici's `request` over an `Agent({ connections })` fetches, and each body is hashed
 * (SHA-256) and written to a file of its own named by its hash, in the same kind of directory Harvest would use.
 * No retries, no database, no per-host limits.
 *
 *   --urls=10000 --hosts=20 --latency=25 --concurrency=200 --connections=20 --storage=shm|disk [--warmup=1]
 *
 * With `--warmup=1` the same URLs (marked so that their paths differ) are fetched once, unmeasured, before the
 * measured run, in the same process.
 */
import { createHash } from "node:crypto"
import { mkdirSync } from "node:fs"
import { writeFile } from "node:fs/promises"
import * as Path from "node:path"
import pLimit from "p-limit"
import { Agent, request } from "undici"
import { choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { dataDir, loopDelay, machineLoad, startUpstream, urls } from "../../lib/fetchRun.js"

const n = numberArg("urls", 10_000)
const hosts = numberArg("hosts", 20)
const latency = numberArg("latency", 25)
const concurrency = numberArg("concurrency", 200)
const connections = numberArg("connections", 20)
const storage = choiceArg("storage", ["shm", "disk"])
const warmup = numberArg("warmup", 0) > 0

runVariant(async () => {
  const upstream = await startUpstream(hosts)
  const dir = dataDir(storage)
  try {
    const files = Path.join(dir.path, "files")
    mkdirSync(files, { recursive: true })
    const list = urls(upstream.origins, n, latency)
    const dispatcher = new Agent({ connections })
    const limit = pLimit(concurrency)
    let succeeded = 0
    let failed = 0
    const get = async (url: string) => {
      const { body, statusCode } = await request(url, { dispatcher })
      const hash = createHash("sha256")
      const chunks: Array<Buffer> = []
      for await (const chunk of body) {
        hash.update(chunk as Buffer)
        chunks.push(chunk as Buffer)
      }
      if (statusCode < 200 || statusCode >= 300) throw new Error(`HTTP ${statusCode}`)
      await writeFile(Path.join(files, hash.digest("hex")), Buffer.concat(chunks))
    }
    if (warmup) {
      await Promise.all(list.map((url) => limit(() => get(`${url}&warmup=1`))))
    }
    upstream.reset()
    const loop = loopDelay()
    const load = machineLoad()
    const started = performance.now()
    await Promise.all(list.map((url) =>
      limit(() =>
        get(url).then(
          () => {
            succeeded++
          },
          () => {
            failed++
          }
        )
      )
    ))
    const millis = performance.now() - started
    const loopFigures = loop.stop()
    const loadFigures = load.stop()
    const upstreamStats = await upstream.stats()
    await dispatcher.close()
    return {
      urls: n,
      succeeded,
      failed,
      millis,
      idealMillis: (n / concurrency) * latency,
      ...loopFigures,
      ...loadFigures,
      upstreamRequests: upstreamStats.requests,
      upstreamPeakInFlight: upstreamStats.peakInFlight,
      upstreamCpuMillis: upstreamStats.cpuMillis
    }
  } finally {
    upstream.stop()
    dir.remove()
  }
})

/**
 * `pnpm demo`: Harvest, a simulated upstream playing four hosts on loopback, and a sample job of a few hundred URLs
 * with every kind of behaviour; progress is printed until the job completes, then a summary, and the server keeps
 * running for you to explore. Works offline. V8's old generation grows by at most a factor of 2 between full
 * collections, as in `pnpm start` (`Startup.limitHeapGrowth`).
 */
import { Shutdown } from "@spindle/node"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HarvestConfig from "./HarvestConfig.js"
import * as Server from "./Server.js"
import * as Startup from "./Startup.js"

Startup.limitHeapGrowth()

// The upstream lives on loopback, which Harvest refuses by default: the demo allows it.
const DemoConfig = HarvestConfig.layerOverriding({ allowPrivateNetworks: Config.succeed(true) })

// The demo is for looking at: the dashboard's waterfalls need the ring of recent traces, which `pnpm start` leaves off
// (it costs the pipeline about half again its CPU per URL). The environment still decides when it names the variable.
const demoDefaults = Layer.setConfigProvider(
  ConfigProvider.fromEnv().pipe(
    ConfigProvider.orElse(() => ConfigProvider.fromMap(new Map([["HARVEST_TRACE_RING", "1000"]])))
  )
)

const sampleUrls = (hosts: ReadonlyArray<Upstream.Upstream>): Array<string> => {
  const urls: Array<string> = []
  hosts.forEach((host, h) => {
    for (let i = 0; i < 60; i++) urls.push(host.url(`/ok/${h}/${i}?latency=10-80&bytes=${512 + i * 37}`))
    for (let i = 0; i < 10; i++) urls.push(host.url(`/flaky/${h}/${i}?fail=1&key=${h}-${i}&status=503&latency=20`))
    for (let i = 0; i < 5; i++) {
      urls.push(host.url(`/throttled/${h}/${i}?fail=1&key=t${h}-${i}&status=429&retryAfter=1`))
    }
    for (let i = 0; i < 5; i++) urls.push(host.url(`/missing/${h}/${i}?status=404`))
  })
  urls.push(hosts[0].url("/slow?bytes=20000&drip=2000&every=50"))
  urls.push(hosts[1].url("/reset?reset=1"))
  urls.push(hosts[2].url("/huge?bytes=20000000"))
  return urls
}

const program = Effect.gen(function*() {
  const config = yield* HarvestConfig.HarvestConfig
  // Four simulated hosts: distinct ports on 127.0.0.1 (Harvest keys hosts by host:port), which works on every OS.
  const hosts = yield* Effect.all(Array.from({ length: 4 }, () => Upstream.make()))
  const base = `http://${config.host}:${config.port}`
  const urls = sampleUrls(hosts)
  const created = yield* Effect.promise(async () => {
    const response = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ urls, perHostConcurrency: 8, perHostRps: 50, timeoutMs: 5000, maxAttempts: 3 })
    })
    return (await response.json()) as { id: string; total: number }
  })
  console.log(`Submitted job ${created.id}: ${created.total} URLs over ${hosts.length} simulated hosts`)
  const status = () =>
    Effect.promise(async () =>
      (await (await fetch(`${base}/jobs/${created.id}`)).json()) as {
        status: string
        total: number
        succeeded: number
        failed: number
        pending: number
      }
    )
  let final = yield* status()
  while (final.status !== "completed") {
    console.log(`  ${final.status}: ${final.succeeded} ok, ${final.failed} failed, ${final.pending} pending`)
    yield* Effect.sleep("1 second")
    final = yield* status()
  }
  const export_ = yield* Effect.promise(async () => (await fetch(`${base}/jobs/${created.id}/export`)).text())
  const codes = new Map<string, number>()
  for (const line of export_.trim().split("\n")) {
    const result = JSON.parse(line) as { status: string; error: { code: string } | null; attempts: number }
    const key = result.error === null ? "succeeded" : `failed: ${result.error.code}`
    codes.set(key, (codes.get(key) ?? 0) + 1)
  }
  console.log(`\nJob ${final.status}. Outcomes:`)
  for (const [key, n] of [...codes].sort()) console.log(`  ${key.padEnd(24)} ${n}`)
  console.log(`\nHarvest keeps running at ${base} — try:`)
  console.log(`  open ${base}/           the live dashboard (submit, cancel, export from the page)`)
  console.log(`  open ${base}/docs       the API's interactive docs (OpenAPI at ${base}/openapi.json)`)
  console.log(`  curl ${base}/jobs/${created.id}`)
  console.log(`  curl '${base}/jobs/${created.id}/results?limit=5'`)
  console.log(`  curl ${base}/health   |   curl ${base}/metrics`)
  console.log("Ctrl-C stops it gracefully.")
  return yield* Effect.never
})

// A start-up fault (a port in use, say) ends the demo with one line on stderr, as it ends `pnpm start`.
Shutdown.runMain(Effect.scoped(program).pipe(Effect.provide(Server.make(DemoConfig)), Effect.provide(demoDefaults)), {
  deadline: "60 seconds",
  onFailure: Startup.onFailure
})

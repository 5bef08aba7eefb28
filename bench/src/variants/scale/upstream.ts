/**
 * The simulated upstream of the fetch benchmarks, in a process of its own so that the client under test measures
 * only itself: `--hosts` instances of `@spindle/testkit`'s `Upstream` on distinct ports of 127.0.0.1 (distinct hosts
 * for the client's per-host limits and connection pools, which key them by host:port; one address works on every
 * OS), started by a benchmark with `fork`.
 *
 * Messages: it sends `{ origins }` once every host listens; it answers `"stats"` with the requests it served,
 * the most it had in flight at once and the CPU time it used (both since
 * the last `"reset"`); it exits when its parent disconnects.
 */
import * as Upstream from "@spindle/testkit/Upstream"
import * as Effect from "effect/Effect"
import { numberArg } from "../../lib/child.js"

const hosts = numberArg("hosts", 20)

const program = Effect.gen(function*() {
  const servers = yield* Effect.all(Array.from({ length: hosts }, () => Upstream.make()))
  let cpuAtStart = process.cpuUsage()
  process.on("message", (message) => {
    if (message === "reset") {
      for (const server of servers) server.resetStats()
      cpuAtStart = process.cpuUsage()
      return
    }
    if (message !== "stats") return
    const cpu = process.cpuUsage(cpuAtStart)
    process.send?.({
      stats: {
        requests: servers.reduce((sum, server) => sum + server.requests().length, 0),
        peakInFlight: servers.reduce((sum, server) => sum + server.peakInFlight(), 0),
        cpuMillis: (cpu.user + cpu.system) / 1000
      }
    })
  })
  process.send?.({ origins: servers.map((server) => server.origin) })
  yield* Effect.async<void>((resume) => {
    process.once("disconnect", () => resume(Effect.void))
  })
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)

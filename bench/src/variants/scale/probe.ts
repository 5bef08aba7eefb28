/**
 * Preloaded (`node --import .tmp/scale/probe.mjs …`) into a Harvest process the benchmark runs as a process of its
 * own, to measure from inside what only the process itself can see: its main thread's event-loop delay (the same
 * `monitorEventLoopDelay` figures as every other row of the benchmark), and on request a CPU profile. It adds one
 * timer of 5 ms and a `SIGUSR2` listener to the process, nothing else.
 *
 * `BENCH_PROBE_DIR` (required) is where it answers. The first `SIGUSR2` starts the measurement (and the profiler when
 * `BENCH_PROBE_PROFILE` holds a sampling interval in µs) and writes `started.json`; the second stops it and writes
 * `report.json` with the figures (and `job.cpuprofile`, the profile, first). Files are written under a temporary
 * name and renamed, so a file that exists is complete. With `BENCH_PROBE_EVERY` (ms), it also appends the delay of
 * each such period to `periods.jsonl` while it measures (the soak benchmark's per-minute figures).
 */
import { appendFileSync, renameSync, writeFileSync } from "node:fs"
import * as Inspector from "node:inspector"
import * as Path from "node:path"
import { loopDelay } from "../../lib/fetchRun.js"

const dir = process.env.BENCH_PROBE_DIR
const profileInterval = Number(process.env.BENCH_PROBE_PROFILE ?? "0")
const everyMillis = Number(process.env.BENCH_PROBE_EVERY ?? "0")

const answer = (name: string, content: string) => {
  const file = Path.join(dir!, name)
  writeFileSync(`${file}.part`, content)
  renameSync(`${file}.part`, file)
}

const post = (session: Inspector.Session, method: string, params: Record<string, unknown> = {}) =>
  new Promise<unknown>((resolve, reject) =>
    session.post(method, params, (error, result) => (error === null ? resolve(result) : reject(error)))
  )

const startProfiler = async (): Promise<Inspector.Session> => {
  const session = new Inspector.Session()
  session.connect()
  await post(session, "Profiler.enable")
  await post(session, "Profiler.setSamplingInterval", { interval: profileInterval })
  await post(session, "Profiler.start")
  return session
}

let running:
  | {
    readonly loop: ReturnType<typeof loopDelay>
    readonly session: Inspector.Session | undefined
    readonly periods: ReturnType<typeof setInterval> | undefined
  }
  | undefined

// One line per period: its end (ms since the measurement started) and the loop's delay over it.
const periodic = () => {
  const started = performance.now()
  let period = loopDelay()
  const timer = setInterval(() => {
    const figures = period.stop()
    period = loopDelay()
    appendFileSync(
      Path.join(dir!, "periods.jsonl"),
      JSON.stringify({ atMs: Math.round(performance.now() - started), ...figures }) + "\n"
    )
  }, everyMillis)
  return timer
}

const toggle = async () => {
  if (running === undefined) {
    const session = profileInterval > 0 ? await startProfiler() : undefined
    const periods = everyMillis > 0 ? periodic() : undefined
    running = { loop: loopDelay(), session, periods }
    answer("started.json", JSON.stringify({ pid: process.pid }))
    return
  }
  const { loop, periods, session } = running
  running = undefined
  if (periods !== undefined) clearInterval(periods)
  const figures = loop.stop()
  let profile: string | undefined
  if (session !== undefined) {
    const { profile: data } = (await post(session, "Profiler.stop")) as { readonly profile: unknown }
    session.disconnect()
    answer("job.cpuprofile", JSON.stringify(data))
    profile = Path.join(dir!, "job.cpuprofile")
  }
  answer("report.json", JSON.stringify({ ...figures, profile }))
}

if (dir !== undefined) {
  process.on("SIGUSR2", () => {
    toggle().catch((error: unknown) => {
      answer("report.json", JSON.stringify({ error: String(error) }))
    })
  })
}

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
 *
 * While it profiles, it also times each SQLite statement Harvest runs (`better-sqlite3`'s statements answer
 * synchronously on the main thread, so a statement's time there is the main thread's), and `report.json` lists them
 * by kind: the profile sees only the driver's native frame, whichever statement it runs.
 */
import { appendFileSync, renameSync, writeFileSync } from "node:fs"
import * as Inspector from "node:inspector"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { loopDelay } from "../../lib/fetchRun.js"
import { repoRoot } from "../../lib/harvestProcess.js"
import type { StatementTime } from "../../lib/profileSplit.js"

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

/** What the calls of one kind of statement took (the batches of one statement differ only in their length). */
interface Accumulated {
  calls: number
  rows: number
  nanos: bigint
}

const statements = new Map<string, Accumulated>()
// Each prepared statement's entry of `statements`, found once per statement rather than from its text on every call.
const accumulated = new WeakMap<object, Accumulated>()
let timing = false

const kindOf = (source: string) => {
  const words = source.replace(/\s+/g, " ").trim().split(" ")
  // The verb and its table (and for an `UPDATE` what it sets the status to: a lease, a settlement, a release).
  const status = /status = '([a-z]+)'/.exec(source.slice(0, 200))
  const head = words.slice(0, words[0] === "UPDATE" ? 2 : words[0] === "INSERT" ? 3 : 4).join(" ")
  return status !== null && words[0] === "UPDATE" ? `${head} … status = '${status[1]}'` : head
}

// `better-sqlite3`, loaded from where Harvest's SQLite client loads it (the probe is imported first, so Harvest's
// import finds this module in the cache), with its statements' methods wrapped: they are timed only while the probe
// measures.
const timeStatements = () => {
  const fromHarvest = createRequire(Path.join(repoRoot(), "apps", "harvest", "package.json"))
  const fromClient = createRequire(fromHarvest.resolve("@effect/sql-sqlite-node"))
  const Database = fromClient("better-sqlite3") as { prototype: { prepare: (...args: Array<unknown>) => object } }
  const prepare = Database.prototype.prepare
  let wrapped = false
  Database.prototype.prepare = function(this: unknown, ...args: Array<unknown>) {
    const statement = prepare.apply(this, args)
    if (wrapped) return statement
    wrapped = true
    const proto = Object.getPrototypeOf(statement) as Record<string, (...args: Array<unknown>) => unknown>
    for (const method of ["all", "get", "run", "iterate"]) {
      const original = proto[method]
      proto[method] = function(this: { readonly source: string }, ...args: Array<unknown>) {
        if (!timing) return original.apply(this, args)
        const started = process.hrtime.bigint()
        const result = original.apply(this, args)
        const nanos = process.hrtime.bigint() - started
        let time = accumulated.get(this)
        if (time === undefined) {
          const kind = kindOf(this.source)
          time = statements.get(kind)
          if (time === undefined) statements.set(kind, time = { calls: 0, rows: 0, nanos: 0n })
          accumulated.set(this, time)
        }
        time.calls++
        time.nanos += nanos
        if (Array.isArray(result)) time.rows += result.length
        return result
      }
    }
    return statement
  }
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
    for (const time of statements.values()) {
      time.calls = 0
      time.rows = 0
      time.nanos = 0n
    }
    timing = session !== undefined
    answer("started.json", JSON.stringify({ pid: process.pid }))
    return
  }
  const { loop, periods, session } = running
  running = undefined
  timing = false
  if (periods !== undefined) clearInterval(periods)
  const figures = loop.stop()
  let profile: string | undefined
  if (session !== undefined) {
    const { profile: data } = (await post(session, "Profiler.stop")) as { readonly profile: unknown }
    session.disconnect()
    answer("job.cpuprofile", JSON.stringify(data))
    profile = Path.join(dir!, "job.cpuprofile")
  }
  const timed = Array.from(statements, ([statement, time]): StatementTime => ({
    statement,
    calls: time.calls,
    rows: time.rows,
    millis: Number(time.nanos) / 1e6
  })).filter((time) => time.calls > 0).sort((a, b) => b.millis - a.millis)
  answer(
    "report.json",
    JSON.stringify({ ...figures, profile, ...(session === undefined ? {} : { statements: timed }) })
  )
}

if (dir !== undefined) {
  if (profileInterval > 0) timeStatements()
  process.on("SIGUSR2", () => {
    toggle().catch((error: unknown) => {
      answer("report.json", JSON.stringify({ error: String(error) }))
    })
  })
}

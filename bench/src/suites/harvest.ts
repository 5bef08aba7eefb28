/**
 * Benchmark 7: Harvest end to end against the simulated upstream, beside a minimal client (p-limit + undici)
 * doing the same fetches into the same kind of directory, on tmpfs and on disk. Harvest is measured twice: as users
 * start it (`pnpm start`'s build, `node dist/main.mjs`, a process of its own) and bundled in the bench (`Server.make`
 * in the client process). With `--profile`, one more round of the first kind runs under the CPU profiler and its
 * main thread's time is split by what it did (`lib/profileSplit.ts`).
 */
import { existsSync, readFileSync } from "node:fs"
import { type Bucket, bucketLabels, buckets, type ProfileSplit, type StatementTime } from "../lib/profileSplit.js"
import { num, percent, ratio, table, verdict } from "../lib/report.js"
import type { Outcome } from "../lib/runner.js"
import { byId, type Measured, med, values, type Variant, variant } from "../lib/suite.js"

export interface Sizes {
  readonly urls: number
  /** The built `main.mjs` that `pnpm start` runs (`appLauncher.buildHarvest`). */
  readonly main: string
  /** How it was built and is run, for the report. */
  readonly build: string
}

const hosts = 20
const latency = 25
const concurrency = 200
/** Per instance in the scale-out comparison: low enough that one instance is bound by it, not by the CPU. */
const scaleConcurrency = 50
/** The profiler's sampling interval in the `--profile` round, µs. */
const profileInterval = 500

/** Issue 16's performance goal, for every Harvest row, on tmpfs and on disk. */
export const goal = { timeRatio: 1, cpuMicrosPerUrl: 160, loopP99Ms: 20, peakRssMb: 200 } as const

export const idealMillis = (sizes: Sizes) => (sizes.urls / concurrency) * latency

const common = (sizes: Sizes) => [
  `--urls=${sizes.urls}`,
  `--hosts=${hosts}`,
  `--latency=${latency}`,
  `--concurrency=${concurrency}`
]

const labels = {
  start: "Harvest as users start it: `node dist/main.mjs` (`pnpm start`'s build), a process of its own",
  bundled: "Harvest bundled in the bench: `Server.make` in the client process",
  baseline: "baseline: p-limit(200) + undici `request`, `Agent({ connections: 20 })`"
} as const

type Kind = keyof typeof labels
type Storage = "shm" | "disk"

const kindOf = (m: Measured): Kind => m.id.split("-")[0] as Kind
const storageOf = (m: Measured): Storage => (m.id.endsWith("shm") ? "shm" : "disk")

export const variants = (sizes: Sizes): ReadonlyArray<Variant> => {
  const make = (kind: Kind, storage: Storage) =>
    variant(
      `${kind}-${storage}`,
      labels[kind],
      kind === "start" ? "harvest-start" : kind === "bundled" ? "harvest-e2e" : "fetch-baseline",
      [...common(sizes), `--storage=${storage}`, ...(kind === "start" ? [`--main=${sizes.main}`] : [])],
      { timeoutMillis: 180_000, spindle: kind !== "baseline" }
    )
  return [
    ...(["shm", "disk"] as const).flatMap((storage) =>
      (["start", "bundled", "baseline"] as const).map((kind) => make(kind, storage))
    ),
    // The same job once more in the same process, after a first one (informational: the goal is the first job's).
    ...(["start", "baseline"] as const).map((kind) =>
      variant(
        `warm-${kind}-shm`,
        labels[kind],
        kind === "start" ? "harvest-start" : "fetch-baseline",
        [...common(sizes), "--storage=shm", "--warmup=1", ...(kind === "start" ? [`--main=${sizes.main}`] : [])],
        { timeoutMillis: 240_000, spindle: kind !== "baseline" }
      )
    ),
    ...[1, 3].map((instances) =>
      variant(
        `instances-${instances}`,
        `Harvest, ${instances} instance${instances === 1 ? "" : "s"} on Postgres + Redis`,
        "harvest-scale",
        [
          `--urls=${sizes.urls}`,
          `--hosts=${hosts}`,
          `--latency=${latency}`,
          `--concurrency=${scaleConcurrency}`,
          `--instances=${instances}`,
          "--storage=shm"
        ],
        { timeoutMillis: 300_000, spindle: true }
      )
    )
  ]
}

/** The `--profile` round: Harvest as users start it, on tmpfs, under the CPU profiler. */
export const profileVariant = (sizes: Sizes): Variant =>
  variant(
    "profile-shm",
    labels.start,
    "harvest-start",
    [...common(sizes), "--storage=shm", `--main=${sizes.main}`, `--profile=${profileInterval}`],
    { timeoutMillis: 300_000, spindle: true }
  )

/** CPU µs per URL of a round's result. */
const cpuPerUrl = (value: Record<string, unknown>) => (1000 * Number(value.clientCpuMillis)) / Number(value.urls)

// The second job in one process, Harvest as users start it against the baseline, both on tmpfs.
const warmSection = (measured: ReadonlyArray<Measured>, sizes: Sizes): Array<string> => {
  const harvest = measured.find((m) => m.id === "warm-start-shm")
  const baseline = measured.find((m) => m.id === "warm-baseline-shm")
  const first = measured.find((m) => m.id === "start-shm")
  if (harvest === undefined || baseline === undefined || values(harvest).length === 0) return []
  const time = (m: Measured) => med(m, "millis")
  const cpu = (m: Measured) => (1000 * med(m, "clientCpuMillis")) / sizes.urls
  const perUrl = (m: Measured, key: string) => (values(m).length === 0 ? "" : num((1000 * med(m, key)) / sizes.urls))
  const rows = [harvest, baseline].map((m) => [
    m.label,
    num(time(m) / 1000, 2),
    m === harvest ? ratio(time(m) / time(baseline)) : "1.00×",
    num(cpu(m)),
    m === harvest ? perUrl(m, "mainThreadCpuMillis") : "",
    m === harvest ? perUrl(m, "otherThreadsCpuMillis") : "",
    num(med(m, "loopP99Ms"), 1),
    values(m).map((v) => `${num(Number(v.millis) / 1000, 2)} (${num(cpuPerUrl(v))} µs)`).join(" · ")
  ])
  const firstCpu = first === undefined || values(first).length === 0 ? undefined : cpu(first)
  return [
    "",
    "### The same job again in the same process (tmpfs): code V8 has compiled already",
    "",
    table(
      [
        "client",
        "seconds (median)",
        "× baseline time",
        "CPU µs per URL",
        "main thread µs per URL",
        "other threads µs per URL",
        "loop p99 ms",
        "rounds: s (CPU µs per URL)"
      ],
      rows
    ),
    "",
    `- Harvest's second job used ${num(cpu(harvest))} µs of CPU per URL` +
    (firstCpu === undefined ? "" : ` (its first, in the table above: ${num(firstCpu)})`) +
    `, against the baseline's ${num(cpu(baseline))} on its second run; ${ratio(time(harvest) / time(baseline))} ` +
    `the baseline's time. Issue 16's ${goal.cpuMicrosPerUrl} µs is a goal for the first job; this row shows what ` +
    `of it is compiling: ${verdict(cpu(harvest) <= goal.cpuMicrosPerUrl)} here.`,
    "",
    "How it is measured. Each process first runs the same job once to its end, unmeasured (the same URLs with " +
    "`&warmup=1` added, so their paths differ; Harvest: a job submitted and polled until completed; the baseline: " +
    "the same `Promise.all`), then the measured job as in the rows above. Peak RSS is left out: it covers both jobs."
  ]
}

const scaleSection = (measured: ReadonlyArray<Measured>, sizes: Sizes): Array<string> => {
  const one = measured.find((m) => m.id === "instances-1")
  const three = measured.find((m) => m.id === "instances-3")
  if (one === undefined || three === undefined) return []
  const time = (m: Measured) => med(m, "millis")
  const rows = [one, three].map((m) => [
    m.label,
    num(scaleConcurrency * (m === one ? 1 : 3)),
    num(time(m) / 1000, 2),
    num(med(m, "idealMillis") / 1000, 2),
    percent((100 * med(m, "idealMillis")) / time(m), 0),
    num(med(m, "harvestCpuMillis") / 1000, 2),
    num((1000 * med(m, "harvestCpuMillis")) / sizes.urls),
    num(med(m, "loopP99Ms"), 1),
    num(med(m, "peakRssMb")),
    values(m).map((v) => `${num(Number(v.succeeded))} / ${num(Number(v.upstreamRequests))}`).join(" · "),
    percent(med(m, "machineBusyPercent"), 0),
    values(m).map((v) => num(Number(v.millis) / 1000, 2)).join(" · ")
  ])
  const speedup = time(one) / time(three)
  const exact = [one, three].every((m) =>
    values(m).length > 0 &&
    values(m).every((v) => v.succeeded === sizes.urls && v.upstreamRequests === sizes.urls)
  )
  return [
    "",
    `### 1 vs 3 instances on Postgres + Redis (issue 7), \`MAX_CONCURRENCY=${scaleConcurrency}\` per instance`,
    "",
    table(
      [
        "setup",
        "fetches in flight, all instances",
        "seconds (median)",
        "ideal s",
        "% of ideal",
        "Harvest CPU s, all instances",
        "CPU µs per URL",
        "loop p99 ms, worst instance",
        "peak RSS MB, largest instance",
        "succeeded / upstream requests (per round)",
        "machine busy",
        "rounds (s)"
      ],
      rows
    ),
    "",
    `- Three instances finish the job ${ratio(speedup)} as fast as one (their concurrency alone would allow ` +
    `3×). Every item was fetched and recorded exactly once in every round (as many upstream requests as URLs): ${
      verdict(exact)
    }.`,
    "",
    "How it is measured. The same job and upstream as above, but Harvest runs as 1 or 3 processes of its own " +
    "(`Server.make(HarvestConfig.layer)` each, bundled in the bench like the row above and forked by a coordinator " +
    "that only submits and polls), all with " +
    "`DATABASE_URL` on one fresh Postgres database (created for the run and dropped after it), `REDIS_URL` on " +
    "the local Redis (shared per-host limits and slots), one shared `DATA_DIR` on tmpfs, and " +
    `\`MAX_CONCURRENCY=${scaleConcurrency}\`: lowered from ${concurrency} so that, on a machine with cores to ` +
    "spare, one instance would be bound by its concurrency, which adding instances can fix (on this one it is " +
    "bound by CPU, see the findings above). The job is submitted to the " +
    "first instance; every instance leases items from the shared queue (`FOR UPDATE SKIP LOCKED`). The time " +
    "runs from the submission to the largest `finished_at` of the job's items. *Harvest CPU* is the sum over the " +
    "instances of each process's CPU time over the timed run (`/proc/<pid>/stat`), per URL of the job; *loop p99* " +
    "the highest of the instances' main-loop p99 (measured in each by the preloaded probe, as for the row run as " +
    "users start it); *peak RSS* the largest instance's `VmHWM`. Postgres's and Redis's own CPU is not in these " +
    "figures. On this 2-core machine, three " +
    "instances, the upstream and Postgres compete for the same cores, so the speed-up is bounded by CPU as much " +
    "as by the design."
  ]
}

/**
 * What the investigation of this benchmark found (profiles, query counts, experiments), written by hand in
 * `lib/harvest-findings.md` and read when the section is written: it explains the figures, it does not
 * compute them.
 */
const findings = (): Array<string> => {
  const file = new URL("../lib/harvest-findings.md", import.meta.url)
  return existsSync(file) ? ["", readFileSync(file, "utf8").trim()] : []
}

/**
 * The SQLite statements of the profiled round, by kind, as timed in the driver by the probe: what the SQL bucket's
 * native frame was spent on. Empty when the round timed none (a probe of an older build).
 */
const statementsTable = (
  statements: ReadonlyArray<StatementTime>,
  mainMillis: number,
  sizes: Sizes
): Array<string> => {
  if (statements.length === 0) return []
  const total = statements.reduce((sum, statement) => sum + statement.millis, 0)
  const shown = statements.filter((statement) => statement.millis >= 0.5)
  const rows = shown.map((statement) => [
    `\`${statement.statement}\``,
    num(statement.calls),
    statement.rows === 0 ? "" : num(statement.rows / statement.calls),
    num(statement.millis, 1),
    num((1000 * statement.millis) / sizes.urls, 1)
  ])
  rows.push([
    "**every statement**",
    num(statements.reduce((sum, statement) => sum + statement.calls, 0)),
    "",
    num(total, 1),
    num((1000 * total) / sizes.urls, 1)
  ])
  return [
    "",
    "The SQLite statements of that round, each timed in the driver (`better-sqlite3` answers synchronously, on the " +
    `main thread): ${num(total)} ms in all, against ${num(mainMillis)} ms of the main thread's CPU. These are wall ` +
    "times: on a busy machine they include the moments the thread waited for a core, which the profile's samples " +
    "leave out, so they overstate what the SQL bucket above was charged. A statement's kind is its first words; " +
    "kinds under 0.5 ms in all are left out of the rows but not of the total.",
    "",
    table(["statement", "calls", "rows per call", "ms", "µs per URL"], rows)
  ]
}

/** The profile split of the `--profile` round, as a sub-table, or why there is none. */
export const profileSection = (outcome: Outcome, sizes: Sizes): Array<string> => {
  const heading = `### Profile split: where Harvest's CPU went in the ${num(sizes.urls)}-URL job ` +
    "(one profiled round, as users start it, tmpfs)"
  if (outcome._tag === "Failed") return ["", heading, "", `The profiled round failed: ${outcome.reason}.`]
  const value = outcome.value
  const split = value.profile as ProfileSplit
  const busy = split.samples - split.bucketSamples.idle
  const cpu = Number(value.clientCpuMillis)
  const main = Number(value.mainThreadCpuMillis)
  const others = Number(value.otherThreadsCpuMillis)
  const perUrl = (millis: number) => num((1000 * millis) / sizes.urls)
  // A bucket's share of the busy samples, applied to the main thread's measured CPU time.
  const share = (samples: number) => samples / busy
  const rows = buckets.filter((bucket) => bucket !== "idle").map((bucket: Bucket) => [
    bucketLabels[bucket],
    num(split.bucketSamples[bucket]),
    percent(100 * share(split.bucketSamples[bucket]), 1),
    perUrl(share(split.bucketSamples[bucket]) * main)
  ])
  rows.push(
    ["**main thread** (the rows above)", num(busy), "100 %", perUrl(main)],
    [
      "**other threads**, not sampled (libuv's pool doing the file system's work, V8's helpers collecting garbage " +
      "and compiling concurrently, the inspector)",
      "",
      "",
      perUrl(others)
    ],
    ["**the Harvest process**", "", "", `${perUrl(cpu)} (goal ≤ ${goal.cpuMicrosPerUrl})`]
  )
  const top = split.top.filter((frame) => frame.bucket !== "idle").slice(0, 12)
  return [
    "",
    heading,
    "",
    table(["bucket", "samples", "% of busy samples", "CPU µs per URL"], rows),
    ...statementsTable((value.statements ?? []) as ReadonlyArray<StatementTime>, main, sizes),
    "",
    `That round took ${num(Number(value.millis) / 1000, 2)} s with ${num(cpu / 1000, 2)} s of Harvest's CPU ` +
    "(the profiler's cost included: it is not one of the rounds above); the main thread was idle for " +
    `${num(split.bucketSamples.idle)} samples, ${num(split.bucketMillis.idle)} ms. The frames with the most ` +
    "samples (a generic frame, native or a Node internal, after ← its caller):",
    "",
    table(
      ["bucket", "frame", "samples", "% of busy"],
      top.map((frame) => [
        frame.bucket,
        `\`${frame.frame}\``,
        num(frame.samples),
        percent((100 * frame.samples) / busy, 1)
      ])
    ),
    "",
    "How it is split. `pnpm bench -- --only=harvest --profile` runs one more round of the row that starts Harvest " +
    "as users do; the preloaded probe starts V8's sampling profiler (the inspector's `Profiler` domain, every " +
    `${num(Number(value.profileIntervalMicros))} µs) in the Harvest process just before the \`POST\` and stops it ` +
    "when the job is seen completed, so the profile covers the job and nothing of start-up or shutdown. Each " +
    "sample is charged to the frame on top of its stack: frames of the build are mapped back to their source " +
    "file through the source maps it writes (`main.mjs.map` and one per chunk), so `effect`, `undici`, " +
    "`@effect/*`, Spindle's packages and Harvest's modules keep their files, and the file decides the bucket " +
    "(Harvest's modules by name: `Fetcher` fetch, `HostGate` limits, `BodyStore` files, `Database`/`Jobs`/`Results` " +
    "SQL). A native frame or a generic Node internal (streams, events, buffers, timers) is charged to its nearest " +
    "caller that has a bucket: a native write under `node:net` is fetching, under `node:fs` files. The Effect " +
    "runtime's own frames are not " +
    "passed on: time in the fiber runtime is the runtime's, whatever the fiber runs. *GC* is the main thread's " +
    "pauses; what V8's helper threads collect is in the other threads' row. Shares are of samples, not of the time " +
    "between them: on a shared machine a thread waiting for a core takes no sample, and the gap is not its " +
    "frame's work. *CPU µs per URL* applies a bucket's share to the main thread's CPU time (`/proc/<pid>/task`), so " +
    "the rows add up to the process's CPU per URL, the figure of the goal."
  ]
}

const where = (storage: Storage) => (storage === "shm" ? "on tmpfs" : "on disk")

export const section = (measured: ReadonlyArray<Measured>, sizes: Sizes, profile?: Outcome): string => {
  const ideal = idealMillis(sizes)
  const time = (m: Measured) => med(m, "millis")
  const cpu = (m: Measured) => (1000 * med(m, "clientCpuMillis")) / sizes.urls
  const baselineOf = (m: Measured) => byId(measured, `baseline-${storageOf(m)}`)
  const single = measured.filter((m) => !m.id.startsWith("instances-") && !m.id.startsWith("warm-"))
  const rows = single.map((m) => [
    m.label,
    storageOf(m) === "shm" ? "tmpfs `/dev/shm`" : "disk (`/tmp`)",
    num(time(m) / 1000, 2),
    percent((100 * ideal) / time(m), 0),
    m.spindle ? ratio(time(m) / time(baselineOf(m))) : "1.00×",
    num(cpu(m)),
    num(med(m, "clientCpuMillis") / 1000, 2),
    num(med(m, "loopP99Ms"), 1),
    num(med(m, "peakRssMb")),
    num(med(m, "upstreamCpuMillis") / 1000, 2),
    percent(med(m, "machineBusyPercent"), 0),
    values(m).map((v) => `${num(Number(v.millis) / 1000, 2)} (${num(cpuPerUrl(v))} µs)`).join(" · ")
  ])
  const harvestRows = single.filter((m) => m.spindle)
  const verdicts = harvestRows.map((m) => {
    const versus = time(m) / time(baselineOf(m))
    return {
      m,
      versus,
      checks: [
        versus <= goal.timeRatio,
        cpu(m) <= goal.cpuMicrosPerUrl,
        med(m, "loopP99Ms") <= goal.loopP99Ms,
        med(m, "peakRssMb") <= goal.peakRssMb
      ]
    }
  })
  const goals = verdicts.flatMap(({ checks, m, versus }) => {
    const share = ideal / time(m)
    const [fast, lean, smooth, small] = checks
    const who = kindOf(m) === "start" ? "Harvest as users start it" : "Harvest bundled in the bench"
    const lines = [
      `- ${who}, ${where(storageOf(m))}: ${num(time(m) / 1000, 2)} s, ${ratio(versus)} the baseline's time ` +
      `(≤ ${num(goal.timeRatio, 2)}×: ${verdict(fast)}); ${num(cpu(m))} µs of CPU per URL (≤ ` +
      `${goal.cpuMicrosPerUrl}: ${verdict(lean)}; the baseline ${num(cpu(baselineOf(m)))}); main-loop p99 ` +
      `${num(med(m, "loopP99Ms"), 1)} ms (≤ ${goal.loopP99Ms}: ${verdict(smooth)}); peak RSS ` +
      `${num(med(m, "peakRssMb"))} MB (≤ ${goal.peakRssMb}: ${verdict(small)}). ${percent(100 * share, 0)} of the ` +
      "ideal" + (storageOf(m) === "shm" ? ` (PEERS.md, on tmpfs: ≥ 90 %: ${verdict(share >= 0.9)}).` : ".")
    ]
    const incomplete = values(m).filter((v) => v.succeeded !== sizes.urls)
    if (incomplete.length > 0) lines.push(`  ${incomplete.length} round(s) did not end with every URL succeeded.`)
    return lines
  })
  const met = verdicts.filter(({ checks }) => checks.every((ok) => ok)).length
  const busy = Math.max(...single.map((m) => med(m, "machineBusyPercent")))
  return [
    `## 7. Harvest end to end: ${num(sizes.urls)} URLs over ${hosts} hosts, ${latency} ms latency, concurrency ` +
    `${concurrency}`,
    "",
    table(
      [
        "client",
        "bodies on",
        "seconds (median)",
        "% of ideal",
        "× baseline time",
        "CPU µs per URL",
        "client CPU s",
        "loop p99 ms",
        "peak RSS MB",
        "upstream CPU s",
        "machine busy",
        "rounds: s (CPU µs per URL)"
      ],
      rows
    ),
    "",
    `The ideal is the latency bound: ${num(sizes.urls)} / ${concurrency} × ${latency} ms = ${num(ideal / 1000, 2)} s.`,
    "",
    `Issue 16's performance goal, for every Harvest row on tmpfs and on disk: at most ${num(goal.timeRatio, 2)}× ` +
    `the baseline's time, at most ${goal.cpuMicrosPerUrl} µs of CPU per URL, main-loop p99 at most ` +
    `${goal.loopP99Ms} ms, peak RSS at most ${goal.peakRssMb} MB for the ${num(sizes.urls)}-URL job. Met on ` +
    `${met} of ${verdicts.length} rows: ${verdict(verdicts.length > 0 && met === verdicts.length)}.`,
    "",
    ...goals,
    ...warmSection(measured, sizes),
    ...(profile === undefined ? [] : profileSection(profile, sizes)),
    ...findings(),
    "",
    "How it is measured. Each row is one process, the client under test, which first forks the simulated upstream " +
    `(${hosts} instances of \`@spindle/testkit\`'s \`Upstream\` on distinct ports of 127.0.0.1, in a ` +
    `process of its own, so the client's figures are its own). The ${num(sizes.urls)} URLs are distinct and spread ` +
    `round-robin over the hosts; each is answered after ${latency} ms with a distinct JSON body of about 1 KiB ` +
    "(a listing page of 150 numbers, 0.5 to 1.2 KiB), so no two bodies share a hash and every body becomes a file " +
    "of its own. Harvest runs for real, configured through the environment (`PORT`, a fresh `DATA_DIR`, " +
    `\`MAX_CONCURRENCY=${concurrency}\`, \`HARVEST_ALLOW_PRIVATE_NETWORKS=true\`), SQLite in \`DATA_DIR\`, in ` +
    "two ways. *As users start it*: " +
    `${sizes.build}, a process of its own (node's flags are those \`pnpm start\` gives it, ` +
    "`apps/harvest/scripts/flags.mjs`, and the `--import` of the bench's probe, which adds a 5 ms timer to measure " +
    "the loop and a `SIGUSR2` listener); the row's process is a coordinator that " +
    "submits, polls and reads Harvest's figures from outside: its CPU time (`/proc/<pid>/stat`, user + system, " +
    "every thread) over the timed run, and its peak RSS (`VmHWM` of `/proc/<pid>/status`, the whole life of the " +
    "process, start-up included). *Bundled in the bench*: `Server.make(HarvestConfig.layer)` from " +
    "`apps/harvest/src/Server.ts`, bundled with the bench's client (`.tmp/scale/harvest-e2e.mjs`) and run in its " +
    "process (so its CPU and RSS include the client's small share: the job's request body, the polling), which " +
    "first sets V8's old-generation growth as Harvest's entry points do (`Startup.limitHeapGrowth()`, the first " +
    "line of `main.ts`). The job " +
    "is `POST /jobs { urls, perHostConcurrency: 1000 }` (no per-host rate limit, so only the global limit binds; " +
    "every other option at its default) and is polled with `GET /jobs/:id` every 250 ms (only to see it end); " +
    "its time runs from just before the `POST` to the moment its last item was settled (bundled: the largest " +
    "`finished_at` of its items, read from Harvest's database after the run; as users start it: the job's " +
    "`finishedAt`, written in the same commit), so it includes storing the job and its " +
    `${num(sizes.urls)} items. The baseline ` +
    "is the script a programmer would write instead: `p-limit(200)` around undici's `request` over one " +
    "`Agent({ connections: 20 })`, each body hashed with SHA-256 and written with `writeFile` to its own file " +
    "(named by the hash) in a fresh directory on the same storage; it has no database, no retries, no per-host " +
    "limits and no HTTP API. *loop p99* is Harvest's (or the baseline's) main-thread event-loop delay " +
    "(`monitorEventLoopDelay`, 5 ms resolution, minus the resolution) over the timed run, measured in its own " +
    "process; *peak RSS* is that process's. *client CPU* (and *CPU µs per URL*, the same divided by the URLs) " +
    "and *upstream CPU* are each process's CPU time over the timed run, *machine busy* the share of both cores " +
    `busy meanwhile, from \`/proc/stat\` (the highest median here: ${percent(busy, 0)}). The machine is shared ` +
    "with other work: with the client and the upstream needing more than one core between them, a busy machine " +
    "slows both columns, which is why only the ratios of rows measured in the same run are compared.",
    ...scaleSection(measured, sizes)
  ].join("\n")
}

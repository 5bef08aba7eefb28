/**
 * Benchmark 7: Harvest end to end against the simulated upstream, beside a minimal client (p-limit + undici)
 * doing the same fetches into the same kind of directory, on tmpfs and on disk.
 */
import { existsSync, readFileSync } from "node:fs"
import { num, percent, ratio, table, verdict } from "../lib/report.js"
import { byId, type Measured, med, values, type Variant, variant } from "../lib/suite.js"

export interface Sizes {
  readonly urls: number
}

const hosts = 20
const latency = 25
const concurrency = 200
/** Per instance in the scale-out comparison: low enough that one instance is bound by it, not by the CPU. */
const scaleConcurrency = 50

export const idealMillis = (sizes: Sizes) => (sizes.urls / concurrency) * latency

export const variants = (sizes: Sizes): ReadonlyArray<Variant> => {
  const common = [`--urls=${sizes.urls}`, `--hosts=${hosts}`, `--latency=${latency}`, `--concurrency=${concurrency}`]
  const make = (id: string, label: string, file: string, storage: "shm" | "disk") =>
    variant(id, label, file, [...common, `--storage=${storage}`], {
      timeoutMillis: 180_000,
      spindle: file === "harvest-e2e"
    })
  return [
    make("harvest-shm", "Harvest (`Server.make`, SQLite), job submitted over HTTP", "harvest-e2e", "shm"),
    make(
      "baseline-shm",
      "baseline: p-limit(200) + undici `request`, `Agent({ connections: 20 })`",
      "fetch-baseline",
      "shm"
    ),
    make("harvest-disk", "Harvest (`Server.make`, SQLite), job submitted over HTTP", "harvest-e2e", "disk"),
    make(
      "baseline-disk",
      "baseline: p-limit(200) + undici `request`, `Agent({ connections: 20 })`",
      "fetch-baseline",
      "disk"
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
    "(`Server.make(HarvestConfig.layer)` each, forked by a coordinator that only submits and polls), all with " +
    "`DATABASE_URL` on one fresh Postgres database (created for the run and dropped after it), `REDIS_URL` on " +
    "the local Redis (shared per-host limits and slots), one shared `DATA_DIR` on tmpfs, and " +
    `\`MAX_CONCURRENCY=${scaleConcurrency}\`: lowered from ${concurrency} so that, on a machine with cores to ` +
    "spare, one instance would be bound by its concurrency, which adding instances can fix (on this one it is " +
    "bound by CPU, see the findings above). The job is submitted to the " +
    "first instance; every instance leases items from the shared queue (`FOR UPDATE SKIP LOCKED`). The time " +
    "runs from the submission to the largest `finished_at` of the job's items. On this 2-core machine, three " +
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

export const section = (measured: ReadonlyArray<Measured>, sizes: Sizes): string => {
  const ideal = idealMillis(sizes)
  const time = (m: Measured) => med(m, "millis")
  const baselineOf = (m: Measured) => byId(measured, m.id.replace("harvest", "baseline"))
  const single = measured.filter((m) => !m.id.startsWith("instances-"))
  const rows = single.map((m) => [
    m.label,
    m.id.endsWith("shm") ? "tmpfs `/dev/shm`" : "disk (`/tmp`)",
    num(time(m) / 1000, 2),
    percent((100 * ideal) / time(m), 0),
    m.spindle ? ratio(time(m) / time(baselineOf(m))) : "1.00×",
    num(med(m, "loopP99Ms"), 1),
    num(med(m, "peakRssMb")),
    num(med(m, "clientCpuMillis") / 1000, 2),
    num(med(m, "upstreamCpuMillis") / 1000, 2),
    percent(med(m, "machineBusyPercent"), 0),
    values(m).map((v) => num(Number(v.millis) / 1000, 2)).join(" · ")
  ])
  const goals = single.filter((m) => m.spindle).flatMap((m) => {
    const where = m.id.endsWith("shm") ? "on tmpfs" : "on disk"
    const versus = time(m) / time(baselineOf(m))
    const share = ideal / time(m)
    const lines = [
      `- Harvest ${where}: ${num(time(m) / 1000, 2)} s, ${ratio(versus)} the baseline's time (goal of issue 6: ` +
      `within 1.3×: ${verdict(versus <= 1.3)}; PEERS.md: ≥ 1.0× the baseline's speed, i.e. ≤ 1.00× its time: ${
        verdict(versus <= 1)
      }), ${percent(100 * share, 0)} of the ideal (issue 6: ≥ 70 %: ${verdict(share >= 0.7)}` +
      (m.id.endsWith("shm") ? `; PEERS.md, on tmpfs: ≥ 90 %: ${verdict(share >= 0.9)})` : ")") +
      `; main-loop p99 ${num(med(m, "loopP99Ms"), 1)} ms, peak RSS ${num(med(m, "peakRssMb"))} MB.`
    ]
    const incomplete = values(m).filter((v) => v.succeeded !== sizes.urls)
    if (incomplete.length > 0) lines.push(`  ${incomplete.length} round(s) did not end with every URL succeeded.`)
    return lines
  })
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
        "loop p99 ms",
        "peak RSS MB",
        "client CPU s",
        "upstream CPU s",
        "machine busy",
        "rounds (s)"
      ],
      rows
    ),
    "",
    `The ideal is the latency bound: ${num(sizes.urls)} / ${concurrency} × ${latency} ms = ${num(ideal / 1000, 2)} s.`,
    "",
    ...goals,
    ...findings(),
    "",
    "How it is measured. Each row is one process, the client under test, which first forks the simulated upstream " +
    `(${hosts} instances of \`@spindle/testkit\`'s \`Upstream\` on distinct ports of 127.0.0.1, in a ` +
    `process of its own, so the client's figures are its own). The ${num(sizes.urls)} URLs are distinct and spread ` +
    `round-robin over the hosts; each is answered after ${latency} ms with a distinct JSON body of about 1 KiB ` +
    "(a listing page of 150 numbers, 0.5 to 1.2 KiB), so no two bodies share a hash and every body becomes a file " +
    "of its own. Harvest runs for real in the client process: `Server.make(HarvestConfig.layer)` from " +
    "`apps/harvest/src/Server.ts`, configured through the environment (`PORT`, a fresh `DATA_DIR`, " +
    `\`MAX_CONCURRENCY=${concurrency}\`, \`HARVEST_ALLOW_PRIVATE_NETWORKS=true\`), SQLite in \`DATA_DIR\`. The job ` +
    "is `POST /jobs { urls, perHostConcurrency: 1000 }` (no per-host rate limit, so only the global limit binds; " +
    "every other option at its default) and is polled with `GET /jobs/:id` every 250 ms (only to see it end); its time runs from just " +
    "before the `POST` to the moment its last item was settled (the largest `finished_at` of its items, read " +
    "from Harvest's database after the run), so it includes storing the job and its " +
    `${num(sizes.urls)} items. The baseline ` +
    "is the script a programmer would write instead: `p-limit(200)` around undici's `request` over one " +
    "`Agent({ connections: 20 })`, each body hashed with SHA-256 and written with `writeFile` to its own file " +
    "(named by the hash) in a fresh directory on the same storage; it has no database, no retries, no per-host " +
    "limits and no HTTP API. *loop p99* is the client's main-thread event-loop delay (`monitorEventLoopDelay`, " +
    "5 ms resolution, minus the resolution) over the timed run; *peak RSS* is the client process's. *client CPU* " +
    "and *upstream CPU* are each process's CPU time over the timed run, *machine busy* the share of both cores " +
    `busy meanwhile, from \`/proc/stat\` (the highest median here: ${percent(busy, 0)}). The machine is shared ` +
    "with other work: with the client and the upstream needing more than one core between them, a busy machine " +
    "slows both columns, which is why only the ratios of rows measured in the same run are compared.",
    ...scaleSection(measured, sizes)
  ].join("\n")
}

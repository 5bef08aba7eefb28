/**
 * Benchmark 9: Harvest left running (issue 17). One process, as users start it, fed a steady stream of jobs for
 * several minutes; what must hold is that it leaks nothing: its RSS, its open file descriptors and its event loop's
 * delay flat from the second minute to the last. One round: the run is long, and flatness is judged within it.
 */
import { num, table, verdict } from "../lib/report.js"
import { type Measured, values, type Variant, variant } from "../lib/suite.js"

export interface Sizes {
  readonly urls: number
  readonly minutes: number
  /** The built `main.mjs` that `pnpm start` runs. */
  readonly main: string
}

const jobSize = 2000
const hosts = 20
const latency = 25
const concurrency = 200

/**
 * Issue 17's goal: RSS flat (the last minute's median at most 1.1× the second minute's), descriptors flat (the last
 * minute's median at most 1.1× the second's: connections to the upstream are opened and closed with the load, so a
 * fixed margin of a few would judge the machine; and, once every job has completed, no more than 2 above the count
 * before the first job, which is where a leaked descriptor shows), and the loop's p99 flat (the last minute's at most 1.5× the second's, or 5 ms more, whichever is larger: one minute's p99 moves
 * with the machine's other work).
 */
export const goal = { rssRatio: 1.1, fdRatio: 1.1, fdEndMargin: 2, loopRatio: 1.5, loopSlackMs: 5 } as const

export const variants = (sizes: Sizes): ReadonlyArray<Variant> => [
  variant(
    "soak-shm",
    `Harvest as users start it, ${num(sizes.urls)} URLs in jobs of ${num(jobSize)} over ${sizes.minutes} minutes`,
    "harvest-soak",
    [
      `--urls=${sizes.urls}`,
      `--minutes=${sizes.minutes}`,
      `--jobSize=${jobSize}`,
      `--hosts=${hosts}`,
      `--latency=${latency}`,
      `--concurrency=${concurrency}`,
      "--storage=shm",
      `--main=${sizes.main}`
    ],
    { timeoutMillis: (sizes.minutes + 5) * 60_000, spindle: true }
  )
]

interface Minute {
  readonly minute: number
  readonly urls: number
  readonly rssMb: number
  readonly fds: number
  readonly loopP99Ms: number
  readonly loopMaxMs: number
}

export const section = (measured: ReadonlyArray<Measured>, sizes: Sizes): string => {
  const lines = [
    "## 9. Harvest left running: a steady stream of jobs for several minutes in one process",
    "",
    `One Harvest process as users start it (\`pnpm start\`'s build, SQLite and bodies on tmpfs), fed one job of ` +
    `${num(jobSize)} URLs (${hosts} hosts, ${latency} ms latency, \`MAX_CONCURRENCY\` ${concurrency}) at a steady ` +
    `pace, ${num(sizes.urls)} URLs over ${sizes.minutes} minutes, about a quarter of what it can do flat out. ` +
    "Every second the benchmark reads the process's RSS and open file descriptors from `/proc/<pid>`; the " +
    "preloaded probe measures the event loop's delay over each minute. Figures per whole minute of the run: the " +
    "medians of the samples taken in it, the loop's p99 over it, and the URLs of the jobs that completed in it."
  ]
  const m = measured[0]
  const value = m === undefined ? undefined : values(m)[0]
  if (value === undefined) {
    lines.push("", "No run completed (see the failures below).")
    return lines.join("\n")
  }
  const minutes = value.perMinute as ReadonlyArray<Minute>
  lines.push(
    "",
    table(
      ["minute", "URLs completed", "RSS MB (median)", "open fds (median)", "loop p99 ms", "loop max ms"],
      minutes.map((row) => [
        num(row.minute),
        num(row.urls),
        num(row.rssMb, 1),
        num(row.fds),
        num(row.loopP99Ms, 1),
        num(row.loopMaxMs)
      ])
    )
  )
  const succeeded = Number(value.succeeded)
  const exact = succeeded === sizes.urls && Number(value.failed) === 0 && Number(value.upstreamRequests) === sizes.urls
  lines.push(
    "",
    `- ${num(Number(value.jobs))} jobs, ${num(succeeded)} URLs succeeded, ${num(Number(value.failed))} failed, ` +
      `${num(Number(value.upstreamRequests))} requests upstream, in ${num(Number(value.totalMillis) / 1000)} s ` +
      `(paced for ${num(Number(value.targetMillis) / 1000)} s); Harvest used ${
        num(Number(value.cpuMillis) / 1000, 1)
      } s of CPU (${num((1000 * Number(value.cpuMillis)) / sizes.urls)} µs per URL); the machine was ${
        num(Number(value.machineBusyPercent))
      } % busy. Every URL fetched once and recorded once: ${verdict(exact)}. The load shedder refused ${
        num(Number(value.postsRefused))
      } submissions (503, submitted again after its \`Retry-After\`) and ${num(Number(value.pollsRefused))} polls.`
  )
  if (minutes.length < 3) {
    lines.push("- Too short a run to judge flatness (at least 3 whole minutes are needed).")
    return lines.join("\n")
  }
  const second = minutes[1]
  const last = minutes[minutes.length - 1]
  const rssRatio = last.rssMb / second.rssMb
  const fdRatio = last.fds / second.fds
  const loopLimit = Math.max(second.loopP99Ms * goal.loopRatio, second.loopP99Ms + goal.loopSlackMs)
  lines.push(
    `- RSS: ${num(last.rssMb, 1)} MB in the last minute against ${num(second.rssMb, 1)} MB in the second, ` +
      `${num(rssRatio, 2)}×; the goal is ≤ ${goal.rssRatio}×: ${verdict(rssRatio <= goal.rssRatio)}.`,
    `- Open file descriptors: ${num(last.fds)} in the last minute against ${num(second.fds)} in the second, ` +
      `${num(fdRatio, 2)}×; the goal is ≤ ${goal.fdRatio}× (connections to the upstream open and close with the ` +
      `load): ${verdict(fdRatio <= goal.fdRatio)}. Once every job had completed: ${num(Number(value.fdsAtEnd))} ` +
      `against ${num(Number(value.fdsBefore))} before the first job; the goal is no more than ${goal.fdEndMargin} ` +
      `more: ${verdict(Number(value.fdsAtEnd) <= Number(value.fdsBefore) + goal.fdEndMargin)}.`,
    `- Event loop p99: ${num(last.loopP99Ms, 1)} ms in the last minute against ${num(second.loopP99Ms, 1)} ms in ` +
      `the second; the goal is ≤ ${num(loopLimit, 1)} ms (${goal.loopRatio}× or ${goal.loopSlackMs} ms more): ${
        verdict(last.loopP99Ms <= loopLimit)
      }.`
  )
  return lines.join("\n")
}

/**
 * What `harvest fetch` shows while it runs and when it ends: the jobs of a run aggregated into one progress (done,
 * total, rate over the last seconds, ETA), drawn as a redrawn bar on a terminal or as a plain line every second
 * elsewhere, and a summary table at the end.
 *
 * @since 0.1.0
 */
import type * as Domain from "../Domain.js"

/**
 * One job of the run, as last polled.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobProgress {
  readonly id: string
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly pending: number
  readonly status: Domain.JobView["status"]
}

/**
 * Whether a job will change no more.
 *
 * @since 0.1.0
 * @category models
 */
export const isFinished = (job: JobProgress): boolean => job.status === "completed" || job.status === "cancelled"

/**
 * The run as a whole at one moment.
 *
 * @since 0.1.0
 * @category models
 */
export interface Totals {
  readonly succeeded: number
  readonly failed: number
  /** Items of the submitted jobs still to fetch (or cancelled before they were). */
  readonly unfinished: number
  /** URLs known so far: the submitted jobs' totals, plus what is left of the input when its size is known. */
  readonly total: number
  /** False while URLs may still be read and submitted and no size was known up front. */
  readonly totalKnown: boolean
}

/**
 * The mutable state of one run: its jobs and how much of the input was submitted.
 *
 * @since 0.1.0
 * @category models
 */
export class Run {
  readonly jobs: Array<JobProgress> = []
  readonly startedAt = Date.now()
  /** URLs submitted so far (before the server's de-duplication). */
  submittedUrls = 0
  /** URLs in the input when counted up front. */
  expectedUrls: number | undefined = undefined
  /** True once the input is exhausted and every batch submitted. */
  inputDone = false
  interrupted = false
  private samples: Array<{ readonly at: number; readonly done: number }> = []

  /** Records a job as polled (or as submitted). */
  update(job: JobProgress): void {
    const index = this.jobs.findIndex((j) => j.id === job.id)
    if (index === -1) {
      // The rate is measured from the first submission: starting Harvest and reading the input are not fetching.
      if (this.jobs.length === 0) this.samples.push({ at: Date.now(), done: 0 })
      this.jobs.push(job)
    } else {
      this.jobs[index] = job
    }
  }

  totals(): Totals {
    let succeeded = 0
    let failed = 0
    let total = 0
    for (const job of this.jobs) {
      succeeded += job.succeeded
      failed += job.failed
      total += job.total
    }
    const left = this.expectedUrls === undefined || this.inputDone
      ? 0
      : Math.max(0, this.expectedUrls - this.submittedUrls)
    return {
      succeeded,
      failed,
      unfinished: Math.max(0, total - succeeded - failed),
      total: total + left,
      totalKnown: this.inputDone || this.expectedUrls !== undefined
    }
  }

  /** True when the input is submitted and every job finished. */
  finished(): boolean {
    return this.inputDone && this.jobs.every(isFinished)
  }

  /** Items finished per second over the last ten seconds (since the first submission at first). */
  rate(now = Date.now()): number {
    const totals = this.totals()
    const done = totals.succeeded + totals.failed
    this.samples.push({ at: now, done })
    while (this.samples.length > 2 && now - this.samples[1].at >= 10_000) this.samples.shift()
    const first = this.samples[0]
    const seconds = (now - first.at) / 1000
    return seconds <= 0 ? 0 : (done - first.done) / seconds
  }
}

/**
 * A duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const duration = (millis: number): string => {
  if (!Number.isFinite(millis)) return "?"
  if (millis < 1000) return `${Math.round(millis)}ms`
  const seconds = millis / 1000
  if (seconds < 60) return `${seconds.toFixed(1)}s`
  const whole = Math.round(seconds)
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`
}

const describe = (run: Run, now: number) => {
  const totals = run.totals()
  const done = totals.succeeded + totals.failed
  const rate = run.rate(now)
  const remaining = totals.total - done
  const eta = !totals.totalKnown ? "?" : remaining <= 0 ? "0s" : rate > 0 ? duration((remaining / rate) * 1000) : "?"
  const percent = totals.total === 0 ? 0 : Math.floor((done / totals.total) * 100)
  const total = `${totals.total}${totals.totalKnown ? "" : "+"}`
  return { totals, done, rate, eta, percent, total }
}

/**
 * The plain progress line: `fetched 120/300 (40%) 35.2/s eta 5s, 3 failed`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const line = (run: Run, now = Date.now()): string => {
  const d = describe(run, now)
  const failed = d.totals.failed > 0 ? `, ${d.totals.failed} failed` : ""
  return `fetched ${d.done}/${d.total} (${d.percent}%) ${d.rate.toFixed(1)}/s eta ${d.eta}${failed}`
}

/**
 * The terminal progress bar, fitted to `columns`: `[█████░░░░░] 120/300 40% 35.2/s eta 5s ✗3`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const bar = (run: Run, columns: number, now = Date.now()): string => {
  const d = describe(run, now)
  const failed = d.totals.failed > 0 ? ` ✗${d.totals.failed}` : ""
  const text = ` ${d.done}/${d.total} ${d.percent}% ${d.rate.toFixed(1)}/s eta ${d.eta}${failed}`
  const width = Math.max(10, Math.min(40, columns - text.length - 3))
  const filled = d.totals.total === 0 ? 0 : Math.min(width, Math.floor((d.done / d.totals.total) * width))
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}]${text}`.slice(0, Math.max(1, columns - 1))
}

/**
 * Failed items counted by error code, with the first few as examples.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failures {
  readonly byCode: ReadonlyMap<string, number>
  readonly examples: ReadonlyArray<{ readonly url: string; readonly code: string; readonly message: string }>
  /** False when the breakdown was cut short (an interrupted run has little time for it). */
  readonly complete: boolean
}

/**
 * The summary table printed at the end of `harvest fetch`, interrupted or not.
 *
 * @since 0.1.0
 * @category formatting
 */
export const summary = (run: Run, failures: Failures, now = Date.now()): string => {
  const totals = run.totals()
  const elapsed = now - run.startedAt
  const done = totals.succeeded + totals.failed
  const rows: Array<[string, string]> = [["succeeded", String(totals.succeeded)], ["failed", String(totals.failed)]]
  for (const [code, n] of [...failures.byCode].sort(([a], [b]) => a.localeCompare(b))) rows.push([`  ${code}`, `${n}`])
  if (totals.failed > 0 && !failures.complete) rows.push(["  (breakdown incomplete)", ""])
  if (totals.unfinished > 0) rows.push([run.interrupted ? "not fetched" : "unfinished", String(totals.unfinished)])
  rows.push(
    ["total", String(totals.total)],
    ["elapsed", duration(elapsed)],
    ["rate", `${(elapsed <= 0 ? 0 : done / (elapsed / 1000)).toFixed(1)}/s`]
  )
  const width = Math.max(...rows.map(([name]) => name.length)) + 2
  const valueWidth = Math.max(...rows.map(([, value]) => value.length))
  const out = [run.interrupted ? "Interrupted: summary so far" : "Summary"]
  for (const [name, value] of rows) out.push(`  ${name.padEnd(width)}${value.padStart(valueWidth)}`)
  if (failures.examples.length > 0) {
    out.push("", `First failures (${failures.examples.length} of ${totals.failed}):`)
    for (const example of failures.examples) out.push(`  ${example.code}  ${example.url}  ${example.message}`)
  }
  out.push("", run.jobs.length === 1 ? "Job:" : `Jobs (${run.jobs.length}):`)
  for (const job of run.jobs) out.push(`  ${job.id}  ${job.status}  ${job.total} URLs`)
  return out.join("\n")
}

/**
 * Recording and judging the start times a rate limiter grants.
 *
 * A limiter of `rate` per second with capacity `burst` conforms when every window [t_i, t_j] of starts holds at
 * most `burst + rate * (t_j - t_i) / 1000` of them. Start times are taken with `performance.now()` (sub-millisecond),
 * while the limiters decide on whole milliseconds (`Date.now()`, which Effect's `Clock` and the peers use) and
 * Node's timers fire on libuv's millisecond clock: two starts the limiter saw 5 ms apart can be observed 4.x ms
 * apart. So each window is granted `toleranceMillis` (1 ms, i.e. 0.2 of a token at 200/s) of slack; because
 * starts are whole, this forgives a start that comes less than 1 ms early and nothing more.
 *
 * The two clocks need not run at the same rate: on a virtual machine whose wall clock is being slewed, `Date.now()`
 * ran 200–850 ppm faster than `performance.now()` (measured while this was written), so a limiter deciding on
 * `Date.now()` starts up to 0.085 % too fast in real time, and over a few seconds that is more than the 1 ms of
 * slack. Starts are judged as an upstream sees them, in real (monotonic) time; the recorder reads both clocks at a
 * tick of `Date.now()` when it is made and when it closes and reports how far they drifted (`clockDriftPpm`).
 */

/**
 * Collects start times. The window closes `durationMillis` after the last waiter was queued (so that it holds
 * `durationMillis` of granting with every waiter queued), or `durationMillis` after the first start if queueing
 * has not ended by then, or as soon as every waiter has started.
 */
export interface Recorder {
  /** Call when a waiter starts. Starts after the window has closed are ignored. */
  readonly record: () => void
  /** Resolves when every waiter has started or the window has closed. */
  readonly done: Promise<void>
  /** The recorded start times (milliseconds, `performance.now()`), in the order they were recorded. */
  readonly times: () => Float64Array
  /** Call when a waiter has been handed to the limiter; the last call marks the end of queueing. */
  readonly queued: () => void
  /** When the recorder was made: the moment the waiters begin to be queued. */
  readonly origin: number
  /** When the last waiter was queued (`NaN` while some are not). */
  readonly queuedAt: () => number
  /** How much faster `Date.now()` ran than `performance.now()` while the recorder was open, in ppm. */
  readonly clockDriftPpm: () => number
}

// Both clocks at the moment `Date.now()` ticks (a busy wait of at most a millisecond).
const syncClocks = (): readonly [number, number] => {
  const date = Date.now()
  let next = Date.now()
  while (next === date) next = Date.now()
  return [next, performance.now()]
}

export const makeRecorder = (waiters: number, durationMillis: number): Recorder => {
  const [dateStart, perfStart] = syncClocks()
  let dateMillisPerPerfMilli = Number.NaN
  const origin = performance.now()
  const times = new Float64Array(waiters)
  let count = 0
  let queuedCount = 0
  let queuedAt = Number.NaN
  let closeAt = Number.POSITIVE_INFINITY
  let closed = false
  let finish: () => void = () => {}
  const done = new Promise<void>((resolve) => {
    finish = resolve
  })
  const close = () => {
    if (closed) return
    closed = true
    const [dateEnd, perfEnd] = syncClocks()
    dateMillisPerPerfMilli = (dateEnd - dateStart) / (perfEnd - perfStart)
    finish()
  }
  // Re-arms itself when `closeAt` moves later (queueing ended after the first start).
  const tick = () => {
    const now = performance.now()
    if (now >= closeAt) close()
    else setTimeout(tick, closeAt - now)
  }
  const closeLater = (at: number) => {
    closeAt = at
    setTimeout(tick, at - performance.now())
  }
  const record = () => {
    if (closed) return
    const now = performance.now()
    if (now > closeAt) return close()
    times[count++] = now
    if (count === 1 && Number.isNaN(queuedAt)) closeLater(now + durationMillis)
    if (count === waiters) close()
  }
  const queued = () => {
    if (++queuedCount !== waiters) return
    queuedAt = performance.now()
    if (!closed) closeLater(queuedAt + durationMillis)
  }
  return {
    record,
    done,
    times: () => times.subarray(0, count),
    queued,
    origin,
    queuedAt: () => queuedAt,
    clockDriftPpm: () => (dateMillisPerPerfMilli - 1) * 1e6
  }
}

/** What a run achieved against `rate` per second with capacity `burst`. */
export interface Analysis {
  readonly grants: number
  /** From the first start to the last, in milliseconds. */
  readonly spanMillis: number
  /** From the moment the waiters began to be queued to the first start, in milliseconds. */
  readonly firstStartMillis: number
  /** From the moment the waiters began to be queued until the last of them was, in milliseconds. */
  readonly queueMillis: number
  /**
   * Over the whole run, queueing included: starts beyond the initial burst divided by the span, as a percentage of
   * `rate`. A perfect bucket that hands out `burst` at once and then one start every `1000 / rate` ms scores
   * exactly 100 %, and so does one that starts `burst` every `burst * 1000 / rate` ms.
   */
  readonly ratePercent: number
  /**
   * The rate once every waiter is queued, as a percentage of `rate`, measured from the first start at least
   * `SETTLE_MILLIS` after queueing ended (so that a burst refilled while the event loop was busy queueing has been
   * served) to the last start. `NaN` when queueing did not end in time.
   */
  readonly steadyRatePercent: number
  /** Starts that closed at least one window holding more starts than the bucket allows. */
  readonly overruns: number
  /** The window with the largest excess, when there is an over-run. */
  readonly worst: { readonly starts: number; readonly millis: number; readonly allowed: number } | undefined
}

/** How long after queueing ends the steady rate starts being measured. */
export const SETTLE_MILLIS = 100

/** Starts closer than this to the previous one belong to the same batch (p-queue starts 10 at a time). */
const BATCH_GAP_MILLIS = 0.5

/**
 * Starts per millisecond from the first batch that begins at or after `from` to the last batch: the starts of
 * every later batch over the time between the first starts of the two batches, which is exact for a limiter that
 * starts one every 5 ms as for one that starts 10 every 50 ms.
 */
const steadyRate = (times: Float64Array, from: number): number => {
  if (Number.isNaN(from)) return Number.NaN
  const n = times.length
  const batchStart = (i: number) => i === 0 || times[i] - times[i - 1] >= BATCH_GAP_MILLIS
  let a = 0
  while (a < n && !(times[a] >= from && batchStart(a))) a++
  let b = n - 1
  while (b > a && !batchStart(b)) b--
  let afterA = a + 1
  while (afterA < n && !batchStart(afterA)) afterA++
  if (b <= a || n - afterA < 10) return Number.NaN
  return (n - afterA) / (times[b] - times[a])
}

/**
 * Judges sorted start times in O(n): the excess of window [i, j] is `g(j) - g(i) + 1 - burst - rate * tolerance`
 * with `g(k) = k - rate * t_k`, so for each j the worst window starts at the i <= j that minimises `g(i)`.
 */
export const analyse = (
  recorded: Float64Array,
  origin: number,
  queuedAt: number,
  options: { readonly ratePerSecond: number; readonly burst: number; readonly toleranceMillis: number }
): Analysis => {
  const times = Float64Array.from(recorded).sort()
  const n = times.length
  const perMilli = options.ratePerSecond / 1000
  const slack = options.burst + perMilli * options.toleranceMillis - 1
  let minG = Number.POSITIVE_INFINITY
  let minAt = 0
  let overruns = 0
  let worstExcess = 0
  let worst: Analysis["worst"] = undefined
  for (let j = 0; j < n; j++) {
    const g = j - perMilli * times[j]
    if (g < minG) {
      minG = g
      minAt = j
    }
    const excess = g - minG - slack
    if (excess > 1e-9) {
      overruns++
      if (excess > worstExcess) {
        worstExcess = excess
        const millis = times[j] - times[minAt]
        worst = { starts: j - minAt + 1, millis, allowed: options.burst + perMilli * millis }
      }
    }
  }
  const spanMillis = n > 0 ? times[n - 1] - times[0] : 0
  const ratePercent = n > options.burst && spanMillis > 0
    ? ((n - options.burst) / spanMillis) / perMilli * 100
    : Number.NaN
  return {
    grants: n,
    spanMillis,
    firstStartMillis: n > 0 ? times[0] - origin : Number.NaN,
    queueMillis: queuedAt - origin,
    ratePercent,
    steadyRatePercent: steadyRate(times, queuedAt + SETTLE_MILLIS) / perMilli * 100,
    overruns,
    worst
  }
}

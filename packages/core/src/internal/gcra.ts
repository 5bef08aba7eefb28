/**
 * The generic cell rate algorithm (GCRA) behind every token bucket in Spindle.
 *
 * The theoretical arrival time (TAT) is kept as `anchor + count * emission`, where `count` is an integer
 * number of tokens issued since `anchor`. Every decision recomputes the TAT with one multiplication from a
 * fixed origin, so no floating-point error accumulates however long the bucket runs, and no timer is ever
 * needed to "refill" it: the number of tokens available is a pure function of the clock.
 *
 * @internal
 */

/** @internal */
export interface GcraState {
  anchor: number
  count: number
}

/**
 * Tolerance for the float comparison of two instants, in milliseconds (one nanosecond).
 *
 * @internal
 */
export const EPSILON = 1e-6

/** @internal */
export const make = (): GcraState => ({ anchor: Number.NEGATIVE_INFINITY, count: 0 })

/**
 * Milliseconds from `now` until the theoretical arrival time (negative when the bucket is full).
 *
 * The clock reads epoch milliseconds (about 1.7e12, where doubles are only 2.4e-4 ms apart), so the absolute
 * arrival time is never formed: `anchor - now` is an exact difference of two clock readings and `count * emission`
 * a single rounding of a value the size of the lag itself.
 *
 * @internal
 */
export const lag = (state: GcraState, now: number, emission: number): number =>
  state.count === 0 ? Number.NEGATIVE_INFINITY : (state.anchor - now) + state.count * emission

/**
 * Tokens available at `now`, a whole number between 0 and `burst`.
 *
 * @internal
 */
export const available = (state: GcraState, now: number, emission: number, burst: number): number => {
  const ahead = lag(state, now, emission)
  if (ahead <= 0) return burst
  return Math.max(0, Math.floor(burst - ahead / emission + EPSILON))
}

/**
 * `true` when the bucket is full at `now`: its state is then indistinguishable from a fresh one and may be
 * forgotten (this is what makes eviction of idle keys exact).
 *
 * @internal
 */
export const isFull = (state: GcraState, now: number, emission: number): boolean => lag(state, now, emission) <= EPSILON

/**
 * Takes `tokens` if they are available at `now` and returns 0, or returns the number of milliseconds after
 * which they will be, consuming nothing.
 *
 * @internal
 */
export const reserve = (
  state: GcraState,
  now: number,
  tokens: number,
  emission: number,
  burst: number
): number => {
  const ahead = lag(state, now, emission)
  const fresh = ahead <= 0
  const wait = (fresh ? 0 : ahead) + (tokens - burst) * emission
  if (wait > EPSILON) return wait
  if (fresh) {
    state.anchor = now
    state.count = tokens
  } else {
    state.count += tokens
  }
  return 0
}

/**
 * What the benchmarks of `main.ts` and `suites/` share: a variant to run, its outcomes over the rounds, and the
 * medians the report is made of.
 */
import { field, median } from "./report.js"
import type { Outcome } from "./runner.js"

/** One way of doing a benchmark's work: a bundled file of `src/variants` and its arguments. */
export interface Variant {
  readonly id: string
  readonly label: string
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly timeoutMillis: number
  readonly spindle: boolean
}

/** A variant with what each round printed. */
export interface Measured extends Variant {
  readonly outcomes: ReadonlyArray<Outcome>
}

export const variant = (
  id: string,
  label: string,
  file: string,
  args: ReadonlyArray<string>,
  options: { readonly timeoutMillis: number; readonly spindle?: boolean }
): Variant => ({ id, label, file, args, timeoutMillis: options.timeoutMillis, spindle: options.spindle ?? false })

/** The results of the rounds that succeeded. */
export const values = (measured: Measured): ReadonlyArray<Record<string, unknown>> =>
  measured.outcomes.flatMap((outcome) => (outcome._tag === "Ok" ? [outcome.value] : []))

/** The median of a numeric field over the rounds. */
export const med = (measured: Measured, name: string): number =>
  median(values(measured).map((value) => field(value, name)))

export const failures = (measured: ReadonlyArray<Measured>): Array<string> =>
  measured.flatMap((m) =>
    m.outcomes.flatMap((outcome, round) =>
      outcome._tag === "Failed" ? [`- ${m.label} (${m.id}), round ${round + 1}: ${outcome.reason}`] : []
    )
  )

export const byId = (measured: ReadonlyArray<Measured>, id: string): Measured => {
  const found = measured.find((m) => m.id === id)
  if (found === undefined) throw new Error(`no variant ${id}`)
  return found
}

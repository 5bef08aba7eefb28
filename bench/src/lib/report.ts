/**
 * Medians over rounds and Markdown formatting for `RESULTS.md`.
 */

/** The median of the finite values (the mean of the middle two for an even count), or `NaN` when there are none. */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** A numeric field of a variant's JSON result (`NaN` when absent or not a number, as JSON turns `NaN` into null). */
export const field = (result: Record<string, unknown>, name: string): number => {
  const value = result[name]
  return typeof value === "number" ? value : Number.NaN
}

const dash = "–"

/** `1234567.8` → `"1,234,568"`, with `digits` decimals. */
export const num = (value: number, digits = 0): string =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : dash

/** Operations per second, compactly: `9.55 M`, `496 k`, `387`. */
export const perSecond = (value: number): string => {
  if (!Number.isFinite(value)) return dash
  if (value >= 1e6) return `${num(value / 1e6, 2)} M`
  if (value >= 1e4) return `${num(value / 1e3, 0)} k`
  return num(value, 0)
}

/** A ratio as `1.23×` (two significant digits below 0.1: `0.00078×`). */
export const ratio = (value: number): string => {
  if (!Number.isFinite(value)) return dash
  return value >= 0.1 || value === 0 ? `${num(value, 2)}×` : `${value.toPrecision(2)}×`
}

/** A percentage as `99.87 %`. */
export const percent = (
  value: number,
  digits = 2
): string => (Number.isFinite(value) ? `${num(value, digits)} %` : dash)

/** A verdict cell. */
export const verdict = (ok: boolean): string => (ok ? "met" : "**missed**")

/** A Markdown table. */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((cell) => cell.replaceAll("|", "\\|")).join(" | ")} |`
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n")
}

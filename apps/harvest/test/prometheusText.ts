/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests of `/metrics`: every rule of
 * the format is checked, and any breach throws, naming the line. The parser found on the registry for it
 * (`parse-prometheus-text-format`) fails on valid text whose histogram writes `_count` before its buckets, as
 * OpenTelemetry's exporter does, and checks neither names nor grouping, so the rules are checked here:
 *
 * - lines are `# HELP <name> <text>`, `# TYPE <name> <type>`, other comments, blank, or samples
 *   `<name>[{<label>="<value>",...}] <value> [<timestamp>]`, ending with a line feed;
 * - metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*` (not `__`-prefixed), label
 *   values escape only `\\`, `\"` and `\n`; a value is a float, `+Inf`, `-Inf` or `NaN`;
 * - a family's samples are together (one group per family), its `HELP` and `TYPE` at most once each and before its
 *   samples; a histogram's series are `<name>_bucket` (with `le`), `<name>_sum` and `<name>_count`; no series twice;
 * - a histogram's buckets, by ascending `le`, never decrease; the last is `+Inf` and equals `_count`.
 */

/** One sample line. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** A metric family: its name, `HELP` (empty when absent), type (`untyped` when absent), and samples. */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "untyped"
  readonly samples: ReadonlyArray<Sample>
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const types = new Set<string>(["counter", "gauge", "histogram", "summary", "untyped"])
const sampleLine = /^([^\s{]+)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/
const labelPair = /^([^=,]+)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/

const numberOf = (text: string, line: string): number => {
  if (text === "+Inf") return Infinity
  if (text === "-Inf") return -Infinity
  if (text === "NaN") return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`not a number: ${line}`)
  return Number(text)
}

const unescape = (value: string) => value.replace(/\\([\\"n])/g, (_, c: string) => c === "n" ? "\n" : c)

const labelsOf = (text: string | undefined, line: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  let rest = text ?? ""
  while (rest.length > 0) {
    const match = labelPair.exec(rest)
    if (match === null) throw new Error(`malformed labels: ${line}`)
    const name = match[1]
    if (!labelName.test(name) || name.startsWith("__")) throw new Error(`invalid label name ${name}: ${line}`)
    if (name in labels) throw new Error(`label ${name} twice: ${line}`)
    labels[name] = unescape(match[2])
    rest = rest.slice(match[0].length)
  }
  return labels
}

interface Building {
  name: string
  help: string | undefined
  type: Family["type"] | undefined
  samples: Array<Sample>
}

// The family a sample named `name` belongs to, given the family being read.
const familyOf = (name: string, current: Building | undefined) => {
  if (current?.type === "histogram" || current?.type === "summary") {
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      if (name === `${current.name}${suffix}`) return current.name
    }
  }
  return name
}

/** The text's families, in order, once the text has passed every rule (a breach throws, naming the line). */
export const parse = (text: string): ReadonlyArray<Family> => {
  if (!text.endsWith("\n")) throw new Error("the text does not end with a line feed")
  const families: Array<Building> = []
  const seen = new Set<string>()
  const series = new Set<string>()
  let current: Building | undefined
  const enter = (name: string) => {
    if (current?.name === name) return current
    if (seen.has(name)) throw new Error(`family ${name} is not grouped: it appears again after others`)
    seen.add(name)
    current = { name, help: undefined, type: undefined, samples: [] }
    families.push(current)
    return current
  }
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue
    if (line.startsWith("#")) {
      const meta = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t](.*))?$/.exec(line)
      if (meta === null) continue
      const [, kind, name, rest = ""] = meta
      if (!metricName.test(name)) throw new Error(`invalid metric name: ${line}`)
      const family = enter(name)
      if (kind === "HELP") {
        if (family.help !== undefined) throw new Error(`second HELP for ${name}`)
        family.help = rest.replace(/\\([\\n])/g, (_, c: string) => c === "n" ? "\n" : c)
      } else {
        if (family.type !== undefined) throw new Error(`second TYPE for ${name}`)
        if (family.samples.length > 0) throw new Error(`TYPE of ${name} after its samples`)
        if (!types.has(rest)) throw new Error(`unknown type: ${line}`)
        family.type = rest as Family["type"]
      }
      continue
    }
    const sample = sampleLine.exec(line)
    if (sample === null) throw new Error(`malformed sample: ${line}`)
    const [, name, labelText, value] = sample
    if (!metricName.test(name)) throw new Error(`invalid metric name: ${line}`)
    const family = enter(familyOf(name, current))
    const labels = labelsOf(labelText, line)
    if (family.type === "histogram") {
      if (name === family.name) throw new Error(`a histogram's sample must be _bucket, _sum or _count: ${line}`)
      if (name.endsWith("_bucket") !== ("le" in labels)) throw new Error(`le belongs to _bucket only: ${line}`)
    }
    const key = `${name}{${Object.keys(labels).sort().map((label) => `${label}=${labels[label]}`).join(",")}}`
    if (series.has(key)) throw new Error(`series twice: ${line}`)
    series.add(key)
    family.samples.push({ name, labels, value: numberOf(value, line) })
  }
  const read = families.map((f): Family => ({
    name: f.name,
    help: f.help ?? "",
    type: f.type ?? "untyped",
    samples: f.samples
  }))
  for (const family of read) if (family.type === "histogram") checkHistogram(family)
  return read
}

const withoutLe = (labels: Readonly<Record<string, string>>) =>
  JSON.stringify(Object.entries(labels).filter(([name]) => name !== "le").sort())

/** A histogram's rules, for each of its series: buckets cumulative in `le`, the last `+Inf`, equal to `_count`. */
export const checkHistogram = (family: Family): void => {
  const keys = new Set(family.samples.map((sample) => withoutLe(sample.labels)))
  for (const key of keys) {
    const samples = family.samples.filter((sample) => withoutLe(sample.labels) === key)
    const buckets = samples.filter((sample) => sample.name === `${family.name}_bucket`)
      .map((sample) => ({ le: numberOf(sample.labels.le, `le="${sample.labels.le}"`), count: sample.value }))
      .sort((a, b) => a.le - b.le)
    const where = `${family.name}${key}`
    if (buckets.length === 0) throw new Error(`${where} has no buckets`)
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i].le === buckets[i - 1].le) throw new Error(`${where}: le=${buckets[i].le} twice`)
      if (buckets[i].count < buckets[i - 1].count) throw new Error(`${where}: bucket le=${buckets[i].le} decreases`)
    }
    const last = buckets[buckets.length - 1]
    if (last.le !== Infinity) throw new Error(`${where} has no +Inf bucket`)
    const count = samples.find((sample) => sample.name === `${family.name}_count`)
    if (count === undefined || count.value !== last.count) {
      throw new Error(`${where}: +Inf bucket ${last.count} is not _count ${count?.value}`)
    }
    if (samples.find((sample) => sample.name === `${family.name}_sum`) === undefined) {
      throw new Error(`${where} has no _sum`)
    }
  }
}

/** The family named `name`, or a failure naming it. */
export const family = (families: ReadonlyArray<Family>, name: string): Family => {
  const found = families.find((f) => f.name === name)
  if (found === undefined) throw new Error(`no family ${name}`)
  return found
}

/** The value of `series` (the family's name by default) whose labels are exactly `labels`; 0 when there is none. */
export const valueOf = (found: Family, labels: Record<string, string> = {}, series: string = found.name): number => {
  const wanted = JSON.stringify(Object.entries(labels).sort())
  const sample = found.samples.find((s) =>
    s.name === series && JSON.stringify(Object.entries(s.labels).sort()) === wanted
  )
  return sample === undefined ? 0 : sample.value
}

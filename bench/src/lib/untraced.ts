/**
 * Issue 20's honest comparison for tracing: the core as shipped against the core as it was before its spans, in one
 * process. The core's sources at `UNTRACED_REV` (the commit before the first span) are extracted with `git archive`
 * under `.tmp/` (ignored by git), and each core is bundled into a module of its own next to the variants
 * (`.tmp/variants/core-shipped.mjs`, `.tmp/variants/core-untraced.mjs`, Effect imported from `node_modules` by both,
 * so both run on one Effect runtime). The `tracing-paired` variant loads both and times the same workload on each in
 * alternating blocks, so that both see the same machine and the same JIT state.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { num, perSecond, ratio, table, verdict } from "./report.js"
import { benchDir, loadEsbuild } from "./runner.js"
import { type Measured, med, values, type Variant, variant } from "./suite.js"

/** The last commit of the core before issue 20's spans. */
export const UNTRACED_REV = "f56c03b5063f"

const repoDir = Path.resolve(benchDir, "..")
const coresDir = Path.join(benchDir, ".tmp", "cores")
const outDir = Path.join(benchDir, ".tmp", "variants")

/** The modules the paired workloads use (not the whole index: `Lines` would pull in `@effect/platform`). */
const modules = ["Bulkhead", "CircuitBreaker", "Deadline", "Policy", "RetryPolicy"]

const entry = (srcDir: string): string =>
  modules.map((name) => `export * as ${name} from ${JSON.stringify(Path.join(srcDir, `${name}.ts`))}\n`).join("")

/**
 * Extracts the untraced core (once per revision) and bundles both cores; `false`, with the reason on stderr, when
 * that is impossible (no git history, no esbuild), in which case the paired rows fail and say so.
 */
export const prepareCores = async (): Promise<boolean> => {
  try {
    const untracedDir = Path.join(coresDir, `untraced-${UNTRACED_REV}`)
    const untracedSrc = Path.join(untracedDir, "packages", "core", "src")
    if (!existsSync(untracedSrc)) {
      mkdirSync(untracedDir, { recursive: true })
      const archive = execFileSync("git", ["archive", UNTRACED_REV, "packages/core/src"], {
        cwd: repoDir,
        maxBuffer: 64 * 1024 * 1024
      })
      execFileSync("tar", ["-x", "-C", untracedDir], { input: archive })
    }
    writeFileSync(Path.join(coresDir, "core-untraced.ts"), entry(untracedSrc))
    // The same untraced core once more, as a module of its own: the A/A control of the method.
    writeFileSync(Path.join(coresDir, "core-untraced-copy.ts"), entry(untracedSrc))
    writeFileSync(Path.join(coresDir, "core-shipped.ts"), entry(Path.join(repoDir, "packages", "core", "src")))
    // Two copies of each core are timed, and each core's figure is their sum: what one bundle happens to get from
    // the JIT (code placement, inlining) is averaged over two.
    writeFileSync(Path.join(coresDir, "core-shipped-copy.ts"), entry(Path.join(repoDir, "packages", "core", "src")))
    // The shipped core once more for the run under a tracer, so that its traced paths never run in (and never
    // reshape the JIT's view of) the copy timed without one.
    writeFileSync(Path.join(coresDir, "core-shipped-traced.ts"), entry(Path.join(repoDir, "packages", "core", "src")))
    const esbuild = await loadEsbuild()
    mkdirSync(outDir, { recursive: true })
    await esbuild.build({
      entryPoints: [
        "core-untraced.ts",
        "core-untraced-copy.ts",
        "core-shipped.ts",
        "core-shipped-copy.ts",
        "core-shipped-traced.ts"
      ].map((
        file
      ) => Path.join(coresDir, file)),
      outdir: outDir,
      outExtension: { ".js": ".mjs" },
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      external: ["effect", "effect/*"],
      // The extracted copy lives outside the workspace: Effect is found where the core finds it.
      nodePaths: [Path.join(repoDir, "packages", "core", "node_modules")],
      logLevel: "warning"
    })
    return true
  } catch (error) {
    process.stderr.write(`untraced core unavailable (${String(error)}); the tracing rows will fail\n`)
    return false
  }
}

/** Issue 20's goal: the spans cost at most 5 % with no tracer installed. */
const GOAL = 1.05

/** The paired variants of a benchmark, one per workload (`id` is `tracing-<workload>`). */
export const pairedVariants = (
  workloads: ReadonlyArray<{ readonly workload: string; readonly label: string }>,
  args: ReadonlyArray<string>
): ReadonlyArray<Variant> =>
  workloads.flatMap(({ label, workload }) => [
    variant(`tracing-${workload}`, label, "tracing-paired", [`--variant=${workload}`, ...args], {
      timeoutMillis: 240_000,
      spindle: true
    }),
    variant(
      `tracing-traced-${workload}`,
      label,
      "tracing-paired",
      [`--variant=${workload}`, "--traced=true", ...args],
      {
        timeoutMillis: 240_000,
        spindle: true
      }
    )
  ])

export const isPaired = (m: Measured): boolean => m.file === "tracing-paired"

/**
 * The tracing part of a section: per workload, the untraced core, the shipped core with no tracer and with a
 * dropping one, from the same process; and the verdict on the goal, for the workload where the spans cost most.
 */
export const pairedSection = (measured: ReadonlyArray<Measured>, unit: "ops/s" | "ns/call"): Array<string> => {
  const all = measured.filter(isPaired)
  const paired = all.filter((m) => !m.id.startsWith("tracing-traced-"))
  const tracedOf = (m: Measured) => all.find((t) => t.id === `tracing-traced-${m.id.slice("tracing-".length)}`)
  const tracedFigure = (m: Measured, name: string) => {
    const t = tracedOf(m)
    if (t === undefined) return "—"
    return name === "ratio"
      ? ratio(med(t, "tracedOverUntraced"))
      : unit === "ops/s"
      ? perSecond(med(t, "tracedOpsPerSec"))
      : num(med(t, "tracedNsPerOp"))
  }
  if (paired.length === 0) return []
  const figure = (m: Measured, name: string) =>
    unit === "ops/s" ? perSecond(med(m, `${name}OpsPerSec`)) : num(med(m, `${name}NsPerOp`))
  const rows = paired.map((m) => [
    m.label,
    figure(m, "untraced"),
    figure(m, "shipped"),
    ratio(med(m, "shippedOverUntraced")),
    ratio(med(m, "controlOverUntraced")),
    tracedFigure(m, "figure"),
    tracedFigure(m, "ratio"),
    values(m).map((value) => ratio(Number(value.shippedOverUntraced))).join(" · ")
  ])
  const worst = paired.reduce((a, b) => med(b, "shippedOverUntraced") > med(a, "shippedOverUntraced") ? b : a)
  const cost = (med(worst, "shippedOverUntraced") - 1) * 100
  const controls = all.flatMap((m) => values(m).map((value) => Number(value.controlOverUntraced)))
  const controlRange = controls.length === 0 ? "—" : `${ratio(Math.min(...controls))}–${ratio(Math.max(...controls))}`
  const loads = all.flatMap((m) => values(m).map((value) => Number(value.loadAverage))).filter(Number.isFinite)
  const load = loads.length === 0
    ? ""
    : ` The machine was shared while these ran: one-minute load average ${num(Math.min(...loads), 1)}–${
      num(Math.max(...loads), 1)
    } on ${Os.cpus().length} cores.`
  const perWorkload = paired.map((m) =>
    `${m.id.slice("tracing-".length)} ${num((med(m, "shippedOverUntraced") - 1) * 100, 1)} %`
  )
  return [
    "",
    `### Tracing (issue 20): the core before its spans, and with a tracer installed`,
    "",
    table(
      [
        "workload",
        `untraced core (before issue 20, ${UNTRACED_REV.slice(0, 7)}) ${unit}`,
        `shipped core, no tracer ${unit}`,
        "time × untraced",
        "A/A control: untraced copy × untraced",
        `shipped core, dropping tracer ${unit}`,
        "time × untraced",
        "rounds (shipped time × untraced)"
      ],
      rows
    ),
    "",
    `- Spans with no tracer installed cost ${num(cost, 1)} % (goal ≤ 5 %): ${verdict(cost <= (GOAL - 1) * 100)}. ` +
    `That is the workload where they cost most (${worst.id.slice("tracing-".length)}); per workload: ${
      perWorkload.join(", ")
    }; the A/A control's rounds ranged over ${controlRange}.${load}`,
    "",
    "How it is measured. The untraced core is the core's sources at the commit before the first span " +
    `(\`${UNTRACED_REV}\`), extracted by \`git archive\` under \`bench/.tmp/\`; each core is bundled into a module ` +
    "of its own on the one Effect runtime of `node_modules`, and one process (`src/variants/tracing-paired.ts`) " +
    "loads both, builds the same workload on each, and times them in 100 alternating blocks (the order rotates " +
    "every block), after a warm-up of each; *time × untraced* is the shipped core's total time over the untraced " +
    "core's (1.00× costs nothing; 1.05× is 5 % slower). Across processes the rounds of one variant spread over more " +
    "than 5 % on this shared machine, which is why the comparison is made within one. Each core is timed as two " +
    "copies bundled apart, its figure their total, so that what one bundle happens to get from the JIT is averaged " +
    "over two. The *A/A control* divides one untraced copy's time by the other's, " +
    "identical code, so its ratio shows how far " +
    "the method itself is from 1.00× (the JIT treats the two copies as different code; the one loaded or warmed " +
    "first can come out ahead), and a cost smaller than that spread is below what this measurement resolves. With " +
    "no tracer installed, " +
    "every operation asks once whether the fiber's tracer is Effect's native one (a read of the current fiber and a " +
    "comparison) and makes no span. The *dropping tracer* column installs a tracer that makes one small span object " +
    "per span and drops it (an SDK without its exporter), on a copy of the shipped core bundled apart (so that its " +
    "traced paths never run in the copy timed without a tracer), with each block inside a root span so that the events " +
    "have a span to go to, in a process of its own (its garbage would otherwise land in the other contenders' " +
    "blocks), against the same two untraced copies: that is the least tracing can cost when it is on."
  ]
}

/**
 * The launcher of the application benchmarks (Harvest end to end, limiters at scale): the files of
 * `src/variants/scale`, bundled like the other variants but with every package that is not Spindle's own left as an
 * import of the file Node would load, by absolute path.
 *
 * They need it because Harvest loads native and CommonJS packages (better-sqlite3, pg, ioredis, undici) that only
 * its own workspace package depends on: bundled, they break (a native `.node` file, `require` of Node built-ins in
 * an ES module); imported by name from `.tmp/scale`, Node would not find them, as they are not in
 * `bench/node_modules`. An absolute path is what Node itself would have resolved from the importing package, so
 * every package, `effect` included, is loaded once, from `node_modules`, as an application would load it.
 */
import { nodeFlags } from "@spindle/harvest/scripts/flags.mjs"
import { spawnSync } from "node:child_process"
import { mkdirSync, readdirSync, rmSync } from "node:fs"
import { isBuiltin } from "node:module"
import * as Path from "node:path"
import { benchDir, type Launcher, loadEsbuild } from "./runner.js"

const variantsDir = Path.join(benchDir, "src", "variants", "scale")
const outDir = Path.join(benchDir, ".tmp", "scale")

interface ResolveResult {
  readonly path: string
  readonly errors: ReadonlyArray<unknown>
}

interface PluginBuild {
  readonly onResolve: (
    options: { readonly filter: RegExp },
    callback: (args: {
      readonly path: string
      readonly kind: string
      readonly resolveDir: string
      readonly pluginData: unknown
    }) => Promise<Record<string, unknown> | undefined>
  ) => void
  readonly resolve: (
    path: string,
    options: { readonly kind: string; readonly resolveDir: string; readonly pluginData: unknown }
  ) => Promise<ResolveResult>
}

const INNER = Symbol.for("spindle-bench/inner-resolve")

/** Leaves every bare import except `@spindle/*` external, rewritten to the absolute path esbuild resolved. */
const externalPackages = {
  name: "external-packages",
  setup: (build: PluginBuild) => {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === INNER || args.path.startsWith("@spindle/")) return undefined
      if (isBuiltin(args.path)) return { path: args.path, external: true }
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: INNER
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      return { path: resolved.path, external: true }
    })
  }
}

/** Bundles `src/variants/scale/*.ts` into `.tmp/scale`. */
export const prepareScale = async (): Promise<Launcher> => {
  const esbuild = await loadEsbuild()
  const entryPoints = readdirSync(variantsDir).filter((file) => file.endsWith(".ts"))
  mkdirSync(outDir, { recursive: true })
  await esbuild.build({
    entryPoints: entryPoints.map((file) => Path.join(variantsDir, file)),
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // As Harvest's own build: what the code imports only when needed (`import()`: the docs page, the OTLP exporter)
    // stays out of what a start loads, as it would loading Harvest's modules from its sources. Chunks beside the
    // variants: their code finds its siblings (`probe.mjs`, `upstream.mjs`) by `import.meta.url`.
    splitting: true,
    chunkNames: "[name]-[hash]",
    plugins: [externalPackages],
    logLevel: "warning"
  })
  return {
    description: `bundled by esbuild ${esbuild.version} (Spindle and Harvest inlined, split into chunks as Harvest's ` +
      "own build is, every other package imported from node_modules) and run as " +
      "`node --expose-gc .tmp/scale/<variant>.mjs`, with the node flags `pnpm start` gives Harvest " +
      `(\`${nodeFlags.join(" ")}\`) before it for the variants that run Harvest in their process (\`harvest-*\`)`,
    command: (variant) => [
      ...(variant.startsWith("harvest-") ? nodeFlags : []),
      "--expose-gc",
      Path.join(outDir, `${variant}.mjs`)
    ]
  }
}

/** Where `buildHarvest` puts Harvest's build. */
const harvestOutDir = Path.join(benchDir, ".tmp", "harvest-dist")

/**
 * Builds Harvest as `pnpm start` does before it starts it: `node apps/harvest/scripts/build.mjs`, Harvest's own build
 * (esbuild, one ES module per entry point and their chunks, with source maps), into `.tmp/harvest-dist` rather than
 * the app's `dist`, so that a `pnpm start` elsewhere in the working tree cannot rewrite the file between two rounds.
 * Returns the path of `main.mjs`, the file `pnpm start` runs.
 */
export const buildHarvest = (): { readonly main: string; readonly description: string } => {
  const repoRoot = Path.resolve(benchDir, "..")
  const script = Path.join(repoRoot, "apps", "harvest", "scripts", "build.mjs")
  rmSync(harvestOutDir, { recursive: true, force: true })
  const result = spawnSync(process.execPath, [script, harvestOutDir], { cwd: repoRoot, encoding: "utf8" })
  if (result.status !== 0) {
    throw new Error(`Harvest's build failed (exit ${result.status}): ${result.stderr.trim() || result.stdout.trim()}`)
  }
  return {
    main: Path.join(harvestOutDir, "main.mjs"),
    description: "Harvest built by its own `apps/harvest/scripts/build.mjs` (the step `pnpm start` runs first) into " +
      `\`.tmp/harvest-dist\` and run as \`node ${nodeFlags.join(" ")} --import .tmp/scale/probe.mjs ` +
      "`.tmp/harvest-dist/main.mjs`"
  }
}

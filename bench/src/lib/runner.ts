/**
 * Runs each variant in a process of its own and reads back the one JSON line it prints.
 *
 * Variants are bundled first (Spindle's TypeScript sources inlined; Effect and the peer libraries left as imports
 * from `node_modules`) and run by plain `node --expose-gc`: the tsx loader alone adds 35–45 MB of RSS to a
 * process (a loader thread with its own heap), which would swamp the memory figures and make a 100 MB budget
 * meaningless. The bundler is the esbuild that tsx itself uses; if it cannot be loaded, variants run under
 * `node --import tsx` instead and the report says so.
 */
import { spawn } from "node:child_process"
import { mkdirSync, readdirSync } from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

export const benchDir = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const variantsDir = Path.join(benchDir, "src", "variants")
const outDir = Path.join(benchDir, ".tmp", "variants")

/** Libraries loaded from `node_modules` at run time, as an application would load them. */
const external = ["effect", "effect/*", "p-limit", "p-queue", "bottleneck", "cockatiel", "p-retry", "piscina"]

/** The part of esbuild's API the launchers use. */
export interface Esbuild {
  readonly version: string
  readonly build: (options: Record<string, unknown>) => Promise<{ readonly errors: ReadonlyArray<unknown> }>
}

/** How variants are started. */
export interface Launcher {
  readonly description: string
  readonly command: (variant: string) => ReadonlyArray<string>
}

/** The esbuild that tsx ships (the workspace has no esbuild of its own to pin). */
export const loadEsbuild = async (): Promise<Esbuild> => {
  const tsx = createRequire(import.meta.url).resolve("tsx/package.json")
  const entry = createRequire(tsx).resolve("esbuild")
  return (await import(pathToFileURL(entry).href)) as Esbuild
}

/** Bundles every file of `src/variants` into `.tmp/variants`, or falls back to running them through tsx. */
export const prepare = async (): Promise<Launcher> => {
  const entryPoints = readdirSync(variantsDir).filter((file) => file.endsWith(".ts"))
  try {
    const esbuild = await loadEsbuild()
    mkdirSync(outDir, { recursive: true })
    await esbuild.build({
      entryPoints: entryPoints.map((file) => Path.join(variantsDir, file)),
      outdir: outDir,
      outExtension: { ".js": ".mjs" },
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      external,
      logLevel: "warning"
    })
    return {
      description: `each variant bundled by esbuild ${esbuild.version} (Spindle inlined, ${
        external.filter((name) => !name.includes("*")).join(", ")
      } imported from node_modules) and run as \`node --expose-gc .tmp/variants/<variant>.mjs\``,
      command: (variant) => ["--expose-gc", Path.join(outDir, `${variant}.mjs`)]
    }
  } catch (error) {
    process.stderr.write(`esbuild unavailable (${String(error)}); running variants through tsx\n`)
    return {
      description: "each variant run as `node --expose-gc --import tsx src/variants/<variant>.ts` (esbuild was " +
        "unavailable, so every RSS figure includes tsx's loader, about 35–45 MB)",
      command: (variant) => ["--expose-gc", "--import", "tsx", Path.join(variantsDir, `${variant}.ts`)]
    }
  }
}

/** What a variant printed, or why it printed nothing usable. */
export type Outcome =
  | { readonly _tag: "Ok"; readonly value: Record<string, unknown> }
  | { readonly _tag: "Failed"; readonly reason: string }

/** Runs one variant with `args`, killing it after `timeoutMillis`. */
export const runChild = (
  launcher: Launcher,
  variant: string,
  args: ReadonlyArray<string>,
  timeoutMillis: number
): Promise<Outcome> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [...launcher.command(variant), ...args], {
      cwd: benchDir,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, timeoutMillis)
    child.on("close", (code) => {
      clearTimeout(timer)
      if (timedOut) return resolve({ _tag: "Failed", reason: `timed out after ${timeoutMillis / 1000} s` })
      const line = stdout.trim().split("\n").at(-1) ?? ""
      if (code === 0 && line.startsWith("{")) {
        return resolve({ _tag: "Ok", value: JSON.parse(line) as Record<string, unknown> })
      }
      const detail = stderr.trim().split("\n").find((text) => text.trim() !== "") ?? ""
      resolve({ _tag: "Failed", reason: `exit code ${code}${detail === "" ? "" : `: ${detail}`}` })
    })
  })

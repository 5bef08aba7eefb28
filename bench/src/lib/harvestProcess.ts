/**
 * Harvest as users start it, for the application benchmarks: the compiled entry point `pnpm start` runs
 * (`node <flags> <dist>/main.mjs`, the flags of `apps/harvest/scripts/flags.mjs`) as a process of its own with the
 * preloaded probe (`variants/scale/probe.ts`), in a fresh data directory, answering `/health` before this returns.
 * Only for the scale variants: the paths below are those of their bundles (`.tmp/scale/<variant>.mjs`, beside
 * `.tmp/scale/probe.mjs`).
 *
 * Environment of the Harvest process: this process's, plus `PORT` (a free port), `HOST=127.0.0.1`, `DATA_DIR`
 * (fresh, on tmpfs or disk), `MAX_CONCURRENCY`, `HARVEST_ALLOW_PRIVATE_NETWORKS=true` (the upstream is on
 * loopback), `SHUTDOWN_GRACE_MS=1000`, `BENCH_PROBE_DIR` and the probe's settings; `DATABASE_URL` and `REDIS_URL` are
 * removed (SQLite in `DATA_DIR`, like a first `pnpm start`).
 *
 * `BENCH_HARVEST_NODE_FLAGS` (space-separated) is put on the Harvest process's `node` command line, before the probe:
 * for experiments by hand (`--trace-opt`, `--max-semi-space-size=8`, …), never set by the bench itself; with
 * `BENCH_HARVEST_OUTPUT=<file>`, the process's whole output is appended to that file as well.
 */
import { nodeFlags } from "@spindle/harvest/scripts/flags.mjs"
import { spawn } from "node:child_process"
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { dataDir, freePort, type Storage } from "./fetchRun.js"

/**
 * The repository's root (`pnpm start` runs there), from where the bundles of `.tmp/scale` are, this module's among
 * them.
 */
export const repoRoot = () => Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
const probe = () => fileURLToPath(new URL("./probe.mjs", import.meta.url))

export interface HarvestProcess {
  readonly pid: number
  /** `http://127.0.0.1:<port>`. */
  readonly base: string
  /** Where the probe writes its answers. */
  readonly probeDir: string
  /** From the spawn to the first `/health` answered 200. */
  readonly startupMillis: number
  /** Throws if the process has exited, with the last line of its output. */
  readonly alive: () => void
  /** Waits until the probe has written `name` (whole, by rename), and reads it. */
  readonly awaitProbe: (name: string, timeoutMillis: number) => Promise<string>
  /** SIGTERM, then SIGKILL if it has not exited within 30 s; how it exited and how long that took. */
  readonly stop: () => Promise<{ readonly exitCode: number | string; readonly shutdownMillis: number }>
  /** Kills it if it is still running and removes its data directory. */
  readonly dispose: () => void
}

export const startHarvest = async (options: {
  readonly main: string
  readonly storage: Storage
  readonly concurrency: number
  /** The probe's settings (`BENCH_PROBE_PROFILE`, `BENCH_PROBE_EVERY`). */
  readonly probeEnv: Record<string, string>
}): Promise<HarvestProcess> => {
  const dir = dataDir(options.storage)
  const probeDir = Path.join(dir.path, "probe")
  const dataPath = Path.join(dir.path, "data")
  mkdirSync(probeDir)
  mkdirSync(dataPath)
  const port = await freePort()
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataPath,
    MAX_CONCURRENCY: String(options.concurrency),
    HARVEST_ALLOW_PRIVATE_NETWORKS: "true",
    SHUTDOWN_GRACE_MS: "1000",
    BENCH_PROBE_DIR: probeDir,
    ...options.probeEnv
  }
  delete env.DATABASE_URL
  delete env.REDIS_URL
  const spawned = performance.now()
  const flags = (process.env.BENCH_HARVEST_NODE_FLAGS ?? "").split(" ").filter((flag) => flag !== "")
  const child = spawn(process.execPath, [...nodeFlags, ...flags, "--import", probe(), options.main], {
    cwd: repoRoot(),
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  // The last lines of its output, to say why it failed if it does.
  let output = ""
  const copy = process.env.BENCH_HARVEST_OUTPUT
  const keep = (chunk: string) => {
    output = (output + chunk).slice(-4000)
    if (copy !== undefined) appendFileSync(copy, chunk)
  }
  child.stdout.setEncoding("utf8").on("data", keep)
  child.stderr.setEncoding("utf8").on("data", keep)
  let exited: number | string | undefined
  const exit = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = code ?? signal ?? "unknown"
      resolve()
    })
  )
  const alive = () => {
    if (exited !== undefined) throw new Error(`Harvest exited (${exited}): ${output.trim().split("\n").at(-1) ?? ""}`)
  }
  const dispose = () => {
    if (exited === undefined) child.kill("SIGKILL")
    dir.remove()
  }
  const base = `http://127.0.0.1:${port}`
  try {
    for (;;) {
      alive()
      const health = await fetch(`${base}/health`).then((response) => response.status, () => 0)
      if (health === 200) break
      if (performance.now() - spawned > 60_000) throw new Error("Harvest did not answer /health within 60 s")
      await sleep(20)
    }
  } catch (error) {
    dispose()
    throw error
  }
  return {
    pid: child.pid!,
    base,
    probeDir,
    startupMillis: performance.now() - spawned,
    alive,
    awaitProbe: async (name, timeoutMillis) => {
      const file = Path.join(probeDir, name)
      const deadline = performance.now() + timeoutMillis
      while (!existsSync(file)) {
        alive()
        if (performance.now() > deadline) throw new Error(`the probe did not write ${name}`)
        await sleep(5)
      }
      return readFileSync(file, "utf8")
    },
    stop: async () => {
      child.kill("SIGTERM")
      const stopping = performance.now()
      await Promise.race([exit, sleep(30_000)])
      if (exited === undefined) child.kill("SIGKILL")
      return { exitCode: exited ?? "killed", shutdownMillis: performance.now() - stopping }
    },
    dispose
  }
}

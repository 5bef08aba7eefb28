/**
 * Builds Harvest once per test run, as `pnpm start` runs it (one JavaScript module per entry point and their chunks, no
 * TypeScript loader at run time), into a temporary directory the tests that start real processes are given
 * (`inject("harvestBuild")`).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { build } from "../scripts/build.mjs"

declare module "vitest" {
  export interface ProvidedContext {
    /** The directory holding `main.mjs`, `demo.mjs` and `cli-main.mjs`. */
    readonly harvestBuild: string
  }
}

export default async function setup(project: TestProject) {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-"))
  await build(outdir)
  project.provide("harvestBuild", outdir)
  return () => fs.rmSync(outdir, { recursive: true, force: true })
}

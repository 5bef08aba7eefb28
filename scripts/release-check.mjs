#!/usr/bin/env node
// pnpm release:check — what `changeset publish` would ship, checked without publishing: builds the libraries, checks
// their manifests against their sources, packs each one with pnpm into a temp dir, and lints every tarball with
// publint (--strict: warnings fail too) and Are the Types Wrong (attw). Exits non-zero on any problem.
//
// attw runs with the `esm-only` profile: the packages are ESM only (`"type": "module"`, no `require` condition), so
// the CommonJS resolutions it would otherwise grade (node10, and node16 from a CJS importer, which sees
// `cjs-resolves-to-esm`) are deliberately unsupported; every ESM resolution (node16 from ESM, bundler) must be clean.
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { packLibraries } from "./pack-libraries.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const bin = (name) => path.join(root, "node_modules", ".bin", name)

const step = (title, run) => {
  const started = Date.now()
  process.stdout.write(`-- ${title}\n`)
  run()
  process.stdout.write(`   (${((Date.now() - started) / 1000).toFixed(1)} s)\n`)
}

const failures = []
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spindle-release-"))
try {
  step("build", () => execFileSync("pnpm", ["run", "--silent", "build"], { cwd: root, stdio: "inherit" }))
  step("manifests", () =>
    execFileSync(process.execPath, [path.join(root, "scripts/package-manifests.mjs"), "--check"], {
      cwd: root,
      stdio: "inherit"
    }))
  let packed = []
  step("pack", () => {
    packed = packLibraries(dir)
    for (const { tarball } of packed) console.log(`   ${path.basename(tarball)} ${fs.statSync(tarball).size} bytes`)
  })
  step("publint --strict, attw --profile esm-only", () => {
    for (const { name, tarball } of packed) {
      const publint = spawnSync(bin("publint"), ["run", "--strict", tarball], { encoding: "utf8" })
      const attw = spawnSync(bin("attw"), ["--profile", "esm-only", "--format", "table-flipped", tarball], {
        encoding: "utf8"
      })
      const ok = publint.status === 0 && attw.status === 0
      console.log(`   ${name}: publint ${publint.status === 0 ? "ok" : "FAILED"}, attw ${attw.status === 0 ? "ok" : "FAILED"}`)
      if (!ok) {
        failures.push(name)
        if (publint.status !== 0) console.log(publint.stdout + publint.stderr)
        if (attw.status !== 0) console.log(attw.stdout + attw.stderr)
      }
    }
  })
} catch (error) {
  failures.push(error instanceof Error ? error.message : String(error))
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
if (failures.length > 0) {
  console.error(`release check failed: ${failures.join(", ")}`)
  process.exit(1)
}
console.log("release check: every library package packs cleanly")

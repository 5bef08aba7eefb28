#!/usr/bin/env node
// Lints Harvest's OpenAPI document with Redocly's and Spectral's rules, failing on any error or warning.
//
//   pnpm lint:openapi
//
// The document is produced from the API definition (`apps/harvest/src/http/Api.ts`, through `OpenApi.fromApi`, which is
// what `GET /openapi.json` serves), without starting a server, and written to
// `node_modules/.cache/spindle-openapi/openapi.json`. Redocly runs its `recommended` rules (`redocly.yaml`), with the
// exceptions listed in `.redocly.lint-ignore.yaml`; Spectral runs `spectral:oas` (`.spectral.yaml`). Neither fetches
// anything: Redocly's telemetry and update check are turned off, and the document has no remote references.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const work = path.join(root, "node_modules", ".cache", "spindle-openapi")
const document = path.join(work, "openapi.json")
const bin = (name) => path.join(root, "node_modules", ".bin", name)

const run = (command, args, options = {}) => {
  const result = spawnSync(command, args, { cwd: root, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...options })
  if (result.error !== undefined) throw result.error
  return result
}

// 1. The document, as the server would serve it.
const generate = `
import * as OpenApi from "@effect/platform/OpenApi"
import { writeFileSync } from "node:fs"
import { HarvestApi } from "./src/http/Api.ts"
writeFileSync(process.argv[1], JSON.stringify(OpenApi.fromApi(HarvestApi), null, 2) + "\\n")
`
fs.rmSync(work, { recursive: true, force: true })
fs.mkdirSync(work, { recursive: true })
const generated = run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", generate, document], {
  cwd: path.join(root, "apps", "harvest")
})
if (generated.status !== 0) {
  console.error(generated.stdout + generated.stderr)
  console.error("lint:openapi: could not generate the document")
  process.exit(1)
}
const shown = path.relative(root, document)
let problems = 0

// 2. Redocly: `totals` counts errors and warnings; ignored problems are those the ignore file lists.
const redocly = run(bin("redocly"), ["lint", document, "--config", "redocly.yaml", "--format", "json"], {
  env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" }
})
let report
try {
  report = JSON.parse(redocly.stdout)
} catch {
  console.error(redocly.stdout + redocly.stderr)
  console.error("lint:openapi: Redocly gave no report")
  process.exit(1)
}
for (const problem of report.problems.filter((p) => !p.ignored)) {
  const at = problem.location?.[0]?.pointer ?? ""
  console.error(`${shown} ${at}  ${problem.severity}  ${problem.ruleId}  ${problem.message}  (redocly)`)
  problems++
}
console.log(
  `redocly: ${report.totals.errors} errors, ${report.totals.warnings} warnings, ${report.totals.ignored} ignored`
)

// 3. Spectral: every result counts, down to hints.
const spectral = run(bin("spectral"), [
  "lint",
  document,
  "--ruleset",
  ".spectral.yaml",
  "--format",
  "json",
  "--fail-severity",
  "hint",
  "--quiet"
])
let results
try {
  results = JSON.parse(spectral.stdout.trim() === "" ? "[]" : spectral.stdout)
} catch {
  console.error(spectral.stdout + spectral.stderr)
  console.error("lint:openapi: Spectral gave no report")
  process.exit(1)
}
const severities = ["error", "warning", "info", "hint"]
for (const result of results) {
  console.error(
    `${shown} ${result.path.join(".")}  ${severities[result.severity]}  ${result.code}  ${result.message}  (spectral)`
  )
  problems++
}
if (spectral.status !== 0 && results.length === 0) {
  console.error(spectral.stdout + spectral.stderr)
  console.error("lint:openapi: Spectral failed")
  process.exit(1)
}
console.log(`spectral: ${results.length} problems`)

if (problems > 0) {
  console.error(`lint:openapi: ${problems} problems in the OpenAPI document`)
  process.exit(1)
}
console.log("lint:openapi: the OpenAPI document passes both linters")

// Runs the @effect/language-service diagnostics (floating effects and the other Effect-specific checks that
// `tsc` cannot see) over every TypeScript project of the workspace, and fails if any reports an error.
// The editor shows the same diagnostics live through the plugin configured in tsconfig.base.json.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const cli = createRequire(import.meta.url).resolve("@effect/language-service/cli.js")

// Every leaf project reachable from the root tsconfig.json's references.
const leaves = []
const visit = (path) => {
  const file = path.endsWith(".json") ? path : join(path, "tsconfig.json")
  if (!existsSync(file)) return
  const config = JSON.parse(readFileSync(file, "utf8"))
  const references = config.references ?? []
  if ((config.files ?? null) !== null && config.files.length === 0) {
    for (const reference of references) visit(resolve(dirname(file), reference.path))
  } else if (!leaves.includes(file)) {
    leaves.push(file)
  }
}
visit(join(root, "tsconfig.json"))

let failed = 0
for (const project of leaves) {
  const result = spawnSync(process.execPath, [cli, "diagnostics", "--project", project, "--format", "text"], {
    encoding: "utf8"
  })
  const summary = (result.stdout.trim().split("\n").pop() ?? "").trim()
  console.log(`${project.slice(root.length + 1)}: ${summary}`)
  if (!/^0 errors/.test(summary)) process.stdout.write(result.stdout)
  if (result.status !== 0) {
    failed++
    process.stdout.write(result.stdout)
    process.stderr.write(result.stderr)
  }
}
if (failed > 0) {
  console.error(`Effect diagnostics failed in ${failed} project(s)`)
  process.exit(1)
}

#!/usr/bin/env node
// pnpm test:consumer — Spindle as someone outside this repository gets it.
//
// Packs every library package (scripts/pack-libraries.mjs), creates a fresh project under the OS temp dir, installs
// the tarballs with npm together with the Effect packages the workspace pins (its pnpm.overrides), copies in the
// consumer program (test/consumer/), type-checks it with tsc twice — NodeNext, and ESNext + Bundler resolution, both
// strict with skipLibCheck off, so the shipped declarations are checked too — compiles it to JavaScript and runs it
// with plain node, then runs test/consumer/plain.mjs (@spindle/promise from plain JavaScript) as it is. The programs
// assert what the packages do, not only that they import.
//
// Runs under whatever `node` is first on PATH (scripts/node24.sh uses it for Node 24). KEEP=1 keeps the project.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { packLibraries } from "./pack-libraries.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const rootManifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const installedVersion = (name) =>
  JSON.parse(fs.readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version

const started = Date.now()
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
const run = (command, args, cwd) => {
  console.log(`$ ${command} ${args.join(" ")}`)
  execFileSync(command, args, { cwd, stdio: "inherit", env: { ...process.env, npm_config_update_notifier: "false" } })
}

const project = fs.mkdtempSync(path.join(os.tmpdir(), "spindle-consumer-"))
let ok = false
try {
  console.log(`consumer project: ${project} (node ${process.version})`)
  const packed = packLibraries(path.join(project, "tarballs"))

  // The workspace's one release set of Effect packages, and the drivers the libraries' peers name.
  const pins = rootManifest.pnpm.overrides
  const registry = [
    "effect",
    "@effect/platform",
    "@effect/platform-node",
    "@effect/sql",
    "@effect/sql-sqlite-node",
    "@effect/sql-pg",
    "@effect/experimental"
  ]
  const dependencies = Object.fromEntries([
    ...packed.map(({ name, tarball }) => [name, `file:./tarballs/${path.basename(tarball)}`]),
    ...registry.map((name) => [name, pins[name]]),
    ["ioredis", installedVersion("../packages/redis/node_modules/ioredis")]
  ])
  const devDependencies = {
    typescript: installedVersion("typescript"),
    "@types/node": installedVersion("@types/node")
  }
  fs.writeFileSync(
    path.join(project, "package.json"),
    JSON.stringify({ name: "spindle-consumer", private: true, type: "module", dependencies, devDependencies }, null, 2)
  )
  fs.cpSync(path.join(root, "test", "consumer"), project, {
    recursive: true,
    filter: (src) => !/[/\\](node_modules|dist)$/.test(src)
  })

  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], project)
  console.log(`installed (${elapsed()})`)

  const tsc = path.join(project, "node_modules", "typescript", "bin", "tsc")
  run(process.execPath, [tsc, "-p", "tsconfig.bundler.json"], project)
  run(process.execPath, [tsc, "-p", "tsconfig.nodenext.json"], project)
  console.log(`type-checked twice, compiled (${elapsed()})`)

  run(process.execPath, ["dist/main.js"], project)
  // @spindle/promise from plain JavaScript, as a code base without TypeScript or Effect uses it.
  run(process.execPath, ["plain.mjs"], project)
  ok = true
} finally {
  if (process.env.KEEP === "1") console.log(`kept ${project}`)
  else fs.rmSync(project, { recursive: true, force: true })
  console.log(`consumer test ${ok ? "passed" : "FAILED"} on node ${process.version} (${elapsed()})`)
}

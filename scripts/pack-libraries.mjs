#!/usr/bin/env node
// Packs every library package with pnpm (which applies publishConfig, replaces `workspace:` ranges and runs each
// package's prepack: build, copy LICENSE) into a directory, and checks what each tarball's manifest says.
//
//   node scripts/pack-libraries.mjs [DIR]   (default: a new temp dir; prints the tarballs' paths)
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { libraries } from "./package-manifests.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const readFromTarball = (tarball, file) =>
  execFileSync("tar", ["-xzOf", tarball, `package/${file}`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })

const listTarball = (tarball) =>
  execFileSync("tar", ["-tzf", tarball], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }).split("\n")

/** What a published manifest must satisfy, beyond what publint checks. */
const inspect = (name, tarball) => {
  const problems = []
  const manifest = JSON.parse(readFromTarball(tarball, "package.json"))
  const files = new Set(listTarball(tarball).map((f) => f.replace(/^package\//, "")))
  for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
      if (range.startsWith("workspace:")) problems.push(`${field}.${dep} is still "${range}"`)
    }
  }
  for (const f of ["LICENSE", "README.md", "CHANGELOG.md", "build/esm/index.js", "build/dts/index.d.ts"]) {
    if (!files.has(f)) problems.push(`${f} is missing`)
  }
  if (manifest.publishConfig?.exports !== undefined) problems.push("publishConfig was not applied")
  for (const [key, entry] of Object.entries(manifest.exports ?? {})) {
    if (key.includes("internal")) problems.push(`exports ${key} reaches internal code`)
    if (typeof entry === "object" && Object.keys(entry)[0] !== "types") problems.push(`exports ${key}: types not first`)
    for (const target of typeof entry === "string" ? [entry] : Object.values(entry)) {
      if (target.includes("/src/")) problems.push(`exports ${key} points at sources (${target})`)
      if (!files.has(target.replace(/^\.\//, ""))) problems.push(`exports ${key}: ${target} is not in the tarball`)
    }
  }
  if ([...files].some((f) => f.includes("tsbuildinfo") || f.startsWith("test/"))) {
    problems.push("build info or tests are in the tarball")
  }
  return problems.map((p) => `@spindle/${name}: ${p}`)
}

/** Packs the libraries into `dir`; returns `{ name, tarball }` for each, or throws naming every problem. */
export const packLibraries = (dir) => {
  fs.mkdirSync(dir, { recursive: true })
  const packed = []
  const problems = []
  for (const name of libraries) {
    const cwd = path.join(root, "packages", name)
    const before = new Set(fs.readdirSync(dir))
    execFileSync("pnpm", ["pack", "--pack-destination", dir], { cwd, stdio: ["ignore", "ignore", "inherit"] })
    const created = fs.readdirSync(dir).filter((f) => !before.has(f) && f.endsWith(".tgz"))
    if (created.length !== 1) throw new Error(`pnpm pack in packages/${name} made ${created.length} tarballs`)
    const tarball = path.join(dir, created[0])
    problems.push(...inspect(name, tarball))
    packed.push({ name: `@spindle/${name}`, dir: name, tarball })
  }
  if (problems.length > 0) throw new Error(`packed tarballs are wrong:\n  ${problems.join("\n  ")}`)
  return packed
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), "spindle-pack-"))
  for (const { tarball } of packLibraries(dir)) console.log(tarball)
}

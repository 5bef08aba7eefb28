#!/usr/bin/env node
// Keeps the library packages' manifests in step with their sources.
//
//   node scripts/package-manifests.mjs           rewrite packages/*/package.json (exports, publishConfig, files, …)
//   node scripts/package-manifests.mjs --check   fail if any manifest differs from what it would write (CI)
//   node ../../scripts/package-manifests.mjs --prepack   (a package's prepack) build it, copy the root LICENSE in
//
// Every `src/*.ts` module is a public entry point (`./TokenBucket`); `src/internal/` is never reachable. In the
// workspace the entries point at the TypeScript sources (vitest, tsx and tsc resolve them directly); `publishConfig`
// points them at the compiled JavaScript and declarations, and pnpm applies it when it packs or publishes.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The published packages, by directory under packages/. */
export const libraries = ["core", "node", "sql", "redis", "testkit", "promise"]

/**
 * Modules that do something when imported. Everything else is free of import-time effects, so bundlers may drop
 * whatever is not used. testkit's Databases reads its configuration and probes Postgres and Redis at import (a
 * top-level await), so its suites know whether to skip.
 */
const importTimeEffects = { testkit: ["Databases"] }

const files = ["build/esm", "build/dts", "src", "README.md", "CHANGELOG.md", "LICENSE"]

const order = [
  "name",
  "version",
  "description",
  "type",
  "license",
  "repository",
  "homepage",
  "sideEffects",
  "engines",
  "files",
  "exports",
  "publishConfig",
  "scripts",
  "peerDependencies",
  "peerDependenciesMeta",
  "dependencies",
  "devDependencies"
]

const modulesOf = (dir) =>
  fs.readdirSync(path.join(dir, "src"), { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") && e.name !== "index.ts")
    .map((e) => e.name.slice(0, -3))
    .sort()

const exportsMap = (modules, entry) => {
  const out = { "./package.json": "./package.json", ".": entry("index") }
  for (const m of modules) out[`./${m}`] = entry(m)
  return out
}

const sourceEntry = (m) => ({ types: `./src/${m}.ts`, default: `./src/${m}.ts` })
const builtEntry = (m) => ({ types: `./build/dts/${m}.d.ts`, default: `./build/esm/${m}.js` })

/** The manifest as it should be, from the one on disk. */
export const expected = (name, manifest) => {
  const dir = path.join(root, "packages", name)
  const modules = modulesOf(dir)
  const effects = importTimeEffects[name] ?? []
  const next = {
    ...manifest,
    type: "module",
    license: "MIT",
    sideEffects: effects.flatMap((m) => [`./src/${m}.ts`, `./build/esm/${m}.js`]),
    engines: { node: ">=20" },
    files,
    exports: exportsMap(modules, sourceEntry),
    publishConfig: {
      access: "public",
      main: "./build/esm/index.js",
      types: "./build/dts/index.d.ts",
      exports: exportsMap(modules, builtEntry)
    },
    scripts: { ...manifest.scripts, prepack: "node ../../scripts/package-manifests.mjs --prepack" }
  }
  const sorted = {}
  for (const k of order) if (k in next) sorted[k] = next[k]
  for (const k of Object.keys(next)) if (!(k in sorted)) sorted[k] = next[k]
  return sorted
}

/** Problems that rewriting cannot fix. */
const problems = (name, manifest) => {
  const dir = path.join(root, "packages", name)
  const found = []
  for (const f of ["README.md", "CHANGELOG.md"]) {
    if (!fs.existsSync(path.join(dir, f))) found.push(`packages/${name}/${f} is missing`)
  }
  for (const field of ["peerDependencies", "dependencies"]) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
      if (!/^(\^|workspace:\^)/.test(range)) {
        found.push(`packages/${name}: ${field}.${dep} is "${range}"; published packages take caret ranges`)
      }
    }
  }
  for (const m of importTimeEffects[name] ?? []) {
    if (!fs.existsSync(path.join(dir, "src", `${m}.ts`))) found.push(`packages/${name}: src/${m}.ts is gone`)
  }
  return found
}

const manifestPath = (name) => path.join(root, "packages", name, "package.json")
const serialize = (json) => JSON.stringify(json, null, 2) + "\n"

const prepack = () => {
  // Run by pnpm pack/publish inside a package directory: compile it, and ship the repository's LICENSE with it.
  const dir = process.cwd()
  if (path.dirname(dir) !== path.join(root, "packages") || !libraries.includes(path.basename(dir))) {
    throw new Error(`--prepack runs inside one of packages/{${libraries.join(",")}}, not ${dir}`)
  }
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-b", "tsconfig.src.json"], {
    cwd: dir,
    stdio: "inherit"
  })
  fs.copyFileSync(path.join(root, "LICENSE"), path.join(dir, "LICENSE"))
}

const main = () => {
  const args = process.argv.slice(2)
  if (args.includes("--prepack")) return prepack()
  const check = args.includes("--check")
  const errors = []
  for (const name of libraries) {
    const file = manifestPath(name)
    const current = fs.readFileSync(file, "utf8")
    const manifest = JSON.parse(current)
    const next = serialize(expected(name, manifest))
    errors.push(...problems(name, manifest))
    if (next === current) continue
    if (check) {
      errors.push(`packages/${name}/package.json is out of date: run node scripts/package-manifests.mjs`)
    } else {
      fs.writeFileSync(file, next)
      console.log(`wrote packages/${name}/package.json`)
    }
  }
  if (errors.length > 0) {
    for (const e of errors) console.error(e)
    process.exit(1)
  }
  if (check) console.log(`package manifests: ${libraries.length} in step with their sources`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main()

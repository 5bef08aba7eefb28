#!/usr/bin/env node
// Type-checks the TypeScript examples in markdown files against the workspace packages.
//
//   node scripts/check-snippets.mjs packages/*/README.md docs/guide.md …
//
// Every ```ts (or ```typescript) block whose first line of code is an `import` is a complete module: it is written
// to a file of its own and the lot is type-checked by `tsc` with the repository's compiler options (strict,
// exactOptionalPropertyTypes, NodeNext). Blocks that do not start with an import are fragments and are left alone,
// and so is a block fenced as ```ts no-check. Imports resolve to the workspace packages' sources (`@spindle/*`)
// and to the third-party packages they depend on. Errors are reported at the markdown file's line.
//
// A block fenced as ```ts file=src/limits.ts is written under that name, so that another block of the same markdown
// file can import it (`import { AppLive } from "./limits.js"`): a guide can show a module and its test apart.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The checkable blocks of a markdown text: `{ line, code }`, `line` being the 1-based line of the first code line. */
export const extract = (markdown) => {
  const blocks = []
  const lines = markdown.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(ts|typescript)\b(.*)$/.exec(lines[i])
    if (open === null) continue
    const [, indent, fence, , info] = open
    const body = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const t = lines[j].trim()
      if (t.length >= fence.length && t === fence[0].repeat(t.length)) break
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j])
    }
    const first = body.find((l) => l.trim() !== "" && !l.trim().startsWith("//"))
    if (!/\bno-check\b/.test(info) && first !== undefined && /^import\b/.test(first.trim())) {
      const file = /\bfile=(\S+\.tsx?)\b/.exec(info)?.[1]
      blocks.push({ line: i + 2, code: body.join("\n") + "\n", ...(file === undefined ? {} : { file }) })
    }
    i = j
  }
  return blocks
}

// Every package a library package, the examples or the root can import, linked into one node_modules.
const linkDependencies = (modules) => {
  const packageDirs = [
    ...fs.readdirSync(path.join(root, "packages")).map((p) => path.join(root, "packages", p)),
    path.join(root, "examples"),
    root
  ].filter((d) => fs.existsSync(path.join(d, "package.json")))
  const link = (name, target) => {
    const at = path.join(modules, name)
    if (fs.existsSync(at)) return
    fs.mkdirSync(path.dirname(at), { recursive: true })
    fs.symlinkSync(target, at, "dir")
  }
  for (const dir of packageDirs) {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
    if (dir.startsWith(path.join(root, "packages"))) link(manifest.name, dir)
  }
  for (const dir of packageDirs) {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
    const names = Object.keys({ ...manifest.dependencies, ...manifest.devDependencies, ...manifest.peerDependencies })
    for (const name of names) {
      const target = path.join(dir, "node_modules", name)
      if (fs.existsSync(target)) link(name, fs.realpathSync(target))
    }
  }
}

const main = () => {
  const files = process.argv.slice(2)
  if (files.length === 0) {
    console.error("usage: node scripts/check-snippets.mjs FILE.md…")
    process.exit(2)
  }
  const work = path.join(root, "node_modules", ".cache", "spindle-snippets")
  fs.rmSync(work, { recursive: true, force: true })
  fs.mkdirSync(path.join(work, "snippets"), { recursive: true })
  linkDependencies(path.join(work, "node_modules"))
  fs.writeFileSync(path.join(work, "package.json"), JSON.stringify({ type: "module", private: true }))

  const origin = new Map()
  for (const file of files) {
    const blocks = extract(fs.readFileSync(file, "utf8"))
    const slug = path.relative(root, path.resolve(file)).replace(/[^A-Za-z0-9]+/g, "_")
    blocks.forEach((block, n) => {
      // Each markdown file's blocks in a folder of their own; a named block under its name, inside that folder.
      const named = block.file === undefined ? undefined : path.posix.normalize(block.file)
      if (named !== undefined && (named.startsWith("..") || path.isAbsolute(named))) {
        console.error(`${file}:${block.line - 1}: file=${block.file} must be a relative path inside the snippet`)
        process.exit(2)
      }
      const name = `snippets/${slug}/${named ?? `block_${n + 1}.ts`}`
      fs.mkdirSync(path.dirname(path.join(work, name)), { recursive: true })
      fs.writeFileSync(path.join(work, name), block.code)
      origin.set(name, { file, line: block.line })
    })
  }
  if (origin.size === 0) {
    console.error(`no checkable \`\`\`ts blocks in ${files.join(", ")}`)
    process.exit(1)
  }

  const base = JSON.parse(fs.readFileSync(path.join(root, "tsconfig.base.json"), "utf8")).compilerOptions
  const compilerOptions = {
    ...base,
    composite: false,
    incremental: false,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    noEmit: true,
    plugins: [],
    typeRoots: [path.join(work, "node_modules", "@types")]
  }
  fs.writeFileSync(
    path.join(work, "tsconfig.json"),
    JSON.stringify({ compilerOptions, include: ["snippets"] }, null, 2)
  )
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json", "--pretty", "false"], {
    cwd: work,
    encoding: "utf8"
  })
  const output = (result.stdout + result.stderr).replace(
    /^(snippets\/[^(]+)\((\d+),(\d+)\)/gm,
    (all, name, line, col) => {
      const at = origin.get(name)
      return at === undefined ? all : `${at.file}:${at.line + Number(line) - 1}:${col}`
    }
  )
  if (result.status !== 0) {
    console.error(output)
    console.error(`snippets: type errors in ${origin.size} checked blocks`)
    process.exit(1)
  }
  console.log(`snippets: ${origin.size} blocks type-check (${files.length} files)`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main()

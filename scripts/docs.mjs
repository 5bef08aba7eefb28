#!/usr/bin/env node
// Builds the API reference of the library packages into docs/reference/, a static HTML site (open
// docs/reference/index.html from disk; no server or Jekyll needed). The site is generated, not committed.
//
//   node scripts/docs.mjs              every library package (`pnpm run docs`; `pnpm docs` is a pnpm command)
//   node scripts/docs.mjs core redis   some of them (the site then lists only those)
//
// For each package, @effect/docgen reads the JSDoc of its public modules (`src/*.ts`; `src/internal/` and the
// `src/index.ts` barrel are excluded) under the package's docgen.json, fails on an export without `@since` or
// `@example`, type-checks every `@example` against the package's sources and dependencies, then runs them all
// with tsx (so an example must end quickly and need no outside service such as Postgres or Redis: it defines such
// programs without running them); this script then renders docgen's markdown as HTML pages, one per module and an
// index per package.
//
// docgen reads its configuration from the folder it runs in, and requires a `homepage` in that folder's
// package.json, which the library manifests do not have. So it runs in a staging folder per package,
// .docs-site/<package>/, holding a copy of the docgen.json, a package.json with the name and a homepage, and links
// to the package's src/ and node_modules/ (examples import `@spindle/<package>`, which docgen rewrites to
// `../../src`, hence an outDir one level down). The folder is removed afterwards, failed or not, unless
// DOCS_KEEP_STAGING is set. DOCGEN_RUN_EXAMPLES=false skips checking and running the examples, for a quick look.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Marked } from "marked"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(import.meta.url)
const docgen = require.resolve("@effect/docgen/bin.cjs")

/** The library packages, by directory under packages/, in the order the site lists them. */
const libraries = ["core", "node", "sql", "redis", "testkit", "promise"]

const staging = path.join(root, ".docs-site")
const site = path.join(root, "docs", "reference")

const selected = process.argv.slice(2)
for (const name of selected) {
  if (!libraries.includes(name)) {
    console.error(`docs: unknown package "${name}" (one of ${libraries.join(", ")})`)
    process.exit(2)
  }
}
const packages = selected.length > 0 ? selected : libraries

// ---------------------------------------------------------------------------------------------------------------
// docgen

/**
 * Runs docgen for one package in its staging folder; resolves with the folder of its markdown modules, or rejects
 * with docgen's output.
 */
const runDocgen = (name) => {
  const dir = path.join(root, "packages", name)
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
  const config = JSON.parse(fs.readFileSync(path.join(dir, "docgen.json"), "utf8"))
  const work = path.join(staging, name)
  fs.rmSync(work, { recursive: true, force: true })
  fs.mkdirSync(work, { recursive: true })
  fs.writeFileSync(
    path.join(work, "package.json"),
    JSON.stringify({ name: manifest.name, type: "module", homepage: `../${name}/index.html` }, null, 2)
  )
  fs.writeFileSync(path.join(work, "docgen.json"), JSON.stringify({ ...config, $schema: undefined }, null, 2))
  fs.symlinkSync(path.join(dir, "src"), path.join(work, "src"), "dir")
  fs.symlinkSync(path.join(dir, "node_modules"), path.join(work, "node_modules"), "dir")
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [docgen], {
      cwd: work,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        // docgen runs `tsc` and `tsx` on the examples by name.
        PATH: `${path.join(root, "node_modules", ".bin")}${path.delimiter}${process.env.PATH ?? ""}`
      }
    })
    let output = ""
    child.stdout.on("data", (chunk) => output += chunk)
    child.stderr.on("data", (chunk) => output += chunk)
    child.on("error", reject)
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new Error(`docgen failed for @spindle/${name}:\n${output}`))
        return
      }
      console.log(`docs: @spindle/${name} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
      resolve(path.join(work, config.outDir ?? "docs", "modules"))
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// HTML

const escapeHtml = (s) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll("\"", "&quot;")

/** GitHub's heading anchors, which docgen's tables of contents link to. */
const slugger = () => {
  const seen = new Map()
  return (text) => {
    const base = text.toLowerCase().trim().replace(/<[^>]*>/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(
      /\s/g,
      "-"
    )
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    return n === 0 ? base : `${base}-${n}`
  }
}

/** A markdown renderer whose headings carry GitHub's anchors, and whose links to `*.ts.md` point at pages. */
const renderer = () => {
  const slug = slugger()
  return new Marked({
    gfm: true,
    renderer: {
      heading({ tokens, depth, text }) {
        const id = slug(text)
        return `<h${depth} id="${escapeHtml(id)}">${this.parser.parseInline(tokens)}</h${depth}>\n`
      },
      code({ text, lang }) {
        const language = (lang ?? "").split(/\s/)[0]
        return `<pre><code class="language-${escapeHtml(language || "text")}">${escapeHtml(text)}</code></pre>\n`
      }
    }
  })
}

/** Splits docgen's Jekyll front matter from the body (docgen's prettier pass may turn its opening `---` into `***`). */
const frontMatter = (markdown) => {
  const match = /^(?:---|\*\*\*)\n+([\s\S]*?)\n---\n/.exec(markdown)
  if (match === null) return { meta: {}, body: markdown }
  const meta = {}
  for (const line of match[1].split("\n")) {
    const kv = /^(\w+):\s*(.*)$/.exec(line)
    if (kv !== null) meta[kv[1]] = kv[2]
  }
  return { meta, body: markdown.slice(match[0].length) }
}

const style = `
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bg: #fff; --code: #f6f8fa; --line: #d1d9e0;
  --link: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --code: #151b23;
  --line: #3d444d; --link: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); display: flex; min-height: 100vh; }
nav { width: 250px; flex: none; border-right: 1px solid var(--line); padding: 1rem; position: sticky; top: 0;
  height: 100vh; overflow-y: auto; font-size: 14px; }
nav h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 1rem 0 .3rem; }
nav ul { list-style: none; padding: 0; margin: 0; }
nav li a { display: block; padding: 1px 6px; border-radius: 4px; }
nav li a.current { background: var(--code); font-weight: 600; }
main { flex: 1; min-width: 0; max-width: 980px; padding: 1rem 2.5rem 4rem; }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
pre { background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem;
  overflow-x: auto; font-size: 13px; line-height: 1.45; }
code { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
:not(pre) > code { background: var(--code); padding: .1em .35em; border-radius: 4px; }
h1, h2, h3 { line-height: 1.25; }
h2 { border-bottom: 1px solid var(--line); padding-bottom: .3rem; margin-top: 2.2rem; }
h3 { margin-top: 1.8rem; } .text-delta { font-size: 1rem; color: var(--muted); border: 0; }
table { border-collapse: collapse; } td, th { border: 1px solid var(--line); padding: .3rem .6rem; }
`

const page = ({ title, nav, content, depth }) => {
  const up = "../".repeat(depth)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Spindle API reference</title>
<link rel="stylesheet" href="${up}style.css">
</head>
<body>
<nav>
<p><a href="${up}index.html"><strong>Spindle API reference</strong></a></p>
${nav}
</nav>
<main>
${content}
</main>
</body>
</html>
`
}

/** What the package's index.ts says of each module it re-exports: the first paragraph of its JSDoc. */
const summaries = (name) => {
  const index = fs.readFileSync(path.join(root, "packages", name, "src", "index.ts"), "utf8")
  const out = new Map()
  for (const match of index.matchAll(/\/\*\*\n((?: \*.*\n)*?) \*\/\nexport \* as (\w+)/g)) {
    const lines = match[1].split("\n").map((line) => line.replace(/^ \* ?/, ""))
    const end = lines.findIndex((line) => line.trim() === "" || line.startsWith("@"))
    out.set(match[2], lines.slice(0, end === -1 ? lines.length : end).join(" ").trim())
  }
  return out
}

/** Inline markdown (code spans, emphasis) of a summary as HTML. */
const inline = (text) => new Marked().parseInline(text)

/** The modules of one package, as `{ module, title, description, html }`, sorted by name. */
const readModules = (name, markdownDir) => {
  const described = summaries(name)
  const modules = []
  for (const file of fs.readdirSync(markdownDir).filter((f) => f.endsWith(".ts.md"))) {
    const { meta, body } = frontMatter(fs.readFileSync(path.join(markdownDir, file), "utf8"))
    const module = file.slice(0, -".ts.md".length)
    const html = renderer().parse(body.replace(/\]\(([A-Za-z0-9]+)\.ts\.md(#[^)]*)?\)/g, "]($1.html$2)"))
    const overview = /<h2[^>]*>.*?overview<\/h2>\s*<p>([\s\S]*?)<\/p>/.exec(html)
    modules.push({
      module,
      title: meta.title ?? `${module}.ts`,
      description: described.has(module) ? inline(described.get(module)) : overview === null ? "" : overview[1],
      html
    })
  }
  return modules.sort((a, b) => a.module.localeCompare(b.module))
}

const navFor = (all, current, depth) => {
  const up = "../".repeat(depth)
  return all.map(({ name, modules }) => {
    const items = modules.map((m) =>
      `<li><a href="${up}${name}/${m.module}.html"${
        current === `${name}/${m.module}` ? " class=\"current\"" : ""
      }>${escapeHtml(m.module)}</a></li>`
    ).join("\n")
    return `<h2><a href="${up}${name}/index.html">@spindle/${name}</a></h2>\n<ul>\n${items}\n</ul>`
  }).join("\n")
}

const writeSite = (all) => {
  fs.rmSync(site, { recursive: true, force: true })
  fs.mkdirSync(site, { recursive: true })
  fs.writeFileSync(path.join(site, "style.css"), style.trimStart())
  const sections = []
  for (const { name, manifest, modules } of all) {
    const dir = path.join(site, name)
    fs.mkdirSync(dir, { recursive: true })
    const rows = modules.map((m) =>
      `<tr><td><a href="${m.module}.html"><code>${escapeHtml(m.module)}</code></a></td><td>${m.description}</td></tr>`
    ).join("\n")
    const head = "<thead><tr><th>module</th><th>what it holds</th></tr></thead>"
    const table = `<table>\n${head}\n<tbody>\n${rows}\n</tbody>\n</table>`
    fs.writeFileSync(
      path.join(dir, "index.html"),
      page({
        title: `@spindle/${name}`,
        nav: navFor(all, `${name}/index`, 1),
        depth: 1,
        content: `<h1>@spindle/${name}</h1>\n<p>${escapeHtml(manifest.description ?? "")}</p>\n${table}`
      })
    )
    for (const m of modules) {
      fs.writeFileSync(
        path.join(dir, `${m.module}.html`),
        page({
          title: `${m.module} · @spindle/${name}`,
          nav: navFor(all, `${name}/${m.module}`, 1),
          depth: 1,
          content: `<p><a href="index.html">@spindle/${name}</a></p>\n<h1>${escapeHtml(m.module)}</h1>\n${m.html}`
        })
      )
    }
    sections.push(
      `<h2><a href="${name}/index.html">@spindle/${name}</a></h2>\n<p>${
        escapeHtml(manifest.description ?? "")
      }</p>\n<p>${
        modules.map((m) =>
          `<a href="${name}/${m.module}.html"><code>${escapeHtml(m.module)}</code></a>`
        ).join(" · ")
      }</p>`
    )
  }
  fs.writeFileSync(
    path.join(site, "index.html"),
    page({
      title: "Spindle",
      nav: navFor(all, "", 0),
      depth: 0,
      content: `<h1>Spindle API reference</h1>\n<p>Generated from the JSDoc of the library packages by
<code>pnpm run docs</code>; every example on these pages is type-checked and run when the reference is built.</p>\n${
        sections.join("\n")
      }`
    })
  )
}

// ---------------------------------------------------------------------------------------------------------------

const started = Date.now()
// docgen is mostly single-threaded (parsing, tsc, prettier): run as many at once as there are cores, two at most.
const jobs = Number(process.env.DOCS_JOBS ?? Math.min(2, os.availableParallelism()))
const markdown = new Map()
const failures = []
const queue = [...packages]
await Promise.all(Array.from({ length: Math.max(1, jobs) }, async () => {
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    try {
      markdown.set(name, await runDocgen(name))
    } catch (error) {
      failures.push(error)
    }
  }
}))
// The staging folder goes either way (a failed run leaves docgen's example files there, which `eslint .` would lint),
// unless DOCS_KEEP_STAGING asks to keep it for a look.
const cleanUp = () => {
  if (process.env.DOCS_KEEP_STAGING === undefined) fs.rmSync(staging, { recursive: true, force: true })
}
if (failures.length > 0) {
  cleanUp()
  for (const failure of failures) console.error(failure instanceof Error ? failure.message : failure)
  const keep = `DOCS_KEEP_STAGING=1 keeps ${path.relative(root, staging)}/ for a look`
  console.error(`docs: ${failures.length} package(s) failed (${keep})`)
  process.exit(1)
}
const all = packages.map((name) => ({
  name,
  manifest: JSON.parse(fs.readFileSync(path.join(root, "packages", name, "package.json"), "utf8")),
  modules: readModules(name, markdown.get(name))
}))
writeSite(all)
cleanUp()
const pages = all.reduce((n, p) => n + p.modules.length, 0)
console.log(
  `docs: ${pages} module pages in ${path.relative(root, site)}/index.html, ${
    ((Date.now() - started) / 1000).toFixed(1)
  } s`
)

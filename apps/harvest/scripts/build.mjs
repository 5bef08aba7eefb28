// Builds Harvest's entry points (server, demo, command line) into plain JavaScript: `node scripts/build.mjs [outdir]`
// (default `dist`). One ES module per entry point, with Spindle, Effect and every pure-ESM package inlined, so a start
// loads a few files instead of hundreds of modules (about 0.3 s instead of 1.3 s under tsx). The code the entry points
// share, and what the code imports only when it is needed (`import()`: the docs page, the OTLP exporter), goes to
// `chunks/`: a split build, so that a server nobody reads the docs of, or that exports no traces, never loads them (a
// single file per entry point held them all in memory, as source V8 keeps for lazy compilation, and ran their modules'
// top-level code: 16 MB more RSS at start). Native and CommonJS packages
// (better-sqlite3, pg, ioredis) stay imports of the file Node would have loaded, by absolute path: they are not direct
// dependencies of this package, so Node could not find them by name from the output directory.
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The entry points, by the name of the file each becomes (`<name>.mjs`). */
export const entryPoints = ["main", "demo", "cli-main"]

const loadedByNode = /^(better-sqlite3|pg|pg-[a-z-]+|ioredis)(\/|$)/
const INNER = Symbol("inner-resolve")

/** @type {import("esbuild").Plugin} */
const leaveToNode = {
  name: "leave-to-node",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === INNER) return undefined
      if (isBuiltin(args.path)) return { path: args.path, external: true }
      if (!loadedByNode.test(args.path)) return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: INNER
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      return { path: resolved.path, external: true }
    })
  }
}

/**
 * `text` with its non-ASCII characters replaced, each UTF-16 unit by one `?`, which keeps lines and columns (and so the
 * source map) as they were. esbuild escapes every non-ASCII character of the code it writes, but copies comments as
 * they are, and a few of the bundled packages' comments hold typographic quotes: one such character makes V8 keep the
 * whole source (several MB, held for as long as the process runs, for lazy compilation) as a two-byte string, twice
 * the memory of the same text at one byte per character (about 5 MB here). The replaced characters are all in
 * comments as long as no `String.raw` (or other tagged) template holds one: `test/Build.test.ts` checks that the code
 * comes out the same.
 *
 * @param {string} text
 * @returns {string}
 */
// eslint-disable-next-line no-control-regex
export const asciiOnly = (text) => text.replace(/[^\x00-\x7f]/g, (char) => "?".repeat(char.length))

/**
 * The modules of the build in `out`: the entry points, then their chunks.
 *
 * @param {string} out
 * @returns {Array<string>}
 */
export const outputs = (out) => [
  ...entryPoints.map((name) => path.join(out, `${name}.mjs`)),
  ...fs.readdirSync(path.join(out, "chunks")).filter((file) => file.endsWith(".mjs")).sort().map((file) =>
    path.join(out, "chunks", file)
  )
]

/**
 * Puts `data` at `file` unless it holds exactly that already: written beside it and renamed into place, so that a
 * process reading the file (a running server importing a chunk on first use) sees the old bytes or the new, never
 * part of them.
 *
 * @param {string} file
 * @param {Uint8Array} data
 */
const place = (file, data) => {
  try {
    if (Buffer.from(data).equals(fs.readFileSync(file))) return
  } catch {
    // not there yet
  }
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
  fs.writeFileSync(temp, data)
  fs.renameSync(temp, file)
}

/**
 * Builds every entry point into `outdir` (relative to the app's directory, or absolute).
 *
 * A rebuild of the same sources changes no file: chunks are named by their content, and a file that already holds
 * what the build made is left as it is. A changed one is replaced whole (`place`). The chunks of an earlier build that
 * this one did not make are removed last, so a server started from the same sources finds its chunks all along.
 *
 * @param {string} [outdir]
 * @param {{ readonly ascii?: boolean }} [options] `ascii: false` leaves the output as esbuild wrote it (`asciiOnly`)
 * @returns {Promise<string>} the absolute output directory
 */
export const build = async (outdir = "dist", { ascii = true } = {}) => {
  const out = path.resolve(appDir, outdir)
  const result = await esbuild.build({
    entryPoints: entryPoints.map((name) => ({ in: path.join(appDir, "src", `${name}.ts`), out: name })),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    sourcemap: true,
    // CommonJS code inlined into an ES module still calls `require` for Node's built-ins.
    banner: { js: "import { createRequire as __harvestRequire } from \"node:module\"\n" +
      "const require = __harvestRequire(import.meta.url)" },
    plugins: [leaveToNode],
    write: false,
    logLevel: "warning"
  })
  const made = new Set()
  for (const output of result.outputFiles) {
    const file = path.resolve(output.path)
    made.add(file)
    place(file, ascii && file.endsWith(".mjs") ? Buffer.from(asciiOnly(output.text), "utf8") : output.contents)
  }
  const chunks = path.join(out, "chunks")
  for (const file of fs.readdirSync(chunks)) {
    if (!made.has(path.join(chunks, file)) && !file.startsWith(".")) fs.rmSync(path.join(chunks, file), { force: true })
  }
  return out
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build(process.argv[2])
}

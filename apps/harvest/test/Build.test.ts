import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { build, entryPoints, outputs } from "../scripts/build.mjs"
import { nodeFlags } from "../scripts/flags.mjs"
import * as Harness from "./harness.js"

// The code of a bundle with its comments and spacing left out.
const codeOf = async (source: string) =>
  (await esbuild.transform(source, { format: "esm", minifyWhitespace: true, legalComments: "none" })).code

// The modules `entry` loads as it starts: the files its static imports reach, itself included (`import()` excluded).
const staticallyLoaded = (entry: string): Set<string> => {
  const loaded = new Set<string>()
  const visit = (file: string) => {
    if (loaded.has(file)) return
    loaded.add(file)
    const code = fs.readFileSync(file, "utf8")
    for (const match of code.matchAll(/^(?:import|export)\b[^;]*?["'](\.{1,2}\/[^"']+)["']/gm)) {
      visit(path.resolve(path.dirname(file), match[1]!))
    }
  }
  visit(entry)
  return loaded
}

describe("build", () => {
  it("writes one-byte sources whose code is esbuild's own, character for character", async () => {
    // Both built here, from the same sources.
    const plain = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-plain-"))
    const ascii = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-ascii-"))
    try {
      await build(plain, { ascii: false })
      await build(ascii)
      const files = outputs(ascii).map((file) => path.relative(ascii, file))
      assert.deepStrictEqual(outputs(plain).map((file) => path.relative(plain, file)), files)
      for (const name of files) {
        const written = fs.readFileSync(path.join(ascii, name), "utf8")
        const original = fs.readFileSync(path.join(plain, name), "utf8")
        assert.isFalse(/[\u0080-\uffff]/.test(written), `${name} is ASCII only`)
        // Line for line, so the source map still points where it did.
        assert.strictEqual(written.split("\n").length, original.split("\n").length, name)
        assert.isTrue(await codeOf(written) === await codeOf(original), `${name}: only comments changed`)
      }
    } finally {
      fs.rmSync(plain, { recursive: true, force: true })
      fs.rmSync(ascii, { recursive: true, force: true })
    }
  }, 120_000)

  it("leaves the docs page and the OTLP exporter out of what a start loads, in chunks of their own", () => {
    const out = path.dirname(Harness.built("main"))
    const chunks = outputs(out).filter((file) => path.dirname(file) !== out)
    const docs = chunks.filter((file) => path.basename(file).startsWith("Docs-"))
    const otlp = chunks.filter((file) => path.basename(file).startsWith("TelemetryOtlp-"))
    assert.strictEqual(docs.length, 1)
    assert.strictEqual(otlp.length, 1)
    // Swagger UI's bundle, a few MB inlined as a string, is in the docs page's chunk only.
    assert.include(fs.readFileSync(docs[0]!, "utf8"), "swagger-ui-bundle")
    for (const name of entryPoints) {
      const loaded = staticallyLoaded(path.join(out, `${name}.mjs`))
      assert.isAbove(loaded.size, 1, `${name}.mjs imports its shared chunks`)
      for (const file of loaded) {
        assert.notInclude([...docs, ...otlp], file, `${name}.mjs loads ${path.basename(file)} as it starts`)
        assert.notInclude(fs.readFileSync(file, "utf8"), "swagger-ui-bundle", `${path.basename(file)}`)
      }
    }
  })

  it("pnpm's scripts, in the repository's root and in the app, start each entry point with flags.mjs's flags", () => {
    const appDir = path.resolve(import.meta.dirname, "..")
    const scriptsOf = (file: string) =>
      (JSON.parse(fs.readFileSync(file, "utf8")) as { scripts: Record<string, string> }).scripts
    const scripts = [
      { scripts: scriptsOf(path.join(appDir, "..", "..", "package.json")), dist: "apps/harvest/dist" },
      { scripts: scriptsOf(path.join(appDir, "package.json")), dist: "dist" }
    ]
    const entries = { start: "main", demo: "demo", harvest: "cli-main" } as const
    assert.deepStrictEqual(Object.values(entries).sort(), [...entryPoints].sort())
    for (const { dist, scripts: found } of scripts) {
      for (const [script, entry] of Object.entries(entries)) {
        assert.match(found[script]!, new RegExp(`&& exec node ${nodeFlags.join(" ")} ${dist}/${entry}\\.mjs$`), script)
      }
    }
    // Each flag is one V8 accepts (an unknown one would stop `node` before Harvest starts).
    assert.isAbove(nodeFlags.length, 0)
    for (const flag of nodeFlags) assert.isTrue(process.allowedNodeEnvironmentFlags.has(flag.split("=")[0]!), flag)
  })

  it.scopedLive(
    "a rebuild of the same sources touches no file, and removes the chunks it did not make",
    () =>
      Effect.gen(function*() {
        const out = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-again-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        // Each file with its inode and modification time: a file written again, in place or renamed over, changes one.
        const files = () =>
          new Map(
            [
              ...fs.readdirSync(out),
              ...fs.readdirSync(path.join(out, "chunks")).map((file) => path.join("chunks", file))
            ]
              .filter((file) => file !== "chunks")
              .map((file) => {
                const stat = fs.statSync(path.join(out, file))
                return [file, `${stat.ino}:${stat.mtimeMs}`] as const
              })
          )
        yield* Effect.promise(() => build(out))
        const first = files()
        assert.isAbove(first.size, 2 * entryPoints.length)
        fs.writeFileSync(path.join(out, "chunks", "chunk-OLDBUILD.mjs"), "export {}\n")
        yield* Effect.promise(() => build(out))
        assert.deepStrictEqual(files(), first)
      }),
    120_000
  )

  it.scopedLive("the built server serves the docs page from its chunk", () =>
    Effect.gen(function*() {
      const dataDir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-docs-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const harvest = yield* Harness.spawn({ DATA_DIR: dataDir })
      const reply = yield* harvest.call("GET", "/docs")
      assert.strictEqual(reply.status, 200, reply.text.slice(0, 200))
      assert.include(reply.text, "SwaggerUIBundle(")
      assert.include(reply.text, "\"/jobs/{id}/export\"")
    }), 60_000)
})

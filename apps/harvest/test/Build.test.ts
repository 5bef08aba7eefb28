import { assert, describe, it } from "@effect/vitest"
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { build, entryPoints } from "../scripts/build.mjs"

// The code of a bundle with its comments and spacing left out.
const codeOf = async (source: string) =>
  (await esbuild.transform(source, { format: "esm", minifyWhitespace: true, legalComments: "none" })).code

describe("build", () => {
  it("writes one-byte sources whose code is esbuild's own, character for character", async () => {
    // Both built here, from the same sources.
    const plain = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-plain-"))
    const ascii = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-ascii-"))
    try {
      await build(plain, { ascii: false })
      await build(ascii)
      for (const name of entryPoints) {
        const written = fs.readFileSync(path.join(ascii, `${name}.mjs`), "utf8")
        const original = fs.readFileSync(path.join(plain, `${name}.mjs`), "utf8")
        assert.isFalse(/[\u0080-\uffff]/.test(written), `${name}.mjs is ASCII only`)
        // Line for line, so the source map still points where it did.
        assert.strictEqual(written.split("\n").length, original.split("\n").length, name)
        assert.isTrue(await codeOf(written) === await codeOf(original), `${name}.mjs: only comments changed`)
      }
    } finally {
      fs.rmSync(plain, { recursive: true, force: true })
      fs.rmSync(ascii, { recursive: true, force: true })
    }
  }, 120_000)
})

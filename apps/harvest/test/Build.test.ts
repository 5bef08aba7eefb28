import { assert, describe, it } from "@effect/vitest"
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { build, entryPoints } from "../scripts/build.mjs"
import * as Harness from "./harness.js"

// The code of a bundle with its comments and spacing left out.
const codeOf = async (source: string) =>
  (await esbuild.transform(source, { format: "esm", minifyWhitespace: true, legalComments: "none" })).code

describe("build", () => {
  it("writes one-byte sources whose code is esbuild's own, character for character", async () => {
    const plain = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-build-plain-"))
    try {
      await build(plain, { ascii: false })
      for (const name of entryPoints) {
        const written = fs.readFileSync(Harness.built(name as "main"), "utf8")
        const original = fs.readFileSync(path.join(plain, `${name}.mjs`), "utf8")
        assert.isFalse(/[\u0080-\uffff]/.test(written), `${name}.mjs is ASCII only`)
        // Line for line, so the source map still points where it did.
        assert.strictEqual(written.split("\n").length, original.split("\n").length, name)
        assert.isTrue(await codeOf(written) === await codeOf(original), `${name}.mjs: only comments changed`)
      }
    } finally {
      fs.rmSync(plain, { recursive: true, force: true })
    }
  }, 120_000)
})

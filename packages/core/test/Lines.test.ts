import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Lines } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const splitPieces = (...pieces: Array<string>) =>
  Stream.fromIterable(pieces).pipe(Lines.split(), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

const tempFile = (contents: string | Buffer) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spindle-lines-"))
      const file = path.join(dir, "input.txt")
      fs.writeFileSync(file, contents)
      return file
    }),
    (file) => Effect.sync(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }))
  )

describe("Lines", () => {
  it.effect("splits on \\n, \\r\\n and \\r, including endings split across pieces", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* splitPieces("a\nb\r\nc\rd"), ["a", "b", "c", "d"])
      assert.deepStrictEqual(yield* splitPieces("a\r", "\nb\r", "", "\nc"), ["a", "b", "c"])
      assert.deepStrictEqual(yield* splitPieces("lo", "ng li", "ne\n", "\n", "x"), ["long line", "", "x"])
      assert.deepStrictEqual(yield* splitPieces("a\r\r\nb\n"), ["a", "", "b"])
      assert.deepStrictEqual(yield* splitPieces(""), [])
      assert.deepStrictEqual(yield* splitPieces("\n"), [""])
    }))

  it.scoped("reads a file in tiny chunks: multi-byte characters and CRLF split across chunks survive", () =>
    Effect.gen(function*() {
      const text = "héllo wörld\r\n日本語の行\r\nemoji 🎉 line\nlast"
      const file = yield* tempFile(text)
      for (const chunkSize of [1, 2, 3, 7, 64 * 1024]) {
        const lines = yield* Lines.fromFile(file, { chunkSize }).pipe(Stream.runCollect)
        assert.deepStrictEqual(Chunk.toReadonlyArray(lines), ["héllo wörld", "日本語の行", "emoji 🎉 line", "last"])
      }
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("a line longer than maxLineLength fails with LineTooLong naming the line", () =>
    Effect.gen(function*() {
      const file = yield* tempFile(`short\n${"x".repeat(5000)}\nshort\n`)
      const error = yield* Effect.flip(
        Lines.fromFile(file, { chunkSize: 512, maxLineLength: 1000 }).pipe(Stream.runDrain)
      )
      assert.strictEqual(error._tag, "LineTooLong")
      if (error._tag === "LineTooLong") assert.strictEqual(error.line, 2)
      // The same line inside a single chunk is named correctly too.
      const inOneChunk = yield* Effect.flip(
        Stream.make(`short\n${"x".repeat(5000)}\nshort\nshort\n`).pipe(
          Lines.split({ maxLineLength: 1000 }),
          Stream.runDrain
        )
      )
      assert.strictEqual(inOneChunk.line, 2)
      const missing = yield* Effect.flip(Lines.fromFile(`${file}.missing`).pipe(Stream.runDrain))
      assert.strictEqual(missing._tag, "SystemError")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("streams a 200 MB file in constant memory", () =>
    Effect.gen(function*() {
      // 200 MB of 100-byte lines, written in blocks so the test itself stays small.
      const line = "y".repeat(99) + "\n"
      const block = line.repeat(10_000) // 1 MB
      const file = yield* tempFile("")
      const fd = fs.openSync(file, "w")
      for (let i = 0; i < 200; i++) fs.writeSync(fd, block)
      fs.closeSync(fd)
      global.gc?.()
      const baseline = process.memoryUsage().heapUsed
      let peak = baseline
      let count = 0
      yield* Lines.fromFile(file).pipe(
        Stream.runForEachChunk((lines) =>
          Effect.sync(() => {
            count += lines.length
            if (count % 100_000 < lines.length) peak = Math.max(peak, process.memoryUsage().heapUsed)
          })
        )
      )
      assert.strictEqual(count, 2_000_000)
      // Holding the file would take over 200 MB of heap (400 MB as JS strings); streaming stays far below. The peak
      // counts garbage not yet collected: Node 20 lets up to ~60 MB of spent lines pile up, Node 24 ~90 MB (after a
      // full GC both are back at the baseline), so the bound sits between that and holding the file.
      assert.isBelow(peak - baseline, 128 * 1024 * 1024, `heap grew by ${Math.round((peak - baseline) / 1e6)} MB`)
    }).pipe(Effect.provide(NodeFileSystem.layer)), 120_000)
})

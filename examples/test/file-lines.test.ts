import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, layer } from "@effect/vitest"
import { Lines } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { firstErrors, logLine, summarize, tempDir, writeLogFile } from "../src/file-lines.js"
import type { LongLine, Written } from "../src/file-lines.js"

// A full garbage collection on demand, to measure what is retained rather than what was allocated.
v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as (() => void) | undefined

// One 50 MiB log shared by the tests, with a 3 MB line at line 100,000.
const longLine: LongLine = { at: 100_000, length: 3_000_000 }

class LogFile extends Context.Tag("LogFile")<LogFile, { readonly file: string; readonly written: Written }>() {}

const LogFileLive = Layer.scoped(
  LogFile,
  Effect.gen(function*() {
    const file = nodePath.join(yield* tempDir, "app.log")
    const written = yield* writeLogFile(file, { megabytes: 50, longLine })
    return { file, written }
  })
).pipe(Layer.provideMerge(NodeFileSystem.layer))

// Descriptors this process has open on `file` (Linux: /proc/self/fd), or undefined where that cannot be seen.
const openDescriptors = (file: string): number | undefined => {
  if (!fs.existsSync("/proc/self/fd")) return undefined
  let count = 0
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === file) count++
    } catch {
      // closed meanwhile
    }
  }
  return count
}

// The file system with instruments on `stream`: the bytes it has handed out, the descriptors open on the file when
// the first chunk came, and (with `probeEvery`) the most heap retained above the start, measured after a full
// collection every `probeEvery` chunks, while the reader is in the middle of the file.
const instrumented = (file: string, options: { readonly probeEvery?: number } = {}) =>
  Effect.map(FileSystem.FileSystem, (fileSystem) => {
    const retained = () => {
      gc!()
      return process.memoryUsage().heapUsed
    }
    const baseline = options.probeEvery === undefined ? 0 : retained()
    let bytes = 0
    let chunks = 0
    let peakRetained = 0
    let openWhileReading: number | undefined
    const service = FileSystem.FileSystem.of({
      ...fileSystem,
      stream: (path, streamOptions) =>
        fileSystem.stream(path, streamOptions).pipe(Stream.tap((chunk) =>
          Effect.sync(() => {
            if (bytes === 0) openWhileReading = openDescriptors(file)
            bytes += chunk.length
            if (options.probeEvery !== undefined && ++chunks % options.probeEvery === 0) {
              peakRetained = Math.max(peakRetained, retained() - baseline)
            }
          })
        ))
    })
    return {
      provide: Effect.provideService(FileSystem.FileSystem, service),
      bytesRead: () => bytes,
      openWhileReading: () => openWhileReading,
      peakRetained: () => peakRetained
    }
  })

const mb = (bytes: number) => `${Math.round(bytes / 1e6)} MB`

layer(LogFileLive, { timeout: "60 seconds", excludeTestServices: true })("file-lines", (it) => {
  it.effect("50 MiB of CRLF and LF lines and one 3 MB line, every line counted once and exactly", () =>
    Effect.gen(function*() {
      const { file, written } = yield* LogFile
      assert.isAtLeast(written.bytes, 50 * 1024 * 1024)
      assert.strictEqual(written.longest, longLine.length)
      const summary = yield* summarize(file)
      // None split at a \r\n (in 50 MiB a chunk boundary falls between \r and \n again and again) and none left
      // with a \r: the line count and the character count both match what was written.
      const endings = Math.floor(written.lines / 2) * 2 + Math.ceil(written.lines / 2)
      assert.deepStrictEqual(summary, {
        lines: written.lines,
        characters: written.bytes - endings,
        longest: longLine.length,
        errors: written.errors,
        withCarriageReturn: 0
      })
    }))

  it.effect.skipIf(gc === undefined)(
    "constant memory: summarizing retains a few MB; collecting the lines, 50+",
    () =>
      Effect.gen(function*() {
        const { file, written } = yield* LogFile
        // About 800 chunks of 64 KiB: a probe every 200.
        const streaming = yield* instrumented(file, { probeEvery: 200 })
        const summary = yield* streaming.provide(summarize(file))
        assert.strictEqual(summary.lines, written.lines)
        assert.isBelow(streaming.peakRetained(), 12 * 1024 * 1024, `retained ${mb(streaming.peakRetained())}`)

        // The probe is sensitive: the seed's `load_data`, every line in a list, retains more than the file.
        const collecting = yield* instrumented(file, { probeEvery: 200 })
        const all = yield* collecting.provide(Stream.runCollect(Lines.fromFile(file)))
        assert.strictEqual(Chunk.size(all), written.lines)
        assert.isAbove(collecting.peakRetained(), 50 * 1024 * 1024, `retained ${mb(collecting.peakRetained())}`)
      })
  )

  it.effect("maxLineLength: the 3 MB line fails the stream with a typed LineTooLong naming its line", () =>
    Effect.gen(function*() {
      const { file } = yield* LogFile
      const meter = yield* instrumented(file)
      const error = yield* Effect.flip(meter.provide(summarize(file, { maxLineLength: 64 * 1024 })))
      assert.strictEqual(error._tag, "LineTooLong")
      if (error._tag === "LineTooLong") {
        assert.strictEqual(error.line, longLine.at)
        assert.strictEqual(error.maxLineLength, 64 * 1024)
      }
      // It failed while the long line was being read: the buffer stopped growing past the limit, and the 40 MiB
      // after it were never read.
      assert.isBelow(meter.bytesRead(), 16 * 1024 * 1024, `read ${mb(meter.bytesRead())}`)
      const allowed = yield* summarize(file, { maxLineLength: longLine.length })
      assert.strictEqual(allowed.longest, longLine.length)
    }))

  it.effect("stopping early stops reading: three errors cost under 2 MiB of the file, which is then closed", () =>
    Effect.gen(function*() {
      const { file } = yield* LogFile
      const meter = yield* instrumented(file)
      const errors = yield* meter.provide(firstErrors(file, 3))
      assert.deepStrictEqual(errors, [logLine(100), logLine(200), logLine(300)])
      // The 300th line ends in the first 64 KiB chunk; the platform reads up to 16 chunks ahead, no further.
      assert.isAtMost(meter.bytesRead(), 2 * 1024 * 1024, `read ${mb(meter.bytesRead())}`)
      // The file was open while it was read, and closed when `take` ended the stream.
      const openAfter = openDescriptors(file)
      if (openAfter !== undefined) {
        assert.strictEqual(meter.openWhileReading(), 1)
        assert.strictEqual(openAfter, 0)
      }
    }))
})

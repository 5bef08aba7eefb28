// Seed pattern: "Async Generators" — `stream_file_lines`: a large file's lines one at a time, in constant memory.
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { Lines } from "@spindle/core"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/**
 * Line `n` of the generated log: every 100th is an error.
 */
export const logLine = (n: number): string =>
  `2024-05-01T12:${String(Math.floor(n / 60) % 60).padStart(2, "0")}:${String(n % 60).padStart(2, "0")}Z ` +
  `${n % 100 === 0 ? "ERROR" : "INFO"} request ${n} GET /items/${n % 97} took ${n % 500} ms`

/**
 * What `writeLogFile` wrote.
 */
export interface Written {
  readonly bytes: number
  readonly lines: number
  /** Lines with `ERROR`. */
  readonly errors: number
  /** Characters of the longest line, its ending excluded. */
  readonly longest: number
}

/**
 * The generated file's long line: a single-line JSON dump of `length` characters at line `at`.
 */
export interface LongLine {
  readonly at: number
  readonly length: number
}

/**
 * Writes a log of about `megabytes` MiB (whole lines) to `file`, its lines ending in `\r\n` and `\n` in turn (a file
 * edited on Windows and on Linux), with an optional very long line. The file is itself written as a stream: blocks
 * of about 64 KiB, each made when the file sink is ready for it, so writing 50 MB needs no 50 MB string.
 */
export const writeLogFile = (
  file: string,
  options: { readonly megabytes: number; readonly longLine?: LongLine | undefined }
): Effect.Effect<Written, PlatformError.PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = options.megabytes * 1024 * 1024
    const written = { bytes: 0, lines: 0, errors: 0, longest: 0 }
    const block = (): Option.Option<string> => {
      if (written.bytes >= target) return Option.none()
      const parts: Array<string> = []
      let size = 0
      while (size < 64 * 1024 && written.bytes + size < target) {
        const n = ++written.lines
        const text = n === options.longLine?.at
          ? `{"dump":"${"x".repeat(options.longLine.length - 11)}"}`
          : logLine(n)
        const ending = n % 2 === 0 ? "\r\n" : "\n"
        parts.push(text, ending)
        size += text.length + ending.length
        if (text.includes(" ERROR ")) written.errors++
        written.longest = Math.max(written.longest, text.length)
      }
      written.bytes += size
      return Option.some(parts.join(""))
    }
    yield* Stream.unfold(undefined, () => Option.map(block(), (text) => [text, undefined] as const)).pipe(
      Stream.encodeText,
      Stream.run(fs.sink(file))
    )
    return { ...written }
  })

/**
 * What one pass over a file's lines found.
 */
export interface Summary {
  readonly lines: number
  readonly characters: number
  readonly longest: number
  readonly errors: number
  /** Lines still carrying a `\r`: 0 when `\r\n` endings are cut whole. */
  readonly withCarriageReturn: number
}

/**
 * The summary of no lines.
 */
export const emptySummary: Summary = { lines: 0, characters: 0, longest: 0, errors: 0, withCarriageReturn: 0 }

/**
 * The summary with one more line: all a pass keeps of a line once it has looked at it.
 */
export const addLine = (summary: Summary, line: string): Summary => ({
  lines: summary.lines + 1,
  characters: summary.characters + line.length,
  longest: Math.max(summary.longest, line.length),
  errors: line.includes(" ERROR ") ? summary.errors + 1 : summary.errors,
  withCarriageReturn: line.includes("\r") ? summary.withCarriageReturn + 1 : summary.withCarriageReturn
})

/**
 * The seed's `stream_file_lines`, consumed the way it is meant to be: each line is looked at once and dropped, and
 * only the running summary is kept, so the memory needed is a few chunks plus the longest line, whatever the size
 * of the file. (The seed's `load_data` collects every line into a list, which is `Stream.runCollect` here and
 * undoes the point: the whole file in memory, as strings.)
 *
 * `Lines.fromFile` opens the file when the stream starts and closes it when the stream ends, however it ends. With
 * `maxLineLength`, a longer line fails the stream with a typed `LineTooLong` naming the line, instead of growing a
 * buffer without bound.
 */
export const summarize = (
  file: string,
  options: { readonly maxLineLength?: number | undefined } = {}
): Effect.Effect<Summary, PlatformError.PlatformError | Lines.LineTooLong, FileSystem.FileSystem> =>
  Lines.fromFile(file, { maxLineLength: options.maxLineLength }).pipe(Stream.runFold(emptySummary, addLine))

/**
 * The first `count` error lines. `Stream.take` ends the stream after the last one it needs: reading stops there
 * and the file is closed, the rest of it never read.
 */
export const firstErrors = (
  file: string,
  count: number
): Effect.Effect<ReadonlyArray<string>, PlatformError.PlatformError | Lines.LineTooLong, FileSystem.FileSystem> =>
  Lines.fromFile(file).pipe(
    Stream.filter((line) => line.includes(" ERROR ")),
    Stream.take(count),
    Stream.runCollect,
    Effect.map((lines) => Array.from(lines))
  )

/**
 * A fresh temporary directory, removed with everything in it when the scope closes.
 */
export const tempDir: Effect.Effect<string, PlatformError.PlatformError, FileSystem.FileSystem | Scope.Scope> = Effect
  .flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "spindle-lines-" }))

/**
 * The runnable demo: a 50 MiB log with a 4 MB line in the middle.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const file = path.join(yield* tempDir, "app.log")
  const longLine: LongLine = { at: 300_000, length: 4_000_000 }
  const written = yield* writeLogFile(file, { megabytes: 50, longLine })
  yield* Console.log(
    `wrote ${file}: ${(written.bytes / 1024 / 1024).toFixed(1)} MiB, ${written.lines} lines, CRLF and LF`
  )

  const heapBefore = process.memoryUsage().heapUsed
  const [elapsed, summary] = yield* Effect.timed(summarize(file))
  yield* Console.log(
    `read it in ${Math.round(Duration.toMillis(elapsed))} ms: ${summary.lines} lines, ${summary.errors} errors, ` +
      `longest ${summary.longest} characters, ${summary.withCarriageReturn} with a stray \\r; ` +
      `heap now ${Math.round((process.memoryUsage().heapUsed - heapBefore) / 1e6)} MB above where it started`
  )

  const errors = yield* firstErrors(file, 2)
  yield* Console.log(`the first two errors (the rest of the file not read):\n  ${errors.join("\n  ")}`)

  const tooLong = yield* summarize(file, { maxLineLength: 64 * 1024 }).pipe(
    Effect.catchTag("LineTooLong", (error) => Effect.succeed(error.message))
  )
  yield* Console.log(`with maxLineLength 64 KiB: ${typeof tooLong === "string" ? tooLong : "no line too long"}`)
})).pipe(Effect.provide(NodeFileSystem.layer))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

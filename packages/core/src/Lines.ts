/**
 * Text as a stream of lines, in constant memory: a file of any size is read in chunks through `@effect/platform`'s
 * `FileSystem`, decoded (multi-byte characters split across chunks included), and cut at `\n`, `\r\n` or `\r`,
 * a line ending split across two chunks included.
 *
 * Memory is bounded by the chunk size (times the read-ahead of the platform's file stream, 16 chunks) plus the
 * longest line. A file whose lines can be arbitrarily long (a
 * single-line JSON dump) should set `maxLineLength`: a longer line fails the stream with a typed `LineTooLong`
 * instead of growing a buffer without bound.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

/**
 * A line was longer than `maxLineLength` characters.
 *
 * @example
 * ```ts
 * import { Lines } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * const program = Stream.make("short\n", "x".repeat(100), "\n").pipe(
 *   Lines.split({ maxLineLength: 10 }),
 *   Stream.runCollect,
 *   Effect.catchTag("LineTooLong", (e) => Effect.succeed(e.message))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "Line 2 is longer than 10 characters"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class LineTooLong extends Data.TaggedError("LineTooLong")<{
  readonly line: number
  readonly maxLineLength: number
}> {
  override get message(): string {
    return `Line ${this.line} is longer than ${this.maxLineLength} characters`
  }
}

/**
 * Options for line splitting.
 *
 * @example
 * ```ts
 * import { Lines } from "@spindle/core"
 * import * as Stream from "effect/Stream"
 *
 * // A single-line JSON dump cannot grow a buffer without bound.
 * const options: Lines.Options = { maxLineLength: 1_000_000 }
 *
 * const lines = Stream.make("{}\n").pipe(Lines.split(options))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Longest line accepted, in characters. Default: no limit. */
  readonly maxLineLength?: number | undefined
}

/**
 * Splits a stream of text into lines without their line endings. A final line without an ending is emitted too;
 * an empty input emits nothing.
 *
 * @example
 * ```ts
 * import { Lines } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * // Line endings split across chunks, mixed \r\n and \n, and a last line without an ending.
 * const chunks = Stream.make("first\r", "\nsecond\nthi", "rd")
 *
 * Effect.runPromise(Stream.runCollect(chunks.pipe(Lines.split()))).then((lines) => console.log(Array.from(lines)))
 * // ["first", "second", "third"]
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const split = (options: Options = {}) =>
<E, R>(self: Stream.Stream<string, E, R>): Stream.Stream<
  string,
  E | LineTooLong,
  R
> =>
  Stream.suspend(() => {
    const max = options.maxLineLength ?? Number.POSITIVE_INFINITY
    let pending = ""
    let afterCR = false
    let lineNumber = 0
    const tooLong = () => Effect.fail(new LineTooLong({ line: lineNumber + 1, maxLineLength: max }))
    const body = Stream.mapChunksEffect(self, (chunk) => {
      const lines: Array<string> = []
      // Ends the current line at `end` of `text`; false when it is too long (checked before it is counted, so the
      // error names the right line however the text was cut into chunks).
      const endLine = (text: string, start: number, end: number): boolean => {
        const line = pending + text.slice(start, end)
        if (line.length > max) return false
        lines.push(line)
        pending = ""
        lineNumber++
        return true
      }
      for (const text of chunk) {
        let start = 0
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i)
          if (c === 10 /* \n */) {
            if (afterCR && i === start && pending === "") {
              // the \n of a \r\n whose \r ended the previous piece
              afterCR = false
              start = i + 1
              continue
            }
            if (!endLine(text, start, i)) return tooLong()
            start = i + 1
            afterCR = false
          } else if (c === 13 /* \r */) {
            if (!endLine(text, start, i)) return tooLong()
            start = i + 1
            afterCR = true
          } else {
            afterCR = false
          }
        }
        pending += text.slice(start)
        if (pending.length > max) return tooLong()
      }
      return Effect.succeed(Chunk.unsafeFromArray(lines))
    })
    return Stream.concat(body, Stream.suspend(() => pending === "" ? Stream.empty : Stream.make(pending)))
  })

/**
 * The lines of a file, read lazily in chunks of `chunkSize` bytes (default 64 KiB) and decoded as `encoding`
 * (default UTF-8).
 *
 * @example
 * ```ts
 * import { Lines } from "@spindle/core"
 * import { NodeFileSystem } from "@effect/platform-node"
 * import * as FileSystem from "@effect/platform/FileSystem"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * const program = Effect.gen(function*() {
 *   const fs = yield* FileSystem.FileSystem
 *   const path = yield* fs.makeTempFileScoped({ prefix: "urls" })
 *   yield* fs.writeFileString(path, "https://a.example/\nhttps://b.example/\n")
 *   // Constant memory, whatever the size of the file.
 *   return yield* Lines.fromFile(path, { maxLineLength: 8192 }).pipe(
 *     Stream.filter((line) => line.startsWith("https://")),
 *     Stream.runCount
 *   )
 * }).pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer))
 *
 * Effect.runPromise(program).then(console.log) // 2
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromFile = (
  path: string,
  options: Options & {
    readonly chunkSize?: number | undefined
    readonly encoding?: string | undefined
  } = {}
): Stream.Stream<string, PlatformError.PlatformError | LineTooLong, FileSystem.FileSystem> =>
  Stream.unwrap(
    Effect.map(FileSystem.FileSystem, (fs) =>
      fs.stream(path, { chunkSize: FileSystem.Size(options.chunkSize ?? 64 * 1024) }).pipe(
        Stream.decodeText(options.encoding ?? "utf-8"),
        split(options)
      ))
  )

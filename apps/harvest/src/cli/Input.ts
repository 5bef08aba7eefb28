/**
 * The URLs of `harvest fetch <file|->`: a file or stdin read line by line in constant memory (`@spindle/core`'s
 * `Lines`), blank lines and `#` comments skipped, each URL checked the way `POST /jobs` checks it so that a bad line
 * is reported with its number before anything is submitted.
 *
 * @since 0.1.0
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import type * as PlatformError from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Lines } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Domain from "../Domain.js"

/**
 * A line that is not an absolute `http`/`https` URL.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidLine extends Data.TaggedError("InvalidLine")<{
  readonly source: string
  readonly line: number
  readonly text: string
  readonly reason: string
}> {
  override get message(): string {
    const shown = this.text.length > 80 ? `${this.text.slice(0, 77)}...` : this.text
    return `${this.source}:${this.line}: ${JSON.stringify(shown)} ${this.reason}`
  }
}

/**
 * The input could not be read (a missing file, a line longer than any URL).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unreadable extends Data.TaggedError("Unreadable")<{
  readonly source: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot read ${this.source}: ${this.reason}`
  }
}

/**
 * One URL and the line it came from (1-based).
 *
 * @since 0.1.0
 * @category models
 */
export interface UrlLine {
  readonly line: number
  readonly url: string
}

/**
 * How the command line hands over `-` (stdin): @effect/cli would take a lone `-` for an option, so `Cli.run` swaps it
 * for this marker, which no real argument can contain (a NUL byte).
 *
 * @since 0.1.0
 * @category constants
 */
export const stdin = "\u0000-"

/** Longest line accepted: far above any real URL, low enough to bound memory on a file that is not a URL list. */
const maxLineLength = 64 * 1024

/**
 * Why `text` would be refused by `POST /jobs`, or `undefined` when it is a URL Harvest accepts.
 *
 * @since 0.1.0
 * @category validation
 */
export const problem: (text: string) => string | undefined = Domain.urlProblem

const label = (source: string) => source === stdin ? "stdin" : source

/**
 * The URLs of `source` (a path, or `stdin`), in order, each checked; the first bad line fails the stream.
 *
 * @since 0.1.0
 * @category constructors
 */
export const urls = (source: string): Stream.Stream<UrlLine, InvalidLine | Unreadable, FileSystem.FileSystem> => {
  const lines = source === stdin
    ? NodeStream.stdin.pipe(Stream.decodeText("utf-8"), Lines.split({ maxLineLength }))
    : Lines.fromFile(source, { maxLineLength })
  return lines.pipe(
    Stream.mapError((error: PlatformError.PlatformError | Lines.LineTooLong) =>
      new Unreadable({
        source: label(source),
        reason: error._tag === "LineTooLong"
          ? `line ${error.line} is longer than ${error.maxLineLength} characters`
          : error.message
      })
    ),
    // One pass per chunk rather than an effect per line: a file of millions of URLs is mostly this loop.
    (checked) =>
      Stream.suspend(() => {
        let line = 0
        return Stream.mapChunksEffect(checked, (chunk) => {
          const out: Array<UrlLine> = []
          for (const text of chunk) {
            line++
            const url = text.trim()
            if (url === "" || url.startsWith("#")) continue
            const reason = problem(url)
            if (reason !== undefined) {
              return Effect.fail(new InvalidLine({ source: label(source), line, text: url, reason }))
            }
            out.push({ line, url })
          }
          return Effect.succeed(Chunk.unsafeFromArray(out))
        })
      })
  )
}

/**
 * How many URLs `source` holds, every line checked: the first pass over a file, so that a bad line is reported
 * before any job exists and the progress knows its total from the start.
 *
 * @since 0.1.0
 * @category constructors
 */
export const count = (source: string): Effect.Effect<number, InvalidLine | Unreadable, FileSystem.FileSystem> =>
  Stream.runCount(urls(source))

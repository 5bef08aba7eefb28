/**
 * Faults that stop Harvest before it serves: a bad configuration value, a `DATA_DIR` it cannot write, a database it
 * cannot reach, an address it cannot listen on. Each is a typed error whose `message` is one line naming the cause
 * (secrets in URLs redacted); `runLayer` prints it to stderr as `harvest: <message>` and exits with `exitCode`, with
 * no stack trace, since the operator has something to fix rather than a bug to report.
 *
 * @since 0.1.0
 */
import { Shutdown } from "@spindle/node"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as v8 from "node:v8"
import { InvalidEnvironment } from "./HarvestConfig.js"

/**
 * The exit code of a start-up fault, the command line's code for errors of usage, input and connection: 1 stays the
 * code of a failure while running (or a shutdown past its deadline), so a supervisor can tell the two apart.
 *
 * @since 0.1.0
 * @category constants
 */
export const exitCode = 2

const words: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "not a directory",
  EEXIST: "a file is in the way",
  ENOENT: "no such file or directory",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "name resolution failed",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EADDRINUSE: "address in use",
  EADDRNOTAVAIL: "address not available on this machine"
}

const firstLine = (text: string) => text.split("\n")[0].trim()

/**
 * A cause as a few words for one line: a system error as what its code means and the code (`permission denied
 * (EACCES)`), anything else as the first line of its message.
 *
 * @since 0.1.0
 * @category utils
 */
export const describe = (cause: unknown): string => {
  // A connection tried on several addresses fails with an AggregateError of one error each.
  const error = cause instanceof AggregateError && cause.errors.length > 0 && !("code" in cause)
    ? cause.errors[0]
    : cause
  const code = typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined
  if (code !== undefined && code in words) return `${words[code]} (${code})`
  const message = error instanceof Error ? firstLine(error.message) : firstLine(String(error))
  if (message === "" || message === "undefined") return code ?? "unknown error"
  return code !== undefined && !message.includes(code) ? `${message} (${code})` : message
}

const secretParameter = /pass|secret|token|key/i

/**
 * A URL fit for a log line: its password, and the values of query parameters that look like secrets, replaced with
 * `***`. A string that is not a URL is not shown at all.
 *
 * @since 0.1.0
 * @category utils
 */
export const redactUrl = (url: string): string => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return "<not a URL>"
  }
  if (parsed.password !== "") parsed.password = "***"
  for (const name of Array.from(parsed.searchParams.keys())) {
    if (secretParameter.test(name)) parsed.searchParams.set(name, "***")
  }
  return parsed.toString().replace(/%2A%2A%2A/g, "***")
}

/**
 * `DATA_DIR` (or a directory in it) cannot be created or written: a file in the way, permissions, a read-only or
 * full file system.
 *
 * @since 0.1.0
 * @category errors
 */
export class DataDirUnwritable extends Data.TaggedError("DataDirUnwritable")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot write DATA_DIR ${this.path}: ${describe(this.cause)}; make it a writable directory or set ` +
      `DATA_DIR to one`
  }
}

/**
 * Creates `directory` (and its parents) if missing and checks that this process may write in it, so that a data
 * directory Harvest cannot use stops it at start, not at its first body.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ensureDirectory = (directory: string): Effect.Effect<void, DataDirUnwritable> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(directory, { recursive: true })
      fs.accessSync(directory, fs.constants.W_OK)
    },
    catch: (cause) => new DataDirUnwritable({ path: directory, cause })
  })

/**
 * The database `DATABASE_URL` names could not be connected to at start.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnreachable extends Data.TaggedError("DatabaseUnreachable")<{
  /** Redacted (`redactUrl`). */
  readonly url: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `database unreachable at ${this.url}: ${describe(this.cause)}; check DATABASE_URL and that the ` +
      `database is up`
  }
}

/**
 * The HTTP server could not listen on `HOST`:`PORT` (in use by another process, a privileged port, an address this
 * machine does not have).
 *
 * @since 0.1.0
 * @category errors
 */
export class CannotListen extends Data.TaggedError("CannotListen")<{
  readonly host: string
  readonly port: number
  readonly cause: unknown
}> {
  override get message(): string {
    const code = typeof this.cause === "object" && this.cause !== null && "code" in this.cause
      ? this.cause.code
      : undefined
    return code === "EADDRINUSE"
      ? `port ${this.port} on ${this.host} is in use; stop the process holding it or set PORT to another`
      : `cannot listen on ${this.host}:${this.port}: ${describe(this.cause)}; check HOST and PORT`
  }
}

/**
 * Every fault that stops Harvest at start with a one-line reason.
 *
 * @since 0.1.0
 * @category models
 */
export type StartupError = InvalidEnvironment | DataDirUnwritable | DatabaseUnreachable | CannotListen

const isStartupError = (error: unknown): error is StartupError =>
  error instanceof InvalidEnvironment || error instanceof DataDirUnwritable ||
  error instanceof DatabaseUnreachable || error instanceof CannotListen

/**
 * `Shutdown.runMain`'s `onFailure` for Harvest: a start-up fault is written to stderr as one line,
 * `harvest: <message>`, and exits with `exitCode`; any other failure keeps the default (logged with its cause,
 * exit 1).
 *
 * @since 0.1.0
 * @category running
 */
export const onFailure = (cause: Cause.Cause<unknown>): number | undefined =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => undefined,
    onSome: (error) => {
      if (!isStartupError(error)) return undefined
      process.stderr.write(`harvest: ${error.message}\n`)
      return exitCode
    }
  })

/**
 * Runs a Harvest server layer as the process (`Shutdown.runLayer`, a 60-second shutdown deadline), start-up faults
 * reported by `onFailure`.
 *
 * @since 0.1.0
 * @category running
 */
export const runLayer = <E>(layer: Layer.Layer<never, E>): void =>
  Shutdown.runLayer(layer, { deadline: "60 seconds", onFailure })

/**
 * How much V8 lets the old generation grow past what its last full collection kept before it collects again, in
 * percent (`--heap-growing-percent`): 100, a factor of 2, the factor V8 itself uses on devices with little memory.
 * Left to itself on a machine with a few GB, V8 picks a factor of up to 4; under a job, Harvest's objects that live
 * for one fetch (in flight for tens of milliseconds, so promoted out of the young generation) then pile up in the old
 * generation as garbage: about 90 MB of it in a 10,000-URL job before the first full collection, most of the process's
 * peak memory. A factor of 2 bounds that at the cost of one or two more full collections per such job, each a pause of
 * about 10 ms with its marking done concurrently.
 *
 * @since 0.1.0
 * @category constants
 */
export const heapGrowingPercent = 100

/**
 * Sets V8's old-generation growth to `heapGrowingPercent`, unless the process was started with a value of its own
 * (`node --heap-growing-percent=<n>`). V8 reads it whenever it sets the next collection's limit, so it applies from
 * the first full collection after this call; call it first thing in an entry point.
 *
 * @since 0.1.0
 * @category running
 */
export const limitHeapGrowth = (): void => {
  if (process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return
  v8.setFlagsFromString(`--heap-growing-percent=${heapGrowingPercent}`)
}

/**
 * One fetch attempt: connect to the address the guard checked, stream the body to a temporary file while hashing
 * it, refuse bodies over the limit, and rename the file into place only once it is complete. Interrupting the
 * attempt (a timeout, a cancelled job, a shutdown) destroys the connection and removes the partial file.
 *
 * @since 0.1.0
 */
import { RetryAfter } from "@spindle/core"
import type { AddressGuard } from "@spindle/node"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as path from "node:path"

/**
 * The codes a failed item carries (DESIGN.md).
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorCode =
  | "http_status"
  | "timeout"
  | "body_too_large"
  | "network"
  | "blocked_address"
  | "circuit_open"
  | "cancelled"

/**
 * An attempt failed. `retryable` says whether another attempt may succeed; `retryAfter` carries the server's hint.
 *
 * @since 0.1.0
 * @category errors
 */
export class FetchFailure extends Data.TaggedError("FetchFailure")<{
  readonly code: ErrorCode
  readonly message: string
  readonly retryable: boolean
  readonly httpStatus: number | null
  readonly retryAfter: Duration.Duration | undefined
}> implements RetryAfter.RetryAfter {
  get [RetryAfter.RetryAfterTypeId](): Duration.Duration {
    return this.retryAfter ?? Duration.zero
  }
}

/**
 * A body stored on disk.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fetched {
  readonly httpStatus: number
  readonly bytes: number
  readonly sha256: string
  readonly fileId: string
}

/**
 * Where bodies go: `files/` for complete ones, `tmp/` while they are written. Temp files are named after `owner`
 * when given (`<owner>.<uuid>.part`), so that an instance sharing the directory can tell whose they are.
 *
 * @since 0.1.0
 * @category models
 */
export interface Directories {
  readonly files: string
  readonly tmp: string
  readonly owner?: string | undefined
}

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 1024 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 1024 })
}

const failure = (code: ErrorCode, message: string, retryable: boolean, extra: {
  readonly httpStatus?: number | undefined
  readonly retryAfter?: Duration.Duration | undefined
} = {}) =>
  new FetchFailure({
    code,
    message,
    retryable,
    httpStatus: extra.httpStatus ?? null,
    retryAfter: extra.retryAfter
  })

/**
 * Fetches `destination` once into `directories`, failing with a `FetchFailure` whose `code` follows the contract:
 * 2xx succeeds; 408, 429 and 5xx are retryable `http_status` (with `Retry-After` honoured); other statuses fail for
 * good; a body over `maxBodyBytes` is `body_too_large`; connection errors are `network`.
 *
 * @since 0.1.0
 * @category fetching
 */
export const attempt = (
  destination: AddressGuard.Destination,
  options: {
    readonly directories: Directories
    readonly maxBodyBytes: number
    /** Limit of the attempt, from connect to the body stored: a retryable `timeout` when it fires. */
    readonly timeoutMs?: number | undefined
  }
): Effect.Effect<Fetched, FetchFailure> =>
  Effect.async<Fetched, FetchFailure>((resume) => {
    const { url } = destination
    const secure = url.protocol === "https:"
    const owner = options.directories.owner
    const tmpPath = path.join(
      options.directories.tmp,
      owner === undefined ? `${randomUUID()}.part` : `${owner}.${randomUUID()}.part`
    )
    let settled = false
    let out: fs.WriteStream | undefined
    // A plain timer: a timeout fiber per attempt (`Effect.timeout`) costs more CPU than fetching a small body.
    let timer: ReturnType<typeof setTimeout> | undefined
    // Removes the partial body, then calls `done`: only once the write stream has closed (it may still be opening
    // the file), so that the file cannot reappear after the removal, and a process exiting right after an
    // interrupted or failed attempt leaves nothing in tmp/.
    const discard = (done: () => void) => {
      const remove = () => fs.rm(tmpPath, { force: true }, () => done())
      const stream = out
      if (stream === undefined || stream.closed) return remove()
      stream.once("close", remove)
      stream.destroy()
    }
    const settle = (effect: Effect.Effect<Fetched, FetchFailure>) => {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      resume(effect)
    }
    const fail = (error: FetchFailure) => {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      discard(() => resume(Effect.fail(error)))
    }
    const request = (secure ? https : http).request({
      host: destination.address,
      family: destination.family,
      port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: "GET",
      servername: secure ? destination.host : undefined,
      agent: secure ? agents.https : agents.http,
      headers: { host: url.host, "user-agent": "harvest/0.1", "accept-encoding": "identity" }
    })
    request.on("error", (error) => fail(failure("network", error.message, true)))
    request.on("response", (response) => {
      const status = response.statusCode ?? 0
      if (status < 200 || status >= 300) {
        response.resume()
        const retryable = status === 408 || status === 429 || status >= 500
        const retryAfter = Option.getOrUndefined(
          RetryAfter.parseHeader(response.headers["retry-after"] as string | undefined, Date.now())
        )
        return fail(failure("http_status", `HTTP ${status}`, retryable, { httpStatus: status, retryAfter }))
      }
      const declared = Number(response.headers["content-length"] ?? "NaN")
      if (Number.isFinite(declared) && declared > options.maxBodyBytes) {
        request.destroy()
        return fail(failure("body_too_large", `body of ${declared} bytes exceeds ${options.maxBodyBytes}`, false, {
          httpStatus: status
        }))
      }
      const hash = createHash("sha256")
      let bytes = 0
      const file = fs.createWriteStream(tmpPath)
      out = file
      file.on("error", (error) => fail(failure("network", `writing the body: ${error.message}`, true)))
      response.on("data", (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes > options.maxBodyBytes) {
          request.destroy()
          return fail(failure("body_too_large", `body exceeds ${options.maxBodyBytes} bytes`, false, {
            httpStatus: status
          }))
        }
        hash.update(chunk)
        if (!file.write(chunk)) {
          response.pause()
          file.once("drain", () => response.resume())
        }
      })
      response.on("error", (error) => fail(failure("network", error.message, true)))
      response.on("aborted", () => fail(failure("network", "connection closed before the body ended", true)))
      response.on("end", () => {
        if (settled) return
        if (!response.complete) return fail(failure("network", "connection closed before the body ended", true))
        file.end(() => {
          if (settled) return
          const sha256 = hash.digest("hex")
          // Content-addressed: a complete body is renamed into place atomically, so no reader sees a partial file.
          const fileId = sha256
          fs.rename(tmpPath, path.join(options.directories.files, fileId), (error) => {
            if (error !== null) return fail(failure("network", `storing the body: ${error.message}`, true))
            settle(Effect.succeed({ httpStatus: status, bytes, sha256, fileId }))
          })
        })
      })
    })
    request.end()
    if (options.timeoutMs !== undefined) {
      const limit = Duration.millis(options.timeoutMs)
      timer = setTimeout(() => {
        request.destroy()
        fail(failure("timeout", `Attempt timed out after ${Duration.format(limit)}`, true))
      }, options.timeoutMs)
    }
    return Effect.async<void>((removed) => {
      if (timer !== undefined) clearTimeout(timer)
      settled = true
      request.destroy()
      discard(() => removed(Effect.void))
    })
  })

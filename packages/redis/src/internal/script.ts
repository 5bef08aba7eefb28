import type { Redis } from "ioredis"
import { createHash } from "node:crypto"

/**
 * A Lua script called by its SHA-1 (`EVALSHA`): the source crosses the wire only the first time, and again after
 * the server's script cache was flushed (a restart, `SCRIPT FLUSH`), when the server answers `NOSCRIPT` and `EVAL`
 * loads it back. Sending a 1 KB script with every decision halved the decisions a connection could make.
 *
 * @internal
 */
export const make = (source: string) => {
  const sha = createHash("sha1").update(source).digest("hex")
  return (redis: Redis, keys: number, ...args: Array<string | number>): Promise<unknown> =>
    redis.evalsha(sha, keys, ...args).catch((error: unknown) =>
      error instanceof Error && error.message.startsWith("NOSCRIPT")
        ? redis.eval(source, keys, ...args)
        : Promise.reject(error)
    )
}

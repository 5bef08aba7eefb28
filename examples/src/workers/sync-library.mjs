// Synchronous calls standing in for a library that has no asynchronous version. Plain JavaScript, so a worker thread
// can import this module without a TypeScript loader; the examples also import it to make the same calls inline.
import { pbkdf2Sync } from "node:crypto"
import { gzipSync } from "node:zlib"

/**
 * Spins for `ms` milliseconds without yielding: what a synchronous call (a `time.sleep`, a blocking driver, a
 * `*Sync` file call on a slow disk) does to the thread that makes it. Returns how long it actually ran.
 *
 * `heartbeat`, if given, is counted up as it spins: shared memory (a `SharedArrayBuffer` is shared with a worker,
 * not copied), so the caller can see from its own thread whether the call is still running.
 *
 * @param {number} ms
 * @param {Int32Array} [heartbeat]
 * @returns {{ requestedMs: number, ranMs: number }}
 */
export const busyWait = (ms, heartbeat) => {
  const start = performance.now()
  while (performance.now() - start < ms) {
    // spin: nothing else on this thread runs meanwhile
    if (heartbeat !== undefined) Atomics.add(heartbeat, 0, 1)
  }
  return { requestedMs: ms, ranMs: Math.round(performance.now() - start) }
}

/**
 * Compresses `data` with zlib, synchronously. A `Buffer` sent to a worker arrives as a `Uint8Array`, which
 * `gzipSync` accepts; the `Buffer` it returns comes back as a `Uint8Array` too.
 *
 * @param {Uint8Array} data
 * @param {number} [level]
 * @returns {Uint8Array}
 */
export const gzip = (data, level = 9) => gzipSync(data, { level })

/**
 * Derives a 32-byte key from a password with PBKDF2-SHA512, synchronously: the whole computation is one native
 * call, which holds its thread for as long as `iterations` takes.
 *
 * @param {string} password
 * @param {string} salt
 * @param {number} iterations
 * @returns {string} the key, hex-encoded
 */
export const deriveKey = (password, salt, iterations) =>
  pbkdf2Sync(password, salt, iterations, 32, "sha512").toString("hex")

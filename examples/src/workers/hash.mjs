// CPU-bound functions for the CpuPool example, run on worker threads (and inline, for comparison). Plain JavaScript,
// so worker threads load it without a TypeScript loader.
import { createHash } from "node:crypto"

/**
 * Hashes `seed` with SHA-256 `rounds` times, each round hashing the previous hex digest: pure CPU work with a result
 * anyone can check.
 *
 * @param {string} seed
 * @param {number} rounds
 * @returns {string} the last digest, hex-encoded
 */
export const hashRounds = (seed, rounds) => {
  let digest = seed
  for (let i = 0; i < rounds; i++) digest = createHash("sha256").update(digest).digest("hex")
  return digest
}

/**
 * The typed task: receives the encoded request, answers a plain object that the caller decodes. It trusts its
 * input no more than any worker should, so a request that skipped validation fails loudly here.
 *
 * @param {{ seed: string, rounds: number }} request
 * @returns {{ seed: string, rounds: number, hex: string }}
 */
export const digest = (request) => {
  if (!Number.isInteger(request.rounds) || request.rounds < 1) throw new Error(`bad rounds: ${request.rounds}`)
  return { seed: request.seed, rounds: request.rounds, hex: hashRounds(request.seed, request.rounds) }
}

// Seed patterns: "CPU-bound work in a process pool" and "Threading vs Async vs Multiprocessing" — CpuPool for CPU work.
import { Blocking, CpuPool, EventLoopMonitor } from "@spindle/node"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { pathToFileURL } from "node:url"
import { hashRounds } from "./workers/hash.mjs"

const hashModule = new URL("./workers/hash.mjs", import.meta.url)
const syncLibrary = new URL("./workers/sync-library.mjs", import.meta.url)

/**
 * The inputs of the CPU tasks: `count` seeds.
 */
export const seedsOf = (count: number): Array<string> => Array.from({ length: count }, (_, i) => `seed-${i}`)

/**
 * The CPU work done on the event loop's own thread, one task after another. Correct, and no slower than it has to
 * be on one core; but while it runs nothing else in the process does, and the seed's async wrapper around CPU work
 * changes nothing about that.
 */
export const hashAllInline = (seeds: ReadonlyArray<string>, rounds: number): Effect.Effect<Array<string>> =>
  Effect.forEach(seeds, (seed) => Effect.sync(() => hashRounds(seed, rounds)))

/**
 * The same work on the pool (the seed's `ProcessPoolExecutor`): each task is handed to an idle worker thread, the
 * rest wait in the pool's queue in arrival order, so asking for all of them at once is fine. Results come back in
 * input order. Worker threads share the process (no pickling of a whole interpreter's state, no fork), and their
 * arguments and results are copied by structured clone.
 */
export const hashAllOnPool = (
  pool: CpuPool.CpuPool,
  seeds: ReadonlyArray<string>,
  rounds: number
): Effect.Effect<Array<string>, CpuPool.CpuTaskError> =>
  Effect.forEach(seeds, (seed) => pool.run<string>(hashModule, "hashRounds", seed, rounds), {
    concurrency: "unbounded"
  })

/**
 * A typed task's request: validated (and encoded) on this side, before it crosses to a worker.
 */
export const HashRequest = Schema.Struct({
  seed: Schema.String,
  rounds: Schema.Int.pipe(Schema.between(1, 10_000_000))
})

/**
 * A typed task's response. A class instance cannot cross a thread boundary (structured clone keeps the data, not
 * the prototype): the worker answers a plain object, and decoding it builds the `Digest`, after checking it.
 */
export class Digest extends Schema.Class<Digest>("Digest")({
  seed: Schema.String,
  rounds: Schema.Int,
  hex: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))
}) {
  get short(): string {
    return this.hex.slice(0, 12)
  }
}

/**
 * The typed version of the task, with `pool.task`: a bad request fails with a `ParseError` here, without costing a
 * worker anything, and a malformed answer fails with one too instead of travelling on as `unknown`.
 */
export const digestTask = (
  pool: CpuPool.CpuPool
): (request: typeof HashRequest.Type) => Effect.Effect<Digest, CpuPool.CpuTaskError | ParseResult.ParseError> =>
  pool.task({ module: hashModule, exportName: "digest", request: HashRequest, response: Digest })

/**
 * What a piece of work cost, and what it did to the event loop meanwhile.
 */
export interface Measured<A> {
  readonly result: A
  readonly elapsedMs: number
  /** The longest any timer callback was late while the work ran. */
  readonly loopDelayMs: number
}

/**
 * Runs `work` with an `EventLoopMonitor` sampled just before and just after it.
 */
export const measured = <A, E>(work: Effect.Effect<A, E>): Effect.Effect<Measured<A>, E> =>
  Effect.scoped(Effect.gen(function*() {
    // The warning log is loop-monitor.ts's subject; here only the numbers matter.
    const monitor = yield* EventLoopMonitor.make({
      sampleInterval: "1 hour",
      resolution: "5 millis",
      blockedThreshold: "1 hour"
    })
    yield* Effect.sleep("20 millis")
    yield* monitor.sample
    const [took, result] = yield* Effect.timed(work)
    yield* Effect.sleep("20 millis")
    const snapshot = yield* monitor.sample
    return { result, elapsedMs: Math.round(Duration.toMillis(took)), loopDelayMs: snapshot.lastMaxMs }
  }))

/**
 * The three kinds of work of the seed's decision tree, all at once, each on its tool.
 */
export interface MixedResult {
  /** I/O-bound: many waits, each on a fiber (a network call would wait the same way). */
  readonly responses: Array<string>
  /** A blocking library call with no async version: `gzipSync`, through `Blocking.call`. */
  readonly compressedBytes: number
  /** CPU-bound: hashing, on the pool. */
  readonly digests: Array<string>
}

/**
 * Runs I/O on fibers, a blocking call on its own thread and CPU tasks on the pool, concurrently. None of it holds
 * the event loop, so the I/O fibers are resumed on time while the threads compute.
 */
export const mixedWorkload = (
  pool: CpuPool.CpuPool,
  options: { readonly requests: number; readonly seeds: ReadonlyArray<string>; readonly rounds: number }
): Effect.Effect<MixedResult, CpuPool.CpuTaskError | Blocking.BlockingCallError> =>
  Effect.all({
    responses: Effect.forEach(
      Array.from({ length: options.requests }, (_, i) => i),
      (i) => Effect.as(Effect.sleep("50 millis"), `response ${i}`),
      { concurrency: "unbounded" }
    ),
    compressedBytes: Effect.map(
      Blocking.call<Uint8Array>(syncLibrary, "gzip", Buffer.from("spindle ".repeat(500_000))),
      (zipped) => zipped.length
    ),
    digests: hashAllOnPool(pool, options.seeds, options.rounds)
  }, { concurrency: "unbounded" })

/**
 * The runnable demo: 8 hashing tasks inline and on a pool of 2 threads, a typed task, and the mixed workload.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const seeds = seedsOf(8)
  const rounds = 40_000
  const pool = yield* CpuPool.make({ size: 2, name: "cpu-pool-example" })
  // Start the workers and load the module, so the timing below is the work's.
  yield* pool.run(hashModule, "hashRounds", "warm-up", 1)
  const inline = yield* measured(hashAllInline(seeds, rounds))
  const pooled = yield* measured(hashAllOnPool(pool, seeds, rounds))
  yield* Console.log(`${seeds.length} tasks of ${rounds} SHA-256 rounds:`)
  yield* Console.log(
    `  inline:           ${inline.elapsedMs} ms, event loop delay ${Math.round(inline.loopDelayMs)} ms`
  )
  yield* Console.log(
    `  CpuPool (size 2): ${pooled.elapsedMs} ms, event loop delay ${Math.round(pooled.loopDelayMs)} ms; ` +
      `same results: ${pooled.result.every((digest, i) => digest === inline.result[i])}`
  )
  const digest = yield* digestTask(pool)({ seed: "typed", rounds: 1000 })
  yield* Console.log(`typed task: Digest ${digest.short}… (a Digest instance: ${digest instanceof Digest})`)
  const rejected = yield* Effect.flip(digestTask(pool)({ seed: "typed", rounds: 0 }))
  yield* Console.log(`typed task with rounds 0: ${rejected._tag}, rejected before reaching a worker`)
  const mixed = yield* measured(mixedWorkload(pool, { requests: 20, seeds, rounds }))
  yield* Console.log(
    `mixed: ${mixed.result.responses.length} I/O waits on fibers, gzipSync on a thread ` +
      `(${mixed.result.compressedBytes} bytes), ${mixed.result.digests.length} hashes on the pool: ` +
      `${mixed.elapsedMs} ms, event loop delay ${Math.round(mixed.loopDelayMs)} ms`
  )
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

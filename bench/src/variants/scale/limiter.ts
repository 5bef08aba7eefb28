/**
 * Token-bucket decisions at scale: `--processes` worker processes (forked from this one, the coordinator) each run
 * `--concurrency` fibers that ask for one token in a loop for `--seconds`, all through Spindle's `TokenBucket` over
 * a `TokenBucketStore`, on one shared bucket of `--rate` per second and `--burst`.
 *
 *   --store=memory     `TokenBucketStore.makeMemory` (one process only: its state is the process's own)
 *   --store=redis      `@spindle/redis`'s `RedisTokenBucketStore` (one Lua script per decision)
 *   --store=ping       the floor: a `PING` over the same kind of ioredis connection, in the same fiber loop
 *   --store=evalsha    the floor for a script: `EVALSHA` of `return 1`, in the same fiber loop
 *
 * Each decision is `bucket.tryTake()` (never waits), timed from the call to its answer. The coordinator starts every
 * worker at the same instant, then adds up decisions and tokens granted, merges the latency histograms, and checks
 * the limit: the tokens granted over the whole run, by all processes together, must not exceed
 * `burst + rate × T`, T running from the first decision's start to the last one's end.
 *
 * `REDIS_URL` (default `redis://127.0.0.1:6379`) names the Redis; keys live under `spindle-bench:<pid>:<time>:` and
 * are deleted at the end.
 */
import { TokenBucket, TokenBucketStore } from "@spindle/core"
import { RedisTokenBucketStore } from "@spindle/redis"
import * as Effect from "effect/Effect"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { args, choiceArg, numberArg, runVariant } from "../../lib/child.js"
import { machineLoad } from "../../lib/fetchRun.js"
import * as Histogram from "../../lib/histogram.js"

const store = choiceArg("store", ["memory", "redis", "ping", "evalsha"])
const processes = numberArg("processes", 1)
const seconds = numberArg("seconds", 5)
const concurrency = numberArg("concurrency", 32)
const rate = numberArg("rate", 10_000)
const burst = numberArg("burst", 100)
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

interface WorkerResult {
  readonly decisions: number
  readonly granted: number
  readonly errors: number
  /** Epoch ms (with fractions) of the first decision's start and the last one's end. */
  readonly firstStart: number
  readonly lastEnd: number
  readonly latency: Array<number>
  readonly cpuMillis: number
  readonly redis?: { readonly version: string; readonly cpuSeconds: number } | undefined
}

const epoch = () => performance.timeOrigin + performance.now()

const redisCpu = (info: string) => {
  const value = (name: string) =>
    Number(/^(\w+):(.*)$/m.exec(info.split("\n").find((l) => l.startsWith(name)) ?? "")?.[2])
  return value("used_cpu_sys:") + value("used_cpu_user:")
}

const worker = (index: number, prefix: string) =>
  Effect.scoped(Effect.gen(function*() {
    const options = { limit: rate, interval: "1 second", burst, name: "bench" } as const
    const key = "shared"
    let decide: Effect.Effect<boolean, unknown>
    let warm: Effect.Effect<boolean, unknown>
    let redis: Effect.Effect.Success<ReturnType<typeof RedisTokenBucketStore.connect>> | undefined
    if (store === "memory") {
      const memory = yield* TokenBucketStore.makeMemory
      const bucket = (k: string) =>
        TokenBucket.fromStore({ ...options, key: k }).pipe(
          Effect.provideService(TokenBucketStore.TokenBucketStore, memory)
        )
      decide = (yield* bucket(key)).tryTake()
      warm = (yield* bucket(`${key}:warm-up`)).tryTake()
    } else {
      const client = yield* RedisTokenBucketStore.connect(redisUrl)
      redis = client
      if (store === "redis") {
        const shared = yield* RedisTokenBucketStore.make({ prefix }).pipe(
          Effect.provideService(RedisTokenBucketStore.RedisConnection, client)
        )
        const bucket = (k: string) =>
          TokenBucket.fromStore({ ...options, key: k }).pipe(
            Effect.provideService(TokenBucketStore.TokenBucketStore, shared)
          )
        decide = (yield* bucket(key)).tryTake()
        warm = (yield* bucket(`${key}:warm-up:${index}`)).tryTake()
      } else if (store === "ping") {
        decide = Effect.as(Effect.tryPromise(() => client.ping()), true)
        warm = decide
      } else {
        const sha = (yield* Effect.promise(() => client.script("LOAD", "return 1"))) as string
        decide = Effect.as(Effect.tryPromise(() => client.evalsha(sha, 0)), true)
        warm = decide
      }
    }
    for (let i = 0; i < 2_000; i++) yield* Effect.either(warm)
    const infoBefore = redis === undefined || index !== 0 ? "" : yield* Effect.promise(() => redis!.info())
    // Ready; wait for the common start.
    const startAt = yield* Effect.async<number>((resume) => {
      process.once("message", (message) => resume(Effect.succeed((message as { readonly startAt: number }).startAt)))
      process.send?.("ready")
    })
    yield* Effect.sleep(Math.max(0, startAt - epoch()))
    const latency = Histogram.make()
    const endAt = performance.now() + seconds * 1000
    let decisions = 0
    let granted = 0
    let errors = 0
    let firstStart = Number.POSITIVE_INFINITY
    let lastEnd = 0
    const cpuBefore = process.cpuUsage()
    const loop = Effect.gen(function*() {
      while (performance.now() < endAt) {
        const started = performance.now()
        const answer = yield* Effect.either(decide)
        const ended = performance.now()
        latency.record(ended - started)
        decisions++
        if (answer._tag === "Left") errors++
        else if (answer.right) granted++
        if (started < firstStart) firstStart = started
        if (ended > lastEnd) lastEnd = ended
      }
    })
    yield* Effect.forEach(Array.from({ length: concurrency }), () => loop, { concurrency: "unbounded", discard: true })
    const cpu = process.cpuUsage(cpuBefore)
    let redisFigures: WorkerResult["redis"]
    if (redis !== undefined && index === 0) {
      const infoAfter = yield* Effect.promise(() => redis!.info())
      redisFigures = {
        version: /redis_version:(\S+)/.exec(infoAfter)?.[1] ?? "unknown",
        cpuSeconds: redisCpu(infoAfter) - redisCpu(infoBefore)
      }
    }
    if (redis !== undefined) {
      const client = redis
      const keys = yield* Effect.promise(() => client.keys(`${prefix}*`))
      if (keys.length > 0) yield* Effect.promise(() => client.del(...keys))
    }
    return {
      decisions,
      granted,
      errors,
      firstStart: performance.timeOrigin + firstStart,
      lastEnd: performance.timeOrigin + lastEnd,
      latency: latency.counts,
      cpuMillis: (cpu.user + cpu.system) / 1000,
      redis: redisFigures
    } satisfies WorkerResult
  }))

const coordinate = async () => {
  if (store === "memory" && processes !== 1) throw new Error("the memory store serves one process only")
  const prefix = `spindle-bench:${process.pid}:${Date.now()}:`
  const script = fileURLToPath(import.meta.url)
  const children = Array.from(
    { length: processes },
    (_, index) =>
      fork(script, [...process.argv.slice(2), "--role=worker", `--index=${index}`, `--prefix=${prefix}`], {
        stdio: ["ignore", "ignore", "inherit", "ipc"]
      })
  )
  const ready = children.map((child) =>
    new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve())
      child.once("exit", (code) => reject(new Error(`a worker exited with code ${code} before it was ready`)))
    })
  )
  await Promise.all(ready)
  const results = children.map((child) =>
    new Promise<WorkerResult>((resolve, reject) => {
      child.removeAllListeners("exit")
      child.once("message", (message) => resolve(message as WorkerResult))
      child.once("exit", (code) => reject(new Error(`a worker exited with code ${code}`)))
    })
  )
  const startAt = Date.now() + 100
  for (const child of children) child.send({ startAt })
  const load = machineLoad()
  const all = await Promise.all(results)
  const { machineBusyPercent } = load.stop()
  for (const child of children) child.disconnect()
  const decisions = all.reduce((sum, r) => sum + r.decisions, 0)
  const granted = all.reduce((sum, r) => sum + r.granted, 0)
  const errors = all.reduce((sum, r) => sum + r.errors, 0)
  const firstStart = Math.min(...all.map((r) => r.firstStart))
  const lastEnd = Math.max(...all.map((r) => r.lastEnd))
  const windowMillis = lastEnd - firstStart
  const allowed = burst + (rate * windowMillis) / 1000
  const latency = Histogram.merge(all.map((r) => r.latency))
  const redis = all.find((r) => r.redis !== undefined)?.redis
  return {
    processes,
    concurrency,
    decisions,
    decisionsPerSec: decisions / (windowMillis / 1000),
    perProcessPerSec: all.map((r) => r.decisions / ((r.lastEnd - r.firstStart) / 1000)),
    granted,
    allowed,
    grantedPercentOfAllowed: (100 * granted) / allowed,
    overLimit: granted > allowed,
    errors,
    windowMillis,
    p50Ms: Histogram.percentile(latency, 50),
    p99Ms: Histogram.percentile(latency, 99),
    p999Ms: Histogram.percentile(latency, 99.9),
    workerCpuMillis: all.reduce((sum, r) => sum + r.cpuMillis, 0),
    redisVersion: redis?.version ?? null,
    redisCpuSeconds: redis?.cpuSeconds ?? null,
    machineBusyPercent
  }
}

if (args.get("role") === "worker") {
  Effect.runPromise(worker(numberArg("index", 0), args.get("prefix") ?? "spindle-bench:")).then(
    (result) => process.send?.(result),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
      process.exit(1)
    }
  )
  process.once("disconnect", () => process.exit(0))
} else {
  runVariant(coordinate)
}

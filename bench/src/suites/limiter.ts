/**
 * Benchmark 8: token-bucket decisions at scale. Spindle's `TokenBucket` over its store seam, in memory and in Redis
 * (`@spindle/redis`), from one process and from three sharing one Redis: decisions per second, latency of a
 * decision, and the shared limit holding while it is measured. PEERS.md names no peer for a shared limiter, so the
 * floor is the plain Redis round trip over the same ioredis connection, in the same fiber loop.
 */
import { existsSync, readFileSync } from "node:fs"
import { field, num, percent, perSecond, ratio, table, verdict } from "../lib/report.js"
import { byId, type Measured, med, values, type Variant, variant } from "../lib/suite.js"

export interface Sizes {
  readonly seconds: number
}

const rate = 10_000
const burst = 100
const fibers = 32

export const variants = (sizes: Sizes): ReadonlyArray<Variant> => {
  const make = (id: string, label: string, store: string, processes: number, concurrency: number) =>
    variant(id, label, "limiter", [
      `--store=${store}`,
      `--processes=${processes}`,
      `--concurrency=${concurrency}`,
      `--seconds=${sizes.seconds}`,
      `--rate=${rate}`,
      `--burst=${burst}`
    ], { timeoutMillis: sizes.seconds * 1000 + 60_000, spindle: store === "memory" || store === "redis" })
  return [
    make("memory-1", "Spindle `TokenBucket` over `TokenBucketStore.layerMemory`", "memory", 1, fibers),
    make("redis-1-seq", "Spindle `TokenBucket` over `RedisTokenBucketStore`", "redis", 1, 1),
    make("redis-1", "Spindle `TokenBucket` over `RedisTokenBucketStore`", "redis", 1, fibers),
    make("redis-3", "Spindle `TokenBucket` over `RedisTokenBucketStore`", "redis", 3, fibers),
    make("ping-1-seq", "floor: `PING` over the same ioredis connection", "ping", 1, 1),
    make("ping-1", "floor: `PING` over the same ioredis connection", "ping", 1, fibers),
    make("ping-3", "floor: `PING` over the same ioredis connection", "ping", 3, fibers),
    make("evalsha-1", "floor: `EVALSHA` of `return 1`", "evalsha", 1, fibers),
    make("evalsha-3", "floor: `EVALSHA` of `return 1`", "evalsha", 3, fibers)
  ]
}

/** What the investigation found, written by hand in `lib/limiter-findings.md` and read when the section is written. */
const findings = (): Array<string> => {
  const file = new URL("../lib/limiter-findings.md", import.meta.url)
  return existsSync(file) ? ["", readFileSync(file, "utf8").trim()] : []
}

const arg = (m: Measured, name: string) => Number(m.args.find((a) => a.startsWith(`--${name}=`))?.split("=")[1])

const ms = (value: number) => (value < 0.1 ? `${num(value * 1000, 0)} µs` : `${num(value, 2)} ms`)

export const section = (measured: ReadonlyArray<Measured>, sizes: Sizes): string => {
  const rateOf = (m: Measured) => med(m, "decisionsPerSec")
  const floorFor = (m: Measured) => {
    const processes = arg(m, "processes")
    const concurrency = arg(m, "concurrency")
    return measured.find((f) =>
      f.id.startsWith("ping") && arg(f, "processes") === processes && arg(f, "concurrency") === concurrency
    )
  }
  const limited = (m: Measured) => m.spindle
  const overRuns = (m: Measured) => values(m).filter((v) => v.overLimit === true).length
  const rows = measured.map((m) => {
    const floor = floorFor(m)
    return [
      m.label,
      num(arg(m, "processes")),
      num(arg(m, "concurrency")),
      perSecond(rateOf(m)),
      floor === undefined || m.id.startsWith("memory") ? "–" : ratio(rateOf(m) / rateOf(floor)),
      ms(med(m, "p50Ms")),
      ms(med(m, "p99Ms")),
      limited(m) ? percent(med(m, "grantedPercentOfAllowed"), 1) : "–",
      limited(m) ? values(m).map((v) => (v.overLimit === true ? "**over**" : "0")).join(" · ") : "–",
      num(med(m, "errors")),
      m.id.startsWith("memory") ? "–" : num(med(m, "redisCpuSeconds"), 2),
      num(med(m, "workerCpuMillis") / 1000, 2),
      percent(med(m, "machineBusyPercent"), 0),
      values(m).map((v) => perSecond(field(v, "decisionsPerSec"))).join(" · ")
    ]
  })
  const memory = byId(measured, "memory-1")
  const redis1 = byId(measured, "redis-1")
  const redis3 = byId(measured, "redis-3")
  const ping1 = byId(measured, "ping-1")
  const ping3 = byId(measured, "ping-3")
  const evalsha1 = byId(measured, "evalsha-1")
  const seq = byId(measured, "redis-1-seq")
  const pingSeq = byId(measured, "ping-1-seq")
  const spindle = measured.filter(limited)
  const correct = spindle.every((m) => overRuns(m) === 0 && values(m).length > 0)
  const version = values(redis1)[0]?.redisVersion
  const goals = [
    `- Correctness (the goal): over every round of every Spindle row, the tokens granted never exceeded ` +
    `burst + rate × T: ${verdict(correct)}${
      correct ? "" : ` (${spindle.filter((m) => overRuns(m) > 0).map((m) => m.id).join(", ")} went over)`
    }. With three processes on one Redis, ${percent(med(redis3, "grantedPercentOfAllowed"), 1)} of the allowance ` +
    "was granted: the limit binds and holds across processes.",
    `- Throughput: one process makes ${perSecond(rateOf(redis1))} Redis decisions/s with ${fibers} fibers, ` +
    `${ratio(rateOf(redis1) / rateOf(ping1))} the \`PING\` floor and ${
      ratio(rateOf(redis1) / rateOf(evalsha1))
    } a trivial \`EVALSHA\`; three processes together make ${perSecond(rateOf(redis3))}/s (${
      ratio(rateOf(redis3) / rateOf(ping3))
    } their floor, ${ratio(rateOf(redis3) / rateOf(redis1))} one process). The in-memory store makes ${
      perSecond(rateOf(memory))
    }/s, ${ratio(rateOf(memory) / rateOf(redis1))} Redis from one process.`,
    `- Latency: one decision at a time costs ${ms(med(seq, "p50Ms"))} at the median and ${
      ms(med(seq, "p99Ms"))
    } at p99 in Redis (\`PING\`: ${ms(med(pingSeq, "p50Ms"))} and ${ms(med(pingSeq, "p99Ms"))}); in memory ${
      ms(med(memory, "p50Ms"))
    } at the median.`
  ]
  return [
    `## 8. Limiters at scale: token-bucket decisions, ${rate.toLocaleString("en-US")}/s burst ${burst}, ` +
    `${sizes.seconds} s per run`,
    "",
    table(
      [
        "variant",
        "processes",
        "fibers / process",
        "decisions/s (all processes)",
        "× PING floor",
        "p50",
        "p99",
        "granted / allowed",
        "over the limit (per round)",
        "errors",
        "Redis CPU s",
        "client CPU s",
        "machine busy",
        "rounds"
      ],
      rows
    ),
    "",
    ...goals,
    ...findings(),
    "",
    "How it is measured. Each row is one coordinator process that forks its worker processes; every worker builds " +
    "its bucket (`TokenBucket.fromStore({ key, limit: 10000, interval: \"1 second\", burst: 100 })` over the " +
    "store), makes 2,000 warm-up decisions on a bucket of its own, reports ready, and starts at an instant the " +
    `coordinator sets for all. It then runs its fibers for ${sizes.seconds} s, each calling \`bucket.tryTake()\` ` +
    "(a decision that never waits: take a token now or say no) in a loop and timing each call with " +
    "`performance.now()` into a logarithmic histogram (2 % buckets). *decisions/s* is all the workers' decisions " +
    "divided by T, the time from the first decision's start to the last one's end, across processes; p50 and p99 " +
    "come from the merged histograms. *granted / allowed* is the tokens granted by all processes together " +
    "against the most the limit allows over T (`burst + rate × T`); *over the limit* marks a round that granted " +
    "more. The floors run the same loop with `Effect.tryPromise(() => redis.ping())` or `redis.evalsha(sha, 0)` " +
    "in place of the decision, over a connection made by `RedisTokenBucketStore.connect`, so the difference to " +
    "the Redis store is the store's own cost: its Lua script (sent with `EVAL`), the gate of `TokenBucket` and " +
    "the store's reply decoding. *Redis CPU s* is the server's CPU time over the run (`INFO cpu`), *client CPU s* " +
    "the workers', *machine busy* the share of both cores busy during the run (from `/proc/stat`; other work " +
    "shares this machine). The memory store is measured from one process only: its state is the process's own. " +
    `Redis ${version ?? "(version unknown)"} on this machine, reached over loopback TCP.`
  ].join("\n")
}

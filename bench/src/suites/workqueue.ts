/**
 * Benchmark 5: work-queue throughput, items through a bounded buffer to 8 consumers, and peak RSS.
 */
import { existsSync, readFileSync } from "node:fs"
import * as Os from "node:os"
import { field, num, perSecond, ratio, table, verdict } from "../lib/report.js"
import { byId, type Measured, med, values, type Variant, variant } from "../lib/suite.js"

export interface Sizes {
  readonly items: number
}

const capacity = 100
const workers = 8

/** The peers the goal names: p-queue and a hand-written `Queue.bounded` with workers in plain Effect. */
const goalPeers = ["p-queue", "effect", "effect-forever"]

/**
 * What the investigation of this benchmark found (profiles, experiments), written by hand in
 * `lib/workqueue-findings.md` and read when the section is written: it explains the figures, it does not compute
 * them.
 */
const handWritten = (): Array<string> => {
  const file = new URL("../lib/workqueue-findings.md", import.meta.url)
  return existsSync(file) ? ["", readFileSync(file, "utf8").trim()] : []
}

export const variants = (sizes: Sizes): ReadonlyArray<Variant> => {
  const common = [`--n=${sizes.items}`, `--capacity=${capacity}`, `--workers=${workers}`]
  const make = (id: string, label: string, file: "workqueue-effect" | "workqueue-peers", name: string) =>
    variant(id, label, file, [`--variant=${name}`, ...common], { timeoutMillis: 180_000, spindle: id === "spindle" })
  return [
    make(
      "spindle",
      `Spindle \`WorkQueue.make({ capacity: ${capacity}, workers: ${workers}, process })\`, \`offerAll(generator)\` ▸ ` +
        "`drain`",
      "workqueue-effect",
      "spindle"
    ),
    make(
      "spindle-priority",
      "Spindle the same queue, each item `offer(i, { priority: i % 3 })` ▸ `drain`",
      "workqueue-effect",
      "spindle-priority"
    ),
    make(
      "effect",
      `Effect \`Queue.bounded(${capacity})\` + ${workers} fibers taking in \`Effect.whileLoop\`, counter + \`Deferred\``,
      "workqueue-effect",
      "effect"
    ),
    make(
      "effect-forever",
      `Effect the same, each consumer \`Effect.forever(take ▸ process)\``,
      "workqueue-effect",
      "effect-forever"
    ),
    make(
      "p-queue",
      `p-queue \`concurrency: ${workers}\`, fed through \`onSizeLessThan(${capacity})\``,
      "workqueue-peers",
      "p-queue"
    ),
    make(
      "p-queue-priority",
      "p-queue the same, each item `add(work, { priority: i % 3 })`",
      "workqueue-peers",
      "p-queue-priority"
    ),
    make(
      "channel",
      `hand-rolled bounded channel (ring of ${capacity}), ${workers} async consumer loops`,
      "workqueue-peers",
      "channel"
    )
  ]
}

/** A numeric field of each round, in round order (`NaN` for a round that failed), so that rounds can be paired. */
const perRound = (m: Measured, name: string): ReadonlyArray<number> =>
  m.outcomes.map((outcome) => (outcome._tag === "Ok" ? field(outcome.value, name) : Number.NaN))

/** Whether every round has a ratio and each passes: a failed round is a round the goal was not shown to hold. */
const everyRound = (ratios: ReadonlyArray<number>, ok: (ratio: number) => boolean): boolean =>
  ratios.length > 0 && ratios.every((r) => Number.isFinite(r) && ok(r))

/** Issue 18's goals: items/s against p-queue's in every round, and peak RSS against p-queue's. */
const minThroughput = 2
const maxPeakRss = 1.2

export const section = (measured: ReadonlyArray<Measured>, sizes: Sizes): string => {
  const rate = (m: Measured) => med(m, "itemsPerSec")
  const spindle = byId(measured, "spindle")
  const pQueue = byId(measured, "p-queue")
  const channel = byId(measured, "channel")
  const spindlePriority = byId(measured, "spindle-priority")
  const pQueuePriority = byId(measured, "p-queue-priority")
  const peers = goalPeers.map((id) => byId(measured, id))
  const fastest = peers.reduce((best, m) => (rate(m) > rate(best) ? m : best), peers[0])
  const rows = measured.map((m) => [
    m.label,
    num(med(m, "n")),
    perSecond(rate(m)),
    ratio(rate(m) / rate(pQueue)),
    ratio(rate(m) / rate(fastest)),
    num(med(m, "baselineRssMb")),
    num(med(m, "peakRssMb")),
    values(m).map((value) => perSecond(Number(value.itemsPerSec))).join(" · ")
  ])
  const versusPQueue = rate(spindle) / rate(pQueue)
  const versusFastest = rate(spindle) / rate(fastest)
  // The rounds are interleaved (every variant once, then all again), so round i of Spindle ran beside round i of
  // p-queue, on the same machine in the same minute: the ratio of each pair is the fair one to hold to the goal.
  const pairOf = (ours: Measured, theirs: Measured, name: string) => {
    const mine = perRound(ours, name)
    const other = perRound(theirs, name)
    return mine.map((value, round) => value / other[round])
  }
  const pair = (name: string) => pairOf(spindle, pQueue, name)
  const rateRounds = pair("itemsPerSec")
  const rssRounds = pair("peakRssMb")
  const rssVersusPQueue = med(spindle, "peakRssMb") / med(pQueue, "peakRssMb")
  const rounds = (ratios: ReadonlyArray<number>) => ratios.map(ratio).join(" · ")
  const goals = [
    `- Spindle \`WorkQueue\` reaches ${ratio(versusPQueue)} p-queue's items/s (medians); round by round, each ` +
    `beside the p-queue round run with it: ${rounds(rateRounds)}. Issue 18's goal is ≥ ${minThroughput}× in every ` +
    `round: ${verdict(everyRound(rateRounds, (r) => r >= minThroughput))}.`,
    `- Spindle's peak RSS is ${num(med(spindle, "peakRssMb"))} MB, ${ratio(rssVersusPQueue)} p-queue's ` +
    `${num(med(pQueue, "peakRssMb"))} MB (medians); round by round: ${rounds(rssRounds)}. Issue 18's goal is ` +
    `≤ ${maxPeakRss}× in every round: ${verdict(everyRound(rssRounds, (r) => r <= maxPeakRss))}.`,
    `- Spindle \`WorkQueue\` reaches ${ratio(versusFastest)} the fastest of p-queue and the hand-written Effect ` +
    `queue (${fastest.id === "p-queue" ? "p-queue" : "the Effect queue"}); the earlier goal was within 1.5× of ` +
    `it, i.e. ≥ 0.67×: ${verdict(versusFastest * 1.5 >= 1)}. PEERS.md's target, ≥ 1.5× p-queue's items/s ` +
    `(medians): ${verdict(versusPQueue >= 1.5)}.`,
    `- Not a goal: the hand-rolled channel runs ${ratio(rate(channel) / rate(spindle))} as fast as Spindle.`,
    `- Priorities (not a goal): with every item offered alone at priority 0, 1 or 2 in turn, Spindle runs ` +
    `${perSecond(rate(spindlePriority))} items/s, ${ratio(rate(spindlePriority) / rate(pQueuePriority))} p-queue's ` +
    `${perSecond(rate(pQueuePriority))} with the same priorities (medians; round by round: ` +
    `${rounds(pairOf(spindlePriority, pQueuePriority, "itemsPerSec"))}).`
  ]
  // The 1-minute load average when the section is written covers most of this benchmark's run: on a shared
  // machine it says whether the figures were taken beside other work.
  const load = Os.loadavg()[0]
  const findings = [
    `Per item, Spindle took ${num(1e9 / rate(spindle))} ns and p-queue ${num(1e9 / rate(pQueue))} ns (medians, ` +
    "wall clock over the whole run of a fresh process, the JIT's warm-up included). The machine's load average " +
    `over the minute before this section was written was ${num(load, 2)} on ${Os.cpus().length} cores` +
    (load >= 1 ? ": other work ran beside the benchmark, which slows every variant, not all of them alike." : ".")
  ]
  return [
    `## 5. Work queue: ${num(sizes.items)} items, ${workers} consumers, capacity ${capacity}`,
    "",
    table(
      [
        "variant",
        "items",
        "items/s (median)",
        "× p-queue",
        "× fastest goal peer",
        "idle RSS MB",
        "peak RSS MB",
        "rounds"
      ],
      rows
    ),
    "",
    ...goals,
    "",
    ...findings,
    ...handWritten(),
    "",
    `How it is measured. Each variant pushes ${num(sizes.items)} items from one producer through a buffer of ` +
    `${capacity} to ${workers} consumers; the work is a synchronous counter increment (\`Effect.sync\` for the ` +
    "Effect variants, a plain function for the others), and the run ends when every item has been processed, " +
    "which each variant checks against the counter. The clock covers creating the queue and its consumers, " +
    "producing, and completion. Spindle is fed with `offerAll` over a lazy generator and finishes with `drain`. " +
    "The hand-written Effect queue has one producer fiber offering each item (`Queue.offer` suspends while the " +
    "queue is full) and consumers that take in a loop; the consumer that processes the last item completes a " +
    "`Deferred` the program awaits, then the consumers are interrupted. It is measured twice: consumers written " +
    "with `Effect.whileLoop`, and with `Effect.forever`, which yields the thread after every item " +
    "(`forever` is `flatMap(self, yieldNow)` in a loop) and is what an Effect user most often writes. p-queue is " +
    `fed with backpressure (\`await queue.onSizeLessThan(${capacity})\` whenever ${capacity} items wait, its ` +
    "README's pattern), then `onIdle()`. The hand-rolled channel is a ring buffer with a list of waiting " +
    "consumers and one of waiting producers, whose `put` and `take` answer at once when they can and return a " +
    "promise only when they must wait. The two priority variants feed the same queues one item at a time, " +
    "each item with priority 0, 1 and 2 in turn (higher first): Spindle through `offer(i, { priority })` in an " +
    "`Effect.whileLoop` (not `offerAll`, whose items share one priority), so an offer costs it an effect of its " +
    "own; p-queue through `add(work, { priority })` with the same backpressure. *× fastest goal peer* compares with the fastest of p-queue and the two " +
    "Effect queues, the peers the issue names. Each variant runs once per round in a fresh process, so every " +
    "figure includes the JIT's warm-up; peak RSS is the highest of the sampled RSS and the kernel's high-water mark."
  ].join("\n")
}

/**
 * Benchmark 4: the overhead per call of retry + circuit breaker (+ timeout) around a successful async no-op.
 */
import { num, ratio, table, verdict } from "../lib/report.js"
import { byId, type Measured, med, values, type Variant, variant } from "../lib/suite.js"

export interface Sizes {
  readonly calls: number
  readonly warmup: number
}

/** What a row is compared with: its bare baseline, and the cockatiel stack its overhead is divided by. */
interface Kind {
  readonly baseline: "bare-await" | "bare-effect"
  readonly pair: "cockatiel" | "cockatiel-timeout" | undefined
}

const kinds: Readonly<Record<string, Kind>> = {
  "bare-await": { baseline: "bare-await", pair: undefined },
  "bare-effect": { baseline: "bare-effect", pair: undefined },
  spindle: { baseline: "bare-effect", pair: "cockatiel" },
  "spindle-timeout": { baseline: "bare-effect", pair: "cockatiel-timeout" },
  "effect-timeout": { baseline: "bare-effect", pair: "cockatiel-timeout" },
  cockatiel: { baseline: "bare-await", pair: "cockatiel" },
  "cockatiel-timeout": { baseline: "bare-await", pair: "cockatiel-timeout" },
  "p-retry": { baseline: "bare-await", pair: "cockatiel" },
  deadline: { baseline: "bare-effect", pair: "cockatiel-timeout" },
  "effect-timeout-only": { baseline: "bare-effect", pair: "cockatiel-timeout" }
}

/** Targets of PEERS.md, in nanoseconds of overhead per call. */
const TARGET_NS = { withTimeout: 2_000, withoutTimeout: 400 }

export const variants = (sizes: Sizes): ReadonlyArray<Variant> => {
  const common = [`--n=${sizes.calls}`, `--warmup=${sizes.warmup}`]
  const make = (id: string, label: string, file: "resilience-effect" | "resilience-peers", name: string) =>
    variant(id, label, file, [`--variant=${name}`, ...common], {
      timeoutMillis: 120_000,
      spindle: id.startsWith("spindle")
    })
  return [
    make("bare-await", "bare `await noop()` (`async () => 1`)", "resilience-peers", "bare"),
    make("bare-effect", "bare Effect `Effect.promise(() => Promise.resolve(1))`", "resilience-effect", "bare"),
    make(
      "spindle",
      "Spindle `RetryPolicy.make({ maxAttempts: 3 })(breaker.run(noop))`, `consecutiveFailures(5)`",
      "resilience-effect",
      "spindle"
    ),
    make(
      "spindle-timeout",
      "Spindle the same around `Deadline.attempt(noop, \"1 second\")`",
      "resilience-effect",
      "spindle-timeout"
    ),
    make(
      "effect-timeout",
      "Effect `noop ▸ timeout(\"1 second\") ▸ retry(exponential(\"100 millis\") ▸ jittered ▸ compose(recurs(3)))`",
      "resilience-effect",
      "effect-timeout"
    ),
    make("cockatiel", "cockatiel `wrap(retry, breaker)`", "resilience-peers", "cockatiel"),
    make(
      "cockatiel-timeout",
      "cockatiel `wrap(retry, breaker, timeout(1000, TimeoutStrategy.Cooperative))`",
      "resilience-peers",
      "cockatiel-timeout"
    ),
    make("p-retry", "`pRetry(noop, { retries: 3 })`", "resilience-peers", "p-retry"),
    make("deadline", "(cause) Spindle `Deadline.attempt(noop, \"1 second\")` alone", "resilience-effect", "deadline"),
    make(
      "effect-timeout-only",
      "(cause) Effect `Effect.timeout(noop, \"1 second\")` alone",
      "resilience-effect",
      "effect-timeout-only"
    )
  ]
}

export const section = (measured: ReadonlyArray<Measured>, sizes: Sizes): string => {
  const ns = (m: Measured) => med(m, "nsPerCall")
  const overhead = (m: Measured) => ns(m) - ns(byId(measured, kinds[m.id].baseline))
  const pairOf = (m: Measured) => {
    const pair = kinds[m.id].pair
    return pair === undefined ? undefined : byId(measured, pair)
  }
  const versusPair = (m: Measured) => {
    const pair = pairOf(m)
    return pair === undefined ? Number.NaN : overhead(m) / overhead(pair)
  }
  const rows = measured.map((m) => {
    const isBaseline = kinds[m.id].baseline === m.id
    return [
      m.label,
      num(ns(m)),
      isBaseline ? "(baseline)" : num(overhead(m)),
      isBaseline ? "" : kinds[m.id].baseline === "bare-effect" ? "bare Effect" : "bare await",
      isBaseline ? "" : `${ratio(versusPair(m))} ${pairOf(m)?.id === "cockatiel" ? "(no timeout)" : "(timeout)"}`,
      num(med(m, "peakRssMb")),
      values(m).map((value) => num(Number(value.nsPerCall))).join(" · ")
    ]
  })
  const spindle = byId(measured, "spindle")
  const spindleTimeout = byId(measured, "spindle-timeout")
  const deadline = byId(measured, "deadline")
  const effectTimeoutOnly = byId(measured, "effect-timeout-only")
  const cockatielTimeout = byId(measured, "cockatiel-timeout")
  const withoutOk = overhead(spindle) <= TARGET_NS.withoutTimeout
  const withOk = overhead(spindleTimeout) <= TARGET_NS.withTimeout
  const goals = [
    `- Without a timeout, Spindle's retry + breaker adds ${num(overhead(spindle))} ns per call to a bare Effect ` +
    `call; the target is ≤ ${num(TARGET_NS.withoutTimeout)} ns: ${verdict(withoutOk)}. That is ${
      ratio(versusPair(spindle))
    } cockatiel's ${num(overhead(byId(measured, "cockatiel")))} ns; the goal is ≤ 2×: ${
      verdict(versusPair(spindle) <= 2)
    }.`,
    `- With \`Deadline.attempt\`, it adds ${num(overhead(spindleTimeout))} ns per call; the target is ≤ ${
      num(TARGET_NS.withTimeout)
    } ns: ${verdict(withOk)}. That is ${ratio(versusPair(spindleTimeout))} cockatiel's ${
      num(overhead(cockatielTimeout))
    } ns with its timeout; the goal is ≤ 2×: ${verdict(versusPair(spindleTimeout) <= 2)}.`
  ]
  // Where the no-timeout overhead goes, a finding when its target is missed and a note otherwise.
  const withoutTimeout = "`CircuitBreaker.run` reads the clock (`Date.now()`, about 70 ns on this machine) " +
    "twice on every successful call, once to decide and once in `settleClosed` to record the success " +
    "(`packages/core/src/CircuitBreaker.ts`, `run` and `settleClosed`), although a closed breaker with a " +
    "consecutive-failures policy needs no time for either: the two reads were 10 % of a CPU profile of this " +
    "variant, and giving the breaker a clock that answers at once saved 50–100 ns of about 300 ns of overhead " +
    "per call (both measured while this benchmark was written). The rest is four Effect operations per call " +
    "(the `catchAll` of `RetryPolicy.make`, which also allocates its handler closure per call, and the " +
    "`suspend`, `matchCauseEffect` and `succeed` of `CircuitBreaker.run`)."
  const findings: Array<string> = [
    withoutOk
      ? `Where the ${num(overhead(spindle))} ns without a timeout go: ${withoutTimeout}`
      : `**Finding: Spindle's retry + breaker adds ${
        num(overhead(spindle))
      } ns, over the 400 ns target.** ${withoutTimeout} On this shared machine the figure also moves by 100–200 ns from round to round (see the rounds column).`
  ]
  if (!withOk || versusPair(spindleTimeout) > 2) {
    findings.push(
      `**Finding: the per-attempt timeout costs about ${num(overhead(deadline) / 1000, 1)} µs a call.** ` +
        `\`Deadline.attempt\` alone adds ${num(overhead(deadline))} ns to a bare Effect call, against ${
          num(overhead(spindleTimeout))
        } ns for the whole stack with it and ${num(overhead(spindle))} ns for retry + breaker without it; Effect's ` +
        `own \`Effect.timeout\` alone adds ${
          num(overhead(effectTimeoutOnly))
        } ns. \`Deadline.attempt\` is \`Effect.timeoutFail\` underneath ` +
        "(`timeoutAfter` in `packages/core/src/Deadline.ts`), and Effect implements every timeout as a race of " +
        "two forked fibers (`timeoutTo` → `raceFibersWith` in `effect/src/internal/effect/circular.ts` and " +
        "`fiberRuntime.ts`): per call it creates a child fiber for the call and another for `Effect.sleep`, arms " +
        "and clears a timer, interrupts the losing sleep fiber and waits for it, and merges the winner's " +
        "`FiberRefs` back into the caller (`inheritAll`). A CPU profile of the Spindle stack with the timeout " +
        "(200,000 calls, taken while this benchmark was written) has 28 % of its samples in the garbage " +
        "collector and most of the rest in Effect's fiber runtime (`runLoop`, fiber creation, the scheduler, " +
        "`FiberRefs` joins), and under 1 % in the bundled variant itself, Spindle's code included. cockatiel " +
        "pays for a `setTimeout`, an `AbortController` and listeners per call: " +
        `${num(overhead(cockatielTimeout) / 1000, 1)} µs here. Forking and joining one fiber around the same ` +
        "no-op cost about 7 µs a call on this machine, and arming and clearing one `setTimeout` about 0.45 µs " +
        "(both measured while this benchmark was written): a timeout that interrupts by running the call in a " +
        "fiber of its own cannot reach 2 µs, however it is written. Reaching it needs a timeout that forks " +
        "nothing on the path where the call finishes in time, for example a cooperative deadline (one timer per " +
        "call that aborts an `AbortSignal` the call observes, like cockatiel's cooperative strategy), which " +
        "gives up interrupting work that ignores the signal."
    )
  }
  return [
    `## 4. Resilience overhead per call: ${num(sizes.calls)} sequential calls of an async no-op`,
    "",
    table(
      [
        "variant",
        "ns/call (median)",
        "overhead ns/call",
        "over",
        "overhead × cockatiel's",
        "peak RSS MB",
        "rounds (ns/call)"
      ],
      rows
    ),
    "",
    ...goals,
    "",
    ...findings.flatMap((finding, i) => (i === 0 ? [finding] : ["", finding])),
    "",
    `How it is measured. Each variant makes ${num(sizes.warmup)} calls to warm the JIT, then ${
      num(sizes.calls)
    } calls one after another (each awaited before the next), timed with \`performance.now()\`; ns/call is the ` +
    "time over the calls. The wrapped call is built once (the policies, the breaker and the composed effect), " +
    "as an application builds its policy once and calls through it, and every call succeeds at once. The Effect " +
    "variants run the calls in one fiber (`Effect.whileLoop` over the same effect), the promise variants in an " +
    "`async` loop. *Overhead* is the median ns/call minus the median of the matching bare baseline: bare Effect " +
    "for the Effect variants, bare `await` for the promise ones, so each library is charged only for what it " +
    "adds to its own way of calling. *× cockatiel's* divides that overhead by cockatiel's for the same stack " +
    "(with or without the timeout; p-retry against cockatiel without). Spindle's `maxAttempts: 3` counts the " +
    "first attempt, cockatiel's `maxAttempts: 3` and p-retry's `retries: 3` count retries; on this path no retry " +
    "ever happens. Effect has no circuit breaker, so its row is timeout + retry only. The two *(cause)* rows " +
    "time a timeout alone, to show where the cost of the full stack comes from."
  ].join("\n")
}

import { assert, describe, it } from "@effect/vitest"
import { TokenBucketStore } from "@spindle/core"
import { Upstream } from "@spindle/testkit"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Domain from "../src/Domain.js"
import * as HarvestConfig from "../src/HarvestConfig.js"
import { FetchFailure } from "../src/pipeline/Fetcher.js"
import * as HostGate from "../src/pipeline/HostGate.js"
import * as Harness from "./harness.js"

// The environment as the process sees it (`ConfigProvider.fromEnv` splits variables at `_`).
const env = (entries: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(entries)), { pathDelim: "_" })

const configFrom = (entries: Record<string, string>) =>
  Effect.withConfigProvider(HarvestConfig.fromEnvironment(), env(entries))

const networkError = new FetchFailure({
  code: "network",
  message: "connection reset",
  retryable: true,
  httpStatus: null,
  retryAfter: undefined
})

const jobOptions: Domain.JobOptions = {
  concurrency: 64,
  perHostConcurrency: 100,
  perHostRps: null,
  perHostBurst: 1,
  timeoutMs: 30_000,
  maxAttempts: 3
}

// Three failed attempts on one host through a gate configured by `entries`; then whether the circuit is open.
const circuitAfterThreeFailures = (entries: Record<string, string>) =>
  Effect.gen(function*() {
    const gate = yield* HostGate.HostGate
    const job = yield* gate.forJob("job", jobOptions)
    let runs = 0
    const fail = Effect.suspend(() => {
      runs++
      return Effect.fail(networkError)
    })
    for (let i = 0; i < 3; i++) yield* Effect.either(job.run("down.test:80", fail))
    const circuit = yield* gate.circuit("down.test:80")
    return { circuit, runs, job, gate }
  }).pipe(
    Effect.provide(
      HostGate.layer.pipe(
        Layer.provide(Layer.effect(HarvestConfig.HarvestConfig, Effect.orDie(configFrom(entries)))),
        Layer.provide(TokenBucketStore.layerMemory)
      )
    )
  )

describe("Harvest's fetch policy (the registry's entry fetch)", () => {
  it.effect("with nothing configured it is today's policy", () =>
    Effect.gen(function*() {
      const config = yield* configFrom({})
      assert.deepStrictEqual(config.fetchPolicy, {
        ...HarvestConfig.fetchPolicyDefaults,
        retry: { ...HarvestConfig.fetchPolicyDefaults.retry, retryAfterMax: Duration.millis(60_000) }
      })
      assert.strictEqual(Duration.toMillis(config.fetchPolicy.attemptTimeout!), 30_000)
      // RETRY_AFTER_MAX_MS stays the retry's longest honoured Retry-After.
      const capped = yield* configFrom({ RETRY_AFTER_MAX_MS: "5000" })
      assert.strictEqual(Duration.toMillis(capped.fetchPolicy.retry!.retryAfterMax!), 5000)
    }))

  it.scoped("a breaker setting from the environment reaches the per-host breaker (TestClock)", () =>
    Effect.gen(function*() {
      // Today's breaker needs 20 calls in its window: three failures leave it closed.
      const before = yield* circuitAfterThreeFailures({})
      assert.strictEqual(before.circuit, "closed")

      const tuned = yield* circuitAfterThreeFailures({
        POLICY_FETCH_BREAKER_POLICY: "consecutiveFailures",
        POLICY_FETCH_BREAKER_THRESHOLD: "3",
        POLICY_FETCH_BREAKER_COOLDOWN: "5 seconds"
      }).pipe(Effect.tap(({ job }) =>
        Effect.gen(function*() {
          // Open: the next attempt is refused without running, until the configured cooldown has passed.
          let ran = false
          const probe = Effect.sync(() => {
            ran = true
            return "ok"
          })
          yield* TestClock.adjust("4999 millis")
          const refused = yield* Effect.either(job.run("down.test:80", probe))
          assert.strictEqual(Either.getLeft(refused).pipe(Option.getOrThrow).code, "circuit_open")
          assert.isFalse(ran)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(yield* job.run("down.test:80", probe), "ok")
          assert.isTrue(ran)
        })
      ))
      assert.strictEqual(tuned.circuit, "open")
      assert.strictEqual(tuned.runs, 3)
    }))

  it.effect("the policy's attempt timeout and attempts are a job's defaults; the job's own values win", () =>
    Effect.gen(function*() {
      const config = yield* configFrom({
        POLICY_FETCH_ATTEMPT_TIMEOUT: "5 seconds",
        POLICY_FETCH_RETRY_MAX_ATTEMPTS: "5"
      })
      const decode = (body: unknown, limits: Domain.JobLimits = config) =>
        Effect.provideService(Schema.decodeUnknown(Domain.JobRequest)(body), Domain.JobLimits, limits)
      const defaulted = yield* decode({ urls: ["http://a.test/"] })
      assert.deepStrictEqual([defaulted.options.timeoutMs, defaulted.options.maxAttempts], [5000, 5])
      const own = yield* decode({ urls: ["http://a.test/"], timeoutMs: 100, maxAttempts: 2 })
      assert.deepStrictEqual([own.options.timeoutMs, own.options.maxAttempts], [100, 2])
      // Nothing configured: the contract's 30000 and 3.
      const plain = yield* decode({ urls: ["http://a.test/"] }, yield* configFrom({}))
      assert.deepStrictEqual([plain.options.timeoutMs, plain.options.maxAttempts], [30_000, 3])
    }))

  it.scopedLive("over loopback: a job that gives no maxAttempts gets the configured attempts and backoff", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const config = yield* configFrom({
        POLICY_FETCH_RETRY_MAX_ATTEMPTS: "5",
        POLICY_FETCH_RETRY_BASE: "150 millis",
        POLICY_FETCH_RETRY_CAP: "150 millis",
        POLICY_FETCH_RETRY_JITTER: "none"
      })
      const { results, submit, waitFor } = yield* Harness.inProcess({ fetchPolicy: config.fetchPolicy })
      const id = yield* submit({ urls: [upstream.url("/down?fail=100&key=fetch-policy&status=503")] })
      yield* waitFor(id, "completed")
      const [item] = yield* results(id)
      assert.deepStrictEqual([item.status, item.attempts, item.error.code], ["failed", 5, "http_status"])
      // No jitter: every retry waited the configured 150 ms (as the upstream measures it; a margin of 10 ms below
      // for its clock, none above since a busy machine only makes waits longer).
      const arrivals = upstream.requests().filter((r) => r.path === "/down").map((r) => r.arrivedAt)
      assert.strictEqual(arrivals.length, 5)
      for (let i = 1; i < arrivals.length; i++) {
        assert.isAtLeast(arrivals[i] - arrivals[i - 1], 140, `retry ${i} after ${arrivals[i] - arrivals[i - 1]} ms`)
      }
    }))

  it.effect("a bad policy key is InvalidEnvironment naming it, with the other bad variables, on one line", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(configFrom({
        MAX_CONCURRENCY: "0",
        POLICY_FETCH_BREAKER_RATIO: "2",
        POLICY_FETCH_HEDGE_DELAY: "100 millis",
        POLICY_FECTH_RETRY_MAX_ATTEMPTS: "5"
      }))
      assert.strictEqual(error._tag, "InvalidEnvironment")
      assert.deepStrictEqual(error.problems.map((p) => p.variable).sort(), [
        "MAX_CONCURRENCY",
        "POLICY_FECTH_RETRY_MAX_ATTEMPTS",
        "POLICY_FETCH_BREAKER_RATIO",
        "POLICY_FETCH_HEDGE_DELAY"
      ])
      assert.notInclude(error.message, "\n")
      assert.include(
        error.message,
        "POLICY_FETCH_BREAKER_RATIO: must be a number greater than 0 and at most 1, got \"2\""
      )
      assert.include(error.message, "the fetch policy has no hedge stage to tune")
      assert.include(error.message, "POLICY_FECTH_RETRY_MAX_ATTEMPTS: no policy is named by this variable")
      // Within the registry's range but not the job contract's: a job's default must be a job's valid value.
      const beyond = yield* Effect.flip(configFrom({ POLICY_FETCH_RETRY_MAX_ATTEMPTS: "21" }))
      assert.strictEqual(
        beyond.message,
        "invalid environment: POLICY_FETCH_RETRY_MAX_ATTEMPTS: must be at most 20 (a job's maxAttempts range), got 21 " +
          "(policies.fetch.retry.maxAttempts)"
      )
    }))

  it.effect("the policies file: its keys override, and a bad one is named by its path in the file", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "harvest-policies-"))
      const good = path.join(dir, "good.json")
      fs.writeFileSync(good, JSON.stringify({ policies: { fetch: { retry: { maxAttempts: 4, base: "1 second" } } } }))
      const config = yield* configFrom({ POLICIES_FILE: good })
      assert.strictEqual(config.fetchPolicy.retry!.maxAttempts, 4)
      assert.strictEqual(Duration.toMillis(config.fetchPolicy.retry!.base!), 1000)

      const bad = path.join(dir, "bad.json")
      fs.writeFileSync(bad, JSON.stringify({ policies: { fetch: { breaker: { cooldown: "never" } } } }))
      const error = yield* Effect.flip(configFrom({ POLICIES_FILE: bad }))
      assert.deepStrictEqual(error.problems.map((p) => p.variable), ["policies.fetch.breaker.cooldown"])
      assert.include(error.message, `(in ${bad})`)
      fs.rmSync(dir, { recursive: true, force: true })
    }))
})

import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker, PolicyRegistry, RetryPolicy } from "@spindle/core"
import * as Cause from "effect/Cause"
import type * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** Every setting of every stage, so that each key exists to be tuned. */
const defaults = {
  fetch: {
    attemptTimeout: "30 seconds",
    breaker: {
      policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 20 }),
      cooldown: "2 seconds",
      cooldownFactor: 2,
      cooldownMax: "30 seconds"
    },
    retry: { base: "200 millis", cap: "10 seconds", jitter: "full", maxAttempts: 3 }
  },
  everything: {
    attemptTimeout: "1 second",
    breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
    rateLimit: { limit: 10, interval: "1 second" },
    hedge: { delay: "100 millis" },
    retry: { maxAttempts: 3 },
    bulkhead: { maxConcurrent: 4 },
    deadline: "10 seconds"
  }
} satisfies Record<string, PolicyRegistry.Definition>

/** The environment as `ConfigProvider.fromEnv` reads it: variables split at `_`. */
const env = (entries: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(entries)), { pathDelim: "_" })

const load = (entries: Record<string, string>) =>
  PolicyRegistry.load(defaults).pipe(Effect.withConfigProvider(env(entries)), Effect.provide(NodeFileSystem.layer))

/** Every problem of a ConfigError, as `path: message`. */
const problems = (error: ConfigError.ConfigError): Array<{ readonly path: string; readonly message: string }> => {
  if (error._op === "And" || error._op === "Or") return [...problems(error.left), ...problems(error.right)]
  return [{ path: error.path.join("."), message: error.message }]
}

const failsWith = (entries: Record<string, string>) => Effect.map(Effect.flip(load(entries)), problems)

const tempFile = (contents: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spindle-policies-"))
  const file = path.join(dir, "policies.json")
  fs.writeFileSync(file, contents)
  return file
}

describe("PolicyRegistry", () => {
  it.effect("with nothing configured, every entry is its default", () =>
    Effect.gen(function*() {
      const definitions = yield* load({ HOME: "/home/someone", POLICY: "unrelated" })
      assert.deepStrictEqual(definitions.fetch, defaults.fetch)
      assert.deepStrictEqual(definitions.everything, defaults.everything)
    }))

  it.effect("variables override single fields; the rest stay the defaults", () =>
    Effect.gen(function*() {
      const definitions = yield* load({
        POLICY_FETCH_RETRY_MAX_ATTEMPTS: "5",
        POLICY_FETCH_ATTEMPT_TIMEOUT: "2 seconds",
        POLICY_FETCH_BREAKER_MINIMUM_THROUGHPUT: "40",
        POLICY_FETCH_BREAKER_COOLDOWN_MAX: "45000"
      })
      assert.deepStrictEqual(definitions.fetch.retry, { ...defaults.fetch.retry, maxAttempts: 5 })
      assert.strictEqual(Duration.toMillis(definitions.fetch.attemptTimeout!), 2000)
      assert.deepStrictEqual(definitions.fetch.breaker!.policy, {
        _tag: "FailureRatio",
        ratio: 0.5,
        window: "10 seconds",
        minimumThroughput: 40
      })
      // A bare number is milliseconds.
      assert.strictEqual(Duration.toMillis(definitions.fetch.breaker!.cooldownMax!), 45_000)
      assert.strictEqual(definitions.fetch.breaker!.cooldown, "2 seconds")
    }))

  it.effect("a JSON file named by POLICIES_FILE: it beats the defaults, the environment beats it", () =>
    Effect.gen(function*() {
      const file = tempFile(JSON.stringify({
        policies: {
          fetch: { retry: { maxAttempts: 7, base: "50 millis" }, attemptTimeout: 1500 },
          everything: { bulkhead: { maxConcurrent: 2, maxQueued: 0 } }
        }
      }))
      const definitions = yield* load({ POLICIES_FILE: file, POLICY_FETCH_RETRY_MAX_ATTEMPTS: "9" })
      assert.strictEqual(definitions.fetch.retry!.maxAttempts, 9)
      assert.strictEqual(Duration.toMillis(definitions.fetch.retry!.base!), 50)
      assert.strictEqual(Duration.toMillis(definitions.fetch.attemptTimeout!), 1500)
      assert.deepStrictEqual(definitions.everything.bulkhead, { maxConcurrent: 2, maxQueued: 0 })
      assert.strictEqual(definitions.fetch.retry!.cap, "10 seconds")
    }))

  it.effect("every value out of range fails, naming its variable and what is accepted", () =>
    Effect.gen(function*() {
      const bad: Array<readonly [string, string, string]> = [
        ["POLICY_FETCH_ATTEMPT_TIMEOUT", "0", "a positive duration"],
        ["POLICY_FETCH_RETRY_MAX_ATTEMPTS", "0", "an integer from 1 to 1000"],
        ["POLICY_FETCH_RETRY_MAX_ATTEMPTS", "2.5", "an integer from 1 to 1000"],
        ["POLICY_FETCH_RETRY_BASE", "soon", "a positive duration"],
        ["POLICY_FETCH_RETRY_FACTOR", "0.5", "a number from 1 to 100"],
        ["POLICY_FETCH_RETRY_CAP", "-5", "a positive duration"],
        ["POLICY_FETCH_RETRY_JITTER", "lots", "one of none, full, equal, decorrelated"],
        ["POLICY_FETCH_RETRY_MAX_ELAPSED", "0 seconds", "a positive duration"],
        ["POLICY_FETCH_RETRY_RETRY_AFTER_MAX", "", "a positive duration"],
        ["POLICY_FETCH_BREAKER_POLICY", "sometimes", "one of consecutiveFailures, failureRatio, failureRatioOfLast"],
        ["POLICY_FETCH_BREAKER_RATIO", "0", "a number greater than 0 and at most 1"],
        ["POLICY_FETCH_BREAKER_RATIO", "1.5", "a number greater than 0 and at most 1"],
        ["POLICY_FETCH_BREAKER_WINDOW", "forever", "a positive duration"],
        ["POLICY_FETCH_BREAKER_MINIMUM_THROUGHPUT", "0", "an integer from 1 to 1000000000"],
        ["POLICY_FETCH_BREAKER_BUCKETS", "1001", "an integer from 1 to 1000"],
        ["POLICY_FETCH_BREAKER_COOLDOWN", "0", "a positive duration"],
        ["POLICY_FETCH_BREAKER_COOLDOWN_FACTOR", "101", "a number from 1 to 100"],
        ["POLICY_FETCH_BREAKER_COOLDOWN_MAX", "x", "a positive duration"],
        ["POLICY_FETCH_BREAKER_HALF_OPEN_PROBES", "0", "an integer from 1 to 1000000"],
        ["POLICY_EVERYTHING_BREAKER_THRESHOLD", "0", "an integer from 1 to 1000000"],
        ["POLICY_EVERYTHING_RATE_LIMIT_LIMIT", "0", "a number greater than 0 and at most 1000000000"],
        ["POLICY_EVERYTHING_RATE_LIMIT_INTERVAL", "0", "a positive duration"],
        ["POLICY_EVERYTHING_RATE_LIMIT_BURST", "0", "an integer from 1 to 1000000000"],
        ["POLICY_EVERYTHING_RATE_LIMIT_MAX_WAIT", "-1", "a non-negative duration"],
        ["POLICY_EVERYTHING_HEDGE_DELAY", "later", "a non-negative duration"],
        ["POLICY_EVERYTHING_HEDGE_MAX_ATTEMPTS", "101", "an integer from 1 to 100"],
        ["POLICY_EVERYTHING_BULKHEAD_MAX_CONCURRENT", "0", "an integer from 1 to 1000000000"],
        ["POLICY_EVERYTHING_BULKHEAD_MAX_QUEUED", "-1", "an integer from 0 to 1000000000"],
        ["POLICY_EVERYTHING_BULKHEAD_MAX_WAIT", "x", "a non-negative duration"],
        ["POLICY_EVERYTHING_DEADLINE", "0", "a positive duration"]
      ]
      for (const [variable, value, accepted] of bad) {
        const found = yield* failsWith({ [variable]: value })
        assert.strictEqual(found.length, 1, `${variable}=${value}: ${JSON.stringify(found)}`)
        assert.strictEqual(found[0].path, variable)
        assert.include(found[0].message, `must be ${accepted}`)
        assert.include(found[0].message, `got "${value}"`)
      }
      // The message names the key too.
      const [one] = yield* failsWith({ POLICY_FETCH_RETRY_MAX_ATTEMPTS: "0" })
      assert.include(one.message, "(policies.fetch.retry.maxAttempts)")
    }))

  it.effect("checks across fields name the key that was set", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        (yield* failsWith({ POLICY_FETCH_RETRY_CAP: "100 millis" })).map((p) => p.path),
        ["POLICY_FETCH_RETRY_CAP"]
      )
      assert.deepStrictEqual(
        (yield* failsWith({ POLICY_FETCH_BREAKER_COOLDOWN: "1 minute" })).map((p) => p.path),
        ["POLICY_FETCH_BREAKER_COOLDOWN"]
      )
      const found = yield* failsWith({
        POLICY_FETCH_BREAKER_POLICY: "failureRatioOfLast",
        POLICY_FETCH_BREAKER_CALLS: "10",
        POLICY_FETCH_BREAKER_MINIMUM_CALLS: "11"
      })
      assert.deepStrictEqual(found.map((p) => p.path), ["POLICY_FETCH_BREAKER_MINIMUM_CALLS"])
      assert.include(found[0].message, "at most breaker.calls (10)")
    }))

  it.effect("the breaker's policy can be changed; a field of another policy is an error", () =>
    Effect.gen(function*() {
      const definitions = yield* load({ POLICY_FETCH_BREAKER_POLICY: "consecutiveFailures" })
      assert.deepStrictEqual(definitions.fetch.breaker!.policy, { _tag: "ConsecutiveFailures", threshold: 5 })
      const found = yield* failsWith({ POLICY_FETCH_BREAKER_THRESHOLD: "3" })
      assert.deepStrictEqual(found.map((p) => p.path), ["POLICY_FETCH_BREAKER_THRESHOLD"])
      assert.include(
        found[0].message,
        "applies to a consecutiveFailures breaker, and the fetch breaker is failureRatio"
      )
    }))

  it.effect("an unknown stage or field is an error, in the environment and in the file", () =>
    Effect.gen(function*() {
      const found = yield* failsWith({
        POLICY_FETCH_HEDGE_DELAY: "10 millis",
        POLICY_FETCH_RETRY_MAX_ATEMPTS: "5",
        POLICY_FETCH_RETYR_BASE: "5"
      })
      const byPath = new Map(found.map((p) => [p.path, p.message]))
      assert.deepStrictEqual([...byPath.keys()].sort(), [
        "POLICY_FETCH_HEDGE_DELAY",
        "POLICY_FETCH_RETRY_MAX_ATEMPTS",
        "POLICY_FETCH_RETYR_BASE"
      ])
      assert.include(byPath.get("POLICY_FETCH_HEDGE_DELAY")!, "the fetch policy has no hedge stage to tune")
      assert.include(byPath.get("POLICY_FETCH_RETRY_MAX_ATEMPTS")!, "POLICY_FETCH_RETRY_MAX_ATTEMPTS")

      const file = tempFile(JSON.stringify({
        policies: {
          fetch: { hedge: { delay: 10 }, retry: { maxAtempts: 5, maxAttempts: 0 } },
          fecth: { retry: { maxAttempts: 2 } }
        }
      }))
      const inFile = yield* failsWith({ POLICIES_FILE: file })
      const paths = inFile.map((p) => p.path).sort()
      assert.deepStrictEqual(paths, [
        "policies.fecth",
        "policies.fetch.hedge",
        "policies.fetch.retry.maxAtempts",
        "policies.fetch.retry.maxAttempts"
      ])
      for (const problem of inFile) assert.include(problem.message, `(in ${file})`)
    }))

  it.effect("a variable naming no entry is an error naming the policies; one that starts two names is the longer's", () =>
    Effect.gen(function*() {
      const found = yield* failsWith({ POLICY_FECTH_RETRY_MAX_ATTEMPTS: "5", POLICY_FETCH_RETRY_MAX_ATTEMPTS: "4" })
      assert.deepStrictEqual(found.map((p) => p.path), ["POLICY_FECTH_RETRY_MAX_ATTEMPTS"])
      assert.include(found[0].message, "no policy is named by this variable")
      assert.include(found[0].message, "everything (POLICY_EVERYTHING_…), fetch (POLICY_FETCH_…)")

      // `search` and `search-api`: a misspelt field of `search-api` is reported once, as search-api's.
      const overlapping = (entries: Record<string, string>) =>
        PolicyRegistry.load({ search: { retry: { maxAttempts: 2 } }, "search-api": { retry: { maxAttempts: 3 } } })
          .pipe(
            Effect.withConfigProvider(env(entries)),
            Effect.provide(NodeFileSystem.layer)
          )
      const tuned = yield* overlapping({
        POLICY_SEARCH_API_RETRY_MAX_ATTEMPTS: "7",
        POLICY_SEARCH_RETRY_MAX_ATTEMPTS: "1"
      })
      assert.deepStrictEqual([tuned.search.retry?.maxAttempts, tuned["search-api"].retry?.maxAttempts], [1, 7])
      const misspelt = problems(yield* Effect.flip(overlapping({ POLICY_SEARCH_API_RETRY_MAX_ATEMPTS: "7" })))
      assert.strictEqual(misspelt.length, 1)
      assert.include(misspelt[0].message, "not a setting of the search-api policy")
    }))

  it.effect("a missing or malformed file fails naming POLICIES_FILE", () =>
    Effect.gen(function*() {
      const missing = yield* failsWith({ POLICIES_FILE: path.join(os.tmpdir(), "no-such-dir-spindle", "p.json") })
      assert.deepStrictEqual(missing.map((p) => p.path), ["POLICIES_FILE"])
      assert.include(missing[0].message, "cannot read")
      const malformed = yield* failsWith({ POLICIES_FILE: tempFile("{ policies: ") })
      assert.deepStrictEqual(malformed.map((p) => p.path), ["POLICIES_FILE"])
      assert.include(malformed[0].message, "is not valid JSON")
    }))

  it.effect("two names spelled alike in the environment are a defect naming both", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        PolicyRegistry.load({ "search-api": {}, searchApi: {} }).pipe(
          Effect.withConfigProvider(env({})),
          Effect.provide(NodeFileSystem.layer)
        )
      )
      assert.isTrue(exit._tag === "Failure" && Cause.isDie(exit.cause))
      assert.include(
        String(exit._tag === "Failure" ? Cause.squash(exit.cause) : ""),
        "\"search-api\" and \"searchApi\" would share the variables POLICY_SEARCH_API_*"
      )
    }))

  it.effect("get: each entry built once, named after the entry; an unknown name is PolicyNotFound", () =>
    Effect.gen(function*() {
      const registry = yield* PolicyRegistry.PolicyRegistry
      assert.deepStrictEqual(registry.names, ["everything", "fetch"])
      const first = yield* registry.get("fetch")
      assert.strictEqual(yield* registry.get("fetch"), first)
      assert.strictEqual(first.name, "fetch")
      assert.deepStrictEqual(first.stages, ["attemptTimeout", "breaker", "retry"])
      const error = yield* Effect.flip(registry.get("fecth"))
      assert.strictEqual(error._tag, "PolicyNotFound")
      assert.strictEqual(error.message, "no policy named \"fecth\"; the registry has: everything, fetch")
      assert.strictEqual((yield* Effect.flip(registry.definition("nope")))._tag, "PolicyNotFound")
    }).pipe(
      Effect.provide(PolicyRegistry.layerConfig(defaults)),
      Effect.provide(NodeFileSystem.layer),
      Effect.withConfigProvider(env({}))
    ))

  it.effect("an override reaches the built policy: attempts and the attempt timeout (TestClock)", () =>
    Effect.gen(function*() {
      const registry = yield* PolicyRegistry.PolicyRegistry
      const policy = yield* registry.get("fetch")
      let calls = 0
      // Every attempt hangs: each is cut at 50 ms, then retried after at most 10 ms of backoff, 4 attempts in all.
      const fiber = yield* Effect.fork(policy.run(Effect.suspend(() => {
        calls++
        return Effect.never
      })))
      yield* TestClock.adjust("49 millis")
      assert.strictEqual(calls, 1)
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 second")
      assert.isNotNull(fiber.unsafePoll())
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "TimeoutError")
      assert.strictEqual(calls, 4)
    }).pipe(
      Effect.provide(PolicyRegistry.layerConfig(defaults)),
      Effect.provide(NodeFileSystem.layer),
      Effect.withConfigProvider(env({
        POLICY_FETCH_ATTEMPT_TIMEOUT: "50 millis",
        POLICY_FETCH_RETRY_MAX_ATTEMPTS: "4",
        POLICY_FETCH_RETRY_BASE: "10 millis",
        POLICY_FETCH_RETRY_CAP: "10 millis"
      }))
    ))

  it.effect("each entry's metrics are labelled with its name", () =>
    Effect.gen(function*() {
      const registry = yield* PolicyRegistry.make({
        "ledger-registry-test": {
          breaker: { policy: CircuitBreaker.consecutiveFailures(2), cooldown: "1 minute" },
          retry: { maxAttempts: 2, base: "1 millis", cap: "1 millis" }
        }
      })
      const policy = yield* registry.get("ledger-registry-test")
      const fiber = yield* Effect.fork(Effect.either(policy.run(Effect.fail("down"))))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      const retries = yield* Metric.value(
        RetryPolicy.metrics.retries.pipe(Metric.tagged("policy", "ledger-registry-test"))
      )
      assert.strictEqual(retries.count, 1)
      // Two failures in a row opened the entry's breaker, which reports under the entry's name.
      const opened = yield* Metric.value(
        CircuitBreaker.metrics.transitions.pipe(
          Metric.tagged("breaker", "ledger-registry-test"),
          Metric.tagged("state", "open")
        )
      )
      assert.strictEqual(opened.count, 1)
    }))
})

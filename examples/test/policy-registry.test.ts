import { assert, describe, it } from "@effect/vitest"
import { PolicyRegistry } from "@spindle/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { PoliciesLive, tryWith } from "../src/policy-registry.js"

describe("policy-registry", () => {
  it.effect("the defaults in code, when nothing is configured", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* tryWith({}), [
        "payments: attemptTimeout < breaker < retry < bulkhead < deadline; attempt timeout 5s, 2 attempts",
        "search: attemptTimeout < hedge < retry; attempt timeout 2s, 3 attempts"
      ])
    }))

  it.effect("a JSON file and a variable: the variable wins over the file, the file over the code", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "policy-registry-test-"))
      const file = path.join(dir, "policies.json")
      fs.writeFileSync(
        file,
        JSON.stringify({ policies: { search: { retry: { maxAttempts: 5 }, attemptTimeout: 900 } } })
      )
      assert.deepStrictEqual(yield* tryWith({ POLICIES_FILE: file, POLICY_SEARCH_ATTEMPT_TIMEOUT: "1500 millis" }), [
        "payments: attemptTimeout < breaker < retry < bulkhead < deadline; attempt timeout 5s, 2 attempts",
        "search: attemptTimeout < hedge < retry; attempt timeout 1s 500ms, 5 attempts"
      ])
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("bad keys are refused, each named", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        yield* tryWith({ POLICY_SEARCH_RETRY_MAX_ATTEMPTS: "0", POLICY_SEARCH_BREAKER_COOLDOWN: "1 second" }),
        [
          "refused: POLICY_SEARCH_BREAKER_COOLDOWN: the search policy has no breaker stage to tune (its stages: " +
          "attemptTimeout, hedge, retry)",
          "refused: POLICY_SEARCH_RETRY_MAX_ATTEMPTS: must be an integer from 1 to 1000, got \"0\" " +
          "(policies.search.retry.maxAttempts)"
        ]
      )
    }))

  it.effect("the configured attempts are what the shared policy does (TestClock)", () =>
    Effect.gen(function*() {
      const search = yield* Effect.flatMap(PolicyRegistry.PolicyRegistry, (registry) => registry.get("search"))
      let calls = 0
      const fiber = yield* Effect.fork(Effect.either(search.run(Effect.suspend(() => {
        calls++
        return Effect.fail("503")
      }))))
      yield* TestClock.adjust("1 minute")
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result._tag, "Left")
      // Four attempts, and each hedged once at its failure (a hedge starts at once on an error): 8 calls.
      assert.strictEqual(calls, 8)
    }).pipe(
      Effect.provide(PoliciesLive),
      Effect.withConfigProvider(
        ConfigProvider.fromMap(new Map([["POLICY_SEARCH_RETRY_MAX_ATTEMPTS", "4"]]), { pathDelim: "_" })
      )
    ))
})

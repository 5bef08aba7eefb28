// Seed pattern: follows "Retry with Exponential Backoff" and the circuit breaker — the same policies, named, and tuned by configuration instead of code.
import { NodeFileSystem } from "@effect/platform-node"
import { CircuitBreaker, PolicyRegistry } from "@spindle/core"
import type * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/**
 * The application's policies, with their defaults: what runs when nothing is configured. An operator changes any
 * number of them with `POLICY_<NAME>_<STAGE>_<FIELD>` variables or a JSON file named by `POLICIES_FILE`.
 */
export const policies = {
  search: {
    attemptTimeout: "2 seconds",
    hedge: { delay: "300 millis" },
    retry: { maxAttempts: 3, base: "100 millis", cap: "2 seconds" }
  },
  payments: {
    attemptTimeout: "5 seconds",
    breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "30 seconds" },
    retry: { maxAttempts: 2, base: "500 millis" },
    bulkhead: { maxConcurrent: 8, maxQueued: 100 },
    deadline: "15 seconds"
  }
} satisfies Record<string, PolicyRegistry.Definition>

/** The registry, read from the configuration in force (the process's environment unless a provider says otherwise). */
export const PoliciesLive = PolicyRegistry.layerConfig(policies).pipe(Layer.provide(NodeFileSystem.layer))

/** One line per entry: its stages and the numbers in force. */
export const describe: Effect.Effect<ReadonlyArray<string>, never, PolicyRegistry.PolicyRegistry> = Effect.gen(
  function*() {
    const registry = yield* PolicyRegistry.PolicyRegistry
    const lines: Array<string> = []
    for (const name of registry.names) {
      const definition = yield* Effect.orDie(registry.definition(name))
      const policy = yield* Effect.orDie(registry.get(name))
      const timeout = definition.attemptTimeout === undefined
        ? "none"
        : Duration.format(Duration.decode(definition.attemptTimeout))
      lines.push(
        `${name}: ${policy.stages.join(" < ")}; attempt timeout ${timeout}, ${definition.retry?.maxAttempts} attempts`
      )
    }
    return lines
  }
)

/** The configuration problems, one per key, as an operator would read them. */
export const problems = (error: ConfigError.ConfigError): Array<string> =>
  error._op === "And" || error._op === "Or"
    ? [...problems(error.left), ...problems(error.right)]
    : [`${error.path.join(".")}: ${error.message}`]

/** Reads the registry with `env` as the environment and describes it, or lists what is wrong. */
export const tryWith = (env: Record<string, string>): Effect.Effect<ReadonlyArray<string>> =>
  describe.pipe(
    Effect.provide(PoliciesLive),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })),
    Effect.catchAll((error) => Effect.succeed(problems(error).map((problem) => `refused: ${problem}`)))
  )

export const main = Effect.gen(function*() {
  yield* Console.log("defaults:")
  for (const line of yield* tryWith({})) yield* Console.log(`  ${line}`)

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "policy-registry-"))
  const file = path.join(dir, "policies.json")
  fs.writeFileSync(file, JSON.stringify({ policies: { search: { retry: { maxAttempts: 5 } } } }, null, 2))
  yield* Console.log(`POLICIES_FILE=${file} (search.retry.maxAttempts 5), POLICY_PAYMENTS_ATTEMPT_TIMEOUT=3000:`)
  for (const line of yield* tryWith({ POLICIES_FILE: file, POLICY_PAYMENTS_ATTEMPT_TIMEOUT: "3000" })) {
    yield* Console.log(`  ${line}`)
  }

  yield* Console.log("POLICY_SEARCH_RETRY_MAX_ATTEMPTS=0 and POLICY_SEARCH_BREAKER_COOLDOWN=1s:")
  for (const line of yield* tryWith({ POLICY_SEARCH_RETRY_MAX_ATTEMPTS: "0", POLICY_SEARCH_BREAKER_COOLDOWN: "1s" })) {
    yield* Console.log(`  ${line}`)
  }
  fs.rmSync(dir, { recursive: true, force: true })
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

/**
 * Harvest's configuration, read from the environment through `Config` (see DESIGN.md for the contract).
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { CircuitBreaker, PolicyRegistry } from "@spindle/core"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"

/**
 * Every setting, validated.
 *
 * @since 0.1.0
 * @category models
 */
export interface HarvestConfig {
  readonly port: number
  readonly host: string
  readonly dataDir: string
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly redisUrl: Option.Option<Redacted.Redacted>
  readonly maxConcurrency: number
  readonly shutdownGraceMs: number
  readonly apiToken: Option.Option<Redacted.Redacted>
  readonly allowPrivateNetworks: boolean
  readonly maxBodyBytes: number
  readonly leaseMs: number
  readonly retryAfterMaxMs: number
  readonly maxUrlsPerJob: number
  /**
   * The event-loop delay past which every route answers `503 overloaded` (500 ms). Not read from the environment:
   * embedders and tests set it (an in-process test on a loaded machine can stall longer than that by itself).
   */
  readonly shedEventLoopDelayMs: number
  /**
   * The entry `fetch` of the policy registry as configured (`POLICY_FETCH_*`, `POLICIES_FILE`): the per-host
   * breaker, the retry's backoff, and the defaults of a job's `timeoutMs` (`attemptTimeout`) and `maxAttempts`.
   */
  readonly fetchPolicy: PolicyRegistry.Definition
}

/**
 * Harvest's fetch policy when nothing is configured: a job's attempt timeout (30 s) and attempts (3) unless the job
 * says otherwise; retries after 200 ms doubling up to 10 s with full jitter; a breaker per host opening when half
 * of at least 20 calls in 10 s failed, probing after 2 s, then 4 s, up to 30 s. The retry's `retryAfterMax` defaults
 * to `RETRY_AFTER_MAX_MS`.
 *
 * @since 0.1.0
 * @category config
 */
export const fetchPolicyDefaults = {
  attemptTimeout: Duration.seconds(30),
  breaker: {
    policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 20 }),
    cooldown: "2 seconds",
    cooldownFactor: 2,
    cooldownMax: "30 seconds"
  },
  retry: { base: "200 millis", cap: "10 seconds", jitter: "full", maxAttempts: 3 }
} satisfies PolicyRegistry.Definition

/** The job contract's ranges (DESIGN.md) bound the fetch policy's values that become a job's defaults. */
const fetchPolicyWithinJobRanges = (
  policy: PolicyRegistry.Definition
): Effect.Effect<PolicyRegistry.Definition, ConfigError.ConfigError> => {
  const errors: Array<ConfigError.ConfigError> = []
  const timeoutMs = Duration.toMillis(policy.attemptTimeout ?? fetchPolicyDefaults.attemptTimeout)
  if (!Number.isInteger(timeoutMs) || timeoutMs > 600_000) {
    errors.push(ConfigError.InvalidData(
      [PolicyRegistry.variable("fetch", "attemptTimeout")],
      `must be a whole number of milliseconds up to 600000 (a job's timeoutMs range), got ${timeoutMs} ms ` +
        "(policies.fetch.attemptTimeout)"
    ))
  }
  const maxAttempts = policy.retry?.maxAttempts ?? fetchPolicyDefaults.retry.maxAttempts
  if (maxAttempts > 20) {
    errors.push(ConfigError.InvalidData(
      [PolicyRegistry.variable("fetch", "retry", "maxAttempts")],
      `must be at most 20 (a job's maxAttempts range), got ${maxAttempts} (policies.fetch.retry.maxAttempts)`
    ))
  }
  return errors.length === 0 ? Effect.succeed(policy) : Effect.fail(errors.reduce(ConfigError.And))
}

/**
 * The fetch policy as configured: the registry's entry `fetch` read from `POLICY_FETCH_*` and the JSON file named by
 * `POLICIES_FILE` (see `PolicyRegistry`), over `fetchPolicyDefaults` with `retryAfterMax` from `retryAfterMaxMs`.
 *
 * @since 0.1.0
 * @category config
 */
export const loadFetchPolicy = (
  retryAfterMaxMs: number
): Effect.Effect<PolicyRegistry.Definition, ConfigError.ConfigError> =>
  PolicyRegistry.load({
    fetch: {
      ...fetchPolicyDefaults,
      retry: { ...fetchPolicyDefaults.retry, retryAfterMax: Duration.millis(retryAfterMaxMs) }
    }
  }).pipe(
    Effect.flatMap(({ fetch }) => fetchPolicyWithinJobRanges(fetch)),
    Effect.provide(NodeFileSystem.layer)
  )

/**
 * The configuration service.
 *
 * @since 0.1.0
 * @category tags
 */
export const HarvestConfig: Context.Tag<HarvestConfig, HarvestConfig> = Context.GenericTag<HarvestConfig>(
  "@spindle/harvest/HarvestConfig"
)

// `Config.validate` reports its failure at an empty path: this one names the variable and the value it refused.
const integerWithin = (name: string, fallback: number, range: string, within: (n: number) => boolean) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((n) =>
      within(n)
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([name], `must be ${range} but received ${n}`))
    )
  )

const positiveInt = (name: string, fallback: number) =>
  integerWithin(name, fallback, "a positive integer", (n) => n >= 1)

type Settings = Omit<HarvestConfig, "fetchPolicy">

/**
 * How each setting is read from the environment (its variable, DESIGN.md's default, its range): `config` reads them
 * all, `fromEnvironment` all but those it is given instead.
 *
 * @since 0.1.0
 * @category config
 */
export const settings: { readonly [K in keyof Settings]: Config.Config<HarvestConfig[K]> } = {
  // 0 picks a free port (tests); the address actually bound is logged at start-up.
  port: integerWithin("PORT", 8080, "a port number (0 to 65535)", (n) => n >= 0 && n <= 65535),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault("./.data")),
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  redisUrl: Config.option(Config.redacted("REDIS_URL")),
  maxConcurrency: positiveInt("MAX_CONCURRENCY", 64),
  shutdownGraceMs: integerWithin("SHUTDOWN_GRACE_MS", 10_000, "a non-negative integer", (n) => n >= 0),
  apiToken: Config.option(Config.redacted("API_TOKEN")),
  allowPrivateNetworks: Config.boolean("HARVEST_ALLOW_PRIVATE_NETWORKS").pipe(Config.withDefault(false)),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 10_485_760),
  leaseMs: positiveInt("LEASE_MS", 30_000),
  retryAfterMaxMs: positiveInt("RETRY_AFTER_MAX_MS", 60_000),
  maxUrlsPerJob: positiveInt("MAX_URLS_PER_JOB", 100_000),
  shedEventLoopDelayMs: Config.succeed(500)
}

/**
 * The settings as read from the environment, with DESIGN.md's defaults (the fetch policy aside: `loadFetchPolicy`).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Settings> = Config.all(settings)

const load = (
  overrides: Overrides
): Effect.Effect<HarvestConfig, ConfigError.ConfigError> =>
  Effect.flatMap(
    Effect.either(Config.all({ ...settings, ...overrides })),
    (read) =>
      Effect.flatMap(
        // The fetch policy's errors are reported with the others' (its retryAfterMax default needs a valid
        // RETRY_AFTER_MAX_MS, else the default one).
        Effect.either(
          loadFetchPolicy(Either.isRight(read) ? read.right.retryAfterMaxMs : 60_000)
        ),
        (policy) => {
          if (Either.isRight(read) && Either.isRight(policy)) {
            return Effect.succeed({ ...read.right, fetchPolicy: policy.right })
          }
          const errors: Array<ConfigError.ConfigError> = []
          if (Either.isLeft(read)) errors.push(read.left)
          if (Either.isLeft(policy)) errors.push(policy.left)
          return Effect.fail(errors.reduce(ConfigError.And))
        }
      )
  )

/**
 * The configuration from the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<HarvestConfig, ConfigError.ConfigError> = Layer.effect(HarvestConfig, load({}))

/**
 * The environment holds a value Harvest cannot use; `message` names every such variable and what is wrong with it.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidEnvironment extends Data.TaggedError("InvalidEnvironment")<{
  readonly problems: ReadonlyArray<{ readonly variable: string; readonly problem: string }>
}> {
  /**
   * The problems `config` reported, one per variable.
   *
   * @since 0.1.0
   */
  static fromConfigError(error: ConfigError.ConfigError): InvalidEnvironment {
    const problems: Array<{ readonly variable: string; readonly problem: string }> = []
    const collect = (error: ConfigError.ConfigError): void => {
      if (error._op === "And" || error._op === "Or") {
        collect(error.left)
        collect(error.right)
      } else {
        // A variable's path is one name or its parts; a key of the policies file is written with dots.
        const variable = error.path.some((segment) => /[a-z]/.test(segment))
          ? error.path.join(".")
          : error.path.join("_")
        problems.push({ variable, problem: error.message })
      }
    }
    collect(error)
    return new InvalidEnvironment({ problems })
  }

  override get message(): string {
    return `invalid environment: ${this.problems.map((p) => `${p.variable}: ${p.problem}`).join("; ")}`
  }
}

/**
 * Settings read some other way than `settings` says: a fixed value (`Config.succeed`), or a setting's own `Config`
 * adjusted (`Config.map(settings.dataDir, …)`).
 *
 * @since 0.1.0
 * @category models
 */
export type Overrides = { readonly [K in keyof Settings]?: Config.Config<HarvestConfig[K]> }

/**
 * The configuration from the environment, each setting in `overrides` read as it says instead (a command line
 * whose flags take precedence over the environment, for example): a variable overridden by a fixed value is not read
 * at all, so a bad value in it is no error. A bad value elsewhere fails with `InvalidEnvironment`.
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnvironment = (overrides: Overrides = {}): Effect.Effect<HarvestConfig, InvalidEnvironment> =>
  Effect.mapError(load(overrides), InvalidEnvironment.fromConfigError)

/**
 * `fromEnvironment` as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerOverriding = (overrides: Overrides): Layer.Layer<HarvestConfig, InvalidEnvironment> =>
  Layer.effect(HarvestConfig, fromEnvironment(overrides))

/**
 * A fixed configuration (tests, embedders), with every unspecified setting at its default.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (overrides: Partial<HarvestConfig>): Layer.Layer<HarvestConfig> =>
  Layer.effect(
    HarvestConfig,
    Effect.map(
      Effect.orDie(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map()))),
      (base) => ({
        ...base,
        fetchPolicy: {
          ...fetchPolicyDefaults,
          retry: { ...fetchPolicyDefaults.retry, retryAfterMax: Duration.millis(overrides.retryAfterMaxMs ?? 60_000) }
        },
        ...overrides
      })
    )
  )

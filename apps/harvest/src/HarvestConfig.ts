/**
 * Harvest's configuration, read from the environment through `Config` (see DESIGN.md for the contract).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
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
}

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

/**
 * How each setting is read from the environment (its variable, DESIGN.md's default, its range): `config` reads them
 * all, `fromEnvironment` all but those it is given instead.
 *
 * @since 0.1.0
 * @category config
 */
export const settings: { readonly [K in keyof HarvestConfig]: Config.Config<HarvestConfig[K]> } = {
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
 * The configuration as read from the environment, with DESIGN.md's defaults.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<HarvestConfig> = Config.all(settings)

/**
 * The configuration from the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<HarvestConfig, ConfigError.ConfigError> = Layer.effect(
  HarvestConfig,
  config
)

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
        problems.push({ variable: error.path.join("_"), problem: error.message })
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
export type Overrides = { readonly [K in keyof HarvestConfig]?: Config.Config<HarvestConfig[K]> }

/**
 * The configuration from the environment, each setting in `overrides` read as it says instead (a command line
 * whose flags take precedence over the environment, for example): a variable overridden by a fixed value is not read
 * at all, so a bad value in it is no error. A bad value elsewhere fails with `InvalidEnvironment`.
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnvironment = (overrides: Overrides = {}): Effect.Effect<HarvestConfig, InvalidEnvironment> =>
  Effect.mapError(Config.all({ ...settings, ...overrides }), InvalidEnvironment.fromConfigError)

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
      (base) => ({ ...base, ...overrides })
    )
  )

/**
 * Harvest's configuration, read from the environment through `Config` (see DESIGN.md for the contract).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
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

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: "must be a positive integer", validation: (n) => n >= 1 })
  )

/**
 * The configuration as read from the environment, with DESIGN.md's defaults.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<HarvestConfig> = Config.all({
  // 0 picks a free port (tests); the address actually bound is logged at start-up.
  port: Config.integer("PORT").pipe(
    Config.withDefault(8080),
    Config.validate({ message: "must be a port number (0 to 65535)", validation: (n) => n >= 0 && n <= 65535 })
  ),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault("./.data")),
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  redisUrl: Config.option(Config.redacted("REDIS_URL")),
  maxConcurrency: positiveInt("MAX_CONCURRENCY", 64),
  shutdownGraceMs: Config.integer("SHUTDOWN_GRACE_MS").pipe(
    Config.withDefault(10_000),
    Config.validate({ message: "must be a non-negative integer", validation: (n) => n >= 0 })
  ),
  apiToken: Config.option(Config.redacted("API_TOKEN")),
  allowPrivateNetworks: Config.boolean("HARVEST_ALLOW_PRIVATE_NETWORKS").pipe(Config.withDefault(false)),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 10_485_760),
  leaseMs: positiveInt("LEASE_MS", 30_000),
  retryAfterMaxMs: positiveInt("RETRY_AFTER_MAX_MS", 60_000),
  maxUrlsPerJob: positiveInt("MAX_URLS_PER_JOB", 100_000),
  shedEventLoopDelayMs: Config.succeed(500)
})

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
 * A fixed configuration (tests, the demo), with every unspecified setting at its default.
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

/**
 * The databases shared test suites run against: a SQLite file in a temp dir, and a fresh Postgres database created
 * for each use and dropped after it, so runs never see each other's data.
 *
 * Postgres is found at `SPINDLE_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`). With `CI=true` a
 * missing server is an error at import; elsewhere Postgres suites are skipped with a printed reason.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/**
 * One database a suite can run against.
 *
 * @example
 * ```ts
 * import type { Databases } from "@spindle/testkit"
 * import * as SqlClient from "@effect/sql/SqlClient"
 * import * as Effect from "effect/Effect"
 *
 * // One test body, run against every database that is available here.
 * const selectOne = (database: Databases.Database) =>
 *   Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`).pipe(Effect.provide(database.layer))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Database {
  readonly name: "sqlite" | "pg"
  /** Why this database is unavailable here, if it is. */
  readonly skip: string | undefined
  /** A client on a database of its own, for as long as the layer lives. */
  readonly layer: Layer.Layer<SqlClient.SqlClient>
}

const settings = Effect.runSync(Config.all({
  pgUrl: Config.string("SPINDLE_TEST_PG_URL").pipe(Config.withDefault("postgres://postgres@127.0.0.1:5432/test")),
  redisUrl: Config.string("SPINDLE_TEST_REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379")),
  ci: Config.boolean("CI").pipe(Config.withDefault(false))
}))
const pgUrl = new URL(settings.pgUrl)

const reachable = (url: URL, defaultPort: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || defaultPort) })
    socket.setTimeout(1000)
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("timeout", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", () => resolve(false))
  })

// A service the suites need: required under CI=true (its absence throws at import), skipped with a printed reason
// elsewhere. Returns why it is unavailable, if it is.
const requireService = async (name: string, url: URL, defaultPort: number, variable: string) => {
  if (await reachable(url, defaultPort)) return undefined
  if (settings.ci) throw new Error(`${name} is required in CI but ${url.host} is unreachable (set ${variable})`)
  console.warn(`[spindle] skipping ${name} suites: no server at ${url.host} (set ${variable})`)
  return `no ${name} at ${url.host}`
}

const pgSkip = await requireService("Postgres", pgUrl, 5432, "SPINDLE_TEST_PG_URL")

/**
 * The Redis the Redis suites use (`SPINDLE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`), and why it is
 * unavailable here, if it is (required under `CI=true`, like Postgres).
 *
 * @example
 * ```ts
 * import { Databases } from "@spindle/testkit"
 *
 * // Skip (or, under CI=true, fail at import) when there is no Redis.
 * const redisSuite = Databases.redis.skip === undefined
 *   ? `Redis at ${Databases.redis.url}`
 *   : `skipped: ${Databases.redis.skip}`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const redis: { readonly url: string; readonly skip: string | undefined } = {
  url: settings.redisUrl,
  skip: await requireService("Redis", new URL(settings.redisUrl), 6379, "SPINDLE_TEST_REDIS_URL")
}

/**
 * A temporary directory, removed with the scope.
 *
 * @example
 * ```ts
 * import { Databases } from "@spindle/testkit"
 * import * as Effect from "effect/Effect"
 * import * as fs from "node:fs"
 * import * as path from "node:path"
 *
 * const program = Effect.gen(function*() {
 *   const dir = yield* Databases.tempDir("spindle-example-")
 *   fs.writeFileSync(path.join(dir, "data.txt"), "hello")
 *   return dir
 * }).pipe(Effect.scoped)
 *
 * Effect.runPromise(program).then((dir) => console.log(fs.existsSync(dir))) // false: removed with the scope
 * ```
 *
 * @since 0.1.0
 * @category resources
 */
export const tempDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/**
 * A fresh Postgres database for the scope's lifetime: its URL (dropped, connections and all, when the scope closes).
 *
 * @example
 * ```ts
 * import { Databases } from "@spindle/testkit"
 * import { PgClient } from "@effect/sql-pg"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 * import * as Redacted from "effect/Redacted"
 *
 * // A database of its own, dropped (with its connections) when the layer is released.
 * const PgLive = Layer.unwrapScoped(
 *   Effect.map(Databases.freshPostgres, (url) => PgClient.layer({ url: Redacted.make(url) }).pipe(Layer.orDie))
 * )
 * ```
 *
 * @since 0.1.0
 * @category resources
 */
export const freshPostgres: Effect.Effect<string, never, Scope.Scope> = Effect.gen(function*() {
  const name = `spindle_test_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`
  const admin = PgClient.layer({ url: Redacted.make(pgUrl.toString()) }).pipe(Layer.orDie)
  const run = (statement: string) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(Effect.provide(admin), Effect.orDie)
  yield* Effect.acquireRelease(
    run(`CREATE DATABASE ${name}`),
    () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  )
  const url = new URL(pgUrl.toString())
  url.pathname = `/${name}`
  return url.toString()
})

/**
 * Why Postgres suites cannot run here, if they cannot.
 *
 * @example
 * ```ts
 * import { Databases } from "@spindle/testkit"
 *
 * console.log(Databases.postgresSkip ?? "Postgres available") // e.g. "no Postgres at 127.0.0.1:5432"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const postgresSkip: string | undefined = pgSkip

/**
 * SQLite and Postgres, in that order.
 *
 * @example
 * ```ts
 * import { Databases } from "@spindle/testkit"
 * import * as SqlClient from "@effect/sql/SqlClient"
 * import * as Effect from "effect/Effect"
 *
 * // The shape of the shared suites: the same checks on SQLite and Postgres, skipped with a reason where absent.
 * const suites = Databases.all.map((database) => ({
 *   name: database.name,
 *   skip: database.skip,
 *   run: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`).pipe(Effect.provide(database.layer))
 * }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const all: ReadonlyArray<Database> = [
  {
    name: "sqlite",
    skip: undefined,
    layer: Layer.unwrapScoped(Effect.map(
      tempDir("spindle-sql-"),
      (dir) => SqliteClient.layer({ filename: path.join(dir, "test.db") }).pipe(Layer.orDie)
    ))
  },
  {
    name: "pg",
    skip: postgresSkip,
    layer: Layer.unwrapScoped(Effect.map(
      freshPostgres,
      (url) => PgClient.layer({ url: Redacted.make(url), maxConnections: 8 }).pipe(Layer.orDie)
    ))
  }
]

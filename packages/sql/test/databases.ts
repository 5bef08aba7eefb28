// The databases the shared suites run against: a SQLite file in a temp dir, and a fresh Postgres database created
// for the run and dropped after it. Postgres is required in CI (CI=true); elsewhere its absence skips its suites
// with a printed reason.
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

export interface Database {
  readonly name: "sqlite" | "pg"
  /** Why this database is unavailable here, if it is. */
  readonly skip: string | undefined
  readonly layer: Layer.Layer<SqlClient.SqlClient>
}

const pgUrl = new URL(process.env.SPINDLE_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test")

const reachable = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port })
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

const pgAvailable = await reachable(pgUrl.hostname, Number(pgUrl.port || 5432))
if (!pgAvailable && process.env.CI === "true") {
  throw new Error(`Postgres is required in CI but ${pgUrl.host} is unreachable (set SPINDLE_TEST_PG_URL)`)
}
if (!pgAvailable) {
  console.warn(`[spindle] skipping Postgres suites: no server at ${pgUrl.host} (set SPINDLE_TEST_PG_URL)`)
}

const sqliteLayer = Layer.unwrapScoped(Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "spindle-sql-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ),
  (dir) => SqliteClient.layer({ filename: path.join(dir, "test.db") }).pipe(Layer.orDie)
))

// A database of its own for every layer build, so runs never see each other's data.
const pgLayer = Layer.unwrapScoped(Effect.gen(function*() {
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
  return PgClient.layer({ url: Redacted.make(url.toString()), maxConnections: 8 }).pipe(Layer.orDie)
}))

export const databases: ReadonlyArray<Database> = [
  { name: "sqlite", skip: undefined, layer: sqliteLayer },
  { name: "pg", skip: pgAvailable ? undefined : `no Postgres at ${pgUrl.host}`, layer: pgLayer }
]

// Seed pattern: "Async Context Managers" — a connection always closed after use, and resource pool management.
import { ResourcePool } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { pathToFileURL } from "node:url"

/**
 * The database rejected the statement. The connection is fine: it goes back to the pool and is reused.
 */
export class QueryError extends Data.TaggedError("QueryError")<{
  readonly connection: number
  readonly sql: string
}> {
  override get message(): string {
    return `connection #${this.connection}: syntax error in "${this.sql}"`
  }
}

/**
 * The server dropped the connection (a restart, a failover, an idle timeout on its side).
 */
export class ConnectionLost extends Data.TaggedError("ConnectionLost")<{ readonly connection: number }> {
  override get message(): string {
    return `connection #${this.connection} was closed by the server`
  }
}

/**
 * What a query returned, and which connection ran it.
 */
export interface QueryResult {
  readonly connection: number
  readonly sql: string
  /** Clock time (ms) the result came back. */
  readonly at: number
}

/**
 * A client connection to the fake database.
 */
export interface Connection {
  readonly id: number
  /** Runs a statement; this database only understands `SELECT …`. */
  readonly query: (sql: string) => Effect.Effect<QueryResult, QueryError | ConnectionLost>
  /** A cheap round trip: `false` once the server has dropped the connection. */
  readonly ping: Effect.Effect<boolean>
}

/**
 * A connection opened or closed, and when (clock time in ms).
 */
export interface ConnectionEvent {
  readonly at: number
  readonly event: "open" | "close"
  readonly connection: number
}

/**
 * A stand-in for a database server. Opening a connection takes `connectLatency` and a query `queryLatency`; every
 * open and close is recorded, which is the witness that a connection was closed however its user ended.
 */
export interface Database {
  /** Opens a connection, closed when the current scope closes: the seed's `__aenter__` and `__aexit__`. */
  readonly connect: Effect.Effect<Connection, never, Scope.Scope>
  /** Opens and closes so far, in order. */
  readonly events: Effect.Effect<ReadonlyArray<ConnectionEvent>>
  /** Connections open now. */
  readonly open: Effect.Effect<number>
  /** The most connections ever open at once. */
  readonly peak: Effect.Effect<number>
  /** The server drops every connection open now: they stay open on the client's side, but are broken. */
  readonly dropConnections: Effect.Effect<void>
}

/**
 * Starts a fake database. `trace` sees each open and close as it happens (the demo prints them).
 */
export const makeDatabase = (options: {
  readonly connectLatency: Duration.DurationInput
  readonly queryLatency: Duration.DurationInput
  readonly trace?: ((event: ConnectionEvent) => Effect.Effect<void>) | undefined
}): Effect.Effect<Database> =>
  Effect.sync(() => {
    const events: Array<ConnectionEvent> = []
    const live = new Map<number, { broken: boolean }>()
    let nextId = 0
    let peak = 0
    const record = (event: ConnectionEvent["event"], connection: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        const entry: ConnectionEvent = { at, event, connection }
        events.push(entry)
        return options.trace === undefined ? Effect.void : options.trace(entry)
      })

    const makeConnection = (id: number): Connection => {
      const state = { broken: false }
      live.set(id, state)
      return {
        id,
        query: (sql) =>
          Effect.gen(function*() {
            if (state.broken) return yield* new ConnectionLost({ connection: id })
            yield* Effect.sleep(options.queryLatency)
            if (!/^select\b/i.test(sql)) return yield* new QueryError({ connection: id, sql })
            return { connection: id, sql, at: yield* Clock.currentTimeMillis }
          }),
        ping: Effect.sync(() => !state.broken)
      }
    }

    const connect = Effect.acquireRelease(
      Effect.zipRight(
        Effect.sleep(options.connectLatency),
        Effect.suspend(() => {
          const connection = makeConnection(nextId++)
          peak = Math.max(peak, live.size)
          return Effect.as(record("open", connection.id), connection)
        })
      ),
      (connection) =>
        Effect.suspend(() => {
          live.delete(connection.id)
          return record("close", connection.id)
        })
    )

    return {
      connect,
      events: Effect.sync(() => events.slice()),
      open: Effect.sync(() => live.size),
      peak: Effect.sync(() => peak),
      dropConnections: Effect.sync(() => {
        for (const state of live.values()) state.broken = true
      })
    }
  })

/**
 * The seed's `async with database_connection(host) as conn: …`. The connection is acquired in a scope that
 * `Effect.scoped` closes when `use` ends — with a value, a failure, a defect or an interruption — so the close in
 * `connect`'s release always runs, exactly once. Nothing here can forget the `finally`.
 */
export const withConnection = <A, E, R>(
  database: Database,
  use: (connection: Connection) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => Effect.scoped(Effect.flatMap(database.connect, use))

/**
 * The seed's "resource pool management": one pool shared by every task instead of a connection per task. At most
 * `max` connections, opened on demand and reused; each borrow pings the connection first, and one the server has
 * dropped is closed and replaced instead of handed out; a borrow that waits longer than `acquireTimeout` fails
 * with a typed `PoolTimeout`. The pool closes every connection when the scope it was made in closes.
 */
export const makePool = (
  database: Database,
  options: { readonly max: number; readonly acquireTimeout: Duration.DurationInput }
): Effect.Effect<ResourcePool.ResourcePool<Connection, never>, never, Scope.Scope> =>
  ResourcePool.make({
    name: "db",
    acquire: database.connect,
    max: options.max,
    validate: (connection) => connection.ping,
    acquireTimeout: options.acquireTimeout
  })

/**
 * One query on a borrowed connection. `pool.use` returns the connection when the query ends, however it ends:
 * a `QueryError` leaves a healthy connection, so it goes back for the next borrower.
 */
export const query = (
  pool: ResourcePool.ResourcePool<Connection, never>,
  sql: string
): Effect.Effect<QueryResult, QueryError | ConnectionLost | ResourcePool.PoolTimeout | ResourcePool.PoolExhausted> =>
  pool.use((connection) => connection.query(sql))

/**
 * The seed's `fetch_multiple`: many queries at once over one shared pool. All of them start together; the pool
 * lets `max` run at a time and the rest wait for a connection to come back.
 */
export const fetchUsers = (
  pool: ResourcePool.ResourcePool<Connection, never>,
  ids: ReadonlyArray<number>
): Effect.Effect<
  Array<QueryResult>,
  QueryError | ConnectionLost | ResourcePool.PoolTimeout | ResourcePool.PoolExhausted
> => Effect.forEach(ids, (id) => query(pool, `SELECT * FROM users WHERE id = ${id}`), { concurrency: "unbounded" })

/**
 * The runnable demo, on the real clock: connections take 20 ms to open and queries 50 ms.
 */
export const main = Effect.gen(function*() {
  const start = yield* Clock.currentTimeMillis
  const database = yield* makeDatabase({
    connectLatency: "20 millis",
    queryLatency: "50 millis",
    trace: (e) => Console.log(`    [${String(e.at - start).padStart(4)} ms] ${e.event} #${e.connection}`)
  })

  yield* Console.log("one connection, closed after use (the async context manager):")
  const one = yield* withConnection(database, (connection) => connection.query("SELECT 1"))
  yield* Console.log(`  "${one.sql}" ran on #${one.connection}`)
  const failed = yield* Effect.flip(withConnection(database, (connection) => connection.query("SELEC typo")))
  yield* Console.log(`  ${failed.message}; closed all the same`)

  yield* Effect.scoped(Effect.gen(function*() {
    yield* Console.log("a pool of 3 shared by 10 concurrent queries:")
    const pool = yield* makePool(database, { max: 3, acquireTimeout: "200 millis" })
    const results = yield* fetchUsers(pool, Array.from({ length: 10 }, (_, i) => i + 1))
    const used = [...new Set(results.map((r) => r.connection))].sort((a, b) => a - b)
    yield* Console.log(`  10 results from connections ${used.map((id) => `#${id}`).join(", ")}`)

    const error = yield* Effect.flip(query(pool, "DELETE FROM users"))
    const interrupted = yield* Effect.timeout(query(pool, "SELECT pg_sleep(10)"), "10 millis").pipe(Effect.flip)
    yield* Console.log(`  a failed query (${error._tag}) and a timed-out one (${interrupted._tag}) gave theirs back:`)
    yield* Console.log(`  ${JSON.stringify(yield* pool.stats)}`)

    yield* Console.log("the server drops every connection; the next borrows ping, discard and reconnect:")
    yield* database.dropConnections
    const after = yield* fetchUsers(pool, [11, 12])
    yield* Console.log(`  both queries succeeded, on ${after.map((r) => `#${r.connection}`).join(" and ")}`)

    yield* Console.log("all 3 connections busy with a long report; a borrow gives up after 200 ms:")
    yield* Effect.forkScoped(
      Effect.all(Array.from({ length: 3 }, () => pool.use(() => Effect.sleep("500 millis"))), {
        concurrency: "unbounded"
      })
    )
    yield* Effect.sleep("10 millis")
    const timeout = yield* Effect.flip(query(pool, "SELECT now()"))
    yield* Console.log(`  ${timeout.message}`)
    yield* Console.log("closing the pool's scope closes every connection:")
  }))
  yield* Console.log(`open now: ${yield* database.open}, most open at once: ${yield* database.peak}`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

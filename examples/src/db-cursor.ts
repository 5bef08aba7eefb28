// Seed pattern: "Async Iterator for Database Cursor" — a large table read as a stream of keyset pages, constant memory.
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type { JobQueue } from "@spindle/sql"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

/**
 * A row of the `orders` table.
 */
export interface Order {
  readonly id: number
  readonly customer: string
  readonly amountCents: number
}

interface OrderRow {
  readonly id: number
  readonly customer: string
  readonly amount_cents: number
}

const toOrder = (row: OrderRow): Order => ({ id: row.id, customer: row.customer, amountCents: row.amount_cents })

/**
 * A SQLite database in a file of a fresh temporary directory (a real file, not `:memory:`), removed with the
 * directory when the layer is released. `@effect/sql-sqlite-node` keeps one connection and lets one query (or
 * one transaction) use it at a time.
 */
export const TempDatabase: Layer.Layer<SqlClient.SqlClient | SqliteClient.SqliteClient> = Layer.unwrapScoped(
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "spindle-cursor-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    ),
    (dir) => SqliteClient.layer({ filename: path.join(dir, "shop.db") }).pipe(Layer.orDie)
  )
)

/**
 * The amount of order `id`, in cents: a fixed spread of values, so totals can be checked.
 */
export const amountOf = (id: number): number => (id * 7919) % 10_000 + 1

/**
 * Creates `orders` (and the empty `archived_orders`) with `count` rows, inserted in one transaction in batches of
 * 1,000.
 */
export const createOrders = (count: number): Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const columns = sql`(id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount_cents INTEGER NOT NULL)`
    yield* sql`CREATE TABLE orders ${columns}`
    yield* sql`CREATE TABLE archived_orders ${columns}`
    yield* sql.withTransaction(Effect.forEach(
      Array.from({ length: Math.ceil(count / 1000) }, (_, batch) => batch * 1000),
      (first) =>
        sql`INSERT INTO orders ${
          sql.insert(Array.from({ length: Math.min(1000, count - first) }, (_, i) => {
            const id = first + i + 1
            return { id, customer: `customer-${id % 50}`, amount_cents: amountOf(id) }
          }))
        }`,
      { discard: true }
    ))
  })

/**
 * One page read by a cursor: where it started and how many rows it returned.
 */
export interface PageRead {
  readonly after: number
  readonly rows: number
}

/**
 * Every order, in id order, read in pages of `pageSize` by keyset: each page is one short query,
 * `WHERE id > <last id seen> ORDER BY id LIMIT <pageSize>`, which the primary key index answers directly however
 * deep into the table it is.
 *
 * This is the seed's `AsyncCursor` as a `Stream`: the next page is queried only when the consumer has taken the
 * rows of the page before, so at most one page of rows is held at a time whatever the size of the table. And
 * nothing is held between pages: no open statement, no transaction, so the database's only connection is free for
 * any other query in between. `onPage` sees each page as it is read (for progress reports).
 */
export const ordersByKeyset = (options: {
  readonly pageSize: number
  readonly onPage?: ((page: PageRead) => Effect.Effect<void>) | undefined
}): Stream.Stream<Order, SqlError.SqlError, SqlClient.SqlClient> =>
  Stream.unwrap(Effect.map(SqlClient.SqlClient, (sql) => {
    const page = (after: number) =>
      sql<OrderRow>`
        SELECT id, customer, amount_cents FROM orders
        WHERE id > ${after} ORDER BY id LIMIT ${options.pageSize}
      `
    return Stream.paginateChunkEffect(0, (after) =>
      Effect.gen(function*() {
        const rows = yield* page(after)
        if (options.onPage !== undefined) yield* options.onPage({ after, rows: rows.length })
        const last = rows.at(-1)
        return [
          Chunk.unsafeFromArray(rows.map(toOrder)),
          rows.length < options.pageSize || last === undefined ? Option.none() : Option.some(last.id)
        ] as const
      }))
  }))

/**
 * The seed's cursor as it is written there: pages by `LIMIT … OFFSET …`, ending at the first empty page. Kept for
 * comparison only: each page makes the database walk past every row before it, and rows deleted (or inserted)
 * before the offset between two pages shift the rest, so rows are skipped (or read twice).
 */
export const ordersByOffset = (options: {
  readonly pageSize: number
}): Stream.Stream<Order, SqlError.SqlError, SqlClient.SqlClient> =>
  Stream.unwrap(Effect.map(SqlClient.SqlClient, (sql) => {
    const page = (offset: number) =>
      sql<OrderRow>`
        SELECT id, customer, amount_cents FROM orders
        ORDER BY id LIMIT ${options.pageSize} OFFSET ${offset}
      `
    return Stream.paginateChunkEffect(0, (offset) =>
      Effect.map(page(offset), (rows) =>
        [
          Chunk.unsafeFromArray(rows.map(toOrder)),
          rows.length === 0 ? Option.none() : Option.some(offset + rows.length)
        ] as const))
  }))

/**
 * What a pass over the orders saw.
 */
export interface Totals {
  readonly orders: number
  readonly totalCents: number
}

/**
 * Sums the orders a cursor yields, one at a time, keeping nothing but the running totals.
 */
export const totals = <E, R>(cursor: Stream.Stream<Order, E, R>): Effect.Effect<Totals, E, R> =>
  Stream.runFold(
    cursor,
    { orders: 0, totalCents: 0 },
    (acc, order): Totals => ({ orders: acc.orders + 1, totalCents: acc.totalCents + order.amountCents })
  )

/**
 * Moves every order the cursor yields to `archived_orders`, a page at a time, each page in a short transaction of
 * its own: queries that write to the table being read, between the cursor's pages. Returns how many were moved.
 */
export const archive = <E, R>(
  cursor: Stream.Stream<Order, E, R>
): Effect.Effect<number, E | SqlError.SqlError, R | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let moved = 0
    yield* Stream.runForEachChunk(cursor, (page) => {
      const orders = Chunk.toReadonlyArray(page)
      if (orders.length === 0) return Effect.void
      const ids = orders.map((order) => order.id)
      return sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO archived_orders ${
          sql.insert(orders.map((o) => ({ id: o.id, customer: o.customer, amount_cents: o.amountCents })))
        }`
        yield* sql`DELETE FROM orders WHERE id IN ${sql.in(ids)}`
        moved += ids.length
      }))
    })
    return moved
  })

/**
 * Runs `scan` while another fiber — a dashboard, an HTTP handler — runs `SELECT COUNT(*) FROM orders` every
 * `every`, and returns how long each of those queries waited for its answer (ms), in order. With a keyset cursor
 * they are answered between pages at once; a scan that holds the connection (an open transaction around the whole
 * read, a driver cursor) makes every one of them wait for the end of the scan.
 */
export const latencyOfOtherQueries = <E, R>(
  scan: Effect.Effect<unknown, E, R>,
  every: Duration.DurationInput
): Effect.Effect<Array<number>, E | SqlError.SqlError, R | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const latencies: Array<number> = []
    let scanning = true
    const dashboard = yield* Effect.fork(Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(every)
        if (!scanning) return
        const asked = yield* Clock.currentTimeMillis
        yield* sql`SELECT COUNT(*) AS n FROM orders`
        latencies.push((yield* Clock.currentTimeMillis) - asked)
      }
    }))
    yield* scan
    scanning = false
    // A query still waiting for the connection is answered, and counted, before this returns.
    yield* Fiber.join(dashboard)
    return latencies
  })

/**
 * The same cursor, ready-made: `JobQueue.stream` reads a queue's jobs in keyset pages of `pageSize` and holds no
 * connection between them. This report counts the jobs per host of their URL, pausing `pause` on each page (the
 * time it takes to ship the page somewhere), while workers and producers keep using the database.
 */
export const jobsPerHost = (
  queue: JobQueue.JobQueue<{ readonly url: string }>,
  options: { readonly pageSize: number; readonly pause: Duration.DurationInput }
): Effect.Effect<Record<string, number>, SqlError.SqlError | ParseResult.ParseError> =>
  queue.stream({ pageSize: options.pageSize }).pipe(
    Stream.mapChunksEffect((page) => Effect.as(Effect.sleep(options.pause), page)),
    Stream.runFold({} as Record<string, number>, (counts, job) => {
      const host = new URL(job.payload.url).host
      counts[host] = (counts[host] ?? 0) + 1
      return counts
    })
  )

/**
 * The runnable demo: 200,000 orders in a SQLite file, summed in pages of 1,000.
 */
export const main = Effect.gen(function*() {
  const count = 200_000
  yield* createOrders(count)
  let pages = 0
  let largestPage = 0
  const heapBefore = process.memoryUsage().heapUsed
  let heapPeak = heapBefore
  const onPage = (page: PageRead) =>
    Effect.sync(() => {
      pages++
      largestPage = Math.max(largestPage, page.rows)
      heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)
    })
  const [elapsed, sum] = yield* Effect.timed(totals(ordersByKeyset({ pageSize: 1000, onPage })))
  yield* Console.log(
    `${sum.orders} orders, ${(sum.totalCents / 100).toFixed(2)} in total: ${pages} queries of at most ` +
      `${largestPage} rows in ${Math.round(Duration.toMillis(elapsed))} ms, ` +
      `heap grew by at most ${Math.round((heapPeak - heapBefore) / 1e6)} MB`
  )

  // The same pass with 1 ms of work per page, and another fiber querying the table every 5 ms meanwhile.
  const scan = totals(
    ordersByKeyset({ pageSize: 1000 }).pipe(
      Stream.mapChunksEffect((page) => Effect.as(Effect.sleep("1 millis"), page))
    )
  )
  const between = yield* latencyOfOtherQueries(scan, "5 millis")
  const sql = yield* SqlClient.SqlClient
  const held = yield* latencyOfOtherQueries(sql.withTransaction(scan), "5 millis")
  yield* Console.log(
    `a COUNT(*) every 5 ms during the scan: ${between.length} answered, the slowest after ` +
      `${Math.max(0, ...between)} ms; with the scan in one transaction (holding the connection): ` +
      `${held.length} answered, after ${held.join(", ")} ms`
  )

  const moved = yield* archive(ordersByOffset({ pageSize: 1000 }))
  yield* Console.log(`archiving with OFFSET pages moved ${moved} of ${count} orders: deleting shifted the offsets`)
  const rest = yield* archive(ordersByKeyset({ pageSize: 1000 }))
  yield* Console.log(`archiving the rest by keyset moved all ${rest} left`)
}).pipe(Effect.provide(TempDatabase))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

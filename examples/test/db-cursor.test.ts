import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { JobQueue, Migrations } from "@spindle/sql"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import {
  amountOf,
  archive,
  createOrders,
  jobsPerHost,
  latencyOfOtherQueries,
  ordersByKeyset,
  ordersByOffset,
  TempDatabase,
  totals
} from "../src/db-cursor.js"
import type { PageRead } from "../src/db-cursor.js"

const sumOfAmounts = (from: number, to: number) => {
  let sum = 0
  for (let id = from; id <= to; id++) sum += amountOf(id)
  return sum
}

const countRows = (table: "orders" | "archived_orders") =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => Effect.map(sql<{ n: number }>`SELECT COUNT(*) AS n FROM ${sql(table)}`, (rows) => rows[0].n)
  )

// Runs `effect` in a fiber while the test clock moves on, and returns its result.
const withClock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

describe("db-cursor", () => {
  it.effect("reads 20,500 rows in keyset pages of 1,000: each row once, in order, one page queried at a time", () =>
    Effect.gen(function*() {
      yield* createOrders(20_500)
      const pages: Array<PageRead> = []
      let previous = 0
      let outOfOrder = 0
      let readAhead = 0
      const sum = yield* ordersByKeyset({
        pageSize: 1000,
        onPage: (page) => Effect.sync(() => pages.push(page))
      }).pipe(
        Stream.tap((order) =>
          Effect.sync(() => {
            if (order.id !== previous + 1) outOfOrder++
            previous = order.id
            // While the consumer holds order `id`, only the page containing it may have been read.
            if (pages.length !== Math.ceil(order.id / 1000)) readAhead++
          })
        ),
        totals
      )
      assert.deepStrictEqual(sum, { orders: 20_500, totalCents: sumOfAmounts(1, 20_500) })
      assert.strictEqual(outOfOrder, 0)
      assert.strictEqual(readAhead, 0, "a page was read before the consumer needed it")
      // 21 short queries, each starting after the last id of the page before; the short last page ends it.
      assert.deepStrictEqual(pages, [
        ...Array.from({ length: 20 }, (_, i) => ({ after: i * 1000, rows: 1000 })),
        { after: 20_000, rows: 500 }
      ])
    }).pipe(Effect.provide(TempDatabase)))

  it.effect("other queries are answered between pages; a scan in one transaction makes them wait for its end", () =>
    Effect.gen(function*() {
      yield* createOrders(10_500)
      // 11 pages, 10 ms of work on each: the scan takes 110 ms. Another fiber asks for a count every 5 ms.
      const scan = totals(
        ordersByKeyset({ pageSize: 1000 }).pipe(
          Stream.mapChunksEffect((page) => Effect.as(Effect.sleep("10 millis"), page))
        )
      )
      const between = yield* withClock(latencyOfOtherQueries(scan, "5 millis"))
      assert.isAtLeast(between.length, 20)
      assert.deepStrictEqual(new Set(between), new Set([0]), "a query waited for the connection")

      // The same scan holding the connection from start to end: the query asked at 5 ms is answered at 110 ms.
      const sql = yield* SqlClient.SqlClient
      const held = yield* withClock(latencyOfOtherQueries(sql.withTransaction(scan), "5 millis"))
      assert.deepStrictEqual(held, [105])
    }).pipe(Effect.provide(TempDatabase)))

  it.effect("archiving while reading: OFFSET pages skip every other page, keyset pages skip nothing", () =>
    Effect.gen(function*() {
      yield* createOrders(10_000)
      // Each page is moved out of `orders` before the next is read: the next OFFSET lands a page too far.
      assert.strictEqual(yield* archive(ordersByOffset({ pageSize: 1000 })), 5000)
      assert.strictEqual(yield* countRows("orders"), 5000)

      assert.strictEqual(yield* archive(ordersByKeyset({ pageSize: 1000 })), 5000)
      assert.strictEqual(yield* countRows("orders"), 0)
      assert.strictEqual(yield* countRows("archived_orders"), 10_000)
      const sql = yield* SqlClient.SqlClient
      const [{ total }] = yield* sql<{ total: number }>`SELECT SUM(amount_cents) AS total FROM archived_orders`
      assert.strictEqual(total, sumOfAmounts(1, 10_000))
    }).pipe(Effect.provide(TempDatabase)))

  it.effect("JobQueue.stream, the ready-made cursor: an enqueue from another fiber lands between its pages", () =>
    Effect.gen(function*() {
      const queue = yield* JobQueue.make({ name: "crawl", schema: Schema.Struct({ url: Schema.String }) })
      yield* queue.enqueue(Array.from({ length: 1000 }, (_, i) => ({ url: `https://host-${i % 4}.example/${i}` })))
      // The report reads pages of 250 with 10 ms on each; at 15 ms a producer enqueues 100 more jobs (one write
      // transaction), which does not wait for the report. The keyset cursor reaches them too, each once.
      const producer = yield* Effect.fork(Effect.gen(function*() {
        yield* Effect.sleep("15 millis")
        yield* queue.enqueue(Array.from({ length: 100 }, (_, i) => ({ url: `https://late.example/${i}` })))
        return yield* Clock.currentTimeMillis
      }))
      const report = yield* withClock(jobsPerHost(queue, { pageSize: 250, pause: "10 millis" }))
      assert.strictEqual(yield* Fiber.join(producer), 15)
      assert.deepStrictEqual(report, {
        "host-0.example": 250,
        "host-1.example": 250,
        "host-2.example": 250,
        "host-3.example": 250,
        "late.example": 100
      })
      assert.deepStrictEqual(yield* queue.counts(), { pending: 1100, leased: 0, done: 0, failed: 0, cancelled: 0 })
    }).pipe(Effect.provide(Layer.effectDiscard(Migrations.run).pipe(Layer.provideMerge(TempDatabase)))))
})

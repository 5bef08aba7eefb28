import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { listingServer, listUsers, usersById, usersByPage } from "../src/streaming.js"
import type { ListingServer, ServerStats } from "../src/streaming.js"

const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

// Polls the server (on the real clock) until `done` holds; fails the test instead of hanging if it never does. The
// server keeps an idle keep-alive connection for 5 seconds, so a session left open fails this.
const awaitStats = (server: ListingServer, done: (stats: ServerStats) => boolean) =>
  server.stats.pipe(
    Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: done }),
    Effect.zipRight(server.stats),
    Effect.timeoutFail({
      duration: "2 seconds",
      onTimeout: () => "the server never reached the expected state" as const
    })
  )

const sessionClosed = (server: ListingServer) => awaitStats(server, (stats) => stats.openConnections === 0)

describe("streaming", () => {
  it.scopedLive("reads every page in order over one keep-alive connection, and closes it at the end", () =>
    Effect.gen(function*() {
      const server = yield* listingServer({ users: 95 })
      const users = yield* Stream.runCollect(listUsers(server.baseUrl, { pageSize: 10 }))
      assert.deepStrictEqual(Chunk.toReadonlyArray(users).map((u) => u.id), ids(1, 95))
      assert.strictEqual(Chunk.unsafeGet(users, 41).name, "user-42")
      const stats = yield* sessionClosed(server)
      // Ten pages, the last one short and without a Link header, all on the session's one connection.
      assert.deepStrictEqual(stats.requests, [
        "/users?limit=10",
        ...ids(1, 9).map((n) => `/users?limit=10&after=${n * 10}`)
      ])
      assert.strictEqual(stats.connections, 1)
    }))

  it.scopedLive("no page ahead of demand: the next page is requested after the last user of the one before", () =>
    Effect.gen(function*() {
      const server = yield* listingServer({ users: 1000 })
      // For each user the consumer handles, how many pages the server had been asked for by then. The consumer is
      // slow (5 ms a user): time enough for any read-ahead to reach the server.
      const pagesWhenHandled: Array<number> = []
      yield* listUsers(server.baseUrl, { pageSize: 10 }).pipe(
        Stream.take(35),
        Stream.runForEach(() =>
          Effect.flatMap(server.stats, (stats) =>
            Effect.sync(() => {
              pagesWhenHandled.push(stats.requests.length)
            })).pipe(Effect.zipRight(Effect.sleep("5 millis")))
        )
      )
      assert.deepStrictEqual(pagesWhenHandled, ids(0, 34).map((i) => Math.floor(i / 10) + 1))
      // The consumer stopped early: 4 of 100 pages fetched, and the session's finalizer closed its connection.
      const stats = yield* sessionClosed(server)
      assert.strictEqual(stats.requests.length, 4)
    }))

  it.scopedLive("a failing page ends the stream with a typed FetchError after the users before it; cleanup runs", () =>
    Effect.gen(function*() {
      const server = yield* listingServer({ users: 1000, failAt: 35 })
      const results = yield* listUsers(server.baseUrl, { pageSize: 10 }).pipe(Stream.either, Stream.runCollect)
      const all = Chunk.toReadonlyArray(results)
      assert.strictEqual(all.length, 31)
      assert.deepStrictEqual(all.slice(0, 30).map((r) => Either.map(r, (u) => u.id)), ids(1, 30).map(Either.right))
      const last = all[30]
      assert.isTrue(Either.isLeft(last))
      if (Either.isLeft(last)) {
        assert.strictEqual(last.left._tag, "FetchError")
        assert.strictEqual(last.left.url, `${server.baseUrl}/users?limit=10&after=30`)
        assert.strictEqual(last.left.reason, "HTTP 500")
      }
      yield* sessionClosed(server)
    }))

  it.scopedLive("interrupting the consumer closes the session too", () =>
    Effect.gen(function*() {
      const server = yield* listingServer({ users: 1000 })
      const exit = yield* listUsers(server.baseUrl, { pageSize: 10 }).pipe(
        Stream.tap(() => Effect.sleep("10 millis")),
        Stream.runDrain,
        Effect.timeout("100 millis"),
        Effect.exit
      )
      assert.isTrue(exit._tag === "Failure", "the consumer was not interrupted")
      const stats = yield* sessionClosed(server)
      assert.isAtMost(stats.requests.length, 2)
    }))

  it.scopedLive("the async-iterator form: one request per item, only for the items pulled", () =>
    Effect.gen(function*() {
      const server = yield* listingServer({ users: 1000 })
      const three = yield* Stream.runCollect(Stream.take(usersById(server.baseUrl, ids(1, 1000)), 3))
      assert.deepStrictEqual(Chunk.toReadonlyArray(three).map((u) => u.name), ["user-1", "user-2", "user-3"])
      assert.deepStrictEqual((yield* sessionClosed(server)).requests, ["/users/1", "/users/2", "/users/3"])

      const missing = yield* Effect.flip(Stream.runDrain(usersById(server.baseUrl, [5, 5000, 6])))
      assert.strictEqual(missing.reason, "HTTP 404")
      assert.deepStrictEqual((yield* sessionClosed(server)).requests.slice(3), ["/users/5", "/users/5000"])
    }))

  it.scopedLive("the seed's page-number generator with Stream.paginateChunkEffect: ends at the first empty page", () =>
    Effect.gen(function*() {
      const server = yield* listingServer({ users: 25 })
      const all = yield* Stream.runCollect(usersByPage(server.baseUrl, { pageSize: 10 }))
      assert.deepStrictEqual(Chunk.toReadonlyArray(all).map((u) => u.id), ids(1, 25))
      assert.deepStrictEqual((yield* sessionClosed(server)).requests, ids(0, 3).map((p) => `/users?limit=10&page=${p}`))

      const first = yield* Stream.runCollect(Stream.take(usersByPage(server.baseUrl, { pageSize: 10 }), 10))
      assert.strictEqual(Chunk.size(first), 10)
      assert.deepStrictEqual((yield* sessionClosed(server)).requests.slice(4), ["/users?limit=10&page=0"])
    }))
})

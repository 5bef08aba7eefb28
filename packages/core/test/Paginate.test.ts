import { assert, describe, it } from "@effect/vitest"
import { Paginate } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

// 95 items served 10 per page.
const items = Array.from({ length: 95 }, (_, i) => i)
const page = (n: number) => items.slice((n - 1) * 10, n * 10)

describe("Paginate", () => {
  it.effect("byPageNumber stops at the end and fetches no page ahead of demand", () =>
    Effect.gen(function*() {
      const fetched = yield* Ref.make<Array<number>>([])
      const listing = Paginate.byPageNumber({
        fetch: (n) => Effect.as(Ref.update(fetched, (f) => [...f, n]), page(n))
      })
      const all = yield* Stream.runCollect(listing)
      assert.deepStrictEqual(Chunk.toReadonlyArray(all), items)
      assert.deepStrictEqual(yield* Ref.get(fetched), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], "ends on the empty page")

      yield* Ref.set(fetched, [])
      const first = yield* Stream.runCollect(Stream.take(listing, 10))
      assert.deepStrictEqual(Chunk.toReadonlyArray(first), page(1))
      assert.deepStrictEqual(yield* Ref.get(fetched), [1], "ten items need one page")
      yield* Ref.set(fetched, [])
      yield* Stream.runCollect(Stream.take(listing, 11))
      assert.deepStrictEqual(yield* Ref.get(fetched), [1, 2])

      yield* Ref.set(fetched, [])
      const sized = Paginate.byPageNumber({
        pageSize: 10,
        fetch: (n) => Effect.as(Ref.update(fetched, (f) => [...f, n]), page(n))
      })
      assert.strictEqual(Chunk.size(yield* Stream.runCollect(sized)), 95)
      assert.deepStrictEqual(yield* Ref.get(fetched), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "a short page ends it")
    }))

  it.effect("byCursor follows cursors until there is none", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<Option.Option<string>>>([])
      const listing = Paginate.byCursor((cursor: Option.Option<string>) =>
        Effect.gen(function*() {
          yield* Ref.update(seen, (s) => [...s, cursor])
          const n = Option.match(cursor, { onNone: () => 1, onSome: (c) => Number(c.slice(1)) })
          return { items: page(n), next: n < 10 ? Option.some(`p${n + 1}`) : Option.none<string>() }
        })
      )
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(listing)), items)
      const cursors = yield* Ref.get(seen)
      assert.strictEqual(cursors.length, 10)
      assert.deepStrictEqual(cursors[0], Option.none())
      assert.deepStrictEqual(cursors[9], Option.some("p10"))
    }))

  it("nextLink reads rel=next in any form and resolves it", () => {
    const base = "http://127.0.0.1:8080/items?page=1"
    assert.deepStrictEqual(
      Paginate.nextLink(
        `<https://api.example/items?page=2>; rel="next", <https://api.example/items?page=9>; rel="last"`,
        base
      ),
      Option.some("https://api.example/items?page=2")
    )
    assert.deepStrictEqual(
      Paginate.nextLink(`</items?page=1>; rel=prev, </items?page=3>; title="x, y"; rel="next last"`, base),
      Option.some("http://127.0.0.1:8080/items?page=3")
    )
    assert.deepStrictEqual(Paginate.nextLink(`</items?page=9>; rel="last"`, base), Option.none())
    assert.deepStrictEqual(Paginate.nextLink(null, base), Option.none())
    assert.deepStrictEqual(Paginate.nextLink("garbage", base), Option.none())
  })

  it.scoped("byLinkHeader walks a real HTTP listing over loopback, lazily", () =>
    Effect.gen(function*() {
      const requests: Array<string> = []
      const server = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((req, res) => {
            requests.push(req.url!)
            const n = Number(new URL(req.url!, "http://x").searchParams.get("page") ?? "1")
            const headers: Record<string, string> = { "content-type": "application/json" }
            if (n < 10) headers.link = `</items?page=${n + 1}>; rel="next"`
            res.writeHead(200, headers).end(JSON.stringify(page(n)))
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.async<void>((resume) => {
            s.close(() => resume(Effect.void))
          })
      )
      const { port } = server.address() as AddressInfo
      const listing = Paginate.byLinkHeader(`http://127.0.0.1:${port}/items`, (url) =>
        Effect.promise(async (signal) => {
          const response = await fetch(url, { signal })
          return { items: (await response.json()) as Array<number>, link: response.headers.get("link") }
        }))
      assert.deepStrictEqual(Chunk.toReadonlyArray(yield* Stream.runCollect(listing)), items)
      assert.strictEqual(requests.length, 10)
      requests.length = 0
      yield* Stream.runCollect(Stream.take(listing, 15))
      assert.deepStrictEqual(requests, ["/items", "/items?page=2"])
    }))
})

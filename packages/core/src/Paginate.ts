/**
 * Paginated APIs as lazy `Stream`s: page numbers, opaque cursors, and `Link: <…>; rel="next"` headers.
 *
 * A page is fetched only when the stream is pulled past the items already fetched, so `Stream.take(10)` over a
 * 1,000-page listing fetches one page, and a slow consumer applies backpressure all the way to the API. Each fetch
 * is an ordinary effect: wrap it with a `RetryPolicy`, a `Deadline` or a `Limiter` as for any request.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

/**
 * Pages numbered `first`, `first + 1`, …; the listing ends at the first empty page, or at the first page shorter
 * than `pageSize` when it is given (which saves one request).
 *
 * @example
 * ```ts
 * import { Paginate } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * const users = Array.from({ length: 25 }, (_, i) => `user-${i + 1}`)
 * const fetchPage = (page: number) => Effect.succeed(users.slice((page - 1) * 10, page * 10))
 *
 * // Pages 1, 2, 3; the third is short, so no fourth request is made.
 * const all = Paginate.byPageNumber({ fetch: fetchPage, pageSize: 10 })
 *
 * Effect.runPromise(Stream.runCount(all)).then(console.log) // 25
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const byPageNumber = <A, E, R>(options: {
  readonly fetch: (page: number) => Effect.Effect<ReadonlyArray<A>, E, R>
  readonly first?: number | undefined
  readonly pageSize?: number | undefined
}): Stream.Stream<A, E, R> =>
  Stream.paginateChunkEffect(options.first ?? 1, (page) =>
    Effect.map(options.fetch(page), (items) => {
      const last = items.length === 0 || (options.pageSize !== undefined && items.length < options.pageSize)
      return [Chunk.fromIterable(items), last ? Option.none() : Option.some(page + 1)] as const
    }))

/**
 * One page of a cursor-paginated listing: its items and the cursor of the next page, if any.
 *
 * @example
 * ```ts
 * import { Paginate } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 *
 * // An API that returns `{ data, next_cursor }`.
 * const toPage = (body: { data: Array<string>; next_cursor: string | null }): Paginate.CursorPage<string, string> => ({
 *   items: body.data,
 *   next: Option.fromNullable(body.next_cursor)
 * })
 *
 * const firstPage = Effect.succeed(toPage({ data: ["a", "b"], next_cursor: "c2" }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CursorPage<A, C> {
  readonly items: ReadonlyArray<A>
  readonly next: Option.Option<C>
}

/**
 * Cursor pagination: `fetch(None)` returns the first page, `fetch(Some(cursor))` the page after it; the listing
 * ends when a page has no next cursor.
 *
 * @example
 * ```ts
 * import { Paginate } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Option from "effect/Option"
 * import * as Stream from "effect/Stream"
 *
 * const pages: Record<string, Paginate.CursorPage<number, string>> = {
 *   start: { items: [1, 2], next: Option.some("p2") },
 *   p2: { items: [3], next: Option.none() }
 * }
 *
 * const items = Paginate.byCursor((cursor: Option.Option<string>) =>
 *   Effect.succeed(pages[Option.getOrElse(cursor, () => "start")])
 * )
 *
 * Effect.runPromise(Stream.runCollect(items)).then((chunk) => console.log(Array.from(chunk))) // [1, 2, 3]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const byCursor = <A, C, E, R>(
  fetch: (cursor: Option.Option<C>) => Effect.Effect<CursorPage<A, C>, E, R>
): Stream.Stream<A, E, R> =>
  Stream.paginateChunkEffect(Option.none<C>(), (cursor) =>
    Effect.map(fetch(cursor), (page) =>
      [
        Chunk.fromIterable(page.items),
        Option.map(page.next, Option.some)
      ] as const))

/**
 * Reads the `rel="next"` target of an HTTP `Link` header (RFC 8288), resolved against `base`. Parameters may come
 * in any order, quoted or not, and `rel` may list several relations.
 *
 * @example
 * ```ts
 * import { Paginate } from "@spindle/core"
 *
 * const header = '<https://api.example/items?page=3>; rel="next", <https://api.example/items?page=9>; rel="last"'
 *
 * console.log(Paginate.nextLink(header, "https://api.example/items?page=2"))
 * // { _id: "Option", _tag: "Some", value: "https://api.example/items?page=3" }
 * console.log(Paginate.nextLink('</items?page=3>; rel="next"', "https://api.example/items")) // relative: resolved
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const nextLink = (header: string | null | undefined, base: string): Option.Option<string> => {
  if (header === null || header === undefined) return Option.none()
  const linkPattern = /<([^>]*)>((?:\s*;\s*[^;,]+(?:=(?:"[^"]*"|[^;,]*))?)*)/g
  for (const match of header.matchAll(linkPattern)) {
    const params = match[2]
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(params)
    const relations = (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/)
    if (relations.includes("next")) {
      try {
        return Option.some(new URL(match[1], base).toString())
      } catch {
        return Option.none()
      }
    }
  }
  return Option.none()
}

/**
 * One page of a `Link`-header listing: its items and the response's `Link` header.
 *
 * @example
 * ```ts
 * import { Paginate } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // What a fetch of one page returns: the decoded body and the Link header of the response.
 * const page = (items: Array<string>, next?: string): Paginate.LinkPage<string> => ({
 *   items,
 *   link: next === undefined ? null : `<${next}>; rel="next"`
 * })
 *
 * const fetchPage = (url: string) => Effect.succeed(url.endsWith("/2") ? page(["c"]) : page(["a", "b"], "/items/2"))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LinkPage<A> {
  readonly items: ReadonlyArray<A>
  readonly link: string | null | undefined
}

/**
 * `Link`-header pagination (GitHub-style): fetches `url`, then each `rel="next"` link until there is none.
 *
 * @example
 * ```ts
 * import { Paginate } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Stream from "effect/Stream"
 *
 * const fetchPage = (url: string) =>
 *   Effect.succeed(
 *     url.endsWith("/2")
 *       ? { items: ["c"], link: null }
 *       : { items: ["a", "b"], link: '<https://api.example/items/2>; rel="next"' }
 *   )
 *
 * // Only as many pages are fetched as the consumer pulls.
 * const firstTwo = Paginate.byLinkHeader("https://api.example/items", fetchPage).pipe(Stream.take(2))
 *
 * Effect.runPromise(Stream.runCollect(firstTwo)).then((chunk) => console.log(Array.from(chunk))) // ["a", "b"]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const byLinkHeader = <A, E, R>(
  url: string,
  fetch: (url: string) => Effect.Effect<LinkPage<A>, E, R>
): Stream.Stream<A, E, R> =>
  Stream.paginateChunkEffect(
    url,
    (current) =>
      Effect.map(fetch(current), (page) => [Chunk.fromIterable(page.items), nextLink(page.link, current)] as const)
  )

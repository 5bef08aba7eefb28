// Seed pattern: "Async Iterators and Generators" — a paginated listing as a lazy stream, with cleanup on early exit.
import { Paginate } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { pathToFileURL } from "node:url"

/**
 * A user of the listing.
 */
export const User = Schema.Struct({ id: Schema.Number, name: Schema.String })

/**
 * A user, as decoded.
 */
export type User = typeof User.Type

const Users = Schema.Array(User)

/**
 * A request failed: the connection broke, the server answered with an error status, or the body was not the
 * expected JSON.
 */
export class FetchError extends Data.TaggedError("FetchError")<{
  readonly url: string
  readonly reason: string
}> {
  override get message(): string {
    return `GET ${this.url} failed: ${this.reason}`
  }
}

/**
 * What the listing server has seen so far.
 */
export interface ServerStats {
  /** Paths requested, in order. */
  readonly requests: ReadonlyArray<string>
  /** TCP connections open now. */
  readonly openConnections: number
  /** TCP connections accepted so far. */
  readonly connections: number
}

/**
 * A `node:http` server on 127.0.0.1 with `users` users, the upstream of this example:
 *
 * - `GET /users?limit=N[&after=ID]`: the next `N` users after `ID`, as a JSON array, with a
 *   `Link: </users?limit=N&after=LAST>; rel="next"` header while there are more (GitHub-style cursor pagination);
 * - `GET /users?limit=N&page=P`: page `P` (from 0) of `N` users, an empty array past the end (the seed's pages);
 * - `GET /users/ID`: one user.
 *
 * A listing page containing the user `failAt` is answered with a 500 instead.
 */
export interface ListingServer {
  readonly baseUrl: string
  readonly stats: Effect.Effect<ServerStats>
}

/**
 * The listing server could not start listening.
 */
export class ServerError extends Data.TaggedError("ServerError")<{ readonly cause: unknown }> {}

/**
 * Starts the listing server on an ephemeral port, closed with all its connections when the scope closes.
 */
export const listingServer = (options: {
  readonly users: number
  readonly failAt?: number | undefined
}): Effect.Effect<ListingServer, ServerError, Scope.Scope> => {
  const requests: Array<string> = []
  const counts = { openConnections: 0, connections: 0 }
  const user = (id: number): User => ({ id, name: `user-${id}` })
  const range = (from: number, count: number) =>
    Array.from({ length: Math.max(0, Math.min(count, options.users - from + 1)) }, (_, i) => user(from + i))

  const handler: http.RequestListener = (req, res) => {
    requests.push(req.url ?? "")
    const url = new URL(req.url ?? "/", "http://localhost")
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body))
    const single = /^\/users\/(\d+)$/.exec(url.pathname)
    if (single !== null) {
      const id = Number(single[1])
      return id >= 1 && id <= options.users ? json(200, user(id)) : json(404, { error: "not found" })
    }
    if (url.pathname !== "/users") return json(404, { error: "not found" })
    const limit = Number(url.searchParams.get("limit") ?? "10")
    const page = url.searchParams.get("page")
    const from = page === null ? Number(url.searchParams.get("after") ?? "0") + 1 : Number(page) * limit + 1
    const users = range(from, limit)
    if (options.failAt !== undefined && users.some((u) => u.id === options.failAt)) {
      return json(500, { error: "internal error" })
    }
    const last = users.at(-1)
    const more = page === null && last !== undefined && last.id < options.users
    json(200, users, more ? { link: `</users?limit=${limit}&after=${last.id}>; rel="next"` } : {})
  }

  return Effect.acquireRelease(
    Effect.async<http.Server, ServerError>((resume) => {
      const server = http.createServer(handler)
      server.on("connection", (socket) => {
        counts.openConnections++
        counts.connections++
        socket.on("close", () => counts.openConnections--)
      })
      const onError = (cause: Error) => resume(Effect.fail(new ServerError({ cause })))
      server.once("error", onError)
      server.listen(0, "127.0.0.1", () => {
        server.off("error", onError)
        resume(Effect.succeed(server))
      })
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(Effect.map((server) => ({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: Effect.sync((): ServerStats => ({ requests: requests.slice(), ...counts }))
  })))
}

/**
 * A client session: one keep-alive connection reused by every request, like the seed's `aiohttp.ClientSession`.
 */
export interface Session {
  /** GETs `url` and decodes its JSON body with `schema`; interrupting it aborts the request. */
  readonly get: <A, I>(
    url: string,
    schema: Schema.Schema<A, I>
  ) => Effect.Effect<{ readonly body: A; readonly link: string | undefined }, FetchError>
}

/**
 * Opens a session in the current scope. Closing the scope destroys its agent, which closes the connection: a
 * keep-alive socket left to itself would stay open until the server's idle timeout.
 */
export const openSession: Effect.Effect<Session, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => new http.Agent({ keepAlive: true, maxSockets: 1 })),
    (agent) => Effect.sync(() => agent.destroy())
  ),
  (agent): Session => ({
    get: (url, schema) =>
      Effect.flatMap(
        Effect.async<{ readonly body: unknown; readonly link: string | undefined }, FetchError>((resume, signal) => {
          const fail = (reason: string) => resume(Effect.fail(new FetchError({ url, reason })))
          const request = http.get(url, { agent, signal }, (response) => {
            const parts: Array<Buffer> = []
            response.on("data", (part: Buffer) => parts.push(part))
            response.on("error", (cause) => fail(String(cause)))
            response.on("end", () => {
              if (response.statusCode !== 200) return fail(`HTTP ${response.statusCode}`)
              let body: unknown
              try {
                body = JSON.parse(Buffer.concat(parts).toString("utf8"))
              } catch {
                return fail("the body is not JSON")
              }
              const link = response.headers.link
              resume(Effect.succeed({ body, link: Array.isArray(link) ? link.join(", ") : link }))
            })
          })
          request.on("error", (cause) => fail(String(cause)))
        }),
        ({ body, link }) =>
          Effect.map(
            Effect.mapError(
              Schema.decodeUnknown(schema)(body),
              () => new FetchError({ url, reason: "unexpected body" })
            ),
            (decoded) => ({ body: decoded, link })
          )
      )
  })
)

/**
 * The seed's async iterator: one request per item, made only when the consumer asks for the next item.
 * `Stream.mapEffect` without `concurrency` runs one effect per element pulled, in order.
 */
export const usersById = (baseUrl: string, ids: Iterable<number>): Stream.Stream<User, FetchError> =>
  Stream.unwrapScoped(Effect.map(
    openSession,
    (session) =>
      Stream.fromIterable(ids).pipe(
        Stream.mapEffect((id) => Effect.map(session.get(`${baseUrl}/users/${id}`, User), ({ body }) => body))
      )
  ))

/**
 * The seed's async generator with cleanup, over a cursor-paginated API. The session is opened when the stream
 * starts and closed when it ends — all pages read, the consumer stopped early (`Stream.take`), a request failed,
 * or the consumer was interrupted — the `finally` of the generator, without a way to forget it.
 *
 * `Paginate.byLinkHeader` asks for the next page only when the consumer has taken every user of the page before:
 * a slow consumer slows the requests down (backpressure), and one that stops after 15 users of a thousand pages
 * costs two requests.
 */
export const listUsers = (baseUrl: string, options: { readonly pageSize: number }): Stream.Stream<User, FetchError> =>
  Stream.unwrapScoped(Effect.map(
    openSession,
    (session) =>
      Paginate.byLinkHeader(
        `${baseUrl}/users?limit=${options.pageSize}`,
        (url) => Effect.map(session.get(url, Users), ({ body, link }) => ({ items: body, link }))
      )
  ))

/**
 * The seed's `fetch_users_paginated` spelled out with `Stream.paginateChunkEffect`, the primitive under
 * `Paginate`: from a state (the page number), fetch a chunk and say what the next state is, or that there is none
 * (here: after the first empty page). Each step runs when the consumer pulls past the chunk before.
 */
export const usersByPage = (baseUrl: string, options: { readonly pageSize: number }): Stream.Stream<User, FetchError> =>
  Stream.unwrapScoped(Effect.map(
    openSession,
    (session) =>
      Stream.paginateChunkEffect(0, (page) =>
        Effect.map(
          session.get(`${baseUrl}/users?limit=${options.pageSize}&page=${page}`, Users),
          ({ body }) => [Chunk.fromIterable(body), body.length === 0 ? Option.none() : Option.some(page + 1)] as const
        ))
  ))

/**
 * The runnable demo: a slow consumer (10 ms per user) takes the first 25 of 1,000 users, ten per page.
 */
export const main = Effect.scoped(Effect.gen(function*() {
  const server = yield* listingServer({ users: 1000 })
  const start = yield* Clock.currentTimeMillis
  const since = Effect.map(Clock.currentTimeMillis, (now) => String(now - start).padStart(4))
  let seen = 0
  const users = yield* listUsers(server.baseUrl, { pageSize: 10 }).pipe(
    Stream.take(25),
    Stream.tap(() =>
      Effect.gen(function*() {
        const { requests } = yield* server.stats
        if (requests.length > seen) {
          seen = requests.length
          yield* Console.log(`[${yield* since} ms] the server got GET ${requests.at(-1)}`)
        }
        yield* Effect.sleep("10 millis")
      })
    ),
    Stream.runCollect
  )
  yield* Console.log(`[${yield* since} ms] took users ${Chunk.unsafeHead(users).id}..${Chunk.unsafeLast(users).id}`)
  const stats = yield* server.stats
  yield* Console.log(`  ${stats.requests.length} page requests for 25 users of 1,000 (100 pages): none ahead of demand`)
  // The session's finalizer destroyed its agent when `take` ended the stream; the server sees the socket close.
  yield* Effect.sleep("20 millis")
  yield* Console.log(`  connections the server still has open: ${(yield* server.stats).openConnections}`)
  const three = yield* Stream.runCollect(usersById(server.baseUrl, [7, 42, 999]))
  yield* Console.log(`one request per item: ${Chunk.toReadonlyArray(three).map((u) => u.name).join(", ")}`)
}))

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

// Seed pattern: "Timeout Handling" — a time limit on one I/O call, and one deadline over a group of concurrent calls.
import { Deadline, TaskGroup } from "@spindle/core"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { pathToFileURL } from "node:url"

/**
 * One call to the simulated upstream, as its connection saw it.
 */
export interface CallRecord {
  readonly name: string
  /** Clock time (ms) the connection was opened. */
  readonly openedAt: number
  /** Clock time (ms) the connection was closed: when the response came, or when the call was interrupted. */
  readonly closedAt: number
  readonly outcome: "completed" | "interrupted"
}

/**
 * A stand-in for a slow network service: each call opens a connection, waits `latency` for the response, and
 * closes the connection in a finalizer, which also runs when the call is interrupted. The records are the witness
 * that a timeout stopped the work instead of walking away from it.
 */
export interface Upstream {
  readonly call: (name: string, latency: Duration.DurationInput) => Effect.Effect<string>
  /** Connections open now. */
  readonly open: Effect.Effect<number>
  /** Every call that has ended, in the order it ended. */
  readonly records: Effect.Effect<ReadonlyArray<CallRecord>>
}

/**
 * Creates an upstream with no calls made yet.
 */
export const makeUpstream: Effect.Effect<Upstream> = Effect.sync(() => {
  let open = 0
  const records: Array<CallRecord> = []
  const call = (name: string, latency: Duration.DurationInput): Effect.Effect<string> =>
    Effect.acquireUseRelease(
      Effect.map(Clock.currentTimeMillis, (openedAt) => {
        open++
        return openedAt
      }),
      () => Effect.as(Effect.sleep(latency), `response from ${name}`),
      (openedAt, exit) =>
        Effect.map(Clock.currentTimeMillis, (closedAt) => {
          open--
          records.push({ name, openedAt, closedAt, outcome: Exit.isInterrupted(exit) ? "interrupted" : "completed" })
        })
    )
  return {
    call,
    open: Effect.sync(() => open),
    records: Effect.sync(() => records.slice())
  }
})

/**
 * The seed's single-call timeout. `Deadline.attempt` interrupts the call when the limit passes (its connection is
 * closed before the error is returned) and fails with a typed `TimeoutError` whose `limit` is `"attempt"`: the
 * error is in the signature, so the caller cannot forget that the call may time out.
 */
export const fetchWithTimeout = (
  upstream: Upstream,
  name: string,
  latency: Duration.DurationInput,
  timeout: Duration.DurationInput
): Effect.Effect<string, Deadline.TimeoutError> => upstream.call(name, latency).pipe(Deadline.attempt(timeout))

/**
 * A call to make: which endpoint, and how long it takes to answer.
 */
export interface Endpoint {
  readonly name: string
  readonly latency: Duration.DurationInput
}

/**
 * One deadline over a group of concurrent calls. When it passes, every call still running is interrupted (the ones
 * already answered keep their clean close) and the group fails with `TimeoutError { limit: "deadline" }`. Results
 * come back in input order when everything answers in time.
 */
export const fetchAllWithin = (
  upstream: Upstream,
  endpoints: ReadonlyArray<Endpoint>,
  deadline: Duration.DurationInput
): Effect.Effect<Array<string>, Deadline.TimeoutError> =>
  TaskGroup.all(endpoints, (endpoint) => upstream.call(endpoint.name, endpoint.latency), {
    concurrency: "unbounded"
  }).pipe(Deadline.within(deadline))

/**
 * What a call under `fetchAllOrFallback` produced.
 */
export type Reply =
  | { readonly _tag: "Answered"; readonly name: string; readonly body: string }
  | { readonly _tag: "TimedOut"; readonly name: string; readonly after: Duration.Duration }

/**
 * Both limits at once, and why `TimeoutError.limit` is typed: a call slower than `perCall` degrades to a `TimedOut`
 * reply and the others still count, but when the overall `deadline` passes the whole group fails. Only the
 * per-call limit is caught; the deadline's error goes through untouched.
 */
export const fetchAllOrFallback = (
  upstream: Upstream,
  endpoints: ReadonlyArray<Endpoint>,
  limits: { readonly perCall: Duration.DurationInput; readonly deadline: Duration.DurationInput }
): Effect.Effect<Array<Reply>, Deadline.TimeoutError> =>
  TaskGroup.all(
    endpoints,
    (endpoint) =>
      upstream.call(endpoint.name, endpoint.latency).pipe(
        Deadline.attempt(limits.perCall),
        Effect.map((body): Reply => ({ _tag: "Answered", name: endpoint.name, body })),
        Effect.catchIf(
          (error) => error.limit === "attempt",
          (error) => Effect.succeed<Reply>({ _tag: "TimedOut", name: endpoint.name, after: error.duration })
        )
      ),
    { concurrency: "unbounded" }
  ).pipe(Deadline.within(limits.deadline))

/**
 * Calls made one after another under one deadline: each step gets `perCall`, or whatever is left of the deadline
 * if that is less, so a late step fails at the deadline itself (with `limit: "deadline"`), not `perCall` after it.
 */
export const fetchInSequenceWithin = (
  upstream: Upstream,
  endpoints: ReadonlyArray<Endpoint>,
  limits: { readonly perCall: Duration.DurationInput; readonly deadline: Duration.DurationInput }
): Effect.Effect<Array<string>, Deadline.TimeoutError> =>
  Effect.forEach(
    endpoints,
    (endpoint) => upstream.call(endpoint.name, endpoint.latency).pipe(Deadline.attempt(limits.perCall))
  ).pipe(Deadline.within(limits.deadline))

const summarize = (records: ReadonlyArray<CallRecord>) =>
  records.map((r) => `${r.name} ${r.outcome} after ${r.closedAt - r.openedAt} ms`).join(", ")

/**
 * The runnable demo, on the real clock.
 */
export const main = Effect.gen(function*() {
  const single = yield* makeUpstream
  const slow = yield* Effect.either(fetchWithTimeout(single, "slow", "2 seconds", "200 millis"))
  yield* Console.log(
    `one call with a 200 ms limit: ${slow._tag === "Left" ? slow.left.message : slow.right}; ` +
      `connections left open: ${yield* single.open}`
  )

  const endpoints: Array<Endpoint> = [
    { name: "users", latency: "50 millis" },
    { name: "orders", latency: "120 millis" },
    { name: "reports", latency: "5 seconds" }
  ]
  const group = yield* makeUpstream
  const all = yield* Effect.either(fetchAllWithin(group, endpoints, "300 millis"))
  yield* Console.log(
    `3 calls under one 300 ms deadline: ${all._tag === "Left" ? `${all.left._tag} (${all.left.limit})` : "done"}; ` +
      summarize(yield* group.records)
  )

  const fallback = yield* makeUpstream
  const replies = yield* fetchAllOrFallback(fallback, endpoints, { perCall: "200 millis", deadline: "1 second" })
  yield* Console.log(
    `200 ms per call, 1 s in all: ${
      replies.map((r) => r._tag === "Answered" ? `${r.name} answered` : `${r.name} timed out`).join(", ")
    }`
  )
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

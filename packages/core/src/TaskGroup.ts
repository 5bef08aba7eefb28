/**
 * Running many effects together, the two ways that matter, with bounded concurrency over lazily pulled inputs.
 *
 * - `all`: fail fast. The first failure interrupts every sibling still running and waits for their finalizers,
 *   then fails with that error: nothing keeps running in the background, nothing is leaked.
 * - `settle`: every outcome kept, typed, in input order (an `Exit` per input, defects included); `settleOrFail`
 *   runs everything and then fails with every error and its index, so no failure is silently dropped.
 * - `scoped`: a group whose members are forked as the work unfolds; when the body is done the group waits for all
 *   of them, and the first failure interrupts the others.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Bulkhead from "./Bulkhead.js"

/**
 * How many run at once: a positive integer, or `"unbounded"`.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const eightAtOnce: TaskGroup.Options = { concurrency: 8 }
 *
 * const program = TaskGroup.all([1, 2, 3], (n) => Effect.succeed(n * 2), eightAtOnce)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly concurrency: number | "unbounded"
}

const bulkheadFor = (options: Options) =>
  Bulkhead.unsafeMake<never>(
    {
      name: "TaskGroup",
      maxConcurrent: options.concurrency === "unbounded" ? Number.POSITIVE_INFINITY : options.concurrency
    },
    undefined,
    undefined,
    undefined,
    // Its workers are an implementation detail: nothing to report.
    null
  )

/**
 * Runs `f` over every element, at most `concurrency` at once, and returns the results in input order; the first
 * failure interrupts the rest (their finalizers run) and is returned.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const fetchPage = (url: string) =>
 *   url.endsWith("/404") ? Effect.fail(`not found: ${url}`) : Effect.succeed(url.length)
 *
 * // Results in input order; the first failure interrupts the siblings and is the group's error.
 * const ok = TaskGroup.all(["https://a.example/", "https://b.example/x"], fetchPage, { concurrency: 8 })
 * const failed = TaskGroup.all(["https://a.example/", "https://a.example/404"], fetchPage, { concurrency: 8 })
 *
 * Effect.runPromise(Effect.all([ok, Effect.flip(failed)])).then(console.log)
 * // [[18, 19], "not found: https://a.example/404"]
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const all = <A, B, E, R>(
  elements: Iterable<A>,
  f: (a: A, index: number) => Effect.Effect<B, E, R>,
  options: Options
): Effect.Effect<Array<B>, E, R> => Effect.suspend(() => bulkheadFor(options).forEach(elements, f))

/**
 * Like `all`, discarding results: constant memory however many elements there are.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * function* ids() {
 *   for (let i = 0; i < 100_000; i++) yield i
 * }
 *
 * // A hundred thousand inputs, pulled lazily, 16 fibers, no result array.
 * const program = TaskGroup.run(ids(), (id) => Effect.logDebug(`processed ${id}`), { concurrency: 16 })
 *
 * Effect.runPromise(program).then(() => console.log("done")) // "done"
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const run = <A, B, E, R>(
  elements: Iterable<A>,
  f: (a: A, index: number) => Effect.Effect<B, E, R>,
  options: Options
): Effect.Effect<void, E, R> => Effect.suspend(() => bulkheadFor(options).forEach(elements, f, { discard: true }))

/**
 * Runs `f` over every element, at most `concurrency` at once, and keeps every outcome in input order.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Exit from "effect/Exit"
 *
 * const check = (host: string) => host.startsWith("down") ? Effect.fail(`${host} unreachable`) : Effect.succeed(host)
 *
 * const program = TaskGroup.settle(["up.example", "down.example"], check, { concurrency: "unbounded" })
 *
 * Effect.runPromise(program).then((exits) => console.log(exits.map(Exit.isSuccess))) // [true, false]
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const settle = <A, B, E, R>(
  elements: Iterable<A>,
  f: (a: A, index: number) => Effect.Effect<B, E, R>,
  options: Options
): Effect.Effect<Array<Exit.Exit<B, E>>, never, R> => all(elements, (a, i) => Effect.exit(f(a, i)), options)

/**
 * One failed input of a settled group.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Cause from "effect/Cause"
 * import * as Effect from "effect/Effect"
 *
 * const report = (failures: ReadonlyArray<TaskGroup.Failure<string>>) =>
 *   failures.map((f) => `#${f.index}: ${Cause.pretty(f.cause)}`)
 *
 * const program = Effect.map(
 *   TaskGroup.settle(["a", "", "c"], (s) => s === "" ? Effect.fail("empty") : Effect.succeed(s), { concurrency: 2 }),
 *   (exits) => report(TaskGroup.partition(exits).failures)
 * )
 *
 * Effect.runPromise(program).then(console.log) // ["#1: Error: empty"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure<E> {
  readonly index: number
  readonly cause: Cause.Cause<E>
}

/**
 * Some inputs of a group failed: all of them are here with their index, alongside how many succeeded.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const parse = (s: string) => Number.isNaN(Number(s)) ? Effect.fail(`not a number: ${s}`) : Effect.succeed(Number(s))
 *
 * const program = TaskGroup.settleOrFail(["1", "x", "3", "y"], parse, { concurrency: 4 }).pipe(
 *   Effect.catchTag("TaskGroupFailures", (e) => Effect.succeed({ succeeded: e.succeeded, errors: e.errors }))
 * )
 *
 * Effect.runPromise(program).then(console.log) // { succeeded: 2, errors: ["not a number: x", "not a number: y"] }
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskGroupFailures<E> extends Data.TaggedError("TaskGroupFailures")<{
  readonly failures: ReadonlyArray<Failure<E>>
  readonly succeeded: number
}> {
  override get message(): string {
    const first = this.failures[0]
    return `${this.failures.length} of ${
      this.failures.length + this.succeeded
    } tasks failed; first (#${first.index}): ${Cause.pretty(first.cause)}`
  }

  /** The typed errors of the failures that have one (defects and interruptions are in `failures`). */
  get errors(): Array<E> {
    return this.failures.flatMap((failure) => Cause.failures(failure.cause).pipe((chunk) => Array.from(chunk)))
  }
}

/**
 * Splits settled outcomes into successes and failures, each with its input index.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const exits = yield* TaskGroup.settle([1, 2, 3, 4], (n) => n % 2 === 0 ? Effect.fail(n) : Effect.succeed(n), {
 *     concurrency: 2
 *   })
 *   const { failures, successes } = TaskGroup.partition(exits)
 *   return { ok: successes.map((s) => s.value), failedAt: failures.map((f) => f.index) }
 * })
 *
 * Effect.runPromise(program).then(console.log) // { ok: [1, 3], failedAt: [1, 3] }
 * ```
 *
 * @since 0.1.0
 * @category destructors
 */
export const partition = <B, E>(exits: ReadonlyArray<Exit.Exit<B, E>>): {
  readonly successes: Array<{ readonly index: number; readonly value: B }>
  readonly failures: Array<Failure<E>>
} => {
  const successes: Array<{ readonly index: number; readonly value: B }> = []
  const failures: Array<Failure<E>> = []
  exits.forEach((exit, index) => {
    if (Exit.isSuccess(exit)) successes.push({ index, value: exit.value })
    else failures.push({ index, cause: exit.cause })
  })
  return { successes, failures }
}

/**
 * Runs every input to the end (no fail fast), then succeeds with all results in order, or fails with
 * `TaskGroupFailures` holding every failure: the `gather(return_exceptions=True)` contract, made explicit.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Every input runs to the end; then either all results, or every failure at once.
 * const program = TaskGroup.settleOrFail(["a", "b"], (s) => Effect.succeed(s.toUpperCase()), { concurrency: 2 })
 *
 * Effect.runPromise(program).then(console.log) // ["A", "B"]
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const settleOrFail = <A, B, E, R>(
  elements: Iterable<A>,
  f: (a: A, index: number) => Effect.Effect<B, E, R>,
  options: Options
): Effect.Effect<Array<B>, TaskGroupFailures<E>, R> =>
  Effect.flatMap(settle(elements, f, options), (exits) => {
    const { failures, successes } = partition(exits)
    return failures.length === 0
      ? Effect.succeed(successes.map((s) => s.value))
      : Effect.fail(new TaskGroupFailures({ failures, succeeded: successes.length }))
  })

/**
 * A group being built: `fork` starts a member now and returns at once.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Crawl: each page forks its links into the same group as they are discovered.
 * const links: Record<string, ReadonlyArray<string>> = { "/": ["/a", "/b"], "/a": ["/c"], "/b": [], "/c": [] }
 * const seen = new Set<string>()
 *
 * const crawl = (group: TaskGroup.Group<never>, page: string): Effect.Effect<void> =>
 *   Effect.forEach(links[page] ?? [], (link) => {
 *     if (seen.has(link)) return Effect.void
 *     seen.add(link)
 *     return group.fork(crawl(group, link))
 *   })
 *
 * Effect.runPromise(TaskGroup.scoped((group) => crawl(group, "/"))).then(() => console.log([...seen]))
 * // ["/a", "/b", "/c"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Group<E> {
  readonly fork: <A, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<void, never, R>
}

/**
 * Runs `body`, which may fork members into the group; then waits for every member. The first member to fail
 * interrupts the others (and the body, if still running) and its error is the group's. Closing the group, for any
 * reason, interrupts whatever is left.
 *
 * @example
 * ```ts
 * import { TaskGroup } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = TaskGroup.scoped((group) =>
 *   Effect.gen(function*() {
 *     yield* group.fork(Effect.sleep("10 millis"))
 *     yield* group.fork(Effect.fail("member failed"))
 *     return "body done"
 *   })
 * )
 *
 * // The failing member interrupts the others; its error is the group's.
 * Effect.runPromise(Effect.flip(program)).then(console.log) // "member failed"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const scoped = <A, E, E2, R2>(
  body: (group: Group<E>) => Effect.Effect<A, E2, R2>
): Effect.Effect<A, E | E2, Exclude<R2, Scope.Scope>> =>
  Effect.scoped(Effect.gen(function*() {
    const set = yield* FiberSet.make<unknown, E | E2>()
    const group: Group<E> = { fork: (effect) => Effect.asVoid(FiberSet.run(set, effect)) }
    // The body is a member too, so a failing member interrupts it.
    const main = yield* FiberSet.run(set, body(group))
    // `join` fails with the first failure; `awaitEmpty` ends when every member has ended.
    yield* Effect.raceFirst(FiberSet.join(set), FiberSet.awaitEmpty(set))
    const failure = yield* Deferred.poll(set.deferred as Deferred.Deferred<void, E | E2>)
    if (failure._tag === "Some") yield* failure.value
    return yield* Fiber.join(main)
  }))

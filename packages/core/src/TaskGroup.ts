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
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly concurrency: number | "unbounded"
}

const bulkheadFor = (options: Options) =>
  Bulkhead.unsafeMake<never>({
    name: "TaskGroup",
    maxConcurrent: options.concurrency === "unbounded" ? Number.POSITIVE_INFINITY : options.concurrency
  })

/**
 * Runs `f` over every element, at most `concurrency` at once, and returns the results in input order; the first
 * failure interrupts the rest (their finalizers run) and is returned.
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

/**
 * A bulkhead: at most `maxConcurrent` effects run at once, at most `maxQueued` wait for a permit, and anything
 * beyond that is refused at once with a typed `BulkheadRejected` instead of piling up (load shedding).
 *
 * Without `maxQueued` it is a plain concurrency limit whose error channel stays `never`. Permits are handed
 * directly from a finishing effect to the longest waiter (FIFO), so a release wakes exactly one fiber.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Expiry from "./internal/expiry.js"
import { LinkedList, type Node } from "./internal/linkedList.js"
import * as Metrics from "./internal/metrics.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import { WaitTimeoutError } from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(Bulkhead.make({ maxConcurrent: 4 }), (bulkhead) => Bulkhead.TypeId in bulkhead)
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/Bulkhead")

/**
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 *
 * const isBulkhead = (u: unknown): u is Bulkhead.Bulkhead<unknown> =>
 *   typeof u === "object" && u !== null && Bulkhead.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The bulkhead's wait queue was full: the effect was not run. Safe to retry later.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   // One running, nobody may wait: the second caller is shed at once.
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 0, name: "reports" })
 *   const results = yield* Effect.all([bulkhead.run(Effect.sleep("10 millis")), bulkhead.run(Effect.void)], {
 *     concurrency: 2,
 *     mode: "either"
 *   })
 *   return results.map((r) => r._tag === "Left" ? r.left.message : "ran")
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["ran", 'Bulkhead "reports" is full: 1 running and 0 queued']
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BulkheadRejected extends Data.TaggedError("BulkheadRejected")<{
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueued: number
}> {
  override get message(): string {
    return `Bulkhead "${this.name}" is full: ${this.maxConcurrent} running and ${this.maxQueued} queued`
  }
}

/**
 * Limits of a bulkhead.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 *
 * // 8 at once, 100 waiting, the 101st waiter is rejected; a waiter not served within 2 seconds gives up.
 * const options: Bulkhead.Options = { maxConcurrent: 8, maxQueued: 100, maxWait: "2 seconds", name: "thumbnails" }
 *
 * const bulkhead = Bulkhead.make({ ...options, maxQueued: 100 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Effects running at once: a positive integer, or `Infinity` for no limit. */
  readonly maxConcurrent: number
  /** Effects waiting for a permit before new ones are rejected. Omit for an unbounded queue. */
  readonly maxQueued?: number | undefined
  /**
   * How long an effect may wait for a permit before it fails with `WaitTimeoutError` (the time it runs is not
   * counted). `0` fails at once instead of queueing. Omit to wait as long as it takes.
   */
  readonly maxWait?: Duration.DurationInput | undefined
  /** Label for metrics and errors. Defaults to `"default"`. */
  readonly name?: string | undefined
}

/**
 * A bulkhead whose `run` fails with `E` when it sheds load: `BulkheadRejected` with a bounded queue,
 * `WaitTimeoutError` with a `maxWait`, `never` with neither.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const resize = (bulkhead: Bulkhead.Bulkhead, image: string) => bulkhead.run(Effect.succeed(`${image} resized`))
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 2, maxQueued: 10 })
 *   const one = yield* resize(bulkhead, "a.png")
 *   const all = yield* bulkhead.forEach(["b.png", "c.png", "d.png"], (image) => Effect.succeed(image.length))
 *   return [one, all, yield* bulkhead.inFlight] as const
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["a.png resized", [5, 5, 5], 0]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Bulkhead<E = BulkheadRejected | WaitTimeoutError> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueued: number
  /**
   * Runs `self` with a permit, waiting in FIFO order for one (at most `maxWait`), or fails at once when the queue is
   * full.
   */
  readonly run: <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E | E2, R>
  /**
   * Runs `f` for every element with at most `maxConcurrent` at once, pulling elements lazily (a million of them
   * need no more than `maxConcurrent` fibers) and failing fast: the first failure interrupts the rest.
   */
  readonly forEach: {
    <A, B, E2, R>(
      elements: Iterable<A>,
      f: (a: A, index: number) => Effect.Effect<B, E2, R>,
      options: { readonly discard: true }
    ): Effect.Effect<void, E | E2, R>
    <A, B, E2, R>(
      elements: Iterable<A>,
      f: (a: A, index: number) => Effect.Effect<B, E2, R>,
      options?: { readonly discard?: false | undefined }
    ): Effect.Effect<Array<B>, E | E2, R>
  }
  /** Effects holding a permit now. */
  readonly inFlight: Effect.Effect<number>
  /** Effects waiting for a permit now. */
  readonly queued: Effect.Effect<number>
}

/**
 * The bulkhead service, for apps that want one bulkhead swapped by layer.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const render = (page: string) => Effect.flatMap(Bulkhead.Bulkhead, (bulkhead) => bulkhead.run(Effect.succeed(page)))
 *
 * const program = render("/home").pipe(Effect.provide(Bulkhead.layer({ maxConcurrent: 16, maxQueued: 64 })))
 *
 * Effect.runPromise(program).then(console.log) // "/home"
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Bulkhead: Context.Tag<Bulkhead, Bulkhead> = Context.GenericTag<Bulkhead>("@spindle/core/Bulkhead")

/**
 * The metrics every bulkhead (and every limiter built on one) updates, labelled `limiter=<name>`: effects
 * holding a permit, effects queued, and rejections.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import * as Metric from "effect/Metric"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 0, name: "docs-bulkhead" })
 *   yield* Effect.all([bulkhead.run(Effect.sleep("10 millis")), Effect.either(bulkhead.run(Effect.void))], {
 *     concurrency: 2
 *   })
 *   const rejected = yield* Metric.value(Bulkhead.metrics.rejections.pipe(Metric.tagged("limiter", "docs-bulkhead")))
 *   return rejected.count
 * })
 *
 * Effect.runPromise(program).then(console.log) // 1
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  inFlight: Metrics.inFlight,
  queued: Metrics.queued,
  rejections: Metrics.rejections,
  waitTimeouts: Metrics.waitTimeouts
} as const

/**
 * Type of the error a bulkhead with these options can fail with.
 *
 * @example
 * ```ts
 * import type { Bulkhead, WaitTimeout } from "@spindle/core"
 *
 * type Shedding = Bulkhead.ErrorFor<{ maxConcurrent: 4; maxQueued: 10; maxWait: "1 second" }>
 * type Plain = Bulkhead.ErrorFor<{ maxConcurrent: 4 }>
 *
 * const shedding: Shedding extends Bulkhead.BulkheadRejected | WaitTimeout.WaitTimeoutError ? true : false = true
 * const plain: [Plain] extends [never] ? true : false = true
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorFor<O extends Options> =
  | ("maxQueued" extends keyof O ? O["maxQueued"] extends undefined ? never : BulkheadRejected : never)
  | ("maxWait" extends keyof O ? O["maxWait"] extends undefined ? never : WaitTimeoutError : never)

interface Waiter {
  readonly latch: Deferred.Deferred<void, WaitTimeoutError>
  granted: boolean
  expiry: Node<Expiry.Entry> | undefined
}

/**
 * The instant a caller's wait ends, shared by the stages of a `Limiter` (permit, then token): set by the first stage
 * that makes the caller wait, `NaN` until then.
 *
 * @internal
 */
export interface Ticket {
  deadline: number
}

/**
 * How a limit built on a bulkhead names itself in `WaitTimeoutError`, and the expiry its waiters share (every key
 * of a keyed limiter shares one).
 *
 * @internal
 */
export interface WaitOptions {
  readonly error: () => WaitTimeoutError
  readonly expiry: Expiry.Expiry
}

/** @internal */
export interface Internal<E> extends Bulkhead<E> {
  /** `run`, with the caller's wait bounded by `ticket` (a Limiter's), when the bulkhead has a `maxWait`. */
  readonly runTicket: <A, E2, R>(self: Effect.Effect<A, E2, R>, ticket: Ticket) => Effect.Effect<A, E | E2, R>
  /** `maxWait` in milliseconds, or `undefined`. */
  readonly maxWaitMillis: number | undefined
}

/** @internal */
export const unsafeMake = <E>(
  options: Options,
  sharedLabels?: Metrics.Labels,
  wait?: WaitOptions,
  /** Told of every caller the bulkhead sheds (a `Policy` announces them); never called for a caller it serves. */
  onShed?: (error: BulkheadRejected | WaitTimeoutError) => void,
  /** How it reports to a tracer (a `Limiter`'s names its limiter); `null`: never. Default: as a bulkhead. */
  traceNames?: Tracing.Names | null
): Internal<E> => {
  const name = options.name ?? "default"
  const trace = traceNames === undefined ? Tracing.names("Bulkhead", "spindle.bulkhead", name) : traceNames
  const maxConcurrent = Validate.positiveInteger("Bulkhead", "maxConcurrent", options.maxConcurrent, true)
  const maxQueued = Validate.nonNegativeIntegerOr(
    "Bulkhead",
    "maxQueued",
    options.maxQueued,
    Number.POSITIVE_INFINITY,
    true
  )
  const maxWaitMillis = Validate.nonNegativeDurationOr("Bulkhead", "maxWait", options.maxWait, undefined)
  // Gauges move by deltas, so bulkheads sharing a name (the keys of a keyed limiter) add up.
  const labels = sharedLabels ?? Metrics.labels("limiter", name)
  const waiters = new LinkedList<Waiter>()
  let running = 0
  const timeoutError = wait?.error ??
    (() => new WaitTimeoutError({ module: "Bulkhead", name, key: undefined, maxWait: Duration.millis(maxWaitMillis!) }))
  // Created on first use: a bulkhead without `maxWait`, or whose callers never wait, has none.
  let expiry: Expiry.Expiry | undefined = wait?.expiry

  const release = Effect.sync(() => {
    const next = waiters.shift()
    if (next === undefined) {
      running--
      Metrics.inFlight.unsafeModify(-1, labels)
    } else {
      // Hand the permit straight to the longest waiter: `running` is unchanged.
      next.value.granted = true
      if (next.value.expiry !== undefined) expiry!.cancel(next.value.expiry)
      Metrics.queued.unsafeModify(-1, labels)
      Deferred.unsafeDone(next.value.latch, Exit.void)
    }
  })

  // The waiter's deadline passed: it leaves the queue holding nothing, and fails.
  const expire = (node: Node<Waiter>) => () => {
    if (!waiters.remove(node)) return
    Metrics.queued.unsafeModify(-1, labels)
    Metrics.waitTimeouts.unsafeUpdate(1, labels)
    const error = timeoutError()
    if (onShed !== undefined) onShed(error)
    Deferred.unsafeDone(node.value.latch, Exit.fail(error))
  }

  const arm = (node: Node<Waiter>, ticket: Ticket | undefined) =>
    Effect.clockWith((clock) => {
      let deadline = ticket === undefined ? Number.NaN : ticket.deadline
      if (Number.isNaN(deadline)) {
        deadline = clock.unsafeCurrentTimeMillis() + maxWaitMillis!
        if (ticket !== undefined) ticket.deadline = deadline
      }
      if (expiry === undefined) expiry = Expiry.make()
      return Effect.map(expiry.add(deadline, expire(node)), (entry) => {
        node.value.expiry = entry
      })
    })

  // Span events and spans, with a tracer of the application's installed only.
  const traceRejected = (traced: Tracing.Traced, reason: "queue_full" | "max_wait") =>
    Tracing.event(traced, trace!.rejected, {
      ...trace!.attributes,
      [trace!.keys.reason]: reason,
      [trace!.keys.inFlight]: running,
      [trace!.keys.queued]: waiters.length
    })
  // The wait for a permit, reported when it ends (granted, timed out or interrupted) as a span from its start.
  const traceWait = <A, E2, R>(traced: Tracing.Traced, wait: Effect.Effect<A, E2, R>): Effect.Effect<A, E2, R> => {
    const start = Tracing.nowNanos(traced)
    const ahead = waiters.length - 1
    return Effect.onExit(wait, (exit) =>
      Effect.sync(() =>
        Tracing.pastSpan(traced, trace!.wait, start, {
          ...trace!.attributes,
          [trace!.keys.queued]: ahead,
          [trace!.keys.waitMs]: Tracing.millisBetween(start, Tracing.nowNanos(traced))
        }, exit)
      ))
  }

  const enter = <A, E2, R>(self: Effect.Effect<A, E2, R>, ticket: Ticket | undefined): Effect.Effect<A, E | E2, R> =>
    Effect.uninterruptibleMask((restore): Effect.Effect<A, E | E2, R> => {
      const traced = trace === null ? undefined : Tracing.traced()
      if (running < maxConcurrent) {
        running++
        Metrics.inFlight.unsafeModify(1, labels)
        if (traced !== undefined) {
          Tracing.event(traced, trace!.admitted, { ...trace!.attributes, [trace!.keys.inFlight]: running })
        }
        return Effect.ensuring(restore(self), release)
      }
      if (waiters.length >= maxQueued) {
        Metrics.rejections.unsafeUpdate(1, labels)
        if (traced !== undefined) traceRejected(traced, "queue_full")
        const error = new BulkheadRejected({ name, maxConcurrent, maxQueued })
        if (onShed !== undefined) onShed(error)
        return Effect.fail(error as E)
      }
      if (maxWaitMillis === 0) {
        Metrics.waitTimeouts.unsafeUpdate(1, labels)
        if (traced !== undefined) traceRejected(traced, "max_wait")
        const error = timeoutError()
        if (onShed !== undefined) onShed(error)
        return Effect.fail(error as E)
      }
      const node = waiters.push({
        latch: Deferred.unsafeMake<void, WaitTimeoutError>(FiberId.none),
        granted: false,
        expiry: undefined
      })
      Metrics.queued.unsafeModify(1, labels)
      const wait = restore(Deferred.await(node.value.latch))
      const served = Effect.zipRight(
        Effect.onInterrupt(traced === undefined ? wait : traceWait(traced, wait), () =>
          node.value.granted
            ? release
            : Effect.sync(() => {
              if (node.value.expiry !== undefined) expiry!.cancel(node.value.expiry)
              if (waiters.remove(node)) Metrics.queued.unsafeModify(-1, labels)
            })),
        Effect.ensuring(restore(self), release)
      ) as Effect.Effect<A, E | E2, R>
      return maxWaitMillis === undefined ? served : Effect.zipRight(arm(node, ticket), served)
    })

  const run = <A, E2, R>(self: Effect.Effect<A, E2, R>): Effect.Effect<A, E | E2, R> => enter(self, undefined)

  const forEach = <A, B, E2, R>(
    elements: Iterable<A>,
    f: (a: A, index: number) => Effect.Effect<B, E2, R>,
    options?: { readonly discard?: boolean | undefined }
  ): Effect.Effect<Array<B> | void, E | E2, R> =>
    Effect.suspend((): Effect.Effect<Array<B> | void, E | E2, R> => {
      const discard = options?.discard === true
      if (maxConcurrent === Number.POSITIVE_INFINITY) {
        return discard
          ? Effect.forEach(elements, f, { concurrency: "unbounded", discard: true })
          : Effect.forEach(elements, f, { concurrency: "unbounded" })
      }
      const iterator = elements[Symbol.iterator]()
      const results: Array<B> = []
      let index = 0
      let done = false
      // Pull up to `maxConcurrent` elements first: one worker each, so three elements start three workers however
      // large the bulkhead, and memory stays bounded by the bulkhead's size whatever the input's.
      const firsts: Array<readonly [A, number]> = []
      while (firsts.length < maxConcurrent) {
        const next = iterator.next()
        if (next.done === true) {
          done = true
          break
        }
        firsts.push([next.value, index++])
      }
      // Indices are given when an element is pulled, so results keep input order.
      const one = (a: A, i: number): Effect.Effect<void, E2, R> => {
        const effect = f(a, i)
        return discard ? effect : Effect.map(effect, (b) => {
          results[i] = b
        })
      }
      // A worker keeps its permit from one element to the next while nobody else waits for one, and queues
      // again as soon as someone does: uncontended, an element costs no permit traffic at all; shared, the
      // bulkhead stays fair to its other callers.
      const batch = (first: readonly [A, number] | undefined) => {
        let pending = first
        let started = false
        return Effect.whileLoop({
          while: () => {
            if (pending !== undefined || !started) return !done || pending !== undefined
            return !done && waiters.length === 0
          },
          body: () => {
            started = true
            if (pending !== undefined) {
              const [a, i] = pending
              pending = undefined
              return one(a, i)
            }
            const next = iterator.next()
            if (next.done === true) {
              done = true
              return Effect.void
            }
            return one(next.value, index++)
          },
          step: () => {}
        })
      }
      const worker = (first: readonly [A, number] | undefined): Effect.Effect<void, E | E2, R> =>
        Effect.zipRight(
          run(Effect.suspend(() => batch(first))),
          Effect.suspend(() => done ? Effect.void : worker(undefined))
        )
      const workers = firsts.map(worker)
      return Effect.as(
        Effect.all(workers, { concurrency: "unbounded", discard: true }),
        discard ? undefined : results
      )
    })

  return {
    [TypeId]: TypeId,
    name,
    maxConcurrent,
    maxQueued,
    run,
    forEach: forEach as Bulkhead<E>["forEach"],
    inFlight: Effect.sync(() => running),
    queued: Effect.sync(() => waiters.length),
    runTicket: (self, ticket) => enter(self, maxWaitMillis === undefined ? undefined : ticket),
    maxWaitMillis
  }
}

/**
 * Creates a bulkhead. With `maxQueued`, `run` can fail with `BulkheadRejected`, with `maxWait` with
 * `WaitTimeoutError`; without either, the error channel is untouched. Invalid options are a defect
 * (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   // Without maxQueued nobody is ever rejected: the error type is `never`.
 *   const unbounded = yield* Bulkhead.make({ maxConcurrent: 4 })
 *   // With it, `BulkheadRejected` appears in the error channel.
 *   const bounded = yield* Bulkhead.make({ maxConcurrent: 4, maxQueued: 20 })
 *   const a = yield* unbounded.run(Effect.succeed(1))
 *   const b = yield* bounded.run(Effect.succeed(2)).pipe(Effect.catchTag("BulkheadRejected", () => Effect.succeed(0)))
 *   return a + b
 * })
 *
 * Effect.runPromise(program).then(console.log) // 3
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options>(options: O): Effect.Effect<Bulkhead<ErrorFor<O>>> =>
  Effect.sync(() => unsafeMake<ErrorFor<O>>(options))

/**
 * A layer providing one `Bulkhead`.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const BulkheadLive = Bulkhead.layer({ maxConcurrent: 8, maxQueued: 100, name: "db" })
 *
 * const query = (sql: string) => Effect.flatMap(Bulkhead.Bulkhead, (bulkhead) => bulkhead.run(Effect.succeed(sql)))
 *
 * Effect.runPromise(query("select 1").pipe(Effect.provide(BulkheadLive))).then(console.log) // "select 1"
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Bulkhead> =>
  Layer.effect(Bulkhead, Effect.sync(() => unsafeMake<BulkheadRejected | WaitTimeoutError>(options)))

/**
 * Reads `maxConcurrent` and an optional `maxQueued` from configuration, as positive / non-negative integers, and an
 * optional `maxWait` duration.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Effect from "effect/Effect"
 *
 * const options = Config.nested(Bulkhead.config("db"), "db")
 *
 * const provider = ConfigProvider.fromJson({ db: { maxConcurrent: 8, maxQueued: 50 } })
 *
 * Effect.runPromise(Effect.withConfigProvider(options, provider)).then(console.log)
 * // { maxConcurrent: 8, maxQueued: 50, name: "db" }
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const config = (name?: string): Config.Config<Options> =>
  Config.all({
    maxConcurrent: Config.integer("maxConcurrent").pipe(
      Config.validate({ message: "must be a positive integer", validation: (n) => n >= 1 })
    ),
    maxQueued: Config.integer("maxQueued").pipe(
      Config.validate({ message: "must be a non-negative integer", validation: (n) => n >= 0 }),
      Config.option,
      Config.map((option) => option._tag === "Some" ? option.value : undefined)
    ),
    maxWait: maxWaitConfig
  }).pipe(
    Config.map(({ maxWait, ...options }) => ({ ...options, name, ...(maxWait === undefined ? {} : { maxWait }) }))
  )

/** @internal */
export const maxWaitConfig: Config.Config<Duration.Duration | undefined> = Config.duration("maxWait").pipe(
  Config.validate({
    message: "must be a non-negative finite duration",
    validation: (d) => Number.isFinite(Duration.toMillis(d)) && Duration.toMillis(d) >= 0
  }),
  Config.option,
  Config.map((option) => option._tag === "Some" ? option.value : undefined)
)

/**
 * A layer providing one `Bulkhead` configured through `Config`.
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@spindle/core"
 * import * as Config from "effect/Config"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * const BulkheadLive = Bulkhead.layerConfig(Config.nested(Bulkhead.config("db"), "db")).pipe(
 *   Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({ db: { maxConcurrent: 0 } })))
 * )
 *
 * // maxConcurrent 0 is refused as a ConfigError, not a defect.
 * const program = Effect.flatMap(Bulkhead.Bulkhead, (b) => b.run(Effect.void)).pipe(
 *   Effect.provide(BulkheadLive),
 *   Effect.catchTag("ConfigError", (e) => Effect.succeed(`bad config: ${e._op}`))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "bad config: InvalidData"
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options: Config.Config<Options>): Layer.Layer<Bulkhead, ConfigError.ConfigError> =>
  Layer.effect(Bulkhead, Effect.map(options, (resolved) => unsafeMake<BulkheadRejected | WaitTimeoutError>(resolved)))

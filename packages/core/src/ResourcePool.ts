/**
 * A pool of scoped resources (connections, clients, browser pages) over Effect's `Pool`, adding what a service
 * needs around it: validation on borrow (a broken resource is discarded and replaced, never handed out), a
 * borrow timeout with a typed error instead of an indefinite wait, idle time-to-live, and metrics (size, in use,
 * waiters, borrow latency, discards).
 *
 * Resources are acquired and released by the pool's own scope: closing it releases every resource, borrowed or
 * not, once its borrower is done. A borrowed resource goes back when the borrower's scope closes, however it
 * closes — the Effect form of an async context manager.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Pool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as Metrics from "./internal/metrics.js"
import * as Tracing from "./internal/tracing.js"
import * as Validate from "./internal/validate.js"
import { WaitTimeoutError } from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(
 *   ResourcePool.make({ acquire: Effect.succeed({}), max: 1 }),
 *   (pool) => ResourcePool.TypeId in pool
 * )
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/ResourcePool")

/**
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 *
 * const isResourcePool = (u: unknown): u is ResourcePool.ResourcePool<unknown, unknown> =>
 *   typeof u === "object" && u !== null && ResourcePool.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * No resource could be borrowed within `acquireTimeout`.
 *
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* ResourcePool.make({ acquire: Effect.succeed("conn"), max: 1, acquireTimeout: "20 millis" })
 *   yield* pool.get // hold the only resource for the rest of this scope
 *   return yield* pool.use(Effect.succeed).pipe(Effect.catchTag("PoolTimeout", (e) => Effect.succeed(e.message)))
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 'No resource from pool "default" within 20ms'
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolTimeout extends Data.TaggedError("PoolTimeout")<{
  readonly name: string
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `No resource from pool "${this.name}" within ${Duration.format(this.timeout)}`
  }
}

/**
 * Every resource tried failed validation, fresh ones included: the pool cannot hand out a working one.
 *
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * // Every connection fails its health check: the pool gives up with a typed error instead of handing one out.
 * const program = Effect.gen(function*() {
 *   const pool = yield* ResourcePool.make({
 *     acquire: Effect.succeed({ healthy: false }),
 *     max: 2,
 *     validate: (conn) => Effect.succeed(conn.healthy),
 *     name: "db"
 *   })
 *   return yield* pool.use(Effect.succeed).pipe(
 *     Effect.catchTag("PoolExhausted", (e) => Effect.succeed(e.attempts > 0))
 *   )
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // true
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolExhausted extends Data.TaggedError("PoolExhausted")<{
  readonly name: string
  readonly attempts: number
}> {
  override get message(): string {
    return `Pool "${this.name}" found no valid resource in ${this.attempts} attempts`
  }
}

/**
 * Options of a pool of `A`s.
 *
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 * import type * as Scope from "effect/Scope"
 *
 * interface Connection {
 *   readonly id: number
 *   readonly ping: Effect.Effect<boolean>
 * }
 *
 * let nextId = 0
 * const connect = Effect.acquireRelease(
 *   Effect.sync((): Connection => ({ id: ++nextId, ping: Effect.succeed(true) })),
 *   (conn) => Effect.log(`closed ${conn.id}`)
 * )
 *
 * // `acquire` needs a Scope: the pool provides its own, which releases the connection.
 * const options: ResourcePool.Options<Connection, never, Scope.Scope> = {
 *   acquire: connect,
 *   min: 1,
 *   max: 10,
 *   idleTimeToLive: "30 seconds",
 *   validate: (conn) => conn.ping,
 *   acquireTimeout: "2 seconds",
 *   name: "db"
 * }
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* ResourcePool.make(options)
 *   return yield* pool.use((conn) => Effect.succeed(conn.id))
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A, E, R> {
  /** Acquires one resource; its finalizers (in the provided scope) release it. */
  readonly acquire: Effect.Effect<A, E, R>
  /** Resources kept even when idle. Default 0. */
  readonly min?: number | undefined
  /** Resources at most. */
  readonly max: number
  /** An idle resource above `min` is released after this long. Default 1 minute. */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  /** Checked on every borrow; `false` (or a failure) discards the resource and borrows another. */
  readonly validate?: ((resource: A) => Effect.Effect<boolean, unknown>) | undefined
  /** How long a borrow may take, acquiring and validating included (`PoolTimeout`). Default: no limit. */
  readonly acquireTimeout?: Duration.DurationInput | undefined
  /**
   * How long a borrower may queue while all `max` resources are borrowed before it fails with `WaitTimeoutError`
   * (time spent acquiring or validating a resource is not queueing). `0` fails at once instead of queueing. Default:
   * no limit.
   */
  readonly maxWait?: Duration.DurationInput | undefined
  /** Label for metrics and errors. Default `"default"`. */
  readonly name?: string | undefined
}

/**
 * What a pool holds now.
 *
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* ResourcePool.make({ acquire: Effect.succeed("conn"), max: 4 })
 *   const during: ResourcePool.Stats = yield* pool.use(() => pool.stats)
 *   return during
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // { size: 1, inUse: 1, waiting: 0 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly size: number
  readonly inUse: number
  readonly waiting: number
}

/**
 * A pool of `A`s whose acquisition may fail with `E`.
 *
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const query = (pool: ResourcePool.ResourcePool<{ readonly id: number }, never>, sql: string) =>
 *   pool.use((conn) => Effect.succeed(`${sql} on connection ${conn.id}`))
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* ResourcePool.make({ acquire: Effect.succeed({ id: 1 }), max: 2 })
 *   return yield* query(pool, "select 1")
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // "select 1 on connection 1"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ResourcePool<A, E> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Borrows a valid resource until the current scope closes. */
  readonly get: Effect.Effect<A, E | PoolTimeout | PoolExhausted, Scope.Scope>
  /** Borrows a valid resource for the duration of `f`. */
  readonly use: <B, E2, R2>(
    f: (resource: A) => Effect.Effect<B, E2, R2>
  ) => Effect.Effect<B, E | E2 | PoolTimeout | PoolExhausted, R2>
  /** Marks a resource broken: it is released when returned and replaced. */
  readonly invalidate: (resource: A) => Effect.Effect<void>
  /** Size, borrowed and waiting now. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * Creates a pool in the current scope; with `maxWait`, a borrow can also fail with `WaitTimeoutError` (part of the
 * pool's `E`). Invalid options are a defect (`IllegalArgumentException`) naming the field.
 *
 * @example
 * ```ts
 * import { ResourcePool } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * interface Connection {
 *   readonly id: number
 *   readonly broken: boolean
 * }
 *
 * const program = Effect.gen(function*() {
 *   let opened = 0
 *   const pool = yield* ResourcePool.make({
 *     acquire: Effect.sync((): Connection => ({ id: ++opened, broken: false })),
 *     max: 2,
 *     validate: (conn: Connection) => Effect.succeed(!conn.broken)
 *   })
 *   // A borrower that finds its resource broken invalidates it; the next borrow gets a fresh one.
 *   const first = yield* pool.use((conn) => Effect.as(pool.invalidate(conn), conn.id))
 *   const second = yield* pool.use((conn) => Effect.succeed(conn.id))
 *   return [first, second]
 * })
 *
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // [1, 2]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <A, E, R>(
    options: Options<A, E, R> & { readonly maxWait?: undefined }
  ): Effect.Effect<ResourcePool<A, E>, never, Scope.Scope | Exclude<R, Scope.Scope>>
  <A, E, R>(
    options: Options<A, E, R>
  ): Effect.Effect<ResourcePool<A, E | WaitTimeoutError>, never, Scope.Scope | Exclude<R, Scope.Scope>>
} = <A, E, R>(
  options: Options<A, E, R>
): Effect.Effect<ResourcePool<A, E | WaitTimeoutError>, never, Scope.Scope | Exclude<R, Scope.Scope>> =>
  Effect.gen(function*() {
    const name = options.name ?? "default"
    const max = Validate.positiveInteger("ResourcePool", "max", options.max)
    const min = options.min === undefined ? 0 : Validate.nonNegativeInteger("ResourcePool", "min", options.min)
    if (min > max) Validate.illegal("ResourcePool", `min (${min}) must be <= max (${max})`)
    const ttl = Validate.durationOr("ResourcePool", "idleTimeToLive", options.idleTimeToLive, 60_000)
    const timeoutMillis = Validate.durationOr("ResourcePool", "acquireTimeout", options.acquireTimeout, undefined)
    const maxWaitMillis = Validate.nonNegativeDurationOr("ResourcePool", "maxWait", options.maxWait, undefined)
    const labels = Metrics.labels("pool", name)
    let size = 0
    let inUse = 0
    let waiting = 0
    // Borrows between `pool.get` and the return of what it gave: beyond `max`, a borrow queues for a resource.
    let claims = 0

    // Count resources as they are created and released by the pool.
    const acquire = Effect.tap(options.acquire, () =>
      Effect.zipRight(
        Effect.sync(() => {
          size++
          Metrics.poolSize.unsafeUpdate(size, labels)
        }),
        Effect.addFinalizer(() =>
          Effect.sync(() => {
            size--
            Metrics.poolSize.unsafeUpdate(size, labels)
          })
        )
      ))
    const pool = yield* Pool.makeWithTTL({
      acquire: acquire as Effect.Effect<A, E, Exclude<R, Scope.Scope> | Scope.Scope>,
      min,
      max,
      timeToLive: Duration.millis(ttl),
      timeToLiveStrategy: "usage"
    })

    const validate = options.validate
    const discard = (resource: A, scope: Scope.CloseableScope) =>
      Effect.zipRight(
        Effect.zipRight(pool.invalidate(resource), Scope.close(scope, Exit.void)),
        Effect.sync(() => Metrics.poolDiscarded.unsafeUpdate(1, labels))
      )

    // A failed or throwing check discards the resource; an interrupted one is an interruption.
    const checkValid = (
      resource: A,
      restore: <AX, EX, RX>(effect: Effect.Effect<AX, EX, RX>) => Effect.Effect<AX, EX, RX>
    ): Effect.Effect<boolean> =>
      validate === undefined ? Effect.succeed(true) : restore(validate(resource)).pipe(
        Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.succeed(false))
      )

    // Each attempt borrows into a scope of its own, so a resource that fails validation goes back (to be
    // released) at once instead of staying borrowed until the caller's scope closes. Until the resource is handed
    // over to the caller's scope, any way out — failure, a timeout, an interruption during validation — closes the
    // attempt's scope, returning the resource to the pool.
    // Only a borrow that queues (every resource claimed) runs a timer, for what is left of its `maxWait`.
    const getInto = (scope: Scope.CloseableScope, deadline: number): Effect.Effect<A, E | WaitTimeoutError> =>
      Effect.zipRight(
        Scope.addFinalizer(scope, Effect.sync(() => claims--)),
        Effect.suspend(() => {
          claims++
          const got = Scope.extend(pool.get, scope)
          if (maxWaitMillis === undefined || claims <= max) return got
          const timeout = new WaitTimeoutError({
            module: "ResourcePool",
            name,
            key: undefined,
            maxWait: Duration.millis(maxWaitMillis)
          })
          return Effect.clockWith((clock) => {
            const left = deadline - clock.unsafeCurrentTimeMillis()
            return left <= 0
              ? Effect.fail(timeout)
              : Effect.timeoutFail(got, { duration: Duration.millis(left), onTimeout: () => timeout })
          })
        })
      )

    const attempt = (
      outer: Scope.Scope,
      attempts: number,
      deadline: number
    ): Effect.Effect<A, E | WaitTimeoutError | PoolExhausted> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          if (attempts > max + 1) return yield* new PoolExhausted({ name, attempts: attempts - 1 })
          const scope = yield* Scope.make()
          const checked = Effect.flatMap(
            restore(getInto(scope, deadline)),
            (resource) => Effect.map(checkValid(resource, restore), (valid) => ({ resource, valid }))
          )
          const { resource, valid } = yield* Effect.onError(
            checked,
            (cause) => Scope.close(scope, Exit.failCause(cause))
          )
          if (!valid) {
            yield* discard(resource, scope)
            return yield* restore(attempt(outer, attempts + 1, deadline))
          }
          inUse++
          Metrics.poolInUse.unsafeUpdate(inUse, labels)
          yield* Scope.addFinalizer(
            outer,
            Effect.zipRight(
              Effect.sync(() => {
                inUse--
                Metrics.poolInUse.unsafeUpdate(inUse, labels)
              }),
              Scope.close(scope, Exit.void)
            )
          )
          return resource
        })
      )

    const get: Effect.Effect<A, E | WaitTimeoutError | PoolTimeout | PoolExhausted, Scope.Scope> = Effect
      .uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const outer = yield* Effect.scope
          const started = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
          waiting++
          Metrics.poolWaiters.unsafeUpdate(waiting, labels)
          const borrow = restore(attempt(outer, 1, started + (maxWaitMillis ?? 0)))
          const timed = timeoutMillis === undefined ? borrow : borrow.pipe(
            Effect.timeoutFail({
              duration: Duration.millis(timeoutMillis),
              onTimeout: () => new PoolTimeout({ name, timeout: Duration.millis(timeoutMillis) })
            })
          )
          // With a tracer of the application's installed, a borrow is a span: what the pool held when it started,
          // and how long it took (waiting, creating and validating the resource).
          const traced = Tracing.traced()
          const reported = traced === undefined ? timed : Effect.withSpan(
            Effect.onExit(timed, () =>
              Effect.clockWith((clock) =>
                Effect.annotateCurrentSpan("spindle.pool.wait_ms", clock.unsafeCurrentTimeMillis() - started)
              )),
            "ResourcePool.get",
            {
              attributes: {
                "spindle.pool.name": name,
                "spindle.pool.size": size,
                "spindle.pool.in_use": inUse,
                "spindle.pool.waiting": waiting - 1
              },
              captureStackTrace: false
            }
          )
          return yield* reported.pipe(
            Effect.ensuring(Effect.clockWith((clock) =>
              Effect.sync(() => {
                waiting--
                Metrics.poolWaiters.unsafeUpdate(waiting, labels)
                Metrics.poolAcquireLatency.unsafeUpdate(
                  Duration.millis(clock.unsafeCurrentTimeMillis() - started),
                  labels
                )
              })
            ))
          )
        })
      )

    const resourcePool: ResourcePool<A, E | WaitTimeoutError> = {
      [TypeId]: TypeId,
      name,
      get,
      use: (f) => Effect.scoped(Effect.flatMap(get, f)),
      invalidate: (resource) => pool.invalidate(resource),
      stats: Effect.sync(() => ({ size, inUse, waiting }))
    }
    return resourcePool
  })

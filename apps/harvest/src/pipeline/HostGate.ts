/**
 * The gate every attempt passes on its way to a host (`host:port`): the host's circuit breaker first, then the job's
 * per-host limiter (concurrency, and the rate with its burst), shared across instances through the limit stores when
 * Redis is configured.
 *
 * The breaker is asked first, so a host whose circuit is open fails the attempt at once (`circuit_open`): no slot is
 * taken, no rate token spent, no request made and no attempt counted. It is asked again once the limiter lets the
 * attempt through, since the circuit may have opened while it waited. What the gate sees (attempts waiting, sent,
 * done, and their errors; circuits opening and closing) is published as `HostEvent`s, which the dashboard folds into
 * its per-host view: the gate keeps no state for it.
 *
 * @since 0.1.0
 */
import { CircuitBreaker, KeyedCircuitBreaker, KeyedLimiter, SlotStore, TokenBucketStore } from "@spindle/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Domain from "../Domain.js"
import { HarvestConfig } from "../HarvestConfig.js"
import { FetchFailure } from "./Fetcher.js"

/**
 * A circuit's state as the dashboard shows it.
 *
 * @since 0.1.0
 * @category models
 */
export type Circuit = "closed" | "open" | "half-open"

/**
 * What happened at the gate of `host`, at `at` (epoch ms): an attempt began `Waiting` for its slot and token, was
 * `Sent`, ended (`Done`, with its error if it failed), or `Left` without being sent (the circuit opened meanwhile, or
 * it was interrupted); or the host's circuit changed.
 *
 * @since 0.1.0
 * @category models
 */
export type HostEvent =
  | { readonly _tag: "Waiting"; readonly host: string; readonly at: number }
  | { readonly _tag: "Left"; readonly host: string; readonly at: number }
  | {
    readonly _tag: "Sent"
    readonly host: string
    readonly at: number
    /** The rate tokens the job's limiter has left for the host, or `null` for a job without a rate limit. */
    readonly tokens: number | null
  }
  | {
    readonly _tag: "Done"
    readonly host: string
    readonly at: number
    readonly error: { readonly code: string; readonly message: string } | null
  }
  | { readonly _tag: "Circuit"; readonly host: string; readonly at: number; readonly circuit: Circuit }

/**
 * One job's gate: its own per-host limits, the process's breakers.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobGate {
  /**
   * Runs `attempt` against `host` once the breaker and the limiter allow it; `attempt` only starts then, so an
   * attempt it counts is an attempt made.
   */
  readonly run: <A>(host: string, attempt: Effect.Effect<A, FetchFailure>) => Effect.Effect<A, FetchFailure>
}

/**
 * The gate service.
 *
 * @since 0.1.0
 * @category models
 */
export interface HostGate {
  /** A job's gate with `limits` (its own per-host limiter; forgetting the gate frees it). */
  readonly forJob: (job: string, limits: Domain.JobOptions) => Effect.Effect<JobGate>
  /** Requests on the wire now, in this process. */
  readonly onWire: () => number
  /** The circuit of `host` now. */
  readonly circuit: (host: string) => Effect.Effect<Circuit>
  /** Every event from now on, for as long as the stream is read. */
  readonly events: Stream.Stream<HostEvent>
}

/**
 * The gate's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const HostGate: Context.Tag<HostGate, HostGate> = Context.GenericTag<HostGate>("@spindle/harvest/HostGate")

const circuitOf = (state: CircuitBreaker.State): Circuit =>
  state._tag === "Open" ? "open" : state._tag === "HalfOpen" ? "half-open" : "closed"

const circuitOpen = (message: string, retryAfter: Duration.Duration | undefined) =>
  new FetchFailure({ code: "circuit_open", message, retryable: true, httpStatus: null, retryAfter })

// The shared limit stores (Redis) being unreachable says nothing about the item or its host: no request is sent
// without their decision, and the attempt waits for them (backing off, logged, interruptible) instead of spending
// the item's attempts. With every worker waiting, leasing pauses by itself until the store answers again.
const isStoreError = (error: { readonly _tag: string }) =>
  error._tag === "SlotStoreError" || error._tag === "TokenBucketStoreError"

/**
 * A gate whose breakers live as long as the scope: a host that fails half of at least 20 calls within 10 s is given a
 * rest of 2 s, doubling up to 30 s while it keeps failing. 429 is throttling (handled by `Retry-After`); 4xx and
 * oversized bodies say nothing about the host's health.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  HostGate,
  never,
  HarvestConfig | TokenBucketStore.TokenBucketStore | Scope.Scope
> = Effect.gen(function*() {
  const config = yield* HarvestConfig
  const store = yield* TokenBucketStore.TokenBucketStore
  // Provided with REDIS_URL: per-host concurrency shared by every instance, not only this process's.
  const sharedSlots = yield* Effect.serviceOption(SlotStore.SlotStore)
  const clock = yield* Effect.clock
  const pubsub = yield* Effect.acquireRelease(PubSub.unbounded<HostEvent>(), PubSub.shutdown)
  const publish = (event: HostEvent) => {
    pubsub.unsafeOffer(event)
  }

  const breakers = yield* KeyedCircuitBreaker.make<FetchFailure>({
    name: "hosts",
    policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 20 }),
    cooldown: "2 seconds",
    cooldownFactor: 2,
    cooldownMax: "30 seconds",
    isFailure: (error) => error.code === "network" || error.code === "timeout" || (error.httpStatus ?? 0) >= 500
  })
  yield* breakers.changes.pipe(
    Stream.runForEach((change) =>
      Effect.sync(() =>
        publish({
          _tag: "Circuit",
          host: change.key,
          at: clock.unsafeCurrentTimeMillis(),
          circuit: circuitOf(change.state)
        })
      )
    ),
    Effect.forkScoped
  )

  let onWire = 0
  let lastStoreWarning = Number.NEGATIVE_INFINITY
  const storeBackoff = Schedule.exponential("100 millis", 2).pipe(
    Schedule.either(Schedule.spaced("5 seconds")),
    // One warning every few seconds for the whole process, not one per waiting attempt. Every error of the attempt
    // passes through the schedule (`retry` asks `while` after it), so only the store's own are reported.
    Schedule.tapInput((error: { readonly _tag: string; readonly message: string }) =>
      Effect.suspend(() => {
        if (!isStoreError(error)) return Effect.void
        const now = clock.unsafeCurrentTimeMillis()
        if (now - lastStoreWarning < 5_000) return Effect.void
        lastStoreWarning = now
        return Effect.logWarning("limit store unavailable; fetches wait for it").pipe(
          Effect.annotateLogs({ error: error.message })
        )
      })
    )
  )

  const forJob = (job: string, limits: Domain.JobOptions) =>
    Effect.gen(function*() {
      const hosts = yield* KeyedLimiter.make({
        name: "hosts",
        keyPrefix: `harvest:${job}`,
        concurrency: limits.perHostConcurrency,
        rate: limits.perHostRps === null
          ? undefined
          : { limit: limits.perHostRps, interval: "1 second", burst: limits.perHostBurst }
      }).pipe(Effect.provideService(TokenBucketStore.TokenBucketStore, store))

      // Read only for a job with a rate limit: the dashboard shows what is left of it.
      const tokensLeft = (host: string): Effect.Effect<number | null> =>
        limits.perHostRps === null ? Effect.succeed(null) : Effect.map(
          Effect.orElseSucceed(hosts.stats(host), () => Option.none<KeyedLimiter.KeyStats>()),
          (stats) =>
            Option.isSome(stats) && Option.isSome(stats.value.tokens)
              ? Math.floor(stats.value.tokens.value * 100) / 100
              : null
        )
      const run = <A>(host: string, attempt: Effect.Effect<A, FetchFailure>): Effect.Effect<A, FetchFailure> =>
        Effect.suspend(() => {
          let sent = false
          // Past the limiter: the circuit may have opened while the attempt waited; otherwise it goes on the wire.
          const send = Effect.flatMap(Effect.zip(breakers.state(host), tokensLeft(host)), ([state, tokens]) => {
            const now = clock.unsafeCurrentTimeMillis()
            if (Option.isSome(state) && state.value._tag === "Open") {
              return Effect.fail(circuitOpen(`circuit open for ${host}`, Duration.millis(state.value.until - now)))
            }
            sent = true
            onWire++
            publish({ _tag: "Sent", host, at: now, tokens })
            return Effect.onExit(attempt, (exit) =>
              Effect.sync(() => {
                onWire--
                const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
                publish({
                  _tag: "Done",
                  host,
                  at: clock.unsafeCurrentTimeMillis(),
                  error: error === undefined ? null : { code: error.code, message: error.message }
                })
              }))
          })
          const limited = hosts.run(host, send)
          // The shared slot is taken first, so the in-process limiter inside it never waits and its rate token is
          // still taken right before the request starts; the slot is a lease, refreshed like the items' leases.
          const shared = Option.isNone(sharedSlots) ? limited : SlotStore.withSlot(sharedSlots.value, {
            key: `harvest:${job}:${host}`,
            limit: limits.perHostConcurrency,
            ttl: Duration.millis(config.leaseMs)
          })(limited)
          const waited = Effect.retry(shared, {
            while: isStoreError as (error: unknown) => boolean,
            schedule: storeBackoff
          }) as Effect.Effect<A, FetchFailure>
          return Effect.catchTag(
            breakers.run(
              host,
              Effect.suspend(() => {
                publish({ _tag: "Waiting", host, at: clock.unsafeCurrentTimeMillis() })
                return Effect.onExit(waited, () =>
                  Effect.sync(() => {
                    if (!sent) publish({ _tag: "Left", host, at: clock.unsafeCurrentTimeMillis() })
                  }))
              })
            ),
            "CircuitOpen",
            (open) => Effect.fail(circuitOpen(open.message, open.retryAfter))
          )
        })

      return {
        run
      } satisfies JobGate
    })

  return HostGate.of({
    forJob,
    onWire: () => onWire,
    circuit: (host) => Effect.map(breakers.state(host), Option.match({ onNone: () => "closed", onSome: circuitOf })),
    events: Stream.fromPubSub(pubsub)
  })
})

/**
 * The gate as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<HostGate, never, HarvestConfig | TokenBucketStore.TokenBucketStore> = Layer.scoped(
  HostGate,
  make
)

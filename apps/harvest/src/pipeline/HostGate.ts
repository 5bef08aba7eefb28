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
import type { CircuitBreaker } from "@spindle/core"
import { KeyedCircuitBreaker, KeyedLimiter, SlotStore, TokenBucketStore } from "@spindle/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Domain from "../Domain.js"
import { fetchPolicyDefaults, HarvestConfig } from "../HarvestConfig.js"
import * as Telemetry from "../Telemetry.js"
import { FetchFailure } from "./Fetcher.js"

/**
 * A circuit's state as the dashboard shows it.
 *
 * @since 0.1.0
 * @category models
 */
export type Circuit = "closed" | "open" | "half-open"

/**
 * What happened at the gate of `host`: `Activity` sums up, per host, the attempts that began waiting for their slot
 * and token, left without being sent (the circuit opened meanwhile, or they were interrupted), were sent, and ended
 * since the host's previous `Activity` (published at most every `activityInterval`, and only for a host that saw
 * some), with the errors of those that failed and the rate tokens left at the latest request; `Circuit` is a change of
 * the host's circuit, published as it happens. `at` is epoch milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export type HostEvent =
  | {
    readonly _tag: "Activity"
    readonly host: string
    readonly at: number
    readonly waiting: number
    readonly left: number
    readonly sent: number
    readonly done: number
    /** The rate tokens the job's limiter had left for the host at the latest request, `null` without a rate limit. */
    readonly tokens: number | null | undefined
    readonly errors: ReadonlyArray<{ readonly at: number; readonly code: string; readonly message: string }>
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

/**
 * How often each host's `Activity` is published (when it saw any).
 *
 * @since 0.1.0
 * @category constants
 */
export const activityInterval: Duration.Duration = Duration.millis(100)

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
  const recorder = Telemetry.recorder()
  const tracing = yield* Telemetry.TracingRef
  const pubsub = yield* Effect.acquireRelease(PubSub.unbounded<HostEvent>(), PubSub.shutdown)
  const publish = (event: HostEvent) => {
    pubsub.unsafeOffer(event)
  }
  // Per-attempt events would cost more than the rest of the gate: what happens is summed per host here (plain counters)
  // and published as one `Activity` per host and interval.
  interface Tally {
    waiting: number
    left: number
    sent: number
    done: number
    tokens: number | null | undefined
    errors: Array<{ readonly at: number; readonly code: string; readonly message: string }>
  }
  let tallies = new Map<string, Tally>()
  const tally = (host: string): Tally => {
    let entry = tallies.get(host)
    if (entry === undefined) {
      entry = { waiting: 0, left: 0, sent: 0, done: 0, tokens: undefined, errors: [] }
      tallies.set(host, entry)
    }
    return entry
  }
  const flush = Effect.sync(() => {
    if (tallies.size === 0) return
    const at = clock.unsafeCurrentTimeMillis()
    const flushed = tallies
    tallies = new Map()
    for (const [host, t] of flushed) publish({ _tag: "Activity", host, at, ...t })
  })
  yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(activityInterval), flush)))

  // The fetch policy's breaker (`fetchPolicyDefaults`, tuned by POLICY_FETCH_BREAKER_*), one per host.
  const breakers = yield* KeyedCircuitBreaker.make<FetchFailure>({
    ...(config.fetchPolicy.breaker ?? fetchPolicyDefaults.breaker),
    name: "hosts",
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
  const remoteStore = Option.isSome(config.redisUrl) || Option.isSome(sharedSlots)
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

      // A job's per-host concurrency no smaller than the process's, no rate and no shared slots: nothing for the
      // limiter to hold back, so it is left out of the way.
      const unlimited = limits.perHostRps === null && limits.perHostConcurrency >= config.maxConcurrency &&
        Option.isNone(sharedSlots)
      // Read only for a job with a rate limit: the dashboard shows what is left of it.
      const tokensLeft = (host: string): Effect.Effect<number | null> =>
        limits.perHostRps === null ? Effect.succeed(null) : Effect.map(
          Effect.orElseSucceed(hosts.stats(host), () => Option.none<KeyedLimiter.KeyStats>()),
          (stats) =>
            Option.isSome(stats) && Option.isSome(stats.value.tokens)
              ? Math.floor(stats.value.tokens.value * 100) / 100
              : null
        )
      // One region per passage, around the breaker, the limiter and the attempt: whatever ends the passage (an
      // interruption too), what it did is counted once (it left without being sent, or its request ended), and a
      // refusal of the breaker becomes the attempt's `circuit_open`.
      const run = <A>(host: string, attempt: Effect.Effect<A, FetchFailure>): Effect.Effect<A, FetchFailure> =>
        Effect.uninterruptibleMask((restore) => {
          // Whether the breaker let the passage in (then it counts as waiting, and its end is counted).
          let admitted = false
          // Requests sent by this passage: one, unless a store error after it made the store's retry send another.
          let sent = 0
          const arrived = clock.unsafeCurrentTimeNanos()
          const onTheWire = (tokens: number | null) => {
            const first = sent === 0
            if (first) recorder.gateWait(arrived, clock.unsafeCurrentTimeNanos())
            sent++
            onWire++
            const t = tally(host)
            t.sent++
            t.tokens = tokens
            if (tracing === undefined || !first) return attempt
            return Effect.zipRight(
              Effect.map(tracing.current, (parent) =>
                tracing.past("harvest.host_gate", parent, arrived, clock.unsafeCurrentTimeNanos(), {
                  "server.address": host,
                  "harvest.rate_tokens_left": tokens ?? undefined
                })),
              attempt
            )
          }
          // With nothing to wait for (`unlimited`), the attempt goes on the wire right after the breaker admitted
          // it. Otherwise it waits for the limiter, past which the breaker is asked again, since the circuit may have
          // opened while the attempt waited.
          const waited = (): Effect.Effect<A, FetchFailure> => {
            const send = Effect.flatMap(breakers.state(host), (state) => {
              if (Option.isSome(state) && state.value._tag === "Open") {
                const now = clock.unsafeCurrentTimeMillis()
                return Effect.fail(circuitOpen(`circuit open for ${host}`, Duration.millis(state.value.until - now)))
              }
              return limits.perHostRps === null
                ? onTheWire(null)
                : Effect.flatMap(tokensLeft(host), onTheWire)
            })
            const limited = hosts.run(host, send)
            // The shared slot is taken first, so the in-process limiter inside it never waits and its rate token is
            // still taken right before the request starts; the slot is a lease, refreshed like the items' leases.
            const shared = Option.isNone(sharedSlots) ? limited : SlotStore.withSlot(sharedSlots.value, {
              key: `harvest:${job}:${host}`,
              limit: limits.perHostConcurrency,
              ttl: Duration.millis(config.leaseMs)
            })(limited)
            // Only a shared store (REDIS_URL) can be unreachable; the in-memory one answers or dies.
            return (remoteStore ?
              Effect.retry(shared, {
                while: isStoreError as (error: unknown) => boolean,
                schedule: storeBackoff
              }) :
              shared) as Effect.Effect<A, FetchFailure>
          }
          const passage = breakers.run(
            host,
            Effect.suspend(() => {
              admitted = true
              tally(host).waiting++
              return unlimited ? onTheWire(null) : waited()
            })
          )
          const ended = (error: FetchFailure | undefined) => {
            if (!admitted) {
              return
            }
            const t = tally(host)
            if (sent === 0) {
              t.left++
              return
            }
            onWire -= sent
            t.done += sent
            if (error !== undefined) {
              t.errors.push({ at: clock.unsafeCurrentTimeMillis(), code: error.code, message: error.message })
              if (t.errors.length > 5) {
                t.errors.shift()
              }
            }
          }
          return Effect.matchCauseEffect(restore(passage), {
            onFailure: (cause) => {
              const failure = Cause.failureOption(cause)
              const error = Option.getOrUndefined(failure)
              if (error !== undefined && error._tag === "CircuitOpen") {
                return Effect.fail(circuitOpen(error.message, error.retryAfter))
              }
              ended(error)
              return Effect.failCause(cause as Cause.Cause<FetchFailure>)
            },
            onSuccess: (value) => {
              ended(undefined)
              return Effect.succeed(value)
            }
          })
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

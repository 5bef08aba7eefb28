/**
 * @since 0.1.0
 */

/**
 * A bulkhead: bounded concurrency plus a bounded wait queue that sheds load with a typed error.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Bulkhead from "./Bulkhead.js"

/**
 * One limiter per key (host, user, tenant), created on demand and evicted when idle.
 *
 * @since 0.1.0
 * @category modules
 */
export * as KeyedLimiter from "./KeyedLimiter.js"

/**
 * Concurrency and rate limits combined, the way real APIs impose both.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Limiter from "./Limiter.js"

/**
 * A FIFO, drift-free token bucket (GCRA).
 *
 * @since 0.1.0
 * @category modules
 */
export * as TokenBucket from "./TokenBucket.js"

/**
 * The one error every limit fails with when a caller waited its `maxWait` without being served.
 *
 * @since 0.1.0
 * @category modules
 */
export * as WaitTimeout from "./WaitTimeout.js"

/**
 * Where token buckets keep their state: in memory, or shared across processes.
 *
 * @since 0.1.0
 * @category modules
 */
export * as TokenBucketStore from "./TokenBucketStore.js"

/**
 * Where shared concurrency limits keep their slots (leases with a time to live), and `withSlot` to run under one.
 *
 * @since 0.1.0
 * @category modules
 */
export * as SlotStore from "./SlotStore.js"

/**
 * A circuit breaker with consecutive-failure and failure-ratio policies, half-open probes and a typed CircuitOpen.
 *
 * @since 0.1.0
 * @category modules
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * Per-attempt timeouts and an overall deadline spanning retries, both interrupting, with a typed TimeoutError.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Deadline from "./Deadline.js"

/**
 * Server hints about when to retry, readable from any error, and a Retry-After header parser.
 *
 * @since 0.1.0
 * @category modules
 */
export * as RetryAfter from "./RetryAfter.js"

/**
 * Retry policies as Schedules: exponential backoff, four jitter kinds, attempt and time limits, Retry-After.
 *
 * @since 0.1.0
 * @category modules
 */
export * as RetryPolicy from "./RetryPolicy.js"

/**
 * One circuit breaker per key, created on demand and evicted when idle and healthy.
 *
 * @since 0.1.0
 * @category modules
 */
export * as KeyedCircuitBreaker from "./KeyedCircuitBreaker.js"

/**
 * One lock per key, FIFO, with memory bounded by the keys in use.
 *
 * @since 0.1.0
 * @category modules
 */
export * as KeyedMutex from "./KeyedMutex.js"

/**
 * Fail-fast and settled groups of effects with bounded concurrency, and scoped groups forked as work unfolds.
 *
 * @since 0.1.0
 * @category modules
 */
export * as TaskGroup from "./TaskGroup.js"

/**
 * Supervised background tasks with restart policies, a drain signal and a shutdown deadline.
 *
 * @since 0.1.0
 * @category modules
 */
export * as TaskSupervisor from "./TaskSupervisor.js"

/**
 * A bounded producer/consumer queue with workers, backpressure, drain, and a shutdown that loses nothing.
 *
 * @since 0.1.0
 * @category modules
 */
export * as WorkQueue from "./WorkQueue.js"

/**
 * A pool of scoped resources with validation on borrow, a borrow timeout, idle TTL and metrics.
 *
 * @since 0.1.0
 * @category modules
 */
export * as ResourcePool from "./ResourcePool.js"

/**
 * Lines of text and files as constant-memory streams, with a typed limit on line length.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Lines from "./Lines.js"

/**
 * Page-number, cursor and Link-header pagination as lazy, backpressured streams.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Paginate from "./Paginate.js"

/**
 * A resilience policy as one value: attempt timeout, breaker, rate limit, hedging, retry, bulkhead, deadline and
 * fallback in one checked order, applied with `run`, with typed errors, events and metrics.
 *
 * @since 0.2.0
 * @category modules
 */
export * as Policy from "./Policy.js"

/**
 * Named policies read through `Config` (environment variables and a JSON file, ranges checked, bad keys named),
 * each built once and labelled with its name.
 *
 * @since 0.2.0
 * @category modules
 */
export * as PolicyRegistry from "./PolicyRegistry.js"

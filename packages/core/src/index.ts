/**
 * @since 0.1.0
 */

/**
 * A bulkhead: bounded concurrency plus a bounded wait queue that sheds load with a typed error.
 *
 * @since 0.1.0
 */
export * as Bulkhead from "./Bulkhead.js"

/**
 * One limiter per key (host, user, tenant), created on demand and evicted when idle.
 *
 * @since 0.1.0
 */
export * as KeyedLimiter from "./KeyedLimiter.js"

/**
 * Concurrency and rate limits combined, the way real APIs impose both.
 *
 * @since 0.1.0
 */
export * as Limiter from "./Limiter.js"

/**
 * A FIFO, drift-free token bucket (GCRA).
 *
 * @since 0.1.0
 */
export * as TokenBucket from "./TokenBucket.js"

/**
 * Where token buckets keep their state: in memory, or shared across processes.
 *
 * @since 0.1.0
 */
export * as TokenBucketStore from "./TokenBucketStore.js"

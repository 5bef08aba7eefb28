/**
 * @since 0.1.0
 */

/**
 * A TokenBucketStore in Redis (GCRA in one Lua script) so that several instances share one limit.
 *
 * @since 0.1.0
 */
export * as RedisTokenBucketStore from "./RedisTokenBucketStore.js"

/**
 * @since 0.1.0
 */

/**
 * A TokenBucketStore in Redis (GCRA in one Lua script) so that several instances share one limit.
 *
 * @since 0.1.0
 * @category modules
 */
export * as RedisTokenBucketStore from "./RedisTokenBucketStore.js"

/**
 * A SlotStore in Redis (sorted sets of leased holders, one Lua script per decision) so that several instances share
 * one concurrency limit.
 *
 * @since 0.1.0
 * @category modules
 */
export * as RedisSlotStore from "./RedisSlotStore.js"

/**
 * @since 0.1.0
 */

/**
 * A durable work queue with leases, heartbeats and keyset-streamed reads, on SQLite and Postgres.
 *
 * @since 0.1.0
 * @category modules
 */
export * as JobQueue from "./JobQueue.js"

/**
 * The schema of @spindle/sql as @effect/sql migrations for both dialects.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Migrations from "./Migrations.js"

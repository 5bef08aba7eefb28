/**
 * @since 0.1.0
 */

/**
 * A simulated upstream HTTP server whose query strings script latency, faults, Retry-After, slow or broken bodies
 * and pagination, recording every request.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Upstream from "./Upstream.js"

/**
 * SQLite and fresh Postgres databases for shared test suites, skipped with a reason (or failing under CI=true)
 * when Postgres is absent.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Databases from "./Databases.js"

/**
 * Analysis of recorded requests: the most in flight at once, the most started in any window, per host.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Traffic from "./Traffic.js"

/**
 * Waiting for a condition with a generous deadline instead of sleeping, for live tests on busy machines.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Wait from "./Wait.js"

/**
 * The longest event-loop stall while an effect ran, to widen a live timing bound by what the machine imposed.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Stall from "./Stall.js"

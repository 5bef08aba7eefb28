/**
 * @since 0.1.0
 */

/**
 * A simulated upstream HTTP server whose query strings script latency, faults, Retry-After, slow or broken bodies
 * and pagination, recording every request.
 *
 * @since 0.1.0
 */
export * as Upstream from "./Upstream.js"

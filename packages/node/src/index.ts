/**
 * @since 0.1.0
 */

/**
 * Runs a synchronous, blocking function on a worker thread so the event loop stays responsive.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Blocking from "./Blocking.js"

/**
 * Event-loop delay percentiles, utilization, blocked-loop warnings and metrics.
 *
 * @since 0.1.0
 * @category modules
 */
export * as EventLoopMonitor from "./EventLoopMonitor.js"

/**
 * HTTP load shedding: 503 with Retry-After while the event loop lags or too many requests are in flight.
 *
 * @since 0.1.0
 * @category modules
 */
export * as LoadShedder from "./LoadShedder.js"

/**
 * A Node HTTP server layer that drains gracefully and never lets a handler outlive it.
 *
 * @since 0.1.0
 * @category modules
 */
export * as HttpDrain from "./HttpDrain.js"

/**
 * Signal handling with a shutdown deadline, logged phases and a heard second signal.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Shutdown from "./Shutdown.js"

/**
 * CPU-bound work on a pool of worker threads, typed, interruptible, and self-healing after crashes.
 *
 * @since 0.1.0
 * @category modules
 */
export * as CpuPool from "./CpuPool.js"

/**
 * SSRF protection: resolve, refuse private and special addresses in every spelling, connect to what was checked.
 *
 * @since 0.1.0
 * @category modules
 */
export * as AddressGuard from "./AddressGuard.js"

/**
 * An Effect scheduler that gives each turn of the event loop a time slice, so a busy service keeps polling I/O and
 * firing timers.
 *
 * @since 0.2.0
 * @category modules
 */
export * as TimeSlicedScheduler from "./TimeSlicedScheduler.js"

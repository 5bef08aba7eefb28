/**
 * @since 0.1.0
 */

/**
 * The errors a policy rejects with, as `Error` classes for `instanceof`.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Errors from "./Errors.js"

/**
 * A `@spindle/core` policy for Promise-returning calls, cancelled through `AbortSignal`.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Policy from "./Policy.js"

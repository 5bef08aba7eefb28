import * as Metric from "effect/Metric"
import type * as MetricHook from "effect/MetricHook"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"

/** @internal */
export type Labels = ReadonlyArray<MetricLabel.MetricLabel>

/**
 * Label arrays are created once per limiter: `Metric.unsafeUpdate` caches its hook by the identity of the
 * array, so an update on the hot path is a WeakMap hit and a store, nothing more.
 *
 * @internal
 */
export const labels = (kind: string, name: string): Labels => [MetricLabel.make(kind, name)]

/**
 * The state a metric built from `key` keeps for `labels`, for a path that updates it on every item:
 * `hook.update(value)` changes what `metric.unsafeUpdate(value, labels)` would, without finding the state by its
 * labels each time. Take it once per service.
 *
 * @internal
 */
export const hook = <In, Out>(
  key: MetricKey.MetricKey<MetricKeyType.MetricKeyType<In, Out>>,
  labels: Labels
): MetricHook.MetricHook<In, Out> => Metric.globalMetricRegistry.get(MetricKey.taggedWithLabels(key, labels))

/** @internal */
export const tokensAvailable = Metric.gauge("spindle_token_bucket_tokens", {
  description: "Tokens available in a token bucket after its latest decision"
})

/** @internal */
export const tokenWaiters = Metric.gauge("spindle_token_bucket_waiters", {
  description: "Fibers waiting in a token bucket's FIFO queue"
})

/** @internal */
export const tokensGranted = Metric.counter("spindle_token_bucket_granted_total", {
  description: "Tokens granted by a token bucket",
  incremental: true
})

/** @internal */
export const tokenRejections = Metric.counter("spindle_token_bucket_rejections_total", {
  description: "tryTake calls refused by a token bucket",
  incremental: true
})

/** @internal */
export const inFlight = Metric.gauge("spindle_limiter_in_flight", {
  description: "Effects currently holding a permit of a concurrency limit"
})

/** @internal */
export const queued = Metric.gauge("spindle_limiter_queued", {
  description: "Effects waiting for a permit of a concurrency limit"
})

/** @internal */
export const rejections = Metric.counter("spindle_limiter_rejections_total", {
  description: "Effects refused at once because a limit's wait queue was full",
  incremental: true
})

/** @internal */
export const waitTimeouts = Metric.counter("spindle_limiter_wait_timeouts_total", {
  description: "Effects that waited their limit's maxWait for a permit and gave up",
  incremental: true
})

/** @internal */
export const tokenWaitTimeouts = Metric.counter("spindle_token_bucket_wait_timeouts_total", {
  description: "take calls that waited a token bucket's maxWait for their tokens and gave up",
  incremental: true
})

/** @internal */
export const keys = Metric.gauge("spindle_keyed_limiter_keys", {
  description: "Keys currently held in memory by a keyed limiter"
})

/** @internal */
export const circuitsOpen = Metric.gauge("spindle_circuit_open", {
  description: "Circuit breakers currently open or half-open"
})

/** @internal */
export const circuitTransitions = Metric.counter("spindle_circuit_transitions_total", {
  description: "State changes of circuit breakers, labelled with the state entered",
  incremental: true
})

/** @internal */
export const circuitRejections = Metric.counter("spindle_circuit_rejections_total", {
  description: "Calls refused at once because a circuit was open",
  incremental: true
})

/** @internal */
export const taskRunning = Metric.gauge("spindle_task_running", {
  description: "1 while a supervised task is running, 0 otherwise"
})

/** @internal */
export const taskRestarts = Metric.counter("spindle_task_restarts_total", {
  description: "Restarts of a supervised task",
  incremental: true
})

/** @internal */
export const queueSizeKey = MetricKey.gauge("spindle_work_queue_size", {
  description: "Items waiting in a work queue"
})

/** @internal */
export const queueSize = Metric.fromMetricKey(queueSizeKey)

/** @internal */
export const queueInFlight = Metric.gauge("spindle_work_queue_in_flight", {
  description: "Items being processed by a work queue's workers"
})

/** @internal */
export const queueProcessedKey = MetricKey.counter("spindle_work_queue_processed_total", {
  description: "Items a work queue finished, successfully or not",
  incremental: true
})

/** @internal */
export const queueProcessed = Metric.fromMetricKey(queueProcessedKey)

/** @internal */
export const queueFailures = Metric.counter("spindle_work_queue_failures_total", {
  description: "Items a work queue's processor failed on (after retries)",
  incremental: true
})

/** @internal */
export const poolSize = Metric.gauge("spindle_pool_size", {
  description: "Resources a pool holds, idle or in use"
})

/** @internal */
export const poolInUse = Metric.gauge("spindle_pool_in_use", {
  description: "Resources currently borrowed from a pool"
})

/** @internal */
export const poolWaiters = Metric.gauge("spindle_pool_waiters", {
  description: "Fibers waiting to borrow from a pool"
})

/** @internal */
export const poolAcquireLatency = Metric.timerWithBoundaries("spindle_pool_acquire_latency", [
  0.1,
  0.5,
  1,
  5,
  10,
  50,
  100,
  500,
  1000,
  5000
], "Time to borrow a resource from a pool, in milliseconds")

/** @internal */
export const poolDiscarded = Metric.counter("spindle_pool_discarded_total", {
  description: "Resources discarded because validation failed or they were invalidated",
  incremental: true
})

/** @internal */
export const policyTimeouts = Metric.counter("spindle_policy_timeouts_total", {
  description: "Timeouts reported by a policy's attempt timeout or deadline, labelled with the limit that fired",
  incremental: true
})

/** @internal */
export const policyHedges = Metric.counter("spindle_policy_hedges_total", {
  description: "Hedged attempts a policy started (the first attempt of a call is not counted)",
  incremental: true
})

/** @internal */
export const policyFallbacks = Metric.counter("spindle_policy_fallbacks_total", {
  description: "Calls a policy answered with its fallback",
  incremental: true
})

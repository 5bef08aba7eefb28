import * as Metric from "effect/Metric"

/** @internal */
export const delayP50 = Metric.gauge("spindle_event_loop_delay_p50_ms", {
  description: "Median event-loop delay over the monitor's window, in milliseconds"
})

/** @internal */
export const delayP99 = Metric.gauge("spindle_event_loop_delay_p99_ms", {
  description: "99th percentile event-loop delay over the monitor's window, in milliseconds"
})

/** @internal */
export const delayMax = Metric.gauge("spindle_event_loop_delay_max_ms", {
  description: "Longest event-loop delay over the monitor's window, in milliseconds"
})

/** @internal */
export const utilization = Metric.gauge("spindle_event_loop_utilization", {
  description: "Share of time the event loop was busy over the last sample (0 to 1)"
})

/** @internal */
export const blocked = Metric.counter("spindle_event_loop_blocked_total", {
  description: "Samples in which the event loop was blocked longer than the threshold",
  incremental: true
})

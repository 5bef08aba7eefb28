/**
 * Traces exported over OTLP/HTTP through the OpenTelemetry SDK: the part of `Telemetry` that only a run with an OTLP
 * endpoint needs, imported by `Telemetry.layerTracing` only then, so that a run without one never loads the SDK, its
 * exporter and their dependencies.
 *
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as OtelResource from "@effect/opentelemetry/Resource"
import * as OtelTracer from "@effect/opentelemetry/Tracer"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import type { Sampler, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler
} from "@opentelemetry/sdk-trace-base"
import type * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Telemetry from "./Telemetry.js"
import type * as TraceRing from "./TraceRing.js"

type SamplerName = Telemetry.TracingConfig["sampler"]

const samplerOf = (name: SamplerName, ratio: number): Sampler => {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler()
    case "always_off":
      return new AlwaysOffSampler()
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio)
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) })
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() })
  }
}

/**
 * Spans batched to `url` over OTLP/HTTP (JSON), and to the ring's processor when the ring is on, sampled as
 * configured: the Effect tracer of everything built on this layer, and `TracingRef` for the pipeline.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: {
    readonly url: string
    readonly sampler: SamplerName
    readonly ratio: number
  },
  ring: TraceRing.TraceRing
): Layer.Layer<Telemetry.TracingRef, never, OtelResource.Resource> => {
  const processors: Arr.NonEmptyArray<SpanProcessor> = [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: config.url }))
  ]
  if (ring.processor !== undefined) processors.push(ring.processor)
  const provider = NodeSdk.layerTracerProvider(processors, { sampler: samplerOf(config.sampler, config.ratio) })
  const ref = Layer.effect(Telemetry.TracingRef, Effect.zipWith(OtelTracer.make, Effect.clock, Telemetry.makeTracing))
  return Layer.merge(ref, OtelTracer.layerWithoutOtelTracer).pipe(
    Layer.provide(OtelTracer.layerTracer),
    Layer.provide(provider)
  )
}

/**
 * This process as the rest of the world sees it: the name it leases items under and names its temp files after, so
 * that another instance (or this one after a restart) can tell whose leases and files are whose.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { randomUUID } from "node:crypto"

/**
 * The identity of this running process.
 *
 * @since 0.1.0
 * @category models
 */
export interface Instance {
  /** Unique per process start: `harvest-<uuid>`. */
  readonly owner: string
}

/**
 * The instance service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Instance: Context.Tag<Instance, Instance> = Context.GenericTag<Instance>("@spindle/harvest/Instance")

/**
 * A fresh identity, made once when the layer is built.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Instance> = Layer.effect(
  Instance,
  Effect.sync(() => ({ owner: `harvest-${randomUUID()}` }))
)

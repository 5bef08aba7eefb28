/**
 * The storage's thread: one thread per instance for the synchronous storage work that the event loop must not wait
 * for, shared by `BodyStore` (bodies, while the storage is slow) and `Database` (SQLite's checkpoints). A Node worker
 * costs about 8 MB of memory, so the two share one (`internal/storageThread.ts` says how it works). It starts when
 * first needed, and stops when its layer closes, after the body store and the database that use it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "../internal/storageThread.js"

/**
 * What the body store and the database ask of the thread.
 *
 * @since 0.1.0
 * @category models
 */
export interface StorageThread {
  /** Writes `body` to `temp`, then renames it to `final`; `done` is called once either way. */
  readonly write: (temp: string, final: string, body: Uint8Array, done: internal.Done) => void
  /** `took(count, nanos)`: the thread wrote `count` bodies (or failed to) in `nanos`; returns the unsubscribe. */
  readonly observeWrites: (took: (count: number, nanos: number) => void) => () => void
  /** Resolves once every body handed over is written or failed. */
  readonly drained: () => Promise<void>
  /**
   * Checkpoints the SQLite database `filename` every `intervalMs`, on a connection of the thread's own; resolves once
   * that is open, with the function that closes it.
   */
  readonly checkpoints: (options: {
    readonly filename: string
    readonly intervalMs: number
    readonly onError: (message: string) => void
  }) => Promise<() => Promise<void>>
}

/**
 * The storage thread's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const StorageThread: Context.Tag<StorageThread, StorageThread> = Context.GenericTag<StorageThread>(
  "@spindle/harvest/StorageThread"
)

/**
 * The thread for the life of the layer: closing it waits for the bodies handed over, closes the databases'
 * connections, and stops the thread.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<StorageThread> = Layer.scoped(
  StorageThread,
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new internal.StorageThread()),
      (thread) => Effect.promise(() => thread.close())
    ),
    (thread): StorageThread => ({
      write: (temp, final, body, done) => thread.write(temp, final, body, done),
      observeWrites: (took) => thread.observeWrites(took),
      drained: () => thread.drained(),
      checkpoints: (options) => thread.checkpoints(options)
    })
  )
)

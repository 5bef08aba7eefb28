/**
 * Faults of the machine Harvest runs on, as opposed to faults of the hosts it fetches: a full or failing disk under
 * `DATA_DIR` (a body or SQLite's database cannot be written: `ENOSPC`, `EDQUOT`, `EIO`, `SQLITE_FULL`, …), or a
 * database that does not answer or cannot write (a lost Postgres connection, SQLite locked by another process).
 *
 * Such a fault says nothing about an item or its host, so it never counts as an attempt, never fails an item and never
 * reaches a host's circuit breaker: the item goes back to pending and is fetched again once the fault clears. While
 * one lasts, the instance is *degraded*: leasing pauses, `/health` and `POST /jobs` answer `503` naming the reason, the
 * dashboard shows it and `harvest_degraded{reason}` is 1. The service here holds that state. Whoever meets a fault
 * classifies it (`fromSqlError`, `fromFileError`, `fromCause`; only on the failure path, so the common path pays
 * nothing) and `report`s it; a prober then checks the faulty resources (a probe body written to `tmp/`, a one-row
 * write to the database) with capped exponential backoff, and the state ends, by itself, at the first probe that
 * passes. The log says so once as it starts, at most every 30 seconds while it lasts, and once as it ends, in one line
 * each (no stack traces).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Startup from "./Startup.js"
import * as BodyStore from "./storage/BodyStore.js"
import * as Database from "./storage/Database.js"

/**
 * Why the instance is degraded: `storage_full` (`DATA_DIR` has no space, or its quota is spent), `storage_error` (its
 * disk fails otherwise: `EIO`, read-only, a missing directory), `database_unavailable` (the database cannot be
 * reached, is locked by another process, or refuses writes).
 *
 * @since 0.1.0
 * @category models
 */
export type Reason = "storage_full" | "storage_error" | "database_unavailable"

/**
 * Every reason, in the order `/health` and the metrics list them.
 *
 * @since 0.1.0
 * @category models
 */
export const reasons: ReadonlyArray<Reason> = ["storage_full", "storage_error", "database_unavailable"]

/**
 * What a fault is about, and so what the prober checks: `storage` the body files under `DATA_DIR`, `database` the
 * database (SQLite's file lives in `DATA_DIR` too: its full disk is a `database` fault with reason `storage_full`).
 *
 * @since 0.1.0
 * @category models
 */
export type Resource = "storage" | "database"

/**
 * A fault of this machine met while `operation` ran. Its `message` is one line naming the operation and the cause.
 *
 * @since 0.1.0
 * @category errors
 */
export class LocalFault extends Data.TaggedError("LocalFault")<{
  readonly reason: Reason
  readonly resource: Resource
  /** What was being done, in a few words (`writing a body`, `leasing items`, `committing results`). */
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.operation}: ${Startup.describe(this.cause)}`
  }
}

const hints: Record<Reason, string> = {
  storage_full: "free space in DATA_DIR (or raise its quota); Harvest resumes by itself",
  storage_error: "check the disk under DATA_DIR; Harvest resumes by itself once it can write again",
  database_unavailable: "check that the database is up and reachable; Harvest resumes by itself"
}

/**
 * What the operator can do about `reason`, in a few words.
 *
 * @since 0.1.0
 * @category utils
 */
export const hint = (reason: Reason): string => hints[reason]

// --- classification (the failure path only) ---------------------------------------------------------------------

const codeOf = (error: unknown): string | undefined => {
  const code = typeof error === "object" && error !== null ? (error as { readonly code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}

const fullCodes = new Set(["ENOSPC", "EDQUOT", "SQLITE_FULL"])

/**
 * A file of `DATA_DIR` could not be written (any error: writing a body is never the host's fault).
 *
 * @since 0.1.0
 * @category classification
 */
export const fromFileError = (operation: string, cause: unknown): LocalFault =>
  new LocalFault({
    reason: fullCodes.has(codeOf(cause) ?? "") ? "storage_full" : "storage_error",
    resource: "storage",
    operation,
    cause
  })

// The network going away under a Postgres connection, or never letting one be made.
const connectionCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL"
])

// node-postgres's own words for a connection that broke or could not be made (its errors carry no code).
const connectionMessage =
  /connection terminated|not queryable|timeout exceeded when trying to connect|connection error|failed to acquire connection|server closed the connection|the database system is (starting up|shutting down|in recovery)/i

// The driver's error behind a SqlError: the first in the chain with a code of its own, or the innermost.
const driverError = (error: SqlError.SqlError): unknown => {
  let current: unknown = error.cause
  for (let depth = 0; depth < 6; depth++) {
    if (current instanceof AggregateError && current.errors.length > 0 && codeOf(current) === undefined) {
      current = current.errors[0]
      continue
    }
    if (codeOf(current) !== undefined || typeof current !== "object" || current === null) return current
    const next = (current as { readonly cause?: unknown }).cause
    if (next === undefined) return current
    current = next
  }
  return current
}

const fault = (reason: Reason, operation: string, cause: unknown) =>
  new LocalFault({ reason, resource: "database", operation, cause })

/**
 * A database error that is a fault of this machine, or `undefined` for one that is not (a constraint, a statement
 * the database refuses: a bug, to be reported as one). SQLite: `SQLITE_FULL` is `storage_full`; an I/O error, a file
 * it cannot open or write, a corrupt file is `storage_error`; `SQLITE_BUSY` or `SQLITE_LOCKED` (another process
 * holds the database) is `database_unavailable`. Postgres: a connection refused, reset, timed out or closed, the
 * server shutting down or starting up, too many connections, a full disk or an I/O error of the server is
 * `database_unavailable`.
 *
 * @since 0.1.0
 * @category classification
 */
export const fromSqlError = (operation: string, error: SqlError.SqlError): LocalFault | undefined => {
  const cause = driverError(error)
  const code = codeOf(cause)
  if (code !== undefined) {
    if (code.startsWith("SQLITE_")) {
      if (code === "SQLITE_FULL") return fault("storage_full", operation, cause)
      if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
        return fault("database_unavailable", operation, cause)
      }
      if (
        code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_READONLY") ||
        code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB" || code === "SQLITE_PROTOCOL"
      ) return fault("storage_error", operation, cause)
      return undefined
    }
    if (fullCodes.has(code)) return fault("storage_full", operation, cause)
    if (connectionCodes.has(code)) return fault("database_unavailable", operation, cause)
    // Postgres SQLSTATEs: connection exceptions (08), the server shutting down or not yet up (57P0x), out of
    // resources (53: disk full, too many connections), a system error (58), a read-only standby after a failover.
    if (
      code.startsWith("08") || code.startsWith("57P0") || code.startsWith("53") || code.startsWith("58") ||
      code === "25006"
    ) return fault("database_unavailable", operation, cause)
  }
  const message = cause instanceof Error ? cause.message : ""
  if (connectionMessage.test(message) || connectionMessage.test(error.message)) {
    return fault("database_unavailable", operation, cause ?? error)
  }
  return undefined
}

const classifyOne = (operation: string, error: unknown): LocalFault | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const tag = (error as { readonly _tag?: unknown })._tag
  if (tag === "LocalFault") return error as LocalFault
  if (tag === "SqlError") return fromSqlError(operation, error as SqlError.SqlError)
  // The body store's own write errors (`BodyStore.BodyStoreError`).
  if (tag === "BodyStoreError" && (error as { readonly operation?: unknown }).operation === "write") {
    return fromFileError(operation, (error as { readonly cause?: unknown }).cause)
  }
  return undefined
}

/**
 * The local fault a failed effect met, looking at its failures and its defects (a `SqlError` made a defect with
 * `orDie` included), or `undefined` when there is none.
 *
 * @since 0.1.0
 * @category classification
 */
export const fromCause = (operation: string, cause: Cause.Cause<unknown>): LocalFault | undefined => {
  for (const error of Cause.failures(cause)) {
    const found = classifyOne(operation, error)
    if (found !== undefined) return found
  }
  for (const defect of Cause.defects(cause)) {
    const found = classifyOne(operation, defect)
    if (found !== undefined) return found
  }
  return undefined
}

// --- the degraded state -----------------------------------------------------------------------------------------

/**
 * The degraded state as `/health` and the dashboard show it: the reason and message of the first fault still
 * active, and when the state began (epoch ms).
 *
 * @since 0.1.0
 * @category models
 */
export interface Degraded {
  readonly reason: Reason
  readonly message: string
  readonly since: number
}

/**
 * The service.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalFaults {
  /** The fault the instance is degraded by now, or `undefined`: a plain read, cheap enough for every item. */
  readonly current: () => LocalFault | undefined
  /** The degraded state now, or `undefined` while healthy. */
  readonly degraded: () => Degraded | undefined
  /** Enters the degraded state for `fault` (or keeps it, noting the fault). Never fails. */
  readonly report: (fault: LocalFault) => Effect.Effect<void>
  /** Waits until the instance is healthy again; returns at once while it is. */
  readonly healthy: Effect.Effect<void>
  /** The `Retry-After` (seconds) to give a client now: until the next probe, at least 1. */
  readonly retryAfterSeconds: () => number
}

/**
 * The service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const LocalFaults: Context.Tag<LocalFaults, LocalFaults> = Context.GenericTag<LocalFaults>(
  "@spindle/harvest/LocalFaults"
)

/**
 * How the service is made: a probe per resource, succeeding when the resource works again; the probes' backoff
 * (from `base`, doubling up to `cap`: 250 ms and 2 s by default) and how often a lasting state is logged (30 s).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly probes: { readonly [K in Resource]: Effect.Effect<void, unknown> }
  readonly base?: Duration.DurationInput | undefined
  readonly cap?: Duration.DurationInput | undefined
  readonly logEvery?: Duration.DurationInput | undefined
}

const degradedGauge = Metric.gauge("harvest_degraded", {
  description: "1 while this instance is degraded by a local fault of this reason (leasing paused, 503s), else 0"
})
const gauges = Object.fromEntries(reasons.map((reason) => [reason, Metric.tagged(degradedGauge, "reason", reason)]))

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)}s`

/**
 * The service for the life of the scope; its prober runs only while the instance is degraded.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<LocalFaults, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const base = Duration.toMillis(options.base ?? "250 millis")
    const cap = Duration.toMillis(options.cap ?? "2 seconds")
    const logEvery = Duration.toMillis(options.logEvery ?? "30 seconds")
    const now = () => clock.unsafeCurrentTimeMillis()

    // The active faults, one per resource, in the order they began; `first` is the one shown.
    const active = new Map<Resource, LocalFault>()
    let first: LocalFault | undefined
    let since = 0
    let faults = 0
    let lastLog = 0
    let delay = base
    let nextProbeAt = 0
    // Completed while healthy; a fresh one for each degraded period.
    let recovered = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(recovered, Effect.void)
    let wakeProber: Deferred.Deferred<void> | undefined

    const updateGauges = () => {
      for (const reason of reasons) {
        let on = 0
        for (const fault of active.values()) if (fault.reason === reason) on = 1
        gauges[reason].unsafeUpdate(on, [])
      }
    }
    updateGauges()

    const annotations = (fault: LocalFault) => ({ reason: fault.reason, cause: fault.message })

    const report = (fault: LocalFault): Effect.Effect<void> =>
      Effect.suspend(() => {
        faults++
        const starting = first === undefined
        active.set(fault.resource, fault)
        // SQLite's full or failing disk is `DATA_DIR`'s: the bodies' store is probed too before work resumes.
        if (fault.resource === "database" && fault.reason !== "database_unavailable" && !active.has("storage")) {
          active.set("storage", fault)
        }
        first = active.values().next().value
        updateGauges()
        if (!starting) return Effect.void
        since = now()
        lastLog = since
        faults = 1
        delay = base
        nextProbeAt = since + delay
        recovered = Deferred.unsafeMake<void>(FiberId.none)
        if (wakeProber !== undefined) {
          Deferred.unsafeDone(wakeProber, Effect.void)
          wakeProber = undefined
        }
        return Effect.logWarning("degraded by a local fault; leasing paused until it clears").pipe(
          Effect.annotateLogs({ ...annotations(fault), hint: hint(fault.reason) })
        )
      })

    // Only once nothing is active any more: a fault reported since the last probe keeps the state.
    const recover = Effect.suspend(() => {
      if (active.size > 0) return Effect.void
      const ended = first!
      first = undefined
      updateGauges()
      Deferred.unsafeDone(recovered, Effect.void)
      return Effect.logInfo("local fault cleared; leasing resumed").pipe(
        Effect.annotateLogs({ reason: ended.reason, after: seconds(now() - since), faults })
      )
    })

    // One round: every active resource probed; a resource that passes is no longer faulty, one that fails keeps
    // the fault its probe met (which may say more than the first did).
    const probeRound = Effect.gen(function*() {
      for (const [resource, previous] of Array.from(active)) {
        const exit = yield* Effect.exit(options.probes[resource])
        if (Exit.isSuccess(exit)) {
          active.delete(resource)
          continue
        }
        const met = fromCause(previous.operation, exit.cause)
        if (met !== undefined && met.resource === resource) active.set(resource, met)
        // One resource at a time: the others are probed once this one passes.
        break
      }
      if (active.size === 0) return yield* recover
      first = active.values().next().value
      updateGauges()
      const at = now()
      if (at - lastLog >= logEvery) {
        lastLog = at
        yield* Effect.logWarning("still degraded by a local fault; leasing paused").pipe(
          Effect.annotateLogs({ ...annotations(first!), for: seconds(at - since), faults })
        )
      }
    })

    const prober = Effect.gen(function*() {
      while (true) {
        if (first === undefined) {
          const wake = Deferred.unsafeMake<void>(FiberId.none)
          wakeProber = wake
          yield* Deferred.await(wake)
          continue
        }
        yield* Effect.sleep(Duration.millis(delay))
        delay = Math.min(cap, delay * 2)
        nextProbeAt = now() + delay
        yield* probeRound
      }
    })
    yield* Effect.forkScoped(prober)

    return LocalFaults.of({
      current: () => first,
      degraded: () => first === undefined ? undefined : { reason: first.reason, message: first.message, since },
      report,
      healthy: Effect.suspend(() => first === undefined ? Effect.void : Deferred.await(recovered)),
      retryAfterSeconds: () => Math.max(1, Math.ceil((nextProbeAt - now()) / 1000))
    })
  })

/**
 * The service with the given probes, as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: Options): Layer.Layer<LocalFaults> => Layer.scoped(LocalFaults, make(options))

/**
 * The service probing this instance's body store (`BodyStore.probe`: a probe body written to `tmp/` and removed) and
 * its database (`Database.probe`: a one-row write).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<LocalFaults, never, SqlClient.SqlClient | BodyStore.BodyStore> = Layer.scoped(
  LocalFaults,
  Effect.gen(function*() {
    const store = yield* BodyStore.BodyStore
    const sql = yield* SqlClient.SqlClient
    return yield* make({
      probes: { storage: store.probe, database: Effect.provideService(Database.probe, SqlClient.SqlClient, sql) }
    })
  })
)

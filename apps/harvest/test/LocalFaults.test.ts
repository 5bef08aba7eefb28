import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it } from "@effect/vitest"
import { Databases, Upstream, Wait } from "@spindle/testkit"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as LocalFaults from "../src/LocalFaults.js"
import * as Harness from "./harness.js"
import * as Tmpfs from "./tmpfs.js"

// Faults of Harvest's own machine, for real: DATA_DIR on a tmpfs too small for the job, then grown; Postgres cut off
// behind a proxy, then reachable again; SQLite locked by another connection, then let go. Harvest runs as a real
// process, so that what it logs is checked too.

const maxConcurrency = 16
// 200 bodies of about 64 KiB (12.8 MB, on a 3 MB disk), all different: half held in memory and written at once, half
// streamed through a temp file.
const sizes = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 65_536 - i : 65_536 + i))

// When the upstream saw a request, on the wall clock Harvest's `since` is read on.
const arrivedAt = (record: Upstream.RequestRecord) => performance.timeOrigin + record.arrivedAt

const metric = (text: string, name: string) => {
  const match = new RegExp(`^${name.replace(/[{}"=]/g, "\\$&")} (\\S+)$`, "m").exec(text)
  return match === null ? undefined : Number(match[1])
}

const skipReason = (database: "sqlite" | "pg") => Tmpfs.skip ?? (database === "pg" ? Databases.postgresSkip : undefined)

// The degraded state's own logic, on the TestClock: the probes' capped backoff, the log's cadence, the recovery.
describe("LocalFaults", () => {
  // What a driver throws, inside the SqlError the client wraps it in.
  const sqlError = (code: string | undefined, message: string) =>
    new SqlError({
      message: "Failed to execute statement",
      cause: Object.assign(new Error(message), code === undefined ? {} : { code })
    })

  it("classifies database errors: a full disk, an unreachable or locked database; anything else is no local fault", () => {
    const reason = (error: SqlError) => LocalFaults.fromSqlError("testing", error)?.reason
    assert.strictEqual(reason(sqlError("SQLITE_FULL", "database or disk is full")), "storage_full")
    assert.strictEqual(reason(sqlError("SQLITE_IOERR_WRITE", "disk I/O error")), "storage_error")
    assert.strictEqual(reason(sqlError("SQLITE_READONLY", "attempt to write a readonly database")), "storage_error")
    assert.strictEqual(reason(sqlError("SQLITE_BUSY", "database is locked")), "database_unavailable")
    assert.strictEqual(reason(sqlError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432")), "database_unavailable")
    assert.strictEqual(
      reason(sqlError("57P01", "terminating connection due to administrator command")),
      "database_unavailable"
    )
    assert.strictEqual(reason(sqlError(undefined, "Connection terminated unexpectedly")), "database_unavailable")
    assert.strictEqual(reason(sqlError("23505", "duplicate key value violates unique constraint")), undefined)
    assert.strictEqual(reason(sqlError("SQLITE_CONSTRAINT_PRIMARYKEY", "UNIQUE constraint failed")), undefined)
    assert.strictEqual(reason(sqlError("42601", "syntax error at or near")), undefined)
    const enospc = Object.assign(new Error("no space left on device"), { code: "ENOSPC" })
    assert.deepStrictEqual(
      [
        LocalFaults.fromFileError("writing a body", enospc).reason,
        LocalFaults.fromFileError("x", new Error("EIO")).reason
      ],
      ["storage_full", "storage_error"]
    )
    // A defect (a SqlError made one with `orDie`) is found too; an interruption is not a fault.
    assert.strictEqual(
      LocalFaults.fromCause("reading", Cause.die(sqlError("SQLITE_BUSY", "database is locked")))?.reason,
      "database_unavailable"
    )
    assert.strictEqual(LocalFaults.fromCause("reading", Cause.interrupt(FiberId.none)), undefined)
  })

  it.scoped("probes back off to every 2 s; logs once as it begins, every 30 s while it lasts, once as it ends", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      let probes = 0
      let locked = true
      const probe = Effect.suspend(() => {
        probes++
        return locked ? Effect.fail(sqlError("SQLITE_BUSY", "database is locked")) : Effect.void
      })
      const faults = yield* LocalFaults.make({ probes: { storage: Effect.void, database: probe } })
      assert.strictEqual(faults.current(), undefined)
      yield* faults.healthy

      const fault = LocalFaults.fromSqlError("leasing items", sqlError("SQLITE_BUSY", "database is locked"))!
      yield* faults.report(fault)
      yield* faults.report(fault)
      assert.strictEqual(faults.current()?.reason, "database_unavailable")
      assert.deepStrictEqual(faults.degraded(), { reason: "database_unavailable", message: fault.message, since: 0 })
      const healed = yield* Effect.fork(faults.healthy)

      // 250 ms, 500 ms, 1 s, then every 2 s.
      for (
        const [at, count] of [[249, 0], [250, 1], [750, 2], [1750, 3], [3750, 4], [5750, 5], [29_750, 17]] as const
      ) {
        yield* TestClock.setTime(at)
        assert.strictEqual(probes, count, `probes by ${at} ms`)
        assert.isAtLeast(faults.retryAfterSeconds(), 1)
        assert.isAtMost(faults.retryAfterSeconds(), 2)
      }
      assert.deepStrictEqual(lines, ["degraded by a local fault; leasing paused until it clears"])
      // Many reports meanwhile add no line; the state's next line comes 30 s after the first.
      for (let i = 0; i < 100; i++) yield* faults.report(fault)
      yield* TestClock.setTime(31_750)
      assert.deepStrictEqual(lines.slice(1), ["still degraded by a local fault; leasing paused"])
      yield* TestClock.setTime(59_750)
      assert.strictEqual(lines.length, 2)
      yield* TestClock.setTime(61_750)
      assert.strictEqual(lines.length, 3)
      assert.isNull(healed.unsafePoll())

      // The lock goes: the next probe passes, the state ends, one line says so.
      locked = false
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(faults.current(), undefined)
      assert.strictEqual(lines[3], "local fault cleared; leasing resumed")
      assert.strictEqual(lines.length, 4)
      yield* Fiber.join(healed)
      // Nothing more while healthy.
      const probed = probes
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual([probes, lines.length], [probed, 4])
    }).pipe(
      Effect.provide(Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ message }) => void lines.push(Array.isArray(message) ? message.join(" ") : String(message)))
      ))
    )
  })
})

for (const database of ["sqlite", "pg"] as const) {
  const skip = skipReason(database)
  const suite = skip === undefined ? describe : describe.skip
  suite(`Harvest on a full disk, on ${database}${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
    it.scopedLive(
      "a full DATA_DIR: degraded and saying so, nothing failed, counted or sent; resumes by itself once space is back",
      () =>
        Effect.gen(function*() {
          const upstream = yield* Upstream.make()
          const disk = yield* Tmpfs.mount("3m")
          const env: Record<string, string> = {
            DATA_DIR: disk.dir,
            MAX_CONCURRENCY: String(maxConcurrency),
            SHUTDOWN_GRACE_MS: "500"
          }
          if (database === "pg") env.DATABASE_URL = yield* Databases.freshPostgres
          const harvest = yield* Harness.spawn(env)
          const urls = sizes.map((bytes, i) => upstream.url(`/item/${i}?bytes=${bytes}`))
          const id = yield* harvest.submit({ urls })

          // The disk fills up: the instance says it is degraded, and why.
          const health = yield* Wait.until(
            "the instance to be degraded",
            Effect.map(harvest.call("GET", "/health"), (reply) => reply.status === 503 && reply),
            { timeout: "30 seconds", interval: "20 millis" }
          )
          assert.strictEqual(health.json.status, "degraded", health.text)
          assert.strictEqual(health.json.reason, "storage_full", health.text)
          assert.match(health.json.message, /ENOSPC|SQLITE_FULL|no space|full/, health.text)
          assert.isAtLeast(Number(health.headers.get("retry-after")), 1)
          const since = Date.parse(health.json.since)

          const refused = yield* harvest.call("POST", "/jobs", { urls: [upstream.url("/later")] })
          assert.strictEqual(refused.status, 503, refused.text)
          assert.strictEqual(refused.json.error.code, "storage_full", refused.text)
          assert.match(refused.json.error.message, /no space|full/)
          assert.isAtLeast(Number(refused.headers.get("retry-after")), 1)

          // The fault lasts: nothing fails, the host's circuit stays closed and sees no error, no new request starts.
          yield* Effect.sleep("2500 millis")
          const during = (yield* harvest.call("GET", `/jobs/${id}`)).json
          assert.strictEqual(during.status, "running")
          assert.strictEqual(during.failed, 0, JSON.stringify(during))
          assert.isBelow(during.succeeded, 200)
          const state = (yield* harvest.call("GET", "/dashboard/state")).json
          assert.strictEqual(state.degraded?.reason, "storage_full", JSON.stringify(state.degraded))
          const host = state.hosts.find((h: any) => h.host === `${upstream.host}:${upstream.port}`)
          assert.strictEqual(host.circuit, "closed")
          assert.deepStrictEqual(host.recentErrors, [], "a local fault is no error of the host")
          const metrics = (yield* harvest.call("GET", "/metrics")).text
          assert.strictEqual(metric(metrics, `harvest_degraded{reason="storage_full"}`), 1)
          assert.strictEqual(metric(metrics, `harvest_degraded{reason="database_unavailable"}`), 0)
          // Requests on their way when the disk filled still arrive (connecting takes a moment); none starts later.
          const late = upstream.requests().filter((record) => arrivedAt(record) > since + 1000)
          assert.deepStrictEqual(late.map((record) => record.path), [], "no request starts while degraded")
          const sentDuringFault = upstream.requests().length

          // Space comes back: the instance heals by itself within seconds and finishes the job.
          yield* disk.resize("64m")
          const grownAt = Date.now()
          yield* Wait.until(
            "the instance to be healthy again",
            Effect.map(harvest.call("GET", "/health"), (reply) => reply.status === 200 && reply.json.status === "ok"),
            { timeout: "10 seconds", interval: "20 millis" }
          )
          // The probes run at most 2 s apart; the margin is for a loaded machine.
          assert.isBelow(Date.now() - grownAt, 10_000, "healed within seconds")
          const done = yield* harvest.waitFor(id, "completed", 60_000)
          assert.deepStrictEqual([done.succeeded, done.failed], [200, 0])

          // Exact results: each URL exactly once, one attempt each (the host never failed), every body in place.
          const results = yield* harvest.results(id)
          assert.strictEqual(results.length, 200)
          assert.deepStrictEqual(new Set(results.map((result: any) => result.url)), new Set(urls))
          for (const result of results) {
            const bytes = Number(new URL(result.url).searchParams.get("bytes"))
            assert.deepStrictEqual(
              [result.status, result.attempts, result.error, result.bytes, result.sha256],
              ["succeeded", 1, null, bytes, Upstream.expectedSha256(bytes)],
              JSON.stringify(result)
            )
            const body = fs.readFileSync(path.join(disk.dir, "files", result.fileId))
            assert.strictEqual(createHash("sha256").update(body).digest("hex"), result.sha256)
          }

          // The upstream got every URL, and a second request only for a body the full disk refused: those were on
          // their way when it filled up, at most one per worker.
          const seen = new Map<string, Array<Upstream.RequestRecord>>()
          for (const record of upstream.requests()) {
            const key = record.path
            seen.set(key, [...(seen.get(key) ?? []), record])
          }
          assert.strictEqual(seen.size, 200)
          const again = Array.from(seen.values()).filter((records) => records.length > 1)
          for (const records of again) {
            assert.strictEqual(records.length, 2, records[0].path)
            assert.isAtMost(arrivedAt(records[0]), since + 1000, `${records[0].path}: first sent before the fault`)
          }
          assert.isAtMost(again.length, maxConcurrency)
          assert.strictEqual(upstream.requests().length, 200 + again.length)
          assert.isAtMost(sentDuringFault, 200 + again.length)

          const healthy = yield* harvest.call("GET", "/health")
          assert.deepStrictEqual([healthy.status, healthy.json.status, healthy.json.reason], [200, "ok", undefined])
          const after = (yield* harvest.call("GET", "/metrics")).text
          assert.strictEqual(metric(after, `harvest_degraded{reason="storage_full"}`), 0)

          // The log said so once as it began and once as it ended, one line each: no stack trace, no line per retry.
          const output = harvest.output()
          assert.strictEqual(output.match(/degraded by a local fault/g)?.length, 1, output)
          assert.strictEqual(output.match(/local fault cleared/g)?.length, 1, output)
          assert.notMatch(output, /leasing failed|committing results failed/)
          assert.notMatch(output, /\n\s+at /, "no stack trace")
        })
    )
  })
}

// A loopback TCP proxy to `target` that the test opens and closes: closed, it refuses new connections and cuts the
// ones it carried, which is how a database that went away looks to its clients. Closed with the scope.
const tcpProxy = (target: URL) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const sockets = new Set<net.Socket>()
      const listener = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname)
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on("error", () => socket.destroy())
          socket.on("close", () => sockets.delete(socket))
        }
        client.pipe(upstream)
        upstream.pipe(client)
      })
      const listen = (port: number) =>
        new Promise<number>((resolve) =>
          listener.listen(port, "127.0.0.1", () => resolve((listener.address() as net.AddressInfo).port))
        )
      const port = await listen(0)
      return {
        port,
        open: Effect.promise(() => listen(port)),
        close: Effect.promise(() =>
          new Promise<void>((resolve) => {
            if (!listener.listening) return resolve()
            listener.close(() => resolve())
            for (const socket of sockets) socket.destroy()
          })
        )
      }
    }),
    (proxy) => proxy.close
  )

// What every outage below checks while it lasts and once it is over: the instance is degraded for `reason`, takes no
// job, fails nothing and starts no request; once the fault is gone it heals within seconds and completes the job, each
// URL fetched exactly once (nothing had to be fetched again: the disk was fine) and recorded once, in one attempt.
const outage = (options: {
  readonly reason: string
  readonly env: Record<string, string>
  readonly cause: RegExp
  /** Whether the job can still be read meanwhile (not while the database is unreachable). */
  readonly readable: boolean
  readonly begin: Effect.Effect<void, never, Scope.Scope>
  readonly end: Effect.Effect<void>
  /** How long the fault lasts once the instance is degraded. */
  readonly lasting: Duration.DurationInput
}) =>
  Effect.gen(function*() {
    const upstream = yield* Upstream.make()
    const harvest = yield* Harness.spawn({ MAX_CONCURRENCY: "4", SHUTDOWN_GRACE_MS: "500", ...options.env })
    const urls = Array.from({ length: 60 }, (_, i) => upstream.url(`/item/${i}?latency=100&bytes=${1000 + i}`))
    const id = yield* harvest.submit({ urls })
    yield* Wait.until(
      "a third of the job fetched",
      Effect.map(harvest.call("GET", `/jobs/${id}`), (reply) => reply.json.succeeded >= 20),
      { timeout: "30 seconds", interval: "20 millis" }
    )
    yield* options.begin

    const health = yield* Wait.until(
      "the instance to be degraded",
      Effect.map(harvest.call("GET", "/health"), (reply) => reply.status === 503 && reply),
      { timeout: "20 seconds", interval: "20 millis" }
    )
    assert.deepStrictEqual([health.json.status, health.json.reason], ["degraded", options.reason], health.text)
    assert.match(health.json.message, options.cause)
    assert.isAtLeast(Number(health.headers.get("retry-after")), 1)
    const since = Date.parse(health.json.since)
    const refused = yield* harvest.call("POST", "/jobs", { urls: [upstream.url("/later")] })
    assert.deepStrictEqual([refused.status, refused.json?.error?.code], [503, options.reason], refused.text)
    assert.isAtLeast(Number(refused.headers.get("retry-after")), 1)

    // While the fault lasts, nothing fails and no request starts.
    yield* Effect.sleep(options.lasting)
    const during = yield* harvest.call("GET", `/jobs/${id}`)
    if (options.readable) {
      assert.deepStrictEqual([during.status, during.json.status, during.json.failed], [200, "running", 0], during.text)
    } else {
      // Not a 500: the route answers what keeps it from reading the job.
      assert.deepStrictEqual([during.status, during.json?.error?.code], [503, options.reason], during.text)
      assert.isAtLeast(Number(during.headers.get("retry-after")), 1)
    }
    const late = upstream.requests().filter((record) => arrivedAt(record) > since + 1000)
    assert.deepStrictEqual(late.map((record) => record.path), [], "no request starts while degraded")

    yield* options.end
    const endedAt = Date.now()
    yield* Wait.until(
      "the instance to be healthy again",
      Effect.map(harvest.call("GET", "/health"), (reply) => reply.status === 200 && reply.json.status === "ok"),
      { timeout: "15 seconds", interval: "20 millis" }
    )
    // The probes run at most 2 s apart; the margin is for a loaded machine.
    assert.isBelow(Date.now() - endedAt, 10_000, "healed within seconds")
    const done = yield* harvest.waitFor(id, "completed", 60_000)
    assert.deepStrictEqual([done.succeeded, done.failed], [60, 0])
    const results = yield* harvest.results(id)
    assert.strictEqual(results.length, 60)
    assert.deepStrictEqual(new Set(results.map((result: any) => result.url)), new Set(urls))
    for (const result of results) {
      assert.deepStrictEqual([result.status, result.attempts], ["succeeded", 1], JSON.stringify(result))
    }
    // Results fetched before or during the outage waited for the database; items not started waited for the
    // instance: the upstream saw each URL once.
    assert.strictEqual(upstream.requests().length, 60)
    assert.strictEqual(new Set(upstream.requests().map((record) => record.path)).size, 60)

    const output = harvest.output()
    assert.strictEqual(output.match(/message="degraded by a local fault/g)?.length, 1, output)
    // Reminded at most every 30 s while it lasts.
    const reminders = output.match(/message="still degraded by a local fault/g)?.length ?? 0
    assert.isAtMost(reminders, Math.floor((endedAt - since) / 30_000), output)
    assert.strictEqual(output.match(/local fault cleared/g)?.length, 1, output)
    assert.notMatch(output, /leasing failed|committing results failed|heartbeat failed/)
    assert.notMatch(output, /\n\s+at /, "no stack trace")
  })

describe.skipIf(Databases.postgresSkip !== undefined)(
  `Harvest without its Postgres${Databases.postgresSkip === undefined ? "" : ` (skipped: ${Databases.postgresSkip})`}`,
  () => {
    it.scopedLive(
      "Postgres unreachable mid-job: degraded (database_unavailable) until it is back, nothing lost",
      () =>
        Effect.gen(function*() {
          const database = new URL(yield* Databases.freshPostgres)
          const proxy = yield* tcpProxy(database)
          const through = new URL(database)
          through.hostname = "127.0.0.1"
          through.port = String(proxy.port)
          const dataDir = yield* Databases.tempDir("harvest-pg-outage-")
          yield* outage({
            reason: "database_unavailable",
            env: { DATA_DIR: dataDir, DATABASE_URL: through.toString() },
            cause: /ECONNREFUSED|connection|terminated/i,
            readable: false,
            begin: proxy.close,
            end: proxy.open,
            // The issue's case: away for longer than a restart, long enough for every timeout on the way to fire.
            lasting: "30 seconds"
          })
        }),
      150_000
    )
  }
)

describe("Harvest with its SQLite database locked", () => {
  it.scopedLive("another connection holds BEGIN IMMEDIATE: degraded (SQLITE_BUSY) until it lets go, nothing lost", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-sqlite-busy-")
      // A second connection to Harvest's database (opened once Harvest made it), as another process would hold it.
      let other: SqlClient.SqlClient | undefined
      yield* outage({
        reason: "database_unavailable",
        env: { DATA_DIR: dataDir },
        cause: /SQLITE_BUSY|locked/,
        readable: true,
        begin: Effect.gen(function*() {
          const context = yield* Layer.build(
            SqliteClient.layer({ filename: path.join(dataDir, "harvest.db"), disableWAL: true }).pipe(Layer.orDie)
          )
          other = Context.get(context, SqlClient.SqlClient)
          yield* Effect.orDie(other.unsafe("BEGIN IMMEDIATE"))
        }),
        end: Effect.suspend(() => Effect.orDie(other!.unsafe("ROLLBACK"))),
        lasting: "2500 millis"
      })
    }))
})

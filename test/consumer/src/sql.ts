// @spindle/sql as a user installs it: JobQueue on a SQLite file through @effect/sql-sqlite-node.
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { JobQueue, Migrations } from "@spindle/sql"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import assert from "node:assert/strict"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const Fetch = Schema.Struct({ url: Schema.String })
const Result = Schema.Struct({ bytes: Schema.Number })

const roundTrip = (filename: string) =>
  Effect.gen(function*() {
    yield* Migrations.run
    const queue = yield* JobQueue.make({ name: "consumer", schema: Fetch, result: Result })
    const ids = yield* queue.enqueue([{ url: "https://example.com/a" }, { url: "https://example.com/b" }, {
      url: "https://example.com/c"
    }])
    assert.equal(ids.length, 3)

    const leased = yield* queue.lease({ limit: 2, owner: "w1", lease: "30 seconds" })
    assert.deepEqual(leased.map((j) => j.payload.url), ["https://example.com/a", "https://example.com/b"])
    assert.ok(leased.every((j) => j.status === "leased" && j.leaseOwner === "w1"))
    assert.deepEqual(
      yield* queue.lease({ limit: 5, owner: "w2", lease: "30 seconds" }).pipe(
        Effect.map((jobs) => jobs.map((j) => j.payload.url))
      ),
      ["https://example.com/c"],
      "another worker gets only what is left"
    )

    assert.equal(yield* queue.ack(leased[0].id, "w2", { bytes: 1 }), false, "only the owner settles")
    assert.equal(yield* queue.ack(leased[0].id, "w1", { bytes: 512 }), true)
    assert.equal(yield* queue.ack(leased[0].id, "w1", { bytes: 512 }), false, "a job is settled once")
    assert.deepEqual(yield* queue.heartbeat([leased[1].id], "w1", "1 minute"), [leased[1].id])
    assert.equal(yield* queue.release([leased[1].id], "w1"), 1)

    assert.deepEqual(yield* queue.counts(), { pending: 1, leased: 1, done: 1, failed: 0, cancelled: 0 })
    const done = Chunk.toReadonlyArray(yield* Stream.runCollect(queue.stream({ status: "done" })))
    assert.equal(done.length, 1)
    assert.deepEqual(done[0].result, { bytes: 512 })
    assert.ok(fs.statSync(filename).size > 0, "the queue lives in the SQLite file")
  })

const jobQueue = Effect.acquireUseRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "spindle-consumer-db-"))),
  (dir) => {
    const filename = path.join(dir, "jobs.db")
    return roundTrip(filename).pipe(Effect.provide(SqliteClient.layer({ filename })))
  },
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

export const checks = [["JobQueue on SQLite: enqueue, lease, ack, heartbeat, release, stream", jobQueue]] as const

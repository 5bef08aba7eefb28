import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Databases, Wait } from "@spindle/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Worker } from "node:worker_threads"
import { StorageThread } from "../src/internal/storageThread.js"

// About 800 pages of WAL in one commit.
const fill = (sql: SqlClient.SqlClient) =>
  sql.unsafe(
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50) " +
      "INSERT INTO filler SELECT randomblob(64000) FROM n"
  )

describe("StorageThread", () => {
  it.scopedLive("a thread that dies is replaced: bodies it held fail, the next is written, checkpoints go on", () =>
    Effect.gen(function*() {
      const dir = yield* Databases.tempDir("harvest-storage-thread-")
      const file = path.join(dir, "test.db")
      const sql = Context.get(yield* Layer.build(SqliteClient.layer({ filename: file })), SqlClient.SqlClient)
      yield* sql.unsafe("PRAGMA wal_autocheckpoint = 0")
      yield* sql.unsafe("CREATE TABLE filler (b BLOB)")
      const thread = new StorageThread()
      yield* Effect.addFinalizer(() => Effect.promise(() => thread.close()))
      const errors: Array<string> = []
      const stop = yield* Effect.promise(() =>
        thread.checkpoints({ filename: file, intervalMs: 50, onError: (message) => errors.push(message) })
      )
      const size = () => fs.statSync(file).size
      yield* fill(sql)
      const first = yield* Wait.until("a first checkpoint", Effect.sync(() => size() > 3_000_000 && size()))

      // The thread stops under its work (as a crash would end it).
      const worker = (thread as unknown as { readonly worker: Worker }).worker
      const write = (name: string) =>
        Effect.async<void, Error>((resume) =>
          thread.write(
            path.join(dir, `${name}.part`),
            path.join(dir, name),
            Buffer.from(name),
            (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
          )
        )
      const held = Effect.runPromiseExit(write("held"))
      yield* Effect.promise(() => worker.terminate())
      const exit = yield* Effect.promise(() => held)
      // Either written before the thread stopped, or failed with the reason; never left waiting.
      if (exit._tag === "Failure") assert.match(String(exit.cause), /storage thread stopped/)
      // The next body starts another thread.
      yield* write("next")
      assert.strictEqual(fs.readFileSync(path.join(dir, "next"), "utf8"), "next")
      // And the database is checkpointed again by it.
      yield* fill(sql)
      yield* Wait.until("a checkpoint by the new thread", Effect.sync(() => size() > first + 3_000_000 || undefined))
      assert.deepStrictEqual(errors, [])
      yield* Effect.promise(stop)
    }))
})

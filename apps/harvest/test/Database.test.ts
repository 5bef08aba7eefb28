import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Databases, Wait } from "@spindle/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import * as HarvestConfig from "../src/HarvestConfig.js"
import * as Database from "../src/storage/Database.js"
import * as StorageThread from "../src/storage/StorageThread.js"

describe("Database on SQLite", () => {
  it.scoped("opens DATA_DIR/harvest.db in WAL mode, committing without an fsync each, waiting 250 ms for a lock", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-database-")
      const context = yield* Layer.build(
        Database.layer.pipe(Layer.provide([HarvestConfig.layerWith({ dataDir }), StorageThread.layer]))
      )
      const sql = Context.get(context, SqlClient.SqlClient)
      const pragma = (name: string) =>
        Effect.map(sql.unsafe<Record<string, unknown>>(`PRAGMA ${name}`), (rows) => Object.values(rows[0])[0])
      assert.strictEqual(yield* pragma("journal_mode"), "wal")
      // 1 is NORMAL: under WAL a commit survives the process being killed, and waits for no disk sync (2, FULL,
      // is SQLite's default and held the event loop for an fsync per commit).
      assert.strictEqual(yield* pragma("synchronous"), 1)
      assert.strictEqual(yield* pragma("busy_timeout"), 250)
      // Checkpoints are the storage thread's: the loop's connection makes one only past 10,000 pages of WAL.
      assert.strictEqual(yield* pragma("wal_autocheckpoint"), 10_000)
      // Migrated: the queue's table and Harvest's exist.
      const tables = yield* sql.unsafe<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      assert.includeMembers(tables.map((t) => t.name), ["harvest_migrations", "harvest_probe"])
    }))

  it.scopedLive("commits reach harvest.db through the storage thread's checkpoints; closing leaves no WAL behind", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-database-")
      const file = path.join(dataDir, "harvest.db")
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Database.layer.pipe(Layer.provide([HarvestConfig.layerWith({ dataDir }), StorageThread.layer])),
        scope
      )
      const sql = Context.get(context, SqlClient.SqlClient)
      yield* sql`CREATE TABLE filler (b BLOB)`
      const before = fs.statSync(file).size
      // About 2,000 pages of WAL in ten commits, fewer than the loop's connection checkpoints by itself (10,000).
      for (let i = 0; i < 10; i++) {
        yield* sql.unsafe(
          "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50) " +
            "INSERT INTO filler SELECT randomblob(16000) FROM n"
        )
      }
      // Only a checkpoint copies pages from the WAL into the database file: the thread's, every 200 ms.
      const size = yield* Wait.until(
        "harvest.db to hold the committed rows",
        Effect.sync(() => fs.statSync(file).size >= before + 500 * 16_000 && fs.statSync(file).size)
      )
      assert.isAtLeast(size, 8_000_000)
      // Closing stops the thread's connection before the loop's: the last to close checkpoints what is left and
      // removes the WAL, which an open connection would keep.
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(fs.existsSync(`${file}-wal`))
      assert.strictEqual(fs.statSync(file).size, size)
    }))

  it.scoped("a database the storage thread cannot open is refused with the reason; the thread writes on", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-database-")
      const thread = Context.get(yield* Layer.build(StorageThread.layer), StorageThread.StorageThread)
      const refused = yield* Effect.flip(
        Effect.tryPromise(() =>
          thread.checkpoints({ filename: path.join(dataDir, "absent.db"), intervalMs: 200, onError: () => {} })
        )
      )
      assert.match(String(refused.error), /absent\.db|unable to open|does not exist/i)
      // The thread itself is unharmed: it writes a body.
      const final = path.join(dataDir, "body")
      yield* Effect.async<void, Error>((resume) =>
        thread.write(
          path.join(dataDir, "body.part"),
          final,
          Buffer.from("kept"),
          (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
        )
      )
      assert.strictEqual(fs.readFileSync(final, "utf8"), "kept")
    }))
})

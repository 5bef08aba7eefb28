import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Databases } from "@spindle/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HarvestConfig from "../src/HarvestConfig.js"
import * as Database from "../src/storage/Database.js"

describe("Database on SQLite", () => {
  it.scoped("opens DATA_DIR/harvest.db in WAL mode, committing without an fsync each, waiting 250 ms for a lock", () =>
    Effect.gen(function*() {
      const dataDir = yield* Databases.tempDir("harvest-database-")
      const context = yield* Layer.build(Database.layer.pipe(Layer.provide(HarvestConfig.layerWith({ dataDir }))))
      const sql = Context.get(context, SqlClient.SqlClient)
      const pragma = (name: string) =>
        Effect.map(sql.unsafe<Record<string, unknown>>(`PRAGMA ${name}`), (rows) => Object.values(rows[0])[0])
      assert.strictEqual(yield* pragma("journal_mode"), "wal")
      // 1 is NORMAL: under WAL a commit survives the process being killed, and waits for no disk sync (2, FULL,
      // is SQLite's default and held the event loop for an fsync per commit).
      assert.strictEqual(yield* pragma("synchronous"), 1)
      assert.strictEqual(yield* pragma("busy_timeout"), 250)
      // Migrated: the queue's table and Harvest's exist.
      const tables = yield* sql.unsafe<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      assert.includeMembers(tables.map((t) => t.name), ["harvest_migrations", "harvest_probe"])
    }))
})

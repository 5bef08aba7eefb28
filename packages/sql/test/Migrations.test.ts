import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { JobQueue, Migrations } from "@spindle/sql"
import { Databases } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"

const Payload = Schema.Struct({ url: Schema.String })
const payloads = (n: number) => Array.from({ length: n }, (_, i) => ({ url: `https://example.com/${i}` }))

// The migrations up to `last`, under the table `Migrations.run` uses: a database as an earlier release left it.
const runUpTo = (last: number) =>
  Effect.flatMap(Migrations.loader, (all) =>
    Migrator.make({})({
      loader: Effect.succeed(all.filter(([id]) => id <= last)),
      table: "spindle_migrations"
    }))

// How the database defines an index, as SQL text.
const indexDefinition = (name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.onDialectOrElse({
      pg: () => sql<{ definition: string }>`SELECT indexdef AS definition FROM pg_indexes WHERE indexname = ${name}`,
      orElse: () => sql<{ definition: string }>`SELECT sql AS definition FROM sqlite_master WHERE name = ${name}`
    })
    assert.strictEqual(rows.length, 1, `index ${name}`)
    return rows[0].definition
  })

for (const database of Databases.all) {
  const suite = database.skip === undefined ? describe : describe.skip
  suite(`Migrations on ${database.name}${database.skip === undefined ? "" : ` (skipped: ${database.skip})`}`, () => {
    it.scoped("the lease's indexes hold only the rows it looks for", () =>
      Effect.gen(function*() {
        const applied = yield* Migrations.run
        assert.deepStrictEqual(applied.map(([, name]) => name), [
          "spindle_jobs",
          "spindle_jobs_groups",
          "spindle_jobs_group_status",
          "spindle_jobs_partial_indexes"
        ])
        assert.match(yield* indexDefinition("spindle_jobs_ready"), /WHERE \(?status = 'pending'/)
        assert.match(yield* indexDefinition("spindle_jobs_leases"), /WHERE \(?status = 'leased'/)
        assert.deepStrictEqual(yield* Migrations.run, [], "a second run applies nothing")
      }).pipe(Effect.provide(database.layer)), 60_000)

    it.scoped(
      "a database of an earlier release moves to them with its jobs, and leases as before",
      () =>
        Effect.gen(function*() {
          yield* runUpTo(3)
          assert.notMatch(yield* indexDefinition("spindle_jobs_ready"), /WHERE/)
          const queue = yield* JobQueue.make({ name: "upgraded", schema: Payload })
          const ids = yield* queue.enqueue(payloads(5))
          const before = yield* queue.lease({ limit: 2, owner: "old", lease: "10 seconds" })
          assert.deepStrictEqual(before.map((job) => job.id), ids.slice(0, 2))

          assert.deepStrictEqual((yield* Migrations.run).map(([, name]) => name), ["spindle_jobs_partial_indexes"])
          assert.deepStrictEqual(yield* queue.counts(), { pending: 3, leased: 2, done: 0, failed: 0, cancelled: 0 })
          // Pending jobs come from `spindle_jobs_ready`, in order, and the old leases stay out of it until they expire.
          const next = yield* queue.lease({ limit: 10, owner: "new", lease: "10 seconds" })
          assert.deepStrictEqual(next.map((job) => job.id), ids.slice(2))
          assert.isTrue(yield* queue.ack(before[0].id, "old"))
          for (const job of next) assert.isTrue(yield* queue.ack(job.id, "new"))
          // The other old lease expires: `spindle_jobs_leases` finds it, and the next lease takes it over.
          assert.deepStrictEqual(yield* queue.lease({ limit: 10, owner: "new", lease: "10 seconds" }), [])
          yield* TestClock.adjust("11 seconds")
          const takenOver = yield* queue.lease({ limit: 10, owner: "new", lease: "10 seconds" })
          assert.deepStrictEqual(takenOver.map((job) => job.id), [before[1].id])
          assert.deepStrictEqual(yield* queue.counts(), { pending: 0, leased: 1, done: 4, failed: 0, cancelled: 0 })
        }).pipe(Effect.provide(database.layer)),
      60_000
    )

    if (database.name === "sqlite") {
      it.scoped("a lease reads pending jobs in the index's order, with no sort", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* Migrations.run
          const plan = yield* sql<{ detail: string }>`
            EXPLAIN QUERY PLAN SELECT id FROM spindle_jobs
            WHERE queue = 'q' AND status = 'pending' AND available_at <= 0
            ORDER BY available_at, id LIMIT 50
          `
          const details = plan.map((row) => row.detail).join("\n")
          assert.match(details, /USING (COVERING )?INDEX spindle_jobs_ready/)
          assert.notMatch(details, /TEMP B-TREE/)
        }).pipe(Effect.provide(database.layer)))
    }
  })
}

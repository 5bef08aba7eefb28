/**
 * One Harvest instance for the scale-out benchmark, forked by `harvest-scale` with its configuration in the
 * environment (`DATABASE_URL`, `REDIS_URL`, `PORT`, `DATA_DIR`, `MAX_CONCURRENCY`, …): runs `Server.make` until
 * its parent disconnects, and answers `{ query }` messages with the rows of that SQL query on its own database
 * connection (the coordinator reads the items' settle times from there). Set up as `main.ts` sets up the process
 * (`Startup.limitHeapGrowth`).
 */
import * as HarvestConfig from "@spindle/harvest/src/HarvestConfig.js"
import * as Server from "@spindle/harvest/src/Server.js"
import * as Startup from "@spindle/harvest/src/Startup.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

/** The part of `@effect/sql`'s `SqlClient` used here, under its tag key (see `harvest-e2e.ts`). */
interface SqlReader {
  readonly unsafe: (sql: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, unknown>
}
const SqlReader = Context.GenericTag<SqlReader>("@effect/sql/SqlClient")

Startup.limitHeapGrowth()

const program = Effect.gen(function*() {
  const context = yield* Layer.build(Server.make(HarvestConfig.layer))
  const sql = Context.unsafeGet(context, SqlReader)
  process.on("message", (message) => {
    const { query } = message as { readonly query: string }
    Effect.runPromise(sql.unsafe(query)).then(
      (rows) => process.send?.({ rows }),
      (error: unknown) => process.send?.({ error: String(error) })
    )
  })
  process.send?.({ ready: true })
  yield* Effect.async<void>((resume) => {
    process.once("disconnect", () => resume(Effect.void))
  })
})

Effect.runPromise(program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)

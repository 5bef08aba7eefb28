// The consumer test's program: every check runs against the installed tarballs, then the process exits with the
// verdict (runMain's shutdown check goes last, since it signals the process).
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Core from "./core.js"
import * as Node from "./node.js"
import * as PromisePolicy from "./promise.js"
import * as Sql from "./sql.js"

let passed = 0
let failed = 0
const report = (name: string, error: string | undefined) => {
  if (error === undefined) passed++
  else failed++
  console.log(`${error === undefined ? "ok  " : "FAIL"} ${name}${error === undefined ? "" : `\n${error}`}`)
}

for (const [name, check] of [...Core.checks, ...Sql.checks]) {
  const exit = await Effect.runPromiseExit(check as Effect.Effect<void, unknown>)
  report(name, Exit.isSuccess(exit) ? undefined : Cause.pretty(exit.cause))
}
for (const [name, check] of PromisePolicy.checks) {
  try {
    await check()
    report(name, undefined)
  } catch (error) {
    report(name, error instanceof Error ? error.stack ?? error.message : String(error))
  }
}
try {
  await Node.shutdownWithHttpDrain()
  report("Shutdown.runMain + HttpDrain: serves, drains on SIGTERM, exits 0", undefined)
} catch (error) {
  report("Shutdown.runMain + HttpDrain: serves, drains on SIGTERM, exits 0", String(error))
}

console.log(`consumer: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)

/**
 * CPU offload with Spindle's `CpuPool` (see `lib/cpu.ts`): `CpuPool.make({ size: threads, execArgv: [] })`, every
 * task submitted at once (`pool.run(module, "pbkdf2", task)`, each run as its own promise, as piscina's are).
 *
 * `execArgv: []`: the default (`process.execArgv`) makes `make` die with `ERR_WORKER_INVALID_EXEC_ARGV` in a
 * process started with `--expose-gc`, as every variant is (Node accepts only per-thread flags in a Worker's
 * explicit `execArgv`).
 */
import { CpuPool } from "@spindle/node"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { moduleUrl, runCpuVariant, threads } from "../lib/cpu.js"

runCpuVariant({
  warm: threads,
  drive: "all-at-once",
  start: async () => {
    const scope = Effect.runSync(Scope.make())
    const pool = await Effect.runPromise(Scope.extend(CpuPool.make({ size: threads, execArgv: [] }), scope))
    return {
      run: (task) => Effect.runPromise(pool.run<string>(moduleUrl, "pbkdf2", task)),
      close: () => Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
})

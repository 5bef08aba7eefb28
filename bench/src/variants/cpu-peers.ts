/**
 * CPU offload without Spindle (see `lib/cpu.ts`).
 *
 *   --variant=main          the main thread calls the task `n` times in a loop, never letting the event loop turn
 *                           (the fastest one thread can go)
 *   --variant=main-yield    the main thread calls it once per event-loop turn (`setImmediate` between tasks)
 *   --variant=piscina       `new Piscina({ filename: module, minThreads: threads, maxThreads: threads })`, every
 *                           task submitted at once (`piscina.run(task, { name: "pbkdf2" })`)
 */
import { Piscina } from "piscina"
import { choiceArg } from "../lib/child.js"
import { moduleUrl, runCpuVariant, type Task, threads } from "../lib/cpu.js"

const variant = choiceArg("variant", ["main", "main-yield", "piscina"])

if (variant === "piscina") {
  runCpuVariant({
    warm: threads,
    drive: "all-at-once",
    start: async () => {
      const piscina = new Piscina<Task, string>({ filename: moduleUrl, minThreads: threads, maxThreads: threads })
      return { run: (task) => piscina.run(task, { name: "pbkdf2" }), close: () => piscina.destroy() }
    }
  })
} else {
  runCpuVariant({
    warm: 1,
    drive: variant === "main" ? "loop" : "loop-yielding",
    start: async () => {
      const module = (await import(moduleUrl)) as { readonly pbkdf2: (task: Task) => string }
      return { run: (task) => Promise.resolve(module.pbkdf2(task)), close: () => Promise.resolve() }
    }
  })
}

import { assert, describe, it } from "@effect/vitest"
import { CpuPool, EventLoopMonitor } from "@spindle/node"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"

const cpu = new URL("./fixtures/cpu.mjs", import.meta.url)

const hashRounds = (seed: string, rounds: number) => {
  let digest = seed
  for (let i = 0; i < rounds; i++) digest = createHash("sha256").update(digest).digest("hex")
  return digest
}

describe("CpuPool", () => {
  it.live("runs many tasks concurrently on its workers with correct results in order", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 2 })
      const seeds = Array.from({ length: 40 }, (_, i) => `seed-${i}`)
      const results = yield* Effect.forEach(seeds, (seed) => pool.run<string>(cpu, "hashRounds", seed, 500), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(results, seeds.map((seed) => hashRounds(seed, 500)))
      assert.deepStrictEqual(yield* pool.stats, { size: 2, busy: 0, queued: 0, replaced: 0 })
    })))

  it.live("typed tasks encode requests and decode responses with Schema", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 1 })
      const Request = Schema.Struct({ name: Schema.String, count: Schema.NumberFromString })
      const Response = Schema.Struct({ label: Schema.String, doubled: Schema.Number })
      const describeTask = pool.task({ module: cpu, exportName: "describe", request: Request, response: Response })
      // `count` crosses the boundary encoded (a string, as the schema says); the response is decoded back.
      assert.deepStrictEqual(yield* describeTask({ name: "x", count: 21 }), { label: "x:string", doubled: 42 })
    })))

  it.live("a response that does not match its schema is a ParseError", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 1 })
      const task = pool.task({
        module: cpu,
        exportName: "malformed",
        request: Schema.Void,
        response: Schema.Struct({ label: Schema.String })
      })
      const error = yield* Effect.flip(task(undefined))
      assert.strictEqual(error._tag, "ParseError")
    })))

  it.live("errors are typed: thrown, failed to load, crashed worker (which is replaced)", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 1 })
      const threw = yield* Effect.flip(pool.run(cpu, "fail", "bad input"))
      assert.strictEqual(threw.reason, "Threw")
      assert.include(threw.message, "bad input")
      const missing = yield* Effect.flip(pool.run(cpu, "nope"))
      assert.strictEqual(missing.reason, "LoadFailed")
      const crashed = yield* Effect.flip(pool.run(cpu, "crash"))
      assert.strictEqual(crashed.reason, "WorkerCrashed")
      assert.strictEqual((yield* pool.stats).replaced, 1)
      assert.strictEqual(yield* pool.run<number>(cpu, "spin", 1), 1, "the replacement works")
    })))

  it.live("interrupting a running task replaces its worker; a queued task just leaves the queue", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* CpuPool.make({ size: 1 })
      const timedOut = yield* Effect.either(pool.run(cpu, "hang").pipe(Effect.timeout("200 millis")))
      assert.strictEqual(timedOut._tag, "Left")
      assert.strictEqual((yield* pool.stats).replaced, 1)
      const blocker = yield* Effect.fork(pool.run(cpu, "spin", 300))
      yield* Effect.sleep("20 millis")
      const queued = yield* Effect.fork(pool.run(cpu, "spin", 1))
      yield* Effect.sleep("20 millis")
      assert.strictEqual((yield* pool.stats).queued, 1)
      yield* queued.interruptAsFork(queued.id())
      yield* Effect.sleep("5 millis")
      assert.strictEqual((yield* pool.stats).queued, 0)
      assert.strictEqual((yield* blocker.await)._tag, "Success")
      assert.strictEqual((yield* pool.stats).replaced, 1, "no worker was replaced for a queued task")
    })))

  it.live("the event loop stays responsive while the pool computes", () =>
    Effect.scoped(Effect.gen(function*() {
      const monitor = yield* EventLoopMonitor.make({ sampleInterval: "1 hour", resolution: "5 millis" })
      const pool = yield* CpuPool.make({ size: 2 })
      yield* pool.run(cpu, "spin", 1)
      yield* monitor.sample
      yield* Effect.forEach([1, 2, 3, 4], () => pool.run(cpu, "spin", 200), { concurrency: "unbounded" })
      const during = yield* monitor.sample
      // Inline, the four spins would hold the loop for 800 ms; half of that is left for a loaded machine's stalls.
      assert.isBelow(during.lastMaxMs, 400)
    })))
})

describe("CpuPool worker flags", () => {
  it("keeps module loaders and drops the flags workers refuse", async () => {
    const { forWorkers } = await import("../src/internal/execArgv.js")
    assert.deepStrictEqual(
      forWorkers(["--expose-gc", "--import", "tsx", "--max-old-space-size=4096", "--conditions=dev", "-r", "x.cjs"]),
      ["--import", "tsx", "--conditions=dev", "-r", "x.cjs"]
    )
  })
})

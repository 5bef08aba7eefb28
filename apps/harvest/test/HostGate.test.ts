import { assert, describe, it } from "@effect/vitest"
import { TokenBucketStore } from "@spindle/core"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as Domain from "../src/Domain.js"
import * as HarvestConfig from "../src/HarvestConfig.js"
import { FetchFailure } from "../src/pipeline/Fetcher.js"
import * as HostGate from "../src/pipeline/HostGate.js"

// The gate alone, on the test clock: attempts are plain effects that count their runs, so "no attempt was made" is
// the count standing still, and "no slot, no token" is the next attempt admitted without waiting.
const Env = Layer.mergeAll(HarvestConfig.layerWith({}), TokenBucketStore.layerMemory)

const options = (overrides: Partial<Domain.JobOptions> = {}): Domain.JobOptions => ({
  concurrency: 64,
  perHostConcurrency: 100,
  perHostRps: null,
  perHostBurst: 1,
  timeoutMs: 30_000,
  maxAttempts: 3,
  ...overrides
})

const networkError = new FetchFailure({
  code: "network",
  message: "connection reset",
  retryable: true,
  httpStatus: null,
  retryAfter: undefined
})

const counter = () => {
  let runs = 0
  return {
    runs: () => runs,
    fail: Effect.suspend(() => {
      runs++
      return Effect.fail(networkError)
    }),
    succeed: Effect.sync(() => {
      runs++
      return "ok"
    })
  }
}

// The breaker opens once at least 20 calls within 10 s have failed half of the time: 20 failures open it.
const openCircuit = (gate: HostGate.HostGate, host: string) =>
  Effect.gen(function*() {
    const opener = yield* gate.forJob("opener", options())
    const attempts = counter()
    for (let i = 0; i < 20; i++) yield* Effect.either(opener.run(host, attempts.fail))
    assert.strictEqual(yield* gate.circuit(host), "open")
  })

const subscribe = (gate: HostGate.HostGate) =>
  Effect.gen(function*() {
    const events = yield* Queue.unbounded<HostGate.HostEvent>()
    yield* Effect.forkScoped(Stream.runForEach(gate.events, (event) => Queue.offer(events, event)))
    yield* Effect.yieldNow()
    return {
      // Lets the subscriber catch up, then hands over what it received.
      drain: Effect.zipRight(
        Effect.repeatN(Effect.yieldNow(), 20),
        Effect.map(Queue.takeAll(events), (chunk) => Chunk.toReadonlyArray(chunk))
      )
    }
  })

describe("HostGate", () => {
  it.scoped("an open circuit fails the attempt at once: no request, no slot, no rate token", () =>
    Effect.gen(function*() {
      const gate = yield* HostGate.make
      yield* openCircuit(gate, "down.test:80")
      // A job limited to one request at a time and one token every 10 s on that host.
      const job = yield* gate.forJob("job", options({ perHostConcurrency: 1, perHostRps: 0.1, perHostBurst: 1 }))
      const attempts = counter()
      for (let i = 0; i < 5; i++) {
        const result = yield* Effect.either(job.run("down.test:80", attempts.succeed))
        assert.isTrue(Either.isLeft(result))
        assert.strictEqual(Either.getLeft(result).pipe(Option.getOrThrow).code, "circuit_open")
        assert.isAbove(Duration.toMillis(Either.getLeft(result).pipe(Option.getOrThrow).retryAfter!), 0)
      }
      assert.strictEqual(attempts.runs(), 0, "no attempt ran")
      // Another host is not held up by it.
      assert.strictEqual(yield* job.run("up.test:80", attempts.succeed), "ok")
      // After the cooldown (2 s) the circuit lets a probe through at once: the five refusals took neither the one
      // slot nor the one token (a token spent would mean waiting 10 s for the next).
      yield* TestClock.adjust("2 seconds")
      const probe = yield* Effect.fork(job.run("down.test:80", attempts.succeed))
      yield* Effect.yieldNow()
      const done = yield* Fiber.poll(probe)
      assert.isTrue(Option.isSome(done), "the probe was admitted without waiting")
      assert.strictEqual(yield* Fiber.join(probe), "ok")
      assert.strictEqual(attempts.runs(), 2, "the other host's and the probe")
      assert.strictEqual(yield* gate.circuit("down.test:80"), "closed")
    }).pipe(Effect.provide(Env)))

  it.scoped("a circuit that opens while an attempt waits for its slot: the attempt is not sent", () =>
    Effect.gen(function*() {
      const gate = yield* HostGate.make
      const { drain } = yield* subscribe(gate)
      const job = yield* gate.forJob("job", options({ perHostConcurrency: 1 }))
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(job.run("slow.test:80", Effect.as(Deferred.await(release), "first")))
      const waiting = counter()
      const waiter = yield* Effect.fork(Effect.either(job.run("slow.test:80", waiting.succeed)))
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      assert.strictEqual(gate.onWire(), 1)
      yield* openCircuit(gate, "slow.test:80")
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual(yield* Fiber.join(holder), "first")
      const refused = yield* Fiber.join(waiter)
      assert.strictEqual(Either.getLeft(refused).pipe(Option.getOrThrow).code, "circuit_open")
      assert.strictEqual(waiting.runs(), 0, "the waiting attempt was never sent")
      assert.strictEqual(gate.onWire(), 0)

      // What the dashboard folds, published once per interval: the waiter waited and left without being sent; the
      // holder and the 20 openers were sent and ended, the openers with their errors (the latest five kept).
      const before = yield* drain
      assert.isEmpty(before.filter((event) => event._tag === "Activity"), "nothing before the interval")
      yield* TestClock.adjust(HostGate.activityInterval)
      const events = [...before, ...(yield* drain)].filter((event) => event.host === "slow.test:80")
      const activity = events.filter((event) => event._tag === "Activity")
      assert.strictEqual(activity.length, 1)
      const summed = activity[0]
      assert.deepStrictEqual(
        [summed.waiting, summed.left, summed.sent, summed.done],
        [22, 1, 21, 21],
        "waiting, left, sent, done"
      )
      assert.deepStrictEqual(summed.errors.map((error) => error.code), Array(5).fill("network"))
      assert.isTrue(events.some((event) => event._tag === "Circuit" && event.circuit === "open"))
      // Quiet hosts publish nothing.
      yield* TestClock.adjust(HostGate.activityInterval)
      assert.isEmpty((yield* drain).filter((event) => event._tag === "Activity"))
    }).pipe(Effect.provide(Env)))

  it.scoped("a job's per-host rate: the burst goes at once, the next waits for its token on the test clock", () =>
    Effect.gen(function*() {
      const gate = yield* HostGate.make
      const job = yield* gate.forJob("job", options({ perHostRps: 2, perHostBurst: 2 }))
      const attempts = counter()
      yield* job.run("a.test:80", attempts.succeed)
      yield* job.run("a.test:80", attempts.succeed)
      const third = yield* Effect.fork(job.run("a.test:80", attempts.succeed))
      yield* Effect.repeatN(Effect.yieldNow(), 10)
      assert.strictEqual(attempts.runs(), 2)
      yield* TestClock.adjust("499 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(third)))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(third), "ok")
      // Another job's limits are its own.
      const other = yield* gate.forJob("other", options({ perHostRps: 2, perHostBurst: 2 }))
      assert.strictEqual(yield* other.run("a.test:80", attempts.succeed), "ok")
    }).pipe(Effect.provide(Env)))
})

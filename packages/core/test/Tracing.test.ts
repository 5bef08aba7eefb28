import { assert, describe, it } from "@effect/vitest"
import {
  Bulkhead,
  CircuitBreaker,
  Deadline,
  KeyedCircuitBreaker,
  KeyedLimiter,
  KeyedMutex,
  Limiter,
  Policy,
  ResourcePool,
  RetryPolicy,
  TokenBucket,
  TokenBucketStore,
  WorkQueue
} from "@spindle/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as Recorder from "./utils/RecordingTracer.js"

class Boom extends Data.TaggedError("Boom")<{}> {}

// Lets forked fibers run up to their next suspension (the test clock does not move).
const settle = Effect.repeatN(Effect.yieldNow(), 20)

describe("Tracing", () => {
  it.effect("Bulkhead: an admission and a rejection are events, a wait a span with its time and queue depth", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 1, name: "db" })
      const rejected = yield* rec.traced(Effect.gen(function*() {
        const first = yield* Effect.fork(bulkhead.run(Effect.sleep("200 millis")))
        yield* settle
        const second = yield* Effect.fork(bulkhead.run(Effect.void))
        yield* settle
        const third = yield* Effect.exit(bulkhead.run(Effect.void))
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(first)
        yield* Fiber.join(second)
        return third
      }))
      assert.isTrue(Exit.isFailure(rejected))
      const root = rec.one("test")
      assert.deepStrictEqual(root.events.map((e) => [e.name, e.attributes]), [
        ["Bulkhead.admitted", { "spindle.bulkhead.name": "db", "spindle.bulkhead.in_flight": 1 }],
        ["Bulkhead.rejected", {
          "spindle.bulkhead.name": "db",
          "spindle.bulkhead.reason": "queue_full",
          "spindle.bulkhead.in_flight": 1,
          "spindle.bulkhead.queued": 1
        }]
      ])
      const wait = rec.one("Bulkhead.wait")
      assert.strictEqual(rec.parentName(wait), "test")
      assert.deepStrictEqual(rec.attributesOf(wait), {
        "spindle.bulkhead.name": "db",
        "spindle.bulkhead.queued": 0,
        "spindle.bulkhead.wait_ms": 200
      })
      assert.strictEqual(wait.endMillis! - wait.startMillis, 200)
      assert.isTrue(wait.exit !== undefined && Exit.isSuccess(wait.exit))
    }))

  it.effect("Limiter: a wait for a permit of exactly 200 ms shows spindle.limiter.wait_ms: 200", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const limiter = yield* Limiter.make({ concurrency: 1, name: "api" })
      yield* rec.traced(Effect.gen(function*() {
        const first = yield* Effect.fork(limiter.run(Effect.sleep("200 millis")))
        yield* settle
        const second = yield* Effect.fork(limiter.run(Effect.void))
        yield* settle
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(first)
        yield* Fiber.join(second)
      }))
      const wait = rec.one("Limiter.wait")
      assert.strictEqual(rec.parentName(wait), "test")
      assert.strictEqual(wait.attributes.get("spindle.limiter.wait_ms"), 200)
      assert.strictEqual(wait.attributes.get("spindle.limiter.name"), "api")
      assert.deepStrictEqual(rec.one("test").events.map((e) => e.name), ["Limiter.admitted"])
    }))

  it.effect("Limiter with a rate: the wait for a token is a span with the tokens and the time", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const limiter = yield* Limiter.make({ rate: { limit: 5, interval: "1 second", burst: 1 }, name: "paced" })
      yield* rec.traced(Effect.gen(function*() {
        yield* limiter.run(Effect.void)
        const second = yield* Effect.fork(limiter.run(Effect.void))
        yield* settle
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(second)
      }))
      const wait = rec.one("Limiter.token_wait")
      assert.deepStrictEqual(rec.attributesOf(wait), {
        "spindle.limiter.name": "paced",
        "spindle.limiter.tokens": 1,
        "spindle.limiter.queued": 0,
        "spindle.limiter.wait_ms": 200
      })
      assert.deepStrictEqual(rec.one("test").events.map((e) => e.name), [
        "Limiter.admitted",
        "Limiter.token_granted",
        "Limiter.admitted"
      ])
    }))

  it.effect("KeyedLimiter and KeyedCircuitBreaker: the key is an attribute of every span and event", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const limiter = yield* KeyedLimiter.make({ concurrency: 1, name: "hosts" })
      const breakers = yield* KeyedCircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1), name: "hosts" })
      yield* rec.traced(Effect.gen(function*() {
        const first = yield* Effect.fork(limiter.run("a.example", Effect.sleep("200 millis")))
        yield* settle
        const second = yield* Effect.fork(
          Effect.exit(limiter.run("a.example", breakers.run("a.example", Effect.fail(new Boom()))))
        )
        yield* settle
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(first)
        yield* Fiber.join(second)
      }))
      assert.deepStrictEqual(rec.attributesOf(rec.one("Limiter.wait")), {
        "spindle.limiter.name": "hosts",
        "spindle.limiter.key": "a.example",
        "spindle.limiter.queued": 0,
        "spindle.limiter.wait_ms": 200
      })
      assert.deepStrictEqual(rec.one("test").events.map((e) => [e.name, e.attributes]), [
        ["Limiter.admitted", {
          "spindle.limiter.name": "hosts",
          "spindle.limiter.key": "a.example",
          "spindle.limiter.in_flight": 1
        }],
        ["CircuitBreaker.transition", {
          "spindle.breaker.name": "hosts",
          "spindle.breaker.key": "a.example",
          "spindle.breaker.state": "open",
          "spindle.breaker.from_state": "closed"
        }]
      ])
    }).pipe(Effect.provide(TokenBucketStore.layerMemory)))

  it.effect("TokenBucket: a token at once is an event; a wait behind another caller a span; tryTake refused an event", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1, name: "mail" })
      yield* rec.traced(Effect.gen(function*() {
        yield* bucket.take()
        const second = yield* Effect.fork(bucket.take())
        yield* settle
        const third = yield* Effect.fork(bucket.take())
        yield* settle
        assert.isFalse(yield* bucket.tryTake())
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(second)
        yield* Fiber.join(third)
      }))
      const waits = rec.named("TokenBucket.wait")
      assert.deepStrictEqual(
        waits.map((
          span
        ) => [span.attributes.get("spindle.bucket.queued"), span.attributes.get("spindle.bucket.wait_ms")]),
        [[0, 100], [1, 200]]
      )
      assert.deepStrictEqual(rec.one("test").events.map((e) => [e.name, e.attributes["spindle.bucket.reason"]]), [
        ["TokenBucket.granted", undefined],
        ["TokenBucket.rejected", "waiters"]
      ])
    }))

  it.effect("TokenBucket loops: forEach and pace report nothing per element", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const bucket = yield* TokenBucket.make({ limit: 10, interval: "1 second", burst: 1, name: "loop" })
      const fiber = yield* Effect.fork(rec.traced(bucket.forEach([1, 2, 3], (n) => Effect.succeed(n))))
      yield* settle
      yield* TestClock.adjust("300 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), [1, 2, 3])
      assert.deepStrictEqual(rec.spans.map((span) => span.name), ["test"])
      assert.deepStrictEqual(rec.one("test").events, [])
    }))

  it.effect("RetryPolicy: each backoff is a span with the attempt, the delay and the reason; giving up an event", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const fiber = yield* Effect.fork(rec.traced(
        RetryPolicy.retry(Effect.fail(new Boom()), { base: "100 millis", jitter: "none", maxAttempts: 3, name: "up" })
      ))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      yield* TestClock.adjust("200 millis")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const backoffs = rec.named("RetryPolicy.backoff")
      assert.deepStrictEqual(backoffs.map((span) => rec.attributesOf(span)), [
        {
          "spindle.retry.policy": "up",
          "spindle.retry.attempt": 2,
          "spindle.retry.delay_ms": 100,
          "spindle.retry.reason": "Boom"
        },
        {
          "spindle.retry.policy": "up",
          "spindle.retry.attempt": 3,
          "spindle.retry.delay_ms": 200,
          "spindle.retry.reason": "Boom"
        }
      ])
      assert.deepStrictEqual(backoffs.map((span) => [rec.parentName(span), span.endMillis! - span.startMillis]), [
        ["test", 100],
        ["test", 200]
      ])
      assert.deepStrictEqual(rec.one("test").events.map((e) => [e.name, e.attributes]), [
        ["RetryPolicy.stopped", {
          "spindle.retry.policy": "up",
          "spindle.retry.attempt": 3,
          "spindle.retry.stop_reason": "max_attempts",
          "spindle.retry.reason": "Boom"
        }]
      ])
    }))

  it.effect("CircuitBreaker: the opening, a rejection, a probe and the closing are events; a closed admission is not", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        cooldown: "5 seconds",
        name: "payments"
      })
      yield* rec.traced(Effect.gen(function*() {
        yield* breaker.run(Effect.void)
        yield* Effect.exit(breaker.run(Effect.fail(new Boom())))
        yield* TestClock.adjust("1 second")
        yield* Effect.exit(breaker.run(Effect.void))
        yield* TestClock.adjust("4 seconds")
        yield* breaker.run(Effect.void)
      }))
      assert.deepStrictEqual(rec.one("test").events.map((e) => [e.name, e.attributes]), [
        ["CircuitBreaker.transition", {
          "spindle.breaker.name": "payments",
          "spindle.breaker.state": "open",
          "spindle.breaker.from_state": "closed"
        }],
        ["CircuitBreaker.rejected", {
          "spindle.breaker.name": "payments",
          "spindle.breaker.state": "open",
          "spindle.breaker.retry_after_ms": 4000
        }],
        ["CircuitBreaker.transition", {
          "spindle.breaker.name": "payments",
          "spindle.breaker.state": "half_open",
          "spindle.breaker.from_state": "open"
        }],
        ["CircuitBreaker.admitted", {
          "spindle.breaker.name": "payments",
          "spindle.breaker.state": "half_open",
          "spindle.breaker.probe": true
        }],
        ["CircuitBreaker.transition", {
          "spindle.breaker.name": "payments",
          "spindle.breaker.state": "closed",
          "spindle.breaker.from_state": "half_open"
        }]
      ])
    }))

  it.effect("Deadline: a bounded attempt is a span with its limit and the time left; a timeout ends it failed", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const fiber = yield* Effect.fork(rec.traced(Deadline.within(
        Effect.gen(function*() {
          yield* Deadline.attempt(Effect.void, "1 second")
          yield* TestClock.adjust("100 millis").pipe(Effect.fork)
          yield* Deadline.attempt(Effect.never, "1 second")
        }),
        "500 millis"
      )))
      yield* settle
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const within = rec.one("Deadline.within")
      assert.deepStrictEqual(rec.attributesOf(within), {
        "spindle.deadline.limit": "deadline",
        "spindle.deadline.duration_ms": 500,
        "spindle.deadline.remaining_ms": 500
      })
      const attempts = rec.named("Deadline.attempt")
      assert.deepStrictEqual(attempts.map((span) => [rec.parentName(span), rec.attributesOf(span)]), [
        ["Deadline.within", {
          "spindle.deadline.limit": "deadline",
          "spindle.deadline.duration_ms": 500,
          "spindle.deadline.remaining_ms": 500
        }],
        ["Deadline.within", {
          "spindle.deadline.limit": "deadline",
          "spindle.deadline.duration_ms": 500,
          "spindle.deadline.remaining_ms": 500
        }]
      ])
      assert.isTrue(attempts[1].exit !== undefined && Exit.isFailure(attempts[1].exit))
    }))

  it.effect("Policy: a call is one span, the stages' events and spans under it", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      let calls = 0
      const flaky = Effect.suspend(() => ++calls < 2 ? Effect.fail(new Boom()) : Effect.succeed(calls))
      const policy = yield* Policy.make({
        name: "search",
        breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
        retry: { base: "50 millis", jitter: "none", maxAttempts: 3 },
        attemptTimeout: "1 second"
      })
      // Applied inside the traced program, as `yield* policy.run(call)` is.
      const fiber = yield* Effect.fork(rec.traced(Effect.suspend(() => policy.run(flaky))))
      yield* settle
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 2)
      const run = rec.one("Policy.run")
      assert.strictEqual(rec.parentName(run), "test")
      assert.strictEqual(run.attributes.get("spindle.policy.name"), "search")
      // A closed breaker admits silently: the retry and the attempts are what happened.
      assert.deepStrictEqual(run.events, [])
      assert.strictEqual(rec.parentName(rec.one("RetryPolicy.backoff")), "Policy.run")
      assert.deepStrictEqual(rec.named("Deadline.attempt").map((span) => rec.parentName(span)), [
        "Policy.run",
        "Policy.run"
      ])
      // Applied outside any traced fiber (built once, run later under the tracer): no span of its own, and the stages
      // still report, under the caller's span.
      const built = policy.run(Effect.succeed(1))
      const later = Recorder.make()
      yield* later.traced(built)
      assert.deepStrictEqual(later.spans.map((span) => [span.name, later.parentName(span)]), [
        ["test", undefined],
        ["Deadline.attempt", "test"]
      ])
    }))

  it.effect("KeyedMutex: the lock taken at once is an event, a wait for it a span", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const mutex = yield* KeyedMutex.make({ name: "users" })
      yield* rec.traced(Effect.gen(function*() {
        const first = yield* Effect.fork(mutex.withLock("u1", Effect.sleep("200 millis")))
        yield* settle
        const second = yield* Effect.fork(mutex.withLock("u1", Effect.void))
        yield* settle
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(first)
        yield* Fiber.join(second)
      }))
      assert.deepStrictEqual(rec.one("test").events.map((e) => [e.name, e.attributes]), [
        ["KeyedMutex.acquired", { "spindle.mutex.name": "users", "spindle.mutex.key": "u1" }]
      ])
      assert.deepStrictEqual(rec.attributesOf(rec.one("KeyedMutex.wait")), {
        "spindle.mutex.name": "users",
        "spindle.mutex.key": "u1",
        "spindle.mutex.queued": 0,
        "spindle.mutex.wait_ms": 200
      })
    }))

  it.scoped("ResourcePool: a borrow is a span with what the pool held and how long it took", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const pool = yield* ResourcePool.make({
        acquire: Effect.as(Effect.sleep("30 millis"), "connection"),
        max: 1,
        name: "pg"
      })
      const fiber = yield* Effect.fork(rec.traced(Effect.scoped(pool.get)))
      yield* settle
      yield* TestClock.adjust("30 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "connection")
      assert.deepStrictEqual(rec.attributesOf(rec.one("ResourcePool.get")), {
        "spindle.pool.name": "pg",
        "spindle.pool.size": 0,
        "spindle.pool.in_use": 0,
        "spindle.pool.waiting": 0,
        "spindle.pool.wait_ms": 30
      })
    }))

  it.scoped("WorkQueue: a producer that waits for room is a span, a refused tryOffer an event, drain a span", () =>
    Effect.gen(function*() {
      const rec = Recorder.make()
      const queue = yield* WorkQueue.make({
        name: "jobs",
        capacity: 1,
        workers: 1,
        process: () => Effect.sleep("100 millis")
      })
      yield* rec.traced(Effect.gen(function*() {
        yield* queue.offer(1)
        yield* settle
        yield* queue.offer(2)
        assert.isFalse(yield* queue.tryOffer(3))
        const third = yield* Effect.fork(queue.offer(3))
        yield* settle
        yield* TestClock.adjust("100 millis")
        yield* Fiber.join(third)
        const drained = yield* Effect.fork(queue.drain)
        yield* settle
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(drained)
      }))
      assert.deepStrictEqual(rec.one("test").events.map((e) => e.name), ["WorkQueue.rejected"])
      assert.deepStrictEqual(rec.attributesOf(rec.one("WorkQueue.offer")), {
        "spindle.queue.name": "jobs",
        "spindle.queue.capacity": 1,
        "spindle.queue.wait_ms": 100
      })
      assert.strictEqual(rec.one("WorkQueue.drain").attributes.get("spindle.queue.wait_ms"), 200)
    }))

  it.effect("with no tracer installed, no operation makes a span or an event", () =>
    Effect.gen(function*() {
      // Effect's native tracer, counted where it stands (the core compares the fiber's tracer with it by reference).
      const native = Context.get(DefaultServices.liveServices, Tracer.Tracer) as { span: Tracer.Tracer["span"] }
      const original = native.span
      const made: Array<string> = []
      native.span = (name, ...rest) => {
        made.push(name)
        return original(name, ...rest)
      }
      const program = Effect.gen(function*() {
        const bulkhead = yield* Bulkhead.make({ maxConcurrent: 1, maxQueued: 0 })
        const limiter = yield* Limiter.make({ concurrency: 1, rate: { limit: 10, interval: "1 second", burst: 1 } })
        const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1) })
        const policy = yield* Policy.make({ retry: { base: "10 millis", jitter: "none", maxAttempts: 2 } })
        const mutex = yield* KeyedMutex.make()
        yield* bulkhead.run(Effect.void)
        const held = yield* Effect.fork(bulkhead.run(Effect.sleep("10 millis")))
        yield* settle
        yield* Effect.exit(bulkhead.run(Effect.void))
        yield* Fiber.interrupt(held)
        yield* limiter.run(Effect.void)
        const paced = yield* Effect.fork(limiter.run(Effect.void))
        yield* Effect.exit(breaker.run(Effect.fail(new Boom())))
        yield* Effect.exit(breaker.run(Effect.void))
        yield* mutex.withLock("k", Effect.void)
        const retried = yield* Effect.fork(Effect.exit(policy.run(Effect.fail(new Boom()))))
        yield* Deadline.attempt(Effect.void, "1 second")
        yield* settle
        yield* TestClock.adjust("100 millis")
        yield* Fiber.join(paced)
        yield* Fiber.join(retried)
        return yield* Effect.currentSpan
      })
      const root = yield* Effect.withSpan(program, "root").pipe(
        Effect.ensuring(Effect.sync(() => native.span = original))
      )
      // The root span is the test's own: nothing else was made, and the operations added no event to it.
      assert.deepStrictEqual(made, ["root"])
      assert.strictEqual((root as unknown as { readonly events: Array<unknown> }).events.length, 0)
    }))
})

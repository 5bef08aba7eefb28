import { assert, describe, it } from "@effect/vitest"
import { Deadline } from "@spindle/core"
import * as Upstream from "@spindle/testkit/Upstream"
import * as Wait from "@spindle/testkit/Wait"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"

// A promise that settles only when its signal is aborted (then it rejects with the signal's reason).
const untilAborted = (signal: AbortSignal, aborted: Array<unknown>): Promise<never> =>
  new Promise((_, reject) => {
    signal.addEventListener("abort", () => {
      aborted.push(signal.reason)
      reject(signal.reason)
    })
  })

describe("Deadline.attempt", () => {
  it.effect("fires at the limit exactly, and the work's finalizers have run when the error is seen", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<Array<string>>([])
      const fiber = yield* Effect.never.pipe(
        Effect.onInterrupt(() => Ref.update(log, (l) => [...l, "finalizer"])),
        Deadline.attempt("300 millis"),
        Effect.catchTag("TimeoutError", (e) => Ref.update(log, (l) => [...l, `caught ${e.limit}`])),
        Effect.fork
      )
      yield* TestClock.adjust("299 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(yield* Ref.get(log), ["finalizer", "caught attempt"])
    }))

  it.effect("work that finishes in time is untouched, and the fiber is not interrupted later", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.sleep("100 millis").pipe(
        Effect.as("answer"),
        Deadline.attempt("300 millis"),
        Effect.zipLeft(Effect.sleep("1 second")),
        Effect.fork
      )
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("300 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("700 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "answer")
    }))

  it.effect("after a timeout the fiber runs on as usual: sleeps sleep and can still be interrupted", () =>
    Effect.gen(function*() {
      const after = yield* Ref.make<Array<number>>([])
      const fiber = yield* Effect.never.pipe(
        Deadline.attempt("100 millis"),
        Effect.flip,
        Effect.zipRight(Effect.sleep("50 millis")),
        Effect.zipRight(Clock.currentTimeMillis),
        Effect.flatMap((now) => Ref.update(after, (a) => [...a, now])),
        Effect.zipRight(Effect.never),
        Effect.fork
      )
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(yield* Ref.get(after), [150])
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
    }))

  it.effect("an interruption from outside stays an interruption", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.never.pipe(Deadline.attempt("1 second"), Effect.fork)
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))
      // The deadline's entry left with the work: passing its time touches nothing.
      yield* TestClock.adjust("1 second")
    }))

  it.effect("interrupted from outside after the deadline fired but before the work stopped: an interruption", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.sleep("1 second").pipe(
        Effect.uninterruptible,
        Deadline.attempt("300 millis"),
        Effect.fork
      )
      yield* TestClock.adjust("500 millis")
      yield* Fiber.interruptFork(fiber)
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause))
    }))

  it.effect("uninterruptible work that overruns its limit is waited for, then reported as a timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.sleep("1 second").pipe(
        Effect.uninterruptible,
        Deadline.attempt("300 millis"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.limit, "attempt")
      assert.strictEqual(Duration.toMillis(error.duration), 300)
    }))

  it.effect("a timeout interrupts the children forked inside the attempt and leaves the fiber's older ones alone", () =>
    Effect.gen(function*() {
      const ticks = yield* Ref.make(0)
      const inside = yield* Ref.make<Fiber.RuntimeFiber<never> | undefined>(undefined)
      const fiber = yield* Effect.gen(function*() {
        // Ticks every 10 ms for as long as it lives.
        const heartbeat = yield* Effect.fork(
          Effect.repeat(Ref.update(ticks, (n) => n + 1), Schedule.spaced("10 millis"))
        )
        const error = yield* Effect.fork(Effect.never).pipe(
          Effect.flatMap((child) => Ref.set(inside, child)),
          Effect.zipRight(Effect.never),
          Deadline.attempt("100 millis"),
          Effect.flip
        )
        yield* Effect.sleep("100 millis")
        return { error, alive: heartbeat.unsafePoll() === null }
      }).pipe(Effect.fork)
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("100 millis")
      const { alive, error } = yield* Fiber.join(fiber)
      assert.strictEqual(error.limit, "attempt")
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await((yield* Ref.get(inside))!)))
      // The heartbeat kept ticking through the timeout, up to 200 ms (ticks at 0, 10, …, 200).
      assert.strictEqual(yield* Ref.get(ticks), 21)
      assert.isTrue(alive)
    }))

  it.effect("in a finalizer of an interrupted fiber, interruptible work is still timed out, not stopped at once", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<string>>([])
      const cleanup = Effect.never.pipe(
        Effect.interruptible,
        Deadline.attempt("100 millis"),
        Effect.catchTag("TimeoutError", (e) => Ref.update(seen, (s) => [...s, e.limit]))
      )
      const fiber = yield* Effect.never.pipe(Effect.onInterrupt(() => cleanup), Effect.fork)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.interruptFork(fiber)
      yield* TestClock.adjust("99 millis")
      assert.deepStrictEqual(yield* Ref.get(seen), [])
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(fiber)))
      assert.deepStrictEqual(yield* Ref.get(seen), ["attempt"])
    }))

  it.effect("an attempt inside a deadline that is sooner reports the deadline, once", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(0)
      const fiber = yield* Effect.never.pipe(
        Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)),
        Deadline.attempt("5 seconds"),
        Deadline.within("1 second"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("999 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.limit, "deadline")
      assert.strictEqual(Duration.toMillis(error.duration), 1000)
      assert.strictEqual(yield* Ref.get(interrupted), 1)
    }))

  it.effect("a deadline set inside an attempt that fires first: the attempt reports it", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.never.pipe(
        Deadline.within("1 second"),
        Deadline.attempt("300 millis"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("300 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.limit, "attempt")
      assert.strictEqual(Duration.toMillis(error.duration), 300)
      yield* TestClock.adjust("1 second")
    }))
})

describe("Deadline.within", () => {
  it.effect("spans every attempt and the backoff between them: a backoff past the deadline is cut short", () =>
    Effect.gen(function*() {
      const starts = yield* Ref.make<Array<number>>([])
      const fiber = yield* Clock.currentTimeMillis.pipe(
        Effect.flatMap((now) => Ref.update(starts, (s) => [...s, now])),
        Effect.zipRight(Effect.never),
        Deadline.attempt("200 millis"),
        Effect.retry(Schedule.spaced("500 millis")),
        Deadline.within("1 second"),
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("999 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      // 0–200 timed out, backoff 500; 700–900 timed out; the backoff from 900 is cut at 1000.
      assert.deepStrictEqual(yield* Ref.get(starts), [0, 700])
      assert.strictEqual(error.limit, "deadline")
      assert.strictEqual(Duration.toMillis(error.duration), 1000)
    }))

  it.effect("a nested deadline that is later keeps the sooner one, and only the outermost boundary reports", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.never.pipe(
        Deadline.within("10 seconds"),
        Effect.catchAllCause(() => Effect.succeed("caught inside")),
        Deadline.within("1 second"),
        Effect.either,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      // The inner boundary passed the outer deadline's interruption on: no handler inside could catch it.
      assert.isTrue(result._tag === "Left" && result.left.limit === "deadline")
      assert.strictEqual(result._tag === "Left" && Duration.toMillis(result.left.duration), 1000)
    }))
})

describe("Deadline.attemptPromise", () => {
  it.effect("aborts the signal at the limit exactly and fails at once, without waiting for the promise", () =>
    Effect.gen(function*() {
      const aborted: Array<unknown> = []
      const fiber = yield* Deadline.attemptPromise((signal) => untilAborted(signal, aborted), "300 millis").pipe(
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("299 millis")
      assert.isNull(fiber.unsafePoll())
      assert.deepStrictEqual(aborted, [])
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "TimeoutError")
      assert.isTrue(error._tag === "TimeoutError" && error.limit === "attempt")
      // The signal was aborted before the fiber saw the error, with that error as its reason.
      assert.deepStrictEqual(aborted, [error])
    }))

  it.effect("a call that ignores its signal is abandoned at the limit", () =>
    Effect.gen(function*() {
      const fiber = yield* Deadline.attemptPromise(() => new Promise<never>(() => {}), "1 second").pipe(
        Effect.flip,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      assert.isTrue(error._tag === "TimeoutError" && Duration.toMillis(error.duration) === 1000)
    }))

  it.effect("returns the value, or the rejection as UnknownException or mapped by catch", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Deadline.attemptPromise(() => Promise.resolve(7), "1 second"), 7)
      const unknown = yield* Effect.flip(Deadline.attemptPromise(() => Promise.reject(new Error("boom")), "1 second"))
      assert.isTrue(unknown._tag === "UnknownException" && (unknown.error as Error).message === "boom")
      const mapped = yield* Effect.flip(
        Deadline.attemptPromise(
          { try: () => Promise.reject(new Error("boom")), catch: () => "mapped" as const },
          "1 second"
        )
      )
      assert.strictEqual(mapped, "mapped")
      const thrown = yield* Effect.flip(Deadline.attemptPromise(() => {
        throw new Error("sync")
      }, "1 second"))
      assert.isTrue(thrown._tag === "UnknownException" && (thrown.error as Error).message === "sync")
      // Nothing is left armed: passing the limits interrupts nothing.
      yield* TestClock.adjust("2 seconds")
    }))

  it.effect("an interruption from outside aborts the signal and stays an interruption", () =>
    Effect.gen(function*() {
      const aborted: Array<unknown> = []
      const fiber = yield* Deadline.attemptPromise((signal) => untilAborted(signal, aborted), "1 second").pipe(
        Effect.fork
      )
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.strictEqual(aborted.length, 1)
      assert.notInstanceOf(aborted[0], Deadline.TimeoutError)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(aborted.length, 1)
    }))

  it.effect("respects the deadline in effect, and starts nothing when no time is left", () =>
    Effect.gen(function*() {
      let calls = 0
      const call = Deadline.attemptPromise((signal) => {
        calls++
        return untilAborted(signal, [])
      }, "5 seconds")
      const fiber = yield* call.pipe(
        Effect.flip,
        Effect.zipLeft(call.pipe(Effect.flip, Effect.tap((e) => assert.strictEqual(e._tag, "TimeoutError")))),
        Deadline.within("1 second"),
        Effect.either,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      // The first call was cut at the deadline (reported as such); the deadline's own boundary fired with it.
      assert.isTrue(result._tag === "Left" && result.left.limit === "deadline")
      assert.isTrue(calls >= 1 && calls <= 2)
    }))
})

// Real sockets, but the deadline runs on the TestClock: it is moved past the limit only once the upstream holds the
// request, so the test asserts the same thing however slowly this machine connects. Waiting uses the live clock.
const closedBy = <E>(call: (url: string) => Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    const upstream = yield* Upstream.make()
    const fiber = yield* Effect.fork(Effect.flip(call(upstream.url("/slow?hang=1"))))
    yield* TestServices.provideLive(
      Wait.until("the upstream to hold the request", Effect.sync(() => upstream.inFlight() === 1))
    )
    yield* TestClock.adjust("100 millis")
    const error = yield* Fiber.join(fiber)
    const outcome = yield* TestServices.provideLive(
      Wait.until(
        "the upstream to see the client close",
        Effect.sync(() => {
          const record = upstream.requests()[0]
          return record?.outcome === "client_closed" && record.outcome
        })
      )
    )
    assert.strictEqual(outcome, "client_closed")
    assert.strictEqual(upstream.inFlight(), 0)
    return error
  })

describe("Deadline over a real socket", () => {
  it.scoped("attemptPromise: a timed-out fetch closes its connection", () =>
    Effect.gen(function*() {
      const error = yield* closedBy((url) => Deadline.attemptPromise((signal) => fetch(url, { signal }), "100 millis"))
      assert.isTrue(error._tag === "TimeoutError" && error.limit === "attempt")
    }))

  it.scoped("attempt: interrupting a fetch made with Effect.tryPromise closes its connection", () =>
    Effect.gen(function*() {
      const error = yield* closedBy((url) =>
        Effect.tryPromise((signal) => fetch(url, { signal })).pipe(Deadline.attempt("100 millis"))
      )
      assert.isTrue(error._tag === "TimeoutError" && error.limit === "attempt")
    }))
})

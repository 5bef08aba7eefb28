import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import {
  ConnectionReset,
  crawl,
  downloadAll,
  downloadOrReport,
  downloadSettled,
  makeDisk,
  makeSite,
  NotFound,
  pages
} from "../src/task-group.js"
import type { RemoteFile } from "../src/task-group.js"

const files: Array<RemoteFile> = [
  { name: "a", latency: "100 millis" },
  { name: "b", latency: "200 millis", fails: "NotFound" },
  { name: "c", latency: "1 second" },
  { name: "d", latency: "2 seconds" }
]

describe("task-group", () => {
  it.effect("all: paths in input order when every download succeeds", () =>
    Effect.gen(function*() {
      const disk = yield* makeDisk
      const ok = files.filter((f) => f.fails === undefined)
      const fiber = yield* Effect.fork(downloadAll(disk, ok, 2))
      // a and c start at once, d when a is done (100 ms): it ends at 2.1 s.
      yield* TestClock.adjust("2099 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), ["downloads/a", "downloads/c", "downloads/d"])
    }))

  it.effect("all: the first failure interrupts the running siblings, their finalizers run, the rest never start", () =>
    Effect.gen(function*() {
      const disk = yield* makeDisk
      const fiber = yield* Effect.fork(Effect.flip(downloadAll(disk, files, 2)))
      yield* TestClock.adjust("200 millis")
      const error = yield* Fiber.join(fiber)
      assert.deepStrictEqual(error, new NotFound({ name: "b" }))
      // a finished at 100 ms and c took its slot; b failed at 200 ms, which interrupted c; d never started.
      assert.deepStrictEqual(yield* disk.started, ["a", "b", "c"])
      assert.deepStrictEqual(yield* disk.saved, [{ name: "a", at: 100 }])
      assert.deepStrictEqual(yield* disk.cleanedUp, [
        { name: "b", at: 200, why: "failed" },
        { name: "c", at: 200, why: "interrupted" }
      ])
      assert.strictEqual(yield* disk.partials, 0, "a partial file was left behind")
      // Nothing kept running in the background.
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual((yield* disk.started).length, 3)
      assert.deepStrictEqual((yield* disk.saved).length, 1)
    }))

  it.effect("all, unbounded: every download starts at once and all survivors are interrupted together", () =>
    Effect.gen(function*() {
      const disk = yield* makeDisk
      const fiber = yield* Effect.fork(Effect.flip(downloadAll(disk, files, files.length)))
      yield* TestClock.adjust("200 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), new NotFound({ name: "b" }))
      assert.deepStrictEqual(yield* disk.started, ["a", "b", "c", "d"])
      assert.deepStrictEqual((yield* disk.cleanedUp).map((c) => `${c.name} ${c.why} at ${c.at}`), [
        "b failed at 200",
        "c interrupted at 200",
        "d interrupted at 200"
      ])
      assert.strictEqual(yield* disk.partials, 0)
    }))

  it.effect("settle: every download runs to its end and every outcome is kept next to its input", () =>
    Effect.gen(function*() {
      const disk = yield* makeDisk
      const more = [...files, { name: "e", latency: "50 millis", fails: "ConnectionReset" } as const]
      const fiber = yield* Effect.fork(downloadSettled(disk, more, 2))
      yield* TestClock.adjust("1 hour")
      const outcomes = yield* Fiber.join(fiber)
      assert.deepStrictEqual(outcomes, [
        { name: "a", exit: Exit.succeed("downloads/a") },
        { name: "b", exit: Exit.fail(new NotFound({ name: "b" })) },
        { name: "c", exit: Exit.succeed("downloads/c") },
        { name: "d", exit: Exit.succeed("downloads/d") },
        { name: "e", exit: Exit.fail(new ConnectionReset({ name: "e" })) }
      ])
      assert.deepStrictEqual((yield* disk.cleanedUp).map((c) => c.why), ["failed", "failed"], "nothing interrupted")
    }))

  it.effect("settleOrFail: all paths, or every failure by kind, after everything ran", () =>
    Effect.gen(function*() {
      const disk = yield* makeDisk
      const more: Array<RemoteFile> = [
        ...files,
        { name: "e", latency: "50 millis", fails: "ConnectionReset" },
        { name: "f", latency: "10 millis", fails: "NotFound" }
      ]
      const failed = yield* Effect.fork(Effect.flip(downloadOrReport(disk, more, 3)))
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(yield* Fiber.join(failed), { saved: 3, notFound: ["b", "f"], reset: ["e"] })
      assert.strictEqual((yield* disk.started).length, 6, "a failure stopped the others")

      const succeeded = yield* Effect.fork(downloadOrReport(yield* makeDisk, files.slice(0, 1), 3))
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(yield* Fiber.join(succeeded), ["downloads/a"])
    }))

  it.effect("scoped: members forked as links are found, each page fetched once, done when the last one is", () =>
    Effect.gen(function*() {
      const site = yield* makeSite(pages)
      const fiber = yield* Effect.fork(crawl(site, "/"))
      // "/" at 30 ms links /docs and /blog; /blog (50 ms) links /blog/1 (60 ms) and /blog/2 (65 ms); /blog/1
      // finds /docs/api first (done at 100 ms), so /docs (80 ms) finds nothing new.
      yield* TestClock.adjust("99 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), 6)
      assert.deepStrictEqual(yield* site.fetched, ["/", "/blog", "/blog/1", "/blog/2", "/docs", "/docs/api"])
      assert.deepStrictEqual(yield* site.interrupted, [])
    }))

  it.effect("scoped: a broken link fails the crawl and interrupts the fetches still running", () =>
    Effect.gen(function*() {
      const site = yield* makeSite({ ...pages, "/blog/2": { latency: "15 millis", links: ["/gone"] } })
      const fiber = yield* Effect.fork(Effect.flip(crawl(site, "/")))
      yield* TestClock.adjust("64 millis")
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(fiber), new NotFound({ name: "/gone" }))
      assert.deepStrictEqual(yield* site.fetched, ["/", "/blog", "/blog/1", "/blog/2"])
      assert.deepStrictEqual([...(yield* site.interrupted)].sort(), ["/docs", "/docs/api"])
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* site.fetched).length, 4, "a fetch went on after the crawl failed")
    }))
})

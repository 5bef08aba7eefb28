import { assert, describe, it } from "@effect/vitest"
import { KeyedMutex } from "@spindle/core"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import {
  lockedFileCounter,
  lockedFiles,
  noSharedState,
  racyCounter,
  racyFileCounter,
  readCounter,
  refGetThenSet,
  refUpdate,
  synchronizedUpdate,
  tempDir
} from "../src/race-conditions.js"

const times = 100

describe("race-conditions", () => {
  it.effect("read, await, write loses updates, and so does Ref.get then Ref.set", () =>
    Effect.gen(function*() {
      // Every increment reads 0 before any writes back: typically the counter ends at 1.
      assert.isBelow(yield* racyCounter(times), times, "the race did not lose an update")
      assert.isBelow(yield* refGetThenSet(times), times, "the race did not lose an update")
    }))

  it.effect("Ref.update, SynchronizedRef.updateEffect and sharing nothing lose none", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* refUpdate(times), times)
      assert.strictEqual(yield* synchronizedUpdate(times), times)
      assert.strictEqual(yield* noSharedState(times), times)
    }))

  it.scoped("a counter in a file loses updates without a lock and none with KeyedMutex", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const racy = yield* racyFileCounter(path.join(dir, "racy"), 50)
      assert.isBelow(racy, 50, "the race did not lose an update")
      assert.isAtLeast(racy, 1)

      const mutex = yield* KeyedMutex.make()
      const file = path.join(dir, "locked")
      assert.strictEqual(yield* lockedFileCounter(mutex, file, 50), 50)
      assert.strictEqual(yield* readCounter(file), 50)
      assert.strictEqual(yield* mutex.size, 0, "a lock was left behind")
    }))

  it.scoped("one lock per file: a file's increments take turns, different files' overlap", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const mutex = yield* KeyedMutex.make()
      const files = ["a", "b", "c", "d"].map((name) => path.join(dir, name))
      const report = yield* lockedFiles(mutex, files, 20)
      assert.deepStrictEqual(report.values, [20, 20, 20, 20])
      assert.strictEqual(report.peakPerFile, 1, "two increments of one file held its lock at once")
      assert.strictEqual(report.peakOverall, files.length, "files waited for each other's locks")
      assert.strictEqual(yield* mutex.size, 0)
    }))
})

import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { buildThenYield, collectThenRun, fetchAll, makeBackend, yieldTwice } from "../src/not-awaited.js"

describe("not-awaited", () => {
  it.effect("building an Effect sends nothing; yield* sends the request and returns its result", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackend
      const request = backend.fetchUser(3)
      assert.deepStrictEqual(yield* backend.calls, [], "building the Effect ran it")
      assert.deepStrictEqual(yield* request, { id: 3, name: "user-3" })
      assert.deepStrictEqual(yield* backend.calls, [3])

      const report = yield* buildThenYield(yield* makeBackend)
      assert.isTrue(report.isEffect)
      assert.strictEqual(report.callsAfterBuilding, 0)
      assert.strictEqual(report.callsAfterYield, 1)
      assert.deepStrictEqual(report.user, { id: 1, name: "user-1" })
    }))

  it.effect("an Effect is a recipe: yielding it twice runs it twice", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* yieldTwice(yield* makeBackend), 2)
    }))

  it.effect("an array of Effects runs nothing until Effect.all; results come back in input order", () =>
    Effect.gen(function*() {
      const backend = yield* makeBackend
      const report = yield* collectThenRun(backend, [5, 6, 7])
      assert.strictEqual(report.callsAfterCollecting, 0, "collecting the Effects ran them")
      assert.deepStrictEqual(report.users.map((user) => user.id), [5, 6, 7])
      assert.sameMembers([...yield* backend.calls], [5, 6, 7])

      const other = yield* makeBackend
      assert.deepStrictEqual((yield* fetchAll(other, [1, 2, 3, 4, 5], 2)).map((user) => user.id), [1, 2, 3, 4, 5])
      assert.strictEqual((yield* other.calls).length, 5)
    }))
})

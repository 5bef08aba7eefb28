// Seed pattern: "Forgetting to Await" / "Not Awaiting Coroutines" — an Effect is a description, run only when yielded.
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { pathToFileURL } from "node:url"

// Python warns at run time that a coroutine "was never awaited". Here the mistake is caught before anything runs:
// an Effect built inside `Effect.gen` and then dropped, as in
//
//   Effect.gen(function*() {
//     backend.fetchUser(1) // never runs: neither yielded nor assigned
//   })
//
// is reported by the @effect/language-service `floatingEffect` diagnostic ("This Effect value is neither yielded nor
// used in an assignment."), which tsconfig.base.json raises to an error and `pnpm check` runs over the workspace
// (scripts/effect-diagnostics.mjs). This file therefore never writes one; the programs below show what does run.

/**
 * A user, as the simulated backend returns it.
 */
export interface User {
  readonly id: number
  readonly name: string
}

/**
 * A stand-in for a remote API that records every request it actually receives.
 */
export interface Backend {
  readonly fetchUser: (id: number) => Effect.Effect<User>
  /** The ids requested so far, in the order the requests ran. */
  readonly calls: Effect.Effect<ReadonlyArray<number>>
}

/**
 * Creates a backend with no requests made yet. `fetchUser(id)` only builds the request: the side effect (recording
 * the call) happens inside `Effect.sync`, when a fiber runs it.
 */
export const makeBackend: Effect.Effect<Backend> = Effect.sync(() => {
  const calls: Array<number> = []
  return {
    fetchUser: (id) =>
      Effect.zipRight(
        Effect.yieldNow(),
        Effect.sync(() => {
          calls.push(id)
          return { id, name: `user-${id}` }
        })
      ),
    calls: Effect.sync(() => calls.slice())
  }
})

/**
 * What happened between building a request and yielding it.
 */
export interface DescribedReport {
  /** `Effect.isEffect` of the built value: it is the description, not a `User` (the seed's `<coroutine object>`). */
  readonly isEffect: boolean
  readonly callsAfterBuilding: number
  readonly callsAfterYield: number
  readonly user: User
}

/**
 * The seed's "forgot the await": `backend.fetchUser(1)` without `yield*` gives back an Effect and runs nothing;
 * `yield*` runs it and gives back its result.
 */
export const buildThenYield = (backend: Backend): Effect.Effect<DescribedReport> =>
  Effect.gen(function*() {
    const request = backend.fetchUser(1)
    const callsAfterBuilding = (yield* backend.calls).length
    const user = yield* request
    const callsAfterYield = (yield* backend.calls).length
    return { isEffect: Effect.isEffect(request), callsAfterBuilding, callsAfterYield, user }
  })

/**
 * Unlike a coroutine, which can be awaited once, an Effect is a recipe: yielding the same value again runs it again
 * (a second request). Returns how many requests were made.
 */
export const yieldTwice = (backend: Backend): Effect.Effect<number> =>
  Effect.gen(function*() {
    const request = backend.fetchUser(7)
    yield* request
    yield* request
    return (yield* backend.calls).length
  })

/**
 * What happened between collecting requests in an array and running them.
 */
export interface CollectedReport {
  readonly callsAfterCollecting: number
  readonly users: ReadonlyArray<User>
}

/**
 * The seed's "collecting coroutines without running them": an array of Effects is an array of descriptions, and
 * nothing is sent until `Effect.all` runs them (here all at once, results in input order).
 */
export const collectThenRun = (backend: Backend, ids: ReadonlyArray<number>): Effect.Effect<CollectedReport> =>
  Effect.gen(function*() {
    const requests = ids.map((id) => backend.fetchUser(id))
    const callsAfterCollecting = (yield* backend.calls).length
    const users = yield* Effect.all(requests, { concurrency: "unbounded" })
    return { callsAfterCollecting, users }
  })

/**
 * The same in one step, and the usual spelling: `Effect.forEach` builds and runs one request per id, at most
 * `concurrency` at a time.
 */
export const fetchAll = (backend: Backend, ids: ReadonlyArray<number>, concurrency = 4): Effect.Effect<Array<User>> =>
  Effect.forEach(ids, (id) => backend.fetchUser(id), { concurrency })

/**
 * The runnable demo.
 */
export const main = Effect.gen(function*() {
  const described = yield* buildThenYield(yield* makeBackend)
  yield* Console.log(
    `built fetchUser(1): an Effect? ${described.isEffect}; requests sent: ${described.callsAfterBuilding}`
  )
  yield* Console.log(`after yield*: requests sent: ${described.callsAfterYield}, got ${JSON.stringify(described.user)}`)
  yield* Console.log(`the same Effect yielded twice sends ${yield* yieldTwice(yield* makeBackend)} requests`)
  const collected = yield* collectThenRun(yield* makeBackend, [1, 2, 3])
  yield* Console.log(`3 requests collected in an array: ${collected.callsAfterCollecting} sent`)
  yield* Console.log(`after Effect.all: ${collected.users.map((user) => user.name).join(", ")}`)
  const users = yield* fetchAll(yield* makeBackend, [4, 5, 6, 7, 8])
  yield* Console.log(`Effect.forEach: ${users.map((user) => user.name).join(", ")}`)
})

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}

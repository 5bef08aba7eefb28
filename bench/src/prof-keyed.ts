import { KeyedLimiter, TokenBucketStore } from "@spindle/core"
import * as Effect from "effect/Effect"

function* keys(n: number) {
  for (let i = 0; i < n; i++) yield `host-${i}`
}
const program = Effect.gen(function*() {
  const limiter = yield* KeyedLimiter.make({ concurrency: 4, rate: { limit: 1e9, interval: "1 second", burst: 1000 } })
  const t0 = performance.now()
  yield* Effect.forEach(keys(200_000), (key) => limiter.run(key, Effect.void), { discard: true })
  const t1 = performance.now()
  yield* Effect.forEach(keys(200_000), () => limiter.run("same", Effect.void), { discard: true })
  const t2 = performance.now()
  console.log("new keys µs/op", ((t1 - t0) * 1000) / 200_000, "same key µs/op", ((t2 - t1) * 1000) / 200_000)
}).pipe(Effect.provide(TokenBucketStore.layerMemory))
Effect.runPromise(program)

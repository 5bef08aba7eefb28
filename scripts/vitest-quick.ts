/**
 * `pnpm test:quick`: loaded before every test file when `SPINDLE_TEST_QUICK=1`, it turns the tests that run on the
 * live clock (`it.live`, `it.scopedLive`: real time, real sockets, child processes) into skipped ones, leaving the
 * tests on `TestClock` and plain assertions for a loop of seconds. `pnpm test` runs everything.
 */
import { it } from "@effect/vitest"

type Tester = typeof it.live

const skipped = (tester: Tester): Tester =>
  Object.assign(
    (name: string, self: Parameters<Tester>[1], timeout?: Parameters<Tester>[2]) => tester.skip(name, self, timeout),
    tester,
    {
      only: tester.skip,
      skipIf: () => tester.skip,
      runIf: () => tester.skip,
      each: () => tester.skip,
      fails: tester.skip
    }
  ) as Tester

const methods = it as unknown as { live: Tester; scopedLive: Tester }
methods.live = skipped(it.live)
methods.scopedLive = skipped(it.scopedLive as unknown as Tester)

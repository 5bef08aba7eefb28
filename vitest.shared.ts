import { fileURLToPath } from "node:url"
import type { ViteUserConfig } from "vitest/config"

// `pnpm test:quick` sets SPINDLE_TEST_QUICK=1: tests on the live clock are skipped (see scripts/vitest-quick.ts).
const quick = process.env.SPINDLE_TEST_QUICK === "1"

const config: ViteUserConfig = {
  test: {
    include: ["test/**/*.test.ts"],
    // Bounds for a stuck test, not timing assertions: a loaded machine runs the heavier tests several times slower.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fakeTimers: { toFake: undefined },
    sequence: { concurrent: false },
    setupFiles: quick ? [fileURLToPath(new URL("scripts/vitest-quick.ts", import.meta.url))] : []
  }
}

export default config

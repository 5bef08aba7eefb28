import { defineConfig } from "vitest/config"

// One run over every package. Most of the suite's time is spent waiting (real sockets, child processes, databases),
// not computing, so more test files run at once than this machine has cores.
export default defineConfig({
  test: {
    projects: ["packages/*/vitest.config.ts", "examples/vitest.config.ts", "apps/harvest/vitest.config.ts"],
    pool: "forks",
    maxWorkers: 4,
    minWorkers: 1
  }
})

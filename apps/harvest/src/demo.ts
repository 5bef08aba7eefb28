/**
 * Harvest demo entry point (server + simulated upstream + sample job), built in issue 6.
 */
console.log("Harvest's demo is not built yet: it lands with the Harvest issue. Try `pnpm test` and the examples.")

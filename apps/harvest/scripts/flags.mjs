// The flags `node` is given when `pnpm start`, `pnpm demo` and `pnpm harvest` start Harvest's build (the `exec node …`
// of both package.json files; `test/Build.test.ts` checks that they match). They are V8's heap configuration, which
// `node` reads only from its command line, before any of Harvest's code runs.

/**
 * `--max-semi-space-size=16`: the young generation of V8's heap at most two 16 MB semi-spaces, the size Node 20 uses
 * by default on 64-bit machines. Node 24's V8 grows it to two of 64 MB: a 10,000-URL job then peaked at about 287 MB
 * of RSS instead of 209, for 2 to 4 % less CPU (`bench/RESULTS.md` §7, the findings). On Node 20 the flag changes
 * nothing.
 *
 * @type {ReadonlyArray<string>}
 */
export const nodeFlags = ["--max-semi-space-size=16"]

/**
 * The process's `execArgv` that worker threads accept: module loaders and the like (so a loader such as tsx applies
 * in workers too), without V8 and process-wide flags (`--expose-gc`, `--max-old-space-size`…), which make
 * `new Worker` throw `ERR_WORKER_INVALID_EXEC_ARGV`.
 *
 * @internal
 */
const withValue = new Set(["--import", "--loader", "--experimental-loader", "--require", "-r", "--conditions", "-C"])
const alone = new Set(["--no-warnings", "--enable-source-maps", "--experimental-vm-modules"])

/** @internal */
export const forWorkers = (argv: ReadonlyArray<string> = process.execArgv): Array<string> => {
  const kept: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const name = arg.split("=")[0]
    if (withValue.has(name)) {
      kept.push(arg)
      if (!arg.includes("=") && i + 1 < argv.length) kept.push(argv[++i])
    } else if (alone.has(name)) {
      kept.push(arg)
    }
  }
  return kept
}

/**
 * Where a Harvest process's main thread spent its time: a V8 CPU profile (`.cpuprofile`) split into the buckets of
 * issue 16's performance goal by the self time of each sample.
 *
 * A sample is charged to the frame on top of its stack, found by file: frames of a build (Harvest's `dist/main.mjs` and
 * its chunks) are mapped back to their source file through each file's source map, so `effect`, `undici`, Spindle's
 * packages and Harvest's own modules keep their names. Frames that do not say whose work they do (V8 and Node natives,
 * which have no file, and Node's generic internals: streams, events, buffers, timers, the microtask queue) are charged
 * to the nearest caller that does: a native `writeBuffer` under `node:net` is fetching, under `node:fs` it is files.
 * Effect's own frames are not skipped that way: time in the fiber runtime is the runtime's.
 *
 * Kept free of Effect, like `child.ts`.
 */
import { existsSync, readFileSync } from "node:fs"
import { SourceMap } from "node:module"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The buckets, in the order of the table. */
export const buckets = ["fetch", "limits", "sql", "files", "gc", "effect", "harvest", "other", "idle"] as const
export type Bucket = typeof buckets[number]

/** What each bucket holds, for the table. */
export const bucketLabels: Readonly<Record<Bucket, string>> = {
  fetch: "fetch: undici, `node:http`/`net`/`tls`/`dns`, `@effect/platform`'s `HttpClient`, `AddressGuard`, " +
    "Harvest's `Fetcher`",
  limits: "limits: Spindle's limiter, breaker, retry, bulkhead, deadline, `KeyedLimiter`, `TokenBucket`, slot and " +
    "token stores (Redis included), Harvest's host gate",
  sql: "SQL: better-sqlite3, pg, `@effect/sql*`, Spindle's `JobQueue`, Harvest's `Database`/`Jobs`/`Results`",
  files: "files: `node:fs`, `node:crypto` (SHA-256), `@effect/platform`'s `FileSystem`, Harvest's `BodyStore`",
  gc: "GC (main-thread pauses)",
  effect: "Effect runtime (the `effect` package: fibers, scheduler, `Effect.gen`, `Schema`, …)",
  harvest: "Harvest's other code (scheduler, HTTP API and its server side, dashboard, config)",
  other: "other: Node internals with no specific caller, module loading, V8 `(program)`",
  idle: "idle (the loop waiting)"
}

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/**
 * The split: samples of self time per bucket, and the frames with the most. Counts, not the time between samples,
 * measure how much of the thread's running time a bucket had: a thread that is not running (the machine's other
 * work has its core) takes no sample until it runs again, so the gap before that sample is waiting, not its frame's
 * work. `bucketMillis` (the time until the next sample) is kept for the wall time of `idle`.
 */
export interface ProfileSplit {
  /** Wall time the samples cover, in ms. */
  readonly sampledMillis: number
  readonly samples: number
  readonly bucketSamples: Readonly<Record<Bucket, number>>
  readonly bucketMillis: Readonly<Record<Bucket, number>>
  /** The frames with the most samples (after the generic ones were charged to their callers). */
  readonly top: ReadonlyArray<{ readonly bucket: Bucket; readonly frame: string; readonly samples: number }>
}

/**
 * One kind of SQLite statement the profiled round ran, timed in the driver by the probe: the profile charges all of
 * them to one native frame of `better-sqlite3`, whichever statement it runs.
 */
export interface StatementTime {
  /** The statement's first words, which name its kind (a lease, a settlement, a batch of inserts). */
  readonly statement: string
  readonly calls: number
  /** Rows the statement's calls returned (`RETURNING`, `SELECT`), 0 for those that return none. */
  readonly rows: number
  readonly millis: number
}

const harvestFile = (file: string): Bucket => {
  const name = Path.basename(file)
  if (/^(Fetcher|Fetch|HttpFetch)/.test(name)) return "fetch"
  if (/^(HostGate|HostLimit|Limits)/.test(name)) return "limits"
  if (/^BodyStore|^Files/.test(name)) return "files"
  if (/^(Database|Jobs|Results|Items|Queue|Migrations)/.test(name)) return "sql"
  return "harvest"
}

const spindleFile = (pkg: string, file: string): Bucket => {
  switch (pkg) {
    case "core":
      return /^(Bulkhead|CircuitBreaker|Deadline|Keyed\w*|Limiter|RetryAfter|RetryPolicy|SlotStore|TokenBucket\w*)\.ts$/
          .test(Path.basename(file)) || file.startsWith("internal/")
        ? "limits"
        : "other"
    case "node":
      return file.startsWith("AddressGuard") ? "fetch" : "other"
    case "redis":
      return "limits"
    case "sql":
      return "sql"
    default:
      return "other"
  }
}

/** The bucket of a file in `node_modules`, by its package and its path inside the package. */
const packageFile = (pkg: string, file: string): Bucket => {
  const name = Path.basename(file)
  if (pkg === "effect") return "effect"
  if (pkg === "undici") return "fetch"
  if (pkg === "better-sqlite3" || pkg === "pg" || pkg.startsWith("pg-") || pkg === "postgres") return "sql"
  if (pkg.startsWith("@effect/sql")) return "sql"
  if (pkg === "ioredis" || pkg.startsWith("@ioredis/") || pkg === "redis-parser") return "limits"
  if (pkg.startsWith("@effect/platform")) {
    if (/fileSystem|FileSystem|^Path|^path/.test(name)) return "files"
    if (/[Cc]lient|undici|^Headers|^headers|[Bb]ody|[Ii]ncomingMessage|^Url|^url|^Cookies|^cookies/.test(name)) {
      return "fetch"
    }
    return "harvest"
  }
  return "other"
}

/** The bucket of a frame in a file, or `undefined` when the file says nothing (skipped for its caller). */
const fileBucket = (path: string): Bucket => {
  const p = path.replaceAll("\\", "/")
  const modules = p.lastIndexOf("/node_modules/")
  if (modules >= 0) {
    const parts = p.slice(modules + "/node_modules/".length).split("/")
    const scoped = parts[0].startsWith("@")
    const pkg = scoped ? `${parts[0]}/${parts[1]}` : parts[0]
    return packageFile(pkg, parts.slice(scoped ? 2 : 1).join("/"))
  }
  const harvest = /\/apps\/harvest\/src\/(.+)$/.exec(p)
  if (harvest !== null) return harvestFile(harvest[1])
  const spindle = /\/packages\/([^/]+)\/src\/(.+)$/.exec(p)
  if (spindle !== null) return spindleFile(spindle[1], spindle[2])
  return "other"
}

/** Node's built-in modules that belong to a bucket; every other `node:` module is generic. */
const builtinBucket = (url: string): Bucket | undefined => {
  const name = url.slice("node:".length)
  if (/^(internal\/)?_?http_server$/.test(name)) return "harvest"
  if (
    /^(https?|_http_\w+|net|tls|_tls_\w+|dns|dns\/promises|internal\/(dns|http|net|tls|stream_base_commons|js_stream_socket)(\/.*)?)$/
      .test(name)
  ) return "fetch"
  if (/^(fs|fs\/promises|crypto|internal\/(fs|crypto)(\/.*)?)$/.test(name)) return "files"
  return undefined
}

/** Maps positions in the files under `buildDir` back to their source files, through each one's `<file>.map`. */
const sourceMaps = (buildDir: string) => {
  const maps = new Map<string, { readonly map: SourceMap; readonly dir: string } | undefined>()
  const load = (file: string) => {
    if (!maps.has(file)) {
      const mapFile = `${file}.map`
      maps.set(
        file,
        existsSync(mapFile)
          ? { map: new SourceMap(JSON.parse(readFileSync(mapFile, "utf8"))), dir: Path.dirname(mapFile) }
          : undefined
      )
    }
    return maps.get(file)
  }
  const under = Path.resolve(buildDir) + Path.sep
  return (file: string, line: number, column: number): string => {
    if (!file.startsWith(under)) return file
    const loaded = load(file)
    if (loaded === undefined) return file
    const entry = loaded.map.findEntry(line, column) as { readonly originalSource?: string }
    const source = entry.originalSource
    if (source === undefined) return file
    return source.startsWith("file:") ? fileURLToPath(source) : Path.resolve(loaded.dir, source)
  }
}

/**
 * Splits the profile in `file`. Frames of the files under `buildDir` (a build's entry points and chunks) are mapped
 * back through their source maps (`<file>.map`).
 */
export const splitProfile = (file: string, buildDir: string): ProfileSplit => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const mapped = sourceMaps(buildDir)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  // Each node's own bucket and name (undefined bucket: generic, charged to its caller).
  const own = new Map<number, { readonly bucket: Bucket | undefined; readonly frame: string }>()
  const describe = (node: ProfileNode): { readonly bucket: Bucket | undefined; readonly frame: string } => {
    const { columnNumber, functionName, lineNumber, url } = node.callFrame
    const fn = functionName === "" ? "(anonymous)" : functionName
    switch (functionName) {
      case "(garbage collector)":
        return { bucket: "gc", frame: functionName }
      case "(idle)":
        return { bucket: "idle", frame: functionName }
      case "(program)":
      case "(root)":
        return { bucket: "other", frame: functionName }
    }
    if (url === "") return { bucket: undefined, frame: `${fn} (native)` }
    if (url.startsWith("node:")) return { bucket: builtinBucket(url), frame: `${fn} ${url}` }
    if (!url.startsWith("file:")) return { bucket: "other", frame: `${fn} ${url}` }
    // The probe's wrappers of the SQLite driver's methods (they time the statements): their caller's work.
    if (url.endsWith("/.tmp/scale/probe.mjs")) return { bucket: undefined, frame: `${fn} (probe)` }
    const source = mapped(fileURLToPath(url), lineNumber, columnNumber)
    const short = source.replace(/^.*\/node_modules\/(?!.*\/node_modules\/)/, "").replace(
      /^.*?\/(apps|packages)\//,
      "$1/"
    )
    return { bucket: fileBucket(source), frame: `${fn} ${short}` }
  }
  const ownOf = (id: number) => {
    let found = own.get(id)
    if (found === undefined) {
      found = describe(byId.get(id)!)
      own.set(id, found)
    }
    return found
  }
  // The bucket and frame a sample on `id` is charged to: the nearest frame, from the top of the stack down, that
  // has a bucket of its own.
  const charged = new Map<number, { readonly bucket: Bucket; readonly frame: string }>()
  const chargeOf = (id: number): { readonly bucket: Bucket; readonly frame: string } => {
    const cached = charged.get(id)
    if (cached !== undefined) return cached
    let at: number | undefined = id
    let result: { readonly bucket: Bucket; readonly frame: string } | undefined
    while (at !== undefined) {
      const { bucket, frame } = ownOf(at)
      if (bucket !== undefined) {
        result = { bucket, frame: at === id ? frame : `${frame} ← ${ownOf(id).frame}` }
        break
      }
      at = parent.get(at)
    }
    const final = result ?? { bucket: "other" as const, frame: ownOf(id).frame }
    charged.set(id, final)
    return final
  }

  const zero = () => Object.fromEntries(buckets.map((bucket) => [bucket, 0])) as Record<Bucket, number>
  const bucketMillis = zero()
  const bucketSamples = zero()
  const frames = new Map<string, { bucket: Bucket; samples: number }>()
  const { samples, timeDeltas } = profile
  // A sample stands for the time until the next one; the last, for the mean interval.
  const mean = (profile.endTime - profile.startTime) / Math.max(1, samples.length)
  let total = 0
  for (let i = 0; i < samples.length; i++) {
    const millis = (i + 1 < samples.length ? timeDeltas[i + 1] : mean) / 1000
    const { bucket, frame } = chargeOf(samples[i])
    bucketMillis[bucket] += millis
    bucketSamples[bucket] += 1
    total += millis
    const entry = frames.get(frame)
    if (entry === undefined) frames.set(frame, { bucket, samples: 1 })
    else entry.samples += 1
  }
  const top = Array.from(frames, ([frame, { bucket, samples }]) => ({ bucket, frame, samples }))
    .sort((a, b) => b.samples - a.samples)
    .slice(0, 40)
  return { sampledMillis: total, samples: samples.length, bucketSamples, bucketMillis, top }
}

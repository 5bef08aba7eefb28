/**
 * Named resilience policies read from configuration: each entry is a `Policy` (attempt timeout, breaker, rate limit,
 * hedging, retry, bulkhead, deadline) whose defaults are given in code and whose numbers an operator may change
 * through environment variables or a JSON file, without a release. `registry.get(name)` returns the entry's policy,
 * built once and shared by every caller; its metrics and events carry the entry's name.
 *
 * **Keys.** Every setting has one key, `policies.<name>.<stage>.<field>` (`attemptTimeout` and `deadline` have no
 * field: `policies.<name>.deadline`). In the environment the key is spelled in constant case under a prefix
 * (default `POLICY`): `POLICY_FETCH_RETRY_MAX_ATTEMPTS`, `POLICY_FETCH_ATTEMPT_TIMEOUT`. In the JSON file it is the
 * nested object path: `{ "policies": { "fetch": { "retry": { "maxAttempts": 5 } } } }`. The file is named by the
 * variable `POLICIES_FILE` (unset: no file).
 *
 * **Precedence.** An environment variable wins over the file, which wins over the entry's default in code.
 *
 * **Checked.** Only the stages an entry has in code can be tuned, every field of them; a key of another stage, of
 * an unknown field, or of an unknown entry is an error, and so is every value out of its range: every variable under
 * the prefix (`POLICY_…`) must name a setting of an entry, so a misspelt entry name (`POLICY_FETCHH_RETRY_…`) stops
 * the start rather than being read by nobody.
 * Errors are `ConfigError.InvalidData` whose `path` is the key as written: the variable
 * (`["POLICY_FETCH_RETRY_MAX_ATTEMPTS"]`) or the file's path (`["policies", "fetch", "retry", "maxAttempts"]`), with
 * a message saying what was wrong, what is accepted and the key (`policies.fetch.retry.maxAttempts`) or the file;
 * every problem at once (`ConfigError.And`). A file that cannot be read or is not JSON is an error at
 * `POLICIES_FILE`.
 *
 * **Values.** Durations are written as `Duration` strings (`"200 millis"`, `"10 seconds"`) or as a bare number of
 * milliseconds; counts are integers; `breaker.policy` is one of `consecutiveFailures`, `failureRatio`,
 * `failureRatioOfLast`, `retry.jitter` one of `none`, `full`, `equal`, `decorrelated`.
 *
 * **Keyed use.** An entry is data (`definition(name)`) as well as a policy: a caller that needs one breaker per host
 * builds its `KeyedCircuitBreaker` from the entry's `breaker` options (and its own `isFailure`), and its retry from
 * the entry's `retry`, so the same keys tune it.
 *
 * @since 0.2.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Bulkhead from "./Bulkhead.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import type * as Deadline from "./Deadline.js"
import * as Policy from "./Policy.js"
import type * as RetryPolicy from "./RetryPolicy.js"
import type * as WaitTimeout from "./WaitTimeout.js"

/**
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.map(PolicyRegistry.make({}), (registry) => PolicyRegistry.TypeId in registry)
 *
 * Effect.runPromise(program).then(console.log) // true
 * ```
 *
 * @since 0.2.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@spindle/core/PolicyRegistry")

/**
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 *
 * const isRegistry = (u: unknown): u is PolicyRegistry.PolicyRegistry =>
 *   typeof u === "object" && u !== null && PolicyRegistry.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The breaker of an entry: when it opens (`policy`) and how it recovers.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, type PolicyRegistry } from "@spindle/core"
 *
 * const breaker: PolicyRegistry.BreakerDefinition = {
 *   policy: CircuitBreaker.failureRatio({ ratio: 0.5, window: "10 seconds", minimumThroughput: 20 }),
 *   cooldown: "2 seconds",
 *   cooldownFactor: 2,
 *   cooldownMax: "30 seconds"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface BreakerDefinition {
  readonly policy: CircuitBreaker.Policy
  readonly cooldown?: Duration.DurationInput | undefined
  readonly cooldownFactor?: number | undefined
  readonly cooldownMax?: Duration.DurationInput | undefined
  readonly halfOpenProbes?: number | undefined
}

/**
 * The retry of an entry (see `RetryPolicy.Options`; its `retryable` and `name` are the caller's).
 *
 * @example
 * ```ts
 * import type { PolicyRegistry } from "@spindle/core"
 *
 * const retry: PolicyRegistry.RetryDefinition = { base: "200 millis", cap: "10 seconds", jitter: "full", maxAttempts: 3 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface RetryDefinition {
  readonly base?: Duration.DurationInput | undefined
  readonly factor?: number | undefined
  readonly cap?: Duration.DurationInput | undefined
  readonly jitter?: RetryPolicy.Jitter | undefined
  readonly maxAttempts?: number | undefined
  readonly maxElapsed?: Duration.DurationInput | undefined
  readonly retryAfterMax?: Duration.DurationInput | undefined
}

/**
 * One entry: the stages of its policy as plain data (no predicates, no instances), each of which configuration
 * may tune. A stage left out here cannot be turned on by configuration.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, type PolicyRegistry } from "@spindle/core"
 *
 * const payments: PolicyRegistry.Definition = {
 *   attemptTimeout: "2 seconds",
 *   breaker: { policy: CircuitBreaker.consecutiveFailures(5), cooldown: "30 seconds" },
 *   retry: { maxAttempts: 4, base: "100 millis" },
 *   bulkhead: { maxConcurrent: 16, maxQueued: 100 },
 *   deadline: "10 seconds"
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Definition {
  readonly attemptTimeout?: Duration.DurationInput | undefined
  readonly breaker?: BreakerDefinition | undefined
  readonly rateLimit?: {
    readonly limit: number
    readonly interval: Duration.DurationInput
    readonly burst?: number | undefined
    readonly maxWait?: Duration.DurationInput | undefined
  } | undefined
  readonly hedge?: { readonly delay: Duration.DurationInput; readonly maxAttempts?: number | undefined } | undefined
  readonly retry?: RetryDefinition | undefined
  readonly bulkhead?: {
    readonly maxConcurrent: number
    readonly maxQueued?: number | undefined
    readonly maxWait?: Duration.DurationInput | undefined
  } | undefined
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * The errors a registry's policy may add to a call's: whichever of its stages configuration leaves in place.
 *
 * @example
 * ```ts
 * import type { PolicyRegistry } from "@spindle/core"
 *
 * const describe = (error: PolicyRegistry.StageError): string => error._tag
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type StageError =
  | Deadline.TimeoutError
  | CircuitBreaker.CircuitOpen
  | Bulkhead.BulkheadRejected
  | WaitTimeout.WaitTimeoutError

/**
 * No entry has this name.
 *
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const registry = yield* PolicyRegistry.make({ search: { attemptTimeout: "1 second" } })
 *   const error = yield* Effect.flip(registry.get("serach"))
 *   return error.message
 * })
 *
 * Effect.runPromise(program).then(console.log) // 'no policy named "serach"; the registry has: search'
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class PolicyNotFound extends Data.TaggedError("PolicyNotFound")<{
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message(): string {
    return `no policy named "${this.name}"; the registry has: ${this.known.join(", ") || "(none)"}`
  }
}

/**
 * Named policies: each built once from its definition and shared by every caller.
 *
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const search = (query: string) =>
 *   Effect.gen(function*() {
 *     const registry = yield* PolicyRegistry.PolicyRegistry
 *     const policy = yield* registry.get("search")
 *     return yield* policy.run(Effect.succeed([`${query}: 3 hits`]))
 *   })
 *
 * const program = search("effect").pipe(
 *   Effect.provide(PolicyRegistry.layer({ search: { attemptTimeout: "1 second", retry: { maxAttempts: 2 } } }))
 * )
 *
 * Effect.runPromise(program).then(console.log) // ["effect: 3 hits"]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface PolicyRegistry {
  readonly [TypeId]: TypeId
  /** The entries' names, sorted. */
  readonly names: ReadonlyArray<string>
  /** The entry's policy, named after the entry (the label of its metrics and events). */
  readonly get: (name: string) => Effect.Effect<Policy.Policy<unknown, StageError>, PolicyNotFound>
  /** The entry's definition as configured, for callers that build stages of their own from it (keyed ones). */
  readonly definition: (name: string) => Effect.Effect<Definition, PolicyNotFound>
}

/**
 * The registry service.
 *
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const names = Effect.map(PolicyRegistry.PolicyRegistry, (registry) => registry.names)
 *
 * Effect.runPromise(names.pipe(Effect.provide(PolicyRegistry.layer({ b: {}, a: {} })))).then(console.log) // ["a", "b"]
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const PolicyRegistry: Context.Tag<PolicyRegistry, PolicyRegistry> = Context.GenericTag<PolicyRegistry>(
  "@spindle/core/PolicyRegistry"
)

/**
 * A registry of fixed definitions (no configuration read): every policy is built now. An invalid definition is a
 * defect naming the field, as for `Policy.make`.
 *
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const registry = yield* PolicyRegistry.make({ mail: { retry: { maxAttempts: 3, base: "10 millis" } } })
 *   const policy = yield* registry.get("mail")
 *   return [policy.name, policy.stages] as const
 * })
 *
 * Effect.runPromise(program).then(console.log) // ["mail", ["retry"]]
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (definitions: Readonly<Record<string, Definition>>): Effect.Effect<PolicyRegistry> =>
  Effect.gen(function*() {
    const names = Object.keys(definitions).sort()
    const policies = new Map<string, Policy.Policy<unknown, StageError>>()
    for (const name of names) {
      const policy = yield* Policy.make({ ...definitions[name], name } as Policy.Options)
      policies.set(name, policy as unknown as Policy.Policy<unknown, StageError>)
    }
    const notFound = (name: string) => Effect.fail(new PolicyNotFound({ name, known: names }))
    return {
      [TypeId]: TypeId,
      names,
      get: (name) => {
        const policy = policies.get(name)
        return policy === undefined ? notFound(name) : Effect.succeed(policy)
      },
      definition: (name) => policies.has(name) ? Effect.succeed(definitions[name]) : notFound(name)
    } satisfies PolicyRegistry
  })

/**
 * `make` as a layer.
 *
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 *
 * const PoliciesLive = PolicyRegistry.layer({ search: { attemptTimeout: "1 second" } })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (definitions: Readonly<Record<string, Definition>>): Layer.Layer<PolicyRegistry> =>
  Layer.effect(PolicyRegistry, make(definitions))

/**
 * Where `load` reads: the prefix of the environment variables and the variable naming the JSON file.
 *
 * @example
 * ```ts
 * import type { PolicyRegistry } from "@spindle/core"
 *
 * // APP_POLICY_SEARCH_RETRY_MAX_ATTEMPTS, and the file named by APP_POLICIES_FILE.
 * const options: PolicyRegistry.LoadOptions = { prefix: "APP_POLICY", fileVariable: "APP_POLICIES_FILE" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface LoadOptions {
  /** Default `"POLICY"`. */
  readonly prefix?: string | undefined
  /** Default `"POLICIES_FILE"`. */
  readonly fileVariable?: string | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Fields
// ---------------------------------------------------------------------------------------------------------------

type Kind =
  | { readonly _tag: "int"; readonly min: number; readonly max: number }
  | { readonly _tag: "number"; readonly min: number; readonly max: number; readonly exclusiveMin: boolean }
  | { readonly _tag: "duration"; readonly positive: boolean }
  | { readonly _tag: "choice"; readonly values: ReadonlyArray<string> }

const int = (min: number, max: number): Kind => ({ _tag: "int", min, max })
const num = (min: number, max: number, exclusiveMin = false): Kind => ({ _tag: "number", min, max, exclusiveMin })
const positiveDuration: Kind = { _tag: "duration", positive: true }
const nonNegativeDuration: Kind = { _tag: "duration", positive: false }

const breakerPolicies = ["consecutiveFailures", "failureRatio", "failureRatioOfLast"] as const
type BreakerPolicyName = typeof breakerPolicies[number]

const breakerPolicyFields: Readonly<Record<string, BreakerPolicyName>> = {
  threshold: "consecutiveFailures",
  window: "failureRatio",
  minimumThroughput: "failureRatio",
  buckets: "failureRatio",
  calls: "failureRatioOfLast",
  minimumCalls: "failureRatioOfLast"
}

type StageName = Exclude<Policy.Stage, "fallback">

/** Each stage's fields; the empty field is a stage that is one value. */
const fields: { readonly [S in StageName]: Readonly<Record<string, Kind>> } = {
  attemptTimeout: { "": positiveDuration },
  deadline: { "": positiveDuration },
  retry: {
    base: positiveDuration,
    factor: num(1, 100),
    cap: positiveDuration,
    jitter: { _tag: "choice", values: ["none", "full", "equal", "decorrelated"] },
    maxAttempts: int(1, 1000),
    maxElapsed: positiveDuration,
    retryAfterMax: positiveDuration
  },
  breaker: {
    policy: { _tag: "choice", values: breakerPolicies },
    threshold: int(1, 1_000_000),
    ratio: num(0, 1, true),
    window: positiveDuration,
    minimumThroughput: int(1, 1_000_000_000),
    buckets: int(1, 1000),
    calls: int(1, 1_000_000),
    minimumCalls: int(1, 1_000_000),
    cooldown: positiveDuration,
    cooldownFactor: num(1, 100),
    cooldownMax: positiveDuration,
    halfOpenProbes: int(1, 1_000_000)
  },
  rateLimit: {
    limit: num(0, 1_000_000_000, true),
    interval: positiveDuration,
    burst: int(1, 1_000_000_000),
    maxWait: nonNegativeDuration
  },
  hedge: { delay: nonNegativeDuration, maxAttempts: int(1, 100) },
  bulkhead: { maxConcurrent: int(1, 1_000_000_000), maxQueued: int(0, 1_000_000_000), maxWait: nonNegativeDuration }
}

/** Innermost first, as `Policy.stages`. */
const stageNames = Policy.stages.filter((stage): stage is StageName => stage !== "fallback")

const describeKind = (kind: Kind): string => {
  switch (kind._tag) {
    case "int":
      return `an integer from ${kind.min} to ${kind.max}`
    case "number":
      return `a number ${kind.exclusiveMin ? "greater than" : "from"} ${kind.min} ${
        kind.exclusiveMin ? "and at most" : "to"
      } ${kind.max}`
    case "duration":
      return `a ${kind.positive ? "positive" : "non-negative"} duration ("200 millis", "10 seconds", or a number ` +
        "of milliseconds)"
    case "choice":
      return `one of ${kind.values.join(", ")}`
  }
}

const parse = (kind: Kind, text: string): Option.Option<unknown> => {
  const trimmed = text.trim()
  switch (kind._tag) {
    case "int":
    case "number": {
      const n = trimmed === "" ? Number.NaN : Number(trimmed)
      if (!Number.isFinite(n) || (kind._tag === "int" && !Number.isInteger(n))) return Option.none()
      const aboveMin = kind._tag === "number" && kind.exclusiveMin ? n > kind.min : n >= kind.min
      return aboveMin && n <= kind.max ? Option.some(n) : Option.none()
    }
    case "duration": {
      const millis = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : Option.match(Duration.decodeUnknown(trimmed), {
        onNone: () => Number.NaN,
        onSome: Duration.toMillis
      })
      if (!Number.isFinite(millis) || millis < 0 || (kind.positive && millis === 0)) return Option.none()
      return Option.some(Duration.millis(millis))
    }
    case "choice":
      return kind.values.includes(trimmed) ? Option.some(trimmed) : Option.none()
  }
}

const constantCase = (name: string): string =>
  name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^A-Za-z0-9]+/g, "_").toUpperCase()

/**
 * The environment variable of a key: `variable("fetch", "retry", "maxAttempts")` is
 * `POLICY_FETCH_RETRY_MAX_ATTEMPTS`; a stage that is one value has no field.
 *
 * @example
 * ```ts
 * import { PolicyRegistry } from "@spindle/core"
 *
 * console.log(PolicyRegistry.variable("fetch", "attemptTimeout")) // "POLICY_FETCH_ATTEMPT_TIMEOUT"
 * console.log(PolicyRegistry.variable("fetch", "breaker", "minimumThroughput", "APP_POLICY"))
 * // "APP_POLICY_FETCH_BREAKER_MINIMUM_THROUGHPUT"
 * ```
 *
 * @since 0.2.0
 * @category config
 */
export const variable = (name: string, stage: string, field = "", prefix = "POLICY"): string =>
  [prefix, constantCase(name), constantCase(stage), ...(field === "" ? [] : [constantCase(field)])].join("_")

/** Where one key was read: the path of its error, and the words after its value. */
interface Source {
  readonly path: ReadonlyArray<string>
  readonly where: string
}

const keyOf = (name: string, stage: string, field: string): string =>
  ["policies", name, stage, ...(field === "" ? [] : [field])].join(".")

// ---------------------------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

const isObject = (u: unknown): u is { readonly [key: string]: Json } =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const invalid = (path: ReadonlyArray<string>, message: string): ConfigError.ConfigError =>
  ConfigError.InvalidData([...path], message)

/** Every key of the file that is not a setting of a stage its entry has, and every value that is not a scalar. */
const checkFile = (
  json: unknown,
  defaults: Readonly<Record<string, Definition>>,
  file: string
): Array<ConfigError.ConfigError> => {
  const errors: Array<ConfigError.ConfigError> = []
  const at = ` (in ${file})`
  if (!isObject(json)) return [invalid([], `the file must hold a JSON object${at}`)]
  for (const top of Object.keys(json)) {
    if (top !== "policies") errors.push(invalid([top], `unknown key; the file holds "policies"${at}`))
  }
  const policies = json.policies
  if (policies === undefined) return errors
  if (!isObject(policies)) return [...errors, invalid(["policies"], `must be an object of entries${at}`)]
  const names = Object.keys(defaults)
  for (const [name, entry] of Object.entries(policies)) {
    const definition = defaults[name]
    if (definition === undefined) {
      errors.push(invalid(["policies", name], `no policy has this name; known: ${names.join(", ")}${at}`))
      continue
    }
    if (!isObject(entry)) {
      errors.push(invalid(["policies", name], `must be an object of stages${at}`))
      continue
    }
    const present = stageNames.filter((stage) => definition[stage] !== undefined)
    for (const [stage, value] of Object.entries(entry)) {
      const path = ["policies", name, stage]
      if (!present.includes(stage as StageName)) {
        errors.push(invalid(path, unknownStage(name, stage, present) + at))
        continue
      }
      const stageFields = fields[stage as StageName]
      if ("" in stageFields) {
        if (isObject(value) || Array.isArray(value)) errors.push(invalid(path, `must be a duration${at}`))
        continue
      }
      if (!isObject(value)) {
        errors.push(invalid(path, `must be an object of ${Object.keys(stageFields).join(", ")}${at}`))
        continue
      }
      for (const [field, leaf] of Object.entries(value)) {
        if (!(field in stageFields)) {
          errors.push(
            invalid([...path, field], `unknown field; ${stage} has ${Object.keys(stageFields).join(", ")}${at}`)
          )
        } else if (typeof leaf === "object" && leaf !== null) {
          errors.push(invalid([...path, field], `must be ${describeKind(stageFields[field])}${at}`))
        }
      }
    }
  }
  return errors
}

const unknownStage = (name: string, stage: string, present: ReadonlyArray<string>): string =>
  stageNames.includes(stage as StageName)
    ? `the ${name} policy has no ${stage} stage to tune (its stages: ${present.join(", ") || "none"})`
    : `unknown stage; stages are ${stageNames.join(", ")}`

/** Every variable under `prefix` (split at `_`, as `ConfigProvider.fromEnv` splits them). */
const variablesUnder = (prefix: string): Effect.Effect<Array<string>, ConfigError.ConfigError> =>
  Effect.configProviderWith((provider) => {
    const walk = (path: ReadonlyArray<string>, root: boolean): Effect.Effect<Array<string>, ConfigError.ConfigError> =>
      Effect.flatMap(provider.flattened.enumerateChildren(path), (children) =>
        HashSet.size(children) === 0
          ? Effect.succeed(root ? [] : [path.join("_")])
          : Effect.map(
            Effect.forEach(HashSet.toValues(children), (child) => walk([...path, child], false)),
            (found) => found.flat()
          ))
    return walk(prefix.split("_"), true)
  })

/**
 * The definitions in force: each entry of `defaults` with every key the environment or the JSON file sets (see the
 * module's documentation for the keys and their precedence). Fails with every bad key at once; reads the file with
 * the `FileSystem` in context. Two names the environment would spell alike (`search-api`, `searchApi`) are a defect.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { CircuitBreaker, PolicyRegistry } from "@spindle/core"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Duration from "effect/Duration"
 * import * as Effect from "effect/Effect"
 *
 * const defaults = {
 *   search: { attemptTimeout: "2 seconds", breaker: { policy: CircuitBreaker.consecutiveFailures(5) } }
 * } satisfies Record<string, PolicyRegistry.Definition>
 * const env = ConfigProvider.fromMap(new Map([["POLICY_SEARCH_ATTEMPT_TIMEOUT", "500 millis"]]), { pathDelim: "_" })
 *
 * const program = PolicyRegistry.load(defaults).pipe(
 *   Effect.withConfigProvider(env),
 *   Effect.provide(NodeFileSystem.layer),
 *   Effect.map((definitions) => Duration.toMillis(definitions.search.attemptTimeout!))
 * )
 *
 * Effect.runPromise(program).then(console.log) // 500
 * ```
 *
 * @since 0.2.0
 * @category config
 */
export const load = <const D extends Readonly<Record<string, Definition>>>(
  defaults: D,
  options: LoadOptions = {}
): Effect.Effect<{ readonly [K in keyof D]: Definition }, ConfigError.ConfigError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "POLICY"
    const fileVariable = options.fileVariable ?? "POLICIES_FILE"
    const errors: Array<ConfigError.ConfigError> = []

    // Names are code: two spelled alike in the environment (`search-api`, `searchApi`) are a defect.
    const spelled = new Map<string, string>()
    for (const name of Object.keys(defaults)) {
      const constant = constantCase(name).replace(/^_+|_+$/g, "")
      const other = spelled.get(constant)
      if (constant === "" || other !== undefined) {
        return yield* Effect.die(
          new Cause.IllegalArgumentException(
            constant === ""
              ? `PolicyRegistry: the name "${name}" has no letter or digit to name its variables by`
              : `PolicyRegistry: "${other}" and "${name}" would share the variables ${prefix}_${constant}_*`
          )
        )
      }
      spelled.set(constant, name)
    }

    // The file, when named.
    const fileName = yield* Config.option(Config.string(fileVariable))
    let file: { readonly provider: ConfigProvider.ConfigProvider; readonly name: string } | undefined
    if (Option.isSome(fileName) && fileName.value.trim() !== "") {
      const name = fileName.value
      const fs = yield* FileSystem.FileSystem
      const text = yield* Effect.mapError(
        fs.readFileString(name),
        (error) => invalid([fileVariable], `cannot read ${name}: ${error.message}`)
      )
      const json = yield* Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (error) =>
          invalid([fileVariable], `${name} is not valid JSON: ${error instanceof Error ? error.message : error}`)
      })
      for (const error of checkFile(json, defaults, name)) errors.push(error)
      file = { provider: ConfigProvider.fromJson(json), name }
    }

    // Unknown variables under the prefix: each belongs to the entry whose name it starts with (the longest, so that
    // `POLICY_SEARCH_API_…` is `search-api`'s and not `search`'s), and one that starts with no entry's name is a
    // policy the code does not define (a misspelt name would otherwise be read by nobody).
    const known = new Set<string>()
    for (const name of Object.keys(defaults)) {
      for (const stage of stageNames) {
        if (defaults[name][stage] === undefined) continue
        for (const field of Object.keys(fields[stage])) known.add(variable(name, stage, field, prefix))
      }
    }
    const entries = Object.keys(defaults)
      .map((name) => ({ name, start: `${prefix}_${constantCase(name)}_` }))
      .sort((a, b) => b.start.length - a.start.length)
    for (const found of yield* variablesUnder(prefix)) {
      if (known.has(found)) continue
      const entry = entries.find((e) => found.startsWith(e.start))
      if (entry === undefined) {
        errors.push(invalid(
          [found],
          `no policy is named by this variable; the policies are ${
            entries.map((e) => `${e.name} (${e.start}…)`).sort().join(", ") || "none"
          }`
        ))
        continue
      }
      const name = entry.name
      const present = stageNames.filter((stage) => defaults[name][stage] !== undefined)
      const stage = stageNames.find((s) => found.startsWith(`${entry.start}${constantCase(s)}`))
      errors.push(invalid(
        [found],
        stage !== undefined && !present.includes(stage)
          ? unknownStage(name, stage, present)
          : `not a setting of the ${name} policy; its variables: ${
            [...known].filter((v) => v.startsWith(entry.start)).join(", ")
          }`
      ))
    }

    // Each key: the environment, then the file, then the default.
    const read = (name: string, stage: StageName, field: string) =>
      Effect.gen(function*() {
        const kind = fields[stage][field]
        const key = keyOf(name, stage, field)
        const envName = variable(name, stage, field, prefix)
        const fromEnv = yield* Config.option(Config.string(envName))
        let raw: { readonly text: string; readonly source: Source } | undefined
        if (Option.isSome(fromEnv)) {
          raw = { text: fromEnv.value, source: { path: [envName], where: ` (${key})` } }
        } else if (file !== undefined) {
          const path = ["policies", name, stage, ...(field === "" ? [] : [field])]
          const config = path.slice(0, -1).reduceRight(
            (inner: Config.Config<string>, segment) => Config.nested(inner, segment),
            Config.string(path[path.length - 1])
          )
          const fromFile = yield* Effect.withConfigProvider(
            Effect.orElseSucceed(config, () => undefined),
            file.provider
          )
          if (fromFile !== undefined) raw = { text: fromFile, source: { path, where: ` (in ${file.name})` } }
        }
        if (raw === undefined) return Option.none<{ readonly value: unknown; readonly source: Source }>()
        const value = parse(kind, raw.text)
        if (Option.isNone(value)) {
          errors.push(invalid(raw.source.path, `must be ${describeKind(kind)}, got "${raw.text}"${raw.source.where}`))
        }
        const source = raw.source
        return Option.map(value, (v) => ({ value: v, source }))
      })

    const result: Record<string, Definition> = {}
    for (const name of Object.keys(defaults)) {
      const definition = defaults[name]
      const resolved: Record<string, unknown> = {}
      for (const stage of stageNames) {
        const base = definition[stage]
        if (base === undefined) continue
        if ("" in fields[stage]) {
          const value = yield* read(name, stage, "")
          resolved[stage] = Option.isSome(value) ? value.value.value : base
          continue
        }
        const values: Record<string, { readonly value: unknown; readonly source: Source }> = {}
        for (const field of Object.keys(fields[stage])) {
          const value = yield* read(name, stage, field)
          if (Option.isSome(value)) values[field] = value.value
        }
        resolved[stage] = stage === "breaker"
          ? resolveBreaker(name, base as BreakerDefinition, values, errors)
          : mergeStage(stage, base as Record<string, unknown>, values, errors)
      }
      result[name] = resolved as Definition
    }
    if (errors.length > 0) {
      return yield* Effect.fail(errors.reduce((left, right) => ConfigError.And(left, right)))
    }
    return result as { readonly [K in keyof D]: Definition }
  })

type Read = Readonly<Record<string, { readonly value: unknown; readonly source: Source }>>

const millisOf = (input: unknown): number => Duration.toMillis(input as Duration.DurationInput)

/** A stage's defaults with the values read, and the checks across fields. */
const mergeStage = (
  stage: StageName,
  base: Readonly<Record<string, unknown>>,
  values: Read,
  errors: Array<ConfigError.ConfigError>
): Record<string, unknown> => {
  const merged: Record<string, unknown> = { ...base }
  for (const [field, read] of Object.entries(values)) merged[field] = read.value
  if (stage === "retry" && merged.base !== undefined && merged.cap !== undefined) {
    const culprit = values.cap ?? values.base
    if (culprit !== undefined && millisOf(merged.cap) < millisOf(merged.base)) {
      errors.push(invalid(culprit.source.path, `retry.cap must be at least retry.base${culprit.source.where}`))
    }
  }
  return merged
}

const breakerPolicyName = (policy: CircuitBreaker.Policy): BreakerPolicyName =>
  policy._tag === "ConsecutiveFailures"
    ? "consecutiveFailures"
    : policy._tag === "FailureRatio"
    ? "failureRatio"
    : "failureRatioOfLast"

/**
 * The breaker's policy is written flat (`breaker.policy`, `breaker.threshold`, `breaker.ratio`, ...): the fields of
 * the policy in force, from configuration or else from the default of that policy when it is the same one, or else
 * Spindle's usual values (5 failures in a row; half of 20 calls over 10 seconds; half of the last 20 calls).
 */
const resolveBreaker = (
  name: string,
  base: BreakerDefinition,
  values: Read,
  errors: Array<ConfigError.ConfigError>
): BreakerDefinition => {
  const baseKind = breakerPolicyName(base.policy)
  const kind = (values.policy?.value as BreakerPolicyName | undefined) ?? baseKind
  const same = kind === baseKind
  const pick = <A>(field: string, fallback: A): A =>
    values[field] !== undefined
      ? values[field].value as A
      : same && field in base.policy
      ? (base.policy as unknown as Record<string, A>)[field]
      : fallback
  for (const [field, read] of Object.entries(values)) {
    const owner = breakerPolicyFields[field]
    if (owner !== undefined && owner !== kind) {
      errors.push(invalid(
        read.source.path,
        `applies to a ${owner} breaker, and the ${name} breaker is ${kind}${read.source.where}`
      ))
    }
  }
  let policy: CircuitBreaker.Policy
  switch (kind) {
    case "consecutiveFailures":
      policy = { _tag: "ConsecutiveFailures", threshold: pick("threshold", 5) }
      break
    case "failureRatio": {
      const buckets = pick<number | undefined>("buckets", undefined)
      policy = {
        _tag: "FailureRatio",
        ratio: pick("ratio", 0.5),
        window: pick<Duration.DurationInput>("window", "10 seconds"),
        minimumThroughput: pick("minimumThroughput", 20),
        ...(buckets === undefined ? {} : { buckets })
      }
      break
    }
    case "failureRatioOfLast": {
      const calls = pick("calls", 20)
      const minimumCalls = pick<number | undefined>("minimumCalls", undefined)
      if (minimumCalls !== undefined && minimumCalls > calls) {
        const culprit = values.minimumCalls ?? values.calls
        if (culprit !== undefined) {
          errors.push(
            invalid(
              culprit.source.path,
              `breaker.minimumCalls must be at most breaker.calls (${calls})${culprit.source.where}`
            )
          )
        }
      }
      policy = {
        _tag: "FailureRatioOfLast",
        ratio: pick("ratio", 0.5),
        calls,
        ...(minimumCalls === undefined ? {} : { minimumCalls })
      }
      break
    }
  }
  const merged: Record<string, unknown> = { ...base, policy }
  for (const field of ["cooldown", "cooldownFactor", "cooldownMax", "halfOpenProbes"]) {
    if (values[field] !== undefined) merged[field] = values[field].value
  }
  if (merged.cooldown !== undefined && merged.cooldownMax !== undefined) {
    const culprit = values.cooldownMax ?? values.cooldown
    if (culprit !== undefined && millisOf(merged.cooldownMax) < millisOf(merged.cooldown)) {
      errors.push(
        invalid(culprit.source.path, `breaker.cooldownMax must be at least breaker.cooldown${culprit.source.where}`)
      )
    }
  }
  return merged as unknown as BreakerDefinition
}

/**
 * A registry of `defaults` as configuration tunes them (`load`), every policy built once.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { CircuitBreaker, PolicyRegistry } from "@spindle/core"
 * import * as ConfigProvider from "effect/ConfigProvider"
 * import * as Effect from "effect/Effect"
 * import * as Layer from "effect/Layer"
 *
 * const PoliciesLive = PolicyRegistry.layerConfig({
 *   inventory: {
 *     attemptTimeout: "1 second",
 *     breaker: { policy: CircuitBreaker.consecutiveFailures(5) },
 *     retry: { maxAttempts: 3, base: "50 millis" }
 *   }
 * }).pipe(Layer.provide(NodeFileSystem.layer))
 *
 * const program = Effect.gen(function*() {
 *   const policy = yield* Effect.flatMap(PolicyRegistry.PolicyRegistry, (registry) => registry.get("inventory"))
 *   return yield* policy.run(Effect.succeed("12 in stock"))
 * }).pipe(
 *   Effect.provide(PoliciesLive),
 *   Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["POLICY_INVENTORY_RETRY_MAX_ATTEMPTS", "5"]]), {
 *     pathDelim: "_"
 *   }))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "12 in stock"
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  defaults: Readonly<Record<string, Definition>>,
  options: LoadOptions = {}
): Layer.Layer<PolicyRegistry, ConfigError.ConfigError, FileSystem.FileSystem> =>
  Layer.effect(PolicyRegistry, Effect.flatMap(load(defaults, options), make))

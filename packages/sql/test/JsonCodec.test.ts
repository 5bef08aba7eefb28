import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as JsonCodec from "../src/internal/jsonCodec.js"

// The same answers as `Schema.parseJson(schema)`, on the direct path and off it: equal JSON strings and values when
// both succeed, an error from both otherwise (the direct path's errors are Schema's own).
const same = <A, I>(schema: Schema.Schema<A, I>, values: ReadonlyArray<unknown>, jsons: ReadonlyArray<unknown>) => {
  const codec = JsonCodec.make(schema)
  const parseJson = Schema.parseJson(schema)
  const encode = Schema.encodeEither(parseJson)
  const decode = Schema.decodeUnknownEither(parseJson)
  for (const value of values) {
    const mine = codec.encode(value as A)
    const theirs = encode(value as A)
    assert.strictEqual(Either.isRight(mine), Either.isRight(theirs), `encode ${String(JSON.stringify(value))}`)
    if (Either.isRight(mine) && Either.isRight(theirs)) assert.strictEqual(mine.right, theirs.right)
    if (Either.isLeft(mine) && Either.isLeft(theirs)) assert.strictEqual(mine.left.message, theirs.left.message)
  }
  for (const json of jsons) {
    const mine = codec.decode(json)
    const theirs = decode(json)
    assert.strictEqual(Either.isRight(mine), Either.isRight(theirs), `decode ${String(json)}`)
    if (Either.isRight(mine) && Either.isRight(theirs)) {
      assert.deepStrictEqual(mine.right, theirs.right)
      assert.deepStrictEqual(Object.keys(mine.right as object ?? {}), Object.keys(theirs.right as object ?? {}))
    }
    if (Either.isLeft(mine) && Either.isLeft(theirs)) assert.strictEqual(mine.left.message, theirs.left.message)
  }
}

const Result = Schema.Struct({
  url: Schema.String,
  status: Schema.Literal("succeeded", "failed"),
  httpStatus: Schema.NullOr(Schema.Number),
  ok: Schema.Boolean,
  error: Schema.NullOr(Schema.Struct({ code: Schema.String, message: Schema.String })),
  extra: Schema.Unknown
})

// Values near the schema: conforming ones, with a property too many, one missing, one of the wrong type, and junk.
const near = (value: unknown): ReadonlyArray<unknown> => {
  const out: Array<unknown> = [value]
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>
    out.push({ ...record, surplus: 1 })
    out.push({ surplus: true, ...record })
    for (const key of Object.keys(record)) {
      const { [key]: _, ...rest } = record
      out.push(rest)
      out.push({ ...record, [key]: 42 })
      out.push({ ...record, [key]: "x" })
      out.push({ ...record, [key]: null })
    }
  }
  out.push(null, 1, "s", [], [value])
  return out
}

describe("JsonCodec", () => {
  it("encodes and decodes plain data exactly as Schema.parseJson does, copying only declared properties", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(Result), (value) => {
        const values = near(value)
        same(Result, values, [
          ...values.map((v) => JSON.stringify(v)),
          "{not json",
          "",
          JSON.stringify({ ...value, extra: undefined })
        ])
      }),
      { numRuns: 200 }
    )
  })

  it("the direct path drops surplus properties and keeps the declared order, as Schema does", () => {
    const codec = JsonCodec.make(Result)
    assert.isTrue(codec.direct)
    const value = {
      extra: [1],
      surplus: "dropped",
      url: "u",
      status: "failed" as const,
      httpStatus: null,
      ok: false,
      error: { message: "m", code: "c", more: 1 }
    }
    const encoded = Either.getOrThrow(codec.encode(value))
    assert.strictEqual(
      encoded,
      "{\"url\":\"u\",\"status\":\"failed\",\"httpStatus\":null,\"ok\":false,\"error\":{\"code\":\"c\",\"message\":\"m\"}," +
        "\"extra\":[1]}"
    )
    assert.deepStrictEqual(
      Either.getOrThrow(codec.decode(encoded)),
      { url: "u", status: "failed", httpStatus: null, ok: false, error: { code: "c", message: "m" }, extra: [1] }
    )
  })

  // Optional properties, as in Harvest's result (`durationMs`): absent stays absent, `undefined` is left out of the
  // JSON, and a present value is checked.
  it("optional properties take the direct path with Schema's answers", () => {
    const Optional = Schema.Struct({
      url: Schema.String,
      durationMs: Schema.optional(Schema.Number),
      exact: Schema.optionalWith(Schema.NullOr(Schema.String), { exact: true }),
      error: Schema.NullOr(Schema.Struct({ code: Schema.String, detail: Schema.optional(Schema.String) }))
    })
    const codec = JsonCodec.make(Optional)
    assert.isTrue(codec.direct)
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(Optional), (value) => {
        const values = near(value)
        same(Optional, values, [
          ...values.map((v) => JSON.stringify(v)),
          JSON.stringify({ ...value, durationMs: null }),
          JSON.stringify({ ...value, exact: 1 })
        ])
      }),
      { numRuns: 200 }
    )
    same(Optional, [
      { url: "u", error: null },
      { url: "u", durationMs: undefined, error: null },
      { url: "u", exact: undefined, error: null },
      { url: "u", durationMs: 3, exact: null, error: { code: "c", detail: undefined } }
    ], [])
    assert.strictEqual(
      Either.getOrThrow(codec.encode({ error: null, durationMs: undefined, url: "u" })),
      "{\"url\":\"u\",\"error\":null}"
    )
  })

  it("schemas with transformations, refinements, defaults or unions of structs go through Schema", () => {
    const schemas = [
      Schema.Struct({ at: Schema.DateFromString }),
      Schema.Struct({ n: Schema.Number.pipe(Schema.int()) }),
      Schema.Struct({ a: Schema.optionalWith(Schema.String, { default: () => "a" }) }),
      Schema.Union(Schema.Struct({ a: Schema.String }), Schema.Struct({ a: Schema.String, b: Schema.Number })),
      Schema.Array(Schema.Number),
      Schema.Unknown
    ] as const
    for (const schema of schemas.slice(0, 5)) {
      assert.isFalse(JsonCodec.make(schema as Schema.Schema<unknown, unknown>).direct, String(schema))
    }
    for (const schema of schemas) {
      FastCheck.assert(
        FastCheck.property(Arbitrary.make(schema as Schema.Schema<unknown, unknown>), (value) => {
          const values = near(value)
          same(schema as Schema.Schema<unknown, unknown>, values, values.map((v) => JSON.stringify(v) ?? "null"))
        }),
        { numRuns: 50 }
      )
    }
    // Not JSON inside an `unknown`: an error, not a throw.
    const codec = JsonCodec.make(Schema.Struct({ x: Schema.Unknown }))
    assert.isTrue(Either.isLeft(codec.encode({ x: 1n })))
  })
})

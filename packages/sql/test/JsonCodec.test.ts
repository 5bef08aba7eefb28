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

  it("schemas with transformations, refinements, optional properties or unions of structs go through Schema", () => {
    const schemas = [
      Schema.Struct({ at: Schema.DateFromString }),
      Schema.Struct({ n: Schema.Number.pipe(Schema.int()) }),
      Schema.Struct({ a: Schema.optional(Schema.String) }),
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

/**
 * `Schema.parseJson(schema)`'s encode and decode, with a direct path for plain data: when the schema is made only of
 * structs (required or optional properties), strings, numbers, booleans, literals, `undefined`, `unknown` and unions
 * of those, a value is checked and copied by a function compiled once from the schema's AST, then `JSON.stringify`d
 * (or `JSON.parse`d, then checked and copied). The copy keeps the declared properties in their declared order and
 * drops the others, as Schema does by default, so the JSON is the same string; anything the direct path does not
 * accept (a value that does not conform, a schema with transformations, refinements or arrays) goes through Schema,
 * which also makes the errors. A queue encodes a result and decodes a payload for every job it settles and leases:
 * through `ParseResult`, that was several KB of garbage and about 2 µs each.
 *
 * @internal
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"

/** Checks a value and returns its copy as Schema would decode or encode it, or `invalid`. */
type Plain = (u: unknown) => unknown

const invalid: unique symbol = Symbol("invalid")

const compile = (ast: AST.AST): Plain | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return (u) => typeof u === "string" ? u : invalid
    case "NumberKeyword":
      return (u) => typeof u === "number" ? u : invalid
    case "BooleanKeyword":
      return (u) => typeof u === "boolean" ? u : invalid
    case "UndefinedKeyword":
      return (u) => u === undefined ? u : invalid
    case "UnknownKeyword":
    case "AnyKeyword":
      return (u) => u
    case "Literal": {
      const literal = ast.literal
      if (typeof literal === "bigint") return undefined
      return (u) => u === literal ? u : invalid
    }
    case "Union": {
      // At most one member that copies (a struct), and none that accepts anything: then whichever member Schema
      // picks first, the value comes out the same.
      let structs = 0
      const members: Array<Plain> = []
      for (const member of ast.types) {
        if (member._tag === "UnknownKeyword" || member._tag === "AnyKeyword") return undefined
        if (
          member._tag !== "StringKeyword" && member._tag !== "NumberKeyword" && member._tag !== "BooleanKeyword" &&
          member._tag !== "Literal" && member._tag !== "UndefinedKeyword" && ++structs > 1
        ) return undefined
        const plain = compile(member)
        if (plain === undefined) return undefined
        members.push(plain)
      }
      // The first member that accepts the value, as Schema tries them in order.
      return (u) => {
        for (const member of members) {
          const out = member(u)
          if (out !== invalid) return out
        }
        return invalid
      }
    }
    case "TypeLiteral": {
      if (ast.indexSignatures.length > 0) return undefined
      const names: Array<string> = []
      const fields: Array<Plain> = []
      const optional: Array<boolean> = []
      for (const property of ast.propertySignatures) {
        if (typeof property.name !== "string") return undefined
        const plain = compile(property.type)
        if (plain === undefined) return undefined
        names.push(property.name)
        fields.push(plain)
        optional.push(property.isOptional)
      }
      return (u) => {
        if (typeof u !== "object" || u === null || Array.isArray(u)) return invalid
        const input = u as Record<string, unknown>
        const out: Record<string, unknown> = {}
        for (let i = 0; i < names.length; i++) {
          const name = names[i]
          if (!Object.prototype.hasOwnProperty.call(input, name)) {
            // An optional property may be absent, and stays absent; a present one is checked (its type says whether
            // `undefined` is allowed) and kept, even as `undefined`, which `JSON.stringify` then leaves out.
            if (optional[i]) continue
            return invalid
          }
          const value = fields[i](input[name])
          if (value === invalid) return invalid
          out[name] = value
        }
        return out
      }
    }
    default:
      return undefined
  }
}

/** @internal */
export interface JsonCodec<A> {
  /** Whether the schema qualifies for the direct path. */
  readonly direct: boolean
  readonly encode: (value: A) => Either.Either<string, ParseResult.ParseError>
  readonly decode: (json: unknown) => Either.Either<A, ParseResult.ParseError>
}

/** @internal */
export const make = <A, I>(schema: Schema.Schema<A, I>): JsonCodec<A> => {
  const codec = Schema.parseJson(schema)
  const slowEncode = Schema.encodeEither(codec)
  const slowDecode = Schema.decodeUnknownEither(codec)
  // Only where the encoded form is the type itself (no transformation anywhere).
  const plain = AST.encodedAST(schema.ast) === schema.ast ? compile(schema.ast) : undefined
  if (plain === undefined) return { direct: false, encode: slowEncode, decode: slowDecode }
  return {
    direct: true,
    encode: (value) => {
      const out = plain(value)
      if (out === invalid) return slowEncode(value)
      let json: string | undefined
      try {
        json = JSON.stringify(out)
      } catch {
        // Not JSON (a bigint or a cycle inside an `unknown`): Schema says why.
      }
      // `undefined` (or a function) is no JSON text either.
      return typeof json === "string" ? Either.right(json) : slowEncode(value)
    },
    decode: (json) => {
      if (typeof json !== "string") return slowDecode(json)
      let parsed: unknown
      try {
        parsed = JSON.parse(json)
      } catch {
        return slowDecode(json)
      }
      const out = plain(parsed)
      return out === invalid ? slowDecode(json) : Either.right(out as A)
    }
  }
}

import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"

/** @internal */
export const illegal = (module: string, message: string): never => {
  throw new Cause.IllegalArgumentException(`${module}: ${message}`)
}

/** @internal */
export const positiveInteger = (module: string, field: string, value: number, allowInfinity = false): number => {
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value
  if (!Number.isSafeInteger(value) || value < 1) {
    illegal(module, `${field} must be a positive integer${allowInfinity ? " or Infinity" : ""}, got ${value}`)
  }
  return value
}

/** @internal */
export const nonNegativeInteger = (module: string, field: string, value: number, allowInfinity = false): number => {
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value
  if (!Number.isSafeInteger(value) || value < 0) {
    illegal(module, `${field} must be a non-negative integer${allowInfinity ? " or Infinity" : ""}, got ${value}`)
  }
  return value
}

/** @internal */
export const positiveNumber = (module: string, field: string, value: number): number => {
  if (!Number.isFinite(value) || value <= 0) {
    illegal(module, `${field} must be a positive finite number, got ${value}`)
  }
  return value
}

/** @internal */
export const positiveDurationMillis = (module: string, field: string, input: Duration.DurationInput): number => {
  const decoded = Duration.decodeUnknown(input)
  if (decoded._tag === "None") return illegal(module, `${field} is not a valid duration: ${String(input)}`)
  const millis = Duration.toMillis(decoded.value)
  if (!Number.isFinite(millis) || millis <= 0) {
    illegal(module, `${field} must be a positive finite duration, got ${Duration.format(decoded.value)}`)
  }
  return millis
}

/**
 * An optional duration option: `fallback` when absent, else its milliseconds, validated.
 *
 * @internal
 */
export const durationOr = <B>(
  module: string,
  field: string,
  input: Duration.DurationInput | undefined,
  fallback: B
): number | B => input === undefined ? fallback : positiveDurationMillis(module, field, input)

/**
 * An optional positive integer option: `fallback` when absent, else validated.
 *
 * @internal
 */
export const positiveIntegerOr = <B>(
  module: string,
  field: string,
  value: number | undefined,
  fallback: B,
  allowInfinity = false
): number | B => value === undefined ? fallback : positiveInteger(module, field, value, allowInfinity)

/**
 * An optional non-negative integer option: `fallback` when absent, else validated.
 *
 * @internal
 */
export const nonNegativeIntegerOr = <B>(
  module: string,
  field: string,
  value: number | undefined,
  fallback: B,
  allowInfinity = false
): number | B => value === undefined ? fallback : nonNegativeInteger(module, field, value, allowInfinity)

/**
 * An optional non-negative duration option (a `maxWait`): `fallback` when absent, else its milliseconds, validated.
 *
 * @internal
 */
export const nonNegativeDurationOr = <B>(
  module: string,
  field: string,
  input: Duration.DurationInput | undefined,
  fallback: B
): number | B => {
  if (input === undefined) return fallback
  const decoded = Duration.decodeUnknown(input)
  if (decoded._tag === "None") return illegal(module, `${field} is not a valid duration: ${String(input)}`)
  const millis = Duration.toMillis(decoded.value)
  if (!Number.isFinite(millis) || millis < 0) {
    illegal(module, `${field} must be a non-negative finite duration, got ${Duration.format(decoded.value)}`)
  }
  return millis
}

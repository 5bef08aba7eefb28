/**
 * A guard against server-side request forgery: resolve a URL's host, refuse loopback, private, link-local,
 * unique-local and unspecified addresses (IPv4, IPv6, IPv4-mapped and NAT64 forms, and every spelling of them:
 * `2130706433`, `0x7f.1`, `0177.0.0.1`, `[::ffff:7f00:1]`…), and hand back the address that was checked, so the
 * caller connects to exactly that address (no second DNS answer can slip in between the check and the connect).
 *
 * Spellings are normalized by the WHATWG URL parser (the one `fetch` uses), so the guard sees the host a client
 * would connect to. A host that resolves to several addresses is refused if any of them is forbidden (a DNS answer
 * mixing public and private addresses is the usual rebinding trick).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as dns from "node:dns"
import * as net from "node:net"

/**
 * Why an address is refused.
 *
 * @example
 * ```ts
 * import { AddressGuard } from "@spindle/node"
 *
 * const reasons: Record<AddressGuard.Category, string> = {
 *   loopback: "this machine",
 *   private: "an internal network",
 *   link_local: "the local link (cloud metadata lives here)",
 *   unique_local: "an internal IPv6 network",
 *   unspecified: "no address at all",
 *   multicast: "a multicast group",
 *   reserved: "a reserved range",
 *   shared: "carrier-grade NAT"
 * }
 *
 * console.log(reasons[AddressGuard.classify("169.254.169.254") ?? "reserved"])
 * // "the local link (cloud metadata lives here)"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Category =
  | "loopback"
  | "private"
  | "link_local"
  | "unique_local"
  | "unspecified"
  | "multicast"
  | "reserved"
  | "shared"

/**
 * The URL's host is, or resolves to, a forbidden address; no connection was made.
 *
 * @example
 * ```ts
 * import { AddressGuard } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // Decimal, hex and octal spellings of 127.0.0.1 are normalized first, as fetch would.
 * const program = AddressGuard.check("http://2130706433/admin").pipe(
 *   Effect.catchTag("BlockedAddress", (e) => Effect.succeed(`${e.host} -> ${e.address} (${e.category})`))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "127.0.0.1 -> 127.0.0.1 (loopback)"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BlockedAddress extends Data.TaggedError("BlockedAddress")<{
  readonly host: string
  readonly address: string
  readonly category: Category
}> {
  override get message(): string {
    return `${this.host} resolves to ${this.address} (${this.category.replace("_", "-")}), which is not allowed`
  }
}

/**
 * The URL cannot be fetched at all: not absolute, not http(s), or its host does not resolve.
 *
 * @example
 * ```ts
 * import { AddressGuard } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * const program = AddressGuard.check("ftp://files.example/").pipe(
 *   Effect.catchTag("UnresolvableHost", (e) => Effect.succeed(e.reason))
 * )
 *
 * Effect.runPromise(program).then(console.log) // "scheme ftp: is not http or https"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class UnresolvableHost extends Data.TaggedError("UnresolvableHost")<{
  readonly host: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.host}: ${this.reason}`
  }
}

const v4 = (address: string): number => address.split(".").reduce((n, part) => n * 256 + Number(part), 0)

const inV4 = (address: number, base: string, bits: number): boolean => {
  const size = 2 ** (32 - bits)
  const start = v4(base)
  return address >= start && address < start + size
}

const v4Ranges: ReadonlyArray<readonly [string, number, Category]> = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "shared"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link_local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "reserved"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"]
]

const classifyV4 = (address: string): Category | undefined => {
  const n = v4(address)
  for (const [base, bits, category] of v4Ranges) if (inV4(n, base, bits)) return category
  return undefined
}

// Expands an IPv6 address into its eight 16-bit groups (a dotted IPv4 tail included).
const groups = (address: string): Array<number> => {
  let text = address.toLowerCase().split("%")[0]
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (tail !== null) {
    const n = v4(tail[1])
    text = text.slice(0, -tail[1].length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`
  }
  const [head, rest] = text.split("::")
  const left = head === "" ? [] : head.split(":")
  const right = rest === undefined || rest === "" ? [] : rest.split(":")
  const fill = rest === undefined ? [] : new Array(8 - left.length - right.length).fill("0")
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16))
}

const embeddedV4 = (g: ReadonlyArray<number>): string => [g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff].join(".")

const classifyV6 = (address: string): Category | undefined => {
  const g = groups(address)
  if (g.every((x) => x === 0)) return "unspecified"
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback"
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry an IPv4 address.
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0)) return classifyV4(embeddedV4(g))
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyV4(embeddedV4(g))
  if ((g[0] & 0xffc0) === 0xfe80) return "link_local"
  if ((g[0] & 0xfe00) === 0xfc00) return "unique_local"
  if ((g[0] & 0xff00) === 0xff00) return "multicast"
  if ((g[0] & 0xffc0) === 0xfec0) return "reserved"
  return undefined
}

/**
 * Why `address` (an IP literal) is forbidden, or `undefined` when it is a public address.
 *
 * @example
 * ```ts
 * import { AddressGuard } from "@spindle/node"
 *
 * console.log(AddressGuard.classify("10.1.2.3")) // "private"
 * console.log(AddressGuard.classify("::ffff:127.0.0.1")) // "loopback"
 * console.log(AddressGuard.classify("fd00::1")) // "unique_local"
 * console.log(AddressGuard.classify("93.184.216.34")) // undefined: public
 * ```
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (address: string): Category | undefined => {
  const kind = net.isIP(address)
  if (kind === 4) return classifyV4(address)
  if (kind === 6) return classifyV6(address)
  return "reserved"
}

/**
 * A checked destination: connect to `address` (family 4 or 6) and send `Host: host`.
 *
 * @example
 * ```ts
 * import { AddressGuard } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // Connect to the address that was checked, and send the original host name.
 * const connectOptions = (d: AddressGuard.Destination) => ({
 *   host: d.address,
 *   family: d.family,
 *   port: Number(d.url.port || (d.url.protocol === "https:" ? 443 : 80)),
 *   servername: d.host,
 *   headers: { host: d.url.host }
 * })
 *
 * const program = Effect.map(AddressGuard.check("http://[2606:4700::1111]:8080/"), connectOptions)
 *
 * Effect.runPromise(program).then(console.log) // { host: "2606:4700::1111", family: 6, port: 8080, … }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Destination {
  readonly url: URL
  readonly host: string
  readonly address: string
  readonly family: 4 | 6
}

/**
 * Parses `input` as an absolute http(s) URL, resolves its host and checks every address. With `allowPrivate`, only
 * the scheme and resolution are checked.
 *
 * @example
 * ```ts
 * import { AddressGuard } from "@spindle/node"
 * import * as Effect from "effect/Effect"
 *
 * // `lookup` replaces DNS here; by default every address the host resolves to is checked.
 * const rebinding = async () => [{ address: "93.184.216.34", family: 4 }, { address: "10.0.0.5", family: 4 }]
 *
 * const program = Effect.all([
 *   AddressGuard.check("https://example.com/", { lookup: async () => [{ address: "93.184.216.34", family: 4 }] }),
 *   Effect.flip(AddressGuard.check("https://rebind.example/", { lookup: rebinding }))
 * ])
 *
 * Effect.runPromise(program).then(([ok, blocked]) => console.log(ok.address, blocked._tag))
 * // "93.184.216.34" "BlockedAddress"
 * ```
 *
 * @since 0.1.0
 * @category checking
 */
export const check = (
  input: string,
  options: {
    readonly allowPrivate?: boolean | undefined
    readonly lookup?: ((host: string) => Promise<ReadonlyArray<dns.LookupAddress>>) | undefined
  } = {}
): Effect.Effect<Destination, BlockedAddress | UnresolvableHost> =>
  // Synchronous up to the lookup, which an address literal skips: a guard in front of every request of a crawler
  // costs no more than the URL's parse and the address's classification.
  Effect.suspend(() => {
    let url: URL
    try {
      url = new URL(input)
    } catch {
      return Effect.fail(new UnresolvableHost({ host: input, reason: "not an absolute URL" }))
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return Effect.fail(
        new UnresolvableHost({ host: url.host, reason: `scheme ${url.protocol} is not http or https` })
      )
    }
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
    const family = net.isIP(host)
    if (family !== 0) return choose(url, host, [{ address: host, family }], options.allowPrivate === true)
    const lookup = options.lookup ?? ((h: string) => dns.promises.lookup(h, { all: true, verbatim: true }))
    return Effect.flatMap(
      Effect.tryPromise({
        try: () => lookup(host),
        catch: (cause) =>
          new UnresolvableHost({ host, reason: cause instanceof Error ? cause.message : "does not resolve" })
      }),
      (addresses) => choose(url, host, addresses, options.allowPrivate === true)
    )
  })

// Every address the host resolved to must be allowed; the connection then goes to the first.
const choose = (
  url: URL,
  host: string,
  addresses: ReadonlyArray<dns.LookupAddress>,
  allowPrivate: boolean
): Effect.Effect<Destination, BlockedAddress | UnresolvableHost> => {
  if (addresses.length === 0) return Effect.fail(new UnresolvableHost({ host, reason: "no addresses" }))
  if (!allowPrivate) {
    for (const { address } of addresses) {
      const category = classify(address)
      if (category !== undefined) return Effect.fail(new BlockedAddress({ host, address, category }))
    }
  }
  const chosen = addresses[0]
  return Effect.succeed({ url, host, address: chosen.address, family: chosen.family === 6 ? 6 : 4 })
}

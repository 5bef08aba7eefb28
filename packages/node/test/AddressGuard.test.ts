import { assert, describe, it } from "@effect/vitest"
import { AddressGuard } from "@spindle/node"
import * as Effect from "effect/Effect"

// A resolver with fixed answers, for hosts that cannot exist on a machine without a network.
const answers: Record<string, ReadonlyArray<string>> = {
  "public.test": ["93.184.216.34"],
  "v6.test": ["2606:2800:220:1:248:1893:25c8:1946"],
  "rebind.test": ["93.184.216.34", "10.0.0.5"],
  "inner.test": ["192.168.1.10"]
}
const lookup = async (host: string) => {
  const list = answers[host]
  if (list === undefined) throw new Error(`getaddrinfo ENOTFOUND ${host}`)
  return list.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }))
}

const blocked = (url: string) =>
  Effect.map(
    Effect.flip(AddressGuard.check(url, { lookup })),
    (error) => error._tag === "BlockedAddress" ? `${error.address} ${error.category}` : `unresolvable: ${error.reason}`
  )

describe("AddressGuard", () => {
  it("classifies special IPv4 and IPv6 addresses, and only those", () => {
    const cases: Array<[string, AddressGuard.Category | undefined]> = [
      ["127.0.0.1", "loopback"],
      ["127.255.0.9", "loopback"],
      ["10.1.2.3", "private"],
      ["172.16.0.1", "private"],
      ["172.31.255.255", "private"],
      ["172.32.0.1", undefined],
      ["192.168.0.1", "private"],
      ["169.254.169.254", "link_local"],
      ["0.0.0.0", "unspecified"],
      ["100.64.0.1", "shared"],
      ["224.0.0.1", "multicast"],
      ["8.8.8.8", undefined],
      ["::", "unspecified"],
      ["::1", "loopback"],
      ["fe80::1", "link_local"],
      ["fd00::1", "unique_local"],
      ["fc12:3456::1", "unique_local"],
      ["::ffff:127.0.0.1", "loopback"],
      ["::ffff:7f00:1", "loopback"],
      ["::ffff:a00:1", "private"],
      ["64:ff9b::a9fe:a9fe", "link_local"],
      ["::ffff:8.8.8.8", undefined],
      ["2001:4860:4860::8888", undefined]
    ]
    for (const [address, expected] of cases) assert.strictEqual(AddressGuard.classify(address), expected, address)
  })

  it.effect("refuses every spelling of a forbidden address, before any connection", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* blocked("http://127.0.0.1/"), "127.0.0.1 loopback")
      assert.strictEqual(yield* blocked("http://2130706433/"), "127.0.0.1 loopback")
      assert.strictEqual(yield* blocked("http://0x7f.1/"), "127.0.0.1 loopback")
      assert.strictEqual(yield* blocked("http://0177.0.0.1:8080/x"), "127.0.0.1 loopback")
      assert.strictEqual(yield* blocked("http://127.1/"), "127.0.0.1 loopback")
      assert.strictEqual(yield* blocked("http://0/"), "0.0.0.0 unspecified")
      assert.strictEqual(yield* blocked("http://[::1]/"), "::1 loopback")
      assert.strictEqual(yield* blocked("http://[::ffff:127.0.0.1]/"), "::ffff:7f00:1 loopback")
      assert.strictEqual(yield* blocked("http://[fe80::1]/"), "fe80::1 link_local")
      assert.strictEqual(yield* blocked("https://inner.test/"), "192.168.1.10 private")
      assert.strictEqual(yield* blocked("https://rebind.test/"), "10.0.0.5 private", "one private answer is enough")
    }))

  it.effect("lets public hosts through with the address that was checked", () =>
    Effect.gen(function*() {
      const destination = yield* AddressGuard.check("https://public.test:8443/path?q=1", { lookup })
      assert.deepStrictEqual([destination.host, destination.address, destination.family], [
        "public.test",
        "93.184.216.34",
        4
      ])
      assert.strictEqual(destination.url.port, "8443")
      const v6 = yield* AddressGuard.check("http://v6.test/", { lookup })
      assert.strictEqual(v6.family, 6)
      const allowed = yield* AddressGuard.check("http://127.0.0.2:9000/", { allowPrivate: true })
      assert.strictEqual(allowed.address, "127.0.0.2")
    }))

  it.effect("refuses non-http schemes, relative URLs and unresolvable hosts with a reason", () =>
    Effect.gen(function*() {
      assert.include(yield* blocked("ftp://public.test/"), "scheme ftp: is not http or https")
      assert.include(yield* blocked("file:///etc/passwd"), "scheme file:")
      assert.include(yield* blocked("/relative"), "not an absolute URL")
      assert.include(yield* blocked("http://nowhere.test/"), "ENOTFOUND")
    }))
})

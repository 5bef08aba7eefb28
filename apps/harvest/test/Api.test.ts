import { assert, describe, it } from "@effect/vitest"
import { Upstream } from "@spindle/testkit"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Domain from "../src/Domain.js"
import type * as HarvestConfig from "../src/HarvestConfig.js"
import * as Api from "../src/http/Api.js"
import * as Http from "../src/http/Handlers.js"
import { Jobs } from "../src/storage/Jobs.js"
import * as Harness from "./harness.js"

interface Reply {
  readonly status: number
  readonly json: any
  readonly text: string
  readonly headers: Headers
}

// Harvest on SQLite in a temp dir, on a free port; `call` sends a request over loopback.
const harvest = (overrides: Partial<HarvestConfig.HarvestConfig> = {}) =>
  Effect.gen(function*() {
    const { base, context } = yield* Harness.inProcess({ allowPrivateNetworks: false, ...overrides })
    const call = (method: string, route: string, init: RequestInit = {}) =>
      Effect.promise(async (): Promise<Reply> => {
        const response = await fetch(`${base}${route}`, { method, ...init })
        const text = await response.text()
        let json: any = undefined
        try {
          json = JSON.parse(text)
        } catch {
          // not JSON
        }
        return { status: response.status, json, text, headers: response.headers }
      })
    const post = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
      call("POST", "/jobs", {
        body,
        headers: { "content-type": "application/json", ...headers },
        ...(typeof body === "string" ? {} : { duplex: "half" })
      } as RequestInit)
    const jobsWritten = Effect.map(
      Effect.flatMap(Jobs.pipe(Effect.provide(context)), (jobs) =>
        jobs.list({ statuses: [], limit: 10, after: undefined })),
      (page) =>
        page.items.length
    )
    const optionsOf = (id: string) =>
      Effect.map(
        Effect.flatMap(Jobs.pipe(Effect.provide(context)), (jobs) => Effect.orDie(jobs.find(id))),
        (job) => Option.getOrThrow(job).options
      )
    return { call, post, jobsWritten, optionsOf }
  })

const assertContractError = (reply: Reply, status: number, code: string) => {
  assert.strictEqual(reply.status, status, reply.text.slice(0, 200))
  assert.include(reply.headers.get("content-type") ?? "", "application/json")
  assert.deepStrictEqual(Object.keys(reply.json), ["error"])
  assert.deepStrictEqual(Object.keys(reply.json.error).sort(), ["code", "message"])
  assert.strictEqual(reply.json.error.code, code)
}

// A URL that is refused (private address) without any connection being made, so that created jobs finish at once.
const refusedUrl = "http://127.0.0.1:9/x"

const contract: ReadonlyArray<readonly [string, string]> = [
  ["post", "/jobs"],
  ["get", "/jobs"],
  ["get", "/jobs/{id}"],
  ["get", "/jobs/{id}/results"],
  ["get", "/jobs/{id}/export"],
  // Additions of issue 20, for the dashboard: a job's latency histogram, an item's trace.
  ["get", "/jobs/{id}/latency"],
  ["get", "/jobs/{id}/trace"],
  ["delete", "/jobs/{id}"],
  ["get", "/files/{fileId}"],
  ["get", "/health"],
  ["get", "/metrics"]
]

describe("Harvest HTTP API", () => {
  it.scopedLive("GET /openapi.json documents every contract route with its schemas, and the ranges are enforced", () =>
    Effect.gen(function*() {
      const { call, post } = yield* harvest()
      const reply = yield* call("GET", "/openapi.json")
      assert.strictEqual(reply.status, 200)
      const spec = JSON.parse(reply.text)
      assert.strictEqual(spec.openapi, "3.1.0")
      const resolve = (schema: any): any =>
        schema.$ref === undefined ? schema : resolve(spec.components.schemas[schema.$ref.split("/").pop()])
      for (const [method, route] of contract) {
        const operation = spec.paths[route]?.[method]
        assert.isDefined(operation, `${method} ${route}`)
        const success = Object.keys(operation.responses).find((status) => status.startsWith("2"))
        assert.isDefined(success, `${method} ${route} has a 2xx`)
        for (const [status, response] of Object.entries<any>(operation.responses)) {
          if (!status.startsWith("4")) continue
          const body = resolve(response.content["application/json"].schema)
          assert.deepStrictEqual(body.required, ["error"], `${method} ${route} ${status}`)
          assert.deepStrictEqual(resolve(body.properties.error).required, ["code", "message"])
        }
      }
      assert.deepStrictEqual(Object.keys(spec.paths).sort(), [...new Set(contract.map(([, route]) => route))].sort())
      // The platform's own decode error body is not what Harvest sends, so it must not be documented.
      assert.notInclude(reply.text, "HttpApiDecodeError")

      const create = spec.paths["/jobs"].post
      assert.deepStrictEqual(Object.keys(create.responses).sort(), ["202", "400", "401", "413", "503"])
      const request = resolve(create.requestBody.content["application/json"].schema)
      assert.deepStrictEqual(request.required, ["urls"])
      assert.strictEqual(request.properties.urls.type, "array")
      assert.strictEqual(request.properties.urls.minItems, 1)
      assert.deepStrictEqual([request.properties.maxAttempts.minimum, request.properties.maxAttempts.maximum], [1, 20])
      assert.strictEqual(request.properties.perHostRps.exclusiveMinimum, 0)
      assert.deepStrictEqual(
        Object.keys(spec.paths["/jobs/{id}/export"].get.responses["200"].content),
        ["application/x-ndjson"]
      )
      assert.deepStrictEqual(
        Object.keys(spec.paths["/files/{fileId}"].get.responses["200"].content),
        ["application/octet-stream"]
      )
      assert.deepStrictEqual(Object.keys(spec.paths["/health"].get.responses).sort(), ["200", "503"])
      const limit = spec.paths["/jobs/{id}/results"].get.parameters.find((p: any) => p.name === "limit")
      assert.deepStrictEqual([limit.in, limit.schema.minimum, limit.schema.maximum], ["query", 1, 1000])
      const bearer = spec.components.securitySchemes.bearer
      assert.deepStrictEqual([bearer.type, bearer.scheme], ["http", "bearer"])
      assert.deepStrictEqual(create.security, [{ bearer: [] }])
      assert.deepStrictEqual(spec.paths["/health"].get.security, [])

      // What the document says is what the server does: each documented bound is accepted, one step past it refused.
      for (const [field, schema] of Object.entries<any>(request.properties)) {
        const bounds = resolve(schema)
        const step = field === "perHostRps" ? 1e-3 : 1
        const probes: Array<readonly [number, boolean]> = []
        if (schema.maximum !== undefined) probes.push([schema.maximum, true], [schema.maximum + step, false])
        if (schema.minimum !== undefined) probes.push([schema.minimum, true], [schema.minimum - step, false])
        if (schema.exclusiveMinimum !== undefined) probes.push([schema.exclusiveMinimum, false])
        if (bounds.type === "integer" && schema.minimum !== undefined) probes.push([schema.minimum + 0.5, false])
        if (field !== "urls") assert.isNotEmpty(probes, field)
        for (const [value, accepted] of probes) {
          const reply = yield* post(JSON.stringify({ urls: [refusedUrl], [field]: value }))
          if (accepted) {
            assert.strictEqual(reply.status, 202, `${field}=${value}: ${reply.text}`)
          } else {
            assertContractError(reply, 400, "invalid_field")
            assert.include(reply.json.error.message, field)
          }
        }
      }
    }))

  it("POST /jobs is decoded by the schema the API declares", () => {
    const payload: Option.Option<unknown> = Api.JobsGroup.endpoints.create.payloadSchema
    assert.strictEqual(Option.getOrThrow(payload), Domain.JobRequest)
  })

  it("urlProblem accepts what the URL parser reads as http or https, and says why anything else is refused", () => {
    const accepted = [
      "http://example.com/a?b=1",
      "HTTPS://Example.COM:8443/",
      "http:example.com", // the parser reads it as http://example.com/
      "  http://example.com", // leading spaces are not part of a URL
      "http://[::1]:8080/x"
    ]
    for (const url of accepted) assert.strictEqual(Domain.urlProblem(url), undefined, url)
    assert.strictEqual(Domain.urlProblem("ftp://example.com/"), "must use http or https")
    assert.strictEqual(Domain.urlProblem("mailto:someone@example.com"), "must use http or https")
    for (const url of ["", "http:", "http://", "example.com/a", "https://exa mple.com/", "http://[::1/"]) {
      assert.strictEqual(Domain.urlProblem(url), "is not an absolute URL", JSON.stringify(url))
    }
  })

  it.scopedLive("GET /openapi.json shows every POST /jobs field with its type, range and default", () =>
    Effect.gen(function*() {
      const { call } = yield* harvest()
      const spec = JSON.parse((yield* call("GET", "/openapi.json")).text)
      const ref: string = spec.paths["/jobs"].post.requestBody.content["application/json"].schema.$ref
      const properties = spec.components.schemas[ref.split("/").pop()!].properties
      assert.deepStrictEqual(Object.keys(properties), [
        "urls",
        "concurrency",
        "perHostConcurrency",
        "perHostRps",
        "perHostBurst",
        "timeoutMs",
        "maxAttempts"
      ])
      assert.deepStrictEqual(
        [properties.urls.type, properties.urls.minItems, properties.urls.items.type, properties.urls.items.format],
        ["array", 1, "string", "uri"]
      )
      assert.include(properties.urls.description, "MAX_URLS_PER_JOB")
      assert.deepStrictEqual([properties.concurrency.type, properties.concurrency.minimum], ["integer", 1])
      assert.include(properties.concurrency.description, "MAX_CONCURRENCY")
      for (const [field, range] of Object.entries<Domain.Range>(Domain.optionRanges)) {
        const property = properties[field]
        assert.strictEqual(property.type, range.integer ? "integer" : "number", field)
        assert.strictEqual(property.maximum, range.max, field)
        assert.strictEqual(property[range.exclusiveMin === true ? "exclusiveMinimum" : "minimum"], range.min, field)
        assert.strictEqual(property.default, (Domain.optionDefaults as Record<string, number>)[field], field)
      }
    }))

  it.scopedLive("a refused POST /jobs names the field and its problem, for every field", () =>
    Effect.gen(function*() {
      const { jobsWritten, post } = yield* harvest({ maxUrlsPerJob: 3 })
      const ok = refusedUrl
      const cases: Array<readonly [unknown, string, string]> = [
        ["just a string", "invalid_body", "body must be a JSON object"],
        [[{ urls: [ok] }], "invalid_body", "body must be a JSON object"],
        [null, "invalid_body", "body must be a JSON object"],
        [{}, "invalid_field", "urls is required"],
        [{ urls: ok }, "invalid_field", "urls must be an array of strings"],
        [{ urls: [] }, "invalid_field", "urls must not be empty"],
        [{ urls: [ok, ok, 7] }, "invalid_field", "urls[2] must be a string"],
        [{ urls: [ok, ok, "/relative"] }, "invalid_field", "urls[2] is not an absolute URL"],
        [{ urls: [ok, "ftp://example.com/file"] }, "invalid_field", "urls[1] must use http or https"],
        // The count is checked before any URL is parsed.
        [{ urls: [ok, ok, ok, "not a url"] }, "too_many_urls", "urls has 4 entries; at most 3 are allowed"],
        [{ urls: [ok], concurrency: "many" }, "invalid_field", "concurrency must be a number"],
        [{ urls: [ok], concurrency: 2.5 }, "invalid_field", "concurrency must be an integer"],
        [{ urls: [ok], concurrency: 0 }, "invalid_field", "concurrency must be >= 1"],
        [{ urls: [ok], concurrency: 17 }, "invalid_field", "concurrency must be >= 1 and <= 16 (MAX_CONCURRENCY)"],
        [{ urls: [ok], perHostConcurrency: null }, "invalid_field", "perHostConcurrency must be a number"],
        [{ urls: [ok], perHostConcurrency: 1001 }, "invalid_field", "perHostConcurrency must be >= 1 and <= 1000"],
        [{ urls: [ok], perHostRps: [1] }, "invalid_field", "perHostRps must be a number"],
        [{ urls: [ok], perHostRps: 0 }, "invalid_field", "perHostRps must be > 0 and <= 1000000"],
        [{ urls: [ok], perHostBurst: 1.5 }, "invalid_field", "perHostBurst must be an integer"],
        [{ urls: [ok], perHostBurst: 0 }, "invalid_field", "perHostBurst must be >= 1 and <= 1000000"],
        [{ urls: [ok], timeoutMs: "fast" }, "invalid_field", "timeoutMs must be a number"],
        [{ urls: [ok], timeoutMs: 600_001 }, "invalid_field", "timeoutMs must be >= 1 and <= 600000"],
        [{ urls: [ok], maxAttempts: { n: 2 } }, "invalid_field", "maxAttempts must be a number"],
        [{ urls: [ok], maxAttempts: 21 }, "invalid_field", "maxAttempts must be >= 1 and <= 20"],
        // The first problem is reported, in the order of the fields.
        [{ maxAttempts: 0, urls: [ok, 1] }, "invalid_field", "urls[1] must be a string"]
      ]
      for (const [body, code, message] of cases) {
        const reply = yield* post(JSON.stringify(body))
        assertContractError(reply, 400, code)
        assert.strictEqual(reply.json.error.message, message, JSON.stringify(body))
      }
      assert.strictEqual(yield* jobsWritten, 0)
    }))

  it.effect("a large job's URLs are checked chunk by chunk, other fibers running between the chunks", () =>
    Effect.gen(function*() {
      const limits: Domain.JobLimits = { maxUrlsPerJob: 10_000, maxConcurrency: 16 }
      // Another fiber that counts its turns (`forever` yields after each): it gets one only when the decoding yields.
      let turns = 0
      const other = yield* Effect.fork(Effect.forever(Effect.sync(() => turns++)))
      yield* Effect.yieldNow()
      // The URLs, read through a proxy that notes the other fiber's turn at each read of a chunk's first element.
      // Schema also reads every element in passes of its own (its type checks), all in one turn each.
      const urls = Array.from({ length: 10_000 }, (_, i) => `${refusedUrl}?${i}`)
      const starts = new Set(["0", "2000", "4000", "6000", "8000"])
      const readIn = new Set<number>()
      const watched = new Proxy(urls, {
        get: (target, key, receiver) => {
          if (typeof key === "string" && starts.has(key)) readIn.add(turns)
          return Reflect.get(target, key, receiver)
        }
      })
      const decoded = yield* Effect.provideService(
        Schema.decodeUnknown(Domain.JobRequest)({ urls: watched }),
        Domain.JobLimits,
        limits
      )
      yield* Fiber.interrupt(other)
      assert.strictEqual(decoded.urls.length, 10_000)
      // Five chunks of 2,000, each checked in a turn of its own: checked all at once (with the yields only after),
      // every chunk would be read in the same turn.
      assert.isAtLeast(readIn.size, 5, `turns of the reads: ${[...readIn].join(", ")}`)
    }))

  it.scopedLive("a large job's URLs are checked in chunks, and the first bad one is still named by its index", () =>
    Effect.gen(function*() {
      const { jobsWritten, post } = yield* harvest({ maxUrlsPerJob: 10_000 })
      const urls = Array.from({ length: 9000 }, (_, i) => `${refusedUrl}?${i}`)
      // Past the first chunks (2,000 URLs each): the check yields between chunks and goes on from where it was.
      for (const [bad, message] of [[8765, "is not an absolute URL"], [1999, "must use http or https"]] as const) {
        const body = urls.map((url, i) => i === bad ? (message.startsWith("must") ? "ftp://x/y" : "nope") : url)
        if (bad === 1999) body[8000] = "also bad"
        const reply = yield* post(JSON.stringify({ urls: body }))
        assertContractError(reply, 400, "invalid_field")
        assert.strictEqual(reply.json.error.message, `urls[${bad}] ${message}`)
      }
      assert.strictEqual(yield* jobsWritten, 0)
    }))

  it.scopedLive("POST /jobs applies the defaults of the fields left out, and keeps the ones given", () =>
    Effect.gen(function*() {
      const { optionsOf, post } = yield* harvest()
      const cases: Array<readonly [Record<string, unknown>, Domain.JobOptions]> = [
        [{}, {
          concurrency: 16, // MAX_CONCURRENCY in these tests
          perHostConcurrency: 8,
          perHostRps: null,
          perHostBurst: 1,
          timeoutMs: 30_000,
          maxAttempts: 3
        }],
        [{ perHostRps: 2.5 }, {
          concurrency: 16,
          perHostConcurrency: 8,
          perHostRps: 2.5,
          perHostBurst: 3,
          timeoutMs: 30_000,
          maxAttempts: 3
        }],
        [{ perHostRps: 0.2 }, {
          concurrency: 16,
          perHostConcurrency: 8,
          perHostRps: 0.2,
          perHostBurst: 1,
          timeoutMs: 30_000,
          maxAttempts: 3
        }],
        [{ concurrency: 4, perHostConcurrency: 2, perHostRps: 10, perHostBurst: 20, timeoutMs: 500, maxAttempts: 1 }, {
          concurrency: 4,
          perHostConcurrency: 2,
          perHostRps: 10,
          perHostBurst: 20,
          timeoutMs: 500,
          maxAttempts: 1
        }]
      ]
      for (const [fields, options] of cases) {
        const reply = yield* post(JSON.stringify({ urls: [refusedUrl], ...fields }))
        assert.strictEqual(reply.status, 202, reply.text)
        assert.deepStrictEqual(yield* optionsOf(reply.json.id), options, JSON.stringify(fields))
      }
    }))

  it.scopedLive("GET /docs is an interactive page that loads nothing from another host", () =>
    Effect.gen(function*() {
      const { call } = yield* harvest()
      const reply = yield* call("GET", "/docs")
      assert.strictEqual(reply.status, 200)
      assert.include(reply.headers.get("content-type") ?? "", "text/html")
      assert.include(reply.text, "SwaggerUIBundle(")
      // The UI's code is in the page itself, and so is the document it renders.
      assert.include(reply.text, "\"/jobs/{id}/export\"")
      const external = /<(?:script|link|img|iframe|source|embed)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?\/\//gi
      assert.deepStrictEqual(reply.text.match(external), null)
      assert.deepStrictEqual(reply.text.match(/@import\s+(?:url\()?\s*["']?(?:[a-z]+:)?\/\//gi), null)
      assert.deepStrictEqual(reply.text.match(/url\(\s*["']?(?:https?:)?\/\//gi), null)
    }))

  it.scopedLive("a body over the limit is refused with 413 JSON, declared or streamed, and no job is written", () =>
    Effect.gen(function*() {
      const { call, jobsWritten, post } = yield* harvest()
      // Valid JSON of exactly the limit is read; one byte more is not.
      const job = JSON.stringify({ urls: [refusedUrl] })
      const atLimit = yield* post(job + " ".repeat(Http.maxRequestBytes - job.length))
      assert.strictEqual(atLimit.status, 202, atLimit.text)
      assert.strictEqual(yield* jobsWritten, 1)

      const overLimit = job + " ".repeat(Http.maxRequestBytes - job.length + 1)
      assertContractError(yield* post(overLimit), 413, "body_too_large")
      // Without a Content-Length the limit is found while reading.
      const chunk = new TextEncoder().encode(" ".repeat(1024 * 1024))
      let sent = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 0) controller.enqueue(new TextEncoder().encode(job))
          if (sent > Http.maxRequestBytes) return controller.close()
          controller.enqueue(chunk)
          sent += chunk.length
        }
      })
      assertContractError(yield* post(stream), 413, "body_too_large")
      assert.strictEqual(yield* jobsWritten, 1)
      // The server goes on serving.
      assert.strictEqual((yield* call("GET", "/health")).status, 200)
    }))

  it.scopedLive("malformed and deeply nested bodies get a 400 naming the problem, unknown routes a JSON 404", () =>
    Effect.gen(function*() {
      const { call, jobsWritten, post } = yield* harvest()
      const deep = 200_000
      const cases: Array<readonly [string, string]> = [
        ["", "not valid JSON"],
        ["[".repeat(deep), "not valid JSON"],
        [`{"urls":${"[".repeat(deep)}${"]".repeat(deep)}}`, "urls[0]"],
        [`{"urls":["${refusedUrl}"],"timeoutMs":${"{\"a\":".repeat(deep)}1${"}".repeat(deep)}}`, "timeoutMs"],
        ["\"just a string\"", "JSON object"],
        ["{\"urls\":[\"http://a\"],\"maxAttempts\":1e400}", "maxAttempts"]
      ]
      for (const [body, message] of cases) {
        const reply = yield* post(body)
        assert.strictEqual(reply.status, 400, body.slice(0, 40))
        assert.include(reply.json.error.message, message)
      }
      assert.strictEqual(yield* jobsWritten, 0)
      const job = "/jobs/00000000-0000-0000-0000-000000000000"
      assertContractError(yield* call("GET", `${job}/results?limit=0`), 400, "invalid_field")
      assert.include((yield* call("GET", `${job}/results?limit=many`)).json.error.message, "limit")
      for (const [method, route] of [["GET", "/no/route"], ["POST", "/health"], ["DELETE", "/jobs"], ["GET", job]]) {
        assertContractError(yield* call(method, route), 404, "not_found")
      }
    }))

  it.scopedLive("with API_TOKEN, /jobs* and /files* need the bearer token; the other routes stay open", () =>
    Effect.gen(function*() {
      const { call, post } = yield* harvest({ apiToken: Option.some(Redacted.make("s3cret")) })
      const body = JSON.stringify({ urls: [refusedUrl] })
      assertContractError(yield* post(body), 401, "unauthorized")
      assertContractError(yield* post(body, { authorization: "Bearer wrong" }), 401, "unauthorized")
      assertContractError(yield* post(body, { authorization: "Basic s3cret" }), 401, "unauthorized")
      assertContractError(yield* call("GET", "/jobs/nope"), 401, "unauthorized")
      assertContractError(yield* call("GET", "/files/abc"), 401, "unauthorized")
      const authorized = { headers: { authorization: "Bearer s3cret" } }
      const created = yield* post(body, authorized.headers)
      assert.strictEqual(created.status, 202, created.text)
      assert.strictEqual((yield* call("GET", `/jobs/${created.json.id}`, authorized)).json.id, created.json.id)
      assertContractError(yield* call("GET", "/files/abc", authorized), 404, "not_found")
      for (const route of ["/health", "/metrics", "/openapi.json", "/docs", "/"]) {
        assert.strictEqual((yield* call("GET", route)).status, 200, route)
      }
      assertContractError(yield* call("GET", "/no/route"), 404, "not_found")
    }))

  it.scopedLive("GET /jobs/:id/latency is the histogram of the job's results' durations, to the item", () =>
    Effect.gen(function*() {
      const upstream = yield* Upstream.make()
      const harvest = yield* Harness.inProcess({ maxConcurrency: 16 })
      const urls = Array.from({ length: 24 }, (_, i) => upstream.url(`/d/${i}?latency=${(i % 6) * 40}&bytes=100`))
      urls.push(upstream.url("/gone?status=404"))
      const id = yield* harvest.submit({ urls })
      yield* harvest.waitFor(id, "completed")
      const results = yield* harvest.results(id)
      const durations = results.map((r) => r.durationMs as number)
      assert.isTrue(durations.every((d) => Number.isFinite(d) && d >= 0), "every settled item has its duration")
      const reply = yield* harvest.call("GET", `/jobs/${id}/latency`)
      assert.strictEqual(reply.status, 200, reply.text)
      const latency = reply.json

      // The same histogram, computed here from the results: bucket by bucket, and the percentiles by nearest rank.
      const bounds = latency.buckets.map((b: any) => b.leMs)
      assert.deepStrictEqual(bounds, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 60000, null])
      const expected = bounds.map((le: number | null, i: number) =>
        durations.filter((d) => (i === 0 || d > bounds[i - 1]) && (le === null || d <= le)).length
      )
      assert.deepStrictEqual(latency.buckets.map((b: any) => b.count), expected)
      const sorted = [...durations].sort((a, b) => a - b)
      const rank = (p: number) => sorted[Math.ceil(p * sorted.length) - 1]
      assert.deepStrictEqual(
        [latency.count, latency.minMs, latency.maxMs, latency.p50Ms, latency.p90Ms, latency.p99Ms],
        [25, sorted[0], sorted[24], rank(0.5), rank(0.9), rank(0.99)]
      )
      // The ten slowest, slowest first, each as its result says (the failed one included, with its code).
      const slowest = [...results].sort((a, b) => b.durationMs - a.durationMs).slice(0, 10)
      assert.deepStrictEqual(latency.slowest.map((s: any) => s.durationMs), slowest.map((r) => r.durationMs))
      const gone = results.find((r) => r.url.includes("/gone"))
      const listed = latency.slowest.find((s: any) => s.url === gone.url)
      if (listed !== undefined) assert.deepStrictEqual([listed.status, listed.errorCode], ["failed", "http_status"])

      assertContractError(yield* harvest.call("GET", `/jobs/${crypto.randomUUID()}/latency`), 404, "not_found")
    }))
})

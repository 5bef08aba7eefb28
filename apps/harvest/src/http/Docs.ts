/**
 * `GET /docs`'s page: Swagger UI with the API's OpenAPI document, its code and styles inlined (a few MB), built by
 * `@effect/platform`'s `HttpApiSwagger`. Imported on the first request for the page (`Handlers.ts`), so that a server
 * nobody reads the docs of never holds it.
 *
 * @since 0.1.0
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiSwagger from "@effect/platform/HttpApiSwagger"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * The page for `api`: `HttpApiSwagger`'s own handler, taken from the one route its layer adds to a router.
 *
 * @since 0.1.0
 * @category responses
 */
export const page = (api: HttpApi.HttpApi.Any): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.suspend(() => {
    let handler: unknown
    const router = {
      add: (_method: string, _path: string, added: unknown) => Effect.sync(() => (handler = added))
    } as unknown as HttpLayerRouter.HttpRouter
    return Layer.build(HttpApiSwagger.layerHttpLayerRouter({ api, path: "/docs" })).pipe(
      Effect.provideService(HttpLayerRouter.HttpRouter, router),
      Effect.scoped,
      Effect.flatMap(() =>
        Effect.isEffect(handler)
          ? handler as Effect.Effect<HttpServerResponse.HttpServerResponse>
          : Effect.dieMessage("HttpApiSwagger added no page")
      )
    )
  })

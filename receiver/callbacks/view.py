"""`POST /callbacks` and `POST /callbacks/{kind}`: where CSS delivers events.

The hot path, served directly by the server (`receiver.web.direct`): no router, no middleware.
So the endpoint does what the middleware does for other routes (answers its own errors with the
same `error_response`, counts itself in flight, times itself), and reaches its dependencies
through what it was built with, since a direct request has no `request.app`. The same routes stay
in the router (requests with an `Expect` header, servers built without `DirectRunner`, the 405
for other methods) and call the same endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Final, Literal

from aiohttp import web
from prometheus_client import Histogram
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from receiver.callbacks.ingest import Ingestor
from receiver.errors import BodyTimeout, Overloaded, PayloadTooLarge, Refusal
from receiver.events import MODEL_BY_EVENT_TYPE, CssEvent
from receiver.events.kinds import KIND_BY_EVENT_TYPE, PATH_KINDS
from receiver.keys import CLOCK, HEALTH_CHECKS, METRICS, SETTINGS
from receiver.storage.intake import INTAKE
from receiver.web.budget import BODY_BUDGET
from receiver.web.direct import DIRECT_ROUTES, DirectHandler
from receiver.web.inflight import IN_FLIGHT
from receiver.web.middleware import error_response
from receiver.web.openapi import Operation, Response, document

# CSS only looks at the status; the body is what Tencent suggests replying.
_OK = b'{"code":0}'
# The stored event's id (`GET /api/events/{id}`), for operators tracing one callback; CSS
# ignores it.
EVENT_ID_HEADER: Final = "X-Event-Id"
_KINDS: Final = ", ".join(f"{number} {kind}" for number, kind in KIND_BY_EVENT_TYPE.items())
# The route templates, as the request-duration metric labels them for every other route.
ANY_KIND_ROUTE: Final = "/callbacks"
ONE_KIND_ROUTE: Final = "/callbacks/{kind}"


class CallbackEndpoint:
    """Receives one callback: store the event, then answer 200 `{"code":0}`; a refusal is
    answered, counted and logged."""

    def __init__(self, app: web.Application, ingestor: Ingestor) -> None:
        settings = app[SETTINGS]
        self.ingestor = ingestor
        self._metrics = app[METRICS]
        self._in_flight = app[IN_FLIGHT]  # shutdown waits for every callback begun
        self._budget = app[BODY_BUDGET]
        self._limit = settings.max_body_bytes
        self._read_timeout = settings.body_read_timeout_seconds
        self._wants_token = ingestor.wants_token
        self._timers = {
            route: self._metrics.request_seconds.labels(route)
            for route in (ANY_KIND_ROUTE, ONE_KIND_ROUTE)
        }

    def handler(self, path_kind: str | None) -> DirectHandler:
        """The direct handler of `/callbacks` (None) or `/callbacks/<path_kind>`."""
        route = ANY_KIND_ROUTE if path_kind is None else ONE_KIND_ROUTE
        return partial(self.receive, path_kind=path_kind, timer=self._timers[route])

    async def routed(self, request: web.Request) -> web.StreamResponse:
        """The same, reached through the router."""
        path_kind = request.match_info.get("kind")
        timer = self._timers[ANY_KIND_ROUTE if path_kind is None else ONE_KIND_ROUTE]
        return await self.receive(request, path_kind=path_kind, timer=timer)

    async def receive(
        self, request: web.BaseRequest, *, path_kind: str | None, timer: Histogram
    ) -> web.StreamResponse:
        started = time.perf_counter()
        in_flight = self._in_flight
        in_flight.begin()
        try:
            raw = await self._read_body(request)
            token = request.query.get("token") if self._wants_token else None
            event_id = await self.ingestor.ingest(raw, token=token, path_kind=path_kind)
            response: web.StreamResponse = web.Response(
                body=_OK, content_type="application/json", headers={EVENT_ID_HEADER: event_id}
            )
        except Refusal as refusal:
            self.ingestor.count_refusal(refusal, peer=request.remote, path_kind=path_kind)
            response = error_response(request, refusal)
        except Overloaded as overloaded:
            self._metrics.callback("unknown", "overloaded")
            response = error_response(request, overloaded)
        except Exception as exc:
            response = error_response(request, exc)
        finally:
            in_flight.end()
        timer.observe(time.perf_counter() - started)
        return response

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        limit = self._limit
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(limit)
        if request.content.is_eof():
            # The whole body arrived with the headers (the usual case): no wait, no timer needed.
            return await request.read()
        # Still arriving: hold its size (the limit, if chunked) of the body budget meanwhile.
        reserved = length if length is not None else limit
        try:
            with self._budget.reserve(reserved):
                async with asyncio.timeout(self._read_timeout):
                    return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(limit) from None
        except TimeoutError:
            raise BodyTimeout(self._read_timeout) from None


ENDPOINT = web.AppKey("callback_endpoint", CallbackEndpoint)


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    """The ingest pipeline over the storage intake (so it starts after the storage context),
    and its endpoint on the direct routes."""
    ingestor = Ingestor(app[SETTINGS], app[INTAKE], app[METRICS], app[CLOCK])
    app[HEALTH_CHECKS]["clock"] = ingestor.clock_watch.check
    endpoint = app[ENDPOINT] = CallbackEndpoint(app, ingestor)
    routes = app[DIRECT_ROUTES]
    routes.add_post("/callbacks", endpoint.handler(None))
    for kind in PATH_KINDS:
        routes.add_post(f"/callbacks/{kind}", endpoint.handler(kind))
    yield


async def receive_callback(request: web.Request) -> web.StreamResponse:
    """The routed entry (see the module doc)."""
    try:
        endpoint = request.app[ENDPOINT]
    except KeyError:
        raise RuntimeError(
            "the callback endpoint is not set up: create the app with receiver.app.create_app()"
        ) from None
    return await endpoint.routed(request)


class CallbackBody(BaseModel):
    """What the service accepts: any JSON object with a non-negative integer `event_type`.

    CSS's fields per kind are in the `components.schemas` named after each kind (StreamBegin,
    RecordFile, ...); a body that does not fit its kind's model is still stored, never refused.
    """

    model_config = ConfigDict(extra="allow")

    event_type: int = Field(ge=0, description="Decides the kind: " + _KINDS)
    t: int | None = Field(default=None, description="Signature expiry, unix seconds.")
    sign: str | None = Field(default=None, description="md5(CallbackKey + str(t)), hex.")


class CallbackAck(BaseModel):
    """What CSS is answered for a stored event and for every duplicate of one."""

    code: Literal[0]


class CallbackRefusal(BaseModel):
    code: int = Field(description="The HTTP status again (CSS only looks at the status).")
    error: str = Field(description="Machine-readable reason, e.g. `signature_mismatch`.")
    message: str


class CallbackQuery(BaseModel):
    token: str | None = Field(
        default=None, description="RECEIVER_URL_TOKEN, when one is configured."
    )


class CallbackPath(BaseModel):
    kind: Annotated[str, WithJsonSchema({"type": "string", "enum": list(PATH_KINDS)})] = Field(
        description="Template slot this URL is configured in; metadata only."
    )


def _operation(summary: str, path: type[BaseModel] | None) -> Operation:
    refusal = "Refused; `error` says why."
    unknown_path = {404: Response("No such template slot in the path.", CallbackRefusal)}
    return Operation(
        summary=summary,
        description="Verifies `sign == md5(CallbackKey + t)`, stores the body verbatim (the "
        'body\'s `event_type` decides its kind), then answers 200 `{"code":0}`. Duplicates '
        "are answered 200 and stored once. Content-Type is ignored.",
        tag="callbacks",
        path=path,
        query=CallbackQuery,
        body=CallbackBody,
        body_description="A CSS event callback, as the template's URL receives it.",
        models=(*MODEL_BY_EVENT_TYPE.values(), CssEvent),
        responses={
            200: Response("Stored, or a duplicate of a stored event.", CallbackAck),
            400: Response(
                f"{refusal} The body is not a JSON object with an event_type.", CallbackRefusal
            ),
            401: Response(f"{refusal} Signature or URL token missing or wrong.", CallbackRefusal),
            408: Response(f"{refusal} The body arrived too slowly.", CallbackRefusal),
            413: Response(f"{refusal} The body is too large.", CallbackRefusal),
            503: Response("Not stored (CSS retries).", CallbackRefusal),
            **(unknown_path if path is not None else {}),
        },
    )


_ANY_KIND: Final = _operation("Receive a CSS callback of any kind", None)
_ONE_KIND: Final = _operation("Receive a CSS callback (per-kind template URL)", CallbackPath)


def setup_routes(app: web.Application) -> None:
    kinds = "|".join(PATH_KINDS)
    app.router.add_post("/callbacks", receive_callback, name="callbacks")
    app.router.add_post(f"/callbacks/{{kind:{kinds}}}", receive_callback, name="callbacks_kind")
    document(app, "POST", "/callbacks", _ANY_KIND)
    document(app, "POST", "/callbacks/{kind}", _ONE_KIND)

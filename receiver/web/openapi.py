"""The OpenAPI 3.1 document, generated from the routes and the pydantic models they use.

Each view module describes its routes with `document()` while it registers them: which model
validates the query, which models the responses serialise. `build_document()` walks the app's
router, so a route that was registered but not described is left out visibly (a test checks
that none is) and nothing is written by hand. OpenAPI 3.1 schemas are JSON Schema 2020-12, which
is what pydantic emits, so model schemas go into `components.schemas` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from receiver import __version__
from receiver.web.responses import ApiErrorBody

BEARER: Final = "apiToken"
_REF: Final = "#/components/schemas/{model}"
_JSON: Final = "application/json"


@dataclass(frozen=True, slots=True)
class Response:
    """One documented status: a model serialised as JSON, or a raw schema and media type."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = _JSON
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description


@dataclass(frozen=True, slots=True)
class Operation:
    """How one route is called and what it answers."""

    summary: str
    responses: Mapping[int, Response]
    description: str = ""
    tag: str = "api"
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_description: str = ""
    # Further models to publish in `components.schemas` (e.g. each CSS event kind's body).
    models: tuple[type[BaseModel], ...] = ()
    secured: bool = False


Method = Literal["GET", "POST"]
Operations = dict[tuple[str, str], Operation]
OPERATIONS = web.AppKey[Operations]("openapi_operations")
# The serialised document, built once at start-up when every route is registered.
DOCUMENT = web.AppKey("openapi_document", bytes)


def setup(app: web.Application) -> None:
    """Start the registry and serve the document itself (behind the API token, like all /api)."""
    app[OPERATIONS] = {}
    app.on_startup.append(_build)
    app.router.add_get("/api/openapi.json", openapi_json, name="api_openapi")
    document(
        app,
        "GET",
        "/api/openapi.json",
        Operation(
            summary="This OpenAPI document",
            tag="meta",
            secured=True,
            responses={
                200: Response("OpenAPI 3.1 document", schema={"type": "object"}),
                401: Response(
                    "No `Authorization: Bearer <API token>`, or the wrong token.", ApiErrorBody
                ),
            },
        ),
    )


def document(app: web.Application, method: Method, path: str, operation: Operation) -> None:
    """Describe the route `method path` (path in OpenAPI form, e.g. `/api/events/{id}`)."""
    app[OPERATIONS][(method, path)] = operation


async def _build(app: web.Application) -> None:
    app[DOCUMENT] = orjson.dumps(build_document(app))


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


def route_paths(app: web.Application) -> list[tuple[str, str]]:
    """(method, OpenAPI path) of every registered route except the implicit HEADs."""
    found: list[tuple[str, str]] = []
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path") or resource.canonical
        found.extend((route.method, path) for route in resource if route.method != "HEAD")
    return found


def build_document(app: web.Application) -> dict[str, Any]:
    """The whole document for the routes of `app` that have been described."""
    operations = app[OPERATIONS]
    described = [(key, operations[key]) for key in route_paths(app) if key in operations]
    models: dict[type[BaseModel], Literal["validation", "serialization"]] = {}
    for _, operation in described:
        for response in operation.responses.values():
            if response.model is not None:
                models[response.model] = "serialization"
        for model in (operation.body, *operation.models):
            if model is not None:
                models.setdefault(model, "validation")
    keyed, top = models_json_schema(list(models.items()), ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})

    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in described:
        paths.setdefault(path, {})[method.lower()] = _operation(operation, keyed)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "receiver",
            "version": __version__,
            "description": "Receives Tencent Cloud CSS callbacks, stores them, and answers "
            "history queries. `/api/...` routes need `Authorization: Bearer <API token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "RECEIVER_API_TOKEN (generated into the data directory on "
                    "first start when unset).",
                }
            },
        },
    }


def _operation(operation: Operation, keyed: Mapping[Any, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": operation.summary, "tags": [operation.tag]}
    if operation.description:
        spec["description"] = operation.description
    parameters = [*_parameters(operation.path, "path"), *_parameters(operation.query, "query")]
    if parameters:
        spec["parameters"] = parameters
    if operation.body is not None:
        spec["requestBody"] = {
            "required": True,
            "description": operation.body_description,
            "content": {_JSON: {"schema": keyed[(operation.body, "validation")]}},
        }
    spec["responses"] = {
        str(status): _response(response, keyed)
        for status, response in sorted(operation.responses.items())
    }
    if operation.secured:
        spec["security"] = [{BEARER: []}]
    return spec


def _response(response: Response, keyed: Mapping[Any, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": response.description}
    if response.model is not None:
        answer["content"] = {
            response.media_type: {"schema": keyed[(response.model, "serialization")]}
        }
    elif response.schema is not None:
        answer["content"] = {response.media_type: {"schema": dict(response.schema)}}
    if response.headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in response.headers.items()
        }
    return answer


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    """One OpenAPI parameter per model field, with the field's own JSON schema."""
    if model is None:
        return []
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(dict(prop))
        prop.pop("title", None)
        description = prop.pop("description", None)
        if prop.get("default", ...) is None:
            del prop["default"]
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        if prop.get("type") == "array":
            parameter["style"], parameter["explode"] = "form", True
        parameters.append(parameter)
    return parameters


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as a query parameter is just X: a query string has no null."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return prop

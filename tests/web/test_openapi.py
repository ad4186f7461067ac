"""The OpenAPI document is generated from the routes and models, and covers every route."""

from __future__ import annotations

from typing import Any

from receiver.history.params import EventQuery
from receiver.web.openapi import route_paths
from tests.support.helpers import AUTH


async def document(client: Any) -> dict[str, Any]:
    answer = await client.get("/api/openapi.json", headers=AUTH)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    doc: dict[str, Any] = await answer.json()
    return doc


async def test_every_route_is_documented(client: Any) -> None:
    doc = await document(client)
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert set(route_paths(client.server.app)) == documented
    assert {"/callbacks", "/callbacks/{kind}", "/api/events", "/api/streams"} <= set(doc["paths"])


async def test_api_routes_declare_the_bearer_token_and_callbacks_do_not(client: Any) -> None:
    doc = await document(client)
    assert doc["components"]["securitySchemes"]["apiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["apiToken"]["description"],
    }
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            secured = operation.get("security") == [{"apiToken": []}]
            assert secured == path.startswith("/api/"), path
            if secured:
                assert "401" in operation["responses"]


async def test_parameters_come_from_the_query_model(client: Any) -> None:
    doc = await document(client)
    parameters = {p["name"]: p for p in doc["paths"]["/api/events"]["get"]["parameters"]}
    assert set(parameters) == set(EventQuery.model_fields)
    limit = EventQuery.model_fields["limit"]
    assert parameters["limit"]["schema"]["maximum"] == next(
        m.le for m in limit.metadata if hasattr(m, "le")
    )
    assert parameters["kind"]["schema"]["type"] == "array"
    assert "stream_begin" in parameters["kind"]["schema"]["items"]["enum"]
    assert parameters["since"]["schema"]["pattern"]
    response = doc["paths"]["/api/events"]["get"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventList"
    }
    schemas = doc["components"]["schemas"]
    assert {"Event", "Stream", "Session", "ApiErrorBody", "StreamEnd", "RecordFile"} <= set(schemas)

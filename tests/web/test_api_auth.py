"""The API token: required on every /api route, never interchangeable with callback auth."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.settings import Settings
from testbed.service import ServiceProcess
from tests.support.helpers import API_TOKEN, KEY, count, payload, signed

API_ROUTES = [
    "/api/events",
    "/api/events/some-id",
    "/api/streams",
    "/api/streams/s/sessions",
    "/api/streams/s/quality",
    "/api/actions",
    "/api/audience",
    "/api/pipeline",
    "/api/openapi.json",
    "/api/not-a-route",  # refused before routing: the prefix is protected, not a list of routes
]


@pytest.mark.parametrize("url", API_ROUTES)
@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "authorization_missing"),
        ("", "authorization_missing"),
        (f"Basic {API_TOKEN}", "authorization_malformed"),
        ("Bearer", "authorization_malformed"),
        (f"Bearer {API_TOKEN}x", "token_mismatch"),
        (f"Bearer {API_TOKEN[:-1]}", "token_mismatch"),
        (f"Bearer {KEY}", "token_mismatch"),  # a callback key is not an API token
    ],
)
async def test_every_api_route_needs_the_token(
    client: Any, url: str, authorization: str | None, error: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await client.get(url, headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="receiver"'
    body = await answer.json()
    assert body["error"] == error
    assert set(body) == {"error", "message"}
    assert API_TOKEN not in json.dumps(body)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_scheme_is_case_insensitive(client: Any, scheme: str) -> None:
    answer = await client.get("/api/streams", headers={"Authorization": f"{scheme} {API_TOKEN}"})
    assert answer.status == 200


async def test_unknown_api_route_with_the_token_is_a_json_404(client: Any) -> None:
    answer = await client.get("/api/nope", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert answer.status == 404
    assert await answer.json() == {"error": "not_found", "message": "no route for /api/nope"}


async def test_callbacks_do_not_accept_the_api_token(client: Any, database: Path) -> None:
    body = {k: v for k, v in payload("push_begin_1.json").items() if k not in ("t", "sign")}
    answer = await client.post(
        "/callbacks", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert answer.status == 401
    assert (await answer.json())["error"] == "signature_missing"
    signed_with_token = signed(body, key=API_TOKEN)
    answer = await client.post("/callbacks", json=signed_with_token)
    assert answer.status == 401
    assert count(database) == 0


async def test_operations_routes_stay_open(client: Any) -> None:
    for url in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(url)).status == 200


def test_the_app_refuses_to_start_without_a_token(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="RECEIVER_API_TOKEN"):
        create_app(make_settings(api_token=None))


def test_a_short_token_is_a_configuration_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="api_token"):
        make_settings(api_token="short")


def _get(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_generates_the_token_once_and_keeps_it_secret(tmp_path: Path) -> None:
    database = tmp_path / "data" / "r.db"
    token_file = database.parent / "api_token"
    with ServiceProcess(database) as service:
        code, out, err = service.stop()
    assert code == 0, err
    token = token_file.read_text().strip()
    assert len(token) == 43 and token.isalnum()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token in out and "Authorization: Bearer" in out
    assert token not in err

    with ServiceProcess(database) as service:
        assert _get(f"{service.url}/api/streams", token) == 200
        assert _get(f"{service.url}/api/streams", "x" * 43) == 401
        code, out, err = service.stop()
    assert code == 0
    assert token not in out + err  # printed on the first start only
    assert token_file.read_text().strip() == token


def test_the_token_from_the_environment_wins(tmp_path: Path) -> None:
    database = tmp_path / "r.db"
    chosen = "operator-chosen-token-1234"
    with ServiceProcess(database, {"RECEIVER_API_TOKEN": chosen}) as service:
        assert _get(f"{service.url}/api/events", chosen) == 200
        code, out, err = service.stop()
    assert code == 0
    assert not (tmp_path / "api_token").exists()
    assert chosen not in out + err

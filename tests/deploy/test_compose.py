"""docker-compose.yml and the Dockerfile's health check, without a Docker engine.

`docker compose config` needs one, so the file is read with PyYAML, its `${...}` references are
resolved the way Compose does for the forms it uses, and the pieces that run (the receiver's
entrypoint, the image's health check) are run for real, with a stand-in `receiver` command or
against the real service on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from receiver.outbox.publisher import mask_url
from receiver.settings import Settings
from receiver.tencent.credentials import TencentCredentials
from tests.conftest import ServerFactory

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
RECEIVER = SERVICES["receiver"]
RABBITMQ = SERVICES["rabbitmq"]
# Characters that mean something in a URL, and one outside ASCII.
PASSWORD = "p@ss:w/rd%41?#&=+ é"
_REFERENCE = re.compile(r"\$\$|\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation for the forms the file uses: ${X}, ${X:-default}, ${X:?error}."""

    def resolve(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, form, arg = match[1], match[2], match[3]
        if env.get(name):
            return env[name]
        if form == ":?":
            raise LookupError(f"{name}: {arg}")
        return arg if form == ":-" else ""

    return _REFERENCE.sub(resolve, value)


def environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """The container's environment: values interpolated, valueless entries passed through."""
    resolved = {}
    for name, value in service["environment"].items():
        if value is None:
            if env.get(name):
                resolved[name] = env[name]
        else:
            resolved[name] = interpolate(str(value), env)
    return resolved


async def run_entrypoint(env: dict[str, str], tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run the receiver's entrypoint with a `receiver` that reports its arguments and URL."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    fake = bin_dir / "receiver"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        'print(json.dumps({"args": sys.argv[1:], "url": os.environ["RECEIVER_AMQP_URL"]}))\n'
    )
    fake.chmod(0o755)
    command = [*RECEIVER["entrypoint"], *(args or RECEIVER["command"])]
    process = await asyncio.create_subprocess_exec(
        *command,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **environment(RECEIVER, env)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_any_password_reaches_rabbitmq_as_is_and_the_receiver_url_encoded(
    tmp_path: Path,
) -> None:
    env = {"RABBITMQ_USER": "ops user", "RABBITMQ_PASSWORD": PASSWORD}
    broker = environment(RABBITMQ, env)
    assert (broker["RABBITMQ_DEFAULT_USER"], broker["RABBITMQ_DEFAULT_PASS"]) == (
        "ops user",
        PASSWORD,
    )

    started = await run_entrypoint(env, tmp_path)

    assert started["args"] == ["serve"]
    url = URL(started["url"])
    assert (url.user, url.password) == ("ops user", PASSWORD)  # what RabbitMQ was given
    assert (url.scheme, url.host, url.port, url.path) == ("amqp", "rabbitmq", 5672, "/")
    assert url.host in SERVICES
    settings = Settings(amqp_url=started["url"])  # the receiver accepts it
    assert settings.amqp_url is not None
    assert PASSWORD not in mask_url(settings.amqp_url.get_secret_value())


async def test_the_default_user_and_another_command_and_an_explicit_url(tmp_path: Path) -> None:
    started = await run_entrypoint({"RABBITMQ_PASSWORD": "plain"}, tmp_path, "events")
    assert started == {"args": ["events"], "url": "amqp://receiver:plain@rabbitmq:5672/"}

    elsewhere = "amqps://u:p%40@broker.example.com/vh"
    env = {"RABBITMQ_PASSWORD": "plain", "RECEIVER_AMQP_URL": elsewhere}
    assert (await run_entrypoint(env, tmp_path / "again"))["url"] == elsewhere


def test_the_password_is_required() -> None:
    for service in (RABBITMQ, RECEIVER):
        with pytest.raises(LookupError, match="RABBITMQ_PASSWORD"):
            environment(service, {})


@pytest.mark.parametrize("env", [{}, {"RECEIVER_PORT": "9090"}])
def test_one_port_for_listening_publishing_and_the_health_check(env: dict[str, str]) -> None:
    port = env.get("RECEIVER_PORT", "8080")
    assert Settings.model_fields["port"].default == 8080
    assert Settings.model_config["env_prefix"] == "RECEIVER_"
    assert environment(RECEIVER, {**env, "RABBITMQ_PASSWORD": "x"})["RECEIVER_PORT"] == port
    assert [interpolate(p, env) for p in RECEIVER["ports"]] == [f"{port}:{port}"]
    assert "healthcheck" not in RECEIVER  # the image's, which reads RECEIVER_PORT


def test_tencent_settings_and_credentials_are_passed_through() -> None:
    """Every registration setting and credential, as a valueless entry: set in .env or the
    shell, it reaches the container; unset, it stays unset (an empty value would be invalid)."""
    wanted = {
        f"RECEIVER_{n.upper()}"
        for n in Settings.model_fields
        if n.startswith(("tencent_", "moderation_"))
    }
    wanted |= {"RECEIVER_PUBLIC_URL"}
    wanted |= {f"TENCENTCLOUD_{name.upper()}" for name in TencentCredentials.model_fields}
    passed = {name for name, value in RECEIVER["environment"].items() if value is None}
    assert wanted <= passed
    env = {"TENCENTCLOUD_SECRET_KEY": "k3y", "RECEIVER_TENCENT_DOMAINS": "push.example.com"}
    resolved = environment(RECEIVER, {**env, "RABBITMQ_PASSWORD": "x"})
    assert {name: resolved[name] for name in env} == env
    assert "TENCENTCLOUD_SECRET_ID" not in resolved


def healthcheck() -> list[str]:
    """The Dockerfile's HEALTHCHECK command (exec form), run with this interpreter."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def check_health(port: int) -> int:
    env = {**os.environ, "RECEIVER_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        *healthcheck(), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    await process.communicate()
    assert process.returncode is not None
    return process.returncode


async def test_the_image_health_check_asks_the_configured_port(
    client: TestClient[web.Request, web.Application], aiohttp_server: ServerFactory
) -> None:
    assert client.port is not None and client.port != 8080
    assert await check_health(client.port) == 0  # the real service, ready

    async def not_ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "unavailable"}, status=503)

    app = web.Application()
    app.router.add_get("/readyz", not_ready)
    server = await aiohttp_server(app)
    assert server.port is not None
    assert await check_health(server.port) == 1


# --- The `ha` profile: PostgreSQL, two replicas, a load balancer --------------------------------

HA = {"postgres", "receiver-1", "receiver-2", "lb"}
REPLICAS = [SERVICES["receiver-1"], SERVICES["receiver-2"]]


def test_the_ha_profile_adds_postgres_two_replicas_and_a_load_balancer() -> None:
    assert {name for name, s in SERVICES.items() if s.get("profiles") == ["ha"]} == HA
    assert {name for name, s in SERVICES.items() if "profiles" not in s} == {"rabbitmq", "receiver"}
    # `docker compose --profile ha up lb` starts the load balancer and what it depends on.
    lb = SERVICES["lb"]
    assert set(lb["depends_on"]) == {"receiver-1", "receiver-2"}
    for replica in REPLICAS:
        assert replica["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
    assert "healthcheck" in SERVICES["postgres"]


def test_the_replicas_run_like_the_single_node_but_on_postgresql() -> None:
    env = {"RABBITMQ_PASSWORD": "x", "POSTGRES_PASSWORD": PASSWORD, "TENCENTCLOUD_REGION": "r"}
    single = environment(RECEIVER, env)
    for replica in REPLICAS:
        assert replica["entrypoint"] == RECEIVER["entrypoint"]
        assert replica["command"] == RECEIVER["command"]
        resolved = environment(replica, env)
        # Every setting of the single node reaches the replicas too.
        assert {
            k: v for k, v in single.items() if k not in {"RECEIVER_DATABASE", "RECEIVER_PORT"}
        }.items() <= resolved.items()
        # One database through the libpq variables: any password, no URL encoding.
        assert resolved["RECEIVER_DATABASE"] == "postgresql://"
        assert resolved["PGPASSWORD"] == PASSWORD
        assert (resolved["PGHOST"], resolved["PGPORT"]) == ("postgres", "5432")
        assert resolved["PGUSER"] == environment(SERVICES["postgres"], env)["POSTGRES_USER"]
        assert resolved["PGDATABASE"] == environment(SERVICES["postgres"], env)["POSTGRES_DB"]
        assert Settings(database=resolved["RECEIVER_DATABASE"]).data_dir == Path("data")
    # Generated secrets: one shared volume, so both replicas use one key (secretfiles.py).
    mounts = [replica["volumes"] for replica in REPLICAS]
    assert mounts[0] == mounts[1] and mounts[0][0].split(":")[1] == "/data"
    assert mounts[0][0].split(":")[0] in COMPOSE["volumes"]


def test_the_load_balancer_sends_callbacks_to_ready_replicas_on_the_published_port() -> None:
    lb = SERVICES["lb"]
    assert lb["image"].startswith("haproxy:")
    (mount,) = lb["volumes"]
    source, target, mode = mount.split(":")
    config = (ROOT / source).read_text()
    assert target == "/usr/local/etc/haproxy/haproxy.cfg" and mode == "ro"
    assert "bind :8080" in config
    assert [interpolate(p, {}) for p in lb["ports"]] == ["8080:8080"]
    assert [interpolate(p, {"RECEIVER_PORT": "9000"}) for p in lb["ports"]] == ["9000:8080"]
    # Each replica listens on 8080 and the load balancer knows it by its service name.
    for n, replica in enumerate(REPLICAS, start=1):
        assert environment(replica, {"RABBITMQ_PASSWORD": "x"})["RECEIVER_PORT"] == "8080"
        assert lb["environment"][f"RECEIVER_{n}_ADDR"] == f"receiver-{n}:8080"
        assert f'"${{RECEIVER_{n}_ADDR}}"' in config
    assert "option httpchk GET /readyz" in config and "http-check expect status 200" in config

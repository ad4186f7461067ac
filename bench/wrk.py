"""Drive a server with wrk (Debian's package) and a Lua script that cycles unique signed bodies."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.bodies import PLACEHOLDER

_LUA = """
local templates = {%(templates)s}
local nonce = "%(nonce)s"
local counter = 0
local id = 0
local threads = {}
local headers = {["Content-Type"] = "application/json"}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  id = wrk.thread:get("id")
end

function request()
  counter = counter + 1
  local parts = templates[(counter %% #templates) + 1]
  local body = table.concat(parts, nonce .. "-" .. id .. "-" .. counter)
  return wrk.format("POST", "%(path)s", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRKJSON {"requests":%%d,"non2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"timeout":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    ok: int  # answered 200 (every non-200 counts in non2xx)
    errors: int  # socket errors and timeouts
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


def lua_script(templates: list[str], *, nonce: str, path: str = "/callbacks") -> str:
    """The wrk script: each template split at the placeholder, joined with a unique id."""

    def lua_list(parts: list[str]) -> str:
        return "{" + ",".join(f"[==[{p}]==]" for p in parts) + "}"

    rendered = ",\n".join(lua_list(t.split(PLACEHOLDER)) for t in templates)
    for t in templates:
        if "]==]" in t:
            raise ValueError("a body template contains the Lua long-string terminator")
    return _LUA % {"templates": rendered, "nonce": nonce, "path": path}


def run_wrk(
    url: str, script: str, *, seconds: float, connections: int, threads: int = 2
) -> WrkResult:
    """Run wrk once against `url` and parse the figures its Lua `done()` prints."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = Path(handle.name)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                "20s",
                "-s",
                str(script_path),
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        script_path.unlink()
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return WrkResult(
        requests=data["requests"],
        ok=data["requests"] - data["non2xx"],
        errors=errors,
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )

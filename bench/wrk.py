"""Drive a server with wrk (Debian's package) and a Lua script that cycles unique signed bodies.

With a `rate`, the script paces requests through wrk's `delay()` hook: each wrk thread hands out
send times `threads / rate` seconds apart from a monotonic clock (LuaJIT FFI), so the offered
load is a steady rate, not "as fast as the server answers". wrk measures latency from when a
request is written, so pacing never counts as latency.

With a `quiet` tail, the same hook stops handing out requests that long before wrk stops: every
request sent is answered before wrk closes its connections, so the 200s wrk counts are exactly
the requests the server acknowledged (without it, requests in flight when wrk stops are stored
but their answers never read). Paced runs always end quiet (they call `delay()` anyway); a burst
run only when asked, because `delay()` costs wrk a timer and two epoll calls per request, which
would slow the load generator on the cores it shares with the servers.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.bodies import PLACEHOLDER, STREAM_PLACEHOLDER, templates

PACED_QUIET = 1.0  # seconds: the quiet tail of every paced run

_LUA = """
local templates = {%(templates)s}
local nonce = "%(nonce)s"
local streams = %(streams)d
local rng = 12345  -- Park-Miller: exact in LuaJIT doubles; a stream at random per request
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
  if streams > 0 then
    rng = (rng * 16807) %% 2147483647
    body = (body:gsub("%(stream_placeholder)s", "bench-" .. (rng %% streams)))
  end
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

_DELAY = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]
local clock = ffi.new("bench_timespec")
local interval_ms = %(interval_ms)f  -- 0: as fast as answered
local send_ms = %(send_ms)f  -- then quiet until wrk stops
local next_ms = nil
local stop_ms = nil

local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000.0 + tonumber(clock.tv_nsec) / 1e6
end

function delay()
  local now = now_ms()
  if stop_ms == nil then stop_ms = now + send_ms end
  if now >= stop_ms then return 86400000 end  -- the quiet tail: no new request
  if interval_ms == 0 then return 0 end
  -- After a stall, resume the schedule from now: never a burst to catch up more than 1 s.
  if next_ms == nil or next_ms < now - 1000 then next_ms = now end
  local wait = next_ms - now
  next_ms = next_ms + interval_ms
  if wait < 0 then return 0 end
  return wait
end
"""


@dataclass(frozen=True, slots=True)
class Load:
    """How hard wrk drives the server."""

    seconds: float
    connections: int
    threads: int
    rate: float | None = None  # requests/s in total; None: as fast as answered
    streams: int = 0  # spread events over this many streams; 0: one per kind (the examples')
    quiet: float = 0.0  # the last seconds of the run send nothing (see the module docstring)

    def __post_init__(self) -> None:
        if self.quiet and self.quiet >= self.duration:
            raise ValueError(f"a quiet tail of {self.quiet:g} s leaves no {self.duration} s run")

    @property
    def duration(self) -> int:
        """wrk's `-d`: whole seconds."""
        return max(1, round(self.seconds))

    @property
    def sending(self) -> float:
        """Seconds from the start during which requests are sent."""
        return self.duration - self.quiet


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    ok: int  # answered 200
    non2xx: int
    errors: int  # socket errors and timeouts
    seconds: float  # while sending: wrk's run less the quiet tail
    p50_ms: float
    p99_ms: float
    cpu_seconds: float  # wrk's own CPU: it shares the cores with the servers

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


def lua_script(
    templates: list[str],
    *,
    nonce: str,
    path: str = "/callbacks",
    rate: float | None = None,
    threads: int = 1,
    streams: int = 0,
    send_for: float | None = None,
) -> str:
    """The wrk script: each template split at the placeholder, joined with a unique id.

    With `streams`, the stream placeholder of each body becomes one of that many stream names,
    drawn at random per request (templates made with `spread_streams`). With `send_for`, no
    request is sent after that many seconds (the quiet tail)."""

    def lua_list(parts: list[str]) -> str:
        return "{" + ",".join(f"[==[{p}]==]" for p in parts) + "}"

    for t in templates:
        if "]==]" in t:
            raise ValueError("a body template contains the Lua long-string terminator")
    rendered = ",\n".join(lua_list(t.split(PLACEHOLDER)) for t in templates)
    script = _LUA % {
        "templates": rendered,
        "nonce": nonce,
        "path": path,
        "streams": streams,
        "stream_placeholder": STREAM_PLACEHOLDER,
    }
    if rate is not None or send_for is not None:
        script += _DELAY % {
            "interval_ms": 0.0 if rate is None else 1000.0 * threads / rate,
            "send_ms": 1e12 if send_for is None else 1000.0 * send_for,
        }
    return script


async def drive(url: str, key: str, load: Load) -> WrkResult:
    """One wrk run of `load` against `url`'s `/callbacks`, with freshly signed bodies."""
    script = lua_script(
        templates(key, spread_streams=load.streams > 0),
        nonce=uuid.uuid4().hex[:8],
        rate=load.rate,
        threads=load.threads,
        streams=load.streams,
        send_for=load.sending if load.quiet else None,
    )
    return await run_wrk(
        f"{url}/callbacks",
        script,
        seconds=load.duration,
        connections=load.connections,
        threads=load.threads,
        quiet=load.quiet,
    )


async def run_wrk(
    url: str, script: str, *, seconds: float, connections: int, threads: int, quiet: float = 0.0
) -> WrkResult:
    """Run wrk once against `url` and parse the figures its Lua `done()` prints."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        script_path = Path(scratch) / "load.lua"
        script_path.write_text(script)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            wrk,
            *("-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"),
            *("--timeout", "20s", "-s", str(script_path), url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()[-2000:]}")
    line = next(ln for ln in out.decode().splitlines() if ln.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(
        requests=data["requests"],
        ok=data["requests"] - data["non2xx"],
        non2xx=data["non2xx"],
        errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        seconds=data["duration_us"] / 1e6 - quiet,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        # Only wrk is reaped while it runs, so the children's usage grew by wrk's alone.
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )

"""Scenario 6 over HTTP: hostile input against the real service process on loopback.

Three waves: property-based bodies (random bytes, random JSON, mutated real bodies with a
genuine signature, forged signatures, expired `t`/`sign` pairs replayed with other bodies, odd
Content-Types); oversized and deeply nested bodies, declared and chunked; slow clients that
trickle a body. Every answer must be a specific refusal or a 200 for a genuinely signed body,
never a 500. Afterwards the same processes must be up (no crash, no writer restart) with bounded
memory, every stored row must carry a genuine signature, and every 200 must have its row.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.callbacks.body import MAX_DEPTH, parse_body, read_event_type
from receiver.storage.dedupe import dedupe_key
from testbed.service import ServiceProcess
from tests.reliability.scenarios.report import Findings
from tests.reliability.scenarios.strategies import (
    TEMPLATES,
    encode,
    json_values,
    mutated_bodies,
    sign,
    templates,
    texts,
)

KEY: Final = "hostileKey0123456789"
GRACE: Final = 300
BODY_TIMEOUT: Final = 1.0
MAX_BODY: Final = 256 * 1024  # large bodies: the budget caps how many arrive at once
PENDING_BODIES: Final = 16  # RECEIVER_MAX_PENDING_BODY_BYTES, in bodies of MAX_BODY
RSS_LIMIT_MIB: Final = 300  # several times what the service holds at rest
TYPES: Final = ["application/json", "text/plain", "", "multipart/form-data; boundary=x", "x/y"]
PATHS: Final = ["/callbacks", "/callbacks/stream-begin", "/callbacks/snapshot", "/callbacks/porn"]


@dataclass(frozen=True, slots=True)
class HostilePlan:
    examples: int = 300  # property-based requests
    oversized: int = 32  # of each: declared Content-Length, chunked
    slow: int = 20  # clients trickling a body at once
    flood: int = 100  # clients holding a body of the maximum size, all at once


class Target:
    """The service under attack, and what must not change while it is attacked."""

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service
        self.pid = service.pid
        self.writer = service.writer_pid()
        self.outcomes: Counter[str] = Counter()
        self.acked: list[bytes] = []
        self.rss_mib = 0.0

    def post(self, raw: bytes, path: str = "/callbacks", ctype: str = "") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=20)
        try:
            conn.request("POST", path, body=raw, headers={"Content-Type": ctype})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return self._record(response.status, data, raw)

    def post_chunked(self, raw: bytes) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=20)
        try:
            chunks = (raw[i : i + 8192] for i in range(0, len(raw), 8192))
            conn.request("POST", "/callbacks", body=chunks, encode_chunked=True)
            response = conn.getresponse()
            return self._record(response.status, response.read(), raw)
        except (BrokenPipeError, ConnectionResetError):
            self.outcomes["cut while sending"] += 1  # answered and closed before the end
            return 0
        finally:
            conn.close()

    def _record(self, status: int, data: bytes, raw: bytes) -> int:
        self.outcomes[str(status)] += 1
        answer = json.loads(data)
        if status == 200:
            self.acked.append(raw)
        elif not (answer.get("code") and answer.get("error") and answer.get("message")):
            self.outcomes["refusal without an error body"] += 1
        return status

    def sample_memory(self) -> None:
        self.rss_mib = max(self.rss_mib, *(_rss_mib(pid) for pid in (self.pid, self.writer)))


def hostile_input(workdir: Path, plan: HostilePlan) -> Findings:
    """Run the three waves against a fresh service; blocking (run it in a thread)."""
    started = time.monotonic()
    findings = Findings("6 hostile input (HTTP)")
    database = workdir / "hostile" / "receiver.db"
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "RECEIVER_MAX_BODY_BYTES": str(MAX_BODY),
        "RECEIVER_MAX_PENDING_BODY_BYTES": str(PENDING_BODIES * MAX_BODY),
    }
    with ServiceProcess(database, env) as service:
        target = Target(service)
        unexpected = _property_wave(target, plan.examples)
        findings.check(
            "every answer was one the input allows",
            not unexpected,
            f"{len(unexpected)} unexpected, first: {unexpected[:3]}",
        )
        target.sample_memory()
        _protocol_wave(target, findings)
        _oversized_wave(target, plan.oversized, findings)
        target.sample_memory()
        _slow_wave(target, plan.slow, findings)
        target.sample_memory()
        _flood_wave(target, plan.flood, findings)
        target.sample_memory()
        findings.check(
            "no crash: the same service and writer processes are up",
            service.proc is not None
            and service.proc.poll() is None
            and service.writer_pid() == target.writer,
            f"pid {target.pid}",
        )
    findings.check(
        f"memory bounded (< {RSS_LIMIT_MIB} MiB per process)",
        target.rss_mib < RSS_LIMIT_MIB,
        f"peak RSS {target.rss_mib:.0f} MiB",
    )
    forged = _forged_rows(database)
    findings.check("zero forged events stored", not forged, f"{len(forged)} forged rows")
    findings.check("no 500", target.outcomes["500"] == 0, f"{target.outcomes['500']} x 500")
    findings.check(
        "every refusal has a JSON error body",
        target.outcomes["refusal without an error body"] == 0,
        "",
    )
    findings.sent = findings.attempts = sum(target.outcomes.values())
    findings.acknowledged = len(target.acked)
    missing = _missing(database, target.acked)
    findings.stored = findings.acknowledged - missing
    findings.lost = missing
    findings.outcomes = target.outcomes
    findings.notes.append(
        f"{plan.examples} property-based bodies, {plan.oversized} oversized bodies of each "
        f"kind (declared/chunked), {plan.slow} slow clients, {plan.flood} clients holding "
        "maximum-size bodies; acked = genuinely signed bodies"
    )
    findings.seconds = time.monotonic() - started
    return findings


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[bytes, set[int]]:
    """A body and the statuses the service may answer it with."""
    now = int(time.time())
    case = draw(st.sampled_from(["bytes", "json", "mutated", "forged", "replayed"]))
    if case == "bytes":
        return draw(st.binary(max_size=2048)), {400, 401}
    if case == "json":
        return encode(draw(json_values)), {400, 401}
    body = draw(mutated_bodies())
    unsigned = int(body["event_type"]) in (314, 328)  # need a URL token, none configured
    if case == "mutated":  # CSS signs t only: any body with a genuine t/sign is stored
        return encode(sign(body, KEY, now + 600)), {401} if unsigned else {200}
    if case == "forged":
        key = draw(texts.filter(lambda k: k != KEY))
        return encode(sign(body, key, now + draw(st.integers(-GRACE, 600)))), {401}
    stolen = sign(draw(templates), KEY, now - GRACE - draw(st.integers(1, 10**6)))
    return encode({**body, "t": stolen["t"], "sign": stolen["sign"]}), {401}


def _property_wave(target: Target, examples: int) -> list[tuple[int, set[int], bytes]]:
    unexpected: list[tuple[int, set[int], bytes]] = []

    @settings(max_examples=examples, deadline=None, database=None)
    @given(request=hostile_requests(), path=st.sampled_from(PATHS), ctype=st.sampled_from(TYPES))
    def attack(request: tuple[bytes, set[int]], path: str, ctype: str) -> None:
        raw, allowed = request
        status = target.post(raw, path, ctype)
        if status not in allowed:
            unexpected.append((status, allowed, raw[:200]))

    attack()
    return unexpected


# Broken HTTP itself: the parser refuses it before any handler runs.
BROKEN_HTTP: Final = {
    "bad request line": b"BLAH\r\n\r\n",
    "header overflow": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n",
    "bad chunk size": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"\r\nzz\r\n",
    "negative length": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    "length and chunked": b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "NUL bytes": b"\x00" * 100 + b"\r\n\r\n",
    "500 headers": b"POST /callbacks HTTP/1.1\r\n" + b"X-H: 1\r\n" * 500 + b"\r\n",
}


def _protocol_wave(target: Target, findings: Findings) -> None:
    answers = {}
    for name, raw in BROKEN_HTTP.items():
        with socket.create_connection(("127.0.0.1", target.service.port), timeout=20) as sock:
            sock.sendall(raw)
            answer = _read_answer(sock)
            answers[name] = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            target.outcomes[_status(answer)] += 1
    bad = {name: a for name, a in answers.items() if " 400 " not in a}
    findings.check("broken HTTP gets 400, never 5xx", not bad, f"{bad or 'all 400'}")


def _oversized_wave(target: Target, n: int, findings: Findings) -> None:
    genuine = sign(_template(1), KEY, int(time.time()) + 600)
    big = encode({**genuine, "x": "a" * (4 * MAX_BODY)})
    with ThreadPoolExecutor(16) as pool:
        declared = list(pool.map(lambda _: target.post(big), range(n)))
    # A chunked body holds RECEIVER_MAX_BODY_BYTES of the body budget until it is read, and large
    # bodies may fill only part of the budget: more at once would be answered 503 (overloaded,
    # retry), which is the flood wave's subject, not this one's.
    with ThreadPoolExecutor(PENDING_BODIES // 2) as pool:
        chunked = list(pool.map(lambda _: target.post_chunked(big), range(n)))
    findings.check(
        "oversized bodies get 413",
        set(declared) == {413} and set(chunked) <= {413, 0},
        f"declared: {Counter(declared)}, chunked: {Counter(chunked)}",
    )
    too_deep = encode(genuine)[:-1] + b', "d": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    deep_ok = (
        encode(genuine)[:-1] + b', "d": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    )
    statuses = (target.post(too_deep), target.post(deep_ok))
    findings.check(
        f"nesting beyond {MAX_DEPTH} levels gets 400, within it 200",
        statuses == (400, 200),
        f"{statuses}",
    )


def _slow_wave(target: Target, n: int, findings: Findings) -> None:
    trickled = [_start_trickle(target) for _ in range(n)]
    started = time.monotonic()
    served = []
    for i in range(20):  # meanwhile, genuine callbacks from others are answered as usual
        body = sign({**_template(200), "pic_url": f"/slow/{i}.jpg"}, KEY, int(time.time()) + 600)
        served.append(target.post(encode(body), "/callbacks/snapshot"))
    answers = [_read_answer(sock) for sock in trickled]
    elapsed = time.monotonic() - started
    for answer in answers:
        target.outcomes[_status(answer)] += 1
    findings.check(
        "slow clients get a complete 408 body_timeout",
        all(a.startswith(b"HTTP/1.1 408 ") and b"body_timeout" in a for a in answers),
        f"{Counter(a[:12] for a in answers)}",
    )
    findings.check("others are served meanwhile", served == [200] * 20, f"{Counter(served)}")
    findings.check(
        "slow clients are bounded by the body read timeout",
        elapsed < 10 * BODY_TIMEOUT + 10,
        f"all answered within {elapsed:.1f} s",
    )


def _flood_wave(target: Target, n: int, findings: Findings) -> None:
    """Many clients hold a maximum-size body, less its last byte: memory must stay capped."""
    head = b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MAX_BODY
    held = []
    started = time.monotonic()
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", target.service.port), timeout=30)
        sock.sendall(head + b"{" * (MAX_BODY - 1))
        held.append(sock)
    # A held body leaves the budget at its 408, BODY_TIMEOUT after it entered: at most this many
    # can have been admitted while the flood was sent (one period more for the last handlers).
    admissible = PENDING_BODIES * (int((time.monotonic() - started) / BODY_TIMEOUT) + 2)
    target.sample_memory()
    served = []
    for i in range(10):  # genuine callbacks, whole in one packet, are still taken meanwhile
        body = sign({**_template(200), "pic_url": f"/flood/{i}.jpg"}, KEY, int(time.time()) + 600)
        served.append(target.post(encode(body), "/callbacks/snapshot"))
    answers = Counter(_status(_read_answer(sock)) for sock in held)
    target.outcomes.update(answers)
    findings.check(
        f"a flood of {n} held bodies: beyond {PENDING_BODIES} at once, 503 at once",
        answers["408"] <= admissible and answers["503"] == n - answers["408"],
        f"{dict(answers)}; at most {admissible} admissible while the flood was sent",
    )
    findings.check("genuine callbacks are served during the flood", served == [200] * 10,
                   f"{Counter(served)}")  # fmt: skip


def _status(answer: bytes) -> str:
    parts = answer.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "no answer"


def _start_trickle(target: Target) -> socket.socket:
    """A client that announces 1000 bytes, sends 10, and stalls."""
    sock = socket.create_connection(("127.0.0.1", target.service.port), timeout=30)
    head = b"POST /callbacks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    sock.sendall(head + b'{"event_ty')
    return sock


def _read_answer(sock: socket.socket) -> bytes:
    """One complete HTTP response (headers and Content-Length bytes), or what came before EOF."""
    data = b""
    with sock:
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                if len(rest) >= length:
                    return data
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


def _template(event_type: int) -> dict[str, Any]:
    return next(t for t in TEMPLATES if t["event_type"] == event_type)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _forged_rows(database: Path) -> list[str]:
    """Stored rows whose signature is not genuine for KEY and their arrival time."""
    forged = []
    for received_at, payload in _rows(database, "SELECT received_at, payload FROM events"):
        body = orjson.loads(payload)
        try:
            t = int(str(body["t"]))
        except (KeyError, ValueError):
            forged.append(payload[:200])
            continue
        genuine = hashlib.md5(f"{KEY}{t}".encode()).hexdigest()
        if str(body["sign"]).strip().lower() != genuine or not (
            t - 660 <= received_at <= t + GRACE
        ):
            forged.append(payload[:200])
    return forged


def _missing(database: Path, acked: list[bytes]) -> int:
    """Acknowledged bodies without a row under their deduplication key."""
    keys = {
        (row[0], row[1]) for row in _rows(database, "SELECT event_type, dedupe_key FROM events")
    }
    missing = 0
    for raw in acked:
        body = parse_body(raw)
        event_type = read_event_type(body)
        missing += (event_type, dedupe_key(event_type, body)) not in keys
    return missing


def _rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()

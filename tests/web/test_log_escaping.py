"""Log lines cannot be forged: request-derived text is escaped; JSON logs are one object a line."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from receiver.logs import EscapeFilter, formatter, printable
from testbed.service import ServiceProcess
from tests.support.helpers import API_TOKEN, KEY, eventually_sync, http_status, payload, signed

FORGED = "/api/x%0A2024-05-01%2012:00:00,000%20CRITICAL%20receiver:%20INJECTED%00%1B[2J%E2%80%AE"


def test_printable_escapes_what_breaks_lines_terminals_and_reading_order() -> None:
    text = "a\nb\rc\x00d\x1b[2J\x7f\x85\x9b\u202eevil\u2066\u2028中文 é \\x0a"
    shown = printable(text)
    assert shown == (
        "a\\x0ab\\x0dc\\x00d\\x1b[2J\\x7f\\x85\\x9b\\u202eevil\\u2066\\u2028中文 é \\x0a"
    )
    assert printable(shown) == shown  # escaping twice changes nothing
    assert all(ch.isprintable() for ch in shown)


async def test_a_forged_log_line_is_one_escaped_record(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answer = await client.get(FORGED)
    assert answer.status == 401
    (record,) = [r for r in caplog.records if "refused API request" in r.getMessage()]
    message = record.getMessage()
    assert "\\x0a2024-05-01 12:00:00,000 CRITICAL receiver: INJECTED\\x00\\x1b[2J\\u202e" in message
    assert not any(ch in message for ch in "\n\r\x00\x1b\u202e")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_handler_net_escapes_what_a_library_logs_raw() -> None:
    """A message nobody wrapped (aiohttp's, a library's) is escaped by the handler all the same."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    handler.addFilter(EscapeFilter())
    logger = logging.getLogger("tests.forged")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("from %s\nCRITICAL forged\x00", "peer\u202e")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "from peer\\u202e\\x0aCRITICAL forged\\x00"
    assert record["level"] == "WARNING" and record["logger"] == "tests.forged"
    assert "timestamp" in record


def test_with_json_logs_every_line_serve_writes_is_json(tmp_path: Path) -> None:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_LOG_FORMAT": "json",
        "RECEIVER_LOG_LEVEL": "DEBUG",
    }
    with ServiceProcess(tmp_path / "r.db", env) as service:
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
            sock.sendall(f"GET {FORGED} HTTP/1.1\r\nHost: r\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 401")
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
            sock.sendall(b"POST /callbacks HTTP/1.1\r\nHost: r\r\nno colon\r\n\r\n")
            assert b" 400 " in sock.recv(100)  # aiohttp's parser refuses it
        callbacks = f"{service.url}/callbacks"
        stored = json.dumps(signed(payload("push_begin_1.json"))).encode()
        assert http_status(callbacks, data=stored) == 200
        assert http_status(callbacks, data=b'{"event_type": 1, "t": 1, "sign": "x"}') == 401
        writer = service.writer_pid()
        os.kill(writer, signal.SIGKILL)  # its restart is logged
        body = json.dumps(signed(payload("stream_end_0.json"))).encode()
        eventually_sync(
            lambda: http_status(callbacks, data=body) == 200, what="the writer's restart"
        )
        code, out, err = service.stop()
    assert code == 0, err
    records = [json.loads(line) for line in (out + err).splitlines()]  # each line is JSON
    assert len(records) > 5
    assert all({"timestamp", "level", "logger", "message"} <= set(r) for r in records)
    loggers = {r["logger"] for r in records}
    assert {"receiver", "receiver.web.auth", "aiohttp.server", "receiver.storage.writer"} <= loggers
    (forged,) = [r for r in records if "refused API request" in r["message"]]
    assert "\\x0a2024-05-01 12:00:00,000 CRITICAL receiver: INJECTED\\x00" in forged["message"]


def test_the_writer_process_logs_in_the_format_it_is_given(tmp_path: Path) -> None:
    """The writer shares the service's stderr: it has to write the same format."""
    result = subprocess.run(
        [
            sys.executable, "-m", "receiver.storage.writer_process",
            "--database", str(tmp_path / "missing" / "r.db"),
            "--in-fd", "0", "--out-fd", "1", "--log-format", "json",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    (record,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert record["level"] == "ERROR" and "cannot open" in record["message"]


def test_in_json_a_crash_and_a_warning_are_records_too() -> None:
    program = (
        "import warnings\n"
        "from receiver import logs\n"
        "logs.configure('INFO', 'json')\n"
        "warnings.warn('careful\\nnow')\n"
        "raise RuntimeError('boom\\nsecond line')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    warning, crash = [json.loads(line) for line in result.stderr.splitlines()]
    assert warning["logger"] == "py.warnings" and "careful\\x0anow" in warning["message"]
    assert crash["level"] == "CRITICAL" and "RuntimeError: boom" in crash["exc_info"]

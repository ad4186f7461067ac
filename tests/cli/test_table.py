"""`receiver events` and `receiver streams` never hand a stored name's control characters to the
operator's terminal: tables show them escaped, JSON lines as JSON escapes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from receiver.cli import main
from receiver.logs import UNSAFE_CHARACTERS
from tests.support.css import push_begin
from tests.support.helpers import post

T0 = 1_703_731_000
# Clears the screen, returns the carriage, breaks the line, reverses what follows, a C1 CSI.
HOSTILE = "cam\x1b[2J\rfake\nrow\u202eevil\x9b31m\x7f"
SHOWN = "cam\\x1b[2J\\x0dfake\\x0arow\\u202eevil\\x9b31m\\x7f"


def _unsafe_in(text: str) -> set[str]:
    return {ch for ch in text if ord(ch) in UNSAFE_CHARACTERS and ch != "\n"}


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["events", "streams"])
async def test_tables_show_control_characters_escaped(
    client: Any, database: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    await post(client, push_begin(HOSTILE, "A", T0))
    code, out, err = await _cli(capsys, command, "--database", str(database))
    assert code == 0, err
    assert not _unsafe_in(out), out
    lines = out.splitlines()
    assert len(lines) == 2  # the header and one row: the name's newline made no row of its own
    assert SHOWN in lines[1]

    # The filter takes the name as stored, so the escaped table never hides a name from it.
    code, out, err = await _cli(
        capsys, command, "--database", str(database), "--stream", HOSTILE, "--json"
    )
    assert code == 0, err
    assert not _unsafe_in(out), out
    (line,) = out.splitlines()
    assert json.loads(line)["stream_id"] == HOSTILE

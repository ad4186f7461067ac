"""Generated secrets shared by replicas that start at once (the `ha` Compose profile)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from receiver.cli import secretfiles
from receiver.cli.secretfiles import load_or_create


def test_a_second_replica_never_reads_a_half_written_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first replica is held while it makes its key; the second starts meanwhile. Both must
    end with one and the same key, and neither may fail on an empty file."""
    path = tmp_path / "callback_key"
    inside, release = threading.Event(), threading.Event()
    made = iter(["first" * 6 + "aa", "second" * 5 + "aa"])
    real = secretfiles.generate_key

    def held_key(length: int = 32) -> str:
        value = next(made)
        if value.startswith("first"):
            inside.set()
            assert release.wait(10)
        return value

    monkeypatch.setattr(secretfiles, "generate_key", held_key)
    first: list[tuple[str, bool]] = []
    thread = threading.Thread(target=lambda: first.append(load_or_create(path)))
    thread.start()
    assert inside.wait(10)
    second = load_or_create(path)
    release.set()
    thread.join(10)
    monkeypatch.setattr(secretfiles, "generate_key", real)

    assert second == ("second" * 5 + "aa", True)
    assert first == [("second" * 5 + "aa", False)]
    assert path.read_text() == "second" * 5 + "aa\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["callback_key"]  # no drafts left


def test_a_stored_secret_is_kept(tmp_path: Path) -> None:
    value, created = load_or_create(tmp_path / "api_token", length=43)
    assert created and len(value) == 43
    assert load_or_create(tmp_path / "api_token", length=43) == (value, False)

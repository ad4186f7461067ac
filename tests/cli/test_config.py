"""A bad setting stops a command with exit 2 and one line naming the variable, never its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.cli import main


def test_a_bad_setting_names_the_variable_and_hides_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("RECEIVER_AMQP_URL", "http://guest:s3cret-pw@broker:5672/")
    monkeypatch.setenv("RECEIVER_PUBLISH_IN_FLIGHT", "lots")
    with pytest.raises(SystemExit) as exited:
        main(["events", "--database", str(tmp_path / "none.db")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "RECEIVER_AMQP_URL: must be an amqp:// or amqps:// URL" in err
    assert "RECEIVER_PUBLISH_IN_FLIGHT: input should be a valid integer" in err
    assert "s3cret-pw" not in err and "lots" not in err

"""`receiver tencent ...` as an operator runs it, against the fake CSS API on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from receiver.cli import main
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.helpers import KEY, URL_TOKEN

DOMAIN = "push.example.com"
REGISTER = ["tencent", "register", "--public-url", "https://cb.example.com", "--domain", DOMAIN]
Run = Callable[..., Coroutine[Any, Any, tuple[int, str, str]]]


@pytest.fixture
def cli(
    fake_tencent: FakeTencent,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """Run `receiver ARGS` in a worker thread (it starts its own event loop, like the console
    script) while the fake keeps answering on this test's loop; returns (code, stdout, stderr)."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("RECEIVER_TENCENT_ENDPOINT", fake_tencent.url)
    monkeypatch.setenv("RECEIVER_TENCENT_RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RECEIVER_DATABASE", str(tmp_path / "data" / "receiver.db"))
    monkeypatch.setenv("RECEIVER_CALLBACK_KEYS", f"{KEY},previousKey2023xyz")

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_register_then_nothing_to_do(cli: Run, fake_tencent: FakeTencent) -> None:
    code, out, err = await cli(*REGISTER)
    assert code == 0, err
    template_id = fake_tencent.template_named("receiver")["TemplateId"]
    assert f"registered: template {template_id} for {DOMAIN}/live" in out
    assert "+ StreamBeginNotifyUrl: https://cb.example.com/callbacks/stream-begin" in out
    assert "+ CallbackKey: cu****bc" in out
    assert "5-10 minutes" in out
    assert KEY not in out + err

    fake_tencent.calls.clear()
    code, out, err = await cli(*REGISTER)
    assert code == 0, err
    assert "nothing to do" in out
    assert fake_tencent.mutations() == []


async def test_register_sets_and_shows_every_callback_url(
    cli: Run, fake_tencent: FakeTencent
) -> None:
    code, out, err = await cli(*REGISTER)
    assert code == 0, err
    for field, slug in (
        ("RecordStatusNotifyUrl", "record-status"),
        ("AudioAuditNotifyUrl", "audio-moderation"),
        ("RecordExceptionNotifyUrl", "record-exception"),
    ):
        assert f"+ {field}: https://cb.example.com/callbacks/{slug}\n" in out
    assert "+ RecordExceptionLevels: error, warning, info" in out
    template = fake_tencent.template_named("receiver")
    assert template["RecordExceptionNotifyUrl"] == (
        "https://cb.example.com/callbacks/record-exception"
    )
    assert template["RecordExceptionLevels"] == ["error", "warning", "info"]


async def test_a_chinese_template_name_registers(cli: Run, fake_tencent: FakeTencent) -> None:
    code, out, err = await cli(*REGISTER, "--template-name", "直播回调")
    assert code == 0, err
    assert "template '直播回调': create" in out
    assert fake_tencent.template_named("直播回调")["CallbackKey"] == KEY


async def test_a_bad_template_name_is_invalid_configuration(
    cli: Run, fake_tencent: FakeTencent
) -> None:
    code, out, err = await cli(*REGISTER, "--template-name", "my template")
    assert out == ""
    assert code == 2
    assert err == (
        "error: template name 'my template' may only contain letters, digits, '_', '-' and "
        "Chinese characters\n"
    )
    assert fake_tencent.calls == []  # refused before any call


async def test_dry_run_prints_the_plan_and_changes_nothing(
    cli: Run, fake_tencent: FakeTencent
) -> None:
    code, out, _ = await cli(*REGISTER, "--dry-run")
    assert code == 0
    assert "template 'receiver': create" in out
    assert f"rule {DOMAIN}/live: bind to template 'receiver'" in out
    assert out.rstrip().endswith("dry run: nothing changed")
    assert fake_tencent.mutations() == []


async def test_registration_uses_the_key_serve_uses(
    cli: Run, fake_tencent: FakeTencent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without RECEIVER_CALLBACK_KEYS both commands use the generated key next to the database."""
    monkeypatch.delenv("RECEIVER_CALLBACK_KEYS")
    code, out, _ = await cli(*REGISTER)
    assert code == 0
    key = (tmp_path / "data" / "callback_key").read_text().strip()
    assert fake_tencent.template_named("receiver")["CallbackKey"] == key
    assert "callback_key" in out and key not in out


async def test_a_foreign_binding_fails_with_one_line_and_force_rebinds(
    cli: Run, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e")
    fake_tencent.add_rule(DOMAIN, "live", other)

    code, out, err = await cli(*REGISTER)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"error: {DOMAIN}/live is bound to template {other} 'legacy'")
    assert "--force" in err
    assert f"rule {DOMAIN}/live: CONFLICT, bound to template {other} 'legacy'" in out
    assert fake_tencent.mutations() == []

    code, out, err = await cli(*REGISTER, "--force")
    assert code == 0, err
    assert fake_tencent.bindings()[(DOMAIN, "live")] != other


async def test_a_tencent_error_is_one_line_with_code_and_request_id(
    cli: Run, fake_tencent: FakeTencent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "notTheRightKey")
    code, out, err = await cli(*REGISTER)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("error: DescribeLiveCallbackTemplates: AuthFailure.SignatureFailure: ")
    assert "TENCENTCLOUD_SECRET_KEY" in line
    assert "[RequestId " in line and "[RequestId none]" not in line
    assert "notTheRightKey" not in out + err


async def test_secrets_echoed_by_tencent_are_scrubbed(
    cli: Run, fake_tencent: FakeTencent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_URL_TOKEN", URL_TOKEN)
    fake_tencent.fail("UrlNotSafe", action="CreateLiveCallbackTemplate")
    code, out, err = await cli(*REGISTER)
    assert code == 1
    assert "InvalidParameter.UrlNotSafe" in err
    assert "stream-begin?token=[redacted]" in err
    assert URL_TOKEN not in out + err


async def test_transient_failures_are_retried(cli: Run, fake_tencent: FakeTencent) -> None:
    fake_tencent.fail("http502", times=2, action="DescribeLiveCallbackRules")
    fake_tencent.fail("RequestLimitExceeded", times=1, action="CreateLiveCallbackRule")
    code, _, err = await cli(*REGISTER)
    assert code == 0, err
    assert fake_tencent.actions().count("DescribeLiveCallbackRules") == 3


async def test_templates_lists_everything_with_keys_masked(
    cli: Run, fake_tencent: FakeTencent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECEIVER_URL_TOKEN", URL_TOKEN)
    assert (await cli(*REGISTER))[0] == 0
    other = fake_tencent.add_template(
        TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e", CallbackKey="legacyKey9876"
    )
    fake_tencent.add_rule("other.example.com", "live", other)

    code, out, err = await cli("tencent", "templates")
    assert code == 0, err
    assert "templates (2 of 50):" in out
    assert "'receiver'" in out and "'legacy'" in out
    assert "CallbackKey: cu****bc" in out and "CallbackKey: le****76" in out
    assert "/callbacks/record?token=ur****89" in out
    for field, slug in (
        ("AudioAuditNotifyUrl", "audio-moderation"),
        ("RecordExceptionNotifyUrl", "record-exception"),
    ):
        assert f"      {field}: https://cb.example.com/callbacks/{slug}?token=ur****89" in out
    assert "      RecordExceptionLevels: error, alarm, info" in out  # as CSS reports them
    assert "(RecordStatusNotifyUrl: not reported by CSS; `register` sets it" in out
    assert f"{DOMAIN}/live -> template 1000 'receiver'" in out
    assert "other.example.com/live -> template 1001 'legacy'" in out
    for secret in (KEY, "legacyKey9876", URL_TOKEN):
        assert secret not in out + err

    code, out, _ = await cli("tencent", "templates", "--json")
    assert code == 0
    listing = json.loads(out)
    assert [t["CallbackKey"] for t in listing["templates"]] == ["cu****bc", "le****76"]
    ours = listing["templates"][0]
    assert ours["AudioAuditNotifyUrl"] == (
        "https://cb.example.com/callbacks/audio-moderation?token=ur****89"
    )
    assert ours["RecordExceptionLevels"] == ["error", "alarm", "info"]
    assert {r["DomainName"] for r in listing["rules"]} == {DOMAIN, "other.example.com"}


async def test_unregister(cli: Run, fake_tencent: FakeTencent) -> None:
    assert (await cli(*REGISTER, "--domain", "push2.example.com"))[0] == 0

    code, out, _ = await cli("tencent", "unregister", "--domain", DOMAIN, "--dry-run")
    assert code == 0 and "dry run" in out
    assert len(fake_tencent.rules) == 2

    code, out, err = await cli("tencent", "unregister", "--domain", DOMAIN, "--delete-template")
    assert code == 1
    assert "still bound to push2.example.com/live" in err
    assert len(fake_tencent.rules) == 2

    code, out, _ = await cli("tencent", "unregister", "--domain", DOMAIN)
    assert code == 0 and "unregistered" in out
    code, out, _ = await cli(
        "tencent", "unregister", "--domain", "push2.example.com", "--delete-template"
    )
    assert code == 0
    assert "template 'receiver' (1000): delete" in out
    assert fake_tencent.templates == {} and fake_tencent.rules == []

    code, out, _ = await cli("tencent", "unregister", "--domain", DOMAIN)
    assert code == 0 and "nothing to do" in out


async def test_configuration_errors_exit_2(
    cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, _, err = await cli("tencent", "register", "--domain", DOMAIN)
    assert code == 2 and "RECEIVER_PUBLIC_URL" in err

    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY")
    monkeypatch.delenv("RECEIVER_CALLBACK_KEYS")
    with pytest.raises(SystemExit) as info:
        await cli(*REGISTER)
    assert info.value.code == 2
    assert "TENCENTCLOUD_SECRET_KEY" in capsys.readouterr().err
    assert not (tmp_path / "data" / "callback_key").exists()  # refused before any side effect

    with pytest.raises(SystemExit) as info:
        await cli("tencent", "register", "--public-url", "https://x.example", "--domain", "a b")
    assert info.value.code == 2


async def test_the_console_script_registers(fake_tencent: FakeTencent, tmp_path: Path) -> None:
    """The real process, its environment and exit code, as CI and operators run it."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECEIVER_", "TENCENTCLOUD_"))},
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "RECEIVER_TENCENT_ENDPOINT": fake_tencent.url,
        "RECEIVER_DATABASE": str(tmp_path / "receiver.db"),
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_PUBLIC_URL": "https://cb.example.com",
        "RECEIVER_TENCENT_DOMAINS": f"{DOMAIN},push2.example.com",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "tencent",
        "register",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "registered: template 1000" in out.decode()
    assert set(fake_tencent.bindings()) == {(DOMAIN, "live"), ("push2.example.com", "live")}

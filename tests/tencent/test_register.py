"""Registration against the fake CSS API: describe, diff, change only what differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from pydantic import SecretStr

from receiver.events.kinds import PATH_KINDS, URL_FIELD_BY_PATH_KIND
from receiver.tencent.actions import LiveCallbackApi, levels_text
from receiver.tencent.errors import InvalidRegistration, RegistrationError, TencentApiError
from receiver.tencent.masking import mask, mask_url, redact
from receiver.tencent.register import (
    TEMPLATE_PATHS,
    RegistrationRequest,
    UnregisterPlan,
    apply_unregister,
    check_unregister,
    plan_unregister,
    register,
)
from tests.support.fake_tencent import FakeTencent
from tests.support.helpers import KEY, URL_TOKEN
from tests.support.tencent_helpers import api_for

DOMAIN, DOMAIN2 = "push.example.com", "push2.example.com"
REQUEST = RegistrationRequest(
    public_url="https://cb.example.com",
    domains=(DOMAIN, DOMAIN2),
    callback_key=SecretStr(KEY),
)
CREATED = ["CreateLiveCallbackTemplate", "CreateLiveCallbackRule", "CreateLiveCallbackRule"]
# Every callback URL field of Create/ModifyLiveCallbackTemplate (reference §4.6, the SDK's
# request models) but the deprecated StreamMixNotifyUrl, and the kind CSS delivers to it.
TEMPLATE_URL_FIELDS = {
    "StreamBeginNotifyUrl": 1,
    "StreamEndNotifyUrl": 0,
    "RecordNotifyUrl": 100,
    "RecordStatusNotifyUrl": 332,
    "SnapshotNotifyUrl": 200,
    "PornCensorshipNotifyUrl": 317,
    "PushExceptionNotifyUrl": 321,
    "AudioAuditNotifyUrl": 315,
    "RecordExceptionNotifyUrl": 341,
}
# What a registration of the previous version left: six URLs, no levels.
OLD_URLS = {
    "StreamBeginNotifyUrl": "https://cb.example.com/callbacks/stream-begin",
    "StreamEndNotifyUrl": "https://cb.example.com/callbacks/stream-end",
    "RecordNotifyUrl": "https://cb.example.com/callbacks/record",
    "SnapshotNotifyUrl": "https://cb.example.com/callbacks/snapshot",
    "PornCensorshipNotifyUrl": "https://cb.example.com/callbacks/porn",
    "PushExceptionNotifyUrl": "https://cb.example.com/callbacks/push-exception",
}


@pytest.fixture
async def api(fake_tencent: FakeTencent) -> AsyncIterator[LiveCallbackApi]:
    async with aiohttp.ClientSession() as session:
        yield api_for(fake_tencent, session)


def test_every_per_kind_path_has_a_template_field() -> None:
    assert set(URL_FIELD_BY_PATH_KIND) == set(PATH_KINDS)


async def test_first_registration_creates_the_template_and_binds_it(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    outcome = await register(api, REQUEST)

    assert outcome.applied and outcome.plan.template_action == "create"
    assert fake_tencent.mutations() == CREATED
    template = fake_tencent.template_named("receiver")
    assert outcome.template_id == template["TemplateId"]
    assert template["CallbackKey"] == KEY
    assert template["Description"] == "managed-by-receiver"
    assert template["StreamBeginNotifyUrl"] == "https://cb.example.com/callbacks/stream-begin"
    assert template["PushExceptionNotifyUrl"] == "https://cb.example.com/callbacks/push-exception"
    assert {template[field] for field in URL_FIELD_BY_PATH_KIND.values()} == {
        f"https://cb.example.com/callbacks/{kind}" for kind in PATH_KINDS
    }
    assert fake_tencent.bindings() == {
        (DOMAIN, "live"): template["TemplateId"],
        (DOMAIN2, "live"): template["TemplateId"],
    }
    lines = "\n".join(outcome.plan.describe())
    assert "+ CallbackKey: cu****bc" in lines and KEY not in lines
    assert f"rule {DOMAIN}/live: bind to template 'receiver'" in lines


async def test_a_second_run_changes_nothing(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    first = await register(api, REQUEST)
    fake_tencent.calls.clear()

    second = await register(api, REQUEST)

    assert not second.applied and not second.plan.changes
    assert second.template_id == first.template_id
    assert fake_tencent.actions() == [
        "DescribeLiveCallbackTemplates",
        "DescribeLiveCallbackRules",
    ]
    assert second.plan.describe() == [
        f"template 'receiver' ({first.template_id}): unchanged",
        f"rule {DOMAIN}/live: unchanged (bound to 'receiver')",
        f"rule {DOMAIN2}/live: unchanged (bound to 'receiver')",
    ]


async def test_every_callback_url_and_the_exception_levels_are_set(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    """A template that leaves a URL field empty never delivers that kind: all nine are set."""
    outcome = await register(api, REQUEST)

    template = fake_tencent.template_named("receiver")
    assert set(TEMPLATE_URL_FIELDS) <= set(template)
    assert {field: template[field] for field in TEMPLATE_URL_FIELDS} == {
        field: f"https://cb.example.com/callbacks/{kind}"
        for kind, field in URL_FIELD_BY_PATH_KIND.items()
    }
    assert template["AudioAuditNotifyUrl"] == "https://cb.example.com/callbacks/audio-moderation"
    assert template["RecordExceptionLevels"] == ["error", "warning", "info"]
    lines = outcome.plan.describe()
    for field in TEMPLATE_URL_FIELDS:
        assert any(line.startswith(f"  + {field}: https://cb.example.com/") for line in lines)
    assert "  + RecordExceptionLevels: error, warning, info" in lines


async def test_a_template_of_the_previous_version_gains_the_missing_fields(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    template_id = fake_tencent.add_template(
        TemplateName="receiver", Description="managed-by-receiver", CallbackKey=KEY, **OLD_URLS
    )

    outcome = await register(api, REQUEST)

    assert outcome.plan.template_action == "modify"
    assert fake_tencent.mutations() == ["ModifyLiveCallbackTemplate", *CREATED[1:]]
    assert [change.field for change in outcome.plan.field_changes] == [
        "RecordExceptionNotifyUrl",
        "AudioAuditNotifyUrl",
        "RecordExceptionLevels",
    ]
    assert outcome.plan.resent == ("RecordStatusNotifyUrl",)
    template = fake_tencent.templates[template_id]
    assert template["AudioAuditNotifyUrl"] == "https://cb.example.com/callbacks/audio-moderation"
    assert template["RecordStatusNotifyUrl"] == "https://cb.example.com/callbacks/record-status"
    lines = outcome.plan.describe()
    # CSS does not report RecordStatusNotifyUrl: shown as unknown, sent with the modify.
    assert (
        "  = RecordStatusNotifyUrl: https://cb.example.com/callbacks/record-status"
        " (not reported by CSS: sent again)"
    ) in lines
    assert (
        "  ~ AudioAuditNotifyUrl: (none) -> https://cb.example.com/callbacks/audio-moderation"
        in lines
    )
    assert "  ~ RecordExceptionLevels: (none) -> error, warning, info" in lines
    fake_tencent.calls.clear()
    # Levels come back as error/alarm/info, RecordStatusNotifyUrl not at all: still unchanged.
    assert not (await register(api, REQUEST)).plan.changes
    assert fake_tencent.mutations() == []


def test_levels_compare_with_alarm_read_as_warning() -> None:
    assert levels_text(["info", "alarm", "error"]) == "error, warning, info"
    assert levels_text(["warning", "alarm"]) == "warning"
    assert levels_text(["error", "custom"]) == "error, custom"
    assert levels_text([]) == ""


async def test_a_changed_public_url_modifies_the_template(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    await register(api, REQUEST)
    fake_tencent.calls.clear()

    outcome = await register(api, replace(REQUEST, public_url="https://new.example.com/recv/"))

    assert fake_tencent.mutations() == ["ModifyLiveCallbackTemplate"]
    assert {change.field for change in outcome.plan.field_changes} == set(TEMPLATE_PATHS) - {
        "RecordStatusNotifyUrl"  # not reported by CSS: sent again, not compared
    }
    template = fake_tencent.template_named("receiver")
    assert template["RecordNotifyUrl"] == "https://new.example.com/recv/callbacks/record"
    assert template["RecordStatusNotifyUrl"] == (
        "https://new.example.com/recv/callbacks/record-status"
    )
    assert (
        "  ~ RecordNotifyUrl: https://cb.example.com/callbacks/record -> "
        "https://new.example.com/recv/callbacks/record"
    ) in outcome.plan.describe()


async def test_a_rotated_key_changes_only_the_key_and_is_shown_masked(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    await register(api, REQUEST)
    new_key = "cuNewRotatedKey2025zzbc"  # same first and last two characters as KEY

    outcome = await register(api, replace(REQUEST, callback_key=SecretStr(new_key)))

    assert [c.field for c in outcome.plan.field_changes] == ["CallbackKey"]
    assert fake_tencent.template_named("receiver")["CallbackKey"] == new_key
    lines = "\n".join(outcome.plan.describe())
    assert "~ CallbackKey: cu****bc -> cu****bc (a different key)" in lines
    assert KEY not in lines and new_key not in lines


async def test_fields_the_receiver_does_not_manage_are_left_alone(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    fake_tencent.add_template(
        TemplateName="receiver",
        StreamBeginNotifyUrl="https://old.example.com/b",
        StreamMixNotifyUrl="https://mix.example.com/hook",  # deprecated, not ours
        CallbackKey=KEY,
    )
    outcome = await register(api, REQUEST)
    assert outcome.plan.template_action == "modify"
    template = fake_tencent.template_named("receiver")
    assert template["StreamMixNotifyUrl"] == "https://mix.example.com/hook"
    assert template["StreamBeginNotifyUrl"] == "https://cb.example.com/callbacks/stream-begin"


async def test_the_url_token_is_in_every_url_and_masked_in_the_plan(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    outcome = await register(api, replace(REQUEST, url_token=SecretStr(URL_TOKEN)))
    template = fake_tencent.template_named("receiver")
    assert template["SnapshotNotifyUrl"] == (
        f"https://cb.example.com/callbacks/snapshot?token={URL_TOKEN}"
    )
    lines = "\n".join(outcome.plan.describe())
    assert URL_TOKEN not in lines
    assert "/callbacks/snapshot?token=ur****89" in lines


async def test_a_foreign_binding_is_refused_without_force(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e")
    fake_tencent.add_rule(DOMAIN, "live", other)

    with pytest.raises(RegistrationError) as info:
        await register(api, REQUEST)

    message = str(info.value)
    assert f"{DOMAIN}/live is bound to template {other} 'legacy'" in message
    assert "--force" in message
    assert fake_tencent.mutations() == []  # not even the template was created
    assert fake_tencent.bindings() == {(DOMAIN, "live"): other}


async def test_force_deletes_the_foreign_rule_and_binds_ours(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e")
    fake_tencent.add_rule(DOMAIN, "live", other)

    outcome = await register(api, replace(REQUEST, force=True))

    assert fake_tencent.mutations() == [
        "CreateLiveCallbackTemplate",
        "DeleteLiveCallbackRule",
        "CreateLiveCallbackRule",
        "CreateLiveCallbackRule",
    ]
    ours = outcome.template_id
    assert fake_tencent.bindings() == {(DOMAIN, "live"): ours, (DOMAIN2, "live"): ours}
    assert other in fake_tencent.templates  # the other template itself is not ours to delete
    assert (
        f"rule {DOMAIN}/live: rebind from template {other} 'legacy' to 'receiver' (--force)"
        in outcome.plan.describe()
    )


async def test_a_rule_for_another_app_is_not_a_conflict(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e")
    fake_tencent.add_rule(DOMAIN, "other-app", other)
    await register(api, REQUEST)
    assert fake_tencent.bindings()[(DOMAIN, "other-app")] == other


async def test_dry_run_changes_nothing(api: LiveCallbackApi, fake_tencent: FakeTencent) -> None:
    outcome = await register(api, REQUEST, dry_run=True)
    assert outcome.plan.changes and not outcome.applied
    assert fake_tencent.mutations() == []
    assert fake_tencent.templates == {}

    await register(api, REQUEST)
    fake_tencent.calls.clear()
    changed = replace(REQUEST, public_url="https://elsewhere.example.com")
    outcome = await register(api, changed, dry_run=True)
    assert outcome.plan.template_action == "modify"
    assert fake_tencent.mutations() == []


async def test_dry_run_reports_conflicts_as_a_failure(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e")
    fake_tencent.add_rule(DOMAIN2, "live", other)
    with pytest.raises(RegistrationError, match="--force"):
        await register(api, REQUEST, dry_run=True)
    assert fake_tencent.mutations() == []


async def test_transient_failures_during_registration_are_retried(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    fake_tencent.fail("InternalError", times=2, action="DescribeLiveCallbackTemplates")
    fake_tencent.fail("http502", times=1, action="DescribeLiveCallbackRules")
    fake_tencent.fail("RequestLimitExceeded", times=1, action="CreateLiveCallbackTemplate")
    fake_tencent.fail("RequestLimitExceeded", times=2, action="CreateLiveCallbackRule")

    outcome = await register(api, REQUEST)

    assert outcome.applied
    assert len(fake_tencent.templates) == 1
    assert len(fake_tencent.bindings()) == 2


async def test_a_lost_create_answer_never_makes_a_second_template(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    """The create took effect but its answer was an InternalError: the next run reconciles."""
    fake_tencent.fail("InternalError", action="CreateLiveCallbackTemplate", after_processing=True)
    with pytest.raises(TencentApiError) as info:
        await register(api, REQUEST)
    assert info.value.code == "InternalError"
    assert fake_tencent.mutations() == ["CreateLiveCallbackTemplate"]

    outcome = await register(api, REQUEST)

    assert outcome.plan.template_action == "unchanged"
    assert len(fake_tencent.templates) == 1
    assert set(fake_tencent.bindings().values()) == {outcome.template_id}


async def test_a_permanent_failure_is_not_retried(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    fake_tencent.fail("ResourceNotFound.ForbidService", times=5, action="CreateLiveCallbackRule")
    with pytest.raises(TencentApiError) as info:
        await register(api, REQUEST)
    assert info.value.code == "ResourceNotFound.ForbidService"
    assert fake_tencent.actions().count("CreateLiveCallbackRule") == 1


async def test_the_template_quota_is_checked_before_creating(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    for n in range(50):
        fake_tencent.add_template(TemplateName=f"t{n}", RecordNotifyUrl="https://x.example/r")
    with pytest.raises(RegistrationError, match="50 callback templates"):
        await register(api, REQUEST)
    assert fake_tencent.mutations() == []


async def test_two_templates_with_our_name_are_refused(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    fake_tencent.add_template(TemplateName="receiver", RecordNotifyUrl="https://x.example/r")
    fake_tencent.add_template(TemplateName="receiver", RecordNotifyUrl="https://x.example/r")
    with pytest.raises(RegistrationError, match="2 callback templates are named 'receiver'"):
        await register(api, REQUEST)
    assert fake_tencent.mutations() == []


async def test_chinese_names_and_descriptions_are_accepted(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    """The Chinese API page and the SDK allow Chinese characters in both (reference §4.6)."""
    request = replace(REQUEST, template_name="直播回调_receiver", description="由receiver管理")
    outcome = await register(api, request)

    assert outcome.plan.template_action == "create"
    assert fake_tencent.template_named("直播回调_receiver")["Description"] == "由receiver管理"
    assert "template '直播回调_receiver': create" in outcome.plan.describe()
    assert not (await register(api, request)).plan.changes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"template_name": "has space"}, "only contain letters, digits, '_', '-' and Chinese"),
        ({"template_name": "模板。"}, "only contain letters"),  # Chinese punctuation is not
        ({"template_name": "x" * 256}, "longer than 255 bytes"),
        ({"template_name": "直" * 86}, r"is 258 bytes \(UTF-8\), longer than 255"),
        ({"description": "a.b"}, "only contain letters"),
        ({"callback_key": SecretStr("with-dash")}, "1-32 letters and digits"),
        ({"callback_key": SecretStr("k" * 33)}, "1-32 letters and digits"),
        ({"public_url": "ftp://cb.example.com"}, "http:// or https://"),
        ({"public_url": "https://cb.example.com/?a=b"}, "query"),
        ({"domains": ("bad_domain.example.com",)}, "not a domain name"),
        ({"app": "a/b"}, "not an AppName"),
    ],
)
async def test_bad_values_are_refused_before_any_call(
    api: LiveCallbackApi, fake_tencent: FakeTencent, change: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRegistration, match=message):
        await register(api, replace(REQUEST, **change))  # type: ignore[arg-type]
    assert fake_tencent.calls == []


async def test_console_limits_only_warn(api: LiveCallbackApi, fake_tencent: FakeTencent) -> None:
    request = replace(REQUEST, template_name="n" * 31, public_url="http://cb.example.com")
    outcome = await register(api, request)
    assert outcome.applied
    warnings = "\n".join(outcome.plan.warnings)
    assert "at most 30" in warnings and "plain http" in warnings


async def test_unregister_removes_our_rules_and_keeps_the_template(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    outcome = await register(api, REQUEST)
    fake_tencent.calls.clear()
    plan = plan_unregister(
        await api.describe_templates(),
        await api.describe_rules(),
        template_name="receiver",
        domains=[DOMAIN, "never-bound.example.com"],
        app="live",
        delete_template=False,
        force=False,
    )
    await apply_unregister(api, plan)
    assert fake_tencent.mutations() == ["DeleteLiveCallbackRule"]
    assert fake_tencent.bindings() == {(DOMAIN2, "live"): outcome.template_id}
    assert plan.describe()[1] == "rule never-bound.example.com/live: nothing to delete (no rule)"


async def test_unregister_delete_template_waits_for_every_domain(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    await register(api, REQUEST)

    async def plan_for(*domains: str) -> UnregisterPlan:
        return plan_unregister(
            await api.describe_templates(),
            await api.describe_rules(),
            template_name="receiver",
            domains=domains,
            app="live",
            delete_template=True,
            force=False,
        )

    blocked = await plan_for(DOMAIN)
    with pytest.raises(RegistrationError, match=f"still bound to {DOMAIN2}/live"):
        check_unregister(blocked)
    fake_tencent.calls.clear()
    await apply_unregister(api, await plan_for(DOMAIN, DOMAIN2))
    assert fake_tencent.mutations() == [
        "DeleteLiveCallbackRule",
        "DeleteLiveCallbackRule",
        "DeleteLiveCallbackTemplate",
    ]
    assert fake_tencent.templates == {} and fake_tencent.rules == []


async def test_unregister_leaves_another_templates_rule_unless_forced(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", StreamEndNotifyUrl="http://x.cn/e")
    fake_tencent.add_rule(DOMAIN, "live", other)
    for force in (False, True):
        plan = plan_unregister(
            await api.describe_templates(),
            await api.describe_rules(),
            template_name="receiver",
            domains=[DOMAIN],
            app="live",
            delete_template=True,
            force=force,
        )
        if not force:
            with pytest.raises(RegistrationError, match=r"bound to template \d+ 'legacy'"):
                await apply_unregister(api, plan)
            assert fake_tencent.mutations() == []
        else:
            await apply_unregister(api, plan)
    assert fake_tencent.mutations() == ["DeleteLiveCallbackRule"]
    assert other in fake_tencent.templates


async def test_no_secret_in_any_repr(api: LiveCallbackApi, fake_tencent: FakeTencent) -> None:
    request = replace(REQUEST, url_token=SecretStr(URL_TOKEN))
    await register(api, request)
    outcome = await register(api, replace(request, callback_key=SecretStr("aNewKey2025xyz")))
    text = repr(outcome) + repr(request) + repr(await api.describe_templates())
    assert "CallbackKey" in text and "token=" in text
    for secret in (KEY, "aNewKey2025xyz", URL_TOKEN):
        assert secret not in text


def test_masking() -> None:
    assert mask("currentKey2024abc") == "cu****bc"
    assert mask("short") == "****"
    assert mask("") == "(none)"
    assert mask_url("https://h/callbacks/record?token=abcdefghij&x=1") == (
        "https://h/callbacks/record?token=ab****ij&x=1"
    )
    assert mask_url("https://h/callbacks/record") == "https://h/callbacks/record"
    assert redact("key k3y-secret and k3y-secret!", ["k3y-secret", ""]) == (
        "key [redacted] and [redacted]!"
    )

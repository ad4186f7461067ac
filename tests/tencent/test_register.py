"""Registration against the fake CSS API: describe, diff, change only what differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from pydantic import SecretStr

from receiver.events.kinds import PATH_KINDS, URL_FIELD_BY_PATH_KIND
from receiver.tencent.actions import LiveCallbackApi
from receiver.tencent.errors import RegistrationError, TencentApiError
from receiver.tencent.masking import mask, mask_url, redact
from receiver.tencent.register import (
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


async def test_a_changed_public_url_modifies_the_template(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    await register(api, REQUEST)
    fake_tencent.calls.clear()

    outcome = await register(api, replace(REQUEST, public_url="https://new.example.com/recv/"))

    assert fake_tencent.mutations() == ["ModifyLiveCallbackTemplate"]
    assert {change.field for change in outcome.plan.field_changes} == set(
        URL_FIELD_BY_PATH_KIND.values()
    )
    template = fake_tencent.template_named("receiver")
    assert template["RecordNotifyUrl"] == "https://new.example.com/recv/callbacks/record"
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
        AudioAuditNotifyUrl="https://audit.example.com/hook",
        CallbackKey=KEY,
    )
    outcome = await register(api, REQUEST)
    assert outcome.plan.template_action == "modify"
    template = fake_tencent.template_named("receiver")
    assert template["AudioAuditNotifyUrl"] == "https://audit.example.com/hook"
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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"template_name": "has space"}, "only contain ASCII letters"),
        ({"template_name": "模板"}, "only contain ASCII letters"),
        ({"template_name": "x" * 256}, "longer than 255 bytes"),
        ({"description": "a.b"}, "only contain ASCII letters"),
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
    with pytest.raises(RegistrationError, match=message):
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

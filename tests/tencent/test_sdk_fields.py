"""Registration judged by Tencent's official Python SDK: every request we send fits its request
model, and the fake takes exactly the parameters those models have (so it can refuse a misspelt
field the way the real API does)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from tencentcloud.live.v20180801 import models

from receiver.tencent.actions import CallbackTemplate, LiveCallbackApi
from receiver.tencent.register import RegistrationRequest, register
from tests.support import fake_tencent as fake
from tests.support.fake_tencent import FakeTencent
from tests.support.helpers import KEY, URL_TOKEN
from tests.support.tencent_helpers import api_for

REQUEST = RegistrationRequest(
    public_url="https://cb.example.com",
    domains=("push.example.com",),
    callback_key=SecretStr(KEY),
    url_token=SecretStr(URL_TOKEN),
)


def sdk_fields(model: str) -> set[str]:
    """The parameters of one SDK model (its attributes are `_Name`)."""
    return {name[1:] for name in vars(getattr(models, model)())}


@pytest.fixture
async def api(fake_tencent: FakeTencent) -> AsyncIterator[LiveCallbackApi]:
    async with aiohttp.ClientSession() as session:
        yield api_for(fake_tencent, session)


async def test_every_request_fits_the_sdk_request_model(
    api: LiveCallbackApi, fake_tencent: FakeTencent
) -> None:
    """The SDK warns about a parameter its model does not have ("fileds are useless")."""
    await register(api, REQUEST)
    await register(api, replace(REQUEST, public_url="https://new.example.com"))  # a modify
    actions = fake_tencent.actions()
    assert {"CreateLiveCallbackTemplate", "ModifyLiveCallbackTemplate"} <= set(actions)
    for call in fake_tencent.calls:
        request = getattr(models, f"{call.action}Request")()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            request._deserialize(call.params)
        assert request._serialize() == call.params  # nothing dropped or renamed
    create = fake_tencent.calls[actions.index("CreateLiveCallbackTemplate")].params
    sent = {name for name, value in create.items() if value}
    # Every field of the SDK's request but the deprecated mix URL.
    assert sent == sdk_fields("CreateLiveCallbackTemplateRequest") - {"StreamMixNotifyUrl"}


def test_the_fake_takes_exactly_the_sdk_parameters() -> None:
    assert sdk_fields("CreateLiveCallbackTemplateRequest") == fake.WRITABLE
    assert sdk_fields("ModifyLiveCallbackTemplateRequest") == (
        fake.WRITABLE - {"StreamMixNotifyUrl"}
    ) | {"TemplateId"}
    assert sdk_fields("CreateLiveCallbackRuleRequest") == {"DomainName", "AppName", "TemplateId"}
    assert sdk_fields("DeleteLiveCallbackRuleRequest") == {"DomainName", "AppName"}


def test_the_fake_answers_with_sdk_fields_and_we_read_them_all() -> None:
    answer = fake._info({"TemplateId": 1, "TemplateName": "t", "RecordExceptionLevels": ["info"]})
    reported = sdk_fields("CallBackTemplateInfo")
    assert set(answer) <= reported
    ours = {info.alias for info in CallbackTemplate.model_fields.values()}
    # Everything the SDK reports, and RecordStatusNotifyUrl (written, never reported).
    assert ours == (reported - {"StreamMixNotifyUrl"}) | {"RecordStatusNotifyUrl"}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"RecordExceptionLevels": "error"}, "InvalidParameterValue"),
        ({"RecordExceptionLevels": ["error", "fatal"]}, "InvalidParameterValue"),
        ({"AudioAuditNotifyUrl": 1}, "InvalidParameterValue"),
        ({"RecordStatusNotifyUrl": "ftp://x"}, "InvalidParameter.UrlNotSafe"),
        ({"RecordStatusNotifyUrls": "https://x"}, "UnknownParameter"),
    ],
)
def test_the_fake_refuses_what_the_api_refuses(params: dict[str, Any], code: str) -> None:
    tencent = FakeTencent()
    with pytest.raises(fake.ApiError) as info:
        tencent._dispatch(
            "CreateLiveCallbackTemplate",
            {"TemplateName": "t", "RecordNotifyUrl": "https://x/r", **params},
        )
    assert info.value.code == code

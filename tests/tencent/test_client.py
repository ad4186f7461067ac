"""The API client against the fake CSS API over loopback: envelope, errors, retries, secrets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from tencentcloud.common import credential
from tencentcloud.common.common_client_async import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from receiver.tencent.actions import LiveCallbackApi, TemplateWrite
from receiver.tencent.client import TencentClient, parse_response
from receiver.tencent.errors import (
    TencentApiError,
    TencentAuthError,
    TencentHttpError,
    TencentNetworkError,
)
from testbed.service import free_port
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.tencent_helpers import Sleeps, api_for, credentials, instant

TEMPLATE = {"TemplateName": "t1", "StreamBeginNotifyUrl": "https://cb.example.com/b"}


async def test_a_signed_call_returns_the_response(fake_tencent: FakeTencent) -> None:
    template_id = fake_tencent.add_template(**TEMPLATE, CallbackKey="k3yInTheTemplate")
    async with aiohttp.ClientSession() as session:
        api = api_for(fake_tencent, session)
        (template,) = await api.describe_templates()
        single = await api.describe_template(template_id)
    assert template == single
    assert template.template_id == template_id
    assert template.stream_begin_notify_url == "https://cb.example.com/b"
    assert template.push_exception_notify_url is None  # the API may answer null
    assert template.field_value("CallbackKey") == "k3yInTheTemplate"
    assert "k3yInTheTemplate" not in repr(template)
    assert fake_tencent.actions() == [
        "DescribeLiveCallbackTemplates",
        "DescribeLiveCallbackTemplate",
    ]
    assert fake_tencent.refused == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning:tencentcloud")  # utcfromtimestamp
async def test_the_fake_accepts_the_official_sdk_and_refuses_its_wrong_key(
    fake_tencent: FakeTencent,
) -> None:
    """The fake's signature check agrees with the official SDK, so it can judge ours."""
    endpoint = fake_tencent.url.removeprefix("http://").rstrip("/")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
    good = CommonClient(
        "live", "2018-08-01", credential.Credential(SECRET_ID, SECRET_KEY), "", profile
    )
    async with good:
        answer = await good.call_and_deserialize("DescribeLiveCallbackRules", {})
    assert answer["Response"]["Rules"] == []
    assert fake_tencent.actions() == ["DescribeLiveCallbackRules"]

    bad = CommonClient("live", "2018-08-01", credential.Credential(SECRET_ID, "wrong"), "", profile)
    async with bad:
        with pytest.raises(TencentCloudSDKException) as info:
            await bad.call_and_deserialize("DescribeLiveCallbackRules", {})
    assert info.value.get_code() == "AuthFailure.SignatureFailure"


async def test_a_wrong_secret_key_is_an_auth_error_with_a_hint(fake_tencent: FakeTencent) -> None:
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        api = api_for(
            fake_tencent, session, creds=credentials("wrongSecret"), retry=instant(sleeps=sleeps)
        )
        with pytest.raises(TencentAuthError) as info:
            await api.describe_rules()
    error = info.value
    assert error.code == "AuthFailure.SignatureFailure"
    assert error.request_id
    assert "TENCENTCLOUD_SECRET_KEY" in str(error) and error.request_id in str(error)
    assert "wrongSecret" not in str(error) and SECRET_KEY not in str(error)
    assert not error.transient
    assert fake_tencent.refused == ["AuthFailure.SignatureFailure"]  # asked once, not retried
    assert sleeps.delays == []


async def test_clock_skew_is_explained(fake_tencent: FakeTencent) -> None:
    async with aiohttp.ClientSession() as session:
        api = api_for(fake_tencent, session, clock=lambda: time.time() - 3600)
        with pytest.raises(TencentAuthError) as info:
            await api.describe_rules()
    assert info.value.code == "AuthFailure.SignatureExpire"
    assert "clock" in str(info.value) and "NTP" in str(info.value)


async def test_temporary_credentials_send_their_token(fake_tencent: FakeTencent) -> None:
    fake_tencent.session_token = "sts-token-value-123"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TencentAuthError, match="TENCENTCLOUD_SESSION_TOKEN") as info:
            await api_for(fake_tencent, session).describe_rules()
        assert info.value.code == "AuthFailure.TokenFailure"
        creds = credentials(session_token="sts-token-value-123")
        assert await api_for(fake_tencent, session, creds=creds).describe_rules() == []
    assert "sts-token-value-123" not in repr(creds)


@pytest.mark.parametrize("failure", ["RequestLimitExceeded", "InternalError", "http502"])
async def test_transient_failures_are_retried_with_growing_backoff(
    fake_tencent: FakeTencent, failure: Any
) -> None:
    fake_tencent.fail(failure, times=3)
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        api = api_for(fake_tencent, session, retry=instant(attempts=4, sleeps=sleeps))
        assert await api.describe_templates() == []
    assert fake_tencent.actions() == ["DescribeLiveCallbackTemplates"] * 4
    assert sleeps.delays == [1.0, 2.0, 4.0]


async def test_retries_give_up_with_a_typed_error_for_an_html_page(
    fake_tencent: FakeTencent,
) -> None:
    fake_tencent.fail("http502", times=10)
    async with aiohttp.ClientSession() as session:
        api = api_for(fake_tencent, session, retry=instant(attempts=3))
        with pytest.raises(TencentHttpError) as info:
            await api.describe_rules()
    assert info.value.status == 502
    assert "502 Bad Gateway" in str(info.value)
    assert info.value.transient
    assert len(fake_tencent.calls) == 3


async def test_throttled_creates_are_retried(fake_tencent: FakeTencent) -> None:
    """A throttled request was refused before it was processed: safe to send again."""
    fake_tencent.fail("RequestLimitExceeded", times=1, action="CreateLiveCallbackRule")
    template_id = fake_tencent.add_template(**TEMPLATE)
    async with aiohttp.ClientSession() as session:
        await api_for(fake_tencent, session).create_rule("push.example.com", "live", template_id)
    assert fake_tencent.actions() == ["CreateLiveCallbackRule"] * 2
    assert fake_tencent.bindings() == {("push.example.com", "live"): template_id}


async def test_an_internal_error_on_create_is_not_retried(fake_tencent: FakeTencent) -> None:
    """It may have taken effect: sending it again could create a second template."""
    fake_tencent.fail("InternalError", action="CreateLiveCallbackTemplate", after_processing=True)
    async with aiohttp.ClientSession() as session:
        api = api_for(fake_tencent, session)
        with pytest.raises(TencentApiError) as info:
            await api.client.call("CreateLiveCallbackTemplate", TEMPLATE, idempotent=False)
    assert info.value.code == "InternalError" and info.value.transient and info.value.ambiguous
    assert fake_tencent.actions() == ["CreateLiveCallbackTemplate"]
    assert len(fake_tencent.templates) == 1


async def test_permanent_errors_are_not_retried(fake_tencent: FakeTencent) -> None:
    async with aiohttp.ClientSession() as session:
        api = api_for(fake_tencent, session)
        write = TemplateWrite("t1", "d", {"StreamBeginNotifyUrl": "https://x/b"}, SecretStr("k"))
        with pytest.raises(TencentApiError) as info:
            await api.modify_template(4242, write)
    # InternalError.* sub-codes are business errors, unlike plain InternalError.
    assert info.value.code == "InternalError.ConfNotFound"
    assert not info.value.transient
    assert fake_tencent.actions() == ["ModifyLiveCallbackTemplate"]


async def test_a_refused_connection_is_retried_even_for_create() -> None:
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as session:
        client = TencentClient(
            session,
            credentials(),
            endpoint=f"http://127.0.0.1:{free_port()}",
            retry=instant(attempts=3, sleeps=sleeps),
        )
        with pytest.raises(TencentNetworkError) as info:
            await LiveCallbackApi(client).create_rule("push.example.com", "live", 1)
    assert not info.value.ambiguous  # never connected, so never processed
    assert len(sleeps.delays) == 2


async def test_no_answer_in_time_is_an_ambiguous_network_error(fake_tencent: FakeTencent) -> None:
    fake_tencent.hold = hold = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as session:
            client = TencentClient(
                session,
                credentials(),
                endpoint=fake_tencent.url,
                timeout_seconds=0.2,
                retry=instant(attempts=3),
            )
            with pytest.raises(TencentNetworkError) as info:
                await LiveCallbackApi(client).delete_template(1)
    finally:
        hold.set()
    assert info.value.ambiguous and info.value.transient


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (502, b"<html><title>502 Bad Gateway</title></html>", TencentHttpError, "502 Bad Gateway"),
        (200, b"not json at all", TencentHttpError, "not json at all"),
        (200, b'{"unexpected": true}', TencentHttpError, "HTTP 200"),
        (404, b"", TencentHttpError, "HTTP 404"),
        (500, b'{"Response": {"RequestId": "r-1"}}', TencentHttpError, "HTTP 500"),
        (
            200,
            b'{"Response": {"Error": {"Code": "InvalidParameter", "Message": "bad"}, '
            b'"RequestId": "r-2"}}',
            TencentApiError,
            "InvalidParameter: bad [RequestId r-2]",
        ),
        (
            200,
            b'{"Response": {"Error": "weird", "RequestId": "r-3"}}',
            TencentApiError,
            "UnknownError",
        ),
    ],
)
def test_every_kind_of_answer_becomes_a_typed_error(
    status: int, body: bytes, error: type[Exception], text: str
) -> None:
    with pytest.raises(error) as info:
        parse_response("DescribeLiveCallbackRules", status, "text/html", body)
    assert text in str(info.value)


def test_nothing_secret_in_reprs() -> None:
    creds = credentials("superSecretKey", session_token="superSecretToken")
    assert "superSecret" not in repr(creds) + str(creds)
    client = TencentClient(None, creds)  # type: ignore[arg-type]  # repr only
    assert "superSecret" not in repr(client)
    assert (
        repr(client)
        == "TencentClient(endpoint='https://live.tencentcloudapi.com/', service='live')"
    )

"""TC3-HMAC-SHA256: the two published vectors (reference §4.4) and the official SDK's signer."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tencentcloud.common.abstract_client_async import AbstractClient
from tencentcloud.common.sign import Sign

from receiver.settings import parse_endpoint
from receiver.tencent import tc3

# Shared inputs of both vectors: exactly these 86 bytes (the \u escapes are literal backslashes).
BODY = rb'{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}'
TIMESTAMP = 1551113065
HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Host": "cvm.tencentcloudapi.com",
    "X-TC-Action": "DescribeInstances",
}
SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"


def test_inputs_are_the_published_ones() -> None:
    assert len(BODY) == 86
    assert tc3.sha256_hex(BODY) == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    # The scope date is the UTC date of the timestamp: already the 26th in Beijing.
    assert tc3.utc_date(TIMESTAMP) == "2019-02-25"


def test_vector_a_content_type_and_host() -> None:
    signed = tc3.sign(
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        service="cvm",
        timestamp=TIMESTAMP,
        headers=HEADERS,
        payload=BODY,
    )
    assert signed.canonical_request == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        "\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert tc3.sha256_hex(signed.canonical_request.encode()) == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert signed.string_to_sign == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert signed.signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    assert signed.authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_vector_b_signs_the_lower_cased_action_too() -> None:
    # The Chinese page masks its SecretKey and publishes the derived keys instead.
    secret_date = bytes.fromhex("da98fb70dcf6b112dc21038d1eeeb3a95c74b4dcb12c1131f864f6066bd02be0")
    secret_service = hmac.new(secret_date, b"cvm", hashlib.sha256).digest()
    assert secret_service.hex() == (
        "8d70cbefb03939f929db64d32dc2ba89b1095620119fe3e050e2b18c5bd2752f"
    )
    secret_signing = hmac.new(secret_service, b"tc3_request", hashlib.sha256).digest()
    assert secret_signing.hex() == (
        "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
    )

    canonical, signed_headers = tc3.canonical_request(
        "POST", "", HEADERS, ["x-tc-action", "host", "content-type"], BODY
    )
    assert signed_headers == "content-type;host;x-tc-action"
    assert (
        "content-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        "x-tc-action:describeinstances\n\n"
    ) in canonical
    assert tc3.sha256_hex(canonical.encode()) == (
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    )
    scope = tc3.credential_scope("2019-02-25", "cvm")
    to_sign = tc3.string_to_sign(TIMESTAMP, scope, canonical)
    assert tc3.signature(secret_signing, to_sign) == (
        "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    )


def test_signing_key_is_the_documented_chain() -> None:
    key = tc3.signing_key(SECRET_KEY, "2019-02-25", "cvm")
    expected = ("TC3" + SECRET_KEY).encode()
    for part in (b"2019-02-25", b"cvm", b"tc3_request"):
        expected = hmac.new(expected, part, hashlib.sha256).digest()
    assert key == expected


def test_content_type_and_host_must_be_signed() -> None:
    with pytest.raises(ValueError, match="host"):
        tc3.canonical_request("POST", "", HEADERS, ["content-type"], BODY)
    with pytest.raises(ValueError, match="x-tc-region"):
        tc3.canonical_request("POST", "", HEADERS, ["content-type", "host", "x-tc-region"], b"")


_HOSTS = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9-]{1,12}){0,3}(:[1-9][0-9]{0,4})?", fullmatch=True)
_KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=4096),
    timestamp=st.integers(min_value=0, max_value=4_102_444_800),
    secret_key=_KEYS,
    host=_HOSTS,
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]),
    service=st.from_regex(r"[a-z]{2,12}", fullmatch=True),
)
def test_matches_the_official_sdk(
    body: bytes, timestamp: int, secret_key: str, host: str, content_type: str, service: str
) -> None:
    headers = {"Content-Type": content_type, "Host": host, "X-TC-Timestamp": str(timestamp)}
    date = tc3.utc_date(timestamp)
    ours = tc3.sign(
        secret_id="AKIDtest",
        secret_key=secret_key,
        service=service,
        timestamp=timestamp,
        headers=headers,
        payload=body,
    )
    # The async SDK's static signer builds the canonical request itself from the same inputs.
    sdk = AbstractClient._get_tc3_signature(
        "POST", "/", "", body, headers, date, service, secret_key, {}
    )
    assert ours.signature == sdk
    # And the SDK's key derivation + HMAC agrees on our string to sign.
    assert Sign.sign_tc3(secret_key, date, service, ours.string_to_sign) == ours.signature


@pytest.mark.parametrize(
    ("value", "url", "host"),
    [
        (
            "live.tencentcloudapi.com",
            "https://live.tencentcloudapi.com/",
            "live.tencentcloudapi.com",
        ),
        (
            " live.intl.tencentcloudapi.com ",
            "https://live.intl.tencentcloudapi.com/",
            "live.intl.tencentcloudapi.com",
        ),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/", "127.0.0.1:9000"),
        (
            "https://Live.TencentCloudAPI.com:443/",
            "https://live.tencentcloudapi.com/",
            "live.tencentcloudapi.com",
        ),
        ("https://[::1]:8443", "https://[::1]:8443/", "[::1]:8443"),
    ],
)
def test_endpoint_bare_host_means_https(value: str, url: str, host: str) -> None:
    endpoint = parse_endpoint(value)
    assert str(endpoint.url) == url
    assert endpoint.host == host


@pytest.mark.parametrize(
    "value", ["", "ftp://live.tencentcloudapi.com", "https://h/path", "https://h/?a=1", "http://"]
)
def test_unusable_endpoints_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        parse_endpoint(value)

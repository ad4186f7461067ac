"""TencentCloud API 3.0 request signing (TC3-HMAC-SHA256), as pure functions.

The algorithm, step by step (each step is a function here so tests can check it against the
published intermediate values):

1. `canonical_request`: method, `/`, query, the signed headers (`name:value\\n`, both lower-cased
   and trimmed, sorted by name), their names joined by `;`, and the SHA-256 of the exact body bytes.
2. `string_to_sign`: `TC3-HMAC-SHA256`, the timestamp, the credential scope
   (`<UTC date of the timestamp>/<service>/tc3_request`) and the SHA-256 of step 1.
3. `signing_key`: HMAC-SHA256 chain `"TC3" + SecretKey` → date → service → `tc3_request`.
4. `signature`: hex HMAC-SHA256 of step 2 under the key of step 3.
5. `authorization`: the `Authorization` header value.

`sign` runs all five for a request. Nothing here does I/O or reads a clock: the caller passes the
timestamp, and must send exactly the body bytes and header values that were signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
# The headers the official SDK signs. The current Chinese docs also sign `x-tc-action`; both forms
# are accepted by the service. Signing exactly what the SDK signs keeps us on its well-trodden path.
DEFAULT_SIGNED_HEADERS = ("content-type", "host")
_REQUIRED_HEADERS = frozenset({"content-type", "host"})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_date(timestamp: int) -> str:
    """The scope date: the UTC date of `X-TC-Timestamp` (not the local date, not "today")."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def credential_scope(date: str, service: str) -> str:
    return f"{date}/{service}/tc3_request"


def canonical_headers(headers: Mapping[str, str], names: Iterable[str]) -> tuple[str, str]:
    """Return (canonical header block, signed header list) for the headers named in `names`.

    Header names are looked up case-insensitively; names and values are lower-cased and trimmed,
    as the TC3 documentation prescribes (`x-tc-action:describeinstances`).
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    wanted = sorted({name.lower() for name in names})
    missing = _REQUIRED_HEADERS.difference(wanted)
    if missing:
        raise ValueError(f"TC3 requires signing {', '.join(sorted(missing))}")
    absent = [name for name in wanted if name not in by_name]
    if absent:
        raise ValueError(f"cannot sign absent headers: {', '.join(absent)}")
    block = "".join(f"{name}:{by_name[name].strip().lower()}\n" for name in wanted)
    return block, ";".join(wanted)


def canonical_request(
    method: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload: bytes,
    *,
    uri: str = "/",
) -> tuple[str, str]:
    """Return (canonical request, signed header list)."""
    block, signed = canonical_headers(headers, signed_headers)
    # `block` ends with "\n" and the join adds another: the blank line is part of the format.
    text = "\n".join([method.upper(), uri, query, block, signed, sha256_hex(payload)])
    return text, signed


def string_to_sign(timestamp: int, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, str(timestamp), scope, sha256_hex(canonical.encode("utf-8"))])


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    """Derive the per-day, per-service key; raw digests at every step, never hex."""
    key = ("TC3" + secret_key).encode("utf-8")
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(secret_id: str, scope: str, signed_headers: str, sig: str) -> str:
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={sig}"
    )


@dataclass(frozen=True, slots=True)
class Signed:
    """Every intermediate value of one signature, for tests and debugging (no secret in it)."""

    canonical_request: str
    string_to_sign: str
    signature: str
    authorization: str


def sign(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    timestamp: int,
    headers: Mapping[str, str],
    payload: bytes,
    method: str = "POST",
    query: str = "",
    signed_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS,
) -> Signed:
    """Sign one request; `headers` must hold the exact values that will be sent."""
    canonical, signed = canonical_request(method, query, headers, signed_headers, payload)
    date = utc_date(timestamp)
    scope = credential_scope(date, service)
    to_sign = string_to_sign(timestamp, scope, canonical)
    sig = signature(signing_key(secret_key, date, service), to_sign)
    return Signed(canonical, to_sign, sig, authorization(secret_id, scope, signed, sig))

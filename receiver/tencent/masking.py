"""Showing secrets safely: masked in plans and listings, scrubbed from any error text."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_QUERY_PARAMS = frozenset({"token"})


def mask(value: str) -> str:
    """`ab****yz`: enough to tell two keys apart, too little to use; short values fully hidden."""
    if not value:
        return "(none)"
    if len(value) < 8:
        return "****"
    return f"{value[:2]}****{value[-2:]}"


def mask_url(url: str) -> str:
    """The URL with the value of its `token` query parameter masked."""
    if not url:
        return url
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (name, mask(value) if name.lower() in _SECRET_QUERY_PARAMS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in `text` (Tencent may echo parameters back)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text

"""An async TencentCloud API 3.0 client on a borrowed aiohttp session.

    client = TencentClient(session, TencentCredentials(), endpoint="live.tencentcloudapi.com")
    response = await client.call("DescribeLiveCallbackRules", {}, idempotent=True)

Each call is serialised once, signed (TC3-HMAC-SHA256 over exactly those bytes and header values)
and POSTed as JSON; the `{"Response": ...}` envelope is unwrapped or turned into a typed error
(`receiver.tencent.errors`). Every attempt first takes a token from the action's bucket
(`receiver.tencent.limits`), so the documented per-action rates are kept. Retries, with
exponential backoff and full jitter:

* throttling (`RequestLimitExceeded`) and connections that were never established are retried for
  every action: the request was provably not processed;
* `InternalError`, 5xx answers, timeouts and dropped connections are retried only for idempotent
  actions (Describe*, Modify*), because the request may have taken effect. A Create or Delete
  surfaces the error instead, and the next registration run starts again from a fresh Describe, so
  a lost answer never creates a second template.

The client never logs bodies or headers (they carry the CallbackKey and the signature).
"""

from __future__ import annotations

import asyncio
import html
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from receiver import __version__
from receiver.settings import DEFAULT_ENDPOINT, Endpoint, parse_endpoint
from receiver.tencent.credentials import TencentCredentials
from receiver.tencent.errors import (
    TencentApiError,
    TencentError,
    TencentHttpError,
    TencentNetworkError,
)
from receiver.tencent.limits import ActionLimits
from receiver.tencent.tc3 import sign

log = logging.getLogger(__name__)

SERVICE = "live"
VERSION = "2018-08-01"
# Sent and signed byte for byte; aiohttp must not add a charset after signing.
CONTENT_TYPE = "application/json"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry; tests inject `sleep` and `random` to run instantly."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, retry: int) -> float:
        """Full jitter: a random wait up to the capped exponential step (AWS architecture blog)."""
        step: float = min(self.max_delay, self.base_delay * 2**retry)
        return self.random() * step


class TencentClient:
    """Calls TencentCloud API 3.0 actions of one service; holds no connection of its own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: TencentCredentials,
        *,
        endpoint: Endpoint | str = DEFAULT_ENDPOINT,
        service: str = SERVICE,
        version: str = VERSION,
        language: str = "en-US",
        timeout_seconds: float = 15.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        limits: ActionLimits | None = None,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
        self.service = service
        self.version = version
        self._language = language
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._retry = retry or RetryPolicy()
        self._clock = clock
        # Share one `ActionLimits` between the clients of a process; a client made alone gets
        # its own buckets at the documented rates.
        self.limits = limits if limits is not None else ActionLimits()

    def __repr__(self) -> str:
        return f"TencentClient(endpoint={str(self.endpoint)!r}, service={self.service!r})"

    async def call(
        self,
        action: str,
        params: Mapping[str, Any],
        *,
        idempotent: bool,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Run `action` and return the inside of `Response`; raise `TencentError` on failure.

        `region` (`X-TC-Region`) for an action that needs one (DescribeBackupStreamList), over
        the credentials' own region; the callback and stream actions take none.
        """
        body = orjson.dumps(dict(params))
        retry = 0
        while True:
            try:
                return await self._attempt(action, body, region)
            except TencentError as exc:
                if not _retryable(exc, idempotent) or retry + 1 >= self._retry.attempts:
                    raise
                delay = self._retry.delay(retry)
                log.warning(
                    "%s failed (%s), retry %d/%d in %.1f s",
                    action,
                    _short(exc),
                    retry + 1,
                    self._retry.attempts - 1,
                    delay,
                )
                await self._retry.sleep(delay)
                retry += 1

    async def _attempt(self, action: str, body: bytes, region: str | None) -> dict[str, Any]:
        await self.limits.acquire(action)
        status, content_type, raw = await self._raw_request(action, body, region)
        return parse_response(action, status, content_type, raw)

    async def _raw_request(
        self, action: str, body: bytes, region: str | None = None
    ) -> tuple[int, str, bytes]:
        """The only place that does HTTP: sign `body` now, POST it, return the raw answer."""
        timestamp = int(self._clock())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Host": self.endpoint.host,
            "X-TC-Action": action,
            "X-TC-Version": self.version,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Language": self._language,
            "User-Agent": f"receiver/{__version__}",
        }
        region = region or self._credentials.region
        if region:
            headers["X-TC-Region"] = region
        if self._credentials.session_token is not None:
            headers["X-TC-Token"] = self._credentials.session_token.get_secret_value()
        headers["Authorization"] = sign(
            secret_id=self._credentials.secret_id,
            secret_key=self._credentials.secret_key.get_secret_value(),
            service=self.service,
            timestamp=timestamp,
            headers=headers,
            payload=body,
        ).authorization
        try:
            async with self._session.post(
                self.endpoint.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                raw = await response.read()
                return response.status, response.headers.get("Content-Type", ""), raw
        except aiohttp.ClientConnectorError as exc:
            raise TencentNetworkError(action, _reason(exc), sent=False) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TencentNetworkError(action, _reason(exc), sent=True) from exc


def parse_response(action: str, status: int, content_type: str, raw: bytes) -> dict[str, Any]:
    """Unwrap `{"Response": {...}}`; an `Error` inside it, or any other body, raises."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        raise TencentHttpError(action, status, content_type, _snippet(raw))
    request_id = response.get("RequestId")
    request_id = request_id if isinstance(request_id, str) else None
    error = response.get("Error")
    if error is not None:
        code = error.get("Code") if isinstance(error, dict) else None
        message = error.get("Message") if isinstance(error, dict) else None
        raise TencentApiError.create(
            action,
            code if isinstance(code, str) and code else "UnknownError",
            message if isinstance(message, str) else "",
            request_id,
        )
    if status != 200:
        raise TencentHttpError(action, status, content_type, _snippet(raw))
    if "DeprecatedWarning" in response:
        log.warning("%s is deprecated: %s", action, response["DeprecatedWarning"])
    return response


def _retryable(exc: TencentError, idempotent: bool) -> bool:
    return exc.transient and (idempotent or not exc.ambiguous)


def _snippet(raw: bytes, limit: int = 120) -> str:
    """Enough of a non-API body to recognise it: an HTML page's title, or its first words."""
    title = _TITLE.search(raw)
    text = (title.group(1) if title else raw[:1000]).decode("utf-8", "replace")
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _short(exc: TencentError) -> str:
    if isinstance(exc, TencentApiError):
        return f"{exc.code}, RequestId {exc.request_id}"
    if isinstance(exc, TencentHttpError):
        return f"HTTP {exc.status}"
    return type(exc).__name__

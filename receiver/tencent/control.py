"""Stream control: DropLiveStream, ForbidLiveStream, ResumeLiveStream, and the two look-ups that
tell whether one took effect (DescribeLiveForbidStreamList, DescribeLiveStreamState).

Facts (team reference `tencent-stream-apis.md` §1.4, §1.7; seed 001): all take `DomainName`,
`AppName`, `StreamName` (required); Drop on an inactive stream "will be considered successful";
Forbid's `ResumeTime` is UTC (`YYYY-MM-DDThh:mm:ssZ`, default 7 days, at most 90), its `Reason`
at most 2,048 bytes, and it applies to the stream name across domains unless Tencent enabled
strict matching; the forbid list's times are Beijing time.

None of the three changes is called idempotent here: the client then retries them only when
the request provably was not processed (throttled, never connected). After an ambiguous failure
(a timeout, a lost answer) the caller looks first (`is_forbidden`, `state`) instead of calling
again blindly.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from receiver.tencent.client import TencentClient
from receiver.times import iso_utc

StreamState = Literal["active", "inactive", "forbid"]
_FORBID_PAGE: Final = 100  # DescribeLiveForbidStreamList: PageSize 1-100


class StreamControl:
    """Typed stream-control actions on a `TencentClient` (which owns rates and retries)."""

    def __init__(self, client: TencentClient) -> None:
        self.client = client

    async def drop(self, domain: str, app: str, stream: str) -> dict[str, Any]:
        return await self.client.call(
            "DropLiveStream", _names(domain, app, stream), idempotent=False
        )

    async def forbid(
        self, domain: str, app: str, stream: str, *, resume_at: float | None, reason: str | None
    ) -> dict[str, Any]:
        params = _names(domain, app, stream)
        if resume_at is not None:
            params["ResumeTime"] = _utc_second(resume_at)
        if reason:
            params["Reason"] = reason
        return await self.client.call("ForbidLiveStream", params, idempotent=False)

    async def resume(self, domain: str, app: str, stream: str) -> dict[str, Any]:
        return await self.client.call(
            "ResumeLiveStream", _names(domain, app, stream), idempotent=False
        )

    async def is_forbidden(self, domain: str, app: str, stream: str) -> bool:
        """Whether the forbid list holds this stream (`DomainName` may be null there: then the
        name alone matches, as Forbid applies to the name across domains by default)."""
        page = 1
        while True:
            answer = await self.client.call(
                "DescribeLiveForbidStreamList",
                {"PageNum": page, "PageSize": _FORBID_PAGE, "StreamName": stream},
                idempotent=True,
            )
            for item in answer.get("ForbidStreamList") or []:
                if not isinstance(item, dict) or item.get("StreamName") != stream:
                    continue
                if item.get("DomainName") in (None, "", domain) and item.get("AppName") in (
                    None,
                    "",
                    app,
                ):
                    return True
            total_pages = answer.get("TotalPage")
            if not isinstance(total_pages, int) or page >= total_pages:
                return False
            page += 1

    async def state(self, domain: str, app: str, stream: str) -> StreamState:
        answer = await self.client.call(
            "DescribeLiveStreamState", _names(domain, app, stream), idempotent=True
        )
        value = answer.get("StreamState")
        if value not in ("active", "inactive", "forbid"):
            raise ValueError(f"DescribeLiveStreamState answered an unknown state {value!r}")
        return value  # type: ignore[no-any-return]


def _names(domain: str, app: str, stream: str) -> dict[str, Any]:
    return {"DomainName": domain, "AppName": app, "StreamName": stream}


def _utc_second(seconds: float) -> str:
    """`2019-01-08T10:00:00Z`: the API's UTC form, whole seconds."""
    text = iso_utc(float(int(seconds)))
    assert text is not None
    return text

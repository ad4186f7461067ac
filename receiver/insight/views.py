"""`GET /api/streams/{stream_id}/quality` and `GET /api/audience`, behind the API token.

Tencent unreachable, throttled or refusing: the last answer, marked `stale` with the reason, or
503 `tencent_unavailable` with the reason; no credentials configured: 503
`tencent_not_configured`. Never a 500 for Tencent's sake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from receiver.errors import ApiUnavailable
from receiver.history.params import parse_query, validate_query
from receiver.history.views import StreamPath
from receiver.insight.audience import (
    Audience,
    AudienceGroup,
    AudienceQuery,
    audience_of,
    audience_window,
    fetch_groups,
)
from receiver.insight.cache import AnswerCache, Unavailable
from receiver.insight.quality import (
    Quality,
    QualityPoint,
    QualityQuery,
    fetch_points,
    pg_quality_window,
    quality_of,
    quality_window,
)
from receiver.keys import CLOCK
from receiver.storage.context import get_reader
from receiver.storage.postgres.context import get_postgres
from receiver.tencent.monitoring import Monitoring
from receiver.web.openapi import Operation, Response, document
from receiver.web.responses import ApiErrorBody


@dataclass
class Insight:
    """The monitoring client and the answer caches of one app."""

    monitoring: Monitoring
    quality: AnswerCache[list[QualityPoint]] = field(default_factory=AnswerCache)
    audience: AnswerCache[list[AudienceGroup]] = field(default_factory=AnswerCache)


INSIGHT = web.AppKey("insight", Insight)


def _insight(request: web.Request) -> Insight:
    insight = request.config_dict.get(INSIGHT)
    if insight is None:
        raise ApiUnavailable(
            "tencent_not_configured",
            "no Tencent Cloud API credentials: set TENCENTCLOUD_SECRET_ID and "
            "TENCENTCLOUD_SECRET_KEY for receiver serve",
        )
    return insight


def _unavailable(exc: Unavailable) -> ApiUnavailable:
    error = "tencent_throttled" if exc.throttled else "tencent_unavailable"
    return ApiUnavailable(error, exc.reason)


async def get_quality(request: web.Request) -> web.Response:
    query = parse_query(QualityQuery, request.query)
    path = validate_query(StreamPath, request.match_info)
    insight = _insight(request)
    now = request.config_dict[CLOCK]()
    postgres = get_postgres(request)
    if postgres is not None:
        window = await pg_quality_window(postgres.pool, path.stream_id, query, now)
    else:
        window = await quality_window(get_reader(request), path.stream_id, query, now)
    try:
        answer = await insight.quality.get(
            window.key, window.ttl, lambda: fetch_points(insight.monitoring, window)
        )
    except Unavailable as exc:
        raise _unavailable(exc) from None
    return _json(quality_of(window, answer))


async def get_audience(request: web.Request) -> web.Response:
    query = parse_query(AudienceQuery, request.query)
    insight = _insight(request)
    window = audience_window(query, request.config_dict[CLOCK]())
    try:
        answer = await insight.audience.get(
            window.key, window.ttl, lambda: fetch_groups(insight.monitoring, window)
        )
    except Unavailable as exc:
        raise _unavailable(exc) from None
    return _json(audience_of(window, answer))


def _json(model: Quality | Audience) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


_COMMON: Final = {
    400: Response("A parameter is not acceptable; `message` names it.", ApiErrorBody),
    401: Response(
        "No `Authorization: Bearer <API token>`, or the wrong token.",
        ApiErrorBody,
        headers={"WWW-Authenticate": 'The scheme to use: Bearer realm="receiver".'},
    ),
    503: Response(
        "Tencent could not answer (unreachable, throttled, refused) and nothing is cached, or "
        "no credentials are configured; `message` says which.",
        ApiErrorBody,
    ),
}


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/streams/{stream_id}/quality", get_quality, name="api_quality")
    document(
        app,
        "GET",
        "/api/streams/{stream_id}/quality",
        Operation(
            summary="Push quality of a stream's session",
            description="DescribeStreamPushInfoList for the open or last push session (or "
            "`sequence`): frame rates, bitrates, resolution, client and server IPs over time, "
            "for the session's last 3 hours within Tencent's 7 days. Cached (30 s while the "
            "session is open); when Tencent cannot answer, the last answer marked `stale`, "
            "else 503.",
            tag="insight",
            path=StreamPath,
            query=QualityQuery,
            secured=True,
            responses={
                200: Response("The session's push quality.", Quality),
                404: Response("No such stream or session, or older than 7 days.", ApiErrorBody),
                **_COMMON,
            },
        ),
    )
    app.router.add_get("/api/audience", get_audience, name="api_audience")
    document(
        app,
        "GET",
        "/api/audience",
        Operation(
            summary="Audience by province and ISP",
            description="DescribeGroupProIspPlayInfoList: bandwidth, flux, requests and "
            "online viewers per 5-minute point for each province and ISP, per play domain. "
            "Window: default the last hour, at most 31 days within the last 31 days; cached "
            "by window.",
            tag="insight",
            query=AudienceQuery,
            secured=True,
            responses={200: Response("Audience per province and ISP.", Audience), **_COMMON},
        ),
    )

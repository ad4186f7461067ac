"""`POST /api/events/replay` and `GET /api/events/replay/{id}`: replays as background jobs."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from pydantic import Field, ValidationError

from receiver.errors import ApiBadRequest, ApiConflict, ApiNotFound, ApiUnavailable
from receiver.keys import METRICS
from receiver.logs import printable
from receiver.outbox.broker import REPLAY_JOBS
from receiver.outbox.publisher import BrokerUnavailable
from receiver.outbox.replay import ReplayFilter
from receiver.outbox.replay_jobs import JobsUnavailable, ReplayBusy, ReplayJobs
from receiver.web.openapi import Operation, Response, document
from receiver.web.responses import ApiErrorBody, Resource, explain

log = logging.getLogger(__name__)


class ReplayJobView(Resource):
    """A replay job and its progress (`ReplayJob.as_json`)."""

    id: str
    state: str = Field(description="`running`, `done`, `failed` or `cancelled`.")
    filter: dict[str, object] = Field(description="The selection, as given.")
    matched: int = Field(description="Stored events that match the selection.")
    published: int
    unroutable: int
    failed: int
    started_at: str | None
    finished_at: str | None
    error: str | None


class ReplayJobBody(Resource):
    replay: ReplayJobView


class ReplayPath(Resource):
    job_id: str


_MAX_BODY = 64 * 1024


async def start_replay(request: web.Request) -> web.Response:
    """Validate the filter, start the job; 202 with the job and its status URL."""
    jobs = _jobs(request)
    selection = _parse_filter(request, await request.read())
    try:
        job = await jobs.start(selection)
    except ReplayBusy as exc:
        raise ApiConflict(
            "replay_running", f"replay {exc.running} is still running; wait for it to finish"
        ) from None
    except BrokerUnavailable as exc:
        raise ApiUnavailable("broker_unavailable", str(exc)) from None
    except JobsUnavailable as exc:
        raise _database_unavailable(exc) from None
    location = request.app.router["replay_job"].url_for(job_id=job.id)
    return web.json_response(
        {"replay": job.as_json()}, status=202, headers={"Location": str(location)}
    )


async def replay_status(request: web.Request) -> web.Response:
    try:
        job = await _jobs(request).get(request.match_info["job_id"])
    except JobsUnavailable as exc:
        raise _database_unavailable(exc) from None
    if job is None:
        raise ApiNotFound("replay_not_found", "no replay with this id (finished ones expire)")
    return web.json_response({"replay": job})


def _database_unavailable(exc: JobsUnavailable) -> ApiUnavailable:
    log.warning("replay request answered 503: %s", printable(str(exc)))
    return ApiUnavailable("database_unavailable", str(exc))


def _jobs(request: web.Request) -> ReplayJobs:
    jobs = request.config_dict.get(REPLAY_JOBS)
    if jobs is None:
        raise ApiUnavailable(
            "broker_disabled", "publishing is off: set RECEIVER_AMQP_URL to enable replays"
        )
    return jobs


def _parse_filter(request: web.Request, raw: bytes) -> ReplayFilter:
    try:
        if len(raw) > _MAX_BODY:
            raise ValueError(f"the body exceeds {_MAX_BODY} bytes")
        data = orjson.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return ReplayFilter.model_validate(data)
    except (orjson.JSONDecodeError, ValueError) as exc:
        message = _explain(exc)
        request.app[METRICS].api_refusals.labels("replay_invalid").inc()
        log.warning(
            "refused replay request from %s: %s",
            printable(request.remote or "?"),
            printable(message),
        )
        raise ApiBadRequest("replay_invalid", message) from None


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return explain(exc)
    if isinstance(exc, orjson.JSONDecodeError):
        return f"the body is not valid JSON: {exc}"
    return str(exc)


_UNAUTHORIZED = Response(
    "No `Authorization: Bearer <API token>`, or the wrong token.", ApiErrorBody
)
_UNAVAILABLE = Response(
    "Publishing is off (no RECEIVER_AMQP_URL), the broker is unreachable, or (PostgreSQL) the "
    "database is.",
    ApiErrorBody,
)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/events/replay", start_replay, name="replay")
    app.router.add_get("/api/events/replay/{job_id}", replay_status, name="replay_job")
    document(
        app,
        "POST",
        "/api/events/replay",
        Operation(
            summary="Re-publish stored events",
            description="Starts a background job that re-publishes the selected events with "
            "their original `message_id` and the header `x-replay: true`. One job at a time.",
            tag="replay",
            body=ReplayFilter,
            secured=True,
            responses={
                202: Response(
                    "The job was started.",
                    ReplayJobBody,
                    headers={"Location": "Where to poll the job."},
                ),
                400: Response("The selection is not acceptable.", ApiErrorBody),
                401: _UNAUTHORIZED,
                409: Response("A replay is already running.", ApiErrorBody),
                503: _UNAVAILABLE,
            },
        ),
    )
    document(
        app,
        "GET",
        "/api/events/replay/{job_id}",
        Operation(
            summary="Progress of a replay job",
            tag="replay",
            path=ReplayPath,
            secured=True,
            responses={
                200: Response("The job.", ReplayJobBody),
                401: _UNAUTHORIZED,
                404: Response("No replay with this id.", ApiErrorBody),
                503: _UNAVAILABLE,
            },
        ),
    )

"""`POST /api/events/replay` and `GET /api/events/replay/{id}`: replays as background jobs."""

from __future__ import annotations

import logging
from typing import ClassVar

import orjson
from aiohttp import web
from pydantic import ValidationError

from receiver.apiauth import require_api_token
from receiver.errors import ReceiverError
from receiver.keys import PUBLISH_METRICS, REPLAY_JOBS
from receiver.publisher import BrokerUnavailable
from receiver.replay import ReplayFilter
from receiver.replayjobs import ReplayBusy, ReplayJobs

log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024


class ReplayInvalid(ReceiverError):
    status: ClassVar[int] = 400


class ReplayConflict(ReceiverError):
    status: ClassVar[int] = 409


class ReplayNotFound(ReceiverError):
    status: ClassVar[int] = 404


class BrokerNotAvailable(ReceiverError):
    status: ClassVar[int] = 503


async def start_replay(request: web.Request) -> web.Response:
    """Validate the filter, start the job; 202 with the job and its status URL."""
    require_api_token(request)
    jobs = _jobs(request)
    selection = _parse_filter(request, await request.read())
    try:
        job = await jobs.start(selection)
    except ReplayBusy as exc:
        raise ReplayConflict(
            "replay_running", f"replay {exc.running} is still running; wait for it to finish"
        ) from None
    except BrokerUnavailable as exc:
        raise BrokerNotAvailable("broker_unavailable", str(exc)) from None
    location = request.app.router["replay_job"].url_for(job_id=job.id)
    return web.json_response(
        {"replay": job.as_json()}, status=202, headers={"Location": str(location)}
    )


async def replay_status(request: web.Request) -> web.Response:
    require_api_token(request)
    job = _jobs(request).get(request.match_info["job_id"])
    if job is None:
        raise ReplayNotFound("replay_not_found", "no replay with this id (finished ones expire)")
    return web.json_response({"replay": job.as_json()})


def _jobs(request: web.Request) -> ReplayJobs:
    jobs = request.config_dict.get(REPLAY_JOBS)
    if jobs is None:
        raise BrokerNotAvailable(
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
        request.config_dict[PUBLISH_METRICS].api_refusals.labels("replay_invalid").inc()
        log.warning("refused replay request from %s: %s", request.remote, message)
        raise ReplayInvalid("replay_invalid", message) from None


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"{where}: {message}" if where else message)
        return "; ".join(parts)
    if isinstance(exc, orjson.JSONDecodeError):
        return f"the body is not valid JSON: {exc}"
    return str(exc)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/events/replay", start_replay, name="replay")
    app.router.add_get("/api/events/replay/{job_id}", replay_status, name="replay_job")

"""A local stand-in for the CSS callback-management API (service `live`, version 2018-08-01).

It behaves like the real service where the reference (§4) documents it, and is strict where the
real one would be: every request must carry a valid TC3-HMAC-SHA256 signature under the secret it
knows (checked with its own implementation of the algorithm, written from the documentation, not
with `receiver.tencent.tc3`), a timestamp within 5 minutes and the `Host` it really listens on.
It keeps templates and rules in memory, enforces the documented limits (50 templates, name
charset and length, at least one URL, one template per domain+AppName rule), takes exactly the
parameters the official SDK's request models have (checked against them by the tests), checks
their types (URLs are strings, `RecordExceptionLevels` an array of `error`/`warning`/`info`),
answers with the documented envelopes and error codes, answers `RequestLimitExceeded` to a call
beyond its action's documented rate (`QPS`, over the last second), records every call, and can be
told to fail the next N calls (throttling, internal errors, an HTML 502 from a proxy) or to hold
requests until released.

Where the documentation is silent, the choice is written next to the code (e.g. which code a
duplicate rule gets).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import orjson
from aiohttp import web

SECRET_ID = "AKIDfakeReceiverTests0123456789"
SECRET_KEY = "fakeSecretKeyForReceiverTests42"
VERSION = "2018-08-01"
MAX_TEMPLATES = 50
CLOCK_WINDOW_SECONDS = 300
BEIJING = timezone(timedelta(hours=8))

URL_FIELDS = (
    "StreamBeginNotifyUrl",
    "StreamEndNotifyUrl",
    "RecordNotifyUrl",
    "RecordStatusNotifyUrl",
    "SnapshotNotifyUrl",
    "PornCensorshipNotifyUrl",
    "PushExceptionNotifyUrl",
    "AudioAuditNotifyUrl",
    "RecordExceptionNotifyUrl",
    "StreamMixNotifyUrl",
)
WRITABLE = {"TemplateName", "Description", "CallbackKey", "RecordExceptionLevels", *URL_FIELDS}
EXCEPTION_LEVELS = ("error", "warning", "info")
# `CallBackTemplateInfo` documents the levels as error/alarm while Create/Modify take
# error/warning/info: the fake answers `alarm` for `warning`, the reading a client must survive.
LEVEL_READ_AS = {"warning": "alarm"}
# The CN page allows Chinese characters in names; the fake accepts them, like the real service.
NAME = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fff]+")
DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})"
)

# The documented per-action rates (team reference `tencent-stream-apis.md` §1.0, §2, §3), written
# out here rather than imported, so the fake judges the client's limiter instead of sharing it.
# An action not listed is not rate-limited by the fake.
QPS: dict[str, int] = {
    "DescribeLiveStreamEventList": 300,
    "DescribeLiveStreamOnlineList": 100,
    "DescribeLiveStreamPublishedList": 300,
    "DescribeLiveStreamState": 300,
    "DescribeLiveForbidStreamList": 100,
    "DescribeBackupStreamList": 20,
    "DropLiveStream": 100,
    "ResumeLiveStream": 100,
    "ForbidLiveStream": 200,
    "DescribeStreamPushInfoList": 40,
    "DescribeLiveStreamPushInfoList": 500,
    "DescribeGroupProIspPlayInfoList": 200,
}
Handler = Callable[[dict[str, Any]], dict[str, Any]]

# `UrlNotSafe` echoes the call's StreamBeginNotifyUrl in its message, as real messages sometimes
# echo parameters: what the client shows people must be scrubbed of secrets.
# `ResourceNotFound.ForbidService` is a permanent failure (the account may not use CSS).
Failure = Literal[
    "RequestLimitExceeded",
    "InternalError",
    "http502",
    "UrlNotSafe",
    "ResourceNotFound.ForbidService",
]


@dataclass
class Injection:
    failure: Failure
    times: int
    action: str | None
    after_processing: bool  # the action takes effect, but its answer is lost


@dataclass(frozen=True)
class Call:
    action: str
    params: dict[str, Any]
    region: str | None = None  # X-TC-Region: actions that need a region check it here


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FakeTencent:
    secret_id: str = SECRET_ID
    secret_key: str = SECRET_KEY
    session_token: str | None = None  # when set, X-TC-Token must carry it
    clock: Callable[[], float] = time.time
    templates: dict[int, dict[str, Any]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)  # authenticated calls that reached an action
    refused: list[str] = field(default_factory=list)  # error codes of authentication refusals
    hold: asyncio.Event | None = None  # when set, requests wait for it before being handled
    url: str = ""  # filled in by the fixture once the server listens
    qps: dict[str, int] = field(default_factory=lambda: dict(QPS))  # {} turns throttling off
    throttled: list[str] = field(default_factory=list)  # actions refused for their rate
    _injections: list[Injection] = field(default_factory=list)
    _handlers: dict[str, Handler] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    _next_id: int = 1000

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self._handle)
        return app

    # --- test controls -------------------------------------------------------------------

    def fail(
        self,
        failure: Failure,
        *,
        times: int = 1,
        action: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Fail the next `times` calls (of `action`, or of any action) with `failure`."""
        self._injections.append(Injection(failure, times, action, after_processing))

    def register(self, action: str, handler: Handler) -> None:
        """Serve `action` with `handler` (params in, the inside of `Response` out; raise
        `ApiError` for an API error): how the stream and monitoring actions plug in."""
        self._handlers[action] = handler

    def add_template(self, **fields: Any) -> int:
        """Seed a template directly, as if created in the console."""
        template_id = self._new_id()
        self.templates[template_id] = {"TemplateId": template_id, **fields}
        return template_id

    def add_rule(self, domain: str, app: str, template_id: int) -> None:
        stamp = self._beijing_now()
        self.rules.append(
            {
                "DomainName": domain,
                "AppName": app,
                "TemplateId": template_id,
                "CreateTime": stamp,
                "UpdateTime": stamp,
            }
        )

    def actions(self) -> list[str]:
        return [call.action for call in self.calls]

    def mutations(self) -> list[str]:
        """The calls that change state: a second, idempotent run must make none."""
        return [a for a in self.actions() if a.startswith(("Create", "Modify", "Delete"))]

    def template_named(self, name: str) -> dict[str, Any]:
        (found,) = [t for t in self.templates.values() if t.get("TemplateName") == name]
        return found

    def bindings(self) -> dict[tuple[str, str], int]:
        return {(r["DomainName"], r["AppName"]): r["TemplateId"] for r in self.rules}

    # --- the HTTP side -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        raw = await request.read()
        if self.hold is not None:
            await self.hold.wait()
        try:
            self._authenticate(request, raw)
        except ApiError as exc:
            self.refused.append(exc.code)
            return _error(exc, request_id)
        action = request.headers.get("X-TC-Action", "")
        try:
            if request.headers.get("X-TC-Version") != VERSION:
                raise ApiError("NoSuchVersion", "The requested version does not exist.")
            params = orjson.loads(raw)
            if not isinstance(params, dict):
                raise ApiError("InvalidParameter", "The request body must be a JSON object.")
        except orjson.JSONDecodeError:
            return _error(ApiError("InvalidParameter", "Malformed JSON body."), request_id)
        except ApiError as exc:
            return _error(exc, request_id)
        self.calls.append(Call(action, params, request.headers.get("X-TC-Region")))
        if self._over_rate(action):
            self.throttled.append(action)
            return _injected("RequestLimitExceeded", request_id, params)
        injection = self._take_injection(action)
        if injection is not None and not injection.after_processing:
            return _injected(injection.failure, request_id, params)
        try:
            result = self._dispatch(action, params)
        except ApiError as exc:
            return _error(exc, request_id)
        if injection is not None:
            return _injected(injection.failure, request_id, params)
        return _json({"Response": {**result, "RequestId": request_id}})

    def _authenticate(self, request: web.Request, raw: bytes) -> None:
        """TC3-HMAC-SHA256 verification as the documentation describes it."""
        match = AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if match is None:
            raise ApiError("AuthFailure.SignatureFailure", "Malformed Authorization header.")
        try:
            timestamp = int(request.headers.get("X-TC-Timestamp", ""))
        except ValueError:
            raise ApiError("AuthFailure.SignatureFailure", "Invalid X-TC-Timestamp.") from None
        if abs(self.clock() - timestamp) > CLOCK_WINDOW_SECONDS:
            raise ApiError(
                "AuthFailure.SignatureExpire",
                "Signature expired. Timestamp and server time cannot differ by more than 5 "
                "minutes.",
            )
        if match["id"] != self.secret_id:
            raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        if match["date"] != date or match["service"] != "live":
            raise ApiError("AuthFailure.SignatureFailure", "Credential scope mismatch.")
        signed = match["signed"].split(";")
        if signed != sorted(signed) or not {"content-type", "host"} <= set(signed):
            raise ApiError(
                "AuthFailure.SignatureFailure",
                "SignedHeaders must be sorted and include content-type and host.",
            )
        listening = request.transport.get_extra_info("sockname") if request.transport else None
        if listening is None or request.headers.get("Host") != f"{listening[0]}:{listening[1]}":
            raise ApiError("AuthFailure.SignatureFailure", "Host does not match the endpoint.")
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            raise ApiError("AuthFailure.SignatureFailure", "Unsupported Content-Type.")
        lines = []
        for name in signed:
            if name not in request.headers:
                raise ApiError("AuthFailure.SignatureFailure", f"Signed header {name} missing.")
            lines.append(f"{name}:{request.headers[name].strip().lower()}\n")
        canonical = "\n".join(
            ["POST", "/", "", "".join(lines), ";".join(signed), hashlib.sha256(raw).hexdigest()]
        )
        to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                str(timestamp),
                f"{date}/live/tc3_request",
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("TC3" + self.secret_key).encode()
        for part in (date, "live", "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["sig"]):
            raise ApiError(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature "
                "is correct.",
            )
        if self.session_token is not None and request.headers.get("X-TC-Token") != (
            self.session_token
        ):
            raise ApiError("AuthFailure.TokenFailure", "The token is invalid or expired.")

    def _over_rate(self, action: str) -> bool:
        """More calls of `action` in the last second than its documented rate allows."""
        limit = self.qps.get(action)
        if limit is None:
            return False
        now = time.monotonic()
        recent = self._recent.setdefault(action, deque())
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= limit:
            return True
        recent.append(now)
        return False

    def _take_injection(self, action: str) -> Injection | None:
        for injection in self._injections:
            if injection.times > 0 and injection.action in (None, action):
                injection.times -= 1
                return injection
        return None

    # --- the actions ---------------------------------------------------------------------

    def _dispatch(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = {
            "CreateLiveCallbackTemplate": self._create_template,
            "ModifyLiveCallbackTemplate": self._modify_template,
            "DeleteLiveCallbackTemplate": self._delete_template,
            "DescribeLiveCallbackTemplate": self._describe_template,
            "DescribeLiveCallbackTemplates": self._describe_templates,
            "CreateLiveCallbackRule": self._create_rule,
            "DeleteLiveCallbackRule": self._delete_rule,
            "DescribeLiveCallbackRules": self._describe_rules,
        }.get(action) or self._handlers.get(action)
        if handler is None:
            raise ApiError("InvalidAction", f"The action {action!r} does not exist.")
        return handler(params)

    def _create_template(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, WRITABLE)
        if "TemplateName" not in params:
            raise ApiError("MissingParameter", "The TemplateName parameter is required.")
        self._check_template_fields(params)
        if not any(params.get(name) for name in URL_FIELDS):
            raise ApiError("InvalidParameter", "At least one callback URL is required.")
        if len(self.templates) >= MAX_TEMPLATES:
            raise ApiError("InternalError.ConfOutLimit", "Template quota exceeded.")
        return {"TemplateId": self.add_template(**params)}

    def _modify_template(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, (WRITABLE - {"StreamMixNotifyUrl"}) | {"TemplateId"})
        template = self._template(params)
        updates = {k: v for k, v in params.items() if k != "TemplateId"}
        self._check_template_fields(updates)
        template.update(updates)
        return {}

    def _delete_template(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"TemplateId"})
        template = self._template(params)
        if any(rule["TemplateId"] == template["TemplateId"] for rule in self.rules):
            raise ApiError("FailedOperation.ConfInUsed", "The template is bound to a rule.")
        del self.templates[template["TemplateId"]]
        return {}

    def _describe_template(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"TemplateId"})
        return {"Template": _info(self._template(params))}

    def _describe_templates(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, set())
        return {"Templates": [_info(t) for _, t in sorted(self.templates.items())]}

    def _create_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"DomainName", "AppName", "TemplateId"})
        domain, app = _required_str(params, "DomainName"), _required_str(params, "AppName")
        template_id = params.get("TemplateId")
        if not isinstance(template_id, int) or template_id not in self.templates:
            raise ApiError("InvalidParameter.ConfNotFound", "The template does not exist.")
        if not DOMAIN.fullmatch(domain):
            raise ApiError("InvalidParameter.DomainFormatError", "Invalid domain name.")
        if (domain, app) in self.bindings():
            # Undocumented which code the real service uses here; this one is in its code list.
            raise ApiError("FailedOperation.RuleAlreadyExist", "A rule already exists.")
        self.add_rule(domain, app, template_id)
        return {}

    def _delete_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, {"DomainName", "AppName"})
        key = (_required_str(params, "DomainName"), _required_str(params, "AppName"))
        if key not in self.bindings():
            raise ApiError("FailedOperation.NotFound", "The rule does not exist.")
        self.rules = [r for r in self.rules if (r["DomainName"], r["AppName"]) != key]
        return {}

    def _describe_rules(self, params: dict[str, Any]) -> dict[str, Any]:
        _only(params, set())
        return {"Rules": [dict(rule) for rule in self.rules]}

    def _template(self, params: dict[str, Any]) -> dict[str, Any]:
        template_id = params.get("TemplateId")
        if template_id is None:
            raise ApiError("MissingParameter", "The TemplateId parameter is required.")
        if not isinstance(template_id, int) or isinstance(template_id, bool):
            raise ApiError("InvalidParameterValue", "TemplateId must be an integer.")
        if template_id not in self.templates:
            raise ApiError("InternalError.ConfNotFound", "The template does not exist.")
        return self.templates[template_id]

    def _check_template_fields(self, params: dict[str, Any]) -> None:
        for name, limit in (("TemplateName", 255), ("Description", 1024)):
            value = params.get(name)
            if value is None or (name == "Description" and value == ""):
                continue
            if not isinstance(value, str) or not NAME.fullmatch(value):
                raise ApiError("InvalidParameter.ArgsNotMatch", f"Invalid {name}.")
            if len(value.encode()) > limit:
                raise ApiError("InvalidParameter.ArgsNotMatch", f"{name} is too long.")
        for name in URL_FIELDS:
            value = params.get(name)
            if value is not None and not isinstance(value, str):
                raise ApiError("InvalidParameterValue", f"{name} must be a string.")
            if value and not value.startswith(("http://", "https://")):
                # Echoes the parameter, as real error messages sometimes do: callers must scrub.
                raise ApiError("InvalidParameter.UrlNotSafe", f"Callback URL {value} is unsafe.")
        levels = params.get("RecordExceptionLevels")
        if levels is not None and (
            not isinstance(levels, list) or not all(level in EXCEPTION_LEVELS for level in levels)
        ):
            raise ApiError(
                "InvalidParameterValue",
                "RecordExceptionLevels must be an array of error, warning and info.",
            )

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _beijing_now(self) -> str:
        return datetime.fromtimestamp(self.clock(), BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _info(template: dict[str, Any]) -> dict[str, Any]:
    """`CallBackTemplateInfo`: unset URLs are "" (PushException/AudioAudit: null), key in clear."""
    info = {
        "TemplateId": template["TemplateId"],
        "TemplateName": template.get("TemplateName", ""),
        "Description": template.get("Description", ""),
        "CallbackKey": template.get("CallbackKey", ""),
    }
    for name in URL_FIELDS:
        if name == "RecordStatusNotifyUrl":
            continue  # not part of CallBackTemplateInfo (SDK 3.1.195): cannot be read back
        nullable = name in ("PushExceptionNotifyUrl", "AudioAuditNotifyUrl")
        info[name] = template.get(name) or (None if nullable else "")
    levels = template.get("RecordExceptionLevels") or []
    info["RecordExceptionLevels"] = [LEVEL_READ_AS.get(level, level) for level in levels]
    return info


def _only(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError("UnknownParameter", f"Unknown parameter {unknown[0]}.")


def _required_str(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise ApiError("MissingParameter", f"The {name} parameter is required.")
    if not isinstance(value, str):
        raise ApiError("InvalidParameterValue", f"{name} must be a string.")
    return value


def _error(exc: ApiError, request_id: str) -> web.Response:
    # Business errors come back with HTTP 200 (the SDK treats any other status as a network error).
    return _json(
        {"Response": {"Error": {"Code": exc.code, "Message": exc.message}, "RequestId": request_id}}
    )


def _json(document: dict[str, Any]) -> web.Response:
    # Exactly `application/json`, as the service sends it (the SDK checks for that value).
    return web.Response(body=orjson.dumps(document), content_type="application/json")


def _injected(failure: Failure, request_id: str, params: dict[str, Any]) -> web.Response:
    if failure == "http502":
        return web.Response(
            status=502,
            content_type="text/html",
            text="<html><head><title>502 Bad Gateway</title></head>"
            "<body><center><h1>502 Bad Gateway</h1></center><hr>stgw</body></html>",
        )
    if failure == "UrlNotSafe":
        url = params.get("StreamBeginNotifyUrl")
        return _error(
            ApiError("InvalidParameter.UrlNotSafe", f"Callback URL {url} is unsafe."), request_id
        )
    message = {
        "RequestLimitExceeded": "Your current request times equals to `200` in a second.",
        "InternalError": "An internal error has occurred. Retry your request.",
        "ResourceNotFound.ForbidService": "The live service is forbidden for this account.",
    }[failure]
    return _error(ApiError(failure, message), request_id)

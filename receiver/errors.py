"""Exceptions that end a request with a specific answer, mapped to HTTP in one middleware.

    ReceiverError                 base: HTTP status, machine name, human message
    ├── AuthenticationFailed      401: signature or URL token missing, malformed, wrong or stale
    ├── PayloadInvalid            400: body is not a JSON object with a usable `event_type`
    ├── PayloadTooLarge           413: body longer than RECEIVER_MAX_BODY_BYTES
    ├── BodyTimeout               408: the client did not send its body in time
    ├── StorageUnavailable        503: the event could not be committed, so CSS must retry
    │   └── CommitFailed          the same answer; keeps the database's error for readiness/logs
    ├── Overloaded                503: too many bodies are being received at once; retry
    └── ApiError                  a refused `/api` request, answered `{"error", "message"}`
        ├── ApiBadRequest         400: a query parameter, body or cursor is not acceptable
        ├── ApiUnauthorized       401: no or wrong `Authorization: Bearer <API token>`
        ├── ApiNotFound           404: the event, stream or replay does not exist
        ├── ApiConflict           409: the request conflicts with running work (a replay)
        └── ApiUnavailable        503: the feature needs something that is off (the broker)
    StartupError                  not a request: `receiver serve` cannot start (one line, exit 2)
    └── StartupRefused            the data directory is locked by another instance, or damaged

Each refusal carries `reason`, the label of `receiver_refusals_total`, so that the metric, the log
line and the JSON answer always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal

RefusalReason = Literal[
    "missing", "malformed", "mismatch", "expired", "future", "token", "body", "too_large"
]


class ReceiverError(Exception):
    """A request failure with a precise status, machine name and message for the caller."""

    status: ClassVar[int] = 500
    # Extra response headers (read-only: shared by every instance of the class).
    headers: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message

    def as_json(self) -> dict[str, object]:
        """The response body: `code` is non-zero for every refusal (CSS ignores it)."""
        return {"code": self.status, "error": self.error, "message": self.message}


class Refusal(ReceiverError):
    """A refusal of the caller's input, counted under `reason`."""

    def __init__(self, reason: RefusalReason, error: str, message: str) -> None:
        super().__init__(error, message)
        self.reason: RefusalReason = reason


class AuthenticationFailed(Refusal):
    status = 401


class PayloadInvalid(Refusal):
    status = 400

    def __init__(self, error: str, message: str) -> None:
        super().__init__("body", error, message)


class PayloadTooLarge(Refusal):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            "too_large", "body_too_large", f"request body exceeds the limit of {limit} bytes"
        )


class BodyTimeout(Refusal):
    status = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            "body", "body_timeout", f"request body was not received within {seconds:g} s"
        )


class StorageUnavailable(ReceiverError):
    status = 503

    def __init__(self, message: str = "the event could not be stored; retry later") -> None:
        super().__init__("storage_unavailable", message)


class Overloaded(ReceiverError):
    status = 503

    def __init__(self) -> None:
        super().__init__(
            "overloaded", "too many request bodies are being received at once; retry later"
        )


class ApiError(ReceiverError):
    """A refused `/api/...` request. Its body has no `code`: that field exists only for CSS."""

    def as_json(self) -> dict[str, object]:
        return {"error": self.error, "message": self.message}


class ApiBadRequest(ApiError):
    status = 400


class ApiUnauthorized(ApiError):
    status = 401
    # RFC 6750: tell the client which scheme the API expects.
    headers: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"WWW-Authenticate": 'Bearer realm="receiver"'}
    )


class ApiNotFound(ApiError):
    status = 404


class ApiConflict(ApiError):
    status = 409


class ApiUnavailable(ApiError):
    status = 503


class StartupError(ReceiverError):
    """The service cannot start: the address is taken, the database is locked or damaged, ...

    Never an HTTP answer (no request has arrived yet): `receiver serve` logs `message`, one
    line saying what to change, and exits 2 instead of a traceback. Start-up refusals subclass it.
    """

    status = 503


class CommitFailed(StorageUnavailable):
    """The writer could not commit: answered like any `StorageUnavailable` (the database's own
    error is not the caller's business), but `detail` keeps it for `/readyz` and the logs."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail


class StartupRefused(StartupError):
    """The service must not start on this data directory (another instance holds it, the
    database is missing or damaged). `message` is one line for the operator; `receiver serve`
    prints it and exits 2, no traceback: starting anyway would hide or lose stored events."""

    def __init__(self, message: str) -> None:
        super().__init__("startup_refused", message)

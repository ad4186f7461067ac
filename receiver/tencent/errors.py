"""What can go wrong when talking to TencentCloud API 3.0, as one small exception tree.

    TencentError                  base; `str()` is one line, never a secret
    ├── TencentApiError           the service answered `Response.Error`: code, message, request_id
    │   ├── TencentAuthError      `AuthFailure.*` / `UnauthorizedOperation*`, with what to fix
    │   └── (transient flag)      `RequestLimitExceeded[.*]` and plain `InternalError`
    ├── TencentHttpError          a non-JSON answer (an HTML 502 from a proxy, a bare 404, ...)
    ├── TencentNetworkError       no answer at all: connection refused, reset, timed out
    └── RegistrationError         registration refused before changing anything (foreign
        │                         binding without --force, template quota, ...)
        └── InvalidRegistration   what was asked is invalid in itself (name, key, URL, domain):
                                  only a change of configuration helps (the CLI exits 2)

`transient` says whether a retry can help. `ambiguous` says whether the request may have been
processed even though it failed (the answer was lost or the server failed mid-way): only
idempotent actions may retry such failures blindly.
"""

from __future__ import annotations

from typing import Final

_TRANSIENT_CODES: Final = frozenset({"RequestLimitExceeded", "InternalError"})

# What to do about each authentication failure; the service's own message is kept too.
_AUTH_HINTS: Final[dict[str, str]] = {
    "AuthFailure.SignatureFailure": "the signature was rejected: TENCENTCLOUD_SECRET_KEY does not "
    "belong to TENCENTCLOUD_SECRET_ID (or the request was altered on the way)",
    "AuthFailure.SignatureExpire": "the request timestamp is more than 5 minutes away from "
    "Tencent's clock: synchronise this machine's clock (NTP) and try again",
    "AuthFailure.SecretIdNotFound": "TENCENTCLOUD_SECRET_ID does not exist or is disabled",
    "AuthFailure.InvalidSecretId": "TENCENTCLOUD_SECRET_ID is not a valid API key id",
    "AuthFailure.TokenFailure": "the session token is invalid or expired: refresh the temporary "
    "credentials (TENCENTCLOUD_SESSION_TOKEN)",
    "AuthFailure.MFAFailure": "the account requires MFA for this operation",
    "AuthFailure.UnauthorizedOperation": "the API key is not allowed to call this action: grant "
    "it the live callback permissions in CAM",
    "UnauthorizedOperation": "the API key is not allowed to call this action: grant it the live "
    "callback permissions in CAM",
}


class TencentError(Exception):
    """Base of every failure of the Tencent client and the registration built on it."""

    transient: bool = False
    ambiguous: bool = False


class TencentApiError(TencentError):
    """The service answered with `{"Response": {"Error": {...}, "RequestId": ...}}`."""

    def __init__(self, action: str, code: str, message: str, request_id: str | None) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id
        self.transient = is_transient_code(code)
        # A throttled request was refused before it was processed; an internal error may not be.
        self.ambiguous = code == "InternalError"
        super().__init__(self._describe())

    @property
    def hint(self) -> str | None:
        return None

    def _describe(self) -> str:
        text = f"{self.action}: {self.code}: {self.hint or self.message}"
        if self.hint and self.message:
            text += f" (Tencent says: {self.message})"
        return text + f" [RequestId {self.request_id or 'none'}]"

    @classmethod
    def create(
        cls, action: str, code: str, message: str, request_id: str | None
    ) -> TencentApiError:
        """The most specific error class for `code`."""
        if code.startswith("AuthFailure") or code.startswith("UnauthorizedOperation"):
            return TencentAuthError(action, code, message, request_id)
        return cls(action, code, message, request_id)


class TencentAuthError(TencentApiError):
    """The credentials, the clock or the permissions are wrong; retrying will not help."""

    @property
    def hint(self) -> str | None:
        return _AUTH_HINTS.get(self.code) or _AUTH_HINTS.get(self.code.split(".")[0])


class TencentHttpError(TencentError):
    """An answer that is not the API's JSON envelope, such as a proxy's HTML error page."""

    def __init__(self, action: str, status: int, content_type: str, snippet: str) -> None:
        self.action = action
        self.status = status
        self.content_type = content_type
        self.snippet = snippet
        self.transient = status >= 500 or status == 429
        self.ambiguous = status >= 500
        super().__init__(
            f"{action}: HTTP {status} with a non-API body ({content_type or 'no content type'})"
            + (f": {snippet}" if snippet else "")
        )


class TencentNetworkError(TencentError):
    """No answer: `ambiguous` unless the connection was never established."""

    transient = True

    def __init__(self, action: str, reason: str, *, sent: bool) -> None:
        self.action = action
        self.ambiguous = sent
        super().__init__(f"{action}: network error: {reason}")


class RegistrationError(TencentError):
    """A registration that was refused locally, before anything was changed."""


class InvalidRegistration(RegistrationError):
    """The requested values are invalid whatever CSS holds: fix the configuration, not CSS."""


def is_transient_code(code: str) -> bool:
    """Throttling (`RequestLimitExceeded` and its sub-codes) and plain `InternalError`.

    `InternalError.ConfOutLimit`, `InternalError.ConfInUsed` and the other sub-codes are business
    errors that happen to share the prefix; retrying them gives the same answer.
    """
    return code in _TRANSIENT_CODES or code.startswith("RequestLimitExceeded.")

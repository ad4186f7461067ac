"""Registration in the background of `receiver serve`, reported through `/readyz`.

It never delays or blocks callbacks: the service is ready before the first API call, and a
failure is only ever `degraded`. Transient failures (network, throttling, Tencent's internal
errors) are retried with capped exponential backoff; a failure that would repeat identically
(wrong credentials, a conflicting binding, an invalid name) stops at once, logged with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from receiver.health import ComponentCheck
from receiver.tencent.actions import LiveCallbackApi
from receiver.tencent.client import RetryPolicy
from receiver.tencent.credentials import TencentCredentials
from receiver.tencent.errors import TencentApiError, TencentError
from receiver.tencent.masking import redact
from receiver.tencent.register import RegistrationPlan, RegistrationRequest, register

log = logging.getLogger(__name__)

State = Literal["pending", "registered", "retrying", "failed"]


@dataclass(frozen=True, slots=True)
class TencentSetup:
    """What `create_app` needs to auto-register: credentials and how patiently to retry."""

    credentials: TencentCredentials
    # Per API call, inside the client: a few quick retries.
    client_retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Per registration attempt: slower, for outages that outlast the client's retries.
    registration_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=10, base_delay=5.0, max_delay=300.0)
    )


class AutoRegistrar:
    """Runs one registration with retries; `check()` is its readiness report."""

    def __init__(
        self, api: LiveCallbackApi, request: RegistrationRequest, retry: RetryPolicy
    ) -> None:
        self._api = api
        self._request = request
        self._retry = retry
        self.state: State = "pending"
        self.attempts = 0
        self.template_id: int | None = None
        self.error: dict[str, Any] | None = None
        self.finished = asyncio.Event()  # set once registered or given up; tests await it

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.finished.set()

    async def _run(self) -> None:
        while True:
            self.attempts += 1
            try:
                outcome = await register(self._api, self._request, on_plan=self._log_plan)
            except TencentError as exc:
                self.error = self._describe(exc)
                if not exc.transient or self.attempts >= self._retry.attempts:
                    self.state = "failed"
                    log.error("registration with Tencent CSS failed: %s", self.error["error"])
                    return
                self.state = "retrying"
                delay = self._retry.delay(self.attempts - 1)
                log.warning(
                    "registration with Tencent CSS failed (%s); retrying in %.0f s",
                    self.error["error"],
                    delay,
                )
                await self._retry.sleep(delay)
                continue
            except Exception:
                # A bug must not take the receiver down with it: report it and stop trying.
                log.exception("registration with Tencent CSS crashed")
                self.state = "failed"
                self.error = {"error": "internal error; see the log"}
                return
            self.state, self.error, self.template_id = "registered", None, outcome.template_id
            log.info(
                "registered with Tencent CSS: template %s, domains %s (%s)",
                outcome.template_id,
                ", ".join(self._request.domains),
                "changed" if outcome.applied else "already up to date",
            )
            return

    async def check(self) -> ComponentCheck:
        details: dict[str, Any] = {
            "state": self.state,
            "attempts": self.attempts,
            "domains": list(self._request.domains),
        }
        if self.template_id is not None:
            details["template_id"] = self.template_id
        if self.error:
            details.update(self.error)
        return ComponentCheck("ok" if self.state == "registered" else "degraded", details)

    def _describe(self, exc: TencentError) -> dict[str, Any]:
        error: dict[str, Any] = {"error": redact(str(exc), self._request.secrets())}
        if isinstance(exc, TencentApiError):
            error["code"] = exc.code
            error["request_id"] = exc.request_id
        return error

    def _log_plan(self, plan: RegistrationPlan) -> None:
        for line in plan.describe():
            log.info("registration plan: %s", line)

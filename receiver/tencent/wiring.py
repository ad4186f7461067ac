"""Cleanup contexts for the Tencent API: a shared HTTP client session and rate buckets, the
auto-registrar, and the clients the moderation executor and the insight views share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from receiver.keys import HEALTH_CHECKS, SETTINGS
from receiver.settings import Settings
from receiver.tencent.actions import LiveCallbackApi
from receiver.tencent.autoregister import AutoRegistrar, TencentSetup
from receiver.tencent.client import RetryPolicy, TencentClient
from receiver.tencent.credentials import TencentCredentials
from receiver.tencent.limits import ActionLimits
from receiver.tencent.register import RegistrationRequest

CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
# The per-action rate buckets every Tencent client of this process shares.
TENCENT_LIMITS = web.AppKey("tencent_limits", ActionLimits)
# Present when the service has Tencent Cloud credentials (auto-registration and a moderation
# policy that calls the API require them; push quality and audience use them when present).
TENCENT = web.AppKey("tencent", TencentSetup)
REGISTRAR = web.AppKey("registrar", AutoRegistrar)


async def client_session_ctx(app: web.Application) -> AsyncIterator[None]:
    """One outgoing HTTP session for the whole app (aiohttp's advice), closed at shutdown."""
    async with aiohttp.ClientSession() as session:
        app[CLIENT_SESSION] = session
        app[TENCENT_LIMITS] = ActionLimits(share=app[SETTINGS].tencent_rate_share)
        yield


async def auto_register_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start registration in the background and yield at once: serving never waits for it."""
    settings = app[SETTINGS]
    setup = app[TENCENT]
    client = tencent_client(app)
    registrar = AutoRegistrar(
        LiveCallbackApi(client), registration_request(settings), setup.registration_retry
    )
    app[REGISTRAR] = registrar
    app[HEALTH_CHECKS]["registration"] = registrar.check
    task = asyncio.create_task(registrar.run(), name="tencent-auto-register")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tencent_client(app: web.Application) -> TencentClient:
    """A client on the app's session, credentials, retry policy and shared rate buckets."""
    settings = app[SETTINGS]
    setup = app[TENCENT]
    return TencentClient(
        app[CLIENT_SESSION],
        setup.credentials,
        endpoint=settings.tencent_endpoint,
        timeout_seconds=settings.tencent_timeout_seconds,
        retry=setup.client_retry,
        limits=app[TENCENT_LIMITS],
    )


def command_client(
    session: aiohttp.ClientSession, settings: Settings, credentials: TencentCredentials
) -> TencentClient:
    """A client for one CLI command: its own session and rate buckets (a process of its own)."""
    return TencentClient(
        session,
        credentials,
        endpoint=settings.tencent_endpoint,
        timeout_seconds=settings.tencent_timeout_seconds,
        retry=client_retry(settings),
        limits=ActionLimits(share=settings.tencent_rate_share),
    )


def moderation_calls_api(settings: Settings) -> bool:
    """A moderation policy that acts for real (not off, not a dry run) needs credentials."""
    return settings.moderation_action != "none" and not settings.moderation_dry_run


def registration_request(settings: Settings, *, force: bool = False) -> RegistrationRequest:
    """The registration `settings` describe; the CLI overlays its options on the same settings."""
    if not settings.public_url:
        raise ValueError("no public URL: pass --public-url or set RECEIVER_PUBLIC_URL")
    if not settings.tencent_domains:
        raise ValueError("no push domain: pass --domain or set RECEIVER_TENCENT_DOMAINS")
    return RegistrationRequest(
        public_url=settings.public_url,
        domains=tuple(settings.tencent_domains),
        callback_key=settings.current_callback_key,
        app=settings.tencent_app,
        template_name=settings.tencent_template_name,
        url_token=settings.url_token,
        force=force,
    )


def client_retry(settings: Settings) -> RetryPolicy:
    """The per-call retry policy `settings` ask for."""
    return RetryPolicy(
        attempts=settings.tencent_retry_attempts, base_delay=settings.tencent_retry_base_seconds
    )

"""The callback pipeline, free of HTTP: authenticate and parse, then hand over to the writer.

Only what can refuse a request happens here (the answer must say why). Normalisation, the
deduplication key and the model validation, which never refuse a body, run later in the fold
(`receiver.storage.fold`), off the acknowledgement's path; it also counts what was stored and
what was a duplicate. Order matters: the URL token (when configured) is checked before the body
is even parsed, so an unauthenticated caller learns nothing about our parser; the signature
needs the parsed body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from receiver.callbacks.body import parse_body, read_event_type
from receiver.callbacks.clock import ClockWatch
from receiver.callbacks.signature import SignatureVerifier, parse_t, verify_token
from receiver.errors import AuthenticationFailed, Refusal, StorageUnavailable
from receiver.events.kinds import UNSIGNED_EVENT_TYPES, kind_of
from receiver.logs import printable
from receiver.metrics import Metrics
from receiver.settings import Settings
from receiver.storage.intake import Intake

log = logging.getLogger(__name__)


class Ingestor:
    """Turns raw callback bytes into a stored event, or raises the refusal to answer with."""

    def __init__(
        self,
        settings: Settings,
        writer: Intake,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        keys = settings.key_values()
        if not keys:
            raise ValueError("no callback key configured: RECEIVER_CALLBACK_KEYS is required")
        self._signatures = SignatureVerifier(keys, grace_seconds=settings.signature_grace_seconds)
        self._token = settings.url_token.get_secret_value() if settings.url_token else None
        self._writer = writer
        self._metrics = metrics
        self._clock = clock
        # Whether the signed callbacks say this server's clock is wrong (a readiness check).
        self.clock_watch = ClockWatch(metrics)

    @property
    def wants_token(self) -> bool:
        """Whether the URL token matters (reading the query string costs a URL parse)."""
        return self._token is not None

    async def ingest(self, raw: bytes, *, token: str | None, path_kind: str | None) -> str:
        """Authenticate one callback body and put it on disk; returns the id it was given.

        Raises a `Refusal` (the caller counts it with `count_refusal`, knowing the peer) or
        `StorageUnavailable`.
        """
        number = self._authenticate(raw, token)
        try:
            return await self._writer.submit(number, raw, self._clock(), path_kind)
        except StorageUnavailable:
            self._metrics.callback(kind_of(number), "unavailable")
            raise

    def count_refusal(self, refusal: Refusal, *, peer: str | None, path_kind: str | None) -> None:
        """Count and log a refusal: every refusal is visible in metrics and logs."""
        self._metrics.refusals.labels(refusal.reason).inc()
        self._metrics.callback("unknown", "refused")
        log.warning(
            "refused callback from %s on %s: %s (%s)",
            printable(peer or "?"),
            f"/callbacks/{path_kind}" if path_kind else "/callbacks",
            refusal.error,
            printable(refusal.message),
        )

    def _authenticate(self, raw: bytes, token: str | None) -> int:
        """The body's event_type, once the body is known to come from CSS."""
        if self._token is not None:
            verify_token(token, self._token)
        body = parse_body(raw)
        number = read_event_type(body)
        if number in UNSIGNED_EVENT_TYPES:
            if self._token is None:
                raise AuthenticationFailed(
                    "token",
                    "token_required",
                    f"event_type {number} carries no signature, so it is accepted only with a "
                    "URL token; set RECEIVER_URL_TOKEN and add ?token=... to its callback URL",
                )
        else:
            now = self._clock()
            try:
                t = self._signatures.verify(body, now=now)
            except AuthenticationFailed as refusal:
                if refusal.reason in ("expired", "future"):  # the signature matched: from CSS
                    self.clock_watch.observe(parse_t(body["t"]), now, refusal.reason)
                raise
            self.clock_watch.observe(t, now)
        return number

"""Publishing to RabbitMQ with publisher confirms, many messages in flight, and hard timeouts.

One `Publisher` owns one plain (non-robust) aio-pika connection and one confirm-mode channel.
It does not reconnect by itself: its owner (the outbox relay, or a replay) decides when to try
again. A robust connection hides outages inside `publish`, which can then raise or hang until it
has reconnected (aio-pika issues #508, #636); a plain one fails fast and visibly.

Messages go out in the order given, on one channel, so RabbitMQ enqueues them in that order. Up
to `in_flight` wait for their confirm at once. Every confirm wait has a deadline (`timeout`
after the message was sent). An outcome is one of:

    confirmed    the broker acked it: it is in every queue it was routed to
    unroutable   mandatory publish returned: no queue is bound for its routing key
    failed       nack, timeout, channel or connection loss: the broker may or may not have it

After the first failure nothing more is sent; the messages already in flight are still settled
(the ones the broker confirms are reported as confirmed), then `BrokerUnavailable` is raised and
the connection is closed, so the owner retries from the oldest unconfirmed message.

The hot path publishes on the channel's underlying aiormq channel, many messages per socket
write (`_send`): aio-pika's `Exchange.publish` waits for each frame to be flushed while holding the
channel lock, and even aiormq's `basic_publish(wait=False)` costs a task, a lock round and a socket
write per message, several times the CPU of the batched write (`python -m bench drain`), with
nothing gained, since the
confirm is what we wait for anyway. `_send` relies on aiormq's channel bookkeeping (delivery tags,
confirmation futures, message ids of returned messages) exactly as `basic_publish` uses it;
pyproject.toml bounds aiormq to the major version this was written against.

During an outage aiormq logs an ERROR for every failed connection attempt and for the broker's
close, with tracebacks, although each one is expected and handled: the owner's reconnect loop
reports the outage itself (the relay: one WARNING when it begins, one INFO when it ends). So
`Publisher` quiets those few library records (`OutageNoiseFilter`): they become DEBUG records,
kept when DEBUG logging is on. Every other library record (a blocked connection, an unexpected
frame) is left as it is, and a wording that changes in a new aiormq shows up again, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Final

import aio_pika
import aiormq
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from yarl import URL

from receiver.outbox.envelope import Outgoing
from receiver.outbox.metrics import PublishMetrics

log = logging.getLogger(__name__)

# How often settled outcomes are handed to the owner (marks become one UPDATE batch each).
_REPORT_EVERY: Final = 512


# aiormq's records that only say the broker is unreachable or went away (6.8 to 7.x wording).
_OUTAGE_RECORDS: Final = (
    "error when creating transport",  # each failed connection attempt
    "Unexpected connection close from remote",  # the broker closed it (e.g. shutting down)
    "Cancelling cause reader exited abnormally",  # the socket died under the reader
    "Server connection %r was stuck",  # missed heartbeats
)
_NOISY_LOGGERS: Final = ("aiormq.connection",)


class OutageNoiseFilter(logging.Filter):
    """Turns aiormq's per-attempt connection errors into DEBUG records (dropped unless DEBUG is
    on), since the owner of the connection reports the outage once, with its reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not isinstance(record.msg, str):
            return True
        if not record.msg.startswith(_OUTAGE_RECORDS):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        # The level was checked before this filter ran; check it again for the new level.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_outage_noise() -> None:
    """Install `OutageNoiseFilter` on aiormq's connection logger, once per process."""
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OutageNoiseFilter) for f in logger.filters):
            logger.addFilter(OutageNoiseFilter())


class BrokerUnavailable(Exception):
    """The broker could not be reached, or a publish was not confirmed; try again later."""


class Outcome(enum.Enum):
    CONFIRMED = "confirmed"
    UNROUTABLE = "unroutable"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of one message; `error` names the failure (or 'unroutable')."""

    message: Outgoing
    outcome: Outcome
    error: str | None = None


@dataclass(slots=True)
class PublishSummary:
    confirmed: int = 0
    unroutable: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        """Messages the broker took responsibility for (confirmed, or returned as unroutable)."""
        return self.confirmed + self.unroutable


OnSettled = Callable[[Sequence[Settled]], None]


def mask_url(url: str) -> str:
    """The URL with its password replaced, for logs and /readyz."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<invalid URL>"
    return str(parsed.with_password("***")) if parsed.password else str(parsed)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a broker error for logs and `last_error`."""
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"{name}: {text}"[:300] if text else name


class Publisher:
    """Confirmed, windowed publishing to one exchange over one connection."""

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        in_flight: int = 256,
        timeout: float = 15.0,
        metrics: PublishMetrics | None = None,
        connection_name: str = "receiver",
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self.exchange = exchange
        self.display_url = mask_url(url)
        self._in_flight = in_flight
        self._timeout = timeout
        self._metrics = metrics
        self._connection_name = connection_name
        # Called when the connection or channel closes (the relay wakes up to reconnect).
        self.on_lost = on_lost
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._pika_channel: aio_pika.abc.AbstractChannel | None = None
        self._channel: aiormq.Channel | None = None
        self._unroutable_seen: set[str] = set()
        quiet_outage_noise()

    @property
    def connected(self) -> bool:
        channel = self._channel
        connection = self._connection
        return (
            channel is not None
            and not channel.is_closed
            and connection is not None
            and not connection.is_closed
        )

    async def connect(self) -> None:
        """Open the connection and a confirm-mode channel, and declare the exchange."""
        await self.close()
        # Made here rather than by `aio_pika.connect`, so that a connect that fails or times out
        # half-way can still be closed: an unclosed aio-pika connection schedules its own close
        # when collected, and collected with no loop running that close is never awaited.
        connection = aio_pika.Connection(
            URL(self._url), client_properties={"connection_name": self._connection_name}
        )
        try:
            async with asyncio.timeout(self._timeout):
                await connection.connect()
                channel = await connection.channel(publisher_confirms=True)
                await channel.declare_exchange(
                    self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
                underlay = await channel.get_underlay_channel()
                assert isinstance(underlay, aiormq.Channel)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await connection.close()
            if not isinstance(exc, Exception):
                raise
            raise BrokerUnavailable(
                f"cannot connect to {self.display_url}: {describe(exc)}"
            ) from exc
        connection.close_callbacks.add(self._connection_closed)
        channel.close_callbacks.add(self._closed)
        self._connection = connection
        self._pika_channel = channel
        self._channel = underlay

    async def close(self) -> None:
        """Close the connection (bounded by the timeout); closing it ourselves is no "loss"."""
        connection, self._connection, self._channel = self._connection, None, None
        channel, self._pika_channel = self._pika_channel, None
        if channel is not None:
            channel.close_callbacks.discard(self._closed)
        if connection is not None and not connection.is_closed:
            connection.close_callbacks.discard(self._connection_closed)
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.close()
            except Exception as exc:
                log.debug("closing the broker connection: %s", describe(exc))

    def _connection_closed(self, _: object, reason: object = None, *__: object) -> None:
        # The reason aiormq's (quieted) records would have given; the owner warns about the outage.
        why = describe(reason) if isinstance(reason, BaseException) else "closed"
        log.info("broker connection to %s lost: %s", self.display_url, why)
        self._closed()

    def _closed(self, *_: object) -> None:
        if self.on_lost is not None:
            self.on_lost()

    async def publish(
        self, batches: AsyncGenerator[Sequence[Outgoing], None], on_settled: OnSettled
    ) -> PublishSummary:
        """Publish every message of `batches` in order; report outcomes through `on_settled`.

        Raises `BrokerUnavailable` after reporting, if any message failed.
        """
        channel = self._channel
        if channel is None or not self.connected:
            raise BrokerUnavailable(f"not connected to {self.display_url}")
        window: deque[_InFlight] = deque()
        settled: list[Settled] = []
        summary = PublishSummary()
        failure: str | None = None
        try:
            async with aclosing(batches) as stream:
                async for batch in stream:
                    queued = deque(batch)
                    while queued:
                        free = self._in_flight - len(window)
                        if free == 0:
                            failure = await self._settle(channel, window, settled, summary)
                            if failure is not None:
                                break
                            continue
                        if channel.is_closed:  # closed by the broker: sending more would fail
                            failure = _close_reason(channel)
                            break
                        sending = [queued.popleft() for _ in range(min(free, len(queued)))]
                        await _send(channel, self.exchange, sending, window)
                    if failure is not None:
                        break
                    if len(settled) >= _REPORT_EVERY:
                        on_settled(settled)
                        settled = []
            while window:
                failure = await self._settle(channel, window, settled, summary) or failure
        finally:
            for entry in window:
                entry.future.cancel()
                _forget(channel, entry)
            if settled:
                on_settled(settled)
        if failure is not None:
            reason = _close_reason(channel) if channel.is_closed else failure
            await self.close()
            raise BrokerUnavailable(f"publishing to {self.display_url} failed: {reason}")
        return summary

    async def _settle(
        self,
        channel: aiormq.Channel,
        window: deque[_InFlight],
        settled: list[Settled],
        summary: PublishSummary,
    ) -> str | None:
        """Wait for the oldest message's confirm (under its deadline), then take every further
        one already confirmed (one ack frame often confirms many); returns the first failure."""
        entry = window.popleft()
        try:
            if not entry.future.done():
                async with asyncio.timeout(entry.sent_at + self._timeout - time.monotonic()):
                    await entry.future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                window.appendleft(entry)  # still in flight: the caller cancels and forgets it
                raise  # we are being cancelled, not just this publish
        except Exception:  # noqa: S110 - the outcome is read from the future below
            pass
        failure = self._outcome(channel, entry, settled, summary)
        while window and window[0].future.done():
            failure = self._outcome(channel, window.popleft(), settled, summary) or failure
        return failure

    def _outcome(
        self,
        channel: aiormq.Channel,
        entry: _InFlight,
        settled: list[Settled],
        summary: PublishSummary,
    ) -> str | None:
        """Record what became of one message whose wait is over; returns its failure, if any."""
        _forget(channel, entry)
        message, future = entry.message, entry.future
        if not future.done():
            error = "timeout"
        elif future.cancelled():  # by our deadline (the wait cancels it), or by a closed channel
            if time.monotonic() >= entry.sent_at + self._timeout:
                error = "timeout"
            else:
                error = _close_reason(channel) if channel.is_closed else "cancelled"
        elif (exc := future.exception()) is not None:
            if isinstance(exc, aiormq.exceptions.DeliveryError):
                error = f"nack: {type(exc.frame).__name__}"
            else:
                # A closed channel fails every pending publish; its close reason is the real cause.
                error = _close_reason(channel) if channel.is_closed else describe(exc)
        else:
            result = future.result()
            if isinstance(result, DeliveredMessage):
                summary.unroutable += 1
                settled.append(Settled(message, Outcome.UNROUTABLE, "unroutable"))
                self._count_unroutable(message)
                return None
            summary.confirmed += 1
            settled.append(Settled(message, Outcome.CONFIRMED))
            if self._metrics is not None:
                self._metrics.confirm_seconds.observe(time.monotonic() - entry.sent_at)
            return None
        summary.failed += 1
        settled.append(Settled(message, Outcome.FAILED, error))
        if self._metrics is not None:
            self._metrics.failures.labels(_reason(error)).inc()
        return error

    def _count_unroutable(self, message: Outgoing) -> None:
        key = message.routing_key
        if self._metrics is not None:
            self._metrics.unroutable.labels(key).inc()
        if key not in self._unroutable_seen:
            self._unroutable_seen.add(key)
            log.warning(
                "no queue is bound to exchange %r for routing key %r: such events are returned "
                "by the broker, marked unroutable and not retried (logged once per key)",
                self.exchange,
                key,
            )


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A message sent and waiting for its confirm; `tag` is its delivery tag on the channel."""

    message: Outgoing
    tag: int
    sent_at: float
    future: asyncio.Future[Any]


async def _send(
    channel: aiormq.Channel, exchange: str, messages: list[Outgoing], window: deque[_InFlight]
) -> None:
    """Publish `messages` (mandatory, confirmed) in one write to the connection.

    What `aiormq.Channel.basic_publish` does for one message, done for many at once: take the
    next delivery tags, register each confirmation future where the channel's frame reader
    resolves it (ack, nack, or the returned message of an unroutable publish, found by
    message_id), and queue the frames of all of them as one chunk for the connection's writer.
    Publishing them one by one costs a task, a lock round and a socket write each, several
    times the CPU per message (`python -m bench drain`), which the relay takes from the HTTP
    process. The channel lock keeps any other publisher on the channel out meanwhile.
    """
    async with channel.lock:
        frames: list[Any] = []
        sent_at = time.monotonic()
        first = channel.delivery_tag + 1
        entries: list[_InFlight] = []
        try:
            for tag, message in enumerate(messages, start=first):
                future = channel.create_future()
                channel.confirmations[tag] = future
                channel.message_id_delivery_tag[message.message_id] = tag
                entries.append(_InFlight(message, tag, sent_at, future))
                frames.append(
                    spec.Basic.Publish(
                        exchange=exchange, routing_key=message.routing_key, mandatory=True
                    )
                )
                frames.append(
                    ContentHeader(properties=message.properties, body_size=len(message.body))
                )
                frames.extend(_body_frames(channel, message.body))
            channel.delivery_tag = first + len(messages) - 1
            await channel.write_queue.put(
                ChannelFrame.marshall(channel_number=channel.number, frames=frames)
            )
        except BaseException:
            # Nothing reached the broker: give the delivery tags back, still under the lock.
            channel.delivery_tag = first - 1
            for entry in entries:
                channel.confirmations.pop(entry.tag, None)
                entry.future.cancel()
                _forget(channel, entry)
            raise
    window.extend(entries)


def _body_frames(channel: aiormq.Channel, body: bytes) -> list[ContentBody]:
    size = channel.max_content_size
    return [ContentBody(body[start : start + size]) for start in range(0, len(body), size)]


def _forget(channel: aiormq.Channel, entry: _InFlight) -> None:
    """Drop the message_id → delivery tag entry of a settled (or abandoned) message, as
    `basic_publish` does; the channel's reader pops the confirmation itself when the ack comes."""
    if channel.message_id_delivery_tag.get(entry.message.message_id) == entry.tag:
        del channel.message_id_delivery_tag[entry.message.message_id]


def _close_reason(channel: aiormq.Channel) -> str:
    """Why the broker (or the connection) closed `channel`, e.g. 'NOT_FOUND - no exchange'."""
    closing = channel.closing
    if not closing.done() or closing.cancelled():
        return "channel closed"
    exc = closing.exception()
    return describe(exc) if exc is not None else "channel closed"


def _reason(error: str) -> str:
    """A small, fixed label set for the failures metric."""
    if error == "timeout":
        return "timeout"
    if error.startswith("nack"):
        return "nack"
    if error.startswith("Channel"):
        return "channel_closed"
    return "connection"

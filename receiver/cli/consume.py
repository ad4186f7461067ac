"""`receiver consume`: watch published events, one JSON line each, from a durable queue.

The quickest way for an operator to see what consumers get, and a small working consumer:
declare (or reuse) a durable queue, bind it to the exchange, print, then ack. A message is
acked only after its line was written and flushed, so a crash or a closed pipe leaves it queued.

`--quorum` declares a quorum queue instead, what production consumers should use
(docs/consumers.md): replicated over a RabbitMQ cluster, and with a delivery limit, so a message
that keeps failing (a consumer crashing on it, redelivered again and again) is moved to a
dead-letter queue after `--delivery-limit` attempts instead of blocking the queue for ever.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import aio_pika
import orjson

from receiver.cli.common import configure_logging, load_settings
from receiver.outbox.envelope import REPLAY_HEADER
from receiver.outbox.publisher import describe, mask_url
from receiver.settings import Settings

DEFAULT_QUEUE = "receiver.consume"
DEFAULT_DELIVERY_LIMIT = 5


def quorum_arguments(delivery_limit: int, dead_letter_exchange: str) -> dict[str, Any]:
    """The arguments of a quorum queue whose poison messages go to `dead_letter_exchange`."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": dead_letter_exchange,
    }


def dead_letter_names(queue: str) -> tuple[str, str]:
    """The dead-letter exchange and queue of `queue`: `<queue>.dead` both."""
    return f"{queue}.dead", f"{queue}.dead"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "consume",
        help="print published events as JSON lines (durable queue, ack after print)",
        description="Bind a durable queue to RECEIVER_AMQP_EXCHANGE and print every event "
        "as one JSON line on stdout. Routing keys are css.<kind>, e.g. css.stream_begin.",
    )
    parser.add_argument(
        "--bind",
        action="append",
        metavar="KEY",
        help="binding key, repeatable (default: css.#, every event)",
    )
    parser.add_argument(
        "--queue", default=DEFAULT_QUEUE, help=f"durable queue name (default: {DEFAULT_QUEUE})"
    )
    parser.add_argument("--prefetch", type=int, default=100, help="unacked messages at once")
    parser.add_argument("--count", type=int, default=0, help="exit after N events (0: never)")
    parser.add_argument(
        "--quorum",
        action="store_true",
        help="declare a quorum queue with a delivery limit and a dead-letter queue "
        "(<queue>.dead), as production consumers should (docs/consumers.md)",
    )
    parser.add_argument(
        "--delivery-limit",
        type=int,
        default=DEFAULT_DELIVERY_LIMIT,
        help=f"with --quorum: deliveries before a message is dead-lettered "
        f"(default {DEFAULT_DELIVERY_LIMIT})",
    )
    parser.add_argument(
        "--meta",
        action="store_true",
        help="wrap each event with routing key, message_id, redelivered and x-replay",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    if settings.amqp_url is None:
        print("RECEIVER_AMQP_URL is not set: which broker should I read from?", file=sys.stderr)
        return 2
    if args.prefetch < 1 or args.count < 0 or args.delivery_limit < 1:
        print(
            "--prefetch and --delivery-limit must be at least 1 and --count not negative",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_consume(settings, args))
    except KeyboardInterrupt:
        return 130


async def _consume(settings: Settings, args: argparse.Namespace) -> int:
    assert settings.amqp_url is not None
    url = settings.amqp_url.get_secret_value()
    binds: list[str] = args.bind or ["css.#"]
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        connection = await aio_pika.connect(
            url, client_properties={"connection_name": "receiver consume"}
        )
    except Exception as exc:
        print(f"cannot connect to {mask_url(url)}: {describe(exc)}", file=sys.stderr)
        return 1
    seen = 0
    try:
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=args.prefetch)
            exchange = await channel.declare_exchange(
                settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await _declare_queue(channel, args)
            for key in binds:
                await queue.bind(exchange, key)
            kind = "quorum queue" if args.quorum else "queue"
            print(
                f"consuming {kind} {args.queue!r} bound to {settings.amqp_exchange!r} with "
                f"{', '.join(binds)} at {mask_url(url)} (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            async with queue.iterator() as messages:
                async for message in messages:
                    sys.stdout.write(render(message, meta=args.meta) + "\n")
                    sys.stdout.flush()
                    await message.ack()
                    seen += 1
                    if args.count and seen >= args.count:
                        break
    except asyncio.CancelledError:
        return 0
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        print(
            f"the queue {args.queue!r} exists with other arguments ({describe(exc)}): a queue's "
            "type cannot change; pick another --queue, or delete it first",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        return 0  # the reader went away (e.g. `| head`); the unprinted message stays queued
    except Exception as exc:
        print(f"consuming stopped after {seen} events: {describe(exc)}", file=sys.stderr)
        return 1
    return 0


async def _declare_queue(
    channel: aio_pika.abc.AbstractChannel, args: argparse.Namespace
) -> aio_pika.abc.AbstractQueue:
    if not args.quorum:
        return await channel.declare_queue(args.queue, durable=True)
    exchange_name, queue_name = dead_letter_names(args.queue)
    dead = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(
        queue_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead)
    return await channel.declare_queue(
        args.queue, durable=True, arguments=quorum_arguments(args.delivery_limit, exchange_name)
    )


def render(message: aio_pika.abc.AbstractIncomingMessage, *, meta: bool) -> str:
    """One line of JSON: the event envelope (payload newlines folded), or a wrapper."""
    event: Any
    try:
        event = orjson.loads(message.body)
    except orjson.JSONDecodeError:
        event = {"undecodable_body": message.body.decode("utf-8", "replace")}
    if meta:
        event = {
            "routing_key": message.routing_key,
            "message_id": message.message_id,
            "redelivered": message.redelivered,
            "replay": bool((message.headers or {}).get(REPLAY_HEADER, False)),
            "event": event,
        }
    return orjson.dumps(event).decode()

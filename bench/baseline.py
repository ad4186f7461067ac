"""The baseline: a bare aiohttp server that parses the JSON body and answers `{"code":0}`.

It does what any receiver must do at minimum (read the body, parse it, answer) and nothing
else: no signature, no validation, no storage. The receiver is measured as a ratio of this.
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

from receiver.cli.serve import new_event_loop

_OK = b'{"code":0}'


async def callback(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    if not isinstance(body, dict):
        raise web.HTTPBadRequest
    return web.Response(body=_OK, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/callbacks", callback)
    app.router.add_get("/healthz", healthz)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=new_event_loop()
    )


if __name__ == "__main__":
    main()

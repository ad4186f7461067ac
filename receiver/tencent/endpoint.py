"""Where API requests go: a bare host means HTTPS, a full URL is used as given.

`live.tencentcloudapi.com` (the default, nearest region) and `live.intl.tencentcloudapi.com`
(international accounts) are bare hosts; tests pass `http://127.0.0.1:PORT` to reach a local fake.
The `Host` that is signed, and sent, is the URL's host plus its port when that is not the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from yarl import URL

DEFAULT_ENDPOINT = "live.tencentcloudapi.com"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: URL
    host: str

    def __str__(self) -> str:
        return str(self.url)


def parse_endpoint(value: str) -> Endpoint:
    """Parse `RECEIVER_TENCENT_ENDPOINT`; raise ValueError with the reason if it is unusable."""
    text = value.strip()
    if not text:
        raise ValueError("the Tencent endpoint is empty")
    try:
        url = URL(text if "://" in text else f"https://{text}")
    except ValueError as exc:
        raise ValueError(f"not a valid endpoint {text!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f"endpoint {text!r} must use http or https")
    if not url.host:
        raise ValueError(f"endpoint {text!r} has no host")
    if url.user or url.password or url.query_string or url.fragment or url.path not in ("", "/"):
        raise ValueError(f"endpoint {text!r} must be a host or a base URL, without path or query")
    host = f"[{url.host}]" if ":" in url.host else url.host
    if url.explicit_port is not None and url.explicit_port != _DEFAULT_PORTS[url.scheme]:
        host = f"{host}:{url.explicit_port}"
    return Endpoint(url.with_path("/"), host)

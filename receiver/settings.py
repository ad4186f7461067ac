"""Service configuration: one pydantic-settings model read from `RECEIVER_*` environment variables.

Secrets are `SecretStr`, so neither `repr(settings)` nor a log line can print them. Keys that are
not configured are generated on first start (see `receiver.cli.secretfiles`), never left empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

from receiver.logs import LogFormat
from receiver.storage.engine import Database, PostgresUrl, parse_database

# CSS signs with `t` = send time + 600 s; it retries for about 12 minutes, so a retry can carry a
# `t` that has already passed. This grace keeps late retries acceptable (duplicates are absorbed).
DEFAULT_GRACE_SECONDS = 300
# The documented validity of a signature; a `t` further ahead than this (plus clock skew) is forged
# or comes from a badly wrong clock.
SIGNATURE_VALIDITY_SECONDS = 600
CLOCK_SKEW_SECONDS = 60

# --- Values the settings check, and Tencent registration checks again before any API call. ----
# They live here, below every stage, so that validating a setting needs no stage package.

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_APP = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def check_public_url(value: str) -> str:
    """An http(s) base URL without query or fragment; returned without its trailing slash."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {text!r} must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"public URL {text!r} must not carry a query, fragment or credentials")
    return text.rstrip("/")


def check_domain(value: str) -> str:
    """A push domain, lower-cased; refused before CSS answers InvalidParameter.DomainFormatError."""
    text = value.strip().lower().rstrip(".")
    if len(text) > 253 or not _DOMAIN.fullmatch(text):
        raise ValueError(f"{value!r} is not a domain name")
    return text


def check_app_name(value: str) -> str:
    """The push path (AppName), `live` by default."""
    text = value.strip()
    if not _APP.fullmatch(text):
        raise ValueError(f"{value!r} is not an AppName (1-128 letters, digits, '_', '-', '.')")
    return text


# Where Tencent Cloud API requests go: a bare host means HTTPS, a full URL is used as given.
# `live.tencentcloudapi.com` (the default, nearest region) and `live.intl.tencentcloudapi.com`
# (international accounts) are bare hosts; tests pass `http://127.0.0.1:PORT` to reach a local
# fake. The `Host` that is signed, and sent, is the URL's host plus its port when that is not the
# default.
DEFAULT_ENDPOINT: Final = "live.tencentcloudapi.com"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


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


ModerationKind = Literal["porn", "audio_moderation"]


class Settings(BaseSettings):
    """Everything `receiver serve` needs; tests build it directly with keyword arguments."""

    model_config = SettingsConfigDict(
        env_prefix="RECEIVER_",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
        arbitrary_types_allowed=True,  # PostgresUrl: a URL that never prints its password
    )

    callback_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="CSS template CallbackKeys, comma-separated; the first is current, "
        "the rest are still accepted during rotation.",
    )
    host: str = "0.0.0.0"  # noqa: S104  # a callback receiver has to listen where CSS can reach it
    port: int = Field(default=8080, ge=0, le=65535)
    # A SQLite file, or a postgresql:// URL (receiver.storage.engine): the engine follows.
    database: Annotated[Database, BeforeValidator(parse_database)] = Path("./data/receiver.db")
    # PostgreSQL: how long one commit (connecting included) may take before its callbacks are
    # answered 503; a server that stops answering is then disconnected (storage/postgres/pool.py).
    database_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    signature_grace_seconds: int = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=86_400)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    body_read_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Bodies are read whole before authentication: this caps the memory they take at once.
    max_pending_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1 << 34)
    url_token: SecretStr | None = None
    api_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token for every /api/... route; generated on first start if unset.",
    )
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    writer_max_batch: int = Field(default=1000, ge=1, le=100_000)
    # The fold process (inbox rows into events): rows per transaction, and its CPU priority
    # (idle: only cores nothing else wants; a burst goes to acknowledging, history catches up).
    fold_batch: int = Field(default=2000, ge=1, le=100_000)
    fold_priority: Literal["idle", "low", "normal"] = "idle"
    # An idle fold this far behind runs at the ordinary priority until it catches up
    # (receiver.storage.fold_priority): history lags a burst, never a busy host for ever.
    fold_max_lag_seconds: float = Field(default=10.0, gt=0, le=86400)
    log_level: str = "INFO"

    # Publishing (the outbox relay). No URL: publishing is off and events wait in the outbox.
    # A URL carries the broker password, hence SecretStr; logs and /readyz show it masked.
    amqp_url: SecretStr | None = None
    amqp_exchange: str = Field(
        default="css.events", min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$"
    )
    publish_batch: int = Field(default=1000, ge=1, le=50_000)
    publish_in_flight: int = Field(default=256, ge=1, le=10_000)
    publish_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    publish_retry_max_seconds: float = Field(default=30.0, gt=0, le=30)
    outbox_stats_interval_seconds: float = Field(default=5.0, gt=0, le=3600)

    # Registration with Tencent CSS (`receiver tencent register`, auto-register at start). The API
    # credentials are not here: they use the SDK's own TENCENTCLOUD_* names (TencentCredentials).
    tencent_endpoint: str = Field(
        default=DEFAULT_ENDPOINT,
        description="API host (https) or full base URL; live.intl.tencentcloudapi.com for "
        "international accounts.",
    )
    public_url: str | None = Field(
        default=None, description="Base URL at which CSS reaches this receiver."
    )
    tencent_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Push domains to bind, comma-separated."
    )
    tencent_app: str = "live"
    tencent_template_name: str = "receiver"
    tencent_auto_register: bool = False
    tencent_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Per API call: throttling and transient failures are retried this often, with exponential
    # backoff from this base (full jitter).
    tencent_retry_attempts: int = Field(default=4, ge=1, le=20)
    tencent_retry_base_seconds: float = Field(default=0.5, ge=0, le=60)
    # Tencent's per-action rate limits are account-wide: with several replicas (or other programs
    # on the account) each process takes this share of every documented rate
    # (receiver.tencent.limits).
    tencent_rate_share: float = Field(default=1.0, gt=0, le=1)
    # Background reconciliation with Tencent's own records (receiver.reconcile,
    # docs/reconciliation.md): off unless an interval is set; 60 is a sensible production value
    # (Tencent asks for no more than one online-list poll a minute). Each round sweeps the
    # recent window of push records and looks at the online list.
    tencent_reconcile_interval: float | None = Field(
        default=None, gt=0, le=86400, description="Seconds between reconciliation rounds."
    )
    tencent_reconcile_window_seconds: float = Field(default=3600.0, ge=60, le=30 * 86400)
    # DescribeBackupStreamList needs a Region (ap-guangzhou, ...): main/backup roles are asked
    # for only when one is set (here or as TENCENTCLOUD_REGION).
    tencent_backup_region: str | None = None

    # Moderation (docs/moderation.md): what to do when a moderation callback triggers the policy.
    # Off by default; `drop` cuts the push (a re-push is allowed), `forbid` also blocks re-pushes
    # of the stream name until the duration has passed (ForbidLiveStream: at most 90 days).
    moderation_action: Literal["none", "drop", "forbid"] = "none"
    moderation_dry_run: bool = False
    moderation_kinds: Annotated[list[ModerationKind], NoDecode] = Field(
        default_factory=lambda: list[ModerationKind](["porn"]),
        description="Moderation kinds that may trigger: porn (317), audio_moderation (315).",
    )
    moderation_suggestions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Block"],
        description="Top-level suggestions that trigger (case-insensitive); empty: none.",
    )
    moderation_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Labels that trigger (with RECEIVER_MODERATION_MIN_SCORE when set).",
    )
    moderation_min_score: float | None = Field(default=None, ge=0, le=100)
    moderation_forbid_hours: float = Field(default=6.0, gt=0, le=90 * 24)
    moderation_reason: str = Field(
        default="receiver moderation policy", min_length=1, max_length=1024
    )

    # Connections (receiver.web.connections). Idle ones are closed after the keep-alive timeout
    # (longer than a proxy's upstream keep-alive, 60 s in nginx, so a proxy never sends on a
    # connection being closed), a request head must arrive within the header timeout, and the
    # cap stays below the open files limit, leaving room for the database and the writer.
    keepalive_timeout_seconds: float = Field(default=75.0, gt=0, le=3600)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_connections: int = Field(default=4096, ge=1, le=1_000_000)
    log_format: LogFormat = Field(
        default="text", description="text: plain lines; json: one JSON object per line."
    )
    # How long `receiver serve` may spend on `PRAGMA quick_check` at start (receiver.storage.
    # preflight): bounded, so a huge database still starts; 0 skips the check.
    startup_check_seconds: float = Field(default=10.0, ge=0, le=3600)

    @field_validator(
        "callback_keys",
        "tencent_domains",
        "moderation_kinds",
        "moderation_suggestions",
        "moderation_labels",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("tencent_endpoint")
    @classmethod
    def _valid_endpoint(cls, value: str) -> str:
        parse_endpoint(value)
        return value.strip()

    @field_validator("public_url", mode="before")
    @classmethod
    def _valid_public_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            return check_public_url(value) if value.strip() else None
        return value

    @field_validator("tencent_domains")
    @classmethod
    def _valid_domains(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(check_domain(item) for item in value))

    @field_validator("tencent_app")
    @classmethod
    def _valid_app(cls, value: str) -> str:
        return check_app_name(value)

    @model_validator(mode="after")
    def _auto_register_is_complete(self) -> Settings:
        if self.tencent_auto_register and (not self.public_url or not self.tencent_domains):
            raise ValueError(
                "RECEIVER_TENCENT_AUTO_REGISTER needs RECEIVER_PUBLIC_URL and "
                "RECEIVER_TENCENT_DOMAINS"
            )
        return self

    @field_validator("url_token", "amqp_url", "api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @property
    def data_dir(self) -> Path:
        """The directory of the database file; generated secrets are kept beside it (on
        PostgreSQL, in ./data: replicas should share configured secrets instead)."""
        if isinstance(self.database, PostgresUrl):
            return Path("./data")
        return self.database.parent

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("amqp://", "amqps://")):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value

    @property
    def current_callback_key(self) -> SecretStr:
        """The key CSS signs with from now on (registration puts it in the template)."""
        if not self.callback_keys:
            raise ValueError("no callback key configured: set RECEIVER_CALLBACK_KEYS")
        return self.callback_keys[0]

    def key_values(self) -> tuple[str, ...]:
        """The callback keys in clear, for the signature check only."""
        return tuple(key.get_secret_value() for key in self.callback_keys)

"""Service configuration: one pydantic-settings model read from `RECEIVER_*` environment variables.

Secrets are `SecretStr`, so neither `repr(settings)` nor a log line can print them. Keys that are
not configured are generated on first start (see `receiver.secretfiles`), never left empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from receiver.tencent import validation
from receiver.tencent.endpoint import DEFAULT_ENDPOINT, parse_endpoint

# CSS signs with `t` = send time + 600 s; it retries for about 12 minutes, so a retry can carry a
# `t` that has already passed. This grace keeps late retries acceptable (duplicates are absorbed).
DEFAULT_GRACE_SECONDS = 300
# The documented validity of a signature; a `t` further ahead than this (plus clock skew) is forged
# or comes from a badly wrong clock.
SIGNATURE_VALIDITY_SECONDS = 600
CLOCK_SKEW_SECONDS = 60


class Settings(BaseSettings):
    """Everything `receiver serve` needs; tests build it directly with keyword arguments."""

    model_config = SettingsConfigDict(
        env_prefix="RECEIVER_",
        extra="ignore",
        validate_default=True,
        hide_input_in_errors=True,
    )

    callback_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="CSS template CallbackKeys, comma-separated; the first is current, "
        "the rest are still accepted during rotation.",
    )
    host: str = "0.0.0.0"  # noqa: S104  # a callback receiver has to listen where CSS can reach it
    port: int = Field(default=8080, ge=0, le=65535)
    database: Path = Path("./data/receiver.db")
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

    @field_validator("callback_keys", "tencent_domains", mode="before")
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
            return validation.public_url(value) if value.strip() else None
        return value

    @field_validator("tencent_domains")
    @classmethod
    def _valid_domains(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(validation.domain(item) for item in value))

    @field_validator("tencent_app")
    @classmethod
    def _valid_app(cls, value: str) -> str:
        return validation.app_name(value)

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
        """The directory of the database file; generated secrets are kept beside it."""
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

"""Service configuration: one pydantic-settings model read from `RECEIVER_*` environment variables.

Secrets are `SecretStr`, so neither `repr(settings)` nor a log line can print them. Keys that are
not configured are generated on first start (see `receiver.secretfiles`), never left empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    url_token: SecretStr | None = None
    api_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token for every /api/... route; generated on first start if unset.",
    )
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    writer_max_batch: int = Field(default=1000, ge=1, le=100_000)
    log_level: str = "INFO"

    @field_validator("callback_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("url_token", "api_token", mode="before")
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

    def key_values(self) -> tuple[str, ...]:
        """The callback keys in clear, for the signature check only."""
        return tuple(key.get_secret_value() for key in self.callback_keys)

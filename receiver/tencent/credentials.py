"""Tencent Cloud API credentials, read from the official SDK's own variable names.

`TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY`, optional `TENCENTCLOUD_SESSION_TOKEN`
(temporary STS credentials) and `TENCENTCLOUD_REGION`: an operator who already uses the SDK or
`tccli` sets nothing new. A separate model from `Settings`, because these carry no `RECEIVER_`
prefix and only the registration code needs them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TencentCredentials(BaseSettings):
    """An API key pair; `repr()` and validation errors never show the key or the token."""

    model_config = SettingsConfigDict(
        env_prefix="TENCENTCLOUD_", extra="ignore", hide_input_in_errors=True, frozen=True
    )

    secret_id: str = Field(min_length=1)
    secret_key: SecretStr
    session_token: SecretStr | None = None
    # The callback actions take no region; it is sent (X-TC-Region) only when set.
    region: str | None = None

    @field_validator("secret_id", "region", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("session_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("secret_key")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

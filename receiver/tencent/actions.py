"""Typed wrappers for the CSS callback-management actions (live, 2018-08-01).

    api = LiveCallbackApi(client)
    template_id = await api.create_template(TemplateWrite(name="receiver", ...))
    await api.create_rule("push.example.com", "live", template_id)

Answers are validated with pydantic models named after the API's data types
(`CallBackTemplateInfo`, `CallBackRuleInfo`); an answer of the wrong shape raises
`TencentResponseError`. The CallbackKey read back is a `SecretStr`, so no repr shows it.

Two fields are not read back the way they are written (reference §4.6, the official SDK's
models): `RecordStatusNotifyUrl` is not part of `CallBackTemplateInfo` at all, so an answer
without it says nothing about its value; and `RecordExceptionLevels` is written as
`error`/`warning`/`info` but documented in answers as `error`/`alarm`, so levels are compared
with `alarm` read as `warning`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, TypeAdapter, ValidationError
from pydantic.alias_generators import to_pascal

from receiver.tencent.client import TencentClient
from receiver.tencent.errors import TencentError
from receiver.tencent.masking import mask_url
from receiver.web.responses import describe


class TencentResponseError(TencentError):
    """A successful answer whose content is not what the API documents."""

    def __init__(self, action: str, problem: str) -> None:
        super().__init__(f"{action}: unexpected answer: {problem}")


class _ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True
    )


# Written by Create/Modify, absent from `CallBackTemplateInfo`: its value cannot be read back.
UNREPORTED_FIELDS: Final = frozenset({"RecordStatusNotifyUrl"})
# `RecordExceptionLevels` as Create/Modify take them; answers may spell `warning` as `alarm`.
EXCEPTION_LEVELS: Final = ("error", "warning", "info")
_LEVEL_ALIASES: Final = {"alarm": "warning"}


def levels_text(levels: Iterable[str]) -> str:
    """Exception levels as one comparable, readable value: aliases resolved, in a fixed order."""
    names = {_LEVEL_ALIASES.get(level, level) for level in levels}
    known = [level for level in EXCEPTION_LEVELS if level in names]
    return ", ".join(known + sorted(names - set(EXCEPTION_LEVELS)))


class CallbackTemplate(_ApiModel):
    """`CallBackTemplateInfo`; URLs the console left empty come back as "" or null."""

    template_id: int
    template_name: str
    description: str | None = None
    stream_begin_notify_url: str | None = None
    stream_end_notify_url: str | None = None
    record_notify_url: str | None = None
    snapshot_notify_url: str | None = None
    porn_censorship_notify_url: str | None = None
    push_exception_notify_url: str | None = None
    # Not in `CallBackTemplateInfo` (see UNREPORTED_FIELDS); kept in case an answer has it.
    record_status_notify_url: str | None = None
    audio_audit_notify_url: str | None = None
    record_exception_notify_url: str | None = None
    record_exception_levels: list[str] | None = None
    callback_key: SecretStr | None = None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # URLs may carry the receiver's URL token; the key is already a SecretStr.
        for name, value in super().__repr_args__():
            masked = isinstance(value, str) and bool(name) and str(name).endswith("_url")
            yield name, mask_url(value) if masked else value

    def field_value(self, api_name: str) -> str | None:
        """A writable field by its API name as `TemplateWrite.values()` spells it, "" when unset
        and None when the answer cannot tell (an unreported field); the key in clear."""
        if api_name == "TemplateName":
            return self.template_name
        if api_name == "CallbackKey":
            return self.callback_key.get_secret_value() if self.callback_key else ""
        if api_name == "RecordExceptionLevels":
            return levels_text(self.record_exception_levels or ())
        value = getattr(self, _SNAKE_BY_API[api_name])
        if value is None and api_name in UNREPORTED_FIELDS:
            return None
        return value if isinstance(value, str) else ""


_SNAKE_BY_API: Final = {
    info.alias or name: name for name, info in CallbackTemplate.model_fields.items()
}


class CallbackRule(_ApiModel):
    """`CallBackRuleInfo`: a template bound to a push domain and AppName."""

    template_id: int
    domain_name: str
    app_name: str
    create_time: str | None = None  # Beijing time (UTC+8), "YYYY-MM-DD HH:MM:SS"
    update_time: str | None = None


T = TypeVar("T")

_TEMPLATE = TypeAdapter(CallbackTemplate)
_TEMPLATES = TypeAdapter(list[CallbackTemplate])
_RULES = TypeAdapter(list[CallbackRule])


@dataclass(frozen=True, slots=True)
class TemplateWrite:
    """The fields of a Create/ModifyLiveCallbackTemplate request that this receiver sets."""

    name: str
    description: str
    urls: Mapping[str, str]  # API field name → URL (may carry the URL token)
    callback_key: SecretStr = field(repr=False)
    # Which recording exceptions CSS reports (`RecordExceptionLevels`); () leaves it unset.
    exception_levels: tuple[str, ...] = ()

    def __repr__(self) -> str:
        urls = {name: mask_url(url) for name, url in self.urls.items()}
        return (
            f"TemplateWrite(name={self.name!r}, description={self.description!r}, "
            f"urls={urls!r}, exception_levels={self.exception_levels!r}, "
            f"callback_key={self.callback_key!r})"
        )

    def values(self) -> dict[str, str]:
        """Every managed field by API name as text, the key in clear: only for diffs."""
        values = {"TemplateName": self.name, "Description": self.description, **self.urls}
        if self.exception_levels:
            values["RecordExceptionLevels"] = levels_text(self.exception_levels)
        values["CallbackKey"] = self.callback_key.get_secret_value()
        return values

    def params(self) -> dict[str, Any]:
        """The request parameters: `values()` with the levels as the array the API takes."""
        params: dict[str, Any] = self.values()
        if self.exception_levels:
            params["RecordExceptionLevels"] = list(self.exception_levels)
        return params


class LiveCallbackApi:
    """One method per callback action; each returns typed data or raises `TencentError`."""

    def __init__(self, client: TencentClient) -> None:
        self.client = client

    async def describe_templates(self) -> list[CallbackTemplate]:
        response = await self._call("DescribeLiveCallbackTemplates", {}, idempotent=True)
        return _validate(
            _TEMPLATES, response.get("Templates") or [], "DescribeLiveCallbackTemplates"
        )

    async def describe_template(self, template_id: int) -> CallbackTemplate:
        action = "DescribeLiveCallbackTemplate"
        response = await self._call(action, {"TemplateId": template_id}, idempotent=True)
        return _validate(_TEMPLATE, response.get("Template"), action)

    async def create_template(self, template: TemplateWrite) -> int:
        action = "CreateLiveCallbackTemplate"
        response = await self._call(action, template.params(), idempotent=False)
        template_id = response.get("TemplateId")
        if not isinstance(template_id, int) or isinstance(template_id, bool):
            raise TencentResponseError(action, "no integer TemplateId")
        return template_id

    async def modify_template(self, template_id: int, template: TemplateWrite) -> None:
        params = {"TemplateId": template_id, **template.params()}
        await self._call("ModifyLiveCallbackTemplate", params, idempotent=True)

    async def delete_template(self, template_id: int) -> None:
        params = {"TemplateId": template_id}
        await self._call("DeleteLiveCallbackTemplate", params, idempotent=False)

    async def describe_rules(self) -> list[CallbackRule]:
        response = await self._call("DescribeLiveCallbackRules", {}, idempotent=True)
        return _validate(_RULES, response.get("Rules") or [], "DescribeLiveCallbackRules")

    async def create_rule(self, domain: str, app: str, template_id: int) -> None:
        params = {"DomainName": domain, "AppName": app, "TemplateId": template_id}
        await self._call("CreateLiveCallbackRule", params, idempotent=False)

    async def delete_rule(self, domain: str, app: str) -> None:
        params = {"DomainName": domain, "AppName": app}
        await self._call("DeleteLiveCallbackRule", params, idempotent=False)

    async def _call(
        self, action: str, params: Mapping[str, Any], *, idempotent: bool
    ) -> dict[str, Any]:
        return await self.client.call(action, params, idempotent=idempotent)


def _validate(adapter: TypeAdapter[T], value: object, action: str) -> T:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        # Field names and error kinds only: the input may hold a CallbackKey.
        problems = "; ".join(
            describe(e, name=None if e["loc"] else "answer", show_input=False)
            for e in exc.errors()[:3]
        )
        raise TencentResponseError(action, problems) from None

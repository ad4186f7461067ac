"""Registering this receiver with CSS the infrastructure-as-code way: describe, diff, apply.

    plan = plan_registration(wanted, await api.describe_templates(), await api.describe_rules(),
                             domains=["push.example.com"], app="live", force=False)
    print("\\n".join(plan.describe()))
    await apply_registration(api, plan)

Planning is pure (existing state in, `RegistrationPlan` out) so every case is a unit test; `apply_*`
only performs the plan's steps. A second run against unchanged state plans nothing and calls
nothing that writes. A domain bound to another template is a conflict: refused, unless `force`,
which deletes that rule and creates ours (callbacks for that domain pause for the moment between).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import quote

from pydantic import SecretStr

from receiver.events.kinds import KINDS
from receiver.settings import check_app_name, check_domain, check_public_url
from receiver.tencent import validation
from receiver.tencent.actions import (
    EXCEPTION_LEVELS,
    CallbackRule,
    CallbackTemplate,
    LiveCallbackApi,
    TemplateWrite,
)
from receiver.tencent.errors import InvalidRegistration, RegistrationError
from receiver.tencent.masking import mask, mask_url

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_NAME: Final = "receiver"
DEFAULT_APP: Final = "live"
# Spaces and dots are outside the documented character set, hence the hyphens.
DEFAULT_DESCRIPTION: Final = "managed-by-receiver"
# Every level of recording exception: the receiver stores what CSS reports, consumers filter
# (each event carries its `exception_level`); a level left out could never be recovered.
RECORD_EXCEPTION_LEVELS: Final = EXCEPTION_LEVELS
# Each template URL field and where it points: `/callbacks/<slug>` for a kind with a path of its
# own, else `/callbacks` (which takes every kind; the body's event_type decides).
TEMPLATE_PATHS: Final[dict[str, str]] = {
    kind.template_field: f"/callbacks/{kind.slug}" if kind.slug else "/callbacks"
    for kind in KINDS
    if kind.template_field is not None
}


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """What to register: where CSS should call, for which domains, under which key."""

    public_url: str
    domains: Sequence[str]
    callback_key: SecretStr = field(repr=False)
    app: str = DEFAULT_APP
    template_name: str = DEFAULT_TEMPLATE_NAME
    description: str = DEFAULT_DESCRIPTION
    url_token: SecretStr | None = field(default=None, repr=False)
    force: bool = False

    def secrets(self) -> list[str]:
        """Values to scrub from any text shown to people (Tencent may echo parameters)."""
        values = [self.callback_key.get_secret_value()]
        if self.url_token is not None:
            token = self.url_token.get_secret_value()
            values += [token, quote(token, safe="")]
        return values


def wanted_template(request: RegistrationRequest) -> tuple[TemplateWrite, list[str]]:
    """The template this receiver needs, validated locally; also returns console warnings."""
    warnings = validation.template_name(request.template_name)
    warnings += validation.description(request.description)
    validation.callback_key(request.callback_key.get_secret_value())
    try:
        base = check_public_url(request.public_url)
        for domain in request.domains:
            check_domain(domain)
        check_app_name(request.app)
    except ValueError as exc:
        raise InvalidRegistration(str(exc)) from None
    if not request.domains:
        raise InvalidRegistration("no push domain to bind")
    if base.startswith("http://"):
        warnings.append(
            "the public URL is plain http: callbacks and their signatures travel "
            "unencrypted; prefer https"
        )
    query = ""
    if request.url_token is not None:
        query = "?token=" + quote(request.url_token.get_secret_value(), safe="")
    urls = {api_field: f"{base}{path}{query}" for api_field, path in TEMPLATE_PATHS.items()}
    template = TemplateWrite(
        name=request.template_name,
        description=request.description,
        urls=urls,
        callback_key=request.callback_key,
        exception_levels=RECORD_EXCEPTION_LEVELS,
    )
    return template, warnings


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One managed field whose value differs; the values in clear, their repr masked."""

    field: str
    # `field` is taken by the attribute above, hence the qualified name.
    old: str = dataclasses.field(repr=False)
    new: str = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return f"FieldChange({self.describe('~').strip()})"

    def describe(self, sign: str) -> str:
        old, new = _shown(self.field, self.old), _shown(self.field, self.new)
        if sign == "+":
            return f"  + {self.field}: {new}"
        if self.field == "CallbackKey" and old == new:
            new += " (a different key)"
        return f"  ~ {self.field}: {old} -> {new}"


RuleAction = Literal["bind", "rebind", "unchanged", "conflict", "unbind", "absent"]


@dataclass(frozen=True, slots=True)
class RuleStep:
    action: RuleAction
    domain: str
    app: str
    current: CallbackRule | None = None
    current_name: str | None = None  # name of the template `current` points at, if known

    def describe(self, template_name: str) -> str:
        where = f"rule {self.domain}/{self.app}"
        bound = self.bound_to()
        return {
            "bind": f"{where}: bind to template {template_name!r}",
            "rebind": f"{where}: rebind from {bound} to {template_name!r} (--force)",
            "unchanged": f"{where}: unchanged (bound to {template_name!r})",
            "conflict": f"{where}: CONFLICT, bound to {bound}",
            "unbind": f"{where}: delete (bound to {bound})",
            "absent": f"{where}: nothing to delete (no rule)",
        }[self.action]

    def bound_to(self) -> str:
        if self.current is None:
            return "nothing"
        name = f" {self.current_name!r}" if self.current_name else ""
        return f"template {self.current.template_id}{name}"


@dataclass(frozen=True, slots=True)
class RegistrationPlan:
    """The steps that make CSS match `wanted`; empty `changes` means there is nothing to do."""

    wanted: TemplateWrite
    template_action: Literal["create", "modify", "unchanged"]
    template_id: int | None
    field_changes: tuple[FieldChange, ...]
    rules: tuple[RuleStep, ...]
    warnings: tuple[str, ...] = ()
    # Fields CSS does not report (so no diff can show them), sent again with a modify.
    resent: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return self.template_action != "unchanged" or any(
            step.action in ("bind", "rebind") for step in self.rules
        )

    @property
    def conflicts(self) -> tuple[RuleStep, ...]:
        return tuple(step for step in self.rules if step.action == "conflict")

    def describe(self) -> list[str]:
        """The plan for people: a field-by-field diff, keys and URL tokens masked."""
        name = self.wanted.name
        ident = f" ({self.template_id})" if self.template_id is not None else ""
        lines = [f"warning: {text}" for text in self.warnings]
        lines.append(f"template {name!r}{ident}: {self.template_action}")
        sign = "+" if self.template_action == "create" else "~"
        lines += [change.describe(sign) for change in self.field_changes]
        values = self.wanted.values()
        lines += [
            f"  = {field}: {_shown(field, values[field])} (not reported by CSS: sent again)"
            for field in self.resent
        ]
        lines += [step.describe(name) for step in self.rules]
        return lines


def plan_registration(
    wanted: TemplateWrite,
    templates: Sequence[CallbackTemplate],
    rules: Sequence[CallbackRule],
    *,
    domains: Iterable[str],
    app: str,
    force: bool,
    warnings: Sequence[str] = (),
) -> RegistrationPlan:
    """Compare what exists with what is wanted; pure, so it is tested without any API."""
    existing = find_template(templates, wanted.name)
    values = wanted.values()
    resent: tuple[str, ...] = ()
    if existing is None:
        if len(templates) >= validation.TEMPLATE_QUOTA:
            raise RegistrationError(
                f"the account already has {len(templates)} callback templates, the most CSS "
                f"allows; delete one or reuse one with --template-name"
            )
        action: Literal["create", "modify", "unchanged"] = "create"
        changes = tuple(FieldChange(name, "", value) for name, value in values.items())
    else:
        reported = {name: existing.field_value(name) for name in values}
        changes = tuple(
            FieldChange(name, old, values[name])
            for name, old in reported.items()
            if old is not None and old != values[name]
        )
        action = "modify" if changes else "unchanged"
        # A field CSS does not report cannot be compared: a modify sends it again, but it never
        # causes one, or a second run would never find the template unchanged.
        if changes:
            resent = tuple(name for name, old in reported.items() if old is None)
    our_id = existing.template_id if existing else None
    names = {template.template_id: template.template_name for template in templates}
    steps = []
    for domain in _unique(domains):
        current = _rule_for(rules, domain, app)
        if current is None:
            steps.append(RuleStep("bind", domain, app))
        elif our_id is not None and current.template_id == our_id:
            steps.append(RuleStep("unchanged", domain, app, current, wanted.name))
        else:
            step: RuleAction = "rebind" if force else "conflict"
            steps.append(RuleStep(step, domain, app, current, names.get(current.template_id)))
    return RegistrationPlan(
        wanted, action, our_id, changes, tuple(steps), tuple(warnings), resent=resent
    )


async def apply_registration(api: LiveCallbackApi, plan: RegistrationPlan) -> int:
    """Carry out `plan`; returns the template id. Refuses (changing nothing) on conflicts."""
    if plan.conflicts:
        raise RegistrationError(conflict_message(plan.conflicts, plan.wanted.name))
    if plan.template_action == "create":
        template_id = await api.create_template(plan.wanted)
        log.info("created callback template %r (%d)", plan.wanted.name, template_id)
    else:
        assert plan.template_id is not None  # "modify"/"unchanged" plans found the template
        template_id = plan.template_id
        if plan.template_action == "modify":
            await api.modify_template(template_id, plan.wanted)
            log.info("modified callback template %r (%d)", plan.wanted.name, template_id)
    for step in plan.rules:
        if step.action == "rebind":
            await api.delete_rule(step.domain, step.app)
        if step.action in ("bind", "rebind"):
            await api.create_rule(step.domain, step.app, template_id)
            log.info("bound %s/%s to template %d", step.domain, step.app, template_id)
    return template_id


@dataclass(frozen=True, slots=True)
class RegistrationOutcome:
    plan: RegistrationPlan
    template_id: int | None  # None only for a dry run that would create the template
    applied: bool


async def register(
    api: LiveCallbackApi,
    request: RegistrationRequest,
    *,
    dry_run: bool = False,
    on_plan: Callable[[RegistrationPlan], None] = lambda plan: None,
) -> RegistrationOutcome:
    """Describe, plan, show the plan through `on_plan`, then apply it unless `dry_run`."""
    wanted, warnings = wanted_template(request)
    templates = await api.describe_templates()
    rules = await api.describe_rules()
    plan = plan_registration(
        wanted,
        templates,
        rules,
        domains=[check_domain(domain) for domain in request.domains],
        app=request.app,
        force=request.force,
        warnings=warnings,
    )
    on_plan(plan)
    if dry_run:
        if plan.conflicts:
            raise RegistrationError(conflict_message(plan.conflicts, wanted.name))
        return RegistrationOutcome(plan, plan.template_id, applied=False)
    template_id = await apply_registration(api, plan)
    return RegistrationOutcome(plan, template_id, applied=plan.changes)


@dataclass(frozen=True, slots=True)
class UnregisterPlan:
    template_name: str
    template_id: int | None
    rules: tuple[RuleStep, ...]
    delete_template: bool
    # Rules outside this run that still use the template, which would keep it from being deleted.
    blockers: tuple[CallbackRule, ...] = ()

    @property
    def changes(self) -> bool:
        return self.delete_template or any(step.action == "unbind" for step in self.rules)

    @property
    def conflicts(self) -> tuple[RuleStep, ...]:
        return tuple(step for step in self.rules if step.action == "conflict")

    def describe(self) -> list[str]:
        lines = [step.describe(self.template_name) for step in self.rules]
        if self.delete_template:
            lines.append(f"template {self.template_name!r} ({self.template_id}): delete")
        lines.extend(
            f"template {self.template_name!r} ({self.template_id}): kept, still bound to "
            f"{rule.domain_name}/{rule.app_name}"
            for rule in self.blockers
        )
        return lines


def plan_unregister(
    templates: Sequence[CallbackTemplate],
    rules: Sequence[CallbackRule],
    *,
    template_name: str,
    domains: Iterable[str],
    app: str,
    delete_template: bool,
    force: bool,
) -> UnregisterPlan:
    """Remove our rules for `domains` (another template's rule only with `force`)."""
    ours = find_template(templates, template_name)
    our_id = ours.template_id if ours else None
    names = {template.template_id: template.template_name for template in templates}
    steps = []
    for domain in _unique(domains):
        current = _rule_for(rules, domain, app)
        if current is None:
            steps.append(RuleStep("absent", domain, app))
            continue
        name = names.get(current.template_id)
        mine = our_id is not None and current.template_id == our_id
        action: RuleAction = "unbind" if mine or force else "conflict"
        steps.append(RuleStep(action, domain, app, current, name))
    blockers: tuple[CallbackRule, ...] = ()
    if delete_template and our_id is not None:
        removed = {(s.domain, s.app) for s in steps if s.action == "unbind"}
        blockers = tuple(
            rule
            for rule in rules
            if rule.template_id == our_id and (rule.domain_name, rule.app_name) not in removed
        )
    return UnregisterPlan(
        template_name,
        our_id,
        tuple(steps),
        delete_template=delete_template and our_id is not None and not blockers,
        blockers=blockers,
    )


def check_unregister(plan: UnregisterPlan) -> None:
    """Raise `RegistrationError` if `plan` would touch another template's rule or cannot finish."""
    if plan.conflicts:
        raise RegistrationError(
            "; ".join(
                f"{s.domain}/{s.app} is bound to {s.bound_to()}, not to {plan.template_name!r}"
                for s in plan.conflicts
            )
            + ": pass --force to delete it anyway"
        )
    if plan.blockers:
        raise RegistrationError(
            f"template {plan.template_name!r} is still bound to "
            + ", ".join(f"{r.domain_name}/{r.app_name}" for r in plan.blockers)
            + ": unregister those domains too, or drop --delete-template"
        )


async def apply_unregister(api: LiveCallbackApi, plan: UnregisterPlan) -> None:
    """Carry out `plan`: rules first (a template in use cannot be deleted), then the template."""
    check_unregister(plan)
    for step in plan.rules:
        if step.action == "unbind":
            await api.delete_rule(step.domain, step.app)
            log.info("deleted rule %s/%s", step.domain, step.app)
    if plan.delete_template:
        assert plan.template_id is not None  # delete_template implies the template was found
        await api.delete_template(plan.template_id)
        log.info("deleted callback template %r (%d)", plan.template_name, plan.template_id)


def find_template(templates: Sequence[CallbackTemplate], name: str) -> CallbackTemplate | None:
    """The template called `name`; two of them is an error, since either could be the live one."""
    found = [template for template in templates if template.template_name == name]
    if len(found) > 1:
        ids = ", ".join(str(template.template_id) for template in found)
        raise RegistrationError(
            f"{len(found)} callback templates are named {name!r} ({ids}); delete the extra ones "
            "or choose another --template-name"
        )
    return found[0] if found else None


def conflict_message(conflicts: Sequence[RuleStep], template_name: str) -> str:
    bound = "; ".join(f"{s.domain}/{s.app} is bound to {s.bound_to()}" for s in conflicts)
    return (
        f"{bound}, not to {template_name!r}: refusing to take over another template's binding; "
        "run `receiver tencent register --force` to rebind"
    )


def _rule_for(rules: Sequence[CallbackRule], domain: str, app: str) -> CallbackRule | None:
    for rule in rules:
        if rule.domain_name.lower() == domain and rule.app_name == app:
            return rule
    return None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _shown(api_field: str, value: str) -> str:
    if api_field == "CallbackKey":
        return mask(value)
    if api_field.endswith("NotifyUrl"):
        return mask_url(value) or "(none)"
    if api_field == "RecordExceptionLevels":
        return value or "(none)"
    return repr(value) if value else "(none)"

"""`receiver tencent register|templates|unregister`: configure CSS to call this receiver
(`reconcile`: receiver.cli.reconcile).

Exit codes: 0 when CSS matches what was asked (changed now or already), 1 when Tencent or a local
check of CSS's state refused (one line on stderr with the reason, Tencent's Code and RequestId),
2 for invalid configuration (settings, credentials, or a name, key or URL registration refuses
before any call). Secrets never reach the output: keys and URL tokens are masked, error texts
scrubbed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from receiver.cli import reconcile, tencent_sessions
from receiver.cli.common import (
    add_database_option,
    configure_logging,
    load_credentials,
    load_settings,
    with_callback_key,
)
from receiver.cli.control import register_resume
from receiver.cli.insight import register_audience
from receiver.settings import Settings
from receiver.tencent.actions import (
    UNREPORTED_FIELDS,
    CallbackRule,
    CallbackTemplate,
    LiveCallbackApi,
)
from receiver.tencent.credentials import TencentCredentials
from receiver.tencent.errors import InvalidRegistration, TencentError
from receiver.tencent.masking import mask, mask_url, redact
from receiver.tencent.register import (
    RegistrationPlan,
    apply_unregister,
    check_unregister,
    plan_unregister,
)
from receiver.tencent.register import register as register_template
from receiver.tencent.validation import TEMPLATE_QUOTA
from receiver.tencent.wiring import command_client, registration_request

Work = Callable[[LiveCallbackApi, Settings], Awaitable[int]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "tencent",
        help="Tencent CSS: callback registration, stream control, audience",
        description="Manage CSS callback templates and rules through Tencent Cloud API 3.0. "
        "Credentials: TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY "
        "[, TENCENTCLOUD_SESSION_TOKEN]; endpoint: RECEIVER_TENCENT_ENDPOINT.",
    )
    actions = parser.add_subparsers(dest="tencent_command", required=True, metavar="ACTION")

    reg = actions.add_parser(
        "register",
        help="create or update the callback template and bind it to push domains",
        description="Describe, diff, then change only what differs. Safe to run again.",
    )
    reg.add_argument("--public-url", help="where CSS reaches this receiver ($RECEIVER_PUBLIC_URL)")
    _domain_options(reg, required=False)
    reg.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    reg.add_argument(
        "--force", action="store_true", help="rebind domains bound to another template"
    )
    reg.set_defaults(handler=run_register)

    listing = actions.add_parser("templates", help="list callback templates and rules")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    add_database_option(listing)
    listing.set_defaults(handler=run_templates)

    unreg = actions.add_parser("unregister", help="unbind push domains from the template")
    _domain_options(unreg, required=True)
    unreg.add_argument(
        "--delete-template", action="store_true", help="also delete the template once unbound"
    )
    unreg.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    unreg.add_argument(
        "--force", action="store_true", help="also delete rules bound to another template"
    )
    unreg.set_defaults(handler=run_unregister)

    reconcile.register(actions)
    tencent_sessions.register(actions)
    register_resume(actions)
    register_audience(actions)


def _domain_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--domain",
        dest="domains",
        action="append",
        required=required,
        metavar="DOMAIN",
        help="push domain; repeat for several ($RECEIVER_TENCENT_DOMAINS)",
    )
    parser.add_argument("--app", help="AppName, the push path ($RECEIVER_TENCENT_APP or live)")
    parser.add_argument(
        "--template-name", help="template name ($RECEIVER_TENCENT_TEMPLATE_NAME or receiver)"
    )
    add_database_option(parser)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args,
        public_url=getattr(args, "public_url", None),
        tencent_domains=getattr(args, "domains", None),
        tencent_app=getattr(args, "app", None),
        tencent_template_name=getattr(args, "template_name", None),
    )


def run_register(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    credentials = load_credentials()  # before any side effect, such as generating a key
    settings = with_callback_key(settings, on_created=_announce_key)
    try:
        request = registration_request(settings, force=args.force)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def work(api: LiveCallbackApi, settings: Settings) -> int:
        outcome = await register_template(api, request, dry_run=args.dry_run, on_plan=_print_plan)
        plan = outcome.plan
        if args.dry_run:
            print("dry run: nothing changed" if plan.changes else "nothing to do")
        elif not plan.changes:
            print("nothing to do: CSS already calls this receiver")
        else:
            print(f"registered: template {outcome.template_id} for {_rules(plan)}")
            print("CSS applies template and rule changes within 5-10 minutes.")
            if plan.template_action == "modify" and any(
                change.field == "CallbackKey" for change in plan.field_changes
            ):
                print("Keep the previous callback key in RECEIVER_CALLBACK_KEYS until then.")
        return 0

    return _run(settings, credentials, work, secrets=request.secrets())


def run_templates(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def work(api: LiveCallbackApi, settings: Settings) -> int:
        templates = await api.describe_templates()
        rules = await api.describe_rules()
        if args.json:
            document = {
                "templates": [_template_json(t) for t in templates],
                "rules": [r.model_dump(by_alias=True) for r in rules],
            }
            print(json.dumps(document, indent=2, ensure_ascii=False))
        else:
            for line in describe_listing(templates, rules):
                print(line)
        return 0

    return _run(settings, load_credentials(), work, secrets=_settings_secrets(settings))


def run_unregister(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def work(api: LiveCallbackApi, settings: Settings) -> int:
        plan = plan_unregister(
            await api.describe_templates(),
            await api.describe_rules(),
            template_name=settings.tencent_template_name,
            domains=settings.tencent_domains,
            app=settings.tencent_app,
            delete_template=args.delete_template,
            force=args.force,
        )
        for line in plan.describe():
            print(line)
        if args.dry_run:
            check_unregister(plan)
            print("dry run: nothing changed" if plan.changes else "nothing to do")
            return 0
        await apply_unregister(api, plan)
        print("unregistered" if plan.changes else "nothing to do")
        return 0

    return _run(settings, load_credentials(), work, secrets=_settings_secrets(settings))


def _run(
    settings: Settings, credentials: TencentCredentials, work: Work, *, secrets: list[str]
) -> int:
    """Run `work` with a client on a fresh session; map failures to one line and exit 1 (2 for
    invalid configuration)."""
    secrets = secrets + _credential_secrets(credentials)

    async def main() -> int:
        async with aiohttp.ClientSession() as session:
            client = command_client(session, settings, credentials)
            return await work(LiveCallbackApi(client), settings)

    try:
        return asyncio.run(main())
    except TencentError as exc:
        print(f"error: {redact(str(exc), secrets)}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidRegistration) else 1


def describe_listing(templates: list[CallbackTemplate], rules: list[CallbackRule]) -> list[str]:
    """Templates with their URLs and masked keys, then the rules that bind them."""
    names = {t.template_id: t.template_name for t in templates}
    lines = [f"templates ({len(templates)} of {TEMPLATE_QUOTA}):"]
    unreported: set[str] = set()
    for template in templates:
        lines.append(f"  {template.template_id} {template.template_name!r}")
        for name, value in _template_json(template).items():
            if name in UNREPORTED_FIELDS and value is None:
                unreported.add(name)
            elif name not in ("TemplateId", "TemplateName") and value:
                shown = ", ".join(value) if isinstance(value, list) else value
                lines.append(f"      {name}: {shown}")
    lines.extend(
        f"  ({name}: not reported by CSS; `register` sets it with the other URLs)"
        for name in sorted(unreported)
    )
    lines.append(f"rules ({len(rules)}):")
    for rule in rules:
        bound = names.get(rule.template_id)
        lines.append(
            f"  {rule.domain_name}/{rule.app_name} -> template {rule.template_id}"
            + (f" {bound!r}" if bound else " (not found)")
            + (f", updated {rule.update_time} (UTC+8)" if rule.update_time else "")
        )
    return lines


def _template_json(template: CallbackTemplate) -> dict[str, Any]:
    data: dict[str, Any] = template.model_dump(by_alias=True, exclude={"callback_key"})
    for name, value in data.items():
        if name.endswith("NotifyUrl") and isinstance(value, str):
            data[name] = mask_url(value)
    data["CallbackKey"] = mask(template.field_value("CallbackKey") or "")
    return data


def _print_plan(plan: RegistrationPlan) -> None:
    for line in plan.describe():
        print(line)


def _rules(plan: RegistrationPlan) -> str:
    return ", ".join(f"{step.domain}/{step.app}" for step in plan.rules)


def _announce_key(path: Path, key: str) -> None:
    print(
        f"Generated a CSS callback key and saved it to {path} (mode 0600); "
        "`receiver serve` uses the same key."
    )


def _settings_secrets(settings: Settings) -> list[str]:
    values = list(settings.key_values())
    if settings.url_token is not None:
        values.append(settings.url_token.get_secret_value())
    return values


def _credential_secrets(credentials: TencentCredentials) -> list[str]:
    values = [credentials.secret_key.get_secret_value()]
    if credentials.session_token is not None:
        values.append(credentials.session_token.get_secret_value())
    return values

"""``/costdna discover [account]``: the teams an account's own data proposes, for a person to confirm.

The proposal (``engine.collectors.discover``) reads the account's bundle — the directory a bundle account
names, a synthetic account's generated one, or the local mirror a live AWS account is collected into —
and lists each team with its evidence: owner tag values, IAM role names, IAM Identity Center permission
sets, the people whose calls mostly touch the team's resources. Nothing is written: teams become real
through owner tags (``/costdna label``, ``/costdna apply``) and the tag rules (``COSTDNA_TAG_RULES``), as
the card says. Loading a bundle is slow work, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from handlers.cards import Card, Section, error_card
from handlers.context import Reply, Services, Who
from jobs import control
from storage import repo

log = logging.getLogger("costdna.handlers")

MAX_TEAMS = 15  # teams shown on the card (the CLI's --json has them all)
MAX_IGNORED = 8


def bundle_dir_of(account: Any, settings: Any) -> Path:
    """The directory to read for ``account``, without collecting anything; ``ScanInputError`` says why not."""
    from jobs.accounts import ScanInputError, account_bundle, synthetic_dir

    if account.kind == "aws":  # the local mirror the collector fills (<data_dir>/accounts/<id>-<name>/bundle)
        root = synthetic_dir(account, Path(settings.data_dir)) / "bundle"
        if not root.is_dir():
            raise ScanInputError(f"account {account.name} has not been collected yet: scan it first "
                                 f"(`costdna scan --account {account.name}` or `/costdna scan {account.name}`)")
        return root
    return account_bundle(account, Path(settings.data_dir))


def discover_account(account: Any, settings: Any, rules: Any = None) -> Any:
    """``engine.collectors.discover.discover`` over the account's bundle (blocking: run it in a thread)."""
    from engine.bundle import load_bundle
    from engine.collectors.discover import discover
    from engine.tagrules import TagRules

    if rules is None:
        path = getattr(settings, "tag_rules", None)
        rules = TagRules.load(path) if path else TagRules.default()
    return discover(load_bundle(bundle_dir_of(account, settings), workers=1), rules)


def _names(items: list[str], n: int = 4) -> str:
    shown = ", ".join(f"`{i}`" for i in items[:n])
    return shown + (f" +{len(items) - n}" if len(items) > n else "")


def ignored_lines(ignored: list[tuple[str, str]]) -> list[str]:
    """What was left out, once per name: a permission set once for all its accounts' roles."""
    from engine.collectors.discover import sso_set_of

    seen: dict[str, str] = {}
    for principal, why in ignored:
        name = principal.split(":", 1)[1]
        pset = sso_set_of(name)
        if pset is not None:
            name, why = f"SSO {pset}", "a permission set shared by many teams"
        seen.setdefault(name, why)
    return [f"`{name}` ({why})" for name, why in seen.items()]


def discover_card(account_name: str, d: Any) -> Card:
    """The proposal as a card: one line of evidence per team, what was left out, how to confirm."""
    if not d.teams:
        return Card(title=f"Teams in {account_name}: none proposed", sections=[Section(
            f"Nothing in {account_name}'s data names a team: no owner tags among {d.resources} resources, no "
            "role named `<team>-ci` / `<team>-api` / `svc-<team>-…`, no permission set named after a team.")],
            context="tag a few resources per team (`/costdna label`), then ask again", kind="summary")
    lines = []
    for t in d.teams[:MAX_TEAMS]:
        bits = []
        if t.tagged_resources:
            bits.append(f"{t.tagged_resources} tagged ({_names(t.tag_values, 3)})")
        if t.roles:
            bits.append(f"{len(t.roles)} role(s) {_names([r.split(':', 1)[1] for r in t.roles], 3)}")
        if t.sso_sets:
            bits.append(f"permission set {_names(t.sso_sets, 2)}")
        if t.people:
            bits.append(f"{len(t.people)} people")
        lines.append(f"• *{t.team}* _{t.confidence}_ — " + "; ".join(bits))
    if len(d.teams) > MAX_TEAMS:
        lines.append(f"• … and {len(d.teams) - MAX_TEAMS} more (`costdna discover --account {account_name} --json`)")
    sections = [Section(f"{len(d.teams)} team(s) proposed from {d.tagged_resources} tagged of {d.resources} "
                        "resources, IAM role names, permission sets and who calls what. Confirm or correct them:"),
                Section("\n".join(lines))]
    if d.ignored:
        left = ignored_lines(d.ignored)
        more = f" +{len(left) - MAX_IGNORED}" if len(left) > MAX_IGNORED else ""
        sections.append(Section("*Not teams:* " + "; ".join(left[:MAX_IGNORED]) + more))
    sections.append(Section(
        "*To confirm:* a team is real once its resources carry an owner tag — answer `/costdna label` or "
        "approve `/costdna apply`. To merge or rename a proposal, add it to the tag rules file "
        "(`COSTDNA_TAG_RULES`, `rewrites:` e.g. `payments-eng: payments`) and run `/costdna discover` again."))
    return Card(title=f"Teams proposed for {account_name}", sections=sections, kind="summary",
                context="high: tags and behaviour agree · medium: one strong source · low: a name only")


async def cmd_discover(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    from engine.records import BundleError
    from jobs.accounts import ScanInputError

    if len(args) > 1:
        return Reply.of(error_card("`discover` takes at most one account name.", "e.g. `/costdna discover prod`"))
    async with svc.db.session() as s:
        ws = await repo.get_or_create_workspace(s, who.platform, who.workspace)
        ref = args[0] if args else (ws.settings or {}).get("account")
        account = await control.resolve_account(s, ref)
    try:
        d = await asyncio.to_thread(discover_account, account, svc.settings)
    except (ScanInputError, BundleError) as e:
        log.info("discover %s by %s: %s", account.name, who.user_id, e)
        return Reply.of(error_card(str(e), "`/costdna status` lists the accounts"))
    return Reply.of(discover_card(account.name, d))

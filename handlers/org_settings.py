"""``/costdna settings org …``: the business hierarchy (teams -> business units -> groups) in chat.

- ``settings org``: show the units, their groups and teams (anyone);
- ``settings org unit <unit> teams <t1,t2,…> [group <group>]``: set one unit to exactly those teams
  (a team listed here leaves any other unit);
- ``settings org unit <unit> off``: remove a unit the workspace defined;
- ``settings org yaml`` + a YAML block (```` ```…``` ````): replace the workspace's hierarchy
  (``settings org yaml`` alone shows it as YAML; ``settings org yaml off`` clears it).

The workspace's setting overlays ``COSTDNA_ORG_FILE`` (:func:`jobs.org.org_for`): chat changes never
touch the file, and a unit the file defines can be redefined here but not removed. Changes are an
approver's (as tag writes and alert routes are: they move money between budgets in every report),
stored with ``repo.update_workspace_settings`` and audited as ``settings.org``. Routed from
:func:`handlers.commands.cmd_settings`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from engine.org import NO_GROUP, Org, OrgError
from handlers import views
from handlers.cards import Card, Section, error_card
from handlers.context import Reply, Services, Who
from jobs.org import org_for, org_from_file, org_of_workspace
from storage import repo

log = logging.getLogger("costdna.handlers")

USAGE = ("`settings org` · `settings org unit <unit> teams <t1,t2,…> [group <group>]` · "
         "`settings org unit <unit> off` · `settings org yaml` + a ```YAML block```")
_FENCE = re.compile(r"^\s*`{3}(?:ya?ml\b)?(.*?)`{3}\s*$", re.S | re.I)
_INLINE = re.compile(r"^\s*`([^`]*)`\s*$", re.S)


async def settings_org(svc: Services, who: Who, args: list[str], raw: str | None = None) -> Reply:
    """``args`` are the command's words from ``org`` on. ``raw``, when the caller has it, is the command
    text with its line breaks (the YAML block's indentation survives); without it the words are
    joined, and a block whose line breaks a chat client folded is still read (see :func:`_folded`)."""
    from handlers.commands import approver_ids, help_card, workspace

    rest = args[1:] if args and args[0].lower() == "org" else list(args)
    async with svc.db.session() as s:
        ws = await workspace(s, who)
        approvers = approver_ids(ws, svc.settings)
        file_org = org_from_file(getattr(svc.settings, "org_file", None))
        own = org_of_workspace(ws)

        def refuse() -> Reply:
            log.info("settings org: %s is not an approver", who.user_id)
            return Reply.of(error_card("Only an approver may change the business units.",
                                       "ask one of: " + (", ".join(views.mention(a) for a in approvers)
                                                         or "nobody yet: set COSTDNA_APPROVERS")))

        async def store(new: Org, note: str, **details: Any) -> Reply:
            await repo.update_workspace_settings(s, ws, actor=who.user_id, org=new.to_dict())
            await repo.audit(s, "settings.org", actor=who.user_id, target=f"workspace:{ws.id}", **details)
            return Reply.of(org_card(await org_for(s, ws, svc.settings), file_org, note, own=new))

        if not rest:
            return Reply.of(org_card(await org_for(s, ws, svc.settings), file_org, own=own))
        what = rest[0].lower()

        if what == "yaml":
            text = _yaml_text(rest, raw)
            if not text:
                merged = await org_for(s, ws, svc.settings)
                body = merged.to_yaml().rstrip() if not merged.empty else "business_units: {}"
                return Reply.of(Card(title="Business units (YAML)", ephemeral=True, sections=[
                    Section(f"```\n{body}\n```")],
                    context="edit and send back with `/costdna settings org yaml` + the block"))
            if not who.is_among(approvers):
                return refuse()
            if text.strip().lower() in ("off", "clear", "none", "remove"):
                return await store(Org(), "The workspace's business units are cleared"
                                   + (" (COSTDNA_ORG_FILE's still apply)." if not file_org.empty else "."),
                                   op="clear")
            try:
                new = _parse_yaml(text)
            except OrgError as e:
                log.info("settings org yaml by %s refused: %s", who.user_id, e)
                return Reply.of(error_card(f"That YAML is not a business hierarchy: {e}",
                                           "e.g. ```business_units:\n  payments-bu:\n    group: commerce\n"
                                           "    teams: [payments, checkout]```"))
            return await store(new, f"Business units replaced: {len(new.unit_names())} units.", op="yaml",
                               units=new.unit_names())

        if what == "unit" and len(rest) >= 2:
            unit = rest[1].strip()
            if len(rest) == 2:
                return Reply.of(org_card(await org_for(s, ws, svc.settings), file_org, only=unit, own=own))
            if len(rest) == 3 and rest[2].lower() in ("off", "none", "remove", "delete"):
                if not who.is_among(approvers):
                    return refuse()
                canon = _unit_name(own, unit)
                in_file = _unit_name(file_org, unit)
                if canon is None:
                    hint = " It comes from COSTDNA_ORG_FILE: change it there." if in_file else ""
                    return Reply.of(error_card(f"This workspace defines no business unit `{unit[:60]}`.{hint}",
                                               "`/costdna settings org` lists them"))
                note = f"*{canon}* is removed." + (" COSTDNA_ORG_FILE still defines it, so it shows as the file has it."
                                                   if in_file else "")
                return await store(own.without_unit(canon), note, op="unit_off", unit=canon)
            parsed = _unit_args(rest[2:])
            if parsed is None:
                return Reply.of(help_card(f"Use `settings org unit {unit[:40]} teams <t1,t2,…> [group <group>]` or "
                                          f"`settings org unit {unit[:40]} off`."))
            teams, group = parsed
            if not who.is_among(approvers):
                return refuse()
            canon = _unit_name(own, unit) or _unit_name(file_org, unit) or unit  # keep the known spelling
            try:
                new = own.with_unit(canon, teams, group)
            except OrgError as e:
                return Reply.of(error_card(str(e)))
            g = new.group_of_unit(canon) or file_org.group_of_unit(canon)
            note = f"*{canon}*{' (group *' + g + '*)' if g else ''} now has {', '.join(teams)}."
            return await store(new, note, op="unit", unit=canon, teams=teams, group=g)
    return Reply.of(help_card("Use " + USAGE + "."))


def _unit_name(org: Org, name: str) -> str | None:
    """The unit ``name`` denotes in ``org`` (its spelling there), or None."""
    lv = org.level_of(name)
    return lv[1] if lv is not None and lv[0] == "unit" else None


def _unit_args(words: list[str]) -> tuple[list[str], str | None] | None:
    """``teams a,b c [group g…]`` -> (teams, group or None); None when malformed. Either order works."""
    teams: list[str] = []
    group_words: list[str] = []
    target: list[str] | None = None
    saw_teams = False
    for w in words:
        low = w.lower().rstrip(":")
        if low in ("teams", "team"):
            target, saw_teams = teams, True
            continue
        if low == "group":
            target = group_words
            continue
        if target is None:
            return None
        target.append(w)
    names = [t for t in (x.strip().strip("'\"") for x in re.split(r"[,\s]+", " ".join(teams))) if t]
    if not saw_teams or not names:
        return None
    group = " ".join(group_words).strip().strip("'\"") or None
    return list(dict.fromkeys(names)), group


def _yaml_text(rest: list[str], raw: str | None) -> str:
    """The YAML after the ``yaml`` word, code fences removed: from ``raw`` when it has it (line breaks
    kept), else from the words."""
    text = ""
    if raw:
        m = re.search(r"\byaml\b", raw, re.I)
        text = raw[m.end():] if m else ""
    if not text.strip():
        text = " ".join(rest[1:])
    m = _FENCE.match(text) or _INLINE.match(text)
    return (m.group(1) if m else text).strip("\n").rstrip()


def _parse_yaml(text: str) -> Org:
    try:
        org = Org.from_yaml(text)
    except OrgError:
        if "\n" in text.strip():
            raise
        org = Org.from_dict(_folded(text))  # a block whose line breaks were folded into spaces
    if org.empty:
        raise OrgError("it defines no business units (to clear them use `settings org yaml off`)")
    return org


def _folded(text: str) -> dict[str, Any]:
    """Read a block-style hierarchy whose line breaks a chat client folded into spaces.

    ``business_units: payments-bu: group: commerce teams: [payments, checkout] platform-bu: …`` is no
    longer YAML, but the shape is fixed: a word ending in ``:`` is a unit unless it is ``group:`` or
    ``teams:``, and the words after those are the unit's group and teams."""
    tokens = re.sub(r"[\[\]{},]", " ", text).split()
    units: dict[str, dict[str, Any]] = {}
    cur: str | None = None
    slot: str | None = None
    for i, tok in enumerate(tokens):
        if tok == "-":
            continue
        if tok.endswith(":") and len(tok) > 1:
            key = tok[:-1].strip("'\"")
            low = key.lower()
            if low == "business_units" and i == 0:
                continue
            if low in ("group", "teams") and cur is not None:
                slot = low
                units[cur].setdefault(low, [] if low == "teams" else "")
                continue
            if key in units:
                raise OrgError(f"business unit {key!r} is defined twice")
            cur, slot = key, None
            units[cur] = {}
            continue
        if cur is None or slot is None:
            raise OrgError(f"unexpected {tok!r}: expected `business_units:`, then `<unit>: group: <group> "
                           "teams: [<team>, …]`")
        value = tok.lstrip("-").strip("'\"")
        if not value:
            continue
        if slot == "teams":
            units[cur]["teams"].append(value)
        else:
            units[cur]["group"] = f"{units[cur]['group']} {value}".strip()
    return {"business_units": {u: ({k: v for k, v in spec.items() if v != ""} or None)
                               for u, spec in units.items()}}


def org_card(org: Org, file_org: Org | None = None, note: str = "", *, only: str = "",
             own: Org | None = None) -> Card:
    """The units by group, each with its teams; a unit that comes from the file (``file_org``) and that
    the workspace's own setting (``own``) does not redefine says so."""
    file_org, own = file_org or Org(), own or Org()
    sections = [Section(note)] if note else []
    if org.empty:
        sections.append(Section("_No business units yet._ Define them with "
                                "`/costdna settings org unit <unit> teams <t1,t2,…> [group <group>]`, a YAML "
                                "block (`/costdna settings org yaml`), or COSTDNA_ORG_FILE."))
        return Card(title="Business units", sections=sections, ephemeral=True, kind="info", context=USAGE)
    units = org.unit_names()
    if only:
        lv = org.level_of(only)
        if lv is None or lv[0] != "unit":
            return error_card(f"There is no business unit `{only[:60]}`.", "`/costdna settings org` lists them")
        units = [lv[1]]
    by_group: dict[str, list[str]] = {}
    for u in units:
        by_group.setdefault(org.group_of_unit(u) or NO_GROUP, []).append(u)
    lines = []
    for g in sorted(by_group, key=lambda x: (x == NO_GROUP, x.lower())):
        lines.append(f"*{g}*" if g != NO_GROUP else "_no group_")
        for u in by_group[g]:
            teams = sorted(org.teams_in("unit", u), key=str.lower)
            src = " _(COSTDNA_ORG_FILE)_" if _from_file(u, file_org, own) else ""
            lines.append(f"• *{u}*{src}: {', '.join(teams) if teams else '_no teams; resources join by tag_'}")
    sections.append(Section("\n".join(lines)))
    sections.append(Section(f"Resource tags {', '.join(f'`{k}`' for k in org.unit_keys)} override a team's unit; "
                            f"{', '.join(f'`{k}`' for k in org.group_keys)} its group."))
    n_teams = len(org.units)
    return Card(title=f"Business units ({len(org.unit_names())} units, {n_teams} teams)", sections=sections,
                ephemeral=True, kind="info", context=USAGE)


def _from_file(unit: str, file_org: Org, own: Org) -> bool:
    return _unit_name(file_org, unit) is not None and _unit_name(own, unit) is None

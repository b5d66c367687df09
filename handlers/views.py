"""Cards built from database rows: a scan, a "who owns this?" question, a tag change set.

Pure functions of the rows they are given (no queries), except :func:`refreshed`, which loads the row a
chat message tracks and rebuilds its card: the job notifier calls it on "scan.progress",
"scan.finished", "scan.failed", "changeset.applied", "changeset.failed", "changeset.rolled_back" to
update the message in place.

Button values carry the row id and its nonce, separated by ``.`` (``prompt_id.nonce.team`` for a
label, ``change_set_id.nonce`` for a change set); action ids never contain ``:`` (the Slack renderer
suffixes repeated ids with ``:n``).
"""

from __future__ import annotations

from typing import Any

from handlers.cards import Button, Card, Option, Section, Select, progress_bar
from storage.repo import scan_state

# Action ids (see handlers.actions).
LABEL_TEAM = "label_team"
LABEL_OTHER = "label_other"
LABEL_SKIP = "label_skip"
CS_APPROVE = "cs_approve"
CS_REJECT = "cs_reject"
CS_ROLLBACK = "cs_rollback"
SEP = "."

BILLING_NOTE = ("A new tag key shows in Cost Explorer and the CUR only once it is activated as a cost allocation "
                "tag (Billing console > Cost allocation tags), and only for costs after that.")


def money(x: float | None) -> str:
    """``$1,234.56``; a credit reads ``-$3.00``."""
    v = round(x or 0.0, 2)
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def bill_line(s: dict) -> str:
    """The bill's own figures from a scan summary, each named by its measure (billed or amortized)."""
    if "net_billed_cost_usd" not in s:  # a summary stored before the cost model
        return ""
    parts = [f"gross {money(s.get('gross_cost_usd'))}"]
    for key, label in (("discounts_usd", "discounts"), ("credits_usd", "credits"), ("refunds_usd", "refunds"),
                       ("adjustments_usd", "adjustments")):
        if s.get(key):
            parts.append(f"{label} {money(s[key])}")
    return (f"Billed: {', '.join(parts)} = net {money(s.get('net_billed_cost_usd'))}. "
            f"Amortized (commitments spread over their usage; used for attribution): "
            f"{money(s.get('amortized_cost_usd'))}.")


def mention(user_id: str | None) -> str:
    """A chat mention for platform user ids (Slack ``U…``/``W…``, Discord snowflakes), else the name."""
    if not user_id:
        return "someone"
    if user_id.startswith("role:") and user_id[5:].isdigit():  # a Discord role
        return f"<@&{user_id[5:]}>"
    if (user_id[:1] in "UW" and user_id[1:].isalnum() and user_id.isupper()) or user_id.isdigit():
        return f"<@{user_id}>"
    return user_id


def short(entity: str) -> str:
    """``role:arn:aws:iam::1:role/ci`` -> ``role/ci``; ``person:alice@x`` -> ``alice@x``."""
    kind, _, name = entity.partition(":")
    if not name:
        return entity
    if name.startswith("arn:"):
        tail = name.split(":", 5)[-1]
        return tail or name
    return name


# -- scans --------------------------------------------------------------------------------------


def scan_card(scan: Any, account: Any) -> Card:
    name = getattr(account, "name", "?")
    if scan.status in ("queued", "running"):
        stage = scan.stage or ("waiting for a worker" if scan.status == "queued" else "starting")
        if getattr(scan, "worker_lost", False):  # its worker died; another takes the job as its lease lapses
            stage = f"{scan_state(scan)} (was at {stage})"
        return Card(title=f"Scanning {name}…", kind="progress",
                    sections=[Section(f"Scan #{scan.id} is *{scan.status}*: {stage}\n`{progress_bar(scan.progress)}`")],
                    context=f"requested by {mention(scan.requested_by)}" if scan.requested_by else "")
    if scan.status == "failed":
        return Card(title=f"Scan of {name} failed", kind="error",
                    sections=[Section(f"Scan #{scan.id} failed: {scan.error or 'no reason recorded'}")],
                    context="fix the cause and run `/costdna scan` again")
    return summary_card(scan, account)


def summary_card(scan: Any, account: Any) -> Card:
    s = scan.summary or {}
    threshold = s.get("confidence_threshold", 0.7)
    teams = s.get("teams") or {}
    sections = [Section(
        f"*{s.get('resources', 0)}* resources, {money(s.get('total_cost_usd'))} amortized over the period; "
        f"*{s.get('untagged_resources', 0)}* carry no owner tag ({money(s.get('untagged_cost_usd'))}).",
        fields=[
            ("Untagged spend (amortized)", money(s.get("untagged_cost_usd"))),
            (f"Attributable (≥ {threshold:.0%} confidence)",
             f"{money(s.get('attributable_cost_usd'))} on {s.get('attributable_resources', 0)} resources"),
            ("Fits no team", f"{s.get('no_team_count', 0)} resources"),
            ("Tag conflicts", f"{s.get('tag_conflict_count', 0)} resources"),
        ])]
    if bill := bill_line(s):
        sections.append(Section(bill))
    if teams:
        top = sorted(teams.items(), key=lambda kv: -kv[1].get("cost_usd", 0.0))[:8]
        lines = [f"• *{t}*: {money(v.get('cost_usd'))} on {int(v.get('resources', 0))} resources "
                 f"({int(v.get('inferred_resources', 0))} inferred)" for t, v in top]
        if len(teams) > len(top):
            lines.append(f"_… and {len(teams) - len(top)} more teams (`/costdna teams`)_")
        sections.append(Section("*Spend by team*\n" + "\n".join(lines)))
    notes = []
    if s.get("missing"):
        notes.append("missing sources: " + ", ".join(map(str, s["missing"])))
    if s.get("issue_count"):
        notes.append(f"{s['issue_count']} input problems")
    if s.get("duplicate_exports"):
        notes.append(f"{len(s['duplicate_exports'])} duplicate exports of the bill counted once")
    if notes:
        sections.append(Section("_" + "; ".join(notes) + "_"))
    return Card(title=f"Scan of {getattr(account, 'name', '?')} finished", kind="summary", sections=sections,
                context=f"scan #{scan.id} · `/costdna label` to answer who owns the rest · `/costdna apply` to tag")


# -- "who owns this?" ---------------------------------------------------------------------------


def _evidence_lines(ev: dict | None) -> list[str]:
    if not ev:
        return ["_no activity evidence was recorded for this resource_"]
    lines = ["• team read from its creator: its only evidence is its creation"] \
        if ev.get("owner_source") == "creator" else []
    for key, label in (("people", "people"), ("created_by", "created by"), ("managed_by", "managed by"),
                       ("used_by", "used by"), ("deployed_by", "deployed by"), ("repos", "repos"),
                       ("talks_to", "talks to"), ("vpcs", "network"), ("allowed_by", "allowed by")):
        vals = ev.get(key) or []
        if vals:
            lines.append(f"• {label}: " + ", ".join(f"`{short(str(v[0]))}`" for v in vals[:3]))
    return lines or ["_no activity evidence was recorded for this resource_"]


def top_teams(prediction: Any, n: int = 3) -> list[tuple[str, float]]:
    probs = dict(getattr(prediction, "probabilities", None) or {})
    if not probs and getattr(prediction, "team", ""):
        probs[prediction.team] = prediction.confidence
    return sorted(((str(t), float(p)) for t, p in probs.items()), key=lambda kv: -kv[1])[:n]


def prompt_card(prompt: Any, prediction: Any, teams: list[str]) -> Card:
    rid = getattr(prediction, "resource_id", "") or prompt.arn
    guess = top_teams(prediction)
    head = (f"`{rid}` ({getattr(prediction, 'type', '') or 'resource'}) costs about "
            f"*{money(getattr(prediction, 'monthly_cost_usd', 0.0))}/month* and carries no owner tag.")
    if guess:
        head += " Best guesses: " + ", ".join(f"{t} ({p:.0%})" for t, p in guess) + "."
    sections = [Section(head), Section("*Evidence*\n" + "\n".join(_evidence_lines(getattr(prediction, "evidence",
                                                                                              None))))]
    base = f"{prompt.id}{SEP}{prompt.nonce}"
    buttons = [Button(t, LABEL_TEAM, f"{base}{SEP}{t}", "primary" if i == 0 else "") for i, (t, _) in
               enumerate(guess)]
    buttons.append(Button("skip", LABEL_SKIP, base))
    others = [t for t in teams if t not in {g for g, _ in guess}]
    selects = [Select("another team…", LABEL_OTHER, tuple(Option(t, f"{base}{SEP}{t}") for t in others))] if others else []
    return Card(title="Who owns this?", kind="prompt", sections=sections, buttons=buttons, selects=selects,
                context=f"question #{prompt.id} · {prompt.arn}")


def answered_prompt_card(prompt: Any, prediction: Any = None) -> Card:
    rid = getattr(prediction, "resource_id", "") or prompt.arn
    if prompt.status == "answered":
        text = f"`{rid}` labeled as *{prompt.team}* by {mention(prompt.answered_by)}. costdna will learn from it."
    elif prompt.status == "skipped":
        text = f"`{rid}` skipped by {mention(prompt.answered_by)}."
    else:
        text = f"This question about `{rid}` {prompt.status}."
    return Card(title="Who owns this?", kind="info", sections=[Section(text)], context=f"question #{prompt.id}")


# -- change sets ----------------------------------------------------------------------------------


def _sample(items: list[Any], n: int = 5) -> str:
    top = sorted(items, key=lambda i: -i.monthly_cost_usd)[:n]
    lines = [f"• `{i.arn.rsplit(':', 1)[-1].split('/')[-1]}` → *{i.team}* "
             f"({i.confidence:.0%}, {money(i.monthly_cost_usd)}/mo)" for i in top]
    if len(items) > n:
        lines.append(f"_… and {len(items) - n} more_")
    return "\n".join(lines)


def change_set_card(cs: Any, items: list[Any], account: Any) -> Card:
    name = getattr(account, "name", "?")
    summ = cs.summary or {}
    value = f"{cs.id}{SEP}{cs.nonce}"
    n = len(items)
    dollars = sum(i.monthly_cost_usd for i in items)
    untagged = summ.get("untagged_monthly_usd")
    if untagged is None:
        untagged = sum(i.monthly_cost_usd for i in items if not (i.previous_tags or {}).get(cs.tag_key))
    teams: dict[str, int] = {}
    for i in items:
        teams[i.team] = teams.get(i.team, 0) + 1
    fields = [("Resources", str(n)), ("Monthly spend", money(dollars)),
              ("Moved out of untagged", f"{money(untagged)}/mo"),
              ("Teams", ", ".join(f"{t} ({c})" for t, c in sorted(teams.items(), key=lambda kv: -kv[1])[:6]))]
    ctx = f"change set #{cs.id} · {name} · tag `{cs.tag_key}`"
    if cs.status == "proposed":
        return Card(title=f"Tag {n} resources in {name}?", kind="changeset",
                    sections=[Section(f"Write the owner tag `{cs.tag_key}` on {n} resources.", fields=fields),
                              Section("*Sample*\n" + _sample(items))],
                    buttons=[Button("Approve", CS_APPROVE, value, "primary"), Button("Reject", CS_REJECT, value,
                                                                                        "danger")],
                    context=ctx + f" · proposed by {mention(cs.proposed_by)}")
    if cs.status == "approved":
        return Card(title=f"Writing tags in {name}…", kind="progress",
                    sections=[Section(f"Approved by {mention(cs.approver)}, writing tags…", fields=fields)],
                    context=ctx)
    if cs.status == "rejected":
        return Card(title=f"Tag change set #{cs.id} rejected", kind="info",
                    sections=[Section(f"Rejected by {mention(cs.approver)}; nothing was written.")], context=ctx)
    if cs.status in ("applied", "failed"):
        applied = [i for i in items if i.status == "applied"]
        failed = [i for i in items if i.status == "failed"]
        sections = [Section(f"Approved by {mention(cs.approver)}. *{len(applied)}* tagged, *{len(failed)}* failed.",
                            fields=[("Applied", str(len(applied))), ("Failed", str(len(failed))),
                                    ("Monthly spend tagged", money(sum(i.monthly_cost_usd for i in applied)))])]
        if failed:
            sections.append(Section("*Failures*\n" + "\n".join(f"• `{i.arn}`: {i.error}" for i in failed[:10])))
        sections.append(Section(f"_{BILLING_NOTE}_"))
        return Card(title=f"Tags {'written' if cs.status == 'applied' else 'not written'} in {name}",
                    kind="summary" if cs.status == "applied" else "error", sections=sections,
                    buttons=[Button("Roll back", CS_ROLLBACK, value, "danger")], context=ctx)
    if cs.status == "rolled_back":
        restored = sum(i.status == "rolled_back" for i in items)
        stuck = [i for i in items if i.status == "applied"]
        text = f"Rolled back: the previous tags of *{restored}* resources are restored."
        if stuck:
            text += f" {len(stuck)} could not be restored: " + ", ".join(f"`{i.arn}`" for i in stuck[:5])
        return Card(title=f"Tag change set #{cs.id} rolled back", kind="info", sections=[Section(text)], context=ctx)
    return Card(title=f"Tag change set #{cs.id}", sections=[Section(f"status: {cs.status}")], context=ctx)


# -- refresh a tracked message --------------------------------------------------------------------


async def refreshed(db: Any, kind: str, row_id: int) -> tuple[Card, list[dict]]:
    """The current card of a tracked row (``kind``: scan | changeset | prompt) and its chat refs."""
    from storage import repo

    async with db.session() as s:
        if kind == "scan":
            scan = await repo.get_scan(s, row_id)
            account = await repo.get_account(s, scan.account_id)
            return scan_card(scan, account), list(scan.chat_refs or [])
        if kind == "changeset":
            cs = await repo.get_change_set(s, row_id)
            items = await repo.change_items(s, row_id)
            account = await repo.get_account(s, cs.account_id)
            return change_set_card(cs, items, account), list(cs.chat_refs or [])
        if kind == "prompt":
            p = await repo.get_prompt(s, row_id)
            pred = await repo.prediction_for(s, p.scan_id, p.arn) if p.scan_id else None
            if p.status == "open":
                return prompt_card(p, pred, await known_teams(s, p.account_id, p.scan_id)), list(p.chat_refs or [])
            return answered_prompt_card(p, pred), list(p.chat_refs or [])
    raise ValueError(f"unknown tracked kind {kind!r}")


async def known_teams(s: Any, account_id: int, scan_id: int | None) -> list[str]:
    """Every team costdna knows for an account: the model's classes, tagged owners, human labels."""
    from storage import repo

    teams: set[str] = set()
    if scan_id is not None:
        scan = await repo.get_scan(s, scan_id)
        summary = scan.summary or {}
        teams.update((summary.get("model") or {}).get("teams", []))
        teams.update((summary.get("teams") or {}).keys())
    teams.update((await repo.current_labels(s, account_id, sources=("human", "import", "tag"))).values())
    return sorted(t for t in teams if t)

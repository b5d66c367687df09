"""``/costdna ask <question>``: an offline intent router over stored results (no LLM).

Intents, tried in order: spike ("why did our bill spike Tuesday?"), owner of a resource ("who owns
i-0abc?"), untagged spend, resources that fit no team, spend of a team ("spend of team payments"), top
spenders (resources, or teams when the question says teams). Every answer cites the resource ids its
query returned, and says so plainly when the evidence is not there (no accounts, no scan yet, an unknown
team, no daily costs). Read-only: nothing here writes to the database.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from handlers import views
from handlers.cards import Card, Section
from storage import repo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_SPIKE = re.compile(r"\b(spike[ds]?|jump(ed)?|surge[ds]?|went up|increase[ds]?|bill (go|went) up)\b", re.I)
_OWNER = re.compile(r"\b(?:who owns|owner of|who is the owner of|whose is)\s+[`<]?([^\s`>?]+)", re.I)
_UNTAGGED = re.compile(r"\b(untagged|no (owner )?tags?|without (a )?tags?|unowned spend)\b", re.I)
_NO_TEAM = re.compile(r"\b(fits? no team|no team|orphan(ed|s)?|unowned|anomal(y|ies|ous)|belong to no)\b", re.I)
_TEAM = re.compile(r"\bteam\s+[`\"']?([\w.-]+)", re.I)
_SPEND = re.compile(r"\b(spend|spending|spent|cost|costs|bill|how much)\b", re.I)
_TOP = re.compile(r"\b(top|biggest|largest|most expensive|highest|costliest|who spends|spenders?)\b", re.I)
_TEAMS_WORD = re.compile(r"\bteams\b", re.I)
_N = re.compile(r"\btop\s+(\d{1,2})\b", re.I)


def _card(title: str, text: str, cited: list[str], *, note: str = "") -> Card:
    sections = [Section(text)]
    if note:
        sections.append(Section(f"_{note}_"))
    ctx = ("sources: " + ", ".join(f"`{c}`" for c in cited[:15]) + (" …" if len(cited) > 15 else "")) if cited \
        else "no resources cited: the stored results hold no evidence for this"
    return Card(title=title, sections=sections, context=ctx, kind="info")


def _no_evidence(text: str) -> Card:
    return _card("I can't answer that from what is stored", text, [])


async def find_prediction(s: Any, scan_id: int, ref: str) -> Any:
    """A prediction by short id or ARN (canonicalized), or None."""
    from engine.arns import canonical_arn

    ref = ref.strip().strip("`<>\"'").rstrip("?.,")
    if not ref:
        return None
    pred = await repo.prediction_for(s, scan_id, ref)
    if pred is None and ref.startswith("arn:"):
        pred = await repo.prediction_for(s, scan_id, canonical_arn(ref))
    return pred


async def answer(db: Any, question: str, *, account: str | None = None, threshold: float = 0.7) -> Card:
    """Answer one question about an account's stored scan results, as a card."""
    q = question.strip()
    async with db.session() as s:
        accounts = await repo.list_accounts(s)
        if not accounts:
            return _no_evidence("No account has been added or scanned yet. Run `/costdna scan` first.")
        if account:
            acct = next((a for a in accounts if a.name == account), None)
            if acct is None:
                return _no_evidence(f"There is no account named {account!r}.")
        elif len(accounts) == 1:
            acct = accounts[0]
        else:
            acct = next((a for a in accounts if a.name.lower() in q.lower().split()), None)
            if acct is None:
                return _no_evidence("Several accounts are configured; name one in the question ("
                                    + ", ".join(a.name for a in accounts) + ").")
        scan = await repo.latest_predictions_scan(s, acct.id)
        if scan is None:
            return _no_evidence(f"{acct.name} has no finished scan yet, so there is no evidence to answer from. "
                                "Run `/costdna scan`.")
        if _SPIKE.search(q):
            return await _spike(s, acct, scan, q)
        m = _OWNER.search(q)
        if m:
            return await _owner(s, acct, scan, m.group(1), threshold)
        preds = await repo.predictions(s, scan.id)
        labels = await repo.current_labels(s, acct.id)
    # a person's label is the owner (a view over the row: nothing is written back)
    preds = [_Labeled(p, labels[p.arn]) if p.arn in labels else p for p in preds]
    if _UNTAGGED.search(q):
        return _untagged(acct, scan, preds, threshold)
    if _NO_TEAM.search(q):
        return _no_team(acct, scan, preds)
    team = _team_in(q, scan)
    if team is not None or (_TEAM.search(q) and _SPEND.search(q) and not _TEAMS_WORD.search(q)):
        return _team_spend(acct, scan, preds, team, q, threshold)
    if _TOP.search(q) or _SPEND.search(q):
        n = int(_N.search(q).group(1)) if _N.search(q) else 5
        n = max(1, min(n, 20))
        if _TEAMS_WORD.search(q):
            return _top_teams(acct, scan, preds, n, threshold)
        return _top_resources(acct, scan, preds, n)
    return _card("I didn't understand the question", (
        "I answer questions such as: _top spenders_, _top teams_, _who owns i-0abc123_, _spend of team "
        "payments_, _untagged spend_, _what fits no team_, _why did our bill spike Tuesday_."), [])


class _Labeled:
    """A prediction seen through a person's label: that team, with full confidence."""

    def __init__(self, pred: Any, team: str):
        self._pred, self.team, self.confidence = pred, team, 1.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pred, name)


def _team_in(q: str, scan: Any) -> str | None:
    teams = _teams(scan)
    m = _TEAM.search(q)
    if m and m.group(1).lower() in {t.lower() for t in teams}:
        return next(t for t in teams if t.lower() == m.group(1).lower())
    words = set(re.findall(r"[\w.-]+", q.lower()))
    hits = [t for t in teams if t.lower() in words]
    return hits[0] if len(hits) == 1 else None


def _teams(scan: Any) -> list[str]:
    summary = scan.summary or {}
    return sorted(set((summary.get("model") or {}).get("teams", [])) | set((summary.get("teams") or {}).keys()))


def _owner_of(p: Any, threshold: float) -> str:
    if isinstance(p, _Labeled):
        return p.team
    if p.tag_team and not p.tag_conflict:
        return p.tag_team
    return p.team if p.team and p.confidence >= threshold else ""


def _top_resources(acct: Any, scan: Any, preds: list[Any], n: int) -> Card:
    top = sorted(preds, key=lambda p: -p.monthly_cost_usd)[:n]
    if not top:
        return _no_evidence(f"Scan #{scan.id} of {acct.name} holds no resources.")
    lines = [f"{i}. `{p.resource_id}` ({p.type}): {views.money(p.monthly_cost_usd)}/mo, owner "
             f"{_owner_text(p)}"
             for i, p in enumerate(top, 1)]
    return _card(f"Top {len(top)} resources by monthly cost in {acct.name}", "\n".join(lines),
                 [p.resource_id for p in top])


def _owner_text(p: Any) -> str:
    if isinstance(p, _Labeled):
        return f"{p.team} (a person's label)"
    if p.tag_team:
        return p.tag_team
    return f"{p.team} (predicted, {p.confidence:.0%})" if p.team else "_unknown_"


def _top_teams(acct: Any, scan: Any, preds: list[Any], n: int, threshold: float) -> Card:
    spend: dict[str, float] = {}
    cited: dict[str, list[Any]] = {}
    for p in preds:
        owner = _owner_of(p, threshold)
        if owner:
            spend[owner] = spend.get(owner, 0.0) + p.monthly_cost_usd
            cited.setdefault(owner, []).append(p)
    if not spend:
        return _no_evidence(f"No resource of {acct.name} has an owner tag or a confident prediction yet.")
    rows = sorted(spend.items(), key=lambda kv: -kv[1])[:n]
    lines, ids = [], []
    for i, (team, usd) in enumerate(rows, 1):
        biggest = sorted(cited[team], key=lambda p: -p.monthly_cost_usd)[:2]
        ids += [p.resource_id for p in biggest]
        lines.append(f"{i}. *{team}*: {views.money(usd)}/mo on {len(cited[team])} resources (largest: "
                     + ", ".join(f"`{p.resource_id}`" for p in biggest) + ")")
    return _card(f"Top {len(rows)} teams by monthly cost in {acct.name}", "\n".join(lines), ids,
                 note=f"owner = the owner tag, else a prediction at ≥ {threshold:.0%} confidence")


def _team_spend(acct: Any, scan: Any, preds: list[Any], team: str | None, q: str, threshold: float) -> Card:
    if team is None:
        m = _TEAM.search(q)
        asked = m.group(1) if m else "?"
        return _no_evidence(f"I know no team called {asked!r} in {acct.name}. Known teams: "
                            + (", ".join(_teams(scan)) or "none yet") + ".")
    mine = [p for p in preds if _owner_of(p, threshold) == team]
    maybe = [p for p in preds if p not in mine and p.team == team and not p.tag_team]
    if not mine and not maybe:
        return _no_evidence(f"No resource of {acct.name} is tagged or confidently predicted as {team}.")
    total = sum(p.monthly_cost_usd for p in mine)
    tagged = [p for p in mine if p.tag_team == team and not p.tag_conflict]
    top = sorted(mine, key=lambda p: -p.monthly_cost_usd)[:5]
    text = (f"*{team}* spends about *{views.money(total)}/month* on {len(mine)} resources: {len(tagged)} tagged, "
            f"{len(mine) - len(tagged)} inferred from behaviour.")
    if top:
        text += "\nLargest: " + ", ".join(f"`{p.resource_id}` {views.money(p.monthly_cost_usd)}" for p in top)
    note = ""
    if maybe:
        note = (f"{len(maybe)} more resources ({views.money(sum(p.monthly_cost_usd for p in maybe))}/mo) look like "
                f"{team}'s but below {threshold:.0%} confidence; `/costdna label` asks about them")
    return _card(f"Spend of {team} in {acct.name}", text, [p.resource_id for p in top + maybe[:5]], note=note)


def _untagged(acct: Any, scan: Any, preds: list[Any], threshold: float) -> Card:
    untagged = sorted((p for p in preds if not p.tag_team), key=lambda p: -p.monthly_cost_usd)
    if not untagged:
        return _card(f"Untagged spend in {acct.name}", "Every resource carries an owner tag.", [])
    total = sum(p.monthly_cost_usd for p in untagged)
    attributable = [p for p in untagged if p.team and p.confidence >= threshold]
    top = untagged[:5]
    text = (f"*{len(untagged)}* resources carry no owner tag, about *{views.money(total)}/month* "
            f"({views.money((scan.summary or {}).get('untagged_cost_usd'))} over the scanned period). "
            f"{len(attributable)} of them ({views.money(sum(p.monthly_cost_usd for p in attributable))}/mo) have a "
            f"predicted owner at ≥ {threshold:.0%} confidence.\nLargest: "
            + ", ".join(f"`{p.resource_id}` {views.money(p.monthly_cost_usd)}" for p in top))
    return _card(f"Untagged spend in {acct.name}", text, [p.resource_id for p in top])


def _no_team(acct: Any, scan: Any, preds: list[Any]) -> Card:
    none = sorted((p for p in preds if not p.team), key=lambda p: -p.monthly_cost_usd)
    if not none:
        return _card(f"Resources that fit no team in {acct.name}",
                     "Every resource's behaviour resembles some team's.", [])
    top = none[:8]
    text = (f"*{len(none)}* resources behave unlike every team ({views.money(sum(p.monthly_cost_usd for p in none))}"
            "/mo): candidates for clean-up or a missing team.\n"
            + "\n".join(f"• `{p.resource_id}` ({p.type}) {views.money(p.monthly_cost_usd)}/mo, anomaly "
                        f"{p.anomaly_score:.2f}" for p in top))
    return _card(f"Resources that fit no team in {acct.name}", text, [p.resource_id for p in top])


async def _owner(s: Any, acct: Any, scan: Any, ref: str, threshold: float) -> Card:
    p = await find_prediction(s, scan.id, ref)
    if p is None:
        return _no_evidence(f"`{ref[:200]}` is not a resource of {acct.name} in scan #{scan.id}.")
    human = (await repo.current_labels(s, acct.id)).get(p.arn)
    if human:
        text = f"`{p.resource_id}` is owned by *{human}* (a person's label)."
    elif p.tag_team:
        text = f"`{p.resource_id}` is tagged *{p.tag_team}*."
        if p.tag_conflict:
            text += f" Its behaviour says *{p.team}* ({p.confidence:.0%}): the tag may be stale."
    elif p.team:
        text = (f"`{p.resource_id}` most likely belongs to *{p.team}* ({p.confidence:.0%} confident"
                + ("" if p.confidence >= threshold else ", not enough to tag it") + ").")
    else:
        text = f"`{p.resource_id}` fits no team: its behaviour is unlike every team's."
    ev = views._evidence_lines(p.evidence)
    return _card(f"Who owns {p.resource_id}?", text + "\n" + "\n".join(ev), [p.resource_id])


def _named_day(q: str, days: list[date]) -> date | None:
    ql = q.lower()
    if "yesterday" in ql and days:
        return days[-1] - timedelta(days=1) if len(days) > 1 else days[-1]
    for i, name in enumerate(WEEKDAYS):
        if re.search(rf"\b{name}\b|\b{name[:3]}\b", ql):
            hits = [d for d in days if d.weekday() == i]
            return hits[-1] if hits else None
    m = re.search(r"\b(\d{4}-\d{2}-\d{2})\b", ql)
    if m:
        try:
            return date.fromisoformat(m.group(1))
        except ValueError:
            return None
    return days[-1] if days else None


async def _spike(s: Any, acct: Any, scan: Any, q: str) -> Card:
    note = ("Explaining spikes (deploys, actors, instance types behind a jump) arrives in a later version; "
            "here are the largest day-over-day cost changes the stored daily costs show.")
    rows = await repo.daily_cost_rows(s, acct.id)
    if not rows:
        return _card("Why did the bill change?", "No daily costs are stored for this account, so I cannot see a "
                     "spike.", [], note=note)
    by_day: dict[date, dict[str, float]] = {}
    for arn, day, usd in rows:
        by_day.setdefault(day, {})[arn] = by_day.get(day, {}).get(arn, 0.0) + usd
    days = sorted(by_day)
    day = _named_day(q, days)
    if day is None or day not in by_day:
        return _card("Why did the bill change?", "The stored daily costs cover "
                     f"{days[0]} to {days[-1]}; the day asked about is not among them.", [], note=note)
    if day == days[0]:
        return _card("Why did the bill change?", f"{day} is the first day with stored costs; there is no day before "
                     "it to compare with.", [], note=note)
    prev = days[days.index(day) - 1]
    cur, before = by_day[day], by_day[prev]
    delta = {a: cur.get(a, 0.0) - before.get(a, 0.0) for a in set(cur) | set(before)}
    top = sorted(delta.items(), key=lambda kv: -abs(kv[1]))[:5]
    ids = {p.arn: p for p in await repo.predictions(s, scan.id)}
    total = sum(cur.values()) - sum(before.values())

    def rid(arn: str) -> str:
        return ids[arn].resource_id if arn in ids else arn

    lines = [f"• `{rid(a)}` {'+' if d >= 0 else '-'}{views.money(abs(d))} (owner "
             f"{(ids[a].tag_team or ids[a].team) if a in ids and (ids[a].tag_team or ids[a].team) else 'unknown'})"
             for a, d in top if abs(d) > 0.005]
    text = (f"{day} ({WEEKDAYS[day.weekday()].title()}) cost {views.money(sum(cur.values()))}, "
            f"{'+' if total >= 0 else '-'}{views.money(abs(total))} against {prev}.\n"
            + ("\n".join(lines) if lines else "No resource's cost changed."))
    return _card("Why did the bill change?", text, [rid(a) for a, d in top if abs(d) > 0.005], note=note)

"""``/costdna ask <question>``: an offline intent router over stored results (no LLM).

Intents, tried in order: spike ("why did our bill spike Tuesday?"), owner of a resource ("who owns
i-0abc?"), untagged spend, resources that fit no team, spend of a team ("spend of team payments"), top
spenders (resources, or teams when the question says teams). Every answer cites the resource ids its
query returned, and says so plainly when the evidence is not there (no accounts, no scan yet, an unknown
team, no daily costs). Read-only: nothing here writes to the database.

Periods ("last week", "in October", "yesterday", "last 7 days", "MoM", "spend vs last week"):
``engine.periods.parse_period`` reads them relative to ``now``, clipped to the data's last day + 1, and
removes their words before the rest is matched (so "spend by team month over month" is every team,
month over month, not a team called "month"). Spend, top spenders, spend by team, a team's spend and
untagged spend are then summed from the stored daily costs (amortized) over the period, and a
comparison shows both periods and the change in $ and %. A period without stored costs is said so,
with the range the stored costs cover. A spike question compares the day (the asked day, the day of
the asked period that rose most, or the latest stored day) with the average of the 7 days before it,
lists the top movers and the watch's stored spikes overlapping that day with their causes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.periods import Period, parse_period
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
_BY_TEAM = re.compile(r"\b(by|per|each|every|across) teams?\b", re.I)


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


async def answer(db: Any, question: str, *, account: str | None = None, threshold: float = 0.7,
                 now: datetime | None = None) -> Card:
    """Answer one question about an account's stored scan results, as a card.

    A period in the question ("last week", "in October", "yesterday", "MoM"; ``engine.periods``) is
    read relative to ``now`` (default: the current time), clipped to the stored daily costs' last day,
    and its words are removed before the rest of the question is matched.
    """
    q = question.strip()
    now = now or datetime.now(UTC)
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
        m = _OWNER.search(q)
        if m and not _SPIKE.search(q):
            return await _owner(s, acct, scan, m.group(1), threshold)
        period, rest = parse_period(q, now)
        rows: list[tuple[str, Any, float]] = []
        if period is not None or _SPIKE.search(q):
            rows = await repo.daily_cost_rows(s, acct.id)
            if rows and period is not None:
                data_end = datetime.combine(max(d for _, d, _ in rows) + timedelta(days=1), time(), UTC)
                period, rest = parse_period(q, now, data_end=data_end)
            if period is not None:
                q = rest
        if _SPIKE.search(q):
            return await _spike(s, acct, scan, q, rows, period)
        preds = await repo.predictions(s, scan.id)
        labels = await repo.current_labels(s, acct.id)
    # a person's label is the owner (a view over the row: nothing is written back)
    preds = [_Labeled(p, labels[p.arn]) if p.arn in labels else p for p in preds]
    if period is not None and not _NO_TEAM.search(q) or (period is not None and _UNTAGGED.search(q)):
        card = _period_answer(acct, scan, preds, q, threshold, rows, period)
        if card is not None:
            return card
    if _UNTAGGED.search(q):
        return _untagged(acct, scan, preds, threshold)
    if _NO_TEAM.search(q):
        return _no_team(acct, scan, preds)
    team = _team_in(q, scan)
    by_team = bool(_BY_TEAM.search(q))
    if not by_team and (team is not None or (_TEAM.search(q) and _SPEND.search(q) and not _TEAMS_WORD.search(q))):
        return _team_spend(acct, scan, preds, team, q, threshold)
    if _TOP.search(q) or _SPEND.search(q):
        n = int(_N.search(q).group(1)) if _N.search(q) else 5
        n = max(1, min(n, 20))
        if _TEAMS_WORD.search(q) or by_team:
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


# -- spend over a period (daily costs, amortized) -------------------------------------------------------


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


def _in(day: date, period: Period) -> bool:
    """A stored day belongs to a period when its midnight (UTC) lies in ``[start, end)``."""
    return period.start <= _day_start(day) < period.end


def _sum_by_arn(rows: list[tuple[str, Any, float]], period: Period) -> dict[str, float]:
    out: dict[str, float] = {}
    for arn, day, usd in rows:
        if _in(day, period):
            out[arn] = out.get(arn, 0.0) + usd
    return out


def _has_data(rows: list[tuple[str, Any, float]], period: Period) -> bool:
    return any(_in(day, period) for _, day, _ in rows)


def _range_text(rows: list[tuple[str, Any, float]]) -> str:
    days = [d for _, d, _ in rows]
    return f"{min(days)} to {max(days)}" if days else "no days at all"


def _change(cur: float, prev: float) -> str:
    """``+$12.00 (+4.5%)`` against the previous figure; the percentage is n/a from $0.00."""
    d = round(cur, 2) - round(prev, 2)
    sign = "+" if d >= 0 else "-"
    pct = f"{sign}{abs(d) / abs(prev):.1%}" if abs(prev) >= 0.005 else "n/a"
    return f"{sign}{views.money(abs(d))} ({pct})"


def _no_period_data(acct: Any, period: Period, rows: list[tuple[str, Any, float]], what: str) -> Card:
    return _card(f"{what} in {acct.name}: {period.label}",
                 f"No daily costs are stored for {period.label} ({period.start:%Y-%m-%d} to "
                 f"{(period.end - timedelta(microseconds=1)):%Y-%m-%d}). The stored daily costs of {acct.name} "
                 f"cover {_range_text(rows)}.", [])


def _period_answer(acct: Any, scan: Any, preds: list[Any], q: str, threshold: float,
                   rows: list[tuple[str, Any, float]], period: Period) -> Card | None:
    """A spend question over a period, from the stored daily costs; None when it is not one."""
    untagged = bool(_UNTAGGED.search(q))
    team = _team_in(q, scan)
    by_team = bool(_BY_TEAM.search(q) or _TEAMS_WORD.search(q))
    named_team = bool(_TEAM.search(q) and _SPEND.search(q) and not _TEAMS_WORD.search(q)) and not by_team
    if not (untagged or team or named_team or _TOP.search(q) or _SPEND.search(q) or by_team):
        return None
    if not by_team and not untagged and team is None and named_team:
        return _team_spend(acct, scan, preds, None, q, threshold)  # an unknown team: say so
    by_arn = {p.arn: p for p in preds}

    def rid(arn: str) -> str:
        return by_arn[arn].resource_id if arn in by_arn else arn

    if untagged:
        keep = {p.arn for p in preds if not p.tag_team}
        what = "Untagged spend"
    elif team is not None and not by_team:
        keep = {p.arn for p in preds if _owner_of(p, threshold) == team}
        what = f"Spend of {team}"
    else:
        keep = None
        what = "Spend by team" if by_team else "Top spenders"
    if not rows:
        return _card(f"{what} in {acct.name}", "No daily costs are stored for this account, so I cannot "
                     f"answer for {period.label}.", [])
    if not _has_data(rows, period):
        return _no_period_data(acct, period, rows, what)
    cur = _sum_by_arn(rows, period)
    prev = _sum_by_arn(rows, period.compare) if period.compare is not None else {}
    if keep is not None:
        cur = {a: v for a, v in cur.items() if a in keep}
        prev = {a: v for a, v in prev.items() if a in keep}
    cmp = period.compare
    cmp_missing = cmp is not None and not _has_data(rows, cmp)
    title = f"{what} in {acct.name}: {period.label}" + (f" vs {cmp.label}" if cmp is not None else "")
    note = "amortized daily costs"
    if cmp_missing:
        note += f"; no daily costs are stored for {cmp.label} (stored: {_range_text(rows)})"
    n = int(_N.search(q).group(1)) if _N.search(q) else 5
    n = max(1, min(n, 20))

    def vs(a: float, b: float, short: bool = True) -> str:
        if cmp is None:
            return ""
        if cmp_missing:
            return "" if short else f" ({cmp.label}: no data)"
        return f" (vs {views.money(b)}: {_change(a, b)})" if short else \
            f" (vs {views.money(b)} in {cmp.label}: {_change(a, b)})"

    total, ptotal = sum(cur.values()), sum(prev.values())
    if by_team and not untagged:
        spend: dict[str, float] = {}
        pspend: dict[str, float] = {}
        members: dict[str, list[str]] = {}
        for a in set(cur) | set(prev):
            owner = _owner_of(by_arn[a], threshold) if a in by_arn else ""
            owner = owner or "no owner"
            spend[owner] = spend.get(owner, 0.0) + cur.get(a, 0.0)
            pspend[owner] = pspend.get(owner, 0.0) + prev.get(a, 0.0)
            members.setdefault(owner, []).append(a)
        ranked = sorted(spend, key=lambda t: (-spend[t], t))[:n]
        lines, ids = [], []
        for i, t in enumerate(ranked, 1):
            big = sorted(members[t], key=lambda a: (-cur.get(a, 0.0), a))[:2]
            ids += [rid(a) for a in big]
            lines.append(f"{i}. *{t}*: {views.money(spend[t])}{vs(spend[t], pspend[t])}, largest "
                         + ", ".join(f"`{rid(a)}`" for a in big))
        text = (f"Amortized spend by team, {period.label}: {views.money(total)}{vs(total, ptotal, False)}.\n"
                + "\n".join(lines))
        return _card(title, text, ids, note=note + f"; owner = the owner tag, a person's label, else a "
                     f"prediction at ≥ {threshold:.0%} confidence")
    top = sorted(cur, key=lambda a: (-cur[a], a))[:n]
    if keep is not None and not cur and not prev:
        return _card(title, f"{what} was {views.money(0)} (amortized) in {period.label}: no such resource "
                     "had a cost that period.", [], note=note)
    head = {"Top spenders": "All resources", "Untagged spend": "Resources without an owner tag"}.get(
        what, f"*{team}*'s resources")
    lines = [f"{i}. `{rid(a)}`: {views.money(cur[a])}{vs(cur[a], prev.get(a, 0.0))}" for i, a in enumerate(top, 1)]
    text = (f"{head} cost *{views.money(total)}* (amortized) in {period.label}{vs(total, ptotal, False)}, on "
            f"{len(cur)} resources.\n" + ("Largest:\n" if what != "Top spenders" else f"Top {len(top)}:\n")
            + "\n".join(lines))
    return _card(title, text, [rid(a) for a in top], note=note)


async def _spike(s: Any, acct: Any, scan: Any, q: str, rows: list[tuple[str, Any, float]],
                 period: Period | None) -> Card:
    """The day asked about (or the latest stored day) against the 7 days before it, its top movers, and
    the watch's stored spikes overlapping that day with their causes."""
    from handlers import watch_views
    from storage import watch_repo

    note = ("Amortized daily costs; a fuller explanation (deploys, actors, instance types behind a jump) "
            "arrives in a later version.")
    if not rows:
        return _card("Why did the bill change?", "No daily costs are stored for this account, so I cannot see a "
                     "spike.", [], note=note)
    by_day: dict[date, dict[str, float]] = {}
    for arn, day, usd in rows:
        by_day.setdefault(day, {})[arn] = by_day.get(day, {}).get(arn, 0.0) + usd
    days = sorted(by_day)
    lead = ""
    if period is not None:
        inside = [d for d in days if _in(d, period)]
        if not inside:
            lead = (f"No daily costs are stored for {period.label}; the stored daily costs cover {days[0]} to "
                    f"{days[-1]}. The latest stored day instead:\n")
            day = days[-1]
        else:
            def rise(d: date) -> float:
                base = [sum(by_day[b].values()) for b in by_day if d - timedelta(days=7) <= b < d]
                return sum(by_day[d].values()) - (sum(base) / 7 if base else 0.0)
            day = max(inside, key=lambda d: (rise(d), d))
    else:
        day = days[-1]
    window = [day - timedelta(days=k) for k in range(7, 0, -1)]
    before = [d for d in window if d in by_day]
    cur = by_day[day]
    if not before:
        return _card("Why did the bill change?", lead + f"{day} is the first day with stored costs; there are no "
                     "days before it to compare with.", [], note=note)
    base = {a: sum(by_day[d].get(a, 0.0) for d in window if d in by_day) / 7 for a in
            {a for d in before for a in by_day[d]}}
    delta = {a: cur.get(a, 0.0) - base.get(a, 0.0) for a in set(cur) | set(base)}
    top = sorted(delta.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:5]
    ids = {p.arn: p for p in await repo.predictions(s, scan.id)}
    day_total, base_total = sum(cur.values()), sum(base.values())

    def rid(arn: str) -> str:
        return ids[arn].resource_id if arn in ids else arn

    lines = [f"• `{rid(a)}` {views.money(cur.get(a, 0.0))} vs {views.money(base.get(a, 0.0))}/day: "
             f"{'+' if d >= 0 else '-'}{views.money(abs(d))} (owner "
             f"{(ids[a].tag_team or ids[a].team) if a in ids and (ids[a].tag_team or ids[a].team) else 'unknown'})"
             for a, d in top if abs(d) > 0.005]
    cited = [rid(a) for a, d in top if abs(d) > 0.005]
    span = f"{window[0]} to {window[-1]}" + (f", {len(before)} of them with data" if len(before) < 7 else "")
    text = (lead + f"{day} ({WEEKDAYS[day.weekday()].title()}) cost {views.money(day_total)} (amortized) against "
            f"an average of {views.money(base_total)}/day over the 7 days before ({span}): "
            f"{_change(day_total, base_total)}.\n"
            + ("Top movers:\n" + "\n".join(lines) if lines else "No resource's cost changed."))
    d0 = _day_start(day)
    spikes = [sp for sp in await watch_repo.spikes_for(s, acct.id, since=d0)
              if _aware(sp.start) < d0 + timedelta(days=1) and _aware(sp.end) > d0]
    if spikes:
        text += "\nSpikes the watch found that day:\n" + "\n".join(
            f"• `{sp.resource_id or sp.arn}` {sp.start:%H:%M}–{sp.end:%H:%M} UTC, +{views.money(sp.extra_usd)} "
            f"({sp.severity}): {watch_views.cause_line(sp.cause)}" for sp in spikes[:5])
        cited += [sp.resource_id or sp.arn for sp in spikes[:5] if (sp.resource_id or sp.arn) not in cited]
    return _card("Why did the bill change?", text, cited, note=note)


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt

"""The ask tools: read-only questions over one account's stored results, each with its evidence.

Every tool takes the account's :class:`~engine.ask.facts.Facts` and JSON-able arguments and returns a
:class:`ToolResult`: the answer as text, the same as data (what an LLM reads), the resource ids it
rests on (``citations``) and the numbers it quotes (``figures``, money to the cent). The offline
router and the LLM call the same tools through :func:`run_tool`, which checks the arguments against
each tool's JSON schema first, so a malformed call never reaches a tool.

Read-only by construction: a tool reads ``Facts`` (in memory) and ``facts.store`` (two read-only
lookups), and no tool here writes anything, anywhere. Money is amortized cost throughout, quoted as
``$1,234.56``; periods are read by ``engine.periods`` relative to ``facts.now`` and clipped to the
stored data; without a period, spend is the monthly run rate over the scanned period (the figure the
scan summary, ``teams`` and the digest quote).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.ask.facts import NO_OWNER, EventFact, Facts, Res
from engine.org import NO_GROUP, NO_UNIT  # the digest's names for the same buckets
from engine.periods import Period, parse_period

LEVELS = ("resource", "team", "unit", "group")


class ToolError(ValueError):
    """A call the tools cannot run: an unknown tool or arguments that do not fit its schema."""


@dataclass
class ToolResult:
    tool: str
    args: dict[str, Any]
    ok: bool  # False: no evidence to answer from (``text`` says why)
    text: str
    data: Any = None
    citations: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "ok": self.ok, "text": self.text, "data": self.data,
                "citations": self.citations, "figures": self.figures}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Awaitable[ToolResult]]

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling description of this tool."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


TOOLS: dict[str, Tool] = {}


def tool(name: str, description: str, **props: dict[str, Any]) -> Callable:
    """Register an async ``fn(facts, **args)`` as a tool; ``props`` are its JSON-schema properties
    (a property with ``"required": True`` is required)."""

    def wrap(fn: Callable[..., Awaitable[ToolResult]]) -> Callable[..., Awaitable[ToolResult]]:
        schema = {k: {kk: vv for kk, vv in v.items() if kk != "required"} for k, v in props.items()}
        required = [k for k, v in props.items() if v.get("required")]
        params = {"type": "object", "properties": schema, "required": required, "additionalProperties": False}
        TOOLS[name] = Tool(name, description, params, fn)
        return fn

    return wrap


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                            "boolean": (bool,), "array": (list, tuple), "object": (dict,)}


def _check(schema: Mapping[str, Any], value: Any, where: str) -> None:
    types = schema.get("type")
    if types:
        names = [types] if isinstance(types, str) else list(types)
        if not any(isinstance(value, _JSON_TYPES.get(t, ())) and not (t in ("integer", "number") and isinstance(
                value, bool)) for t in names) and not (value is None and "null" in names):
            raise ToolError(f"{where}: expected {' or '.join(names)}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolError(f"{where}: {value!r} is not one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ToolError(f"{where}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ToolError(f"{where}: {value} is above {schema['maximum']}")
    if isinstance(value, list | tuple) and "items" in schema:
        for i, v in enumerate(value):
            _check(schema["items"], v, f"{where}[{i}]")


def validate(name: str, args: Any) -> dict[str, Any]:
    """The arguments, checked against the tool's schema; raises ToolError with a clear message."""
    t = TOOLS.get(name)
    if t is None:
        raise ToolError(f"there is no tool called {name!r} (tools: {', '.join(sorted(TOOLS))})")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolError(f"{name}: arguments must be an object")
    props = t.parameters["properties"]
    for k in args:
        if k not in props:
            raise ToolError(f"{name}: unknown argument {k!r} (known: {', '.join(props) or 'none'})")
    for k in t.parameters["required"]:
        if args.get(k) in (None, ""):
            raise ToolError(f"{name}: argument {k!r} is required")
    for k, v in args.items():
        if v is not None:
            _check(props[k], v, f"{name}.{k}")
    return {k: v for k, v in args.items() if v is not None}


async def run_tool(facts: Facts, name: str, args: Any = None) -> ToolResult:
    """Run one tool by name after checking its arguments (raises ToolError on a bad call)."""
    checked = validate(name, args)
    res = await TOOLS[name].fn(facts, **checked)
    res.tool, res.args = name, checked
    if not res.title:
        res.title = TITLES.get(name, name.replace("_", " ").capitalize()) + f" in {facts.account}"
    return res


TITLES = {"top_spenders": "Top spenders", "attribute_resource": "Who owns it", "find_cost_spikes": "Cost spikes",
          "find_anomalies": "Anomalies", "find_idle": "Idle resources", "find_abandoned": "Abandoned resources",
          "compare_teams": "Teams compared", "signal_history": "Resource history", "search_resources": "Search",
          "summarize_account": "Summary", "team_spend": "Team spend", "untagged_spend": "Untagged spend",
          "tag_compliance": "Tag compliance", "what_changed": "What changed"}


# -- shared --------------------------------------------------------------------------------------------


def money(x: float | None) -> str:
    """``$1,234.56``; a credit reads ``-$3.00`` (the format every surface uses)."""
    v = round(x or 0.0, 2)
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def cents(x: float) -> float:
    return round(float(x) + 0.0, 2)


def change(cur: float, prev: float) -> str:
    """``+$12.00 (+4.5%)`` against the previous figure; the percentage is n/a from $0.00. The change is the
    exact difference rounded to the cent (which may differ by a cent from the difference of the rounded
    figures)."""
    d = cents(cur - prev)
    sign = "+" if d >= 0 else "-"
    pct = f"{sign}{abs(d) / abs(prev):.1%}" if abs(prev) >= 0.005 else "n/a"
    return f"{sign}{money(abs(d))} ({pct})"


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


def _last_day(p: Period) -> date:
    return (p.end - timedelta(microseconds=1)).date()


def period_dict(p: Period | None) -> dict[str, Any] | None:
    """A period as JSON (the router's argument and a thread's stored context)."""
    if p is None:
        return None
    out: dict[str, Any] = {"start": p.start.isoformat(), "end": p.end.isoformat(), "label": p.label}
    if p.compare is not None:
        out["compare"] = period_dict(p.compare)
    return out


def _from_dict(d: Mapping[str, Any]) -> Period:
    try:
        start, end = datetime.fromisoformat(str(d["start"])), datetime.fromisoformat(str(d["end"]))
    except (KeyError, ValueError) as e:
        raise ToolError(f"period: needs ISO 'start' and 'end' ({e})") from None
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if end < start:
        raise ToolError("period: 'end' must not come before 'start'")
    cmp = d.get("compare")
    return Period(start, end, str(d.get("label") or f"{start:%Y-%m-%d} to {_last_day(Period(start, end, '')):%Y-%m-%d}"),
                  _from_dict(cmp) if isinstance(cmp, Mapping) else None)


def read_period(facts: Facts, value: Any) -> Period | None:
    """A period argument: free text ("last month", "MoM", "since Nov 3") or the router's dict."""
    if value in (None, ""):
        return None
    if isinstance(value, Mapping):
        return _from_dict(value)
    end = _day_start(facts.data_end + timedelta(days=1)) if facts.data_end else None
    p, _rest = parse_period(str(value), facts.now, data_end=end)
    if p is None:
        raise ToolError(f"period: cannot read {str(value)[:60]!r} as a period (try 'last month', 'last 7 days', "
                        "'2026-11-01 to 2026-11-07', 'MoM')")
    return p


def _title(what: str, facts: Facts, p: Period | None) -> str:
    """``Spend of payments in prod: October 2026 vs September 2026``."""
    if p is None:
        return f"{what} in {facts.account}"
    return f"{what} in {facts.account}: {p.label}" + (f" vs {p.compare.label}" if p.compare is not None else "")


def coverage(facts: Facts, p: Period) -> str:
    """`` (3 stored days against 7)`` when a period to date is compared with a whole one; else ""."""
    if p.compare is None:
        return ""
    n = int(facts.day_mask(p.start, p.end).sum())
    m = int(facts.day_mask(p.compare.start, p.compare.end).sum())
    if not m or n >= m:
        return ""
    return f" ({n} stored day{'s' * (n != 1)} against {m}: compare like with like before reading the change)"


def _range(facts: Facts) -> str:
    return f"{facts.data_start} to {facts.data_end}" if facts.days else "no days at all"


def _no_days(facts: Facts, p: Period, what: str) -> ToolResult:
    span = "" if f"{p.start:%Y-%m-%d}" in p.label else (
        f" ({p.start:%Y-%m-%d} to {max(p.start, p.end - timedelta(microseconds=1)):%Y-%m-%d})")
    return ToolResult("", {}, False, f"No daily costs are stored for {p.label}{span}, so I cannot tell {what}. "
                      "The stored daily costs of "
                      f"{facts.account} cover {_range(facts)}.",
                      data={"period": period_dict(p), "stored": [str(facts.data_start), str(facts.data_end)]
                            if facts.days else None})


def _level_name(facts: Facts, r: Res | None, level: str) -> str:
    owner = r.owner(facts.threshold) if r is not None else ""
    if level == "team":
        return owner or NO_OWNER
    if level == "unit":
        return facts.unit_of(r, owner) or NO_UNIT
    return facts.group_of(r, owner) or NO_GROUP


def _team_level(facts: Facts, r: Res, team: str, level: str) -> str:
    """What ``team`` rolls up to at ``level`` for this resource."""
    if level == "team":
        return team
    return facts.unit_of(r, team) if level == "unit" else facts.group_of(r, team)


def resolve_owner(facts: Facts, name: str, level: str | None = None) -> tuple[str, str] | None:
    """A team, business unit or business group by name or alias: (level, canonical name). ``level``
    prefers one ("the payments BU" when a team is also called payments)."""
    team = facts.canonical_team(name)
    hit = facts.org.level_of(name) if facts.org is not None else None
    if level in ("unit", "group") and hit is not None and hit[0] == level:
        return hit
    if team and level in (None, "team"):
        return "team", team
    if hit is not None:
        return hit
    return ("team", team) if team else None


def _members(facts: Facts, level: str, name: str) -> set[str]:
    """ARNs (resources and cost rows) owned by a team / unit / group."""
    out = set()
    for arn in set(facts.by_arn) | set(facts.cost_arns):
        if _level_name(facts, facts.by_arn.get(arn), level) == name:
            out.add(arn)
    return out


def _known_owners(facts: Facts) -> str:
    names = facts.teams()
    if facts.org is not None and not facts.org.empty:
        names += sorted(set(facts.org.units.values())) + sorted(set(facts.org.groups.values()))
    return ", ".join(names[:30]) or "none yet"


def _spend_text(facts: Facts, arns: set[str] | None, p: Period | None) -> tuple[float, float | None, bool]:
    """(spend in p, spend in p.compare or None, compare has data) for the arns (None: all)."""
    cur = facts.spend(p.start, p.end)
    total = sum(v for a, v in cur.items() if arns is None or a in arns)
    if p.compare is None:
        return total, None, False
    prev = facts.spend(p.compare.start, p.compare.end)
    ptotal = sum(v for a, v in prev.items() if arns is None or a in arns)
    return total, ptotal, facts.has_days(p.compare.start, p.compare.end)


def trend(facts: Facts, arns: set[str] | None) -> tuple[list[str], dict[str, float]]:
    """Week over week (the last 7 stored days against the 7 before) and month over month (the last 30
    against the 30 before), each when the stored days cover both windows."""
    lines, figs = [], {}
    if not facts.days:
        return lines, figs
    end = _day_start(facts.data_end + timedelta(days=1))
    for name, n in (("WoW", 7), ("MoM", 30)):
        s0, s1 = end - timedelta(days=n), end - timedelta(days=2 * n)
        if facts.data_start is None or _day_start(facts.data_start) > s1:
            continue
        cur = sum(v for a, v in facts.spend(s0, end).items() if arns is None or a in arns)
        prev = sum(v for a, v in facts.spend(s1, s0).items() if arns is None or a in arns)
        lines.append(f"{name}: {money(cur)} in the last {n} days vs {money(prev)} in the {n} before, "
                     f"{change(cur, prev)}")
        figs[f"last_{n}d_usd"], figs[f"prior_{n}d_usd"] = cents(cur), cents(prev)
    return lines, figs


def _ok(text: str, *, data: Any = None, citations: list[str] | None = None, figures: dict[str, float] | None = None,
        title: str = "") -> ToolResult:
    return ToolResult("", {}, True, text, data, list(dict.fromkeys(citations or [])), figures or {}, title)


def _none(text: str, data: Any = None, title: str = "") -> ToolResult:
    return ToolResult("", {}, False, text, data, [], {}, title)


def _owner_text(facts: Facts, r: Res) -> str:
    if r.label:
        return f"{r.label} (a person's label)"
    if r.tag_team and not r.tag_conflict:
        return r.tag_team
    if r.team:
        sure = "" if r.confidence >= facts.threshold else ", below the threshold"
        return f"{r.team} (predicted, {r.confidence:.0%}{sure})"
    return "no team"


_PERIOD = {"type": ["string", "object"], "description": "a period in words ('last month', 'last week', 'in October', "
           "'yesterday', 'since Nov 3', '2026-11-01 to 2026-11-07'; add 'MoM' / 'WoW' / 'vs last week' to "
           "compare); leave out for the monthly run rate"}
_N = {"type": "integer", "minimum": 1, "maximum": 50, "description": "how many to list"}
_RES = {"type": "string", "description": "a resource id (i-0abc…, a bucket name), its name or its ARN",
        "required": True}


# -- spend ---------------------------------------------------------------------------------------------


@tool("top_spenders", "The biggest spenders: resources, teams, business units or business groups, over a period "
      "or by monthly run rate.", by={"type": "string", "enum": list(LEVELS), "description": "what to rank"},
      n=_N, period=_PERIOD)
async def top_spenders(facts: Facts, by: str = "resource", n: int = 5, period: Any = None) -> ToolResult:
    p = read_period(facts, period)
    if by != "resource" and by in ("unit", "group") and (facts.org is None or facts.org.empty):
        return _none("No business units are configured: map teams to units with `/costdna settings org` or "
                     "COSTDNA_ORG_FILE, or tag resources with `business_unit`.")
    what = {"resource": "resources", "team": "teams", "unit": "business units", "group": "business groups"}[by]
    if p is None:
        spend = {r.arn: r.monthly_usd for r in facts.resources}  # $0 ones count as a team's resources too
        prev: dict[str, float] = {}
        when, unit = "monthly run rate", "/mo"
    else:
        if not facts.has_days(p.start, p.end):
            return _no_days(facts, p, f"the top {what}")
        spend = facts.spend(p.start, p.end)
        prev = facts.spend(p.compare.start, p.compare.end) if p.compare is not None else {}
        when, unit = p.label, ""
    if not any(spend.values()):
        return _none(f"No resource of {facts.account} has a cost in {when}.")
    if by == "resource":
        spend = {a: v for a, v in spend.items() if v}
    total, ptotal = sum(spend.values()), sum(prev.values())
    cmp_ok = p is not None and p.compare is not None and facts.has_days(p.compare.start, p.compare.end)

    def vs(a: float, b: float) -> str:
        return f" (vs {money(b)}: {change(a, b)})" if cmp_ok else ""

    figures: dict[str, float] = {"total_usd": cents(total)}
    if cmp_ok:
        figures["previous_total_usd"] = cents(ptotal)
    if by == "resource":
        top = sorted(spend, key=lambda a: (-spend[a], a))[:n]
        lines = []
        for i, a in enumerate(top, 1):
            r = facts.by_arn.get(a)
            kind = f" ({r.type})" if r is not None and r.type else ""
            owner = _owner_text(facts, r) if r is not None else "unknown"
            lines.append(f"{i}. `{facts.rid(a)}`: {money(spend[a])}{unit}{vs(spend[a], prev.get(a, 0.0))}{kind}, "
                         f"owner {owner}")
            figures[facts.rid(a)] = cents(spend[a])
        cited = [facts.rid(a) for a in top]
        data = [{"resource_id": facts.rid(a), "arn": a, "cost_usd": cents(spend[a]), "owner": facts.owner(a)}
                for a in top]
    else:
        agg: dict[str, float] = {}
        pagg: dict[str, float] = {}
        members: dict[str, list[str]] = {}
        for a in set(spend) | set(prev):
            key = _level_name(facts, facts.by_arn.get(a), by)
            agg[key] = agg.get(key, 0.0) + spend.get(a, 0.0)
            pagg[key] = pagg.get(key, 0.0) + prev.get(a, 0.0)
            members.setdefault(key, []).append(a)
        ranked = sorted(agg, key=lambda k: (-agg[k], k))[:n]
        lines, cited, data = [], [], []
        for i, k in enumerate(ranked, 1):
            big = sorted(members[k], key=lambda a: (-spend.get(a, 0.0), a))[:2]
            cited += [facts.rid(a) for a in big]
            lines.append(f"{i}. *{k}*: {money(agg[k])}{unit}{vs(agg[k], pagg[k])} on {len(members[k])} resources "
                         "(largest " + ", ".join(f"`{facts.rid(a)}`" for a in big) + ")")
            figures[k] = cents(agg[k])
            data.append({"name": k, "cost_usd": cents(agg[k]), "resources": len(members[k]),
                         "largest": [facts.rid(a) for a in big]})
    head = f"Top {len(lines)} {what} of {facts.account} by amortized cost, {when}"
    if cmp_ok and p is not None and p.compare is not None:
        head += (f" vs {p.compare.label}: {money(total)} in all (vs {money(ptotal)}: {change(total, ptotal)})"
                 + coverage(facts, p))
    elif p is not None:
        head += f": {money(total)} in all"
    else:
        head += f": {money(total)}/mo in all"
    if p is not None and p.compare is not None and not cmp_ok:
        head += f" (no daily costs are stored for {p.compare.label}; stored: {_range(facts)})"
    if by != "resource":
        lines.append(f"_owner = a person's label, the owner tag, else a prediction at ≥ {facts.threshold:.0%} "
                     "confidence_")
    return _ok(head + ".\n" + "\n".join(lines), data={"by": by, "period": period_dict(p), "items": data,
                                                     "total_usd": cents(total)},
               citations=cited, figures=figures, title=_title(
                   {"resource": "Top spenders", "team": "Spend by team", "unit": "Spend by business unit",
                    "group": "Spend by business group"}[by], facts, p))


async def _owner_spend(facts: Facts, name: str, p: Period | None, *, level: str | None = None,
                       want_trend: bool = True) -> ToolResult:
    hit = resolve_owner(facts, name, level)
    if hit is None:
        return _none(f"I know no team or business unit called {name!r} in {facts.account}. Known: "
                     f"{_known_owners(facts)}.", data={"known": facts.teams()})
    level, canon = hit
    arns = _members(facts, level, canon)
    label = {"team": "team", "unit": "business unit", "group": "business group"}[level]
    res = [facts.by_arn[a] for a in arns if a in facts.by_arn]
    figures: dict[str, float] = {}
    if p is None:
        total = sum(r.monthly_usd for r in res)
        tagged = [r for r in res if r.tag_team and not r.tag_conflict or r.label]
        top = sorted(res, key=lambda r: (-r.monthly_usd, r.resource_id))[:5]
        figures["monthly_usd"] = cents(total)
        text = (f"*{canon}* ({label}) spends about *{money(total)}/month* (amortized run rate) on {len(res)} resources: "
                f"{len(tagged)} tagged or labelled, {len(res) - len(tagged)} inferred from behaviour.")
        if top:
            text += "\nLargest: " + ", ".join(f"`{r.resource_id}` {money(r.monthly_usd)}" for r in top)
            figures.update({r.resource_id: cents(r.monthly_usd) for r in top})
        maybe = [r for r in facts.resources if r.arn not in arns and not r.tag_team and not r.label and r.team
                 and r.confidence < facts.threshold and _team_level(facts, r, r.team, level) == canon]
        if maybe:
            mt = sum(r.monthly_usd for r in maybe)
            text += (f"\n{len(maybe)} more resources ({money(mt)}/mo) look like {canon}'s but below "
                     f"{facts.threshold:.0%} confidence; `/costdna label` asks about them.")
            figures["maybe_monthly_usd"] = cents(mt)
        if want_trend:
            lines, figs = trend(facts, arns)
            if lines:
                text += "\nTrend (amortized daily costs): " + "; ".join(lines) + "."
                figures.update(figs)
        cited = [r.resource_id for r in top] + [r.resource_id for r in sorted(maybe, key=lambda r: -r.monthly_usd)[:3]]
        return _ok(text, data={"level": level, "name": canon, "monthly_usd": cents(total), "resources": len(res),
                               "tagged": len(tagged), "largest": [r.resource_id for r in top]},
                   citations=cited, figures=figures, title=f"Spend of {canon} in {facts.account}")
    if not facts.has_days(p.start, p.end):
        return _no_days(facts, p, f"{canon}'s spend")
    res = _period_spend(facts, arns, p, f"*{canon}* ({label}) cost", 5)
    res.data.update(level=level, name=canon)
    res.title = _title(f"Spend of {canon}", facts, p)
    return res


def _period_spend(facts: Facts, arns: set[str], p: Period, head: str, n: int) -> ToolResult:
    """What a set of resources cost over a period (against its comparison), with the largest of them."""
    total, ptotal, cmp_ok = _spend_text(facts, arns, p)
    cur = {a: v for a, v in facts.spend(p.start, p.end).items() if a in arns}
    top = sorted(cur, key=lambda a: (-cur[a], a))[:n]
    figures = {"total_usd": cents(total)}
    text = f"{head} *{money(total)}* (amortized) in {p.label}"
    if p.compare is not None:
        if cmp_ok and ptotal is not None:
            text += f", against {money(ptotal)} in {p.compare.label}: {change(total, ptotal)}{coverage(facts, p)}"
            figures["previous_total_usd"] = cents(ptotal)
        else:
            text += f" (no daily costs are stored for {p.compare.label}; stored: {_range(facts)})"
    text += f", on {len(cur)} resources."
    if top:
        text += "\nLargest: " + ", ".join(f"`{facts.rid(a)}` {money(cur[a])}" for a in top)
        figures.update({facts.rid(a): cents(cur[a]) for a in top})
    return _ok(text, data={"period": period_dict(p), "total_usd": cents(total),
                           "previous_total_usd": cents(ptotal) if ptotal is not None and cmp_ok else None,
                           "largest": [facts.rid(a) for a in top]},
               citations=[facts.rid(a) for a in top], figures=figures)


@tool("team_spend", "A team's (or business unit's or group's) spend: the monthly run rate with its week-over-week "
      "and month-over-month trend, or the amortized spend over a period (optionally compared).",
      team={"type": "string", "description": "team, business unit or business group name", "required": True},
      period=_PERIOD, level={"type": "string", "enum": ["team", "unit", "group"],
                             "description": "which level the name is, when a team and a unit share it"})
async def team_spend(facts: Facts, team: str, period: Any = None, level: str | None = None) -> ToolResult:
    return await _owner_spend(facts, team, read_period(facts, period), level=level)


@tool("compare_teams", "Compare the spend of several teams (or business units), by run rate or over a period.",
      teams={"type": "array", "items": {"type": "string"}, "description": "two or more names", "required": True},
      period=_PERIOD)
async def compare_teams(facts: Facts, teams: list[str], period: Any = None) -> ToolResult:
    p = read_period(facts, period)
    rows, unknown = [], []
    for name in dict.fromkeys(teams):
        hit = resolve_owner(facts, name)
        if hit is None:
            unknown.append(name)
            continue
        level, canon = hit
        arns = _members(facts, level, canon)
        if p is None:
            v = sum(facts.by_arn[a].monthly_usd for a in arns if a in facts.by_arn)
            top = sorted((a for a in arns if a in facts.by_arn), key=lambda a: -facts.by_arn[a].monthly_usd)[:2]
        else:
            cur = {a: v for a, v in facts.spend(p.start, p.end).items() if a in arns}
            v = sum(cur.values())
            top = sorted(cur, key=lambda a: -cur[a])[:2]
        rows.append((canon, v, [facts.rid(a) for a in top], len(arns)))
    if unknown and not rows:
        return _none(f"I know none of {', '.join(map(repr, unknown))} in {facts.account}. Known: {_known_owners(facts)}.")
    if p is not None and not facts.has_days(p.start, p.end):
        return _no_days(facts, p, "their spend")
    rows.sort(key=lambda r: (-r[1], r[0]))
    when = "/mo (run rate)" if p is None else f" in {p.label}"
    lines = [f"{i}. *{name}*: {money(v)}{when} on {n} resources (largest " + ", ".join(f"`{c}`" for c in cited) + ")"
             for i, (name, v, cited, n) in enumerate(rows, 1)]
    text = "\n".join(lines)
    if len(rows) >= 2:
        a, b = rows[0], rows[1]
        text += f"\n*{a[0]}* spends {money(a[1] - b[1])} more than *{b[0]}*" + (
            f" ({a[1] / b[1]:.1f}×)." if b[1] >= 0.005 else ".")
    if unknown:
        text += f"\nUnknown: {', '.join(map(repr, unknown))}."
    figures = {name: cents(v) for name, v, _, _ in rows}
    if len(rows) >= 2:
        figures["difference_usd"] = cents(rows[0][1] - rows[1][1])
    return _ok(text, data={"period": period_dict(p), "teams": [{"name": n, "cost_usd": cents(v), "resources": k}
                                                              for n, v, _, k in rows], "unknown": unknown},
               citations=[c for r in rows for c in r[2]], figures=figures, title=f"Teams compared in {facts.account}")


@tool("untagged_spend", "Spend on resources without an owner tag (run rate with its trend, or over a period), and how "
      "much of it has a confident predicted owner.", period=_PERIOD, n=_N)
async def untagged_spend(facts: Facts, period: Any = None, n: int = 5) -> ToolResult:
    p = read_period(facts, period)
    untagged = [r for r in facts.resources if not r.tag_team]
    arns = {r.arn for r in untagged}
    if not untagged:
        return _ok(f"Every resource of {facts.account} carries an owner tag.", data={"untagged_resources": 0},
                   figures={"total_usd": 0.0}, title=f"Untagged spend in {facts.account}")
    figures: dict[str, float] = {}
    if p is None:
        total = sum(r.monthly_usd for r in untagged)
        everything = sum(r.monthly_usd for r in facts.resources)
        attributable = [r for r in untagged if r.owner(facts.threshold)]
        top = sorted(untagged, key=lambda r: (-r.monthly_usd, r.resource_id))[:n]
        figures.update({"monthly_usd": cents(total), "attributable_monthly_usd":
                        cents(sum(r.monthly_usd for r in attributable))})
        share = total / everything if everything else 0.0
        text = (f"*{len(untagged)}* of {len(facts.resources)} resources carry no owner tag: about *{money(total)}/month* "
                f"({share:.0%} of the run rate). {len(attributable)} of them "
                f"({money(figures['attributable_monthly_usd'])}/mo) have an owner anyway: a person's label or a "
                f"prediction at ≥ {facts.threshold:.0%} confidence.")
        lines, figs = trend(facts, arns)
        if lines:
            text += "\nTrend (amortized daily costs): " + "; ".join(lines) + "."
            figures.update(figs)
        text += "\nLargest: " + ", ".join(f"`{r.resource_id}` {money(r.monthly_usd)}" for r in top)
        figures.update({r.resource_id: cents(r.monthly_usd) for r in top})
        return _ok(text, data={"untagged_resources": len(untagged), "monthly_usd": cents(total),
                               "largest": [r.resource_id for r in top]},
                   citations=[r.resource_id for r in top], figures=figures, title=f"Untagged spend in {facts.account}")
    if not facts.has_days(p.start, p.end):
        return _no_days(facts, p, "the untagged spend")
    res = _period_spend(facts, arns, p, "Resources without an owner tag cost", n)
    res.title = _title("Untagged spend", facts, p)
    return res


# -- one resource ------------------------------------------------------------------------------------------


def _unknown_resource(facts: Facts, ref: str) -> ToolResult:
    near = search(facts, ref, 3)
    hint = (" Did you mean " + ", ".join(f"`{r.resource_id}`" for r in near) + "?") if near else ""
    return _none(f"`{ref[:200]}` is not a resource of {facts.account} in scan #{facts.scan_id}.{hint}",
                 data={"unknown": ref[:200], "near": [r.resource_id for r in near]})


@tool("attribute_resource", "Who owns a resource: its owner, how sure, the evidence (who uses it), its tag and "
      "any person's label.", resource=_RES)
async def attribute_resource(facts: Facts, resource: str) -> ToolResult:
    r = facts.resource(resource)
    if r is None:
        return _unknown_resource(facts, resource)
    if r.label:
        text = f"`{r.resource_id}` is owned by *{r.label}* (a person's label)."
    elif r.tag_team and not r.tag_conflict:
        text = f"`{r.resource_id}` is tagged *{r.tag_team}*."
    elif r.tag_team:
        text = (f"`{r.resource_id}` is tagged *{r.tag_team}*, but its behaviour says *{r.team}* ({r.confidence:.0%}): "
                "the tag may be stale.")
    elif r.team:
        text = (f"`{r.resource_id}` most likely belongs to *{r.team}* ({r.confidence:.0%} confident"
                + ("" if r.confidence >= facts.threshold else f", not enough to tag it: {facts.threshold:.0%} is needed")
                + ").")
    else:
        text = f"`{r.resource_id}` fits no team: its behaviour is unlike every team's."
    if r.runner_up and r.runner_up_confidence >= 0.05 and not r.label:
        text += f" Runner-up: {r.runner_up} ({r.runner_up_confidence:.0%})."
    ev = evidence_lines(r.evidence)
    if ev:
        text += "\n" + "\n".join(ev)
    text += f"\nCost: {money(r.monthly_usd)}/mo (amortized run rate)."
    owner = r.owner(facts.threshold)
    return _ok(text, data={"resource_id": r.resource_id, "arn": r.arn, "owner": owner,
                           "owner_source": r.owner_source(facts.threshold), "predicted_team": r.team,
                           "confidence": round(r.confidence, 4), "tag_team": r.tag_team, "label": r.label,
                           "monthly_usd": cents(r.monthly_usd), "evidence": r.evidence},
               citations=[r.resource_id], figures={"monthly_usd": cents(r.monthly_usd),
                                                   "confidence": round(r.confidence, 4)},
               title=f"Who owns {r.resource_id}?")


def evidence_lines(ev: Mapping[str, Any] | None, per: int = 3) -> list[str]:
    """The stored owner evidence (who acts on it, under which relation) as short lines."""
    if not ev:
        return []
    lines = []
    for rel, items in ev.items():
        if rel in ("activity", "owner_source", "recent_changes") or not isinstance(items, list):
            continue
        parts = []
        for it in items[:per]:
            if isinstance(it, list | tuple) and it:
                parts.append(f"`{it[0]}`" + (f" ({it[1]:g})" if len(it) > 1 and isinstance(it[1], int | float) else ""))
        if parts:
            lines.append(f"• {rel.replace('_', ' ')}: " + ", ".join(parts))
    if ev.get("owner_source") == "creator":
        lines.append("• owner read from who created it (a guess)")
    return lines


@tool("signal_history", "What happened to one resource: its management events (who changed it), its daily cost, "
      "the spikes the watch found and its owner.", resource=_RES, n=_N)
async def signal_history(facts: Facts, resource: str, n: int = 5) -> ToolResult:
    r = facts.resource(resource)
    if r is None:
        return _unknown_resource(facts, resource)
    if r.evidence and "recent_changes" in r.evidence:  # kept by the scan: no search through every event
        events = stored_changes(r)[-n:]
    else:  # a scan stored before it kept them
        events = await facts.store.events(r.arn, n)
    daily = facts.daily(r.arn)
    spikes = [s for s in facts.spikes if s.arn == r.arn]
    lines = [f"`{r.resource_id}` ({r.type or 'resource'}), owner {_owner_text(facts, r)}, "
             f"{money(r.monthly_usd)}/mo (amortized run rate)."]
    act = (r.evidence or {}).get("activity") if r.evidence else None
    if r.last_active:
        lines.append(f"Last used or changed (not counting account-wide scanners) on {r.last_active}; first on "
                     f"{r.first_active}.")
    elif act is None:
        lines.append("No one but account-wide scanners used or changed it in the scanned period.")
    if events:
        lines.append(f"Last {len(events)} management events:")
        for e in events[-n:]:
            who = e.person or e.principal or "?"
            err = f" (failed: {e.error_code})" if e.error_code else ""
            lines.append(f"• {e.time:%Y-%m-%d %H:%M} UTC `{e.event_name}` by `{who}`{err}" if e.time else
                         f"• `{e.event_name}` by `{who}`{err}")
    else:
        lines.append("No management events are stored for it.")
    figures: dict[str, float] = {"monthly_usd": cents(r.monthly_usd)}
    if daily:
        total = sum(v for _, v in daily)
        last7 = daily[-7:]
        lines.append(f"Daily cost {daily[0][0]} to {daily[-1][0]}: {money(total)} in all (amortized); last "
                     f"{len(last7)} days: " + ", ".join(f"{d:%b %d} {money(v)}" for d, v in last7) + ".")
        figures["period_total_usd"] = cents(total)
        for d, v in last7:
            figures[f"{d}"] = cents(v)
    else:
        lines.append("No daily costs are stored for it.")
    for s in spikes[:5]:
        lines.append(f"Spike {s.start:%Y-%m-%d %H:%M}–{s.end:%H:%M} UTC, +{money(s.extra_usd)} ({s.severity}, {s.status})"
                     + (f": {cause_text(s.cause)}" if s.cause else ""))
        figures[f"spike_{s.id}_extra_usd"] = cents(s.extra_usd)
    return _ok("\n".join(lines), data={
        "resource_id": r.resource_id, "arn": r.arn, "owner": r.owner(facts.threshold),
        "events": [{"time": e.time.isoformat() if e.time else None, "event_name": e.event_name,
                    "principal": e.principal, "person": e.person, "error_code": e.error_code} for e in events],
        "daily": [[str(d), cents(v)] for d, v in daily[-14:]],
        "spikes": [{"start": s.start.isoformat(), "end": s.end.isoformat(), "extra_usd": cents(s.extra_usd),
                    "cause": dict(s.cause) if s.cause else None} for s in spikes[:5]],
        "last_active": str(r.last_active) if r.last_active else None},
        citations=[r.resource_id], figures=figures, title=f"History of {r.resource_id}")


def stored_changes(r: Res) -> list[EventFact]:
    """The last create/manage events the scan kept with the resource's evidence, oldest first."""
    out = []
    for e in (r.evidence or {}).get("recent_changes") or []:
        try:
            t = datetime.fromisoformat(e[0]) if e[0] else None
            out.append(EventFact(time=t, event_name=str(e[1]), principal=str(e[2] or ""), person=e[3],
                                 error_code=e[4]))
        except (IndexError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda e: e.time or datetime.min.replace(tzinfo=UTC))


def cause_text(cause: Mapping[str, Any] | None) -> str:
    if not cause:
        return "no cause found"
    parts = [str(cause.get("kind") or "change")]
    if cause.get("commit"):
        parts.append(f"commit `{str(cause['commit'])[:12]}`")
    if cause.get("repo"):
        parts.append(f"of `{cause['repo']}`")
    if cause.get("event_name") and not cause.get("commit"):
        parts.append(f"`{cause['event_name']}`")
    if cause.get("actor"):
        actor = str(cause["actor"])
        parts.append(f"by `{actor.split(':', 5)[-1] if actor.startswith('arn:') else actor}`")
    if cause.get("time"):
        t = cause["time"]
        try:
            when = datetime.fromtimestamp(float(t), UTC) if isinstance(t, int | float) else datetime.fromisoformat(str(t))
            parts.append(f"at {when:%Y-%m-%d %H:%M} UTC")
        except (ValueError, OverflowError, OSError):
            pass
    return " ".join(parts)


def search(facts: Facts, query: str, n: int) -> list[Res]:
    q = query.strip().strip("`'\"").lower()
    if not q:
        return []
    hits = []
    for r in facts.resources:
        hay = [r.resource_id.lower(), r.arn.lower(), r.name.lower()]
        hay += [f"{k}={v}".lower() for k, v in r.tags.items()]
        if any(q in h for h in hay):
            hits.append(r)
    return sorted(hits, key=lambda r: (r.resource_id.lower() != q, -r.monthly_usd, r.resource_id))[:n]


@tool("search_resources", "Find resources whose id, ARN, name or a tag (key=value) contains some text.",
      query={"type": "string", "description": "text to look for", "required": True}, n=_N)
async def search_resources(facts: Facts, query: str, n: int = 10) -> ToolResult:
    hits = search(facts, query, n)
    if not hits:
        return _none(f"No resource of {facts.account} has {query[:100]!r} in its id, ARN, name or tags.")
    total = sum(1 for r in facts.resources if query.strip().lower() in
                " ".join([r.resource_id, r.arn, r.name] + [f"{k}={v}" for k, v in r.tags.items()]).lower())
    lines = [f"• `{r.resource_id}` ({r.type}) {money(r.monthly_usd)}/mo, owner {_owner_text(facts, r)}" for r in hits]
    more = f" (showing {len(hits)})" if total > len(hits) else ""
    return _ok(f"{total} resources match {query[:100]!r}{more}:\n" + "\n".join(lines),
               data=[{"resource_id": r.resource_id, "arn": r.arn, "type": r.type, "monthly_usd": cents(r.monthly_usd),
                      "owner": r.owner(facts.threshold)} for r in hits],
               citations=[r.resource_id for r in hits], figures={r.resource_id: cents(r.monthly_usd) for r in hits},
               title=f"Resources matching {query[:40]!r}")


# -- findings ------------------------------------------------------------------------------------------------


@tool("find_anomalies", "Resources that fit no team (behaviour unlike every team's) and tags that behaviour "
      "contradicts.", n=_N)
async def find_anomalies(facts: Facts, n: int = 10) -> ToolResult:
    none = sorted((r for r in facts.resources if not r.team and not r.label and not r.tag_team),
                  key=lambda r: (-r.monthly_usd, r.resource_id))
    conflicts = sorted((r for r in facts.resources if r.tag_conflict and not r.label),
                       key=lambda r: (-r.monthly_usd, r.resource_id))
    if not none and not conflicts:
        return _ok(f"Every resource of {facts.account} fits some team, and no tag contradicts behaviour.",
                   data={"no_team": [], "conflicts": []}, title=f"Anomalies in {facts.account}")
    lines, figures = [], {}
    if none:
        t = sum(r.monthly_usd for r in none)
        figures["no_team_monthly_usd"] = cents(t)
        lines.append(f"*{len(none)}* untagged resources behave unlike every team ({money(t)}/mo): candidates for "
                     "clean-up or a missing team.")
        lines += [f"• `{r.resource_id}` ({r.type}) {money(r.monthly_usd)}/mo, anomaly {r.anomaly:.2f}" for r in none[:n]]
    if conflicts:
        lines.append(f"*{len(conflicts)}* tags contradict behaviour:")
        lines += [f"• `{r.resource_id}` tagged {r.tag_team}, behaves like {r.team} ({r.confidence:.0%}), "
                  f"{money(r.monthly_usd)}/mo" for r in conflicts[:n]]
    figures.update({r.resource_id: cents(r.monthly_usd) for r in none[:n] + conflicts[:n]})
    return _ok("\n".join(lines), data={
        "no_team": [{"resource_id": r.resource_id, "monthly_usd": cents(r.monthly_usd), "anomaly": round(r.anomaly, 3)}
                    for r in none[:n]], "no_team_count": len(none),
        "conflicts": [{"resource_id": r.resource_id, "tag_team": r.tag_team, "predicted_team": r.team}
                      for r in conflicts[:n]], "conflict_count": len(conflicts)},
        citations=[r.resource_id for r in none[:n] + conflicts[:n]], figures=figures,
        title=f"Anomalies in {facts.account}")


def _recent_cost(facts: Facts, days: int) -> dict[str, float]:
    if not facts.days:
        return {}
    end = _day_start(facts.data_end + timedelta(days=1))
    return facts.spend(end - timedelta(days=days), end)


@tool("find_idle", "Resources that cost money but nobody (account-wide scanners aside) used or changed for N days.",
      days={"type": "integer", "minimum": 1, "maximum": 365, "description": "days without activity (default 7)"},
      n=_N)
async def find_idle(facts: Facts, days: int = 7, n: int = 10) -> ToolResult:
    if not facts.days:
        return _none(f"No daily costs are stored for {facts.account}, so I cannot tell what costs money.")
    cutoff = facts.as_of - timedelta(days=days)
    recent = _recent_cost(facts, days)
    idle = [facts.by_arn[a] for a, v in recent.items() if v > 0 and a in facts.by_arn
            and (facts.by_arn[a].last_active is None or facts.by_arn[a].last_active <= cutoff)]
    idle.sort(key=lambda r: (-recent[r.arn], r.resource_id))
    if not idle:
        return _ok(f"Every resource of {facts.account} that cost money in the last {days} days was used in them.",
                   data={"days": days, "items": []}, figures={"total_usd": 0.0}, title=f"Idle resources in {facts.account}")
    total = sum(recent[r.arn] for r in idle)
    lines = [f"• `{r.resource_id}` ({r.type}) {money(recent[r.arn])} in the last {days} days, "
             + (f"last used {r.last_active}" if r.last_active else "never used in the scanned period")
             + f", owner {_owner_text(facts, r)}" for r in idle[:n]]
    return _ok(f"*{len(idle)}* resources cost *{money(total)}* (amortized) over the last {days} stored days "
               f"({facts.as_of - timedelta(days=days - 1)} to {facts.as_of}) with no use or change by anyone but "
               "account-wide scanners:\n" + "\n".join(lines),
               data={"days": days, "count": len(idle), "total_usd": cents(total),
                     "items": [{"resource_id": r.resource_id, "cost_usd": cents(recent[r.arn]),
                                "last_active": str(r.last_active) if r.last_active else None} for r in idle[:n]]},
               citations=[r.resource_id for r in idle[:n]],
               figures={"total_usd": cents(total)} | {r.resource_id: cents(recent[r.arn]) for r in idle[:n]},
               title=f"Idle resources in {facts.account}")


@tool("find_abandoned", "Resources someone used before but nobody has touched for N days, still costing money.",
      days={"type": "integer", "minimum": 1, "maximum": 365, "description": "days of silence (default 7)"}, n=_N)
async def find_abandoned(facts: Facts, days: int = 7, n: int = 10) -> ToolResult:
    if not facts.days:
        return _none(f"No daily costs are stored for {facts.account}, so I cannot tell what still costs money.")
    cutoff = facts.as_of - timedelta(days=days)
    recent = _recent_cost(facts, min(days, 7))
    gone = [facts.by_arn[a] for a, v in recent.items() if v > 0 and a in facts.by_arn
            and facts.by_arn[a].last_active is not None and facts.by_arn[a].last_active <= cutoff]
    gone.sort(key=lambda r: (-recent[r.arn], r.resource_id))
    w = min(days, 7)
    if not gone:
        return _ok(f"No resource of {facts.account} went silent {days}+ days ago while still costing money.",
                   data={"days": days, "items": []}, figures={"total_usd": 0.0},
                   title=f"Abandoned resources in {facts.account}")
    total = sum(recent[r.arn] for r in gone)
    lines = [f"• `{r.resource_id}` ({r.type}) last used {r.last_active} (active since {r.first_active}), "
             f"{money(recent[r.arn])} in the last {w} days, owner {_owner_text(facts, r)}" for r in gone[:n]]
    return _ok(f"*{len(gone)}* resources were used before but not since {cutoff} or earlier, and still cost "
               f"*{money(total)}* over the last {w} stored days:\n" + "\n".join(lines),
               data={"days": days, "count": len(gone), "total_usd": cents(total),
                     "items": [{"resource_id": r.resource_id, "last_active": str(r.last_active),
                                "cost_usd": cents(recent[r.arn])} for r in gone[:n]]},
               citations=[r.resource_id for r in gone[:n]],
               figures={"total_usd": cents(total)} | {r.resource_id: cents(recent[r.arn]) for r in gone[:n]},
               title=f"Abandoned resources in {facts.account}")


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@tool("find_cost_spikes", "Why the bill rose: the day asked about (or the day that rose most) against the 7 days "
      "before, its top movers, and the spikes the hourly watch found with their causes (deploys, launches).",
      period=_PERIOD, team={"type": "string", "description": "only this team's resources"}, n=_N)
async def find_cost_spikes(facts: Facts, period: Any = None, team: str | None = None, n: int = 5) -> ToolResult:
    p = read_period(facts, period)
    arns: set[str] | None = None
    canon = ""
    if team:
        hit = resolve_owner(facts, team)
        if hit is None:
            return _none(f"I know no team called {team!r} in {facts.account}. Known: {_known_owners(facts)}.")
        arns = _members(facts, *hit)
        canon = hit[1]
    if not facts.days:
        return _none(f"No daily costs are stored for {facts.account}, so I cannot see a spike.")
    idx = {d: i for i, d in enumerate(facts.days)}
    rows = [i for i, a in enumerate(facts.cost_arns) if arns is None or a in arns]
    sub = facts.cost[rows]
    sub_arns = [facts.cost_arns[i] for i in rows]
    per_day = sub.sum(axis=0) if len(rows) else facts.cost.sum(axis=0) * 0

    def rise(d: date) -> float:
        i = idx[d]
        base = per_day[max(0, i - 7):i]
        return float(per_day[i] - (base.sum() / 7 if len(base) else per_day[i]))

    lead = ""
    if p is not None:
        inside = [d for d in facts.days if p.start <= _day_start(d) < p.end]
        if not inside:
            lead = (f"No daily costs are stored for {p.label}; the stored daily costs cover {_range(facts)}. "
                    "The day that rose most in the last week of data instead:\n")
            inside = facts.days[-7:]
    else:
        inside = facts.days[-7:]
    day = max(inside, key=lambda d: (rise(d), d))
    i = idx[day]
    if i == 0:
        return _none(lead + f"{day} is the first day with stored costs; there are no days before it to compare with.")
    before = list(range(max(0, i - 7), i))
    base = sub[:, before].sum(axis=1) / 7
    cur = sub[:, i]
    delta = cur - base
    order = sorted(range(len(sub_arns)), key=lambda k: (-abs(delta[k]), sub_arns[k]))[:n]
    day_total, base_total = float(cur.sum()), float(base.sum())
    figures = {"day_usd": cents(day_total), "baseline_usd": cents(base_total),
               "change_usd": cents(day_total - base_total)}
    movers, cited = [], []
    for k in order:
        if abs(delta[k]) <= 0.005:
            continue
        a = sub_arns[k]
        rid = facts.rid(a)
        owner = facts.owner(a) or "unknown"
        movers.append(f"• `{rid}` {money(cur[k])} vs {money(base[k])}/day: {'+' if delta[k] >= 0 else '-'}"
                      f"{money(abs(delta[k]))} (owner {owner})")
        cited.append(rid)
        figures[rid] = cents(cur[k])
    span = f"{facts.days[before[0]]} to {facts.days[before[-1]]}" + (
        f", {len(before)} of 7 with data" if len(before) < 7 else "")
    who = f"*{canon}*'s resources" if canon else "The bill"
    text = (lead + f"{who} on {day} ({WEEKDAYS[day.weekday()]}): {money(day_total)} (amortized) against an average of "
            f"{money(base_total)}/day over the 7 days before ({span}): {change(day_total, base_total)}.\n"
            + ("Top movers:\n" + "\n".join(movers) if movers else "No resource's cost changed."))
    d0 = _day_start(day)
    win_start, win_end = (p.start, p.end) if p is not None and not lead else (d0, d0 + timedelta(days=1))
    found = [s for s in facts.spikes if s.start < win_end and s.end > win_start and (arns is None or s.arn in arns)]
    found.sort(key=lambda s: (-s.extra_usd, s.start))
    if found:
        text += "\nSpikes the hourly watch found then:\n" + "\n".join(
            f"• `{s.resource_id or s.arn}` {s.start:%Y-%m-%d %H:%M}–{s.end:%H:%M} UTC, +{money(s.extra_usd)} "
            f"({s.severity}): {cause_text(s.cause)}" for s in found[:n])
        for s in found[:n]:
            cited.append(s.resource_id or s.arn)
            figures[f"spike:{s.resource_id or s.arn}"] = cents(s.extra_usd)
    return _ok(text, data={"day": str(day), "day_usd": cents(day_total), "baseline_usd": cents(base_total),
                           "movers": [{"resource_id": facts.rid(sub_arns[k]), "cost_usd": cents(cur[k]),
                                       "baseline_usd": cents(base[k])} for k in order if abs(delta[k]) > 0.005],
                           "spikes": [{"resource_id": s.resource_id, "start": s.start.isoformat(),
                                       "end": s.end.isoformat(), "extra_usd": cents(s.extra_usd), "severity": s.severity,
                                       "cause": dict(s.cause) if s.cause else None} for s in found[:n]]},
               citations=cited, figures=figures, title="Why did the bill change?")


# -- the account ---------------------------------------------------------------------------------------------


@tool("summarize_account", "The account at a glance: the bill by measure, resources tagged and not, attributable "
      "spend, teams, anomalies, open spikes and the data's range.")
async def summarize_account(facts: Facts) -> ToolResult:
    s = facts.summary
    n = len(facts.resources)
    untagged = [r for r in facts.resources if not r.tag_team]
    owned = [r for r in facts.resources if r.owner(facts.threshold)]
    run = sum(r.monthly_usd for r in facts.resources)
    figures = {"monthly_usd": cents(run)}
    lines = [f"*{facts.account}*, scan #{facts.scan_id}" + (f" of {facts.scan_finished:%Y-%m-%d %H:%M} UTC"
                                                              if facts.scan_finished else "") + ":"]
    if "amortized_cost_usd" in s:
        lines.append(f"• bill over the scanned period: {money(s.get('amortized_cost_usd'))} amortized, "
                     f"{money(s.get('net_billed_cost_usd'))} net billed")
        figures["amortized_usd"] = cents(s.get("amortized_cost_usd") or 0.0)
        figures["net_billed_usd"] = cents(s.get("net_billed_cost_usd") or 0.0)
    lines.append(f"• run rate {money(run)}/mo (amortized) on {n} resources; {n - len(untagged)} tagged, "
                 f"{len(untagged)} untagged ({money(sum(r.monthly_usd for r in untagged))}/mo)")
    figures["untagged_monthly_usd"] = cents(sum(r.monthly_usd for r in untagged))
    lines.append(f"• {len(owned)} resources have an owner at ≥ {facts.threshold:.0%} confidence "
                 f"({money(sum(r.monthly_usd for r in owned))}/mo)")
    figures["owned_monthly_usd"] = cents(sum(r.monthly_usd for r in owned))
    by_team: dict[str, float] = {}
    for r in owned:
        by_team[r.owner(facts.threshold)] = by_team.get(r.owner(facts.threshold), 0.0) + r.monthly_usd
    top = sorted(by_team.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if top:
        lines.append(f"• {len(by_team)} teams; the biggest: " + ", ".join(f"{t} {money(v)}/mo" for t, v in top))
        figures.update({t: cents(v) for t, v in top})
    none = [r for r in facts.resources if not r.team and not r.tag_team and not r.label]
    conflicts = [r for r in facts.resources if r.tag_conflict]
    lines.append(f"• {len(none)} resources fit no team; {len(conflicts)} tags contradict behaviour")
    open_spikes = [sp for sp in facts.spikes if sp.status == "open"]
    if facts.spikes:
        lines.append(f"• {len(open_spikes)} open spikes of {len(facts.spikes)} the watch found")
    lines.append(f"• daily costs stored: {_range(facts)}")
    big = sorted(facts.resources, key=lambda r: (-r.monthly_usd, r.resource_id))[:3]
    if big:
        lines.append("• the costliest resources: " + ", ".join(f"`{r.resource_id}` {money(r.monthly_usd)}/mo"
                                                             for r in big))
        figures.update({r.resource_id: cents(r.monthly_usd) for r in big})
    return _ok("\n".join(lines), data={"resources": n, "untagged": len(untagged), "owned": len(owned),
                                       "monthly_usd": cents(run), "teams": dict(top), "no_team": len(none),
                                       "conflicts": len(conflicts), "open_spikes": len(open_spikes),
                                       "days": [str(facts.data_start), str(facts.data_end)] if facts.days else None},
               citations=[r.resource_id for r in big], figures=figures, title=f"{facts.account} at a glance")


def _norm_key(k: str) -> str:
    return re.sub(r"[^a-z0-9]", "", k.lower())


@tool("tag_compliance", "How many resources, and how much of the spend, carry the required tags, per team.",
      keys={"type": "array", "items": {"type": "string"}, "description": "tag keys to require (default: the "
            "configured required tags)"})
async def tag_compliance(facts: Facts, keys: list[str] | None = None) -> ToolResult:
    req = [k for k in (keys or list(facts.required_tags)) if k.strip()]
    if not req:
        return _none("No tag keys are required: set COSTDNA_REQUIRED_TAGS or name keys.")
    want = {_norm_key(k) for k in req}
    if not facts.resources:
        return _none(f"Scan #{facts.scan_id} of {facts.account} holds no resources.")

    def ok(r: Res) -> bool:
        have = {_norm_key(k) for k, v in r.tags.items() if str(v).strip()}
        return want <= have

    per: dict[str, list[Res]] = {}
    for r in facts.resources:
        per.setdefault(r.owner(facts.threshold) or NO_OWNER, []).append(r)
    good = [r for r in facts.resources if ok(r)]
    spend = sum(r.monthly_usd for r in facts.resources)
    gspend = sum(r.monthly_usd for r in good)
    figures = {"compliant_resources": float(len(good)), "resources": float(len(facts.resources)),
               "compliant_monthly_usd": cents(gspend), "monthly_usd": cents(spend)}
    text = (f"{len(good)} of {len(facts.resources)} resources ({len(good) / len(facts.resources):.0%}) carry "
            f"{', '.join(f'`{k}`' for k in req)}; they are {money(gspend)} of {money(spend)}/mo "
            f"({(gspend / spend if spend else 0):.0%} of the run rate).\nPer team (owner as every surface counts it):")
    rows = []
    for team, rs in sorted(per.items(), key=lambda kv: (kv[0] == NO_OWNER, -sum(r.monthly_usd for r in kv[1]), kv[0])):
        g = [r for r in rs if ok(r)]
        ts, gs = sum(r.monthly_usd for r in rs), sum(r.monthly_usd for r in g)
        rows.append({"team": team, "resources": len(rs), "compliant": len(g), "monthly_usd": cents(ts),
                     "compliant_monthly_usd": cents(gs)})
        text += (f"\n• *{team}*: {len(g)}/{len(rs)} resources ({len(g) / len(rs):.0%}), {money(gs)} of {money(ts)}/mo "
                 f"({(gs / ts if ts else 0):.0%})")
    worst = sorted((r for r in facts.resources if not ok(r)), key=lambda r: (-r.monthly_usd, r.resource_id))[:5]
    if worst:
        text += "\nLargest without them: " + ", ".join(f"`{r.resource_id}` {money(r.monthly_usd)}" for r in worst)
    return _ok(text, data={"keys": req, "teams": rows, "compliant": len(good), "resources": len(facts.resources)},
               citations=[r.resource_id for r in worst], figures=figures, title=f"Tag compliance in {facts.account}")


@tool("what_changed", "Drift since the previous scan: resources that appeared or went, owners that changed, and "
      "the biggest run-rate changes.", n=_N)
async def what_changed(facts: Facts, n: int = 10) -> ToolResult:
    prev = await facts.store.previous_scan()
    if prev is None:
        return _none(f"{facts.account} has only one finished scan (#{facts.scan_id}); nothing to compare with yet.")
    t = facts.threshold
    old, new = prev.resources, facts.by_arn
    added = sorted((new[a] for a in set(new) - set(old)), key=lambda r: (-r.monthly_usd, r.resource_id))
    gone = sorted((old[a] for a in set(old) - set(new)), key=lambda r: (-r.monthly_usd, r.resource_id))
    moved = sorted(((old[a], new[a]) for a in set(new) & set(old) if old[a].owner(t) != new[a].owner(t)),
                   key=lambda p: (-p[1].monthly_usd, p[1].resource_id))
    cost = sorted(((old[a], new[a]) for a in set(new) & set(old)
                   if abs(new[a].monthly_usd - old[a].monthly_usd) >= 0.01),
                  key=lambda p: (-abs(p[1].monthly_usd - p[0].monthly_usd), p[1].resource_id))
    when = f"scan #{prev.scan_id}" + (f" ({prev.finished_at:%Y-%m-%d})" if prev.finished_at else "")
    lines = [f"Since {when}: {len(added)} new resources, {len(gone)} gone, {len(moved)} changed owner."]
    figures: dict[str, float] = {"new": float(len(added)), "gone": float(len(gone)), "owner_changes": float(len(moved))}
    if added:
        lines.append("New: " + ", ".join(f"`{r.resource_id}` {money(r.monthly_usd)}/mo" for r in added[:n]))
    if gone:
        lines.append("Gone: " + ", ".join(f"`{r.resource_id}` (was {money(r.monthly_usd)}/mo)" for r in gone[:n]))
    if moved:
        lines.append("Owner changed:\n" + "\n".join(
            f"• `{b.resource_id}`: {a.owner(t) or 'no owner'} → {b.owner(t) or 'no owner'}" for a, b in moved[:n]))
    if cost:
        lines.append("Biggest run-rate changes:\n" + "\n".join(
            f"• `{b.resource_id}` {money(a.monthly_usd)} → {money(b.monthly_usd)}/mo" for a, b in cost[:n]))
        figures.update({b.resource_id: cents(b.monthly_usd) for _a, b in cost[:n]})
    cited = [r.resource_id for r in added[:n]] + [r.resource_id for r in gone[:n]] + \
        [b.resource_id for _a, b in moved[:n]] + [b.resource_id for _a, b in cost[:n]]
    return _ok("\n".join(lines), data={
        "previous_scan": prev.scan_id, "new": [r.resource_id for r in added[:n]], "gone": [r.resource_id for r in gone[:n]],
        "owner_changes": [{"resource_id": b.resource_id, "from": a.owner(t), "to": b.owner(t)} for a, b in moved[:n]],
        "cost_changes": [{"resource_id": b.resource_id, "from_usd": cents(a.monthly_usd), "to_usd": cents(b.monthly_usd)}
                         for a, b in cost[:n]]},
        citations=cited, figures=figures, title=f"What changed in {facts.account}")

"""How often ``ask`` answers right: questions over synthetic orgs, expected answers from the stored data.

Issue 10's acceptance (a). Two synthetic orgs unlike each other (different seeds, team counts, windows;
one with a business hierarchy from ``COSTDNA_ORG_FILE``, one scanned twice so ``what_changed`` has a
previous scan) are generated with ``engine.synth``, added as bundle accounts and scanned through the
scan job (in-process runner) into a fresh SQLite database each, exactly as ``costdna scan`` stores them.

Each question has several phrasings per intent (sloppy ones included: typos, lower case, chatter, "top
3", "last week", "in October", "yesterday", "MoM") and an expected answer computed here,
*independently of the tools*, from the database rows (predictions, labels, resources' tags, daily
costs; plain Python over SQL results) and hand-written calendar dates: the tool that must answer, the
resource ids it must cite and the figures it must quote to the cent. A question is right when the
expected tool was called, every expected id is in ``citations`` and in the text, and every expected
figure is among ``figures`` and written in the text as ``$1,234.56``.

Owners follow the stored rule (``engine/ask/facts.py`` ``Res.owner``): a person's label, else the owner
tag unless behaviour contradicts it, else the model's team at >= 70% confidence. Owner questions also
report how often that stored owner is the generator's ground truth (``truth.csv``).

The same questions then run in LLM mode against a local OpenAI-compatible stand-in
(``tests/openai_standin.py``) that scripts the expected tool call and a final answer quoting the tool
result's figures and ids (must come back ``mode="llm"`` and right), then a "liar" that invents a dollar
figure and one that invents a resource id (the grounding check must replace every one: ``fallback``).

    .venv/bin/python benchmarks/ask_eval.py [--min 0.95] [--data DIR] [--no-llm]

``--data DIR`` keeps the generated orgs and databases there and reuses them on the next run.
Exit code 1 when offline accuracy is below ``--min``, LLM-mode accuracy is below it, or a liar got
through.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

THRESHOLD = 0.7
UNOWNED = ("vendor", "orphan", "abandoned")
TOOLS = ("top_spenders", "attribute_resource", "find_cost_spikes", "find_anomalies", "find_idle", "find_abandoned",
         "compare_teams", "signal_history", "search_resources", "summarize_account", "team_spend", "untagged_spend",
         "tag_compliance", "what_changed")


@dataclass
class OrgSpec:
    name: str
    seed: int
    teams: int
    per_team: int
    days: int
    start: datetime
    now: datetime  # the moment questions are asked
    org_file: bool = False  # business units from COSTDNA_ORG_FILE
    rescan: bool = False  # a second scan after owner tags were written to the bundle
    events: float = 8.0
    tagged: float = 0.5


# A: 5 teams, 21 days from Tue 2026-10-20 to Mon 2026-11-09, asked Tue 2026-11-10 09:00 UTC
#    ("last month" = October, "this month" = Nov 1-9, "last week" = Nov 2-8, "yesterday" = Nov 9).
# B: 9 teams, 14 days from Sun 2026-11-01 to Sat 2026-11-14, asked Sun 2026-11-15 10:00 UTC
#    ("last week" = Nov 2-8, "this week" = Nov 9-14, "yesterday" = Nov 14).
ORGS = (
    OrgSpec("alpha", seed=11, teams=5, per_team=30, days=21, start=datetime(2026, 10, 20, tzinfo=UTC),
            now=datetime(2026, 11, 10, 9, 0, tzinfo=UTC), org_file=True, tagged=0.5),
    OrgSpec("beta", seed=23, teams=9, per_team=18, days=14, start=datetime(2026, 11, 1, tzinfo=UTC),
            now=datetime(2026, 11, 15, 10, 0, tzinfo=UTC), rescan=True, tagged=0.4),
)


def money(x: float) -> str:
    v = round(x + 0.0, 2)
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def cents(x: float) -> float:
    return round(float(x) + 0.0, 2)


# -- building the orgs ------------------------------------------------------------------------------------


def _settings(data: Path, org_file: Path | None) -> Any:
    from config.settings import Settings

    return Settings(data_dir=data, database_url=f"sqlite+aiosqlite:///{data / 'costdna.db'}", redis_url=None,
                    job_timeout=1800, job_tries=1, workers=1, org_file=org_file, tag_rules=None, required_tags="")


def _truth(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "truth.csv", newline="") as f:
        return {r["arn"]: r for r in csv.DictReader(f)}


def write_org_file(root: Path, teams: list[str]) -> Path:
    """Two business units in two groups: the first two teams are commerce, the rest platform."""
    a, b = teams[:2], teams[2:]
    path = root / "org.yaml"
    path.write_text("business_units:\n"
                    f"  commerce-bu:\n    group: commerce\n    teams: [{', '.join(a)}]\n"
                    f"  platform-bu:\n    group: engineering\n    teams: [{', '.join(b)}]\n")
    return path


async def _scan(settings: Any, name: str, bundle: Path) -> int:
    from jobs.control import request_scan
    from jobs.queue import open_queue
    from jobs.worker import job_context
    from storage import repo

    ctx = await job_context(settings)
    queue = await open_queue(settings, ctx)
    try:
        async with ctx["db"].session() as s:
            if name not in {a.name for a in await repo.list_accounts(s)}:
                await repo.add_account(s, name, "bundle", bundle_path=str(bundle))
        scan = await request_scan(ctx["db"], queue, name)
        await queue.join()
        async with ctx["db"].session() as s:
            done = await repo.get_scan(s, scan.id)
            if done.status != "succeeded":
                raise SystemExit(f"scan of {name} failed: {done.error}")
            return done.id
    finally:
        await queue.close()
        await ctx["db"].close()


def retag(bundle: Path, truth: dict[str, dict[str, str]], k: int = 4) -> list[str]:
    """Write true owner tags onto ``k`` untagged owned resources (as an approved change set would)."""
    from jobs.tagwriter import BundleTagWriter

    w = BundleTagWriter(bundle)
    current = w.read()
    picks = [a for a, r in sorted(truth.items()) if r["tagged"] in ("0", "False", "false", "") and r["team"]
             and r["kind"] not in UNOWNED and a in current][:k]
    w.write({a: {**current[a], "team": truth[a]["team"]} for a in picks})
    return picks


def build(spec: OrgSpec, root: Path) -> dict[str, Any]:
    """Generate, (optionally) configure business units, scan (twice for ``rescan``); returns the org's info."""
    from engine.synth import generate

    info_path = root / "info.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    t0 = time.perf_counter()
    if root.exists():  # a half-built org (the bundle may be retagged already): start over
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if True:
        generate(root / "gen", seed=spec.seed, teams=spec.teams, resources_per_team=spec.per_team, days=spec.days,
                 events_per_resource_day=spec.events, start=spec.start, tagged_fraction=spec.tagged, workers=1)
    truth = _truth(root / "gen")
    teams = sorted({r["team"] for r in truth.values() if r["team"] and r["kind"] not in UNOWNED})
    org_file = write_org_file(root, teams) if spec.org_file else None
    data = root / "data"
    data.mkdir()
    settings = _settings(data, org_file)
    bundle = root / "gen" / "bundle"
    scans = [asyncio.run(_scan(settings, spec.name, bundle))]
    retagged: list[str] = []
    if spec.rescan:
        retagged = retag(bundle, truth)
        scans.append(asyncio.run(_scan(settings, spec.name, bundle)))
    info = {"name": spec.name, "scans": scans, "teams": teams, "org_file": str(org_file) if org_file else None,
            "retagged": retagged, "seconds": round(time.perf_counter() - t0, 1), "resources": len(truth)}
    info_path.write_text(json.dumps(info))
    return info


# -- the stored data, read straight from the tables ----------------------------------------------------


@dataclass
class Rec:
    """One stored resource: its prediction row, tags, current label, daily costs."""

    arn: str
    rid: str
    type: str
    team: str
    conf: float
    tag_team: str
    conflict: bool
    label: str
    monthly: float
    tags: dict[str, str]
    name: str
    last_active: date | None
    truth: str

    @property
    def owner(self) -> str:
        if self.label:
            return self.label
        if self.tag_team and not self.conflict:
            return self.tag_team
        return self.team if self.team and self.conf >= THRESHOLD else ""


@dataclass
class Stored:
    name: str
    recs: dict[str, Rec]  # arn -> latest scan
    prev: dict[str, Rec]  # arn -> the scan before (empty when one scan)
    daily: dict[str, dict[date, float]]
    units: dict[str, str]  # team -> unit ("" none configured)
    groups: dict[str, str]  # unit -> group

    @property
    def days(self) -> list[date]:
        ds = sorted({d for v in self.daily.values() for d in v})
        return [ds[0] + timedelta(days=k) for k in range((ds[-1] - ds[0]).days + 1)] if ds else []

    def rid(self, arn: str) -> str:
        r = self.recs.get(arn)
        return r.rid if r is not None and r.rid else arn

    def owner(self, arn: str) -> str:
        r = self.recs.get(arn)
        return r.owner if r is not None else ""

    def spend(self, d0: date, d1: date) -> dict[str, float]:
        """arn -> $ over the days d0..d1 (inclusive), nonzero only."""
        out = {}
        for a, days in self.daily.items():
            v = sum(x for d, x in days.items() if d0 <= d <= d1)
            if v != 0.0:
                out[a] = v
        return out

    def level(self, arn: str, level: str) -> str:
        r = self.recs.get(arn)
        o = self.owner(arn)
        if level == "team":
            return o or "no owner"
        tags = {k.lower().replace("_", "").replace("-", ""): v for k, v in (r.tags if r else {}).items()}
        unit = next((v for k, v in tags.items() if k in ("businessunit", "bu")), "") or (self.units.get(o, "") if o
                                                                                         else "")
        if level == "unit":
            return unit or "(no business unit)"
        group = next((v for k, v in tags.items() if k in ("businessgroup", "bg")), "") or self.groups.get(unit, "")
        return group or "(no business group)"

    def members(self, level: str, name: str) -> set[str]:
        return {a for a in set(self.recs) | set(self.daily) if self.level(a, level) == name}


def _day(v: Any) -> date | None:
    try:
        return datetime.fromisoformat(str(v)).date() if v else None
    except ValueError:
        return None


async def load_stored(db: Any, name: str, scans: list[int], truth: dict[str, dict[str, str]],
                      org_file: str | None) -> Stored:
    from sqlalchemy import select

    from storage.models import Account, DailyCost, Label, Prediction, Resource

    async with db.session() as s:
        acct = await s.scalar(select(Account).where(Account.name == name))
        labels = {a: t for a, t in await s.execute(
            select(Label.arn, Label.team).where(Label.account_id == acct.id, Label.superseded_at.is_(None),
                                                Label.source.in_(("human", "import"))).order_by(Label.id))}
        res = {r.arn: r for r in (await s.scalars(select(Resource).where(Resource.account_id == acct.id))).all()}
        daily: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
        for a, d, v in await s.execute(select(DailyCost.arn, DailyCost.day, DailyCost.cost_usd).where(
                DailyCost.account_id == acct.id)):
            daily[a][d] += float(v)

        async def recs(scan_id: int) -> dict[str, Rec]:
            out = {}
            for p in (await s.scalars(select(Prediction).where(Prediction.scan_id == scan_id))).all():
                r = res.get(p.arn)
                act = (p.evidence or {}).get("activity") or {}
                out[p.arn] = Rec(p.arn, p.resource_id, p.type, p.team or "", float(p.confidence), p.tag_team or "",
                                 bool(p.tag_conflict), labels.get(p.arn, ""), float(p.monthly_cost_usd or 0.0),
                                 dict(r.tags or {}) if r is not None else {}, (r.name or "") if r is not None else "",
                                 _day(act.get("last")), truth.get(p.arn, {}).get("team", ""))
            return out

        latest = await recs(scans[-1])
        prev = await recs(scans[-2]) if len(scans) > 1 else {}
    units: dict[str, str] = {}
    groups: dict[str, str] = {}
    if org_file:
        import yaml

        doc = yaml.safe_load(Path(org_file).read_text())
        for unit, body in doc["business_units"].items():
            groups[unit] = body.get("group", "")
            for t in body["teams"]:
                units[t] = unit
    return Stored(name, latest, prev, {a: dict(v) for a, v in daily.items()}, units, groups)


# -- questions and what each must answer ------------------------------------------------------------------


@dataclass
class Q:
    org: str
    text: str
    tool: str
    args: dict[str, Any]  # what the scripted LLM calls
    ids: list[str] = field(default_factory=list)  # must be cited and in the text
    figures: list[tuple[float, str | None]] = field(default_factory=list)  # (value, as written in the text)
    words: list[str] = field(default_factory=list)  # must be in the text (an owner's name)
    owner_truth: bool | None = None  # owner questions: is the stored owner the generator's truth?


def fig(v: float) -> tuple[float, str]:
    return cents(v), money(v)


def _rank(d: dict[str, float], n: int) -> list[str]:
    return sorted(d, key=lambda a: (-d[a], a))[:n]


def _typo(word: str) -> str:
    """One letter dropped from the middle of a word of 7+ letters (the router forgives one typo)."""
    return word[:3] + word[4:] if len(word) >= 7 else word


@dataclass
class Cal:
    """The org's calendar as a person asking at ``now`` reads it (written out by hand per org)."""

    last_week: tuple[date, date]
    yesterday: date
    month: tuple[date, date] | None  # "in October" / "last month", clipped to the data
    this_month: tuple[date, date] | None
    weekday: tuple[str, date]  # ("sunday", that day)
    this_week: tuple[date, date]  # Monday to the last stored day


CALENDARS = {
    "alpha": Cal((date(2026, 11, 2), date(2026, 11, 8)), date(2026, 11, 9), (date(2026, 10, 1), date(2026, 10, 31)),
                 (date(2026, 11, 1), date(2026, 11, 9)), ("sunday", date(2026, 11, 8)),
                 (date(2026, 11, 9), date(2026, 11, 9))),
    "beta": Cal((date(2026, 11, 2), date(2026, 11, 8)), date(2026, 11, 14), None, None, ("tuesday", date(2026, 11, 10)),
                (date(2026, 11, 9), date(2026, 11, 14))),
}


def _span(d0: date, d1: date) -> str:
    return f"{d0} to {d1}"


def questions(S: Stored, cal: Cal) -> list[Q]:  # noqa: C901 - one list, tool by tool
    out: list[Q] = []
    org = S.name
    lw0, lw1 = cal.last_week
    y = cal.yesterday

    # -- top_spenders (resources, teams, units)
    def top(text: str, d: tuple[date, date] | None, n: int, llm_period: str | None, by: str = "resource") -> None:
        spend = S.spend(*d) if d else {a: r.monthly for a, r in S.recs.items() if r.monthly}
        args: dict[str, Any] = {"by": by, "n": n} | ({"period": llm_period} if llm_period else {})
        if by == "resource":
            ids = _rank(spend, n)
            out.append(Q(org, text, "top_spenders", args, [S.rid(a) for a in ids],
                         [fig(sum(spend.values()))] + [fig(spend[a]) for a in ids]))
            return
        agg: dict[str, float] = defaultdict(float)
        members: dict[str, list[str]] = defaultdict(list)
        for a, v in spend.items():
            agg[S.level(a, by)] += v
            members[S.level(a, by)].append(a)
        ranked = _rank(agg, n)
        biggest = sorted(members[ranked[0]], key=lambda a: (-spend[a], a))[0]
        named = [k for k in ranked if not k.startswith("(") and k != "no owner"]  # a bucket's label may vary
        out.append(Q(org, text, "top_spenders", args, [S.rid(biggest)], [fig(agg[k]) for k in ranked],
                     words=named))

    top("top 3 spenders last week", cal.last_week, 3, _span(*cal.last_week))
    top("yo whats the top 3 most expensve resources last week??", cal.last_week, 3, _span(*cal.last_week))
    top("what were our 5 biggest resources yesterday?", (y, y), 5, str(y))
    top("Top spenders", None, 5, None)
    top("show me the top 4 resources by cost", None, 4, None)
    top("spend by team last week", cal.last_week, 5, _span(*cal.last_week), by="team")
    top("which teams spent the most yesterday", (y, y), 5, str(y), by="team")
    if cal.month:
        top("biggest resources in October", cal.month, 5, "October 2026")
        top("spend per business unit last month", cal.month, 5, "October 2026", by="unit")
        top("spend by business group in october pls", cal.month, 5, "October 2026", by="group")

    # -- team_spend
    owned: dict[str, float] = defaultdict(float)
    for r in S.recs.values():
        if r.owner:
            owned[r.owner] += r.monthly
    teams = _rank(owned, 20)
    t1, t2, t3 = teams[0], teams[1], teams[-1]

    def team_q(text: str, name: str, d: tuple[date, date] | None, llm_period: str | None, level: str = "team",
               compare: tuple[date, date] | None = None) -> None:
        arns = S.members(level, name)
        args: dict[str, Any] = {"team": name} | ({"period": llm_period} if llm_period else {}) | (
            {"level": level} if level != "team" else {})
        if d is None:
            res = [S.recs[a] for a in arns if a in S.recs]
            top5 = sorted(res, key=lambda r: (-r.monthly, r.rid))[:5]
            figs = [fig(sum(r.monthly for r in res))] + [fig(r.monthly) for r in top5]
            days = S.days
            if len(days) >= 14:  # week over week: the last 7 stored days against the 7 before
                last = S.spend(days[-7], days[-1])
                prior = S.spend(days[-14], days[-8])
                figs += [fig(sum(v for a, v in last.items() if a in arns)),
                         fig(sum(v for a, v in prior.items() if a in arns))]
            out.append(Q(org, text, "team_spend", args, [r.rid for r in top5], figs, words=[name]))
            return
        cur = {a: v for a, v in S.spend(*d).items() if a in arns}
        top5 = _rank(cur, 5)
        figs = [fig(sum(cur.values()))] + [fig(cur[a]) for a in top5]
        if compare:
            figs.append(fig(sum(v for a, v in S.spend(*compare).items() if a in arns)))
        out.append(Q(org, text, "team_spend", args, [S.rid(a) for a in top5], figs, words=[name]))

    team_q(f"how much did {t1} spend last week?", t1, cal.last_week, _span(*cal.last_week))
    team_q(f"{t2} spend yesterday", t2, (y, y), str(y))
    team_q(f"what does team {t3} cost per month", t3, None, None)
    team_q(f"hw much is {_typo(t1)} spending", t1, None, None)
    if cal.month and cal.this_month:
        team_q(f"{t2} spend MoM", t2, cal.this_month, "MoM", compare=cal.month)
        team_q(f"how much did {t3} spend in october", t3, cal.month, "October 2026")
    if S.units:
        team_q("spend of the commerce-bu last month", "commerce-bu", cal.month, "October 2026", level="unit")
        team_q("how much does platform-bu cost", "platform-bu", None, None, level="unit")

    # -- compare_teams
    def cmp_q(text: str, names: list[str], d: tuple[date, date] | None, llm_period: str | None) -> None:
        rows = []
        for name in names:
            arns = S.members("team", name)
            if d is None:
                v = sum(S.recs[a].monthly for a in arns if a in S.recs)
                top1 = sorted((a for a in arns if a in S.recs), key=lambda a: -S.recs[a].monthly)[:1]
            else:
                cur = {a: x for a, x in S.spend(*d).items() if a in arns}
                v = sum(cur.values())
                top1 = sorted(cur, key=lambda a: -cur[a])[:1]
            rows.append((name, v, [S.rid(a) for a in top1]))
        rows.sort(key=lambda r: (-r[1], r[0]))
        args = {"teams": names} | ({"period": llm_period} if llm_period else {})
        out.append(Q(org, text, "compare_teams", args, [i for r in rows for i in r[2]],
                     [fig(r[1]) for r in rows] + [fig(rows[0][1] - rows[1][1])], words=names))

    cmp_q(f"compare {t1} and {t2} last week", [t1, t2], cal.last_week, _span(*cal.last_week))
    cmp_q(f"{t2} vs {t3}?", [t2, t3], None, None)
    cmp_q(f"can you compare {t1}, {t2} and {t3} yesterday", [t1, t2, t3], (y, y), str(y))

    # -- untagged_spend
    untagged = {a: r for a, r in S.recs.items() if not r.tag_team}

    def untagged_q(text: str, d: tuple[date, date] | None, llm_period: str | None,
                   compare: tuple[date, date] | None = None) -> None:
        args = {"period": llm_period} if llm_period else {}
        if d is None:
            top5 = sorted(untagged.values(), key=lambda r: (-r.monthly, r.rid))[:5]
            figs = [fig(sum(r.monthly for r in untagged.values())),
                    fig(sum(r.monthly for r in untagged.values() if r.owner))] + [fig(r.monthly) for r in top5]
            out.append(Q(org, text, "untagged_spend", args, [r.rid for r in top5], figs))
            return
        cur = {a: v for a, v in S.spend(*d).items() if a in untagged}
        top5 = _rank(cur, 5)
        figs = [fig(sum(cur.values()))] + [fig(cur[a]) for a in top5]
        if compare:
            figs.append(fig(sum(v for a, v in S.spend(*compare).items() if a in untagged)))
        out.append(Q(org, text, "untagged_spend", args, [S.rid(a) for a in top5], figs))

    untagged_q("untagged spend last week", cal.last_week, _span(*cal.last_week))
    untagged_q("how much are we spending on stuff without owner tags", None, None)
    untagged_q("untaged spend yesterday", (y, y), str(y))
    untagged_q("untagged spend WoW", cal.this_week, "WoW", compare=cal.last_week)

    # -- attribute_resource (owner questions)
    by_cost = sorted(S.recs.values(), key=lambda r: (-r.monthly, r.rid))
    picks: list[Rec] = []
    for want in (lambda r: r.tag_team and not r.conflict, lambda r: not r.tag_team and r.owner,
                 lambda r: r.conflict and r.owner, lambda r: not r.tag_team and r.owner and r.conf < 0.9):
        hit = next((r for r in by_cost if want(r) and r not in picks and r.owner), None)
        if hit is not None:
            picks.append(hit)
    phr = ("who owns {}?", "whose is `{}`", "which team is responsible for {}", "who owns {} ?? not sure who made it")
    for i, r in enumerate(picks):
        out.append(Q(org, phr[i % len(phr)].format(r.rid), "attribute_resource", {"resource": r.rid}, [r.rid],
                     [fig(r.monthly)], words=[r.owner], owner_truth=r.owner == r.truth))

    # -- signal_history
    with_cost = [r for r in by_cost if r.arn in S.daily]
    for text, r in (("history of {}", with_cost[1]), ("what happened to {}?", with_cost[4]),
                    ("who changed {} recently", with_cost[7])):
        total = sum(S.daily[r.arn].values())
        out.append(Q(org, text.format(r.rid), "signal_history", {"resource": r.rid}, [r.rid],
                     [fig(total), fig(r.monthly)]))

    # -- search_resources
    def search(term: str) -> list[Rec]:
        q = term.lower()
        hits = [r for r in S.recs.values() if any(q in h for h in [r.rid.lower(), r.arn.lower(), r.name.lower()]
                                                  + [f"{k}={v}".lower() for k, v in r.tags.items()])]
        return sorted(hits, key=lambda r: (r.rid.lower() != q, -r.monthly, r.rid))[:10]

    stems = sorted({re.split(r"[-_/]", r.rid)[0] for r in S.recs.values() if not r.rid.startswith(("i-", "vol-"))
                    and len(re.split(r"[-_/]", r.rid)[0]) >= 5})
    for text, term in (("find {}", stems[0]), ("search for {} resources", stems[len(stems) // 2]),
                       ("list resources matching {}", stems[-1])):
        hits = search(term)
        out.append(Q(org, text.format(term), "search_resources", {"query": term}, [r.rid for r in hits],
                     [fig(r.monthly) for r in hits]))

    # -- summarize_account
    owned_recs = [r for r in S.recs.values() if r.owner]
    summary_figs = [fig(sum(r.monthly for r in S.recs.values())), fig(sum(r.monthly for r in untagged.values())),
                    fig(sum(r.monthly for r in owned_recs))] + [fig(owned[t]) for t in teams[:3]]
    for text in ("summary", "give me an overview of the account", "how are we doing?"):
        out.append(Q(org, text, "summarize_account", {}, [r.rid for r in by_cost[:3]], summary_figs))

    # -- find_anomalies
    none = [r for r in by_cost if not r.team and not r.label and not r.tag_team]
    conflicts = [r for r in by_cost if r.conflict and not r.label]
    afigs = ([fig(sum(r.monthly for r in none))] if none else []) + [fig(r.monthly) for r in none[:10] + conflicts[:10]]
    for text in ("what fits no team?", "any anomalies", "show me resources with stale or wrong tags"):
        out.append(Q(org, text, "find_anomalies", {}, [r.rid for r in none[:10] + conflicts[:10]], afigs))

    # -- find_idle / find_abandoned
    days = S.days
    as_of = days[-1]

    def recent(n: int) -> dict[str, float]:
        return S.spend(as_of - timedelta(days=n - 1), as_of)

    def idle_q(text: str, n: int, abandoned: bool) -> None:
        cutoff = as_of - timedelta(days=n)
        rc = recent(min(n, 7) if abandoned else n)
        hits = [S.recs[a] for a, v in rc.items() if v > 0 and a in S.recs and (
            (S.recs[a].last_active is not None and S.recs[a].last_active <= cutoff) if abandoned else
            (S.recs[a].last_active is None or S.recs[a].last_active <= cutoff))]
        hits.sort(key=lambda r: (-rc[r.arn], r.rid))
        args = {"days": n} if n != 7 else {}
        out.append(Q(org, text, "find_abandoned" if abandoned else "find_idle", args, [r.rid for r in hits[:10]],
                     [fig(sum(rc[r.arn] for r in hits))] + [fig(rc[r.arn]) for r in hits[:10]]))

    idle_q("idle resources", 7, False)
    idle_q("any zombie resources idle for 10 days?", 10, False)
    idle_q("what is nobody using", 7, False)
    idle_q("abandoned resources", 7, True)
    idle_q("what's been forgotten for 5 days", 5, True)
    idle_q("anything dormant?", 7, True)

    # -- tag_compliance
    def has_team(r: Rec) -> bool:
        return "team" in {re.sub(r"[^a-z0-9]", "", k.lower()) for k, v in r.tags.items() if str(v).strip()}

    good = [r for r in S.recs.values() if has_team(r)]
    worst = [r for r in by_cost if not has_team(r)][:5]
    cfigs = [(float(len(good)), None), (float(len(S.recs)), None), fig(sum(r.monthly for r in good)),
             fig(sum(r.monthly for r in S.recs.values()))]
    for text in ("tag compliance", "how compliant are we with the required tags?", "which teams are missing tags"):
        out.append(Q(org, text, "tag_compliance", {}, [r.rid for r in worst], cfigs))

    # -- what_changed
    if S.prev:
        new, old = S.recs, S.prev
        added = sorted((new[a] for a in set(new) - set(old)), key=lambda r: (-r.monthly, r.rid))[:10]
        gone = sorted((old[a] for a in set(old) - set(new)), key=lambda r: (-r.monthly, r.rid))[:10]
        moved = sorted((new[a] for a in set(new) & set(old) if old[a].owner != new[a].owner),
                       key=lambda r: (-r.monthly, r.rid))[:10]
        cost = sorted((new[a] for a in set(new) & set(old) if abs(new[a].monthly - old[a].monthly) >= 0.01),
                      key=lambda r: (-abs(r.monthly - old[r.arn].monthly), r.rid))[:10]
        ids = list(dict.fromkeys(r.rid for r in added + gone + moved + cost))
        for text in ("what changed since the last scan?", "any drift?", "whats new"):
            out.append(Q(org, text, "what_changed", {}, ids, [fig(r.monthly) for r in cost]))

    # -- find_cost_spikes
    def spike_q(text: str, inside: list[date], llm_period: str | None, team: str | None = None) -> None:
        arns = S.members("team", team) if team else None
        rows = {a: v for a, v in S.daily.items() if arns is None or a in arns}
        idx = {d: i for i, d in enumerate(days)}

        def tot(d: date) -> float:
            return sum(v.get(d, 0.0) for v in rows.values())

        def rise(d: date) -> float:
            i = idx[d]
            base = [tot(x) for x in days[max(0, i - 7):i]]
            return tot(d) - (sum(base) / 7 if base else tot(d))

        day = max(inside, key=lambda d: (rise(d), d))
        i = idx[day]
        before = days[max(0, i - 7):i]
        base = {a: sum(v.get(x, 0.0) for x in before) / 7 for a, v in rows.items()}
        cur = {a: v.get(day, 0.0) for a, v in rows.items()}
        order = sorted(rows, key=lambda a: (-abs(cur[a] - base[a]), a))[:5]
        movers = [a for a in order if abs(cur[a] - base[a]) > 0.005]
        dt, bt = sum(cur.values()), sum(base.values())
        args = ({"period": llm_period} if llm_period else {}) | ({"team": team} if team else {})
        out.append(Q(org, text, "find_cost_spikes", args, [S.rid(a) for a in movers],
                     [fig(dt), fig(bt), (cents(dt - bt), money(abs(dt - bt)))] + [fig(cur[a]) for a in movers],
                     words=[str(day)]))

    spike_q("why did our bill spike yesterday?", [y], str(y))
    wname, wday = cal.weekday
    spike_q(f"what went up on {wname}", [wday], str(wday))
    spike_q("why did costs jump", days[-7:], None)
    spike_q(f"why did {t1}'s costs go up yesterday", [y], str(y), team=t1)
    return out


# -- scoring ------------------------------------------------------------------------------------------------


def judge(q: Q, a: Any, mode: str = "offline") -> list[str]:
    """What is wrong with answer ``a`` (empty: right)."""
    wrong = []
    if a.mode != mode:
        wrong.append(f"mode {a.mode} ({a.note})")
    if not a.tools or a.tools[0] != q.tool:
        wrong.append(f"tool {a.tools or 'none'} (expected {q.tool})")
    for i in q.ids:
        if i not in a.citations:
            wrong.append(f"`{i}` not cited")
        elif i not in a.text:
            wrong.append(f"`{i}` cited but not in the text")
    values = list(a.figures.values())
    for v, written in q.figures:
        if not any(abs(float(x) - v) < 0.005 for x in values):
            wrong.append(f"figure {v:,.2f} not in figures")
        if written is not None and written not in a.text:
            wrong.append(f"{written} not in the text")
    for w in q.words:
        if w not in a.text:
            wrong.append(f"{w!r} not in the text")
    return wrong


@dataclass
class Outcome:
    q: Q
    wrong: list[str]
    ms: float
    got: str


def _short(a: Any) -> str:
    return f"tools={a.tools} cited={a.citations[:6]} figures={dict(list(a.figures.items())[:6])} text={a.text[:300]!r}"


async def run_offline(db: Any, qs: list[Q], now: datetime, settings: Any) -> list[Outcome]:
    from handlers.ask import ask

    out = []
    for q in qs:
        t0 = time.perf_counter()
        a = await ask(db, q.text, now=now, settings=settings, threshold=THRESHOLD)
        ms = 1000 * (time.perf_counter() - t0)
        out.append(Outcome(q, judge(q, a), ms, _short(a)))
    return out


def _grounded_final(prefix: str = "", suffix: str = "") -> Callable[[list[dict[str, Any]]], str]:
    """A final answer that quotes the last tool result's own text (figures and ids as the tool wrote them)."""
    from tests.openai_standin import tool_messages

    def write(messages: list[dict[str, Any]]) -> str:
        results = tool_messages(messages)
        body = results[-1]["content"] if results else {}
        text = body.get("text", "") if isinstance(body, dict) else str(body)
        return f"{prefix}{text}{suffix}"

    return write


async def run_llm(db: Any, qs: list[Q], now: datetime, settings: Any) -> tuple[list[Outcome], list[str], int]:
    """Every question through the LLM loop with a scripted, honest model; then liars on one question per tool."""
    from pydantic import SecretStr

    from handlers.ask import ask
    from tests.openai_standin import OpenAIStandIn, call, final

    outcomes, escaped, liars = [], [], 0
    async with OpenAIStandIn() as standin:
        llm = settings.model_copy(update={"openai_api_key": SecretStr("sk-benchmark-not-a-key"),
                                          "openai_base_url": standin.base_url, "llm_model": "standin-model"})
        for q in qs:
            standin.play(call(q.tool, **q.args), final(_grounded_final("From the stored scan: ")))
            t0 = time.perf_counter()
            a = await ask(db, q.text, now=now, settings=llm, threshold=THRESHOLD)
            outcomes.append(Outcome(q, judge(q, a, "llm"), 1000 * (time.perf_counter() - t0), _short(a)))
        seen: set[str] = set()
        for q in qs:
            if q.tool in seen:
                continue
            seen.add(q.tool)
            for lie in (" That is $13,579.24 more than planned.", " The culprit is `i-0deadbeefcafe1234`."):
                standin.play(call(q.tool, **q.args), final(_grounded_final(suffix=lie)))
                a = await ask(db, q.text, now=now, settings=llm, threshold=THRESHOLD)
                liars += 1
                if a.mode != "fallback" or "quoted" not in a.note:
                    escaped.append(f"[{q.org}] {q.text!r} + {lie.strip()!r}: mode={a.mode} note={a.note!r}")
    return outcomes, escaped, liars


def table(title: str, outcomes: list[Outcome]) -> float:
    per: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        per[o.q.tool].append(o)
    print(f"\n{title}")
    print(f"{'tool':<20} {'questions':>9} {'correct':>8} {'accuracy':>9} {'median ms':>10}")
    for t in TOOLS:
        os_ = per.get(t, [])
        if not os_:
            print(f"{t:<20} {0:>9}")
            continue
        ok = sum(1 for o in os_ if not o.wrong)
        ms = sorted(o.ms for o in os_)[len(os_) // 2]
        print(f"{t:<20} {len(os_):>9} {ok:>8} {ok / len(os_):>9.1%} {ms:>10.1f}")
    ok = sum(1 for o in outcomes if not o.wrong)
    acc = ok / len(outcomes) if outcomes else 0.0
    print(f"{'overall':<20} {len(outcomes):>9} {ok:>8} {acc:>9.1%}")
    fails = [o for o in outcomes if o.wrong]
    if fails:
        print(f"\nfailures ({len(fails)}):")
        for o in fails:
            print(f"- [{o.q.org}] {o.q.text!r} (expected {o.q.tool}: ids {o.q.ids[:6]}"
                  f"{' …' if len(o.q.ids) > 6 else ''}, figures {[w or v for v, w in o.q.figures][:6]}"
                  f"{' …' if len(o.q.figures) > 6 else ''})\n    wrong: {'; '.join(o.wrong[:6])}"
                  f"{' …' if len(o.wrong) > 6 else ''}\n    got: {o.got}")
    return acc


async def evaluate(root: Path, infos: dict[str, dict[str, Any]], llm: bool
                   ) -> tuple[list[Outcome], list[Outcome], list[str], int, list[bool]]:
    from storage.db import Database

    offline: list[Outcome] = []
    llm_out: list[Outcome] = []
    escaped: list[str] = []
    liars = 0
    truth_hits: list[bool] = []
    for spec in ORGS:
        info = infos[spec.name]
        data = root / spec.name / "data"
        settings = _settings(data, Path(info["org_file"]) if info["org_file"] else None)
        db = await Database(settings.db_url()).init()
        try:
            S = await load_stored(db, spec.name, info["scans"], _truth(root / spec.name / "gen"), info["org_file"])
            qs = questions(S, CALENDARS[spec.name])
            print(f"{spec.name}: {spec.teams} teams, {len(S.recs)} resources, {len(S.days)} days "
                  f"({S.days[0]} to {S.days[-1]}), scans {info['scans']}, asked at {spec.now:%Y-%m-%d %H:%M} UTC: "
                  f"{len(qs)} questions", flush=True)
            offline += await run_offline(db, qs, spec.now, settings)
            truth_hits += [q.owner_truth for q in qs if q.owner_truth is not None]
            if llm:
                o, e, n = await run_llm(db, qs, spec.now, settings)
                llm_out += o
                escaped += e
                liars += n
        finally:
            await db.close()
    return offline, llm_out, escaped, liars, truth_hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min", type=float, default=0.95, help="accuracy below this exits 1 (default 0.95)")
    ap.add_argument("--data", type=Path, default=None, help="keep (and reuse) the generated orgs here")
    ap.add_argument("--no-llm", action="store_true", help="offline mode only")
    a = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    tmp = None
    root = a.data
    if root is None:
        tmp = tempfile.mkdtemp(prefix="ask-eval-")
        root = Path(tmp)
    t0 = time.perf_counter()
    try:
        infos = {}
        for spec in ORGS:  # generated and scanned (the scan job, in-process) unless --data holds them
            infos[spec.name] = build(spec, root / spec.name)
            print(f"{spec.name}: built in {infos[spec.name]['seconds']}s", flush=True)
        offline, llm_out, escaped, liars, truth_hits = asyncio.run(evaluate(root, infos, not a.no_llm))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    acc = table("offline (router + tools)", offline)
    if truth_hits:
        print(f"owner questions: the answer named the stored owner in "
              f"{sum(1 for o in offline if o.q.owner_truth is not None and not o.wrong)}/{len(truth_hits)}; "
              f"that stored owner is the generator's truth in {sum(truth_hits)}/{len(truth_hits)}")
    bad = acc < a.min
    if not a.no_llm:
        lacc = table("LLM mode (scripted stand-in quoting the tool results)", llm_out)
        print(f"grounding: {liars - len(escaped)}/{liars} invented figures or ids caught (answer replaced by "
              "the offline one)")
        for e in escaped:
            print(f"- NOT CAUGHT: {e}")
        bad = bad or lacc < a.min or bool(escaped)
    print(f"\n{len(offline)} questions, {time.perf_counter() - t0:.0f}s; offline accuracy {acc:.1%} "
          f"(target >= {a.min:.0%})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

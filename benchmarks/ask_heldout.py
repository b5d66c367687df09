"""Held-out accuracy of ``ask`` (offline router + tools): questions written without reading the router.

``benchmarks/ask_eval.py`` reaches 100%, but its phrasings were seen while the router was tuned. This
report asks questions written by someone who has read only the README's "Asking questions" section
(the public contract: fourteen read-only tools, what each answers) and ``engine/ask/tools.py`` (tool
names and arguments) — not ``engine/ask/router.py``, ``engine/periods.py`` or ask_eval's phrasings.
The questions read like a FinOps / platform engineer typing in Slack: chatty, lower case, typos,
"BU", "WoW", "what's burning money", "anything unused we can kill?", plus writes that must be refused
and off-topic questions that must get "can't tell".

Two new synthetic orgs, unlike ask_eval's (seeds 101 and 202, 3 and 12 teams, 10 and 28 days; gamma
has business units of its own naming from an org file, delta is scanned twice so ``what_changed`` has
a previous scan), are generated and scanned with ask_eval's own ``build``; the expected answers are
computed here from the stored rows with ask_eval's ``load_stored`` (plain Python over the database, the
same owner rule) and hand-written calendar dates, and scored with ask_eval's ``judge``: the expected
tool was called first, every expected id is cited and in the text, every expected figure is among the
answer's figures and written in the text. A write is right when refused ("`ask` is read-only", no tool
called); an off-topic question is right when answered "I can't tell what you are asking".

    .venv/bin/python benchmarks/ask_heldout.py [--data DIR]

A report: it prints accuracy per tool and overall and every failure, and always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import ask_eval as E  # noqa: E402 - the harness: org building, stored data, judge

REFUSE, CANT = "(refused write)", "(can't tell)"
KINDS = (*E.TOOLS, REFUSE, CANT)

# gamma: 3 teams, 10 days Wed 2026-11-25 .. Fri 2026-12-04, asked Sat 2026-12-05 09:30 UTC.
#   yesterday = Fri Dec 4; last week = Nov 23-29 (stored: Nov 25-29); this week = Nov 30 - Dec 4;
#   last month = November (stored: Nov 25-30); "on Monday" = Nov 30; this month = Dec 1-4.
# delta: 12 teams, 28 days Mon 2026-09-14 .. Sun 2026-10-11, asked Mon 2026-10-12 08:00 UTC; scanned twice.
#   yesterday = Sun Oct 11; last week = Oct 5-11; the week before = Sep 28 - Oct 4;
#   last month / September = Sep 14-30 stored; "on Wednesday" = Oct 7; "since Oct 1" = Oct 1-11.
SPECS = (
    E.OrgSpec("gamma", seed=101, teams=3, per_team=25, days=10, start=datetime(2026, 11, 25, tzinfo=UTC),
              now=datetime(2026, 12, 5, 9, 30, tzinfo=UTC), org_file=True, tagged=0.6),
    E.OrgSpec("delta", seed=202, teams=12, per_team=12, days=28, start=datetime(2026, 9, 14, tzinfo=UTC),
              now=datetime(2026, 10, 12, 8, 0, tzinfo=UTC), rescan=True, tagged=0.35),
)
REQUIRED_TAGS = {"gamma": "team,env", "delta": ""}  # delta: the default (the owner tag key)


def write_org_file(root: Path, teams: list[str]) -> Path:
    """Business units of our own naming: the first team is the storefront (revenue), the rest core-infra."""
    a, b = teams[:1], teams[1:]
    path = root / "org.yaml"
    path.write_text("business_units:\n"
                    f"  storefront:\n    group: revenue\n    teams: [{', '.join(a)}]\n"
                    f"  core-infra:\n    group: technology\n    teams: [{', '.join(b)}]\n")
    return path


def settings_for(spec: E.OrgSpec, root: Path, info: dict[str, Any]) -> Any:
    s = E._settings(root / "data", Path(info["org_file"]) if info["org_file"] else None)
    return s.model_copy(update={"required_tags": REQUIRED_TAGS[spec.name]})


# -- expected answers, from the stored rows ---------------------------------------------------------------


@dataclass
class X:
    """Expectations over one org's stored data (``E.Stored``)."""

    S: E.Stored
    required: tuple[str, ...]

    # spend
    def run_rate(self) -> dict[str, float]:
        return {a: r.monthly for a, r in self.S.recs.items()}

    def top_resources(self, n: int, d: tuple[date, date] | None = None, check: int = 3) -> tuple[list[str], list]:
        sp = {a: v for a, v in (self.run_rate() if d is None else self.S.spend(*d)).items() if v}
        top = E._rank(sp, n)[:check]
        return [self.S.rid(a) for a in top], [E.fig(sp[a]) for a in top]

    def by_level(self, level: str, d: tuple[date, date] | None) -> dict[str, float]:
        sp = self.run_rate() if d is None else self.S.spend(*d)
        agg: dict[str, float] = {}
        for a, v in sp.items():
            k = self.S.level(a, level)
            agg[k] = agg.get(k, 0.0) + v
        return agg

    def top_level(self, level: str, d: tuple[date, date] | None, check: int = 3) -> tuple[list, list[str]]:
        agg = self.by_level(level, d)
        top = E._rank(agg, check)
        # the "no owner" / "no unit" buckets are named by the tool's own convention: only real names must appear
        return [E.fig(agg[k]) for k in top], [k for k in top if not k.startswith("(") and k != "no owner"]

    def owner_total(self, level: str, name: str, d: tuple[date, date] | None) -> float:
        arns = self.S.members(level, name)
        if d is None:
            return sum(self.S.recs[a].monthly for a in arns if a in self.S.recs)
        return sum(v for a, v in self.S.spend(*d).items() if a in arns)

    def untagged(self) -> set[str]:
        return {a for a, r in self.S.recs.items() if not r.tag_team}

    def untagged_total(self, d: tuple[date, date] | None) -> float:
        u = self.untagged()
        if d is None:
            return sum(self.S.recs[a].monthly for a in u)
        return sum(v for a, v in self.S.spend(*d).items() if a in u)

    # one resource
    def rec(self, rid: str) -> E.Rec:
        return next(r for r in self.S.recs.values() if r.rid == rid or r.name == rid)

    def history_total(self, rid: str) -> float:
        return sum(self.S.daily.get(self.rec(rid).arn, {}).values())

    def search(self, q: str, check: int = 3) -> list[str]:
        ql = q.lower()
        hits = [r for r in self.S.recs.values()
                if any(ql in h.lower() for h in [r.rid, r.arn, r.name] + [f"{k}={v}" for k, v in r.tags.items()])]
        hits.sort(key=lambda r: (r.rid.lower() != ql, -r.monthly, r.rid))
        return [r.rid for r in hits[:check]]

    # findings
    def per_day(self, arns: set[str] | None = None) -> dict[date, float]:
        out = {d: 0.0 for d in self.S.days}
        for a, days in self.S.daily.items():
            if arns is None or a in arns:
                for d, v in days.items():
                    out[d] += v
        return out

    def spike(self, day: date | None, arns: set[str] | None = None) -> tuple[date, list]:
        pd = self.per_day(arns)
        days = self.S.days

        def base(d: date) -> float:
            i = days.index(d)
            return sum(pd[x] for x in days[max(0, i - 7):i]) / 7

        def rise(d: date) -> float:
            return pd[d] - base(d) if days.index(d) else 0.0

        if day is None:
            day = max(days[-7:], key=lambda d: (rise(d), d))
        return day, [E.fig(pd[day]), E.fig(base(day))]

    def recent(self, days: int) -> dict[str, float]:
        end = self.S.days[-1]
        return self.S.spend(end - timedelta(days=days - 1), end)

    def idle(self, days: int = 7, check: int = 3) -> tuple[list[str], list]:
        cutoff = self.S.days[-1] - timedelta(days=days)
        rc = self.recent(days)
        idle = [a for a, v in rc.items() if v > 0 and a in self.S.recs
                and (self.S.recs[a].last_active is None or self.S.recs[a].last_active <= cutoff)]
        idle.sort(key=lambda a: (-rc[a], self.S.rid(a)))
        return [self.S.rid(a) for a in idle[:check]], [E.fig(sum(rc[a] for a in idle))]

    def abandoned(self, days: int = 7, check: int = 3) -> tuple[list[str], list]:
        cutoff = self.S.days[-1] - timedelta(days=days)
        rc = self.recent(min(days, 7))
        gone = [a for a, v in rc.items() if v > 0 and a in self.S.recs and self.S.recs[a].last_active is not None
                and self.S.recs[a].last_active <= cutoff]
        gone.sort(key=lambda a: (-rc[a], self.S.rid(a)))
        return [self.S.rid(a) for a in gone[:check]], [E.fig(sum(rc[a] for a in gone))] if gone else []

    def anomalies(self, check: int = 3) -> tuple[list[str], list]:
        recs = list(self.S.recs.values())
        none = sorted((r for r in recs if not r.team and not r.label and not r.tag_team), key=lambda r: (-r.monthly, r.rid))
        conf = sorted((r for r in recs if r.conflict and not r.label), key=lambda r: (-r.monthly, r.rid))
        figs = [E.fig(sum(r.monthly for r in none))] if none else []
        return [r.rid for r in none[:check] + conf[:check]], figs

    def summary(self) -> tuple[list[str], list]:
        recs = list(self.S.recs.values())
        big = sorted(recs, key=lambda r: (-r.monthly, r.rid))[:3]
        return [r.rid for r in big], [E.fig(sum(r.monthly for r in recs)),
                                      E.fig(sum(r.monthly for r in recs if not r.tag_team)),
                                      E.fig(sum(r.monthly for r in recs if r.owner))]

    def compliance(self) -> tuple[list[str], list]:
        def norm(k: str) -> str:
            return "".join(c for c in k.lower() if c.isalnum())

        want = {norm(k) for k in self.required}
        recs = list(self.S.recs.values())

        def ok(r: E.Rec) -> bool:
            return want <= {norm(k) for k, v in r.tags.items() if str(v).strip()}

        bad = sorted((r for r in recs if not ok(r)), key=lambda r: (-r.monthly, r.rid))[:3]
        return [r.rid for r in bad], [E.fig(sum(r.monthly for r in recs if ok(r))), E.fig(sum(r.monthly for r in recs))]

    def changed(self, check: int = 3) -> tuple[list[str], list]:
        old, new = self.S.prev, self.S.recs
        moved = sorted((new[a] for a in set(new) & set(old) if old[a].owner != new[a].owner),
                       key=lambda r: (-r.monthly, r.rid))
        added = set(new) - set(old)
        gone = set(old) - set(new)
        return [r.rid for r in moved[:check]], [(float(len(added)), None), (float(len(gone)), None),
                                                (float(len(moved)), None)]


def Q(org: str, text: str, tool: str, ids: list[str] | None = None, figures: list | None = None,
      words: list[str] | None = None) -> E.Q:
    return E.Q(org, text, tool, {}, list(ids or []), list(figures or []), list(words or []))


# -- the questions (written from the README's contract, not from the router) --------------------------------


def gamma(x: X) -> list[E.Q]:  # noqa: PLR0915 - one list
    g = "gamma"
    nov, yday, mon = (date(2026, 11, 25), date(2026, 11, 30)), date(2026, 12, 4), date(2026, 11, 30)
    this_week = (date(2026, 11, 30), date(2026, 12, 4))
    qs: list[E.Q] = []
    # top_spenders
    ids, figs = x.top_resources(5)
    qs.append(Q(g, "what's burning money right now?", "top_spenders", ids, figs))
    ids, figs = x.top_resources(3)
    qs.append(Q(g, "top 3 most expensive resources pls", "top_spenders", ids, figs))
    figs, names = x.top_level("team", None)
    qs.append(Q(g, "who's the biggest cost? which team i mean", "top_spenders", figures=figs, words=names))
    figs, names = x.top_level("team", nov)
    qs.append(Q(g, "breakdown by team for last month", "top_spenders", figures=figs, words=names))
    figs, names = x.top_level("unit", nov, 2)
    qs.append(Q(g, "BU spend last month", "top_spenders", figures=figs, words=names))
    figs, names = x.top_level("group", None, 2)
    qs.append(Q(g, "spend per business group?", "top_spenders", figures=figs, words=names))
    # team_spend
    qs.append(Q(g, "how much is payments spending", "team_spend", figures=[E.fig(x.owner_total("team", "payments", None))]))
    qs.append(Q(g, "serach team spend yesterday?", "team_spend",
                figures=[E.fig(x.owner_total("team", "search", (yday, yday)))]))
    qs.append(Q(g, "what did growth cost us in november", "team_spend",
                figures=[E.fig(x.owner_total("team", "growth", nov))]))
    qs.append(Q(g, "how much does core-infra cost us per month", "team_spend",
                figures=[E.fig(x.owner_total("unit", "core-infra", None))]))
    qs.append(Q(g, "storefront BU spend this week", "team_spend",
                figures=[E.fig(x.owner_total("unit", "storefront", this_week))]))
    # compare_teams
    a, b = x.owner_total("team", "search", None), x.owner_total("team", "payments", None)
    qs.append(Q(g, "search vs payments, who spends more?", "compare_teams", figures=[E.fig(a), E.fig(b)]))
    a, b = x.owner_total("team", "growth", nov), x.owner_total("team", "search", nov)
    qs.append(Q(g, "compare growth and search last month", "compare_teams", figures=[E.fig(a), E.fig(b)]))
    a, b = x.owner_total("unit", "storefront", None), x.owner_total("unit", "core-infra", None)
    qs.append(Q(g, "storefront vs core-infra", "compare_teams", figures=[E.fig(a), E.fig(b)]))
    # untagged_spend
    qs.append(Q(g, "which stuff has no owner tag", "untagged_spend", figures=[E.fig(x.untagged_total(None))]))
    qs.append(Q(g, "how much are we spending on untagged resources last week", "untagged_spend",
                figures=[E.fig(x.untagged_total((date(2026, 11, 25), date(2026, 11, 29))))]))
    qs.append(Q(g, "untagged spend?", "untagged_spend", figures=[E.fig(x.untagged_total(None))]))
    # attribute_resource
    for text, rid in (("who is responsible for remit-pg", "remit-pg"),
                      ("whose is i-814d79232f12e0586 ?", "i-814d79232f12e0586"),
                      ("who owns old-cluster/old-worker", "old-cluster/old-worker")):
        r = x.rec(rid)
        qs.append(Q(g, text, "attribute_resource", [r.rid], [E.fig(r.monthly)], [r.owner] if r.owner else []))
    # signal_history
    for text, rid in (("timeline for funnel-db", "funnel-db"),
                      ("what happened to relevance-validator", "relevance-validator"),
                      ("history of i-a029636552da381ea pls", "i-a029636552da381ea")):
        r = x.rec(rid)
        qs.append(Q(g, text, "signal_history", [r.rid], [E.fig(x.history_total(rid))]))
    # search_resources
    qs.append(Q(g, "find everything with relevance in the name", "search_resources", x.search("relevance")))
    qs.append(Q(g, "search payout", "search_resources", x.search("payout")))
    qs.append(Q(g, "list resources matching 'campaign'", "search_resources", x.search("campaign")))
    # find_cost_spikes
    d, figs = x.spike(mon)
    qs.append(Q(g, "did anything get more expensive on Monday?", "find_cost_spikes", figures=figs))
    d, figs = x.spike(yday)
    qs.append(Q(g, "why did the bill jump yesterday", "find_cost_spikes", figures=figs))
    d, figs = x.spike(None)
    qs.append(Q(g, "any cost spikes?", "find_cost_spikes", figures=figs))
    # find_anomalies
    ids, figs = x.anomalies()
    qs.append(Q(g, "anything weird? resources that don't belong to any team", "find_anomalies", ids, figs))
    qs.append(Q(g, "show me anomalies", "find_anomalies", ids, figs))
    # find_idle
    ids, figs = x.idle()
    qs.append(Q(g, "anything unused we can kill?", "find_idle", ids, figs))
    qs.append(Q(g, "idle resources", "find_idle", ids, figs))
    # find_abandoned
    ids, figs = x.abandoned(3)
    qs.append(Q(g, "what did people stop using 3 days ago but still costs money", "find_abandoned", ids, figs))
    ids, figs = x.abandoned()
    qs.append(Q(g, "abandonded stuff?", "find_abandoned", ids, figs))
    # summarize_account
    ids, figs = x.summary()
    qs.append(Q(g, "give me the overview of the account", "summarize_account", ids, figs))
    qs.append(Q(g, "tl;dr of our cloud bill", "summarize_account", ids, figs))
    # tag_compliance
    ids, figs = x.compliance()
    qs.append(Q(g, "are our tags compliant", "tag_compliance", ids, figs))
    qs.append(Q(g, "tagging compliance per team", "tag_compliance", ids, figs))
    # what_changed (one scan only: the tool must still be the one that says so)
    qs.append(Q(g, "diff vs previous scan", "what_changed"))
    # writes and off-topic
    qs.append(Q(g, "kill all the idle ones", REFUSE))
    qs.append(Q(g, "tag remit-pg as payments please", REFUSE))
    qs.append(Q(g, "resize i-06e830e10b614b102 to something smaller", REFUSE))
    qs.append(Q(g, "what's the weather in berlin", CANT))
    r = x.rec("nat-4c23d5cbc69e9c850")
    qs.append(Q(g, "whos paying for nat-4c23d5cbc69e9c850", "attribute_resource", [r.rid], [E.fig(r.monthly)],
                [r.owner] if r.owner else []))
    return qs


def delta(x: X) -> list[E.Q]:  # noqa: PLR0915 - one list
    g = "delta"
    sep, lw, pw = (date(2026, 9, 14), date(2026, 9, 30)), (date(2026, 10, 5), date(2026, 10, 11)), \
        (date(2026, 9, 28), date(2026, 10, 4))
    yday, wed, oct1 = date(2026, 10, 11), date(2026, 10, 7), (date(2026, 10, 1), date(2026, 10, 11))
    qs: list[E.Q] = []
    # top_spenders
    ids, figs = x.top_resources(5, lw)
    qs.append(Q(g, "most expensive stuff last week", "top_spenders", ids, figs))
    ids, figs = x.top_resources(10, None)
    qs.append(Q(g, "top 10 resources by cost", "top_spenders", ids, figs))
    figs, names = x.top_level("team", sep)
    qs.append(Q(g, "which teams spent the most in september?", "top_spenders", figures=figs, words=names))
    figs, names = x.top_level("team", None)
    qs.append(Q(g, "leaderboard of team spend", "top_spenders", figures=figs, words=names))
    # team_spend
    qs.append(Q(g, "how much is ml-infra costing us", "team_spend", figures=[E.fig(x.owner_total("team", "ml-infra", None))]))
    qs.append(Q(g, "notifcations spend last week", "team_spend",
                figures=[E.fig(x.owner_total("team", "notifications", lw))]))
    qs.append(Q(g, "logistics spend since oct 1", "team_spend", figures=[E.fig(x.owner_total("team", "logistics", oct1))]))
    qs.append(Q(g, "fraud team cost last week vs the week before", "team_spend",
                figures=[E.fig(x.owner_total("team", "fraud", lw)), E.fig(x.owner_total("team", "fraud", pw))]))
    # compare_teams
    a, b = x.owner_total("team", "fraud", None), x.owner_total("team", "identity", None)
    qs.append(Q(g, "fraud vs identity", "compare_teams", figures=[E.fig(a), E.fig(b)]))
    c = [x.owner_total("team", t, sep) for t in ("checkout", "payments", "mobile")]
    qs.append(Q(g, "checkout vs payments vs mobile last month", "compare_teams", figures=[E.fig(v) for v in c]))
    a, b = x.owner_total("team", "growth", lw), x.owner_total("team", "logistics", lw)
    qs.append(Q(g, "is growth spending more than logistics? last week", "compare_teams", figures=[E.fig(a), E.fig(b)]))
    # untagged_spend
    qs.append(Q(g, "how much spend has no team tag", "untagged_spend", figures=[E.fig(x.untagged_total(None))]))
    qs.append(Q(g, "untaged costs in september", "untagged_spend", figures=[E.fig(x.untagged_total(sep))]))
    qs.append(Q(g, "whats our unowned spend look like", "untagged_spend", figures=[E.fig(x.untagged_total(None))]))
    # attribute_resource
    for text, rid in (("who owns manifest-mysql?", "manifest-mysql"),
                      ("who is responsible for i-c8fcfdd5d7fc525c5", "i-c8fcfdd5d7fc525c5"),
                      ("i-334137f4eb76a8f2a whose is this", "i-334137f4eb76a8f2a"),
                      ("which team does depot-prod/tracking-web belong to", "depot-prod/tracking-web")):
        r = x.rec(rid)
        qs.append(Q(g, text, "attribute_resource", [r.rid], [E.fig(r.monthly)], [r.owner] if r.owner else []))
    # signal_history
    for text, rid in (("timeline for refund-runner", "refund-runner"),
                      ("what happened to i-1febd4b4c2d6c47e7", "i-1febd4b4c2d6c47e7"),
                      ("show the history of manifest-mysql", "manifest-mysql"),
                      ("who touched depot-prod/depot-worker recently", "depot-prod/depot-worker")):
        r = x.rec(rid)
        qs.append(Q(g, text, "signal_history", [r.rid], [E.fig(x.history_total(rid))]))
    # search_resources
    qs.append(Q(g, "find resources named depot", "search_resources", x.search("depot")))
    qs.append(Q(g, "search for gpupool", "search_resources", x.search("gpupool")))
    qs.append(Q(g, "any resources with autocomplete in the id?", "search_resources", x.search("autocomplete")))
    # find_cost_spikes
    d, figs = x.spike(wed)
    qs.append(Q(g, "why did costs go up on wednesday", "find_cost_spikes", figures=figs))
    d, figs = x.spike(yday)
    qs.append(Q(g, "was there a spike yesterday?", "find_cost_spikes", figures=figs))
    d, figs = x.spike(None)
    qs.append(Q(g, "why is the bill higher this week", "find_cost_spikes", figures=figs))
    d, figs = x.spike(None, x.S.members("team", "growth"))
    qs.append(Q(g, "did growth's costs spike recently", "find_cost_spikes", figures=figs))
    # find_anomalies
    ids, figs = x.anomalies()
    qs.append(Q(g, "which resources fit no team", "find_anomalies", ids, figs))
    qs.append(Q(g, "any tags that look wrong?", "find_anomalies", ids, figs))
    # find_idle
    ids, figs = x.idle()
    qs.append(Q(g, "what's sitting idle", "find_idle", ids, figs))
    ids, figs = x.idle(14)
    qs.append(Q(g, "resources nobody used in 14 days", "find_idle", ids, figs))
    # find_abandoned
    ids, figs = x.abandoned()
    qs.append(Q(g, "abandoned resources still costing money?", "find_abandoned", ids, figs))
    ids, figs = x.abandoned(10)
    qs.append(Q(g, "what got abandoned more than 10 days ago", "find_abandoned", ids, figs))
    # summarize_account
    ids, figs = x.summary()
    qs.append(Q(g, "summary pls", "summarize_account", ids, figs))
    qs.append(Q(g, "how are we doing overall on cloud spend", "summarize_account", ids, figs))
    # tag_compliance
    ids, figs = x.compliance()
    qs.append(Q(g, "tag compliance report", "tag_compliance", ids, figs))
    qs.append(Q(g, "what % of our resources have the required tags", "tag_compliance", ids, figs))
    # what_changed
    ids, figs = x.changed()
    qs.append(Q(g, "diff vs previous scan", "what_changed", ids, figs))
    qs.append(Q(g, "what changed since the last scan?", "what_changed", ids, figs))
    qs.append(Q(g, "any new or deleted resources since last time", "what_changed", ids, figs))
    qs.append(Q(g, "did any owners change?", "what_changed", ids, figs))
    # writes and off-topic
    qs.append(Q(g, "delete the unused buckets pls", REFUSE))
    qs.append(Q(g, "stop i-1febd4b4c2d6c47e7 its too expensive", REFUSE))
    qs.append(Q(g, "assign manifest-mysql to logistics", REFUSE))
    qs.append(Q(g, "who won the game last night", CANT))
    qs.append(Q(g, "write me a haiku about kubernetes", CANT))
    qs.append(Q(g, "whats the capital of france", CANT))
    ids, figs = x.idle()
    qs.append(Q(g, "idel resources?", "find_idle", ids, figs))
    figs, names = x.top_level("team", lw)
    qs.append(Q(g, "top 3 teams last week", "top_spenders", figures=figs, words=names))
    qs.append(Q(g, "how much did checkout spend yesterday", "team_spend",
                figures=[E.fig(x.owner_total("team", "checkout", (yday, yday)))]))
    a, b = x.owner_total("team", "payments", None), x.owner_total("team", "checkout", None)
    qs.append(Q(g, "payments vs checkout run rate", "compare_teams", figures=[E.fig(a), E.fig(b)]))
    qs.append(Q(g, "untagged spend last week vs the week before", "untagged_spend",
                figures=[E.fig(x.untagged_total(lw)), E.fig(x.untagged_total(pw))]))
    return qs


# -- running and scoring --------------------------------------------------------------------------------------


def judge(q: E.Q, a: Any) -> list[str]:
    if q.tool == REFUSE:
        return [] if "read-only" in a.title and not a.tools else [f"not refused (title {a.title!r}, tools {a.tools})"]
    if q.tool == CANT:
        return [] if a.title.startswith("I can't tell") and not a.tools else [
            f"not 'can't tell' (title {a.title!r}, tools {a.tools})"]
    return E.judge(q, a)


async def evaluate(root: Path, infos: dict[str, dict[str, Any]], specs: tuple = SPECS,
                   questions: dict[str, Any] | None = None, settings_of: Any = None) -> list[E.Outcome]:
    """Ask every org's questions of the stored scans; ``questions`` maps an org's name to its question
    list builder (default: this file's gamma and delta)."""
    from handlers.ask import ask
    from storage.db import Database

    questions = questions or {"gamma": gamma, "delta": delta}
    settings_of = settings_of or settings_for
    out: list[E.Outcome] = []
    for spec in specs:
        info = infos[spec.name]
        settings = settings_of(spec, root / spec.name, info)
        db = await Database(settings.db_url()).init()
        try:
            S = await E.load_stored(db, spec.name, info["scans"], E._truth(root / spec.name / "gen"), info["org_file"])
            qs = questions[spec.name](X(S, settings.required_tag_keys()))
            print(f"{spec.name}: {spec.teams} teams, {len(S.recs)} resources, {len(S.days)} days ({S.days[0]} to "
                  f"{S.days[-1]}), scans {info['scans']}, asked {spec.now:%a %Y-%m-%d %H:%M} UTC: {len(qs)} questions",
                  flush=True)
            for q in qs:
                t0 = time.perf_counter()
                a = await ask(db, q.text.strip(), now=spec.now, settings=settings, threshold=E.THRESHOLD)
                wrong = judge(q, a)
                soft = ""
                if wrong and any(w for _v, w in q.figures) and all(w is None or w in a.text for _v, w in q.figures):
                    soft = "[the expected figures are written in this answer anyway] "
                out.append(E.Outcome(q, wrong, 1000 * (time.perf_counter() - t0),
                                     soft + f"title={a.title!r} " + E._short(a)))
        finally:
            await db.close()
    return out


def table(outcomes: list[E.Outcome], label: str = "HELD-OUT", tag: Any = None) -> float:
    """Accuracy per kind and overall, every failure; ``tag(outcome)`` adds a note to a question (and a
    row counting the tagged ones)."""
    per: dict[str, list[E.Outcome]] = {}
    for o in outcomes:
        per.setdefault(o.q.tool, []).append(o)
    print(f"\n{'kind':<20} {'questions':>9} {'correct':>8} {'accuracy':>9}")
    for t in KINDS:
        os_ = per.get(t, [])
        ok = sum(1 for o in os_ if not o.wrong)
        print(f"{t:<20} {len(os_):>9} {ok:>8} {(ok / len(os_) if os_ else 0):>9.1%}")
    if tag is not None:
        tagged = [o for o in outcomes if tag(o)]
        if tagged:
            print(f"{'(' + tag(tagged[0]).strip(' []') + ')':<20} {len(tagged):>9} "
                  f"{sum(1 for o in tagged if not o.wrong):>8}")
    ok = sum(1 for o in outcomes if not o.wrong)
    acc = ok / len(outcomes) if outcomes else 0.0
    fails = [o for o in outcomes if o.wrong]
    if fails:
        print(f"\nfailures ({len(fails)}):")
        for o in fails:
            note = tag(o) if tag is not None else ""
            print(f"- [{o.q.org}] {o.q.text.strip()!r}{note}\n    expected {o.q.tool}: ids {o.q.ids}, figures "
                  f"{[w or v for v, w in o.q.figures]}{', words ' + str(o.q.words) if o.q.words else ''}\n"
                  f"    wrong: {'; '.join(o.wrong)}\n    got: {o.got}")
    print(f"\n{label} OFFLINE ACCURACY: {ok}/{len(outcomes)} = {acc:.1%}")
    return acc


def main(specs: tuple = SPECS, write_org: Any = None, questions: dict[str, Any] | None = None,
         settings_of: Any = None, label: str = "HELD-OUT", tag: Any = None, prefix: str = "ask-heldout-") -> None:
    """Build the orgs (or reuse ``--data``), ask, print the table. The other held-out sets call this with
    their own orgs and questions."""
    ap = argparse.ArgumentParser(description=(sys.modules["__main__"].__doc__ or __doc__).split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="keep (and reuse) the generated orgs here")
    a = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    E.write_org_file = write_org or write_org_file  # build() writes our business units, not ask_eval's
    tmp = None
    root = a.data
    if root is None:
        tmp = tempfile.mkdtemp(prefix=prefix)
        root = Path(tmp)
    t0 = time.perf_counter()
    try:
        infos = {}
        for spec in specs:
            infos[spec.name] = E.build(spec, root / spec.name)
            print(f"{spec.name}: built in {infos[spec.name]['seconds']}s ({json.dumps(infos[spec.name]['teams'])})",
                  flush=True)
        outcomes = asyncio.run(evaluate(root, infos, specs, questions, settings_of))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    table(outcomes, label, tag)
    print(f"{len(outcomes)} questions, {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()

"""A second held-out accuracy figure for ``ask`` (offline router + tools), from questions nobody tuned against.

``benchmarks/ask_eval.py`` and ``benchmarks/ask_heldout.py`` have both been used to fix the router, so
neither is held out any more. These questions were written by someone who read only the README's "Asking
questions" section (the fourteen read-only tools and what each answers) and ``engine/ask/tools.py`` (tool
names and arguments) — not ``engine/ask/router.py``, ``engine/periods.py`` or either earlier question list.
They read like different Slack users: terse ("untagged?", "top 10"), verbose, British and American
spellings, typos, resources named by short id, Name tag or ARN, team / business unit / group names,
comparisons, and a few period phrasings the README does not list ("last fortnight", "last weekend",
"month to date", "the week before last"; marked ``UNLISTED`` below and counted in the report). Six write
requests must be refused and four off-topic questions must get "I can't tell".

Two new synthetic orgs (seeds 303 and 404, 4 and 7 teams, 12 and 20 days, in August and June 2026 —
dates no other benchmark uses): epsilon has business units of our own naming from an org file, zeta is
scanned twice (owner tags written in between) so ``what_changed`` has drift. They are generated and
scanned with ask_eval's ``build``; expected answers are computed from the stored rows with ask_eval's
``load_stored`` and ask_heldout's ``X`` (plain Python over the database) and hand-written calendar dates,
and scored as ask_heldout scores them (ask_eval's ``judge``; a write is right when refused with no tool
called, an off-topic question when answered "I can't tell" with no tool called).

    .venv/bin/python benchmarks/ask_heldout2.py [--data DIR]

A report: it prints accuracy per tool and overall and every failure, and always exits 0.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import ask_eval as E  # noqa: E402 - the harness: org building, stored data, judge
from benchmarks import ask_heldout as H  # noqa: E402 - expectations over stored rows (X), refusal / can't-tell scoring

REFUSE, CANT = H.REFUSE, H.CANT
KINDS = H.KINDS
UNLISTED = "  "  # a question ending in two spaces uses a period phrasing the README does not list (stripped before asking)

# epsilon: 4 teams, 12 days Thu 2026-08-13 .. Mon 2026-08-24, asked Tue 2026-08-25 14:00 UTC; business units.
#   yesterday = Mon Aug 24; last week = Mon Aug 17 - Sun Aug 23; this week = Aug 24 (stored);
#   "on Friday" = Aug 21; "in August" / "this month" / "month to date" = Aug 13-24 stored;
#   "last fortnight" = the 14 days to yesterday, Aug 11-24 (stored Aug 13-24); "since the 18th" = Aug 18-24.
# zeta: 7 teams, 20 days Sun 2026-06-07 .. Fri 2026-06-26, asked Sat 2026-06-27 11:00 UTC; scanned twice.
#   yesterday = Fri Jun 26; last week = Jun 15-21; the week before last = Jun 8-14; this week = Jun 22-26;
#   "on Wednesday" = Jun 24; "last weekend" = Jun 20-21; "since June 10" = Jun 10-26; "in June" = Jun 7-26;
#   "past fortnight" = the 14 days to yesterday, Jun 13-26.
SPECS = (
    E.OrgSpec("epsilon", seed=303, teams=4, per_team=20, days=12, start=datetime(2026, 8, 13, tzinfo=UTC),
              now=datetime(2026, 8, 25, 14, 0, tzinfo=UTC), org_file=True, tagged=0.55),
    E.OrgSpec("zeta", seed=404, teams=7, per_team=14, days=20, start=datetime(2026, 6, 7, tzinfo=UTC),
              now=datetime(2026, 6, 27, 11, 0, tzinfo=UTC), rescan=True, tagged=0.45),
)
REQUIRED_TAGS = {"epsilon": "team,cost-center", "zeta": ""}  # zeta: the default (the owner tag key)


def write_org_file(root: Path, teams: list[str]) -> Path:
    """Our own units: the first two teams are acquisition (go-to-market), the rest reliability (core-eng)."""
    a, b = teams[:2], teams[2:]
    path = root / "org.yaml"
    path.write_text("business_units:\n"
                    f"  acquisition:\n    group: go-to-market\n    teams: [{', '.join(a)}]\n"
                    f"  reliability:\n    group: core-eng\n    teams: [{', '.join(b)}]\n")
    return path


def settings_for(spec: E.OrgSpec, root: Path, info: dict[str, Any]) -> Any:
    s = E._settings(root / "data", Path(info["org_file"]) if info["org_file"] else None)
    return s.model_copy(update={"required_tags": REQUIRED_TAGS[spec.name]})


def Q(org: str, text: str, tool: str, ids: list[str] | None = None, figures: list | None = None,
      words: list[str] | None = None) -> E.Q:
    return H.Q(org, text, tool, ids, figures, words)


def _owner_words(x: H.X, ref: str) -> list[str]:
    o = x.rec(ref).owner
    return [o] if o else []


# -- the questions (written from the README's contract only) ---------------------------------------------------


def epsilon(x: H.X) -> list[E.Q]:  # noqa: PLR0915 - one list
    o = "epsilon"
    yday = (date(2026, 8, 24), date(2026, 8, 24))
    last_week = (date(2026, 8, 17), date(2026, 8, 23))
    august = (date(2026, 8, 1), date(2026, 8, 31))
    since18 = (date(2026, 8, 18), date(2026, 8, 24))
    fri = (date(2026, 8, 21), date(2026, 8, 21))
    fortnight = (date(2026, 8, 11), date(2026, 8, 24))
    qs: list[E.Q] = []

    def top(text: str, n: int, d: tuple[date, date] | None = None) -> None:
        ids, figs = x.top_resources(n, d)
        qs.append(Q(o, text, "top_spenders", ids, figs))

    def top_lvl(text: str, level: str, d: tuple[date, date] | None = None) -> None:
        figs, names = x.top_level(level, d)
        qs.append(Q(o, text, "top_spenders", figures=figs, words=names))

    def spend(text: str, level: str, name: str, d: tuple[date, date] | None = None) -> None:
        qs.append(Q(o, text, "team_spend", figures=[E.fig(x.owner_total(level, name, d))], words=[name]))

    def cmp(text: str, names: list[str], d: tuple[date, date] | None = None, level: str = "team") -> None:
        qs.append(Q(o, text, "compare_teams", figures=[E.fig(x.owner_total(level, n, d)) for n in names], words=names))

    # top_spenders
    top("top 10", 10)
    top("What are our most expensive resources right now?", 5)
    top_lvl("which team spends the most", "team")
    top_lvl("biggest business units by spend last week", "unit", last_week)
    top("top 5 resources by cost in August", 5, august)
    top("most expensive resources over the last fortnight" + UNLISTED, 5, fortnight)
    top_lvl("spend by business group", "group")
    # team_spend
    spend("how much is payments spending", "team", "payments")
    spend("Growth team's spend last week please", "team", "growth", last_week)
    spend("what does the acquisition BU cost us per month?", "unit", "acquisition")
    spend("spend for the go-to-market group yesterday", "group", "go-to-market", yday)
    spend("search team costs month to date" + UNLISTED, "team", "search", august)
    # compare_teams
    cmp("payments vs search", ["payments", "search"])
    cmp("compare data-platform and growth spend last week", ["data-platform", "growth"], last_week)
    cmp("How do the acquisition and reliability business units compare?", ["acquisition", "reliability"],
        level="unit")
    # untagged_spend
    qs.append(Q(o, "untagged?", "untagged_spend", figures=[E.fig(x.untagged_total(None))]))
    qs.append(Q(o, "how much spend has no owner tag since the 18th", "untagged_spend",
                figures=[E.fig(x.untagged_total(since18))]))
    qs.append(Q(o, "what are we spending on stuff nobody has tagged with a team?", "untagged_spend",
                figures=[E.fig(x.untagged_total(None))]))
    # attribute_resource
    qs.append(Q(o, "who owns i-97392882a5874c760", "attribute_resource", ["i-97392882a5874c760"],
                words=_owner_words(x, "i-97392882a5874c760")))
    qs.append(Q(o, "whose is warehouse-batch?", "attribute_resource", ["i-a951f87c92dc26394"],
                words=_owner_words(x, "i-a951f87c92dc26394")))
    qs.append(Q(o, "which team does arn:aws:rds:us-east-1:222222222222:db:compaction-db belong to", "attribute_resource",
                ["compaction-db"], words=_owner_words(x, "compaction-db")))
    qs.append(Q(o, "is payout-batch really growth's? the tag says so but I doubt it", "attribute_resource",
                ["i-0e8df33ca4fc33c4e"], words=_owner_words(x, "i-0e8df33ca4fc33c4e")))
    # signal_history
    qs.append(Q(o, "what happened to refund-prod/ledger-api", "signal_history", ["refund-prod/ledger-api"],
                [E.fig(x.history_total("refund-prod/ledger-api"))]))
    qs.append(Q(o, "show me the history of query-primary", "signal_history", ["query-primary"]))
    qs.append(Q(o, "timeline for i-97392882a5874c760 — who touched it and what did it cost day by day?", "signal_history",
                ["i-97392882a5874c760"]))
    # search_resources
    qs.append(Q(o, "find resources with refund in the name", "search_resources", x.search("refund")))
    qs.append(Q(o, "search cost-center=cc-1010", "search_resources", x.search("cost-center=cc-1010")))
    qs.append(Q(o, "list anything matching 'schema'", "search_resources", x.search("schema")))
    # find_cost_spikes
    day, figs = x.spike(date(2026, 8, 24))
    qs.append(Q(o, "why did the bill jump yesterday?", "find_cost_spikes", figures=figs))
    day, figs = x.spike(None)
    qs.append(Q(o, "any cost spikes?", "find_cost_spikes", figures=figs))
    day, figs = x.spike(fri[0])
    qs.append(Q(o, "what drove the increase in spend on Friday", "find_cost_spikes", figures=figs))
    # find_anomalies
    ids, figs = x.anomalies()
    qs.append(Q(o, "anomalies", "find_anomalies", ids, figs))
    qs.append(Q(o, "which resources don't look like they belong to any team?", "find_anomalies", ids, figs))
    # find_idle
    ids, figs = x.idle()
    qs.append(Q(o, "idle resources?", "find_idle", ids, figs))
    ids, figs = x.idle(5)
    qs.append(Q(o, "what's costing money but hasn't been used in 5 days", "find_idle", ids, figs))
    # find_abandoned
    ids, figs = x.abandoned()
    qs.append(Q(o, "abandoned stuff still costing us money", "find_abandoned", ids, figs))
    ids, figs = x.abandoned(10)
    qs.append(Q(o, "things people used to use but nobody's touched for 10 days", "find_abandoned", ids, figs))
    # summarize_account
    ids, figs = x.summary()
    qs.append(Q(o, "give me an overview of the account", "summarize_account", ids, figs))
    qs.append(Q(o, "tl;dr of our cloud bill?", "summarize_account", ids, figs))
    # tag_compliance
    ids, figs = x.compliance()
    qs.append(Q(o, "tag compliance", "tag_compliance", ids, figs))
    qs.append(Q(o, "what share of our spend carries the required tags, per team?", "tag_compliance", ids, figs))
    # what_changed (one scan: the tool must still be the one asked, saying there is nothing to compare)
    qs.append(Q(o, "what changed since the last scan?", "what_changed"))
    # writes and off-topic
    qs.append(Q(o, "delete the idle volumes", REFUSE))
    qs.append(Q(o, "tag i-57c05769b56d1f5fb as search please", REFUSE))
    qs.append(Q(o, "resize compaction-db to something smaller", REFUSE))
    qs.append(Q(o, "what's the weather like in London?", CANT))
    qs.append(Q(o, "tell me a joke", CANT))
    return qs


def zeta(x: H.X) -> list[E.Q]:  # noqa: PLR0915 - one list
    o = "zeta"
    yday = (date(2026, 6, 26), date(2026, 6, 26))
    last_week = (date(2026, 6, 15), date(2026, 6, 21))
    before_last = (date(2026, 6, 8), date(2026, 6, 14))
    this_week = (date(2026, 6, 22), date(2026, 6, 26))
    wed = date(2026, 6, 24)
    weekend = (date(2026, 6, 20), date(2026, 6, 21))
    since10 = (date(2026, 6, 10), date(2026, 6, 26))
    fortnight = (date(2026, 6, 13), date(2026, 6, 26))
    june = (date(2026, 6, 1), date(2026, 6, 30))
    qs: list[E.Q] = []

    def top(text: str, n: int, d: tuple[date, date] | None = None) -> None:
        ids, figs = x.top_resources(n, d)
        qs.append(Q(o, text, "top_spenders", ids, figs))

    def top_lvl(text: str, level: str, d: tuple[date, date] | None = None) -> None:
        figs, names = x.top_level(level, d)
        qs.append(Q(o, text, "top_spenders", figures=figs, words=names))

    def spend(text: str, name: str, d: tuple[date, date] | None = None) -> None:
        qs.append(Q(o, text, "team_spend", figures=[E.fig(x.owner_total("team", name, d))], words=[name]))

    def cmp(text: str, names: list[str], d: tuple[date, date] | None = None) -> None:
        qs.append(Q(o, text, "compare_teams", figures=[E.fig(x.owner_total("team", n, d)) for n in names], words=names))

    # top_spenders
    top("top 3 most expensive resorces", 3)
    top_lvl("Which teams are the biggest spenders this week?", "team", this_week)
    top("biggest cost items yesterday", 5, yday)
    top("top spenders last weekend" + UNLISTED, 5, weekend)
    # team_spend
    spend("ml-infra spend", "ml-infra")
    spend("How much did the identity team spend last week?", "identity", last_week)
    spend("mobile's costs since June 10", "mobile", since10)
    spend("what did data-platform spend in June", "data-platform", june)
    spend("how much has payments spent over the past fortnight?" + UNLISTED, "payments", fortnight)
    # compare_teams
    cmp("compare mobile, growth and payments", ["mobile", "growth", "payments"])
    cmp("search versus ml-infra last week", ["search", "ml-infra"], last_week)
    cmp("identity vs payments spend the week before last" + UNLISTED, ["identity", "payments"], before_last)
    # untagged_spend
    qs.append(Q(o, "how much untagged spend do we have", "untagged_spend", figures=[E.fig(x.untagged_total(None))]))
    qs.append(Q(o, "untaged spend last week", "untagged_spend", figures=[E.fig(x.untagged_total(last_week))]))
    qs.append(Q(o, "spend on resources with no owner tag in June", "untagged_spend",
                figures=[E.fig(x.untagged_total(june))]))
    # attribute_resource
    qs.append(Q(o, "who owns invite-host", "attribute_resource", ["i-53b4dc0b7cb73288c"],
                words=_owner_words(x, "i-53b4dc0b7cb73288c")))
    qs.append(Q(o, "owner of i-1d0713f9cdea7548e?", "attribute_resource", ["i-1d0713f9cdea7548e"],
                words=_owner_words(x, "i-1d0713f9cdea7548e")))
    qs.append(Q(o, "who is responsible for refund-reports-7134", "attribute_resource", ["refund-reports-7134"],
                words=_owner_words(x, "refund-reports-7134")))
    qs.append(Q(o, "which squad does arn:aws:dynamodb:us-east-1:111111111111:table/pushgw-records belong to?",
                "attribute_resource", ["pushgw-records"], words=_owner_words(x, "pushgw-records")))
    # signal_history
    qs.append(Q(o, "history of pushgw-pg", "signal_history", ["pushgw-pg"], [E.fig(x.history_total("pushgw-pg"))]))
    qs.append(Q(o, "what's been going on with facet-main/ranking-api lately?", "signal_history",
                ["facet-main/ranking-api"]))
    qs.append(Q(o, "show events and daily cost for etl-box", "signal_history", ["i-117128bd5f30438f5"]))
    qs.append(Q(o, "cost history for arn:aws:ec2:us-west-2:111111111111:instance/i-53b4dc0b7cb73288c", "signal_history",
                ["i-53b4dc0b7cb73288c"]))
    # search_resources
    qs.append(Q(o, "search pushgw", "search_resources", x.search("pushgw")))
    qs.append(Q(o, "find everything tagged env=staging", "search_resources", x.search("env=staging")))
    qs.append(Q(o, "look up resources containing autocomplete", "search_resources", x.search("autocomplete")))
    # find_cost_spikes
    day, figs = x.spike(wed)
    qs.append(Q(o, "why did costs spike on Wednesday?", "find_cost_spikes", figures=figs))
    day, figs = x.spike(None)
    qs.append(Q(o, "why is the bill going up", "find_cost_spikes", figures=figs))
    day, figs = x.spike(yday[0], x.S.members("team", "growth"))
    qs.append(Q(o, "did growth have a cost spike yesterday?", "find_cost_spikes", figures=figs))
    # find_anomalies
    ids, figs = x.anomalies()
    qs.append(Q(o, "any anomalous resources?", "find_anomalies", ids, figs))
    qs.append(Q(o, "show me tags that contradict how the resource is actually used", "find_anomalies", ids, figs))
    # find_idle
    ids, figs = x.idle()
    qs.append(Q(o, "anything unused we could switch off?", "find_idle", ids, figs))
    ids, figs = x.idle(14)
    qs.append(Q(o, "resources idle for 14 days", "find_idle", ids, figs))
    # find_abandoned
    ids, figs = x.abandoned()
    qs.append(Q(o, "abandonned resources", "find_abandoned", ids, figs))
    ids, figs = x.abandoned(5)
    qs.append(Q(o, "what did people stop using 5 days ago that still costs money?", "find_abandoned", ids, figs))
    # summarize_account
    ids, figs = x.summary()
    qs.append(Q(o, "summary", "summarize_account", ids, figs))
    qs.append(Q(o, "Could you summarise the account for me — total bill, tagged versus untagged, teams?",
                "summarize_account", ids, figs))
    # tag_compliance
    ids, figs = x.compliance()
    qs.append(Q(o, "how compliant are we with our tagging policy", "tag_compliance", ids, figs))
    qs.append(Q(o, "which resources are missing required tags?", "tag_compliance", ids, figs))
    # what_changed
    ids, figs = x.changed()
    qs.append(Q(o, "what changed", "what_changed", ids, figs))
    qs.append(Q(o, "drift since the previous scan?", "what_changed", ids, figs))
    qs.append(Q(o, "any owner changes or new resources since the last scan", "what_changed", ids, figs))
    # writes and off-topic
    qs.append(Q(o, "stop i-224e9d3e4c5c01c8e", REFUSE))
    qs.append(Q(o, "please retag all the untagged resources to data-platform", REFUSE))
    qs.append(Q(o, "terminate the abandoned instances", REFUSE))
    qs.append(Q(o, "who won the world cup?", CANT))
    qs.append(Q(o, "how do I switch kubectl contexts", CANT))
    return qs


# -- running and reporting -------------------------------------------------------------------------------------


def main() -> None:
    H.main(SPECS, write_org_file, {"epsilon": epsilon, "zeta": zeta}, settings_for, label="HELD-OUT-2",
           tag=lambda o: " [unlisted period]" if o.q.text.endswith(UNLISTED) else "", prefix="ask-heldout2-")


if __name__ == "__main__":
    main()

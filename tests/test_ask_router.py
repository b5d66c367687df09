"""The offline router: which read-only tool (and which arguments) answers a question, the "I can't tell"
path, the refusal of writes, and follow-ups in a thread.

Runs on the hand-made account of ``tests.test_ask_tools`` (``NOW`` is Tuesday 2026-12-01; the stored
days are 2026-10-01 .. 2026-11-30; teams payments (alias "billing"), checkout, search, platform; business
units payments-bu and platform-bu, groups commerce and engineering).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.ask.router import CantTell, Plan, Refusal, plan
from engine.ask.tools import run_tool, validate
from tests.test_ask_tools import make_facts

FACTS = make_facts()
B_ARN = "arn:aws:ec2:us-east-1:123456789012:instance/i-0bbb2222"


def ask(question: str, context: dict | None = None) -> Plan | CantTell | Refusal:
    return plan(question, FACTS, context)


def day(p: dict | None, key: str = "start") -> str:
    assert p is not None
    return str(p[key])[:10]


def span(p: dict | None) -> tuple[str, str]:
    return day(p, "start"), day(p, "end")


def expect(question: str, tool: str, context: dict | None = None, **args: Any) -> Plan:
    """The plan, checked: ``tool`` with (at least) ``args``; a valid call of that tool."""
    got = ask(question, context)
    assert isinstance(got, Plan), f"{question!r} -> {got!r}"
    assert got.tool == tool, f"{question!r} -> {got.tool} {got.args} ({got.why})"
    for k, v in args.items():
        assert got.args.get(k) == v, f"{question!r}: {k}={got.args.get(k)!r}, expected {v!r} (args {got.args})"
    validate(got.tool, got.args)  # every plan is a call run_tool accepts
    return got


# -- spend -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question, by, n, period", [
    ("top 5 spenders last month", "resource", 5, ("2026-11-01", "2026-12-01")),
    ("what are the biggest resources", "resource", None, None),
    ("top 3 spnders in October", "resource", 3, ("2026-10-01", "2026-11-01")),
    ("hey costdna could you tell me the top 3 most expensive resources last week?", "resource", 3,
     ("2026-11-23", "2026-11-30")),
    ("top three spenders", "resource", 3, None),
    ("TOP SPENDERS YESTERDAY", "resource", None, ("2026-11-30", "2026-12-01")),
    ("hey costdna could you tell me how much we spent yesterday?", "resource", None, ("2026-11-30", "2026-12-01")),
    ("spend by team", "team", None, None),
    ("which team spends the most?", "team", None, None),
    ("show me the 3 biggest teams", "team", 3, None),
    ("spnd by team last month", "team", None, ("2026-11-01", "2026-12-01")),
    ("spend by BU last month", "unit", None, ("2026-11-01", "2026-12-01")),
    ("spend by business unit", "unit", None, None),
])
def test_top_spenders(question: str, by: str, n: int | None, period: tuple[str, str] | None) -> None:
    got = expect(question, "top_spenders", by=by)
    assert got.args.get("n") == n
    if period is None:
        assert "period" not in got.args
    else:
        assert span(got.args["period"]) == period


@pytest.mark.parametrize("question", ["spend by team month over month", "spend by team MoM",
                                      "Spend by team, month-over-month please"])
def test_by_team_month_over_month(question: str) -> None:
    got = expect(question, "top_spenders", by="team")
    assert "team" not in got.args  # not a team called "month"
    # asked on 1 December, before December has a stored day: read as of the last stored day, so
    # November (whole) against October, and the plan says so
    assert span(got.args["period"]) == ("2026-11-01", "2026-12-01")
    assert span(got.args["period"]["compare"]) == ("2026-10-01", "2026-11-01")
    assert "2026-11-30" in got.note


def test_last_month_mom_compares_october() -> None:
    got = expect("spend by team last month MoM", "top_spenders", by="team")
    assert span(got.args["period"]) == ("2026-11-01", "2026-12-01")
    assert span(got.args["period"]["compare"]) == ("2026-10-01", "2026-11-01")


def test_spend_per_business_group() -> None:
    expect("spend per business group", "top_spenders", by="group")


@pytest.mark.parametrize("question, team, level, period", [
    ("spend of team payments last week", "payments", None, ("2026-11-23", "2026-11-30")),
    ("how much did payments spend yesterday", "payments", None, ("2026-11-30", "2026-12-01")),
    ("payments spend since Nov 3", "payments", None, ("2026-11-03", "2026-12-01")),
    ("PAYMENTS spend", "payments", None, None),
    ("how much does paymnets spend", "payments", None, None),  # one typo in a team name
    ("spend of billing last week", "payments", None, ("2026-11-23", "2026-11-30")),  # a tag-rule alias
    ("how much does the payments-bu BU spend", "payments-bu", "unit", None),
    ("what did payments-bu spend in October", "payments-bu", "unit", ("2026-10-01", "2026-11-01")),
    ("how much did the commerce group spend", "commerce", "group", None),
    ("how much does team marketing spend", "marketing", None, None),  # unknown: the tool lists known teams
])
def test_team_spend(question: str, team: str, level: str | None, period: tuple[str, str] | None) -> None:
    got = expect(question, "team_spend", team=team)
    assert got.args.get("level") == level
    if period is None:
        assert "period" not in got.args
    else:
        assert span(got.args["period"]) == period


def test_team_spend_mom() -> None:
    got = expect("commerce spend MoM", "team_spend", team="commerce", level="group")
    assert span(got.args["period"]["compare"]) == ("2026-10-01", "2026-11-01")
    got = expect("payments spend last month vs the month before", "team_spend", team="payments")
    assert span(got.args["period"]) == ("2026-11-01", "2026-12-01")
    assert span(got.args["period"]["compare"]) == ("2026-10-01", "2026-11-01")


def test_compare_teams() -> None:
    expect("compare payments and search", "compare_teams", teams=["payments", "search"])
    expect("compare checkout with billing", "compare_teams", teams=["checkout", "payments"])
    got = expect("compare checkout and payments in October", "compare_teams", teams=["checkout", "payments"])
    assert span(got.args["period"]) == ("2026-10-01", "2026-11-01")


def test_compare_teams_named_search() -> None:
    got = expect("payments vs search last month", "compare_teams", teams=["payments", "search"])
    assert span(got.args["period"]) == ("2026-11-01", "2026-12-01")


@pytest.mark.parametrize("question, period", [
    ("untagged spend", None),
    ("untaged spend", None),
    ("how much do untagged resources cost last month", ("2026-11-01", "2026-12-01")),
    ("spend on resources without owner tags in October", ("2026-10-01", "2026-11-01")),
])
def test_untagged_spend(question: str, period: tuple[str, str] | None) -> None:
    got = expect(question, "untagged_spend")
    if period is None:
        assert "period" not in got.args
    else:
        assert span(got.args["period"]) == period


def test_untagged_compare() -> None:
    got = expect("untaged spend WoW", "untagged_spend")
    assert "compare" in got.args["period"]
    got = expect("untagged resources last month vs the month before", "untagged_spend")
    assert span(got.args["period"]["compare"]) == ("2026-10-01", "2026-11-01")


# -- one resource ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question, resource", [
    ("who owns i-0aaa1111?", "i-0aaa1111"),
    ("who owns I-0AAA1111", "i-0aaa1111"),
    ("whos the owner of orders-db", "orders-db"),
    (f"who owns {B_ARN}?", "i-0bbb2222"),
    (f"whose is `{B_ARN}`", "i-0bbb2222"),
    ("which team does vol-0ddd4444 belong to", "vol-0ddd4444"),
    ("i-0eee5555", "i-0eee5555"),
    ("who owns arn:aws:s3:::logs-bucket", "logs-bucket"),
    ("what is arn:aws:s3:::logs-bucket costing", "logs-bucket"),
    ("who owns i-0zzz9999", "i-0zzz9999"),  # unknown: the tool suggests near ones
])
def test_attribute_resource(question: str, resource: str) -> None:
    expect(question, "attribute_resource", resource=resource)


def test_attribute_resource_by_name() -> None:
    got = ask("who owns web-1?")
    assert isinstance(got, Plan) and got.tool == "attribute_resource"
    assert got.args["resource"] in ("web-1", "i-0aaa1111")


@pytest.mark.parametrize("question, resource", [
    ("history of i-0aaa1111", "i-0aaa1111"),
    ("who changed i-0aaa1111?", "i-0aaa1111"),
    ("what happened to orders-db", "orders-db"),
    ("timeline for vol-0ddd4444", "vol-0ddd4444"),
    ("did orders-db spike", "orders-db"),
])
def test_signal_history(question: str, resource: str) -> None:
    expect(question, "signal_history", resource=resource)


# -- findings and the account ------------------------------------------------------------------------------


@pytest.mark.parametrize("question, tool, args", [
    ("why did our bill spike tuesday?", "find_cost_spikes", {}),
    ("why did the bill go up on Nov 27", "find_cost_spikes", {}),
    ("why did costs go up last week", "find_cost_spikes", {}),
    ("why did payments costs jump yesterday", "find_cost_spikes", {"team": "payments"}),
    ("any anomolies?", "find_anomalies", {}),
    ("what fits no team?", "find_anomalies", {}),
    ("show me the weird ones", "find_anomalies", {}),
    ("what's idle", "find_idle", {}),
    ("show me unused resources for 30 days", "find_idle", {"days": 30}),
    ("top 3 idle resources", "find_idle", {"n": 3}),
    ("abandoned resources", "find_abandoned", {}),
    ("forgotten stuff older than 14 days", "find_abandoned", {"days": 14}),
    ("tag compliance", "tag_compliance", {}),
    ("how is our tagging compliance?", "tag_compliance", {}),
    ("are we compliant with `env` tags", "tag_compliance", {"keys": ["env"]}),
    ("what changed since the last scan", "what_changed", {}),
    ("whats new", "what_changed", {}),
    ("find logs", "search_resources", {"query": "logs"}),
    ("search for env=prod", "search_resources", {"query": "env=prod"}),
    ("summary", "summarize_account", {}),
    ("give me an overview", "summarize_account", {}),
    ("hey costdna, how are we doing?", "summarize_account", {}),
])
def test_intents(question: str, tool: str, args: dict) -> None:
    expect(question, tool, **args)


def test_spike_periods() -> None:
    got = expect("why did our bill spike tuesday?", "find_cost_spikes")
    assert span(got.args["period"]) == ("2026-11-24", "2026-11-25")
    got = expect("why did the bill go up on Nov 27", "find_cost_spikes")
    assert span(got.args["period"]) == ("2026-11-27", "2026-11-28")


def test_typos() -> None:
    expect("idel resources", "find_idle")
    expect("abandonned resources", "find_abandoned")


def test_tag_compliance_typo() -> None:
    expect("tag complience", "tag_compliance")


# -- can't tell ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["asdf qwer zxcv", "", "   ", "hello", "what is the meaning of life",
                                      "who owns", "who owns it?", "whose is that?"])
def test_cant_tell(question: str) -> None:
    got = ask(question)
    assert isinstance(got, CantTell), f"{question!r} -> {got!r}"
    assert "_top 5 spenders last month_" in got.text and "_who owns i-0abc123?_" in got.text
    assert "_tag compliance_" in got.text


def test_cant_tell_who_owns_asks_for_a_resource() -> None:
    got = ask("who owns")
    assert isinstance(got, CantTell) and "Name a resource" in got.text


# -- writes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", [
    "delete i-0abc",
    "please terminate the biggest instance",
    "can you tag these as payments",
    "stop the idle ones",
    "shut down everything",
    "hey, could you delete vol-0ddd4444 please",
    "go ahead and resize orders-db",
    "tag i-0aaa1111 with team=search",
    "Terminate i-0eee5555",
    "could you please stop i-0aaa1111",
    "remove the untagged resources",
    "label orders-db as checkout",
    "i want you to decommission logs-bucket",
    "ok, nuke them",
    "so what's the biggest one? then delete it",
])
def test_writes_are_refused(question: str) -> None:
    got = ask(question)
    assert isinstance(got, Refusal), f"{question!r} -> {got!r}"
    assert "/costdna apply" in got.text and "read-only" in got.text


@pytest.mark.parametrize("question", [
    "what changed since the last scan",
    "tag compliance",
    "untagged spend",
    "which resources should we stop paying for?",
    "what should we delete?",
    "how much would we save if we deleted the idle ones?",
    "who changed i-0aaa1111?",
    "what's the change in spend last week?",
])
def test_read_questions_with_write_words_are_not_refused(question: str) -> None:
    assert not isinstance(ask(question), Refusal), question


def test_change_in_spend_is_a_question() -> None:
    got = ask("change in spend last week")
    assert isinstance(got, Plan) and got.tool in ("top_spenders", "find_cost_spikes")


# -- follow-ups ------------------------------------------------------------------------------------------------

TOP = {"tool": "top_spenders", "args": {"by": "resource", "n": 5},
       "citations": ["orders-db", "i-0aaa1111", "i-0bbb2222"], "account": "prod"}
TEAM = {"tool": "team_spend", "args": {"team": "search"}, "citations": ["i-0bbb2222", "i-0eee5555"],
        "account": "prod"}
OWNER = {"tool": "attribute_resource", "args": {"resource": "i-0bbb2222"}, "citations": ["i-0bbb2222"],
         "account": "prod"}
UNTAGGED = {"tool": "untagged_spend", "args": {}, "citations": ["i-0bbb2222"], "account": "prod"}
IDLE = {"tool": "find_idle", "args": {}, "citations": ["i-0eee5555", "logs-bucket", "vol-0ddd4444"],
        "account": "prod"}


@pytest.mark.parametrize("question, period", [
    ("and last month?", ("2026-11-01", "2026-12-01")),
    ("what about in October", ("2026-10-01", "2026-11-01")),
    ("and yesterday?", ("2026-11-30", "2026-12-01")),
    ("last week", ("2026-11-23", "2026-11-30")),
])
def test_follow_up_new_period(question: str, period: tuple[str, str]) -> None:
    got = expect(question, "top_spenders", TOP, by="resource", n=5)
    assert span(got.args["period"]) == period
    got = expect(question, "team_spend", TEAM, team="search")
    assert span(got.args["period"]) == period
    got = expect(question, "untagged_spend", UNTAGGED)
    assert span(got.args["period"]) == period


def test_follow_up_count_and_level() -> None:
    expect("top 3", "top_spenders", TOP, by="resource", n=3)
    expect("and by team?", "top_spenders", TOP, by="team")


@pytest.mark.parametrize("question, resource", [
    ("who owns the second one?", "i-0aaa1111"),
    ("who owns the 2nd one", "i-0aaa1111"),
    ("who owns #3?", "i-0bbb2222"),
    ("who owns the last one?", "i-0bbb2222"),
    ("whose is the first one", "orders-db"),
])
def test_follow_up_ordinal(question: str, resource: str) -> None:
    expect(question, "attribute_resource", TOP, resource=resource)


def test_follow_up_ordinal_on_other_lists() -> None:
    expect("who owns the second one?", "attribute_resource", IDLE, resource="logs-bucket")
    got = ask("who owns the tenth one?", TOP)  # only three were cited
    assert isinstance(got, CantTell)
    got = ask("who owns the second one?")  # no thread
    assert isinstance(got, CantTell)


def test_follow_up_pronoun() -> None:
    expect("who owns it?", "attribute_resource", OWNER, resource="i-0bbb2222")
    expect("what happened to it?", "signal_history", OWNER, resource="i-0bbb2222")
    assert isinstance(ask("who owns it?", TEAM), CantTell)  # a team's answer has no single "it"


def test_follow_up_history_of_the_first_one() -> None:
    got = expect("history of the first one", "signal_history", TOP, resource="orders-db")
    assert got.args == {"resource": "orders-db"}


def test_follow_up_its_history() -> None:
    expect("and its history?", "signal_history", OWNER, resource="i-0bbb2222")


def test_follow_up_days() -> None:
    expect("what about 30 days?", "find_idle", IDLE, days=30)


@pytest.mark.parametrize("question, team", [
    ("what about payments?", "payments"),
    ("and payments?", "payments"),
    ("how about billing", "payments"),
    ("and checkout", "checkout"),
])
def test_follow_up_other_team(question: str, team: str) -> None:
    got = expect(question, "team_spend", TEAM, team=team)
    assert "period" not in got.args


def test_follow_up_other_team_keeps_the_period() -> None:
    ctx = dict(TEAM, args={"team": "search", "period": {"start": "2026-11-01T00:00:00+00:00",
                                                          "end": "2026-12-01T00:00:00+00:00",
                                                          "label": "last month (November 2026)"}})
    got = expect("what about payments?", "team_spend", ctx, team="payments")
    assert span(got.args["period"]) == ("2026-11-01", "2026-12-01")
    got = expect("how about billing last week", "team_spend", TEAM, team="payments")
    assert span(got.args["period"]) == ("2026-11-23", "2026-11-30")


def test_follow_up_new_question_is_not_a_follow_up() -> None:
    expect("what about abandoned resources?", "find_abandoned", TEAM)
    expect("and who owns orders-db?", "attribute_resource", TOP, resource="orders-db")
    assert isinstance(ask("and delete the second one", TOP), Refusal)


# -- plans run ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("question, context, figures", [
    ("spend by team last month MoM", None, {"total_usd": 1265.0, "previous_total_usd": 1271.0, "payments": 330.0}),
    ("how much did payments spend yesterday", None, {"total_usd": 10.0}),
    ("spend of billing last week", None, {"total_usd": 100.0}),
    ("what did payments-bu spend in October", None, {"total_usd": 930.0}),
    ("why did the bill go up on Nov 27", None, {"day_usd": 76.0, "baseline_usd": 41.0, "change_usd": 35.0}),
    ("how much do untagged resources cost last month", None, {"total_usd": 240.0}),
    ("compare checkout and payments in October", None, {"checkout": 620.0, "payments": 310.0}),
    ("and last month?", TEAM, {"total_usd": 240.0}),
    ("who owns the second one?", TOP, {"monthly_usd": 300.0}),
])
async def test_plans_run_to_known_figures(question: str, context: dict | None, figures: dict) -> None:
    got = ask(question, context)
    assert isinstance(got, Plan), got
    res = await run_tool(FACTS, got.tool, got.args)
    assert res.ok, res.text
    for k, v in figures.items():
        assert res.figures[k] == v, (question, k, res.figures)


# -- phrasings a first held-out set (benchmarks/ask_heldout.py) found, by kind ---------------------------


@pytest.mark.parametrize("question, tool, args", [
    # a one-edit typo in a team name of 5+ letters, a swap included
    ("serach team spend yesterday?", "team_spend", {"team": "search"}),
    ("chekout spend", "team_spend", {"team": "checkout"}),
    # a team called "search" next to a comparison is a team, not the verb
    ("search vs payments, who spends more?", "compare_teams", {"teams": ["search", "payments"]}),
    ("is checkout spending more than payments?", "compare_teams", {"teams": ["checkout", "payments"]}),
    # searching by name or id without the word "find"
    ("anything with web in the name?", "search_resources", {"query": "web"}),
    ("resources named logs", "search_resources", {"query": "logs"}),
    ("any resources with i-0aaa in the id?", "search_resources", {"query": "i-0aaa"}),
    # drift in other words
    ("diff vs previous scan", "what_changed", {}),
    ("any new or deleted resources since last time", "what_changed", {}),
    ("did any owners change?", "what_changed", {}),
    # summary and untagged in casual words
    ("tl;dr of our cloud bill", "summarize_account", {}),
    ("how much spend has no team tag", "untagged_spend", {}),
    ("any tags that look wrong?", "find_anomalies", {}),
    # idle / abandoned with a number of days
    ("resources nobody used in 14 days", "find_idle", {"days": 14}),
    ("what did people stop using 3 days ago but still costs money", "find_abandoned", {"days": 3}),
    ("stuff that hasn't been touched for two weeks", "find_idle", {"days": 14}),
    ("things people used to use but nobody's touched for 10 days", "find_abandoned", {"days": 10}),
    # a second held-out set (benchmarks/ask_heldout2.py)
    ("most expensive resources over the last fortnight", "top_spenders", {"by": "resource"}),
    ("search cost-center=cc-1", "search_resources", {"query": "cost-center=cc-1"}),
    ("find everything tagged env=staging", "search_resources", {"query": "env=staging"}),
    ("which resources don't look like they belong to any team?", "find_anomalies", {}),
    ("what's been going on with web-1 lately?", "signal_history", {"resource": "i-0aaa1111"}),
    ("Could you summarise the account for me — total bill, tagged versus untagged, teams?", "summarize_account", {}),
    # "team" with a spend word is every team, not a team called "spend"
    ("leaderboard of team spend", "top_spenders", {"by": "team"}),
    ("team breakdown", "top_spenders", {"by": "team"}),
    ("checkout team cost last week vs the week before", "team_spend", {"team": "checkout"}),
])
def test_held_out_phrasings(question: str, tool: str, args: dict) -> None:
    expect(question, tool, **args)


@pytest.mark.parametrize("question", ["assign web-1 to payments", "move i-0aaa1111 to search",
                                      "mark the spike as expected", "approve the change set"])
def test_more_writes_are_refused(question: str) -> None:
    got = ask(question)
    assert isinstance(got, Refusal), f"{question!r} -> {got!r}"


def test_a_team_named_in_a_search_phrase_is_the_team() -> None:
    expect("how much does the team named payments spend", "team_spend", team="payments")


def test_fortnight_and_since_the_nth() -> None:
    got = expect("most expensive resources over the last fortnight", "top_spenders")
    assert (got.args["period"]["end"] and day(got.args["period"]) == "2026-11-17")  # 14 days back from now
    got = expect("untagged spend since the 18th", "untagged_spend")
    assert day(got.args["period"]) == "2026-11-18"  # asked on 1 December: the latest 18th

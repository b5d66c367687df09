"""The ask tools on hand-made facts: every figure below is known by construction (to the cent).

The account ``prod`` holds seven resources with constant daily costs over 2026-10-01 .. 2026-11-30
(``NOW`` is Tuesday 2026-12-01, so "last month" is November and "MoM" compares it with October), plus
one spike day (Friday 2026-11-27: ``i-0aaa1111`` +$30, ``orders-db`` +$5):

=============  ==========  =======  ====================================  ================  ======
resource       $/day       $/mo     owner                                  last active       tags
=============  ==========  =======  ====================================  ================  ======
i-0aaa1111     10          300      payments (tag)                         2026-11-30        team
i-0bbb2222     5           150      search (predicted 90%)                 2026-11-29        -
orders-db      20          600      checkout (label beats tag payments)   2026-11-30        Team
vol-0ddd4444   1           30       none (fits no team)                    never             -
i-0eee5555     3           90       search (tag payments contradicted)    2026-11-10        team
logs-bucket    2           60       none (payments at 50% < 70%)           2026-11-23        -
sg-0fff6666    -           0        platform (tag)                         -                 team
=============  ==========  =======  ====================================  ================  ======

November: payments $330, checkout $605, search $240, no owner $90 (total $1,265).
October:  payments $310, checkout $620, search $248, no owner $93 (total $1,271).
Business units: payments-bu = payments + checkout (group commerce), platform-bu = search (engineering).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ask.facts import EventFact, Facts, MemoryStore, Res, ScanSnapshot, SpikeFact
from engine.ask.tools import TOOLS, ToolError, money, period_dict, read_period, run_tool
from engine.org import NO_GROUP, NO_UNIT, Org

ACCOUNT = "prod"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday; the stored days are 2026-10-01 .. 2026-11-30
ACCT = "123456789012"


def arn_ec2(i: str) -> str:
    return f"arn:aws:ec2:us-east-1:{ACCT}:instance/{i}"


A = Res(arn_ec2("i-0aaa1111"), "i-0aaa1111", "ec2:instance", "web-1", "us-east-1",
        {"team": "payments", "env": "prod"}, team="payments", confidence=0.92, tag_team="payments",
        monthly_usd=300.0, first_active=date(2026, 10, 1), last_active=date(2026, 11, 30), active_days=61)
B = Res(arn_ec2("i-0bbb2222"), "i-0bbb2222", "ec2:instance", "batch-1", "us-east-1", {"env": "prod"},
        team="search", confidence=0.9, runner_up="payments", runner_up_confidence=0.06, monthly_usd=150.0,
        evidence={"network_peers": [["role/search-indexer", 12], ["role/search-api", 3]],
                  "activity": {"days": 40}},
        first_active=date(2026, 10, 2), last_active=date(2026, 11, 29), active_days=50)
C = Res(f"arn:aws:rds:us-east-1:{ACCT}:db:orders-db", "orders-db", "rds:db", "orders-db", "us-east-1",
        {"Team": "payments", "env": "prod"}, team="search", confidence=0.8, tag_team="payments", label="checkout",
        monthly_usd=600.0, first_active=date(2026, 10, 1), last_active=date(2026, 11, 30), active_days=61)
D = Res(f"arn:aws:ec2:us-east-1:{ACCT}:volume/vol-0ddd4444", "vol-0ddd4444", "ec2:volume", "", "us-east-1", {},
        anomaly=0.93, monthly_usd=30.0)
E = Res(arn_ec2("i-0eee5555"), "i-0eee5555", "ec2:instance", "worker-5", "us-east-1", {"team": "payments"},
        team="search", confidence=0.95, tag_team="payments", tag_conflict=True, monthly_usd=90.0,
        first_active=date(2026, 10, 1), last_active=date(2026, 11, 10), active_days=20)
F = Res("arn:aws:s3:::logs-bucket", "logs-bucket", "s3:bucket", "logs-bucket", "us-east-1", {"env": "dev"},
        team="payments", confidence=0.5, monthly_usd=60.0, first_active=date(2026, 10, 5),
        last_active=date(2026, 11, 23), active_days=30)
H = Res(f"arn:aws:ec2:us-east-1:{ACCT}:security-group/sg-0fff6666", "sg-0fff6666", "ec2:security-group", "",
        "us-east-1", {"team": "platform"}, tag_team="platform")
G = Res(arn_ec2("i-0ggg7777"), "i-0ggg7777", "ec2:instance", "old-1", "us-east-1", {"team": "search"},
        tag_team="search", monthly_usd=40.0)  # only in the previous scan
RESOURCES = [A, B, C, D, E, F, H]
PER_DAY = {A.arn: 10.0, B.arn: 5.0, C.arn: 20.0, D.arn: 1.0, E.arn: 3.0, F.arn: 2.0}
SPIKE_DAY = date(2026, 11, 27)  # a Friday: A costs $40 (+30), C $25 (+5)
DAYS = [date(2026, 10, 1) + timedelta(days=k) for k in range(61)]

SPIKES = [
    SpikeFact(1, A.arn, A.resource_id, datetime(2026, 11, 27, 2, tzinfo=UTC), datetime(2026, 11, 27, 14, tzinfo=UTC),
              30.0, 3.5, 0.42, severity="warning", owner_team="payments",
              cause={"kind": "deploy", "commit": "abcdef1234567890", "repo": "acme/web", "actor": "alice"}),
    SpikeFact(2, E.arn, E.resource_id, datetime(2026, 11, 10, 1, tzinfo=UTC), datetime(2026, 11, 10, 5, tzinfo=UTC),
              4.5, severity="info", status="resolved", owner_team="search"),
]
EVENTS = {A.arn: [
    EventFact(datetime(2026, 11, 27, 1, 55, tzinfo=UTC), "RunInstances", "arn:aws:iam::123456789012:user/alice",
              "alice"),
    EventFact(datetime(2026, 11, 2, 8, 0, tzinfo=UTC), "ModifyInstanceAttribute", "role/deployer",
              error_code="AccessDenied"),
]}
ORG = Org(units={"payments": "payments-bu", "checkout": "payments-bu", "search": "platform-bu"},
          groups={"payments-bu": "commerce", "platform-bu": "engineering"})
PREVIOUS = ScanSnapshot(6, datetime(2026, 11, 1, 6, tzinfo=UTC), {
    A.arn: dataclasses.replace(A, monthly_usd=250.0), B.arn: dataclasses.replace(B, team="", confidence=0.0),
    C.arn: C, E.arn: E, G.arn: G, H.arn: H})


def daily_rows() -> list[tuple[str, date, float]]:
    rows = []
    for d in DAYS:
        for arn, usd in PER_DAY.items():
            extra = {A.arn: 30.0, C.arn: 5.0}.get(arn, 0.0) if d == SPIKE_DAY else 0.0
            rows.append((arn, d, usd + extra))
    return rows


def make_facts(**kw) -> Facts:
    """The account above; keyword arguments replace parts of it (``resources``, ``daily``, ``org``...)."""
    args = dict(resources=RESOURCES, daily=daily_rows(), threshold=0.7, now=NOW, spikes=SPIKES, org=ORG,
                aliases={"billing": "payments"}, store=MemoryStore(events=EVENTS, previous=PREVIOUS))
    args.update(kw)
    return Facts.build(ACCOUNT, 7, **args)


@pytest.fixture
def facts() -> Facts:
    return make_facts()


async def run(facts: Facts, name: str, **args):
    return await run_tool(facts, name, args)


def nov_mom(facts: Facts) -> dict:
    """"last month MoM" as the router passes it (a dict)."""
    return period_dict(read_period(facts, "last month MoM"))


# -- money -------------------------------------------------------------------------------------------------


def test_money_format() -> None:
    assert money(1234.5649) == "$1,234.56"
    assert money(0) == "$0.00"
    assert money(None) == "$0.00"
    assert money(-3) == "-$3.00"
    assert money(1_000_000) == "$1,000,000.00"


def test_period_reading(facts: Facts) -> None:
    p = read_period(facts, "last month MoM")
    assert (p.start, p.end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert (p.compare.start, p.compare.end) == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert "November 2026" in p.label and "October 2026" in p.compare.label
    again = read_period(facts, period_dict(p))
    assert (again.start, again.end, again.compare.start, again.compare.end) == (p.start, p.end, p.compare.start,
                                                                                 p.compare.end)
    y = read_period(facts, "yesterday")
    assert (y.start, y.end) == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    w = read_period(facts, "last week")
    assert (w.start, w.end) == (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    s = read_period(facts, "since Nov 3")
    assert s.start == datetime(2026, 11, 3, tzinfo=UTC)
    o = read_period(facts, "in October")
    assert (o.start, o.end) == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert read_period(facts, None) is None and read_period(facts, "") is None
    with pytest.raises(ToolError, match="cannot read"):
        read_period(facts, "blorp")
    with pytest.raises(ToolError, match="start"):
        read_period(facts, {"end": "2026-11-01"})
    with pytest.raises(ToolError, match="'end' must"):
        read_period(facts, {"start": "2026-11-02", "end": "2026-11-01"})


# -- top_spenders ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_top_spenders_resources_run_rate(facts: Facts) -> None:
    r = await run(facts, "top_spenders")
    assert r.ok and r.tool == "top_spenders"
    assert r.citations == ["orders-db", "i-0aaa1111", "i-0bbb2222", "i-0eee5555", "logs-bucket"]
    assert r.figures == {"total_usd": 1230.0, "orders-db": 600.0, "i-0aaa1111": 300.0, "i-0bbb2222": 150.0,
                         "i-0eee5555": 90.0, "logs-bucket": 60.0}
    assert "$1,230.00/mo in all" in r.text
    assert "1. `orders-db`: $600.00/mo" in r.text and "checkout (a person's label)" in r.text
    assert "5. `logs-bucket`: $60.00/mo" in r.text and "below the threshold" in r.text
    r3 = await run(facts, "top_spenders", n=3)
    assert r3.citations == ["orders-db", "i-0aaa1111", "i-0bbb2222"]
    assert r3.figures["total_usd"] == 1230.0  # the total is of everything, not of the three listed


@pytest.mark.asyncio
async def test_top_spenders_resources_last_month(facts: Facts) -> None:
    r = await run(facts, "top_spenders", period="last month", n=2)
    assert r.ok
    assert r.citations == ["orders-db", "i-0aaa1111"]
    assert r.figures == {"total_usd": 1265.0, "orders-db": 605.0, "i-0aaa1111": 330.0}
    assert "November 2026" in r.text and "$1,265.00 in all" in r.text


@pytest.mark.asyncio
async def test_top_spenders_by_team(facts: Facts) -> None:
    r = await run(facts, "top_spenders", by="team")
    assert r.ok
    assert r.figures == {"total_usd": 1230.0, "checkout": 600.0, "payments": 300.0, "search": 240.0,
                         "no owner": 90.0, "platform": 0.0}
    assert r.citations == ["orders-db", "i-0aaa1111", "i-0bbb2222", "i-0eee5555", "logs-bucket", "vol-0ddd4444",
                           "sg-0fff6666"]
    assert "1. *checkout*: $600.00/mo" in r.text and "3. *search*: $240.00/mo on 2 resources" in r.text


@pytest.mark.asyncio
@pytest.mark.parametrize("as_dict", [False, True], ids=["text", "router-dict"])
async def test_top_spenders_by_team_mom(facts: Facts, as_dict: bool) -> None:
    period = nov_mom(facts) if as_dict else "last month MoM"
    r = await run(facts, "top_spenders", by="team", period=period)
    assert r.ok
    assert r.figures == {"total_usd": 1265.0, "previous_total_usd": 1271.0, "checkout": 605.0, "payments": 330.0,
                         "search": 240.0, "no owner": 90.0}
    assert "November 2026" in r.text and "October 2026" in r.text
    assert "$1,265.00 in all (vs $1,271.00: -$6.00 (-0.5%))" in r.text
    assert "*checkout*: $605.00 (vs $620.00: -$15.00 (-2.4%))" in r.text
    assert "*payments*: $330.00 (vs $310.00: +$20.00 (+6.5%))" in r.text
    assert "*search*: $240.00 (vs $248.00: -$8.00 (-3.2%))" in r.text
    assert "*no owner*: $90.00 (vs $93.00: -$3.00 (-3.2%))" in r.text
    assert r.data["period"]["compare"]["start"].startswith("2026-10-01")


@pytest.mark.asyncio
async def test_top_spenders_by_unit_and_group(facts: Facts) -> None:
    u = await run(facts, "top_spenders", by="unit", period="last month")
    assert u.ok
    assert u.figures == {"total_usd": 1265.0, "payments-bu": 935.0, "platform-bu": 240.0, NO_UNIT: 90.0}
    assert u.citations[:2] == ["orders-db", "i-0aaa1111"]
    g = await run(facts, "top_spenders", by="group")
    assert g.ok
    assert g.figures == {"total_usd": 1230.0, "commerce": 900.0, "engineering": 240.0, NO_GROUP: 90.0}
    assert "*commerce*: $900.00/mo" in g.text


@pytest.mark.asyncio
async def test_top_spenders_without_org_or_data(facts: Facts) -> None:
    no_org = make_facts(org=None)
    for by in ("unit", "group"):
        r = await run(no_org, "top_spenders", by=by)
        assert not r.ok and "No business units are configured" in r.text and "/costdna settings org" in r.text
    r = await run(facts, "top_spenders", by="team", period="last year")
    assert not r.ok and r.citations == [] and r.figures == {}
    assert "No daily costs are stored for last year" in r.text
    assert "cover 2026-10-01 to 2026-11-30" in r.text
    # a compare period with no data is said, the main one is still answered
    r = await run(facts, "top_spenders", period={"start": "2026-11-01", "end": "2026-12-01", "label": "November",
                                                 "compare": {"start": "2025-11-01", "end": "2025-12-01",
                                                             "label": "November 2025"}})
    assert r.ok and r.figures["total_usd"] == 1265.0 and "previous_total_usd" not in r.figures
    assert "no daily costs are stored for November 2025" in r.text
    empty = make_facts(daily=[])
    r = await run(empty, "top_spenders", period="last month")
    assert not r.ok and "no days at all" in r.text


# -- team_spend / compare_teams ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_team_spend_run_rate_with_trend(facts: Facts) -> None:
    r = await run(facts, "team_spend", team="payments")
    assert r.ok
    assert r.figures == {"monthly_usd": 300.0, "i-0aaa1111": 300.0, "maybe_monthly_usd": 60.0, "last_7d_usd": 100.0,
                         "prior_7d_usd": 70.0, "last_30d_usd": 330.0, "prior_30d_usd": 300.0}
    assert r.citations == ["i-0aaa1111", "logs-bucket"]
    assert "*payments* (team) spends about *$300.00/month*" in r.text
    assert "WoW: $100.00 in the last 7 days vs $70.00 in the 7 before, +$30.00 (+42.9%)" in r.text
    assert "MoM: $330.00 in the last 30 days vs $300.00 in the 30 before, +$30.00 (+10.0%)" in r.text
    assert "1 more resources ($60.00/mo) look like payments's but below 70% confidence" in r.text
    alias = await run(facts, "team_spend", team="Billing")
    assert alias.ok and alias.figures == r.figures and alias.data["name"] == "payments"


@pytest.mark.asyncio
async def test_team_spend_unit_and_group(facts: Facts) -> None:
    u = await run(facts, "team_spend", team="payments-bu")
    assert u.ok and u.data["level"] == "unit"
    assert u.figures["monthly_usd"] == 900.0
    assert u.figures["last_7d_usd"] == 245.0 and u.figures["prior_7d_usd"] == 210.0
    assert u.figures["last_30d_usd"] == 935.0 and u.figures["prior_30d_usd"] == 900.0
    assert u.citations[:2] == ["orders-db", "i-0aaa1111"]
    assert "(business unit)" in u.text and "+$35.00 (+16.7%)" in u.text and "+$35.00 (+3.9%)" in u.text
    g = await run(facts, "team_spend", team="COMMERCE")
    assert g.ok and g.data["level"] == "group" and g.data["name"] == "commerce"
    assert g.figures["monthly_usd"] == 900.0 and "(business group)" in g.text
    e = await run(facts, "team_spend", team="engineering", period="last month")
    assert e.ok and e.figures["total_usd"] == 240.0


@pytest.mark.asyncio
async def test_team_spend_period_compare(facts: Facts) -> None:
    r = await run(facts, "team_spend", team="search", period="last month MoM")
    assert r.ok
    assert r.figures == {"total_usd": 240.0, "previous_total_usd": 248.0, "i-0bbb2222": 150.0, "i-0eee5555": 90.0}
    assert r.citations == ["i-0bbb2222", "i-0eee5555"]
    assert "*search* (team) cost *$240.00* (amortized)" in r.text
    assert "against $248.00 in October 2026: -$8.00 (-3.2%)" in r.text
    same = await run(facts, "team_spend", team="search", period=nov_mom(facts))
    assert same.figures == r.figures
    y = await run(facts, "team_spend", team="payments", period="yesterday")
    assert y.ok and y.figures["total_usd"] == 10.0
    w = await run(facts, "team_spend", team="payments", period="last week")  # 2026-11-23..29, with the spike
    assert w.ok and w.figures["total_usd"] == 100.0


@pytest.mark.asyncio
async def test_team_spend_no_evidence(facts: Facts) -> None:
    r = await run(facts, "team_spend", team="marketing")
    assert not r.ok and r.citations == []
    assert "I know no team or business unit called 'marketing'" in r.text
    for known in ("checkout", "payments", "platform", "search", "payments-bu", "commerce"):
        assert known in r.text
    r = await run(facts, "team_spend", team="payments", period="in 2025")
    assert not r.ok and "cover 2026-10-01 to 2026-11-30" in r.text


@pytest.mark.asyncio
async def test_compare_teams(facts: Facts) -> None:
    r = await run(facts, "compare_teams", teams=["search", "payments"])
    assert r.ok
    assert r.figures == {"payments": 300.0, "search": 240.0, "difference_usd": 60.0}
    assert r.citations == ["i-0aaa1111", "i-0bbb2222", "i-0eee5555"]
    assert "*payments* spends $60.00 more than *search* (1.2×)" in r.text
    p = await run(facts, "compare_teams", teams=["payments", "search"], period="last month")
    assert p.figures == {"payments": 330.0, "search": 240.0, "difference_usd": 90.0}
    assert "$330.00 in last month" in p.text or "$330.00 in November" in p.text
    u = await run(facts, "compare_teams", teams=["payments-bu", "platform-bu"])
    assert u.figures == {"payments-bu": 900.0, "platform-bu": 240.0, "difference_usd": 660.0}
    m = await run(facts, "compare_teams", teams=["payments", "marketing"])
    assert m.ok and "Unknown: 'marketing'" in m.text and m.figures == {"payments": 300.0}
    none = await run(facts, "compare_teams", teams=["marketing", "sales"])
    assert not none.ok and "'marketing'" in none.text and "Known:" in none.text and "payments" in none.text
    nodata = await run(facts, "compare_teams", teams=["payments", "search"], period="last year")
    assert not nodata.ok and "cover 2026-10-01 to 2026-11-30" in nodata.text


# -- untagged_spend ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_untagged_spend_run_rate(facts: Facts) -> None:
    r = await run(facts, "untagged_spend")
    assert r.ok
    assert r.figures == {"monthly_usd": 240.0, "attributable_monthly_usd": 150.0, "last_7d_usd": 56.0,
                         "prior_7d_usd": 56.0, "last_30d_usd": 240.0, "prior_30d_usd": 240.0, "i-0bbb2222": 150.0,
                         "logs-bucket": 60.0, "vol-0ddd4444": 30.0}
    assert r.citations == ["i-0bbb2222", "logs-bucket", "vol-0ddd4444"]
    assert "*3* of 7 resources carry no owner tag: about *$240.00/month* (20% of the run rate)" in r.text
    assert "WoW: $56.00" in r.text and "MoM: $240.00" in r.text
    r1 = await run(facts, "untagged_spend", n=1)
    assert r1.citations == ["i-0bbb2222"]


@pytest.mark.asyncio
async def test_untagged_spend_period(facts: Facts) -> None:
    r = await run(facts, "untagged_spend", period="last month MoM")
    assert r.ok
    assert r.figures == {"total_usd": 240.0, "previous_total_usd": 248.0, "i-0bbb2222": 150.0, "logs-bucket": 60.0,
                         "vol-0ddd4444": 30.0}
    assert "cost *$240.00* (amortized)" in r.text and "against $248.00 in October 2026: -$8.00 (-3.2%)" in r.text
    o = await run(facts, "untagged_spend", period="in October")
    assert o.figures["total_usd"] == 248.0
    none = await run(facts, "untagged_spend", period="last year")
    assert not none.ok and "cover 2026-10-01 to 2026-11-30" in none.text
    all_tagged = make_facts(resources=[A, C, H])
    t = await run(all_tagged, "untagged_spend")
    assert t.ok and "Every resource of prod carries an owner tag" in t.text and t.figures == {"total_usd": 0.0}


# -- attribute_resource ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_attribute_label_beats_tag_beats_prediction(facts: Facts) -> None:
    c = await run(facts, "attribute_resource", resource="orders-db")
    assert c.ok and c.citations == ["orders-db"]
    assert "`orders-db` is owned by *checkout* (a person's label)." in c.text
    assert c.data["owner"] == "checkout" and c.data["owner_source"] == "label"
    assert c.figures == {"monthly_usd": 600.0, "confidence": 0.8} and "Cost: $600.00/mo" in c.text
    a = await run(facts, "attribute_resource", resource="i-0aaa1111")
    assert "`i-0aaa1111` is tagged *payments*." in a.text and a.data["owner_source"] == "tag"
    b = await run(facts, "attribute_resource", resource="i-0bbb2222")
    assert "`i-0bbb2222` most likely belongs to *search* (90% confident)." in b.text
    assert "Runner-up: payments (6%)" in b.text
    assert "network peers: `role/search-indexer` (12), `role/search-api` (3)" in b.text
    assert b.data["owner"] == "search" and b.data["owner_source"] == "predicted"


@pytest.mark.asyncio
async def test_attribute_conflict_threshold_no_team(facts: Facts) -> None:
    e = await run(facts, "attribute_resource", resource="i-0eee5555")
    assert "tagged *payments*, but its behaviour says *search* (95%)" in e.text and "stale" in e.text
    assert e.data["owner"] == "search"
    f = await run(facts, "attribute_resource", resource="logs-bucket")
    assert "most likely belongs to *payments* (50% confident" in f.text and "70%" in f.text
    assert f.data["owner"] == "" and f.data["owner_source"] == "none"
    d = await run(facts, "attribute_resource", resource="vol-0ddd4444")
    assert "`vol-0ddd4444` fits no team" in d.text and d.figures["monthly_usd"] == 30.0


@pytest.mark.asyncio
async def test_attribute_by_arn_name_and_case(facts: Facts) -> None:
    for ref in (A.arn, "web-1", "I-0AAA1111", "`i-0aaa1111`", "WEB-1", A.arn.upper()):
        r = await run(facts, "attribute_resource", resource=ref)
        assert r.ok and r.citations == ["i-0aaa1111"], ref
    s3 = await run(facts, "attribute_resource", resource="arn:aws:s3:::logs-bucket")
    assert s3.ok and s3.citations == ["logs-bucket"]


@pytest.mark.asyncio
async def test_attribute_unknown_resource_suggests(facts: Facts) -> None:
    r = await run(facts, "attribute_resource", resource="i-0aaa")
    assert not r.ok and r.citations == []
    assert "`i-0aaa` is not a resource of prod in scan #7" in r.text and "Did you mean `i-0aaa1111`?" in r.text
    r = await run(facts, "attribute_resource", resource="i-0zzz9999")
    assert not r.ok and "not a resource" in r.text and "Did you mean" not in r.text


# -- find_cost_spikes --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_find_cost_spikes_day_that_rose_most(facts: Facts) -> None:
    r = await run(facts, "find_cost_spikes")
    assert r.ok
    assert r.data["day"] == "2026-11-27"
    assert r.figures == {"day_usd": 76.0, "baseline_usd": 41.0, "change_usd": 35.0, "i-0aaa1111": 40.0,
                         "orders-db": 25.0, "spike:i-0aaa1111": 30.0}
    assert r.citations == ["i-0aaa1111", "orders-db"]
    assert "2026-11-27 (Friday): $76.00 (amortized) against an average of $41.00/day" in r.text
    assert "+$35.00 (+85.4%)" in r.text
    assert r.text.index("`i-0aaa1111` $40.00 vs $10.00/day: +$30.00") < r.text.index("`orders-db` $25.00 vs $20.00")
    assert "deploy commit `abcdef123456` of `acme/web` by `alice`" in r.text and "+$30.00 (warning)" in r.text
    assert "i-0eee5555" not in r.text  # its spike was on Nov 10


@pytest.mark.asyncio
async def test_find_cost_spikes_period_and_team(facts: Facts) -> None:
    r = await run(facts, "find_cost_spikes", period="Nov 27", n=1)
    assert r.ok and r.data["day"] == "2026-11-27" and r.citations == ["i-0aaa1111"]
    quiet = await run(facts, "find_cost_spikes", period="Nov 10")
    assert quiet.ok and quiet.data["day"] == "2026-11-10"
    # the stored spike of i-0eee5555 overlaps Nov 10 and is reported with its (missing) cause
    assert quiet.figures["spike:i-0eee5555"] == 4.5 and "no cause found" in quiet.text
    assert "No resource's cost changed." in quiet.text
    p = await run(facts, "find_cost_spikes", team="payments")
    assert p.ok and p.figures["day_usd"] == 40.0 and p.figures["baseline_usd"] == 10.0
    assert "*payments*'s resources on 2026-11-27" in p.text and "+$30.00 (+300.0%)" in p.text
    s = await run(facts, "find_cost_spikes", team="search", period="Nov 27")
    assert s.ok and s.figures["change_usd"] == 0.0 and "i-0aaa1111" not in s.text and s.citations == []
    u = await run(facts, "find_cost_spikes", team="marketing")
    assert not u.ok and "Known:" in u.text
    old = await run(facts, "find_cost_spikes", period="last year")
    assert "No daily costs are stored for last year" in old.text and "2026-10-01 to 2026-11-30" in old.text
    first = await run(facts, "find_cost_spikes", period="Oct 1")
    assert not first.ok and "first day with stored costs" in first.text


@pytest.mark.asyncio
async def test_find_cost_spikes_no_data() -> None:
    r = await run(make_facts(daily=[]), "find_cost_spikes")
    assert not r.ok and "No daily costs are stored for prod" in r.text


# -- findings ----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_find_anomalies(facts: Facts) -> None:
    r = await run(facts, "find_anomalies")
    assert r.ok
    assert r.citations == ["vol-0ddd4444", "i-0eee5555"]
    assert r.figures == {"no_team_monthly_usd": 30.0, "vol-0ddd4444": 30.0, "i-0eee5555": 90.0}
    assert "*1* untagged resources behave unlike every team ($30.00/mo)" in r.text
    assert "`i-0eee5555` tagged payments, behaves like search (95%), $90.00/mo" in r.text
    clean = await run(make_facts(resources=[A, B, C]), "find_anomalies")
    assert clean.ok and "fits some team" in clean.text and clean.citations == []


@pytest.mark.asyncio
async def test_find_idle(facts: Facts) -> None:
    r = await run(facts, "find_idle")
    assert r.ok
    assert r.citations == ["i-0eee5555", "logs-bucket", "vol-0ddd4444"]
    assert r.figures == {"total_usd": 42.0, "i-0eee5555": 21.0, "logs-bucket": 14.0, "vol-0ddd4444": 7.0}
    assert "(2026-11-24 to 2026-11-30)" in r.text
    assert "last used 2026-11-10" in r.text and "last used 2026-11-23" in r.text
    assert "`vol-0ddd4444` (ec2:volume) $7.00 in the last 7 days, never used" in r.text
    assert "i-0bbb2222" not in r.text  # used 2026-11-29
    r30 = await run(facts, "find_idle", days=30)
    assert r30.citations == ["vol-0ddd4444"] and r30.figures == {"total_usd": 30.0, "vol-0ddd4444": 30.0}
    busy = await run(make_facts(resources=[A, C]), "find_idle")
    assert busy.ok and busy.citations == [] and busy.figures == {"total_usd": 0.0}
    nodata = await run(make_facts(daily=[]), "find_idle")
    assert not nodata.ok and "No daily costs are stored" in nodata.text


@pytest.mark.asyncio
async def test_find_abandoned(facts: Facts) -> None:
    r = await run(facts, "find_abandoned")
    assert r.ok
    assert r.citations == ["i-0eee5555", "logs-bucket"]  # never-active vol-0ddd4444 is idle, not abandoned
    assert r.figures == {"total_usd": 35.0, "i-0eee5555": 21.0, "logs-bucket": 14.0}
    assert "not since 2026-11-23" in r.text
    assert "last used 2026-11-10 (active since 2026-10-01)" in r.text
    r14 = await run(facts, "find_abandoned", days=14)  # cutoff 2026-11-16: only i-0eee5555
    assert r14.citations == ["i-0eee5555"] and r14.figures["total_usd"] == 21.0
    r30 = await run(facts, "find_abandoned", days=30)
    assert r30.ok and r30.citations == [] and "went silent 30+ days ago" in r30.text
    nodata = await run(make_facts(daily=[]), "find_abandoned")
    assert not nodata.ok and "No daily costs are stored" in nodata.text


# -- signal_history / search -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_signal_history(facts: Facts) -> None:
    r = await run(facts, "signal_history", resource="web-1")
    assert r.ok and r.citations == ["i-0aaa1111"]
    assert "owner payments" in r.text
    assert "Last used or changed (not counting account-wide scanners) on 2026-11-30; first on 2026-10-01" in r.text
    assert "Last 2 management events" in r.text
    assert "2026-11-27 01:55 UTC `RunInstances` by `alice`" in r.text
    assert "`ModifyInstanceAttribute` by `role/deployer` (failed: AccessDenied)" in r.text
    assert "$640.00 in all" in r.text and "Nov 27 $40.00" in r.text
    assert "+$30.00 (warning, open): deploy" in r.text
    assert r.figures["period_total_usd"] == 640.0 and r.figures["2026-11-27"] == 40.0
    assert r.figures["spike_1_extra_usd"] == 30.0 and r.figures["monthly_usd"] == 300.0
    assert [e["event_name"] for e in r.data["events"]] == ["ModifyInstanceAttribute", "RunInstances"]
    one = await run(facts, "signal_history", resource="i-0aaa1111", n=1)
    assert [e["event_name"] for e in one.data["events"]] == ["RunInstances"]


@pytest.mark.asyncio
async def test_signal_history_without_evidence(facts: Facts) -> None:
    r = await run(facts, "signal_history", resource="sg-0fff6666")
    assert r.ok and r.citations == ["sg-0fff6666"]
    assert "No management events are stored for it." in r.text
    assert "No daily costs are stored for it." in r.text
    assert "No one but account-wide scanners used or changed it" in r.text
    e = await run(facts, "signal_history", resource="i-0eee5555")
    assert "+$4.50 (info, resolved)" in e.text and e.figures["spike_2_extra_usd"] == 4.5
    u = await run(facts, "signal_history", resource="web-9")
    assert not u.ok and "not a resource" in u.text


@pytest.mark.asyncio
async def test_search_resources(facts: Facts) -> None:
    r = await run(facts, "search_resources", query="i-0")
    assert r.ok and r.citations == ["i-0aaa1111", "i-0bbb2222", "i-0eee5555"]
    assert r.figures == {"i-0aaa1111": 300.0, "i-0bbb2222": 150.0, "i-0eee5555": 90.0}
    assert r.text.startswith("3 resources match 'i-0'")
    t = await run(facts, "search_resources", query="env=prod")
    assert t.citations == ["orders-db", "i-0aaa1111", "i-0bbb2222"]
    n = await run(facts, "search_resources", query="WEB-1")
    assert n.citations == ["i-0aaa1111"]
    exact = await run(facts, "search_resources", query="i-0bbb2222")
    assert exact.citations[0] == "i-0bbb2222"
    few = await run(facts, "search_resources", query="i-0", n=2)
    assert few.citations == ["i-0aaa1111", "i-0bbb2222"] and "(showing 2)" in few.text
    none = await run(facts, "search_resources", query="nothing-here")
    assert not none.ok and "'nothing-here'" in none.text


# -- the account -------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_summarize_account(facts: Facts) -> None:
    r = await run(facts, "summarize_account")
    assert r.ok
    assert r.figures == {"monthly_usd": 1230.0, "untagged_monthly_usd": 240.0, "owned_monthly_usd": 1140.0,
                         "checkout": 600.0, "payments": 300.0, "search": 240.0,
                         "orders-db": 600.0, "i-0aaa1111": 300.0, "i-0bbb2222": 150.0}
    assert r.citations == ["orders-db", "i-0aaa1111", "i-0bbb2222"]
    assert "the costliest resources: `orders-db` $600.00/mo, `i-0aaa1111` $300.00/mo" in r.text
    assert "run rate $1,230.00/mo (amortized) on 7 resources; 4 tagged, 3 untagged ($240.00/mo)" in r.text
    assert "5 resources have an owner at ≥ 70% confidence ($1,140.00/mo)" in r.text
    assert "checkout $600.00/mo, payments $300.00/mo, search $240.00/mo" in r.text
    assert "1 open spikes of 2" in r.text
    assert "daily costs stored: 2026-10-01 to 2026-11-30" in r.text
    billed = make_facts(summary={"amortized_cost_usd": 1265.0, "net_billed_cost_usd": 1200.5})
    b = await run(billed, "summarize_account")
    assert "$1,265.00 amortized, $1,200.50 net billed" in b.text
    assert b.figures["amortized_usd"] == 1265.0 and b.figures["net_billed_usd"] == 1200.5


@pytest.mark.asyncio
async def test_tag_compliance(facts: Facts) -> None:
    r = await run(facts, "tag_compliance")
    assert r.ok
    assert r.figures == {"compliant_resources": 4.0, "resources": 7.0, "compliant_monthly_usd": 990.0,
                         "monthly_usd": 1230.0}
    assert "4 of 7 resources (57%) carry `team`; they are $990.00 of $1,230.00/mo (80% of the run rate)" in r.text
    assert "*search*: 1/2 resources (50%), $90.00 of $240.00/mo" in r.text
    assert "*no owner*: 0/2 resources (0%), $0.00 of $90.00/mo" in r.text
    assert r.text.index("*checkout*") < r.text.index("*payments*") < r.text.index("*search*") \
        < r.text.index("*no owner*")
    assert r.citations == ["i-0bbb2222", "logs-bucket", "vol-0ddd4444"]
    teams = {row["team"]: row for row in r.data["teams"]}
    assert teams["checkout"]["compliant"] == 1  # orders-db is tagged "Team": keys compare normalized
    both = await run(facts, "tag_compliance", keys=["team", "env"])
    assert both.figures == {"compliant_resources": 2.0, "resources": 7.0, "compliant_monthly_usd": 900.0,
                            "monthly_usd": 1230.0}
    assert "carry `team`, `env`" in both.text
    assert both.citations[:2] == ["i-0bbb2222", "i-0eee5555"]
    req = await run(make_facts(required_tags=("env",)), "tag_compliance")
    assert req.figures["compliant_resources"] == 4.0  # A, B, C, F carry env
    nothing = await run(make_facts(required_tags=()), "tag_compliance")
    assert not nothing.ok and "No tag keys are required" in nothing.text
    empty = await run(make_facts(resources=[]), "tag_compliance")
    assert not empty.ok and "holds no resources" in empty.text


@pytest.mark.asyncio
async def test_what_changed(facts: Facts) -> None:
    r = await run(facts, "what_changed")
    assert r.ok
    assert "Since scan #6 (2026-11-01): 2 new resources, 1 gone, 1 changed owner." in r.text
    assert "New: `logs-bucket` $60.00/mo, `vol-0ddd4444` $30.00/mo" in r.text
    assert "Gone: `i-0ggg7777` (was $40.00/mo)" in r.text
    assert "`i-0bbb2222`: no owner → search" in r.text
    assert "`i-0aaa1111` $250.00 → $300.00/mo" in r.text
    assert r.citations == ["logs-bucket", "vol-0ddd4444", "i-0ggg7777", "i-0bbb2222", "i-0aaa1111"]
    assert r.figures == {"new": 2.0, "gone": 1.0, "owner_changes": 1.0, "i-0aaa1111": 300.0}
    assert r.data["owner_changes"] == [{"resource_id": "i-0bbb2222", "from": "", "to": "search"}]
    first = await run(make_facts(store=MemoryStore()), "what_changed")
    assert not first.ok and "only one finished scan (#7)" in first.text and first.citations == []


# -- run_tool's checks -------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("name, args, message", [
    ("delete_resource", {"resource": "i-0aaa1111"}, "no tool called 'delete_resource'"),
    ("top_spenders", {"bogus": 1}, "unknown argument 'bogus'"),
    ("attribute_resource", {}, "'resource' is required"),
    ("attribute_resource", {"resource": ""}, "'resource' is required"),
    ("search_resources", None, "'query' is required"),
    ("top_spenders", {"n": "5"}, "expected integer"),
    ("top_spenders", {"n": True}, "expected integer"),
    ("top_spenders", {"n": 2.5}, "expected integer"),
    ("top_spenders", {"n": 0}, "below 1"),
    ("top_spenders", {"n": 51}, "above 50"),
    ("top_spenders", {"by": "region"}, "not one of resource, team, unit, group"),
    ("team_spend", {"team": "payments", "level": "division"}, "not one of"),
    ("compare_teams", {"teams": "payments"}, "expected array"),
    ("compare_teams", {"teams": ["payments", 3]}, r"teams\[1\]: expected string"),
    ("tag_compliance", {"keys": [1]}, "expected string"),
    ("top_spenders", {"period": 7}, "expected string or object"),
    ("top_spenders", {"period": "blorp"}, "cannot read 'blorp'"),
    ("find_idle", {"days": 0}, "below 1"),
    ("top_spenders", [1, 2], "must be an object"),
])
async def test_run_tool_rejects_bad_calls(facts: Facts, name, args, message) -> None:
    with pytest.raises(ToolError, match=message):
        await run_tool(facts, name, args)
    assert issubclass(ToolError, ValueError)


@pytest.mark.asyncio
async def test_run_tool_records_checked_args(facts: Facts) -> None:
    r = await run_tool(facts, "top_spenders", {"by": "team", "n": 2, "period": None})
    assert r.tool == "top_spenders" and r.args == {"by": "team", "n": 2}


def test_tool_registry_and_schemas() -> None:
    assert set(TOOLS) >= {"top_spenders", "attribute_resource", "find_cost_spikes", "find_anomalies", "find_idle",
                          "find_abandoned", "compare_teams", "signal_history", "search_resources",
                          "summarize_account", "team_spend", "untagged_spend", "tag_compliance", "what_changed"}
    for name, t in TOOLS.items():
        s = t.schema()
        assert s["type"] == "function" and s["function"]["name"] == name and s["function"]["description"]
        params = s["function"]["parameters"]
        assert params["type"] == "object" and params["additionalProperties"] is False
        assert set(params["required"]) <= set(params["properties"])


# -- read-only ---------------------------------------------------------------------------------------------

EVERY_CALL = [
    ("top_spenders", {}), ("top_spenders", {"by": "team", "period": "last month MoM"}),
    ("top_spenders", {"by": "unit"}), ("top_spenders", {"by": "group", "period": "last week"}),
    ("attribute_resource", {"resource": "orders-db"}), ("attribute_resource", {"resource": "nope"}),
    ("find_cost_spikes", {}), ("find_cost_spikes", {"team": "payments", "period": "Nov 10"}),
    ("find_anomalies", {}), ("find_idle", {}), ("find_abandoned", {"days": 3}),
    ("compare_teams", {"teams": ["payments", "search", "payments-bu"]}),
    ("signal_history", {"resource": "i-0aaa1111"}), ("search_resources", {"query": "env="}),
    ("summarize_account", {}), ("team_spend", {"team": "commerce"}),
    ("team_spend", {"team": "search", "period": "last month MoM"}), ("untagged_spend", {}),
    ("untagged_spend", {"period": "in October"}), ("tag_compliance", {"keys": ["team", "env"]}),
    ("what_changed", {}),
]


def _state(f: Facts):
    return (copy.deepcopy(f.resources), f.cost.copy(), list(f.cost_arns), list(f.days), copy.deepcopy(f.spikes),
            dict(f.by_arn), dict(f.by_id), dict(f.cost_row), copy.deepcopy(f.store._events),
            copy.deepcopy(f.store._previous), f.org.to_dict(), dict(f.aliases), f.threshold, f.now)


@pytest.mark.asyncio
async def test_tools_do_not_change_the_facts(facts: Facts) -> None:
    assert {name for name, _ in EVERY_CALL} == set(TOOLS)
    before = _state(facts)
    for name, args in EVERY_CALL:
        await run_tool(facts, name, copy.deepcopy(args))
    after = _state(facts)
    assert after[0] == before[0]
    assert (after[1] == before[1]).all() and after[1].shape == before[1].shape
    assert after[2:] == before[2:]


def test_ask_modules_import_no_writer() -> None:
    """The ask engine reaches nothing that writes: no storage, jobs, handlers or bot import."""
    root = Path(__file__).resolve().parents[1] / "engine" / "ask"
    files = sorted(root.glob("*.py"))
    assert {p.name for p in files} >= {"facts.py", "tools.py", "router.py"}
    banned = ("storage", "jobs", "handlers", "bot", "sqlalchemy", "boto3", "botocore", "httpx", "requests", "openai")
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


# -- a property: team figures add up -----------------------------------------------------------------------

_TEAMS = ["alpha", "beta", "gamma"]


@st.composite
def tables(draw):
    n = draw(st.integers(1, 6))
    resources, rows = [], []
    start = date(2026, 10, 25)
    for i in range(n):
        kind = draw(st.sampled_from(["tag", "label", "pred", "low", "none"]))
        team = draw(st.sampled_from(_TEAMS))
        arn = arn_ec2(f"i-{i:04d}abcd")
        resources.append(Res(arn, f"i-{i:04d}abcd", "ec2:instance", tag_team=team if kind == "tag" else "",
                             label=team if kind == "label" else "", team=team if kind in ("pred", "low") else "",
                             confidence=0.9 if kind == "pred" else 0.3, monthly_usd=draw(st.integers(0, 10_000)) / 100))
        for k in draw(st.lists(st.integers(0, 40), max_size=12, unique=True)):
            rows.append((arn, start + timedelta(days=k), draw(st.integers(0, 500_000)) / 100))
    if draw(st.booleans()):  # a cost row whose resource the scan no longer holds
        rows.append(("arn:aws:ec2:us-east-1:123456789012:instance/i-gone", date(2026, 11, 5), 12.34))
    period = draw(st.sampled_from(["last month", "in October", "last week", "since Nov 3", "last month MoM",
                                   "last 30 days", None]))
    return resources, rows, period


@pytest.mark.asyncio
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables())
async def test_team_figures_add_up(table) -> None:
    resources, rows, period = table
    f = Facts.build(ACCOUNT, 1, resources, rows, now=NOW)
    top = await run_tool(f, "top_spenders", {"by": "team", "n": 50, **({"period": period} if period else {})})
    if not top.ok:
        assert "No" in top.text
        return
    teams = {k: v for k, v in top.figures.items() if k not in ("total_usd", "previous_total_usd")}
    assert abs(sum(teams.values()) - top.figures["total_usd"]) <= 0.01 + 0.005 * len(teams)
    for team, usd in teams.items():
        if team == "no owner":
            continue
        one = await run_tool(f, "team_spend", {"team": team, **({"period": period} if period else {})})
        assert one.ok
        assert one.figures["total_usd" if period else "monthly_usd"] == pytest.approx(usd, abs=0.005), team


@pytest.mark.asyncio
async def test_signal_history_reads_the_changes_the_scan_kept() -> None:
    """A scan keeps each resource's last create/manage events with its evidence: signal_history shows
    them without searching every stored event (the store is not asked)."""

    class NoStore(MemoryStore):
        async def events(self, arn: str, limit: int = 50) -> list:  # pragma: no cover - must not be called
            raise AssertionError("the store was searched")

    kept = {"recent_changes": [["2026-11-20T10:00:00+00:00", "ModifyDBInstance", "role:ops", "ana@corp", None],
                               ["2026-11-02T09:30:00+00:00", "CreateDBInstance", "role:ci", None, None]]}
    res = [Res("arn:aws:rds:us-east-1:1:db:orders", "orders", "rds:db", monthly_usd=90.0, evidence=kept)]
    f = Facts.build("acct", 3, res, [], now=NOW, store=NoStore())
    r = await run(f, "signal_history", resource="orders")
    assert r.ok and [e["event_name"] for e in r.data["events"]] == ["CreateDBInstance", "ModifyDBInstance"]
    assert "2026-11-20 10:00 UTC `ModifyDBInstance` by `ana@corp`" in r.text and "$90.00/mo" in r.text

"""The business hierarchy (issue 10): ``engine.org`` (YAML parsing and its errors, case-insensitive
lookups, tag overrides, merging, the roll-up and a property test that it keeps the total),
``jobs.org.org_for`` (COSTDNA_ORG_FILE overlaid with the workspace's setting, broken sources ignored)
on SQLite and PostgreSQL, ``/costdna settings org …`` (approvers only, audited, the card) and the
digest's spend by business unit."""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack.render import check_message, to_message
from config.settings import Settings
from engine.org import NO_GROUP, NO_UNIT, Org, OrgError, rollup, rollup_items
from handlers import watch_views as wv
from handlers.commands import handle_command
from handlers.context import Services, Who
from handlers.org_settings import _folded, _unit_args, org_card
from jobs import digest as jd
from jobs import org as jorg
from jobs.org import org_for
from jobs.worker import job_context
from storage import repo
from storage.db import Database
from storage.models import DailyCost, Resource

YAML = """
business_units:
  payments-bu:
    group: commerce
    teams: [payments, checkout]
  Platform-BU:
    group: Engineering
    teams:
      - platform
      - data
"""

ADMIN = Who(platform="slack", workspace="T1", user_id="UADMIN", channel_id="C1")
BOB = Who(platform="slack", workspace="T1", user_id="UBOB", channel_id="C1")


@pytest.fixture
def org() -> Org:
    return Org.from_yaml(YAML)


# -- engine.org -----------------------------------------------------------------------------------


def test_parse_lookups_keep_spelling_and_ignore_case(org: Org) -> None:
    assert org.units == {"payments": "payments-bu", "checkout": "payments-bu", "platform": "Platform-BU",
                         "data": "Platform-BU"}
    assert org.groups == {"payments-bu": "commerce", "Platform-BU": "Engineering"}
    assert org.unit("payments") == "payments-bu" and org.unit("PAYMENTS") == "payments-bu"
    assert org.unit("data") == "Platform-BU" and org.group("Data") == "Engineering"
    assert org.unit("search") == "" and org.group("search") == "" and org.unit("") == ""
    assert org.level_of("platform-bu") == ("unit", "Platform-BU")
    assert org.level_of("ENGINEERING") == ("group", "Engineering")
    assert org.level_of("payments") is None and org.level_of("nope") is None
    assert org.teams_in("unit", "PAYMENTS-BU") == {"payments", "checkout"}
    assert org.teams_in("group", "engineering") == {"platform", "data"}
    assert org.teams_in("business_unit", "nope") == set()
    with pytest.raises(OrgError, match="unknown level"):
        org.teams_in("tribe", "x")
    assert not org.empty and Org().empty and Org.from_yaml("").empty and Org.from_yaml("business_units:").empty
    assert org.unit_names() == ["payments-bu", "Platform-BU"] and org.group_names() == ["commerce", "Engineering"]


def test_round_trips_through_dict_and_yaml(org: Org) -> None:
    assert Org.from_dict(org.to_dict()) == org
    assert Org.from_yaml(org.to_yaml()) == org
    assert org.to_dict()["business_units"]["payments-bu"] == {"group": "commerce", "teams": ["payments", "checkout"]}
    custom = Org.from_yaml("business_units: {x: [a]}\nunit_keys: [Cost-Center]\ngroup_keys: division")
    assert custom.unit_keys == ("cost_center",) and custom.group_keys == ("division",)
    assert Org.from_dict(custom.to_dict()) == custom
    # friendly short forms: a unit as a bare list, teams as a comma-separated string, no group
    short = Org.from_yaml("business_units:\n  a-bu: [x, y]\n  b-bu: {teams: 'z, w'}")
    assert short.units == {"x": "a-bu", "y": "a-bu", "z": "b-bu", "w": "b-bu"} and short.groups == {}
    assert short.group("x") == ""


@pytest.mark.parametrize(("text", "message"), [
    ("business_units: [", "malformed at line 1"),
    ("business_units:\n  a: {teams: [x]\n", "malformed at line"),
    ("- just a list", "must be a mapping"),
    ("teams: [a]", "unknown key"),
    ("business_units: [a, b]", "must map each business unit"),
    ("business_units: {a-bu: {teams: [x]}, b-bu: {teams: [X]}}", "team 'X' is in two business units: 'a-bu' and 'b-bu'"),
    ("business_units: {a-bu: {group: g}}", "'a-bu' has no teams"),
    ("business_units: {a-bu: {teams: []}}", "'a-bu' has no teams"),
    ("business_units: {a-bu: }", "'a-bu' has no teams"),
    ("business_units: {123: {teams: [x]}}", "business unit name must be text, got 123"),
    ("business_units: {a-bu: {teams: [x, yes]}}", "team of business unit 'a-bu' must be text, got True"),
    ("business_units: {a-bu: {teams: [x, null]}}", "must be text, got None"),
    ("business_units: {a-bu: {group: 7, teams: [x]}}", "group of business unit 'a-bu' must be text"),
    ("business_units: {a-bu: {teams: [' ']}}", "is empty"),
    ("business_units: {a-bu: {teams: [x]}, A-BU: {teams: [y]}}", "defined twice"),
    ("business_units: {a-bu: {teams: [x], owner: bob}}", "unknown key(s) owner"),
    ("business_units: {a-bu: {teams: {x: 1}}}", "must be a list"),
    ("business_units: {a-bu: [x]}\nunit_keys: []", "unit_keys must be a list"),
])
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(OrgError) as e:
        Org.from_yaml(text)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_a_team_listed_twice_in_one_unit_is_counted_once() -> None:
    assert Org.from_yaml("business_units: {a: {teams: [x, X, x]}}").units == {"x": "a"}


def test_direct_construction_validates_names() -> None:
    with pytest.raises(OrgError, match="listed twice"):
        Org(units={"x": "a", "X": "b"})
    with pytest.raises(OrgError, match="must be text"):
        Org(units={"x": 3})  # type: ignore[dict-item]
    o = Org(units={"x": "A-bu", "y": "a-BU"}, groups={"A-BU": "g"})
    assert o.units == {"x": "A-bu", "y": "A-bu"} and o.groups == {"A-bu": "g"}  # first spelling wins


def test_tags_override_the_teams_unit_and_group(org: Org) -> None:
    assert org.unit("payments", {"business_unit": "Platform-bu"}) == "Platform-BU"  # configured spelling
    for key in ("Business-Unit", "BusinessUnit", "user:business_unit", "resourceTags/user:bu", "BU"):
        assert org.unit("payments", {key: "platform-bu"}) == "Platform-BU", key
    assert org.unit("payments", {"business_unit": "  "}) == "payments-bu"  # an empty tag says nothing
    assert org.unit("payments", {"team": "platform-bu"}) == "payments-bu"  # other keys don't count
    assert org.unit("", {"bu": "labs-bu"}) == "labs-bu"  # an unconfigured unit is still the resource's
    assert org.group("payments", {"bu": "platform-bu"}) == "Engineering"  # via the tagged unit
    assert org.group("payments", {"business_group": "research"}) == "research"
    assert org.group("payments", {"BusinessGroup": "ENGINEERING"}) == "Engineering"
    assert org.group("", {"bu": "labs-bu"}) == ""
    assert org.unit("payments", None) == "payments-bu"
    custom = Org.from_yaml("business_units: {a: [x]}\nunit_keys: [cost_center]")
    assert custom.unit("x", {"CostCenter": "b"}) == "a"  # "costcenter" is not "cost_center"
    assert custom.unit("x", {"cost-center": "b"}) == "b" and custom.unit("x", {"bu": "b"}) == "a"


def test_rollup_by_unit_and_group(org: Org) -> None:
    spend = {"payments": 10.0, "checkout": 5.0, "data": 2.5, "Platform": 1.0, "search": 4.0}
    assert rollup(spend, org, "unit") == {"payments-bu": 15.0, "Platform-BU": 3.5, NO_UNIT: 4.0}
    assert rollup(spend, org, "group") == {"commerce": 15.0, "Engineering": 3.5, NO_GROUP: 4.0}
    assert rollup(spend, org, "team") == spend
    assert rollup({}, org, "unit") == {}
    assert rollup(spend, Org(), "unit") == {NO_UNIT: 22.5}
    with pytest.raises(OrgError):
        rollup(spend, org, "tribe")
    items = [("payments", {"business_unit": "platform-bu"}, 7.0), ("payments", {}, 3.0), ("", {"bu": "labs"}, 1.0),
             ("", None, 2.0)]
    assert rollup_items(items, org, "unit") == {"Platform-BU": 7.0, "payments-bu": 3.0, "labs": 1.0, NO_UNIT: 2.0}
    assert rollup_items(items, org, "group") == {"Engineering": 7.0, "commerce": 3.0, NO_GROUP: 3.0}


def test_merge_other_wins(org: Org) -> None:
    ws = Org.from_yaml("""
business_units:
  PAYMENTS-BU: {teams: [payments]}          # redefined: checkout leaves it, the group stays
  growth-bu: {group: commerce, teams: [checkout, data]}   # data moves out of Platform-BU
""")
    m = org.merged(ws)
    assert m.unit("payments") == "PAYMENTS-BU" and m.group("payments") == "commerce"
    assert m.unit("checkout") == "growth-bu" and m.unit("data") == "growth-bu" and m.unit("platform") == "Platform-BU"
    assert m.teams_in("group", "commerce") == {"payments", "checkout", "data"}
    assert org.merged(Org()) == org and Org().merged(org) == org
    # a file unit whose every team moved away is gone, with its group
    gone = Org.from_yaml("business_units: {a: {group: g, teams: [x]}}").merged(Org.from_yaml("business_units: {b: [x]}"))
    assert gone.unit_names() == ["b"] and gone.groups == {}
    keys = Org.from_yaml("business_units: {a: [x]}\nunit_keys: [cc]").merged(Org.from_yaml("business_units: {b: [y]}"))
    assert keys.unit_keys == ("cc",)


def test_with_and_without_unit(org: Org) -> None:
    o = org.with_unit("payments-bu", ["payments", "search"])
    assert o.teams_in("unit", "payments-bu") == {"payments", "search"} and o.unit("checkout") == ""
    assert o.group("search") == "commerce"  # group kept
    o2 = o.with_unit("PLATFORM-bu", ["search"], "infra")
    assert o2.unit("search") == "Platform-BU" and o2.group("search") == "infra"
    assert o2.teams_in("unit", "payments-bu") == {"payments"}
    with pytest.raises(OrgError, match="no teams"):
        org.with_unit("x", [])
    w = org.without_unit("PAYMENTS-BU")
    assert w.unit_names() == ["Platform-BU"] and w.unit("payments") == ""


names = st.text(alphabet="abcdefgXYZ-_ ", min_size=1, max_size=6).filter(lambda s: s.strip())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(teams=st.lists(names, min_size=0, max_size=12, unique_by=lambda s: s.strip().casefold()),
       units=st.lists(names, min_size=1, max_size=4, unique_by=lambda s: s.strip().casefold()), groups=st.lists(names, min_size=1, max_size=3),
       data=st.data())
def test_rollup_preserves_the_total(teams: list[str], units: list[str], groups: list[str], data: Any) -> None:
    assigned = {t: data.draw(st.sampled_from(units)) for t in teams if data.draw(st.booleans())}
    org = Org(units=assigned, groups={u: data.draw(st.sampled_from(groups)) for u in set(assigned.values())
                                      if data.draw(st.booleans())})
    amount = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False, allow_infinity=False)
    spend = {t: data.draw(amount) for t in teams + ["not-in-org"]}
    total = sum(spend.values())
    for level in ("unit", "group", "team"):
        rolled = rollup(spend, org, level)
        assert math.isclose(sum(rolled.values()), total, rel_tol=1e-9, abs_tol=1e-3)
        assert all(v == 0 or k for k, v in rolled.items())  # every dollar has a named bucket
    assert set(rollup(spend, org, "unit")) <= {*org.unit_names(), NO_UNIT}
    tags = [data.draw(st.sampled_from([None, {}, {"bu": "tagged-bu"}, {"business_group": "tagged-g"}]))
            for _ in spend]
    items = [(t, tg, v) for (t, v), tg in zip(spend.items(), tags, strict=True)]
    for level in ("unit", "group"):
        assert math.isclose(sum(rollup_items(items, org, level).values()), total, rel_tol=1e-9, abs_tol=1e-3)


# -- jobs.org.org_for -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_org_for_merges_the_file_and_the_workspace(db_url: str, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "org.yaml"
    f.write_text(YAML)
    cfg = Settings(data_dir=tmp_path, org_file=f)
    db = await Database(db_url).init()
    try:
        async with db.session() as s:
            ws = await repo.get_or_create_workspace(s, "slack", "T1")
            assert (await org_for(s, ws, cfg)) == Org.from_yaml(YAML)
            assert (await org_for(s, None, cfg)) == Org.from_yaml(YAML)
            assert (await org_for(s, ws, Settings(data_dir=tmp_path))).empty
            own = Org.from_yaml("business_units: {growth-bu: {group: commerce, teams: [checkout, search]}}")
            await repo.update_workspace_settings(s, ws, actor="t", org=own.to_dict())
        async with db.session() as s:
            ws = await repo.get_or_create_workspace(s, "slack", "T1")
            assert ws.settings["org"] == own.to_dict()
            m = await org_for(s, ws, cfg)
            assert m.unit("checkout") == "growth-bu" and m.unit("payments") == "payments-bu"
            assert m.unit("search") == "growth-bu" and m.group("data") == "Engineering"
            assert (await org_for(s, ws, Settings(data_dir=tmp_path))) == own

            # a broken file: a warning, never an exception; the workspace's setting still applies
            f.write_text("business_units:\n  a: {teams: [x]}\n  b: {teams: [x]}\n")
            with caplog.at_level(logging.WARNING, logger="costdna.jobs.org"):
                assert (await org_for(s, ws, cfg)) == own
                assert (await org_for(s, ws, cfg)) == own
            warned = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
            assert len(warned) == 1 and "two business units" in warned[0]  # once per version of the file
            caplog.clear()
            f.write_text("business_units: [\n")
            with caplog.at_level(logging.WARNING, logger="costdna.jobs.org"):
                assert (await org_for(s, None, cfg)).empty
            assert "malformed" in caplog.text
            with caplog.at_level(logging.WARNING, logger="costdna.jobs.org"):
                assert (await org_for(s, None, Settings(data_dir=tmp_path, org_file=tmp_path / "nope.yaml"))).empty
            assert "cannot be read" in caplog.text

            # a broken workspace setting is ignored the same way
            ws.settings = {**ws.settings, "org": {"business_units": {"x": {"teams": []}}}}
            f.write_text(YAML)
            with caplog.at_level(logging.WARNING, logger="costdna.jobs.org"):
                assert (await org_for(s, ws, cfg)) == Org.from_yaml(YAML)
            assert "its org setting is ignored" in caplog.text
    finally:
        await db.close()
        jorg._FILE_CACHE.clear()


def test_org_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COSTDNA_ORG_FILE", str(tmp_path / "org.yaml"))
    assert Settings(data_dir=tmp_path).org_file == tmp_path / "org.yaml"


# -- /costdna settings org ----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def svc(tmp_path: Path) -> Any:
    f = tmp_path / "org.yaml"
    f.write_text("business_units:\n  core-bu: {group: engineering, teams: [platform]}\n")
    cfg = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", redis_url=None,
                   job_timeout=60, job_tries=1, workers=1, approvers="UADMIN", org_file=f)
    ctx = await job_context(cfg)
    try:
        yield Services(db=ctx["db"], queue=None, settings=cfg)
    finally:
        await ctx["db"].close()
        jorg._FILE_CACHE.clear()


async def _ws_org(svc: Services) -> dict:
    async with svc.db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        return dict((ws.settings or {}).get("org") or {})


async def _audits(svc: Services) -> list[Any]:
    async with svc.db.session() as s:
        return await repo.audit_entries(s, action="settings.org")


def _card(reply: Any) -> Any:
    card = reply.posts[0].card
    msg = to_message(card)
    assert check_message(msg) == [], check_message(msg)
    return card


@pytest.mark.asyncio
async def test_settings_org_show_set_remove(svc: Services) -> None:
    shown = _card(await handle_command(svc, BOB, "settings org"))
    assert "core-bu" in shown.text() and "engineering" in shown.text() and "platform" in shown.text()
    assert "COSTDNA_ORG_FILE" in shown.text() and shown.ephemeral

    refused = _card(await handle_command(svc, BOB, "settings org unit payments-bu teams payments,checkout"))
    assert refused.kind == "error" and "approver" in refused.text() and "UADMIN" in refused.context
    assert await _ws_org(svc) == {} and await _audits(svc) == []

    ok = _card(await handle_command(svc, ADMIN, "/costdna settings org unit payments-bu teams payments, checkout "
                                                "group commerce"))
    text = ok.text()
    assert "*commerce*" in text and "• *payments-bu*: checkout, payments" in text and "core-bu" in text
    assert await _ws_org(svc) == {"business_units": {"payments-bu": {"group": "commerce",
                                                                     "teams": ["payments", "checkout"]}}}
    audits = await _audits(svc)
    assert len(audits) == 1 and audits[0].actor == "UADMIN"
    assert audits[0].details["unit"] == "payments-bu" and audits[0].details["teams"] == ["payments", "checkout"]

    # a team moved out of the file's unit, the group kept when none is given, the name in any case
    moved = _card(await handle_command(svc, ADMIN, "settings org unit PAYMENTS-BU teams payments platform"))
    assert "• *payments-bu*: payments, platform" in moved.text() and "core-bu" not in moved.text()
    assert "*commerce*" in moved.text()
    one = _card(await handle_command(svc, BOB, "settings org unit payments-bu"))
    assert "payments-bu" in one.text() and "platform" in one.text()
    missing = _card(await handle_command(svc, BOB, "settings org unit nope-bu"))
    assert missing.kind == "error"

    assert _card(await handle_command(svc, BOB, "settings org unit payments-bu off")).kind == "error"
    off = _card(await handle_command(svc, ADMIN, "settings org unit Payments-BU off"))
    assert "payments-bu" in off.text() and "removed" in off.text() and "core-bu" in off.text()
    assert await _ws_org(svc) == {"business_units": {}}
    file_unit = _card(await handle_command(svc, ADMIN, "settings org unit core-bu off"))
    assert file_unit.kind == "error" and "COSTDNA_ORG_FILE" in file_unit.text()
    assert [a.details["op"] for a in await _audits(svc)] == ["unit_off", "unit", "unit"]

    bad = _card(await handle_command(svc, ADMIN, "settings org unit x-bu payments"))
    assert bad.kind == "help"
    assert _card(await handle_command(svc, ADMIN, "settings org frobnicate")).kind == "help"
    help_text = _card(await handle_command(svc, BOB, "help")).text()
    assert "settings org" in help_text


@pytest.mark.asyncio
async def test_settings_org_yaml(svc: Services) -> None:
    block = ("settings org yaml ```business_units:\n  payments-bu:\n    group: commerce\n    teams: [payments, "
             "checkout]\n  data-bu:\n    teams:\n      - data\n      - ml\n```")
    assert _card(await handle_command(svc, BOB, block)).kind == "error"
    # handle_command splits on whitespace: the block arrives folded, and is still read
    ok = _card(await handle_command(svc, ADMIN, block))
    assert "payments-bu" in ok.text() and "data-bu" in ok.text() and "ml" in ok.text()
    assert await _ws_org(svc) == {"business_units": {"payments-bu": {"group": "commerce",
                                                                     "teams": ["payments", "checkout"]},
                                                     "data-bu": {"teams": ["data", "ml"]}}}
    flow = "settings org yaml `{business_units: {ops-bu: {group: engineering, teams: [ops]}}}`"
    assert "ops-bu" in _card(await handle_command(svc, ADMIN, flow)).text()
    assert list((await _ws_org(svc))["business_units"]) == ["ops-bu"]  # replaced, not merged
    shown = _card(await handle_command(svc, BOB, "settings org yaml"))
    assert "ops-bu:" in shown.text() and "core-bu:" in shown.text() and "```" in shown.text()

    two = _card(await handle_command(svc, ADMIN, "settings org yaml ```business_units: a: teams: [x] b: teams: [x]```"))
    assert two.kind == "error" and "two business units" in two.text()
    broken = _card(await handle_command(svc, ADMIN, "settings org yaml {business_units: [}"))
    assert broken.kind == "error" and "not a business hierarchy" in broken.text()
    assert list((await _ws_org(svc))["business_units"]) == ["ops-bu"]  # nothing written on a refusal
    cleared = _card(await handle_command(svc, ADMIN, "settings org yaml off"))
    assert "cleared" in cleared.text() and await _ws_org(svc) == {"business_units": {}}
    assert [a.details["op"] for a in await _audits(svc)] == ["clear", "yaml", "yaml"]


def test_folded_block_and_unit_args() -> None:
    folded = _folded("business_units: payments-bu: group: Commerce Org teams: - payments - checkout "
                     "'data-bu': teams: [data, ml]")
    assert folded == {"business_units": {"payments-bu": {"group": "Commerce Org", "teams": ["payments", "checkout"]},
                                         "data-bu": {"teams": ["data", "ml"]}}}
    with pytest.raises(OrgError, match="unexpected"):
        _folded("stray words")
    assert _unit_args(["teams", "a,b", "c"]) == (["a", "b", "c"], None)
    assert _unit_args(["group", "g", "h", "teams", "a"]) == (["a"], "g h")
    assert _unit_args(["a,b"]) is None and _unit_args(["teams"]) is None and _unit_args(["group", "g"]) is None


def test_org_card_empty_and_valid() -> None:
    card = org_card(Org())
    assert "No business units yet" in card.text() and check_message(to_message(card)) == []


# -- the digest ---------------------------------------------------------------------------------------


A, B, C, D = (f"arn:aws:ec2:us-east-1:1:instance/i-{x}" for x in "abcd")
NOW = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)  # the digest's day: 2026-11-10


@pytest.mark.asyncio
async def test_digest_spend_by_business_unit(db_url: str, tmp_path: Path) -> None:
    db = await Database(db_url).init()
    cfg = Settings(data_dir=tmp_path)
    try:
        async with db.session() as s:
            ws = await repo.get_or_create_workspace(s, "slack", "T1")
            acct = await repo.add_account(s, "acct", "synthetic", workspace_id=ws.id)
            for d in range(3):
                day = date(2026, 11, 8) + timedelta(days=d)
                for arn, usd in ((A, 100.0), (B, 20.0), (C, 7.5), (D, 1.25)):
                    s.add(DailyCost(account_id=acct.id, arn=arn, day=day, cost_usd=usd * (d + 1)))
            for arn, team in ((A, "payments"), (B, "checkout"), (C, "data")):
                await repo.add_label(s, acct.id, arn, team, source="human")
            s.add(Resource(account_id=acct.id, arn=C, resource_id="i-c", tags={"Business-Unit": "Payments-BU"}))
        async with db.session() as s:
            plain = await jd.digest_data(s, await repo.get_account(s, acct.id), NOW, settings=cfg)
        assert "units" not in plain  # no hierarchy configured: nothing added
        assert "business unit" not in wv.digest_card(plain, chart=False).text()

        async with db.session() as s:
            ws = await repo.get_or_create_workspace(s, "slack", "T1")
            await repo.update_workspace_settings(s, ws, org=Org.from_yaml(YAML).to_dict())
        async with db.session() as s:
            data = await jd.digest_data(s, await repo.get_account(s, acct.id), NOW, settings=cfg)
        assert data["day"] == "2026-11-10"
        # payments and checkout, plus data's resource C that a business_unit tag puts in payments-bu
        assert data["units"] == [
            {"unit": "payments-bu", "group": "commerce", "cost_usd": 382.5, "teams": ["payments", "checkout", "data"]},
            {"unit": NO_UNIT, "group": "", "cost_usd": 3.75, "teams": [jd.NO_TEAM]},
        ]
        assert sum(u["cost_usd"] for u in data["units"]) == pytest.approx(data["yesterday_usd"])
        team_y = {m["team"]: m["yesterday_usd"] for m in data["movers"]["teams"]}
        assert data["units"][0]["cost_usd"] == pytest.approx(team_y["payments"] + team_y["checkout"] + team_y["data"])
        card = wv.digest_card(data, chart=False)
        assert "*By business unit*: payments-bu $382.50 · (no unit) $3.75" in card.text()
        assert check_message(to_message(card)) == []
        import json

        json.dumps(data)
    finally:
        await db.close()


def test_digest_card_caps_the_unit_line() -> None:
    data = {"day": "2026-11-10", "units": [{"unit": f"u{i}", "group": "", "cost_usd": 1000.0 + i, "teams": []}
                                           for i in range(10)]}
    text = wv.digest_card(data, chart=False).text()
    assert "u0 $1,000.00 · u1 $1,001.00" in text and "u8" not in text and "2 more" in text


@pytest.mark.asyncio
async def test_settings_org_redefines_a_file_unit_in_its_spelling(svc: Services) -> None:
    ok = _card(await handle_command(svc, ADMIN, "settings org unit CORE-BU teams platform,sre"))
    assert "*core-bu* (group *engineering*) now has platform, sre." in ok.text()
    assert "• *core-bu*: platform, sre" in ok.text()  # redefined here: no longer marked as the file's
    assert await _ws_org(svc) == {"business_units": {"core-bu": {"teams": ["platform", "sre"]}}}

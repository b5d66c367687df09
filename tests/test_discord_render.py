"""The Discord renderer: Card -> embeds + persistent components + files, within Discord's limits.

The biggest cards (scan summary, digest, ask answer, spike alert, spike list, a question with many teams)
stay within title 256 / description 4096 / 25 fields / 1024 per field / 6000 per message / 5 rows of 5;
every action id ``handle_action`` knows survives the custom_id round trip through the DynamicItem
classes; an over-long value is refused (left out and logged), never cut; and
``manifests/discord_commands.json`` is the command tree's own JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.discord import render
from bot.discord.render import (
    MAX_CUSTOM_ID,
    CardButton,
    CardSelect,
    CustomIdTooLong,
    button_custom_id,
    check_message,
    markdown,
    parse_custom_id,
    to_message,
)
from engine.ask.answer import Answer
from handlers import actions, views
from handlers import watch_views as wv
from handlers.ask import answer_card
from handlers.cards import Button, Card, Image, Option, Section, Select

ROOT = Path(__file__).resolve().parent.parent
H0 = 490_000
LONG = "word " * 3000  # 15,000 characters


def _series(n: int = 72, at: int = 50, width: int = 6) -> list[list[float]]:
    return [[H0 + i, 1.0 + (9.0 if at <= i < at + width else 0.0), 1.0] for i in range(n)]


def fake_spike(i: int = 1, **kw: Any) -> SimpleNamespace:
    d = dict(id=i, nonce=f"nonce{i:011d}", arn=f"arn:aws:ec2:us-east-1:1:instance/i-{i:04d}",
             resource_id=f"i-{i:04d}", resource_type="ec2:instance", instance_type="p4d.24xlarge",
             kind="statistical", start=(H0 + 50) * 3600.0, end=(H0 + 56) * 3600.0, ongoing=False,
             peak_usd_per_hour=10.0, baseline_usd_per_hour=1.0, extra_usd=54.0, severity="warning",
             reasons=["cost 10× its usual level"] * 20, score=7.5, owner_team="payments", owner_confidence=0.9,
             owner_source="predicted",
             cause={"kind": "deploy", "commit": "abc1234def", "repo": "payments/api", "actor": "ci-payments",
                    "time": "2025-11-26T10:00:00Z", "p_value": 0.003,
                    "evidence": [f"deploy abc123 {n} min before " + "x" * 200 for n in range(30)]},
             status="open", snooze_until=None, series=_series())
    d.update(kw)
    return SimpleNamespace(**d)


def _ok(card: Card) -> render.Message:
    msg = to_message(card)
    assert check_message(msg) == [], check_message(msg)
    (embed,) = msg.embeds
    assert len(embed) <= render.MAX_MESSAGE
    assert len(embed.title or "") <= 256 and len(embed.description or "") <= 4096 and len(embed.fields) <= 25
    assert all(len(f.value) <= 1024 and len(f.name) <= 256 for f in embed.fields)
    payload = embed.to_dict()  # what goes over the wire serialises
    json.dumps(payload)
    if msg.view is not None:
        rows = msg.view.to_components()
        assert len(rows) <= 5 and all(len(r["components"]) <= 5 for r in rows)
        assert not msg.view.is_dispatchable()  # not stored per message: the dynamic items dispatch each click once
    return msg


# -- the biggest cards -----------------------------------------------------------------------------


def big_summary() -> Card:
    teams = {f"team-{i:02d}-" + "x" * 40: {"cost_usd": 1000.0 * i, "resources": i, "inferred_resources": i // 2}
             for i in range(40)}
    summary = {"resources": 12000, "total_cost_usd": 1.2e6, "untagged_resources": 7000, "untagged_cost_usd": 6e5,
               "confidence_threshold": 0.7, "attributable_cost_usd": 5e5, "attributable_resources": 5000,
               "no_team_count": 40, "tag_conflict_count": 12, "teams": teams, "issue_count": 3,
               "missing": [f"source-{i}" for i in range(100)], "duplicate_exports": ["a"] * 5}
    scan = SimpleNamespace(id=42, status="succeeded", summary=summary, stage="", progress=100.0, requested_by="1")
    return views.scan_card(scan, SimpleNamespace(name="prod-" + "y" * 300))


def big_digest() -> Card:
    data = {"account": "prod", "day": "2026-12-06", "yesterday_usd": 1234.5, "avg7_usd": 1000.0,
            "movers": {"resources": [{"arn": f"a{i}", "resource_id": f"i-{i:017d}", "team": "web" * 10,
                                      "yesterday_usd": 300, "avg7_usd": 100, "delta_usd": 200} for i in range(50)],
                       "teams": [{"team": f"team-{i}" * 5, "yesterday_usd": 600, "avg7_usd": 400, "delta_usd": 200}
                                 for i in range(50)]},
            "untagged_by_day": [[f"2026-11-{d:02d}", 100 - d] for d in range(1, 29)],
            "open_spikes": [{"id": i, "resource_id": f"i-{i:017d}", "extra_usd": 50, "owner_team": "web",
                             "status": "snoozed", "snooze_until": "2026-12-08T10:00:00Z"} for i in range(60)],
            "drift": {"new": [{"arn": f"x{i}", "resource_id": f"i-new-{i}"} for i in range(80)], "gone": [],
                      "owner_changed": []},
            "queue": {"prompts": 4, "approvals": 1},
            "by_team_day": {f"t{i}": [["2026-12-05", 10], ["2026-12-06", 12]] for i in range(20)},
            "paused": True}
    return wv.digest_card(data, SimpleNamespace(name="prod"))


def big_answer() -> Card:
    a = Answer(question="why did our bill spike Tuesday?", title="Why the bill rose on Tuesday " + "z" * 400,
               text="\n".join(f"• *i-{i:017d}* rose by $1,234.00 — deploy <https://example.com/c/{i}|abc{i}> "
                              "by `ci-payments`" + " more words" * 10 for i in range(200)),
               citations=[f"i-{i:017d}" for i in range(200)], note="answered offline " * 50)
    return answer_card(a)


def big_alert() -> Card:
    route = SimpleNamespace(users=[], emails=[], channel="1", fallback=True, guess=True, team="payments")
    teams = [f"team-{i:03d}" for i in range(60)]
    return wv.alert_card(fake_spike(), SimpleNamespace(name="prod"), route, teams=teams, now=(H0 + 57) * 3600.0)


def big_prompt() -> Card:
    prompt = SimpleNamespace(id=123456, nonce="Abc_def-ghi12345", arn="arn:aws:s3:::bucket")
    pred = SimpleNamespace(resource_id="bucket", type="s3:bucket", monthly_cost_usd=99.0, evidence={},
                           probabilities={"payments": 0.5, "data": 0.3, "web": 0.2}, team="payments",
                           confidence=0.5)
    return views.prompt_card(prompt, pred, [f"team-{i:03d}" for i in range(80)])


BIG = {"summary": big_summary, "digest": big_digest, "ask": big_answer, "alert": big_alert, "prompt": big_prompt}


@pytest.mark.parametrize("name", sorted(BIG))
def test_biggest_cards_stay_within_discord_limits(name: str) -> None:
    card = BIG[name]()
    msg = _ok(card)
    embed = msg.embeds[0]
    assert embed.title  # never empty
    if card.image is not None:
        assert [f.filename for f in msg.files] == [card.image.filename]
        assert embed.image.url == f"attachment://{card.image.filename}"


def test_alert_buttons_and_assign_select_survive_with_their_values() -> None:
    msg = _ok(big_alert())
    ids = [c["custom_id"] for r in msg.view.to_components() for c in r["components"]]
    parsed = [parse_custom_id(c) for c in ids]
    assert ("spike_expected", "1.nonce00000000001") in parsed
    assert ("spike_snooze", "1.nonce00000000001.24h") in parsed and ("spike_snooze", "1.nonce00000000001.7d") in parsed
    # 60 teams: the assign select is split into selects of 25 options (each its own row, own custom_id)
    selects = [c for r in msg.view.to_components() for c in r["components"] if c["type"] == 3]
    assert selects and all(len(s["options"]) <= 25 for s in selects)
    assert len({s["custom_id"] for s in selects}) == len(selects)


def test_too_many_rows_are_dropped_logged_and_said(caplog: pytest.LogCaptureFixture) -> None:
    spikes = [fake_spike(i) for i in range(1, 11)]
    card = wv.spikes_list_card(spikes, SimpleNamespace(name="prod"), now=(H0 + 57) * 3600.0)
    with caplog.at_level(logging.WARNING, logger="costdna.discord"):
        msg = _ok(card)
    assert len(card.buttons) > 25
    assert "left out" in caplog.text
    assert "did not fit" in msg.embeds[0].footer.text


def test_long_texts_are_cut_with_an_ellipsis_and_said() -> None:
    card = Card(title="T" * 400, sections=[Section(LONG, fields=[("k" * 300, "v" * 2000)] * 40), Section(LONG)],
                context="c" * 3000)
    msg = _ok(card)
    e = msg.embeds[0]
    assert e.title.endswith("…") and e.description.endswith("…")
    assert "shortened to fit Discord" in e.footer.text


def test_markdown_is_discord_markdown() -> None:
    assert markdown("*bold* _it_ `*code*` <https://x.y/z|link> <https://a.b> <@123> <#456> <!here>") == \
        "**bold** _it_ `*code*` [link](https://x.y/z) https://a.b <@123> <#456> @here"
    assert markdown("a * b * c") == "a * b * c"  # multiplication, not bold
    assert markdown("**already**") == "**already**"


def test_image_is_attached_as_a_file() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    msg = _ok(Card(title="chart", image=Image(png=png, alt="spend", filename="spend by day.png")))
    assert msg.files[0].filename == "spend_by_day.png"
    assert msg.embeds[0].image.url == "attachment://spend_by_day.png"
    assert msg.kwargs(edit=True)["attachments"] == msg.files
    assert msg.kwargs(edit=True)["view"] is None  # an edit removes old buttons


# -- custom ids: every action handle_action knows --------------------------------------------------

ACTION_VALUES = {
    views.LABEL_TEAM: "123456.Abc_def-ghi12345.payments.eu",
    views.LABEL_OTHER: "123456.Abc_def-ghi12345.data",
    views.LABEL_SKIP: "123456.Abc_def-ghi12345",
    views.CS_APPROVE: "77.Abc_def-ghi12345",
    views.CS_REJECT: "77.Abc_def-ghi12345",
    views.CS_ROLLBACK: "77.Abc_def-ghi12345",
    wv.SPIKE_EXPECTED: "9.Abc_def-ghi12345",
    wv.SPIKE_SNOOZE: "9.Abc_def-ghi12345.7d",
    wv.SPIKE_EXPLAIN: "9.Abc_def-ghi12345",
    wv.SPIKE_NOT_OURS: "9.Abc_def-ghi12345",
    wv.SPIKE_ASSIGN: "9.Abc_def-ghi12345.web:team",
}


def test_every_known_action_id_has_a_value_here() -> None:
    known = set(actions.LABEL_ACTIONS) | {views.LABEL_SKIP} | set(actions.CS_ACTIONS) | set(wv.SPIKE_ACTIONS)
    assert known == set(ACTION_VALUES)


class _Interaction:
    def __init__(self, values: list[str] | None = None) -> None:
        self.data = {"values": values or []}


@pytest.mark.parametrize("action_id", sorted(ACTION_VALUES))
def test_button_custom_id_round_trip(action_id: str) -> None:
    value = ACTION_VALUES[action_id]
    msg = _ok(Card(title="t", buttons=[Button("go", action_id, value)]))
    (item,) = msg.view.children
    cid = item.custom_id
    assert len(cid) <= MAX_CUSTOM_ID
    m = CardButton.__discord_ui_compiled_template__.match(cid)
    assert m is not None and CardSelect.__discord_ui_compiled_template__.match(cid) is None

    async def go() -> CardButton:
        return await CardButton.from_custom_id(_Interaction(), item.item, m)

    again = asyncio.run(go())
    assert (again.action_id, again.value) == (action_id, value)
    assert parse_custom_id(cid) == (action_id, value)


@pytest.mark.parametrize("action_id", [views.LABEL_OTHER, wv.SPIKE_ASSIGN])
def test_select_round_trip_and_the_chosen_value_is_dispatched(action_id: str) -> None:
    value = ACTION_VALUES[action_id]
    msg = _ok(Card(title="t", selects=[Select("pick", action_id, (Option("one", value), Option("two", value + "x")))]))
    (item,) = msg.view.children
    m = CardSelect.__discord_ui_compiled_template__.fullmatch(item.custom_id)
    assert m is not None and CardButton.__discord_ui_compiled_template__.match(item.custom_id) is None
    got: list[tuple[str, str]] = []

    async def handler(interaction: Any, action: str, val: str) -> None:
        got.append((action, val))

    async def go() -> None:
        render.set_action_handler(handler)
        again = await CardSelect.from_custom_id(_Interaction([value]), item.item, m)
        assert again.custom_id == item.custom_id
        await again.callback(_Interaction([value]))

    asyncio.run(go())
    assert got == [(action_id, value)]


def test_button_click_dispatches_action_and_value() -> None:
    got: list[tuple[str, str]] = []

    async def handler(interaction: Any, action: str, val: str) -> None:
        got.append((action, val))

    async def go() -> None:
        render.set_action_handler(handler)
        cid = button_custom_id(views.CS_APPROVE, "77.n")
        m = CardButton.__discord_ui_compiled_template__.match(cid)
        item = await CardButton.from_custom_id(_Interaction(), discord.ui.Button(label="x", custom_id=cid), m)
        await item.callback(_Interaction())

    asyncio.run(go())
    assert got == [(views.CS_APPROVE, "77.n")]


def test_duplicate_buttons_get_distinct_custom_ids() -> None:
    msg = _ok(Card(title="t", buttons=[Button("a", "label_skip", "1.n"), Button("b", "label_skip", "1.n")]))
    ids = [c.custom_id for c in msg.view.children]
    assert len(set(ids)) == 2 and all(parse_custom_id(i) == ("label_skip", "1.n") for i in ids)

    async def again(cid: str) -> str:
        m = CardButton.__discord_ui_compiled_template__.fullmatch(cid)
        return (await CardButton.from_custom_id(_Interaction(), discord.ui.Button(custom_id=cid), m)).custom_id

    assert [asyncio.run(again(i)) for i in ids] == ids  # the recreated item is the clicked one


def test_over_long_value_is_refused_never_cut(caplog: pytest.LogCaptureFixture) -> None:
    long_value = "123456.Abc_def-ghi12345." + "t" * 120
    with pytest.raises(CustomIdTooLong):
        button_custom_id(views.LABEL_TEAM, long_value)
    with caplog.at_level(logging.ERROR, logger="costdna.discord"):
        msg = _ok(Card(title="Who owns this?", buttons=[Button("ok", views.LABEL_SKIP, "1.n"),
                                                         Button("long", views.LABEL_TEAM, long_value)],
                       selects=[Select("x", views.LABEL_OTHER, (Option("long", long_value), Option("ok", "1.n.a")))]))
    ids = [c.custom_id for c in msg.view.children]
    assert ids == ["cd:label_skip:1.n", "cds:label_other#0:"]
    opts = [o.value for c in msg.view.children if isinstance(c, CardSelect) for o in c.item.options]
    assert opts == ["1.n.a"]  # the long option left out, not cut
    assert "refused" in caplog.text
    assert "could not be shown" in msg.embeds[0].footer.text


def test_foreign_custom_ids_do_not_parse() -> None:
    for cid in ("", "label_team:1.n", "cd:Label:1", "cd::x", "other:cs_approve:1.n", "cds:label_other:"):
        assert parse_custom_id(cid) is None, cid


# -- the command manifest --------------------------------------------------------------------------


def test_manifest_matches_the_command_tree() -> None:
    from bot.discord.app import command_payloads

    stored = json.loads((ROOT / "manifests" / "discord_commands.json").read_text())
    assert stored == json.loads(json.dumps(command_payloads())), \
        "regenerate: python -m bot.discord.manifest > manifests/discord_commands.json"
    (group,) = stored
    subs = {o["name"] for o in group["options"]}
    assert {"help", "status", "scan", "ask", "owner", "teams", "label", "apply", "spikes", "digest",
            "settings"} <= subs
    settings = next(o for o in group["options"] if o["name"] == "settings")
    assert {o["name"] for o in settings["options"]} >= {"show", "team", "approvers", "digest", "alerts"}

    def walk(node: dict) -> None:
        assert 1 <= len(node["name"]) <= 32 and node["name"] == node["name"].lower()
        assert 1 <= len(node["description"]) <= 100
        for o in node.get("options", []):
            walk(o)

    walk(group)


# -- the adapter's small translations --------------------------------------------------------------


def test_mentions_are_translated_for_the_handlers() -> None:
    from bot.discord.app import mention_text, neutral

    assert neutral("settings team payments <@!123> <@456>") == "settings team payments <@123> <@456>"
    assert mention_text("<@999> why did our bill <@!999> spike?", 999) == "why did our bill spike?"
    assert mention_text("<@1> hi", None) == "<@1> hi"


def test_settings_and_worker_notifier() -> None:
    from bot.discord import configure_api, missing_settings
    from bot.discord.alerts import worker_notifier
    from config.settings import Settings

    s = Settings(discord_token=None)
    assert missing_settings(s) == ["DISCORD_TOKEN"] and worker_notifier({"settings": s, "db": None}) is None
    s = Settings(discord_token="t", discord_guild_id="42", discord_api_url="http://127.0.0.1:9/api/v10/")
    assert missing_settings(s) == [] and s.discord_guild_id == 42
    before = discord.http.Route.BASE
    try:
        assert configure_api(s) == "http://127.0.0.1:9/api/v10" == discord.http.Route.BASE
    finally:
        discord.http.Route.BASE = before
    assert worker_notifier({"settings": s, "db": None}) is not None

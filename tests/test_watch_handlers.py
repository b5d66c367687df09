"""The watch's chat side, platform-neutral: alert/storm/digest/list/explain cards (valid Block Kit, chart
images), the terminal's image file, and the spike buttons and settings commands against SQLite (nonce
and state checks, replays, audit, re-routing after "not ours")."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.slack.render import check_message, image_upload, to_message
from config.settings import Settings
from handlers import spikes as spikes_mod
from handlers import watch_views as wv
from handlers.actions import handle_action
from handlers.cards import Card, Image
from handlers.commands import handle_command
from handlers.context import Services, Who
from jobs.worker import job_context
from storage import repo, watch_repo
from storage.models import AppSwitch, AuditEntry, ExpectedLevel, Label, Prompt, Spike

ADMIN = Who(platform="slack", workspace="T1", user_id="UADMIN", channel_id="C1")
BOB = Who(platform="slack", workspace="T1", user_id="UBOB", channel_id="C1")
H0 = 490_000  # an epoch hour


def _series(n: int = 72, at: int = 50, width: int = 6) -> list[list[float]]:
    return [[H0 + i, 1.0 + (9.0 if at <= i < at + width else 0.0), 1.0] for i in range(n)]


def fake_spike(i: int = 1, **kw: Any) -> SimpleNamespace:
    d = dict(id=i, nonce=f"n{i}", arn=f"arn:aws:ec2:us-east-1:1:instance/i-{i:04d}", resource_id=f"i-{i:04d}",
             resource_type="ec2:instance", instance_type="p4d.24xlarge", kind="statistical",
             start=(H0 + 50) * 3600.0, end=(H0 + 56) * 3600.0, ongoing=False, peak_usd_per_hour=10.0,
             baseline_usd_per_hour=1.0, extra_usd=54.0, severity="warning", reasons=["cost 10× its usual level"],
             score=7.5, owner_team="payments", owner_confidence=0.9, owner_source="predicted",
             cause={"kind": "deploy", "commit": "abc1234def", "repo": "payments/api", "actor": "ci-payments",
                    "time": "2025-11-26T10:00:00Z", "p_value": 0.003, "evidence": ["deploy abc123 40 min before"]},
             status="open", snooze_until=None, series=_series())
    d.update(kw)
    return SimpleNamespace(**d)


def _valid(card: Card) -> dict:
    msg = to_message(card)
    assert check_message(msg) == [], check_message(msg)
    assert len(msg["blocks"]) <= 50
    return msg


def _ids(msg: dict) -> list[str]:
    return [e["action_id"] for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]]


# -- cards --------------------------------------------------------------------------------------------


def test_alert_card_has_figures_owner_cause_chart_and_buttons():
    card = wv.alert_card(fake_spike(), SimpleNamespace(name="prod"), now=(H0 + 57) * 3600.0)
    msg = _valid(card)
    text = card.text()
    assert "$10.00/h" in text and "$1.00/h" in text and "$54.00" in text and "10.0×" in text
    assert "payments" in text and "90%" in text and "guess" not in text
    assert "abc1234def"[:12] in text and "payments/api" in text and "ci-payments" in text and "p = 0.003" in text
    assert "amortized" in card.context
    assert _ids(msg) == ["spike_expected", "spike_snooze", "spike_snooze:1", "spike_explain", "spike_not_ours"]
    values = [e.get("value") for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert values == ["1.n1", "1.n1.24h", "1.n1.7d", "1.n1", "1.n1"]
    assert isinstance(card.image, Image) and card.image.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(card.image.png) <= 100_000 and card.image.alt
    assert "chart in the thread" in msg["blocks"][-1]["elements"][0]["text"]
    up = image_upload(card)
    assert up is not None and up["content"] == card.image.png and up["filename"].endswith(".png")


def test_alert_card_guess_no_cause_and_assign_select():
    sp = fake_spike(owner_source="creator", owner_confidence=0.62, cause=None)
    route = SimpleNamespace(users=[], emails=[], channel="CALERTS", fallback=True, guess=True, team="payments")
    card = wv.alert_card(sp, None, route, teams=["payments", "data", "web"])
    msg = _valid(card)
    assert "guess" in card.text() and "no cause found" in card.text()
    assert "spike_assign" in _ids(msg)
    sel = next(e for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"] if e["type"] == "static_select")
    assert [o["value"] for o in sel["options"]] == ["1.n1.data", "1.n1.payments", "1.n1.web"]
    low = fake_spike(owner_source="predicted", owner_confidence=0.4)
    assert "guess" in wv.alert_card(low, chart=False).text()
    tagged = fake_spike(owner_source="tag", owner_confidence=1.0)
    assert "guess" not in wv.alert_card(tagged, chart=False).text()


def test_storm_list_explain_and_digest_cards_validate():
    spikes = [fake_spike(i, extra_usd=10.0 * i) for i in range(1, 16)]
    storm = wv.storm_card(SimpleNamespace(name="prod"), spikes, 15)
    _valid(storm)
    assert "15" in storm.text() and "held" in storm.text()
    lst = wv.spikes_list_card(spikes, SimpleNamespace(name="prod"), now=time.time())
    msg = _valid(lst)
    assert len(lst.sections) == wv.MAX_LIST and "more not shown" in lst.context
    ids = _ids(msg)
    assert len(ids) == len(set(ids)) == 4 * wv.MAX_LIST
    assert wv.spikes_list_card([]).buttons == []
    ex = wv.explain_card(fake_spike())
    _valid(ex)
    assert "deploy abc123 40 min before" in ex.text()
    assert "does not blame" in wv.explain_card(fake_spike(cause=None)).text()
    data = {"account": "prod", "day": "2026-12-06", "yesterday_usd": 1234.5, "avg7_usd": 1000.0,
            "movers": {"resources": [{"arn": "a", "resource_id": "i-1", "team": "web", "yesterday_usd": 300,
                                      "avg7_usd": 100, "delta_usd": 200}],
                       "teams": [{"team": "web", "yesterday_usd": 600, "avg7_usd": 400, "delta_usd": 200}]},
            "untagged_by_day": [[f"2026-11-{d:02d}", 100 - d] for d in range(10, 24)],
            "open_spikes": [{"id": 3, "resource_id": "i-3", "extra_usd": 50, "owner_team": "web",
                             "status": "snoozed", "snooze_until": "2026-12-08T10:00:00Z"}],
            "drift": {"new": [{"arn": "x", "resource_id": "i-new"}], "gone": [], "owner_changed": []},
            "queue": {"prompts": 4, "approvals": 1},
            "by_team_day": {"web": [["2026-12-05", 10], ["2026-12-06", 12]], "data": [["2026-12-06", 5]]},
            "paused": True}
    dg = wv.digest_card(data)
    _valid(dg)
    t = dg.text()
    assert "Alerts are paused" in t and "$1,234.50" in t and "+23%" in t and "i-new" in t and "snoozed until" in t
    assert dg.image is not None and len(dg.image.png) <= 100_000
    assert "paused" not in wv.digest_card({**data, "paused": False}).text().lower()


def test_terminal_writes_the_image_and_prints_its_path(tmp_path: Path):
    from rich.console import Console

    from handlers.render_terminal import render

    console = Console(record=True, width=200)
    card = wv.alert_card(fake_spike(), None)
    render(console, card, image_dir=tmp_path)
    out = console.export_text()
    path = tmp_path / card.image.filename
    assert path.read_bytes() == card.image.png and str(path) in out


# -- handlers over the database -----------------------------------------------------------------------


@pytest_asyncio.fixture
async def svc(tmp_path: Path) -> Any:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", redis_url=None,
                        job_timeout=60, job_tries=1, workers=1, approvers="UADMIN")
    ctx = await job_context(settings)

    class Q:  # the label action asks for a retrain: recorded, not run
        def __init__(self) -> None:
            self.jobs: list[tuple] = []

        async def enqueue(self, name: str, *args: Any, **kw: Any) -> bool:
            self.jobs.append((name, args))
            return True

        async def close(self) -> None:
            pass

    async with ctx["db"].session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        acct = await repo.add_account(s, "prod", "synthetic", options={}, workspace_id=ws.id)
        await repo.add_label(s, acct.id, "arn:aws:s3:::known-web", "web", source="human", actor="t")
        await repo.add_label(s, acct.id, "arn:aws:s3:::known-data", "data", source="human", actor="t")
    try:
        yield Services(db=ctx["db"], queue=Q(), settings=settings)
    finally:
        await ctx["db"].close()


async def _spike(svc: Services, i: int = 1, **kw: Any) -> Spike:
    f = fake_spike(i, **kw)
    fields = {k: getattr(f, k) for k in watch_repo.SPIKE_FIELDS if hasattr(f, k)}
    async with svc.db.session() as s:
        acct = await repo.get_account(s, "prod")
        row, created = await watch_repo.upsert_spike(s, acct.id, f"{f.arn}@{H0 + 50}", **fields)
        assert created
        s.expunge(row)
        return row


async def _row(svc: Services, sid: int) -> Spike:
    async with svc.db.session() as s:
        row = await watch_repo.get_spike(s, sid)
        s.expunge(row)
        return row


async def _audits(svc: Services, prefix: str) -> list[AuditEntry]:
    async with svc.db.session() as s:
        return [a for a in await repo.audit_entries(s, limit=500) if a.action.startswith(prefix)]


@pytest.mark.asyncio
async def test_spikes_command_lists_open_spikes_with_buttons(svc: Services):
    empty = await handle_command(svc, BOB, "spikes")
    assert "No open spikes" in empty.posts[0].card.text()
    a = await _spike(svc, 1)
    await _spike(svc, 2, extra_usd=500.0)
    reply = await handle_command(svc, BOB, "spikes")
    card = reply.posts[0].card
    msg = _valid(card)
    assert card.text().index("i-0002") < card.text().index("i-0001")  # costliest first
    assert f"{a.id}.{a.nonce}" in {e.get("value") for b in msg["blocks"] if b["type"] == "actions"
                                   for e in b["elements"]}
    assert "help" in (await handle_command(svc, BOB, "spikes now")).posts[0].card.kind


@pytest.mark.asyncio
async def test_mark_expected_stores_the_level_once(svc: Services):
    sp = await _spike(svc)
    value = f"{sp.id}.{sp.nonce}"
    reply = await handle_action(svc, BOB, "spike_expected", value)
    assert reply.replace is not None and "expected" in reply.replace.text() and reply.replace.buttons == []
    row = await _row(svc, sp.id)
    assert row.status == "expected"
    async with svc.db.session() as s:
        levels = (await s.scalars(select(ExpectedLevel))).all()
        assert [(lv.arn, lv.actor) for lv in levels] == [(sp.arn, "UBOB")] and levels[0].usd_per_hour >= 1.0
        assert await watch_repo.expected_levels(s, sp.account_id) == {sp.arn: levels[0].usd_per_hour}
    n_audit = len(await _audits(svc, "spike."))
    # replayed: nothing changes, an ephemeral note says why
    again = await handle_action(svc, ADMIN, "spike_expected:1", value)
    assert again.replace is None and again.ephemeral is not None and "already" in again.ephemeral.text()
    assert len(await _audits(svc, "spike.")) == n_audit
    # forged nonce / malformed value
    forged = await handle_action(svc, BOB, "spike_expected", f"{sp.id}.forged")
    assert forged.ephemeral is not None and "not one costdna sent" in forged.ephemeral.text()
    bad = await handle_action(svc, BOB, "spike_expected", "nope")
    assert bad.ephemeral is not None and "malformed" in bad.ephemeral.text()
    assert (await _row(svc, sp.id)).status == "expected"
    assert ("spike.expected", "UBOB") in {(a.action, a.actor) for a in await _audits(svc, "spike.")}


@pytest.mark.asyncio
async def test_snooze_24h_then_7d_and_replay(svc: Services):
    sp = await _spike(svc)
    r = await handle_action(svc, BOB, "spike_snooze", f"{sp.id}.{sp.nonce}.24h")
    assert r.replace is not None and "Snoozed" in r.replace.text()
    row = await _row(svc, sp.id)
    assert row.status == "snoozed"
    until24 = row.snooze_until
    again = await handle_action(svc, BOB, "spike_snooze", f"{sp.id}.{sp.nonce}.24h")
    assert again.ephemeral is not None and "already" in again.ephemeral.text()
    assert (await _row(svc, sp.id)).snooze_until == until24
    longer = await handle_action(svc, BOB, "spike_snooze", f"{sp.id}.{sp.nonce}.7d")
    assert longer.replace is not None
    assert (await _row(svc, sp.id)).snooze_until > until24
    odd = await handle_action(svc, BOB, "spike_snooze", f"{sp.id}.{sp.nonce}.1y")
    assert odd.ephemeral is not None
    missing = await handle_action(svc, BOB, "spike_snooze", f"{sp.id}.{sp.nonce}")
    assert missing.ephemeral is not None and "malformed" in missing.ephemeral.text()


@pytest.mark.asyncio
async def test_explain_posts_the_evidence_and_changes_nothing(svc: Services):
    sp = await _spike(svc)
    r = await handle_action(svc, BOB, "spike_explain", f"{sp.id}.{sp.nonce}")
    assert r.replace is None and len(r.posts) == 1
    assert "deploy abc123 40 min before" in r.posts[0].card.text()
    assert (await _row(svc, sp.id)).status == "open"


@pytest.mark.asyncio
async def test_not_ours_asks_who_owns_it_and_the_label_reroutes(svc: Services):
    sp = await _spike(svc)
    r = await handle_action(svc, BOB, "spike_not_ours", f"{sp.id}.{sp.nonce}")
    assert r.replace is not None and "not ours" in r.replace.text()
    (post,) = r.posts
    assert post.tracks[0] == "prompt" and post.card.kind == "prompt"
    _valid(post.card)
    assert (await _row(svc, sp.id)).status == "not_ours"
    again = await handle_action(svc, BOB, "spike_not_ours", f"{sp.id}.{sp.nonce}")
    assert again.ephemeral is not None and "already" in again.ephemeral.text()
    async with svc.db.session() as s:
        assert len((await s.scalars(select(Prompt))).all()) == 1  # the replay asked nothing new
    # the question offers the known teams (not the one that said "not ours"); answering re-routes
    opts = [o.value for sel in post.card.selects for o in sel.options] + [b.value for b in post.card.buttons]
    web = next(v for v in opts if v.endswith(".web"))
    ans = await handle_action(svc, ADMIN, "label_other", web)
    assert ans.replace is not None
    (route_post,) = ans.posts
    assert route_post.tracks == (spikes_mod.ROUTE, sp.id)
    row = await _row(svc, sp.id)
    assert (row.status, row.owner_team, row.owner_source, row.delivery) == ("open", "web", "label", "pending")
    assert {"spike.not_ours", "spike.reroute"} <= {a.action for a in await _audits(svc, "spike.")}


@pytest.mark.asyncio
async def test_assign_team_labels_and_reroutes_once(svc: Services):
    sp = await _spike(svc, owner_team="", owner_source="none", owner_confidence=0.0)
    unknown = await handle_action(svc, BOB, "spike_assign", f"{sp.id}.{sp.nonce}.nosuchteam")
    assert unknown.ephemeral is not None and "not a team" in unknown.ephemeral.text()
    r = await handle_action(svc, BOB, "spike_assign", f"{sp.id}.{sp.nonce}.data")
    assert r.replace is not None and r.posts[0].tracks == (spikes_mod.ROUTE, sp.id)
    row = await _row(svc, sp.id)
    assert (row.owner_team, row.owner_source) == ("data", "label")
    async with svc.db.session() as s:
        labels = await repo.current_labels(s, sp.account_id)
    assert labels[sp.arn] == "data"
    assert row.nonce != sp.nonce  # re-opened with new buttons: the old card's no longer act
    again = await handle_action(svc, BOB, "spike_assign", f"{sp.id}.{sp.nonce}.data")
    assert again.ephemeral is not None and "not one costdna sent" in again.ephemeral.text() and again.posts == []
    replay_new = await handle_action(svc, BOB, "spike_assign", f"{sp.id}.{row.nonce}.data")
    assert replay_new.ephemeral is not None and "already" in replay_new.ephemeral.text() and replay_new.posts == []
    async with svc.db.session() as s:
        n = len((await s.scalars(select(Label).where(Label.arn == sp.arn))).all())
    assert n == 1


@pytest.mark.asyncio
async def test_settings_team_and_alerts(svc: Services):
    refused = await handle_command(svc, BOB, "settings team payments <@UPAY1> #pay-alerts")
    assert refused.posts[0].card.kind == "error"
    ok = await handle_command(svc, ADMIN, "settings team payments <@UPAY1> @UPAY2 <#CPAY|pay-alerts>")
    assert "UPAY1" in ok.posts[0].card.text() and "CPAY" in ok.posts[0].card.text()
    async with svc.db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        route = await watch_repo.team_route(s, ws.id, "payments")
    assert route.users == ["UPAY1", "UPAY2"] and route.channel == "CPAY"
    shown = await handle_command(svc, BOB, "settings team")
    assert "payments" in shown.posts[0].card.text()
    bad = await handle_command(svc, ADMIN, "settings team payments alice")
    assert bad.posts[0].card.kind == "help"

    assert (await handle_command(svc, BOB, "settings alerts panic")).posts[0].card.kind == "error"
    p = await handle_command(svc, ADMIN, "settings alerts panic")
    assert "Panic" in p.posts[0].card.text()
    async with svc.db.session() as s:
        assert await watch_repo.panic(s) is True
        assert (await s.get(AppSwitch, watch_repo.PANIC)).actor == "UADMIN"
    await handle_command(svc, ADMIN, "settings alerts resume")
    async with svc.db.session() as s:
        assert await watch_repo.panic(s) is False
    await handle_command(svc, ADMIN, "settings alerts panic")
    lifted = await handle_command(svc, ADMIN, "settings alerts audit")  # choosing a mode ends panic too
    assert "Panic is over" in lifted.posts[0].card.text()
    async with svc.db.session() as s:
        assert await watch_repo.panic(s) is False
    await handle_command(svc, ADMIN, "settings alerts strict")
    await handle_command(svc, ADMIN, "settings alerts <#CALERTS|alerts>")
    async with svc.db.session() as s:
        assert await watch_repo.panic(s) is False
        acct = await repo.get_account(s, "prod")
        assert acct.options["alerts_mode"] == "strict"
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        assert ws.settings["alerts_channel"] == "CALERTS"
    shown = await handle_command(svc, BOB, "settings alerts")
    assert "strict" in shown.posts[0].card.text() and "CALERTS" in shown.posts[0].card.text()
    assert (await handle_command(svc, ADMIN, "settings alerts sometimes")).posts[0].card.kind == "help"
    actions = {a.action for a in await _audits(svc, "")}
    assert {"settings.team_route", "switch.alerts.panic", "settings.alerts_mode"} <= actions
    helps = (await handle_command(svc, BOB, "help")).posts[0].card.text()
    assert "spikes" in helps and "digest" in helps and "settings alerts" in helps


@pytest.mark.asyncio
async def test_digest_command_posts_the_digest(svc: Services):
    await _spike(svc)
    r = await handle_command(svc, BOB, "digest")
    card = r.posts[0].card
    assert card.kind == "digest" and "i-0001" in card.text()
    _valid(card)
    await handle_command(svc, ADMIN, "settings alerts panic")
    assert "Alerts are paused" in (await handle_command(svc, BOB, "digest")).posts[0].card.text()

"""The watch in Slack, end to end: the real web application (Slack mounted, SQLite, in-process jobs) on a
free port, signed requests shaped like Bolt's payload fixtures, the Web API stand-in, and the hourly watch
(``jobs.watch.watch``) run in-process with the Slack notifier in its context, over a bundle of CUR 2.0
files with planted spikes, one day per file.

Covers: the mapped owner's DM (conversations.open + chat.postMessage) with a valid card and the chart
uploaded in its thread (files.getUploadURLExternal, the upload, files.completeUploadExternal); Mark
expected -> the next watch over the same pattern stays silent; Snooze (and its replay); Explain in the
thread; Not ours -> a "who owns this?" card whose answer re-routes the alert; assign team from the
alerts channel; panic -> nothing posted, spikes still stored; a storm -> one summary; users.lookupByEmail.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from config.settings import Settings
from engine.arns import arn_from_billing_id
from storage import repo, watch_repo
from storage.models import ExpectedLevel, Spike
from tests.slack_standin import APPROVER_ID, Payloads, SlackClient, SlackStandIn, check_blocks, serve

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token-watch"
CLEAR = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
         "SLACK_API_URL", "REDIS_URL", "COSTDNA_REDIS_URL", "DATABASE_URL", "COSTDNA_DATABASE_URL",
         "COSTDNA_APPROVERS")
ACCT, REG = "123456789012", "us-east-1"
D0 = datetime(2026, 11, 20, tzinfo=UTC)
COLS = ["line_item_resource_id", "line_item_unblended_cost", "line_item_usage_start_date",
        "line_item_usage_end_date", "line_item_product_code", "line_item_usage_account_id", "product_region_code",
        "line_item_line_item_type", "line_item_usage_type", "resource_tags"]
PAY, DATA = "UPAY1", "UDATA1"
pytestmark = pytest.mark.asyncio


def rid(n: int) -> str:
    return f"i-0{n:03d}0000000000{n:03d}"


def arn(n: int) -> str:
    return arn_from_billing_id(rid(n), REG, ACCT, "AmazonEC2")


def _cost(n: int, h: int, spikes: dict[int, list[tuple[int, int, float]]]) -> float:
    for a, b, v in spikes.get(n, []):
        if a <= h < b:
            return v
    return 1.0 + 0.2 * math.sin(2 * math.pi * (h % 24) / 24) + 0.03 * ((h * 7919 + n * 31) % 5)  # daily rhythm


def write_day(bundle: Path, day: int, resources: list[int], spikes: dict[int, list[tuple[int, int, float]]]) -> None:
    """One CUR 2.0 file with a day of hourly line items (amortized = unblended here: on-demand usage)."""
    p = bundle / "cost" / f"cur-{day:02d}.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLS)
        for h in range(day * 24, day * 24 + 24):
            t = D0 + timedelta(hours=h)
            for n in resources:
                w.writerow([rid(n), f"{_cost(n, h, spikes):.4f}", t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            (t + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "AmazonEC2", ACCT, REG, "Usage",
                            "BoxUsage:m5.large", "{}"])


def after_day(day: int) -> float:
    """The watch's clock: one hour after the day's file ends."""
    return (D0 + timedelta(days=day + 1, hours=1)).timestamp()


@dataclass
class Bot:
    standin: SlackStandIn
    client: SlackClient
    payloads: Payloads
    db: Any
    settings: Settings
    bundle: Path
    account_id: int
    ctx: dict[str, Any]

    async def command(self, text: str, user_id: str = APPROVER_ID) -> None:
        n = len(self.standin.of("response_url")) + len(self.standin.of("chat.postMessage"))
        status, _, seconds = await self.client.post(self.payloads.command(text, user_id=user_id))
        assert status == 200 and seconds < 3.0
        await self.standin.wait_for(lambda: len(self.standin.of("response_url"))
                                    + len(self.standin.of("chat.postMessage")) > n, what=f"the answer to {text!r}")

    async def click(self, action_id: str, value: str | None, *, user_id: str, channel_id: str, message_ts: str,
                    selected: str | None = None) -> None:
        status, _, seconds = await self.client.post(self.payloads.click(
            action_id, value, user_id=user_id, channel_id=channel_id, message_ts=message_ts, selected=selected))
        assert status == 200 and seconds < 3.0

    async def watch(self, day: int) -> dict:
        from jobs.watch import watch

        return await watch(self.ctx, self.account_id, now=after_day(day))

    async def spike(self, n: int) -> Spike:
        async with self.db.session() as s:
            rows = (await s.scalars(select(Spike).where(Spike.arn == arn(n)).order_by(Spike.id))).all()
            assert rows, f"no spike stored for resource {n}"
            for r in rows:
                s.expunge(r)
            return rows[-1]

    async def spike_when(self, n: int, pred: Any, timeout: float = 10.0) -> Spike:
        """The spike of resource ``n`` once ``pred(spike)`` holds (the adapter records after it posts)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            sp = await self.spike(n)
            if pred(sp):
                return sp
            assert asyncio.get_running_loop().time() < deadline, f"spike {n}: condition never held ({sp.__dict__})"
            await asyncio.sleep(0.05)

    async def spikes(self, n: int) -> list[Spike]:
        async with self.db.session() as s:
            return list((await s.scalars(select(Spike).where(Spike.arn == arn(n)))).all())

    def posts_to(self, channel: str) -> list[Any]:
        return self.standin.of("chat.postMessage", lambda c: c.body.get("channel") == channel)

    def assert_valid(self) -> None:
        for c in self.standin.calls:
            if c.status == 200 and c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral",
                                                "response_url"):
                assert "blocks" in c.body, c.body
                assert check_blocks(c.body) == [], (check_blocks(c.body), c.body.get("text"))


@pytest_asyncio.fixture
async def slack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> Any:
    import bot.slack.server
    from bot.slack.notify import notifier_for
    from bot.web import DB_KEY, make_app
    from jobs.notify import Fanout, log_notifier

    for var in CLEAR:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COSTDNA_SLACK_POST_INTERVAL_S", "0")  # no pacing in tests
    from config.settings import get_settings

    get_settings.cache_clear()  # the alerts read the pacing from the settings
    monkeypatch.setattr(bot.slack.server, "QUEUE_CLOSE_TIMEOUT_S", 1)  # a debounced retrain is not waited for
    standin = await SlackStandIn().start()
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
                        redis_url=None, workers=1, job_timeout=120, slack_bot_token=TOKEN,
                        slack_signing_secret=SECRET, slack_client_id=None, slack_client_secret=None,
                        slack_api_url=standin.api_url, approvers=APPROVER_ID)
    app = make_app(settings)
    runner, base = await serve(app)
    db = app[DB_KEY]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    async with db.session() as s:
        account = await repo.add_account(s, "prod", "bundle", bundle_path=str(bundle), actor="test")
        account_id = account.id
    notify = Fanout(log_notifier)
    notify.add(notifier_for(settings, db))  # the worker's notifier: delivers the watch's events in Slack
    ctx = {"settings": settings, "db": db, "notify": notify}
    client = SlackClient(f"{base}/slack/events", SECRET)
    try:
        yield Bot(standin, client, Payloads(shared_data, standin), db, settings, bundle, account_id, ctx)
    finally:
        await client.close()
        await runner.cleanup()
        await standin.stop()


async def _setup(bot: Bot, labels: dict[int, str]) -> None:
    await bot.command(f"settings team payments <@{PAY}>")
    await bot.command(f"settings team data <@{DATA}>")
    await bot.command("settings alerts audit")
    await bot.command("settings alerts <#CALERTS|alerts>")
    async with bot.db.session() as s:
        for n, team in labels.items():
            await repo.add_label(s, bot.account_id, arn(n), team, source="human", actor="test")
        acct = await repo.get_account(s, bot.account_id)
        assert acct.workspace_id is not None and acct.options["alerts_mode"] == "audit"


def _buttons(body: dict) -> dict[str, dict]:
    out = {}
    for b in body.get("blocks") or []:
        if b.get("type") == "actions":
            for e in b["elements"]:
                out.setdefault(e["action_id"].split(":")[0] + ("" if e.get("type") == "button" else "/select"), e)
                out[e["action_id"]] = e
    return out


async def _prompt_ts(bot: Bot) -> str:
    """The ts of the newest "who owns this?" message, once the adapter has recorded it."""
    from storage.models import Prompt

    for _ in range(200):
        async with bot.db.session() as s:
            p = await s.scalar(select(Prompt).order_by(Prompt.id.desc()).limit(1))
            if p is not None and p.chat_refs:
                return p.chat_refs[0]["ts"]
        await asyncio.sleep(0.05)
    raise AssertionError("the question's message was never recorded")


def _uploads_for(bot: Bot, channel: str, ts: str) -> list[dict]:
    return [u for u in bot.standin.uploaded() if u["channel_id"] == channel and u["thread_ts"] == ts]


async def test_alert_dm_expected_snooze_explain_not_ours_assign_panic(slack: Bot):
    bot = slack
    resources = [1, 2, 3, 4, 5]
    # 1: payments (will be marked expected), 2: data (snoozed), 3: labeled payments but is data's (not ours),
    # 4: no owner (alerts channel, assigned), 5: data (spikes while panicking)
    await _setup(bot, {1: "payments", 2: "data", 3: "payments", 5: "data"})
    spikes = {1: [(9 * 24 + 10, 9 * 24 + 16, 20.0), (10 * 24 + 8, 10 * 24 + 14, 20.0)],
              2: [(10 * 24 + 8, 10 * 24 + 14, 15.0)], 3: [(10 * 24 + 8, 10 * 24 + 14, 12.0)],
              4: [(10 * 24 + 8, 10 * 24 + 14, 18.0)], 5: [(11 * 24 + 5, 11 * 24 + 11, 16.0)]}
    for day in range(10):
        write_day(bot.bundle, day, resources, spikes)

    # -- watch 1: resource 1's spike is DMed to the payments person, with the chart in the thread --------
    n_calls = len(bot.standin.calls)
    r = await bot.watch(9)
    assert r["alerted"] == 1 and len(r["files_read"]) == 10
    opens = bot.standin.of("conversations.open")
    assert [c.body["users"] for c in opens] == [PAY]
    (dm,) = bot.posts_to(f"D{PAY}")
    assert rid(1) in dm.body["text"] and "$20.00/h" in json.dumps(dm.body["blocks"])
    sp1 = await bot.spike(1)
    ts1 = sp1.chat_refs[0]["ts"]
    assert sp1.chat_refs == [{"platform": "slack", "channel": f"D{PAY}", "ts": ts1}] and sp1.delivery == "sent"
    methods = [c.method for c in bot.standin.calls[n_calls:]]
    assert methods == ["conversations.open", "chat.postMessage", "files.getUploadURLExternal", "upload",
                       "files.completeUploadExternal"]
    (up,) = _uploads_for(bot, f"D{PAY}", ts1)
    assert up["bytes"][:8] == b"\x89PNG\r\n\x1a\n" and len(up["bytes"]) <= 100_000
    btn = _buttons(dm.body)
    assert btn["spike_expected"]["value"] == f"{sp1.id}.{sp1.nonce}"
    assert btn["spike_snooze"]["value"] == f"{sp1.id}.{sp1.nonce}.24h"
    assert {"spike_explain", "spike_not_ours"} <= set(btn)

    # the same files again: nothing new read, nothing re-alerted
    r = await bot.watch(9)
    assert r["files_read"] == [] and len(bot.posts_to(f"D{PAY}")) == 1

    # -- Mark expected (signed click): the message is updated, the level stored ---------------------------
    await bot.click("spike_expected", btn["spike_expected"]["value"], user_id=PAY, channel_id=f"D{PAY}",
                    message_ts=ts1)
    upd = await bot.standin.wait_for(lambda: bot.standin.of("chat.update", lambda c: c.body["ts"] == ts1),
                                     what="the expected card")
    assert "expected" in upd[0].body["text"] and not _buttons(upd[0].body)
    assert (await bot.spike(1)).status == "expected"
    async with bot.db.session() as s:
        levels = {lv.arn: lv.usd_per_hour for lv in (await s.scalars(select(ExpectedLevel))).all()}
    assert levels[arn(1)] >= 20.0

    # -- watch 2: resource 1 repeats the same pattern (silent); 2, 3, 4 spike ------------------------------
    write_day(bot.bundle, 10, resources, spikes)
    before_pay = len(bot.posts_to(f"D{PAY}"))
    r = await bot.watch(10)
    assert r["files_read"] == ["cost/cur-10.csv"]
    assert len(await bot.spikes(1)) == 1, "the expected pattern alerted again"
    assert all(rid(1) not in c.body["text"] for c in bot.posts_to(f"D{PAY}")[before_pay:])
    (dm2,) = bot.posts_to(f"D{DATA}")
    assert rid(2) in dm2.body["text"]
    (dm3,) = [c for c in bot.posts_to(f"D{PAY}")[before_pay:] if rid(3) in c.body["text"]]
    (ch4,) = bot.posts_to("CALERTS")
    assert rid(4) in ch4.body["text"] and "spike_assign/select" in _buttons(ch4.body)
    sp2, sp3, sp4 = await bot.spike(2), await bot.spike(3), await bot.spike(4)
    ts2, ts3, ts4 = (sp.chat_refs[0]["ts"] for sp in (sp2, sp3, sp4))
    for ch, ts in ((f"D{DATA}", ts2), (f"D{PAY}", ts3), ("CALERTS", ts4)):
        assert len(_uploads_for(bot, ch, ts)) == 1, f"no chart under {ch}/{ts}"

    # -- Snooze 24 h; the replayed click changes nothing -------------------------------------------------
    v2 = _buttons(dm2.body)["spike_snooze"]["value"]
    await bot.click("spike_snooze", v2, user_id=DATA, channel_id=f"D{DATA}", message_ts=ts2)
    await bot.standin.wait_for(lambda: bot.standin.of("chat.update", lambda c: c.body["ts"] == ts2), what="snoozed")
    snoozed = await bot.spike(2)
    assert snoozed.status == "snoozed" and snoozed.snooze_until is not None
    async with bot.db.session() as s:
        n_audit = len(await repo.audit_entries(s, limit=1000))
    n_eph = len(bot.standin.of("chat.postEphemeral"))
    await bot.click("spike_snooze", v2, user_id=DATA, channel_id=f"D{DATA}", message_ts=ts2)
    note = await bot.standin.wait_for(lambda: bot.standin.of("chat.postEphemeral")[n_eph:], what="the replay note")
    assert "already" in note[0].body["text"] and note[0].body["user"] == DATA
    assert (await bot.spike(2)).snooze_until == snoozed.snooze_until
    async with bot.db.session() as s:
        assert len(await repo.audit_entries(s, limit=1000)) == n_audit

    # -- Explain: the evidence in the alert's thread ------------------------------------------------------
    await bot.click("spike_explain", _buttons(dm2.body)["spike_explain"]["value"], user_id=DATA,
                    channel_id=f"D{DATA}", message_ts=ts2)
    ex = await bot.standin.wait_for(lambda: bot.standin.of("chat.postMessage", lambda c: c.body.get("thread_ts")
                                                           == ts2), what="the explanation")
    assert "costs more" in ex[0].body["text"] and ex[0].body["channel"] == f"D{DATA}"

    # -- Not ours: a "who owns this?" card in the thread; the answer re-routes to data ---------------------
    await bot.click("spike_not_ours", _buttons(dm3.body)["spike_not_ours"]["value"], user_id=PAY,
                    channel_id=f"D{PAY}", message_ts=ts3)
    q = await bot.standin.wait_for(lambda: bot.standin.of("chat.postMessage", lambda c: c.body.get("thread_ts")
                                                          == ts3), what="the label card")
    assert "Who owns this?" in q[0].body["text"] and (await bot.spike(3)).status == "not_ours"
    sel = _buttons(q[0].body)["label_other/select"]
    data_opt = next(o["value"] for o in sel["options"] if o["value"].endswith(".data"))
    n_data = len(bot.posts_to(f"D{DATA}"))
    q_ts = await _prompt_ts(bot)
    await bot.click(sel["action_id"], None, user_id=PAY, channel_id=f"D{PAY}", message_ts=q_ts, selected=data_opt)
    rerouted = await bot.standin.wait_for(lambda: [c for c in bot.posts_to(f"D{DATA}")[n_data:]
                                                   if rid(3) in c.body["text"]], what="the re-routed alert")
    sp3 = await bot.spike_when(3, lambda sp: any(ref["channel"] == f"D{DATA}" for ref in sp.chat_refs))
    assert (sp3.owner_team, sp3.status, sp3.delivery) == ("data", "open", "sent")
    assert "data" in json.dumps(rerouted[0].body["blocks"])

    # -- assign team from the alerts channel ---------------------------------------------------------------
    assign = _buttons(ch4.body)["spike_assign/select"]
    pay_opt = next(o["value"] for o in assign["options"] if o["value"].endswith(".payments"))
    n_pay = len(bot.posts_to(f"D{PAY}"))
    await bot.click(assign["action_id"], None, user_id="UOPS", channel_id="CALERTS", message_ts=ts4,
                    selected=pay_opt)
    await bot.standin.wait_for(lambda: [c for c in bot.posts_to(f"D{PAY}")[n_pay:] if rid(4) in c.body["text"]],
                               what="the assigned alert")
    sp4 = await bot.spike(4)
    assert (sp4.owner_team, sp4.owner_source) == ("payments", "label")
    n_pay = len(bot.posts_to(f"D{PAY}"))
    await bot.click(assign["action_id"], None, user_id="UOPS", channel_id="CALERTS", message_ts=ts4,
                    selected=pay_opt)  # replayed: refused, not delivered twice
    await asyncio.sleep(0.5)
    assert len(bot.posts_to(f"D{PAY}")) == n_pay

    # -- panic: the watch scores and stores, nobody is notified ---------------------------------------------
    await bot.command("settings alerts panic")
    write_day(bot.bundle, 11, resources, spikes)
    n_posts = len(bot.standin.of("chat.postMessage"))
    r = await bot.watch(11)
    assert r["files_read"] == ["cost/cur-11.csv"] and r["alerted"] == 0
    sp5 = await bot.spike(5)
    assert sp5.delivery == "held_panic"
    await asyncio.sleep(0.3)
    assert len(bot.standin.of("chat.postMessage")) == n_posts
    bot.assert_valid()


async def test_storm_gives_one_summary(slack: Bot):
    bot = slack
    resources = list(range(1, 10))
    await _setup(bot, {n: "payments" for n in resources})
    spikes = {n: [(9 * 24 + 8, 9 * 24 + 14, 10.0 + n)] for n in resources}
    for day in range(10):
        write_day(bot.bundle, day, resources, spikes)
    r = await bot.watch(9)
    assert r["spikes"] == 9 and r["held"].get("held_storm", 0) == 9 - r["alerted"] > 0
    storm = bot.posts_to("CALERTS")
    assert len(storm) == 1 and "storm" in storm[0].body["text"].lower()
    assert f"*{9 - r['alerted']}*" in json.dumps(storm[0].body["blocks"])
    assert len(bot.posts_to(f"D{PAY}")) == r["alerted"]
    bot.assert_valid()


async def test_alert_reaches_people_by_email_and_survives_slack_errors(slack: Bot):
    """The route's e-mails (who launched/deployed it) are matched with users.lookupByEmail and DMed too;
    a refused DM or upload is logged and the rest still goes out."""
    from bot.slack.alerts import SlackAlerts
    from bot.slack.app import make_client
    from jobs.route import Route

    bot = slack
    await _setup(bot, {1: "payments"})
    bot.standin.users_by_email["alice@example.com"] = "UALICE"
    spikes = {1: [(9 * 24 + 10, 9 * 24 + 16, 20.0)]}
    for day in range(10):
        write_day(bot.bundle, day, [1], spikes)
    await bot.command("settings alerts strict")  # stored, not sent: delivered by hand below
    r = await bot.watch(9)
    assert r["alerted"] == 0 and len(bot.standin.of("conversations.open")) == 0
    sp = await bot.spike(1)
    alerts = SlackAlerts(bot.db, make_client(bot.settings, token=TOKEN), interval_s=0)
    bot.standin.errors["files.completeUploadExternal"] = "not_allowed"
    route = Route(users=[PAY], emails=["alice@example.com", "nobody@example.com"], channel="CPAY", team="payments")
    posted = await alerts.spike_alert(sp.id, route.to_json())
    assert sorted(ch for ch, _ in posted) == ["CPAY", "DUALICE", f"D{PAY}"]
    looked = [c.body["email"] for c in bot.standin.of("users.lookupByEmail")]
    assert looked == ["alice@example.com", "nobody@example.com"]
    assert len((await bot.spike(1)).chat_refs) == 3
    # a decision in one DM shows in every message of the spike
    n_upd = len(bot.standin.of("chat.update"))
    ts_pay = next(ts for ch, ts in posted if ch == f"D{PAY}")
    await bot.click("spike_expected", f"{sp.id}.{sp.nonce}", user_id=PAY, channel_id=f"D{PAY}", message_ts=ts_pay)
    upd = await bot.standin.wait_for(lambda: len(bot.standin.of("chat.update")) >= n_upd + 3 and
                                     bot.standin.of("chat.update")[n_upd:], what="three updated messages")
    assert sorted(u.body["channel"] for u in upd) == sorted(ch for ch, _ in posted)
    assert all("expected" in u.body["text"] for u in upd)
    del bot.standin.errors["files.completeUploadExternal"]
    bot.standin.errors["chat.postMessage"] = "channel_not_found"
    await alerts("spike.alert", spike_id=sp.id, route=route.to_json())  # raises nothing
    await alerts("spike.alert", spike_id=999999, route=route.to_json())  # unknown spike: logged
    del bot.standin.errors["chat.postMessage"]

    # digest.ready: the card to the channel, the chart in its thread
    from jobs.digest import digest_data

    async with bot.db.session() as s:
        data = await digest_data(s, await repo.get_account(s, bot.account_id), after_day(9))
    n = len(bot.standin.of("chat.postMessage"))
    await alerts("digest.ready", workspace_id=None, account_id=bot.account_id, channel="CDIGEST", data=data)
    (post,) = bot.standin.of("chat.postMessage")[n:]
    assert post.body["channel"] == "CDIGEST" and "digest" in post.body["text"].lower()
    async with bot.db.session() as s:
        assert (await watch_repo.get_spike(s, sp.id)).status == "expected"

    # /costdna digest: posted in the channel now, its chart in the thread
    n = len(bot.standin.of("chat.postMessage"))
    await bot.command("digest", user_id="UANY")
    (post,) = await bot.standin.wait_for(lambda: bot.standin.of("chat.postMessage")[n:], what="the digest")
    assert post.body["channel"] == "C111" and "digest" in post.body["text"].lower()
    await bot.standin.wait_for(lambda: [u for u in bot.standin.uploaded() if u["channel_id"] == "C111"],
                               what="the digest chart")
    bot.assert_valid()


async def test_posts_are_paced_per_channel():
    from bot.slack.alerts import SlackAlerts

    now = [100.0]
    slept: list[float] = []

    async def sleep(x: float) -> None:
        slept.append(x)
        now[0] += x

    alerts = SlackAlerts(None, None, interval_s=1.0, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    await alerts._pace("C1")
    await alerts._pace("C2")  # another channel: no wait
    now[0] += 0.25
    await alerts._pace("C1")
    assert slept == [pytest.approx(0.75)]
    now[0] += 5
    await alerts._pace("C1")
    assert len(slept) == 1


async def test_digest_cron_posts_at_the_configured_hour(slack: Bot):
    """The hourly schedule (frozen clock) posts the digest at the workspace's hour, once that day."""
    from jobs.schedule import Scheduler

    bot = slack
    for day in range(3):
        write_day(bot.bundle, day, [1, 2, 3], {})
    await bot.watch(2)
    await bot.command("settings digest <#CDIGEST|digest> 9")
    day = D0 + timedelta(days=3)

    def at(h: int, m: int) -> float:
        return (day + timedelta(hours=h, minutes=m)).timestamp()

    sched = Scheduler(bot.ctx)
    assert await sched.tick(at(8, 50)) == []  # the first tick only sets the clock
    assert await sched.tick(at(8, 59)) == []
    await asyncio.sleep(0.2)
    assert bot.posts_to("CDIGEST") == []  # not before the hour
    assert await sched.tick(at(9, 0) + 30) == ["digest_due"]
    (post,) = await bot.standin.wait_for(lambda: bot.posts_to("CDIGEST"), what="the digest at 09:00")
    assert "digest" in post.body["text"].lower()
    await bot.standin.wait_for(lambda: [u for u in bot.standin.uploaded() if u["channel_id"] == "CDIGEST"],
                               what="the digest chart")
    bot.assert_valid()
    assert await sched.tick(at(10, 0) + 30) == ["watch", "digest_due"]  # 09:05 and 10:00; posted today already
    await asyncio.sleep(0.2)
    assert len(bot.posts_to("CDIGEST")) == 1

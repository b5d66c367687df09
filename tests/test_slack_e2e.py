"""The Slack adapter end to end: the real web application (``bot.web.make_app`` with Slack mounted)
on a free port, signed requests shaped like Bolt's own payload fixtures, a local stand-in for the Slack
Web API (``tests/slack_standin.py``), SQLite in ``tmp_path``, jobs in-process, a tiny synthetic account.

Adapter behaviour (acks, signatures, routing, threads, dedup, retries, Home) and the whole flow with the
real handlers (scan with progress updates, labels, replays, approvals and tag writes).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from bot.web import make_app
from config.settings import Settings
from storage import repo
from storage.models import AuditEntry, ChangeSet, ChatEvent, Label, Prompt, Scan
from tests.slack_standin import APPROVER_ID, Payloads, SlackClient, SlackStandIn, check_blocks, start_bot

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token-123"
SMALL = dict(seed=2, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)
CLEAR = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
         "SLACK_API_URL", "REDIS_URL", "COSTDNA_REDIS_URL", "DATABASE_URL", "COSTDNA_DATABASE_URL",
         "COSTDNA_APPROVERS")


@dataclass
class Harness:
    standin: SlackStandIn
    client: SlackClient
    payloads: Payloads
    db: Any
    settings: Settings
    data_dir: Path

    async def command(self, text: str, **kw: Any) -> tuple[int, str, float]:
        return await self.client.post(self.payloads.command(text, **kw))

    async def click(self, action_id: str, value: str | None, **kw: Any) -> tuple[int, str, float]:
        return await self.client.post(self.payloads.click(action_id, value, **kw))

    async def count(self, model: Any) -> int:
        async with self.db.session() as s:
            return await s.scalar(select(func.count()).select_from(model))

    async def refs(self, model: Any, timeout: float = 10.0) -> list[dict]:
        """The chat refs of the newest ``model`` row, once the adapter has recorded them."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            async with self.db.session() as s:
                row = await s.scalar(select(model).order_by(model.id.desc()).limit(1))
                if row is not None and row.chat_refs:
                    return list(row.chat_refs)
            assert time.monotonic() < deadline, f"no chat refs on {model.__name__}"
            await asyncio.sleep(0.05)

    def messages(self) -> list[dict]:
        """Every message body posted or updated (chat.*, response_url) and every published view."""
        out = []
        for c in self.standin.calls:
            if c.status != 200:
                continue
            if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url"):
                out.append(c.body)
            elif c.method == "views.publish":
                out.append({"text": "home", "blocks": (c.body.get("view") or {}).get("blocks", [])})
        return out

    def assert_blocks_valid(self) -> None:
        for msg in self.messages():
            assert "blocks" in msg, msg
            assert check_blocks(msg) == [], (check_blocks(msg), msg)


def _buttons(msg: dict) -> list[dict]:
    out = []
    for b in msg.get("blocks") or []:
        if b.get("type") == "actions":
            out.extend(b["elements"])
    return out


def _text(msg: dict) -> str:
    return json.dumps(msg.get("blocks") or []) + msg.get("text", "")




@pytest_asyncio.fixture
async def slack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path, fast_model) -> Any:
    import bot.slack.server

    for var in CLEAR:  # AsyncApp turns OAuth on by itself when SLACK_CLIENT_ID/SECRET are set
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bot.slack.server, "QUEUE_CLOSE_TIMEOUT_S", 1)  # a deferred retrain is not waited for
    standin = await SlackStandIn().start()
    bot = await start_bot(tmp_path, standin, SECRET, token=TOKEN, account="tiny", options=SMALL, job_timeout=120)
    try:
        yield Harness(standin, bot.client, Payloads(shared_data, standin), bot.db, bot.settings, tmp_path / "data")
    finally:
        await bot.client.close()
        await bot.runner.cleanup()
        await standin.stop()


# -- adapter behaviour ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_slash_command_is_acknowledged_at_once_and_answered(slack: Harness):
    status, body, seconds = await slack.command("help")
    assert status == 200 and seconds < 3.0
    assert body == ""  # an empty ack: the answer follows through the response_url
    call = await slack.standin.wait_for(lambda: slack.standin.of("response_url"), what="the help card")
    msg = call[0].body
    assert msg["response_type"] == "ephemeral" and "costdna" in msg["text"]
    assert call[0].path.startswith("/response/commands/")
    # auth.test once (single-workspace mode), and the token on the calls is the bot's
    assert [c.token for c in slack.standin.of("auth.test")] == [TOKEN]
    slack.assert_blocks_valid()


@pytest.mark.asyncio
async def test_wrong_signature_or_stale_timestamp_is_refused_without_side_effects(slack: Harness):
    before = {m: await slack.count(m) for m in (Scan, Label, ChatEvent, AuditEntry, Prompt)}
    scan = slack.payloads.command("scan")
    status, _, _ = await slack.client.post(scan, secret="not-the-secret")
    assert status == 401
    status, _, _ = await slack.client.post(scan, ts=int(time.time()) - 6 * 60)  # signed, but > 5 minutes old
    assert status == 401
    mention = slack.payloads.app_mention("top spenders", event_id="EvForged")
    status, _, _ = await slack.client.post(mention, json_body=True, secret="nope")
    assert status == 401
    # a body altered after signing
    from tests.slack_standin import sign

    headers = sign(SECRET, scan)
    async with slack.client.http.post(slack.client.url, data=scan.replace("scan", "apply").encode(),
                                      headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 401
    import asyncio

    await asyncio.sleep(0.3)
    assert slack.standin.calls == []  # not even auth.test: nothing ran
    assert {m: await slack.count(m) for m in before} == before


@pytest.mark.asyncio
async def test_app_mention_is_answered_once_in_a_thread(slack: Harness):
    body = slack.payloads.app_mention("top spenders", event_id="EvMention1", ts="1700000001.000100")
    status, _, seconds = await slack.client.post(body, json_body=True)
    assert status == 200 and seconds < 3.0
    status, _, _ = await slack.client.post(body, json_body=True,
                                           headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert status == 200
    posts = await slack.standin.wait_for(lambda: slack.standin.of("chat.postMessage")
                                         + slack.standin.of("chat.postEphemeral"), what="the answer")
    import asyncio

    await asyncio.sleep(0.5)  # a second answer would have arrived by now
    posts = slack.standin.of("chat.postMessage") + slack.standin.of("chat.postEphemeral")
    assert len(posts) == 1, [p.body.get("text") for p in posts]
    assert posts[0].body["thread_ts"] == "1700000001.000100" and posts[0].body["channel"] == "C111"
    assert await slack.count(ChatEvent) == 1
    slack.assert_blocks_valid()


@pytest.mark.asyncio
async def test_rate_limited_call_is_retried(slack: Harness):
    slack.standin.rate_limit_once("chat.postMessage", retry_after=0)
    status, _, _ = await slack.command("status")
    assert status == 200
    ok = await slack.standin.wait_for(lambda: slack.standin.of("chat.postMessage"), what="the retried post")
    limited = [c for c in slack.standin.calls if c.method == "chat.postMessage" and c.status == 429]
    assert len(limited) == 1 and len(ok) == 1
    assert "costdna status" in ok[0].body["text"]
    slack.assert_blocks_valid()


@pytest.mark.asyncio
async def test_app_home_opened_publishes_the_home_view(slack: Harness):
    status, _, _ = await slack.client.post(slack.payloads.home_opened(user="W111"), json_body=True)
    assert status == 200
    calls = await slack.standin.wait_for(lambda: slack.standin.of("views.publish"), what="views.publish")
    view = calls[0].body["view"]
    assert calls[0].body["user_id"] == "W111" and view["type"] == "home"
    assert any(b["type"] == "header" for b in view["blocks"]) and "tiny" in json.dumps(view)
    slack.assert_blocks_valid()


@pytest.mark.asyncio
async def test_unknown_button_and_forged_value_get_an_ephemeral_note(slack: Harness):
    status, _, seconds = await slack.click("no_such_button:3", "x")
    assert status == 200 and seconds < 3.0
    status, _, _ = await slack.click("label_team:1", "999.forged.payments")
    assert status == 200
    notes = await slack.standin.wait_for(lambda: len(slack.standin.of("chat.postEphemeral")) >= 2 and
                                         slack.standin.of("chat.postEphemeral"), what="two notes")
    assert {n.body["user"] for n in notes} == {"W111"}
    assert "no_such_button" in notes[0].body["text"]  # the suffix was stripped before routing... and shown
    assert await slack.count(Label) == 0
    assert slack.standin.of("chat.update") == []
    slack.assert_blocks_valid()


# -- the whole flow with the real handlers ------------------------------------------------------------


async def _scan(slack: Harness) -> tuple[str, str]:
    """``/costdna scan``: one message, progress updates, then the summary. Returns (channel, ts)."""
    status, _, seconds = await slack.command("scan")
    assert status == 200 and seconds < 3.0
    posted = await slack.standin.wait_for(lambda: slack.standin.of("chat.postMessage"), what="the scan card")
    assert len(posted) == 1
    channel = posted[0].body["channel"]
    assert channel == "C111" and "Scanning" in posted[0].body["text"]

    def finished() -> list:
        return [c for c in slack.standin.of("chat.update") if "Scanning" not in c.body["text"]]

    await slack.standin.wait_for(finished, timeout=120, what="the summary update")
    async with slack.db.session() as s:
        scan = (await s.scalars(select(Scan))).one()
    ts = scan.chat_refs[0]["ts"]
    updates = slack.standin.of("chat.update")
    assert all(u.body["channel"] == channel and u.body["ts"] == ts for u in updates)
    assert any("Scanning" in u.body["text"] for u in updates), "no progress update"
    assert "failed" not in updates[-1].body["text"].lower(), updates[-1].body["text"]
    async with slack.db.session() as s:
        scan = (await s.scalars(select(Scan))).one()
        assert scan.status == "succeeded" and scan.chat_refs == [{"platform": "slack", "channel": channel, "ts": ts}]
    # throttled: at most one progress update per 2 s (plus the final one)
    progress = [u.at for u in updates if "Scanning" in u.body["text"]]
    assert all(b - a >= 1.9 for a, b in zip(progress, progress[1:], strict=False)), progress
    return channel, ts


@pytest.mark.asyncio
async def test_scan_label_replay_apply_approve(slack: Harness):
    await _scan(slack)
    n_posts = len(slack.standin.of("chat.postMessage"))

    # -- label: questions with buttons; a click stores the label with the clicker as actor ------------
    status, _, _ = await slack.command("label 1", user_id="W222")
    assert status == 200
    prompt_posts = await slack.standin.wait_for(
        lambda: slack.standin.of("chat.postMessage")[n_posts:], what="a question")
    q = prompt_posts[0]
    button = next(b for b in _buttons(q.body) if b["action_id"].split(":")[0] == "label_team")
    refs = await slack.refs(Prompt)
    assert refs[0]["channel"] == "C111" and refs[0]["platform"] == "slack"
    ts = refs[0]["ts"]
    status, _, seconds = await slack.click(button["action_id"], button["value"], user_id="W333", message_ts=ts)
    assert status == 200 and seconds < 3.0
    upd = await slack.standin.wait_for(lambda: [c for c in slack.standin.of("chat.update") if c.body["ts"] == ts],
                                       what="the answered question")
    assert upd[0].body["channel"] == "C111" and "W333" in _text(upd[0].body)
    async with slack.db.session() as s:
        labels = (await s.scalars(select(Label).where(Label.source == "human"))).all()
    assert len(labels) == 1 and labels[0].actor == "W333" and labels[0].team == button["value"].split(".", 2)[2]

    # -- the same click again: nothing changes, an ephemeral explanation -------------------------------
    n_updates = len(slack.standin.of("chat.update"))
    status, _, _ = await slack.click(button["action_id"], button["value"], user_id="W444", message_ts=ts)
    assert status == 200
    note = await slack.standin.wait_for(lambda: slack.standin.of("chat.postEphemeral"), what="the replay note")
    assert note[0].body["user"] == "W444" and "already" in note[0].body["text"]
    assert await slack.count(Label) == len(labels) + await _tag_labels(slack)
    assert len(slack.standin.of("chat.update")) == n_updates

    # -- apply: a change set card; a non-approver's approve is refused ---------------------------------
    n_posts = len(slack.standin.of("chat.postMessage"))
    status, _, _ = await slack.command("apply", user_id="W222")
    cs_post = (await slack.standin.wait_for(lambda: slack.standin.of("chat.postMessage")[n_posts:],
                                            what="the change set"))[0]
    approve = next(b for b in _buttons(cs_post.body) if b["action_id"] == "cs_approve")
    cs_ts = (await slack.refs(ChangeSet))[0]["ts"]
    async with slack.db.session() as s:
        cs = (await s.scalars(select(ChangeSet))).one()
        items = await repo.change_items(s, cs.id)
    n_notes = len(slack.standin.of("chat.postEphemeral"))
    await slack.click("cs_approve", approve["value"], user_id="W222", message_ts=cs_ts)
    refusal = await slack.standin.wait_for(lambda: slack.standin.of("chat.postEphemeral")[n_notes:],
                                           what="the refusal")
    assert refusal[0].body["user"] == "W222" and "approver" in refusal[0].body["text"].lower()
    async with slack.db.session() as s:
        assert (await repo.get_change_set(s, cs.id)).status == "proposed"

    # -- an approver's approve: tags written to the bundle, audited, the card updated ------------------
    await slack.click("cs_approve", approve["value"], user_id=APPROVER_ID, message_ts=cs_ts)

    def written() -> list:
        return [c for c in slack.standin.of("chat.update") if c.body["ts"] == cs_ts and "written" in c.body["text"]]

    await slack.standin.wait_for(written, timeout=30, what="the applied change set")
    async with slack.db.session() as s:
        cs = await repo.get_change_set(s, cs.id)
        assert cs.status == "applied" and cs.approver == APPROVER_ID
        actions = {(a.action, a.actor) for a in await repo.audit_entries(s, limit=500)}
    assert ("changeset.approved", APPROVER_ID) in actions and ("changeset.applied", "costdna") in actions
    assert ("prompt.answered", "W333") in actions
    assert not {("changeset.approved", "W222"), ("changeset.rejected", "W222")} & actions  # the refusal left none
    from jobs.accounts import synthetic_dir

    async with slack.db.session() as s:
        account = await repo.get_account(s, "tiny")
    resources = json.loads((synthetic_dir(account, slack.data_dir) / "bundle" / "resources.json").read_text())
    tags = {r["ResourceARN"]: {t["Key"]: t["Value"] for t in r.get("Tags", [])}
            for r in resources["ResourceTagMappingList"]}
    for item in items:
        assert tags[item.arn].get(slack.settings.tag_key) == item.team
    slack.assert_blocks_valid()


async def _tag_labels(slack: Harness) -> int:
    async with slack.db.session() as s:
        return await s.scalar(select(func.count()).select_from(Label).where(Label.source != "human"))



# -- the job notifier, the web process without Slack, Socket Mode's settings ------------------------------


@pytest.mark.asyncio
async def test_notifier_throttles_progress_and_never_fails_the_job(monkeypatch: pytest.MonkeyPatch):
    import handlers.views
    from bot.slack.app import make_client
    from bot.slack.notify import SlackNotifier
    from handlers.cards import Card

    refs = [{"platform": "slack", "channel": "C1", "ts": "1.1"}, {"platform": "discord", "channel": "9", "ts": "9"}]
    loads: list[tuple[str, int]] = []

    async def refreshed(db, kind, row_id):
        loads.append((kind, row_id))
        return Card(title=f"{kind} {row_id}", context=str(len(loads))), refs

    monkeypatch.setattr(handlers.views, "refreshed", refreshed)
    now = [100.0]
    async with SlackStandIn() as standin:
        settings = Settings(slack_api_url=standin.api_url)
        notifier = SlackNotifier(None, make_client(settings, token="xoxb-t"), clock=lambda: now[0])
        await notifier("scan.started", scan_id=1)
        await notifier("scan.progress", scan_id=1, stage="cloudtrail", progress=10)  # < 2 s later: skipped
        now[0] += 2.5
        await notifier("scan.progress", scan_id=1, stage="cloudtrail", progress=30)
        now[0] += 0.1
        await notifier("scan.progress", scan_id=1, stage="model", progress=80)  # skipped
        await notifier("scan.finished", scan_id=1, summary={})  # never throttled
        await notifier("changeset.applied", change_set_id=7, done=1, failed=0)
        await notifier("alert.opened", alert_id=3)  # not a tracked kind: ignored
        updates = standin.of("chat.update")
        assert [(u.body["channel"], u.body["ts"]) for u in updates] == [("C1", "1.1")] * 4  # only Slack refs
        assert [u.body["text"].split("\n")[0] for u in updates] == ["scan 1", "scan 1", "scan 1", "changeset 7"]
        assert all(u.token == "xoxb-t" for u in updates)

        standin.errors["chat.update"] = "message_not_found"  # Slack refuses: logged, the job goes on
        await notifier("scan.failed", scan_id=1, error="x")

    async def broken(db, kind, row_id):
        raise RuntimeError("database gone")

    monkeypatch.setattr(handlers.views, "refreshed", broken)
    await notifier("scan.finished", scan_id=2)  # raises nothing


@pytest.mark.asyncio
async def test_web_process_without_slack_settings_serves_health_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture):
    from aiohttp.test_utils import TestClient, TestServer

    for var in CLEAR:
        monkeypatch.delenv(var, raising=False)
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", redis_url=None,
                        slack_bot_token=None, slack_signing_secret=None, slack_client_id=None, slack_client_secret=None)
    with caplog.at_level("WARNING"):
        client = TestClient(TestServer(make_app(settings)))
        await client.start_server()
    try:
        assert (await client.get("/healthz")).status == 200
        assert (await client.post("/slack/events", data="x")).status == 404
        assert (await client.get("/slack/install")).status == 404
    finally:
        await client.close()
    assert "Slack is not configured" in caplog.text and "SLACK_SIGNING_SECRET" in caplog.text


def test_serve_socket_needs_the_app_token(cli_env, monkeypatch: pytest.MonkeyPatch):
    from typer.testing import CliRunner

    from bot.cli import app

    for var in CLEAR:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-x")
    result = CliRunner().invoke(app, ["serve", "--socket", "--port", "0"])
    assert result.exit_code == 2
    assert "SLACK_APP_TOKEN" in result.output


def test_action_ids_values_and_mentions_are_translated():
    from bot.slack.app import action_value, home_view, mention_text, strip_action_id
    from handlers.cards import Button, Card

    assert strip_action_id("label_team:12") == "label_team" and strip_action_id("cs_approve") == "cs_approve"
    assert action_value({"value": "1.n.payments"}) == "1.n.payments"
    assert action_value({"selected_option": {"value": "1.n.data"}}) == "1.n.data"
    assert mention_text("<@UBOT111> why did our bill spike?") == "why did our bill spike?"
    assert mention_text("<@UBOT111|costdna>   top spenders") == "top spenders"
    cards = [Card(title=f"c{i}", buttons=[Button("b", "x", str(i))]) for i in range(60)]
    view = home_view(cards)
    assert view["type"] == "home" and len(view["blocks"]) <= 100


@pytest.mark.asyncio
async def test_worker_context_takes_the_slack_notifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from bot.slack.app import build_slack_app
    from bot.slack.notify import SlackNotifier, worker_notifier
    from handlers.context import Services
    from jobs.notify import Fanout
    from jobs.worker import job_context, worker_settings

    for var in CLEAR:
        monkeypatch.delenv(var, raising=False)
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
                        slack_bot_token=TOKEN, slack_signing_secret=SECRET, slack_client_id=None,
                        slack_client_secret=None, slack_app_token="xapp-1")
    ctx = await job_context(settings, notifiers=[worker_notifier])
    try:
        assert isinstance(ctx["notify"], Fanout)
        assert any(isinstance(n, SlackNotifier) for n in ctx["notify"].notifiers)
    finally:
        await ctx["db"].close()
    assert worker_settings(settings, notifiers=[worker_notifier])["on_startup"].keywords["notifiers"] == (
        worker_notifier,)
    plain = await job_context(settings.model_copy(update={"slack_bot_token": None}), notifiers=[worker_notifier])
    try:
        assert len(plain["notify"].notifiers) == 1  # without Slack settings: only the log notifier
    finally:
        await plain["db"].close()
    # Socket Mode builds without a signing secret (requests arrive over the socket)
    app = build_slack_app(Services(db=None, queue=None, settings=settings),
                          settings.model_copy(update={"slack_signing_secret": None}), socket=True)
    assert app.client.token == TOKEN


@pytest.mark.asyncio
async def test_tokens_never_reach_the_logs(slack: Harness, caplog: pytest.LogCaptureFixture):
    """At the level the processes log (INFO), through a command, a scan and a failing Web API call."""
    with caplog.at_level("INFO"):
        await slack.command("help")
        await slack.command("scan")
        await slack.standin.wait_for(lambda: slack.standin.of("chat.update"), what="a progress update")
        await slack.command("definitely-not-a-subcommand")
    assert caplog.records, "nothing was logged: the check would be empty"
    assert TOKEN not in caplog.text and SECRET not in caplog.text

"""Follow-ups in the same Slack thread keep the conversation's context (issue 10).

Over Slack's signed HTTP path (the real web application, ``tests/slack_standin.py`` for the Web API,
SQLite, jobs in-process, a tiny synthetic account scanned once per test): a mention starts a thread and
a later mention or plain reply in it is asked with the previous answer's context; a slash command's
answer message becomes a thread root; an expired context is not used; everything else in a channel
stays unread. Only ``handlers.ask.ask`` is wrapped, to record what it was given (the real one answers).
The storage functions run on SQLite and PostgreSQL; the answer card renders to valid Block Kit.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update

from storage import ask_repo
from storage.db import Database
from storage.models import AskThread, ChatEvent, utcnow
from tests.slack_standin import BOT_USER_ID, TEAM_ID, Payloads, SlackStandIn, check_blocks, start_bot

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token-123"
SMALL = dict(seed=2, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)
CLEAR = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
         "SLACK_API_URL", "REDIS_URL", "COSTDNA_REDIS_URL", "DATABASE_URL", "COSTDNA_DATABASE_URL",
         "COSTDNA_APPROVERS", "OPENAI_API_KEY", "OPENAI_BASE_URL", "COSTDNA_ASK_THREAD_TTL_H")
MESSAGE_FIXTURE = "scenario_tests_async__test_message__message_body.json"


@dataclass
class Asked:
    question: str
    context: dict | None
    answer: Any  # engine.ask.answer.Answer


@dataclass
class Harness:
    standin: SlackStandIn
    client: Any  # tests.slack_standin.SlackClient
    payloads: Payloads
    db: Any
    settings: Any
    asks: list[Asked]
    message_body: dict

    def mention(self, text: str, *, event_id: str, ts: str, thread_ts: str | None = None,
                channel: str = "C111", user: str = "W222") -> str:
        body = json.loads(self.payloads.app_mention(text, event_id=event_id, ts=ts, channel=channel, user=user))
        if thread_ts:
            body["event"]["thread_ts"] = thread_ts
        return json.dumps(body)

    def message(self, text: str, *, event_id: str, ts: str, thread_ts: str | None = None, channel: str = "C111",
                user: str = "W222", **extra: Any) -> str:
        """A ``message`` event shaped like Bolt's own fixture (a channel message, or a thread reply)."""
        body = copy.deepcopy(self.message_body)
        body["team_id"], body["event_id"], body["event_time"] = TEAM_ID, event_id, int(float(ts))
        ev = {**body["event"], "text": text, "user": user, "channel": channel, "ts": ts, "event_ts": ts,
              "team": TEAM_ID, **extra}
        ev["blocks"] = [{"type": "rich_text", "block_id": "b1", "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}]
        if thread_ts:
            ev["thread_ts"] = thread_ts
        body["event"] = ev
        body["authorizations"] = [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID,
                                   "is_bot": True, "is_enterprise_install": False}]
        return json.dumps(body)

    async def event(self, body: str) -> None:
        status, _, seconds = await self.client.post(body, json_body=True)
        assert status == 200 and seconds < 3.0

    def posts(self) -> list[Any]:
        return self.standin.of("chat.postMessage")

    async def next_post(self, after: int, what: str) -> Any:
        new = await self.standin.wait_for(lambda: self.posts()[after:], timeout=30, what=what)
        return new[0]

    async def asked(self, n: int, what: str = "") -> None:
        deadline = time.monotonic() + 30
        while len(self.asks) < n:
            assert time.monotonic() < deadline, f"handlers.ask.ask was not called {n} times ({what})"
            await asyncio.sleep(0.05)

    async def thread(self, thread_ts: str, channel: str = "C111") -> AskThread | None:
        async with self.db.session() as s:
            return await s.scalar(select(AskThread).where(AskThread.channel == channel,
                                                          AskThread.thread_ts == thread_ts))

    async def quiet(self, n_posts: int, n_asks: int, seconds: float = 0.6) -> None:
        """Nothing was asked or posted (an answer would have arrived by now)."""
        await asyncio.sleep(seconds)
        assert len(self.asks) == n_asks, [a.question for a in self.asks[n_asks:]]
        assert len(self.posts()) == n_posts, [p.body.get("text") for p in self.posts()[n_posts:]]

    def assert_blocks_valid(self) -> None:
        for c in self.standin.calls:
            if c.status == 200 and c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral",
                                                "response_url"):
                assert check_blocks(c.body) == [], (check_blocks(c.body), c.body)


@pytest_asyncio.fixture
async def slack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path, fast_model) -> Any:
    import bot.slack.server
    import handlers.ask

    for var in CLEAR:  # AsyncApp turns OAuth on by itself when SLACK_CLIENT_ID/SECRET are set
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bot.slack.server, "QUEUE_CLOSE_TIMEOUT_S", 1)
    asks: list[Asked] = []
    real = handlers.ask.ask

    async def recording(db: Any, question: str, **kw: Any) -> Any:
        given = copy.deepcopy(kw.get("context"))
        answer = await real(db, question, **kw)
        asks.append(Asked(question, given, answer))
        return answer

    monkeypatch.setattr(handlers.ask, "ask", recording)
    standin = await SlackStandIn().start()
    bot = await start_bot(tmp_path, standin, SECRET, token=TOKEN, account="tiny", options=SMALL, job_timeout=120)
    message_body = json.loads((shared_data / "slack" / "bolt-payloads" / MESSAGE_FIXTURE).read_text())
    h = Harness(standin, bot.client, Payloads(shared_data, standin), bot.db, bot.settings, asks, message_body)
    try:
        await _scan(h)
        yield h
    finally:
        await bot.client.close()
        await bot.runner.cleanup()
        await standin.stop()


async def _scan(h: Harness) -> None:
    """``/costdna scan`` over Slack, waited for, so the asks have results to answer from."""
    from storage.models import Scan

    status, _, _ = await h.client.post(h.payloads.command("scan"))
    assert status == 200
    deadline = time.monotonic() + 180
    while True:
        async with h.db.session() as s:
            scan = await s.scalar(select(Scan).order_by(Scan.id.desc()).limit(1))
        if scan is not None and scan.status in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, "the scan did not finish"
        await asyncio.sleep(0.2)
    assert scan.status == "succeeded", scan.error
    await asyncio.sleep(0.3)  # the scan card's last update
    h.standin.calls.clear()


# -- (a) mentions: the second one in the thread gets the first one's context ---------------------------


@pytest.mark.asyncio
async def test_mention_follow_up_in_the_thread_gets_the_previous_context(slack: Harness):
    root = "1800000001.000100"
    await slack.event(slack.mention("top spenders", event_id="EvAsk1", ts=root))
    first = await slack.next_post(0, "the first answer")
    await slack.asked(1)
    one = slack.asks[0]
    assert one.question == "top spenders" and one.context is None  # a new thread: nothing to go on
    assert one.answer.context, "the answer carries no context to follow up from"
    assert first.body["thread_ts"] == root and first.body["channel"] == "C111"
    stored = await slack.thread(root)
    assert stored is not None and stored.platform == "slack" and stored.workspace == TEAM_ID
    assert stored.context == one.answer.context
    ttl = timedelta(hours=slack.settings.ask_thread_ttl_h)
    assert abs((stored.expires_at - stored.updated_at) - ttl) < timedelta(seconds=1)

    # "@costdna and the second one?" in the same thread: Slack sends it with the root's thread_ts
    await slack.event(slack.mention("and the second one?", event_id="EvAsk2", ts="1800000002.000200",
                                    thread_ts=root))
    # ...and, with the message.* events on, the same text as a message event: answered once, not twice
    await slack.event(slack.message(f"<@{BOT_USER_ID}> and the second one?", event_id="EvMsg2",
                                    ts="1800000002.000200", thread_ts=root))
    second = await slack.next_post(1, "the follow-up's answer")
    await slack.asked(2)
    two = slack.asks[1]
    assert two.question == "and the second one?"
    assert two.context == one.answer.context  # the first answer's context, as stored
    assert second.body["thread_ts"] == root and second.body["channel"] == "C111"
    assert (await slack.thread(root)).context == (two.answer.context or one.answer.context)

    # a plain reply in the thread (no mention) is a follow-up too, from the latest answer's context
    await slack.event(slack.message("and last month?", event_id="EvMsg3", ts="1800000003.000300", thread_ts=root))
    third = await slack.next_post(2, "the plain reply's answer")
    await slack.asked(3)
    assert slack.asks[2].question == "and last month?"
    assert slack.asks[2].context == (two.answer.context or one.answer.context)
    assert third.body["thread_ts"] == root
    await slack.quiet(3, 3)

    # a retried delivery of the reply is not answered again
    status, _, _ = await slack.client.post(
        slack.message("and last month?", event_id="EvMsg3", ts="1800000003.000300", thread_ts=root),
        json_body=True, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert status == 200
    await slack.quiet(3, 3)
    async with slack.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(AskThread)) == 1
    slack.assert_blocks_valid()


@pytest.mark.asyncio
async def test_other_messages_stay_unread(slack: Harness):
    root = "1800000010.000100"
    await slack.event(slack.mention("untagged spend", event_id="EvU1", ts=root))
    await slack.next_post(0, "the answer")
    await slack.asked(1)
    async with slack.db.session() as s:
        events = await s.scalar(select(func.count()).select_from(ChatEvent))

    unread = [
        slack.message("top spenders", event_id="EvN1", ts="1800000011.000100"),  # channel chatter
        slack.message("top spenders", event_id="EvN2", ts="1800000012.000100",  # another thread
                      thread_ts="1800000099.000100"),
        slack.message("top spenders", event_id="EvN3", ts="1800000013.000100", thread_ts=root,  # a bot
                      bot_id="B999", subtype="bot_message"),
        slack.message("edited", event_id="EvN4", ts="1800000014.000100", thread_ts=root,  # an edit
                      subtype="message_changed"),
        slack.message("<@W333> can you check this?", event_id="EvN5", ts="1800000015.000100",  # to a person
                      thread_ts=root),
        slack.message("top spenders", event_id="EvN6", ts="1800000016.000100", thread_ts=root,  # elsewhere
                      channel="C999"),
        slack.message("top spenders", event_id="EvN7", ts="1800000017.000100",  # a DM, not in a thread
                      channel="D111", channel_type="im"),
    ]
    for body in unread:
        await slack.event(body)
    await slack.quiet(1, 1)
    async with slack.db.session() as s:  # not even recorded: unread
        assert await s.scalar(select(func.count()).select_from(ChatEvent)) == events


# -- (b) a slash command's answer becomes the thread root -------------------------------------------------


@pytest.mark.asyncio
async def test_slash_command_answer_becomes_the_thread_root(slack: Harness):
    status, body, _ = await slack.client.post(slack.payloads.command("ask top spenders"))
    assert status == 200 and body == ""
    answer = await slack.next_post(0, "the slash command's answer")
    assert "thread_ts" not in answer.body and answer.body["channel"] == "C111"
    await slack.asked(1)
    assert slack.asks[0].context is None
    # the message's ts, as the stand-in answered it (nothing else was posted since)
    k = slack.standin._ts
    posted_ts = f"{1700000000 + k}.{k:06d}"
    deadline = time.monotonic() + 10
    while (stored := await slack.thread(posted_ts)) is None:
        assert time.monotonic() < deadline, "the posted answer did not become a thread root"
        await asyncio.sleep(0.05)
    assert stored.context == slack.asks[0].answer.context
    async with slack.db.session() as s:  # nothing left under a provisional key
        left = (await s.scalars(select(AskThread.thread_ts))).all()
    assert left == [posted_ts]

    await slack.event(slack.message("who owns the second one?", event_id="EvS2", ts="1800000021.000100",
                                    thread_ts=posted_ts, user="W111"))
    reply = await slack.next_post(1, "the follow-up's answer")
    await slack.asked(2)
    assert slack.asks[1].question == "who owns the second one?"
    assert slack.asks[1].context == slack.asks[0].answer.context
    assert reply.body["thread_ts"] == posted_ts and reply.body["channel"] == "C111"
    slack.assert_blocks_valid()


# -- (c) expiry ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_expired_context_is_not_used(slack: Harness):
    root = "1800000030.000100"
    await slack.event(slack.mention("top spenders", event_id="EvE1", ts=root))
    await slack.next_post(0, "the answer")
    await slack.asked(1)
    async with slack.db.session() as s:  # the ttl has run out
        await s.execute(update(AskThread).where(AskThread.thread_ts == root)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))

    # a plain reply in the expired thread is no longer read
    await slack.event(slack.message("and last month?", event_id="EvE2", ts="1800000031.000100", thread_ts=root))
    await slack.quiet(1, 1)

    # a mention there is answered afresh: no context, and the thread starts again from this answer
    await slack.event(slack.mention("and last month?", event_id="EvE3", ts="1800000032.000100", thread_ts=root))
    again = await slack.next_post(1, "the fresh answer")
    await slack.asked(2)
    assert slack.asks[1].context is None
    assert again.body["thread_ts"] == root
    stored = await slack.thread(root)
    assert stored.context == slack.asks[1].answer.context and stored.expires_at > utcnow()


# -- (d) storage on both back ends -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_thread_storage(db_url: str):
    async with Database(db_url) as db:
        ttl = timedelta(hours=2)
        t0 = utcnow()
        async with db.session() as s:
            assert await ask_repo.load_thread(s, "slack", "C1", "1.1") is None
            await ask_repo.save_thread(s, "slack", "T1", "C1", "1.1", {"q": "top spenders", "ids": ["i-1"]}, ttl,
                                       account="prod")
        async with db.session() as s:
            assert await ask_repo.load_thread(s, "slack", "C1", "1.1") == {"q": "top spenders", "ids": ["i-1"]}
            assert await ask_repo.load_thread(s, "discord", "C1", "1.1") is None  # keyed by platform too
            assert await ask_repo.load_thread(s, "slack", "C2", "1.1") is None
            assert await ask_repo.load_thread(s, "slack", "", "") is None
            # an upsert replaces the context and extends the expiry, keeping one row
            await ask_repo.save_thread(s, "slack", "T1", "C1", "1.1", {"q": "and last month?"}, ttl, account="prod",
                                       now=t0 + timedelta(hours=1))
        async with db.session() as s:
            rows = (await s.scalars(select(AskThread))).all()
            assert len(rows) == 1 and rows[0].context == {"q": "and last month?"} and rows[0].account == "prod"
            assert rows[0].expires_at == t0 + timedelta(hours=3)
            assert rows[0].workspace == "T1" and rows[0].expires_at.tzinfo is not None
            # expiry: loaded until it passes, never after
            assert await ask_repo.load_thread(s, "slack", "C1", "1.1", now=t0 + timedelta(hours=2, minutes=59)) \
                == {"q": "and last month?"}
            assert await ask_repo.load_thread(s, "slack", "C1", "1.1", now=t0 + timedelta(hours=3)) is None
            # a provisional thread (a slash command's answer) attached to its posted message
            pid = await ask_repo.start_thread(s, "slack", "T1", "C1", {"q": "untagged"}, ttl)
            pending = await s.get(AskThread, pid)
            assert pending.thread_ts.startswith(ask_repo.PENDING)
            assert await ask_repo.attach_thread(s, pid, "C1", "2.2") is True
            assert await ask_repo.attach_thread(s, pid, "C1", "3.3") is False  # once only
            assert await ask_repo.attach_thread(s, 10**9, "C1", "4.4") is False  # gone
        async with db.session() as s:
            assert await ask_repo.load_thread(s, "slack", "C1", "2.2") == {"q": "untagged"}
            # an old one saved long ago has expired; purge deletes only expired rows
            await ask_repo.save_thread(s, "slack", "T1", "C9", "9.9", {"q": "old"}, timedelta(minutes=5),
                                       now=t0 - timedelta(days=2))
            assert await ask_repo.load_thread(s, "slack", "C9", "9.9") is None
            assert await ask_repo.purge_expired(s) == 1
            assert await ask_repo.purge_expired(s, now=t0 + timedelta(hours=2, minutes=30)) == 1  # 2.2 (t0 + 2 h)
            left = (await s.scalars(select(AskThread.thread_ts))).all()
            assert left == ["1.1"]
        with pytest.raises(ValueError):
            async with db.session() as s:
                await ask_repo.save_thread(s, "slack", "T1", "", "", {}, ttl)


@pytest.mark.asyncio
async def test_concurrent_saves_of_one_thread_keep_one_row(db_url: str):
    async with Database(db_url) as db:
        async def save(i: int) -> None:
            async with db.session() as s:
                await ask_repo.save_thread(s, "slack", "T1", "C1", "5.5", {"i": i}, timedelta(hours=1))

        await asyncio.gather(*(save(i) for i in range(5)))
        async with db.session() as s:
            rows = (await s.scalars(select(AskThread))).all()
        assert len(rows) == 1 and rows[0].context["i"] in range(5)


# -- handlers without Slack: where there is no thread ---------------------------------------------------


@pytest.mark.asyncio
async def test_no_channel_stores_nothing(sqlite_url: str):
    from config.settings import Settings
    from handlers.commands import handle_command
    from handlers.context import Services, Who

    async with Database(sqlite_url) as db:
        svc = Services(db=db, queue=None, settings=Settings(database_url=sqlite_url, redis_url=None))
        console = Who(platform="console", workspace="local", user_id="console")
        reply = await handle_command(svc, console, "ask top spenders")
        assert len(reply.posts) == 1 and reply.posts[0].tracks is None
        slash = Who(platform="slack", workspace="T1", user_id="U1", channel_id="C1")
        reply = await handle_command(svc, slash, "ask top spenders")
        assert reply.posts[0].tracks is not None and reply.posts[0].tracks[0] == "ask"
        threaded = Who(platform="slack", workspace="T1", user_id="U1", channel_id="C1", thread_ts="7.7")
        reply = await handle_command(svc, threaded, "ask top spenders")
        assert reply.posts[0].tracks is None
        async with db.session() as s:
            assert await ask_repo.load_thread(s, "slack", "C1", "7.7") is not None
            assert await s.scalar(select(func.count()).select_from(AskThread)) == 2


# -- (e) Block Kit -------------------------------------------------------------------------------------------


def test_answer_card_and_home_hint_render_to_valid_block_kit():
    from bot.slack.render import to_message
    from engine.ask.answer import Answer
    from handlers.ask import answer_card
    from handlers.home import ask_card

    ids = [f"i-{n:017x}" for n in range(40)]
    long = Answer(question="top spenders", title="Top spenders in tiny, last 30 days",
                  text="\n".join(f"{n + 1}. `{i}` — *$1,234.{n:02d}* (team payments)" for n, i in enumerate(ids)) * 3,
                  tools=["top_spenders"], citations=ids, figures={"total_usd": 1234.56},
                  note="the LLM's answer quoted $9.99 not found in any tool result; this is the offline answer",
                  context={"tool": "top_spenders", "citations": ids})
    none = Answer(question="why?", title="I can't answer that from what is stored", text="No scan yet.", ok=False)
    for card in (answer_card(long), answer_card(none), ask_card()):
        msg = to_message(card)
        assert msg["text"] and msg["blocks"]
        assert check_blocks(msg) == [], check_blocks(msg)

"""The Discord adapter end to end: the real discord.py client connected to a local Discord stand-in
(``tests/discord_standin.py``: REST under ``Route.BASE`` and the gateway websocket), interactions built from
the real payloads in ``shared/data/discord``, recorded REST calls asserted.

First the stand-in itself, proven with a bare ``discord.Client`` (login, gateway handshake, heartbeats, an
interaction deferred and its original response edited, a 429 retried, a refused DM); then the costdna bot
(``bot.discord.app``) with the real database and handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.discord_standin import (
    ALERTS_CHANNEL_ID,
    APP_ID,
    APPROVER_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    HEARTBEAT,
    IDENTIFY,
    OTHER_ID,
    USER_ID,
    DiscordStandIn,
    check_message,
    guard_discord_globals,
    point_discord_at,
    with_button,
)

TOKEN = "discord-test-token.standin.secret"
pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def running(client: Any, token: str = TOKEN):
    """``client.start(token)`` in a task; closed afterwards."""
    task = asyncio.create_task(client.start(token))
    try:
        yield task
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)


# -- the stand-in, with a bare discord.Client -------------------------------------------------------------


@pytest_asyncio.fixture
async def standin(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    s = await DiscordStandIn(heartbeat_interval_ms=150, token=TOKEN, shared_data=shared_data).start()
    point_discord_at(s, monkeypatch)
    try:
        yield s
    finally:
        await s.stop()


async def test_bare_client_connects_identifies_and_heartbeats(standin: DiscordStandIn):
    import discord

    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.2)
    ready = asyncio.Event()
    client.event(_setter("on_ready", ready))
    async with running(client):
        await asyncio.wait_for(ready.wait(), 10)
        assert client.user is not None and str(client.user.id) == BOT_USER_ID
        assert client.application_id == int(APP_ID)
        guild = client.get_guild(int(GUILD_ID))
        assert guild is not None and guild.get_channel(int(CHANNEL_ID)) is not None
        assert guild.member_count == 4 and guild.me is not None  # members cached only with the members intent
        await standin.wait_for(lambda: standin.acks() >= 3, timeout=5, what="three heartbeats")
        assert client.latency < 1.0  # every heartbeat was acked
        assert [c.name for c in standin.calls] == ["users.me", "applications.me"]  # login; no REST for the gateway
        assert all(c.token == TOKEN for c in standin.calls)
        identify = next(f.d for f in standin.frames if f.op == IDENTIFY)
        assert identify["token"] == TOKEN and identify["intents"] == discord.Intents.default().value
        assert standin.sockets[0].params["compress"] == "zlib-stream"  # and the stand-in answered compressed
        assert all(f.op in (HEARTBEAT, IDENTIFY) for f in standin.frames)


async def test_bad_token_is_refused(standin: DiscordStandIn):
    import discord

    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()


def _setter(name: str, event: asyncio.Event):
    async def handler(*_: Any) -> None:
        event.set()

    handler.__name__ = name
    return handler


async def test_bare_client_defers_and_edits_an_interaction_from_a_real_payload(standin: DiscordStandIn):
    import discord
    from discord import app_commands

    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.2)
    tree = app_commands.CommandTree(client)
    group = app_commands.Group(name="costdna", description="costdna")
    seen: list[tuple[int, str, str]] = []

    @group.command(name="status", description="status")
    async def status(interaction: discord.Interaction, account: str = "") -> None:
        await interaction.response.defer()
        seen.append((interaction.user.id, str(interaction.channel_id), account))
        await asyncio.sleep(0.1)
        await interaction.edit_original_response(embed=discord.Embed(title="costdna status", description="ok"))
        await interaction.followup.send("only you", ephemeral=True)

    tree.add_command(group, guild=discord.Object(int(GUILD_ID)))
    ready = asyncio.Event()
    client.event(_setter("on_ready", ready))
    async with running(client):
        await asyncio.wait_for(ready.wait(), 10)
        synced = await tree.sync(guild=discord.Object(int(GUILD_ID)))
        assert [c.name for c in synced] == ["costdna"]
        it = await standin.slash("costdna", "status", account="tiny")
        await standin.answered(it.id)
        assert it.seconds_to_callback is not None and it.seconds_to_callback < 3.0
        assert it.callback == {"type": 5}  # deferred ("thinking")
        edits = await standin.wait_for(lambda: standin.of("webhook.edit"), what="the edited original")
        follow = await standin.wait_for(lambda: standin.of("webhook.followup"), what="the followup")
    assert seen == [(int(USER_ID), CHANNEL_ID, "tiny")]
    (cb,) = standin.of("interaction.callback")
    assert cb.match["interaction_id"] == it.id and cb.match["token"] == it.token and cb.params["with_response"] == "1"
    assert edits[0].match["message_id"] == "@original" and edits[0].match["app_id"] == APP_ID
    original = standin.messages[it.original_id]
    assert original["embeds"][0]["title"] == "costdna status" and not original["flags"] & 128  # loaded
    assert check_message(original) == []
    assert follow[0].body["flags"] == 64 and follow[0].params.get("wait") in ("1", "true")
    assert [c.name for c in standin.bot_calls()] == ["interaction.callback", "webhook.edit", "webhook.followup"]


async def test_bare_client_button_click_rate_limit_and_refused_dm(standin: DiscordStandIn):
    import discord

    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.2)
    clicks: list[str] = []

    @client.event
    async def on_interaction(interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.component:
            clicks.append(interaction.data["custom_id"])
            await interaction.response.defer()
            await interaction.edit_original_response(content="clicked", view=None)

    ready = asyncio.Event()
    client.event(_setter("on_ready", ready))
    async with running(client):
        await asyncio.wait_for(ready.wait(), 10)
        channel = client.get_channel(int(CHANNEL_ID))
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Yes", custom_id="costdna:x:1"))
        standin.rate_limit_once("message.post", retry_after=0.05)
        sent = await channel.send("a question", view=view)  # 429 first, retried after retry_after
        posts = standin.of("message.post", ok=False)
        assert [c.status for c in posts] == [429, 200]
        assert posts[1].at - posts[0].at >= 0.05
        it = await standin.click("costdna:x:1", str(sent.id))
        await standin.wait_for(lambda: standin.of("webhook.edit"), what="the edit of the clicked message")
        assert clicks == ["costdna:x:1"] and it.callback == {"type": 6}
        assert standin.messages[str(sent.id)]["content"] == "clicked"
        assert standin.messages[str(sent.id)]["components"] == []

        standin.refuse_dm(USER_ID)
        user = await client.fetch_user(int(USER_ID))
        with pytest.raises(discord.Forbidden) as e:
            await user.send("a spike")
        assert e.value.code == 50007
        assert [c.status for c in standin.of("dm.open", "message.post", ok=False)[-2:]] == [200, 403]


async def test_discord_api_url_alone_points_rest_and_the_gateway_at_the_standin(shared_data: Path, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """What ``costdna discord`` does with ``DISCORD_API_URL`` set and nothing patched: REST goes to the
    stand-in, and the gateway too (a plain ``discord.Client`` never asks ``GET /gateway/bot`` itself, so the
    adapter must, then set ``DiscordWebSocket.DEFAULT_GATEWAY``)."""
    from bot.discord.app import build_client
    from config.settings import Settings
    from handlers.context import Services

    guard_discord_globals(monkeypatch)
    async with DiscordStandIn(token=TOKEN, shared_data=shared_data) as s:
        settings = Settings(data_dir=tmp_path, discord_token=TOKEN, discord_api_url=s.api_url,
                            discord_guild_id=int(GUILD_ID))
        client = build_client(Services(db=None, queue=None, settings=settings), settings)
        async with running(client):
            await asyncio.wait_for(s.identified.wait(), 5)
        assert [c.name for c in s.calls][:4] == ["users.me", "applications.me", "gateway.bot", "guild_commands.put"]
        assert s.of("guild_commands.put")[0].match["guild_id"] == GUILD_ID


# -- the costdna bot: bot.discord.app with the real database and handlers ---------------------------------

SMALL = dict(seed=2, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)
CLEAR = ("DISCORD_TOKEN", "DISCORD_GUILD_ID", "DISCORD_API_URL", "REDIS_URL", "COSTDNA_REDIS_URL", "DATABASE_URL",
         "COSTDNA_DATABASE_URL", "COSTDNA_APPROVERS", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
         "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")


class Bot:
    def __init__(self, standin: DiscordStandIn, client: Any, svc: Any, workspace_id: int, account_id: int) -> None:
        self.standin, self.client, self.svc = standin, client, svc
        self.db = svc.db
        self.workspace_id, self.account_id = workspace_id, account_id

    async def slash(self, *path: str, user_id: str = USER_ID, **options: Any) -> Any:
        """``/costdna path… options…``: deferred in under 3 s; the interaction once answered (its original
        response edited, or deleted when every card was a follow-up)."""
        it = await self.standin.slash("costdna", *path, user_id=user_id, **options)
        await self.standin.answered(it.id, timeout=3.0)
        assert it.seconds_to_callback < 3.0, it.seconds_to_callback
        assert it.callback["type"] == 5, it.callback  # deferred, "thinking"
        await self.standin.wait_for(lambda: self.token_calls(it, "webhook.edit", "webhook.delete"), timeout=30,
                                    what=f"the answer to /costdna {' '.join(path)}")
        return it

    def token_calls(self, it: Any, *names: str) -> list[Any]:
        return self.standin.of(*names, pred=lambda c: c.match.get("token") == it.token)

    async def click(self, custom_id: str, message_id: str, *, user_id: str = USER_ID, **kw: Any) -> Any:
        it = await self.standin.click(custom_id, message_id, user_id=user_id, **kw)
        await self.standin.answered(it.id, timeout=3.0)
        assert it.seconds_to_callback < 3.0
        return it

    async def settled(self, it: Any, quiet: float = 0.3) -> None:
        """Wait until the bot has made no call for this interaction in ``quiet`` seconds."""
        n = -1
        while True:
            calls = self.token_calls(it, "webhook.edit", "webhook.followup", "webhook.delete")
            if len(calls) == n:
                return
            n = len(calls)
            await asyncio.sleep(quiet)

    def custom_ids(self, message_id: str) -> list[str]:
        msg = self.standin.messages[message_id]
        return [c.get("custom_id", "") for row in msg.get("components") or [] for c in row.get("components") or []]

    def assert_valid(self) -> None:
        """Every message the bot sent or edited is within Discord's limits and has an embed."""
        for c in self.standin.bot_calls():
            if c.name in ("webhook.edit", "webhook.followup", "message.post", "message.edit") and c.status < 300:
                assert check_message(c.body or {}) == [], (check_message(c.body or {}), c.body)
                if c.name != "message.edit" or "embeds" in (c.body or {}):
                    assert (c.body or {}).get("embeds"), c.body
        for m in self.standin.messages.values():
            assert check_message(m) == [], (check_message(m), m)

    async def count(self, model: Any, *where: Any) -> int:
        from sqlalchemy import func, select

        async with self.db.session() as s:
            return await s.scalar(select(func.count()).select_from(model).where(*where))


@pytest_asyncio.fixture
async def costdna(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path, fast_model) -> Any:
    from bot.discord.app import build_client
    from config.settings import Settings
    from handlers.context import Services
    from jobs.notify import Fanout, log_notifier
    from jobs.queue import open_queue
    from storage import repo
    from storage.db import Database

    for var in CLEAR:
        monkeypatch.delenv(var, raising=False)
    standin = await DiscordStandIn(token=TOKEN, shared_data=shared_data).start()
    guard_discord_globals(monkeypatch)  # the adapter points discord.py at the stand-in from DISCORD_API_URL alone
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
                        redis_url=None, workers=1, job_timeout=120, discord_token=TOKEN,
                        discord_guild_id=int(GUILD_ID), discord_api_url=standin.api_url, approvers=APPROVER_ID)
    db = await Database(settings.db_url()).init()
    ref: list[Any] = []
    try:
        from bot.discord.alerts import DiscordNotifier

        notify = Fanout(log_notifier, DiscordNotifier(db, ref))
    except ImportError:  # the adapter's notifier is not there yet
        notify = Fanout(log_notifier)
    svc = Services(db=db, queue=None, settings=settings)
    svc.queue = await open_queue(settings, {"settings": settings, "db": db, "notify": notify})
    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "discord", GUILD_ID)
        account = await repo.add_account(s, "tiny", "synthetic", options=SMALL, workspace_id=ws.id, actor="test")
        ids = ws.id, account.id
    client = build_client(svc, settings, guild_ready_timeout=0.2)
    ref.append(client)
    task = asyncio.create_task(client.start(TOKEN))
    try:
        await asyncio.wait_for(client.ready.wait(), 15)
        yield Bot(standin, client, svc, *ids)
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(svc.queue.close(), 1)  # a debounced retrain is not waited for
        await db.close()
        await standin.stop()


async def test_commands_synced_and_slash_deferred_then_answered_with_valid_embeds(costdna: Bot):
    bot = costdna
    synced = bot.standin.commands.get(GUILD_ID) or []
    assert [c["name"] for c in synced] == ["costdna"]
    subs = {o["name"] for o in synced[0]["options"]}
    assert {"help", "status", "scan", "ask", "owner", "teams", "label", "apply", "spikes", "digest",
            "settings"} <= subs
    it = await bot.slash("help")
    (cb,) = bot.token_calls(it, "webhook.edit")
    assert cb.match["message_id"] == "@original"
    original = bot.standin.messages[it.original_id]
    assert original["flags"] & 64  # help is only for the person asking
    assert original["embeds"] and "costdna" in original["embeds"][0].get("title", "").lower() + str(original)
    it = await bot.slash("status")
    assert not bot.standin.messages[it.original_id]["flags"] & 64  # status is public
    bot.assert_valid()


async def _scan(bot: Bot) -> str:
    """``/costdna scan``: the answer is the scan card, then edited (progress, then the summary) -- always the
    same message. Returns its id."""
    from sqlalchemy import select

    from storage.models import Scan

    it = await bot.slash("scan")
    mid = it.original_id
    assert "scan" in str(bot.standin.messages[mid]["embeds"]).lower()

    async def done() -> Any:
        async with bot.db.session() as s:
            return await s.scalar(select(Scan).where(Scan.status.in_(("succeeded", "failed"))))

    for _ in range(1200):
        scan = await done()
        if scan is not None:
            break
        await asyncio.sleep(0.1)
    assert scan is not None and scan.status == "succeeded", scan and scan.status
    assert scan.chat_refs and {r["platform"] for r in scan.chat_refs} == {"discord"}
    assert [(r["channel"], r["ts"]) for r in scan.chat_refs] == [(CHANNEL_ID, mid)]
    return mid


async def test_scan_progress_edits_one_message(costdna: Bot):
    pytest.importorskip("bot.discord.alerts", reason="the adapter's notifier (bot/discord/alerts.py) edits progress")
    bot = costdna
    mid = await _scan(bot)
    edits = await bot.standin.wait_for(
        lambda: [c for c in bot.standin.of("message.edit") if "scanning" not in str(c.body).lower()]
        and bot.standin.of("message.edit"), timeout=30, what="the summary edit")
    assert {c.match["message_id"] for c in edits} == {mid} and {c.match["channel_id"] for c in edits} == {CHANNEL_ID}
    assert len(edits) >= 2, "no progress edit before the summary"
    assert [m for m in bot.standin.in_channel(CHANNEL_ID) if m["author"]["id"] == BOT_USER_ID] == [
        bot.standin.messages[mid]]  # one message for the whole scan
    final = bot.standin.messages[mid]
    assert "failed" not in str(final["embeds"]).lower()
    bot.assert_valid()


async def _refs(bot: Bot, model: Any, timeout: float = 10.0) -> list[dict]:
    """The chat refs of the newest ``model`` row, once the adapter has recorded them."""
    from sqlalchemy import select

    for _ in range(int(timeout / 0.05)):
        async with bot.db.session() as s:
            row = await s.scalar(select(model).order_by(model.id.desc()).limit(1))
            if row is not None and row.chat_refs:
                return list(row.chat_refs)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no chat refs on {model.__name__}")


def _button(bot: Bot, message_id: str, action: str) -> tuple[str, str]:
    """(custom_id, value) of the first button of ``action`` on a stored message."""
    from bot.discord.render import parse_custom_id

    for cid in bot.custom_ids(message_id):
        parsed = parse_custom_id(cid)
        if parsed is not None and parsed[0] == action:
            return cid, parsed[1]
    raise AssertionError(f"no {action} button on message {message_id}: {bot.custom_ids(message_id)}")


def _ephemeral_notes(bot: Bot, it: Any) -> list[dict]:
    """What only the clicker saw: ephemeral follow-ups, or an ephemeral immediate answer."""
    notes = [c.body for c in bot.token_calls(it, "webhook.followup") if (c.body or {}).get("flags", 0) & 64]
    if it.callback and it.callback.get("type") == 4 and (it.callback.get("data") or {}).get("flags", 0) & 64:
        notes.append(it.callback["data"])
    return notes


async def test_label_click_replay_forged_ids_and_a_refused_approve(costdna: Bot):
    from sqlalchemy import select

    from bot.discord.render import button_custom_id
    from storage import repo
    from storage.models import AuditEntry, ChangeSet, Label, Prompt

    bot = costdna
    await _scan(bot)
    human = Label.source == "human"

    # -- label: a question with buttons; a click stores the label with the Discord user, edits the card ------
    it = await bot.slash("label", n=1)
    await bot.settled(it)
    refs = await _refs(bot, Prompt)
    assert refs[0]["platform"] == "discord" and refs[0]["channel"] == CHANNEL_ID
    mid = refs[0]["ts"]
    assert mid in bot.standin.messages
    cid, value = _button(bot, mid, "label_team")
    team = value.split(".", 2)[2]
    seen = copy.deepcopy(bot.standin.messages[mid])  # the card as everyone saw it before the answer
    before = json_of(seen)
    click = await bot.click(cid, mid, user_id=OTHER_ID)
    assert click.callback == {"type": 6}  # deferred update: the card stays until edited
    edits = await bot.standin.wait_for(lambda: bot.token_calls(click, "webhook.edit"), what="the answered card")
    assert edits[0].match["message_id"] == "@original" and click.original_id == mid  # the clicked message
    after = json_of(bot.standin.messages[mid])
    assert after != before and OTHER_ID in after
    async with bot.db.session() as s:
        labels = (await s.scalars(select(Label).where(human))).all()
    assert [(lb.actor, lb.team) for lb in labels] == [(OTHER_ID, team)]
    n_edits = len(bot.standin.of("webhook.edit", "message.edit"))

    # -- the same button clicked again from the card as it was (a replay, or a second person who still
    # -- sees the question): an ephemeral note, nothing changes ---------------------------------------------
    replay = await bot.click(cid, mid, user_id=USER_ID, message=seen)
    await bot.standin.wait_for(lambda: _ephemeral_notes(bot, replay), what="the replay note")
    await bot.settled(replay)
    assert "already" in json_of(_ephemeral_notes(bot, replay)).lower()
    assert await bot.count(Label, human) == 1 and json_of(bot.standin.messages[mid]) == after

    # -- forged custom_ids: a costdna-shaped one with a forged nonce, one for a row that does not exist,
    # -- and one costdna never makes: each refused ephemerally, nothing changes --------------------------------
    pid = value.split(".", 1)[0]
    forged = [button_custom_id("label_team", f"{pid}.forgednonce.{team}"),
              button_custom_id("cs_approve", "999999.nonce"),
              "costdna:drop:everything"]
    for custom_id in forged:
        f = await bot.click(custom_id, mid, user_id=USER_ID, message=with_button(seen, custom_id))
        await bot.standin.wait_for(lambda f=f: _ephemeral_notes(bot, f), what=f"the refusal of {custom_id}")
        await bot.settled(f)
        assert bot.token_calls(f, "webhook.edit") == [], custom_id
    # a costdna-shaped forged id that is not on the message: discord.py dispatches no dynamic item for it
    ghost = await bot.standin.click(button_custom_id("label_team", f"{pid}.forgednonce.{team}"), mid,
                                    user_id=USER_ID, message=seen)
    await bot.standin.answered(ghost.id, timeout=3.0)  # discord.py drops it: the adapter refuses it itself
    await bot.settled(ghost)
    assert _ephemeral_notes(bot, ghost) and not bot.token_calls(ghost, "webhook.edit")
    assert await bot.count(Label, human) == 1 and json_of(bot.standin.messages[mid]) == after
    assert len(bot.standin.of("webhook.edit", "message.edit")) == n_edits

    # -- apply: a change set card; a non-approver's approve is refused ephemerally, nothing changes ---------
    it = await bot.slash("apply")
    await bot.settled(it)
    cs_mid = (await _refs(bot, ChangeSet))[0]["ts"]
    cs_before = json_of(bot.standin.messages[cs_mid])
    approve, _ = _button(bot, cs_mid, "cs_approve")
    async with bot.db.session() as s:
        cs = (await s.scalars(select(ChangeSet))).one()
    n_audit = await bot.count(AuditEntry)
    refused = await bot.click(approve, cs_mid, user_id=USER_ID)
    notes = await bot.standin.wait_for(lambda: _ephemeral_notes(bot, refused), what="the refusal")
    await bot.settled(refused)
    assert "approver" in json_of(notes).lower()
    assert bot.token_calls(refused, "webhook.edit") == [] and json_of(bot.standin.messages[cs_mid]) == cs_before
    async with bot.db.session() as s:
        assert (await repo.get_change_set(s, cs.id)).status == "proposed"
        actions = {(a.action, a.actor) for a in await repo.audit_entries(s, limit=500)}
    assert not {a for a in actions if a[0].startswith("changeset.") and a[0] != "changeset.propose"}, actions
    assert await bot.count(AuditEntry) == n_audit

    # -- the approver's approve: the card is edited, the change set applied --------------------------------
    ok = await bot.click(approve, cs_mid, user_id=APPROVER_ID)
    await bot.standin.wait_for(lambda: bot.token_calls(ok, "webhook.edit"), what="the approved card")
    for _ in range(400):
        async with bot.db.session() as s:
            cs = await repo.get_change_set(s, cs.id)
        if cs.status == "applied":
            break
        await asyncio.sleep(0.05)
    assert cs.status == "applied" and cs.approver == APPROVER_ID
    bot.assert_valid()


def json_of(x: Any) -> str:
    import json

    return json.dumps(x, sort_keys=True, default=str)


H0 = 490_000  # an epoch hour


async def _spike(bot: Bot, i: int, team: str = "payments") -> int:
    """A stored spike of the bot's account, owned (labelled) by ``team``, as the watch would store it."""
    from storage import watch_repo

    arn = f"arn:aws:ec2:us-east-1:123456789012:instance/i-0{i:04d}"
    series = [[H0 + h, 1.0 + (9.0 if 50 <= h < 56 else 0.0), 1.0] for h in range(72)]
    async with bot.db.session() as s:
        row, created = await watch_repo.upsert_spike(
            s, bot.account_id, f"{arn}@{H0 + 50}", arn=arn, resource_id=f"i-0{i:04d}", resource_type="ec2:instance",
            instance_type="m5.large", kind="statistical", start=(H0 + 50) * 3600.0, end=(H0 + 56) * 3600.0,
            peak_usd_per_hour=10.0, baseline_usd_per_hour=1.0, extra_usd=54.0, severity="warning",
            reasons=["cost 10x its usual level"], score=7.5, owner_team=team, owner_confidence=0.95,
            owner_source="label", series=series)
        assert created
        return row.id


async def _alert(bot: Bot, spike_id: int) -> None:
    """What the hourly watch emits for a spike (``jobs.watch.send``), through the Discord notifier."""
    from bot.discord.alerts import DiscordNotifier
    from jobs.route import route_for
    from storage import repo, watch_repo

    async with bot.db.session() as s:
        account = await repo.get_account(s, bot.account_id)
        route = await route_for(s, account, await watch_repo.get_spike(s, spike_id))
    notifier = DiscordNotifier(bot.db, bot.client)
    await notifier("spike.alert", spike_id=spike_id, account_id=bot.account_id, workspace_id=account.workspace_id,
                   route=route.to_json())


async def _map_team(bot: Bot) -> None:
    """``/costdna settings team payments @Mason`` and ``/costdna settings alerts #cost-alerts``, by the approver."""
    await bot.slash("settings", "team", user_id=APPROVER_ID, team="payments", users=f"<@!{USER_ID}>")
    await bot.slash("settings", "alerts", user_id=APPROVER_ID, channel=ALERTS_CHANNEL_ID)
    from storage import watch_repo
    from storage.models import Workspace

    async with bot.db.session() as s:
        route = await watch_repo.team_route(s, bot.workspace_id, "payments")
        ws = await s.get(Workspace, bot.workspace_id)
        assert route is not None and list(route.users) == [USER_ID], route
        assert (ws.settings or {}).get("alerts_channel") == ALERTS_CHANNEL_ID, ws.settings


async def _refs_of_spike(bot: Bot, spike_id: int) -> Any:
    from storage import watch_repo

    async with bot.db.session() as s:
        row = await watch_repo.get_spike(s, spike_id)
        return list(row.chat_refs or []), row.delivery


async def test_spike_dm_reaches_the_mapped_user_and_a_refused_dm_falls_back_to_the_channel(costdna: Bot):
    pytest.importorskip("bot.discord.alerts")
    bot = costdna
    await _map_team(bot)

    # -- the mapped person gets the alert by DM, with its buttons ---------------------------------------
    n = len(bot.standin.calls)
    sid = await _spike(bot, 1)
    await _alert(bot, sid)
    (opened,) = bot.standin.of("dm.open")
    assert str(opened.body["recipient_id"]) == USER_ID and opened.token == TOKEN
    dm_channel = bot.standin.dm_channel_of(USER_ID)
    (post,) = bot.standin.of("message.post", pred=lambda c: c.match["channel_id"] == dm_channel)
    (png,) = post.files  # the chart, attached (multipart) and shown in the embed
    assert png["bytes"][:8] == b"\x89PNG\r\n\x1a\n" and post.body["attachments"][0]["filename"] == png["filename"]
    assert [c.name for c in bot.standin.calls[n:]] == ["dm.open", "message.post"]
    (msg,) = bot.standin.in_channel(dm_channel)
    assert "i-00001" in json_of(msg["embeds"]) and check_message(msg) == []
    assert any(c.startswith("cd:spike_expected") for c in bot.custom_ids(msg["id"])), bot.custom_ids(msg["id"])
    refs, delivery = await _refs_of_spike(bot, sid)
    assert refs == [{"platform": "discord", "channel": dm_channel, "ts": msg["id"]}]
    assert bot.standin.in_channel(ALERTS_CHANNEL_ID) == []

    # -- DMs closed: Discord answers 403 (50007) to the post; the alert goes to the alerts channel ---------
    bot.standin.refuse_dm(USER_ID, at="post")
    sid2 = await _spike(bot, 2)
    await _alert(bot, sid2)
    refused = bot.standin.of("message.post", ok=False, pred=lambda c: c.status == 403)
    assert len(refused) == 1 and refused[0].match["channel_id"] == dm_channel
    (fallback,) = bot.standin.in_channel(ALERTS_CHANNEL_ID)
    assert "i-00002" in json_of(fallback["embeds"]) and check_message(fallback) == []
    refs, _ = await _refs_of_spike(bot, sid2)
    assert refs == [{"platform": "discord", "channel": ALERTS_CHANNEL_ID, "ts": fallback["id"]}]
    assert len(bot.standin.in_channel(dm_channel)) == 1  # nothing new reached the DM

    # -- refused already when opening the DM channel (another person: discord.py caches a DM channel) -----
    await bot.slash("settings", "team", user_id=APPROVER_ID, team="data", users=f"<@{OTHER_ID}>")
    bot.standin.refuse_dm(OTHER_ID, at="open")
    sid3 = await _spike(bot, 3, team="data")
    await _alert(bot, sid3)
    last = bot.standin.of("dm.open", ok=False)[-1]
    assert last.status == 403 and str(last.body["recipient_id"]) == OTHER_ID
    assert len(bot.standin.in_channel(ALERTS_CHANNEL_ID)) == 2
    refs, _ = await _refs_of_spike(bot, sid3)
    assert [r["channel"] for r in refs] == [ALERTS_CHANNEL_ID]

    # -- "Mark expected" clicked in the DM (no guild in the interaction): stored, the DM card edited ---------
    cid, _ = _button(bot, msg["id"], "spike_expected")
    before = json_of(bot.standin.messages[msg["id"]])
    click = await bot.click(cid, msg["id"], user_id=USER_ID)
    assert "guild_id" not in click.payload and click.payload["user"]["id"] == USER_ID
    await bot.standin.wait_for(lambda: bot.token_calls(click, "webhook.edit"), what="the edited DM card")
    assert json_of(bot.standin.messages[msg["id"]]) != before
    from storage import watch_repo

    async with bot.db.session() as s:
        row = await watch_repo.get_spike(s, sid)
        assert row.status == "expected", row.status
    bot.assert_valid()


async def test_rate_limited_answer_is_retried_and_mention_answered_in_a_thread(costdna: Bot):
    bot = costdna
    # a 429 on the answer: discord.py waits retry_after and sends it again
    bot.standin.rate_limit_once("webhook.edit", retry_after=0.1)
    it = await bot.slash("status")
    edits = bot.token_calls(it, "webhook.edit") + [c for c in bot.standin.of("webhook.edit", ok=False)
                                                  if c.status == 429]
    assert sorted(c.status for c in edits) == [200, 429]
    ok = next(c for c in edits if c.status == 200)
    limited = next(c for c in edits if c.status == 429)
    assert ok.at - limited.at >= 0.1 and bot.standin.messages[it.original_id]["embeds"]

    # @costdna in a channel: a thread on the message, the answer in it, once
    msg = await bot.standin.mention("top spenders", user_id=USER_ID)
    posts = await bot.standin.wait_for(lambda: bot.standin.of("message.post",
                                                               pred=lambda c: c.match["channel_id"] == msg["id"]),
                                       timeout=20, what="the answer in the thread")
    (thread,) = bot.standin.of("thread.from_message")
    assert thread.match["message_id"] == msg["id"] and thread.match["channel_id"] == CHANNEL_ID
    assert bot.standin.channels[msg["id"]]["type"] == 11  # a public thread whose id is the message's
    await asyncio.sleep(0.3)
    assert len(bot.standin.of("message.post", pred=lambda c: c.match["channel_id"] == msg["id"])) == len(posts) == 1
    assert posts[0].body.get("embeds")
    bot.assert_valid()


async def test_autocomplete_and_no_token_in_the_logs(costdna: Bot, caplog: pytest.LogCaptureFixture):
    bot = costdna
    with caplog.at_level("DEBUG"):
        it = await bot.standin.autocomplete("costdna", "scan", focused="account", account="ti")
        await bot.standin.answered(it.id, timeout=3.0)
        assert it.callback["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
        assert it.callback["data"]["choices"] == [{"name": "tiny", "value": "tiny"}]
        await bot.slash("help")
        bot.standin.rate_limit_once("webhook.edit", retry_after=0.0)
        await bot.slash("teams")
    assert caplog.records, "nothing was logged: the check would be empty"
    assert TOKEN not in caplog.text
    assert all(c.token == TOKEN for c in bot.standin.calls if not c.name.startswith(("webhook.", "interaction.")))


async def test_the_daily_digest_reaches_the_configured_channel(costdna: Bot):
    """`/costdna settings digest channel:#… hour:9` by the approver, then the digest job (jobs.digest.digest)
    posts through the Discord notifier: one message in that channel, within Discord's limits."""
    from bot.discord.alerts import DiscordNotifier
    from jobs.digest import digest
    from storage.models import Workspace

    bot = costdna
    await bot.slash("settings", "digest", user_id=APPROVER_ID, channel=ALERTS_CHANNEL_ID, hour=9)
    async with bot.db.session() as s:
        ws = await s.get(Workspace, bot.workspace_id)
        assert (ws.settings or {}).get("digest_channel") == ALERTS_CHANNEL_ID, ws.settings
    n = len(bot.standin.in_channel(ALERTS_CHANNEL_ID))
    ctx = {"db": bot.db, "settings": bot.svc.settings, "notify": DiscordNotifier(bot.db, bot.client)}
    await digest(ctx, bot.workspace_id, account_id=bot.account_id)
    posted = bot.standin.in_channel(ALERTS_CHANNEL_ID)[n:]
    assert len(posted) == 1, posted
    (msg,) = posted
    assert "digest" in json_of(msg["embeds"]).lower(), json_of(msg["embeds"])[:500]
    assert check_message(msg) == []
    async with bot.db.session() as s:
        ws = await s.get(Workspace, bot.workspace_id)
        assert (ws.settings or {}).get("digest_last")  # the scheduled digest will not post again today
    bot.assert_valid()

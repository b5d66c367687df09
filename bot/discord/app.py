"""The discord.py client: ``/costdna`` application commands, card buttons and ``@costdna`` mentions in,
handler calls, embeds with persistent components out.

Entry points
------------
- ``build_client(svc, settings) -> CostdnaClient`` (a :class:`discord.Client`): the client with its
  ``/costdna`` command tree and the persistent card components registered. ``svc`` is the handlers'
  :class:`~handlers.context.Services` (its ``queue`` may be set later, before the first interaction).
  Start it with ``await client.start(token)`` (or ``login`` + ``connect``); the commands are synced in
  ``setup_hook``: to ``DISCORD_GUILD_ID`` when set (instant), else globally.
- ``async def run(settings)``: what ``costdna discord`` runs: points discord.py at ``DISCORD_API_URL``,
  opens the database and the job queue (arq with ``REDIS_URL``, else in-process with the Discord notifier
  that edits the messages showing a scan), builds the client and runs it until cancelled.
- ``command_group(adapter=None)``: the ``/costdna`` group alone; ``command_payloads()`` its JSON, as
  Discord's ``PUT /applications/{id}/commands`` takes it (``manifests/discord_commands.json``).

Pointing it at a stand-in (tests): set ``DISCORD_API_URL`` (``Settings(discord_api_url=...)``) to the
stand-in's REST base, e.g. ``http://127.0.0.1:PORT/api/v10``; :func:`bot.discord.configure_api` sets
``discord.http.Route.BASE`` from it (``build_client`` calls it), and ``setup_hook`` (after login, before
the gateway) connects the gateway where the stand-in's ``GET /gateway/bot`` says
(:func:`bot.discord.follow_gateway` sets ``DiscordWebSocket.DEFAULT_GATEWAY``, which discord.py otherwise
always uses). Then ``client = build_client(svc, settings)`` and
``await client.start("token")``; ``client.ready`` (an ``asyncio.Event``) is set once READY arrived and
the commands were synced.

The flow
--------
Every interaction is deferred at once (Discord's 3 seconds), then ``handle_command`` /
``handle_action`` run with ``Who(platform="discord", workspace=<guild id>, user_id=<user id>,
user_name, channel_id, thread_ts="")``, and the :class:`~handlers.context.Reply` is rendered:

- a command: the first card whose visibility matches the deferral (help and settings defer ephemerally,
  the rest publicly) replaces the "thinking…" response; every other card is a follow-up (ephemeral ones
  only to the person). Messages that show a scan, a change set or a question are remembered
  (``repo.add_message_ref``, platform ``discord``, the message id as ``ts``) so the job notifier edits
  them as the job goes on (``bot.discord.alerts.DiscordNotifier``).
- a click: ``replace`` edits the clicked message, ``ephemeral`` is an ephemeral follow-up, posts are
  follow-ups; a decided spike updates every other message that shows it. A component whose custom_id is
  not costdna's (forged, or from an old version) gets an ephemeral refusal and changes nothing.
- ``@costdna <question>``: answered as ``ask`` in a thread on the message (or in the thread it was
  asked in); a mention in that thread later is a follow-up with the thread's context.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Any, Literal

import discord
from discord import app_commands

from bot.discord import configure_api, follow_gateway, missing_settings
from bot.discord.render import CardButton, CardSelect, parse_custom_id, plain, set_action_handler, to_message
from handlers.cards import Card, error_card
from handlers.context import Reply, Services, Who

log = logging.getLogger("costdna.discord")

EPHEMERAL_FIRST = ("help", "settings")  # commands whose answer is usually only for the person asking
MAX_AUTOCOMPLETE = 25
_MENTION = re.compile(r"<@!?(\d+)>")
_NICK = re.compile(r"<@!(\d+)>")


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _model_for(kind: str) -> Any:
    from storage.models import ChangeSet, Prompt, Scan, Spike

    return {"scan": Scan, "changeset": ChangeSet, "prompt": Prompt, "spike": Spike}.get(kind)


def mention_text(text: str, bot_id: int | None) -> str:
    """The question in ``<@BOT> why did our bill spike?`` (the bot's mentions dropped)."""
    if bot_id is not None:
        text = re.sub(rf"<@!?{bot_id}>", " ", text or "")
    return " ".join((text or "").split())


def neutral(text: str) -> str:
    """Discord's legacy nickname mention ``<@!id>`` as ``<@id>``, which the handlers parse."""
    return _NICK.sub(r"<@\1>", text or "")


# --------------------------------------------------------------------------------------------------
# the adapter: shared state and the ways a Reply reaches Discord


class DiscordAdapter:
    def __init__(self, svc: Services, settings: Any) -> None:
        self.svc, self.settings = svc, settings
        self.client: CostdnaClient | None = None
        self.workspaces: set[str] = set()
        self.workspace_lock = asyncio.Lock()

    # -- who ---------------------------------------------------------------------------------------

    def workspace_id(self, guild_id: int | None) -> str:
        """The guild; in a DM (a spike alert's buttons) the configured guild, else ``dm``."""
        if guild_id:
            return str(guild_id)
        return str(self.settings.discord_guild_id) if getattr(self.settings, "discord_guild_id", None) else "dm"

    def who(self, interaction: discord.Interaction) -> Who:
        user = interaction.user
        roles = tuple(str(r.id) for r in getattr(user, "roles", ()) or () if getattr(r, "id", None))  # a Member
        return Who(platform="discord", workspace=self.workspace_id(interaction.guild_id), user_id=str(user.id),
                   user_name=getattr(user, "name", "") or "", channel_id=str(interaction.channel_id or ""),
                   thread_ts="", roles=roles)

    async def ensure_workspace(self, guild: str) -> None:
        if not guild or guild in self.workspaces:
            return
        from storage import repo

        async with self.workspace_lock:
            if guild in self.workspaces:
                return
            try:
                async with self.svc.db.session() as s:
                    await repo.get_or_create_workspace(s, "discord", guild)
                self.workspaces.add(guild)
            except Exception as e:  # another process created it meanwhile
                log.info("discord: workspace %s: %s", guild, type(e).__name__)

    # -- handlers ----------------------------------------------------------------------------------

    async def command(self, who: Who, text: str) -> Reply:
        from handlers.commands import handle_command

        try:
            await self.ensure_workspace(who.workspace)
            return await handle_command(self.svc, who, neutral(text))
        except Exception:
            log.exception("discord: command %r from %s failed", text[:80], who.user_id)
            return Reply.of(error_card("Something went wrong on our side; it has been logged.",
                                       "Try again in a minute, or `/costdna help`."))

    async def action(self, who: Who, action_id: str, value: str) -> Reply:
        from handlers.actions import handle_action

        try:
            await self.ensure_workspace(who.workspace)
            return await handle_action(self.svc, who, action_id, value)
        except Exception:
            log.exception("discord: action %s from %s failed", action_id, who.user_id)
            return Reply(ephemeral=error_card("That button did not work; it has been logged.",
                                              "Try again, or ask for a fresh card."))

    # -- a slash command ---------------------------------------------------------------------------

    async def run_command(self, interaction: discord.Interaction, text: str) -> None:
        """Defer now, run the command, answer: the flow of every ``/costdna`` subcommand."""
        sub = text.split(" ", 1)[0]
        private = sub in EPHEMERAL_FIRST
        try:
            await interaction.response.defer(ephemeral=private, thinking=True)
        except discord.HTTPException as e:  # too late (over 3 s) or already answered: nothing to edit
            log.warning("discord: could not defer /costdna %s: %s", sub, e)
            return
        who = self.who(interaction)
        reply = await self.command(who, text)
        await self.answer(interaction, reply, private)

    async def answer(self, interaction: discord.Interaction, reply: Reply, private: bool) -> None:
        from handlers.spikes import ROUTE

        posts = []
        for p in reply.posts:
            if p.tracks and p.tracks[0] == ROUTE:
                await self.deliver_spike(int(p.tracks[1]))
            else:
                posts.append(p)
        first = next((p for p in posts if bool(p.card.ephemeral) == private), None)
        try:
            if first is not None:
                msg = to_message(first.card)
                sent = await interaction.edit_original_response(**msg.kwargs(edit=True))
                if not first.card.ephemeral:
                    await self.track(first.tracks, sent.channel.id, sent.id)
            else:
                await interaction.delete_original_response()
        except discord.HTTPException as e:
            log.error("discord: could not answer the interaction: %s", e)
        for p in posts:
            if p is first:
                continue
            await self.follow_up(interaction, p.card, p.tracks)

    async def follow_up(self, interaction: discord.Interaction, card: Card,
                        tracks: tuple[str, int] | None = None) -> None:
        msg = to_message(card)
        try:
            sent = await interaction.followup.send(**msg.kwargs(), ephemeral=bool(card.ephemeral), wait=True)
        except discord.HTTPException as e:
            log.error("discord: follow-up %r failed: %s", card.title[:60], e)
            return
        if not card.ephemeral and sent is not None:
            await self.track(tracks, sent.channel.id, sent.id)

    # -- a click -----------------------------------------------------------------------------------

    async def on_click(self, interaction: discord.Interaction, action_id: str, value: str) -> None:
        try:
            await interaction.response.defer()  # a component: "deferred update", the message stays
        except discord.HTTPException as e:
            log.warning("discord: could not defer a click on %s: %s", action_id, e)
            return
        who = self.who(interaction)
        reply = await self.action(who, action_id, value)
        clicked = interaction.message.id if interaction.message is not None else None
        if reply.replace is not None:
            try:
                await interaction.edit_original_response(**to_message(reply.replace).kwargs(edit=True))
            except discord.HTTPException as e:
                log.error("discord: could not update the clicked message: %s", e)
            await self.sync_spike_messages(action_id, value, reply.replace, clicked)
        if reply.ephemeral is not None:
            await self.follow_up(interaction, dataclasses.replace(reply.ephemeral, ephemeral=True))
        await self.answer_posts(interaction, reply)

    async def answer_posts(self, interaction: discord.Interaction, reply: Reply) -> None:
        from handlers.spikes import ROUTE

        for p in reply.posts:
            if p.tracks and p.tracks[0] == ROUTE:
                await self.deliver_spike(int(p.tracks[1]))
            else:
                await self.follow_up(interaction, p.card, p.tracks)

    async def refuse_unknown(self, interaction: discord.Interaction) -> None:
        """A component interaction whose custom_id is not costdna's: refused ephemerally, nothing runs."""
        cid = str((interaction.data or {}).get("custom_id", ""))
        log.warning("discord: unknown component %r from %s refused", cid[:100], interaction.user.id)
        card = error_card(f"costdna doesn't know the button `{plain(cid, 60)}`; nothing was changed.",
                          "it may be from an older version")
        try:
            await interaction.response.send_message(**to_message(card).kwargs(), ephemeral=True)
        except discord.HTTPException as e:
            log.info("discord: could not refuse an unknown component: %s", e)

    # -- a mention ---------------------------------------------------------------------------------

    async def on_mention(self, message: discord.Message, bot_id: int) -> None:
        from storage import repo

        try:
            async with self.svc.db.session() as s:
                if not await repo.first_time_event(s, "discord", f"message:{message.id}"):
                    return
        except Exception:
            log.exception("discord: could not record mention %s", message.id)
        question = mention_text(message.content, bot_id)
        where: Any = message.channel
        if not isinstance(message.channel, discord.Thread) and message.guild is not None:
            try:
                where = await message.create_thread(name=plain(question, 100, "costdna"))
            except discord.HTTPException as e:  # no permission to create threads: answer in the channel
                log.info("discord: could not start a thread on %s: %s", message.id, e)
        threaded = isinstance(where, discord.Thread)
        who = Who(platform="discord", workspace=self.workspace_id(message.guild.id if message.guild else None),
                  user_id=str(message.author.id), user_name=message.author.name,
                  channel_id=str(where.id), thread_ts=str(where.id) if threaded else "")
        reply = await self.command(who, f"ask {question}".strip())
        from handlers.spikes import ROUTE

        for p in reply.posts:
            if p.tracks and p.tracks[0] == ROUTE:
                await self.deliver_spike(int(p.tracks[1]))
                continue
            msg = to_message(p.card)
            try:
                if threaded:
                    sent = await where.send(**msg.kwargs())
                else:
                    sent = await message.reply(**msg.kwargs(), mention_author=False)
            except discord.HTTPException as e:
                log.error("discord: could not answer mention %s: %s", message.id, e)
                continue
            await self.track(p.tracks, sent.channel.id, sent.id)

    # -- remembering and updating messages --------------------------------------------------------

    async def track(self, tracks: tuple[str, int] | None, channel_id: int, message_id: int) -> None:
        if not tracks:
            return
        if tracks[0] == "ask":
            # A thread started on a message has the message's id, so the answer's id is the key a mention
            # in that thread (channel = thread = message id) finds it by.
            from storage import ask_repo

            try:
                async with self.svc.db.session() as s:
                    await ask_repo.attach_thread(s, int(tracks[1]), str(message_id), str(message_id))
            except Exception:
                log.exception("discord: could not attach ask thread %s to message %s", tracks[1], message_id)
            return
        model = _model_for(tracks[0])
        if model is None:
            log.warning("discord: cannot track a message showing %r", tracks[0])
            return
        from storage import repo

        try:
            async with self.svc.db.session() as s:
                await repo.add_message_ref(s, model, int(tracks[1]), "discord", str(channel_id), str(message_id))
        except Exception:
            log.exception("discord: could not remember message %s/%s for %s %s", channel_id, message_id, *tracks)

    async def deliver_spike(self, spike_id: int) -> None:
        from bot.discord.alerts import DiscordAlerts

        try:
            await DiscordAlerts(self.svc.db, self.client).spike_alert(spike_id, None, claim=True)
        except Exception:
            log.exception("discord: delivering re-routed spike %s failed", spike_id)

    async def sync_spike_messages(self, action_id: str, value: str, card: Card, clicked: int | None) -> None:
        from handlers.watch_views import SPIKE_ACTIONS, SPIKE_EXPLAIN

        if action_id not in SPIKE_ACTIONS or action_id == SPIKE_EXPLAIN or self.client is None:
            return
        head = value.split(".", 1)[0]
        if not head.isdigit() or len(head) >= 19:
            return
        from handlers.deliveries import spike_messages

        try:
            for channel, mid in await spike_messages(self.svc.db, int(head), "discord"):
                if clicked is not None and mid == str(clicked):
                    continue
                try:
                    partial = self.client.get_partial_messageable(int(channel)).get_partial_message(int(mid))
                    await partial.edit(**to_message(card).kwargs(edit=True))
                except (discord.HTTPException, ValueError) as e:
                    log.info("discord: could not update spike message %s/%s: %s", channel, mid, e)
        except Exception:
            log.exception("discord: updating the messages of spike %s failed", head)

    # -- autocomplete ------------------------------------------------------------------------------

    async def account_names(self, current: str) -> list[str]:
        from storage import repo

        try:
            async with self.svc.db.session() as s:
                names = [a.name for a in await repo.list_accounts(s)]
        except Exception:
            log.exception("discord: autocomplete of accounts failed")
            return []
        return [n for n in names if current.lower() in n.lower()][:MAX_AUTOCOMPLETE]

    async def team_names(self, interaction: discord.Interaction, current: str) -> list[str]:
        """The teams of the server's account (read only: an autocomplete creates nothing)."""
        from sqlalchemy import select

        from handlers import views
        from handlers.commands import account_ref
        from storage import repo
        from storage.models import Workspace

        try:
            async with self.svc.db.session() as s:
                ws = await s.scalar(select(Workspace).where(
                    Workspace.platform == "discord",
                    Workspace.external_id == self.workspace_id(interaction.guild_id)))
                accounts = await repo.list_accounts(s)
                ref = account_ref(ws)
                account = next((a for a in accounts if ref and a.name == ref), None) or (
                    accounts[0] if len(accounts) == 1 else None)
                if account is None:
                    return []
                scan = await repo.latest_predictions_scan(s, account.id)
                teams = await views.known_teams(s, account.id, scan.id if scan is not None else None)
        except Exception:
            log.exception("discord: autocomplete of teams failed")
            return []
        return [t for t in teams if current.lower() in t.lower()][:MAX_AUTOCOMPLETE]


# --------------------------------------------------------------------------------------------------
# the /costdna command tree


def _choices(names: list[str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=plain(n, 100), value=n[:100]) for n in names]


class CostdnaGroup(app_commands.Group):
    """``/costdna <subcommand>``: the same subcommands as Slack's, each turned into the text
    ``handle_command`` takes."""

    def __init__(self, adapter: DiscordAdapter | None = None) -> None:
        super().__init__(name="costdna", description="costdna: who owns your cloud spend", guild_only=True)
        self.ad = adapter

    async def _run(self, interaction: discord.Interaction, text: str) -> None:
        if self.ad is None:
            raise RuntimeError("this command group has no adapter (built for the manifest)")
        await self.ad.run_command(interaction, text)

    async def _accounts(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return _choices(await self.ad.account_names(current)) if self.ad else []

    async def _teams(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return _choices(await self.ad.team_names(interaction, current)) if self.ad else []

    @app_commands.command(name="help", description="what costdna can do")
    async def help_(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "help")

    @app_commands.command(name="status", description="accounts, the last scan, labels and pending approvals")
    async def status(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "status")

    @app_commands.command(name="scan", description="scan an account now (one scan per account at a time)")
    @app_commands.describe(account="the account to scan (default: this server's account)")
    async def scan(self, interaction: discord.Interaction, account: str | None = None) -> None:
        await self._run(interaction, f"scan {account}" if account else "scan")

    @scan.autocomplete("account")
    async def scan_account(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self._accounts(interaction, current)

    @app_commands.command(name="ask", description="ask about your spend, e.g. why did our bill spike Tuesday?")
    @app_commands.describe(question="your question")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        await self._run(interaction, f"ask {question}")

    @app_commands.command(name="owner", description="the predicted owner of a resource, with its evidence")
    @app_commands.describe(resource="a resource id (i-0abc…, a bucket name) or an ARN")
    async def owner(self, interaction: discord.Interaction, resource: str) -> None:
        await self._run(interaction, f"owner {resource}")

    @app_commands.command(name="teams", description="teams with their resources and spend")
    async def teams(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "teams")

    @app_commands.command(name="label", description="answer \"who owns this?\" for the costliest uncertain resources")
    @app_commands.describe(n="how many questions (1 to 10, default 3)")
    async def label(self, interaction: discord.Interaction, n: app_commands.Range[int, 1, 10] | None = None) -> None:
        await self._run(interaction, f"label {n}" if n else "label")

    @app_commands.command(name="apply", description="propose owner tags for confident predictions (an approver approves)")
    async def apply(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "apply")

    @app_commands.command(name="spikes", description="open cost spikes with their buttons")
    async def spikes(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "spikes")

    @app_commands.command(name="digest", description="post the daily digest now")
    async def digest(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "digest")

    settings = app_commands.Group(name="settings", description="show or change costdna's settings")

    @settings.command(name="show", description="show the settings")
    async def settings_show(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "settings")

    @settings.command(name="approvers", description="add or remove an approver of tag writes")
    @app_commands.describe(action="add or remove", user="a person, or a role (every member holding it approves)")
    async def settings_approvers(self, interaction: discord.Interaction, action: Literal["add", "remove"],
                                 user: discord.User | discord.Role) -> None:
        mention = f"<@&{user.id}>" if isinstance(user, discord.Role) else f"<@{user.id}>"
        await self._run(interaction, f"settings approvers {action} {mention}")

    @settings.command(name="digest", description="post the daily digest to a channel at an hour (UTC)")
    @app_commands.describe(channel="where the digest goes", hour="the hour, 0 to 23 (UTC)")
    async def settings_digest(self, interaction: discord.Interaction, channel: discord.TextChannel,
                              hour: app_commands.Range[int, 0, 23]) -> None:
        await self._run(interaction, f"settings digest <#{channel.id}> {hour}")

    @settings.command(name="team", description="who gets a team's spike alerts: users by DM, and a channel")
    @app_commands.describe(team="the team", users="mention the people, e.g. @alice @bob (empty: show the mapping)",
                           channel="the team's channel (optional)")
    async def settings_team(self, interaction: discord.Interaction, team: str | None = None,
                            users: str | None = None, channel: discord.TextChannel | None = None) -> None:
        parts = ["settings", "team"]
        if team:
            parts.append(team)
            parts.extend(_MENTION.sub(r"<@\1>", u) for u in (users or "").split())
            if channel is not None:
                parts.append(f"<#{channel.id}>")
        await self._run(interaction, " ".join(parts))

    @settings_team.autocomplete("team")
    async def settings_team_team(self, interaction: discord.Interaction,
                                 current: str) -> list[app_commands.Choice[str]]:
        return await self._teams(interaction, current)

    @settings.command(name="alerts", description="the alert mode (strict, audit, auto, panic, resume) or channel")
    @app_commands.describe(mode="strict | audit | auto, or panic (pause all alerts) / resume",
                           channel="the alerts channel (unrouted alerts, storm summaries)")
    async def settings_alerts(self, interaction: discord.Interaction,
                              mode: Literal["strict", "audit", "auto", "panic", "resume"] | None = None,
                              channel: discord.TextChannel | None = None) -> None:
        arg = mode or (f"<#{channel.id}>" if channel is not None else "")
        await self._run(interaction, f"settings alerts {arg}".strip())

    @settings.command(name="org", description="business units: `unit <unit> teams <t1,t2> [group <g>]`")
    @app_commands.describe(args="e.g. unit payments teams checkout,ledger group commerce (empty: show)")
    async def settings_org(self, interaction: discord.Interaction, args: str | None = None) -> None:
        await self._run(interaction, f"settings org {args or ''}".strip())


def command_group(adapter: DiscordAdapter | None = None) -> CostdnaGroup:
    return CostdnaGroup(adapter)


def command_payloads() -> list[dict[str, Any]]:
    """The ``/costdna`` command as Discord's bulk-overwrite endpoint takes it (the manifest)."""
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)
    tree.add_command(command_group())
    return [c.to_dict(tree) for c in tree.get_commands()]


# --------------------------------------------------------------------------------------------------
# the client


class CostdnaClient(discord.Client):
    """A ``discord.Client`` with the ``/costdna`` tree, the card components, and mention answers."""

    def __init__(self, adapter: DiscordAdapter, *, intents: discord.Intents | None = None, **kwargs: Any) -> None:
        intents = intents or discord.Intents.default()  # mentions carry their content without message_content
        super().__init__(intents=intents, **kwargs)
        self.adapter = adapter
        adapter.client = self
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(command_group(adapter))
        self.ready = asyncio.Event()
        self.synced: list[Any] = []

    async def setup_hook(self) -> None:
        gateway = await follow_gateway(self.http, self.adapter.settings)  # after login, before the gateway
        if gateway:
            log.info("discord: gateway %s (from DISCORD_API_URL's /gateway/bot)", gateway)
        set_action_handler(self.adapter.on_click)
        self.add_dynamic_items(CardButton, CardSelect)
        guild_id = getattr(self.adapter.settings, "discord_guild_id", None)
        try:
            if guild_id:
                guild = discord.Object(id=int(guild_id))
                self.tree.copy_global_to(guild=guild)
                self.synced = await self.tree.sync(guild=guild)
                log.info("discord: /costdna synced to guild %s", guild_id)
            else:
                self.synced = await self.tree.sync()
                log.info("discord: /costdna synced globally (may take up to an hour to show)")
        except discord.HTTPException as e:
            log.error("discord: syncing the commands failed: %s", e)

    async def on_ready(self) -> None:
        log.info("discord: connected as %s (%s guilds)", self.user, len(self.guilds))
        self.ready.set()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A component that no dynamic item will take (a custom_id that is not costdna's, or one that is not
        on the message clicked: discord.py drops those silently) is refused ephemerally here."""
        if interaction.type is discord.InteractionType.component:
            cid = str((interaction.data or {}).get("custom_id", ""))
            if parse_custom_id(cid) is None or cid not in _custom_ids(interaction.message):
                await self.adapter.refuse_unknown(interaction)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.user is None or message.webhook_id is not None:
            return
        if self.user not in message.mentions:
            return
        try:
            await self.adapter.on_mention(message, self.user.id)
        except Exception:
            log.exception("discord: answering mention %s failed", message.id)


def _custom_ids(message: discord.Message | None) -> set[str]:
    out: set[str] = set()
    stack: list[Any] = list(getattr(message, "components", None) or [])
    while stack:
        c = stack.pop()
        if getattr(c, "custom_id", None):
            out.add(str(c.custom_id))
        stack.extend(getattr(c, "children", None) or [])
    return out


def build_client(svc: Services, settings: Any, **kwargs: Any) -> CostdnaClient:
    """The client for ``svc`` (see the module docstring); REST goes to ``settings.discord_api_url``."""
    configure_api(settings)
    return CostdnaClient(DiscordAdapter(svc, settings), **kwargs)


async def open_services(settings: Any, client_ref: list[Any]) -> tuple[Services, Any]:
    """Database and job queue for the Discord process, and the notifier of jobs run here. Without
    ``REDIS_URL`` jobs run in this process and the Discord notifier edits the messages that show them
    (``client_ref[0]``: the client, set later)."""
    from bot.discord.alerts import DiscordNotifier
    from jobs.notify import Fanout, log_notifier
    from jobs.queue import ArqQueue, open_queue
    from storage.db import Database

    db = await Database(settings.db_url()).init()
    svc = Services(db=db, queue=None, settings=settings)
    notify = Fanout(log_notifier, DiscordNotifier(db, client_ref))
    if settings.redis_url:
        svc.queue = await ArqQueue.connect(settings.redis_url, settings.queue_name)
    else:
        svc.queue = await open_queue(settings, {"settings": settings, "db": db, "notify": notify})
    return svc, notify


async def run(settings: Any, *, schedule: bool = False) -> None:
    """``costdna discord``: connect, sync the commands, answer until cancelled (Ctrl-C).

    ``schedule``: also run the hourly schedule (the watch at :05, digests at their hour) in this process,
    its alerts and digests delivered to Discord -- for a deployment with neither Redis workers (which run
    it as cron jobs) nor ``costdna serve`` (which runs it without Redis, delivering to Slack)."""
    missing = missing_settings(settings)
    if missing:
        raise ValueError("Discord is not configured: set " + ", ".join(missing))
    configure_api(settings)
    ref: list[Any] = []
    svc, notify = await open_services(settings, ref)
    client = build_client(svc, settings)
    ref.append(client)
    stop = asyncio.Event()
    scheduler: asyncio.Task | None = None
    if schedule:
        from jobs.schedule import Scheduler

        scheduler = asyncio.create_task(Scheduler({"settings": settings, "db": svc.db, "notify": notify}).run(stop),
                                        name="costdna-discord-schedule")
        log.info("discord: hourly schedule running in this process (watch at :05, digests at their hour)")
    try:
        async with client:
            await client.start(_secret(settings.discord_token) or "")
    finally:
        stop.set()
        if scheduler is not None:
            try:
                await asyncio.wait_for(asyncio.shield(scheduler), 5)
            except (TimeoutError, asyncio.CancelledError):
                scheduler.cancel()
        try:
            await asyncio.wait_for(svc.queue.close(), 10)
        except TimeoutError:
            log.warning("discord: in-process jobs still running at shutdown were cancelled")
        await svc.db.close()

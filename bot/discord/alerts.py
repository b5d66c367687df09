"""Delivering jobs and the watch in Discord, through the bot token.

- :class:`DiscordAlerts` (``spike.alert``, ``spike.storm``, ``digest.ready``): a spike's alert card DMed
  to each of the team's mapped Discord users (``POST /users/@me/channels`` then a message); a user whose
  DMs are closed (``discord.Forbidden``) is logged and the alert goes to the workspace's alerts channel
  instead; plus the route's channel. Storm summaries and digests go to their channel, the chart attached.
  Each alert message is recorded on the spike (``chat_refs``, platform ``discord``), so a decision
  updates them all.
- :class:`DiscordNotifier`: a ``jobs.notify`` notifier that edits every Discord message showing a scan or
  a change set as the job goes on (progress at most every 2 s per message; the final state always), and
  hands the watch's events to :class:`DiscordAlerts`.

What is said and to whom comes from ``handlers.deliveries`` (platform-neutral). Only workspaces of
platform ``discord`` are served here (Slack's notifier serves its own). Rate limits are discord.py's
(429s are waited out and retried). A notifier never fails a job: every error is logged.

``client`` is a logged-in :class:`discord.Client` (the gateway one of ``costdna discord``), or a
zero-argument callable / one-element list giving it later; :func:`rest_client` makes a REST-only one for
a worker (``worker_notifier``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import discord

from bot.discord.render import to_message

log = logging.getLogger("costdna.discord")

KINDS = ("spike.alert", "spike.storm", "digest.ready")
DELIVERY_TIMEOUT_S = 120.0
PROGRESS_INTERVAL_S = 2.0
PROGRESS_TIMEOUT_S = 5.0
FINAL_TIMEOUT_S = 60.0


def _snowflake(x: Any) -> int | None:
    s = str(x or "").strip().strip("<>#@!&")
    return int(s) if s.isdigit() and len(s) < 21 else None


def _resolve(client: Any) -> Any:
    if isinstance(client, list):
        return client[0] if client else None
    if callable(client) and not isinstance(client, discord.Client):
        return client()
    return client


async def is_discord_workspace(db: Any, workspace_id: int | None) -> bool:
    """Whether a workspace (database id) is a Discord guild; True when there is none to ask."""
    if workspace_id is None:
        return True
    from storage.models import Workspace

    async with db.session() as s:
        ws = await s.get(Workspace, int(workspace_id))
    return ws is None or ws.platform == "discord"


class DiscordAlerts:
    def __init__(self, db: Any, client: Any) -> None:
        self.db, self._client = db, client

    @property
    def client(self) -> Any:
        return _resolve(self._client)

    async def __call__(self, kind: str, **payload: Any) -> None:
        if kind not in KINDS:
            return
        try:
            if kind == "spike.alert":
                coro = self.spike_alert(payload.get("spike_id"), payload.get("route"),
                                        workspace_id=payload.get("workspace_id"))
            elif kind == "spike.storm":
                coro = self.storm(**payload)
            else:
                coro = self.digest(**payload)
            await asyncio.wait_for(coro, DELIVERY_TIMEOUT_S)
        except TimeoutError:
            log.warning("discord: delivering %s took too long: gave up", kind)
        except Exception:
            log.exception("discord: delivering %s failed", kind)

    # -- plumbing ------------------------------------------------------------------------------------

    async def send(self, channel: Any, card: Any) -> tuple[str, str] | None:
        """Post ``card`` to a channel id; (channel, message id), or None when refused (logged)."""
        cid = _snowflake(channel)
        if cid is None or self.client is None:
            log.warning("discord: %r is not a Discord channel; %r not posted", channel, card.title[:60])
            return None
        try:
            msg = await self.client.get_partial_messageable(cid).send(**to_message(card).kwargs())
        except discord.HTTPException as e:
            log.warning("discord: posting %r to %s failed: %s", card.title[:60], cid, e)
            return None
        return str(msg.channel.id), str(msg.id)

    async def dm(self, user: Any, card: Any) -> tuple[str, str] | None:
        """DM ``card`` to a user id; raises :class:`discord.Forbidden` when their DMs are closed."""
        uid = _snowflake(user)
        if uid is None:
            log.warning("discord: %r is not a Discord user id; no DM", user)
            return None
        channel = await self.client.create_dm(discord.Object(id=uid))
        msg = await channel.send(**to_message(card).kwargs())
        return str(msg.channel.id), str(msg.id)

    async def _alerts_channel(self, workspace_id: int | None) -> str | None:
        from jobs.route import alerts_channel
        from storage.models import Workspace

        if workspace_id is None:
            return None
        async with self.db.session() as s:
            return alerts_channel(await s.get(Workspace, int(workspace_id)))

    # -- spike.alert ---------------------------------------------------------------------------------

    async def spike_alert(self, spike_id: Any, route: Any = None, *, workspace_id: int | None = None,
                          claim: bool = False) -> list[tuple[str, str]]:
        """DM each mapped user (closed DMs: the alerts channel, logged), then the route's channel.
        The (channel, message id) of every message posted."""
        from handlers.deliveries import alert_delivery, record_alert_posts

        if spike_id is None:
            return []
        if not claim and not await is_discord_workspace(self.db, workspace_id):
            return []
        d = await alert_delivery(self.db, int(spike_id), route, workspace_id=workspace_id, claim=claim)
        if d is None or (not claim and not await is_discord_workspace(self.db, d.workspace_id)):
            return []
        if d.route.emails:
            log.info("discord: spike %s names %d people by e-mail; Discord cannot look them up",
                     d.spike_id, len(d.route.emails))
        posted: list[tuple[str, str]] = []
        channels: list[str] = []
        for user in dict.fromkeys(u for u in d.route.users if u):
            try:
                ref = await self.dm(user, d.card)
            except discord.Forbidden as e:
                log.warning("discord: user %s does not accept DMs (%s): spike %s goes to the alerts channel",
                            user, e.text or e.status, d.spike_id)
                fallback = await self._alerts_channel(d.workspace_id)
                if fallback:
                    channels.append(fallback)
                else:
                    log.warning("discord: no alerts channel for the DM refused by %s", user)
                continue
            except discord.HTTPException as e:
                log.warning("discord: DM to %s failed: %s", user, e)
                continue
            if ref is not None:
                posted.append(ref)
        if d.route.channel:
            channels.append(d.route.channel)
        for channel in dict.fromkeys(channels):
            ref = await self.send(channel, d.card)
            if ref is not None:
                posted.append(ref)
        await record_alert_posts(self.db, d.spike_id, "discord", posted)
        return posted

    # -- spike.storm and digest.ready ----------------------------------------------------------------

    async def storm(self, **payload: Any) -> tuple[str, str] | None:
        from handlers.deliveries import storm_post

        return await self._post(await storm_post(self.db, **payload))

    async def digest(self, **payload: Any) -> tuple[str, str] | None:
        from handlers.deliveries import digest_post

        return await self._post(await digest_post(self.db, **payload))

    async def _post(self, p: Any) -> tuple[str, str] | None:
        if p is None or not await is_discord_workspace(self.db, p.workspace_id):
            return None
        return await self.send(p.channel, p.card)


def _target(kind: str, payload: dict[str, Any]) -> tuple[str, int] | None:
    family = kind.split(".", 1)[0]
    if family == "scan" and payload.get("scan_id") is not None:
        return "scan", int(payload["scan_id"])
    if family == "changeset" and payload.get("change_set_id") is not None:
        return "changeset", int(payload["change_set_id"])
    return None


class DiscordNotifier:
    """Edits the Discord messages that show a scan or a change set; the watch's events to DiscordAlerts."""

    def __init__(self, db: Any, client: Any, *, interval_s: float = PROGRESS_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db, self._client = db, client
        self.interval_s, self.clock = interval_s, clock
        self.last_row: dict[tuple[str, int], float] = {}
        self.alerts = DiscordAlerts(db, client)

    @property
    def client(self) -> Any:
        return _resolve(self._client)

    async def __call__(self, kind: str, **payload: Any) -> None:
        if kind in KINDS:
            await self.alerts(kind, **payload)
            return
        target = _target(kind, payload)
        if target is None:
            return
        progress = kind.endswith((".progress", ".started"))
        try:
            await asyncio.wait_for(self._update(target, progress), PROGRESS_TIMEOUT_S if progress else FINAL_TIMEOUT_S)
        except TimeoutError:
            log.warning("discord: updating the messages of %s %s took too long (%s): skipped", *target, kind)
        except Exception:
            log.exception("discord: updating the messages of %s %s failed (%s)", *target, kind)

    async def _update(self, target: tuple[str, int], progress: bool) -> None:
        now = self.clock()
        if progress and now - self.last_row.get(target, float("-inf")) < self.interval_s:
            return
        from handlers.views import refreshed

        card, refs = await refreshed(self.db, *target)
        refs = [r for r in (refs or []) if isinstance(r, dict) and r.get("platform") == "discord"]
        client = self.client
        if not refs or client is None:
            return
        self.last_row[target] = now
        if not progress:
            self.last_row.pop(target, None)
        for ref in refs:
            channel, mid = _snowflake(ref.get("channel")), _snowflake(ref.get("ts"))
            if channel is None or mid is None:
                continue
            try:
                partial = client.get_partial_messageable(channel).get_partial_message(mid)
                await partial.edit(**to_message(card).kwargs(edit=True))
            except discord.HTTPException as e:
                log.warning("discord: editing %s/%s for %s %s failed: %s", channel, mid, *target, e)


class rest_client:  # noqa: N801 - used like a function: rest_client(settings)() -> logged-in client
    """A REST-only client (no gateway) for processes that only post: logs in on first use."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.client: discord.Client | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> discord.Client:
        from bot.discord import configure_api

        async with self.lock:
            if self.client is None:
                configure_api(self.settings)
                token = self.settings.discord_token
                client = discord.Client(intents=discord.Intents.none())
                await client.login(token.get_secret_value() if hasattr(token, "get_secret_value") else str(token))
                self.client = client
        return self.client


class WorkerNotifier:
    """A :class:`DiscordNotifier` for a worker process: a REST-only client, logged in on first use."""

    def __init__(self, settings: Any, db: Any) -> None:
        self.rest = rest_client(settings)
        self.ref: list[Any] = []
        self.inner = DiscordNotifier(db, self.ref)

    async def __call__(self, kind: str, **payload: Any) -> None:
        if not self.ref:
            try:
                self.ref.append(await self.rest.get())
            except Exception:
                log.exception("discord: logging in for %s failed", kind)
                return
        await self.inner(kind, **payload)


def worker_notifier(ctx: dict[str, Any]) -> WorkerNotifier | None:
    """For ``jobs.worker.worker_settings(settings, notifiers=[worker_notifier])``: None without DISCORD_TOKEN."""
    settings = ctx["settings"]
    if not getattr(settings, "discord_token", None):
        return None
    return WorkerNotifier(settings, ctx["db"])

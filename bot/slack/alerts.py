"""Delivering the watch in Slack: spike alerts to their owners, storm summaries, the daily digest.

``SlackAlerts`` is a ``jobs.notify`` notifier for three events (``bot.slack.notify.SlackNotifier`` hands
them over, so wherever that notifier is registered -- the web process's in-process runner, an arq
worker through ``worker_notifier`` -- the watch is delivered too):

- ``spike.alert`` (spike_id, account_id, workspace_id, route): the alert card DMed to each mapped person
  (``conversations.open`` then ``chat.postMessage``), to the people ``users.lookupByEmail`` finds for the
  route's e-mails (who launched or deployed it), and to the route's channel; with no mapping
  (``route.fallback``), to the workspace's alerts channel with an "assign team…" select. The chart is
  uploaded with ``files_upload_v2`` in each message's thread. Each message is recorded on the spike
  (``chat_refs``).
- ``spike.storm`` (account_id, workspace_id, spike_ids, count, channel): one summary post.
- ``digest.ready`` (workspace_id, account_id, channel, data): the digest card, chart in its thread.

What each says and to whom comes from ``handlers.deliveries`` (platform-neutral); this module only talks
to Slack. Posts are paced per channel (``interval_s``; Slack allows about one message per second per channel;
the settings' ``slack_post_interval_s``, ``COSTDNA_SLACK_POST_INTERVAL_S``, sets it). A notifier never fails a
job: every error is logged and the delivery goes on with the next target.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("costdna.slack")

KINDS = ("spike.alert", "spike.storm", "digest.ready")
DELIVERY_TIMEOUT_S = 120.0


def post_interval() -> float:
    """Seconds between posts to one channel: ``COSTDNA_SLACK_POST_INTERVAL_S`` through the settings."""
    from config.settings import get_settings

    return float(get_settings().slack_post_interval_s)


def _err(e: Exception) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error"))
    return type(e).__name__


class SlackAlerts:
    """``client``: a Web API client (its token, if any, is used); ``token_for(workspace_id)``: the bot
    token of a workspace (database id) in OAuth mode (see :func:`workspace_token_resolver`)."""

    def __init__(self, db: Any, client: AsyncWebClient, *,
                 token_for: Callable[[int | None], Awaitable[str | None]] | None = None,
                 interval_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.db, self.client, self.token_for = db, client, token_for
        self.interval_s = post_interval() if interval_s is None else interval_s
        self.clock, self.sleep = clock, sleep
        self.last_post: dict[str, float] = {}  # channel -> when the last message went there
        self.locks: dict[str, asyncio.Lock] = {}

    async def __call__(self, kind: str, **payload: Any) -> None:
        if kind not in KINDS or not await self._is_slack(payload.get("workspace_id")):
            return  # another platform's workspace (a Discord guild): its own adapter delivers
        try:
            if kind == "spike.alert":
                await asyncio.wait_for(self.spike_alert(payload.get("spike_id"), payload.get("route"),
                                                        workspace_id=payload.get("workspace_id")),
                                       DELIVERY_TIMEOUT_S)
            elif kind == "spike.storm":
                await asyncio.wait_for(self.storm(**payload), DELIVERY_TIMEOUT_S)
            else:
                await asyncio.wait_for(self.digest(**payload), DELIVERY_TIMEOUT_S)
        except TimeoutError:
            log.warning("slack: delivering %s took too long: gave up", kind)
        except Exception:
            log.exception("slack: delivering %s failed", kind)

    # -- plumbing ------------------------------------------------------------------------------------

    async def _is_slack(self, workspace_id: Any) -> bool:
        """Whether a workspace (database id) is Slack's; True when there is none to ask (single-workspace
        mode routes to the configured channel, as before)."""
        if workspace_id is None:
            return True
        from storage.models import Workspace

        async with self.db.session() as s:
            ws = await s.get(Workspace, int(workspace_id))
        return ws is None or ws.platform == "slack"

    async def _token(self, workspace_id: int | None, client: AsyncWebClient) -> dict[str, str]:
        if client.token or self.token_for is None:
            return {}
        token = await self.token_for(workspace_id)
        return {"token": token} if token else {}

    async def _pace(self, channel: str) -> None:
        if self.interval_s <= 0:
            return
        last = self.last_post.get(channel)
        if last is not None:
            wait = self.interval_s - (self.clock() - last)
            if wait > 0:
                await self.sleep(wait)
        self.last_post[channel] = self.clock()

    async def post_card(self, client: AsyncWebClient, channel: str, card: Any, extra: dict[str, str],
                        thread_ts: str | None = None) -> tuple[str, str] | None:
        """Post ``card`` to ``channel`` (paced), then its image in the message's thread. (channel, ts)
        of the message, or None when Slack refused it (logged)."""
        from bot.slack.render import image_upload, to_message

        lock = self.locks.setdefault(channel, asyncio.Lock())
        async with lock:
            await self._pace(channel)
            try:
                res = await client.chat_postMessage(channel=channel, **to_message(card), **extra,
                                                    **({"thread_ts": thread_ts} if thread_ts else {}))
            except SlackApiError as e:
                log.warning("slack: posting %r to %s failed: %s", card.title[:60], channel, _err(e))
                return None
        where, ts = str(res.get("channel") or channel), str(res.get("ts") or "")
        upload = image_upload(card)
        if upload is not None and ts:
            try:
                await client.files_upload_v2(channel=where, thread_ts=thread_ts or ts, **upload, **extra)
            except Exception as e:  # the card went out; a missing chart is not worth failing for
                log.warning("slack: uploading the chart of %r to %s failed: %s", card.title[:60], where, _err(e))
        return where, ts

    async def dm_channel(self, client: AsyncWebClient, user: str, extra: dict[str, str]) -> str | None:
        try:
            res = await client.conversations_open(users=user, **extra)
        except SlackApiError as e:
            log.warning("slack: conversations.open with %s failed: %s", user, _err(e))
            return None
        return ((res.get("channel") or {}).get("id")) or None

    async def lookup(self, client: AsyncWebClient, email: str, extra: dict[str, str]) -> str | None:
        try:
            res = await client.users_lookupByEmail(email=email, **extra)
        except SlackApiError as e:
            log.info("slack: no Slack user for a CloudTrail e-mail (%s)", _err(e))
            return None
        return ((res.get("user") or {}).get("id")) or None

    # -- spike.alert ---------------------------------------------------------------------------------

    async def spike_alert(self, spike_id: Any, route: Any = None, *, workspace_id: int | None = None,
                          client: AsyncWebClient | None = None, claim: bool = False) -> list[tuple[str, str]]:
        """Send one spike's alert (card and route from ``handlers.deliveries.alert_delivery``; ``claim``
        for a re-route) to the route's people by DM, the people its e-mails name, and its channel. The
        (channel, ts) of every message posted."""
        from handlers.deliveries import alert_delivery, record_alert_posts

        client = client or self.client
        if spike_id is None:
            return []
        d = await alert_delivery(self.db, int(spike_id), route, workspace_id=workspace_id, claim=claim)
        if d is None:
            return []
        extra = await self._token(d.workspace_id, client)
        users = list(dict.fromkeys(u for u in d.route.users if u))
        for email in d.route.emails or []:
            uid = await self.lookup(client, email, extra)
            if uid and uid not in users:
                users.append(uid)
        targets: list[str] = []
        for user in users:
            dm = await self.dm_channel(client, user, extra)
            if dm:
                targets.append(dm)
        if d.route.channel:
            targets.append(d.route.channel)
        posted: list[tuple[str, str]] = []
        for channel in dict.fromkeys(targets):
            ref = await self.post_card(client, channel, d.card, extra)
            if ref is not None:
                posted.append(ref)
        await record_alert_posts(self.db, d.spike_id, "slack", posted)
        return posted

    # -- spike.storm and digest.ready: one card to one channel ---------------------------------------

    async def storm(self, **payload: Any) -> tuple[str, str] | None:
        from handlers.deliveries import storm_post

        return await self._post(await storm_post(self.db, **payload))

    async def digest(self, **payload: Any) -> tuple[str, str] | None:
        from handlers.deliveries import digest_post

        return await self._post(await digest_post(self.db, **payload))

    async def _post(self, p: Any) -> tuple[str, str] | None:
        if p is None:
            return None
        return await self.post_card(self.client, p.channel, p.card, await self._token(p.workspace_id, self.client))


def workspace_token_resolver(db: Any) -> Callable[[int | None], Awaitable[str | None]]:
    """In OAuth mode: the bot token of a workspace (database id), else of the newest installation."""
    from bot.slack.installation_store import token_for_workspace

    async def token_for(workspace_id: int | None) -> str | None:
        from storage.models import Workspace

        team: str | None = None
        if workspace_id is not None:
            async with db.session() as s:
                ws = await s.get(Workspace, int(workspace_id))
                team = ws.external_id if ws is not None and ws.platform == "slack" else None
        return await token_for_workspace(db, team)

    return token_for

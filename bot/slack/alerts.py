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

Posts are paced per channel (``interval_s``; Slack allows about one message per second per channel;
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
    from bot.settings import get_settings

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
        if kind not in KINDS:
            return
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
        from handlers.render_slack import image_upload, to_message

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
        """Send one spike's alert along ``route`` (a ``jobs.route.Route``, its JSON, or None: computed
        now). ``claim``: first mark the spike sent (``watch_repo.claim_alert``), so a re-route is
        delivered once however often it is asked. The (channel, ts) of every message posted."""
        from handlers import views
        from handlers import watch_views as wv
        from jobs.route import Route, route_for
        from storage import repo, watch_repo

        client = client or self.client
        if spike_id is None:
            return []
        async with self.db.session() as s:
            spike = await watch_repo.get_spike(s, int(spike_id))
            account = await repo.get_account(s, spike.account_id)
            if workspace_id is None:
                workspace_id = account.workspace_id
            if route is None:
                route = await route_for(s, account, spike)
            elif isinstance(route, dict):
                route = Route.from_json(route)
            if claim:
                if await watch_repo.panic(s):
                    await watch_repo.set_delivery(s, spike.id, "held_panic")
                    log.info("slack: spike %s re-routed while alerts are paused: held", spike.id)
                    return []
                if not await watch_repo.claim_alert(s, spike.id):
                    log.info("slack: spike %s was already delivered", spike.id)
                    return []
            teams: list[str] = []
            if route.fallback:
                scan = await repo.latest_predictions_scan(s, spike.account_id)
                teams = await views.known_teams(s, spike.account_id, scan.id if scan is not None else None)
            card = wv.alert_card(spike, account, route, teams=teams, now=time.time())
            # Detach what the rest needs before the session ends.
            sid = spike.id
        extra = await self._token(workspace_id, client)

        users = list(dict.fromkeys(u for u in route.users if u))
        for email in route.emails or []:
            uid = await self.lookup(client, email, extra)
            if uid and uid not in users:
                users.append(uid)
        targets: list[str] = []
        for user in users:
            dm = await self.dm_channel(client, user, extra)
            if dm:
                targets.append(dm)
        if route.channel:
            targets.append(route.channel)
        targets = list(dict.fromkeys(targets))
        posted: list[tuple[str, str]] = []
        for channel in targets:
            ref = await self.post_card(client, channel, card, extra)
            if ref is not None:
                posted.append(ref)
        async with self.db.session() as s:
            for ch, ts in posted:
                await watch_repo.add_spike_ref(s, sid, "slack", ch, ts)
            if not posted:
                log.warning("slack: spike %s reached nobody (no mapped people, no alerts channel)", sid)
                await watch_repo.set_delivery(s, sid, "unrouted")
        return posted

    # -- spike.storm ---------------------------------------------------------------------------------

    async def storm(self, account_id: int | None = None, workspace_id: int | None = None,
                    spike_ids: Any = (), count: int | None = None, channel: str | None = None,
                    **_: Any) -> tuple[str, str] | None:
        from handlers import watch_views as wv
        from jobs.route import alerts_channel
        from storage import repo, watch_repo
        from storage.models import Workspace

        async with self.db.session() as s:
            account = await repo.get_account(s, int(account_id)) if account_id is not None else None
            spikes = []
            for sid in list(spike_ids or [])[:200]:
                try:
                    spikes.append(await watch_repo.get_spike(s, int(sid)))
                except repo.NotFound:
                    continue
            if workspace_id is None and account is not None:
                workspace_id = account.workspace_id
            if not channel and workspace_id is not None:
                channel = alerts_channel(await s.get(Workspace, workspace_id))
            card = wv.storm_card(account, spikes, count if count is not None else len(spikes))
        if not channel:
            log.warning("slack: an alert storm on account %s and no alerts channel to say so", account_id)
            return None
        client = self.client
        return await self.post_card(client, channel, card, await self._token(workspace_id, client))

    # -- digest.ready ----------------------------------------------------------------------------------

    async def digest(self, workspace_id: int | None = None, account_id: int | None = None,
                     channel: str | None = None, data: dict[str, Any] | None = None,
                     **_: Any) -> tuple[str, str] | None:
        from handlers import watch_views as wv
        from storage import repo
        from storage.models import Workspace

        async with self.db.session() as s:
            account = await repo.get_account(s, int(account_id)) if account_id is not None else None
            if not channel and workspace_id is not None:
                ws = await s.get(Workspace, workspace_id)
                channel = ((ws.settings or {}) if ws is not None else {}).get("digest_channel")
        if not channel:
            log.warning("slack: a digest for workspace %s and no digest channel", workspace_id)
            return None
        card = wv.digest_card(data or {}, account)
        client = self.client
        return await self.post_card(client, channel, card, await self._token(workspace_id, client))


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

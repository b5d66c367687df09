"""What the watch's notifications say and to whom: platform-neutral, so each chat adapter only delivers.

The watch job emits ``spike.alert``, ``spike.storm`` and ``digest.ready`` (see ``jobs.watch`` and
``jobs.digest``); a platform's notifier (``bot.slack.alerts`` for Slack) calls the matching function here
for the Card and the targets, sends them with its own SDK, then reports what it posted with
:func:`record_alert_posts`. Nothing here imports a chat SDK.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from handlers import views
from handlers import watch_views as wv
from handlers.cards import Card
from jobs.route import Route, alerts_channel, route_for
from storage import repo, watch_repo
from storage.models import Workspace

log = logging.getLogger("costdna.handlers")
MAX_STORM_SPIKES = 200  # a storm summary lists at most this many (the card itself shows fewer)


@dataclass
class AlertDelivery:
    """One spike alert: the card, and where it goes (people to DM, e-mails to look up, a channel)."""

    spike_id: int
    workspace_id: int | None
    route: Route
    card: Card


@dataclass
class ChannelPost:
    """One card for one channel (a storm summary, a digest)."""

    workspace_id: int | None
    channel: str
    card: Card


async def alert_delivery(db: Any, spike_id: int, route: Route | dict | None = None, *,
                         workspace_id: int | None = None, claim: bool = False) -> AlertDelivery | None:
    """The alert card of a spike and its route (``route``: as the watch computed it, its JSON, or None:
    computed now). ``claim``: a re-route after a person's label — sent only if alerts are not paused and
    only once (``watch_repo.claim_alert``); None when it must not go out."""
    async with db.session() as s:
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
                log.info("spike %s re-routed while alerts are paused: held", spike.id)
                return None
            if not await watch_repo.claim_alert(s, spike.id):
                log.info("spike %s was already delivered", spike.id)
                return None
        teams: list[str] = []
        if route.fallback:  # the "assign team…" menu lists the account's teams
            scan = await repo.latest_predictions_scan(s, spike.account_id)
            teams = await views.known_teams(s, spike.account_id, scan.id if scan is not None else None)
        card = wv.alert_card(spike, account, route, teams=teams, now=time.time())
        return AlertDelivery(spike_id=spike.id, workspace_id=workspace_id, route=route, card=card)


async def record_alert_posts(db: Any, spike_id: int, platform: str, posted: list[tuple[str, str]]) -> None:
    """Remember the messages that show a spike (buttons update them all); none posted: "unrouted"."""
    async with db.session() as s:
        for channel, ts in posted:
            await watch_repo.add_spike_ref(s, spike_id, platform, channel, ts)
        if not posted:
            log.warning("spike %s reached nobody (no mapped people, no alerts channel)", spike_id)
            await watch_repo.set_delivery(s, spike_id, "unrouted")


async def spike_messages(db: Any, spike_id: int, platform: str) -> list[tuple[str, str]]:
    """(channel, ts) of the messages on ``platform`` that show a spike (a decision updates them all)."""
    from storage.models import Spike

    async with db.session() as s:
        row = await s.get(Spike, int(spike_id))
        refs = list(row.chat_refs or []) if row is not None else []
    return [(str(r["channel"]), str(r["ts"])) for r in refs
            if r.get("platform") == platform and r.get("channel") and r.get("ts")]


async def storm_post(db: Any, account_id: int | None = None, workspace_id: int | None = None,
                     spike_ids: Any = (), count: int | None = None, channel: str | None = None,
                     **_: Any) -> ChannelPost | None:
    """The one "alert storm" summary for the spikes the breaker held, to the alerts channel."""
    async with db.session() as s:
        account = await repo.get_account(s, int(account_id)) if account_id is not None else None
        spikes = []
        for sid in list(spike_ids or [])[:MAX_STORM_SPIKES]:
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
        log.warning("an alert storm on account %s and no alerts channel to say so", account_id)
        return None
    return ChannelPost(workspace_id=workspace_id, channel=channel, card=card)


async def digest_post(db: Any, workspace_id: int | None = None, account_id: int | None = None,
                      channel: str | None = None, data: dict[str, Any] | None = None, **_: Any) -> ChannelPost | None:
    """The digest card (``jobs.digest.digest_data``) for the workspace's digest channel."""
    async with db.session() as s:
        account = await repo.get_account(s, int(account_id)) if account_id is not None else None
        if not channel and workspace_id is not None:
            ws = await s.get(Workspace, workspace_id)
            channel = ((ws.settings or {}) if ws is not None else {}).get("digest_channel")
    if not channel:
        log.warning("a digest for workspace %s and no digest channel", workspace_id)
        return None
    return ChannelPost(workspace_id=workspace_id, channel=channel, card=wv.digest_card(data or {}, account))

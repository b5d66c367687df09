"""Job notifier: keeps the Slack messages that show a scan or a change set up to date.

``SlackNotifier`` is a ``jobs.notify`` notifier (``async def __call__(kind, **payload)``). On
``scan.started`` / ``scan.progress`` / ``scan.finished`` / ``scan.failed`` and ``changeset.*`` it loads
the card to show (``handlers.views.refreshed(db, kind, id)`` gives the card and the row's chat
references) and calls ``chat.update`` on every Slack message that shows the row.

Progress is throttled to one update per message every two seconds (Slack allows about one write per
second per channel, and a scan reports progress twice a second); the final state always goes out.
A notifier never fails a job: every error is logged and swallowed, and a slow or rate-limited Slack
delays a progress update by at most a few seconds before it is dropped.

The watch's events (``spike.alert``, ``spike.storm``, ``digest.ready``) are handed to
:class:`bot.slack.alerts.SlackAlerts` (same client, same token rules), so registering this notifier is
all it takes to deliver alerts and digests from a process.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("costdna.slack")

PROGRESS_INTERVAL_S = 2.0
PROGRESS_TIMEOUT_S = 5.0  # a progress update stuck longer (429 Retry-After, slow network) is dropped
FINAL_TIMEOUT_S = 60.0


def _target(kind: str, payload: dict[str, Any]) -> tuple[str, int] | None:
    """The row an event is about: ("scan", id) or ("changeset", id)."""
    family = kind.split(".", 1)[0]
    if family == "scan" and payload.get("scan_id") is not None:
        return "scan", int(payload["scan_id"])
    if family == "changeset" and payload.get("change_set_id") is not None:
        return "changeset", int(payload["change_set_id"])
    return None


class SlackNotifier:
    """``client``: a Web API client (its token, if any, is used); ``token_for(kind, row_id)``: the bot
    token for a row's workspace in OAuth mode (see :func:`oauth_token_resolver`)."""

    def __init__(self, db: Any, client: AsyncWebClient, *,
                 token_for: Callable[[str, int], Awaitable[str | None]] | None = None,
                 interval_s: float = PROGRESS_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.db, self.client, self.token_for = db, client, token_for
        self.interval_s, self.clock = interval_s, clock
        self.last: dict[tuple[str, str], float] = {}  # (channel, ts) -> when it was last updated
        self.last_row: dict[tuple[str, int], float] = {}
        self.alerts: Any = None  # bot.slack.alerts.SlackAlerts, made on the first watch event

    async def __call__(self, kind: str, **payload: Any) -> None:
        from bot.slack.alerts import KINDS

        if kind in KINDS:
            if self.alerts is None:
                from bot.slack.alerts import SlackAlerts, workspace_token_resolver

                self.alerts = SlackAlerts(self.db, self.client, token_for=None if self.client.token
                                          else workspace_token_resolver(self.db))
            await self.alerts(kind, **payload)  # never raises
            return
        target = _target(kind, payload)
        if target is None:
            return
        progress = kind.endswith((".progress", ".started"))  # throttled; the final state never is
        try:
            await asyncio.wait_for(self._update(target, progress),
                                   PROGRESS_TIMEOUT_S if progress else FINAL_TIMEOUT_S)
        except TimeoutError:
            log.warning("slack: updating the messages of %s %s took too long (%s): skipped", *target, kind)
        except Exception:
            log.exception("slack: updating the messages of %s %s failed (%s)", *target, kind)

    async def _update(self, target: tuple[str, int], progress: bool) -> None:
        now = self.clock()
        if progress and now - self.last_row.get(target, float("-inf")) < self.interval_s:
            return
        from handlers.views import refreshed

        out = refreshed(self.db, *target)
        card, refs = await out if inspect.isawaitable(out) else out
        refs = [r for r in (refs or []) if isinstance(r, dict) and r.get("platform") == "slack"]
        if not refs:
            return
        self.last_row[target] = now
        if not progress:
            self.last_row.pop(target, None)
        from bot.slack.render import to_message

        msg = to_message(card)
        token = None if self.client.token else (await self.token_for(*target) if self.token_for else None)
        extra = {"token": token} if token else {}
        for ref in refs:
            key = (str(ref.get("channel")), str(ref.get("ts")))
            if progress and now - self.last.get(key, float("-inf")) < self.interval_s:
                continue
            self.last[key] = now
            try:
                await self.client.chat_update(channel=key[0], ts=key[1], **msg, **extra)
            except SlackApiError as e:
                log.warning("slack: chat.update of %s/%s for %s %s failed: %s", *key, *target,
                            e.response.get("error"))
            if not progress:
                self.last.pop(key, None)


def oauth_token_resolver(db: Any) -> Callable[[str, int], Awaitable[str | None]]:
    """In OAuth mode: the token of the workspace that owns the row's account (else the newest install)."""
    from bot.slack.installation_store import token_for_workspace

    async def token_for(kind: str, row_id: int) -> str | None:
        from storage.models import Account, ChangeSet, Scan, Workspace

        model = {"scan": Scan, "changeset": ChangeSet}[kind]
        team: str | None = None
        async with db.session() as s:
            row = await s.get(model, row_id)
            account = await s.get(Account, row.account_id) if row is not None else None
            if account is not None and account.workspace_id:
                ws = await s.get(Workspace, account.workspace_id)
                team = ws.external_id if ws is not None and ws.platform == "slack" else None
        return await token_for_workspace(db, team)

    return token_for


def notifier_for(settings: Any, db: Any, session: Any = None, client: AsyncWebClient | None = None) -> SlackNotifier | None:
    """A notifier for a process (web or worker) with these settings; None when Slack is not configured."""
    from bot.slack import slack_mode
    from bot.slack.app import _secret, make_client

    mode = slack_mode(settings) or ("single" if settings.slack_bot_token else None)
    if mode is None:
        return None
    if client is None:
        client = make_client(settings, token=_secret(settings.slack_bot_token) if mode == "single" else None,
                             session=session)
    return SlackNotifier(db, client, token_for=None if mode == "single" else oauth_token_resolver(db))


def worker_notifier(ctx: dict[str, Any]) -> SlackNotifier | None:
    """For ``jobs.worker.worker_settings(settings, notifiers=[worker_notifier])``: the worker's own."""
    return notifier_for(ctx["settings"], ctx["db"])

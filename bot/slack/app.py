"""The Bolt ``AsyncApp``: Slack requests in, handler calls, Block Kit cards out.

The adapter only translates. A slash command ``/costdna <text>`` becomes
``handlers.commands.handle_command(svc, who, text)``; a button or select click becomes
``handlers.actions.handle_action(svc, who, action_id, value)``; ``@costdna <question>`` becomes the
command ``ask <question>``, answered in a thread; a plain reply in a thread where costdna answered a
question (no mention needed: the ``message.*`` events) is a follow-up of that answer, asked with the
thread's stored context (:mod:`storage.ask_repo`); opening the App Home publishes
``handlers.home.home_cards``. Every card is rendered with ``bot.slack.render.to_message``.

Slack's 3-second rule: every listener acknowledges first (an empty ack) and works afterwards. Bolt
sends the HTTP 200 as soon as ``ack()`` is called while the listener carries on; anything slow is the
handler's to hand to the job queue.

Two modes, picked from the settings (see :func:`bot.slack.slack_mode`):

- single workspace: ``SLACK_BOT_TOKEN`` + ``SLACK_SIGNING_SECRET``;
- OAuth (any number of workspaces): ``SLACK_CLIENT_ID`` + ``SLACK_CLIENT_SECRET`` +
  ``SLACK_SIGNING_SECRET``; installations are stored encrypted in our database
  (:mod:`bot.slack.installation_store`), installs start at ``GET /slack/install``.

Requests are verified with the signing secret by Bolt (bad signature or a timestamp more than five
minutes old: 401, and nothing runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import re
from collections import OrderedDict
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import slack_mode
from bot.slack.render import to_message
from handlers.cards import Card, error_card
from handlers.context import Reply, Services, Who

log = logging.getLogger("costdna.slack")

COMMAND = "/costdna"
SCOPES = ["commands", "chat:write", "app_mentions:read", "im:write", "files:write", "users:read",
          "users:read.email", "channels:history", "groups:history", "im:history"]  # manifests/slack.yaml
HOME_MAX_BLOCKS = 100  # a Home tab view holds at most 100 blocks
_SUFFIX = re.compile(r":\d+$")  # bot.slack.render makes repeated action ids unique as x, x:1, x:2
_MENTION = re.compile(r"^\s*(?:<@[A-Z0-9]+(?:\|[^>]*)?>\s*)+")
_ANY_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
# message subtypes that are still a person's plain reply ("also send to channel")
_PLAIN_SUBTYPES = (None, "", "thread_broadcast")
_UNPOSTABLE = ("not_in_channel", "channel_not_found", "is_archived", "restricted_action")


def api_base_url(settings: Any) -> str:
    url = settings.slack_api_url or "https://slack.com/api/"
    return url if url.endswith("/") else url + "/"  # the SDK joins method names with urljoin


def make_client(settings: Any, token: str | None = None, session: Any = None) -> AsyncWebClient:
    """A Web API client on ``SLACK_API_URL`` that also retries 429s (honouring Retry-After) and 5xx."""
    client = AsyncWebClient(token=token, base_url=api_base_url(settings), session=session, timeout=30)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=2))
    return client


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


async def _call(fn: Any, *args: Any) -> Any:
    """Call a handler that may be a coroutine function or a plain one."""
    out = fn(*args)
    return await out if inspect.isawaitable(out) else out


def strip_action_id(action_id: str) -> str:
    return _SUFFIX.sub("", action_id or "")


def action_value(action: dict[str, Any]) -> str:
    if action.get("value") is not None:
        return str(action["value"])
    opt = action.get("selected_option") or {}
    return str(opt.get("value") or "")


def mention_text(text: str) -> str:
    """The question in ``<@UBOT> why did our bill spike?`` (leading mentions dropped)."""
    return _MENTION.sub("", text or "").strip()


def _model_for(kind: str) -> Any:
    from storage.models import ChangeSet, Prompt, Scan, Spike

    return {"scan": Scan, "changeset": ChangeSet, "prompt": Prompt, "spike": Spike}.get(kind)


class _Seen:
    """Event ids handled by this process (bounded): a retried delivery that arrives while the first is
    still being recorded is caught here; across processes the database (``first_time_event``) decides."""

    def __init__(self, size: int = 5000) -> None:
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.size = size

    def first(self, event_id: str) -> bool:
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.size:
            self.ids.popitem(last=False)
        return True


class SlackAdapter:
    """The listeners' shared state and the ways a :class:`Reply` reaches Slack."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.seen = _Seen()
        self.workspaces: set[str] = set()
        self.workspace_lock = asyncio.Lock()

    async def ensure_workspace(self, team_id: str) -> None:
        """Create the workspace row once, before handlers race to (a burst of first commands from a new
        workspace would otherwise collide on its unique key)."""
        if not team_id or team_id in self.workspaces:
            return
        from storage import repo

        async with self.workspace_lock:
            if team_id in self.workspaces:
                return
            try:
                async with self.svc.db.session() as s:
                    await repo.get_or_create_workspace(s, "slack", team_id)
                self.workspaces.add(team_id)
            except Exception as e:  # another process created it meanwhile: fine
                log.info("slack: workspace %s: %s", team_id, type(e).__name__)

    # -- handlers (imported on use: they are another package's, and may load slowly) --------------

    async def command(self, who: Who, text: str) -> Reply:
        from handlers.commands import handle_command

        try:
            await self.ensure_workspace(who.workspace)
            return await _call(handle_command, self.svc, who, text)
        except Exception:
            log.exception("slack: command %r from %s failed", text[:80], who.user_id)
            return Reply.of(error_card("Something went wrong on our side; it has been logged.",
                                       "Try again in a minute, or `/costdna help`."))

    async def action(self, who: Who, action_id: str, value: str) -> Reply:
        from handlers.actions import handle_action

        try:
            await self.ensure_workspace(who.workspace)
            return await _call(handle_action, self.svc, who, action_id, value)
        except Exception:
            log.exception("slack: action %s from %s failed", action_id, who.user_id)
            return Reply(ephemeral=error_card("That button did not work; it has been logged.",
                                              "Try again, or ask for a fresh card."))

    # -- posting -------------------------------------------------------------------------------

    async def track(self, tracks: tuple[str, int] | None, channel: str, ts: str | None) -> None:
        if not tracks or not ts:
            return
        if tracks[0] == "ask":  # the posted answer is the root of its ask thread from now on
            await self.attach_ask_thread(int(tracks[1]), channel, ts)
            return
        model = _model_for(tracks[0])
        if model is None:
            log.warning("slack: cannot track a message showing %r", tracks[0])
            return
        from storage import repo

        try:
            async with self.svc.db.session() as s:
                await repo.add_message_ref(s, model, int(tracks[1]), "slack", channel, ts)
        except Exception:
            log.exception("slack: could not remember message %s/%s for %s %s", channel, ts, *tracks)

    async def attach_ask_thread(self, thread_id: int, channel: str, ts: str) -> None:
        from storage import ask_repo

        try:
            async with self.svc.db.session() as s:
                if not await ask_repo.attach_thread(s, thread_id, channel, ts):
                    log.info("slack: ask thread %s is gone; message %s/%s starts no thread",
                             thread_id, channel, ts)
        except Exception:
            log.exception("slack: could not make message %s/%s the root of ask thread %s",
                          channel, ts, thread_id)

    async def follow_up_thread(self, event: dict[str, Any], bot_user_id: str | None) -> str | None:
        """The thread ts when ``event`` is a person's plain reply in a thread that has a stored, unexpired
        ask context (a follow-up to answer); None for everything else, which stays unread."""
        thread_ts, channel = event.get("thread_ts"), event.get("channel")
        if not thread_ts or not channel or thread_ts == event.get("ts"):
            return None  # not a reply in a thread
        if event.get("subtype") not in _PLAIN_SUBTYPES or event.get("bot_id") or not event.get("user"):
            return None  # edits, deletions, joins, bots (ourselves included)
        text = event.get("text") or ""
        mentioned = set(_ANY_MENTION.findall(text))
        if bot_user_id and bot_user_id in mentioned:
            return None  # a mention: app_mention answers it
        if mentioned:
            return None  # addressed to a person, not to costdna
        if not mention_text(text):
            return None
        from storage import ask_repo

        async with self.svc.db.session() as s:
            ctx = await ask_repo.load_thread(s, "slack", channel, thread_ts)
        return thread_ts if ctx is not None else None

    async def first_time(self, body: dict, event: dict) -> bool:
        """Answer each event id once (Slack re-delivers when it saw no 200 in time: X-Slack-Retry-Num)."""
        event_id = body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
        if not self.seen.first(event_id):
            return False
        from storage import repo

        async with self.svc.db.session() as s:
            if not await repo.first_time_event(s, "slack", event_id):
                log.info("slack: event %s already handled (retry %s)", event_id, body.get("retry_num", "?"))
                return False
        return True

    async def post(self, client: AsyncWebClient, card: Card, *, channel: str, user: str,
                   respond: Any = None, thread_ts: str | None = None,
                   tracks: tuple[str, int] | None = None) -> None:
        """One card: ephemeral ones to ``user`` only, the others to the channel (tracked if asked)."""
        msg = to_message(card)
        extra = {"thread_ts": thread_ts} if thread_ts else {}
        try:
            if card.ephemeral:
                if respond is not None and not thread_ts:
                    await respond(response_type="ephemeral", replace_original=False, **msg)
                elif channel:
                    await client.chat_postEphemeral(channel=channel, user=user, **msg, **extra)
                else:  # no channel (App Home): the app's DM with the user
                    await client.chat_postMessage(channel=user, **msg)
                return
            try:
                res = await client.chat_postMessage(channel=channel or user, **msg, **extra)
            except SlackApiError as e:
                # A channel the bot is not in (or a DM with someone else) still has the command's
                # response_url: post there, though that message cannot be updated later.
                if respond is None or e.response.get("error") not in _UNPOSTABLE:
                    raise
                log.info("slack: chat.postMessage to %s failed (%s); answering through response_url",
                         channel, e.response.get("error"))
                await respond(response_type="in_channel", replace_original=False, **msg)
                return
            await self.track(tracks, res.get("channel") or channel, res.get("ts"))
            await self.upload_image(client, card, res.get("channel") or channel or user,
                                    thread_ts or res.get("ts"))
        except SlackApiError as e:
            log.error("slack: could not post %r to %s: %s", card.title[:60], channel or user,
                      e.response.get("error"))

    async def post_all(self, client: AsyncWebClient, reply: Reply, **where: Any) -> None:
        from handlers.spikes import ROUTE

        for p in reply.posts:
            if p.tracks and p.tracks[0] == ROUTE:  # a spike to deliver to its (new) owner, not here
                await self.deliver_spike(client, int(p.tracks[1]))
                continue
            await self.post(client, p.card, tracks=p.tracks, **where)

    async def deliver_spike(self, client: AsyncWebClient, spike_id: int) -> None:
        """Send a re-routed spike along its route (once: the spike's delivery is claimed first)."""
        from bot.slack.alerts import SlackAlerts

        try:
            await SlackAlerts(self.svc.db, client).spike_alert(spike_id, None, client=client, claim=True)
        except Exception:
            log.exception("slack: delivering re-routed spike %s failed", spike_id)

    async def sync_spike_messages(self, client: AsyncWebClient, action_id: str, value: str, card: Card,
                                  clicked: str | None) -> None:
        """After a decision on a spike, the other messages showing it (the team's other DMs, its channel)
        show the same decided card as the one clicked."""
        from handlers.watch_views import SPIKE_ACTIONS, SPIKE_EXPLAIN

        if action_id not in SPIKE_ACTIONS or action_id == SPIKE_EXPLAIN:
            return
        head = value.split(".", 1)[0]
        if not head.isdigit() or len(head) >= 19:
            return
        from handlers.deliveries import spike_messages

        try:
            msg = to_message(card)
            for channel, ts in await spike_messages(self.svc.db, int(head), "slack"):
                if ts == clicked:
                    continue
                try:
                    await client.chat_update(channel=channel, ts=ts, **msg)
                except SlackApiError as e:
                    log.info("slack: could not update spike message %s/%s: %s", channel, ts, e.response.get("error"))
        except Exception:
            log.exception("slack: updating the messages of spike %s failed", head)

    async def upload_image(self, client: AsyncWebClient, card: Card, channel: str, ts: str | None) -> None:
        """The card's chart in the thread of the message just posted (files_upload_v2)."""
        from bot.slack.render import image_upload

        upload = image_upload(card)
        if upload is None or not ts:
            return
        try:
            await client.files_upload_v2(channel=channel, thread_ts=ts, **upload)
        except Exception as e:
            log.warning("slack: uploading the chart of %r failed: %s", card.title[:60],
                        e.response.get("error") if isinstance(e, SlackApiError) else type(e).__name__)


def build_slack_app(svc: Services, settings: Any, *, client: AsyncWebClient | None = None,
                    socket: bool = False) -> AsyncApp:
    """The Bolt app for ``svc``; the mode (single workspace or OAuth) follows the settings.

    ``client`` (optional) is the Web API client to copy per request (its session is reused);
    ``socket`` builds for Socket Mode (no signing secret needed: requests come over the socket).
    """
    mode = slack_mode(settings)
    if socket and settings.slack_bot_token:
        mode = "single"
    if mode is None:
        from bot.slack import missing_settings

        raise ValueError("Slack is not configured: set " + ", ".join(missing_settings(settings, socket)))
    bot_token = _secret(settings.slack_bot_token) if mode == "single" else None
    if client is None:
        client = make_client(settings, token=bot_token)
    elif bot_token and not client.token:
        client.token = bot_token
    signing_secret = _secret(settings.slack_signing_secret) or ""

    kwargs: dict[str, Any] = {}
    if mode == "oauth":
        from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
        from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

        from bot.slack.installation_store import DbInstallationStore, DbOAuthStateStore

        store = DbInstallationStore(svc.db)
        secret = _secret(settings.slack_client_secret)
        kwargs["installation_store"] = store
        kwargs["authorize"] = AsyncInstallationStoreAuthorize(
            installation_store=store, client_id=settings.slack_client_id, client_secret=secret,
            bot_only=True, cache_enabled=True, logger=log)
        kwargs["oauth_settings"] = AsyncOAuthSettings(
            client_id=settings.slack_client_id, client_secret=secret, scopes=SCOPES,
            install_path="/slack/install", redirect_uri_path="/slack/oauth_redirect",
            installation_store=store, installation_store_bot_only=True,
            state_store=DbOAuthStateStore(svc.db))
    app = AsyncApp(client=client, signing_secret=signing_secret, process_before_response=False,
                   request_verification_enabled=True, **kwargs)
    register(app, SlackAdapter(svc))
    return app


def register(app: AsyncApp, ad: SlackAdapter) -> None:
    """The listeners."""

    @app.command(COMMAND)
    async def on_command(ack: Any, body: dict, respond: Any, client: AsyncWebClient) -> None:
        await ack()  # Slack's 3 seconds: the 200 goes out now, the work goes on
        who = Who(platform="slack", workspace=body.get("team_id", ""), user_id=body.get("user_id", ""),
                  user_name=body.get("user_name", ""), channel_id=body.get("channel_id", ""))
        reply = await ad.command(who, body.get("text", "") or "")
        await ad.post_all(client, reply, channel=who.channel_id, user=who.user_id, respond=respond)

    @app.action(re.compile(r".+"))
    async def on_action(ack: Any, body: dict, action: dict, respond: Any, client: AsyncWebClient) -> None:
        await ack()
        user = body.get("user") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
        who = Who(platform="slack", workspace=team, user_id=user.get("id", ""),
                  user_name=user.get("username") or user.get("name") or "", channel_id=channel)
        reply = await ad.action(who, strip_action_id(action.get("action_id", "")), action_value(action))

        if reply.replace is not None:
            await replace_clicked(ad, client, body, respond, reply.replace)
            await ad.sync_spike_messages(client, strip_action_id(action.get("action_id", "")), action_value(action),
                                         reply.replace, clicked=container.get("message_ts"))
        if reply.ephemeral is not None:
            note = dataclasses.replace(reply.ephemeral, ephemeral=True)
            await ad.post(client, note, channel=channel, user=who.user_id)
        # what a click posts (an explanation, a question) goes in the clicked message's thread
        thread = None if container.get("is_ephemeral") or container.get("type") == "view" else container.get(
            "message_ts")
        await ad.post_all(client, reply, channel=channel, user=who.user_id, thread_ts=thread)

    @app.event("app_mention")
    async def on_mention(body: dict, event: dict, client: AsyncWebClient) -> None:
        # Events are acknowledged by Bolt before this runs; Slack re-delivers when it saw no 200 in time
        # (X-Slack-Retry-Num): answer each event id once.
        if not await ad.first_time(body, event):
            return
        channel = event.get("channel", "")
        thread_ts = event.get("thread_ts") or event.get("ts") or ""  # a mention outside a thread starts one
        who = Who(platform="slack", workspace=body.get("team_id") or event.get("team", ""),
                  user_id=event.get("user", ""), channel_id=channel, thread_ts=thread_ts)
        question = mention_text(event.get("text", ""))
        reply = await ad.command(who, f"ask {question}".strip())
        await ad.post_all(client, reply, channel=channel, user=who.user_id, thread_ts=thread_ts or None)

    @app.event("app_home_opened")
    async def on_home(body: dict, event: dict, client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        who = Who(platform="slack", workspace=body.get("team_id", ""), user_id=event.get("user", ""))
        await publish_home(ad, client, who)

    @app.event("message")
    async def on_message(body: dict, event: dict, client: AsyncWebClient, context: Any) -> None:
        # Only a person's plain reply in a thread costdna answered in (with an unexpired stored context)
        # is read, as a follow-up question; every other message (channel chatter, DMs, edits, bots,
        # mentions, which app_mention answers) is left unread.
        try:
            thread_ts = await ad.follow_up_thread(event, context.get("bot_user_id") if context else None)
        except Exception:
            log.exception("slack: reading message %s/%s failed", event.get("channel"), event.get("ts"))
            return
        if thread_ts is None or not await ad.first_time(body, event):
            return
        channel = event.get("channel", "")
        who = Who(platform="slack", workspace=body.get("team_id") or event.get("team", ""),
                  user_id=event.get("user", ""), channel_id=channel, thread_ts=thread_ts)
        reply = await ad.command(who, f"ask {mention_text(event.get('text', ''))}")
        await ad.post_all(client, reply, channel=channel, user=who.user_id, thread_ts=thread_ts)


async def publish_home(ad: SlackAdapter, client: AsyncWebClient, who: Who) -> None:
    try:
        from handlers.home import home_cards

        cards = await _call(home_cards, ad.svc, who)
    except Exception:
        log.exception("slack: home cards for %s failed", who.user_id)
        cards = [error_card("The home tab could not be loaded; it has been logged.")]
    try:
        await client.views_publish(user_id=who.user_id, view=home_view(cards))
    except SlackApiError as e:
        log.error("slack: views.publish for %s failed: %s", who.user_id, e.response.get("error"))


def home_view(cards: list[Card]) -> dict[str, Any]:
    """Cards one under another (dividers between), within a Home view's 100 blocks."""
    blocks: list[dict] = []
    for card in cards:
        card_blocks = to_message(card)["blocks"]
        sep = [{"type": "divider"}] if blocks else []
        if len(blocks) + len(sep) + len(card_blocks) > HOME_MAX_BLOCKS:
            break
        blocks.extend(sep + card_blocks)
    if not blocks:
        blocks = to_message(Card(title="costdna", context="Nothing here yet: try `/costdna help`."))["blocks"]
    return {"type": "home", "blocks": blocks}


async def replace_clicked(ad: SlackAdapter, client: AsyncWebClient, body: dict, respond: Any, card: Card) -> None:
    """Show ``card`` in place of the message whose button was clicked."""
    container = body.get("container") or {}
    msg = to_message(card)
    try:
        if container.get("type") == "view":  # a Home tab card: publish the Home tab again
            user = (body.get("user") or {}).get("id", "")
            team = (body.get("team") or {}).get("id", "")
            await publish_home(ad, client, Who(platform="slack", workspace=team, user_id=user))
        elif container.get("is_ephemeral") or not container.get("message_ts"):
            if respond is not None:  # ephemeral messages can only be replaced through response_url
                await respond(replace_original=True, **msg)
        else:
            channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
            await client.chat_update(channel=channel, ts=container["message_ts"], **msg)
    except SlackApiError as e:
        log.error("slack: could not update the clicked message: %s", e.response.get("error"))

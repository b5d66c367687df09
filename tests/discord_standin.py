"""A local stand-in for Discord (REST API v10 and the gateway websocket), for tests.

An aiohttp server on 127.0.0.1 (a free port) that the real discord.py client talks to:

- REST under ``/api/v10`` (point ``discord.http.Route.BASE`` at ``standin.api_url``): ``GET /gateway/bot``
  and ``/gateway`` (the websocket URL), ``GET /users/@me``, ``GET /applications/@me``, global and guild
  command sync (``GET``/``PUT``/``POST /applications/{app}/commands``, ``.../guilds/{guild}/commands``),
  ``POST /interactions/{id}/{token}/callback`` (``with_response``: the callback object with the message it
  created), the interaction webhooks (``POST /webhooks/{app}/{token}`` followups, ``GET``/``PATCH``/``DELETE
  .../messages/@original`` and ``.../messages/{id}``), ``POST``/``PATCH``/``GET /channels/{id}/messages[/{id}]``,
  ``GET /channels/{id}``, ``POST /users/@me/channels`` (a DM channel), thread creation (``POST
  /channels/{id}/messages/{id}/threads`` and ``/channels/{id}/threads``). JSON bodies and multipart bodies
  (``payload_json`` + ``files[n]``) are both understood. Every answer has ``Content-Type`` exactly
  ``application/json`` (discord.py compares it literally; aiohttp's ``json_response`` appends a charset).
  Anything else: a recorded 404 with Discord's error shape.
- The gateway at ``standin.gateway_url`` (``ws://127.0.0.1:<port>/ws``; a plain ``discord.Client`` connects to
  ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``, so set that too -- :func:`point_discord_at` does both;
  an ``AutoShardedClient`` asks ``GET /gateway/bot``): HELLO (``heartbeat_interval``), IDENTIFY -> READY
  (the bot user, the application, the guild unavailable) then GUILD_CREATE (the guild, its channels and
  members), HEARTBEAT -> HEARTBEAT_ACK, RESUME -> RESUMED, REQUEST_GUILD_MEMBERS -> GUILD_MEMBERS_CHUNK.
  ``zlib-stream`` compression when the client asks for it (discord.py does by default), as Discord does.
  :meth:`DiscordStandIn.dispatch` pushes any event; :meth:`slash`, :meth:`click`, :meth:`select`,
  :meth:`autocomplete` and :meth:`mention` push INTERACTION_CREATE / MESSAGE_CREATE built from the real
  payloads in ``shared/data/discord/interaction-examples`` (only ids, token, user, channel and data changed;
  fields newer than the samples -- ``attachment_size_limit``, the ``channel`` object -- added).

Every REST call and every gateway frame the client sends is recorded (``calls``, ``frames``). Messages are
kept (``messages``: id -> the message as Discord would return it) so a test can read what a channel shows.
Scriptable failures: :meth:`refuse_dm` (403 ``Cannot send messages to this user``, code 50007, on opening
the DM or on posting to it), :meth:`fail` (any status on a route), :meth:`rate_limit_once` (429 with
``retry_after`` in the body, ``Retry-After`` and ``Via`` headers: discord.py treats a 429 without ``Via`` as a
Cloudflare ban and does not retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
EXAMPLES = "discord/interaction-examples"
SLASH_EXAMPLE = "application-commands__06__component_or_response__Example_Interaction.json"
COMPONENT_EXAMPLE = "legacy_Message_Components__02__interaction__Sample_Component_Interaction.json"
SELECT_EXAMPLE = "legacy_Message_Components__04__interaction__Select_Menu_Interaction.json"
MESSAGE_EXAMPLE = "application-commands__15__interaction__Example_Interaction.json"  # a resolved message inside

# The ids of the real samples, kept: application and guild from the slash command example.
APP_ID = "775799577604522054"
GUILD_ID = "290926798626357999"
BOT_USER_ID = "775799577604522054"  # a bot user's id is its application's id
CHANNEL_ID = "645027906669510667"  # the sample's channel: where commands are typed
ALERTS_CHANNEL_ID = "645027906669510700"
USER_ID = "53908232506183680"  # Mason, the samples' user
APPROVER_ID = "167348773423415296"  # ian, the other sample user: tests make him the approver
OTHER_ID = "809850198683418695"
CONTENT_TYPE = "application/json"
JSON_HEADERS = {"Content-Type": CONTENT_TYPE}

# gateway opcodes
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE, RESUME, RECONNECT, REQUEST_MEMBERS, INVALID, HELLO, ACK = (
    0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer whose Content-Type is exactly ``application/json`` (no charset)."""
    return web.Response(body=json.dumps(data).encode(), status=status, headers={**JSON_HEADERS, **(headers or {})})


def _iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).isoformat()


@dataclass
class Call:
    """One REST call: ``name`` (a short route name, e.g. ``interaction.callback``), the HTTP method, the
    matched route template, the path, query, the JSON body (``payload_json`` for multipart), attached files
    (``{"name", "filename", "content_type", "bytes"}``), the bot token sent (``Authorization: Bot …``),
    the status answered, and when."""

    name: str
    method: str
    route: str
    path: str
    params: dict[str, str]
    body: Any
    files: list[dict[str, Any]] = field(default_factory=list)
    token: str = ""
    status: int = 200
    match: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


@dataclass
class Frame:
    """One frame the client sent on the gateway: opcode and data."""

    op: int
    d: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class Interaction:
    """What the stand-in knows of an interaction it pushed: when, and what the bot did with it."""

    id: str
    token: str
    type: int
    channel_id: str
    payload: dict[str, Any]
    sent_at: float
    message_id: str | None = None  # the clicked message (components)
    callback: dict[str, Any] | None = None
    callback_at: float | None = None
    original_id: str | None = None  # the message @original refers to

    @property
    def seconds_to_callback(self) -> float | None:
        return None if self.callback_at is None else self.callback_at - self.sent_at


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int | None  # None: always
    pred: Callable[[Call], bool] | None = None


# (method, template, name): the routes, in match order
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/gateway/bot", "gateway.bot"),
    ("GET", "/gateway", "gateway"),
    ("GET", "/users/@me", "users.me"),
    ("POST", "/users/@me/channels", "dm.open"),
    ("GET", "/users/{user_id}", "users.get"),
    ("GET", "/applications/@me", "applications.me"),
    ("GET", "/oauth2/applications/@me", "applications.me"),
    ("GET", "/applications/{app_id}/commands", "commands.get"),
    ("PUT", "/applications/{app_id}/commands", "commands.put"),
    ("POST", "/applications/{app_id}/commands", "commands.post"),
    ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", "guild_commands.get"),
    ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", "guild_commands.put"),
    ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", "guild_commands.post"),
    ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction.callback"),
    ("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", "webhook.get"),
    ("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", "webhook.edit"),
    ("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}", "webhook.delete"),
    ("POST", "/webhooks/{app_id}/{token}", "webhook.followup"),
    ("GET", "/channels/{channel_id}", "channel.get"),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "message.get"),
    ("POST", "/channels/{channel_id}/messages", "message.post"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "message.edit"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "message.delete"),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads", "thread.from_message"),
    ("POST", "/channels/{channel_id}/threads", "thread.create"),
    ("POST", "/channels/{channel_id}/typing", "typing"),
    ("GET", "/guilds/{guild_id}", "guild.get"),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "member.get"),
]


def _compile(template: str) -> re.Pattern[str]:
    rx = re.escape(template)
    rx = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", rx)
    return re.compile(f"^{rx}$")


_COMPILED = [(m, t, n, _compile(t)) for m, t, n in ROUTES]


class DiscordStandIn:
    def __init__(self, *, heartbeat_interval_ms: int = 41250, token: str | None = None,
                 shared_data: Path | str | None = None) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.token = token  # when set, any other bot token is answered 401
        self.calls: list[Call] = []
        self.frames: list[Frame] = []
        self.messages: dict[str, dict[str, Any]] = {}  # id -> message
        self.channels: dict[str, dict[str, Any]] = {}
        self.interactions: dict[str, Interaction] = {}  # interaction id -> what happened to it
        self.commands: dict[str | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> synced commands
        self.users: dict[str, dict[str, Any]] = {}
        self.failures: list[tuple[str, _Failure]] = []  # (route name, failure)
        self.dm_refused: dict[str, str] = {}  # user id -> "open" | "post"
        self.identified = asyncio.Event()
        self.changed = asyncio.Event()
        self.sockets: list[_Socket] = []
        self.port = 0
        self._seq = 0
        self._sf = 0
        self._runner: web.AppRunner | None = None
        self.examples = Path(shared_data) / EXAMPLES if shared_data is not None else None
        self.bot_user = {"id": BOT_USER_ID, "username": "costdna", "discriminator": "0000", "global_name": None,
                         "avatar": None, "bot": True, "verified": True, "flags": 0, "public_flags": 0,
                         "mfa_enabled": False, "email": None}
        for uid, name in ((USER_ID, "Mason"), (APPROVER_ID, "ian"), (OTHER_ID, "VoltyDemo")):
            self.add_user(uid, name)
        self.guild_id = GUILD_ID
        for cid, name in ((CHANNEL_ID, "costs"), (ALERTS_CHANNEL_ID, "cost-alerts")):
            self.add_channel(cid, name)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> DiscordStandIn:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/ws", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for s in list(self.sockets):
            with contextlib.suppress(Exception):
                await s.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> DiscordStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``discord.http.Route.BASE`` must be (``DISCORD_API_URL``)."""
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    # -- the world ---------------------------------------------------------------------------------

    def snowflake(self) -> str:
        self._sf += 1
        return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) + self._sf)

    def add_user(self, user_id: str, username: str) -> dict[str, Any]:
        self.users[user_id] = {"id": user_id, "username": username, "discriminator": "0", "global_name": username,
                               "avatar": None, "public_flags": 0}
        return self.users[user_id]

    def add_channel(self, channel_id: str, name: str, *, type: int = 0, guild_id: str | None = GUILD_ID,
                    **extra: Any) -> dict[str, Any]:
        ch = {"id": channel_id, "type": type, "name": name, "position": len(self.channels), "topic": None,
              "nsfw": False, "parent_id": None, "permission_overwrites": [], "rate_limit_per_user": 0,
              "last_message_id": None, "flags": 0, **extra}
        if guild_id is not None:
            ch["guild_id"] = guild_id
        self.channels[channel_id] = ch
        return ch

    def member(self, user_id: str, roles: list[str] | None = None) -> dict[str, Any]:
        return {"user": self.users.get(user_id) or self.bot_user, "roles": roles or [], "nick": None,
                "avatar": None, "premium_since": None, "joined_at": "2017-03-13T19:19:14.040000+00:00",
                "pending": False, "deaf": False, "mute": False, "flags": 0, "permissions": "2147483647"}

    def guild_payload(self) -> dict[str, Any]:
        everyone = {"id": self.guild_id, "name": "@everyone", "permissions": "2248473465835073", "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        channels = [{k: v for k, v in c.items() if k != "guild_id"}
                    for c in self.channels.values() if c.get("guild_id") == self.guild_id and c["type"] in (0, 2, 4, 5)]
        members = [self.member(BOT_USER_ID)] + [self.member(u) for u in self.users]
        return {"id": self.guild_id, "name": "costdna test guild", "icon": None, "splash": None,
                "discovery_splash": None, "owner_id": USER_ID, "afk_channel_id": None, "afk_timeout": 300,
                "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
                "roles": [everyone], "emojis": [], "stickers": [], "features": [], "mfa_level": 0,
                "application_id": None, "system_channel_id": None, "system_channel_flags": 0,
                "rules_channel_id": None, "vanity_url_code": None, "description": None, "banner": None,
                "premium_tier": 0, "premium_subscription_count": 0, "preferred_locale": "en-US",
                "public_updates_channel_id": None, "nsfw_level": 0, "premium_progress_bar_enabled": False,
                "joined_at": "2021-01-01T00:00:00+00:00", "large": False, "unavailable": False,
                "member_count": len(members), "voice_states": [], "members": members, "channels": channels,
                "threads": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
                "soundboard_sounds": []}

    def application(self) -> dict[str, Any]:
        return {"id": APP_ID, "name": "costdna", "icon": None, "description": "who owns this cost?",
                "rpc_origins": [], "bot_public": False, "bot_require_code_grant": False,
                "terms_of_service_url": None, "privacy_policy_url": None, "owner": self.users[USER_ID],
                "summary": "", "verify_key": "0" * 64, "team": None, "guild_id": None, "primary_sku_id": None,
                "slug": None, "cover_image": None, "flags": 1 << 19, "tags": [], "install_params": None,
                "custom_install_url": None, "redirect_uris": [], "interactions_endpoint_url": None,
                "role_connections_verification_url": None, "approximate_guild_count": 1, "bot": self.bot_user,
                "integration_types_config": {"0": {}}}

    def new_message(self, channel_id: str, body: dict[str, Any], *, author: dict[str, Any] | None = None,
                    flags: int = 0, interaction: Interaction | None = None, files: list[dict[str, Any]] = (),
                    webhook: bool = False) -> dict[str, Any]:
        mid = self.snowflake()
        msg = {"id": mid, "channel_id": channel_id, "author": author or self.bot_user, "content": "",
               "timestamp": _iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
               "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0,
               "flags": flags, "components": []}
        if channel_id in self.channels and self.channels[channel_id].get("guild_id"):
            msg["guild_id"] = self.channels[channel_id]["guild_id"]
        if webhook:
            msg["webhook_id"] = APP_ID
            msg["application_id"] = APP_ID
        if interaction is not None:
            msg["type"] = 20 if interaction.type == 2 else 0
            msg["interaction_metadata"] = {"id": interaction.id, "type": interaction.type,
                                           "user": (interaction.payload.get("member") or {}).get("user")
                                           or interaction.payload.get("user"),
                                           "authorizing_integration_owners": {"0": self.guild_id}}
        self._apply(msg, body, files)
        self.messages[mid] = msg
        return msg

    def _apply(self, msg: dict[str, Any], body: dict[str, Any], files: list[dict[str, Any]] = ()) -> None:
        for k in ("content", "embeds", "components", "tts", "poll"):
            if k in body and body[k] is not None:
                msg[k] = body[k]
        if "flags" in body and body["flags"] is not None:
            msg["flags"] = (msg.get("flags", 0) & 64) | int(body["flags"])
        if "attachments" in body or files:
            atts = []
            by_index = {str(i): f for i, f in enumerate(files)}
            for a in body.get("attachments") or []:
                f = by_index.get(str(a.get("id")))
                if f is None:  # an existing attachment kept
                    atts.extend(x for x in msg.get("attachments", []) if str(x.get("id")) == str(a.get("id")))
                    continue
                atts.append({"id": self.snowflake(), "filename": f["filename"], "size": len(f["bytes"]),
                             "url": f"{self.base}/attachments/{f['filename']}",
                             "proxy_url": f"{self.base}/attachments/{f['filename']}",
                             "content_type": f.get("content_type") or "application/octet-stream"})
            msg["attachments"] = atts

    # -- queries -------------------------------------------------------------------------------------

    def of(self, *names: str, pred: Callable[[Call], bool] | None = None, ok: bool = True) -> list[Call]:
        """Recorded calls to the named routes (answered 2xx unless ``ok=False``)."""
        return [c for c in self.calls if c.name in names and (not ok or c.status < 300) and (pred is None or pred(c))]

    def bot_calls(self) -> list[Call]:
        """Every call but the client's own start-up ones (login, gateway, command sync)."""
        start = ("users.me", "gateway.bot", "gateway", "applications.me", "commands.put", "guild_commands.put",
                 "commands.get", "guild_commands.get")
        return [c for c in self.calls if c.name not in start]

    def in_channel(self, channel_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["channel_id"] == channel_id]

    def dm_channel_of(self, user_id: str) -> str | None:
        return next((cid for cid, c in self.channels.items()
                     if c["type"] == 1 and any(r["id"] == user_id for r in c.get("recipients", []))), None)

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Poll until ``pred()`` is truthy; its value, or AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}; calls: "
                                     f"{[(c.name, c.status) for c in self.calls]}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.05)

    async def answered(self, interaction_id: str, timeout: float = 10.0) -> Interaction:
        """The interaction once the bot has called back (deferred or answered)."""
        it = self.interactions[interaction_id]
        await self.wait_for(lambda: it.callback is not None, timeout, f"the callback of interaction {interaction_id}")
        return it

    # -- scripting failures ------------------------------------------------------------------------

    def fail(self, name: str, status: int, *, message: str = "", code: int = 0, times: int | None = 1,
             headers: dict[str, str] | None = None, pred: Callable[[Call], bool] | None = None,
             body: dict[str, Any] | None = None) -> None:
        """Answer the next ``times`` calls to route ``name`` (None: all) matching ``pred`` with ``status``."""
        self.failures.append((name, _Failure(status, body or {"message": message or f"{status}", "code": code},
                                             headers or {}, times, pred)))

    def rate_limit_once(self, name: str, retry_after: float = 0.0, *, is_global: bool = False,
                        pred: Callable[[Call], bool] | None = None) -> None:
        """The next call to route ``name`` gets 429 with ``retry_after`` (seconds) in the body."""
        self.fail(name, 429, times=1, pred=pred,
                  body={"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
                  headers={"Retry-After": str(max(0, int(retry_after + 0.999))), "Via": "1.1 google",
                           "X-RateLimit-Scope": "global" if is_global else "user"})

    def refuse_dm(self, user_id: str, at: str = "post") -> None:
        """DMs to ``user_id`` are refused with 403 (code 50007), when posting (``at="post"``: what Discord
        does for closed DMs) or already when opening the DM channel (``at="open"``)."""
        assert at in ("open", "post")
        self.dm_refused[user_id] = at

    # -- REST ----------------------------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self.changed.set()

    @staticmethod
    async def _read(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
        if request.content_type.startswith("multipart/"):
            body: Any = {}
            files: list[dict[str, Any]] = []
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":  # type: ignore[union-attr]
                    body = json.loads(data)
                else:
                    files.append({"name": part.name, "filename": part.filename,  # type: ignore[union-attr]
                                  "content_type": part.headers.get("Content-Type"), "bytes": bytes(data)})
            return body, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body, files = await self._read(request)
        token = request.headers.get("Authorization", "").removeprefix("Bot ").strip()
        name, route, match = "unknown", path, {}
        for method, template, rname, rx in _COMPILED:
            m = rx.match(path)
            if m and method == request.method:
                name, route, match = rname, template, m.groupdict()
                break
        call = Call(name, request.method, route, path, dict(request.query), body, files, token, match=match)
        status, answer, headers = self._answer(call)
        call.status = status
        self._record(call)
        if status == 204:
            return web.Response(status=204)
        return _json(answer, status, headers)

    def _scripted(self, call: Call) -> tuple[int, Any, dict[str, str]] | None:
        for i, (name, f) in enumerate(self.failures):
            if name == call.name and (f.pred is None or f.pred(call)):
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        del self.failures[i]
                return f.status, f.body, f.headers
        return None

    def _answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        webhook_auth = call.name.startswith(("webhook.", "interaction."))
        if not webhook_auth and self.token is not None and call.token != self.token:
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        scripted = self._scripted(call)
        if scripted is not None:
            return scripted
        handler = getattr(self, "_r_" + call.name.replace(".", "_"), None)
        if handler is None:
            return 404, {"message": "404: Not Found", "code": 0}, {}
        return handler(call)

    def _r_gateway_bot(self, call: Call) -> Any:
        return 200, {"url": self.gateway_url, "shards": 1,
                     "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000,
                                             "max_concurrency": 1}}, {}

    def _r_gateway(self, call: Call) -> Any:
        return 200, {"url": self.gateway_url}, {}

    def _r_users_me(self, call: Call) -> Any:
        return 200, self.bot_user, {}

    def _r_users_get(self, call: Call) -> Any:
        u = self.users.get(call.match["user_id"])
        return (200, u, {}) if u else (404, {"message": "Unknown User", "code": 10013}, {})

    def _r_applications_me(self, call: Call) -> Any:
        return 200, self.application(), {}

    def _commands(self, guild: str | None, body: Any, replace: bool) -> list[dict[str, Any]]:
        out = [] if replace else list(self.commands.get(guild, []))
        for c in body if isinstance(body, list) else [body]:
            cmd = {"id": self.snowflake(), "application_id": APP_ID, "version": self.snowflake(), "type": 1,
                   "description": "", "options": [], "default_member_permissions": None, "dm_permission": True,
                   "nsfw": False, "integration_types": [0], "contexts": None, **copy.deepcopy(c)}
            if guild is not None:
                cmd["guild_id"] = guild
            out = [o for o in out if o["name"] != cmd["name"]] + [cmd]
        self.commands[guild] = out
        return out

    def _r_commands_get(self, call: Call) -> Any:
        return 200, self.commands.get(None, []), {}

    def _r_commands_put(self, call: Call) -> Any:
        return 200, self._commands(None, call.body or [], True), {}

    def _r_commands_post(self, call: Call) -> Any:
        return 201, self._commands(None, call.body, False)[-1], {}

    def _r_guild_commands_get(self, call: Call) -> Any:
        return 200, self.commands.get(call.match["guild_id"], []), {}

    def _r_guild_commands_put(self, call: Call) -> Any:
        return 200, self._commands(call.match["guild_id"], call.body or [], True), {}

    def _r_guild_commands_post(self, call: Call) -> Any:
        return 201, self._commands(call.match["guild_id"], call.body, False)[-1], {}

    def _r_interaction_callback(self, call: Call) -> Any:
        it = self.interactions.get(call.match["interaction_id"])
        if it is None or it.token != call.match["token"]:
            return 404, {"message": "Unknown interaction", "code": 10062}, {}
        if it.callback is not None:
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}, {}
        body = call.body or {}
        it.callback, it.callback_at = body, call.at
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        resource: dict[str, Any] | None = None
        if kind in (4, 5):  # a message (5: "thinking", loading until edited)
            msg = self.new_message(it.channel_id, data, flags=flags | (128 if kind == 5 else 0), interaction=it,
                                   files=call.files, webhook=True)
            it.original_id = msg["id"]
            resource = {"type": kind, "message": msg}
        elif kind in (6, 7):  # the clicked message (7: updated now)
            it.original_id = it.message_id
            msg = self.messages.get(it.message_id or "")
            if kind == 7 and msg is not None:
                self._apply(msg, data, call.files)
                msg["edited_timestamp"] = _iso()
            if kind == 7 and msg is not None:
                resource = {"type": kind, "message": msg}
        out: dict[str, Any] = {"interaction": {"id": it.id, "type": it.type,
                                               "response_message_id": it.original_id,
                                               "response_message_loading": kind == 5,
                                               "response_message_ephemeral": bool(flags & 64)}}
        if resource is not None:
            out["resource"] = resource
        if call.params.get("with_response") in ("1", "true", "True"):
            return 200, out, {}
        return 204, None, {}

    def _interaction_for_token(self, token: str) -> Interaction | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    def _webhook_message(self, call: Call) -> tuple[Interaction | None, dict[str, Any] | None]:
        it = self._interaction_for_token(call.match["token"])
        if it is None or call.match["app_id"] != APP_ID:
            return None, None
        mid = call.match["message_id"]
        if mid == "@original":
            mid = it.original_id or ""
        return it, self.messages.get(mid)

    def _r_webhook_get(self, call: Call) -> Any:
        _, msg = self._webhook_message(call)
        return (200, msg, {}) if msg else (404, {"message": "Unknown Message", "code": 10008}, {})

    def _r_webhook_edit(self, call: Call) -> Any:
        it, msg = self._webhook_message(call)
        if msg is None:
            return 404, {"message": "Unknown Message", "code": 10008}, {}
        self._apply(msg, call.body or {}, call.files)
        msg["flags"] = msg.get("flags", 0) & ~128  # no longer loading
        msg["edited_timestamp"] = _iso()
        return 200, msg, {}

    def _r_webhook_delete(self, call: Call) -> Any:
        _, msg = self._webhook_message(call)
        if msg is None:
            return 404, {"message": "Unknown Message", "code": 10008}, {}
        self.messages.pop(msg["id"], None)
        return 204, None, {}

    def _r_webhook_followup(self, call: Call) -> Any:
        it = self._interaction_for_token(call.match["token"])
        if it is None or call.match["app_id"] != APP_ID:
            return 404, {"message": "Unknown Webhook", "code": 10015}, {}
        body = call.body or {}
        channel = call.params.get("thread_id") or it.channel_id
        msg = self.new_message(channel, body, flags=int(body.get("flags") or 0), interaction=it, files=call.files,
                               webhook=True)
        if call.params.get("wait") in ("1", "true", "True"):
            return 200, msg, {}
        return 204, None, {}

    def _r_channel_get(self, call: Call) -> Any:
        ch = self.channels.get(call.match["channel_id"])
        return (200, ch, {}) if ch else (404, {"message": "Unknown Channel", "code": 10003}, {})

    def _r_message_get(self, call: Call) -> Any:
        msg = self.messages.get(call.match["message_id"])
        if msg is None or msg["channel_id"] != call.match["channel_id"]:
            return 404, {"message": "Unknown Message", "code": 10008}, {}
        return 200, msg, {}

    def _r_message_post(self, call: Call) -> Any:
        cid = call.match["channel_id"]
        ch = self.channels.get(cid)
        if ch is None:
            return 404, {"message": "Unknown Channel", "code": 10003}, {}
        if ch["type"] == 1:
            user = ch["recipients"][0]["id"]
            if self.dm_refused.get(user) == "post":
                return 403, {"message": "Cannot send messages to this user", "code": 50007}, {}
        body = call.body or {}
        msg = self.new_message(cid, body, flags=int(body.get("flags") or 0), files=call.files)
        ref = body.get("message_reference")
        if ref:
            msg["message_reference"] = {"message_id": ref.get("message_id"), "channel_id": cid,
                                        "guild_id": ch.get("guild_id")}
            msg["type"] = 19
        return 200, msg, {}

    def _r_message_edit(self, call: Call) -> Any:
        msg = self.messages.get(call.match["message_id"])
        if msg is None or msg["channel_id"] != call.match["channel_id"]:
            return 404, {"message": "Unknown Message", "code": 10008}, {}
        if msg["author"]["id"] != BOT_USER_ID:
            return 403, {"message": "Cannot edit a message authored by another user", "code": 50005}, {}
        self._apply(msg, call.body or {}, call.files)
        msg["edited_timestamp"] = _iso()
        return 200, msg, {}

    def _r_message_delete(self, call: Call) -> Any:
        self.messages.pop(call.match["message_id"], None)
        return 204, None, {}

    def _r_dm_open(self, call: Call) -> Any:
        uid = str((call.body or {}).get("recipient_id", ""))
        if uid not in self.users:
            return 400, {"message": "Invalid Recipient(s)", "code": 50033}, {}
        if self.dm_refused.get(uid) == "open":
            return 403, {"message": "Cannot send messages to this user", "code": 50007}, {}
        cid = self.dm_channel_of(uid)
        if cid is None:
            cid = self.snowflake()
            self.add_channel(cid, "", type=1, guild_id=None, recipients=[self.users[uid]])
            self.channels[cid].pop("name", None)
        return 200, self.channels[cid], {}

    def _thread(self, parent: str, body: dict[str, Any], thread_id: str | None = None) -> dict[str, Any]:
        tid = thread_id or self.snowflake()
        kind = int(body.get("type") or 11)
        return self.add_channel(tid, str(body.get("name") or "thread"), type=kind, parent_id=parent,
                                owner_id=BOT_USER_ID, message_count=0, member_count=1,
                                thread_metadata={"archived": False, "auto_archive_duration":
                                                 int(body.get("auto_archive_duration") or 1440),
                                                 "archive_timestamp": _iso(), "locked": False})

    def _r_thread_from_message(self, call: Call) -> Any:
        cid, mid = call.match["channel_id"], call.match["message_id"]
        if cid not in self.channels or mid not in self.messages:
            return 404, {"message": "Unknown Message", "code": 10008}, {}
        thread = self._thread(cid, call.body or {}, thread_id=mid)  # Discord: the thread's id is the message's
        self.messages[mid]["thread"] = thread
        return 201, thread, {}

    def _r_thread_create(self, call: Call) -> Any:
        if call.match["channel_id"] not in self.channels:
            return 404, {"message": "Unknown Channel", "code": 10003}, {}
        return 201, self._thread(call.match["channel_id"], call.body or {}), {}

    def _r_typing(self, call: Call) -> Any:
        return 204, None, {}

    def _r_guild_get(self, call: Call) -> Any:
        return 200, self.guild_payload(), {}

    def _r_member_get(self, call: Call) -> Any:
        uid = call.match["user_id"]
        if uid not in self.users:
            return 404, {"message": "Unknown Member", "code": 10007}, {}
        return 200, self.member(uid), {}

    # -- the gateway ---------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sock = _Socket(ws, zlib_stream=request.query.get("compress") == "zlib-stream",
                       params=dict(request.query))
        self.sockets.append(sock)
        try:
            await sock.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms,
                                                "_trace": ["standin"]}, "s": None, "t": None})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT and msg.type != WSMsgType.BINARY:
                    break
                data = json.loads(msg.data if msg.type == WSMsgType.TEXT else zlib.decompress(msg.data))
                frame = Frame(int(data.get("op", -1)), data.get("d"))
                self.frames.append(frame)
                self.changed.set()
                await self._on_frame(sock, frame)
        finally:
            if sock in self.sockets:
                self.sockets.remove(sock)
        return ws

    async def _on_frame(self, sock: _Socket, frame: Frame) -> None:
        if frame.op == HEARTBEAT:
            await sock.send({"op": ACK, "d": None, "s": None, "t": None})
        elif frame.op == IDENTIFY:
            token = (frame.d or {}).get("token")
            if self.token is not None and token != self.token:
                await sock.ws.close(code=4004, message=b"Authentication failed.")
                return
            sock.session_id = f"standin-{self.snowflake()}"
            sock.identified = True
            ready = {"v": 10, "user": self.bot_user, "guilds": [{"id": self.guild_id, "unavailable": True}],
                     "session_id": sock.session_id, "resume_gateway_url": self.gateway_url,
                     "session_type": "normal", "private_channels": [], "relationships": [],
                     "application": {"id": APP_ID, "flags": 1 << 19}, "_trace": ["standin"]}
            if (frame.d or {}).get("shard") is not None:
                ready["shard"] = frame.d["shard"]
            await self._dispatch_to(sock, "READY", ready)
            await self._dispatch_to(sock, "GUILD_CREATE", self.guild_payload())
            self.identified.set()
        elif frame.op == RESUME:
            sock.identified = True
            await self._dispatch_to(sock, "RESUMED", {"_trace": ["standin"]})
            self.identified.set()
        elif frame.op == REQUEST_MEMBERS:
            d = frame.d or {}
            members = [self.member(u) for u in self.users]
            await self._dispatch_to(sock, "GUILD_MEMBERS_CHUNK", {
                "guild_id": d.get("guild_id", self.guild_id), "members": members, "chunk_index": 0,
                "chunk_count": 1, "not_found": [], "nonce": d.get("nonce")})

    async def _dispatch_to(self, sock: _Socket, event: str, data: Any) -> None:
        self._seq += 1
        await sock.send({"op": DISPATCH, "t": event, "s": self._seq, "d": data})

    async def dispatch(self, event: str, data: Any) -> None:
        """Push a dispatch to every identified connection (waits for one to be identified, up to 10 s)."""
        await asyncio.wait_for(self.identified.wait(), 10)
        for sock in [s for s in self.sockets if s.identified]:
            await self._dispatch_to(sock, event, data)

    async def send_op(self, op: int, d: Any = None) -> None:
        """Push a non-dispatch opcode (RECONNECT, INVALID_SESSION, HEARTBEAT) to every connection."""
        for sock in list(self.sockets):
            await sock.send({"op": op, "d": d, "s": None, "t": None})

    def acks(self) -> int:
        return sum(1 for f in self.frames if f.op == HEARTBEAT)

    # -- events built from the real payloads -------------------------------------------------------

    def _example(self, name: str) -> dict[str, Any]:
        if self.examples is None:
            raise RuntimeError("DiscordStandIn(shared_data=...) is needed to build events from the real payloads")
        return json.loads((self.examples / name).read_text())

    def _base_interaction(self, p: dict[str, Any], *, kind: int, user_id: str, channel_id: str,
                          roles: list[str] | None = None) -> dict[str, Any]:
        user = self.users[user_id]
        ch = self.channels[channel_id]
        p["id"] = self.snowflake()
        p["token"] = f"interaction-token-{p['id']}"
        p["type"] = kind
        p["version"] = 1
        p["application_id"] = APP_ID
        p["guild_id"] = ch.get("guild_id") or self.guild_id
        p["channel_id"] = channel_id
        p["channel"] = {k: v for k, v in ch.items() if k in ("id", "type", "name", "guild_id", "parent_id",
                                                               "position", "topic", "nsfw", "flags",
                                                               "permission_overwrites", "rate_limit_per_user",
                                                               "last_message_id")}
        p["member"] = {**p["member"], "user": dict(user), "roles": roles or [], "permissions": "2147483647",
                       "flags": 0}
        p.setdefault("app_permissions", "442368")
        p.setdefault("locale", "en-US")
        p.setdefault("guild_locale", "en-US")
        p["attachment_size_limit"] = 10 * 1024 * 1024
        p["entitlements"] = []
        p["authorizing_integration_owners"] = {"0": p["guild_id"]}
        p["context"] = 0
        if ch["type"] == 1:  # in a DM: no guild, the user instead of a member
            p.pop("guild_id", None)
            p.pop("guild_locale", None)
            p.pop("member", None)
            p["user"] = dict(user)
            p["channel"] = {"id": channel_id, "type": 1, "recipients": ch.get("recipients", []),
                            "last_message_id": None, "flags": 0}
            p["authorizing_integration_owners"] = {"0": self.guild_id}
            p["context"] = 1
        return p

    async def _push(self, p: dict[str, Any], message_id: str | None = None) -> Interaction:
        it = Interaction(p["id"], p["token"], p["type"], p["channel_id"], p, time.monotonic(), message_id=message_id)
        self.interactions[it.id] = it
        await self.dispatch("INTERACTION_CREATE", p)
        return it

    def command_id(self, name: str, guild_id: str | None = None) -> tuple[str, str | None]:
        """The synced command's id and the guild it was synced to (None: global)."""
        for g in ([guild_id] if guild_id else [self.guild_id]) + [None]:
            for c in self.commands.get(g, []):
                if c["name"] == name:
                    return c["id"], g
        raise AssertionError(f"command {name!r} was never synced; synced: "
                             f"{ {g: [c['name'] for c in cs] for g, cs in self.commands.items()} }")

    def _options(self, command: str, path: list[str], values: dict[str, Any], *,
                 focused: str | None = None) -> list[dict[str, Any]]:
        cid, guild = self.command_id(command)
        spec = next(c for c in self.commands[guild] if c["id"] == cid)
        opts_spec = spec.get("options") or []
        for sub in path:
            s = next((o for o in opts_spec if o["name"] == sub), None)
            assert s is not None, f"/{command} has no subcommand {sub!r}: {[o['name'] for o in opts_spec]}"
            opts_spec = s.get("options") or []
        leaf: list[dict[str, Any]] = []
        for k, v in values.items():
            s = next((o for o in opts_spec if o["name"] == k), None)
            assert s is not None, f"/{command} {' '.join(path)} has no option {k!r}: {[o['name'] for o in opts_spec]}"
            opt = {"type": s["type"], "name": k, "value": v}
            if focused == k:
                opt["focused"] = True
            leaf.append(opt)
        opts = leaf
        for sub in reversed(path):
            # a subcommand group (2) holds a subcommand (1)
            opts = [{"type": 1 if opts is leaf else 2, "name": sub, "options": opts}]
        return opts

    async def slash(self, command: str, *path: str, user_id: str = USER_ID, channel_id: str = CHANNEL_ID,
                    kind: int = 2, focused: str | None = None, **options: Any) -> Interaction:
        """``/command path… option=value…`` as an APPLICATION_COMMAND (``kind=4``: an autocomplete on
        ``focused``), from the real slash command example; the ids are the synced command's."""
        p = self._base_interaction(self._example(SLASH_EXAMPLE), kind=kind, user_id=user_id, channel_id=channel_id)
        cid, guild = self.command_id(command)
        data = {"id": cid, "name": command, "type": 1,
                "options": self._options(command, list(path), options, focused=focused)}
        if guild is not None:
            data["guild_id"] = guild
        resolved = self._resolved(data["options"])
        if resolved:
            data["resolved"] = resolved
        p["data"] = data
        return await self._push(p)

    def _resolved(self, options: list[dict[str, Any]]) -> dict[str, Any]:
        """``resolved`` for user (6), channel (7) and mentionable (9) options, as Discord sends it."""
        out: dict[str, Any] = {}
        for o in options:
            if "options" in o:
                for k, v in self._resolved(o["options"]).items():
                    out.setdefault(k, {}).update(v)
                continue
            v = str(o.get("value", ""))
            if o.get("type") in (6, 9) and v in self.users:
                out.setdefault("users", {})[v] = self.users[v]
                out.setdefault("members", {})[v] = {k: x for k, x in self.member(v).items() if k != "user"}
            elif o.get("type") == 7 and v in self.channels:
                ch = self.channels[v]
                out.setdefault("channels", {})[v] = {"id": v, "type": ch["type"], "name": ch.get("name", ""),
                                                     "permissions": "2147483647", "parent_id": ch.get("parent_id"),
                                                     "guild_id": ch.get("guild_id")}
        return out

    async def autocomplete(self, command: str, *path: str, focused: str, **options: Any) -> Interaction:
        return await self.slash(command, *path, kind=4, focused=focused, **options)

    async def click(self, custom_id: str, message_id: str, *, user_id: str = USER_ID,
                    values: list[str] | None = None, component_type: int | None = None,
                    message: dict[str, Any] | None = None) -> Interaction:
        """A click on a button (``values``: a select) of the stored message ``message_id``, from the real
        component interaction example. ``message``: the message as the clicker saw it (default: as stored
        now); Discord sends it with the click, and discord.py dispatches a dynamic item only when the clicked
        custom_id is among its components (see :func:`with_button`)."""
        msg = message if message is not None else self.messages[message_id]
        example = COMPONENT_EXAMPLE if values is None else SELECT_EXAMPLE
        p = self._base_interaction(self._example(example), kind=3, user_id=user_id, channel_id=msg["channel_id"])
        p["message"] = copy.deepcopy(msg)
        p["data"] = {"custom_id": custom_id, "component_type": component_type or (2 if values is None else 3)}
        if values is not None:
            p["data"]["values"] = list(values)
        return await self._push(p, message_id=message_id)

    async def select(self, custom_id: str, message_id: str, values: list[str], **kw: Any) -> Interaction:
        return await self.click(custom_id, message_id, values=values, **kw)

    async def mention(self, text: str, *, user_id: str = USER_ID, channel_id: str = CHANNEL_ID) -> dict[str, Any]:
        """A MESSAGE_CREATE of ``<@bot> text`` by ``user_id``, from the real message inside the message
        command example. The message is stored; returns it."""
        example = self._example(MESSAGE_EXAMPLE)
        m = copy.deepcopy(next(iter(example["data"]["resolved"]["messages"].values())))
        m["id"] = self.snowflake()
        m["channel_id"] = channel_id
        m["guild_id"] = self.channels[channel_id].get("guild_id") or self.guild_id
        m["author"] = dict(self.users[user_id])
        m["member"] = {k: v for k, v in self.member(user_id).items() if k != "user"}
        m["content"] = f"<@{BOT_USER_ID}> {text}"
        m["mentions"] = [{**self.bot_user, "member": {k: v for k, v in self.member(BOT_USER_ID).items()
                                                      if k != "user"}}]
        m["timestamp"] = _iso()
        self.messages[m["id"]] = m
        await self.dispatch("MESSAGE_CREATE", m)
        return m


def with_button(message: dict[str, Any], custom_id: str, label: str = "forged") -> dict[str, Any]:
    """A copy of ``message`` with one more button (a tampered message, as a forged click would carry)."""
    m = copy.deepcopy(message)
    rows = m.setdefault("components", [])
    rows.append({"type": 1, "components": [{"type": 2, "style": 1, "label": label, "custom_id": custom_id}]})
    return m


class _Socket:
    def __init__(self, ws: web.WebSocketResponse, *, zlib_stream: bool, params: dict[str, str]) -> None:
        self.ws = ws
        self.params = params
        self.zlib = zlib.compressobj() if zlib_stream else None
        self.identified = False
        self.session_id = ""
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload)
        async with self.lock:
            if self.ws.closed:
                return
            if self.zlib is not None:  # one zlib stream per connection, each message ends in a sync flush
                await self.ws.send_bytes(self.zlib.compress(data.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH))
            else:
                await self.ws.send_str(data)


def guard_discord_globals(monkeypatch: Any) -> None:
    """Restore ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` after the test, whoever sets them
    (``bot.discord.configure_api`` / ``follow_gateway`` set these process-wide class attributes)."""
    import discord.gateway
    import discord.http

    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


def point_discord_at(standin: DiscordStandIn, monkeypatch: Any) -> None:
    """Point discord.py at the stand-in: REST (``Route.BASE``) and the gateway a plain ``Client``
    connects to (``DiscordWebSocket.DEFAULT_GATEWAY``; it never asks ``GET /gateway/bot``)."""
    import discord.gateway
    import discord.http
    import yarl

    monkeypatch.setattr(discord.http.Route, "BASE", standin.api_url)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(standin.gateway_url))


# ------------------------------------------------------------------------------------------------------
# What Discord would refuse in a message (discord.py checks none of it).

LIMITS = dict(content=2000, embeds=10, title=256, description=4096, fields=25, field_name=256, field_value=1024,
              footer=2048, author=256, total=6000, rows=5, per_row=5, custom_id=100, label=80)


def check_message(body: dict[str, Any]) -> list[str]:
    """Problems with a message body (as sent, or as stored): Discord's limits on content, embeds
    (each checked with ``len(discord.Embed.from_dict(e))`` too) and components."""
    import discord

    problems: list[str] = []
    content = body.get("content") or ""
    if len(content) > LIMITS["content"]:
        problems.append(f"content: {len(content)} > 2000")
    embeds = body.get("embeds") or []
    if len(embeds) > LIMITS["embeds"]:
        problems.append(f"{len(embeds)} embeds > 10")
    total = 0
    for i, e in enumerate(embeds):
        where = f"embeds[{i}]"
        if len(e.get("title") or "") > LIMITS["title"]:
            problems.append(f"{where}.title > 256")
        if len(e.get("description") or "") > LIMITS["description"]:
            problems.append(f"{where}.description > 4096")
        fields = e.get("fields") or []
        if len(fields) > LIMITS["fields"]:
            problems.append(f"{where}: {len(fields)} fields > 25")
        for j, f in enumerate(fields):
            if not f.get("name") or not f.get("value"):
                problems.append(f"{where}.fields[{j}]: empty name or value")
            if len(f.get("name") or "") > LIMITS["field_name"]:
                problems.append(f"{where}.fields[{j}].name > 256")
            if len(f.get("value") or "") > LIMITS["field_value"]:
                problems.append(f"{where}.fields[{j}].value > 1024")
        if len((e.get("footer") or {}).get("text") or "") > LIMITS["footer"]:
            problems.append(f"{where}.footer > 2048")
        if len((e.get("author") or {}).get("name") or "") > LIMITS["author"]:
            problems.append(f"{where}.author > 256")
        n = len(discord.Embed.from_dict(e))
        if n == 0 and not e.get("image") and not e.get("thumbnail"):
            problems.append(f"{where}: empty")
        total += n
    if total > LIMITS["total"]:
        problems.append(f"embeds: {total} characters > 6000")
    rows = body.get("components") or []
    if len(rows) > LIMITS["rows"]:
        problems.append(f"{len(rows)} rows > 5")
    for i, row in enumerate(rows):
        if row.get("type") != 1:
            continue
        items = row.get("components") or []
        if len(items) > LIMITS["per_row"] or not items:
            problems.append(f"row {i}: {len(items)} components")
        if any(c.get("type") != 2 for c in items) and len(items) > 1:
            problems.append(f"row {i}: a select shares its row")
        for c in items:
            cid = c.get("custom_id")
            if c.get("type") == 2 and c.get("style") == 5:
                if not c.get("url"):
                    problems.append(f"row {i}: a link button without url")
                continue
            if not cid or len(cid) > LIMITS["custom_id"]:
                problems.append(f"row {i}: custom_id {cid!r} missing or > 100")
            if len(c.get("label") or "") > LIMITS["label"]:
                problems.append(f"row {i}: label > 80")
    return problems

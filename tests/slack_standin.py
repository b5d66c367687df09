"""A local stand-in for the Slack Web API (and for response_url posts), for tests and benchmarks.

An aiohttp server on 127.0.0.1 (a free port) that records every call -- method name, parsed body
(form or JSON; ``blocks`` / ``view`` / ``attachments`` given as JSON strings are decoded), the token --
and answers like Slack does for the methods costdna uses: ``auth.test``, ``chat.postMessage`` (``ts``
increasing), ``chat.update``, ``chat.postEphemeral``, ``views.publish``, ``oauth.v2.access``,
``conversations.open`` (a DM id ``D<user>``), ``users.lookupByEmail`` (from ``users_by_email``, else
``users_not_found``), the three calls of ``files_upload_v2`` (``files.getUploadURLExternal`` hands out an
upload URL on the stand-in itself, ``POST /upload/<file id>`` receives the raw bytes -- recorded as the
method ``upload`` and kept in ``uploads`` -- and ``files.completeUploadExternal``), and
``POST /response/<anything>`` for response URLs. ``rate_limit_once(method, retry_after)`` makes the next
call of a method answer 429 with ``Retry-After``. Point ``SLACK_API_URL`` at ``standin.api_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

TEAM_ID = "T111"
BOT_USER_ID = "UBOT111"
BOT_ID = "BBOT111"
APP_ID = "A111"
APPROVER_ID = "UAPPROVER1"  # tests configure this user as the approver (COSTDNA_APPROVERS)
JSON_FIELDS = ("blocks", "view", "attachments", "metadata")


@dataclass
class Call:
    method: str  # Web API method, or "response_url"
    body: dict[str, Any]
    token: str = ""
    status: int = 200
    path: str = ""
    at: float = field(default_factory=time.monotonic)


class SlackStandIn:
    def __init__(self, team_id: str = TEAM_ID, bot_user_id: str = BOT_USER_ID, bot_id: str = BOT_ID) -> None:
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        self.calls: list[Call] = []
        self.limited: dict[str, int] = {}  # method -> Retry-After seconds, for its next call only
        self.errors: dict[str, str] = {}  # method -> error code answered (ok: false) on every call
        self._ts = 0
        self._files = 0
        self.users_by_email: dict[str, str] = {}  # e-mail -> user id, for users.lookupByEmail
        self.uploads: dict[str, bytes] = {}  # file id -> the bytes POSTed to its upload URL
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> SlackStandIn:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # users.lookupByEmail is a GET
        app.router.add_post("/response/{tail:.*}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> SlackStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str = "x") -> str:
        return f"{self.base}/response/{name}"

    # -- test controls and queries -----------------------------------------------------------------

    def rate_limit_once(self, method: str, retry_after: int = 0) -> None:
        self.limited[method] = retry_after

    def of(self, method: str, pred: Callable[[Call], bool] | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.status == 200 and (pred is None or pred(c))]

    def web_api_calls(self) -> list[Call]:
        """Every call but auth.test (which Bolt makes on its own)."""
        return [c for c in self.calls if c.method != "auth.test"]

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Poll until ``pred()`` is truthy; its value, or AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}; calls: "
                                     f"{[c.method for c in self.calls]}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.05)

    # -- handlers ----------------------------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        query = dict(request.query)  # the SDK sends some methods' arguments as query parameters
        raw = await request.text() if request.method == "POST" else ""
        if not raw:
            return query
        if request.content_type == "application/json":
            body = json.loads(raw)
        else:
            body = dict(parse_qsl(raw, keep_blank_values=True))
        if isinstance(body, dict):
            body = {**query, **body}
        for k in JSON_FIELDS:
            if isinstance(body.get(k), str):
                with contextlib.suppress(ValueError):
                    body[k] = json.loads(body[k])
        return body

    def _next_ts(self) -> str:
        self._ts += 1
        return f"{1700000000 + self._ts}.{self._ts:06d}"

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self.changed.set()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._body(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or str(body.get("token", ""))
        if method in self.limited:
            retry_after = self.limited.pop(method)
            self._record(Call(method, body, token, status=429, path=request.path))
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(retry_after)})
        self._record(Call(method, body, token, path=request.path))
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        return web.json_response(self._answer(method, body))

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "costdna",
                    "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                    "is_enterprise_install": False}
        if method == "chat.postMessage":
            ts = self._next_ts()
            return {"ok": True, "channel": body.get("channel"), "ts": ts,
                    "message": {"type": "message", "text": body.get("text", ""), "ts": ts, "bot_id": self.bot_id}}
        if method == "chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts"), "text": body.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "views.publish":
            return {"ok": True, "view": {"id": "V111", "type": "home", **(body.get("view") or {})}}
        if method == "oauth.v2.access":
            return {"ok": True, "app_id": APP_ID, "authed_user": {"id": "W111"}, "scope": "commands,chat:write",
                    "token_type": "bot", "access_token": "xoxb-installed-secret-token",
                    "bot_user_id": self.bot_user_id, "team": {"id": self.team_id, "name": "Test"},
                    "enterprise": None, "is_enterprise_install": False}
        if method == "conversations.open":
            users = str(body.get("users") or "")
            if not users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "channel": {"id": "D" + users.split(",")[0]}}
        if method == "users.lookupByEmail":
            email = str(body.get("email") or "").lower()
            uid = {k.lower(): v for k, v in self.users_by_email.items()}.get(email)
            if uid is None:
                return {"ok": False, "error": "users_not_found"}
            return {"ok": True, "user": {"id": uid, "team_id": self.team_id, "profile": {"email": email}}}
        if method == "files.getUploadURLExternal":
            self._files += 1
            file_id = f"F{self._files:06d}"
            return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = body.get("files")
            if isinstance(files, str):
                with contextlib.suppress(ValueError):
                    files = json.loads(files)
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title") or "", "name": f.get("id")}
                                          for f in (files or []) if isinstance(f, dict)]}
        if method == "bots.info":
            return {"ok": True, "bot": {"id": self.bot_id, "app_id": APP_ID, "user_id": self.bot_user_id}}
        return {"ok": False, "error": "unknown_method"}

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        file_id = request.match_info["file_id"]
        self.uploads[file_id] = data
        self._record(Call("upload", {"file_id": file_id, "length": len(data)}, path=request.path))
        return web.Response(text=f"OK - {len(data)}")

    def uploaded(self) -> list[dict[str, Any]]:
        """Completed uploads: ``{"file_id", "channel_id", "thread_ts", "bytes"}`` for each file shared."""
        out = []
        for c in self.of("files.completeUploadExternal"):
            files = c.body.get("files")
            if isinstance(files, str):
                with contextlib.suppress(ValueError):
                    files = json.loads(files)
            for f in files or []:
                fid = f.get("id") if isinstance(f, dict) else None
                out.append({"file_id": fid, "channel_id": c.body.get("channel_id"),
                            "thread_ts": c.body.get("thread_ts"), "bytes": self.uploads.get(fid or "", b"")})
        return out

    async def _response_url(self, request: web.Request) -> web.Response:
        self._record(Call("response_url", await self._body(request), path=request.path))
        return web.json_response({"ok": True})


# ------------------------------------------------------------------------------------------------------
# Driving the real web application like Slack does: signed requests shaped like Bolt's own fixtures.

PAYLOADS = "slack/bolt-payloads"
SLASH_FIXTURE = "scenario_tests_async__test_slash_command__slash_command_body.txt"
ACTIONS_FIXTURE = "scenario_tests_async__test_block_actions__body.json"
MENTION_FIXTURE = "scenario_tests_async__test_events__app_mention_body.json"


def sign(secret: str, body: str, ts: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for ``body`` (``ts``: the request timestamp, default now)."""
    import hashlib
    import hmac

    ts = int(time.time()) if ts is None else ts
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


class Payloads:
    """Bodies built from the real fixtures in ``shared/data/slack/bolt-payloads``; only the fields a
    test needs are changed."""

    def __init__(self, shared_data: Any, standin: SlackStandIn) -> None:
        from pathlib import Path

        root = Path(shared_data) / PAYLOADS
        self.slash = dict(parse_qsl((root / SLASH_FIXTURE).read_text().strip(), keep_blank_values=True))
        self.actions = json.loads((root / ACTIONS_FIXTURE).read_text())
        self.mention = json.loads((root / MENTION_FIXTURE).read_text())
        self.standin = standin
        self.n = 0

    def command(self, text: str, *, user_id: str = "W111", user_name: str = "primary-owner",
                channel_id: str = "C111", team_id: str = TEAM_ID) -> str:
        from urllib.parse import urlencode

        self.n += 1
        body = {**self.slash, "command": "/costdna", "text": text, "user_id": user_id, "user_name": user_name,
                "channel_id": channel_id, "team_id": team_id,
                "response_url": self.standin.response_url(f"commands/{self.n}"), "trigger_id": f"{self.n}.111.xxx"}
        return urlencode(body)

    def click(self, action_id: str, value: str | None, *, user_id: str = "W111", channel_id: str = "C111",
              message_ts: str = "111.222", selected: str | None = None, ephemeral: bool = False,
              team_id: str = TEAM_ID) -> str:
        from urllib.parse import urlencode

        self.n += 1
        p = json.loads(json.dumps(self.actions))
        p["user"] = {**p["user"], "id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                     "team_id": team_id}
        p["team"] = {**p["team"], "id": team_id}
        p["container"] = {**p["container"], "message_ts": message_ts, "channel_id": channel_id,
                          "is_ephemeral": ephemeral}
        p["channel"] = {**p["channel"], "id": channel_id}
        p["response_url"] = self.standin.response_url(f"actions/{self.n}")
        action = {**p["actions"][0], "action_id": action_id, "action_ts": f"{time.time():.6f}"}
        if selected is not None:
            action.pop("value", None)
            action.update(type="static_select",
                          selected_option={"text": {"type": "plain_text", "text": selected}, "value": selected})
        else:
            action["value"] = value
        p["actions"] = [action]
        return urlencode({"payload": json.dumps(p)})

    def app_mention(self, text: str, *, event_id: str, user: str = "W222", channel: str = "C111",
                    ts: str = "1595926230.009600", team_id: str = TEAM_ID) -> str:
        p = json.loads(json.dumps(self.mention))
        p["team_id"] = team_id
        p["event"] = {**p["event"], "text": f"<@{BOT_USER_ID}> {text}", "user": user, "channel": channel,
                      "ts": ts, "event_ts": ts, "team": team_id}
        p["event_id"] = event_id
        p["authorizations"] = [{"enterprise_id": None, "team_id": team_id, "user_id": BOT_USER_ID,
                                "is_bot": True, "is_enterprise_install": False}]
        return json.dumps(p)

    def home_opened(self, user: str = "W111", team_id: str = TEAM_ID, event_id: str = "EvHome1") -> str:
        p = json.loads(json.dumps(self.mention))
        p["team_id"] = team_id
        p["event"] = {"type": "app_home_opened", "user": user, "channel": "D111", "tab": "home",
                      "event_ts": f"{time.time():.6f}"}
        p["event_id"] = event_id
        return json.dumps(p)


class SlackClient:
    """Posts signed requests to the app's ``/slack/events``; returns (status, text, seconds)."""

    def __init__(self, url: str, secret: str) -> None:
        import aiohttp

        self.url, self.secret = url, secret
        self.http = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.http.close()

    async def post(self, body: str, *, json_body: bool = False, ts: int | None = None, secret: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, str, float]:
        h = {"Content-Type": "application/json" if json_body else "application/x-www-form-urlencoded",
             **sign(secret or self.secret, body, ts), **(headers or {})}
        t0 = time.perf_counter()
        async with self.http.post(self.url, data=body.encode(), headers=h) as r:
            text = await r.text()
            return r.status, text, time.perf_counter() - t0


def check_blocks(msg: dict[str, Any]) -> list[str]:
    """Problems with a posted/updated message's blocks: ``Block.parse`` + ``validate_json`` on every
    block and child element, and ``bot.slack.render.check_message``."""
    from slack_sdk.models.blocks import Block

    from bot.slack.render import check_message, validate_deep

    problems: list[str] = []
    for i, b in enumerate(msg.get("blocks") or []):
        block = Block.parse(b)
        if block is None:
            problems.append(f"blocks[{i}]: not parsed")
            continue
        try:
            validate_deep(block)
        except Exception as e:
            problems.append(f"blocks[{i}]: {e}")
    if "blocks" in msg:
        problems.extend(check_message({"text": msg.get("text", ""), "blocks": msg["blocks"]}))
    return problems


async def serve(app: Any) -> tuple[Any, str]:
    """Run an aiohttp application on a free port of 127.0.0.1: (runner to clean up, base URL)."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class RunningBot:
    settings: Any  # config.settings.Settings
    runner: Any  # aiohttp AppRunner: clean up with ``await runner.cleanup()``
    db: Any  # storage.db.Database of the running app
    client: SlackClient  # signs and posts to its /slack/events


async def start_bot(root: Any, standin: SlackStandIn, secret: str, *, token: str, account: str,
                    options: dict[str, Any], job_timeout: int) -> RunningBot:
    """The real web app with Slack mounted (single workspace, SQLite under ``root``, in-process jobs)
    talking to ``standin``, with one synthetic account: what the e2e tests and the latency benchmark run."""
    from bot.web import DB_KEY, make_app
    from config.settings import Settings
    from storage import repo

    settings = Settings(data_dir=root / "data", database_url=f"sqlite+aiosqlite:///{root / 'costdna.db'}",
                        redis_url=None, workers=1, job_timeout=job_timeout, slack_bot_token=token,
                        slack_signing_secret=secret, slack_client_id=None, slack_client_secret=None,
                        slack_api_url=standin.api_url, approvers=APPROVER_ID)
    app = make_app(settings)
    runner, base = await serve(app)
    db = app[DB_KEY]
    async with db.session() as s:
        await repo.add_account(s, account, "synthetic", options=options, actor="test")
    return RunningBot(settings, runner, db, SlackClient(f"{base}/slack/events", secret))

"""The web process: an aiohttp application every chat adapter mounts its routes on.

For now it serves ``GET /healthz`` (database and, when configured, Redis reachable: 200, else 503, for
load balancers and ``Procfile`` supervisors) and ``GET /status`` (what ``costdna status --json``
prints, behind a bearer token). The Slack adapter adds ``/slack/events`` and the OAuth routes to the same application.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.appkeys import DB_KEY, SETTINGS_KEY
from config.settings import Settings

log = logging.getLogger("costdna.web")


async def healthz(request: web.Request) -> web.Response:
    from sqlalchemy import text

    checks: dict[str, Any] = {}
    ok = True
    try:
        async with request.app[DB_KEY].session() as s:
            await asyncio.wait_for(s.execute(text("SELECT 1")), 3)
        checks["database"] = "ok"
    except Exception as e:
        ok, checks["database"] = False, f"{type(e).__name__}"
    settings = request.app[SETTINGS_KEY]
    if settings.redis_url:
        import redis.asyncio as redis

        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3)
        try:
            await client.ping()
            checks["redis"] = "ok"
        except Exception as e:
            ok, checks["redis"] = False, f"{type(e).__name__}"
        finally:
            await client.aclose()
    return web.json_response({"ok": ok, **checks}, status=200 if ok else 503)


async def status(request: web.Request) -> web.Response:
    """Account names and scan errors are not for the internet: a bearer token (``COSTDNA_API_TOKEN``)
    is required, and without one configured the endpoint is off."""
    import hmac

    from storage import repo

    token = request.app[SETTINGS_KEY].api_token
    if token is None:
        return web.json_response({"error": "set COSTDNA_API_TOKEN to enable /status"}, status=403)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return web.json_response({"error": "a valid bearer token is required"}, status=401)

    async with request.app[DB_KEY].session() as s:
        report = await repo.status_report(s)
    return web.json_response(report, dumps=lambda o: __import__("json").dumps(o, default=str))


def make_app(settings: Settings, slack: str = "http") -> web.Application:
    """The application; the database is opened (and migrated) on start-up and closed on clean-up.

    ``slack``: ``"http"`` mounts the Slack app at ``/slack/events`` (and the OAuth routes) when the
    settings configure Slack, ``"socket"`` connects it over Socket Mode instead, ``"off"`` leaves it out.
    """
    from storage.db import Database

    app = web.Application()
    app[SETTINGS_KEY] = settings

    async def database(app: web.Application):  # type: ignore[no-untyped-def]
        app[DB_KEY] = await Database(settings.db_url()).init()
        yield
        await app[DB_KEY].close()

    app.cleanup_ctx.append(database)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    if slack != "off":
        from bot.slack.server import mount_slack

        mount_slack(app, settings, socket=slack == "socket")  # after the database: it uses it
    return app

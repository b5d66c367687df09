"""Serving the Slack app: on the web process's aiohttp application, or over Socket Mode.

``mount_slack(app, settings)`` adds ``POST /slack/events`` (slash commands, interactivity and the
Events API all arrive there) and, in OAuth mode, ``GET /slack/install`` and
``GET /slack/oauth_redirect``. With ``socket=True`` no Slack route is added: the app connects out to
Slack with ``SLACK_APP_TOKEN`` (no public URL needed) while the web application keeps serving
``/healthz`` and ``/status``.

On start-up it builds the handlers' :class:`~handlers.context.Services` over the web process's
database and a job queue: arq when ``REDIS_URL`` is set (the workers run the jobs and update Slack),
otherwise an in-process runner whose notifier is a :class:`~bot.slack.notify.SlackNotifier`, so the
messages showing a scan or a change set follow the job from this process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.slack import missing_settings, slack_mode

log = logging.getLogger("costdna.slack")
SLACK_APP_KEY = web.AppKey("slack_app", object)  # the Bolt AsyncApp
SLACK_SERVICES_KEY = web.AppKey("slack_services", object)  # handlers.context.Services
EVENTS_PATH = "/slack/events"
QUEUE_CLOSE_TIMEOUT_S = 10


def configured(settings: Any, socket: bool = False) -> bool:
    return not missing_settings(settings, socket) if socket else slack_mode(settings) is not None


def mount_slack(app: web.Application, settings: Any, *, socket: bool = False) -> bool:
    """Mount Slack on ``app`` when the settings allow it; False (and a log line) when they do not."""
    if not configured(settings, socket):
        log.warning("Slack is not configured (missing %s): serving /healthz and /status only",
                    ", ".join(missing_settings(settings, socket)))
        return False
    app.cleanup_ctx.append(functools.partial(_slack_context, settings=settings, socket=socket))
    if not socket:
        app.router.add_post(EVENTS_PATH, events)
        if slack_mode(settings) == "oauth":
            app.router.add_get("/slack/install", oauth_install)
            app.router.add_get("/slack/oauth_redirect", oauth_redirect)
    return True


async def events(request: web.Request) -> web.Response:
    bolt = request.app[SLACK_APP_KEY]
    return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))


async def oauth_install(request: web.Request) -> web.Response:
    flow = request.app[SLACK_APP_KEY].oauth_flow
    return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))


async def oauth_redirect(request: web.Request) -> web.Response:
    flow = request.app[SLACK_APP_KEY].oauth_flow
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


async def _slack_context(app: web.Application, *, settings: Any, socket: bool) -> AsyncIterator[None]:
    """Runs after the database context (``bot.web.make_app``): Bolt app, queue, notifier, socket."""
    import aiohttp

    from bot.appkeys import DB_KEY
    from bot.slack.app import _secret, build_slack_app, make_client
    from bot.slack.notify import notifier_for
    from handlers.context import Services
    from jobs.notify import Fanout, log_notifier
    from jobs.queue import ArqQueue, open_queue

    db = app[DB_KEY]
    session = aiohttp.ClientSession()  # one connection pool for every Web API call of this process
    single = slack_mode(settings) == "single" or socket
    client = make_client(settings, token=_secret(settings.slack_bot_token) if single else None, session=session)
    svc = Services(db=db, queue=None, settings=settings)
    bolt = build_slack_app(svc, settings, client=client, socket=socket)
    if settings.redis_url:  # the workers run the jobs (and their notifiers update Slack)
        svc.queue = await ArqQueue.connect(settings.redis_url, settings.queue_name)
    else:
        notify = Fanout(log_notifier)
        notifier = notifier_for(settings, db, client=client)
        if notifier is not None:
            notify.add(notifier)
        svc.queue = await open_queue(settings, {"settings": settings, "db": db, "notify": notify})
    app[SLACK_APP_KEY] = bolt
    app[SLACK_SERVICES_KEY] = svc
    handler = None
    if socket:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(bolt, _secret(settings.slack_app_token))
        await handler.connect_async()
        log.info("Slack: connected over Socket Mode")
    else:
        log.info("Slack: listening on %s (%s mode)", EVENTS_PATH, slack_mode(settings))
    try:
        yield
    finally:
        if handler is not None:
            await handler.close_async()
        try:
            await asyncio.wait_for(svc.queue.close(), QUEUE_CLOSE_TIMEOUT_S)
        except TimeoutError:
            # In-process jobs still running (or deferred, like a debounced retrain) are cancelled; a scan
            # left "running" is failed as interrupted on the next request for its account.
            active = list(getattr(getattr(svc.queue, "runner", None), "active", {}).values())
            for task in active:
                task.cancel()
            await asyncio.gather(*active, return_exceptions=True)
            log.warning("%d in-process jobs cancelled at shutdown", len(active))
        await session.close()

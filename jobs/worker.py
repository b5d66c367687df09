"""arq worker: ``costdna worker`` (or ``arq jobs.worker.WorkerSettings``) runs the job functions
against ``REDIS_URL``; any number of workers on any number of machines share the queue.

Results are not kept (``keep_result = 0``): the database holds every outcome, and a job id is free
again as soon as its job ends, so the next scan of an account can be enqueued at once.

A worker that dies mid-job (SIGKILL, OOM, deploy) holds nothing up: each job runs under a lease that its
worker renews every ``job_heartbeat_s``; another worker takes the job ``job_lease_s`` after the last
renewal (see jobs.lease).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from arq.connections import RedisSettings

from config.settings import Settings, get_settings
from jobs.notify import Fanout, log_notifier
from jobs.queue import ArqQueue
from jobs.registry import functions
from jobs.schedule import cron_jobs


async def job_context(settings: Settings, notify: Any = None,
                      notifiers: Sequence[Callable[[dict[str, Any]], Any]] = ()) -> dict[str, Any]:
    """What every task finds in ``ctx``: the settings, a migrated database and a notifier.

    ``notifiers``: factories called with that ``ctx`` (settings, db) once it exists; each notifier one
    returns (None: nothing) is added to the fanout, e.g. the Slack adapter's message updater.
    """
    from storage.db import Database

    ctx = {"settings": settings, "db": await Database(settings.db_url()).init(),
           "notify": notify or Fanout(log_notifier)}
    for make in notifiers:
        extra = make(ctx)
        if extra is not None:
            if not isinstance(ctx["notify"], Fanout):
                ctx["notify"] = Fanout(ctx["notify"])
            ctx["notify"].add(extra)
    return ctx


async def startup(ctx: dict[str, Any], settings: Settings | None = None,
                  notifiers: Sequence[Callable[[dict[str, Any]], Any]] = ()) -> None:
    settings = settings or get_settings()
    ctx.update(await job_context(settings, notifiers=notifiers))
    ctx["queue"] = ArqQueue(ctx["redis"], settings.queue_name)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "db" in ctx:
        await ctx["db"].close()


def worker_settings(settings: Settings, notifiers: Sequence[Callable[[dict[str, Any]], Any]] = ()) -> dict[str, Any]:
    """arq's worker settings; ``notifiers`` as for :func:`job_context`."""
    return {
        "functions": functions(settings),
        "cron_jobs": cron_jobs(settings),  # watch hourly at :05, digest_due at :00 (jobs.schedule)
        # the settings given, not the environment's
        "on_startup": functools.partial(startup, settings=settings, notifiers=tuple(notifiers)),
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379"),
        "queue_name": settings.queue_name,
        "keep_result": 0,
        "max_jobs": 4,
        "job_timeout": settings.job_timeout,
        "max_tries": settings.job_tries,
        "health_check_interval": 30,
    }


class WorkerSettings:
    """For ``arq jobs.worker.WorkerSettings``; ``costdna worker`` builds the same from the environment."""

    locals().update(worker_settings(get_settings()))

"""The hourly schedule: the watch at minute 5 of every hour, the digest check at minute 0.

Two ways to run it, with the same task functions:

- under arq, as ``cron_jobs`` (``cron_jobs(settings)``, added to the worker settings): every worker
  knows the schedule, and arq's unique job ids (``cron:watch:<ms>``) make one of them run each tick;
- in process (``costdna serve`` without Redis), as a :class:`Scheduler`: an asyncio task that sleeps to
  the next tick and runs the due jobs. Its clock and sleep are injectable, so tests drive it with a
  fake clock instead of waiting for wall-clock hours.

A tick that was missed (the process was asleep or busy) runs once when the scheduler wakes, not once
per missed hour: the watch reads whatever files are new, and the digest check looks at the current hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("costdna.jobs.schedule")

WATCH_MINUTE = 5
DIGEST_MINUTE = 0


@dataclass(frozen=True)
class Entry:
    """One job of the hourly schedule: ``task(ctx)`` at ``minute`` past every hour."""

    name: str  # the task's name (jobs.worker.functions)
    minute: int
    timeout_s: float = 1800
    pass_time: bool = False  # called as task(ctx, scheduled_epoch): the hour it was due, not when it woke

    def next_after(self, t: float) -> float:
        """The first run time strictly after epoch ``t``."""
        hour = int(t // 3600) * 3600
        at = hour + self.minute * 60
        return at if at > t else at + 3600


SCHEDULE: tuple[Entry, ...] = (Entry("watch", WATCH_MINUTE), Entry("digest_due", DIGEST_MINUTE, 600, pass_time=True))


def tasks() -> dict[str, Callable[..., Awaitable[Any]]]:
    """name -> task function of the scheduled jobs."""
    from jobs.digest import digest_due
    from jobs.watch import watch

    return {"watch": watch, "digest_due": digest_due}


def cron_jobs(settings: Any) -> list[Any]:
    """arq ``CronJob`` s of the schedule, each under a lease like the queued jobs. Named ``cron:<task>``:
    arq registers crons beside the functions by name, and ``watch`` / ``digest_due`` stay enqueueable
    with arguments (``watch(account_id)``) under their own names."""
    from arq.cron import cron

    from jobs.lease import leased

    fns = tasks()
    out = []
    for e in SCHEDULE:
        timeout = min(e.timeout_s, settings.job_timeout)
        out.append(cron(leased(fns[e.name], settings, timeout), name=f"cron:{e.name}", minute=e.minute, second=0,
                        microsecond=0, unique=True, timeout=timeout, max_tries=1, keep_result=0))
    return out


class Scheduler:
    """The schedule in this process (no Redis). ``await Scheduler(ctx).run(stop)`` until ``stop`` is set.

    ``runner``: a ``jobs.runner.InProcessRunner``; the due jobs are enqueued there (one at a time per
    name: a watch still running when the next tick comes is not started twice). Without one they are
    awaited directly. ``clock`` (epoch seconds) and ``sleep`` are injectable for tests.
    """

    def __init__(self, ctx: dict[str, Any], *, runner: Any = None, entries: tuple[Entry, ...] = SCHEDULE,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 functions: dict[str, Callable[..., Awaitable[Any]]] | None = None):
        self.ctx, self.runner, self.entries = ctx, runner, entries
        self.clock, self.sleep = clock, sleep
        self.functions = functions
        self.last: float | None = None
        self.runs: list[tuple[str, float]] = []  # (name, scheduled time) of every job started

    def due(self, now: float) -> list[tuple[Entry, float]]:
        """The entries with a run time in (last tick, now], each once, with that time."""
        if self.last is None:
            return []
        out = []
        for e in self.entries:
            at = e.next_after(self.last)
            if at <= now:
                while e.next_after(at) <= now:  # missed several: run once, at the latest
                    at = e.next_after(at)
                out.append((e, at))
        return out

    async def tick(self, now: float | None = None) -> list[str]:
        """Run (or enqueue) what is due at ``now``; the names started."""
        now = self.clock() if now is None else now
        if self.last is None:
            self.last = now
            return []
        started = []
        for e, at in self.due(now):
            started.append(e.name)
            self.runs.append((e.name, at))
            await self._start(e, at)
        self.last = now
        return started

    async def _start(self, e: Entry, at: float) -> None:
        log.info("schedule: %s (due %s)", e.name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
        if self.runner is not None:
            args = (at,) if e.pass_time else ()
            if not await self.runner.enqueue(e.name, *args, job_id=f"cron:{e.name}"):
                log.info("schedule: %s still running from the last tick: not started again", e.name)
            return
        fns = self.functions or tasks()
        try:
            args = (at,) if e.pass_time else ()
            await asyncio.wait_for(fns[e.name](self.ctx, *args), e.timeout_s)
        except Exception:
            log.exception("schedule: %s failed", e.name)

    def seconds_to_next(self, now: float) -> float:
        return max(0.0, min(e.next_after(now) for e in self.entries) - now)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Sleep to each next tick and run what is due, until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        await self.tick()
        while not stop.is_set():
            wait = self.seconds_to_next(self.clock())
            sleeper = asyncio.ensure_future(self.sleep(min(wait, 60.0) + 0.001))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (sleeper, stopper):
                    if not f.done():
                        f.cancel()
            if stop.is_set():
                break
            await self.tick()


async def run_schedule(ctx: dict[str, Any], clock: Callable[[], float] = time.time,
                       stop: asyncio.Event | None = None, *, runner: Any = None,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Scheduler:
    """Run the hourly schedule in this process until ``stop`` is set; returns the scheduler."""
    sched = Scheduler(ctx, runner=runner, clock=clock, sleep=sleep)
    await sched.run(stop)
    return sched

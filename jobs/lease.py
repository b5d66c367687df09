"""Job leases: a worker that dies mid-job holds the job for seconds, not an hour.

arq marks a running job with the key ``arq:in-progress:<job_id>``, set for the job's timeout + 10 s when
a worker takes it. Every worker polling the queue skips a job while that key exists, and takes it (as
its next try) once the key is gone. A worker SIGKILLed mid-job (an OOM kill, a deploy) never deletes
the key, so its job waited ``job_timeout`` + 10 s: an hour with the defaults.

Here every job function runs under a :class:`Lease`. As the job starts, the key is rewritten with this
worker's token and a short time to live (``job_lease_s``, 45 s by default), and a heartbeat renews it
every ``job_heartbeat_s`` (10 s) while the job runs. arq's own code still deletes the key when the job
ends, however it ends (result, failure, ``Retry``, timeout, shutdown). If the worker dies the renewals
stop, the key expires at most ``job_lease_s`` later, and the next poll of any other worker on the queue
takes the job again; ``scan_account`` then resumes the scan row, and its one-transaction save writes
everything exactly once.

A renewal extends the key only while it still carries this worker's token (one Lua script, atomic in
Redis). A key found gone (Redis unreachable, or the event loop blocked, for longer than the lease) is
taken back when no other worker has taken the job meanwhile; when one has, the lease is marked lost.
The scan row is fenced by its attempt number (``storage.repo.finish_scan``), so even then only one of
the two runs stores its results.

``on_beat`` callbacks run after each successful renewal in a task of their own, so a slow database
never delays the next renewal: a scan stamps its row's ``heartbeat_at`` and ``lease_expires_at`` this
way, which is how ``costdna status`` tells a running scan from one whose worker was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq.constants import in_progress_key_prefix

log = logging.getLogger("costdna.jobs")

# 1: renewed; 2: had lapsed and nobody had taken the job: taken back; 0: another worker holds it.
_RENEW = """
local v = redis.call('get', KEYS[1])
if v == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
elseif not v then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""


def lease_timing(settings: Any, timeout_s: float | None = None) -> tuple[float, float]:
    """(heartbeat, lease) in seconds from the settings, for a job of ``timeout_s``.

    The lease spans at least three heartbeats, so a missed beat or two (a busy event loop, a Redis
    blip) never lets a live job be taken over. It is never longer than arq's own hold on the job
    (timeout + 10 s: a live worker has ended the job by then anyway); the beat shrinks to fit.
    """
    beat = float(settings.job_heartbeat_s)
    lease = max(float(settings.job_lease_s), 3 * beat)
    if timeout_s:
        lease = min(lease, float(timeout_s) + 10)
        beat = min(beat, lease / 3)
    return beat, lease


def worker_name() -> str:
    """Who holds a lease, as stored on the scan row: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """A running job's claim on its arq in-progress key (``redis`` None: the in-process runner, where
    nothing else could take the job; the heartbeat still runs its callbacks)."""

    def __init__(self, redis: Any, job_id: str | None, *, heartbeat_s: float, lease_s: float):
        self.redis = redis if job_id else None
        self.key = in_progress_key_prefix + (job_id or "")
        self.job_id = job_id
        self.heartbeat_s, self.lease_s = heartbeat_s, lease_s
        self.holder = worker_name() if self.redis is not None else f"in-process {worker_name()}"
        self.token = f"{worker_name()}:{uuid.uuid4().hex[:12]}"
        self.lost = False
        self.beats = 0
        self._callbacks: list[Callable[[], Awaitable[Any]]] = []
        self._task: asyncio.Task | None = None
        self._cb_task: asyncio.Task | None = None

    @property
    def ms(self) -> int:
        return max(1, int(self.lease_s * 1000))

    def on_beat(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """``await fn()`` after every renewal (never while one is still running; errors logged)."""
        self._callbacks.append(fn)

    async def start(self) -> None:
        if self.redis is not None:
            try:  # arq set the key for job_timeout + 10 s an instant ago: make it ours and short
                await self.redis.set(self.key, self.token, px=self.ms)
            except Exception as e:  # the heartbeat tries again; meanwhile arq's own key stands
                log.warning("job %s: lease not taken (%s); retrying at the next beat", self.job_id, e)
        self._task = asyncio.create_task(self._run(), name=f"lease:{self.job_id}")

    async def stop(self) -> None:
        """Stop renewing (arq deletes the key itself as the job ends)."""
        for t in (self._task, self._cb_task):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def renew(self) -> bool:
        """Extend the lease; False when it could not be (Redis unreachable) or another worker holds it."""
        if self.redis is None:
            return True
        try:
            got = int(await self.redis.eval(_RENEW, 1, self.key, self.token, self.ms))
        except Exception as e:
            log.warning("job %s: lease not renewed (%s)", self.job_id, e)
            return False
        if got == 0:
            if not self.lost:
                log.error("job %s: lease lost: another worker took the job (this one was unreachable or "
                          "blocked for over %.0fs); its results will not be stored twice", self.job_id, self.lease_s)
            self.lost = True
            return False
        if got == 2:
            log.warning("job %s: lease had lapsed; taken back (no other worker had taken the job)", self.job_id)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if await self.renew():
                self.beats += 1
                if self._callbacks and (self._cb_task is None or self._cb_task.done()):
                    self._cb_task = asyncio.create_task(self._fire())

    async def _fire(self) -> None:
        for fn in self._callbacks:
            try:
                await fn()
            except Exception as e:  # best effort: the lease itself is in Redis
                log.warning("job %s: heartbeat not recorded (%s)", self.job_id, e)


def leased(fn: Callable[..., Awaitable[Any]], settings: Any,
           timeout_s: float | None = None) -> Callable[..., Awaitable[Any]]:
    """``fn`` (an arq task of ``timeout_s``) run under a lease, found in ``ctx["lease"]`` by the task."""
    heartbeat_s, lease_s = lease_timing(settings, timeout_s)

    @functools.wraps(fn)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        lease = Lease(ctx.get("redis"), ctx.get("job_id"), heartbeat_s=heartbeat_s, lease_s=lease_s)
        await lease.start()
        ctx["lease"] = lease
        try:
            return await fn(ctx, *args, **kwargs)
        finally:
            await lease.stop()

    return run

"""One small queue interface over arq (with ``REDIS_URL``) or the in-process runner (without).

Callers enqueue by task name with a job id; ``enqueue`` returns False when a job with that id is
already queued or running, which is how "one scan per account at a time" and "one retrain per burst
of labels" are kept. The job ids live here so every caller uses the same ones.
"""

from __future__ import annotations

from typing import Any, Protocol

from config.settings import Settings


def scan_job_id(account_id: int) -> str:
    return f"scan:account:{account_id}"


def retrain_job_id(account_id: int) -> str:
    return f"retrain:account:{account_id}"


def tags_job_id(change_set_id: int, rollback: bool = False) -> str:
    return f"{'rollback' if rollback else 'apply'}:changeset:{change_set_id}"


class JobQueue(Protocol):
    async def enqueue(self, name: str, *args: Any, job_id: str | None = None,
                      defer_by: float | None = None) -> bool: ...

    async def close(self) -> None: ...


class ArqQueue:
    def __init__(self, pool: Any, queue_name: str):
        self.pool, self.queue_name = pool, queue_name

    @classmethod
    async def connect(cls, redis_url: str, queue_name: str) -> ArqQueue:
        from arq import create_pool
        from arq.connections import RedisSettings

        return cls(await create_pool(RedisSettings.from_dsn(redis_url)), queue_name)

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> bool:
        job = await self.pool.enqueue_job(name, *args, _job_id=job_id, _defer_by=defer_by,
                                          _queue_name=self.queue_name)
        return job is not None

    async def close(self) -> None:
        await self.pool.aclose()


class LocalQueue:
    """The in-process runner behind the same interface; ``join`` waits for the work to finish."""

    def __init__(self, runner: Any):
        self.runner = runner

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> bool:
        return await self.runner.enqueue(name, *args, job_id=job_id, defer_by=defer_by)

    async def join(self) -> None:
        await self.runner.join()

    async def close(self) -> None:
        await self.runner.join()


async def open_queue(settings: Settings, ctx: dict[str, Any] | None = None) -> ArqQueue | LocalQueue:
    """arq when ``REDIS_URL`` is set, else an in-process runner over ``ctx`` (see jobs.worker.job_context)."""
    if settings.redis_url:
        return await ArqQueue.connect(settings.redis_url, settings.queue_name)
    from jobs.registry import functions
    from jobs.runner import InProcessRunner

    if ctx is None:
        raise ValueError("the in-process queue needs a job context (database, notifier)")
    q = LocalQueue(InProcessRunner(functions(settings), ctx, job_timeout=settings.job_timeout,
                                   max_tries=settings.job_tries))
    ctx["queue"] = q
    return q

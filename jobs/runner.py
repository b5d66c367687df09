"""Run the job functions in this process, with arq's semantics, for a laptop with no Redis.

arq has no in-process mode; this runner reuses its pieces (``arq.worker.Function`` for per-task
timeout and tries, ``arq.Retry`` for deferred retries) and its ``_job_id`` contract: enqueueing a job
id that is queued or running returns False and runs nothing. At most ``max_jobs`` run at once; a job
that times out or raises is logged and recorded as failed, like arq does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from arq import Retry
from arq.worker import Function

log = logging.getLogger("costdna.jobs")


class JobFailed(RuntimeError):
    pass


class InProcessRunner:
    def __init__(self, functions: Sequence[Function], ctx: dict[str, Any], *, max_jobs: int = 4,
                 job_timeout: float = 3600, max_tries: int = 3):
        self.functions = {f.name: f for f in functions}
        self.ctx = ctx
        self.job_timeout, self.max_tries = job_timeout, max_tries
        self.sem = asyncio.Semaphore(max_jobs)
        self.active: dict[str, asyncio.Task] = {}
        self.results: dict[str, Any] = {}  # job id -> result, or the JobFailed it ended with

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> bool:
        if name not in self.functions:
            raise KeyError(f"no job function {name!r}")
        job_id = job_id or uuid.uuid4().hex
        if job_id in self.active:
            return False
        self.results.pop(job_id, None)
        self.active[job_id] = asyncio.create_task(self._run(job_id, name, args, defer_by), name=f"job:{job_id}")
        return True

    async def _run(self, job_id: str, name: str, args: tuple, defer_by: float | None) -> None:
        fn = self.functions[name]
        timeout = fn.timeout_s or self.job_timeout
        tries = fn.max_tries or self.max_tries
        enqueued = time.time()
        try:
            if defer_by:
                await asyncio.sleep(defer_by)
            for job_try in range(1, tries + 1):
                ctx = {**self.ctx, "job_id": job_id, "job_try": job_try, "enqueue_time": enqueued}
                delay = 0.0
                async with self.sem:
                    try:
                        self.results[job_id] = await asyncio.wait_for(fn.coroutine(ctx, *args), timeout)
                        return
                    except Retry as r:
                        delay = (r.defer_score or 0) / 1000
                        log.info("job %s (%s) asks for a retry in %.1fs (try %s of %s)", job_id, name, delay,
                                 job_try, tries)
                    except TimeoutError:
                        log.error("job %s (%s) timed out after %ss", job_id, name, timeout)
                        self.results[job_id] = JobFailed(f"timed out after {timeout}s")
                        return
                    except Exception as e:
                        log.exception("job %s (%s) failed", job_id, name)
                        self.results[job_id] = JobFailed(f"{type(e).__name__}: {e}")
                        return
                await asyncio.sleep(delay)
            self.results[job_id] = JobFailed(f"gave up after {tries} tries")
        finally:
            self.active.pop(job_id, None)

    async def join(self) -> None:
        """Wait until no job is queued or running (jobs may enqueue more)."""
        while self.active:
            await asyncio.gather(*list(self.active.values()), return_exceptions=True)

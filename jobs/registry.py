"""The job functions by name: what an arq worker (``jobs.worker``) and the in-process runner
(``jobs.queue.open_queue`` without ``REDIS_URL``) both run.

Its own module, below both, so the queue builds its in-process runner without importing the worker
(which imports the queue for its ``ArqQueue``).
"""

from __future__ import annotations

from arq.worker import Function, func

from config.settings import Settings
from jobs import digest, tasks, watch
from jobs.lease import leased


def functions(settings: Settings) -> list[Function]:
    """The job functions, each under a lease (jobs.lease): a worker that dies mid-job gives its job to
    another worker ``job_lease_s`` after its last heartbeat, not arq's ``job_timeout`` + 10 s.

    Scans (and retrains, which are scans) get one try more than ``job_tries`` from arq: their task counts
    its own tries on the scan row and, past ``job_tries``, fails the scan with the reason, rather than
    arq dropping the job and leaving the row "running" (a scan that kills its worker every time).
    """
    def f(task, timeout: float, tries: int) -> Function:  # type: ignore[no-untyped-def]
        return func(leased(task, settings, timeout), name=task.__name__, timeout=timeout, max_tries=tries)

    return [
        f(tasks.scan_account, settings.job_timeout, settings.job_tries + 1),
        f(tasks.retrain, settings.job_timeout, settings.job_tries + 1),
        f(tasks.apply_tag_changes, min(600, settings.job_timeout), settings.job_tries),
        # the watch (jobs.watch) and the digest (jobs.digest): also on the hourly schedule (jobs.schedule)
        f(watch.watch, min(1800, settings.job_timeout), settings.job_tries),
        f(digest.digest, min(600, settings.job_timeout), settings.job_tries),
        f(digest.digest_due, min(600, settings.job_timeout), 1),
    ]

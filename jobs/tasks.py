"""The job functions: scan an account, retrain after new labels, apply (or roll back) a tag change set.

Each is an arq task ``async def task(ctx, ...)`` and runs unchanged in the in-process runner. ``ctx``
carries ``db`` (storage.db.Database), ``notify`` (jobs.notify.Notifier), ``settings``, ``queue`` (to
enqueue follow-ups), plus arq's ``job_id`` and ``job_try``.

Every task is safe to run twice (arq delivers at least once): a scan claims its row and does nothing if
it already finished; results are written in one transaction with idempotent upserts; a change set
moves state only through conditional updates, and a re-run writes only what is not yet recorded.
Transient failures (database or network) are retried with backoff through ``arq.Retry``; a bad input
fails the scan row at once with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq import Retry
from sqlalchemy.exc import DBAPIError, OperationalError

from jobs.accounts import ScanInputError, account_bundle, aws_credentials_problem
from jobs.lease import Lease
from storage import repo
from storage.persist import save_scan_result

log = logging.getLogger("costdna.jobs")

# Scan stages and the share of the whole scan each one ends at, for one progress figure.
# The engine's own "done" is not here: saving still follows it.
STAGES = {"prepare": 5.0, "cloudtrail": 55.0, "cost": 62.0, "loaded": 66.0, "graph": 72.0, "model": 90.0,
          "save": 99.0}
TRANSIENT = (OperationalError, DBAPIError, ConnectionError, TimeoutError)
RETRAIN_DEBOUNCE_S = 30


def backoff(job_try: int) -> float:
    return min(60.0, 2.0 ** job_try)


def overall(stage: str, frac: float) -> float:
    """One 0-100 figure from an engine stage and its own fraction."""
    names = list(STAGES)
    end = STAGES.get(stage)
    if end is None:
        return -1.0
    start = STAGES[names[names.index(stage) - 1]] if names.index(stage) else 0.0
    return start + (end - start) * max(0.0, min(1.0, frac))


class _Reporter:
    """Engine progress (from the scan's thread) -> the scan row and the notifier, at most twice a
    second and at every new stage, never blocking the engine."""

    def __init__(self, ctx: dict, scan_id: int, loop: asyncio.AbstractEventLoop, attempt: int | None = None):
        self.ctx, self.scan_id, self.loop, self.attempt = ctx, scan_id, loop, attempt
        self.stage, self.last, self.best = "", 0.0, 0.0
        self.pending: set[asyncio.Future] = set()
        self.lock = asyncio.Lock()  # updates land in the order they were reported
        self.closed = False

    def __call__(self, stage: str, frac: float) -> None:
        pct = overall(stage, frac)
        if pct < 0 or self.closed:
            return
        now = time.monotonic()
        if stage == self.stage and now - self.last < 0.5:
            return
        self.stage, self.last = stage, now
        self.best = max(self.best, pct)
        fut = asyncio.run_coroutine_threadsafe(self.send(stage, self.best), self.loop)
        self.pending.add(fut)
        fut.add_done_callback(self.pending.discard)

    async def send(self, stage: str, pct: float) -> None:
        async with self.lock:
            try:
                async with self.ctx["db"].session() as s:
                    await repo.report_progress(s, self.scan_id, stage, pct, self.attempt)
                await self.ctx["notify"]("scan.progress", scan_id=self.scan_id, stage=stage, progress=pct)
            except Exception as e:  # progress is best effort; the scan goes on
                log.warning("scan %s: progress not recorded (%s)", self.scan_id, e)

    async def drain(self) -> None:
        """Wait for the updates already reported, so they land before the scan's final state."""
        for fut in list(self.pending):
            await asyncio.wrap_future(fut)


async def scan_account(ctx: dict, scan_id: int) -> dict[str, Any]:
    """Scan one account into its scan row: claim, read, infer, save, summarise."""
    db, notify, settings = ctx["db"], ctx["notify"], ctx["settings"]
    job_try = ctx.get("job_try", 1)
    lease: Lease | None = ctx.get("lease")
    async with db.session() as s:
        scan = await repo.claim_scan(s, scan_id, ctx.get("job_id"), lease_s=lease.lease_s if lease else None,
                                     worker=lease.holder if lease else None)
        if scan is None:
            log.info("scan %s already finished: nothing to do", scan_id)
            return {"scan_id": scan_id, "status": "skipped"}
        attempt = scan.attempts  # this try's fencing number: a try that lost the scan writes nothing
        account = await repo.get_account(s, scan.account_id)
        labels = await repo.current_labels(s, account.id)
    if attempt > settings.job_tries:  # only reached when earlier tries' workers died (arq allows one more)
        return await _fail(ctx, scan_id, f"gave up after {attempt - 1} tries: its worker stopped before "
                                         "finishing each time (out of memory?)", attempt)
    if lease is not None:
        async def beat() -> None:
            async with db.session() as s:
                await repo.heartbeat_scan(s, scan_id, attempt, lease.lease_s)

        lease.on_beat(beat)
    if attempt > 1:
        log.info("scan %s: try %s (attempt %s) resumes it", scan_id, job_try, attempt)
    await notify("scan.started", scan_id=scan_id, account=account.name, attempt=job_try)
    reporter = _Reporter(ctx, scan_id, asyncio.get_running_loop(), attempt)
    # Our own deadline, a little inside the job's: a scan that runs too long is failed with its reason
    # here, rather than cancelled by the queue and left "running" until stale-scan recovery.
    limit = scan_deadline(settings.job_timeout)
    deadline = asyncio.timeout(limit)
    error: str | None = None
    try:
        from engine.scan import scan_bundle

        def work():  # type: ignore[no-untyped-def]
            bundle_dir = account_bundle(account, settings.data_dir, progress=lambda st, f: reporter("prepare", f),
                                        settings=settings)
            return scan_bundle(bundle_dir, extra_labels=labels, workers=settings.workers, progress=reporter,
                               threshold=settings.confidence_threshold)

        async with deadline:
            result = await asyncio.to_thread(work)
            reporter("save", 0.0)
            await reporter.drain()
            if lease is not None and lease.lost:
                raise Superseded
            async with db.session() as s:
                counts = await save_scan_result(s, account.id, scan_id, result)
                summary = dict(result.summary)
                if not await repo.finish_scan(s, scan_id, summary, counts, attempt=attempt):
                    raise Superseded  # rolls the whole save back
                await repo.set_account_status(s, account.id, "ok")
                await repo.audit(s, "scan.finish", account_id=account.id, target=f"scan:{scan_id}", **counts)
    except Superseded:
        log.warning("scan %s: another try took it over while this one ran (attempt %s): nothing stored",
                    scan_id, attempt)
        return {"scan_id": scan_id, "status": "superseded"}
    except Exception as e:
        if deadline.expired():
            log.error("scan %s timed out after %.0fs", scan_id, limit)
            error = f"timed out after {limit:.0f}s (job_timeout {settings.job_timeout}s)"
        elif isinstance(e, ScanInputError):
            error = str(e)
        elif isinstance(e, TRANSIENT):
            if job_try < settings.job_tries:
                log.warning("scan %s: transient error on try %s, retrying: %s", scan_id, job_try, e)
                await _hold_lease(ctx, scan_id, attempt, backoff(job_try))
                raise Retry(defer=backoff(job_try)) from e
            error = f"gave up after {job_try} tries: {e}"
        else:
            log.exception("scan %s failed", scan_id)
            error = f"{type(e).__name__}: {e}"
    finally:
        reporter.closed = True  # an engine thread outliving a timeout reports nothing more
        await reporter.drain()  # progress updates land before the final state (and its notification)
    if error is not None:
        return await _fail(ctx, scan_id, error, attempt)
    await notify("scan.finished", scan_id=scan_id, account=account.name, summary=summary, counts=counts)
    return {"scan_id": scan_id, "status": "succeeded", **counts}


def scan_deadline(job_timeout: float) -> float:
    """Seconds a scan may take: its job's timeout less a margin to record the failure in."""
    return max(1.0, job_timeout - min(5.0, job_timeout * 0.1))


class Superseded(Exception):
    """Another try of this scan took it over (this one's lease lapsed): this one stores nothing."""


async def _fail(ctx: dict, scan_id: int, reason: str, attempt: int | None = None) -> dict[str, Any]:
    async with ctx["db"].session() as s:
        if not await repo.fail_scan(s, scan_id, reason, attempt):
            log.warning("scan %s: not failed by attempt %s (%s): another try has it", scan_id, attempt, reason)
            return {"scan_id": scan_id, "status": "superseded"}
    await ctx["notify"]("scan.failed", scan_id=scan_id, error=reason)
    return {"scan_id": scan_id, "status": "failed", "error": reason}


async def _hold_lease(ctx: dict, scan_id: int, attempt: int, wait_s: float) -> None:
    """Before a deferred retry: the row's lease covers the wait, so the scan does not read as "worker
    lost" meanwhile (best effort: the database may be what failed)."""
    lease = ctx.get("lease")
    if lease is None:
        return
    try:
        async with ctx["db"].session() as s:
            await repo.heartbeat_scan(s, scan_id, attempt, wait_s + lease.lease_s)
    except Exception as e:
        log.debug("scan %s: lease not extended for the retry (%s)", scan_id, e)


async def retrain(ctx: dict, account_id: int) -> dict[str, Any]:
    """After new human labels: a fresh scan that learns from them. Enqueued with a deferral and a job
    id per account (``request_retrain``), so a burst of clicks gives one retrain."""
    db = ctx["db"]
    async with db.session() as s:
        account = await repo.get_account(s, account_id)
        scan = await repo.active_scan(s, account_id)
        if scan is not None and scan.requested_by != "retrain":  # the running scan will not see the new
            raise Retry(defer=RETRAIN_DEBOUNCE_S)  # labels: come back after it
        # A retrain scan still active is this job's own, from a try that was retried or whose worker
        # died (retrain scans are only created here, under one job id per account): resume it.
        if scan is None:
            scan = await repo.create_scan(s, account, requested_by="retrain")
    return await scan_account(ctx, scan.id)


async def apply_tag_changes(ctx: dict, change_set_id: int, rollback: bool = False) -> dict[str, Any]:
    """Write an approved change set's tags (or restore the previous ones) and record each result."""
    db, notify, settings = ctx["db"], ctx["notify"], ctx["settings"]
    async with db.session() as s:
        cs = await repo.get_change_set(s, change_set_id)
        want = ("applied", "failed") if rollback else ("approved",)
        if cs.status not in want:
            log.info("change set %s is %s: nothing to do", change_set_id, cs.status)
            return {"change_set_id": change_set_id, "status": cs.status, "skipped": True}
        account = await repo.get_account(s, cs.account_id)
        items = await repo.change_items(s, change_set_id)
    todo = {i.arn: (i.previous_tags if rollback else i.new_tags) for i in items
            if i.status == ("applied" if rollback else "pending")}
    previous = {i.arn: (i.new_tags if rollback else i.previous_tags) for i in items if i.arn in todo}
    errors = await _write_tags(account, settings, todo, previous) if todo else {}
    async with db.session() as s:
        await repo.record_item_results(s, change_set_id, errors, rollback=rollback)
        items = await repo.change_items(s, change_set_id)
        if rollback:  # an item whose restore failed stays applied, with the reason in its error
            done, failed = sum(i.status == "rolled_back" for i in items), sum(i.status == "applied" for i in items)
            to, key = "rolled_back", "rolled_back"
        else:
            done, failed = sum(i.status == "applied" for i in items), sum(i.status == "failed" for i in items)
            to, key = ("applied" if done else "failed"), "applied"
        await repo.transition_change_set(s, change_set_id, to, actor="costdna", **{key: done, "failed": failed})
    await notify("changeset." + to, change_set_id=change_set_id, done=done, failed=failed)
    return {"change_set_id": change_set_id, "status": to, "done": done, "failed": failed, "errors": errors}


async def _write_tags(account: Any, settings: Any, tags: dict[str, dict[str, str]],
                      previous: dict[str, dict[str, str]]) -> dict[str, str]:
    """Set each resource's tags where the account keeps them; ``arn -> error`` for the failures.
    A failure of the whole write (unreadable bundle, no credentials, role not assumable) fails every item."""
    from jobs.tagwriter import BundleTagWriter, TagWriteError

    if account.kind in ("synthetic", "bundle"):
        try:
            writer = BundleTagWriter(await asyncio.to_thread(account_bundle, account, settings.data_dir))
            return await asyncio.to_thread(writer.write, tags)
        except (ScanInputError, TagWriteError, OSError) as e:
            return dict.fromkeys(tags, str(e))
    from jobs.aws_tags import AwsTagWriter  # aws: the tagging API, through the account's role

    problem = aws_credentials_problem()
    if problem:
        return dict.fromkeys(tags, problem)
    writer = AwsTagWriter(regions=account.regions or None, role_arn=account.role_arn,
                          external_id=account.external_id, endpoint_url=settings.aws_endpoint_url)
    try:
        return await writer.write(tags, previous=previous)
    except TagWriteError as e:
        return dict.fromkeys(tags, str(e))

"""Job leases (jobs.lease): a running job's arq in-progress key lives ``job_lease_s`` past its last
heartbeat, not ``job_timeout`` + 10 s. A live worker keeps its job however long it runs; a lease found
taken by another worker is lost; a try that lost its scan stores nothing; a scan whose lease lapsed
reads "worker lost, retrying" and holds its account (taken by the next worker), or, left by an
in-process run, is interrupted. (A real worker SIGKILLed mid-scan: tests/test_jobs_arq.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import create_worker
from sqlalchemy import func, select, update

import engine.scan
import jobs.tasks
from config.settings import Settings
from handlers import views
from jobs.control import ScanBusy, request_scan
from jobs.lease import Lease, lease_timing
from jobs.queue import scan_job_id
from jobs.worker import job_context, worker_settings
from storage import repo
from storage.models import Prediction, Resource, Scan, utcnow
from tests.test_jobs_arq import get_scan, make_settings, scalar, setup

SMALL = dict(seed=3, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)


def test_lease_timing() -> None:
    s = Settings(job_heartbeat_s=10, job_lease_s=45)
    assert lease_timing(s) == (10, 45)
    assert lease_timing(s, 3600) == (10, 45)
    assert lease_timing(Settings(job_heartbeat_s=20, job_lease_s=30)) == (20, 60)  # three beats at least
    assert lease_timing(s, 5) == (5, 15)  # never longer than arq's own hold (timeout + 10 s)


@pytest.mark.asyncio
async def test_lease_renews_only_its_own_key(redis_url: str) -> None:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    key = in_progress_key_prefix + "job-1"
    try:
        await pool.psetex(key, 3_610_000, b"1")  # as arq's worker sets it when it takes the job
        lease = Lease(pool, "job-1", heartbeat_s=0.1, lease_s=1.0)
        await lease.start()
        assert 0 < await pool.pttl(key) <= 1000
        await asyncio.sleep(0.75)  # several beats: renewed, never lapsed
        assert lease.beats >= 3 and 700 < await pool.pttl(key) <= 1000
        await lease.stop()
        beats = lease.beats
        await asyncio.sleep(0.3)
        assert lease.beats == beats  # stopped

        # lapsed, nobody took the job: taken back
        await pool.delete(key)
        assert await lease.renew() and (await pool.get(key)).decode() == lease.token
        # another worker took the job: the lease is lost, the other's key untouched
        await pool.psetex(key, 5000, b"1")
        assert not await lease.renew() and lease.lost
        assert await pool.get(key) == b"1" and await pool.pttl(key) > 4000
    finally:
        await pool.delete(key)
        await pool.aclose()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_live_slow_scan_is_not_taken_over(tmp_path: Path, pg_url: str, redis_url: str, fast_model: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan running for many lease lengths, a second worker polling the same queue all along: the
    job runs once, its key never lapses, and it is gone when the job ends."""
    real = engine.scan.scan_bundle

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(6)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.scan, "scan_bundle", slow)
    settings = make_settings(tmp_path, pg_url, redis_url, job_heartbeat_s=0.5, job_lease_s=2.0)
    db, queue, acct = await setup(settings)
    key = in_progress_key_prefix + scan_job_id(acct.id)
    ws = [create_worker(worker_settings(settings), burst=True, poll_delay=0.05, handle_signals=False)
          for _ in range(2)]
    ttls: list[int] = []
    try:
        scan = await request_scan(db, queue, "acct")
        run = asyncio.gather(*(w.async_run() for w in ws))
        while not run.done():
            ttl = await queue.pool.pttl(key)
            if ttl != -2:  # -2: no key (not taken yet, or done)
                ttls.append(ttl)
            await asyncio.sleep(0.05)
        await run
        row = await get_scan(db, scan.id)
        assert row.status == "succeeded" and row.attempts == 1, row.error
        assert sum(w.jobs_complete for w in ws) == 1 and sum(w.jobs_retried + w.jobs_failed for w in ws) == 0
        # arq sets its own TTL (job timeout + 10 s) an instant before the lease takes the key over: a
        # sample may land in between, on a busy machine
        leased_ttls = list(itertools.dropwhile(lambda t: t > 2000, ttls))
        assert len(ttls) - len(leased_ttls) <= 2, ttls[:5]
        assert len(leased_ttls) > 100 and min(ttls) > 0 and max(leased_ttls) <= 2000, (min(ttls), max(leased_ttls))
        assert await queue.pool.exists(key) == 0
        assert row.heartbeat_at is not None and row.heartbeat_at > row.started_at  # the row was stamped too
        n = row.counts["resources"]
        assert await scalar(db, select(func.count()).select_from(Prediction).where(Prediction.scan_id == scan.id)) == n
    finally:
        for w in ws:
            await w.close()
        await queue.close()
        await db.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_try_that_lost_its_scan_stores_nothing(tmp_path: Path, sqlite_url: str, fast_model: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Another try claims the scan while this one computes (this one's lease had lapsed): this one's save
    is rolled back and it fails nothing; the other try stores everything once."""
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, workers=1)
    ctx = await job_context(settings)
    db = ctx["db"]
    real = engine.scan.scan_bundle
    loop = asyncio.get_running_loop()
    taken: list[int] = []

    async def take_over(scan_id: int) -> None:
        async with db.session() as s:
            taken.append((await repo.claim_scan(s, scan_id, "other-worker", lease_s=60, worker="other:1")).attempts)

    def computed_then_lost(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not taken:
            asyncio.run_coroutine_threadsafe(take_over(scan.id), loop).result(30)
        return result

    monkeypatch.setattr(engine.scan, "scan_bundle", computed_then_lost)
    try:
        async with db.session() as s:
            acct = await repo.add_account(s, "acct", "synthetic", options=SMALL)
            scan = await repo.create_scan(s, acct)
        lease = Lease(None, None, heartbeat_s=10, lease_s=45)
        first = await jobs.tasks.scan_account({**ctx, "job_id": "j", "job_try": 1, "lease": lease}, scan.id)
        assert first["status"] == "superseded" and taken == [2]
        row = await get_scan(db, scan.id)
        assert row.status == "running" and row.attempts == 2 and row.worker == "other:1"
        assert await scalar(db, select(func.count()).select_from(Resource)) == 0
        assert await scalar(db, select(func.count()).select_from(Prediction)) == 0
        # a try that lost the scan cannot fail it either
        async with db.session() as s:
            assert not await repo.fail_scan(s, scan.id, "late timeout", attempt=1)
        # the try that has it (attempt 3 here: it claims again) stores everything once
        done = await jobs.tasks.scan_account({**ctx, "job_id": "j", "job_try": 2}, scan.id)
        assert done["status"] == "succeeded"
        row = await get_scan(db, scan.id)
        n = row.counts["resources"]
        assert row.status == "succeeded" and n > 0
        assert await scalar(db, select(func.count()).select_from(Resource)) == n
        assert await scalar(db, select(func.count()).select_from(Prediction)) == n
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_lost_worker_status_busy_and_interrupted(tmp_path: Path, sqlite_url: str) -> None:
    """A running scan whose lease lapsed: "worker lost, retrying" in the status report and ScanBusy (a
    worker will take it); left by an in-process run, interrupted, and a new scan goes ahead."""
    from tests.test_jobs_runner import StubQueue

    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url)
    ctx = await job_context(settings)
    db, q = ctx["db"], StubQueue()
    try:
        first = await request_scan(db, q, None)
        async with db.session() as s:
            await repo.claim_scan(s, first.id, "j", lease_s=45, worker="host:1")
            await repo.report_progress(s, first.id, "model", 80)
            report = await repo.status_report(s)
        last = report["accounts"][0]["last_scan"]
        assert not last["worker_lost"] and last["state"] == "model" and last["worker"] == "host:1"
        async with db.session() as s:  # its worker died a minute ago
            await s.execute(update(Scan).where(Scan.id == first.id)
                            .values(lease_expires_at=utcnow() - timedelta(seconds=15)))
            report = await repo.status_report(s)
        last = report["accounts"][0]["last_scan"]
        assert last["worker_lost"] and last["state"] == "worker lost, retrying" and last["status"] == "running"
        with pytest.raises(ScanBusy, match="worker lost, retrying"):
            await request_scan(db, q, None, stale_after_s=3600)
        async with db.session() as s:  # the chat's scan card too
            scan, acct = await repo.get_scan(s, first.id), await repo.get_account(s, first.account_id)
        assert "worker lost, retrying" in views.scan_card(scan, acct).sections[0].text
        # a heartbeat from the try that holds it: alive again
        async with db.session() as s:
            assert await repo.heartbeat_scan(s, first.id, 1, 45)
            assert not await repo.heartbeat_scan(s, first.id, 2, 45)  # not another try's
            assert not (await repo.get_scan(s, first.id)).worker_lost
            await s.execute(update(Scan).where(Scan.id == first.id)
                            .values(lease_expires_at=utcnow() - timedelta(seconds=15), worker="in-process host:1"))
            assert repo.scan_state(await repo.get_scan(s, first.id)) == "interrupted: its process stopped"
        second = await request_scan(db, q, None, in_process=True)  # nothing would retry it: interrupted
        old = await get_scan(db, first.id)
        assert old.status == "failed" and "interrupted" in old.error and second.id != first.id
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_a_scan_whose_worker_dies_every_try_fails_with_the_reason(tmp_path: Path, sqlite_url: str) -> None:
    """arq allows scans one try more than job_tries; that try fails the scan, not leaving it "running"."""
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, job_tries=3)
    ctx = await job_context(settings)
    db = ctx["db"]
    try:
        async with db.session() as s:
            acct = await repo.add_account(s, "acct", "synthetic", options=SMALL)
            scan = await repo.create_scan(s, acct)
            await s.execute(update(Scan).where(Scan.id == scan.id).values(status="running", attempts=3))
        out = await jobs.tasks.scan_account({**ctx, "job_id": "j", "job_try": 4}, scan.id)
        row = await get_scan(db, scan.id)
        assert out["status"] == "failed" and row.status == "failed" and row.attempts == 4
        assert "gave up after 3 tries" in row.error and "worker stopped" in row.error
    finally:
        await db.close()

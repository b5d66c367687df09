"""Jobs through arq with a real Redis and real databases: a burst worker running a scan end to end,
one scan per account under duplicate enqueues, a worker retrying a transient error, and a worker
SIGKILLed mid-scan (default settings) whose job a second worker finishes within two minutes, with
nothing duplicated and no label lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from arq.constants import in_progress_key_prefix
from arq.worker import create_worker
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import jobs.tasks
from config.settings import Settings
from jobs.accounts import account_bundle
from jobs.control import ScanBusy, request_scan
from jobs.queue import ArqQueue, scan_job_id
from jobs.worker import worker_settings
from storage import repo
from storage.db import Database
from storage.models import DailyCost, Event, Label, Prediction, Resource, Scan

SMALL = dict(seed=3, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)
QUEUE = "costdna-test"
ROOT = Path(__file__).resolve().parents[1]




def make_settings(tmp_path: Path, db_url: str, redis_url: str, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, redis_url=redis_url, queue_name=QUEUE,
                    workers=1, **{"job_timeout": 120, "job_tries": 3, **kw})


async def burst(settings: Settings, timeout: float = 120) -> Any:
    """Run the real worker settings in burst mode until the queue is empty."""
    w = create_worker(worker_settings(settings), burst=True, poll_delay=0.05, handle_signals=False)
    try:
        await asyncio.wait_for(w.async_run(), timeout)
    finally:
        await w.close()
    return w


async def setup(settings: Settings, name: str = "acct") -> tuple[Database, ArqQueue, Any]:
    db = await Database(settings.db_url()).init()
    async with db.session() as s:
        acct = await repo.add_account(s, name, "synthetic", options=SMALL)
    queue = await ArqQueue.connect(settings.redis_url, settings.queue_name)
    return db, queue, acct


async def scalar(db: Database, q: Any) -> Any:
    async with db.session() as s:
        return await s.scalar(q)


async def get_scan(db: Database, scan_id: int) -> Scan:
    async with db.session() as s:
        return await repo.get_scan(s, scan_id)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_burst_worker_runs_a_scan(tmp_path: Path, db_url: str, redis_url: str, fast_model: None) -> None:
    settings = make_settings(tmp_path, db_url, redis_url)
    db, queue, acct = await setup(settings)
    try:
        scan = await request_scan(db, queue, "acct", requested_by="test")
        w = await burst(settings)
        assert w.jobs_complete == 1 and w.jobs_failed == 0
        row = await get_scan(db, scan.id)
        assert row.status == "succeeded", row.error
        assert row.progress == 100 and row.stage == "done" and row.attempts == 1
        assert row.job_id == scan_job_id(acct.id)
        n = row.counts["resources"]
        assert n > 0
        assert await scalar(db, select(func.count()).select_from(Resource).where(Resource.account_id == acct.id)) == n
        assert await scalar(db, select(func.count()).select_from(Prediction).where(Prediction.scan_id == scan.id)) == n
        # keep_result=0: the job id is free again, the next scan goes straight in
        nxt = await request_scan(db, queue, "acct")
        await burst(settings)
        assert (await get_scan(db, nxt.id)).status == "succeeded"
    finally:
        await queue.close()
        await db.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_same_scan_enqueued_twice_runs_once(tmp_path: Path, pg_url: str, redis_url: str,
                                                  fast_model: None) -> None:
    settings = make_settings(tmp_path, pg_url, redis_url)
    db, queue, acct = await setup(settings)
    try:
        scan = await request_scan(db, queue, "acct")
        with pytest.raises(ScanBusy) as busy:
            await request_scan(db, queue, "acct")
        assert busy.value.scan.id == scan.id
        assert await queue.enqueue("scan_account", scan.id, job_id=scan_job_id(acct.id)) is False
        other = await ArqQueue.connect(redis_url, QUEUE)  # another process: the same answer
        try:
            assert await other.enqueue("scan_account", scan.id, job_id=scan_job_id(acct.id)) is False
        finally:
            await other.close()
        w = await burst(settings)
        assert w.jobs_complete == 1
        assert await scalar(db, select(func.count()).select_from(Scan)) == 1
        row = await get_scan(db, scan.id)
        assert row.status == "succeeded" and row.attempts == 1
        # the job re-delivered after it finished (at-least-once): it sees the scan done and does nothing
        assert await queue.enqueue("scan_account", scan.id, job_id="redelivered")
        await burst(settings)
        again = await get_scan(db, scan.id)
        assert again.attempts == 1 and again.finished_at == row.finished_at
        assert await scalar(db, select(func.count()).select_from(Prediction)) == row.counts["predictions"]
    finally:
        await queue.close()
        await db.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_worker_retries_a_transient_error(tmp_path: Path, sqlite_url: str, redis_url: str, fast_model: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = jobs.tasks.save_scan_result
    calls: list[int] = []

    async def flaky(s, account_id, scan_id, result, progress=None):  # type: ignore[no-untyped-def]
        calls.append(scan_id)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("connection reset"))
        return await real(s, account_id, scan_id, result, progress)

    monkeypatch.setattr(jobs.tasks, "save_scan_result", flaky)
    monkeypatch.setattr(jobs.tasks, "backoff", lambda job_try: 0.1)
    settings = make_settings(tmp_path, sqlite_url, redis_url)
    db, queue, _ = await setup(settings)
    try:
        scan = await request_scan(db, queue, "acct")
        w = await burst(settings)
        assert w.jobs_retried == 1 and w.jobs_complete == 1
        row = await get_scan(db, scan.id)
        assert row.status == "succeeded" and row.attempts == 2 and len(calls) == 2
    finally:
        await queue.close()
        await db.close()


# -- a worker killed mid-scan ---------------------------------------------------------------------


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("costdna")
    return subprocess.Popen([str(exe), "worker", *args], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def wait_for(db: Database, scan_id: int, ok, timeout: float, what: str, procs=()) -> Scan:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        row = await get_scan(db, scan_id)
        if ok(row):
            return row
        for p in procs:
            assert p.poll() is None or p.returncode == 0, f"worker exited with {p.returncode}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"scan {scan_id}: {what} not reached in {timeout}s (last: {row.status} {row.stage} {row.error})")


def default_settings(tmp_path: Path, db_url: str, redis_url: str) -> Settings:
    """The job settings as a new user has them (job_timeout 3600 s, tries, heartbeat, lease)."""
    s = Settings(data_dir=tmp_path / "data", database_url=db_url, redis_url=redis_url, queue_name=QUEUE, workers=1)
    for name in ("job_timeout", "job_tries", "job_heartbeat_s", "job_lease_s"):
        assert getattr(s, name) == Settings.model_fields[name].default, f"{name} is not the default"
    return s


def run_cli(env: dict[str, str], *args: str) -> str:
    exe = Path(sys.executable).with_name("costdna")
    done = subprocess.run([str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.asyncio
async def test_sigkilled_worker_scan_is_finished_by_the_next(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """Default settings (job_timeout 3600 s): a real `costdna worker` SIGKILLed mid-scan holds nothing up.
    Its lease lapses within job_lease_s, `costdna status` says "worker lost, retrying", a second worker
    takes the job and the scan succeeds within 2 minutes of the kill, everything stored once."""
    settings = default_settings(tmp_path, pg_url, redis_url)
    db, queue, acct = await setup(settings)
    log = tmp_path / "workers.log"
    procs: list[subprocess.Popen] = []
    try:
        bundle = await asyncio.to_thread(account_bundle, acct, settings.data_dir)  # generated up front
        with (bundle.parent / "truth.csv").open(newline="") as fh:
            truth = [r for r in csv.DictReader(fh) if r["team"] != "unowned"]
        async with db.session() as s:
            for r in truth[:6]:
                await repo.add_label(s, acct.id, r["arn"], r["team"], actor="U1")
            await repo.add_label(s, acct.id, truth[0]["arn"], truth[-1]["team"], actor="U2")  # supersedes
        label_cols = (Label.id, Label.arn, Label.team, Label.source, Label.actor, Label.superseded_at)
        async with db.session() as s:
            labels_before = sorted(map(tuple, await s.execute(select(*label_cols).where(Label.source == "human"))))
        assert len(labels_before) == 7

        env = {k: v for k, v in os.environ.items() if not k.startswith("COSTDNA_JOB_")}
        env.update({"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "COSTDNA_DATA_DIR": str(settings.data_dir),
                    "COSTDNA_WORKERS": "1", "COSTDNA_QUEUE_NAME": QUEUE, "COLUMNS": "200"})
        scan = await request_scan(db, queue, "acct", requested_by="test")
        procs.append(start_worker(env, log))
        row = await wait_for(db, scan.id, lambda r: r.status == "running" and r.stage in ("graph", "model"), 90,
                             "running past cloudtrail", procs)
        assert row.worker == f"{socket.gethostname()}:{procs[0].pid}" and not row.worker_lost
        kill_group(procs[0])
        killed = time.monotonic()
        row = await get_scan(db, scan.id)
        assert row.status == "running" and row.attempts == 1
        assert await scalar(db, select(func.count()).select_from(Prediction).where(Prediction.scan_id == scan.id)) == 0
        assert await scalar(db, select(func.count()).select_from(Resource)) == 0, "nothing of a killed save"
        # arq's hold on the job is the lease (45 s), not job_timeout + 10 s (3,610 s)
        ttl = await queue.pool.pttl(in_progress_key_prefix + scan_job_id(acct.id))
        assert 0 < ttl <= settings.job_lease_s * 1000, ttl

        # the lease lapses: status says so, in JSON and in words
        await wait_for(db, scan.id, lambda r: r.worker_lost, settings.job_lease_s + 5, "worker lost")
        lapsed = time.monotonic() - killed
        report = json.loads(run_cli(env, "status", "--json"))
        last = next(a for a in report["accounts"] if a["name"] == "acct")["last_scan"]
        assert last["status"] == "running" and last["worker_lost"] and last["state"] == "worker lost, retrying"
        assert "worker lost, retrying" in run_cli(env, "status")

        procs.append(start_worker(env, log, "--burst"))  # takes the job at once: its lease has lapsed
        row = await wait_for(db, scan.id, lambda r: r.status in ("succeeded", "failed"), 120, "an end", procs[1:])
        took = time.monotonic() - killed
        assert row.status == "succeeded", (row.error, log.read_text()[-3000:])
        assert row.attempts == 2 and row.worker == f"{socket.gethostname()}:{procs[1].pid}"
        print(f"\nSIGKILL -> lease lapsed {lapsed:.1f}s -> scan succeeded {took:.1f}s (job_timeout "
              f"{settings.job_timeout}s, lease {settings.job_lease_s}s, heartbeat {settings.job_heartbeat_s}s)")
        assert took < 120, f"the scan took {took:.0f}s after the kill"
        n = row.counts["resources"]
        q = select(func.count()).select_from
        assert await scalar(db, q(Resource).where(Resource.account_id == acct.id)) == n > 0
        assert await scalar(db, select(func.count(func.distinct(Resource.arn)))) == n
        assert await scalar(db, q(Prediction).where(Prediction.scan_id == scan.id)) == n
        assert await scalar(db, select(func.count(func.distinct(Prediction.arn)))) == n
        events = await scalar(db, q(Event))
        assert events == row.counts["events"] > 0
        assert await scalar(db, select(func.count(func.distinct(Event.event_id)))) == events
        days = await scalar(db, q(DailyCost))
        assert days == row.counts["cost_days"] > 0
        assert await scalar(db, select(func.count()).select_from(
            select(DailyCost.arn, DailyCost.day).distinct().subquery())) == days
        async with db.session() as s:
            labels_after = sorted(map(tuple, await s.execute(select(*label_cols).where(Label.source == "human"))))
            current = await repo.current_labels(s, acct.id)
        assert labels_after == labels_before, "human labels are untouched"
        assert current[truth[0]["arn"]] == truth[-1]["team"] and len(current) == 6
        procs[1].wait(30)
        assert procs[1].returncode == 0
    finally:
        for p in procs:
            if p.poll() is None:
                kill_group(p)
        await queue.close()
        await db.close()

"""The daily digest (jobs.digest) and the hourly schedule (jobs.schedule) on SQLite and PostgreSQL:
the digest's figures from the watch's stored parts or the last scan's daily costs, drift between the
last two scans, the queues, the paused flag; ``digest_due`` at the configured hour once a day (frozen
clock); the in-process scheduler under a fake clock; arq's cron registration and a real burst worker
running ``digest_due``."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.settings import Settings
from jobs import digest as jd
from jobs.schedule import SCHEDULE, Scheduler, cron_jobs, run_schedule
from storage import repo, watch_repo
from storage.db import Database
from storage.models import DailyCost, Prediction, Scan

A, B, C = (f"arn:aws:ec2:us-east-1:1:instance/i-{x}" for x in "abc")
DAY0 = date(2026, 11, 1)
NOW = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)  # digest day: yesterday = 2026-11-10


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, **payload: Any) -> None:
        self.events.append((kind, payload))


def part(path: str, arns: list[str], per_hour: dict[str, list[float]], first_day: date, days: int) -> bytes:
    """A CostPart with each resource's per-day hourly cost (the same every hour of that day)."""
    from engine.hourly import CostPart

    h0 = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC).timestamp() // 3600)
    hours, res, cost = [], [], []
    for i, a in enumerate(arns):
        for d in range(days):
            for h in range(24):
                hours.append(h0 + d * 24 + h)
                res.append(i)
                cost.append(per_hour[a][d])
    return CostPart(path=path, arns=arns, hours=np.array(hours, np.int64), res=np.array(res, np.int32),
                    cost=np.array(cost, float), daily=False).to_bytes()


async def setup(db_url: str, **settings: Any) -> tuple[Database, Any, Any]:
    db = await Database(db_url).init()
    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        ws.settings = {**ws.settings, **settings}
        acct = await repo.add_account(s, "acct", "synthetic", workspace_id=ws.id)
    return db, ws, acct


class F:
    def __init__(self, path: str) -> None:
        self.path, self.size, self.mtime, self.kind = path, 1, 1.0, "cost"


@pytest.mark.asyncio
async def test_digest_data_from_the_watch(db_url: str) -> None:
    db, ws, acct = await setup(db_url)
    try:
        # A: $1/h every day, B: $2/h then $5/h on the last day, C: $0.5/h (untagged, no team)
        days = 10
        per = {A: [1.0] * days, B: [2.0] * (days - 1) + [5.0], C: [0.5] * days}
        async with db.session() as s:
            await watch_repo.record_files(s, acct.id, [F("cost/p1")],
                                          parts={"cost/p1": part("cost/p1", [A, B, C], per, DAY0, days)})
            await repo.add_label(s, acct.id, A, "payments", source="tag")
            await repo.add_label(s, acct.id, B, "search", source="human")
            sp, _ = await watch_repo.upsert_spike(
                s, acct.id, f"{B}@1", arn=B, resource_id="i-b", kind="statistical", start=NOW - timedelta(hours=20),
                end=NOW - timedelta(hours=10), peak_usd_per_hour=5.0, baseline_usd_per_hour=2.0, extra_usd=30.0,
                severity="warning", reasons=["2.5x"], score=6.0, owner_team="search")
            await repo.create_prompts(s, acct.id, [C])
            await repo.propose_change_set(s, acct.id, [{"arn": C, "team": "data", "previous_tags": {}}])
            await watch_repo.set_switch(s, watch_repo.PANIC, True)
        async with db.session() as s:
            account = await repo.get_account(s, acct.id)
            data = await jd.digest_data(s, account, NOW)
        assert data["source"] == "watch" and data["day"] == "2026-11-10"
        assert data["yesterday_usd"] == pytest.approx(24 * (1 + 5 + 0.5))
        assert data["avg7_usd"] == pytest.approx(24 * (1 + 2 + 0.5))
        assert data["movers"]["resources"][0] == {"arn": B, "resource_id": "i-b", "team": "search",
                                                  "yesterday_usd": 120.0, "avg7_usd": 48.0, "delta_usd": 72.0}
        assert data["movers"]["teams"][0]["team"] == "search"
        assert len(data["untagged_by_day"]) == 14
        assert data["untagged_by_day"][-1] == ["2026-11-10", 24 * 5.5]  # B (human label, no tag) and C
        assert data["untagged_by_day"][0] == ["2026-10-28", 0.0]  # before any data
        assert set(data["by_team_day"]) == {"payments", "search", jd.NO_TEAM}
        assert data["by_team_day"]["payments"][-1] == ["2026-11-10", 24.0]
        assert [x["id"] for x in data["open_spikes"]] == [sp.id]
        assert data["open_spikes"][0]["start"] == "2026-11-10T13:00:00Z"
        assert data["queue"] == {"prompts": 1, "approvals": 1}
        assert data["paused"] is True
        assert data["drift"]["counts"] == {"new": 0, "gone": 0, "owner_changed": 0}
        import json

        json.dumps(data)  # JSON-able as it is
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_digest_data_from_the_last_scan_and_drift(db_url: str) -> None:
    db, ws, acct = await setup(db_url)
    try:
        async with db.session() as s:
            for d in range(9):
                day = date(2026, 11, 2) + timedelta(days=d)
                s.add(DailyCost(account_id=acct.id, arn=A, day=day, cost_usd=10.0 if d < 8 else 30.0))
            s1 = Scan(account_id=acct.id, status="succeeded")
            s2 = Scan(account_id=acct.id, status="succeeded")
            s3 = Scan(account_id=acct.id, status="failed")
            s.add_all([s1, s2, s3])
            await s.flush()
            s.add_all([Prediction(scan_id=s1.id, arn=A, resource_id="i-a", team="payments", confidence=0.9),
                       Prediction(scan_id=s1.id, arn=B, resource_id="i-b", team="search", confidence=0.9),
                       Prediction(scan_id=s2.id, arn=A, resource_id="i-a", team="search", confidence=0.8),
                       Prediction(scan_id=s2.id, arn=C, resource_id="i-c", team="", tag_team="data"),
                       Prediction(scan_id=s3.id, arn="arn:zzz", resource_id="z", team="x")])
        async with db.session() as s:
            data = await jd.digest_data(s, await repo.get_account(s, acct.id), NOW)
        assert data["source"] == "scan" and data["day"] == "2026-11-10"
        assert data["yesterday_usd"] == 30.0 and data["avg7_usd"] == 10.0 and data["change_pct"] == 200.0
        assert data["paused"] is False
        d = data["drift"]
        assert d["new"] == [{"arn": C, "resource_id": "i-c", "team": "data"}]
        assert d["gone"] == [{"arn": B, "resource_id": "i-b"}]
        assert d["owner_changed"] == [{"arn": A, "resource_id": "i-a", "from": "payments", "to": "search",
                                       "confidence": 0.8}]
        # the owner of A for spend by team is the latest scan's prediction
        assert data["by_team_day"]["search"][-1] == ["2026-11-10", 30.0]
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_digest_due_at_the_configured_hour_once(db_url: str) -> None:
    db, ws, acct = await setup(db_url, digest_hour=9, digest_channel="C-DIG")
    rec = Recorder()
    ctx = {"db": db, "notify": rec, "settings": None}
    try:
        async with db.session() as s:  # another workspace, due at 10, no channel at 9
            other = await repo.get_or_create_workspace(s, "slack", "T2")
            other.settings = {**other.settings, "digest_hour": 10, "digest_channel": "C-OTHER"}
        at = NOW.timestamp()
        assert (await jd.digest_due(ctx, at - 3600))["posted"] == []  # 08:00
        assert rec.events == []
        got = await jd.digest_due(ctx, at)  # 09:00
        assert got["posted"] == [ws.id]
        [(kind, payload)] = rec.events
        assert kind == "digest.ready"
        assert sorted(payload) == ["account_id", "channel", "data", "workspace_id"]
        assert payload["workspace_id"] == ws.id and payload["account_id"] == acct.id and payload["channel"] == "C-DIG"
        assert payload["data"]["account"] == "acct"
        assert (await jd.digest_due(ctx, at + 1800))["posted"] == []  # 09:30: not twice
        assert len(rec.events) == 1
        assert (await jd.digest_due(ctx, at + 3600))["posted"] == [other.id]  # 10:00: the other one
        assert (await jd.digest_due(ctx, at + 86400))["posted"] == [ws.id]  # the next day at 09:00
        async with db.session() as s:
            w = await s.get(type(ws), ws.id, populate_existing=True)
            assert w.settings["digest_last"] == "2026-11-12"
    finally:
        await db.close()


# -- the schedule -------------------------------------------------------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s
        await asyncio.sleep(0)


def test_schedule_entries() -> None:
    assert [(e.name, e.minute) for e in SCHEDULE] == [("watch", 5), ("digest_due", 0)]
    e = SCHEDULE[0]
    t = NOW.timestamp()
    assert e.next_after(t) == t + 300 and e.next_after(t + 300) == t + 3900


@pytest.mark.asyncio
async def test_in_process_scheduler_with_a_fake_clock() -> None:
    clock = Clock((NOW - timedelta(minutes=2)).timestamp())  # 08:58
    calls: list[tuple[str, str]] = []
    stop = asyncio.Event()

    def fn(name: str):  # type: ignore[no-untyped-def]
        async def run(ctx: dict, *args: Any) -> None:
            calls.append((name, datetime.fromtimestamp(clock(), UTC).strftime("%H:%M")))
            if len(calls) == 4:
                stop.set()
        return run

    sched = Scheduler({}, clock=clock, sleep=clock.sleep, functions={"watch": fn("watch"),
                                                                     "digest_due": fn("digest_due")})
    await asyncio.wait_for(sched.run(stop), 5)
    assert [c[0] for c in calls] == ["digest_due", "watch", "digest_due", "watch"]
    assert [c[1] for c in calls] == ["09:00", "09:05", "10:00", "10:05"]
    # a long sleep (a suspended laptop): each missed job runs once, not once per missed hour
    sched.last = clock()
    assert sorted(await sched.tick(clock() + 5 * 3600)) == ["digest_due", "watch"]


@pytest.mark.asyncio
async def test_scheduler_enqueues_into_the_in_process_runner(sqlite_url: str, tmp_path: Path) -> None:
    from jobs.runner import InProcessRunner
    from jobs.worker import functions

    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, workers=1)
    db, ws, acct = await setup(sqlite_url, digest_hour=9, digest_channel="C-DIG")
    rec = Recorder()
    ctx = {"db": db, "notify": rec, "settings": settings}
    runner = InProcessRunner(functions(settings), ctx)
    assert {"watch", "digest", "digest_due"} <= set(runner.functions)
    clock = Clock((NOW - timedelta(minutes=1)).timestamp())
    async with db.session() as s:  # a small org for the watch
        (await repo.get_account(s, acct.id)).options = {"seed": 1, "teams": 2, "resources_per_team": 4, "days": 3}
    try:
        sched = Scheduler(ctx, runner=runner, clock=clock, sleep=clock.sleep)
        await sched.tick()
        assert await sched.tick(clock() + 60) == ["digest_due"]  # 09:00 (digest_due gets the scheduled time)
        await runner.join()
        assert await sched.tick(clock() + 3600) == ["watch"]  # 09:05: the watch of every account
        await runner.join()
        assert runner.results["cron:watch"]["accounts"]["acct"].get("files_read") is not None
        assert [k for k, _ in rec.events][:1] == ["digest.ready"]
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_run_schedule_stops() -> None:
    clock = Clock(NOW.timestamp() + 10)
    stop = asyncio.Event()
    stop.set()
    sched = await asyncio.wait_for(run_schedule({}, clock, stop, sleep=clock.sleep), 5)
    assert sched.runs == []


def test_arq_cron_registration(tmp_path: Path) -> None:
    from arq.worker import Worker

    from jobs.worker import worker_settings

    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
                        redis_url="redis://127.0.0.1:6379/15", queue_name="costdna-test", workers=1)
    ws = worker_settings(settings)
    crons = {c.name: c for c in ws["cron_jobs"]}
    assert set(crons) == {"cron:watch", "cron:digest_due"}
    assert crons["cron:watch"].minute == 5 and crons["cron:digest_due"].minute == 0
    assert crons["cron:watch"].unique and crons["cron:watch"].hour is None
    # the next run of each, from 08:58
    for name, want in (("cron:watch", "09:05"), ("cron:digest_due", "09:00")):
        c = crons[name]
        c.calculate_next(NOW - timedelta(minutes=2))
        assert c.next_run.strftime("%H:%M") == want
    assert len(cron_jobs(settings)) == 2
    w = Worker(**ws, burst=True, handle_signals=False)
    assert {"cron:watch", "cron:digest_due", "watch", "digest", "digest_due", "scan_account"} <= set(w.functions)


@pytest.mark.asyncio
async def test_arq_worker_runs_digest_due(tmp_path: Path, sqlite_url: str, redis_url: str) -> None:
    from arq.worker import create_worker

    from jobs.queue import ArqQueue
    from jobs.worker import worker_settings

    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, redis_url=redis_url,
                        queue_name="costdna-test", workers=1, job_timeout=60)
    db, ws, acct = await setup(sqlite_url, digest_hour=datetime.now(UTC).hour, digest_channel="C-DIG")
    rec = Recorder()
    queue = await ArqQueue.connect(redis_url, settings.queue_name)
    try:
        assert await queue.enqueue("digest_due")
        w = create_worker(worker_settings(settings, notifiers=[lambda ctx: rec]), burst=True, poll_delay=0.05,
                          handle_signals=False)
        try:
            await asyncio.wait_for(w.async_run(), 60)
        finally:
            await w.close()
        assert w.jobs_complete == 1 and w.jobs_failed == 0
        assert [k for k, _ in rec.events if k == "digest.ready"] == ["digest.ready"]
    finally:
        await queue.close()
        await db.close()

"""Jobs without Redis: the in-process runner (arq semantics) running the real job functions on SQLite.

Scans end to end, duplicate job ids, Retry and timeouts, one scan per account with stale recovery,
bad input failing the scan row with its reason, tag write / re-run / rollback on a bundle, and the
debounced retrain that learns from human labels.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from arq import Retry
from arq.worker import func
from sqlalchemy import func as sa_func
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

import engine.scan
import jobs.tasks
from config.settings import Settings
from jobs.accounts import SYNTHETIC_DEFAULTS
from jobs.control import ScanBusy, request_retrain, request_scan, request_tag_write
from jobs.queue import LocalQueue, open_queue, scan_job_id
from jobs.runner import InProcessRunner, JobFailed
from jobs.tagwriter import BundleTagWriter
from jobs.worker import job_context
from storage import repo
from storage.models import Prediction, Resource, Scan, utcnow

# A synthetic account that scans in a couple of seconds.
SMALL = dict(seed=2, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)
assert set(SMALL) <= set(SYNTHETIC_DEFAULTS)


# Train the cheap model (conftest.fast_model): these tests are about what surrounds it.
pytestmark = pytest.mark.usefixtures("fast_model")


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=sqlite_url, redis_url=None, job_timeout=120,
                    job_tries=3, workers=1)


@pytest.fixture
def bundle_copy(tiny_org: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny org's bundle (tag writes modify its resources.json)."""
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle", dst)
    return dst


class Recorder:
    """A notifier that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, **payload: Any) -> None:
        self.events.append((kind, payload))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


async def env(settings: Settings) -> tuple[dict[str, Any], LocalQueue, Recorder]:
    rec = Recorder()
    ctx = await job_context(settings, notify=rec)
    queue = await open_queue(settings, ctx)
    assert isinstance(queue, LocalQueue)
    return ctx, queue, rec


async def add_account(ctx: dict[str, Any], name: str, kind: str = "synthetic", **kw: Any):
    async with ctx["db"].session() as s:
        return await repo.add_account(s, name, kind, **kw)


async def get_scan(ctx: dict[str, Any], scan_id: int) -> Scan:
    async with ctx["db"].session() as s:
        return await repo.get_scan(s, scan_id)


async def count(ctx: dict[str, Any], model: type, *where: Any) -> int:
    async with ctx["db"].session() as s:
        return int(await s.scalar(select(sa_func.count()).select_from(model).where(*where)) or 0)


# -- end to end -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.asyncio
async def test_scan_account_end_to_end(settings: Settings) -> None:
    ctx, queue, rec = await env(settings)
    try:
        acct = await add_account(ctx, "small", options=SMALL)
        scan = await request_scan(ctx["db"], queue, "small", requested_by="test")
        assert scan.status == "queued"
        await queue.join()
        done = await get_scan(ctx, scan.id)
        assert done.status == "succeeded", done.error
        assert done.progress == 100.0 and done.stage == "done"
        assert done.attempts == 1 and done.job_id == scan_job_id(acct.id)
        assert done.started_at and done.finished_at and done.finished_at >= done.started_at
        assert done.summary["resources"] == done.counts["resources"] > 0
        n_res = await count(ctx, Resource, Resource.account_id == acct.id)
        n_pred = await count(ctx, Prediction, Prediction.scan_id == scan.id)
        assert n_res == n_pred == done.counts["predictions"] == done.counts["resources"]
        assert done.counts["events"] > 0 and done.counts["cost_days"] > 0
        async with ctx["db"].session() as s:
            assert (await repo.get_account(s, "small")).status == "ok"
        # the notifier heard: started, progress through the stages (never going back), finished
        kinds = rec.kinds()
        assert kinds[0] == "scan.started" and kinds[-1] == "scan.finished", kinds
        assert set(kinds[1:-1]) == {"scan.progress"} and len(kinds) >= 4
        progress = [p["progress"] for k, p in rec.events if k == "scan.progress"]
        assert progress == sorted(progress) and progress[0] >= 0 and progress[-1] < 100
        stages = [p["stage"] for k, p in rec.events if k == "scan.progress"]
        assert {"cloudtrail", "model", "save"} <= set(stages), stages
        order = list(jobs.tasks.STAGES)
        assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
        assert rec.events[-1][1]["counts"] == done.counts
        assert queue.runner.results[scan_job_id(acct.id)]["status"] == "succeeded"
        # the job id is free again: the next scan of the account can be asked for at once
        again = await request_scan(ctx["db"], queue, "small")
        await queue.join()
        assert (await get_scan(ctx, again.id)).status == "succeeded"
        assert await count(ctx, Resource, Resource.account_id == acct.id) == n_res, "resources are upserted"
    finally:
        await ctx["db"].close()


# -- runner semantics -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_duplicate_job_id_is_refused_and_runs_once() -> None:
    runs: list[int] = []

    async def slow(ctx: dict, n: int) -> int:
        runs.append(n)
        await asyncio.sleep(0.2)
        return n

    runner = InProcessRunner([func(slow, name="slow")], {})
    assert await runner.enqueue("slow", 1, job_id="same") is True
    assert await runner.enqueue("slow", 2, job_id="same") is False  # queued or running: refused
    assert await runner.enqueue("slow", 3, job_id="other") is True
    await runner.join()
    assert sorted(runs) == [1, 3]
    assert runner.results == {"same": 1, "other": 3}
    assert await runner.enqueue("slow", 4, job_id="same") is True  # finished: the id is free again
    await runner.join()
    assert runs.count(4) == 1 and runner.results["same"] == 4
    with pytest.raises(KeyError):
        await runner.enqueue("nope")


@pytest.mark.asyncio
async def test_deferred_job_is_refused_while_waiting() -> None:
    runs: list[str] = []

    async def job(ctx: dict, tag: str) -> None:
        runs.append(tag)

    runner = InProcessRunner([func(job, name="job")], {})
    assert await runner.enqueue("job", "first", job_id="j", defer_by=0.2)
    await asyncio.sleep(0.05)
    assert not await runner.enqueue("job", "second", job_id="j", defer_by=0.2)
    await runner.join()
    assert runs == ["first"]


@pytest.mark.asyncio
async def test_retry_reruns_with_next_job_try_then_gives_up() -> None:
    tries: dict[str, list[int]] = {"ok": [], "never": []}

    async def flaky(ctx: dict, key: str) -> str:
        tries[key].append(ctx["job_try"])
        assert ctx["job_id"] == key
        if key == "never" or ctx["job_try"] < 3:
            raise Retry(defer=0.01)
        return "done"

    runner = InProcessRunner([func(flaky, name="flaky", max_tries=3)], {"base": 1})
    await runner.enqueue("flaky", "ok", job_id="ok")
    await runner.enqueue("flaky", "never", job_id="never")
    await runner.join()
    assert tries["ok"] == [1, 2, 3] and runner.results["ok"] == "done"
    assert tries["never"] == [1, 2, 3]
    assert isinstance(runner.results["never"], JobFailed) and "3 tries" in str(runner.results["never"])


@pytest.mark.asyncio
async def test_runner_timeout_and_exception_fail_the_job() -> None:
    async def hang(ctx: dict) -> None:
        await asyncio.sleep(30)

    async def boom(ctx: dict) -> None:
        raise RuntimeError("kaput")

    runner = InProcessRunner([func(hang, name="hang", timeout=0.2), func(boom, name="boom")], {})
    await runner.enqueue("hang", job_id="h")
    await runner.enqueue("boom", job_id="b")
    await asyncio.wait_for(runner.join(), 10)
    assert isinstance(runner.results["h"], JobFailed) and "timed out" in str(runner.results["h"])
    assert isinstance(runner.results["b"], JobFailed) and "kaput" in str(runner.results["b"])
    assert not runner.active


@pytest.mark.asyncio
async def test_scan_timeout_fails_the_row_and_frees_the_account(settings: Settings, bundle_copy: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> None:
        release.wait(20)
        raise RuntimeError("released")

    monkeypatch.setattr(engine.scan, "scan_bundle", stuck)
    settings = settings.model_copy(update={"job_timeout": 2})
    ctx, queue, rec = await env(settings)
    try:
        await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        scan = await request_scan(ctx["db"], queue, "b")
        await asyncio.wait_for(queue.join(), 15)
        row = await get_scan(ctx, scan.id)
        assert row.status == "failed" and "timed out" in row.error, (row.status, row.error)
        assert rec.kinds()[-1] == "scan.failed"
        # not stuck "running": the account can be scanned again at once
        nxt = await request_scan(ctx["db"], queue, "b")
        assert nxt.id != scan.id
        await asyncio.wait_for(queue.join(), 15)
    finally:
        release.set()
        await ctx["db"].close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_transient_error_retries_the_scan(settings: Settings, bundle_copy: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error while saving: nothing of the failed try is kept, the retry (try 2) saves it all."""
    real = jobs.tasks.save_scan_result
    calls: list[int] = []

    async def flaky_save(s, account_id, scan_id, result, progress=None):  # type: ignore[no-untyped-def]
        calls.append(scan_id)
        n = await real(s, account_id, scan_id, result, progress)  # rows written, then the commit fails
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return n

    monkeypatch.setattr(jobs.tasks, "save_scan_result", flaky_save)
    monkeypatch.setattr(jobs.tasks, "backoff", lambda job_try: 0.01)
    ctx, queue, rec = await env(settings)
    try:
        acct = await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        scan = await request_scan(ctx["db"], queue, "b")
        await queue.join()
        row = await get_scan(ctx, scan.id)
        assert row.status == "succeeded", row.error
        assert row.attempts == 2 and len(calls) == 2
        assert [p["attempt"] for k, p in rec.events if k == "scan.started"] == [1, 2]
        assert await count(ctx, Prediction, Prediction.scan_id == scan.id) == row.counts["resources"]
        assert await count(ctx, Resource, Resource.account_id == acct.id) == row.counts["resources"]
    finally:
        await ctx["db"].close()


@pytest.mark.asyncio
async def test_transient_error_gives_up_after_job_tries(settings: Settings, bundle_copy: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> None:
        tries.append(1)
        raise ConnectionError("network down")

    monkeypatch.setattr(engine.scan, "scan_bundle", broken)
    monkeypatch.setattr(jobs.tasks, "backoff", lambda job_try: 0.01)
    ctx, queue, _ = await env(settings.model_copy(update={"job_tries": 2}))
    try:
        await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        scan = await request_scan(ctx["db"], queue, "b")
        await queue.join()
        row = await get_scan(ctx, scan.id)
        assert row.status == "failed" and "gave up after 2 tries" in row.error and "network down" in row.error
        assert len(tries) == 2 and row.attempts == 2
    finally:
        await ctx["db"].close()


# -- one scan per account -------------------------------------------------------------------------


class StubQueue:
    """Records enqueues; ``accept`` decides what enqueue returns."""

    def __init__(self, accept: bool = True) -> None:
        self.accept, self.calls = accept, []

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> bool:
        self.calls.append((name, args, job_id))
        return self.accept

    async def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_request_scan_busy_and_stale_recovery(settings: Settings) -> None:
    ctx, _, _ = await env(settings)
    db, q = ctx["db"], StubQueue()
    try:
        acct = await add_account(ctx, "a", options=SMALL)
        first = await request_scan(db, q, "a")
        assert q.calls == [("scan_account", (first.id,), scan_job_id(acct.id))]
        with pytest.raises(ScanBusy, match="already queued") as busy:  # queued, not yet taken
            await request_scan(db, q, "a")
        assert busy.value.scan.id == first.id
        async with db.session() as s:
            await repo.claim_scan(s, first.id, "w1")
            await repo.report_progress(s, first.id, "model", 80)
        with pytest.raises(ScanBusy, match="already running") as busy:  # running, recently
            await request_scan(db, q, "a", stale_after_s=3600)
        assert "model" in str(busy.value)
        assert len(q.calls) == 1 and await count(ctx, Scan) == 1
        # its worker died two hours ago: the scan is stale, failed, and a new one goes ahead
        async with db.session() as s:
            await s.execute(update(Scan).where(Scan.id == first.id).values(started_at=utcnow() - timedelta(hours=2)))
        second = await request_scan(db, q, "a", stale_after_s=3600)
        old = await get_scan(ctx, first.id)
        assert old.status == "failed" and "interrupted" in old.error
        assert second.id != first.id and len(q.calls) == 2
        # in-process: a scan left "queued" by a run that ended is stale at once
        with pytest.raises(ScanBusy):
            await request_scan(db, q, "a")
        third = await request_scan(db, q, "a", in_process=True)
        assert (await get_scan(ctx, second.id)).status == "failed" and third.status == "queued"
        # the queue refusing the job id (a scan already queued there): the new row is failed, ScanBusy
        async with db.session() as s:
            await repo.fail_scan(s, third.id, "test")
        with pytest.raises(ScanBusy):
            await request_scan(db, StubQueue(accept=False), "a")
        last = (await repo_last(ctx, acct.id))
        assert last.status == "failed" and "not started" in last.error
    finally:
        await db.close()


async def repo_last(ctx: dict[str, Any], account_id: int) -> Scan:
    async with ctx["db"].session() as s:
        scan = await repo.last_scan(s, account_id)
        assert scan is not None
        return scan


@pytest.mark.asyncio
async def test_scan_busy_while_the_runner_has_it(settings: Settings, bundle_copy: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = engine.scan.scan_bundle

    def held(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.scan, "scan_bundle", held)
    ctx, queue, _ = await env(settings)
    try:
        await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        scan = await request_scan(ctx["db"], queue, "b")
        for _ in range(100):
            if (await get_scan(ctx, scan.id)).status == "running":
                break
            await asyncio.sleep(0.05)
        with pytest.raises(ScanBusy, match="running"):
            await request_scan(ctx["db"], queue, "b")
        release.set()
        await queue.join()
        assert (await get_scan(ctx, scan.id)).status == "succeeded"
        assert await count(ctx, Scan) == 1
    finally:
        release.set()
        await ctx["db"].close()


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unknown_account_lists_the_known_ones(settings: Settings) -> None:
    ctx, queue, _ = await env(settings)
    try:
        await add_account(ctx, "alpha", options=SMALL)
        await add_account(ctx, "beta", options=SMALL)
        with pytest.raises(repo.NotFound) as e:
            await request_scan(ctx["db"], queue, "nope")
        assert "nope" in str(e.value) and "alpha" in str(e.value) and "beta" in str(e.value)
        with pytest.raises(repo.NotFound, match="alpha, beta"):  # two accounts and no name
            await request_scan(ctx["db"], queue, None)
        assert await count(ctx, Scan) == 0
    finally:
        await ctx["db"].close()


@pytest.mark.asyncio
async def test_deleted_bundle_dir_fails_the_scan(settings: Settings, bundle_copy: Path) -> None:
    ctx, queue, rec = await env(settings)
    try:
        acct = await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        shutil.rmtree(bundle_copy)
        scan = await request_scan(ctx["db"], queue, "b")
        await queue.join()
        row = await get_scan(ctx, scan.id)
        assert row.status == "failed" and str(bundle_copy) in row.error and "does not exist" in row.error
        assert row.attempts == 1, "bad input is not retried"
        assert rec.kinds() == ["scan.started", "scan.failed"]
        assert await count(ctx, Prediction, Prediction.scan_id == scan.id) == 0
        assert await count(ctx, Resource, Resource.account_id == acct.id) == 0
        async with ctx["db"].session() as s:
            a = await repo.get_account(s, "b")
        assert a.status == "error" and str(bundle_copy) in a.status_reason
    finally:
        await ctx["db"].close()


@pytest.mark.asyncio
async def test_aws_account_without_credentials_fails_the_scan(settings: Settings, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ctx, queue, _ = await env(settings)
    try:
        acct = await add_account(ctx, "prod", "aws", role_arn="arn:aws:iam::123456789012:role/costdna-read")
        scan = await request_scan(ctx["db"], queue, "prod")
        await queue.join()
        row = await get_scan(ctx, scan.id)
        assert row.status == "failed" and "no AWS credentials" in row.error, row.error
        assert row.attempts == 1
        assert await count(ctx, Prediction, Prediction.scan_id == scan.id) == 0
        assert await count(ctx, Resource, Resource.account_id == acct.id) == 0
    finally:
        await ctx["db"].close()


# -- tag writes -----------------------------------------------------------------------------------


def _untagged_arns(org: Path, tagged: set[str]) -> list[str]:
    import csv

    with (org / "truth.csv").open(newline="") as fh:
        return [r["arn"] for r in csv.DictReader(fh) if r["arn"] not in tagged]


@pytest.mark.asyncio
async def test_apply_rerun_and_rollback_tags(settings: Settings, bundle_copy: Path, tiny_org: Path) -> None:
    writer = BundleTagWriter(bundle_copy)
    before = writer.read()
    tagged = sorted(before)[:2]
    untagged = _untagged_arns(tiny_org, set(before))[:1]
    assert len(tagged) == 2 and len(untagged) == 1
    targets = tagged + untagged
    ctx, queue, rec = await env(settings)
    try:
        acct = await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        async with ctx["db"].session() as s:
            cs = await repo.propose_change_set(
                s, acct.id, [{"arn": a, "team": "platform-new", "previous_tags": before.get(a, {}),
                              "confidence": 0.9} for a in targets] + [
                    {"arn": "not-an-arn", "team": "platform-new", "previous_tags": {}}])
        # proposed, not approved: the job writes nothing
        raw = (bundle_copy / "resources.json").read_bytes()
        assert await request_tag_write(queue, cs.id)
        await queue.join()
        assert (bundle_copy / "resources.json").read_bytes() == raw
        async with ctx["db"].session() as s:
            await repo.transition_change_set(s, cs.id, "approved", actor="U1")
        assert await request_tag_write(queue, cs.id)
        await queue.join()
        after = writer.read()
        for a in targets:
            assert after[a] == {**before.get(a, {}), "team": "platform-new"}
        assert {a: t for a, t in after.items() if a not in targets} == {a: t for a, t in before.items()
                                                                        if a not in targets}
        json.loads((bundle_copy / "resources.json").read_text())  # whole, valid JSON
        from engine.bundle import load_bundle
        from engine.tagrules import TagRules

        seen = load_bundle(bundle_copy, workers=1)  # what the next scan reads
        assert all(TagRules.default().team_of(seen.resources[a].tags)[0] == "platform-new" for a in targets)
        assert not list(bundle_copy.glob(".resources.*")), "no temp file left"
        async with ctx["db"].session() as s:
            got = await repo.get_change_set(s, cs.id)
            items = {i.arn: i for i in await repo.change_items(s, cs.id)}
        assert got.status == "applied" and got.summary["applied"] == 3 and got.summary["failed"] == 1
        assert all(items[a].status == "applied" for a in targets)
        assert items["not-an-arn"].status == "failed" and "not an ARN" in items["not-an-arn"].error
        assert ("changeset.applied", {"change_set_id": cs.id, "done": 3, "failed": 1}) in rec.events
        # running it again does nothing
        raw = (bundle_copy / "resources.json").read_bytes()
        assert await request_tag_write(queue, cs.id)
        await queue.join()
        assert (bundle_copy / "resources.json").read_bytes() == raw
        assert queue.runner.results[f"apply:changeset:{cs.id}"]["skipped"] is True
        # rollback restores the previous tags exactly
        assert await request_tag_write(queue, cs.id, rollback=True)
        await queue.join()
        restored = writer.read()
        for a in targets:
            assert restored.get(a, {}) == before.get(a, {}), a
        assert {a: t for a, t in restored.items() if t} == before
        async with ctx["db"].session() as s:
            got = await repo.get_change_set(s, cs.id)
            items = {i.arn: i for i in await repo.change_items(s, cs.id)}
        assert got.status == "rolled_back"
        assert all(items[a].status == "rolled_back" for a in targets)
        # a rollback of a rollback: nothing
        raw = (bundle_copy / "resources.json").read_bytes()
        assert await request_tag_write(queue, cs.id, rollback=True)
        await queue.join()
        assert (bundle_copy / "resources.json").read_bytes() == raw
    finally:
        await ctx["db"].close()


# -- retrain --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.asyncio
async def test_retrain_is_debounced_and_passes_human_labels(settings: Settings, bundle_copy: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, str] | None] = []
    real = engine.scan.scan_bundle

    def spy(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        seen.append(kwargs.get("extra_labels"))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.scan, "scan_bundle", spy)
    arns = sorted(BundleTagWriter(bundle_copy).read())[:3]
    ctx, queue, _ = await env(settings)
    try:
        acct = await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        async with ctx["db"].session() as s:
            for a in arns:
                await repo.add_label(s, acct.id, a, "payments", actor="U1")
        assert await request_retrain(queue, acct.id, delay_s=0.3) is True
        async with ctx["db"].session() as s:  # a second label within the window
            await repo.add_label(s, acct.id, arns[0], "search", actor="U2")
        assert await request_retrain(queue, acct.id, delay_s=0.3) is False
        await queue.join()
        async with ctx["db"].session() as s:
            scans = list((await s.scalars(select(Scan).where(Scan.account_id == acct.id))).all())
            labels = await repo.current_labels(s, acct.id)
        assert len(scans) == 1 and scans[0].requested_by == "retrain" and scans[0].status == "succeeded"
        want = {arns[0]: "search", arns[1]: "payments", arns[2]: "payments"}
        assert labels == want, "human labels survive the scan (tag labels do not touch them)"
        assert seen == [want], "the engine got the labels in force when the scan started"
        assert await count(ctx, Prediction, Prediction.scan_id == scans[0].id) == scans[0].counts["resources"]
    finally:
        await ctx["db"].close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_retrain_waits_for_a_running_scan_and_resumes_its_own(settings: Settings, bundle_copy: Path) -> None:
    ctx, _, _ = await env(settings)
    try:
        acct = await add_account(ctx, "b", "bundle", bundle_path=str(bundle_copy))
        async with ctx["db"].session() as s:
            other = await repo.create_scan(s, acct, requested_by="cli")
            await repo.claim_scan(s, other.id, "scan:account:1")
        with pytest.raises(Retry):  # a user's scan is running: it will not see the labels, come back
            await jobs.tasks.retrain({**ctx, "job_id": "retrain:account:1", "job_try": 1}, acct.id)
        async with ctx["db"].session() as s:
            await repo.fail_scan(s, other.id, "test")
            own = await repo.create_scan(s, acct, requested_by="retrain")  # a retrain try whose worker died
            await repo.claim_scan(s, own.id, "retrain:account:1")
        res = await jobs.tasks.retrain({**ctx, "job_id": "retrain:account:1", "job_try": 2}, acct.id)
        assert res["scan_id"] == own.id and res["status"] == "succeeded"
        row = await get_scan(ctx, own.id)
        assert row.status == "succeeded" and row.attempts == 2
        assert await count(ctx, Scan) == 2
    finally:
        await ctx["db"].close()

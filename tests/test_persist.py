"""storage.persist: one engine scan saved on SQLite and PostgreSQL (``db_url``), idempotently."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from storage import repo
from storage.db import Database
from storage.models import Account, AuditEntry, DailyCost, Event, Label, Prediction, Resource, Scan
from storage.persist import save_resources, save_scan_result

pytestmark = pytest.mark.asyncio

COUNTED = (Resource, Event, DailyCost, Prediction, Label)


@pytest_asyncio.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await Database(db_url).init()
    try:
        yield database
    finally:
        await database.close()


async def _account_and_scans(db: Database, n: int = 1) -> tuple[int, list[int]]:
    async with db.session() as s:
        acct = await repo.add_account(s, "tiny", "synthetic")
        return acct.id, [(await repo.create_scan(s, acct)).id for _ in range(n)]


async def _rows(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {m.__tablename__: int(await s.scalar(select(func.count()).select_from(m)) or 0) for m in COUNTED}


def _event_ids(bundle: Any) -> set[str] | None:
    """Distinct CloudTrail eventIDs the engine kept, whatever shape ``Activity.changes`` has; None
    when the engine has no such attribute."""
    if not hasattr(bundle.activity, "changes"):
        return None
    changes = bundle.activity.changes
    if changes is None:
        return set()
    if hasattr(changes, "column"):  # pyarrow.Table
        return {e for e in changes.column("event_id").to_pylist() if e}
    ids: set[str] = set()
    for part in changes:  # record batches or dicts
        if hasattr(part, "to_pylist"):
            ids.update(r["event_id"] for r in part.to_pylist() if r.get("event_id"))
        elif part.get("event_id"):
            ids.add(part["event_id"])
    return ids


def _expected(result: Any) -> dict[str, int]:
    bundle = result.bundle
    return {"resources": len(bundle.resources), "predictions": len(result.rows),
            "cost_days": sum(int(np.count_nonzero(c)) for c in bundle.costs.by_resource.values())}


async def test_save_scan_result_counts_and_idempotence(db: Database, tiny_scan: Any) -> None:
    acct, (scan1, scan2) = await _account_and_scans(db, 2)
    expected = _expected(tiny_scan)
    event_ids = _event_ids(tiny_scan.bundle)
    tagged = {r.arn: r.tag_team for r in tiny_scan.rows if r.tag_team}
    assert expected["resources"] > 0 and expected["cost_days"] > 0 and tagged

    stages: list[tuple[str, float]] = []
    async with db.session() as s:
        counts = await save_scan_result(s, acct, scan1, tiny_scan, progress=lambda st, f: stages.append((st, f)))
    assert stages[0] == ("save", 0.0) and stages[-1] == ("save", 1.0)
    assert {k: counts[k] for k in expected} == expected
    assert counts["tag_labels"] == len(tagged)
    rows = await _rows(db)
    assert rows["resources"] == expected["resources"]
    assert rows["predictions"] == expected["predictions"]
    assert rows["daily_costs"] == expected["cost_days"]
    assert rows["labels"] == len(tagged)
    if event_ids is None:  # an engine without management events saves none
        assert counts["events"] == 0 == rows["events"]
    else:
        assert len(event_ids) > 0
        assert counts["events"] == len(event_ids) == rows["events"]

    async with db.session() as s:  # what went in matches the engine
        res = {r.arn: r for r in await s.scalars(select(Resource).where(Resource.account_id == acct))}
        some = next(r for r in tiny_scan.bundle.resources.values() if r.tags)
        assert (res[some.arn].resource_id, res[some.arn].type, res[some.arn].tags) == (some.id, some.kind, some.tags)
        arn, costs = next(iter(tiny_scan.bundle.costs.by_resource.items()))
        stored = await s.scalar(select(func.sum(DailyCost.cost_usd)).where(DailyCost.arn == arn))
        assert stored == pytest.approx(float(np.sum(costs)))
        preds = {p.arn: p for p in await repo.predictions(s, scan1)}
        row = tiny_scan.rows[0]
        p = preds[row.arn]
        assert (p.team, p.tag_team, p.resource_id) == (row.predicted_team, row.tag_team, row.resource_id)
        assert p.confidence == pytest.approx(row.confidence)
        if tiny_scan.prediction is not None:
            assert 0 < len(p.probabilities) <= 3 and set(p.probabilities) <= set(tiny_scan.classes)
        assert await repo.current_labels(s, acct, sources=("tag",)) == tagged
        first_seen = res[some.arn].first_seen
        if event_ids:
            ev = await s.scalar(select(Event).where(Event.event_id == sorted(event_ids)[0]))
            assert ev is not None and ev.account_id == acct and isinstance(ev.resources, list) and ev.resources

    async with db.session() as s:  # the same scan again (a retried job), then into a new scan
        again = await save_scan_result(s, acct, scan1, tiny_scan)
        assert again["tag_labels"] == 0
    async with db.session() as s:
        again = await save_scan_result(s, acct, scan2, tiny_scan)
        assert again["tag_labels"] == 0
    rows2 = await _rows(db)
    assert rows2 == {**rows, "predictions": 2 * expected["predictions"]}
    async with db.session() as s:
        assert len(await repo.predictions(s, scan1)) == expected["predictions"]  # replaced, not appended
        assert len(await repo.predictions(s, scan2)) == expected["predictions"]
        kept = await s.scalar(select(Resource).where(Resource.arn == some.arn))
        assert kept.first_seen == first_seen and kept.last_seen >= first_seen


def _retag(result: Any, arn: str, team: str) -> Any:
    """A copy of ``result`` (the shared fixture stays untouched) where ``arn`` carries another team tag."""
    bundle = result.bundle
    resources = dict(bundle.resources)
    resources[arn] = dataclasses.replace(resources[arn], tags={**resources[arn].tags, "team": team})
    rows = [dataclasses.replace(r, tag_team=team) if r.arn == arn else r for r in result.rows]
    return dataclasses.replace(result, bundle=dataclasses.replace(bundle, resources=resources), rows=rows)


async def test_tag_labels_follow_tag_changes(db: Database, tiny_scan: Any) -> None:
    acct, (scan1, scan2) = await _account_and_scans(db, 2)
    tagged = {r.arn: r.tag_team for r in tiny_scan.rows if r.tag_team}
    arn = sorted(tagged)[0]
    new_team = "team-that-moved-in"
    async with db.session() as s:
        await save_scan_result(s, acct, scan1, tiny_scan)
    changed = _retag(tiny_scan, arn, new_team)
    assert tiny_scan.by_arn()[arn].tag_team == tagged[arn]  # the fixture is untouched
    async with db.session() as s:
        counts = await save_scan_result(s, acct, scan2, changed)
    assert counts["tag_labels"] == 1
    async with db.session() as s:
        history = await repo.label_history(s, acct, arn)
        assert [(x.team, x.source) for x in history] == [(tagged[arn], "tag"), (new_team, "tag")]
        assert history[0].superseded_at is not None and history[1].superseded_at is None
        assert await repo.current_labels(s, acct, sources=("tag",)) == {**tagged, arn: new_team}
        assert int(await s.scalar(select(func.count()).select_from(Label))) == len(tagged) + 1
        assert (await s.scalar(select(Resource).where(Resource.arn == arn))).tags["team"] == new_team
        # once more with the same tags: nothing new
        assert (await save_scan_result(s, acct, scan2, changed))["tag_labels"] == 0
    async with db.session() as s:
        assert int(await s.scalar(select(func.count()).select_from(Label))) == len(tagged) + 1


async def test_failure_mid_transaction_leaves_no_rows(db: Database, tiny_scan: Any) -> None:
    acct, (scan1,) = await _account_and_scans(db)
    with pytest.raises(RuntimeError, match="worker killed"):
        async with db.session() as s:
            n = await save_resources(s, acct, tiny_scan.bundle.resources.values())
            assert n == len(tiny_scan.bundle.resources)
            assert int(await s.scalar(select(func.count()).select_from(Resource))) == n  # visible inside
            raise RuntimeError("worker killed")
    assert set((await _rows(db)).values()) == {0}

    with pytest.raises(RuntimeError, match="after everything"):
        async with db.session() as s:
            await repo.claim_scan(s, scan1, "job")
            await save_scan_result(s, acct, scan1, tiny_scan)
            await repo.finish_scan(s, scan1, {}, {"resources": 1})
            raise RuntimeError("after everything")
    assert set((await _rows(db)).values()) == {0}
    async with db.session() as s:
        scan = await repo.get_scan(s, scan1)
        assert scan.status == "queued" and scan.attempts == 0
        assert int(await s.scalar(select(func.count()).select_from(Scan))) == 1
        assert int(await s.scalar(select(func.count()).select_from(Account))) == 1
        assert int(await s.scalar(select(func.count()).select_from(AuditEntry))) == 2  # account.add, scan.request

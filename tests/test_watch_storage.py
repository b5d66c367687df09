"""The watch's storage (migration 0004, storage.watch_repo) on SQLite and PostgreSQL: the migration
round trip, spikes stored once per key and merged by resource, decisions checked against the nonce
and audited once, expected levels, team routes, switches, files and parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from alembic import command
from sqlalchemy import inspect

from storage import repo, watch_repo
from storage.db import Database, alembic_config, current_revision

T0 = 1_780_000_000 // 3600 * 3600  # an hour boundary
WATCH_TABLES = {"spikes", "watch_files", "watch_changes", "team_routes", "expected_levels", "app_switches"}


@pytest.mark.asyncio
async def test_migration_0004_round_trip(db_url: str) -> None:
    db = await Database(db_url).init()
    try:
        cfg = alembic_config(db_url)

        async def tables() -> set[str]:
            async with db.engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

        assert await tables() >= WATCH_TABLES

        def run(conn, rev: str, down: bool) -> None:  # type: ignore[no-untyped-def]
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, rev)

        async with db.engine.begin() as conn:
            await conn.run_sync(run, "0003", True)
        assert await current_revision(db.engine) == "0003"
        assert not WATCH_TABLES & await tables()
        async with db.engine.begin() as conn:
            await conn.run_sync(run, "head", False)
        assert await tables() >= WATCH_TABLES
    finally:
        await db.close()


def spike_fields(start_h: int = 0, hours: int = 3, **kw):  # type: ignore[no-untyped-def]
    base = dict(arn="arn:aws:ec2:us-east-1:1:instance/i-1", resource_id="i-1", kind="statistical",
                start=T0 + start_h * 3600, end=T0 + (start_h + hours) * 3600, peak_usd_per_hour=10.0,
                baseline_usd_per_hour=1.0, extra_usd=27.0, severity="warning", reasons=["z 9"], score=9.0,
                owner_team="payments", owner_confidence=0.9, owner_source="predicted")
    base.update(kw)
    return base


@pytest.mark.asyncio
async def test_spikes_upsert_merge_and_decide(db_url: str) -> None:
    async with Database(db_url) as db:
        async with db.session() as s:
            acct = await repo.add_account(s, "a", "synthetic")
            row, created = await watch_repo.upsert_spike(s, acct.id, f"i-1@{T0 // 3600}", **spike_fields())
            assert created and row.delivery == "pending" and row.status == "open" and row.nonce
            assert row.start == datetime.fromtimestamp(T0, UTC)
            spike_id, nonce = row.id, row.nonce
        async with db.session() as s:  # same key: updated, not created
            row, created = await watch_repo.upsert_spike(s, acct.id, f"i-1@{T0 // 3600}",
                                                         **spike_fields(hours=4, peak_usd_per_hour=12.0))
            assert not created and row.id == spike_id and row.peak_usd_per_hour == 12.0
            assert await watch_repo.claim_alert(s, spike_id)
            assert not await watch_repo.claim_alert(s, spike_id)  # alerted once
        async with db.session() as s:  # another key adjoining the same resource's spike: merged
            row, created = await watch_repo.upsert_spike(s, acct.id, f"i-1@{T0 // 3600 + 4}",
                                                         **spike_fields(start_h=4, hours=2, severity="critical"))
            assert not created and row.id == spike_id and row.delivery == "sent"
            assert row.end == datetime.fromtimestamp(T0 + 6 * 3600, UTC) and row.severity == "critical"
            # far later: a new spike
            far, created = await watch_repo.upsert_spike(s, acct.id, f"i-1@{T0 // 3600 + 30}",
                                                         **spike_fields(start_h=30))
            assert created and far.id != spike_id
            assert [x.id for x in await watch_repo.open_spikes(s, acct.id)] == [far.id, spike_id]
            assert [x.id for x in await watch_repo.open_spikes(s, acct.id, since=T0 + 20 * 3600)] == [far.id]
        async with db.session() as s:
            with pytest.raises(repo.NotFound):
                await watch_repo.decide_spike(s, spike_id, "forged", "expected", "U1")
            with pytest.raises(ValueError):
                await watch_repo.decide_spike(s, spike_id, nonce, "snooze", "U1")  # needs until
            row = await watch_repo.decide_spike(s, spike_id, nonce, "expected", "U1")
            assert row.status == "expected"
        async with db.session() as s:  # the replayed click changes nothing and is not audited again
            with pytest.raises(repo.Conflict, match="already expected"):
                await watch_repo.decide_spike(s, spike_id, nonce, "expected", "U2")
        async with db.session() as s:
            until = datetime.now(UTC) + timedelta(hours=24)
            row = await watch_repo.decide_spike(s, far.id, far.nonce, "snooze", "U1", until=until)
            assert row.status == "snoozed"
        async with db.session() as s:
            with pytest.raises(repo.Conflict):
                await watch_repo.decide_spike(s, far.id, far.nonce, "snooze", "U1", until=until)
            row = await watch_repo.decide_spike(s, far.id, far.nonce, "snooze", "U1", until=until + timedelta(days=6))
            assert row.snooze_until > until
            entries = await repo.audit_entries(s, account_id=acct.id)
            actions = [e.action for e in entries if e.action.startswith("spike.")]
            assert sorted(actions) == ["spike.expected", "spike.snooze", "spike.snooze"]
            assert [e.actor for e in entries if e.action == "spike.expected"] == ["U1"]


@pytest.mark.asyncio
async def test_expected_routes_switches_files(db_url: str) -> None:
    async with Database(db_url) as db:
        async with db.session() as s:
            ws = await repo.get_or_create_workspace(s, "slack", "T1")
            acct = await repo.add_account(s, "a", "synthetic", workspace_id=ws.id)
            await watch_repo.set_expected(s, acct.id, "arn:x", 4.0, actor="U1")
            await watch_repo.set_expected(s, acct.id, "arn:x", 3.0, actor="U1")  # the higher level stays
            assert await watch_repo.expected_levels(s, acct.id) == {"arn:x": 4.0}
            await watch_repo.set_team_route(s, ws.id, "payments", ["U1", "U2", "U1"], "C9", actor="U1")
            await watch_repo.set_team_route(s, ws.id, "payments", ["U3"], None, actor="U1")
            routes = await watch_repo.team_routes(s, ws.id)
            assert routes["payments"].users == ["U3"] and routes["payments"].channel is None
            assert await watch_repo.team_route(s, ws.id, "nobody") is None
            assert await watch_repo.panic(s) is False
            await watch_repo.set_switch(s, watch_repo.PANIC, True, actor="U1")
        async with db.session() as s:
            assert await watch_repo.panic(s) is True
            assert await watch_repo.get_switch(s, "nope", 5) == 5
            await watch_repo.set_switch(s, watch_repo.PANIC, False, actor="U2")
            assert [e.actor for e in await repo.audit_entries(s, action="switch.alerts.panic")] == ["U2", "U1"]
            f1 = SimpleNamespace(path="cost/a.csv", size=10, mtime=1.0, kind="cost")
            f2 = SimpleNamespace(path="cloudtrail/b.json", size=5, mtime=2.0, kind="cloudtrail")
            await watch_repo.record_files(s, acct.id, [f1, f2], parts={"cost/a.csv": b"one"}, rows={"cost/a.csv": 3})
        async with db.session() as s:
            seen = await watch_repo.seen_files(s, acct.id)
            assert {p: (r.size, r.kind) for p, r in seen.items()} == {"cost/a.csv": (10, "cost"),
                                                                      "cloudtrail/b.json": (5, "cloudtrail")}
            assert await watch_repo.load_parts(s, acct.id) == {"cost/a.csv": b"one"}
            f1b = SimpleNamespace(path="cost/a.csv", size=12, mtime=3.0, kind="cost")  # changed: replaced
            await watch_repo.record_files(s, acct.id, [f1b], parts={"cost/a.csv": b"two"})
        async with db.session() as s:
            assert (await watch_repo.seen_files(s, acct.id))["cost/a.csv"].size == 12
            # more paths than one IN (...) takes: looked up in batches, each path still one row
            many = [SimpleNamespace(path=f"cloudtrail/{i}.json", size=i, mtime=1.0, kind="cloudtrail")
                    for i in range(2 * watch_repo.IN_BATCH + 3)]
            await watch_repo.record_files(s, acct.id, many)
            await watch_repo.record_files(s, acct.id, [SimpleNamespace(**{**vars(f), "size": f.size + 1})
                                                       for f in many])
        async with db.session() as s:
            seen = await watch_repo.seen_files(s, acct.id)
            assert len(seen) == len(many) + 2 and seen["cloudtrail/4.json"].size == 5
            assert await watch_repo.load_parts(s, acct.id) == {"cost/a.csv": b"two"}
            assert (await watch_repo.load_changes(s, acct.id)).state == {}
            await watch_repo.save_changes(s, acct.id, deploys=[{"time": 1}], state={"last_scored_hour": 5})
            await watch_repo.save_changes(s, acct.id, state={"first_hour": 1})
            assert await watch_repo.load_change_parts(s, acct.id) == []
            p1 = await watch_repo.add_change_part(s, acct.id, b"ev1", 3, 10.0, 20.0)
            p2 = await watch_repo.add_change_part(s, acct.id, b"ev2", 1, 30.0, 30.0)
        async with db.session() as s:
            w = await watch_repo.load_changes(s, acct.id)
            assert w.deploys == [{"time": 1}]
            assert w.state == {"last_scored_hour": 5, "first_hour": 1}
            parts = await watch_repo.load_change_parts(s, acct.id)
            assert [(p.id, p.blob, p.events, p.min_time, p.max_time) for p in parts] == [
                (p1, b"ev1", 3, 10.0, 20.0), (p2, b"ev2", 1, 30.0, 30.0)]  # oldest first
            assert await watch_repo.delete_change_parts(s, acct.id, [p1]) == 1
            assert await watch_repo.delete_change_parts(s, acct.id, []) == 0
        async with db.session() as s:
            assert [p.blob for p in await watch_repo.load_change_parts(s, acct.id)] == [b"ev2"]


@pytest.mark.asyncio
async def test_alert_volume(sqlite_url: str) -> None:
    async with Database(sqlite_url) as db, db.session() as s:
        acct = await repo.add_account(s, "a", "synthetic")
        now = datetime.now(UTC)
        for i in range(5):
            row, _ = await watch_repo.upsert_spike(s, acct.id, f"k{i}", **spike_fields(
                start_h=100 * i, arn=f"arn:{i}"))
            await watch_repo.claim_alert(s, row.id, at=now - timedelta(hours=2 * i))  # 0, 2, 4, 6, 8 h ago
        assert await watch_repo.alerts_last_hour(s, acct.id, now) == 1
        assert await watch_repo.usual_hourly_alerts(s, acct.id, now) == pytest.approx(5 / 168)


@pytest.mark.asyncio
async def test_mark_expected_and_resolve_stale(db_url: str) -> None:
    async with Database(db_url) as db:
        async with db.session() as s:
            acct = await repo.add_account(s, "a", "synthetic")
            row, _ = await watch_repo.upsert_spike(s, acct.id, "k1", **spike_fields())
            old, _ = await watch_repo.upsert_spike(s, acct.id, "k2", **spike_fields(start_h=-200, arn="arn:old"))
        async with db.session() as s:
            got, level = await watch_repo.mark_expected(s, row.id, row.nonce, "U1")
            assert got.status == "expected" and level == 10.0
            assert await watch_repo.expected_levels(s, acct.id) == {row.arn: 10.0}
        async with db.session() as s:
            with pytest.raises(repo.Conflict):
                await watch_repo.mark_expected(s, row.id, row.nonce, "U1")
        async with db.session() as s:
            assert await watch_repo.resolve_stale(s, acct.id, datetime.fromtimestamp(T0 - 100 * 3600, UTC)) == 1
            assert (await watch_repo.get_spike(s, old.id)).status == "resolved"
            assert (await watch_repo.get_spike(s, row.id)).status == "expected"

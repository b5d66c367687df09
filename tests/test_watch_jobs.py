"""The watch job (jobs.watch) on SQLite and PostgreSQL.

Governance on detected spikes (no files read): alerted once, panic, strict / audit / auto promotion,
cold-start critical always out, the circuit breaker's one storm notice, snoozes, history, routing.
End to end over a synthetic bundle: a watch stores spikes and alerts the new one; the next watch with
one more hour of files reads only those files and alerts nothing twice; a changed file is read again
and replaces its part; panic and strict send nothing but store everything.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import jobs.watch as jw
from config.settings import Settings
from jobs.route import Route, route_for
from storage import repo, watch_repo
from storage.db import Database

H0 = 1_780_000_000 // 3600  # an epoch hour


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, **payload: Any) -> None:
        self.events.append((kind, payload))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [p for k, p in self.events if k == kind]


def make_spike(i: int, *, hour: int = H0, hours: int = 2, severity: str = "warning", kind: str = "statistical",
               arn: str | None = None):  # type: ignore[no-untyped-def]
    from engine.spikes import Spike

    arn = arn or f"arn:aws:ec2:us-east-1:111122223333:instance/i-{i:04d}"
    return Spike(arn=arn, resource_id=arn.rsplit("/", 1)[-1], start=hour * 3600.0, end=(hour + hours) * 3600.0,
                 peak_usd_per_hour=9.0, baseline_usd_per_hour=1.0, extra_usd=16.0, severity=severity,
                 reasons=["9x the usual"], kind=kind, score=8.0, history_hours=300, ongoing=True,
                 key=f"{arn}@{hour}", resource_type="ec2:instance")


def found(sp, team: str = "payments", conf: float = 0.95, source: str = "predicted",  # type: ignore[no-untyped-def]
          people: list[str] | None = None) -> jw.Found:
    return jw.Found(spike=sp, owner_team=team, owner_confidence=conf, owner_source=source, people=people or [],
                    cause={"commit": "abc123", "repo": "payments/api", "actor": "ana@corp.example",
                           "time": "2026-05-28T10:00:00Z", "p_value": 0.01, "kind": "deploy"})


async def setup(db_url: str, tmp_path: Path, mode: str = "audit", **ws_settings: Any
                ) -> tuple[Database, dict[str, Any], Any, Recorder]:
    db = await Database(db_url).init()
    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        ws.settings = {**ws.settings, "alerts_channel": "C-ALERTS", **ws_settings}
        acct = await repo.add_account(s, "acct", "bundle", bundle_path=str(tmp_path), workspace_id=ws.id,
                                      options={"alerts_mode": mode})
        await watch_repo.set_team_route(s, ws.id, "payments", ["U-PAY"], "C-PAY")
    rec = Recorder()
    ctx = {"db": db, "settings": Settings(data_dir=tmp_path / "data", database_url=db_url, workers=1),
           "notify": rec}
    return db, ctx, acct, rec


async def run(ctx: dict, acct: Any, fs: list[jw.Found], *, data_hour: int = H0 + 1, history: int = 500,
              now: float | None = None) -> jw.Outcome:
    async with ctx["db"].session() as s:
        account = await repo.get_account(s, acct.id)
        out = await jw.store_and_alert(s, ctx, account, fs, now=now or datetime.now(UTC).timestamp(),
                                       data_hour=data_hour, history_hours=history)
    await jw.send(ctx, out)
    return out


async def deliveries(db: Database, acct: Any) -> dict[str, str]:
    async with db.session() as s:
        return {sp.resource_id: sp.delivery for sp in await watch_repo.spikes_for(s, acct.id)}


@pytest.mark.asyncio
async def test_alerted_once_and_routed(db_url: str, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(db_url, tmp_path)
    try:
        fs = [found(make_spike(1)), found(make_spike(2), team="data", conf=0.4, people=["bob@corp.example"])]
        out = await run(ctx, acct, fs)
        assert out.created == 2 and len(out.alerts) == 2
        alerts = rec.kinds("spike.alert")
        assert [sorted(a) for a in alerts] == [["account_id", "route", "spike_id", "workspace_id"]] * 2
        by_team = {a["route"]["team"]: a for a in alerts}
        assert by_team["payments"]["route"] == {"users": ["U-PAY"], "emails": ["ana@corp.example"],
                                                "channel": "C-PAY", "fallback": False, "guess": False,
                                                "team": "payments"}
        # no mapping for "data": the alerts channel with the assign button; a low-confidence guess
        assert by_team["data"]["route"] == {"users": [], "emails": ["bob@corp.example", "ana@corp.example"],
                                            "channel": "C-ALERTS", "fallback": True, "guess": True, "team": "data"}
        assert all(a["account_id"] == acct.id and a["workspace_id"] == acct.workspace_id for a in alerts)
        # the same spikes again (the next watch), and one grown by an hour: nothing new is sent
        again = [found(make_spike(1, hours=3)), found(make_spike(2))]
        out = await run(ctx, acct, again)
        assert out.created == 0 and len(rec.kinds("spike.alert")) == 2
        assert set((await deliveries(db, acct)).values()) == {"sent"}
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_panic_strict_and_cold_critical(db_url: str, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(db_url, tmp_path, mode="strict")
    try:
        async with db.session() as s:
            await watch_repo.set_switch(s, watch_repo.PANIC, True, actor="U1")
        await run(ctx, acct, [found(make_spike(1)), found(make_spike(2, kind="cold_start", severity="critical"))])
        assert rec.events == []  # panic: nobody hears, even a cold-start critical
        assert await deliveries(db, acct) == {"i-0001": "held_panic", "i-0002": "held_panic"}
        async with db.session() as s:
            await watch_repo.set_switch(s, watch_repo.PANIC, False, actor="U1")
        await run(ctx, acct, [found(make_spike(3)), found(make_spike(4, kind="cold_start", severity="critical")),
                              found(make_spike(5, kind="cold_start", severity="warning"))])
        assert [a["spike_id"] for a in rec.kinds("spike.alert")] == [
            s.id for s in await _rows(db, acct) if s.resource_id == "i-0004"]
        d = await deliveries(db, acct)
        assert d["i-0003"] == "held_strict" and d["i-0004"] == "sent" and d["i-0005"] == "held_strict"
    finally:
        await db.close()


async def _rows(db: Database, acct: Any) -> list[Any]:
    async with db.session() as s:
        return await watch_repo.spikes_for(s, acct.id)


@pytest.mark.asyncio
async def test_auto_mode_promotes_after_a_week_once(db_url: str, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(db_url, tmp_path, mode="auto")
    try:
        await run(ctx, acct, [found(make_spike(1))], history=100)
        assert rec.events == [] and (await deliveries(db, acct))["i-0001"] == "held_strict"
        await run(ctx, acct, [found(make_spike(2))], history=168)
        await run(ctx, acct, [found(make_spike(3))], history=200)
        assert len(rec.kinds("spike.alert")) == 2
        async with db.session() as s:
            promos = await repo.audit_entries(s, account_id=acct.id, action="alerts.promote")
            assert len(promos) == 1 and promos[0].details["history_hours"] == 168
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_storm_holds_the_rest_with_one_notice(db_url: str, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(db_url, tmp_path)
    try:
        ctx["settings"] = ctx["settings"].model_copy(update={"alerts_storm_floor": 4})
        await run(ctx, acct, [found(make_spike(i)) for i in range(12)])
        assert len(rec.kinds("spike.alert")) == 4
        [storm] = rec.kinds("spike.storm")
        assert storm["count"] == 8 and len(storm["spike_ids"]) == 8 and storm["channel"] == "C-ALERTS"
        assert storm["account_id"] == acct.id and storm["workspace_id"] == acct.workspace_id
        d = await deliveries(db, acct)
        assert sorted(d.values()).count("held_storm") == 8
        # within the same hour the breaker stays open: the next watch's new spike is held too
        await run(ctx, acct, [found(make_spike(50))])
        assert len(rec.kinds("spike.alert")) == 4 and len(rec.kinds("spike.storm")) == 2
        # a cap below the floor wins
        ctx["settings"] = ctx["settings"].model_copy(update={"alerts_storm_cap": 1})
        rec.events.clear()
        db2_acct = acct
        await run(ctx, db2_acct, [found(make_spike(60, kind="cold_start", severity="critical"))])
        assert len(rec.kinds("spike.alert")) == 1  # a cold-start critical still goes out
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_snoozed_expected_history_unrouted(db_url: str, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(db_url, tmp_path)
    try:
        await run(ctx, acct, [found(make_spike(1))])
        [row] = await _rows(db, acct)
        async with db.session() as s:
            await watch_repo.decide_spike(s, row.id, row.nonce, "snooze", "U1",
                                          until=datetime.now(UTC) + timedelta(hours=24))
        # a later, separate spike on the snoozed resource is stored, snoozed, not sent
        await run(ctx, acct, [found(make_spike(1, hour=H0 + 10))], data_hour=H0 + 11)
        rows = await _rows(db, acct)
        assert [r.status for r in rows] == ["snoozed", "snoozed"] and len(rec.kinds("spike.alert")) == 1
        # old news on a first watch: stored as history
        await run(ctx, acct, [found(make_spike(2, hour=H0 - 100))], data_hour=H0 + 11)
        assert (await deliveries(db, acct))["i-0002"] == "history"
        # nowhere to send: no mapping and no alerts channel, nobody's e-mail
        async with db.session() as s:
            ws = await repo.find_workspace(s, "slack", "T1")
            ws.settings = {k: v for k, v in ws.settings.items() if k != "alerts_channel"}
        f = found(make_spike(3, hour=H0 + 10), team="", conf=0.0, source="none")
        f.cause = None
        await run(ctx, acct, [f], data_hour=H0 + 11)
        assert (await deliveries(db, acct))["i-0003"] == "unrouted" and len(rec.kinds("spike.alert")) == 1
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_route_for_guess_threshold(sqlite_url: str, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(sqlite_url, tmp_path)
    try:
        class S:
            owner_team, owner_confidence, owner_source, people, cause = "payments", 0.5, "creator", ["x"], None

        async with db.session() as s:
            account = await repo.get_account(s, acct.id)
            r = await route_for(s, account, S(), threshold=0.7)
            assert r == Route(users=["U-PAY"], emails=[], channel="C-PAY", fallback=False, guess=True, team="payments")
            S.owner_source = "tag"
            assert not (await route_for(s, account, S(), threshold=0.7)).guess
            assert Route.from_json(r.to_json()) == r
    finally:
        await db.close()


# -- end to end over a synthetic bundle ---------------------------------------------------------


@pytest.fixture(scope="module")
def synth_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.synth.generate import generate

    out = tmp_path_factory.mktemp("watch_org")
    generate(out, seed=5, teams=3, resources_per_team=6, days=8, workers=1)
    return out / "bundle"


def _cur_files(bundle: Path) -> list[Path]:
    return sorted(p for p in (bundle / "cost").rglob("*") if p.is_file())


def _read_cur(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


def _iso_hour(h: int) -> str:
    return datetime.fromtimestamp(h * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_hour(bundle: Path, name: str, hour: int, arn_costs: dict[str, float]) -> Path:
    """Append one more hour of CUR: a new file under cost/ with one row per resource, copied from an
    existing row of that resource (same columns and identity), at ``hour`` with that cost."""
    header, rows = _read_cur(_cur_files(bundle)[0])
    proto: dict[str, dict[str, str]] = {}
    for f in _cur_files(bundle):
        if f.name.endswith((".csv", ".csv.gz")):
            for r in _read_cur(f)[1]:
                proto.setdefault(r["line_item_resource_id"], r)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    cost_cols = [c for c in header if c.endswith("_cost") and c.startswith(("line_item", "pricing", "reservation",
                                                                             "savings_plan"))]
    for arn, usd in arn_costs.items():
        r = dict(proto[arn])
        for c in cost_cols:
            if r.get(c) not in (None, ""):
                r[c] = "0"
        for c in ("line_item_unblended_cost", "line_item_net_unblended_cost", "line_item_blended_cost",
                  "pricing_public_on_demand_cost"):
            if c in r:
                r[c] = f"{usd:.6f}"
        r["line_item_usage_start_date"] = _iso_hour(hour)
        if "line_item_usage_end_date" in r:
            r["line_item_usage_end_date"] = _iso_hour(hour + 1)
        if "line_item_line_item_type" in r:
            r["line_item_line_item_type"] = "Usage"
        w.writerow(r)
    path = bundle / "cost" / "extra" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())
    return path


def canonical(path: Path) -> str:
    """The canonical ARN of the costliest resource in a CUR file (as the series names it)."""
    from engine.hourly import read_cost_part

    part = read_cost_part(path, [])
    assert part is not None
    return part.arns[int(part.res[part.cost.argmax()])]


def last_hour_costs(bundle: Path) -> tuple[int, dict[str, float]]:
    """The newest hour in the bundle's CUR and each resource's cost in it."""
    per: dict[tuple[str, int], float] = {}
    for f in _cur_files(bundle):
        if not f.name.endswith((".csv", ".csv.gz")):
            continue
        for r in _read_cur(f)[1]:
            arn = r.get("line_item_resource_id") or ""
            if not arn:
                continue
            h = int(datetime.fromisoformat(r["line_item_usage_start_date"].replace("Z", "+00:00")).timestamp() // 3600)
            per[(arn, h)] = per.get((arn, h), 0.0) + float(r.get("line_item_unblended_cost") or 0)
    last = max(h for _a, h in per)
    return last, {a: v for (a, h), v in per.items() if h == last}


@pytest.fixture
def bundle(synth_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(synth_bundle, dst)
    return dst


@pytest.mark.slow
@pytest.mark.asyncio
async def test_watch_end_to_end_incremental(db_url: str, bundle: Path, tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(db_url, bundle)
    try:
        last, costs = last_hour_costs(bundle)
        normal = {a: v for a, v in costs.items() if v > 0}
        victim = max(normal, key=normal.get)  # type: ignore[arg-type]
        victim_arn = canonical(add_hour(bundle, "h1.csv", last + 1, {**normal, victim: normal[victim] * 20 + 60}))
        res = await jw.watch(ctx, acct.id)
        assert res["files_read"] and "cost/extra/h1.csv" in res["files_read"]
        assert any(p.startswith("cloudtrail/") for p in res["files_read"])
        rows = await _rows(db, acct)
        assert rows and res["spikes"] >= 1
        mine = [r for r in rows if r.arn == victim_arn and r.end.timestamp() >= (last + 1) * 3600]
        assert mine, [(r.arn, r.start, r.delivery) for r in rows]
        alerts = rec.kinds("spike.alert")
        assert mine[0].id in [a["spike_id"] for a in alerts]
        assert mine[0].series and mine[0].peak_usd_per_hour > normal[victim] * 10
        n_alerts = len(alerts)

        # one more hour of files: only that file is read, nothing alerted again
        add_hour(bundle, "h2.csv", last + 2, {**normal, victim: normal[victim] * 20 + 60})
        res2 = await jw.watch(ctx, acct.id)
        assert res2["files_read"] == ["cost/extra/h2.csv"]
        assert len(rec.kinds("spike.alert")) == n_alerts
        assert res2["new_spikes"] == 0

        # the same path rewritten with another size: read again, its part replaced
        async with db.session() as s:
            before = (await watch_repo.load_parts(s, acct.id))["cost/extra/h2.csv"]
        add_hour(bundle, "h2.csv", last + 2, {**normal, victim: normal[victim] * 30 + 100})
        res3 = await jw.watch(ctx, acct.id)
        assert res3["files_read"] == ["cost/extra/h2.csv"]
        async with db.session() as s:
            after = (await watch_repo.load_parts(s, acct.id))["cost/extra/h2.csv"]
            seen = await watch_repo.seen_files(s, acct.id)
        assert after != before and seen["cost/extra/h2.csv"].size == (bundle / "cost/extra/h2.csv").stat().st_size
        from engine.hourly import CostPart

        part = CostPart.from_bytes(after)
        assert float(part.cost.sum()) == pytest.approx(sum(normal.values()) + normal[victim] * 29 + 100, rel=1e-3)
        assert len(rec.kinds("spike.alert")) == n_alerts

        # nothing new: nothing read
        res4 = await jw.watch(ctx, acct.id)
        assert res4["files_read"] == []

        # Mark expected: the same level again later (after a quiet gap) stays silent
        async with db.session() as s:
            row = await watch_repo.get_spike(s, mine[0].id)
            _, level = await watch_repo.mark_expected(s, row.id, row.nonce, "U-PAY")
        assert level >= normal[victim] * 20
        add_hour(bundle, "h3.csv", last + 3, normal)
        add_hour(bundle, "h4.csv", last + 4, normal)
        add_hour(bundle, "h5.csv", last + 5, normal)
        add_hour(bundle, "h6.csv", last + 6, {**normal, victim: normal[victim] * 20 + 60})
        res5 = await jw.watch(ctx, acct.id)
        assert res5["files_read"] == ["cost/extra/h3.csv", "cost/extra/h4.csv", "cost/extra/h5.csv",
                                      "cost/extra/h6.csv"]
        assert len(rec.kinds("spike.alert")) == n_alerts
        assert not [r for r in await _rows(db, acct) if r.arn == victim_arn and r.start.timestamp() >= (last + 4) * 3600]
    finally:
        await db.close()


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["panic", "strict"])
async def test_watch_panic_and_strict_store_but_send_nothing(how: str, sqlite_url: str, bundle: Path,
                                                             tmp_path: Path) -> None:
    db, ctx, acct, rec = await setup(sqlite_url, bundle, mode="strict" if how == "strict" else "audit")
    try:
        if how == "panic":
            async with db.session() as s:
                await watch_repo.set_switch(s, watch_repo.PANIC, True, actor="U1")
        last, costs = last_hour_costs(bundle)
        normal = {a: v for a, v in costs.items() if v > 0}
        victim = max(normal, key=normal.get)  # type: ignore[arg-type]
        victim_arn = canonical(add_hour(bundle, "h1.csv", last + 1, {**normal, victim: normal[victim] * 20 + 60}))
        await jw.watch(ctx, acct.id)
        rows = await _rows(db, acct)
        assert rows and rec.kinds("spike.alert") == [] and rec.kinds("spike.storm") == []
        mine = [r for r in rows if r.arn == victim_arn and r.end.timestamp() >= (last + 1) * 3600]
        assert mine and mine[0].delivery == ("held_panic" if how == "panic" else "held_strict")
    finally:
        await db.close()


def _ev(t: float, eid: str, arn: str = "arn:aws:lambda:us-east-1:111122223333:function:f"):  # type: ignore[no-untyped-def]
    from engine.sources.changes import ChangeEvent

    return ChangeEvent(t, eid, "UpdateFunctionCode", "lambda.amazonaws.com", "role:ci", "ana@corp.example", (arn,),
                       None, "111122223333", "us-east-1")


@pytest.mark.asyncio
async def test_change_window_stores_only_new_events(sqlite_url: str) -> None:
    """Each watch adds one part with the events it read; the window is the parts plus those, each event
    once, by time; parts whose events all left the window go; many parts merge into one."""
    from engine.sources.changes import changes_to_bytes

    db = await Database(sqlite_url).init()
    try:
        async with db.session() as s:
            acct = await repo.add_account(s, "acct", "synthetic")
        day = 86400.0
        old = [_ev(0.0, "a"), _ev(10 * day, "b")]  # "a" leaves the window once events 28 days later arrive
        async with db.session() as s:
            await watch_repo.add_change_part(s, acct.id, changes_to_bytes(old[:1]), 1, 0.0, 0.0)
            await watch_repo.add_change_part(s, acct.id, changes_to_bytes(old[1:]), 1, 10 * day, 10 * day)
        new = [_ev(10 * day, "b"), _ev(29 * day, "c"), _ev(5 * day, "d")]  # "b" again (re-read file)
        async with db.session() as s:
            parts = await watch_repo.load_change_parts(s, acct.id)
        w = jw.ChangeWindow.build(parts, new, now=30 * day)
        got = w.events()
        assert [e.event_id for e in got] == ["d", "b", "c"]
        assert got[0] is new[2] and got[2] is new[1]  # what this watch read is not rebuilt
        assert [e.event_id for e in w.events([1])] == ["b"]
        async with db.session() as s:
            await w.save(s, acct.id)
        async with db.session() as s:
            parts = await watch_repo.load_change_parts(s, acct.id)
        assert [(p.events, p.min_time, p.max_time) for p in parts] == [(1, 10 * day, 10 * day), (3, 5 * day, 29 * day)]
        w2 = jw.ChangeWindow.build(parts, [], now=30 * day)
        assert [e.event_id for e in w2.events()] == ["d", "b", "c"]
        jw.ChangeWindow.MERGE_PARTS, keep = 2, jw.ChangeWindow.MERGE_PARTS
        try:
            w3 = jw.ChangeWindow.build(parts, [_ev(29.5 * day, "e")], now=30 * day)
            async with db.session() as s:
                await w3.save(s, acct.id)
        finally:
            jw.ChangeWindow.MERGE_PARTS = keep
        async with db.session() as s:
            parts = await watch_repo.load_change_parts(s, acct.id)
        assert len(parts) == 1 and parts[0].events == 4
        assert [e.event_id for e in jw.ChangeWindow.build(parts, [], now=30 * day).events()] == ["d", "b", "c", "e"]
    finally:
        await db.close()


def _sso_record(bundle: Path) -> dict[str, Any]:
    """A CloudTrail record of a person working through the shared SSO role (session name = e-mail)."""
    import json

    for f in sorted((bundle / "cloudtrail").rglob("*.json.gz")):
        with gzip.open(f, "rt") as fh:
            for rec in json.load(fh)["Records"]:
                ui = rec.get("userIdentity") or {}
                if "AWSReservedSSO" in (ui.get("arn") or "") and "@" in ui["arn"].rsplit("/", 1)[-1] \
                        and not rec.get("errorCode"):
                    return rec
    raise AssertionError("the synthetic org has no SSO session")


@pytest.mark.slow
@pytest.mark.asyncio
async def test_early_warning_from_a_launch_then_its_cost_is_the_same_spike(sqlite_url: str, bundle: Path,
                                                                           synth_bundle: Path) -> None:
    """A p4d.24xlarge launched through the shared SSO role alerts from its CloudTrail event, before any
    billing data, owned by its launcher's team and routed to the launcher's e-mail; the cost hours that
    follow are the same spike, not a second alert."""
    import json

    db, ctx, acct, rec = await setup(sqlite_url, bundle)
    try:
        async with db.session() as s:  # the owners people know (as a scan would have them)
            for t in csv.DictReader((synth_bundle.parent / "truth.csv").open()):
                if t["team"] and not t["team"].startswith("("):
                    await repo.add_label(s, acct.id, t["arn"], t["team"], source="human", actor="test")
        await jw.watch(ctx, acct.id)  # the history
        rec.events.clear()
        last, costs = last_hour_costs(bundle)
        proto = _sso_record(bundle)
        person = proto["userIdentity"]["arn"].rsplit("/", 1)[-1]
        account, region = proto["recipientAccountId"], proto.get("awsRegion", "us-east-1")
        iid = "i-0feedfacecafe0001"
        launch = {**proto, "eventName": "RunInstances", "eventSource": "ec2.amazonaws.com",
                  "eventTime": _iso_hour(last + 1).replace(":00:00Z", ":12:00Z"), "eventID": "7f2c-launch-0001",
                  "readOnly": False, "eventType": "AwsApiCall", "resources": None,
                  "requestParameters": {"instanceType": "p4d.24xlarge", "minCount": 1, "maxCount": 1},
                  "responseElements": {"instancesSet": {"items": [{"instanceId": iid,
                                                                   "instanceType": "p4d.24xlarge"}]}}}
        f = bundle / "cloudtrail" / "AWSLogs" / account / "CloudTrail" / region / "extra" / "launch.json.gz"
        f.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(f, "wt") as fh:
            json.dump({"Records": [launch]}, fh)
        res = await jw.watch(ctx, acct.id, now=(last + 1) * 3600 + 1200)
        assert any(p.endswith("launch.json.gz") for p in res["files_read"])
        rows = [r for r in await _rows(db, acct) if r.arn.endswith(iid)]
        assert [(r.kind, r.instance_type) for r in rows] == [("early_warning", "p4d.24xlarge")]
        ew = rows[0]
        assert ew.owner_source == "creator" and ew.owner_team and ew.severity in ("warning", "critical")
        [alert] = [a for a in rec.kinds("spike.alert") if a["spike_id"] == ew.id]
        assert person in alert["route"]["emails"]

        # billing lands: the instance's first cost hours are the same spike, alerted once
        arn = ew.arn
        header, _rows_ = _read_cur(_cur_files(bundle)[0])
        row = {c: "" for c in header}
        row.update({"line_item_resource_id": iid, "line_item_usage_account_id": account,
                    "line_item_product_code": "AmazonEC2", "line_item_line_item_type": "Usage",
                    "line_item_usage_type": "BoxUsage:p4d.24xlarge", "product_region_code": region,
                    "line_item_unblended_cost": "32.7726", "line_item_usage_start_date": _iso_hour(last + 1),
                    "line_item_usage_end_date": _iso_hour(last + 2)})
        for c in ("line_item_blended_cost", "line_item_net_unblended_cost", "pricing_public_on_demand_cost"):
            if c in row:
                row[c] = "32.7726"
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header)
        w.writeheader()
        w.writerow(row)
        (bundle / "cost" / "extra").mkdir(parents=True, exist_ok=True)
        (bundle / "cost" / "extra" / "p4d.csv").write_text(buf.getvalue())
        add_hour(bundle, "rest.csv", last + 1, dict(costs))
        await jw.watch(ctx, acct.id, now=(last + 2) * 3600 + 600)
        mine = [r for r in await _rows(db, acct) if r.arn == arn]
        assert len(mine) == 1 and mine[0].peak_usd_per_hour >= 30
        assert len([a for a in rec.kinds("spike.alert") if a["spike_id"] == ew.id]) == 1
        assert not [a for a in rec.kinds("spike.alert") if a["spike_id"] != ew.id and
                    a["spike_id"] in {r.id for r in mine}]
    finally:
        await db.close()

"""The hourly watch: read only the export files not seen yet, score the new hours for cost spikes,
explain them, route each to its owner, and alert once, under the account's governance.

One run per account (``watch(ctx)`` does every watchable account):

1. ``engine.watch.new_files`` against the files recorded in ``watch_files`` (path, size, mtime): only new
   or changed files are read (``engine.watch.read_new``, in a thread).
2. The cost of each file is kept folded to resource-hours (``CostPart`` bytes per file); the next watch
   combines the stored parts with the new ones (a changed file replaces its old part), so an hour of
   new files costs an hour of reading, not a full re-scan. CloudTrail change events are kept as a
   rolling window of Arrow parts (each watch stores only what it read, ``ChangeWindow``), deploys as
   a rolling list.
3. ``engine.spikes.detect`` over the combined series from the last scored hour less a lookback (all of
   it on the first watch), with the levels people marked expected.
4. Owner of each spike: human label > tag > predicted team (latest scan) > creator's team
   (``engine.creators``) > none; cause from ``engine.explain``.
5. Store (``watch_repo.upsert_spike``: the same spike keeps its row and is never alerted twice), then
   governance decides what is sent: global panic (store, notify nobody), account mode strict / audit
   (``auto``: strict until 7 days of cost history, then audit; the promotion is audited once), cold-start
   critical alerts always go out (except in panic), and a circuit breaker that holds the rest of an
   hour's alerts past ``max(3 × usual, floor)`` or the cap and posts one ``spike.storm`` instead.

Everything for one account is written in one transaction (files, parts, changes, spikes, deliveries);
notifications go out after it commits. A failed run records nothing, so the next one reads the same
files again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobs.route import Route, account_workspace, alerts_channel, looks_like_email, route_for
from storage import repo, watch_repo
from storage.models import Account, Spike

log = logging.getLogger("costdna.jobs.watch")

WATCHABLE = ("synthetic", "bundle", "aws")  # aws: collected into its local mirror first
LOOKBACK_HOURS = 48  # re-score this many hours before the last scored one (late and daily data)
WINDOW_HOURS = 28 * 24  # hours of cost kept in the combined series
CHANGES_RETAIN_S = 28 * 24 * 3600  # change events and deploys kept for causes and creators
RECENT_HOURS = 24  # a spike that ended longer ago than this (before the newest data) is history, not news
PROMOTE_HOURS = 7 * 24  # "auto" promotes strict -> audit after this much cost history
SERIES_HOURS = 72  # hours of cost kept on each spike for its chart
RESOLVE_HOURS = 72  # an open spike that ended this long before the newest data is resolved
STORM_CAP = 20  # alerts per account per hour, at most
STORM_FLOOR = 5  # the breaker never trips below this many alerts in an hour
STORM_FACTOR = 3.0  # ... nor below this multiple of the account's usual hourly volume
CRITICAL_COLD = ("cold_start", "early_warning")


@dataclass
class Found:
    """A detected spike with everything the job adds to it before storing."""

    spike: Any  # engine.spikes.Spike
    owner_team: str = ""
    owner_confidence: float = 0.0
    owner_source: str = "none"
    cause: dict[str, Any] | None = None
    people: list[str] = field(default_factory=list)
    series: list[list[float]] = field(default_factory=list)


def _setting(settings: Any, name: str, default: Any) -> Any:
    v = getattr(settings, name, None)
    return default if v is None else v


def _epoch(dt: datetime) -> float:
    """Epoch seconds of a stored time; SQLite gives it back naive, and every stored time is UTC."""
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def alerts_mode(account: Account) -> str:
    mode = (account.options or {}).get("alerts_mode", "auto")
    return mode if mode in ("auto", "strict", "audit") else "auto"


# -- the task -----------------------------------------------------------------------------------


async def watch(ctx: dict, account_id: int | None = None, now: float | None = None) -> dict[str, Any]:
    """arq task: watch one account, or every watchable one (``account_id`` None). Returns per-account
    results under ``accounts`` and, for one account, that account's result at the top level too."""
    db = ctx["db"]
    now = time.time() if now is None else float(now)
    async with db.session() as s:
        accounts = ([await repo.get_account(s, account_id)] if account_id is not None
                    else await repo.list_accounts(s))
    results: dict[str, Any] = {}
    for account in accounts:
        if account.kind not in WATCHABLE:
            log.info("watch: account %s (%s) skipped: only synthetic, bundle and aws accounts are watched",
                     account.name, account.kind)
            results[account.name] = {"skipped": f"{account.kind} accounts are not watched yet"}
            continue
        try:
            results[account.name] = await watch_account(ctx, account, now)
        except Exception as e:
            if account_id is not None:
                raise
            log.exception("watch: account %s failed", account.name)
            results[account.name] = {"error": f"{type(e).__name__}: {e}"}
    if account_id is not None and accounts:
        return {**results[accounts[0].name], "accounts": results}
    return {"accounts": results}


async def watch_account(ctx: dict, account: Account, now: float) -> dict[str, Any]:
    """One incremental watch of one account (see the module docstring)."""
    from engine import watch as ew
    from engine.hourly import CostPart, combine
    from jobs.accounts import account_bundle

    db, settings = ctx["db"], ctx["settings"]
    t0 = time.monotonic()
    root = await asyncio.to_thread(account_bundle, account, settings.data_dir, None, settings)
    async with db.session() as s:
        seen_rows = await watch_repo.seen_files(s, account.id)
        window = await watch_repo.load_changes(s, account.id)
        change_parts = await watch_repo.load_change_parts(s, account.id)
        stored = await watch_repo.load_parts(s, account.id)
        expected = await watch_repo.expected_levels(s, account.id)
    seen = {p: ew.SeenFile(path=r.path, size=r.size, mtime=r.mtime, kind=r.kind) for p, r in seen_rows.items()}
    files = await asyncio.to_thread(ew.new_files, root, seen)
    log.info("watch %s: %d new or changed files (%d seen)", account.name, len(files), len(seen))
    if not files and window.state.get("last_scored_hour") is not None:
        return {"files_read": [], "spikes": 0, "new_spikes": 0, "alerted": 0, "held": {}, "seconds":
                round(time.monotonic() - t0, 3)}
    got = await asyncio.to_thread(ew.read_new, root, files, settings.workers)
    for issue in got.issues:
        log.warning("watch %s: %s", account.name, issue)
    read_paths = [f.path for f in got.files] or [f.path for f in files]
    log.info("watch %s: read %d files (%d cost parts, %d change events, %d deploys) in %.1fs", account.name,
             len(read_paths), len(got.cost_parts), len(got.changes), len(got.deploys), time.monotonic() - t0)

    # parts: stored ones, those of files read again replaced by (or dropped for) the new reading
    new_parts = {p.path: p for p in got.cost_parts}  # paths relative to the bundle, as the ledger keeps them
    reread = set(read_paths)
    parts = [CostPart.from_bytes(b) for path, b in stored.items() if path not in reread]
    parts += list(new_parts.values())

    changes = await asyncio.to_thread(ChangeWindow.build, change_parts, got.changes, now)
    got.changes, change_parts = [], []  # the window holds them now
    deploys = _merge_deploys(window, got.deploys)
    series = await asyncio.to_thread(combine, parts, WINDOW_HOURS)
    last_hour = series.last_covered_hour
    state = dict(window.state)
    since = None
    if state.get("last_scored_hour") is not None:
        since = int(state["last_scored_hour"]) - LOOKBACK_HOURS
    firsts = [int(state["first_hour"])] if state.get("first_hour") is not None else []
    if series.first_covered_hour is not None:
        firsts.append(series.first_covered_hour)
    first_hour = min(firsts, default=None)
    history_hours = (last_hour - first_hour + 1) if (last_hour is not None and first_hour is not None) else 0

    async with db.session() as s:
        owners = await owner_map(s, account)
    found = await asyncio.to_thread(_detect, series, since, changes, deploys, expected, owners)
    log.info("watch %s: %d spikes since hour %s (%.1fs)", account.name, len(found), since, time.monotonic() - t0)

    async with db.session() as s:
        await watch_repo.record_files(
            s, account.id, files,
            parts={p: cp.to_bytes() for p, cp in new_parts.items()},
            rows=got.rows)
        await changes.save(s, account.id)
        await watch_repo.save_changes(s, account.id, deploys=[_deploy_json(d) for d in deploys],
                                      state={"last_scored_hour": last_hour, "first_hour": first_hour,
                                             "history_hours": history_hours})
        outcome = await store_and_alert(s, ctx, account, found, now=now, data_hour=last_hour,
                                        history_hours=history_hours)
        if last_hour is not None:  # spikes long over leave the open list (and the digest)
            await watch_repo.resolve_stale(s, account.id, datetime.fromtimestamp((last_hour - RESOLVE_HOURS) * 3600, UTC))
    await send(ctx, outcome)
    result = {"files_read": sorted(read_paths), "spikes": len(found), "new_spikes": outcome.created,
              "alerted": len(outcome.alerts), "held": outcome.held, "history_hours": history_hours,
              "mode": outcome.mode, "seconds": round(time.monotonic() - t0, 3)}
    log.info("watch %s: done %s", account.name, result)
    return result


def _deploy_json(d: Any) -> dict[str, Any]:
    return {"time": d.time, "repo": d.repo, "commit": d.commit, "actor": d.actor, "pipeline": d.pipeline,
            "resources": list(d.resources), "hints": list(d.hints)}


class ChangeWindow:
    """The retained CloudTrail change events, column-wise (``engine.sources.changes``): stored parts
    plus what this watch read, each event once, sorted by time, newest ``CHANGES_RETAIN_S`` only.

    A watch stores only its own events as a new part (``save``); ChangeEvent objects are built only for
    the rows detection, owners and causes need (``events``), which on an hourly watch is a small share
    of a month's changes.
    """

    MERGE_PARTS = 48  # past this many stored parts, a watch merges them into one (about every two days)

    def __init__(self, table: Any, new_table: Any, src: Any, n_old: int, new_events: list, cutoff: float,
                 parts: list[watch_repo.ChangePart]) -> None:
        self.table = table  # the window, sorted by time
        self.new_table = new_table  # this watch's events (stored as a part)
        self._src = src  # window row -> row of the stored parts + new events
        self._n_old = n_old
        self._new = new_events
        self.cutoff = cutoff
        self._parts = [(p.id, p.max_time) for p in parts]  # not their bytes: the table has the events

    @classmethod
    def build(cls, parts: list[watch_repo.ChangePart], new_events: list, now: float) -> ChangeWindow:
        from engine.sources.changes import changes_table, concat_tables, table_from_bytes, window_order

        new_table = changes_table(new_events)
        old = concat_tables([table_from_bytes(p.blob) for p in parts])
        both = concat_tables([old, new_table]) if new_table.num_rows else old
        newest = max([p.max_time for p in parts if p.events]
                     + ([max(e.time for e in new_events)] if new_events else []), default=None)
        cutoff = (now if newest is None else newest) - CHANGES_RETAIN_S
        src = window_order(both, cutoff)
        table = both.take(src)
        return cls(table, new_table, src, old.num_rows, new_events, cutoff, parts)

    def __len__(self) -> int:
        return self.table.num_rows

    def events(self, rows: Any = None) -> list:
        """ChangeEvent objects of the given window rows (ascending; None: all), in time order. Events read
        by this watch are the very objects read; stored ones are built from their columns."""
        import numpy as np

        from engine.sources.changes import table_events

        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        src = self._src[rows]
        fresh = src >= self._n_old
        if not fresh.any():
            return table_events(self.table, rows)
        built = iter(table_events(self.table, rows[~fresh]))
        new = self._new
        n_old = self._n_old
        return [new[j - n_old] if f else next(built) for j, f in zip(src.tolist(), fresh.tolist(), strict=True)]

    async def save(self, s: Any, account_id: int) -> None:
        """Store this watch's events as one part; drop parts that left the window; merge many parts."""
        import pyarrow.compute as pc

        from engine.sources.changes import table_to_bytes

        expired = [i for i, hi in self._parts if hi < self.cutoff]
        live = [i for i, hi in self._parts if hi >= self.cutoff]
        if len(live) + 1 > self.MERGE_PARTS and len(self):
            t = self.table.column("time")
            await watch_repo.add_change_part(s, account_id, table_to_bytes(self.table), len(self),
                                             float(t[0].as_py()), float(t[len(self) - 1].as_py()))
            await watch_repo.delete_change_parts(s, account_id, [i for i, _ in self._parts])
            return
        if self.new_table.num_rows:
            mm = pc.min_max(self.new_table.column("time")).as_py()
            await watch_repo.add_change_part(s, account_id, table_to_bytes(self.new_table), self.new_table.num_rows,
                                             float(mm["min"]), float(mm["max"]))
        await watch_repo.delete_change_parts(s, account_id, expired)


def _merge_deploys(window: watch_repo.ChangesWindow, new_deploys: list) -> list:
    """The retained deploys plus the new ones, deduplicated, newest window only."""
    from engine.records import Deploy

    deps = {(d["time"], d["repo"], d["commit"]): Deploy(time=d["time"], repo=d["repo"], commit=d.get("commit", ""),
                                                        actor=d.get("actor", ""), pipeline=d.get("pipeline", ""),
                                                        resources=tuple(d.get("resources", ())),
                                                        hints=tuple(d.get("hints", ())))
            for d in window.deploys}
    deps.update({(d.time, d.repo, d.commit): d for d in new_deploys})
    dl = sorted(deps.values(), key=lambda d: d.time)
    if dl:
        dl = [d for d in dl if d.time >= dl[-1].time - CHANGES_RETAIN_S]
    return dl


# -- owners -------------------------------------------------------------------------------------


async def owner_map(s: Any, account: Account) -> dict[str, tuple[str, float, str]]:
    """arn -> (team, confidence, source) from what is stored: human labels, then tags (the latest
    scan's tag team), then the latest scan's prediction. Creators are added from the change events."""
    out: dict[str, tuple[str, float, str]] = {}
    scan = await repo.latest_predictions_scan(s, account.id)
    if scan is not None:
        for p in await repo.predictions(s, scan.id):
            if p.tag_team:
                out[p.arn] = (p.tag_team, 1.0, "tag")
            elif p.team:
                source = (p.evidence or {}).get("owner_source") == "creator" and "creator" or "predicted"
                out[p.arn] = (p.team, float(p.confidence), source)
    for arn, team in (await repo.current_labels(s, account.id, sources=("tag",))).items():
        out[arn] = (team, 1.0, "tag")
    for arn, team in (await repo.current_labels(s, account.id)).items():
        out[arn] = (team, 1.0, "label")
    return out


def _people(changes: list) -> dict[str, list[str]]:
    """arn -> the person who launched it (the person behind its creating CloudTrail event), when known.

    Only the launcher: people who merely touched a resource are not paged. The person behind a spike's
    cause (the deploy's or change's actor) is added by ``jobs.route``.
    """
    from engine.creators import creators_of_changes

    return {arn: [person] for arn, (_t, _p, person) in creators_of_changes(changes).items() if person}


def _detect(series: Any, since: int | None, window: ChangeWindow | list, deploys: list, expected: dict[str, float],
            owners: dict[str, tuple[str, float, str]]) -> list[Found]:
    """Detection, owners (the given map, else the creator's team) and causes, as the one-shot
    ``costdna spikes --bundle`` does them (``engine.watch.report_spikes``). CPU work: run in a thread.

    Of the change window only the rows that decide novelty, creators and people
    (``engine.sources.changes.essential_rows``) and those near a spike (causes) become objects: the
    answers are those over the whole window."""
    from config.flags import enabled_rules  # configuration: below every layer
    from engine.explain import event_span
    from engine.spikes import SpikeConfig, chart_points, detect
    from engine.watch import report_spikes

    cfg = SpikeConfig(rules=enabled_rules())  # the flags never raise: unreadable means every rule on
    if isinstance(window, ChangeWindow):
        import numpy as np

        from engine.sources.changes import essential_rows, rows_near

        core_rows = essential_rows(window.table)
        core = window.events(core_rows)
    else:
        core, window = list(window), None
    spikes = detect(series, since_hour=since, changes=core, expected=expected, config=cfg)
    if not spikes:
        return []
    changes = core
    if window is not None:
        before, after = event_span()
        near = rows_near(window.table, [(float(sp.start) - before, float(sp.start) + after) for sp in spikes])
        changes = window.events(np.union1d(core_rows, near))
    people = _people(changes)
    out = []
    for r in report_spikes(series, spikes, changes, deploys, owners):
        sp = r.spike
        f = Found(spike=sp, owner_team=r.owner_team or "", owner_confidence=float(r.owner_confidence or 0.0),
                  owner_source=r.owner_source or "none", cause=r.cause.to_json() if r.cause is not None else None,
                  people=[p for p in people.get(sp.arn, []) if looks_like_email(p)][:5])
        try:
            f.series = chart_points(series, sp.arn, SERIES_HOURS, cfg)
        except Exception:  # the chart is a nicety: fall back to cost with the spike's baseline
            f.series = _spike_series(series.row(sp.arn), series.start_hour, sp)
        out.append(f)
    return out


def _spike_series(row: Any, start_hour: int, sp: Any) -> list[list[float]]:
    """[[epoch_hour, cost, baseline], ...] for the last SERIES_HOURS hours up to the spike's end."""
    n = len(row)
    if not n:
        return []
    end_col = min(n, int(math.ceil(sp.end / 3600)) - start_hour)
    lo = max(0, end_col - SERIES_HOURS)
    base = round(float(sp.baseline_usd_per_hour), 4)
    return [[int(start_hour + c), round(float(row[c]), 4), base] for c in range(lo, max(lo, end_col))]


# -- storing and governance ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What one watch of one account stored and decided to send."""

    account_id: int
    workspace_id: int | None
    mode: str = "audit"
    created: int = 0
    alerts: list[tuple[int, Route]] = field(default_factory=list)  # (spike id, route) to send
    held: dict[str, int] = field(default_factory=dict)
    storm_ids: list[int] = field(default_factory=list)
    storm_channel: str | None = None


async def store_and_alert(s: Any, ctx: dict, account: Account, found: list[Found], *, now: float,
                          data_hour: int | None, history_hours: int) -> Outcome:
    """Upsert the spikes and decide, for each new one, whether it is sent and to whom (in ``s``'s
    transaction; ``send`` notifies after it commits). Also usable without the engine (tests)."""
    settings = ctx["settings"]
    now_dt = datetime.fromtimestamp(now, UTC)
    out = Outcome(account_id=account.id, workspace_id=account.workspace_id)
    panic = await watch_repo.panic(s)
    mode = await _effective_mode(s, account, history_hours)
    out.mode = mode
    sent_hour = await watch_repo.alerts_last_hour(s, account.id, now_dt)
    usual = await watch_repo.usual_hourly_alerts(s, account.id, now_dt)
    cap = int(_setting(settings, "alerts_storm_cap", STORM_CAP))
    floor = int(_setting(settings, "alerts_storm_floor", STORM_FLOOR))
    limit = min(cap, max(math.ceil(STORM_FACTOR * usual), floor))
    recent_from = (data_hour - RECENT_HOURS) * 3600 if data_hour is not None else None
    out.storm_channel = alerts_channel(await account_workspace(s, account))
    rank = {"critical": 0, "warning": 1, "info": 2}
    for f in sorted(found, key=lambda f: (rank.get(f.spike.severity, 3), -f.spike.extra_usd)):
        sp = f.spike
        row, created = await watch_repo.upsert_spike(
            s, account.id, sp.key, arn=sp.arn, resource_id=sp.resource_id,
            resource_type=getattr(sp, "resource_type", "") or "", instance_type=getattr(sp, "instance_type", None),
            kind=sp.kind, start=sp.start, end=sp.end, ongoing=bool(sp.ongoing),
            peak_usd_per_hour=float(sp.peak_usd_per_hour), baseline_usd_per_hour=float(sp.baseline_usd_per_hour),
            extra_usd=float(sp.extra_usd), severity=sp.severity, reasons=list(sp.reasons), score=float(sp.score),
            history_hours=int(sp.history_hours), owner_team=f.owner_team, owner_confidence=f.owner_confidence,
            owner_source=f.owner_source, cause=f.cause, people=f.people, series=f.series)
        if not created:
            continue  # the same spike (or one it merged into): alerted at most once
        out.created += 1
        snoozed = await watch_repo.snoozed_until(s, account.id, sp.arn, now_dt, other_than=row.id)
        if snoozed is not None:
            row.status, row.snooze_until = "snoozed", snoozed
            continue  # stays pending while snoozed: never alerted for this spike
        delivery = _decide(row, panic=panic, mode=mode, recent_from=recent_from)
        critical_cold = row.kind in CRITICAL_COLD and row.severity == "critical"
        if delivery is None and not critical_cold and sent_hour + len(out.alerts) >= limit:
            delivery = "held_storm"
        if delivery is None:
            route = await route_for(s, account, row, threshold=settings.confidence_threshold)
            if route.empty:
                delivery = "unrouted"
            elif await watch_repo.claim_alert(s, row.id, at=now_dt):
                out.alerts.append((row.id, route))
                continue
            else:
                continue
        await watch_repo.set_delivery(s, row.id, delivery)
        out.held[delivery] = out.held.get(delivery, 0) + 1
        if delivery == "held_storm":
            out.storm_ids.append(row.id)
    if out.held:
        log.info("watch %s: held %s (mode %s, panic %s, limit %d/h)", account.name, out.held, mode, panic, limit)
    return out


def _decide(row: Spike, *, panic: bool, mode: str, recent_from: float | None) -> str | None:
    """The hold reason for a new spike, or None when it may be sent (the breaker comes after)."""
    if recent_from is not None and _epoch(row.end) < recent_from:
        return "history"
    if panic:
        return "held_panic"
    if row.kind in CRITICAL_COLD and row.severity == "critical":
        return None  # cold-start critical alerts always go out
    if mode == "strict":
        return "held_strict"
    return None


async def _effective_mode(s: Any, account: Account, history_hours: int) -> str:
    """strict | audit for this run. ``auto``: strict until PROMOTE_HOURS of cost history, then audit;
    the promotion is written to the audit log once (and remembered in the account's options)."""
    mode = alerts_mode(account)
    if mode != "auto":
        return mode
    if history_hours < PROMOTE_HOURS:
        return "strict"
    if not (account.options or {}).get("alerts_promoted"):
        account.options = {**(account.options or {}), "alerts_promoted": True}
        await repo.audit(s, "alerts.promote", actor="costdna", account_id=account.id, target=account.name,
                         history_hours=history_hours, to="audit")
        log.info("watch %s: %d h of cost history: alerts promoted from strict to audit", account.name, history_hours)
    return "audit"


async def send(ctx: dict, out: Outcome) -> None:
    """The notifications of one account's watch, after its transaction committed."""
    notify = ctx["notify"]
    for spike_id, route in out.alerts:
        await notify("spike.alert", spike_id=spike_id, account_id=out.account_id, workspace_id=out.workspace_id,
                     route=route.to_json())
    if out.storm_ids:
        await notify("spike.storm", account_id=out.account_id, workspace_id=out.workspace_id,
                     spike_ids=list(out.storm_ids), count=len(out.storm_ids), channel=out.storm_channel)

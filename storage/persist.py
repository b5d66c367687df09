"""Persist one scan's results: resources, management events, daily costs, predictions, tag labels.

Everything goes in one transaction, so a worker killed half-way leaves nothing behind and the retry
writes it all. Every write is idempotent: resources and daily costs are upserts on their natural keys,
events are keyed by CloudTrail eventID (re-ingesting adds nothing), a scan's predictions are replaced
as a whole, and tag labels are added only when a resource's tagged team changed. The big tables go
through ``storage.bulk`` (COPY on PostgreSQL, the driver's executemany on SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.bulk import CHUNK, insert_rows, upsert_rows
from storage.models import DailyCost, Event, Label, Prediction, Resource, utcnow

_EPOCH = date(1970, 1, 1)

Progress = Callable[[str, float], None]


def _ts(t: float | None) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t is not None and t == t and abs(t) != float("inf") else None


RESOURCE_COLS = ("account_id", "arn", "resource_id", "type", "region", "name", "tags", "first_seen", "last_seen")
EVENT_COLS = ("account_id", "event_id", "time", "event_name", "event_source", "principal", "person", "resources",
              "error_code")
COST_COLS = ("account_id", "arn", "day", "cost_usd")
PREDICTION_COLS = ("scan_id", "arn", "resource_id", "type", "team", "confidence", "runner_up", "runner_up_confidence",
                   "probabilities", "tag_team", "tag_conflict", "anomaly_score", "monthly_cost_usd", "evidence")


async def save_resources(s: AsyncSession, account_id: int, resources: Iterable[Any]) -> int:
    """Upsert ``engine.records.Resource`` rows on (account, arn), keeping ``first_seen``; returns how many."""
    now = utcnow()
    rows = ((account_id, r.arn, r.id, r.kind, r.region, r.name, dict(r.tags), now, now) for r in resources)
    return await upsert_rows(s, Resource.__table__, RESOURCE_COLS, rows, conflict=("account_id", "arn"),
                             update=("resource_id", "type", "region", "name", "tags", "last_seen"))


def _event_tuples(account_id: int, events: Any) -> Iterator[tuple]:
    """Rows from the engine's change log (pyarrow record batches or a Table) or from dicts."""
    if hasattr(events, "to_batches"):
        events = events.to_batches(max_chunksize=CHUNK)
    for part in events:
        if hasattr(part, "column"):  # a record batch: column-wise, no dict per row
            cols = [part.column(c).to_pylist() for c in EVENT_COLS[1:]]
            for eid, t, name, source, principal, person, res, err in zip(*cols, strict=True):
                if eid:
                    yield (account_id, eid, _ts(t), name or "", source or "", principal or "", person, res or [], err)
        elif part.get("event_id"):
            e = part
            yield (account_id, e["event_id"], _ts(e.get("time")), e.get("event_name") or "",
                   e.get("event_source") or "", e.get("principal") or "", e.get("person"),
                   list(e.get("resources") or ()), e.get("error_code"))


async def save_events(s: AsyncSession, account_id: int, events: Any) -> int:
    """Insert management events, skipping eventIDs already stored; returns how many were offered.

    ``events``: the engine's change log (``Activity.iter_changes()`` record batches or a pyarrow
    Table), or dicts with event_id, time (epoch seconds or None), event_name, event_source, principal,
    person, resources (list of ARNs), error_code.
    """
    if events is None:
        return 0
    return await upsert_rows(s, Event.__table__, EVENT_COLS, _event_tuples(account_id, events),
                             conflict=("account_id", "event_id"))


async def save_daily_costs(s: AsyncSession, account_id: int, days: Iterable[int],
                           by_resource: dict[str, Any]) -> int:
    """Upsert cost per resource per day (``days``: epoch days aligned with each resource's array).
    Days without spend (zero or not a number) are not stored."""
    day_dates = [_EPOCH + timedelta(days=int(d)) for d in days]
    rows = ((account_id, arn, day, float(c)) for arn, costs in by_resource.items()
            for day, c in zip(day_dates, costs, strict=True) if c and c == c)
    return await upsert_rows(s, DailyCost.__table__, COST_COLS, rows, conflict=("account_id", "arn", "day"),
                             update=("cost_usd",))


def _evidence(row: Any, ev: dict | None) -> dict | None:
    """The stored evidence; a team read from the resource's creator says so (the watch calls it a guess),
    when anyone but a broad actor last used it (``activity``: first/last ISO time, events) and its last
    few create/manage events (``recent_changes``: [ISO time, event name, principal, person, error])."""
    if getattr(row, "owner_source", "") == "creator":
        ev = {**(ev or {}), "owner_source": "creator"}
    if getattr(row, "recent", None):
        ev = {**(ev or {}), "recent_changes": [[t.isoformat() if (t := _ts(e[0])) else None, *e[1:]] for e in row.recent]}
    if getattr(row, "events", 0):
        first, last = _ts(getattr(row, "first_active", None)), _ts(getattr(row, "last_active", None))
        ev = {**(ev or {}), "activity": {"first": first.isoformat() if first else None,
                                         "last": last.isoformat() if last else None, "events": int(row.events)}}
    return ev


async def save_predictions(s: AsyncSession, scan_id: int, rows: Iterable[Any], classes: list[str],
                           proba: Any = None, top: int = 3, evidence: list[dict] | None = None) -> int:
    """Replace a scan's predictions (``engine.scan.ResourcePrediction`` rows; ``proba`` and
    ``evidence`` (``engine.evidence.owner_evidence``) aligned with them)."""
    await s.execute(delete(Prediction).where(Prediction.scan_id == scan_id))

    def gen() -> Iterator[tuple]:
        for i, r in enumerate(rows):
            probs: dict[str, float] = {}
            if proba is not None and len(classes):
                p = proba[i]
                for j in sorted(range(len(classes)), key=lambda k: -p[k])[:top]:
                    probs[classes[j]] = round(float(p[j]), 4)
            yield (scan_id, r.arn, r.resource_id, r.type, r.predicted_team, float(r.confidence), r.runner_up,
                   float(r.runner_up_confidence), probs, r.tag_team, bool(r.tag_conflict), float(r.anomaly_score),
                   float(r.monthly_cost_usd), _evidence(r, evidence[i] if evidence is not None else None))

    return await insert_rows(s, Prediction.__table__, PREDICTION_COLS, gen())


async def sync_tag_labels(s: AsyncSession, account_id: int, tag_teams: dict[str, str]) -> int:
    """Tag labels (source "tag") follow the cloud: a new label where a resource's tagged team is new
    or changed, the old one superseded; untagged resources keep their history. Returns labels added."""
    current = {arn: team for arn, team in await s.execute(select(Label.arn, Label.team).where(
        Label.account_id == account_id, Label.source == "tag", Label.superseded_at.is_(None)).order_by(Label.id))}
    changed = [arn for arn, team in tag_teams.items() if team and current.get(arn) != team]
    if not changed:
        return 0
    now = utcnow()
    stale = [arn for arn in changed if arn in current]
    for i in range(0, len(stale), 500):
        await s.execute(update(Label).where(Label.account_id == account_id, Label.source == "tag",
                                            Label.superseded_at.is_(None), Label.arn.in_(stale[i:i + 500]))
                        .values(superseded_at=now))
    return await insert_rows(s, Label.__table__, ("account_id", "arn", "team", "source", "actor", "created_at"),
                             ((account_id, arn, tag_teams[arn], "tag", "cloud", now) for arn in changed))


async def save_scan_result(s: AsyncSession, account_id: int, scan_id: int, result: Any,
                           progress: Progress | None = None) -> dict[str, int]:
    """All of an ``engine.scan.ScanResult`` in the caller's transaction; returns row counts."""
    say = progress or (lambda stage, frac: None)
    bundle = result.bundle
    counts: dict[str, int] = {}
    say("save", 0.0)
    counts["resources"] = await save_resources(s, account_id, bundle.resources.values())
    say("save", 0.2)
    counts["events"] = await save_events(s, account_id, bundle.activity.iter_changes())
    say("save", 0.5)
    counts["cost_days"] = await save_daily_costs(s, account_id, bundle.costs.days, bundle.costs.by_resource)
    say("save", 0.8)
    proba = result.prediction.proba if result.prediction is not None else None
    evidence = None
    if result.graph is not None and result.graph.n == len(result.rows):
        from engine.evidence import owner_evidence

        evidence = owner_evidence(result.graph)
    counts["predictions"] = await save_predictions(s, scan_id, result.rows, result.classes, proba, evidence=evidence)
    counts["tag_labels"] = await sync_tag_labels(s, account_id, {r.arn: r.tag_team for r in result.rows})
    say("save", 1.0)
    return counts

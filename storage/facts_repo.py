"""Read-only queries the ask agent needs: what changed since it last loaded, one resource's events,
the scan before the latest. Nothing here writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DailyCost, Event, Label, Prediction, Scan, Spike, WatchFile


async def facts_stamp(s: AsyncSession, account_id: int, scan_id: int) -> tuple:
    """Changes whenever what the ask tools read changes: the scan, labels, daily costs, spikes, the
    watch's cost files."""
    labels = await s.scalar(select(func.max(Label.id)).where(Label.account_id == account_id))
    costs = (await s.execute(select(func.count(), func.max(DailyCost.day)).where(
        DailyCost.account_id == account_id))).one()
    spikes = (await s.execute(select(func.count(), func.max(Spike.updated_at)).where(
        Spike.account_id == account_id))).one()
    files = (await s.execute(select(func.count(), func.max(WatchFile.id)).where(
        WatchFile.account_id == account_id))).one()
    return scan_id, labels, tuple(costs), tuple(spikes), tuple(files)


async def events_for(s: AsyncSession, account_id: int, arn: str, limit: int = 50) -> list[Event]:
    """The newest ``limit`` stored events that name ``arn``, oldest first."""
    pattern = '%"' + arn.replace("\\", "\\\\").replace("%", "\\%") + '"%'
    q = (select(Event).where(Event.account_id == account_id, cast(Event.resources, Text).like(pattern, escape="\\"))
         .order_by(Event.time.desc(), Event.id.desc()).limit(limit * 4))
    rows = [e for e in (await s.scalars(q)).all() if arn in (e.resources or [])][:limit]
    return rows[::-1]


async def previous_scan(s: AsyncSession, account_id: int, scan_id: int) -> tuple[Scan, list[Any]] | None:
    """The newest succeeded scan before ``scan_id`` that kept predictions, with them (plain rows)."""
    scans = (await s.scalars(select(Scan).where(Scan.account_id == account_id, Scan.status == "succeeded",
                                                Scan.id < scan_id).order_by(Scan.id.desc()).limit(5))).all()
    for scan in scans:
        preds = await prediction_rows(s, scan.id, evidence=False)
        if preds:
            return scan, preds
    return None


async def prediction_rows(s: AsyncSession, scan_id: int, *, evidence: bool = True) -> list[Any]:
    """A scan's predictions as plain rows (faster than ORM objects at 20,000 resources)."""
    cols = (Prediction.arn, Prediction.resource_id, Prediction.type, Prediction.team, Prediction.confidence,
            Prediction.runner_up, Prediction.runner_up_confidence, Prediction.tag_team, Prediction.tag_conflict,
            Prediction.anomaly_score, Prediction.monthly_cost_usd) + ((Prediction.evidence,) if evidence else ())
    return list((await s.execute(select(*cols).where(Prediction.scan_id == scan_id))).all())

"""Repository functions of the hourly watch: spikes, the files it has read, the change window, team
routes, expected levels and the global switches.

Like ``storage.repo``: each takes an ``AsyncSession`` inside a transaction and does one thing. A
person's decision on a spike (expected, snooze, not ours) is one conditional UPDATE checked against
the button's nonce, so a replayed or double click changes nothing and says so (``repo.Conflict``).
Every decision and every switch change goes to the audit log.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo
from storage.models import (
    Account,
    AppSwitch,
    ExpectedLevel,
    Spike,
    TeamRoute,
    WatchChangePart,
    WatchChanges,
    WatchFile,
    utcnow,
)
from storage.repo import Conflict, NotFound

PANIC = "alerts.panic"
SPIKE_STATUSES = ("open", "expected", "snoozed", "not_ours", "resolved")
# history: found on a watch's first look at old data (ended long before the newest hour): stored, never sent
DELIVERIES = ("pending", "sent", "held_strict", "held_panic", "held_storm", "unrouted", "history")
# The decisions people make with the card's buttons, and the status each leads to.
DECISIONS = {"expected": "expected", "snooze": "snoozed", "not_ours": "not_ours", "resolve": "resolved",
             "reopen": "open"}
# Spikes that merge: an open spike of the same resource that ends at most this long before the new one.
ADJOIN = timedelta(hours=1)


def _dt(t: float | datetime) -> datetime:
    return t if isinstance(t, datetime) else datetime.fromtimestamp(float(t), UTC)


# -- spikes --------------------------------------------------------------------------------------

# The Spike row fields a watch may (re)write; status, delivery, nonce and chat refs are the job's and
# people's, never overwritten by a later detection of the same spike.
SPIKE_FIELDS = ("arn", "resource_id", "resource_type", "instance_type", "kind", "start", "end", "ongoing",
                "peak_usd_per_hour", "baseline_usd_per_hour", "extra_usd", "severity", "reasons", "score",
                "history_hours", "owner_team", "owner_confidence", "owner_source", "cause", "people", "series")
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


async def upsert_spike(s: AsyncSession, account_id: int, key: str, **fields: Any) -> tuple[Spike, bool]:
    """Store a detected spike; (row, created).

    The same key updates its row. Else an open-or-decided spike of the same resource that overlaps or
    adjoins this one (its end within ``ADJOIN`` of the new start) is extended: start is kept, end and
    peak grow, and it is never alerted again (delivery stays what it was). Only a new row is
    created=True, and only a new row is ever alerted. ``start``/``end`` take epoch seconds or datetimes.
    """
    unknown = set(fields) - set(SPIKE_FIELDS)
    if unknown:
        raise ValueError(f"unknown spike fields {sorted(unknown)}")
    for k in ("start", "end"):
        if k in fields:
            fields[k] = _dt(fields[k])
    now = utcnow()
    row = await s.scalar(select(Spike).where(Spike.account_id == account_id, Spike.key == key)
                         .execution_options(populate_existing=True))
    if row is None and "arn" in fields and "start" in fields:
        end = fields.get("end", fields["start"])
        row = await s.scalar(
            select(Spike).where(Spike.account_id == account_id, Spike.arn == fields["arn"],
                                Spike.status != "resolved",
                                Spike.start <= end + ADJOIN, Spike.end >= fields["start"] - ADJOIN)
            .order_by(Spike.id.desc()).limit(1).execution_options(populate_existing=True))
        if row is not None:  # merge into the existing spike: its key, start and alert stay
            fields = dict(fields)
            fields["start"] = min(row.start, fields["start"])
            fields["end"] = max(row.end, fields.get("end", row.end))
            fields["peak_usd_per_hour"] = max(row.peak_usd_per_hour, fields.get("peak_usd_per_hour", 0.0))
            if _SEVERITY_RANK.get(fields.get("severity", ""), -1) < _SEVERITY_RANK.get(row.severity, 0):
                fields["severity"] = row.severity
            fields["reasons"] = list(dict.fromkeys([*(row.reasons or []), *fields.get("reasons", [])]))
            if fields.get("cause") is None and row.cause is not None:
                fields["cause"] = row.cause
    if row is None:
        row = Spike(account_id=account_id, key=key, nonce=repo.new_nonce(), created_at=now, updated_at=now,
                    status="open", delivery="pending", chat_refs=[], **fields)
        s.add(row)
        await s.flush()
        return row, True
    for k, v in fields.items():
        setattr(row, k, v)
    row.updated_at = now
    await s.flush()
    return row, False


async def get_spike(s: AsyncSession, spike_id: int) -> Spike:
    row = await s.get(Spike, spike_id, populate_existing=True)
    if row is None:
        raise NotFound(f"unknown spike {spike_id}")
    return row


async def open_spikes(s: AsyncSession, account_id: int, since: datetime | float | None = None, *,
                      statuses: Iterable[str] = ("open", "snoozed"), limit: int = 200) -> list[Spike]:
    """Spikes people have not settled (open or snoozed by default), newest first; with ``since``,
    those still running at or after it."""
    q = (select(Spike).where(Spike.account_id == account_id, Spike.status.in_(tuple(statuses)))
         .order_by(Spike.start.desc(), Spike.id.desc()).limit(limit))
    if since is not None:
        q = q.where(Spike.end >= _dt(since))
    return list((await s.scalars(q)).all())


async def spikes_for(s: AsyncSession, account_id: int, since: datetime | float | None = None,
                     limit: int = 1000) -> list[Spike]:
    """Every spike of an account (any status), oldest first; with ``since``, those ending after it."""
    q = select(Spike).where(Spike.account_id == account_id).order_by(Spike.start, Spike.id).limit(limit)
    if since is not None:
        q = q.where(Spike.end >= _dt(since))
    return list((await s.scalars(q)).all())


async def check_spike_nonce(s: AsyncSession, spike_id: int, nonce: str) -> Spike:
    """The spike a button names, if its nonce is the one costdna put there (else ``NotFound``)."""
    row = await s.get(Spike, spike_id, populate_existing=True)
    if row is None or not row.nonce or not hmac.compare_digest(row.nonce.encode(), nonce.encode()):
        raise NotFound("this spike alert is not one costdna sent (unknown or tampered button)")
    return row


async def decide_spike(s: AsyncSession, spike_id: int, nonce: str, action: str, actor: str, *,
                       until: datetime | None = None, team: str | None = None) -> Spike:
    """A person's decision on a spike, exactly once.

    ``action``: expected | snooze (``until`` required) | not_ours | resolve | reopen. ``NotFound`` for
    a forged id or nonce; ``Conflict`` when the spike is already in that state (a replayed click
    changes nothing, and the audit log has the one decision). A snoozed spike may be snoozed again
    only with a later ``until`` (24 h then 7 d).
    """
    to = DECISIONS.get(action)
    if to is None:
        raise ValueError(f"unknown spike decision {action!r}; use one of {', '.join(DECISIONS)}")
    if to == "snoozed" and until is None:
        raise ValueError("a snooze needs an end (until)")
    await check_spike_nonce(s, spike_id, nonce)
    now = utcnow()
    cond = [Spike.id == spike_id]
    if to == "snoozed":
        cond.append((Spike.status != "snoozed") | (Spike.snooze_until.is_(None)) | (Spike.snooze_until < until))
    else:
        cond.append(Spike.status != to)
    res = await s.execute(update(Spike).where(*cond).values(
        status=to, updated_at=now, snooze_until=until if to == "snoozed" else None))
    row = await get_spike(s, spike_id)
    if res.rowcount == 0:
        when = f" until {row.snooze_until:%Y-%m-%d %H:%M} UTC" if row.snooze_until else ""
        raise Conflict(f"this spike is already {row.status.replace('_', ' ')}{when}")
    details: dict[str, Any] = {"status": to}
    if until is not None:
        details["until"] = until.isoformat()
    if team:
        details["team"] = team
    await repo.audit(s, f"spike.{action}", actor=actor, account_id=row.account_id, target=row.arn,
                     spike_id=spike_id, **details)
    return row


async def mark_expected(s: AsyncSession, spike_id: int, nonce: str, actor: str) -> tuple[Spike, float]:
    """The "Mark expected" button: the spike becomes expected (``decide_spike``, exactly once) and its
    resource's level up to the spike's peak is expected from now on (the next watch's ``detect`` gets it
    as baseline). (spike, the level stored in $/h)."""
    from engine.spikes import expected_level

    row = await decide_spike(s, spike_id, nonce, "expected", actor)
    level = float(expected_level(row))  # type: ignore[arg-type]  # reads only the peak and baseline $/h
    await set_expected(s, row.account_id, row.arn, level, actor=actor)
    return row, level


async def resolve_stale(s: AsyncSession, account_id: int, ended_before: datetime) -> int:
    """Open spikes that ended before ``ended_before`` (long before the newest data: over) become
    resolved, one audit entry for the lot; how many."""
    res = await s.execute(update(Spike).where(Spike.account_id == account_id, Spike.status == "open",
                                              Spike.end < ended_before)
                          .values(status="resolved", updated_at=utcnow()))
    n = int(res.rowcount or 0)
    if n:
        await repo.audit(s, "spike.resolve_stale", actor="costdna", account_id=account_id, target="", count=n,
                         ended_before=ended_before.isoformat())
    return n


async def set_delivery(s: AsyncSession, spike_id: int, delivery: str, *, notified: bool = False) -> None:
    if delivery not in DELIVERIES:
        raise ValueError(f"unknown delivery {delivery!r}")
    values: dict[str, Any] = {"delivery": delivery}
    if notified:
        values["notified_at"] = utcnow()
    await s.execute(update(Spike).where(Spike.id == spike_id).values(**values))


async def claim_alert(s: AsyncSession, spike_id: int, at: datetime | None = None) -> bool:
    """Mark a pending spike as sent; False when it was already sent or held (each spike alerted once,
    even with two watches racing)."""
    res = await s.execute(update(Spike).where(Spike.id == spike_id, Spike.delivery == "pending")
                          .values(delivery="sent", notified_at=at or utcnow()))
    return res.rowcount == 1


async def add_spike_ref(s: AsyncSession, spike_id: int, platform: str, channel: str, ts: str) -> None:
    """Remember a chat message that shows this spike (to update it after a decision)."""
    await repo.add_message_ref(s, Spike, spike_id, platform, channel, ts)


async def reroute_spike(s: AsyncSession, spike_id: int, team: str, actor: str) -> Spike:
    """After "not ours" and a new label (or "assign team"): the spike belongs to ``team`` and may be
    routed again (status open, delivery pending). Its nonce changes: the buttons of the cards sent before
    (a replayed "not ours" or "expected") no longer act on the re-opened spike; the new alert has new ones."""
    row = await get_spike(s, spike_id)
    row.nonce = repo.new_nonce()
    row.owner_team, row.owner_source, row.owner_confidence = team, "label", 1.0
    row.status, row.delivery, row.updated_at = "open", "pending", utcnow()
    await repo.audit(s, "spike.reroute", actor=actor, account_id=row.account_id, target=row.arn,
                     spike_id=spike_id, team=team)
    return row


async def spike_ids_of(s: AsyncSession, account_id: int, arn: str, status: str) -> list[int]:
    """The ids of a resource's spikes in ``status`` (e.g. those marked "not ours", to re-route after a label)."""
    return list((await s.scalars(select(Spike.id).where(Spike.account_id == account_id, Spike.arn == arn,
                                                        Spike.status == status).order_by(Spike.id))).all())


async def snoozed_until(s: AsyncSession, account_id: int, arn: str, now: datetime, *,
                        other_than: int | None = None) -> datetime | None:
    """When the latest snooze still running on a resource's spikes ends (None: none is), so a new spike on
    a snoozed resource stays quiet too. ``other_than``: a spike id left out (the new one)."""
    cond = [Spike.account_id == account_id, Spike.arn == arn, Spike.status == "snoozed", Spike.snooze_until > now]
    if other_than is not None:
        cond.append(Spike.id != other_than)
    return await s.scalar(select(Spike.snooze_until).where(*cond).order_by(Spike.snooze_until.desc()).limit(1))


async def alerts_sent_since(s: AsyncSession, account_id: int, since: datetime) -> int:
    """Spike alerts sent for an account since ``since`` (the circuit breaker's count)."""
    return int(await s.scalar(select(func.count()).select_from(Spike).where(
        Spike.account_id == account_id, Spike.delivery == "sent", Spike.notified_at >= since)) or 0)


async def alerts_last_hour(s: AsyncSession, account_id: int, now: datetime | None = None) -> int:
    now = now or utcnow()
    return await alerts_sent_since(s, account_id, now - timedelta(hours=1))


async def usual_hourly_alerts(s: AsyncSession, account_id: int, now: datetime | None = None,
                              days: int = 7) -> float:
    """Alerts an account usually sends in an hour: sent in the last ``days`` days / hours elapsed."""
    now = now or utcnow()
    n = await alerts_sent_since(s, account_id, now - timedelta(days=days))
    return n / (days * 24.0)


# -- expected levels -----------------------------------------------------------------------------


async def set_expected(s: AsyncSession, account_id: int, arn: str, usd_per_hour: float, actor: str = "") -> ExpectedLevel:
    """Mark a resource's cost level expected (the higher of the old and the new level is kept)."""
    row = await s.scalar(select(ExpectedLevel).where(ExpectedLevel.account_id == account_id, ExpectedLevel.arn == arn))
    if row is None:
        row = ExpectedLevel(account_id=account_id, arn=arn, usd_per_hour=float(usd_per_hour), actor=actor,
                            created_at=utcnow())
        s.add(row)
    else:
        row.usd_per_hour, row.actor, row.created_at = max(row.usd_per_hour, float(usd_per_hour)), actor, utcnow()
    await s.flush()
    await repo.audit(s, "spike.expected_level", actor=actor, account_id=account_id, target=arn,
                     usd_per_hour=round(float(usd_per_hour), 4))
    return row


async def expected_levels(s: AsyncSession, account_id: int) -> dict[str, float]:
    """arn -> $/h marked expected (what ``engine.spikes.detect(expected=...)`` takes)."""
    rows = await s.execute(select(ExpectedLevel.arn, ExpectedLevel.usd_per_hour)
                           .where(ExpectedLevel.account_id == account_id))
    return {a: float(v) for a, v in rows}


# -- team routes ---------------------------------------------------------------------------------


@dataclass
class TeamRouteView:
    team: str
    users: list[str]
    channel: str | None


async def team_routes(s: AsyncSession, workspace_id: int) -> dict[str, TeamRouteView]:
    """team -> where its spikes go in this workspace."""
    rows = (await s.scalars(select(TeamRoute).where(TeamRoute.workspace_id == workspace_id)
                            .order_by(TeamRoute.team))).all()
    return {r.team: TeamRouteView(r.team, list(r.users or []), r.channel) for r in rows}


async def team_route(s: AsyncSession, workspace_id: int, team: str) -> TeamRouteView | None:
    return (await team_routes(s, workspace_id)).get(team)


async def set_team_route(s: AsyncSession, workspace_id: int, team: str, users: Iterable[str] = (),
                         channel: str | None = None, actor: str = "") -> TeamRoute:
    """Map a team to people to DM and/or a channel (replacing its previous mapping); audited."""
    team = team.strip()
    if not team:
        raise ValueError("a route needs a team")
    users = list(dict.fromkeys(u for u in users if u))
    row = await s.scalar(select(TeamRoute).where(TeamRoute.workspace_id == workspace_id, TeamRoute.team == team))
    if row is None:
        row = TeamRoute(workspace_id=workspace_id, team=team)
        s.add(row)
    row.users, row.channel, row.actor, row.updated_at = users, channel, actor, utcnow()
    await s.flush()
    await repo.audit(s, "settings.team_route", actor=actor, target=f"workspace:{workspace_id}", team=team,
                     users=users, channel=channel)
    return row


# -- switches --------------------------------------------------------------------------------------


async def get_switch(s: AsyncSession, name: str, default: Any = None) -> Any:
    row = await s.get(AppSwitch, name, populate_existing=True)
    return default if row is None else row.value


async def set_switch(s: AsyncSession, name: str, value: Any, actor: str = "") -> None:
    """Set a global switch (``alerts.panic``); audited, and visible to every process at once."""
    row = await s.get(AppSwitch, name)
    if row is None:
        s.add(AppSwitch(name=name, value=value, actor=actor, updated_at=utcnow()))
    else:
        row.value, row.actor, row.updated_at = value, actor, utcnow()
    await s.flush()
    await repo.audit(s, f"switch.{name}", actor=actor, target=name, value=value)


async def panic(s: AsyncSession) -> bool:
    return bool(await get_switch(s, PANIC, False))


async def set_alerts_mode(s: AsyncSession, account: Account, mode: str, actor: str = "") -> None:
    """Account governance: auto | strict | audit (stored in ``Account.options["alerts_mode"]``)."""
    if mode not in ("auto", "strict", "audit"):
        raise ValueError(f"unknown alerts mode {mode!r}; use auto, strict or audit")
    account.options = {**(account.options or {}), "alerts_mode": mode}
    await repo.audit(s, "settings.alerts_mode", actor=actor, account_id=account.id, target=account.name, mode=mode)


# -- files, parts and the change window ----------------------------------------------------------


@dataclass
class SeenRow:
    """What the watch recorded of a file (mirrors engine.watch.SeenFile)."""

    path: str
    size: int
    mtime: float
    kind: str


async def seen_files(s: AsyncSession, account_id: int) -> dict[str, SeenRow]:
    """path -> (size, mtime, kind) of every file the watch has read for the account."""
    rows = await s.execute(select(WatchFile.path, WatchFile.size, WatchFile.mtime, WatchFile.kind)
                           .where(WatchFile.account_id == account_id))
    return {p: SeenRow(p, int(sz), float(mt), k) for p, sz, mt, k in rows}


IN_BATCH = 1000  # paths per IN (...): SQLite and asyncpg take at most 32,767 parameters a statement


async def record_files(s: AsyncSession, account_id: int, files: Iterable[Any],
                       parts: Mapping[str, bytes | None] | None = None,
                       rows: Mapping[str, int] | None = None) -> int:
    """Record files read (objects with path, size, mtime, kind) and, for cost files, their part bytes.
    A file read again (changed) replaces its row and part: only the latest version per path is kept."""
    parts, rows = parts or {}, rows or {}
    files = list(files)
    if not files:
        return 0
    existing: dict[str, WatchFile] = {}
    paths = [f.path for f in files]
    for i in range(0, len(paths), IN_BATCH):  # a first watch can name more files than a query takes
        existing.update((w.path, w) for w in (await s.scalars(select(WatchFile).where(
            WatchFile.account_id == account_id, WatchFile.path.in_(paths[i:i + IN_BATCH])))).all())
    now = utcnow()
    for f in files:
        w = existing.get(f.path)
        if w is None:
            w = WatchFile(account_id=account_id, path=f.path)
            s.add(w)
        w.size, w.mtime, w.kind, w.read_at = int(f.size), float(f.mtime), f.kind, now
        w.part = parts.get(f.path)
        w.rows = int(rows.get(f.path, 0))
    await s.flush()
    return len(files)


async def load_parts(s: AsyncSession, account_id: int) -> dict[str, bytes]:
    """path -> stored CostPart bytes (one per path: the latest read)."""
    res = await s.execute(select(WatchFile.path, WatchFile.part).where(
        WatchFile.account_id == account_id, WatchFile.part.is_not(None)).order_by(WatchFile.path))
    return {p: bytes(b) for p, b in res}


@dataclass
class ChangesWindow:
    deploys: list[dict[str, Any]]
    state: dict[str, Any]


async def load_changes(s: AsyncSession, account_id: int) -> ChangesWindow:
    """The retained deploys and the watch's state (last scored hour...); the change events are in
    parts (``load_change_parts``)."""
    row = await s.scalar(select(WatchChanges).where(WatchChanges.account_id == account_id)
                         .execution_options(populate_existing=True))
    if row is None:
        return ChangesWindow([], {})
    return ChangesWindow(list(row.deploys or []), dict(row.state or {}))


async def save_changes(s: AsyncSession, account_id: int, deploys: list[dict[str, Any]] | None = None,
                       state: dict[str, Any] | None = None) -> None:
    """Store the deploys and state; a None argument keeps what is stored."""
    row = await s.scalar(select(WatchChanges).where(WatchChanges.account_id == account_id))
    if row is None:
        row = WatchChanges(account_id=account_id, deploys=[], state={})
        s.add(row)
    if deploys is not None:
        row.deploys = deploys
    if state is not None:
        row.state = {**(row.state or {}), **state}
    row.updated_at = utcnow()
    await s.flush()


@dataclass
class ChangePart:
    id: int
    blob: bytes
    events: int
    min_time: float
    max_time: float


async def load_change_parts(s: AsyncSession, account_id: int) -> list[ChangePart]:
    """The stored change-event parts of an account, oldest first."""
    res = await s.execute(select(WatchChangePart.id, WatchChangePart.blob, WatchChangePart.events,
                                 WatchChangePart.min_time, WatchChangePart.max_time)
                          .where(WatchChangePart.account_id == account_id).order_by(WatchChangePart.id))
    return [ChangePart(int(i), bytes(b), int(n), float(lo), float(hi)) for i, b, n, lo, hi in res]


async def add_change_part(s: AsyncSession, account_id: int, blob: bytes, events: int, min_time: float,
                          max_time: float) -> int:
    """Store the change events of one watch (or a merge of parts); its id."""
    row = WatchChangePart(account_id=account_id, blob=blob, events=int(events), min_time=float(min_time),
                          max_time=float(max_time), created_at=utcnow())
    s.add(row)
    await s.flush()
    return int(row.id)


async def delete_change_parts(s: AsyncSession, account_id: int, ids: Iterable[int]) -> int:
    """Delete the given parts (expired, or merged into a new one); how many."""
    ids = [int(i) for i in ids]
    if not ids:
        return 0
    res = await s.execute(delete(WatchChangePart).where(WatchChangePart.account_id == account_id,
                                                        WatchChangePart.id.in_(ids)))
    return int(res.rowcount or 0)


async def watch_state(s: AsyncSession, account_id: int) -> dict[str, Any]:
    return (await load_changes(s, account_id)).state

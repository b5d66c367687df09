"""What the ask tools read: one account's stored results, held in memory as plain records.

``handlers.ask`` loads a ``Facts`` from storage once per (scan, labels, costs, spikes) state and keeps
it while that state holds, so a question costs a few array sums, not a database round trip per
resource. The tools are read-only by construction: they get this object, whose records are frozen
and whose only way back to storage is ``Store`` (two read-only lookups too large to keep in memory:
one resource's events, the previous scan's owners).

Owners follow one rule on every surface (the scan summary, ``teams``, ``apply``, the digest): a
person's label, else the owner tag unless behaviour confidently contradicts it, else the model's
team at or above the confidence threshold (``COSTDNA_CONFIDENCE_THRESHOLD``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import numpy as np

NO_OWNER = "no owner"


@dataclass(frozen=True)
class Res:
    """One resource as the latest scan saw it, with a person's label folded in."""

    arn: str
    resource_id: str
    type: str = ""
    name: str = ""
    region: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    team: str = ""  # the model's team ("" when it fits no team)
    confidence: float = 0.0
    runner_up: str = ""
    runner_up_confidence: float = 0.0
    tag_team: str = ""  # normalized owner tag ("" untagged)
    tag_conflict: bool = False  # behaviour confidently says another team than the tag
    label: str = ""  # a person's answer to "who owns this?" ("" none)
    anomaly: float = 0.0
    monthly_usd: float = 0.0  # run rate over the scanned period (amortized)
    evidence: Mapping[str, Any] | None = None
    first_active: date | None = None  # first and last day CloudTrail saw it used (None: never)
    last_active: date | None = None
    active_days: int = 0

    def owner(self, threshold: float) -> str:
        """The owner every surface agrees on ("" when there is none at this threshold)."""
        if self.label:
            return self.label
        if self.tag_team and not self.tag_conflict:
            return self.tag_team
        return self.team if self.team and self.confidence >= threshold else ""

    def owner_source(self, threshold: float) -> str:
        if self.label:
            return "label"
        if self.tag_team and not self.tag_conflict:
            return "tag"
        return "predicted" if self.team and self.confidence >= threshold else "none"


@dataclass(frozen=True)
class SpikeFact:
    """A spike the hourly watch stored, as ``find_cost_spikes`` reports it."""

    id: int
    arn: str
    resource_id: str
    start: datetime
    end: datetime
    extra_usd: float
    peak_usd_per_hour: float = 0.0
    baseline_usd_per_hour: float = 0.0
    severity: str = "info"
    kind: str = "statistical"
    status: str = "open"
    owner_team: str = ""
    cause: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EventFact:
    """One stored management event that names a resource."""

    time: datetime | None
    event_name: str
    principal: str = ""
    person: str | None = None
    error_code: str | None = None
    event_id: str = ""


@dataclass(frozen=True)
class ScanSnapshot:
    """Another scan's owners and costs, for ``what_changed``."""

    scan_id: int
    finished_at: datetime | None
    resources: Mapping[str, Res]  # arn -> resource as that scan saw it (labels as they are now)


class Store(Protocol):
    """The read-only lookups too big to hold in memory."""

    async def events(self, arn: str, limit: int = 50) -> list[EventFact]: ...

    async def previous_scan(self) -> ScanSnapshot | None: ...


class MemoryStore:
    """A ``Store`` over lists (tests, and accounts whose events fit in memory)."""

    def __init__(self, events: Mapping[str, list[EventFact]] | None = None, previous: ScanSnapshot | None = None):
        self._events = dict(events or {})
        self._previous = previous

    async def events(self, arn: str, limit: int = 50) -> list[EventFact]:
        evs = sorted(self._events.get(arn, []), key=lambda e: e.time or datetime.min.replace(tzinfo=UTC))
        return evs[-limit:]

    async def previous_scan(self) -> ScanSnapshot | None:
        return self._previous


_EPOCH = date(1970, 1, 1)


@dataclass
class Facts:
    """One account's stored results. Build with :meth:`build`; never mutated by a tool."""

    account: str
    scan_id: int
    resources: list[Res]
    days: list[date]  # the stored days with costs, ascending, gap-free from first to last
    cost: np.ndarray  # (len(cost_arns), len(days)) amortized $ per resource and day
    cost_arns: list[str]
    threshold: float = 0.7
    scan_finished: datetime | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    spikes: list[SpikeFact] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    required_tags: tuple[str, ...] = ("team",)
    aliases: Mapping[str, str] = field(default_factory=dict)  # lower-case alias -> team
    org: Any = None  # engine.org.Org, or None
    store: Store = field(default_factory=MemoryStore)
    by_arn: dict[str, Res] = field(init=False)
    by_id: dict[str, Res] = field(init=False)
    by_name: dict[str, Res] = field(init=False)
    cost_row: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.by_arn = {r.arn: r for r in self.resources}
        self.by_id = {}
        for r in self.resources:
            self.by_id.setdefault(r.resource_id.lower(), r)
        for r in self.resources:
            self.by_id.setdefault(r.arn.lower(), r)
        self.by_name = {}
        for r in self.resources:
            if r.name:
                self.by_name.setdefault(r.name.lower(), r)
        self.cost_row = {a: i for i, a in enumerate(self.cost_arns)}

    @classmethod
    def build(cls, account: str, scan_id: int, resources: Iterable[Res],
              daily: Iterable[tuple[str, date, float]] = (), **kw: Any) -> Facts:
        """Facts from records and ``(arn, day, amortized $)`` rows (days without a row cost $0.00)."""
        rows = list(daily)
        if rows:
            first = min(d for _, d, _ in rows)
            last = max(d for _, d, _ in rows)
            days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        else:
            days = []
        arns = sorted({a for a, _, _ in rows})
        idx = {a: i for i, a in enumerate(arns)}
        cost = np.zeros((len(arns), len(days)))
        if rows:
            first = days[0]
            for a, d, usd in rows:
                cost[idx[a], (d - first).days] += float(usd)
        return cls(account=account, scan_id=scan_id, resources=list(resources), days=days, cost=cost,
                   cost_arns=arns, **kw)

    # -- reading ---------------------------------------------------------------------------------

    def resource(self, ref: str) -> Res | None:
        """A resource by short id, name or ARN (any case); None when unknown."""
        ref = ref.strip().strip("`<>\"'").rstrip("?.,;:").lower()
        if not ref:
            return None
        hit = self.by_id.get(ref)
        if hit is None and ref.startswith("arn:"):
            from engine.arns import canonical_arn

            hit = self.by_id.get(canonical_arn(ref).lower())
        return hit if hit is not None else self.by_name.get(ref)

    def owner(self, arn: str) -> str:
        r = self.by_arn.get(arn)
        return r.owner(self.threshold) if r is not None else ""

    def rid(self, arn: str) -> str:
        r = self.by_arn.get(arn)
        return r.resource_id if r is not None and r.resource_id else arn

    def teams(self) -> list[str]:
        """Every team the scan knows (tags, labels, the model's classes)."""
        model = (self.summary.get("model") or {}).get("teams") or []
        out = set(model) | set((self.summary.get("teams") or {}).keys())
        out |= {r.tag_team for r in self.resources if r.tag_team} | {r.label for r in self.resources if r.label}
        out |= {r.team for r in self.resources if r.team}
        return sorted(out)

    def canonical_team(self, word: str) -> str | None:
        w = word.strip().strip("`'\"*_").lower()
        for t in self.teams():
            if t.lower() == w:
                return t
        return self.aliases.get(w)

    @property
    def data_start(self) -> date | None:
        return self.days[0] if self.days else None

    @property
    def data_end(self) -> date | None:
        """The last stored day with costs."""
        return self.days[-1] if self.days else None

    @property
    def as_of(self) -> date:
        """The day questions about "now" are read at: the last stored day, else today."""
        return self.data_end or self.now.date()

    def day_mask(self, start: datetime, end: datetime) -> np.ndarray:
        """Stored days whose midnight (UTC) lies in ``[start, end)``."""
        if not self.days:
            return np.zeros(0, dtype=bool)
        mids = [datetime.combine(d, time(), UTC) for d in self.days]
        return np.array([start <= m < end for m in mids], dtype=bool)

    def spend(self, start: datetime, end: datetime) -> dict[str, float]:
        """arn -> amortized $ over ``[start, end)`` (resources without cost left out)."""
        mask = self.day_mask(start, end)
        if not mask.any():
            return {}
        sums = self.cost[:, mask].sum(axis=1)
        return {a: float(sums[i]) for i, a in enumerate(self.cost_arns) if sums[i] != 0.0}

    def has_days(self, start: datetime, end: datetime) -> bool:
        return bool(self.day_mask(start, end).any())

    def daily(self, arn: str) -> list[tuple[date, float]]:
        i = self.cost_row.get(arn)
        if i is None:
            return []
        return [(d, float(v)) for d, v in zip(self.days, self.cost[i], strict=True)]

    def unit_of(self, r: Res | None, team: str) -> str:
        if self.org is None or not team:
            return ""
        return self.org.unit(team, dict(r.tags) if r is not None else None)

    def group_of(self, r: Res | None, team: str) -> str:
        if self.org is None or not team:
            return ""
        return self.org.group(team, dict(r.tags) if r is not None else None)


def day_of(t: float | None) -> date | None:
    """An epoch day number (as ``engine.activity.Activity.days`` keys them) as a date."""
    return None if t is None else _EPOCH + timedelta(days=int(t))

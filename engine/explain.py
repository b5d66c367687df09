"""The likely cause of a cost spike: the deploy or configuration change just before it.

Candidates are deploys (``deploys.jsonl``) and deploy-like CloudTrail changes
(``engine.sources.changes.DEPLOY_LIKE``, see ``ChangeEvent.is_deploy_like``) in the hours before the spike:

* a deploy or change that names the spiking resource (a deploy also names what its own CloudTrail
  calls touched: a pipeline that lists the service but updated the function);
* a deploy of the owning team whose target is unknown (no resolvable resource, only hints).

A deploy or change that says what it touched, and that is not this resource, is no candidate, even
from the owning team: teams deploy many times a day, so "the team deployed something an hour
before" is true of most spikes, caused or not. Another team's deploy to another resource is never
a candidate, however close in time: blaming an unrelated deploy sends a team chasing someone
else's change, which is worse than saying "no cause found".

Each candidate is scored on three things:

* target match: a candidate naming the resource always ranks above one that does not;
* temporal proximity: ``exp(-hours before the spike / 4)``;
* a Granger test (statsmodels ``grangercausalitytests``) of the resource's hourly cost against a
  pulse at the candidate's hour, at the lag between the two: does knowing the change happened help
  predict the cost beyond the cost's own past? With one event the test asks whether the cost jumps
  right after it rather than drifting there or jumping before. The lag is at most 6 h: a change
  whose cost effect would only show later finds no support (a deploy 9 h before a jump is taken
  for background, not cause). statsmodels 0.15 dropped ``verbose=``;
  the call here passes none, and a failed test is "no p-value", never "no link".

What each kind needs (hours before the spike; p the Granger p-value, None when it cannot be run):
a named deploy, within the lookback, p < 0.2 or within the hour; a named change (CloudTrail makes
many), within 3 h with p < 0.05 (or None), or within the hour; an owning-team deploy of unknown
target, within 3 h with p < 0.05. The best score wins.

Cost series are hourly: a spike's start is the start of its first anomalous hour, and a change in
that same hour can be its cause (the hour's cost includes what followed the change). Changes after
that hour, or after the exact start of an early warning (a CloudTrail launch), are never blamed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.arns import short_id
from engine.records import Deploy
from engine.sources.changes import ChangeEvent

if TYPE_CHECKING:  # engine.spikes imports this module's neighbours; only the type is needed here
    from engine.spikes import Spike

TAU_HOURS = 4.0  # proximity half-life-ish: exp(-dt / TAU)
MAX_LAG = 6  # hours of Granger lag at most: a change shows in the cost within this, or is not its cause
TEAM_ONLY_HOURS = 3.0  # an owning-team deploy of unknown target must be this close
TEAM_ONLY_P = 0.05
NAMED_P = 0.2  # a deploy naming the resource, anywhere in the lookback
CHANGE_HOURS, CHANGE_P = 3.0, 0.05  # a CloudTrail change naming the resource
NAMED_CLOSE_HOURS = 1.0  # this close, a named candidate needs no test
# A deploy's own CloudTrail calls: by its actor, from this long before its recorded time (a record
# written when the pipeline ends) to this long after (a record written when it starts).
MERGE_BEFORE, MERGE_AFTER = 1800, 7200
LOOKBACK_HOURS = 12  # deploys and changes this long before a spike may be its cause


def event_span(lookback_hours: int = LOOKBACK_HOURS) -> tuple[float, float]:
    """Seconds before and after a spike's start within which ``explain`` may look at a change event: its
    lookback and the deploy-merge margins, a daily spike's first day after; at least a day before. A
    caller holding many events (the watch) builds only these for the causes."""
    before = max(24, int(lookback_hours)) * 3600.0 + MERGE_BEFORE + 3600.0
    after = 86400.0 + MERGE_AFTER + 3600.0
    return before, after


@dataclass
class Cause:
    kind: str  # "deploy" | "change"
    time: float
    commit: str | None
    repo: str | None
    actor: str | None
    p_value: float | None
    score: float
    event_name: str | None = None
    evidence: list[str] = field(default_factory=list)  # human lines, most telling first
    resources: tuple[str, ...] = ()  # what the change named

    def to_json(self) -> dict:
        """{commit, repo, actor, time (ISO Z), p_value, kind, event_name, score, evidence}."""
        return {"commit": self.commit, "repo": self.repo, "actor": self.actor, "time": _iso(self.time),
                "p_value": None if self.p_value is None else round(self.p_value, 6), "kind": self.kind,
                "event_name": self.event_name, "score": round(self.score, 4), "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, d: dict) -> Cause:
        """The inverse of :meth:`to_json` (for a stored cause)."""
        t = d.get("time")
        when = datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() if isinstance(t, str) else float(t or 0)
        return cls(kind=d.get("kind") or "deploy", time=when, commit=d.get("commit"), repo=d.get("repo"),
                   actor=d.get("actor"), p_value=d.get("p_value"), score=float(d.get("score") or 0.0),
                   event_name=d.get("event_name"), evidence=list(d.get("evidence") or []))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _ago(seconds: float) -> str:
    if seconds < 0:
        return f"{_span(-seconds)} into the spike's first hour"
    return f"{_span(seconds)} before"


def _span(seconds: float) -> str:
    m = int(round(seconds / 60))
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def granger_p(cost: np.ndarray, pulse_col: int, lag: int) -> float | None:
    """p-value (ssr F test) that a pulse at ``pulse_col`` Granger-causes ``cost`` at ``lag`` hours.

    None when the test cannot say: a constant series, too few points, the pulse outside the window,
    or statsmodels failing (singular design, NaN). Never raises.
    """
    n = len(cost)
    lag = max(1, int(lag))
    if n < 3 * lag + 6 or not 0 <= pulse_col < n - 1 or pulse_col + lag >= n:
        return None
    y = np.asarray(cost, dtype=float)
    if not np.isfinite(y).all() or float(np.ptp(y)) <= 1e-12:
        return None
    x = np.zeros(n)
    x[pulse_col] = 1.0
    if pulse_col < lag:  # the pulse must sit where the lagged regressors see it
        return None
    p = _granger(y, x, lag)
    if p is None:
        # Bills are often exactly flat (an RDS instance's hourly price) and the model with the pulse
        # then fits perfectly: statsmodels refuses ("perfect fit"). A jitter a millionth of the
        # series' scale, the same every run, makes the test computable without changing its answer.
        scale = max(float(np.ptp(y)), float(np.abs(y).mean()))
        jitter = np.random.default_rng(0).standard_normal(n) * scale * 1e-6
        p = _granger(y + jitter, x, lag)
    if p is None or math.isnan(p):
        return None
    return min(max(p, 0.0), 1.0)


def _granger(y: np.ndarray, x: np.ndarray, lag: int) -> float | None:
    try:
        from statsmodels.tsa.stattools import grangercausalitytests

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = grangercausalitytests(np.column_stack([y, x]), [lag])
        return float(res[lag][0]["ssr_ftest"][1])
    except Exception:  # statsmodels raises for degenerate designs; that is "no p-value", not "no link"
        return None


@dataclass
class _Cand:
    kind: str
    time: float
    actor: str | None
    named: bool
    team: str | None
    commit: str | None = None
    repo: str | None = None
    event_name: str | None = None
    pipeline: str = ""
    resources: tuple[str, ...] = ()


def _actor_keys(actor: str) -> tuple[str, ...]:
    if not actor:
        return ()
    if ":" in actor and actor.split(":", 1)[0] in ("role", "user", "person", "federated", "service"):
        return (actor,)
    return (actor, f"role:{actor}", f"user:{actor}", f"person:{actor}")


def _team(keys: Sequence[str], team_of: Callable[[str], str | None]) -> str | None:
    for k in keys:
        try:
            t = team_of(k)
        except Exception:
            t = None
        if t:
            return t
    return None


def _same_actor(deploy_actor: str, ev: ChangeEvent) -> bool:
    if not deploy_actor:
        return False
    a = deploy_actor
    return ev.actor == a or ev.actor.endswith(":" + a) or (ev.person is not None and ev.person == a)


def _names(arn: str, resources: Sequence[str], hints: Sequence[str] = ()) -> bool:
    if arn in resources:
        return True
    if hints:
        rid = short_id(arn)
        return any(h in (arn, rid) or (len(rid) > 3 and h.rsplit("/", 1)[-1] == rid) for h in hints)
    return False


def candidates(spike: Spike, deploys: Sequence[Deploy], changes: Sequence[ChangeEvent], owner_team: str,
               team_of: Callable[[str], str | None], lookback_hours: int = LOOKBACK_HOURS, daily: bool = False) -> list[_Cand]:
    """Deploys and deploy-like changes before the spike that name its resource or come from its owner.

    The spike's first hour (first day when ``daily``: the export gives that resource's cost per day)
    is "before" too, since its cost already includes what followed a change in it.
    """
    arn = spike.arn
    start = float(spike.start)
    step = 86400 if daily else 3600
    aligned = start % step == 0 and getattr(spike, "kind", "") != "early_warning"
    latest = start + step - 1e-6 if aligned else start
    earliest = start - lookback_hours * 3600.0
    near = [ev for ev in changes if earliest - MERGE_BEFORE <= ev.time <= latest + MERGE_AFTER]
    # Each CloudTrail call by a deploy's actor, close in time, belongs to one deploy: the one naming
    # what the call touched, else the nearest. Its resources tell what the deploy really changed.
    window = [d for d in deploys if earliest - MERGE_AFTER <= d.time <= latest + MERGE_BEFORE]
    owned: dict[int, list[int]] = {}
    for i, ev in enumerate(near):
        best, key = None, None
        for j, d in enumerate(window):
            if -MERGE_BEFORE <= ev.time - d.time <= MERGE_AFTER and _same_actor(d.actor, ev):
                k = (not set(ev.resources) & set(d.resources), abs(ev.time - d.time))
                if key is None or k < key:
                    best, key = j, k
        if best is not None:
            owned.setdefault(best, []).append(i)
    used = {i for evs in owned.values() for i in evs}
    out: list[_Cand] = []
    for j, d in enumerate(window):
        if not earliest <= d.time <= latest:
            continue
        named = _names(arn, d.resources, d.hints) or any(arn in near[i].resources for i in owned.get(j, ()))
        team = _team(_actor_keys(d.actor), team_of)
        if not named and (d.resources or not owner_team or team != owner_team):
            continue  # it says what it changed, and not this; or not the owner's
        out.append(_Cand("deploy", d.time, d.actor or None, named, team, d.commit or None, d.repo or None,
                         None, d.pipeline, tuple(d.resources)))
    for i, ev in enumerate(near):
        if i in used or not ev.is_deploy_like or not earliest <= ev.time <= latest:
            continue
        if arn not in ev.resources:
            continue
        keys = ((f"person:{ev.person}", ev.person) if ev.person else ()) + (ev.actor,)
        team = _team(keys, team_of)
        named = True
        out.append(_Cand("change", ev.time, ev.person or ev.actor, named, team, None, None, ev.event_name, "",
                         ev.resources))
    return out


def looks_daily(cost_row: np.ndarray, start_hour: int) -> bool:
    """True when the series is a daily export spread over hours: constant within every UTC day it
    covers, with at least two days of non-zero cost."""
    cost = np.asarray(cost_row, dtype=float)
    off = (-int(start_hour)) % 24  # first column at 00:00 UTC
    days = (len(cost) - off) // 24
    if days < 2:
        return False
    d = cost[off:off + days * 24].reshape(days, 24)
    return bool(np.all(np.ptp(d, axis=1) <= 1e-9) and np.count_nonzero(d[:, 0]) >= 2)


def explain(spike: Spike, cost_row: np.ndarray, start_hour: int, deploys: Sequence[Deploy],
            changes: Sequence[ChangeEvent], owner_team: str, team_of: Callable[[str], str | None],
            lookback_hours: int = LOOKBACK_HOURS, daily: bool | None = None) -> Cause | None:
    """The most likely cause of ``spike``, or None ("no cause found").

    ``cost_row`` is the resource's hourly amortized cost, column 0 being epoch hour ``start_hour``.
    ``team_of`` maps an actor key ("role:ci-payments", "person:ana@corp", or a bare CI actor name)
    to its team, None when unknown. Only candidates that name the resource or come from
    ``owner_team`` are considered (see the module docstring). ``daily`` says the resource's cost is
    known per day only (HourlySeries.daily); None infers it from the series. Daily series are tested
    per day, with the spike's first day open to candidates.
    """
    cost = np.asarray(cost_row, dtype=float) if cost_row is not None else np.zeros(0)
    if daily is None:
        daily = looks_daily(cost, start_hour)
    cands = candidates(spike, deploys, changes, owner_team, team_of, lookback_hours, daily)
    if not cands:
        return None
    start = float(spike.start)
    step = 24 if daily else 1  # hours per sample
    base = int(start_hour)
    if daily:  # to days: whole UTC days from the first midnight
        off = (-base) % 24
        days = (len(cost) - off) // 24
        cost = cost[off:off + days * 24].reshape(days, 24).sum(axis=1) if days > 0 else np.zeros(0)
        base = (base + off) // 24
    s_col = int(start // (3600 * step)) - base
    end_col = int(math.ceil(float(getattr(spike, "end", start + 3600)) / (3600 * step))) - base
    span = max(1, lookback_hours // step)
    lo = max(0, s_col - span - (48 // step if not daily else 14))
    hi = min(len(cost), max(end_col, s_col + (6 if not daily else 2)))
    window = cost[lo:hi] if hi > lo else np.zeros(0)
    scored: list[tuple[float, float | None, int, _Cand]] = []
    for c in cands:
        dt = max(0.0, start - c.time)
        c_col = min(int(c.time // (3600 * step)) - base, s_col - 1)  # a change in the first hour acts on it
        lag = min(MAX_LAG // step or 1, max(1, s_col - c_col))
        p = granger_p(window, c_col - lo, lag) if len(window) else None
        hours = dt / 3600.0
        if c.named and c.kind == "deploy":
            ok = hours <= NAMED_CLOSE_HOURS or (p is not None and p < NAMED_P)
        elif c.named:
            ok = hours <= NAMED_CLOSE_HOURS or (hours <= CHANGE_HOURS and (p is None or p < CHANGE_P))
        else:
            ok = hours <= TEAM_ONLY_HOURS and p is not None and p < TEAM_ONLY_P
        if not ok:
            continue
        prox = math.exp(-hours / TAU_HOURS)
        g = 1.0 if p is None else 1.25 - 0.5 * p
        # named candidates score in (0.5, 1], the others in (0, 0.5]: naming the resource always wins
        score = (0.5 if c.named else 0.0) + 0.5 * prox * g / 1.25
        scored.append((score, p, lag, c))
    if not scored:
        return None
    scored.sort(key=lambda s: (-s[0], -s[3].time))
    score, p, lag, c = scored[0]
    return _cause(spike, c, p, lag, score, owner_team, len(scored) - 1, daily)


def _cause(spike: Any, c: _Cand, p: float | None, lag: int, score: float, owner_team: str, others: int,
           daily: bool) -> Cause:
    ago = _ago(float(spike.start) - c.time)
    if c.kind == "deploy":
        what = f"deploy {c.commit[:7] if c.commit else '(no commit)'} of {c.repo or '?'}"
    else:
        what = f"{c.event_name}"
    lines = [f"{what} by {c.actor or 'unknown'} {ago} the spike"]
    if c.named:
        lines.append(f"it changed {short_id(spike.arn)} itself")
    else:
        lines.append(f"it came from the owning team ({owner_team}); its target is not known")
    if p is not None:
        lines.append(f"Granger test: cost follows it at lag {lag} {'d' if daily else 'h'}, p = {p:.3g}"
                     + (" (significant)" if p < 0.05 else ""))
    else:
        lines.append("Granger test: not enough cost history to test")
    if c.pipeline:
        lines.append(f"pipeline {c.pipeline}")
    if others:
        lines.append(f"{others} other candidate{'s' if others > 1 else ''} scored lower")
    return Cause(kind=c.kind, time=c.time, commit=c.commit, repo=c.repo, actor=c.actor, p_value=p, score=score,
                 event_name=c.event_name, evidence=lines, resources=c.resources)

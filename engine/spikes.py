"""Hourly cost spikes per resource: seasonal robust baselines, cold start, novelty, early warning.

Why these rules:

* **Rhythm is not a spike.** Each hour is compared with the same hour of day over the previous seven
  days and with the same hour of week over the previous weeks; the baseline is the higher of the two
  medians. A nightly batch is in the daily median, a Saturday job is in last Saturday's value, so
  neither alerts (the very first run of a weekly job cannot be told from a spike; accounts start in
  strict mode for their first week for that reason).
* **z-score on robust spread, and magnitude floors.** The spread is the larger of the resource's usual
  day-to-day noise (MAD of the lag-24 differences) and the MAD of the seasonal references. A spike
  also needs ``min_extra_usd_per_hour`` dollars above the baseline and ``min_ratio`` times it, so a
  series going from $0.001 to $0.01 an hour never pages anyone.
* **Cold start.** A resource with less than ``cold_history_hours`` of history has no baseline; it is
  judged from its first cost hour by absolute $/h (0.50 info, 5 warning, 25 critical by default).
* **Novelty** (a new instance type, a new actor on the resource, from CloudTrail changes) raises the
  score; it never alerts alone, the magnitude floors still apply.
* **Early warning.** A launch of an expensive type (list price from ``engine.prices``) whose resource
  has no cost hours yet is a spike before any billing data lands.

Everything is numpy over the whole resources x hours matrix. Only candidate cells get the exact
seasonal medians: hours costing at least the dollar floor that a cheap dense bound (``_prescreen``)
cannot rule out, so 20,000 resources x 4 weeks score in about a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from engine.arns import resource_kind, short_id
from engine.hourly import HourlySeries
from engine.prices import hourly_price, normalize_type
from engine.sources.changes import LAUNCHES, ChangeEvent

SEVERITIES = ("info", "warning", "critical")
RULES = frozenset({"statistical", "cold_start", "novelty", "early_warning"})
_DAILY_LAGS = np.arange(1, 8) * 24  # same hour of day, previous 7 days
_WEEKLY_LAGS = np.arange(1, 4) * 168  # same hour of week, previous 3 weeks
_MAD = 1.4826
_Z_CAP = 99.0
NOVELTY_BONUS = 1.5  # z points a novelty adds, per kind of novelty
NOVELTY_HOURS = 24  # a change this many hours before an hour still makes it novel
EXPECTED_TOLERANCE = 0.10  # "expected" levels suppress up to 10% above the marked level
LAUNCHED_KINDS = frozenset({"ec2:instance", "rds:db", "rds:cluster", "elasticache:cluster",
                            "elasticache:replicationgroup"})
@dataclass
class SpikeConfig:
    z: float = 4.0
    min_extra_usd_per_hour: float = 0.5
    min_ratio: float = 2.0
    cold_info: float = 0.50  # $/hour
    cold_warning: float = 5.0
    cold_critical: float = 25.0
    cold_history_hours: int = 72  # less history than this: cold-start rules
    rules: frozenset[str] = RULES  # enabled rules (flags)
    merge_gap_hours: int = 1  # anomalous hours this close (quiet hours between) are one spike
    warmup_hours: int = 72  # resources already costing in this many first hours of data are not "new"


@dataclass
class Spike:
    arn: str
    resource_id: str
    start: float  # epoch s
    end: float  # epoch s, exclusive (last anomalous hour + 3600)
    peak_usd_per_hour: float
    baseline_usd_per_hour: float
    extra_usd: float
    severity: str
    reasons: list[str]
    kind: str  # "statistical" | "cold_start" | "early_warning"
    score: float
    history_hours: int
    ongoing: bool
    key: str  # f"{arn}@{start_hour}": the same spike keeps its key across watches
    resource_type: str = ""
    instance_type: str | None = None
    event_ids: list[str] = field(default_factory=list)  # CloudTrail events behind novelty / early warning

    @property
    def start_hour(self) -> int:
        return int(self.start // 3600)

    @property
    def hours(self) -> int:
        return max(1, int(math.ceil((self.end - self.start) / 3600)))

    def to_json(self) -> dict[str, Any]:
        return {
            "arn": self.arn, "resource_id": self.resource_id, "start": _iso(self.start), "end": _iso(self.end),
            "peak_usd_per_hour": round(self.peak_usd_per_hour, 4),
            "baseline_usd_per_hour": round(self.baseline_usd_per_hour, 4), "extra_usd": round(self.extra_usd, 2),
            "severity": self.severity, "reasons": list(self.reasons), "kind": self.kind,
            "score": round(self.score, 2), "history_hours": self.history_hours, "ongoing": self.ongoing,
            "key": self.key, "resource_type": self.resource_type, "instance_type": self.instance_type,
        }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_level(spike: Spike) -> float:
    """What "Mark expected" stores for the resource: its peak $/h is the new normal."""
    return float(max(spike.peak_usd_per_hour, spike.baseline_usd_per_hour))


# ---------------------------------------------------------------------------------------------
# baselines


def _first_cost_col(cost: np.ndarray) -> np.ndarray:
    """Per row, the first column with a non-zero cost (n_hours when none)."""
    nz = cost != 0
    first = np.argmax(nz, axis=1)
    first[~nz.any(axis=1)] = cost.shape[1]
    return first


def _nanmedian_rows(v: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN when a row has none); a sort, not numpy's slow nanmedian."""
    if v.shape[1] == 0:
        return np.full(v.shape[0], np.nan)
    s = np.sort(v, axis=1)  # NaN sorts last
    k = (~np.isnan(s)).sum(axis=1)
    i = np.arange(len(s))
    lo = s[i, np.maximum(k - 1, 0) // 2]
    hi = s[i, np.minimum(k // 2, s.shape[1] - 1)]
    return np.where(k > 0, (lo + hi) / 2.0, np.nan)


def _noise(cost: np.ndarray, valid: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per row: the usual day-to-day noise, MAD of the lag-24 differences (same hour, previous day).

    Only ``rows`` (all when None) are computed; the others read 0.
    """
    n, h = cost.shape
    out = np.zeros(n)
    if h <= 24:
        return out
    idx = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    for lo in range(0, len(idx), 4096):  # bounded memory on large orgs
        part = idx[lo:lo + 4096]
        c, v = cost[part], valid[part]
        d = np.where(v[:, 24:] & v[:, :-24], np.abs(c[:, 24:] - c[:, :-24]), np.nan)
        out[part] = np.nan_to_num(_nanmedian_rows(d) * _MAD / math.sqrt(2.0), nan=0.0)
    return out


def _prescreen(cost: np.ndarray, valid: np.ndarray, ratio: float) -> np.ndarray:
    """Cells that may pass the ratio floor: a cheap dense necessary condition before the seasonal medians.

    With K valid daily references, at most K // 2 of them lie above their median, so the smallest of
    any K // 2 + 1 of them is at most the median (and the baseline is at least that median). A cell
    below ``ratio`` times the smallest of its K // 2 + 1 most recent references (when those are all
    valid) cannot be ``ratio`` times its baseline. Every other cell goes on to the exact test.
    """
    n, h = cost.shape
    keep = np.ones((n, h), bool)
    if ratio <= 0 or h <= 24:
        return keep
    total = np.zeros((n, h), np.int8)  # K: valid daily references
    prefix = np.zeros((n, h), np.int8)  # how many of the most recent ones are all valid
    run = np.ones((n, h), bool)
    mins: list[np.ndarray] = []
    cur = np.full((n, h), np.inf)
    for k in range(1, len(_DAILY_LAGS) + 1):
        lag = 24 * k
        v = np.zeros((n, h), bool)
        if lag < h:
            v[:, lag:] = valid[:, :h - lag]
        total += v
        run &= v
        prefix += run
        if k <= len(_DAILY_LAGS) // 2 + 1:
            if lag < h:
                np.minimum(cur[:, lag:], cost[:, :h - lag], out=cur[:, lag:])
            mins.append(cur.copy())
    need = total // 2 + 1
    for m, lo in enumerate(mins, start=1):
        sel = (need == m) & (prefix >= m) & (total > 0)
        keep[sel] = cost[sel] >= ratio * lo[sel]
    return keep


def _refs(cost: np.ndarray, valid: np.ndarray, r: np.ndarray, t: np.ndarray, lags: np.ndarray) -> np.ndarray:
    cols = t[:, None] - lags[None, :]
    ok = cols >= 0
    cc = np.where(ok, cols, 0)
    rr = r[:, None]
    ok &= valid[rr, cc]
    return np.where(ok, cost[rr, cc], np.nan)


@dataclass
class _Cells:
    mid: np.ndarray
    scale: np.ndarray
    from_week: np.ndarray  # the weekly reference set the baseline


def _cell_bands(cost: np.ndarray, valid: np.ndarray, noise: np.ndarray, r: np.ndarray, t: np.ndarray) -> _Cells:
    """Seasonal baseline and robust spread at the given (row, col) cells."""
    d = _refs(cost, valid, r, t, _DAILY_LAGS)
    w = _refs(cost, valid, r, t, _WEEKLY_LAGS)
    d_med = _nanmedian_rows(d)
    w_med = _nanmedian_rows(w)
    mid = np.fmax(d_med, w_med)
    mid = np.nan_to_num(mid, nan=0.0)
    mad_d = np.nan_to_num(_nanmedian_rows(np.abs(d - d_med[:, None])) * _MAD, nan=0.0)
    scale = np.maximum.reduce([noise[r], mad_d, 0.05 * np.abs(mid), np.full(len(r), 0.01)])
    from_week = np.nan_to_num(w_med, nan=-np.inf) > np.nan_to_num(d_med, nan=-np.inf)
    return _Cells(mid, scale, from_week)


def _valid(series: HourlySeries) -> tuple[np.ndarray, np.ndarray]:
    first = _first_cost_col(series.cost)
    cols = np.arange(series.n_hours)
    valid = series.covered[None, :] & (cols[None, :] >= first[:, None])
    return first, valid


def baseline(series: HourlySeries, rows: Sequence[int] | None = None,
             config: SpikeConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The baseline band (lo, mid, hi) per hour for the chart, shape (len(rows), n_hours).

    ``mid`` is the seasonal baseline, ``hi`` the level above which an hour is anomalous (z and the
    magnitude floors), ``lo`` mid minus the same spread. NaN where there is no history yet.
    """
    cfg = config or SpikeConfig()
    first, valid = _valid(series)
    idx = np.arange(len(series.arns)) if rows is None else np.asarray(list(rows), np.int64)
    noise_all = _noise(series.cost, valid, idx)
    h = series.n_hours
    r = np.repeat(idx, h)
    t = np.tile(np.arange(h), len(idx))
    b = _cell_bands(series.cost, valid, noise_all, r, t)
    has = (t - first[r]) >= min(cfg.cold_history_hours, 24)
    mid = np.where(has, b.mid, np.nan)
    hi = np.maximum.reduce([mid + cfg.z * b.scale, mid * cfg.min_ratio, mid + cfg.min_extra_usd_per_hour])
    lo = np.maximum(mid - cfg.z * b.scale, 0.0)
    shape = (len(idx), h)
    return lo.reshape(shape), mid.reshape(shape), hi.reshape(shape)


def chart_points(series: HourlySeries, arn: str, hours: int = 72,
                 config: SpikeConfig | None = None) -> list[list[float | None]]:
    """``[[epoch_hour, cost, baseline], ...]`` for the newest ``hours`` hours of one resource (the chart)."""
    i = series.index(arn)
    if i is None or series.n_hours == 0:
        return []
    _, mid, _ = baseline(series, [i], config)
    end = series.n_hours
    last = np.flatnonzero(series.covered)
    if len(last):
        end = int(last[-1]) + 1
    out: list[list[float | None]] = []
    for c in range(max(0, end - hours), end):
        m = mid[0, c]
        out.append([float(series.start_hour + c), round(float(series.cost[i, c]), 6),
                    None if np.isnan(m) else round(float(m), 6)])
    return out


# ---------------------------------------------------------------------------------------------
# novelty from CloudTrail changes


def _novelty(series: HourlySeries, changes: Sequence[ChangeEvent], launches: frozenset[str]
             ) -> dict[int, list[tuple[int, str, str]]]:
    """Row -> [(epoch hour of the change, reason, event id)] for novel changes on known resources.

    A new instance type: a change that sets a type (ModifyInstanceAttribute, ModifyDBInstance...) other
    than a launch. A new actor: someone changing the resource who had not changed it before in the
    window, on a resource others had already changed.
    """
    out: dict[int, list[tuple[int, str, str]]] = {}
    actors: dict[int, set[str]] = {}
    types: dict[int, str] = {}
    for ev in sorted(changes, key=lambda e: e.time or 0.0):
        if ev.time is None:
            continue
        hour = int(ev.time // 3600)
        who = ev.person or ev.actor or ""
        for arn in ev.resources:
            i = series.index(arn)
            if i is None:
                continue
            itype = normalize_type(ev.instance_type)
            if itype and ev.event_name not in launches and types.get(i) != itype:
                out.setdefault(i, []).append((hour, f"new instance type {itype}", ev.event_id))
            if itype:
                types[i] = itype
            seen = actors.setdefault(i, set())
            if who and seen and who not in seen:
                out.setdefault(i, []).append((hour, f"new actor {who}", ev.event_id))
            if who:
                seen.add(who)
    return out


# ---------------------------------------------------------------------------------------------
# detection


def _severity_abs(usd_per_hour: float, cfg: SpikeConfig) -> str | None:
    if usd_per_hour >= cfg.cold_critical:
        return "critical"
    if usd_per_hour >= cfg.cold_warning:
        return "warning"
    if usd_per_hour >= cfg.cold_info:
        return "info"
    return None


def _severity_stat(extra_usd: float, extra_peak: float, ratio: float, cfg: SpikeConfig) -> str:
    """Severity of a statistical spike from its dollars (total and per hour) and how far above usual."""
    if extra_peak >= cfg.cold_critical or extra_usd >= 20 * cfg.cold_critical:
        sev = 2
    elif extra_peak >= cfg.cold_warning or extra_usd >= 20 * cfg.cold_warning:
        sev = 1
    else:
        sev = 0
    if sev < 2 and ratio >= 10 and extra_usd >= 2 * cfg.cold_warning:
        sev += 1
    return SEVERITIES[sev]


def _runs(cols: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Sorted columns -> [(first, last)] runs, bridging up to ``gap`` missing columns."""
    if not len(cols):
        return []
    breaks = np.flatnonzero(np.diff(cols) > gap + 1)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(cols) - 1]
    return [(int(cols[a]), int(cols[b])) for a, b in zip(starts, ends, strict=True)]


def _hour_label(epoch_hour: int) -> str:
    return datetime.fromtimestamp(epoch_hour * 3600, UTC).strftime("%a %H:00")


def detect(series: HourlySeries, *, since_hour: int | None = None, changes: Sequence[ChangeEvent] = (),
           expected: Mapping[str, float] | None = None, config: SpikeConfig | None = None) -> list[Spike]:
    """Spikes overlapping hours >= ``since_hour`` (None: all), sorted by start then ARN.

    ``expected``: arn -> $/h marked "expected"; hours at or below it (plus 10%) are baseline.
    """
    cfg = config or SpikeConfig()
    expected = expected or {}
    rules = cfg.rules
    launches = LAUNCHES
    n, h = series.cost.shape if series.cost.ndim == 2 else (0, 0)
    spikes: list[Spike] = []
    launch_by_arn = _launch_events(changes, launches, cfg)
    if n and h:
        spikes += _detect_cost(series, since_hour, changes, expected, cfg, rules, launches, launch_by_arn)
    if "early_warning" in rules:
        spikes += _early_warnings(series, since_hour, launch_by_arn, cfg)
    spikes.sort(key=lambda s: (s.start, s.arn))
    return spikes


def _launch_events(changes: Sequence[ChangeEvent], launches: frozenset[str], cfg: SpikeConfig
                   ) -> dict[str, tuple[ChangeEvent, str, float]]:
    """ARN -> (first launch event, type, list $/h) for launches of a priced type."""
    out: dict[str, tuple[ChangeEvent, str, float]] = {}
    for ev in changes:
        if ev.event_name not in launches or ev.time is None:
            continue
        itype = normalize_type(ev.instance_type)
        price = hourly_price(itype)
        if itype is None or price is None:
            continue
        for arn in ev.resources:
            if resource_kind(arn) not in LAUNCHED_KINDS:
                continue  # RunInstances also names the subnet, VPC, security groups...
            if arn not in out or ev.time < out[arn][0].time:
                out[arn] = (ev, itype, price)
    return out


def _launch_reason(ev: ChangeEvent, itype: str, price: float) -> str:
    who = ev.person or ev.actor
    return f"launched {itype} (${price:,.2f}/h list)" + (f" by {who}" if who else "")


def _early_warnings(series: HourlySeries, since_hour: int | None,
                    launch_by_arn: Mapping[str, tuple[ChangeEvent, str, float]], cfg: SpikeConfig) -> list[Spike]:
    out = []
    for arn, (ev, itype, price) in launch_by_arn.items():
        if price < cfg.cold_warning:
            continue
        i = series.index(arn)
        if i is not None and np.any(series.cost[i] != 0):
            continue  # billing has landed: the cold-start rule judges it from its cost hours
        hour = int(ev.time // 3600)
        if since_hour is not None and hour + 1 <= since_hour:
            continue
        sev = _severity_abs(price, cfg) or "warning"
        out.append(Spike(
            arn=arn, resource_id=short_id(arn), start=float(ev.time), end=float(ev.time) + 3600.0,
            peak_usd_per_hour=price, baseline_usd_per_hour=0.0, extra_usd=price, severity=sev,
            reasons=[_launch_reason(ev, itype, price), "no billing data yet"], kind="early_warning",
            score=price / max(cfg.cold_warning, 1e-9), history_hours=0, ongoing=True, key=f"{arn}@{hour}",
            resource_type=resource_kind(arn), instance_type=itype, event_ids=[ev.event_id],
        ))
    return out


def _detect_cost(series: HourlySeries, since_hour: int | None, changes: Sequence[ChangeEvent],
                 expected: Mapping[str, float], cfg: SpikeConfig, rules: frozenset[str], launches: frozenset[str],
                 launch_by_arn: Mapping[str, tuple[ChangeEvent, str, float]]) -> list[Spike]:
    cost = series.cost
    n, h = cost.shape
    first, valid = _valid(series)
    cov_cols = np.flatnonzero(series.covered)
    if not len(cov_cols):
        return []
    col0, last_col = int(cov_cols[0]), int(cov_cols[-1])
    launched = np.zeros(n, bool)
    for arn in launch_by_arn:
        i = series.index(arn)
        if i is not None:
            launched[i] = True
    # "New": first cost after the warm-up of the data (or its launch seen in CloudTrail).
    new = ((first > col0 + cfg.warmup_hours) | launched) & (first < h)
    exp_level = np.full(n, -np.inf)
    for arn, lvl in expected.items():
        i = series.index(arn)
        if i is not None:
            exp_level[i] = float(lvl)
    exp_cap = np.where(np.isfinite(exp_level), exp_level * (1 + EXPECTED_TOLERANCE) + 0.01, -np.inf)

    cols = np.arange(h)
    cold_on = "cold_start" in rules
    floor = min(cfg.min_extra_usd_per_hour, cfg.cold_info) if cold_on else cfg.min_extra_usd_per_hour
    cand = valid & (cost >= floor) & (cost > exp_cap[:, None])
    seasoned = cols[None, :] >= (first + cfg.cold_history_hours)[:, None]
    # cold start: new resources in their first cold_history_hours, by absolute $/h
    if cold_on:
        r_c, t_c = np.nonzero(cand & ~seasoned & new[:, None] & (cost >= cfg.cold_info))
    else:
        r_c = t_c = np.zeros(0, np.int64)
    # statistical: everything with enough history that may pass the ratio floor
    if "statistical" in rules:
        rs, ts = np.nonzero(cand & seasoned & _prescreen(cost, valid, cfg.min_ratio))
    else:
        rs = ts = np.zeros(0, np.int64)
    del cand, seasoned
    noise = _noise(cost, valid, np.unique(rs))
    b = _cell_bands(cost, valid, noise, rs, ts)
    mid = np.maximum(b.mid, np.where(np.isfinite(exp_level[rs]), exp_level[rs], 0.0))
    c = cost[rs, ts]
    z = np.minimum((c - mid) / b.scale, _Z_CAP)
    nov = _novelty(series, changes, launches) if "novelty" in rules else {}
    bonus = np.zeros(len(rs))
    nov_reason: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for i, items in nov.items():
        lo, hi = np.searchsorted(rs, i, "left"), np.searchsorted(rs, i, "right")  # rs is sorted by row
        if lo == hi:
            continue
        sel = np.arange(lo, hi)
        hrs = ts[sel] + series.start_hour
        kinds_seen: dict[int, set[str]] = {}
        for ev_hour, reason, eid in items:
            for k in sel[(hrs >= ev_hour) & (hrs < ev_hour + NOVELTY_HOURS)]:
                ks = kinds_seen.setdefault(int(k), set())
                kind = reason.split(" ", 2)[1]  # "instance" | "actor"
                if kind not in ks:
                    ks.add(kind)
                    bonus[k] += NOVELTY_BONUS
                nov_reason.setdefault((i, int(ts[k])), []).append((reason, eid))
    score = z + bonus
    stat_hit = (score >= cfg.z) & (c - mid >= cfg.min_extra_usd_per_hour) & (c >= cfg.min_ratio * mid)
    n_cold = len(r_c)

    rr_all = np.concatenate([r_c, rs[stat_hit]])
    tt_all = np.concatenate([t_c, ts[stat_hit]])
    kind_all = np.concatenate([np.zeros(n_cold, np.int8), np.ones(int(stat_hit.sum()), np.int8)])
    mid_all = np.concatenate([np.zeros(n_cold), mid[stat_hit]])
    score_all = np.concatenate([cost[r_c, t_c] / max(cfg.cold_info, 1e-9), score[stat_hit]])
    fromw_all = np.concatenate([np.zeros(n_cold, bool), b.from_week[stat_hit]])
    if not len(rr_all):
        return []
    order = np.lexsort((tt_all, kind_all, rr_all))
    rr_all, tt_all, kind_all = rr_all[order], tt_all[order], kind_all[order]
    mid_all, score_all, fromw_all = mid_all[order], score_all[order], fromw_all[order]
    # group boundaries per (row, kind)
    grp = np.flatnonzero(np.r_[True, (rr_all[1:] != rr_all[:-1]) | (kind_all[1:] != kind_all[:-1]), True])
    out: list[Spike] = []
    for g0, g1 in zip(grp[:-1], grp[1:], strict=True):
        i = int(rr_all[g0])
        kind = "cold_start" if kind_all[g0] == 0 else "statistical"
        cols = tt_all[g0:g1]
        mids = mid_all[g0:g1]
        scores = score_all[g0:g1]
        fromw = fromw_all[g0:g1]
        # a new resource's cold period is one spike, however its hours go up and down
        gap = cfg.cold_history_hours if kind == "cold_start" else cfg.merge_gap_hours
        for a, z_ in _runs(cols, gap):
            if since_hour is not None and series.start_hour + z_ + 1 <= since_hour:
                continue
            sel = (cols >= a) & (cols <= z_)
            sp = _make_spike(series, i, a, z_, kind, cols[sel], mids[sel], scores[sel], fromw[sel], first[i],
                             last_col, cfg, nov_reason, launch_by_arn)
            if sp is not None:
                out.append(sp)
    return out


def _make_spike(series: HourlySeries, i: int, a: int, z_: int, kind: str, cols: np.ndarray, mids: np.ndarray,
                scores: np.ndarray, fromw: np.ndarray, first: int, last_col: int, cfg: SpikeConfig,
                nov_reason: Mapping[tuple[int, int], list[tuple[str, str]]],
                launch_by_arn: Mapping[str, tuple[ChangeEvent, str, float]]) -> Spike | None:
    arn = series.arns[i]
    span = np.arange(a, z_ + 1)
    vals = series.cost[i, span]
    base_at = np.interp(span, cols, mids)  # bridged quiet hours take their neighbours' baseline
    extra = float(np.clip(vals - base_at, 0, None).sum())
    peak_k = int(np.argmax(vals))
    peak = float(vals[peak_k])
    base = float(np.median(mids))
    itype = series.usage_types.get(arn)
    reasons: list[str] = []
    event_ids: list[str] = []
    if kind == "cold_start":
        sev = _severity_abs(peak, cfg) or "info"
        hist = int(a - first)
        reasons.append(f"new resource costing ${peak:,.2f}/h" + (" from its first hour" if a == first
                                                                  else f" {hist} h after its first cost"))
        if arn in launch_by_arn:
            ev, lt, price = launch_by_arn[arn]
            reasons.append(_launch_reason(ev, lt, price))
            event_ids.append(ev.event_id)
            itype = itype or lt
    else:
        ratio = peak / base if base > 0 else math.inf
        sev = _severity_stat(extra, peak - base, ratio, cfg)
        peak_hour = series.start_hour + int(span[peak_k])
        usual = "its usual"
        if fromw[np.argmin(np.abs(cols - span[peak_k]))]:
            usual = "its usual weekly level"
        label = _hour_label(peak_hour)
        if base > 0:
            reasons.append(f"cost {ratio:.1f}× {usual} for {label}" if ratio < 1000
                           else f"cost ${peak:,.2f}/h vs ${base:,.4f}/h usual for {label}")
        else:
            reasons.append(f"cost ${peak:,.2f}/h where it is usually $0 for {label}")
        hist = int(a - first)
    seen: set[str] = set()
    for c in cols:
        for reason, eid in nov_reason.get((i, int(c)), []):
            if reason not in seen:
                seen.add(reason)
                reasons.append(reason)
                event_ids.append(eid)
    start_hour = series.start_hour + a
    return Spike(
        arn=arn, resource_id=short_id(arn), start=float(start_hour * 3600), end=float((series.start_hour + z_ + 1) * 3600),
        peak_usd_per_hour=peak, baseline_usd_per_hour=base, extra_usd=extra, severity=sev, reasons=reasons,
        kind=kind, score=float(np.max(scores)), history_hours=hist, ongoing=bool(z_ >= last_col),
        key=f"{arn}@{start_hour}", resource_type=resource_kind(arn), instance_type=itype, event_ids=event_ids,
    )

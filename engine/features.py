"""Behavioural fingerprint of each resource: a fixed-width numeric vector.

These say nothing about which team owns a resource on their own; they say how it lives (how busy, by
how many kinds of callers, at which hours, how its cost moves), which lets the model tell a batch job
from an interactive service, and a vendor bucket from a team's database.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from engine.activity import CREATE, MANAGE, USE
from engine.bundle import Bundle

# Resource kinds with their own one-hot column; the rest share "other".
KINDS = (
    "ec2:instance", "ec2:volume", "rds:db", "lambda:function", "s3:bucket", "dynamodb:table", "sqs:queue",
    "sns:topic", "ecs:service", "elasticloadbalancing:loadbalancer", "ecs:cluster", "ec2:snapshot",
)

FEATURE_NAMES: tuple[str, ...] = (
    "log_events", "log_actors", "log_roles", "log_people", "log_services", "people_share", "manage_share",
    "create_share", "use_share", "error_share", "external_share", "log_event_names", "active_day_share",
    "days_since_last", "days_since_first", "weekend_share", "night_share", "work_hours_share",
    "hour_entropy", "has_creator", "log_monthly_cost", "cost_cv", "cost_slope", "cost_autocorr",
    "has_cost", "in_network", "log_flow_bytes", "log_flow_peers", "has_tags", "log_policy_refs",
) + tuple(f"kind={k}" for k in KINDS) + ("kind=other",)


def _cost_stats(series: np.ndarray | None) -> tuple[float, float, float, float]:
    """log monthly cost, coefficient of variation, normalised slope, lag-1 autocorrelation.

    Always finite. Spend can be negative (credits, refunds, a corrected line item) and a broken export
    can carry NaN or inf: days that are not finite count as no spend, the log keeps the sign of the
    mean (``sign * log1p(|monthly|)``), and the spread and slope are relative to the mean's magnitude.
    """
    if series is None or len(series) == 0:
        return 0.0, 0.0, 0.0, 0.0
    s = np.asarray(series, dtype=np.float64)
    s = np.where(np.isfinite(s), s, 0.0)
    if not np.any(s):
        return 0.0, 0.0, 0.0, 0.0
    mean = float(s.mean())
    scale = abs(mean)
    std = float(s.std())
    cv = std / scale if scale > 0 else (10.0 if std > 0 else 0.0)
    n = len(s)
    if n > 1:
        x = np.arange(n) - (n - 1) / 2
        slope = float((x * (s - mean)).sum() / (x * x).sum()) / (scale if scale > 0 else 1.0)
        d = s - mean
        denom = float((d * d).sum())
        ac = float((d[1:] * d[:-1]).sum() / denom) if denom > 0 else 0.0
    else:
        slope, ac = 0.0, 0.0
    log_cost = float(np.sign(mean) * np.log1p(scale * 30))
    out = (log_cost, min(cv, 10.0), float(np.clip(slope * n, -5, 5)), ac)
    return tuple(float(v) if np.isfinite(v) else 0.0 for v in out)  # type: ignore[return-value]


def resource_features(bundle: Bundle, arns: list[str], home_accounts: set[str] | None = None) -> np.ndarray:
    """Matrix (len(arns), len(FEATURE_NAMES)), unscaled."""
    act = bundle.activity
    if home_accounts is None:
        home_accounts = {r.account for r in bundle.resources.values() if r.account}
    end = bundle.period[1] if bundle.period else 0.0
    n_days = max(1.0, (bundle.period[1] - bundle.period[0]) / 86400) if bundle.period else 1.0

    per_res: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    actors: dict[str, set[str]] = defaultdict(set)
    for (arn, actor, rel), ps in act.pairs.items():
        d = per_res[arn]
        if actor.startswith("person:"):
            d["people"] += ps.count  # also counted under its role: shares, not totals, matter here
            actors[arn].add(actor)
            continue
        d["events"] += ps.count
        d[rel] += ps.count
        d["errors"] += ps.errors
        acct = act.actor_accounts.get(actor)
        if acct and acct not in home_accounts:
            d["external"] += ps.count
        d["first"] = min(d.get("first", np.inf), ps.first)
        d["last"] = max(d.get("last", -np.inf), ps.last)
        actors[arn].add(actor)
    flow_bytes: dict[str, float] = defaultdict(float)
    flow_peers: dict[str, int] = defaultdict(int)
    for (a, b), v in bundle.flows.items():
        flow_bytes[a] += v
        flow_bytes[b] += v
        flow_peers[a] += 1
        flow_peers[b] += 1
    in_net = {i.resource for i in bundle.interfaces if i.resource}
    policy_refs: dict[str, int] = defaultdict(int)
    for p in bundle.principals.values():
        for ref in p.policy_resources:
            if ref in bundle.resources:
                policy_refs[ref] += 1

    X = np.zeros((len(arns), len(FEATURE_NAMES)), dtype=np.float32)
    kind_col = {k: FEATURE_NAMES.index(f"kind={k}") for k in KINDS}
    other_col = FEATURE_NAMES.index("kind=other")
    for i, arn in enumerate(arns):
        d = per_res.get(arn, {})
        ev = d.get("events", 0.0)
        acts = actors.get(arn, set())
        roles = sum(1 for a in acts if a.startswith("role:"))
        people = sum(1 for a in acts if a.startswith("person:"))
        services = sum(1 for a in acts if a.startswith("service:"))
        hours = np.asarray(act.hours.get(arn, [0.0] * 24))
        wk = np.asarray(act.weekdays.get(arn, [0.0] * 7))
        days = act.days.get(arn, {})
        tot_h = hours.sum()
        hp = hours / tot_h if tot_h else hours
        ent = float(-(hp[hp > 0] * np.log(hp[hp > 0])).sum() / np.log(24)) if tot_h else 0.0
        r = bundle.resources.get(arn)
        cost = _cost_stats(bundle.costs.by_resource.get(arn))
        row = [
            np.log1p(ev), np.log1p(len(acts)), np.log1p(roles), np.log1p(people), np.log1p(services),
            d.get("people", 0.0) / ev if ev else 0.0,
            d.get(MANAGE, 0.0) / ev if ev else 0.0,
            d.get(CREATE, 0.0) / ev if ev else 0.0,
            d.get(USE, 0.0) / ev if ev else 0.0,
            d.get("errors", 0.0) / ev if ev else 0.0,
            d.get("external", 0.0) / ev if ev else 0.0,
            np.log1p(len(act.event_names.get(arn, ()))),
            min(1.0, len(days) / n_days),
            min(n_days, (end - d["last"]) / 86400) / n_days if "last" in d and np.isfinite(d["last"]) else 1.0,
            min(n_days, (end - d["first"]) / 86400) / n_days if "first" in d and np.isfinite(d["first"]) else 0.0,
            (wk[5] + wk[6]) / wk.sum() if wk.sum() else 0.0,
            (hours[:6].sum() + hours[22:].sum()) / tot_h if tot_h else 0.0,
            hours[13:23].sum() / tot_h if tot_h else 0.0,  # 09-18 US East, in UTC
            ent,
            1.0 if arn in act.creators else 0.0,
            cost[0], cost[1], cost[2], cost[3],
            1.0 if arn in bundle.costs.by_resource else 0.0,
            1.0 if arn in in_net else 0.0,
            np.log1p(flow_bytes.get(arn, 0.0)) / 10.0,
            np.log1p(flow_peers.get(arn, 0)),
            1.0 if r is not None and r.tags else 0.0,
            np.log1p(policy_refs.get(arn, 0)),
        ]
        X[i, : len(row)] = row
        kind = r.kind if r is not None else ""
        X[i, kind_col.get(kind, other_col)] = 1.0
    return X


def standardize(X: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column; constant columns become zero."""
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    return ((X - mu) / sd).astype(np.float32)

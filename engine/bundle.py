"""Load a bundle directory (the clouds' own export files) into normalized tables.

Every reader reports problems as BundleIssues and keeps going: one broken file never hides the rest
of an account. With ``strict`` any issue fails the load instead. The inventory is the union of every
source, because the tagging API lists only resources that carry (or once carried) tags.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.activity import Activity, fold_cloudtrail
from engine.arns import parse_arn, resource_kind, short_id
from engine.records import BundleError, BundleIssue, Deploy, Interface, Principal, Resource
from engine.sources.files import release_memory

Progress = Callable[[str, float], None]


@dataclass
class Costs:
    """Spend, per resource and day, plus what no resource can carry."""

    days: np.ndarray  # sorted epoch days covered by cost data
    by_resource: dict[str, np.ndarray]  # arn -> cost per day (aligned with ``days``)
    total: float = 0.0
    unattributable: float = 0.0  # line items without a resource id (tax, support, transfer...)
    unattributable_by_service: dict[str, float] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # arn -> tags seen on its line items
    formats: set[str] = field(default_factory=set)
    currency: str = "USD"
    rows: int = 0

    def resource_total(self, arn: str) -> float:
        s = self.by_resource.get(arn)
        return float(s.sum()) if s is not None else 0.0

    def monthly(self, arn: str) -> float:
        """Spend extrapolated to 30 days from the days the data covers."""
        if len(self.days) == 0:
            return 0.0
        return self.resource_total(arn) * 30.0 / len(self.days)


@dataclass
class Bundle:
    root: Path
    resources: dict[str, Resource]
    principals: dict[str, Principal]
    interfaces: list[Interface]
    activity: Activity
    costs: Costs
    flows: dict[tuple[str, str], float]  # (resource a, resource b) -> bytes, a < b
    deploys: list[Deploy]
    issues: list[BundleIssue]
    period: tuple[float, float] | None  # epoch seconds covered by the data
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage

    @property
    def has_owner_tags(self) -> bool:
        return any(r.tags for r in self.resources.values())


def _daily(t: pa.Table) -> tuple[pa.Table, float, pa.Table]:
    """One cost file folded to (resource, day) sums, its total, and its unattributable line items.

    Folding each file as it is read keeps memory at resources × days instead of millions of hourly
    line items for the whole bundle.
    """
    total = float(pc.sum(t.column("cost")).as_py() or 0.0)
    no_res = pc.is_null(t.column("resource"))
    unattr = t.filter(no_res).select(["service", "cost"])
    att = t.filter(pc.invert(no_res))
    day = pc.cast(pc.floor(pc.divide(pc.cast(pc.cast(att.column("start"), pa.int64()), pa.float64()), 86400.0)),
                  pa.int64())
    # One thread: threads sum a group's line items in an order that varies from run to run, and the
    # rounding noise of a flat cost series is what its variation and autocorrelation features see.
    daily = pa.table({"resource": att.column("resource"), "day": day, "cost": att.column("cost")}).group_by(
        ["resource", "day"], use_threads=False).aggregate([("cost", "sum")])
    return daily, total, unattr


def _aggregate_costs(parts: list[tuple[pa.Table, float, pa.Table]], rows: int, tags: dict[str, dict[str, str]],
                     formats: set[str], currency: str) -> Costs:
    if not parts:
        return Costs(days=np.zeros(0, dtype=np.int64), by_resource={}, formats=formats, rows=rows)
    total = sum(p[1] for p in parts)
    unattr = pa.concat_tables([p[2] for p in parts])
    unattributable = float(pc.sum(unattr.column("cost")).as_py() or 0.0) if unattr.num_rows else 0.0
    by_service: dict[str, float] = {}
    if unattr.num_rows:
        g = unattr.group_by("service", use_threads=False).aggregate([("cost", "sum")])
        by_service = {str(s or "other"): float(v) for s, v in zip(g.column("service").to_pylist(), g.column("cost_sum").to_pylist(), strict=True)}
    g = pa.concat_tables([p[0] for p in parts])
    res = g.column("resource").to_numpy(zero_copy_only=False)
    days_col = g.column("day").to_numpy()
    vals = g.column("cost_sum").to_numpy()
    all_days = np.unique(days_col) if len(days_col) else np.zeros(0, dtype=np.int64)
    if len(all_days):
        all_days = np.arange(all_days.min(), all_days.max() + 1)
    day_idx = np.searchsorted(all_days, days_col)
    uniq, inv = np.unique(res, return_inverse=True)
    mat = np.zeros((len(uniq), len(all_days)))
    np.add.at(mat, (inv, day_idx), vals)
    by_resource = {str(a): mat[i] for i, a in enumerate(uniq)}
    return Costs(days=all_days, by_resource=by_resource, total=total, unattributable=unattributable,
                 unattributable_by_service=by_service, tags=tags, formats=formats, currency=currency, rows=rows)


def _resolve_flows(flows_raw: dict[tuple[str, str], float], interfaces: list[Interface]) -> dict[tuple[str, str], float]:
    ip_to_res: dict[str, str] = {}
    for itf in interfaces:
        if itf.resource:
            for ip in itf.private_ips:
                ip_to_res[ip] = itf.resource
    out: dict[tuple[str, str], float] = {}
    for (src, dst), b in flows_raw.items():
        a, c = ip_to_res.get(src), ip_to_res.get(dst)
        if a and c and a != c:
            key = (a, c) if a < c else (c, a)
            out[key] = out.get(key, 0.0) + b
    return out


def _ensure(resources: dict[str, Resource], arn: str, source: str, region: str = "", account: str = "") -> Resource:
    r = resources.get(arn)
    if r is None:
        a = parse_arn(arn)
        r = Resource(arn=arn, id=short_id(arn), kind=resource_kind(arn),
                     region=(a.region if a else "") or region, account=(a.account if a else "") or account)
        r.name = r.id
        resources[arn] = r
    r.sources.add(source)
    return r


# Kinds that are infrastructure plumbing, not billable owned resources; CloudTrail mentions them a lot.
_PLUMBING_KINDS = frozenset({"ec2:vpc", "ec2:subnet", "ec2:security-group", "ec2:network-interface", "unknown"})


def load_bundle(root: Path | str, *, strict: bool = False, workers: int | None = None,
                progress: Progress | None = None) -> Bundle:
    """Read every source in a bundle directory; see DESIGN.md for the layout."""
    from engine.sources.cloudtrail import cloudtrail_files
    from engine.sources.cost import cost_files, read_cost_file
    from engine.sources.deploys import read_deploys
    from engine.sources.flowlogs import flowlog_files, read_flow_file
    from engine.sources.inventory import read_iam_json, read_network_json, read_resources_json

    root = Path(root)
    if not root.is_dir():
        raise BundleError(BundleIssue(str(root), "", "bundle directory not found"))
    issues: list[BundleIssue] = []
    seconds: dict[str, float] = {}
    say = progress or (lambda stage, frac: None)

    t0 = time.perf_counter()
    resources: dict[str, Resource] = {}
    if (root / "resources.json").exists():
        for r in read_resources_json(root / "resources.json", issues):
            resources[r.arn] = r
    principals: dict[str, Principal] = {}
    if (root / "iam.json").exists():
        principals = {p.key: p for p in read_iam_json(root / "iam.json", issues)}
    interfaces: list[Interface] = []
    if (root / "network.json").exists():
        interfaces = read_network_json(root / "network.json", issues)
    deploys: list[Deploy] = []
    if (root / "deploys.jsonl").exists():
        deploys = read_deploys(root / "deploys.jsonl", issues)
    seconds["inventory"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ct_files = cloudtrail_files(root)
    say("cloudtrail", 0.0)
    activity = fold_cloudtrail(ct_files, issues, workers=workers, progress=lambda f: say("cloudtrail", f))
    seconds["cloudtrail"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say("cost", 0.0)
    parts, rows, cost_tags, formats, currency = [], 0, {}, set(), "USD"
    files = cost_files(root)
    for i, f in enumerate(files):
        cf = read_cost_file(f, issues)
        if cf is not None:
            parts.append(_daily(cf.table))
            rows += cf.table.num_rows
            cost_tags.update(cf.tags)
            formats.add(cf.format)
            currency = cf.currency or currency
        del cf
        say("cost", (i + 1) / len(files))
    costs = _aggregate_costs(parts, rows, cost_tags, formats, currency)
    del parts
    release_memory()  # a cost file read takes hundreds of MB that Arrow's pool would otherwise keep
    seconds["cost"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    flows_raw: dict[tuple[str, str], float] = {}
    for f in flowlog_files(root):
        for fl in read_flow_file(f, issues):
            k = (fl.src_addr, fl.dst_addr)
            flows_raw[k] = flows_raw.get(k, 0.0) + fl.bytes
    flows = _resolve_flows(flows_raw, interfaces)
    seconds["flows"] = time.perf_counter() - t0

    # The inventory: the union of every source.
    for arn in activity.resources:
        if resource_kind(arn) not in _PLUMBING_KINDS:
            _ensure(resources, arn, "cloudtrail", region=activity.regions.get(arn, ""))
    for arn in costs.by_resource:
        r = _ensure(resources, arn, "cost")
        for k, v in costs.tags.get(arn, {}).items():
            r.tags.setdefault(k, v)
    for itf in interfaces:
        if itf.resource:
            _ensure(resources, itf.resource, "network", region=itf.region, account=itf.account)
    for r in resources.values():
        name = r.tags.get("Name")
        if name:
            r.name = name

    if strict and issues:
        raise BundleError(issues)
    period = None
    if activity.first_time < float("inf"):
        period = (activity.first_time, activity.last_time)
    if len(costs.days):
        cs, ce = float(costs.days[0] * 86400), float((costs.days[-1] + 1) * 86400)
        period = (min(period[0], cs), max(period[1], ce)) if period else (cs, ce)
    say("loaded", 1.0)
    return Bundle(root=root, resources=resources, principals=principals, interfaces=interfaces,
                  activity=activity, costs=costs, flows=flows, deploys=deploys, issues=issues,
                  period=period, seconds=seconds)

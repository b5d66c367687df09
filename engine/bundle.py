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

from engine.activity import Activity, fold_cloudtrail
from engine.arns import parse_arn, resource_kind, short_id
from engine.costs import Costs, load_costs
from engine.records import BundleError, BundleIssue, Deploy, Interface, Principal, Resource

Progress = Callable[[str, float], None]


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
        from engine.sources import azure, gcp

        if azure.is_azure_id(arn):
            r = Resource(arn=arn, id=azure.resource_name(arn), kind=azure.resource_kind(arn), region=region,
                         account=azure.subscription_of(arn) or account)
        elif gcp.is_gcp_name(arn):
            r = Resource(arn=arn, id=gcp.resource_name(arn), kind=gcp.resource_kind(arn),
                         region=region or gcp.region_of_name(arn), account=gcp.project_of(arn) or account)
        else:
            a = parse_arn(arn)
            r = Resource(arn=arn, id=short_id(arn), kind=resource_kind(arn),
                         region=(a.region if a else "") or region, account=(a.account if a else "") or account)
        r.name = r.id
        resources[arn] = r
    r.sources.add(source)
    return r


def _event_source(key: str) -> str:
    """Where a resource's events came from, as ``Resource.sources`` names it."""
    from engine.sources import azure, gcp

    if azure.is_azure_id(key):
        return "azure-activity"
    if gcp.is_gcp_name(key):
        return "gcp-audit"
    return "cloudtrail"


def _is_plumbing(key: str) -> bool:
    """Scopes and network plumbing (VPCs, subnets, security groups, ENIs; resource groups, virtual
    networks, NSGs; GCP projects, operations, networks, firewalls...): resources when billed, but not
    inventory when only events name them."""
    from engine.sources import azure, gcp

    if azure.is_azure_id(key):
        return azure.resource_type(key) in azure.PLUMBING_TYPES or not azure.resource_type(key)
    if gcp.is_gcp_name(key):
        return gcp.collection_of(key) in gcp.PLUMBING_COLLECTIONS
    return resource_kind(key) in _PLUMBING_KINDS


# Kinds that are infrastructure plumbing, not billable owned resources; CloudTrail mentions them a lot.
_PLUMBING_KINDS = frozenset({"ec2:vpc", "ec2:subnet", "ec2:security-group", "ec2:network-interface", "unknown"})


def load_bundle(root: Path | str, *, strict: bool = False, workers: int | None = None,
                progress: Progress | None = None) -> Bundle:
    """Read every source in a bundle directory; see DESIGN.md for the layout."""
    from engine.sources.azure import azure_activity_files, read_azure_activity
    from engine.sources.cloudtrail import cloudtrail_files
    from engine.sources.deploys import read_deploys
    from engine.sources.flowlogs import flowlog_files, read_flow_file
    from engine.sources.gcp import gcp_audit_files, read_gcp_audit
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

    # Azure Activity Log and GCP Cloud Audit Log exports: the same events, into the same Activity
    # (each with the relation its reader decided: see engine.sources.azure / .gcp).
    t0 = time.perf_counter()
    az_files, gcp_files = azure_activity_files(root), gcp_audit_files(root)
    if az_files or gcp_files:
        for ev, rel in (*read_azure_activity(az_files, issues), *read_gcp_audit(gcp_files, issues)):
            activity.add(ev, rel)
        seconds["azure_gcp"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say("cost", 0.0)
    costs = load_costs(root, issues, say)
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
        if not _is_plumbing(arn):
            _ensure(resources, arn, _event_source(arn), region=activity.regions.get(arn, ""))
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

"""Who did what to which resource, folded into counts small enough to keep.

A month of CloudTrail for a mid-size account is tens of millions of records; attribution needs only
per (resource, actor, relation) counts with their first/last/mean time, a per-resource activity
profile (hour of day, weekday, per day) and who created each resource. Files are folded in worker
processes and the partial folds merged, so memory stays proportional to resources × actors.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.records import BundleIssue, Event

# Relations an actor can have with a resource. Management writes say more about ownership than
# data-plane traffic: a team's CI role updates its function, everybody else merely invokes it.
CREATE, MANAGE, USE = "create", "manage", "use"

# Events that bring the resource itself into being. Other "Create*" calls (CreateTags, CreateSnapshot,
# CreateInvalidation...) act on an existing resource: administration, not creation.
_CREATE_EVENTS = frozenset({
    "RunInstances", "CreateVolume", "CreateBucket", "CreateTable", "CreateDBInstance", "CreateDBCluster",
    "CreateQueue", "CreateTopic", "CreateService", "CreateCluster", "CreateLoadBalancer", "CreateTargetGroup",
    "CreateStream", "CreateLogGroup", "CreateRepository", "CreateKey", "CreateSecret", "CreateDistribution",
    "CreateNatGateway", "AllocateAddress", "CreateSecurityGroup", "CreateVpc", "CreateSubnet",
    "CreateNetworkInterface", "CreateCacheCluster", "CreateReplicationGroup", "RegisterTaskDefinition",
    "CreateFileSystem", "CreateDomain", "CreateStateMachine", "CreateDBInstanceReadReplica",
    "RestoreDBInstanceFromDBSnapshot", "CreateAutoScalingGroup", "CreateLaunchTemplate", "CreateRestApi",
    "CreateApi", "CreateUserPool", "CreateEventBus", "CreateRule", "CreateAlarm", "CreateStack",
})
_CREATE_PREFIXES = ("CreateFunction",)  # Lambda's versioned names: CreateFunction20150331
_MANAGE_PREFIXES = (
    "Update", "Modify", "Delete", "Put", "Start", "Stop", "Reboot", "Tag", "Untag", "Attach", "Detach",
    "Set", "Add", "Remove", "Enable", "Disable", "Associate", "Disassociate", "Restore", "Terminate",
    "Publish",  # PublishVersion / PublishLayerVersion; SNS Publish is data-plane (below)
    "Authorize", "Revoke", "Reset", "Change", "Promote", "Failover", "Resize", "Apply",
)
# Writes that are traffic, not administration.
_DATA_PLANE = frozenset({
    "PutObject", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "DeleteObject", "DeleteObjects",
    "CopyObject", "CompleteMultipartUpload", "UploadPart", "CreateMultipartUpload", "DeleteMessage",
    "DeleteMessageBatch", "SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "PutRecord",
    "PutRecords", "Publish", "PublishBatch", "PutLogEvents", "PutMetricData", "TransactWriteItems",
    "CreateLogStream", "StartQueryExecution", "PutEvents",
})


@lru_cache(maxsize=4096)
def relation_of(event_name: str) -> str:
    """create / manage / use for a CloudTrail event name."""
    if event_name in _DATA_PLANE:
        return USE
    if event_name in _CREATE_EVENTS or event_name.startswith(_CREATE_PREFIXES):
        return CREATE
    if event_name.startswith(_MANAGE_PREFIXES):
        return MANAGE
    return USE


def actors_of(ev: Event) -> tuple[str, ...]:
    """The identities an event speaks for: the principal, and the person behind it when known.

    Through a shared SSO role the role says nothing about the team; the session (the person) does.
    """
    if ev.person and ev.principal != f"person:{ev.person}":
        return (ev.principal, f"person:{ev.person}")
    return (ev.principal,)


@dataclass(slots=True)
class PairStats:
    """Folded calls by one actor on one resource under one relation."""

    count: float = 0.0
    errors: float = 0.0
    first: float = float("inf")
    last: float = float("-inf")
    time_sum: float = 0.0  # over events with a time, for the mean
    timed: float = 0.0

    def add(self, t: float | None, error: bool) -> None:
        self.count += 1
        if error:
            self.errors += 1
        if t is not None:
            self.time_sum += t
            self.timed += 1
            if t < self.first:
                self.first = t
            if t > self.last:
                self.last = t

    def merge(self, o: PairStats) -> None:
        self.count += o.count
        self.errors += o.errors
        self.first = min(self.first, o.first)
        self.last = max(self.last, o.last)
        self.time_sum += o.time_sum
        self.timed += o.timed

    @property
    def mean_time(self) -> float | None:
        return self.time_sum / self.timed if self.timed else None


@dataclass
class Activity:
    """CloudTrail folded per resource."""

    pairs: dict[tuple[str, str, str], PairStats] = field(default_factory=dict)  # (arn, actor, relation)
    hours: dict[str, list[float]] = field(default_factory=dict)  # arn -> 24 hour-of-day counts (UTC)
    weekdays: dict[str, list[float]] = field(default_factory=dict)  # arn -> 7 counts, Monday first
    days: dict[str, dict[int, float]] = field(default_factory=dict)  # arn -> {epoch day: count}
    event_names: dict[str, set[str]] = field(default_factory=dict)  # arn -> distinct event names
    creators: dict[str, tuple[float, str, str | None]] = field(default_factory=dict)  # arn -> (time, principal, person)
    regions: dict[str, str] = field(default_factory=dict)  # arn -> region seen
    actor_kinds: dict[str, str] = field(default_factory=dict)  # actor -> userIdentity type / "person"
    actor_accounts: dict[str, str] = field(default_factory=dict)  # actor -> caller account
    records: int = 0
    records_without_resource: int = 0
    first_time: float = float("inf")
    last_time: float = float("-inf")

    def add(self, ev: Event) -> None:
        self.records += 1
        if not ev.resources:
            self.records_without_resource += 1
            return
        t = ev.time
        if t is not None:
            if t < self.first_time:
                self.first_time = t
            if t > self.last_time:
                self.last_time = t
        rel = relation_of(ev.event_name)
        err = ev.error_code is not None
        actors = actors_of(ev)
        for actor in actors:
            if actor not in self.actor_kinds:
                self.actor_kinds[actor] = "person" if actor.startswith("person:") else ev.principal_type
                if ev.account:
                    self.actor_accounts[actor] = ev.account
        for arn in ev.resources:
            for actor in actors:
                key = (arn, actor, rel)
                ps = self.pairs.get(key)
                if ps is None:
                    ps = self.pairs[key] = PairStats()
                ps.add(t, err)
            names = self.event_names.get(arn)
            if names is None:
                names = self.event_names[arn] = set()
            names.add(ev.event_name)
            if ev.region and arn not in self.regions:
                self.regions[arn] = ev.region
            if t is not None:
                h = self.hours.get(arn)
                if h is None:
                    h = self.hours[arn] = [0.0] * 24
                    self.weekdays[arn] = [0.0] * 7
                    self.days[arn] = {}
                day = int(t // 86400)
                h[int(t % 86400) // 3600] += 1
                self.weekdays[arn][(day + 3) % 7] += 1  # 1970-01-01 was a Thursday
                d = self.days[arn]
                d[day] = d.get(day, 0.0) + 1
            if rel == CREATE and not err:
                prev = self.creators.get(arn)
                when = t if t is not None else float("inf")
                if prev is None or when < prev[0]:
                    self.creators[arn] = (when, ev.principal, ev.person)

    def merge(self, o: Activity) -> None:
        for key, ps in o.pairs.items():
            mine = self.pairs.get(key)
            if mine is None:
                self.pairs[key] = ps
            else:
                mine.merge(ps)
        for arn, h in o.hours.items():
            mine_h = self.hours.get(arn)
            if mine_h is None:
                self.hours[arn] = h
                self.weekdays[arn] = o.weekdays[arn]
                self.days[arn] = o.days[arn]
                continue
            for i, v in enumerate(h):
                mine_h[i] += v
            w = self.weekdays[arn]
            for i, v in enumerate(o.weekdays[arn]):
                w[i] += v
            d = self.days[arn]
            for k, v in o.days[arn].items():
                d[k] = d.get(k, 0.0) + v
        for arn, names in o.event_names.items():
            self.event_names.setdefault(arn, set()).update(names)
        for arn, c in o.creators.items():
            prev = self.creators.get(arn)
            if prev is None or c[0] < prev[0]:
                self.creators[arn] = c
        for arn, r in o.regions.items():
            self.regions.setdefault(arn, r)
        for a, k in o.actor_kinds.items():
            self.actor_kinds.setdefault(a, k)
        for a, k in o.actor_accounts.items():
            self.actor_accounts.setdefault(a, k)
        self.records += o.records
        self.records_without_resource += o.records_without_resource
        self.first_time = min(self.first_time, o.first_time)
        self.last_time = max(self.last_time, o.last_time)

    @property
    def resources(self) -> set[str]:
        return set(self.event_names)


def _fold_files(paths: list[str]) -> tuple[Activity, list[BundleIssue]]:
    from engine.sources.cloudtrail import read_cloudtrail_file

    act = Activity()
    issues: list[BundleIssue] = []
    for p in paths:
        for ev in read_cloudtrail_file(Path(p), issues):
            act.add(ev)
    return act, issues


def _chunks(paths: list[Path], n_chunks: int) -> list[list[str]]:
    """Split files into chunks of similar total size (largest first, greedy)."""
    sized = sorted(((p.stat().st_size, str(p)) for p in paths), reverse=True)
    buckets: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(1, n_chunks))]
    for size, p in sized:
        i = min(range(len(buckets)), key=lambda j: buckets[j][0])
        buckets[i] = (buckets[i][0] + size, buckets[i][1] + [p])
    return [b for _, b in buckets if b]


def fold_cloudtrail(
    paths: Iterable[Path],
    issues: list[BundleIssue],
    workers: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Activity:
    """Fold CloudTrail files into an Activity, in parallel when the files are big enough to pay for it."""
    paths = list(paths)
    act = Activity()
    if not paths:
        return act
    total = sum(p.stat().st_size for p in paths)
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or total < 8_000_000:
        for i, p in enumerate(paths):
            part, errs = _fold_files([str(p)])
            act.merge(part)
            issues.extend(errs)
            if progress:
                progress((i + 1) / len(paths))
        return act
    # Several chunks per worker so progress moves and a slow chunk does not hold everything up.
    chunks = _chunks(paths, min(len(paths), workers * 6))
    done_bytes = 0
    sizes = {tuple(c): sum(os.path.getsize(p) for p in c) for c in chunks}
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        for chunk, (part, errs) in zip(chunks, pool.imap(_fold_files, chunks), strict=True):
            act.merge(part)
            issues.extend(errs)
            done_bytes += sizes[tuple(chunk)]
            if progress:
                progress(done_bytes / total)
    return act

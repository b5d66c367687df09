"""Who did what to which resource, folded into counts small enough to keep.

A month of CloudTrail for a mid-size account is tens of millions of records; attribution needs only
per (resource, actor, relation) counts with their first/last/mean time, a per-resource activity
profile (hour of day, weekday, per day) and who created each resource. Files are folded in worker
processes and the partial folds merged, so memory stays proportional to resources × actors.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import compress, repeat
from operator import attrgetter, is_, is_not, itemgetter
from pathlib import Path
from typing import Any

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


_RAW_MAX = 50_000  # raw keys (about 1 KB each) cached per fold before the cache starts over
_LOCAL_MAX = 100_000  # entries of the other caches of one fold before they start over
_PENDING_MAX = 2_000_000  # records held in groups before they are spread over the Activity
_BATCH = 16_384  # records handled at once (the per-record lists below live that long)
# The raw fields of a record that decide its group; joined by a byte that valid JSON never holds.
_RAW_KEY = attrgetter("userIdentity", "eventSource", "eventName", "awsRegion", "recipientAccountId",
                      "requestParameters", "responseElements", "resources")
_REST_KEY = attrgetter("eventSource", "eventName", "awsRegion", "recipientAccountId", "requestParameters",
                       "responseElements", "resources")
_SEP = b"\0"
_TIME, _ERROR, _TIMES = attrgetter("eventTime"), attrgetter("errorCode"), attrgetter("times")
_FIRST, _SECOND, _THIRD = itemgetter(0), itemgetter(1), itemgetter(2)
_NO_TIME = (None, None)


class _Group:
    """Records by one principal on one set of resources under one relation, with or without error."""

    __slots__ = ("times", "info")

    def __init__(self, info: tuple | None):
        self.times: list[tuple[float | None, int | None]] = []  # (epoch s, epoch hour) per record
        self.info = info  # (actors, resources, relation, error); None for the fold's sinks


class _Fold:
    """Folds CloudTrail records into an Activity without building an Event per record.

    Gives the Activity that ``Activity.add`` gives for the same records' Events, in well under half
    the time. Records repeat their userIdentity, source, name, region, account and resource-naming
    parameters byte for byte, so the raw JSON of those, joined, is one cache key whose value is the
    record's group (principal, resources and relation, error or not). Records are handled a batch
    at a time with C-level passes (``map`` over getters): keys, cache lookups, times, appends to
    the groups. Python code runs per record only where a cache misses, a record has an error code
    or creates its resource. :meth:`flush` spreads each group over ``pairs``, ``hours``,
    ``weekdays`` and ``days`` at once.

    The "first one wins" updates (event names, regions, actor kinds and accounts, creators) are
    made at the record that first needs them, in record order, so they come out as with ``add``;
    so does the order of ``pairs``, groups being spread in first-touch order. Sums of times are
    exact while times are whole seconds (CloudTrail's format), as with ``merge``.
    """

    def __init__(self, act: Activity):
        self.act = act
        self.by_raw: dict[bytes, tuple] = {}  # raw key -> (group, error group, creates, first-seen info)
        self.by_ui: dict[bytes, tuple] = {}  # raw userIdentity -> principal entry (when it depends on nothing else)
        self.principals: dict[tuple, tuple] = {}  # principal tuple -> (pid, actors, type, account, key, person)
        self.by_rest: dict[bytes, tuple] = {}  # raw key less userIdentity -> (name, source, region, recipient, {})
        self.rsets: dict[tuple, int] = {}  # (resources, relation) -> rid
        self.groups: dict[tuple, tuple[_Group, _Group]] = {}  # (pid, rid) -> (group, error group)
        self.times: dict[str, tuple[float | None, int | None]] = {}  # eventTime -> (epoch s, epoch hour)
        self.minutes: dict[str, tuple[float, int]] = {}  # "YYYY-MM-DDTHH:MM" -> (epoch s, epoch hour)
        self.active: dict[_Group, None] = {}  # groups holding records not yet spread, in first-touch order
        self.pending = 0
        # Records without resources, and records that could not be read, go to sinks that are only counted.
        self.no_resources = _Group(None)
        self.bad = _Group(None)
        self.no_resources_entry = (self.no_resources, self.no_resources, False, None)
        self.bad_entry = (self.bad, self.bad, False, None)

    # -- resolving a raw key (cache misses only) ----------------------------------------------

    def _principal(self, ui: bytes, source: str, recipient: str | None) -> tuple:
        from engine.sources.cloudtrail import principal_lookup

        p, cacheable = principal_lookup(ui, source, recipient)
        e = self.principals.get(p)
        if e is None:
            principal, ptype, _role, _session, person, account = p
            actors = (principal, f"person:{person}") if person and principal != f"person:{person}" else (principal,)
            e = self.principals[p] = (len(self.principals), actors, ptype, account, principal, person)
        if cacheable:
            if len(self.by_ui) >= _LOCAL_MAX:
                self.by_ui.clear()
            self.by_ui[ui] = e
        return e

    def _rest(self, f: Any, default_region: str | None) -> tuple:
        """(name, source, region, recipient, {account: resources entry}) of the raw fields but userIdentity."""
        from engine.sources.cloudtrail import raw_str

        key = _SEP.join(_REST_KEY(f))
        rest = self.by_rest.get(key)
        if rest is None:
            name = raw_str(f.eventName)
            if name is None:
                raise ValueError("record has no eventName")
            rest = (name, raw_str(f.eventSource) or "", raw_str(f.awsRegion) or default_region,
                    raw_str(f.recipientAccountId), {})
            if len(self.by_rest) >= _LOCAL_MAX:
                self.by_rest.clear()
            self.by_rest[key] = rest
        return rest

    def _resolve(self, f: Any, default_region: str | None) -> tuple:
        """(group, error group, creates, first-seen info) of a record; changes nothing in the Activity.

        Raises what building the record's Event would raise, in the same order.
        """
        from engine.sources.cloudtrail import resources_cached

        name, source, region, recipient, by_account = self._rest(f, default_region)
        ui = bytes(f.userIdentity)
        pe = self.by_ui.get(ui)
        if pe is None:
            pe = self._principal(ui, source, recipient)
        acct = recipient or pe[3] or ""
        re = by_account.get(acct)
        if re is None:
            resources = resources_cached((source, name, region, acct, bytes(f.requestParameters),
                                          bytes(f.responseElements), bytes(f.resources)))
            rel = relation_of(name)
            rid = self.rsets.get((resources, rel))
            if rid is None:
                rid = self.rsets[(resources, rel)] = len(self.rsets)
            re = by_account[acct] = (resources, rel, rid)
        resources, rel, rid = re
        if not resources:
            return self.no_resources_entry
        gs = self.groups.get((pe[0], rid))
        if gs is None:
            gs = self.groups[(pe[0], rid)] = (_Group((pe[1], resources, rel, False)),
                                              _Group((pe[1], resources, rel, True)))
        return (gs[0], gs[1], rel == CREATE, (pe, resources, name, region))

    def _first_seen(self, key: bytes, g: tuple) -> None:
        """What ``add`` does at the first record of a raw key (and harmlessly again at later ones)."""
        if len(self.by_raw) >= _RAW_MAX:
            self.by_raw.clear()
        self.by_raw[key] = g
        if g[3] is None:
            return
        act = self.act
        pe, resources, name, region = g[3]
        _pid, actors, ptype, account, _principal, _person = pe
        for actor in actors:
            if actor not in act.actor_kinds:
                act.actor_kinds[actor] = "person" if actor.startswith("person:") else ptype
                if account:
                    act.actor_accounts[actor] = account
        for arn in resources:
            names = act.event_names.get(arn)
            if names is None:
                names = act.event_names[arn] = set()
            names.add(name)
            if region and arn not in act.regions:
                act.regions[arn] = region

    def _time(self, v: Any) -> tuple[float | None, int | None]:
        """(parse_time(v), its epoch hour), cached by the eventTime string."""
        if type(v) is not str:
            return _NO_TIME
        te = None
        minute = v[:16]
        mb = self.minutes.get(minute)
        if mb is not None and len(v) == 20 and v[19] == "Z" and v[16] == ":":
            s = v[17:19]
            if s.isascii() and s.isdigit():  # CloudTrail's own form: the minute's epoch plus the seconds
                sec = int(s)
                t = mb[0] + sec
                te = (t, mb[1] if sec < 60 else int(t // 3600))
        if te is None:
            te = self._parse_time(v, minute)
        if len(self.times) >= _LOCAL_MAX:
            self.times.clear()
        self.times[v] = te
        return te

    def _parse_time(self, v: str, minute: str) -> tuple[float | None, int | None]:
        from engine.sources.cloudtrail import parse_time

        t = parse_time(v)
        if t is None:
            return _NO_TIME
        s = v[17:19]
        if len(v) == 20 and v[19] == "Z" and v[16] == ":" and s.isascii() and s.isdigit():
            base = t - int(s)
            if len(self.minutes) >= _LOCAL_MAX:
                self.minutes.clear()
            self.minutes[minute] = (base, int(base // 3600))
        return (t, int(t // 3600))

    # -- folding ------------------------------------------------------------------------------

    def records(self, recs: list, path: str, issues: list[BundleIssue], default_region: str | None,
                first: int = 1) -> None:
        """Fold one file's records (``engine.sources.cloudtrail.FoldRecord``); bad ones become issues.

        ``first`` is the number of ``recs[0]`` in its file, for the issues.
        """
        for i in range(0, len(recs), _BATCH):
            self._batch(recs[i:i + _BATCH] if len(recs) > _BATCH else recs, path, issues, default_region, first + i)
        if self.pending >= _PENDING_MAX:
            self.flush()

    def _batch(self, recs: list, path: str, issues: list[BundleIssue], default_region: str | None,
               first: int) -> None:
        n = len(recs)
        by_raw, times = self.by_raw, self.times
        keys = list(map(_SEP.join, map(_RAW_KEY, recs)))
        gs = list(map(by_raw.get, keys))
        tvs = list(map(_TIME, recs))
        try:
            tes = list(map(times.get, tvs))
        except TypeError:  # an eventTime that is a list or an object: no time, as parse_time says
            tes = [times.get(v) if type(v) is str else _NO_TIME for v in tvs]
        # Misses, in record order: whatever can fail is done before the record changes anything.
        if None in gs or None in tes:
            nones = repeat(None)
            misses = sorted({*compress(range(n), map(is_, gs, nones)), *compress(range(n), map(is_, tes, nones))})
            for i in misses:
                f = recs[i]
                g = gs[i]
                try:
                    new = False
                    if g is None:
                        g = by_raw.get(keys[i])  # an earlier record of this batch may have brought it
                        if g is None:
                            g = self._resolve(f, default_region)
                            new = True
                    te = tes[i]
                    if te is None:
                        v = tvs[i]
                        te = times.get(v) if type(v) is str else None
                        if te is None:
                            te = self._time(v)
                except Exception as e:  # one bad record never stops the file
                    issues.append(BundleIssue(path, f"record {first + i}", str(e) or type(e).__name__))
                    gs[i] = self.bad_entry
                    tes[i] = _NO_TIME
                    continue
                if new:
                    self._first_seen(keys[i], g)
                gs[i] = g
                tes[i] = te
        grps = list(map(_FIRST, gs))
        errs = list(map(_ERROR, recs))
        if errs.count(None) != n:
            for i in compress(range(n), map(is_not, errs, repeat(None))):
                e = errs[i]
                if type(e) is str and e:
                    grps[i] = gs[i][1]
        creates = list(map(_THIRD, gs))
        if True in creates:
            for i in compress(range(n), creates):
                g = gs[i]
                if grps[i] is g[0]:  # created without error
                    self._created(g[3], tes[i][0])
        deque(map(list.append, map(_TIMES, grps), tes), 0)
        self.active.update(dict.fromkeys(grps))
        bad, without = len(self.bad.times), len(self.no_resources.times)
        self.bad.times.clear()
        self.no_resources.times.clear()
        act = self.act
        act.records += n - bad
        act.records_without_resource += without
        self.pending += n - bad - without

    def _created(self, info: tuple, t: float | None) -> None:
        pe, resources = info[0], info[1]
        creators = self.act.creators
        when = t if t is not None else float("inf")
        for arn in resources:
            prev = creators.get(arn)
            if prev is None or when < prev[0]:
                creators[arn] = (when, pe[4], pe[5])

    def flush(self) -> None:
        """Spread the groups' records over pairs and profiles, groups in first-touch order."""
        act = self.act
        pairs, hours, weekdays, days = act.pairs, act.hours, act.weekdays, act.days
        for grp in self.active:
            info = grp.info
            if info is None:  # a sink
                continue
            actors, resources, rel, err = info
            tes = grp.times
            k = len(tes)
            if k == 1:
                lo, h0 = tes[0]
                m = 0 if lo is None else 1
                hi = total = lo
                by_hour: dict[int, int] = {h0: 1}
            else:
                ts = list(map(_FIRST, tes))
                ehs = list(map(_SECOND, tes))
                if None in ehs:  # records without a time count, but have no time to add
                    ts = [t for t in ts if t is not None]
                    ehs = [h for h in ehs if h is not None]
                m = len(ts)
                if m:
                    lo, hi, total = min(ts), max(ts), sum(ts)
                    h0 = ehs[0]
                    by_hour = {h0: m} if ehs.count(h0) == m else Counter(ehs)
            if m:
                if lo < act.first_time:
                    act.first_time = lo
                if hi > act.last_time:
                    act.last_time = hi
            for arn in resources:
                for actor in actors:
                    key = (arn, actor, rel)
                    ps = pairs.get(key)
                    if ps is None:
                        ps = pairs[key] = PairStats()
                    ps.count += k
                    if err:
                        ps.errors += k
                    if m:
                        ps.time_sum += total
                        ps.timed += m
                        if lo < ps.first:
                            ps.first = lo
                        if hi > ps.last:
                            ps.last = hi
                if m:
                    h = hours.get(arn)
                    if h is None:
                        h = hours[arn] = [0.0] * 24
                        weekdays[arn] = [0.0] * 7
                        days[arn] = {}
                    w = weekdays[arn]
                    d = days[arn]
                    for eh, c in by_hour.items():
                        day = eh // 24
                        h[eh - day * 24] += c
                        w[(day + 3) % 7] += c  # 1970-01-01 was a Thursday
                        d[day] = d.get(day, 0.0) + c
            tes.clear()
        self.active.clear()
        self.pending = 0

    def file(self, path: str, issues: list[BundleIssue], default_region: str | None = None) -> None:
        """Fold one CloudTrail file: the fused path when it fits, else its Events one by one."""
        from engine.sources.cloudtrail import fold_records_of, parse_payload
        from engine.sources.files import UnreadableFile, read_bytes

        try:
            data = read_bytes(Path(path))
        except UnreadableFile as e:
            issues.append(BundleIssue(path, "", str(e)))
            return
        recs = fold_records_of(data.strip())
        if recs is None:
            self.flush()  # Events go straight into the Activity: what came before must be there first
            for ev in parse_payload(data, path, issues, default_region):
                self.act.add(ev)
            return
        del data
        self.records(recs, path, issues, default_region)


def fold_files(paths: Iterable[str | Path], act: Activity | None = None,
               issues: list[BundleIssue] | None = None) -> tuple[Activity, list[BundleIssue]]:
    """Fold CloudTrail files, one after the other, into ``act`` (a new Activity by default).

    The same Activity as ``act.add`` over ``read_cloudtrail_file``'s Events, file by file.
    """
    from engine.sources.files import gc_paused

    act = Activity() if act is None else act
    issues = [] if issues is None else issues
    fold = _Fold(act)
    with gc_paused():  # millions of small objects and no cycles: the collector would only rescan them
        for p in paths:
            fold.file(str(p), issues)
        fold.flush()
    return act, issues


def _fold_files(paths: list[str]) -> tuple[Activity, list[BundleIssue]]:
    return fold_files(paths)


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

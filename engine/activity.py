"""Who did what to which resource, folded into counts small enough to keep.

A month of CloudTrail for a mid-size account is tens of millions of records; attribution needs only
per (resource, actor, relation) counts with their first/last/mean time, a per-resource activity
profile (hour of day, weekday, per day) and who created each resource. Runs of consecutive files
are folded in worker processes (:func:`fold_files`, without an Event per record) and the partial
folds merged, so memory stays proportional to resources × actors.

The create and manage events themselves (not the data-plane USE traffic, which is most of the
volume) are kept too, for the record of who changed what: ``Activity.changes`` is a
``pyarrow.Table`` with one row per such event that names at least one resource and has a
CloudTrail ``eventID``, in file and record order (the order of ``merge``), each event once (below):

    event_id      string            CloudTrail eventID (never null or empty: records without one are left out)
    time          double            epoch seconds, null when the record has no readable time
    event_name    string            e.g. "UpdateFunctionCode20150331v2"
    event_source  string            e.g. "lambda.amazonaws.com" ("" when the record has none)
    principal     string            canonical actor key, e.g. "role:ci" (see engine.sources.cloudtrail)
    person        string            the person behind the principal, or null
    resources     list<string>      canonical ARNs the event names
    error_code    string            CloudTrail errorCode, or null

The rows are gathered in columns (:class:`ChangeLog`) and, for folds big enough to run in worker
processes, written by those workers to Arrow IPC files in a temporary directory that lives as long
as the Activity, so neither they nor the main process hold them in memory. ``changes`` maps those
files; ``iter_changes`` gives them as record batches.

Each event counts once, in every aggregate and in the change log, however often it was delivered.
CloudTrail delivers at least once, and bundles get copied: a bundle whose every file is there twice
must give the same Activity as the bundle once. Two checks, both in bounded memory:

* Files are folded in delivery order (``engine.sources.cloudtrail.delivery_order``: account, region,
  the delivery time in the S3 name), and a file byte-identical to another is folded once (only files
  of the same size are read and hashed, with BLAKE2b): ``duplicate_files`` counts them, and a log
  line at info level names one.
* Records: a record with an ``eventID`` is keyed by a 64-bit hash of its eventID, its time and who
  did what to which resources (principal, resources, relation: a copy says the same, and made-up
  eventIDs reused for different events, as in test corpora, stay apart), and left out when a record
  with that key was met before (``duplicates`` counts them; a record naming no resource, which
  only counts, is keyed by eventID and time alone). The check comes after the record's group is
  known and before anything of it is added. The keys are held
  per *stream* (the files of one account and region, whose names give the delivery time; the files
  named otherwise are one more stream, folded last) as sorted ``int64`` arrays per event hour, 8 bytes
  a key. A stream's file at delivery hour D drops the hours before D - ``_HORIZON_H``, so the keys
  kept are about a day of that stream's events, not the bundle's (at 20,000 resources, ~2 M keys,
  16 MB, against 28 M records). Every copy of an event is delivered in a file of its own account and
  region within minutes of the event, so its copies land in one stream close together: a copy
  delivered within ``_HORIZON_H`` hours of the event's hour is caught. Event hours more than
  ``_AHEAD_H`` after a file's delivery hour count as that (which bounds what a worker must re-read,
  below); records with no readable time are keyed to their file's delivery hour (for files named
  otherwise, the newest event hour of their stream so far), so their copies are caught within a
  delivery hour. Records without an ``eventID`` cannot be told apart from another event and always
  count. Two different events share a key with odds of about one in 10^12 per bundle (the kept
  keys times the records over 2^64).

In parallel the folding order is split into runs of consecutive files (:func:`_partition`). The
files named otherwise are never split; a run that starts inside a stream first folds, into nothing
kept, that stream's files delivered up to ``_HORIZON_H + _AHEAD_H`` hours before its first file
(:func:`_lookback`; about a day of one stream, a few percent more work): that gives exactly the keys
the one-process fold still holds there, so the Activity is the same whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import pickle
import shutil
import tempfile
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import compress, repeat
from operator import add, attrgetter, is_, is_not, itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from engine.records import BundleIssue, Event

log = logging.getLogger(__name__)

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


CHANGE_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("time", pa.float64()), ("event_name", pa.string()), ("event_source", pa.string()),
    ("principal", pa.string()), ("person", pa.string()), ("resources", pa.list_(pa.string())),
    ("error_code", pa.string()),
])
_CHANGE_CHUNK = 65_536  # rows gathered in Python lists before they become one Arrow record batch


class ChangeLog:
    """Create and manage events in columns: see the module docstring.

    Rows come in as (event id, time, what, error code), where ``what`` is the tuple
    (event_name, event_source, principal, person, resources) shared by every record of one fold
    group; every ``_CHANGE_CHUNK`` rows they become a record batch, held in memory or, with
    ``spill`` (a directory), appended to an Arrow IPC file there. ``parts`` are those batches
    and (sealed) files, in order.
    """

    __slots__ = ("ids", "times", "whats", "errors", "parts", "spill", "_writer", "_path", "__weakref__")

    def __init__(self, spill: str | None = None):
        self.ids: list = []
        self.times: list = []
        self.whats: list = []
        self.errors: list = []
        self.parts: list[pa.RecordBatch | str] = []
        self.spill = spill
        self._writer: Any = None
        self._path: str | None = None

    def __len__(self) -> int:
        return len(self.ids) + sum(p.num_rows if isinstance(p, pa.RecordBatch) else _ipc_rows(p) for p in self.parts)

    def __getstate__(self) -> dict:
        self.seal()
        return {"parts": self.parts, "spill": self.spill}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["spill"])
        self.parts = state["parts"]

    def own(self, directory: str) -> None:
        """Spill into ``directory``, removed with this log (or at exit)."""
        self.spill = directory
        weakref.finalize(self, shutil.rmtree, directory, True)

    def add(self, event_id: str, t: float | None, what: tuple, error: str | None) -> None:
        self.ids.append(event_id)
        self.times.append(t)
        self.whats.append(what)
        self.errors.append(error)
        if len(self.ids) >= _CHANGE_CHUNK:
            self.flush()

    def flush(self) -> None:
        """The gathered rows as one record batch."""
        n = len(self.ids)
        if not n:
            return
        uniq = {w: i for i, w in enumerate(dict.fromkeys(self.whats))}
        take = pa.array(list(map(uniq.__getitem__, self.whats)), pa.int32())
        whats = list(uniq)
        cols = [pa.array(self.ids, pa.string()), pa.array(self.times, pa.float64())]
        for j, typ in ((0, pa.string()), (1, pa.string()), (2, pa.string()), (3, pa.string()),
                       (4, pa.list_(pa.string()))):
            cols.append(pa.array([w[j] for w in whats], typ).take(take))
        cols.append(pa.array(self.errors, pa.string()))
        batch = pa.RecordBatch.from_arrays(cols, schema=CHANGE_SCHEMA)
        self.ids, self.times, self.whats, self.errors = [], [], [], []
        if self.spill is None:
            self.parts.append(batch)
            return
        if self._writer is None:
            fd, self._path = tempfile.mkstemp(suffix=".arrow", prefix=f"changes-{os.getpid()}-", dir=self.spill)
            os.close(fd)
            self._writer = pa.ipc.new_file(self._path, CHANGE_SCHEMA)
        self._writer.write_batch(batch)

    def seal(self) -> None:
        """Everything gathered into ``parts``; an open file is closed (the next rows start another)."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self.parts.append(self._path)
            self._writer = self._path = None

    def extend(self, other: ChangeLog) -> None:
        """``other``'s rows after these."""
        self.seal()
        other.seal()
        self.parts.extend(other.parts)

    def batches(self) -> Iterable[pa.RecordBatch]:
        self.seal()
        for p in self.parts:
            if isinstance(p, pa.RecordBatch):
                yield p
            else:
                r = pa.ipc.open_file(pa.memory_map(p))
                for i in range(r.num_record_batches):
                    yield r.get_batch(i)

    def table(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=CHANGE_SCHEMA)


def _ipc_rows(path: str) -> int:
    r = pa.ipc.open_file(pa.memory_map(path))
    return sum(r.get_batch(i).num_rows for i in range(r.num_record_batches))  # mapped: reads only metadata


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
    duplicates: int = 0  # records left out as copies of records met before (see the module docstring)
    duplicate_files: int = 0  # files left out as byte-identical copies of others
    change_log: ChangeLog = field(default_factory=ChangeLog, repr=False, compare=False)
    released: bool = False  # release() dropped the folded detail

    @property
    def changes(self) -> pa.Table:
        """The create and manage events, one row each (see the module docstring for the columns)."""
        return self.change_log.table()

    def iter_changes(self) -> Iterable[pa.RecordBatch]:
        """``changes`` as record batches, without building the whole table."""
        return self.change_log.batches()

    def add(self, ev: Event, rel: str | None = None) -> None:
        """Fold one event. ``rel`` is its relation when its source knows better than its name does
        (Azure and GCP records: engine.sources.azure / .gcp); by default ``relation_of(ev.event_name)``."""
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
        if rel is None:
            rel = relation_of(ev.event_name)
        err = ev.error_code is not None
        if rel != USE and ev.event_id:
            self.change_log.add(ev.event_id, t, (ev.event_name, ev.event_source, ev.principal, ev.person,
                                                 ev.resources), ev.error_code)
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
        self.duplicates += o.duplicates
        self.duplicate_files += o.duplicate_files
        self.first_time = min(self.first_time, o.first_time)
        self.last_time = max(self.last_time, o.last_time)
        self.change_log.extend(o.change_log)

    @property
    def resources(self) -> set[str]:
        return set(self.event_names)

    def release(self) -> None:
        """Drop the folded detail (pairs, profiles, event names, creators, regions, actors) once
        the graph and features are built from it; the counts, the time span and ``changes`` stay.
        At 20,000 resources that is hundreds of MB the model would otherwise train beside."""
        self.pairs = {}
        self.hours, self.weekdays, self.days = {}, {}, {}
        self.event_names, self.creators, self.regions = {}, {}, {}
        self.actor_kinds, self.actor_accounts = {}, {}
        self.released = True


_LOCAL_MAX = 100_000  # entries per cache of one fold before it starts over (checked between batches)
_RAW_MAX = 60_000  # raw keys (about 1 KB each) kept, in two halves: see records()
_PENDING_MAX = 500_000  # records held in groups before they are spread over the Activity
_BATCH = 16_384  # records handled at once (the per-record lists below live that long)
# The raw fields of a record that, with userIdentity, decide its group; joined by a byte that
# valid JSON never holds.
_RAW_KEY = attrgetter("userIdentity", "eventSource", "eventName", "awsRegion", "recipientAccountId",
                      "requestParameters", "responseElements", "resources")
_REST_KEY = attrgetter("eventSource", "eventName", "awsRegion", "recipientAccountId", "requestParameters",
                       "responseElements", "resources")
_SEP = b"\0"
_UI, _TIME, _ERROR = attrgetter("userIdentity"), attrgetter("eventTime"), attrgetter("errorCode")
_SPREAD, _TIMES, _CREATES = attrgetter("spread"), attrgetter("times"), attrgetter("creates")
_KEEP, _EVENT_ID, _WHAT = attrgetter("keep"), attrgetter("eventID"), attrgetter("what")
_TO_MINUTE, _FROM_MINUTE = itemgetter(slice(0, 17)), itemgetter(slice(17, None))  # "2026-11-01T00:00:" "05Z"
_SECONDS = {f"{i:02d}Z": i for i in range(60)}
_MISS = object()


def _what(actors: tuple[str, ...], resources: tuple[str, ...], rel: str, name: str, source: str) -> int:
    """Who did what to which resources: the part of an event's key (SeenEvents) beside eventID and
    time, so that made-up eventIDs reused for different events (test corpora do) keep them apart,
    and a copy left out would have added nothing but counts (its first-met facts are its original's).
    Use (data-plane) records leave their event name out: their groups are not split by name, which
    keeps the fold of billions of reads small, and a real eventID is unique without it."""
    if not resources:
        return 0
    return hash((actors, resources, rel, "", "") if rel == USE else (actors, resources, rel, name, source))


def _is_str(v: Any) -> bool:
    """A usable eventID: a non-empty string."""
    return type(v) is str and v != ""


def _error_str(v: Any) -> str | None:
    """errorCode as Event has it: a non-empty string, else None."""
    return v if type(v) is str and v else None


class _Rest:
    """A record's raw fields but userIdentity, decoded: what Event building reads from them."""

    __slots__ = ("name", "source", "region", "recipient", "key", "spread", "by_account")

    def __init__(self, name: str, source: str, region: str | None, recipient: str | None, key: tuple):
        self.name, self.source, self.region, self.recipient = name, source, region, recipient
        self.key = key  # (source, name, region, request, response, resources) for resources_cached, less the account
        self.spread: _Spread | None = None  # when the account is the recipient: one for every principal
        self.by_account: dict[str, _Spread] = {}


class _Spread:
    """The resources a record names and its relation to them; ``seen`` once the event names and
    regions of its first record are in the Activity."""

    __slots__ = ("resources", "rel", "rid", "name", "region", "source", "seen")

    def __init__(self, resources: tuple[str, ...], rel: str, rid: int, name: str, region: str | None,
                 source: str = ""):
        self.resources, self.rel, self.rid, self.name, self.region = resources, rel, rid, name, region
        self.source = source
        self.seen = False


class _Group:
    """Records by one principal on one set of resources under one relation, with or without error
    (and, for create and manage, of one event name and source: see ``keep``)."""

    __slots__ = ("times", "info", "err", "creates", "stats", "keep", "what")

    def __init__(self, info: tuple | None, creates: bool = False, keep: tuple | None = None, what: int = 0):
        self.times: list[float | None] = []  # epoch seconds per record
        self.info = info  # (actors, resources, relation, error, principal entry); None: no resources
        self.err: _Group | None = None if info else self  # the same records with an error code, once met
        self.creates = creates  # records bring their resources into being
        self.stats: list[PairStats] | None = None  # the pairs it adds to, once it has
        # (event_name, event_source, principal, person, resources) of create and manage records,
        # which go to the Activity's change log one by one; None for the rest
        self.keep = keep
        # what a record says but for its eventID and time, for the key of an event (see SeenEvents)
        self.what = what


_HORIZON_H = 24  # hours: a copy of an event delivered this long after the event's hour is still caught
_AHEAD_H = 2  # event hours later than this after their file's delivery hour count as this


class SeenEvents:
    """The keys of the records met lately, stream by stream: see the module docstring.

    :meth:`start` each file in folding order, then :meth:`fresh` its records (in any number of calls).
    """

    __slots__ = ("stream", "named", "clock", "newest", "buckets")

    def __init__(self) -> None:
        self.stream: Any = _MISS  # (account, region) of the current file, None for a file named otherwise
        self.named = False
        self.clock = 0  # the current file's delivery hour (named otherwise: its stream's newest event hour)
        self.newest: int | None = None  # the newest event hour met in a stream named otherwise
        self.buckets: dict[int, np.ndarray] = {}  # event hour -> sorted distinct keys

    def __len__(self) -> int:
        return sum(map(len, self.buckets.values()))

    def start(self, path: str | Path) -> None:
        """A file begins: a new stream forgets the last one; hours past the horizon go."""
        from engine.sources.cloudtrail import delivery_of

        d = delivery_of(path)
        stream = None if d is None else d[0]
        if stream != self.stream:
            self.stream, self.buckets, self.newest = stream, {}, None
        self.named = d is not None
        if d is not None:
            self.clock = int(d[1] // 3600)
        else:
            self.clock = 0 if self.newest is None else self.newest
        old = self.clock - _HORIZON_H
        for h in [h for h in self.buckets if h < old]:
            del self.buckets[h]

    def fresh(self, ids: list, ts: list, whats: list) -> list[bool] | None:
        """Which records to fold: all but the copies of records met before (in this call too, the
        first one counting). None when that is all of them. ``ids`` are the eventIDs (usable when a
        non-empty string), ``ts`` the times as ``parse_time`` gives them, ``whats`` what
        :func:`_what` says of them."""
        n = len(ids)
        if not n:
            return None
        # The usual batch: every eventID a non-empty string (msgspec gives str or None): checked at C speed.
        every = None not in ids and "" not in ids and all(map(str.__instancecheck__, ids))
        if every:
            m = n
        else:
            ok = list(map(_is_str, ids))
            m = ok.count(True)
            if not m:
                return None
            ids, ts, whats = list(compress(ids, ok)), list(compress(ts, ok)), list(compress(whats, ok))
        keys = np.fromiter(map(hash, zip(ids, ts, whats, strict=True)), np.int64, m)
        hours = np.floor_divide(np.array(ts, dtype=np.float64), 3600.0)  # None: nan
        untimed = np.isnan(hours)
        if not self.named and not untimed.all():
            top = int(np.nanmax(hours))
            if self.newest is None or top > self.newest:
                self.newest = top
        if untimed.any():
            hours[untimed] = self.clock
        if self.named:
            np.minimum(hours, self.clock + _AHEAD_H, out=hours)
        hours = hours.astype(np.int64)
        first = int(hours[0])
        one_hour = bool((hours == first).all())
        drops = []
        for h in [first] if one_hour else np.unique(hours).tolist():
            at_h = None if one_hour else np.flatnonzero(hours == h)
            sub = keys if at_h is None else keys[at_h]
            order = np.argsort(sub, kind="stable")  # equal keys stay in record order: the first one counts
            srt = sub[order]
            dup = np.zeros(len(srt), dtype=bool)
            dup[1:] = srt[1:] == srt[:-1]
            b = self.buckets.get(h)
            if b is None:
                self.buckets[h] = srt[~dup]
            else:
                at = np.searchsorted(b, srt)
                dup |= b[np.minimum(at, len(b) - 1)] == srt
                new = ~dup
                self.buckets[h] = np.insert(b, at[new], srt[new])
            if dup.any():
                d = order[dup]
                drops.append(d if at_h is None else at_h[d])
        if not drops:
            return None
        gone = np.concatenate(drops)
        if not every:
            gone = np.flatnonzero(np.fromiter(ok, dtype=bool, count=n))[gone]
        keep = [True] * n
        for i in gone.tolist():
            keep[i] = False
        return keep


class _Fold:
    """Folds CloudTrail records into an Activity without building an Event per record.

    Gives the Activity that ``Activity.add`` gives for the same records' Events, in about half the
    time, most of it now spent inflating and decoding JSON. Records repeat their userIdentity,
    source, name, region, account and resource-naming parameters byte for byte, so the raw JSON of
    those, joined, is a cache key whose value is the record's group: one principal, one set of
    resources, one relation, error or not. A batch of records goes through C-level passes (``map``
    over getters and ``dict.get``) that find each record's group and time and append the time to
    the group. Python code runs only per new raw key (its principal and resources come from caches
    of their own), per record with an error code or creating its resources, and per group in
    :meth:`flush`, which spreads the groups over ``pairs`` and, per set of resources, over
    ``hours``, ``weekdays`` and ``days``. A batch with a record whose time or name cannot be read
    goes record by record (:meth:`_batch_slow`), so the issues come out as from the Event path.

    "First one wins" updates (event names, regions, actor kinds and accounts, creators) are made
    at the record that first needs them, in record order, so they come out as with ``add``; so
    does the order of ``pairs``, groups being spread in the order they were made. Sums of times
    are exact while times are whole seconds (CloudTrail's format), as with ``merge``.
    """

    def __init__(self, act: Activity, default_region: str | None = None, seen: SeenEvents | None = None):
        self.act = act
        self.default_region = default_region
        self.seen = seen  # copies of records met before are left out (None: every record counts)
        self.by_raw: dict[bytes, _Group] = {}  # raw userIdentity and the raw key of by_rest -> group
        self.by_raw_old: dict[bytes, _Group] = {}  # the half before: what is still met comes back
        self.by_ui: dict[bytes, tuple] = {}  # raw userIdentity -> principal entry, where it depends on nothing else
        self.principals: dict[tuple, tuple] = {}  # principal tuple -> (pid, actors, type, account, key, person)
        self.by_rest: dict[bytes, _Rest] = {}  # raw key less userIdentity -> decoded
        self.rids: dict[tuple, int] = {}  # (resources, relation) -> rid
        self.groups: dict[tuple[int, int], _Group] = {}  # (pid, rid) -> group
        self.all_groups: list[_Group] = []  # in the order made (error twins hang on theirs)
        self.creating: set[_Group] = set()  # groups whose records create their resources (no error)
        self.keeping: set[_Group] = set()  # groups whose records go to the change log (keep is set)
        self.times: dict[str, float | None] = {}  # eventTime -> epoch seconds
        self.minutes: dict[str, float] = {}  # "YYYY-MM-DDTHH:MM:" -> epoch seconds
        self.pending = 0
        self.untimed = False  # some record waiting in a group has no time
        self.no_resources = _Group(None)  # records without resources: only counted

    # -- caches (misses only) -------------------------------------------------------------------

    def _entry(self, p: tuple) -> tuple:
        e = self.principals.get(p)
        if e is None:
            principal, ptype, _role, _session, person, account = p
            actors = (principal, f"person:{person}") if person and principal != f"person:{person}" else (principal,)
            e = self.principals[p] = (len(self.principals), actors, ptype, account, principal, person)
        return e

    def _principal(self, ui: bytes, rest: _Rest) -> tuple:
        """The principal entry of a raw userIdentity (cached when it depends on nothing else)."""
        from engine.sources.cloudtrail import principal_lookup

        e = self.by_ui.get(ui)
        if e is None:
            p, cacheable = principal_lookup(ui, rest.source, rest.recipient)
            e = self._entry(p)
            if cacheable:
                self.by_ui[ui] = e
        return e

    def _rest(self, key: bytes, f: Any) -> _Rest:
        """Raises as Event building does for a record without eventName."""
        from engine.sources.cloudtrail import raw_str

        rest = self.by_rest.get(key)
        if rest is None:
            name = raw_str(f.eventName)
            if name is None:
                raise ValueError("record has no eventName")
            source = raw_str(f.eventSource) or ""
            region = raw_str(f.awsRegion) or self.default_region
            recipient = raw_str(f.recipientAccountId)
            rest = _Rest(name, source, region, recipient, (source, name, region, bytes(f.requestParameters),
                                                           bytes(f.responseElements), bytes(f.resources)))
            if recipient:  # the account ARNs are built in does not depend on the caller
                rest.spread = self._spread_of(rest, recipient)
            self.by_rest[key] = rest
        return rest

    def _spread_of(self, rest: _Rest, acct: str) -> _Spread:
        from engine.sources.cloudtrail import resources_cached

        sp = rest.by_account.get(acct)
        if sp is None:
            source, name, region, req, resp, res = rest.key
            resources = resources_cached((source, name, region, acct, req, resp, res))
            rel = relation_of(name)
            if resources:
                # Create and manage groups are per name and source (they add to the same pairs all the
                # same): their records are kept one by one with them. Use records, the bulk, are not
                # split by name (see _what).
                rkey = (resources, rel) if rel == USE else (resources, rel, name, source)
                rid = self.rids.get(rkey)
                if rid is None:
                    rid = self.rids[rkey] = len(self.rids)
            else:
                rid = -1
            sp = rest.by_account[acct] = _Spread(resources, rel, rid, name, rest.region, source)
        return sp

    def _group(self, pe: tuple, sp: _Spread) -> _Group:
        """The group of a principal and a spread; a new one registers its actors, as ``add`` does
        at their first record with resources."""
        key = (pe[0], sp.rid)
        g = self.groups.get(key)
        if g is None:
            if sp.rid < 0:
                g = self.groups[key] = self.no_resources
                return g
            info = (pe[1], sp.resources, sp.rel, False, pe)
            keep = None if sp.rel == USE else (sp.name, sp.source, pe[4], pe[5], sp.resources)
            g = self.groups[key] = _Group(info, sp.rel == CREATE, keep, _what(pe[1], sp.resources, sp.rel, sp.name,
                                                                               sp.source))
            if g.creates:
                self.creating.add(g)
            if keep is not None:
                self.keeping.add(g)
            self.all_groups.append(g)
            act = self.act
            _pid, actors, ptype, account, _principal, _person = pe
            for actor in actors:
                if actor not in act.actor_kinds:
                    act.actor_kinds[actor] = "person" if actor.startswith("person:") else ptype
                    if account:
                        act.actor_accounts[actor] = account
        return g

    def _seen(self, sp: _Spread) -> None:
        """What ``add`` does for the event names and regions of a spread's first record."""
        sp.seen = True
        act = self.act
        name, region = sp.name, sp.region
        for arn in sp.resources:
            names = act.event_names.get(arn)
            if names is None:
                names = act.event_names[arn] = set()
            names.add(name)
            if region and arn not in act.regions:
                act.regions[arn] = region

    def _time(self, v: Any) -> float | None:
        """parse_time(v), cached. Raises as parse_time does."""
        if type(v) is not str:
            return None
        t = self.times.get(v, _MISS)
        if t is _MISS:
            from engine.sources.cloudtrail import parse_time

            t = self.times[v] = parse_time(v)
        return t

    def _minute(self, v: Any) -> None:
        """Learn the minute of ``v`` when it is in CloudTrail's own form, where parse_time gives
        the minute's epoch plus the seconds. Raises as parse_time does."""
        t = self._time(v)
        s = v[17:19] if type(v) is str else ""
        if t is not None and len(v) == 20 and v[19] == "Z" and v[16] == ":" and s.isascii() and s.isdigit():
            self.minutes[v[:17]] = t - int(s)

    def _times_of(self, tvs: list) -> list | None:
        """parse_time of each eventTime; None when one cannot be read."""
        try:
            by_value = dict.fromkeys(tvs)  # records share their seconds
        except TypeError:  # a list or an object
            try:
                return list(map(self._time, tvs))
            except Exception:
                return None  # the record-by-record path reports it
        values = list(by_value)
        ts = self._distinct_times(values)
        if ts is None:
            return None
        by_value.update(zip(values, ts, strict=True))
        return list(map(by_value.__getitem__, tvs))

    def _distinct_times(self, tvs: list) -> list | None:
        """parse_time of each eventTime; None when one cannot be read.

        CloudTrail's "YYYY-MM-DDTHH:MM:SSZ" is the minute's epoch, cached by "YYYY-MM-DDTHH:MM:",
        plus the seconds "SSZ"; other forms go through :meth:`_time`.
        """
        n = len(tvs)
        nones = repeat(None)
        minutes = self.minutes
        try:
            prefixes = list(map(_TO_MINUTE, tvs))
            bases = list(map(minutes.get, prefixes))
            secs = list(map(_SECONDS.get, map(_FROM_MINUTE, tvs)))
        except Exception:  # not all strings: value by value
            try:
                return list(map(self._time, tvs))
            except Exception:
                return None  # the record-by-record path reports it
        try:
            if None in bases:  # one record per minute not met yet teaches the minute
                for v in dict(zip(compress(prefixes, map(is_, bases, nones)), compress(tvs, map(is_, bases, nones)),
                                  strict=True)).values():
                    self._minute(v)
                bases = list(map(minutes.get, prefixes))
            odd = None
            if None in bases or None in secs:  # not CloudTrail's own form
                odd = sorted({*compress(range(n), map(is_, bases, nones)), *compress(range(n), map(is_, secs, nones))})
                odd_ts = list(map(self._time, map(tvs.__getitem__, odd)))
                for i in odd:
                    bases[i] = 0.0
                    secs[i] = 0
        except Exception:
            return None
        ts = list(map(add, bases, secs))
        if odd:
            for i, t in zip(odd, odd_ts, strict=True):
                ts[i] = t
        return ts

    # -- folding ------------------------------------------------------------------------------

    def records(self, recs: list, path: str, issues: list[BundleIssue], first: int = 1) -> None:
        """Fold one file's records (``engine.sources.cloudtrail.FoldRecord``); bad ones become issues.

        ``first`` is the number of ``recs[0]`` in its file, for the issues.
        """
        for i in range(0, len(recs), _BATCH):
            batch = recs[i:i + _BATCH] if len(recs) > _BATCH else recs
            if len(self.by_raw) >= _RAW_MAX // 2:  # the older half goes at the next turn
                self.by_raw_old, self.by_raw = self.by_raw, {}
            for cache in (self.by_ui, self.by_rest, self.times, self.minutes):
                if len(cache) >= _LOCAL_MAX:
                    cache.clear()
            if not self._batch(batch):
                self._batch_slow(batch, path, issues, first + i)
        if self.pending >= _PENDING_MAX:
            self.flush()

    def _batch(self, recs: list) -> bool:
        """Fold a batch in C-level passes. False, with nothing folded, when some record needs the
        record-by-record path."""
        n = len(recs)
        nones = repeat(None)
        ts = self._times_of(list(map(_TIME, recs)))
        if ts is None:
            return False
        by_raw = self.by_raw
        grps = list(map(by_raw.get, map(_SEP.join, map(_RAW_KEY, recs))))
        if None in grps:  # records whose raw key is new (to the cache)
            idx = list(compress(range(n), map(is_, grps, nones)))
            mkeys = list(map(_SEP.join, map(_RAW_KEY, map(recs.__getitem__, idx))))
            old = list(map(self.by_raw_old.get, mkeys))
            if old.count(None) != len(old):  # met before the cache turned: back into the young half
                by_raw.update(zip(compress(mkeys, old), filter(None, old), strict=True))
                for i, g in zip(compress(idx, old), filter(None, old), strict=True):
                    grps[i] = g
                idx = list(compress(idx, map(is_, old, nones)))
                mkeys = list(compress(mkeys, map(is_, old, nones)))
            mrecs = list(map(recs.__getitem__, idx))
            m = len(mrecs)
            rkeys = list(map(_SEP.join, map(_REST_KEY, mrecs)))
            rests = list(map(self.by_rest.get, rkeys))
            uis = list(map(bytes, map(_UI, mrecs)))
            pes = list(map(self.by_ui.get, uis))
            try:  # resolving changes nothing in the Activity
                if None in rests:
                    for j in compress(range(m), map(is_, rests, nones)):
                        rests[j] = self._rest(rkeys[j], mrecs[j])
                if None in pes:
                    for j in compress(range(m), map(is_, pes, nones)):
                        pes[j] = self._principal(uis[j], rests[j])
                sps = list(map(_SPREAD, rests))
                if None in sps:  # no recipient account: the caller's account decides
                    for j in compress(range(m), map(is_, sps, nones)):
                        sps[j] = self._spread_of(rests[j], pes[j][3] or "")
            except Exception:
                return False
            # Nothing has changed yet, and from here on nothing fails: each new raw key at its
            # first record, in record order.
            groups = self.groups
            for i, key, pe, sp in zip(idx, mkeys, pes, sps, strict=True):
                g = by_raw.get(key)
                if g is None:
                    if not sp.seen:
                        self._seen(sp)
                    g = groups.get((pe[0], sp.rid))
                    if g is None:
                        g = self._group(pe, sp)
                    by_raw[key] = g
                grps[i] = g
        self._add(recs, grps, ts)
        return True

    def _batch_slow(self, recs: list, path: str, issues: list[BundleIssue], first: int) -> None:
        """Record by record, for batches with records :meth:`_batch` does not take."""
        by_raw = self.by_raw
        ok_recs, ok_grps, ok_ts = [], [], []
        for i, f in enumerate(recs):
            key = _SEP.join(_RAW_KEY(f))
            g = by_raw.get(key) or self.by_raw_old.get(key)
            try:  # everything that can fail comes before the first change to the Activity, in the
                # order Event building meets it
                if g is None:
                    rest = self._rest(_SEP.join(_REST_KEY(f)), f)
                    pe = self._principal(bytes(f.userIdentity), rest)
                    sp = rest.spread or self._spread_of(rest, rest.recipient or pe[3] or "")
                t = self._time(f.eventTime)
            except Exception as e:  # one bad record never stops the file
                issues.append(BundleIssue(path, f"record {first + i}", str(e) or type(e).__name__))
                continue
            if g is None:
                if not sp.seen:
                    self._seen(sp)
                g = by_raw[key] = self._group(pe, sp)
            ok_recs.append(f)
            ok_grps.append(g)
            ok_ts.append(t)
        self._add(ok_recs, ok_grps, ok_ts)

    def _add(self, recs: list, grps: list[_Group], ts: list) -> None:
        """Append records, whose groups and times are known, to their groups (less the copies of
        records met before)."""
        seen = self.seen
        if seen is not None:
            keep = seen.fresh(list(map(_EVENT_ID, recs)), ts, list(map(_WHAT, grps)))
            if keep is not None:
                self.act.duplicates += keep.count(False)
                recs, grps, ts = list(compress(recs, keep)), list(compress(grps, keep)), list(compress(ts, keep))
        n = len(recs)
        errs = list(map(_ERROR, recs))
        if errs.count(None) != n:
            for i in compress(range(n), map(is_not, errs, repeat(None))):
                e = errs[i]
                if type(e) is str and e:
                    g = grps[i]
                    if g.err is None:
                        g.err = _Group((*g.info[:3], True, g.info[4]), keep=g.keep, what=g.what)
                        if g.keep is not None:
                            self.keeping.add(g.err)
                    grps[i] = g.err
        if not self.keeping.isdisjoint(grps):  # create and manage records (creating is a part of keeping)
            idx = list(compress(range(n), map(_KEEP, grps)))
            kept = list(map(grps.__getitem__, idx))
            if not self.creating.isdisjoint(kept):  # successful creates, in record order
                creators = self.act.creators
                for i in compress(idx, map(_CREATES, kept)):
                    t = ts[i]
                    when = t if t is not None else float("inf")
                    info = grps[i].info
                    for arn in info[1]:
                        prev = creators.get(arn)
                        if prev is None or when < prev[0]:
                            creators[arn] = (when, info[4][4], info[4][5])
            log = self.act.change_log
            ids = list(map(_EVENT_ID, map(recs.__getitem__, idx)))
            if not all(map(_is_str, ids)):  # records without a usable eventID are left out
                ok = list(map(_is_str, ids))
                idx, kept, ids = list(compress(idx, ok)), list(compress(kept, ok)), list(compress(ids, ok))
            log.ids += ids
            log.times += map(ts.__getitem__, idx)
            log.whats += map(_KEEP, kept)
            log.errors += map(_error_str, map(errs.__getitem__, idx))
            if len(log.ids) >= _CHANGE_CHUNK:
                log.flush()
        deque(map(list.append, map(_TIMES, grps), ts), 0)
        if not self.untimed and None in ts:
            self.untimed = True
        without = len(self.no_resources.times)
        self.no_resources.times.clear()
        act = self.act
        act.records += n
        act.records_without_resource += without
        self.pending += n - without

    def flush(self) -> None:
        """Spread the groups' records over pairs and profiles, groups in the order first met."""
        act = self.act
        pairs = act.pairs
        lo_all, hi_all = act.first_time, act.last_time
        untimed = self.untimed
        by_resources: dict[tuple[str, ...], list[float]] = {}  # times per set of resources, for the profiles
        for ok in self.all_groups:
            twin = ok.err
            for grp in (ok,) if twin is None else (ok, twin):
                ts = grp.times
                if not ts:
                    continue
                actors, resources, rel, err, _pe = grp.info
                k = len(ts)
                if untimed and None in ts:  # records without a time count, but have no time to add
                    ts = [t for t in ts if t is not None]
                m = len(ts)
                if m:
                    lo, hi, total = min(ts), max(ts), sum(ts)
                    if lo < lo_all:
                        lo_all = lo
                    if hi > hi_all:
                        hi_all = hi
                    acc = by_resources.get(resources)
                    if acc is None:
                        by_resources[resources] = ts if ts is not grp.times else ts.copy()
                    else:
                        acc += ts
                grp.times.clear()
                stats = grp.stats
                if stats is None:
                    stats = grp.stats = []
                    for arn in resources:
                        for actor in actors:
                            key = (arn, actor, rel)
                            ps = pairs.get(key)
                            if ps is None:
                                ps = pairs[key] = PairStats()
                            stats.append(ps)
                for ps in stats:
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
        act.first_time, act.last_time = lo_all, hi_all
        hours, weekdays, days = act.hours, act.weekdays, act.days
        for resources, ts in by_resources.items():
            ts.sort()
            by_hour = []  # (epoch hour, records), hours in order
            i, n = 0, len(ts)
            while i < n:
                eh = int(ts[i] // 3600)
                j = bisect_left(ts, (eh + 1) * 3600, i)
                by_hour.append((eh, j - i))
                i = j
            for arn in resources:
                h = hours.get(arn)
                if h is None:
                    h = hours[arn] = [0.0] * 24
                    weekdays[arn] = [0.0] * 7
                    days[arn] = {}
                w = weekdays[arn]
                d = days[arn]
                for eh, c in by_hour:
                    day = eh // 24
                    h[eh - day * 24] += c
                    w[(day + 3) % 7] += c  # 1970-01-01 was a Thursday
                    d[day] = d.get(day, 0.0) + c
        self.pending = 0
        self.untimed = False

    def file(self, path: str, issues: list[BundleIssue]) -> None:
        """Fold one CloudTrail file: the fused path when it fits, else its Events one by one."""
        from engine.sources.cloudtrail import fold_records_of, parse_payload
        from engine.sources.files import UnreadableFile, read_bytes

        seen = self.seen
        if seen is not None:
            seen.start(path)
        try:
            data = read_bytes(Path(path))
        except UnreadableFile as e:
            issues.append(BundleIssue(path, "", str(e)))
            return
        recs = fold_records_of(data.strip())
        if recs is None:
            self.flush()  # Events go straight into the Activity: what came before must be there first
            events = parse_payload(data, path, issues, self.default_region)
            if seen is not None:
                keep = seen.fresh([e.event_id for e in events], [e.time for e in events],
                                  [_what(actors_of(e), e.resources, relation_of(e.event_name), e.event_name,
                                         e.event_source) for e in events])
                if keep is not None:
                    self.act.duplicates += keep.count(False)
                    events = list(compress(events, keep))
            for ev in events:
                self.act.add(ev)
            return
        del data
        self.records(recs, path, issues)


def _size(p: str | Path) -> int | None:
    try:
        return os.path.getsize(p)
    except OSError:
        return None  # the fold says what is wrong with it


def distinct_files(paths: list[Path], sizes: list[int | None]) -> tuple[list[Path], list[int | None], list[tuple]]:
    """``paths`` (with their ``sizes``) less the byte-identical copies of an earlier one, and the
    (copy, original) pairs left out. Only files that share their size with another are read."""
    by_size: dict[int, list[int]] = {}
    for i, size in enumerate(sizes):
        if size is not None:
            by_size.setdefault(size, []).append(i)
    copy_of: dict[int, int] = {}
    for idx in by_size.values():
        if len(idx) < 2:
            continue
        first: dict[bytes, int] = {}
        for i in idx:
            try:
                with open(paths[i], "rb") as f:
                    digest = hashlib.file_digest(f, "blake2b").digest()
            except OSError:
                continue
            j = first.setdefault(digest, i)
            if j != i:
                copy_of[i] = j
    if not copy_of:
        return paths, sizes, []
    keep = [i not in copy_of for i in range(len(paths))]
    copies = [(paths[i], paths[j]) for i, j in sorted(copy_of.items())]
    log.info("%d CloudTrail file(s) are byte-identical copies of others and are folded once, e.g. %s (as %s)",
             len(copies), copies[0][0], copies[0][1])
    return list(compress(paths, keep)), list(compress(sizes, keep)), copies


def fold_files(paths: Iterable[str | Path], act: Activity | None = None, issues: list[BundleIssue] | None = None,
               progress: Callable[[int], None] | None = None) -> tuple[Activity, list[BundleIssue]]:
    """Fold CloudTrail files, one after the other in delivery order, into ``act`` (a new Activity by
    default), each event once (see the module docstring).

    The same Activity as ``act.add`` over ``read_cloudtrail_file``'s Events, file by file, less the
    copies (sums of times exact while times are whole seconds). ``progress`` hears how many files
    are done, of those folded.
    """
    from engine.sources.cloudtrail import delivery_order

    act = Activity() if act is None else act
    issues = [] if issues is None else issues
    ordered = delivery_order(paths)
    ordered, _, copies = distinct_files(ordered, [_size(p) for p in ordered])
    act.duplicate_files += len(copies)
    return _fold_ordered(ordered, act, issues, progress)


def _fold_ordered(paths: list[str | Path], act: Activity, issues: list[BundleIssue],
                  progress: Callable[[int], None] | None = None, lookback: Iterable[str] = ()
                  ) -> tuple[Activity, list[BundleIssue]]:
    """Fold ``paths`` as given, after reading the keys of the ``lookback`` files (:func:`_lookback`)."""
    from engine.sources.files import gc_paused, settle_heap

    settle_heap()
    seen = SeenEvents()
    fold = _Fold(act, seen=seen)
    with gc_paused():  # millions of small objects and no cycles: the collector would only rescan them
        if lookback:  # folded into nothing kept, for what they tell ``seen``
            scratch = _Fold(Activity(), seen=seen)
            for p in lookback:
                scratch.file(str(p), [])
            scratch.flush()
            del scratch
        for i, p in enumerate(paths, 1):
            fold.file(str(p), issues)
            if progress:
                progress(i)
        fold.flush()
    act.change_log.seal()
    return act, issues


_PARALLEL_BYTES = 8_000_000  # less CloudTrail than this is folded in the calling process
_DONE_BYTES = None  # in a worker of fold_cloudtrail: the shared count of bytes folded
_SPILL_DIR: str | None = None  # in a worker of fold_cloudtrail: where its change log goes


def _init_worker(done, spill: str | None = None) -> None:  # type: ignore[no-untyped-def]
    global _DONE_BYTES, _SPILL_DIR
    _DONE_BYTES, _SPILL_DIR = done, spill
    # A forked worker inherits its parent's signal handlers; under an asyncio loop (arq's worker)
    # SIGTERM only writes to the loop's wakeup fd, so Pool.terminate() would wait on it forever.
    import signal

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _fold_files(paths: list[str], lookback: list[str]) -> tuple[Activity, list[BundleIssue]]:
    act = Activity(change_log=ChangeLog(_SPILL_DIR))
    done = _DONE_BYTES
    if done is None:
        return _fold_ordered(paths, act, [], lookback=lookback)

    def report(i: int) -> None:
        size = os.path.getsize(paths[i - 1])
        with done.get_lock():
            done.value += size

    return _fold_ordered(paths, act, [], report, lookback)


def _fold_run(paths: list[str], lookback: list[str], spill: str, done: Any, out: str) -> None:
    """A worker process of fold_cloudtrail: fold one run and pickle (Activity, issues), or the
    exception that stopped it, to ``out``."""
    _init_worker(done, spill)
    try:
        result: Any = _fold_files(paths, lookback)
    except BaseException as e:  # the parent raises it
        result = e
    with open(out, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load_run(out: str, exitcode: int) -> tuple[Activity, list[BundleIssue]]:
    try:
        with open(out, "rb") as f:
            result = pickle.load(f)
    except OSError:
        raise RuntimeError(f"CloudTrail worker died (exit code {exitcode}) before writing its fold") from None
    os.remove(out)
    if isinstance(result, BaseException):
        raise result
    return result


def _partition(paths: list[Path], sizes: list[int | None], n: int) -> list[list[str]]:
    """``n`` runs of consecutive files of about the same size in all.

    Consecutive files (an account's hours, in order) share identities and resources, which the
    fold's caches live on: one run per worker folds about as fast per byte as one process does,
    where files dealt out by size took twice as long, and made more to merge. The files without a
    delivery name stay in one run: nothing says which of them hold copies of the others' events.
    """
    from engine.sources.cloudtrail import delivery_of

    total = sum(s or 0 for s in sizes) or 1
    runs: list[list[str]] = [[] for _ in range(n)]
    done = 0
    unnamed_run = None
    for p, size in zip(paths, sizes, strict=True):
        k = min(n - 1, done * n // total)
        if unnamed_run is None and delivery_of(p) is None:
            unnamed_run = k
        runs[k if unnamed_run is None else unnamed_run].append(str(p))
        done += size or 0
    return [r for r in runs if r]


def _lookback(paths: list[str], start: int) -> list[str]:
    """The files before ``paths[start]`` whose keys a fold starting there must know: those of its
    stream delivered from ``_HORIZON_H + _AHEAD_H`` hours before its delivery hour on (the keys the
    one-process fold holds there come from no others; see the module docstring)."""
    from engine.sources.cloudtrail import delivery_of

    d = delivery_of(paths[start])
    if d is None:
        return []
    stream, hour = d[0], int(d[1] // 3600)
    out = []
    for p in reversed(paths[:start]):
        e = delivery_of(p)
        if e is None or e[0] != stream or int(e[1] // 3600) < hour - _HORIZON_H - _AHEAD_H:
            break
        out.append(p)
    return out[::-1]


def fold_cloudtrail(
    paths: Iterable[Path],
    issues: list[BundleIssue],
    workers: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Activity:
    """Fold CloudTrail files into an Activity, in parallel when the files are big enough to pay for it.

    Files are folded in delivery order, byte-identical copies once, each event once (see the module
    docstring). Each worker folds one run of consecutive files (see :func:`_partition`) and counts
    the bytes it is through in a shared counter, which is what ``progress`` hears; the runs'
    Activities are merged in file order. Above ``_PARALLEL_BYTES`` the change log goes to files in a
    temporary directory that lives as long as the Activity (workers write them; see the module
    docstring).
    """
    from engine.sources.cloudtrail import delivery_order

    act = Activity()
    paths = delivery_order(paths)
    if not paths:
        return act
    paths, sizes, copies = distinct_files(paths, [_size(p) for p in paths])
    act.duplicate_files = len(copies)
    total = sum(s or 0 for s in sizes)
    workers = min(workers or os.cpu_count() or 1, len(paths))
    if total >= _PARALLEL_BYTES:
        act.change_log.own(tempfile.mkdtemp(prefix="costdna-changes-"))
    if workers <= 1 or total < _PARALLEL_BYTES:
        _fold_ordered(paths, act, issues, (lambda i: progress(i / len(paths))) if progress else None)
        return act
    runs = _partition(paths, sizes, workers)
    order = [str(p) for p in paths]
    starts = [0]
    for r in runs[:-1]:
        starts.append(starts[-1] + len(r))
    lookbacks = [_lookback(order, s) if s else [] for s in starts]
    ctx = mp.get_context("fork")
    done = ctx.Value("q", 0)
    spill = act.change_log.spill
    assert spill is not None
    outs = [os.path.join(spill, f"run-{i}.pickle") for i in range(len(runs))]
    # One process per run, which exits as soon as its fold is written out: a pool's idle worker
    # would keep its whole heap until the last run is done.
    procs = [ctx.Process(target=_fold_run, args=(run, back, spill, done, out), daemon=True)
             for run, back, out in zip(runs, lookbacks, outs, strict=True)]
    try:
        for pr in procs:
            pr.start()
        merged, said = 0, -1
        while merged < len(runs):
            pr = procs[merged]
            pr.join(timeout=0.25)
            if pr.exitcode is not None:
                part, errs = _load_run(outs[merged], pr.exitcode)
                act.merge(part)  # in file order, while the later runs are still folding
                issues.extend(errs)
                del part
                merged += 1
            if progress and done.value != said:
                said = done.value
                progress(min(1.0, said / total))
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.terminate()
            pr.join()
    return act

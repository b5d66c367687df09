"""CloudTrail files -> :class:`ChangeEvent`: the successful management events, for the watch.

The watch reads only the CloudTrail files it has not seen, every hour; at 20,000 resources that is
about 80,000 records, nearly all data-plane traffic (GetObject, Invoke, Query...). Spikes need only
the changes: who launched, modified, deployed or reconfigured what, and when. So each record is
decoded into a struct whose nested objects stay raw JSON, its ``eventName`` and ``errorCode``
decide at once whether it is a management write that succeeded (``engine.activity.relation_of``
says create or manage), and only those few go through the principal and resource resolution that
the scan uses (``engine.sources.cloudtrail``: the same principal keys, persons and canonical ARNs).

Files that do not fit that typed decode (a bare list, JSON lines, UTF-16 text, odd types) take the
generic path through ``parse_record``. A file that cannot be read is one ``BundleIssue``; a bad
record is one ``BundleIssue``; neither raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from engine.activity import CREATE, USE, relation_of
from engine.records import BundleIssue
from engine.sources.cloudtrail import parse_record, parse_time, principal_lookup, records_of, resources_cached
from engine.sources.files import UnreadableFile, gc_paused, read_bytes, to_utf8

# Code and configuration changes: what a deploy leaves in CloudTrail, and the modifications that
# change what a resource costs (instance class, capacity, provisioned concurrency, volume type).
DEPLOY_LIKE: frozenset[str] = frozenset({
    # Lambda
    "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishVersion", "UpdateAlias", "CreateAlias",
    "PutFunctionConcurrency", "PutProvisionedConcurrencyConfig", "UpdateEventSourceMapping",
    "CreateEventSourceMapping",
    # ECS / EKS / App Runner
    "UpdateService", "RegisterTaskDefinition", "UpdateNodegroupConfig", "UpdateNodegroupVersion",
    "UpdateClusterConfig",
    # deployment services and infrastructure as code
    "CreateDeployment", "UpdateStack", "ExecuteChangeSet", "UpdateStackSet", "StartPipelineExecution",
    # EC2, EBS, Auto Scaling
    "ModifyInstanceAttribute", "ModifyVolume", "ModifyLaunchTemplate", "CreateLaunchTemplateVersion",
    "UpdateAutoScalingGroup", "SetDesiredCapacity", "PutScalingPolicy", "ModifyInstanceFleet",
    "ModifyInstanceGroups",
    # databases and caches
    "ModifyDBInstance", "ModifyDBCluster", "UpdateTable", "ModifyCacheCluster", "ModifyReplicationGroup",
    "ModifyCluster",
    # storage and streaming settings that move spend
    "PutBucketLifecycleConfiguration", "PutBucketReplication", "UpdateShardCount",
    # API, state machines, search
    "UpdateStateMachine", "UpdateStage", "UpdateDomainConfig",
})

# Deploy-like only when they change the instance type (see ChangeEvent.is_deploy_like).
TYPE_ONLY: frozenset[str] = frozenset({"ModifyInstanceAttribute"})

# Events that bring a billed resource into being with a size known at once (early warning).
LAUNCHES: frozenset[str] = frozenset({
    "RunInstances", "CreateDBInstance", "CreateDBInstanceReadReplica", "CreateDBCluster",
    "RestoreDBInstanceFromDBSnapshot", "RestoreDBInstanceToPointInTime", "CreateCacheCluster",
    "CreateReplicationGroup", "StartInstances",
})

# requestParameters keys that name the instance type or class an event asks for.
_TYPE_KEYS = ("instanceType", "dBInstanceClass", "cacheNodeType")
_TYPED = frozenset({"RunInstances", "CreateDBInstance", "CreateDBInstanceReadReplica", "ModifyInstanceAttribute",
                    "ModifyDBInstance", "RestoreDBInstanceFromDBSnapshot", "RestoreDBInstanceToPointInTime",
                    "CreateCacheCluster", "CreateReplicationGroup", "ModifyCacheCluster",
                    "ModifyReplicationGroup"})

# Lambda's API-version suffix: UpdateFunctionCode20150331v2 is UpdateFunctionCode.
_VERSIONED = re.compile(r"^([A-Za-z]+?)\d{8}(?:v\d+)?$")


@lru_cache(maxsize=4096)
def base_name(event_name: str) -> str:
    """The event name without Lambda's API-version suffix (``PublishVersion20150331`` -> ``PublishVersion``)."""
    m = _VERSIONED.match(event_name)
    return m[1] if m else event_name


@lru_cache(maxsize=4096)
def _keep(event_name: str) -> bool:
    """A management write: create or manage in engine.activity's terms, never data-plane USE."""
    return relation_of(event_name) != USE


@dataclass(slots=True)
class ChangeEvent:
    """One management (non-USE) CloudTrail event that succeeded and names at least one resource."""

    time: float  # epoch seconds
    event_id: str
    event_name: str  # CloudTrail's name without Lambda's API-version suffix (see base_name)
    event_source: str
    actor: str  # principal key as engine.activity uses it: "role:NAME", "user:NAME", ...
    person: str | None  # the human behind it: SSO session name / IAM user / e-mail, if any
    resources: tuple[str, ...]  # canonical ARNs
    instance_type: str | None  # RunInstances instanceType, CreateDBInstance dBInstanceClass, Modify* new type
    account: str = ""
    region: str = ""

    @property
    def is_deploy_like(self) -> bool:
        """A code or configuration change that can move cost. ``ModifyInstanceAttribute`` counts only
        when it changes the instance type: its other attributes (termination protection, source/dest
        check, security groups) cost nothing."""
        if self.event_name in TYPE_ONLY:
            return self.instance_type is not None
        return self.event_name in DEPLOY_LIKE

    @property
    def is_launch(self) -> bool:
        return self.event_name in LAUNCHES


def instance_type_of(event_name: str, params: Any) -> str | None:
    """The instance type or DB/cache class an event's ``requestParameters`` ask for, if any.

    ``ModifyInstanceAttribute`` writes ``{"instanceType": {"value": "m5.xlarge"}}``; the others a string.
    """
    if type(params) is not dict or base_name(event_name) not in _TYPED:
        return None
    for k in _TYPE_KEYS:
        v = params.get(k)
        if type(v) is dict:
            v = v.get("value")
        if type(v) is str and v:
            return v
    return None


# ---------------------------------------------------------------------------------------------
# the typed fast path


class _Rec(msgspec.Struct):
    """What a change needs of a record; nested objects stay raw until the record is kept."""

    eventName: Any = None
    eventSource: Any = None
    eventID: Any = None
    eventTime: Any = None
    awsRegion: Any = None
    errorCode: Any = None
    recipientAccountId: Any = None
    userIdentity: msgspec.Raw = msgspec.Raw()
    requestParameters: msgspec.Raw = msgspec.Raw()
    responseElements: msgspec.Raw = msgspec.Raw()
    resources: msgspec.Raw = msgspec.Raw()


class _File(msgspec.Struct):
    Records: list[_Rec]


_FILE = msgspec.json.Decoder(_File)
_LINE = msgspec.json.Decoder(_Rec)
_NULLS = (b"", b"null", b"{}", b"[]")


def _s(v: Any) -> str | None:
    return v if type(v) is str and v else None


def _from_struct(r: _Rec) -> ChangeEvent | None:
    """A kept record -> ChangeEvent, or None when it is not a successful management event."""
    name = r.eventName
    if type(name) is not str or not name or not _keep(name):
        return None
    err = r.errorCode
    if err is not None and err != "":
        return None
    t = parse_time(r.eventTime)
    if t is None:
        return None
    source = _s(r.eventSource) or ""
    recipient = _s(r.recipientAccountId)
    (principal, _ptype, _role, _session, person, account), _ = principal_lookup(
        bytes(r.userIdentity), source, recipient)
    region = _s(r.awsRegion) or ""
    req = bytes(r.requestParameters)
    resources = resources_cached((source, name, region or None, recipient or account or "", req,
                                  bytes(r.responseElements), bytes(r.resources)))
    if not resources:
        return None
    itype = None
    if base_name(name) in _TYPED and req not in _NULLS:
        itype = instance_type_of(name, orjson.loads(req))
    eid = r.eventID
    return ChangeEvent(t, eid if type(eid) is str else "", base_name(name), source, principal, person, resources,
                       itype, recipient or account or "", region)


def _from_dict(rec: Any) -> ChangeEvent | None:
    """The generic path: one record as a parsed dict (raises ValueError for an unusable record)."""
    if type(rec) is dict:
        name = rec.get("eventName")
        if type(name) is str and name and not _keep(name):
            return None  # traffic: not even parsed
        if type(name) is str and name and rec.get("errorCode") not in (None, ""):
            return None
    ev = parse_record(rec)
    if ev.error_code is not None or ev.time is None or not ev.resources or not _keep(ev.event_name):
        return None
    params = rec.get("requestParameters")
    if type(params) is str and params[:1] == "{":
        try:
            params = orjson.loads(params)
        except orjson.JSONDecodeError:
            params = None
    return ChangeEvent(ev.time, ev.event_id, base_name(ev.event_name), ev.event_source, ev.principal, ev.person,
                       ev.resources, instance_type_of(ev.event_name, params),
                       ev.recipient_account or ev.account or "", ev.region or "")


def _structs(body: bytes) -> list[_Rec] | None:
    if body[:1] != b"{" or b'"Records"' not in body[:64]:
        return None
    try:
        return _FILE.decode(body).Records
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


def _dicts(recs: list, where: str, path: str, issues: list[BundleIssue], out: list[ChangeEvent]) -> None:
    for i, rec in enumerate(recs, 1):
        try:
            ev = _from_dict(rec)
        except Exception as e:  # one bad record never stops the file
            issues.append(BundleIssue(path, f"{where}record {i}", str(e) or type(e).__name__))
            continue
        if ev is not None:
            out.append(ev)


def parse_changes(data: bytes, path: str, issues: list[BundleIssue]) -> list[ChangeEvent]:
    """Change events from a CloudTrail file's (decompressed) content; problems go to ``issues``.

    ``{"Records": [...]}``, a bare list of records, one record, or JSON lines, as
    ``engine.sources.cloudtrail.parse_payload`` accepts them.
    """
    body = data.strip()
    if not body:
        if not data:
            issues.append(BundleIssue(path, "", "empty file (0 bytes)"))
        return []
    out: list[ChangeEvent] = []
    with gc_paused():
        recs = _structs(body)
        if recs is None:
            try:
                text, note = to_utf8(data, "CloudTrail JSON")
            except UnreadableFile as e:
                issues.append(BundleIssue(path, "", str(e)))
                return out
            if note:
                issues.append(BundleIssue(path, "", note))
            body = text.strip()
            recs = _structs(body)
        if recs is not None:
            for i, r in enumerate(recs, 1):
                try:
                    ev = _from_struct(r)
                except Exception as e:  # a malformed userIdentity or parameter object
                    issues.append(BundleIssue(path, f"record {i}", str(e) or type(e).__name__))
                    continue
                if ev is not None:
                    out.append(ev)
            return out
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            whole = e
        else:
            recs_d = records_of(doc)
            if recs_d is None:
                issues.append(BundleIssue(path, "", 'not CloudTrail: expected {"Records": [...]}, a list of '
                                                    "records, or JSON lines"))
            else:
                _dicts(recs_d, "", path, issues, out)
            return out
        lines = body.split(b"\n")
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            if b'"Records"' not in line[:32]:
                try:
                    r = _LINE.decode(line)
                except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                    pass
                else:
                    try:
                        ev = _from_struct(r)
                    except Exception as e:
                        issues.append(BundleIssue(path, f"line {n}", str(e) or type(e).__name__))
                        continue
                    if ev is not None:
                        out.append(ev)
                    continue
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                if n == 1:  # not even the first line is JSON: the file is not JSON at all
                    issues.append(BundleIssue(path, "", f"not valid JSON ({str(whole)[:200]})"))
                    return out
                issues.append(BundleIssue(path, f"line {n}", f"not valid JSON ({str(e)[:200]})"))
                continue
            recs_l = d.get("Records") if type(d) is dict else None
            if type(recs_l) is list:
                _dicts(recs_l, f"line {n}, ", path, issues, out)
            else:
                _dicts([d], f"line {n}, ", path, issues, out)
    return out


def read_changes(path: Path, issues: list[BundleIssue]) -> list[ChangeEvent]:
    """The successful management events of one CloudTrail file (``.json``/``.jsonl``, plain or gzip)."""
    try:
        data = read_bytes(Path(path))
    except UnreadableFile as e:
        issues.append(BundleIssue(str(path), "", str(e)))
        return []
    try:
        return parse_changes(data, str(path), issues)
    except Exception as e:  # never let one odd file stop a watch
        issues.append(BundleIssue(str(path), "", f"unreadable CloudTrail ({type(e).__name__}: {e})"))
        return []


def dedup_changes(evs: Iterable[ChangeEvent]) -> list[ChangeEvent]:
    """Each event once (CloudTrail delivers at least once), keyed by eventID and time; sorted by time.

    Events without an eventID are all kept: they cannot be told apart from another event.
    """
    seen: set[tuple[str, float]] = set()
    out = []
    for ev in evs:
        if ev.event_id:
            k = (ev.event_id, ev.time)
            if k in seen:
                continue
            seen.add(k)
        out.append(ev)
    out.sort(key=lambda e: e.time)
    return out


# ---------------------------------------------------------------------------------------------
# storage form

_SCHEMA = pa.schema([
    ("time", pa.float64()),
    ("event_id", pa.string()),
    ("event_name", pa.dictionary(pa.int32(), pa.string())),
    ("event_source", pa.dictionary(pa.int32(), pa.string())),
    ("actor", pa.dictionary(pa.int32(), pa.string())),
    ("person", pa.dictionary(pa.int32(), pa.string())),
    ("resources", pa.list_(pa.string())),
    ("instance_type", pa.dictionary(pa.int32(), pa.string())),
    ("account", pa.dictionary(pa.int32(), pa.string())),
    ("region", pa.dictionary(pa.int32(), pa.string())),
])
_FIELDS = [f.name for f in _SCHEMA]


def changes_table(evs: Iterable[ChangeEvent]) -> pa.Table:
    """The events as an Arrow table (one row an event, in the given order): the watch keeps its window of
    changes in this form and builds ChangeEvent objects only for the rows a consumer needs."""
    evs = evs if isinstance(evs, list) else list(evs)
    cols = {k: [getattr(ev, k) for ev in evs] for k in _FIELDS}  # tuples of resources go in as lists
    arrays = [pa.array(cols[f.name], type=f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
              for f in _SCHEMA]
    arrays = [a.dictionary_encode() if pa.types.is_dictionary(f.type) else a for a, f in zip(arrays, _SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def table_to_bytes(table: pa.Table) -> bytes:
    """Arrow IPC (zstd) of a :func:`changes_table`."""
    sink = pa.BufferOutputStream()
    opts = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=opts) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_bytes(b: bytes | None) -> pa.Table:
    """The table :func:`table_to_bytes` stored (empty or None bytes: an empty table)."""
    if not b:
        return _SCHEMA.empty_table()
    return pa.ipc.open_stream(pa.py_buffer(b)).read_all()


def changes_to_bytes(evs: Iterable[ChangeEvent]) -> bytes:
    """Arrow IPC (zstd) of the events: repeated names and actors are dictionary-encoded, so a month of
    an org's changes stores in a few MB."""
    return table_to_bytes(changes_table(evs))


def changes_from_bytes(b: bytes | None) -> list[ChangeEvent]:
    """The events :func:`changes_to_bytes` stored (empty or None bytes: none)."""
    if not b:
        return []
    return table_events(table_from_bytes(b))


def concat_tables(tables: Sequence[pa.Table]) -> pa.Table:
    """One table of several stored ones (their dictionaries may differ): plain strings where needed."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return _SCHEMA.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="none").unify_dictionaries()  # chunks kept: no copy


def _strs(col: pa.ChunkedArray | pa.Array) -> list:
    """A (dictionary) string column as a Python list, each distinct string one object."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        words = arr.dictionary.to_pylist()
        idx = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        words.append(None)  # index -1: null
        return [words[i] for i in idx.tolist()]
    return arr.to_pylist()


def table_events(table: pa.Table, rows: np.ndarray | Sequence[int] | None = None) -> list[ChangeEvent]:
    """ChangeEvent objects of the given rows of a :func:`changes_table` (all rows: None), in that order.

    Column-wise and with shared strings: a million events in a few seconds, so callers ask only for
    the rows they need (see :func:`essential_rows`)."""
    if rows is not None:
        table = table.take(pa.array(np.asarray(rows, dtype=np.int64)))
    if not table.num_rows:
        return []
    t = table.column("time").to_numpy().tolist()
    eid = _strs(table.column("event_id"))
    name, source, actor, person, itype, acct, region = (
        _strs(table.column(k)) for k in ("event_name", "event_source", "actor", "person", "instance_type",
                                         "account", "region"))
    res_col = table.column("resources").combine_chunks()
    flat = res_col.flatten()
    words = flat.to_pylist()
    offs = res_col.offsets.to_numpy()
    if res_col.offset or len(offs) != len(res_col) + 1:  # sliced arrays: offsets relative to their values
        offs = offs[:len(res_col) + 1] - offs[0]
    offs_l = offs.tolist()
    out = []
    ev = ChangeEvent
    for i in range(len(t)):
        out.append(ev(t[i], eid[i] or "", name[i] or "", source[i] or "", actor[i] or "", person[i],
                      tuple(words[offs_l[i]:offs_l[i + 1]]), itype[i], acct[i] or "", region[i] or ""))
    return out


# ---------------------------------------------------------------------------------------------
# the watch's window of changes, column-wise


def window_order(table: pa.Table, since: float | None) -> np.ndarray:
    """Row indices of the events at or after ``since``, each once (eventID and time, as :func:`dedup_changes`; events
    without an eventID all kept, the earliest-stored copy of a repeat), sorted by time (ties in stored
    order)."""
    n = table.num_rows
    if not n:
        return np.zeros(0, np.int64)
    t = table.column("time").to_numpy()
    ids = table.column("event_id")
    # sorted by time, id, stored order: a repeat follows its first copy (a sort is lighter than hashing ids)
    keys = pa.table({"t": table.column("time"), "id": ids, "seq": pa.array(np.arange(n, dtype=np.int64))})
    order = pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("id", "ascending"), ("seq", "ascending")])
    order = order.to_numpy(zero_copy_only=False).astype(np.int64)
    del keys
    s_ids = ids.take(order).combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids.take(order)
    ts = t[order]
    repeat = np.zeros(n, bool)
    if n > 1:
        same_id = pc.fill_null(pc.equal(s_ids.slice(1), s_ids.slice(0, n - 1)), False)
        repeat[1:] = same_id.to_numpy(zero_copy_only=False) & (ts[1:] == ts[:-1])
        repeat &= pc.fill_null(pc.greater(pc.utf8_length(s_ids), 0), False).to_numpy(zero_copy_only=False)
    keep = order[~repeat]
    if since is not None:
        keep = keep[t[keep] >= since]
    return keep[np.lexsort((keep, t[keep]))]  # by time, ties in stored order


# What counts as creating a resource, for each reader of creators: engine.watch.creator_teams (a launch
# or a Create* call) and engine.creators.creators_of_changes (engine.activity's CREATE relation).
_CREATE_RULES = (
    lambda name: name in LAUNCHES or name.startswith("Create") or name == "RunInstances",
    lambda name: relation_of(name) == CREATE,
)


def essential_rows(table: pa.Table) -> np.ndarray:
    """Rows of a time-sorted window (``table.take(window_order(...))``) that decide everything the watch derives from
    the whole window, ascending.

    What reads every change, and what it needs of them:

    * novelty (engine.spikes): per resource, the first change by each actor or person and every change
      that sets an instance type; the launches of a priced type (they set one too);
    * creators and their teams (engine.watch.creator_teams, engine.creators): the distinct
      (identity, resource) pairs and the earliest creating event of each resource;
    * the people on a spike (jobs.watch): the first change of each resource by each person.

    So: the first event (in time order) of each (resource, actor, person), every event with an instance
    type, and the first creating event of each resource (by either rule of ``_CREATE_RULES``). Given
    only these rows in the same order, those consumers answer exactly as over the whole window; causes (engine.explain) need every event
    near a spike in time, which :func:`rows_near` adds.
    """
    n = table.num_rows
    if not n:
        return np.zeros(0, np.int64)
    res = table.column("resources").combine_chunks()
    parent = pc.list_parent_indices(res).to_numpy().astype(np.int64)
    flat = pc.list_flatten(res)
    arn = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False).astype(np.int64)

    def codes(k: str) -> tuple[np.ndarray, int]:
        col = table.column(k).combine_chunks()
        enc = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
        c = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
        return c, len(enc.dictionary) + 1

    actor, na = codes("actor")
    person, np_ = codes("person")
    keep = np.zeros(n, bool)
    if len(arn):
        na_arn = int(arn.max()) + 1
        if na_arn * na * np_ < (1 << 62):
            key = (arn * na + actor[parent]) * np_ + person[parent]
            _, first = np.unique(key, return_index=True)
        else:  # too many distinct values for one integer key: sort on the three
            order = np.lexsort((parent, person[parent], actor[parent], arn))
            a, b, c = arn[order], actor[parent][order], person[parent][order]
            new = np.ones(len(order), bool)
            new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (c[1:] != c[:-1])
            first = order[new]
        keep[parent[first]] = True
    it = table.column("instance_type").combine_chunks()
    keep |= np.asarray(it.is_valid().to_numpy(zero_copy_only=False), bool)
    names = table.column("event_name").combine_chunks()
    enc = names if pa.types.is_dictionary(names.type) else pc.dictionary_encode(names)
    words = enc.dictionary.to_pylist()
    ni = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    for rule in _CREATE_RULES:  # the first creating event of each resource, by each reader's rule
        creating = np.array([rule(w or "") for w in words] + [False], bool)
        sel = np.flatnonzero(creating[ni][parent]) if len(arn) else ()
        if len(sel):
            _, first = np.unique(arn[sel], return_index=True)
            keep[parent[sel[first]]] = True
    return np.flatnonzero(keep)


def rows_near(table: pa.Table, spans: Iterable[tuple[float, float]]) -> np.ndarray:
    """Rows of a time-sorted window whose time is within any of the [start, end] spans, ascending."""
    t = table.column("time").to_numpy()
    keep = np.zeros(len(t), bool)
    for a, b in spans:
        lo, hi = np.searchsorted(t, a, "left"), np.searchsorted(t, b, "right")
        keep[lo:hi] = True
    return np.flatnonzero(keep)

"""CloudTrail log files -> :class:`Event` (who did what to which resource, when).

The scan must get through tens of millions of records on two cores, so the hot path is plain dict
lookups: one key table per (eventSource, eventName), built once and cached, maps request/response
parameter names to the kind of resource they name; ARNs are built through small caches. Records
that fit none of that still load: a bad record is one ``BundleIssue``, never a failed bundle.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson

from engine.arns import build_arn, canonical_arn, kind_of_id
from engine.records import BundleIssue, Event
from engine.sources.files import UnreadableFile, gc_paused, list_files, read_bytes, to_utf8

CLOUDTRAIL_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
_SHAPE = 'expected {"Records": [...]}, a list of records, or JSON lines'


def cloudtrail_files(bundle: Path) -> list[Path]:
    """Every CloudTrail log file under ``bundle/cloudtrail`` (S3 delivery layout or flat), sorted."""
    return list_files(Path(bundle), "cloudtrail", CLOUDTRAIL_SUFFIXES)


# S3 delivery: <account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<unique>.json.gz, the time being the delivery's.
_DELIVERED = re.compile(r"(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8}T\d{4}Z)_[A-Za-z0-9]+\.json(?:\.gz)?", re.ASCII)


def delivery_of(path: str | Path) -> tuple[tuple[str, str], float] | None:
    """((account, region), delivery time in epoch seconds) of a file named as CloudTrail names its
    S3 deliveries, or None for any other name."""
    m = _DELIVERED.fullmatch(Path(path).name)
    if m is None:
        return None
    try:
        when = datetime.strptime(m[3], "%Y%m%dT%H%MZ").replace(tzinfo=UTC).timestamp()
    except ValueError:  # a month 13: not a delivery name after all
        return None
    return (m[1], m[2]), when


def delivery_order(paths: Iterable[str | Path]) -> list[Path]:
    """Files as CloudTrail delivered them: those with a delivery name by account, region, delivery
    time, name and path (for the S3 layout, path order), then the others in the order given.

    Every copy of an event is delivered in a file of the same account and region, within minutes of
    the event: in this order its copies come close together (see engine.activity's deduplication).
    """
    named, other = [], []
    for p in map(Path, paths):
        d = delivery_of(p)
        if d is None:
            other.append(p)
        else:
            named.append(((d[0], d[1], p.name, str(p)), p))
    named.sort(key=lambda kp: kp[0])
    return [p for _, p in named] + other


# ---------------------------------------------------------------------------------------------
# time

_MINUTES: dict[str, float] = {}
# Times outside 1970-2100 are not real CloudTrail times (a mangled year, a fuzzed file): no time.
_EARLIEST, _LATEST = 0.0, 4102444800.0


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 ``eventTime``; None when missing or not a time ("redacted").

    CloudTrail writes ``2026-11-17T02:00:05Z``; records of one file share their minutes, so the
    minute's epoch is cached and only the seconds are added (the general parser is the fallback).
    A time before 1970 or from 2100 on is no time either.
    """
    if type(value) is not str:
        return None
    if len(value) == 20 and value[19] == "Z" and value[16] == ":":
        base = _MINUTES.get(value[:16])
        if base is None:
            try:
                base = datetime.fromisoformat(value[:16] + ":00+00:00").timestamp()
            except (ValueError, OverflowError):
                return None
            if not _EARLIEST <= base < _LATEST:
                return None
            if len(_MINUTES) > 200_000:
                _MINUTES.clear()
            _MINUTES[value[:16]] = base
        sec = value[17:19]
        if sec.isdigit():  # "²³" passes, and int() raises: the record is reported
            return base + int(sec)
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        t = dt.timestamp()
    except (ValueError, OverflowError):
        return None
    return t if _EARLIEST <= t < _LATEST else None


# ---------------------------------------------------------------------------------------------
# principals


def _issuer_name(ui: dict) -> str | None:
    sc = ui.get("sessionContext")
    if type(sc) is dict:
        si = sc.get("sessionIssuer")
        if type(si) is dict:
            name = si.get("userName")
            if type(name) is str and name:
                return name
    return None


def _is_human_session(role: str | None, session: str | None) -> bool:
    """Conservative: IAM Identity Center roles always carry the person; otherwise an email does."""
    if not session:
        return False
    return (role is not None and role.startswith("AWSReservedSSO_")) or "@" in session


def principal_of(ui: Any, event_source: str = "", recipient: str | None = None) -> tuple[
    str, str, str | None, str | None, str | None
]:
    """(principal key, userIdentity.type, role, session, person) of a record's ``userIdentity``."""
    if type(ui) is not dict:
        return "unknown", "", None, None, None
    ptype = ui.get("type")
    ptype = ptype if type(ptype) is str else ""
    arn = ui.get("arn")
    arn = arn if type(arn) is str else ""
    if ptype == "AssumedRole":
        role = _issuer_name(ui)
        session = None
        if "assumed-role/" in arn:
            bits = arn.split("assumed-role/", 1)[1].split("/")
            role = role or bits[0] or None
            if len(bits) > 1:
                session = "/".join(bits[1:]) or None
        if role is None:  # sanitised records keep only a userName
            name = ui.get("userName")
            role = name if type(name) is str and name else None
        if session is None:
            pid = ui.get("principalId")
            if type(pid) is str and ":" in pid:
                session = pid.split(":", 1)[1] or None
        if role:
            person = session if _is_human_session(role, session) else None
            return "role:" + role, ptype, role, session, person
        inv = ui.get("invokedBy")
        if type(inv) is str and inv:
            return "service:" + inv, ptype, None, session, None
        return "unknown", ptype, None, session, None
    if ptype == "IAMUser":
        name = ui.get("userName")
        if type(name) is not str or not name:
            name = arn.rsplit("/", 1)[-1] if ":user/" in arn else ""
        if name:
            return "user:" + name, ptype, None, None, name
        return "unknown", ptype, None, None, None
    if ptype == "AWSService":
        inv = ui.get("invokedBy")
        host = inv if type(inv) is str and inv else event_source
        return ("service:" + host if host else "unknown"), ptype, None, None, None
    if ptype == "Root":
        acct = ui.get("accountId")
        if type(acct) is not str or not acct:
            acct = arn.split(":")[4] if arn.count(":") >= 5 else ""
        acct = acct or recipient or ""
        return "root:" + acct, ptype, None, None, None
    if ptype == "FederatedUser":
        name = arn.split("federated-user/", 1)[1] if "federated-user/" in arn else ""
        if not name:
            pid = ui.get("principalId")
            name = pid.split(":", 1)[1] if type(pid) is str and ":" in pid else ""
        if name:
            return "federated:" + name, ptype, None, None, name
        return "unknown", ptype, None, None, None
    if ptype in ("SAMLUser", "WebIdentityUser"):
        name = ui.get("userName")
        if type(name) is str and name:
            return "federated:" + name, ptype, None, None, name
        return "unknown", ptype, None, None, None
    if ptype == "AWSAccount":
        acct = ui.get("accountId")
        if type(acct) is str and acct:
            return "account:" + acct, ptype, None, None, None
        return "unknown", ptype, None, None, None
    # No type (some service-initiated events) or Unknown: a service if one is named.
    inv = ui.get("invokedBy")
    if type(inv) is str and inv:
        return "service:" + inv, ptype, None, None, None
    return "unknown", ptype, None, None, None


# ---------------------------------------------------------------------------------------------
# resources

# Handlers: a resource kind (value is a name, id or ARN of that kind) or one of these markers.
_EC2 = "~ec2"  # an EC2-style id; the prefix (i-, vol-, sg-...) decides the kind, anything else is ignored
_ARN = "~arn"  # an ARN
_ARNS = "~arns"  # a list of ARNs
_LAMBDA = "~lambda"  # function name, name:qualifier, partial or full ARN
_SQS_URL = "~sqsurl"
_ECS_SERVICE = "~ecssvc"  # needs the sibling "cluster"

# Keys whose meaning does not depend on the service (ids are validated by prefix, ARNs by form).
_GLOBAL_KEYS: dict[str, str] = {
    "instanceId": _EC2,
    "volumeId": _EC2,
    "snapshotId": _EC2,
    "groupId": _EC2,
    "vpcId": _EC2,
    "subnetId": _EC2,
    "networkInterfaceId": _EC2,
    "natGatewayId": _EC2,
    "allocationId": _EC2,
    "resourceId": _EC2,  # CreateTags resourcesSet.items[]
    "dBInstanceIdentifier": "rds:db",
    "dBClusterIdentifier": "rds:cluster",
    "dBInstanceArn": _ARN,
    "dBClusterArn": _ARN,
    "functionName": _LAMBDA,
    "functionArn": _ARN,
    "bucketName": "s3:bucket",
    "tableArn": _ARN,
    "loadBalancerArn": _ARN,
    "loadBalancerArns": _ARNS,
    "loadBalancerName": "elasticloadbalancing:loadbalancer",
    "queueUrl": _SQS_URL,
    "topicArn": _ARN,
    "serviceArn": _ARN,
    "clusterArn": _ARN,
    "taskDefinitionArn": _ARN,
}

# Keys that name a resource only inside one service ("tableName" is also Glue's, "name" is everyone's).
_SOURCE_KEYS: dict[str, dict[str, str]] = {
    "dynamodb.amazonaws.com": {"tableName": "dynamodb:table"},
    "ecs.amazonaws.com": {
        "cluster": "ecs:cluster",
        "service": _ECS_SERVICE,
        "taskDefinition": "ecs:task-definition",
    },
    "sqs.amazonaws.com": {"queueName": "sqs:queue"},
}

_EVENT_KEYS: dict[tuple[str, str], dict[str, str]] = {
    ("sns.amazonaws.com", "CreateTopic"): {"name": "sns:topic"},
}

_TABLES: dict[tuple[str, str], dict[str, str]] = {}


def _table(source: str, name: str) -> dict[str, str]:
    key = (source, name)
    t = _TABLES.get(key)
    if t is None:
        t = dict(_GLOBAL_KEYS)
        t.update(_SOURCE_KEYS.get(source, {}))
        t.update(_EVENT_KEYS.get(key, {}))
        if len(_TABLES) > 50_000:
            _TABLES.clear()
        _TABLES[key] = t
    return t


@functools.lru_cache(maxsize=1 << 17)
def _built(kind: str, value: str, region: str, account: str) -> str | None:
    try:
        return build_arn(kind, value, region, account)
    except (KeyError, IndexError, ValueError):
        return None


@functools.lru_cache(maxsize=1 << 17)
def _ec2(value: str, region: str, account: str) -> str | None:
    kind = kind_of_id(value)
    return build_arn(kind, value, region, account) if kind else None


@functools.lru_cache(maxsize=1 << 17)
def _canon(value: str) -> str | None:
    if not value.startswith("arn:") or value.count(":") < 5:
        return None
    return canonical_arn(value)


def _lambda(value: str, region: str, account: str) -> str | None:
    if value.startswith("arn:"):
        return _canon(value)
    if ":function:" in value:  # partial ARN "123456789012:function:name[:qualifier]"
        acct, rest = value.split(":function:", 1)
        return _built("lambda:function", rest.split(":", 1)[0], region, acct or account)
    return _built("lambda:function", value.split(":", 1)[0], region, account)


@functools.lru_cache(maxsize=1 << 14)
def sqs_arn_from_url(url: str, region: str = "", account: str = "") -> str | None:
    """``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`` -> ``arn:aws:sqs:REGION:ACCOUNT:NAME``."""
    if url.startswith("arn:"):
        return canonical_arn(url)
    rest = url.split("://", 1)[-1]
    parts = rest.split("/")
    if len(parts) < 3 or not parts[1] or not parts[2]:
        return None
    host = parts[0].split(".")
    if len(host) > 1 and host[0] == "sqs" and host[1] not in ("amazonaws", ""):
        region = host[1]  # sqs.us-east-1.amazonaws.com
    elif len(host) > 2 and host[1] == "queue":
        region = host[0]  # legacy us-east-1.queue.amazonaws.com
    partition = "aws-cn" if rest.split("/", 1)[0].endswith(".cn") else "aws"
    return f"arn:{partition}:sqs:{region}:{parts[1]}:{parts[2]}"


def _resolve(handler: str, value: str, params: dict, region: str, account: str) -> str | None:
    if handler is _EC2:
        return _ec2(value, region, account)
    if handler is _ARN:
        return _canon(value)
    if handler is _LAMBDA:
        return _lambda(value, region, account)
    if handler is _SQS_URL:
        return sqs_arn_from_url(value, region, account)
    if handler is _ECS_SERVICE:
        if value.startswith("arn:"):
            return _canon(value)
        cluster = params.get("cluster")
        cluster = cluster if type(cluster) is str and cluster else "default"
        if cluster.startswith("arn:"):
            cluster = cluster.rsplit("/", 1)[-1]
        return _built("ecs:service", f"{cluster}/{value}", region, account)
    if handler is _ARNS:
        return None
    return _built(handler, value, region, account)


def _scan(params: dict, table: dict[str, str], region: str, account: str, out: list[str], deep: bool) -> None:
    """Append the ARNs named by ``params``' keys; look one level into nested objects and lists.

    One level reaches ``instancesSet.items[]``, ``resourcesSet.items[]``, DynamoDB's
    ``tableDescription`` and ECS's ``service`` objects without walking huge responses.
    """
    for k, v in params.items():
        tv = type(v)
        if tv is str:
            h = table.get(k)
            if h is not None and v:
                a = _resolve(h, v, params, region, account)
                if a is not None:
                    out.append(a)
        elif not deep:
            continue
        elif tv is dict:
            items = v.get("items")
            if type(items) is list:
                for it in items:
                    if type(it) is dict:
                        _scan(it, table, region, account, out, False)
            else:
                _scan(v, table, region, account, out, False)
        elif tv is list:
            if table.get(k) is _ARNS:
                for x in v:
                    if type(x) is str:
                        a = _canon(x)
                        if a is not None:
                            out.append(a)
            else:
                for it in v:
                    if type(it) is dict:
                        _scan(it, table, region, account, out, False)


def _resources_of(rec: dict, source: str, name: str, region: str, account: str) -> tuple[str, ...]:
    out: list[str] = []
    res = rec.get("resources")
    if type(res) is list:
        for r in res:
            if type(r) is dict:
                a = r.get("ARN") or r.get("arn")
                if type(a) is str and a:
                    c = _canon(a) if a.startswith("arn:") else _ec2(a, region, account)
                    if c is not None:
                        out.append(c)
    table = _table(source, name)
    for key in ("requestParameters", "responseElements"):
        p = rec.get(key)
        if type(p) is dict:
            _scan(p, table, region, account, out, True)
        elif type(p) is str and p[:1] == "{":  # some tools re-serialise parameters as a string
            try:
                p = orjson.loads(p)
            except orjson.JSONDecodeError:
                continue
            if type(p) is dict:
                _scan(p, table, region, account, out, True)
    if len(out) > 1:
        return tuple(dict.fromkeys(out))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# records


def _str(v: Any) -> str | None:
    return v if type(v) is str and v else None


def parse_record(rec: Any, default_region: str | None = None) -> Event:
    """One CloudTrail record -> Event. Raises ValueError saying why a record is unusable.

    ``eventName`` is required; ``eventSource`` may be missing (sanitised samples drop it) and is
    then "". Everything else degrades to None rather than failing the record.
    """
    if type(rec) is not dict:
        raise ValueError(f"record is not a JSON object (got {type(rec).__name__})")
    name = rec.get("eventName")
    if type(name) is not str or not name:
        raise ValueError("record has no eventName")
    source = rec.get("eventSource")
    source = source if type(source) is str else ""
    ui = rec.get("userIdentity")
    recipient = _str(rec.get("recipientAccountId"))
    principal, ptype, role, session, person = principal_of(ui, source, recipient)
    account = _str(ui.get("accountId")) if type(ui) is dict else None
    region = _str(rec.get("awsRegion")) or default_region
    ro = rec.get("readOnly")
    if type(ro) is not bool:
        ro = {"true": True, "false": False}.get(ro.lower()) if type(ro) is str else None
    eid = rec.get("eventID")
    return Event(
        event_id=eid if type(eid) is str else "",
        time=parse_time(rec.get("eventTime")),
        event_source=source,
        event_name=name,
        principal=principal,
        principal_type=ptype,
        role=role,
        session=session,
        person=person,
        account=account,
        recipient_account=recipient,
        region=region,
        source_ip=_str(rec.get("sourceIPAddress")),
        resources=_resources_of(rec, source, name, region or "", recipient or account or ""),
        error_code=_str(rec.get("errorCode")),
        read_only=ro,
        user_agent=_str(rec.get("userAgent")),
    )


# ---------------------------------------------------------------------------------------------
# fast path: a typed partial decode of only the fields Event needs


class _Fast(msgspec.Struct):
    """The fields of a record Event needs; nested objects stay raw JSON until a cache misses."""

    eventName: str | None = None
    eventSource: str | None = None
    eventID: str | None = None
    eventTime: Any = None
    awsRegion: str | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    errorCode: Any = None
    readOnly: Any = None
    recipientAccountId: str | None = None
    userIdentity: msgspec.Raw = msgspec.Raw()
    requestParameters: msgspec.Raw = msgspec.Raw()
    responseElements: msgspec.Raw = msgspec.Raw()
    resources: msgspec.Raw = msgspec.Raw()


class _FastFile(msgspec.Struct):
    Records: list[_Fast]


class FoldRecord(msgspec.Struct):
    """A record as engine.activity's fused fold reads it: its fields still raw JSON, but for the time,
    the error code and the event id. The raw bytes of the first eight, joined, key a cache of everything derived
    from them; they are decoded (with :func:`raw_str`) only when that cache misses.
    """

    userIdentity: msgspec.Raw = msgspec.Raw()
    eventSource: msgspec.Raw = msgspec.Raw()
    eventName: msgspec.Raw = msgspec.Raw()
    awsRegion: msgspec.Raw = msgspec.Raw()
    recipientAccountId: msgspec.Raw = msgspec.Raw()
    requestParameters: msgspec.Raw = msgspec.Raw()
    responseElements: msgspec.Raw = msgspec.Raw()
    resources: msgspec.Raw = msgspec.Raw()
    eventTime: Any = None
    errorCode: Any = None
    eventID: Any = None  # kept for create and manage events (Activity.changes); not part of the cache key


def raw_str(raw: Any) -> str | None:
    """A raw JSON field as the generic path sees it: the string, or None when missing, empty or not a string."""
    v = orjson.loads(bytes(raw)) if len(raw) else None
    return v if type(v) is str and v else None


class _FoldFile(msgspec.Struct):
    Records: list[FoldRecord]


_FILE_DECODER = msgspec.json.Decoder(_FastFile)
_FOLD_DECODER = msgspec.json.Decoder(_FoldFile)
_LINE_DECODER = msgspec.json.Decoder(_Fast)
_NULLS = (b"", b"null", b"{}", b"[]")


def fold_records_of(body: bytes) -> list[FoldRecord] | None:
    """The records of a stripped ``{"Records": [...]}`` body whose records are all JSON objects, or
    None when the body is anything else (the generic path, through :func:`parse_payload`, decides)."""
    if body[:1] != b"{" or b'"Records"' not in body[:64]:
        return None
    try:
        return _FOLD_DECODER.decode(body).Records
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # too deep: orjson says so
        return None


# userIdentity JSON -> principal tuple; request/response/resources JSON -> ARNs. Records of one
# session (and of one resource) repeat these byte for byte, so most records skip decoding them.
_PRINCIPALS: dict[bytes, tuple] = {}
_RESOURCES: dict[tuple, tuple[str, ...]] = {}
_TIMES: dict[str, float | None] = {}
_BOOLS = {"true": True, "false": False}
_CACHE_MAX = 100_000


def principal_lookup(ui_raw: bytes, source: str, recipient: str | None) -> tuple[tuple, bool]:
    """((principal, type, role, session, person, account), cacheable) of a raw ``userIdentity``.

    ``cacheable`` says the answer depends on ``ui_raw`` alone, not on the record's source or recipient.
    """
    p = _PRINCIPALS.get(ui_raw)
    if p is None:
        ui = orjson.loads(ui_raw) if ui_raw else None
        account = _str(ui.get("accountId")) if type(ui) is dict else None
        # Computed without the record's own context; the rare results that would depend on it
        # (an AWSService with no invokedBy, a Root with no account) are recomputed every time.
        p = (*principal_of(ui, "", None), account)
        if p[0] == "unknown" or p[0] == "root:":
            return (*principal_of(ui, source, recipient), account), False
        if len(_PRINCIPALS) >= _CACHE_MAX:
            _PRINCIPALS.clear()
        _PRINCIPALS[ui_raw] = p
    return p, True


def _principal_cached(ui_raw: bytes, source: str, recipient: str | None) -> tuple:
    return principal_lookup(ui_raw, source, recipient)[0]


def _time_cached(value: Any) -> float | None:
    if type(value) is not str:  # a number, list or object: no time (and lists cannot be dict keys)
        return None
    t = _TIMES.get(value)
    if t is None:
        t = parse_time(value)
        if len(_TIMES) >= _CACHE_MAX:
            _TIMES.clear()
        _TIMES[value] = t
    return t


def resources_cached(rkey: tuple) -> tuple[str, ...]:
    """ARNs of a record from ``(source, name, region, account, request, response, resources)``.

    The last three are the raw JSON bytes of ``requestParameters``, ``responseElements`` and
    ``resources``; ``account`` is the recipient account, else the caller's, else "".
    """
    resources = _RESOURCES.get(rkey)
    if resources is None:
        source, name, region, acct, req, resp, res = rkey
        rec: dict[str, Any] = {}
        if req not in _NULLS:
            rec["requestParameters"] = orjson.loads(req)
        if resp not in _NULLS:
            rec["responseElements"] = orjson.loads(resp)
        if res not in _NULLS:
            rec["resources"] = orjson.loads(res)
        resources = _resources_of(rec, source, name, region or "", acct) if rec else ()
        if len(_RESOURCES) >= _CACHE_MAX:
            _RESOURCES.clear()
        _RESOURCES[rkey] = resources
    return resources


def _fast_event(f: _Fast, default_region: str | None) -> Event:
    name = f.eventName
    if not name:
        raise ValueError("record has no eventName")
    source = f.eventSource or ""
    recipient = f.recipientAccountId or None
    principal, ptype, role, session, person, account = _principal_cached(bytes(f.userIdentity), source, recipient)
    region = f.awsRegion or default_region
    acct = recipient or account or ""
    resources = resources_cached(
        (source, name, region, acct, bytes(f.requestParameters), bytes(f.responseElements), bytes(f.resources)))
    ro = f.readOnly
    if ro is not True and ro is not False:
        ro = _BOOLS.get(ro.lower()) if type(ro) is str else None
    err = f.errorCode
    # Positional: keyword construction of a 17-field dataclass costs three times as much.
    return Event(
        f.eventID or "", _time_cached(f.eventTime), source, name, principal, ptype, role, session, person,
        account, recipient, region, f.sourceIPAddress or None, resources,
        err if type(err) is str and err else None, ro, f.userAgent or None,
    )


def _fast_file(body: bytes, path: str, issues: list[BundleIssue], default_region: str | None) -> list[Event] | None:
    """Events via the typed decode, or None when the file does not fit it (the generic path decides)."""
    if body[:1] != b"{" or b'"Records"' not in body[:64]:
        return None
    try:
        doc = _FILE_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):  # too deep: orjson says so
        return None
    out: list[Event] = []
    for i, f in enumerate(doc.Records, 1):
        try:
            out.append(_fast_event(f, default_region))
        except Exception as e:  # one bad record never stops the file
            issues.append(BundleIssue(path, f"record {i}", str(e) or type(e).__name__))
    return out


def records_of(doc: Any) -> list | None:
    """The record list of one parsed JSON document, or None when it has no CloudTrail shape."""
    if type(doc) is list:
        return doc
    if type(doc) is dict:
        recs = doc.get("Records")
        if type(recs) is list:
            return recs
        if "Records" not in doc and "eventName" in doc:
            return [doc]
    return None


def _parse_records(recs: list, where: str, path: str, issues: list[BundleIssue], out: list[Event],
                   default_region: str | None) -> None:
    for i, rec in enumerate(recs, 1):
        try:
            out.append(parse_record(rec, default_region))
        except Exception as e:  # one bad record never stops the file
            loc = f"{where}, record {i}" if where else f"record {i}"
            issues.append(BundleIssue(path, loc, str(e) or type(e).__name__))


def _parse_line(line: bytes, n: int, path: str, issues: list[BundleIssue], out: list[Event],
                default_region: str | None) -> None:
    """One JSON-lines line: a record, or a whole {"Records": [...]} document."""
    if b'"Records"' not in line[:32]:
        try:
            f = _LINE_DECODER.decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass  # odd types, not JSON or nested too deep: the generic path says what is wrong
        else:
            try:
                out.append(_fast_event(f, default_region))
            except Exception as e:
                issues.append(BundleIssue(path, f"line {n}", str(e) or type(e).__name__))
            return
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        issues.append(BundleIssue(path, f"line {n}", f"not valid JSON ({_clip(str(e))})"))
        return
    if type(doc) is dict and type(doc.get("Records")) is list:
        _parse_records(doc["Records"], f"line {n}", path, issues, out, default_region)
        return
    try:
        out.append(parse_record(doc, default_region))
    except Exception as e:
        issues.append(BundleIssue(path, f"line {n}", str(e) or type(e).__name__))


def parse_payload(data: bytes, path: str, issues: list[BundleIssue],
                  default_region: str | None = None) -> list[Event]:
    """Events from a file's (decompressed) content; problems go to ``issues``.

    Accepts ``{"Records": [...]}`` (as delivered to S3), a bare list of records, one record, or
    JSON lines. The typed fast path is tried first; anything it does not fit goes the generic way,
    which can say which record or line is wrong. A 0-byte file and binary data are one issue; text in
    UTF-16 or with bytes that are not UTF-8 is decoded as far as it goes, with an issue.
    """
    body = data.strip()
    if not body:
        if not data:  # white space alone is a file with no records; nothing at all is a broken one
            issues.append(BundleIssue(path, "", "empty file (0 bytes)"))
        return []
    with gc_paused():
        fast = _fast_file(body, path, issues, default_region)
        if fast is not None:
            return fast
        out: list[Event] = []
        try:
            text, note = to_utf8(data, "CloudTrail JSON")
        except UnreadableFile as e:
            issues.append(BundleIssue(path, "", str(e)))
            return out
        if note:
            issues.append(BundleIssue(path, "", note))
            body = text.strip()
            fast = _fast_file(body, path, issues, default_region)
            if fast is not None:
                return fast
        elif text is not data:  # a UTF-8 byte-order mark, dropped
            body = text.strip()
        del text
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            whole_error = e
        else:
            recs = records_of(doc)
            if recs is None:
                issues.append(BundleIssue(path, "", f"not CloudTrail: {_SHAPE}"))
            else:
                _parse_records(recs, "", path, issues, out, default_region)
            return out
        # Not one JSON document: JSON lines, unless even the first line is not JSON.
        lines = body.split(b"\n")
        try:
            orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            issues.append(BundleIssue(path, "", f"not valid JSON ({_clip(str(whole_error))}); {_SHAPE}"))
            return out
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if line:
                _parse_line(line, n, path, issues, out, default_region)
        return out


def _clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "..."


def read_cloudtrail_file(path: Path, issues: list[BundleIssue], default_region: str | None = None) -> list[Event]:
    """Every usable record of one CloudTrail file (``.json``/``.jsonl``, plain or gzip).

    A file that cannot be read at all (cut gzip, not JSON) gives one issue and no events.
    """
    try:
        data = read_bytes(path)
    except UnreadableFile as e:
        issues.append(BundleIssue(str(path), "", str(e)))
        return []
    return parse_payload(data, str(path), issues, default_region)

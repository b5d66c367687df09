"""Azure Activity Log exports -> :class:`Event` (who did what to which resource, when), as CloudTrail gives.

Read from ``<bundle>/azure-activity/**.json[l][.gz]``, in the shapes Azure writes them:

* the storage-account / Event Hub export schema: ``{"records": [...]}`` (older blobs) or one record per
  line (``PT1H.json`` blobs since late 2018): ``time``, ``resourceId``, ``operationName``, ``category``,
  ``resultType``, ``correlationId``, ``identity`` (``authorization``, ``claims``), ``callerIpAddress``,
  ``location``, ``properties``;
* the REST API / ``az monitor activity-log list`` schema: ``{"value": [...]}`` or a bare list, with
  ``eventTimestamp``, ``operationName.value``, ``status.value``, ``caller``, ``claims``, ``eventDataId``.

Each record becomes one Event (the relation comes with it, see :func:`relation_of_record`):

* **principal**: a managed identity (claim ``xms_mirid``) -> ``mi:<its lower-cased ARM id>``; a user (UPN
  claim, ``unique_name`` or a ``caller`` with an ``@``; the claim wins over ``evidence.principalType``) ->
  ``user:<upn>`` and the person ``<upn>`` (lower case);
  a service principal (``evidence.principalType`` ServicePrincipal, ``idtyp`` app, or an app id with no
  user) -> ``sp:<objectId>`` (the object id RBAC names; the app id when there is none); a record with no
  identity at all (Alert, ResourceHealth, Policy by the platform) -> ``service:<provider namespace>``.
* **event name**: ``operationName`` lower-cased (exports write it in either case); **event source**: its
  provider namespace (``microsoft.compute``).
* **resources**: ``resourceId`` normalized by :func:`normalize_resource_id` (lower case, the billable
  resource: ``…/sites/app/config/appsettings`` is ``…/sites/app``), the ARM id being the canonical key, as an
  ARN is for AWS; resource groups and subscriptions are scopes, kept but not inventory (engine.bundle).
* **account** and recipient account: the subscription id (lower case); **region**: ``location`` or
  ``properties.resourceLocation`` (lower case, no spaces); **source IP**: ``callerIpAddress`` /
  ``httpRequest.clientIpAddress``.
* **event id**: ``correlationId`` (else ``eventDataId``). Azure writes one operation as several records
  (Started, then Succeeded or Failed, sometimes Accepted) sharing its correlation id: the records of one
  (correlation id, operation, resource) are one event, timed by the first and failed when any failed
  (a copy of a record in another blob is so left out too). Records without either id always count.
* **error code**: for a Failed/Failure result, the ``error.code`` inside ``properties.statusMessage``,
  else ``properties.statusCode``, else ``resultSignature``, else "Failed".

A bad record is one ``BundleIssue`` naming it; a file that is not JSON is one issue; nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from engine.activity import CREATE, MANAGE, USE
from engine.records import BundleIssue, Event
from engine.sources.cloudtrail import parse_time
from engine.sources.files import UnreadableFile, list_files, read_bytes, to_utf8

AZURE_DIR = "azure-activity"
EVENT_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
PROVIDER = "Microsoft"
_SHAPE = 'expected {"records": [...]}, {"value": [...]}, a list of records, or JSON lines'


def azure_activity_files(bundle: Path) -> list[Path]:
    """Every Activity Log export file under ``bundle/azure-activity``, sorted."""
    return list_files(Path(bundle), AZURE_DIR, EVENT_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# resource ids

# Child resource types billed on their own (Azure cost exports name them): kept whole. Any other child
# (a site's config, a VM's extensions, a storage account's blob service) stands for its parent.
_BILLED_CHILDREN = {
    "microsoft.sql/servers": {"databases", "elasticpools"},
    "microsoft.sql/managedinstances": {"databases"},
    "microsoft.synapse/workspaces": {"sqlpools", "bigdatapools", "kustopools"},
    "microsoft.kusto/clusters": {"databases"},
    "microsoft.web/sites": {"slots"},
}
# Scopes and network plumbing: resources, but not what an owner is asked about (see engine.bundle).
PLUMBING_TYPES = frozenset({
    "resourcegroups", "subscriptions", "microsoft.network/virtualnetworks", "microsoft.network/networkinterfaces",
    "microsoft.network/networksecuritygroups", "microsoft.authorization/roleassignments",
    "microsoft.authorization/policyassignments", "microsoft.resources/deployments",
})
_SLASHES = re.compile(r"/{2,}")


def normalize_resource_id(raw: Any) -> str | None:
    """The canonical key of an ARM resource id: lower case, no trailing or doubled slashes, cut to the
    billable resource (``/subscriptions/s/resourcegroups/rg/providers/ns/type/name``, or a billed child
    such as an SQL database). None when ``raw`` is not an ARM id.

    Ids outside a resource group (``/subscriptions/s/providers/…``, ``/providers/microsoft.capacity/…``)
    and the scopes themselves (``/subscriptions/s``, ``/subscriptions/s/resourcegroups/rg``) are kept
    as they are, lower-cased.
    """
    if type(raw) is not str:
        return None
    rid = _SLASHES.sub("/", raw.strip().lower()).rstrip("/")
    if not rid.startswith("/") or len(rid) < 2:
        return None
    parts = rid.split("/")[1:]
    try:
        p = parts.index("providers")
    except ValueError:
        return rid
    # providers / namespace / type / name [/ child type / child name ...]
    if len(parts) < p + 4:
        return rid
    ns, typ = parts[p + 1], parts[p + 2]
    keep = p + 4
    children = _BILLED_CHILDREN.get(f"{ns}/{typ}")
    if children is not None and len(parts) >= keep + 2 and parts[keep] in children:
        keep += 2
    return "/" + "/".join(parts[:keep])


def is_azure_id(key: str) -> bool:
    return key.startswith(("/subscriptions/", "/providers/"))


def subscription_of(rid: str) -> str:
    """The subscription id in an ARM id ("" when it has none)."""
    if rid.startswith("/subscriptions/"):
        return rid.split("/", 3)[2]
    return ""


def resource_type(rid: str) -> str:
    """``namespace/type`` of an ARM id (the last provider segment), ``resourcegroups``/``subscriptions``
    for the scopes, "" for anything else."""
    parts = rid.strip("/").split("/")
    if "providers" in parts:
        p = len(parts) - 1 - parts[::-1].index("providers")
        rest = parts[p + 1:]
        if len(rest) >= 3:
            types = [rest[i] for i in range(1, len(rest), 2)]
            return rest[0] + "/" + "/".join(types)
        return rest[0] if rest else ""
    if len(parts) >= 4 and parts[2] == "resourcegroups":
        return "resourcegroups"
    if len(parts) >= 2 and parts[0] == "subscriptions":
        return "subscriptions"
    return ""


def resource_kind(rid: str) -> str:
    """``azure:<namespace/type>``, e.g. ``azure:microsoft.compute/virtualmachines``."""
    return "azure:" + (resource_type(rid) or "unknown")


def resource_name(rid: str) -> str:
    """The name people use: the last segment (``vm1``); for a billed child, ``server/db``."""
    parts = rid.strip("/").split("/")
    if "providers" in parts:
        p = len(parts) - 1 - parts[::-1].index("providers")
        names = [parts[i] for i in range(p + 3, len(parts), 2)]
        if names:
            return "/".join(names)
    return parts[-1] if parts else rid


def region_name(value: Any) -> str:
    """``East US 2`` / ``EastUS2`` / ``eastus2`` -> ``eastus2``."""
    return value.replace(" ", "").lower() if type(value) is str else ""


# ---------------------------------------------------------------------------------------------
# records


def _value(v: Any) -> Any:
    """The REST schema's ``{"value": ..., "localizedValue": ...}`` -> its value."""
    if type(v) is dict:
        return v.get("value")
    return v


def _s(v: Any) -> str:
    v = _value(v)
    return v if type(v) is str else ""


_UPN_CLAIMS = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn", "unique_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
)
_OID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_GUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")


def _dashed(guid: str) -> str:
    g = guid.lower().replace("-", "")
    if len(g) == 32:
        return f"{g[:8]}-{g[8:12]}-{g[12:16]}-{g[16:20]}-{g[20:]}"
    return guid.lower()


def principal_of_record(rec: dict) -> tuple[str, str, str | None]:
    """(principal key, principal type, person) of one Activity Log record (see the module docstring)."""
    identity = rec.get("identity")
    identity = identity if type(identity) is dict else {}
    claims = identity.get("claims", rec.get("claims"))
    claims = claims if type(claims) is dict else {}
    auth = identity.get("authorization", rec.get("authorization"))
    evidence = auth.get("evidence") if type(auth) is dict else None
    evidence = evidence if type(evidence) is dict else {}
    mirid = claims.get("xms_mirid")
    if type(mirid) is str and mirid:
        return "mi:" + (normalize_resource_id(mirid) or mirid.lower()), "ManagedIdentity", None
    ptype = evidence.get("principalType")
    idtyp = claims.get("idtyp")
    is_app = ptype == "ServicePrincipal" or idtyp == "app"
    upn = ""  # a user token's UPN wins over the evidence (sanitised exports mislabel principalType)
    for c in _UPN_CLAIMS:
        v = claims.get(c)
        if type(v) is str and "@" in v:
            upn = v
            break
    caller = _s(rec.get("caller"))
    if not upn and not is_app and "@" in caller:
        upn = caller
    if upn:
        upn = upn.strip().lower()
        return "user:" + upn, "User", upn
    oid = next((claims[c] for c in _OID_CLAIMS if type(claims.get(c)) is str and claims[c]), "")
    if not oid and is_app:
        pid = evidence.get("principalId")
        oid = pid if type(pid) is str else ""
    caller = _s(rec.get("caller"))
    if not oid and _GUID.match(caller.lower()):
        oid = caller
    appid = claims.get("appid") or claims.get("azp")
    if oid or (type(appid) is str and appid and (is_app or not claims.get("scp"))):
        return "sp:" + _dashed(oid or str(appid)), "ServicePrincipal", None
    op = _s(rec.get("operationName")).lower()
    ns = op.split("/", 1)[0] if "/" in op else ""
    return ("service:" + ns if ns else "unknown"), "AzureService", None


_FAILED = frozenset({"failure", "failed"})
_CREATED = frozenset({"created", "201"})
_OBSERVING = frozenset({"alert", "policy", "resourcehealth", "servicehealth", "recommendation", "autoscale",
                        "security"})
_READ_ACTIONS = ("list", "get", "read", "check", "validate", "query", "export")


def relation_of_record(op: str, category: str, status_code: str) -> str:
    """create / manage / use of one record.

    ``…/read`` is use; ``…/write`` is create when Azure answered 201 Created (``statusCode`` or the REST
    ``subStatus``), else manage; ``…/delete`` manage; ``…/action`` manage unless it only reads
    (``listKeys``, ``listAccountSas``, ``getAccessToken``…). Records of the observing categories (Alert,
    Policy, ResourceHealth, ServiceHealth, Recommendation, Autoscale, Security) are use: the platform
    looked, nobody changed anything.
    """
    if category.lower() in _OBSERVING:
        return USE
    last = op.rsplit("/", 1)[-1]
    if last == "read":
        return USE
    if last == "write":
        return CREATE if status_code.lower() in _CREATED else MANAGE
    if last == "delete":
        return MANAGE
    if last == "action":
        verb = op.rsplit("/", 2)[-2] if op.count("/") >= 2 else ""
        return USE if verb.startswith(_READ_ACTIONS) else MANAGE
    return USE


def _error_code(rec: dict, props: dict) -> str | None:
    result = (_s(rec.get("resultType")) or _s(rec.get("status"))).lower().rstrip(".")
    if result not in _FAILED:
        return None
    msg = props.get("statusMessage")
    if type(msg) is str and msg.startswith("{"):
        try:
            doc = orjson.loads(msg)
        except orjson.JSONDecodeError:
            doc = None
        err = doc.get("error") if type(doc) is dict else None
        code = err.get("code") if type(err) is dict else None
        if type(code) is str and code:
            return code
    for v in (props.get("statusCode"), _s(rec.get("subStatus")), rec.get("resultSignature")):
        if type(v) is str and v:
            return v
    return "Failed"


def parse_record(rec: Any) -> tuple[Event, str]:
    """One Activity Log record -> (Event, relation). Raises ValueError saying why it is unusable."""
    if type(rec) is not dict:
        raise ValueError(f"record is not a JSON object (got {type(rec).__name__})")
    op = _s(rec.get("operationName")).strip().lower()
    if not op:
        raise ValueError("record has no operationName")
    props = rec.get("properties")
    props = props if type(props) is dict else {}
    category = _s(rec.get("category")) or _s(props.get("eventCategory"))
    rid = normalize_resource_id(rec.get("resourceId"))
    sub = subscription_of(rid) if rid else ""
    if not sub:
        s = rec.get("subscriptionId")
        ep = props.get("eventProperties")
        if not s and type(ep) is dict:
            s = ep.get("subscriptionId")
        sub = s.lower() if type(s) is str else ""
    principal, ptype, person = principal_of_record(rec)
    status_code = _s(props.get("statusCode")) or _s(rec.get("subStatus"))
    rel = relation_of_record(op, category, status_code)
    region = region_name(rec.get("location")) or region_name(props.get("resourceLocation"))
    ip = rec.get("callerIpAddress")
    if not (type(ip) is str and ip):
        http = rec.get("httpRequest")
        ip = http.get("clientIpAddress") if type(http) is dict else None
    eid = rec.get("correlationId") or rec.get("eventDataId") or props.get("eventDataId")
    when = rec.get("time") or rec.get("eventTimestamp")
    ev = Event(
        event_id=eid.lower() if type(eid) is str else "",
        time=parse_time(when),
        event_source=op.split("/", 1)[0] if "/" in op else "",
        event_name=op,
        principal=principal,
        principal_type=ptype,
        person=person,
        account=sub or None,
        recipient_account=sub or None,
        region=region or None,
        source_ip=ip if type(ip) is str and ip else None,
        resources=(rid,) if rid else (),
        error_code=_error_code(rec, props),
        read_only=rel == USE,
    )
    return ev, rel


def records_of(doc: Any) -> list | None:
    """The record list of one parsed JSON document, or None when it has no Activity Log shape."""
    if type(doc) is list:
        return doc
    if type(doc) is dict:
        for key in ("records", "value"):
            recs = doc.get(key)
            if type(recs) is list:
                return recs
        if "operationName" in doc:
            return [doc]
    return None


def parse_json_records(data: bytes, path: str, issues: list[BundleIssue], what: str,
                       records_of: Any = records_of, shape: str = _SHAPE) -> list[tuple[str, Any]]:
    """(where, record) pairs of a file: one JSON document holding records, or JSON lines (each a record
    or a document of records). Problems become issues; shared by the Azure and GCP readers."""
    if not data.strip():
        if not data:
            issues.append(BundleIssue(path, "", "empty file (0 bytes)"))
        return []
    try:
        text, note = to_utf8(data, what)
    except UnreadableFile as e:
        issues.append(BundleIssue(path, "", str(e)))
        return []
    if note:
        issues.append(BundleIssue(path, "", note))
    body = text.strip()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        whole = e
    else:
        recs = records_of(doc)
        if recs is None:
            issues.append(BundleIssue(path, "", f"not {what}: {shape}"))
            return []
        return [(f"record {i}", r) for i, r in enumerate(recs, 1)]
    lines = body.split(b"\n")
    try:
        orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        issues.append(BundleIssue(path, "", f"not valid JSON ({str(whole)[:200]}); {shape}"))
        return []
    out: list[tuple[str, Any]] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            issues.append(BundleIssue(path, f"line {n}", f"not valid JSON ({str(e)[:200]})"))
            continue
        recs = records_of(doc) if type(doc) is dict else None
        if recs is not None and (len(recs) != 1 or recs[0] is not doc):
            out.extend((f"line {n}, record {i}", r) for i, r in enumerate(recs, 1))
        else:
            out.append((f"line {n}", doc))
    return out


def read_file(path: Path, issues: list[BundleIssue]) -> list[tuple[Event, str]]:
    """Every usable record of one export file as (Event, relation), in file order."""
    try:
        data = read_bytes(path)
    except UnreadableFile as e:
        issues.append(BundleIssue(str(path), "", str(e)))
        return []
    out = []
    for where, rec in parse_json_records(data, str(path), issues, "an Azure Activity Log export"):
        try:
            out.append(parse_record(rec))
        except Exception as e:  # one bad record never stops the file
            issues.append(BundleIssue(str(path), where, str(e) or type(e).__name__))
    return out


def merge_operations(events: Iterable[tuple[Event, str]]) -> list[tuple[Event, str]]:
    """One event per (event id, name, resources): the first record's, failed when any failed, created
    when any record says so (see the module docstring). Events without an id are all kept."""
    out: list[tuple[Event, str]] = []
    at: dict[tuple, int] = {}
    for ev, rel in events:
        if not ev.event_id:
            out.append((ev, rel))
            continue
        key = (ev.event_id, ev.event_name, ev.resources)
        i = at.get(key)
        if i is None:
            at[key] = len(out)
            out.append((ev, rel))
            continue
        first, frel = out[i]
        if ev.time is not None and (first.time is None or ev.time < first.time):
            first.time = ev.time
        if ev.error_code and not first.error_code:
            first.error_code = ev.error_code
        if rel == CREATE and frel != CREATE:
            frel = CREATE
        for f in ("principal", "person", "region", "source_ip"):  # a Started record may lack the caller
            if getattr(first, f) in (None, "unknown") and getattr(ev, f) not in (None, "unknown"):
                setattr(first, f, getattr(ev, f))
                if f == "principal":
                    first.principal_type = ev.principal_type
        out[i] = (first, frel)
    return out


def read_azure_activity(paths: Iterable[Path], issues: list[BundleIssue]) -> list[tuple[Event, str]]:
    """Every event of the export files, each operation once (see :func:`merge_operations`)."""
    events: list[tuple[Event, str]] = []
    for p in paths:
        events.extend(read_file(Path(p), issues))
    return merge_operations(events)

"""GCP Cloud Audit Logs (LogEntry JSON) -> :class:`Event`, as CloudTrail gives.

Read from ``<bundle>/gcp-audit/**.json[l][.gz]``: JSON lines as a Cloud Logging sink writes them to
Cloud Storage (``cloudaudit.googleapis.com/activity/YYYY/MM/DD/….json``), a JSON array
(``gcloud logging read --format=json``) or ``{"entries": [...]}`` (the ``entries.list`` API). Only entries
whose ``protoPayload`` is an ``AuditLog`` are events; other entries (``jsonPayload``, ``textPayload``)
are skipped without an issue, as a sink's bucket holds them beside the audit logs.

* **principal**: ``protoPayload.authenticationInfo.principalEmail`` (else ``principalSubject``): a
  service account (``…gserviceaccount.com``, or a ``serviceAccount:`` subject) -> ``sa:<email>``, with the
  person who impersonated it (the first ``serviceAccountDelegationInfo`` principal, when that is a user);
  Google itself (``system@google.com``, ``…@prod.google.com``) -> ``service:<email>``; anyone else is a
  user -> ``user:<email>`` and the person ``<email>``. E-mails are lower-cased.
* **event name**: ``methodName`` as written (``v1.compute.instances.insert``); **source**: ``serviceName``.
* **resources**: the full resource name ``//<serviceName>/<resourceName>``
  (``//compute.googleapis.com/projects/p/zones/us-central1-a/instances/vm1``), as billing's
  ``resource.global_name`` writes it; a Cloud Storage object stands for its bucket. Projects,
  operations, networks, subnetworks, firewalls and enabled services are kept but are not inventory.
* **account**: ``resource.labels.project_id`` (else the project in the resource name); **region**: the
  ``zone``'s region, or ``region`` / ``location``; **source IP** and **user agent** from ``requestMetadata``.
* **event id**: ``insertId``. A long-running operation is logged twice (``operation.first`` and
  ``operation.last``): the entries of one (``operation.id``, method, resource) are one event, timed by the
  first and failed when any failed.
* **error code**: a ``protoPayload.status.code`` other than 0, as its gRPC name (5 -> ``NOT_FOUND``).
* **relation**: data-access logs are use; ``get``/``list``/``search``/``getIamPolicy``… methods are use;
  ``insert``/``create…`` methods create (``disks.createSnapshot`` manages the disk); every other
  admin-activity or system-event method manages.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.activity import CREATE, MANAGE, USE
from engine.records import BundleIssue, Event
from engine.sources.azure import EVENT_SUFFIXES, merge_operations, parse_json_records
from engine.sources.cloudtrail import parse_time
from engine.sources.files import UnreadableFile, list_files, read_bytes

GCP_DIR = "gcp-audit"
PROVIDER = "Google Cloud"
_SHAPE = 'expected LogEntry JSON lines, a list of entries, or {"entries": [...]}'
_AUDIT_TYPE = "google.cloud.audit.AuditLog"

# gRPC canonical codes (google.rpc.Code), as Cloud Logging's console names them.
GRPC_CODES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
PLUMBING_COLLECTIONS = frozenset({"projects", "operations", "networks", "subnetworks", "firewalls", "services",
                                  "routes", "folders", "organizations"})


def gcp_audit_files(bundle: Path) -> list[Path]:
    """Every audit log export file under ``bundle/gcp-audit``, sorted."""
    return list_files(Path(bundle), GCP_DIR, EVENT_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# resource names


def full_resource_name(service: str, name: Any) -> str | None:
    """``//<service>/<resource name>`` (a name already in that form is kept); None without a name."""
    if type(name) is not str or not name.strip():
        return None
    name = name.strip()
    if name.startswith("//"):
        full = name
    else:
        if not service:
            return None
        full = f"//{service}/{name.lstrip('/')}"
    if "/objects/" in full and full.startswith("//storage.googleapis.com/"):
        full = full.split("/objects/", 1)[0]  # an object: its bucket is the billed resource
    return full.rstrip("/")


def is_gcp_name(key: str) -> bool:
    return key.startswith("//")


def _path(full: str) -> tuple[str, list[str]]:
    """(service short name, path segments without the ``global`` scope) of a full resource name."""
    host, _, rest = full[2:].partition("/")
    segs = [s for s in rest.split("/") if s and s != "global"]
    return host.removesuffix(".googleapis.com"), segs


def collection_of(full: str) -> str:
    _host, segs = _path(full)
    if len(segs) >= 2:
        return segs[-2]
    return segs[0] if segs else ""


def resource_kind(full: str) -> str:
    """``gcp:<service>/<collection>``, e.g. ``gcp:compute/instances``, ``gcp:storage/buckets``."""
    host, _segs = _path(full)
    return f"gcp:{host}/{collection_of(full) or 'unknown'}"


def resource_name(full: str) -> str:
    _host, segs = _path(full)
    return segs[-1] if segs else full


def project_of(full: str) -> str:
    _host, segs = _path(full)
    if len(segs) >= 2 and segs[0] == "projects" and segs[1] != "_":
        return segs[1]
    return ""


def region_of_zone(zone: str) -> str:
    """``us-central1-a`` -> ``us-central1``; a region or ``global`` is returned as it is."""
    head, _, tail = zone.rpartition("-")
    return head if head and len(tail) == 1 and tail.isalpha() else zone


def region_of_name(full: str) -> str:
    _host, segs = _path(full)
    for i, s in enumerate(segs[:-1]):
        if s == "zones":
            return region_of_zone(segs[i + 1])
        if s in ("regions", "locations"):
            return segs[i + 1]
    return ""


# ---------------------------------------------------------------------------------------------
# entries


def _google_internal(email: str) -> bool:
    return email == "system@google.com" or email.endswith("@prod.google.com") or email.endswith(".prod.google.com")


def _is_sa(email: str) -> bool:
    return email.endswith("gserviceaccount.com")


def principal_of_entry(auth: Any) -> tuple[str, str, str | None]:
    """(principal key, principal type, person) of ``protoPayload.authenticationInfo``."""
    if type(auth) is not dict:
        return "unknown", "", None
    email = auth.get("principalEmail")
    email = email.strip().lower() if type(email) is str else ""
    subject = auth.get("principalSubject")
    subject = subject if type(subject) is str else ""
    if not email and ":" in subject:
        email = subject.split(":", 1)[1].strip().lower()
    if not email:
        return "unknown", "", None
    if _is_sa(email) or subject.startswith("serviceAccount:"):
        person = None
        chain = auth.get("serviceAccountDelegationInfo")
        if type(chain) is list and chain and type(chain[0]) is dict:
            fp = chain[0].get("firstPartyPrincipal")
            first = fp.get("principalEmail") if type(fp) is dict else None
            if type(first) is str and "@" in first:
                first = first.strip().lower()
                if not _is_sa(first) and not _google_internal(first):
                    person = first
        return "sa:" + email, "ServiceAccount", person
    if _google_internal(email):
        return "service:" + email, "GoogleService", None
    return "user:" + email, "User", email


_USE_VERBS = ("get", "list", "aggregatedlist", "search", "testiampermissions", "read", "query", "lookup",
              "batchget", "check", "validate", "fetch", "watch")
_CREATE_VERBS = ("insert", "create")
_MANAGE_CREATES = frozenset({"createsnapshot"})


def relation_of_entry(method: str, log_name: str) -> str:
    """create / manage / use of one audit entry (see the module docstring)."""
    if "data_access" in log_name:
        return USE
    verb = method.rsplit(".", 1)[-1].lower()
    if verb.startswith(_USE_VERBS):
        return USE
    if verb.startswith(_CREATE_VERBS) and verb not in _MANAGE_CREATES:
        return CREATE
    if "activity" in log_name or "system_event" in log_name or not log_name:
        return MANAGE
    return USE


def _error_code(status: Any) -> str | None:
    if type(status) is not dict:
        return None
    code = status.get("code")
    if type(code) is str and code.isdigit():
        code = int(code)
    if type(code) is int and code != 0:
        return GRPC_CODES.get(code, str(code))
    if type(code) is str and code and code != "OK":
        return code
    return None


def is_audit_entry(entry: Any) -> bool:
    if type(entry) is not dict:
        return False
    pp = entry.get("protoPayload")
    return type(pp) is dict and str(pp.get("@type", "")).endswith(_AUDIT_TYPE)


def parse_entry(entry: dict) -> tuple[Event, str]:
    """One AuditLog LogEntry -> (Event, relation). Raises ValueError saying why it is unusable."""
    pp = entry["protoPayload"]
    method = pp.get("methodName")
    if type(method) is not str or not method:
        raise ValueError("audit entry has no protoPayload.methodName")
    service = pp.get("serviceName")
    service = service if type(service) is str else ""
    log_name = entry.get("logName")
    log_name = log_name if type(log_name) is str else ""
    full = full_resource_name(service, pp.get("resourceName"))
    res = entry.get("resource")
    labels = res.get("labels") if type(res) is dict else None
    labels = labels if type(labels) is dict else {}
    project = labels.get("project_id")
    project = project if type(project) is str and project else (project_of(full) if full else "")
    region = ""
    for key in ("zone", "region", "location"):
        v = labels.get(key)
        if type(v) is str and v:
            region = region_of_zone(v) if key == "zone" else v
            break
    if not region and full:
        region = region_of_name(full)
    meta = pp.get("requestMetadata")
    meta = meta if type(meta) is dict else {}
    ip, agent = meta.get("callerIp"), meta.get("callerSuppliedUserAgent")
    principal, ptype, person = principal_of_entry(pp.get("authenticationInfo"))
    rel = relation_of_entry(method, log_name)
    iid = entry.get("insertId")
    ev = Event(
        event_id=iid if type(iid) is str else "",
        time=parse_time(entry.get("timestamp")) or parse_time(entry.get("receiveTimestamp")),
        event_source=service,
        event_name=method,
        principal=principal,
        principal_type=ptype,
        person=person,
        account=project or None,
        recipient_account=project or None,
        region=region or None,
        source_ip=ip if type(ip) is str and ip else None,
        resources=(full,) if full else (),
        error_code=_error_code(pp.get("status")),
        read_only=rel == USE,
        user_agent=agent if type(agent) is str and agent else None,
    )
    return ev, rel


def entries_of(doc: Any) -> list | None:
    if type(doc) is list:
        return doc
    if type(doc) is dict:
        if type(doc.get("entries")) is list:
            return doc["entries"]
        if "logName" in doc or "protoPayload" in doc or "insertId" in doc:
            return [doc]
    return None


def read_file(path: Path, issues: list[BundleIssue], skipped: list[int] | None = None) -> list[tuple[Event, str, str]]:
    """Every audit entry of one export file as (Event, relation, operation key), in file order.
    ``skipped`` (one counter) hears how many entries were not audit entries."""
    try:
        data = read_bytes(path)
    except UnreadableFile as e:
        issues.append(BundleIssue(str(path), "", str(e)))
        return []
    out = []
    for where, entry in parse_json_records(data, str(path), issues, "a Cloud Audit Log export", entries_of, _SHAPE):
        if not is_audit_entry(entry):
            if type(entry) is not dict:
                issues.append(BundleIssue(str(path), where, f"entry is not a JSON object (got {type(entry).__name__})"))
            elif skipped is not None:
                skipped[0] += 1
            continue
        try:
            ev, rel = parse_entry(entry)
        except Exception as e:  # one bad entry never stops the file
            issues.append(BundleIssue(str(path), where, str(e) or type(e).__name__))
            continue
        op = entry.get("operation")
        op_id = op.get("id") if type(op) is dict else None
        out.append((ev, rel, op_id if type(op_id) is str and op_id else ""))
    return out


def read_gcp_audit(paths: Iterable[Path], issues: list[BundleIssue],
                   skipped: list[int] | None = None) -> list[tuple[Event, str]]:
    """Every audit event of the export files, each operation once (its first entry's insertId)."""
    keyed: list[tuple[Event, str]] = []
    ids: list[str] = []
    for p in paths:
        for ev, rel, op_id in read_file(Path(p), issues, skipped):
            ids.append(ev.event_id)
            if op_id:
                ev.event_id = "op:" + op_id  # the merge key: one event per operation
            keyed.append((ev, rel))
    # merge_operations keeps each key's first event; give it back its own insertId afterwards.
    first_id: dict[tuple, str] = {}
    for (ev, _rel), iid in zip(keyed, ids, strict=True):
        first_id.setdefault((ev.event_id, ev.event_name, ev.resources), iid)
    merged = merge_operations(keyed)
    for ev, _rel in merged:
        if ev.event_id.startswith("op:"):
            ev.event_id = first_id[(ev.event_id, ev.event_name, ev.resources)]
    return merged

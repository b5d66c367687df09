"""The AWS CLI's own JSON outputs: the tagging API, IAM authorization details, network interfaces.

These files are small (thousands of entries), so clarity wins over speed here. Each accepts what the
CLI writes: one response, a list of responses, or pages written one after another into one file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from engine.arns import build_arn, canonical_arn, parse_arn, resource_kind, short_id
from engine.records import BundleIssue, Interface, Principal, Resource
from engine.sources.files import UnreadableFile, read_bytes, to_utf8

# A JSON string, or one bracket: enough to find where concatenated documents end, in C.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]]')


def _split_documents(data: bytes) -> list[bytes]:
    """Cut concatenated JSON documents ("}{" or one per line) apart, without parsing them.

    Brackets outside strings are counted; a document ends where the count returns to zero. No
    recursion, so any depth of nesting costs nothing here (orjson then refuses what is too deep).
    """
    parts: list[bytes] = []
    depth, start = 0, 0
    for m in _TOKENS.finditer(data):
        c = data[m.start()]
        if c == 0x7B or c == 0x5B:  # { [
            depth += 1
        elif c == 0x7D or c == 0x5D:  # } ]
            depth -= 1
            if depth <= 0:
                parts.append(data[start:m.end()])
                depth, start = 0, m.end()
    if data[start:].strip():
        parts.append(data[start:])
    return parts


def _documents(path: Path, issues: list[BundleIssue]) -> list[Any] | None:
    """Every JSON document in the file: one, a list of pages, or pages concatenated.

    None (and one issue) when the file cannot be read or is not JSON at all. A file in UTF-16 or
    with bytes that are not UTF-8 is decoded as far as it can be, with an issue saying so; binary
    data, an empty file or one too large to hold are refused with an issue.
    """
    where = str(path)
    try:
        data = read_bytes(path)
        data, note = to_utf8(data, "JSON")
    except UnreadableFile as e:
        issues.append(BundleIssue(where, "", str(e)))
        return None
    if note:
        issues.append(BundleIssue(where, "", note))
    if not data.strip():
        issues.append(BundleIssue(where, "", "empty file: no JSON document"))
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        first_error = e
    else:
        return doc if isinstance(doc, list) else [doc]
    # Pages written one after another ("}{" or one per line): decode them in turn.
    parts = _split_documents(data)
    if len(parts) < 2:
        issues.append(BundleIssue(where, "", f"not valid JSON ({_clip(str(first_error))})"))
        return None
    docs: list[Any] = []
    for n, part in enumerate(parts, 1):
        try:
            docs.append(orjson.loads(part))
        except orjson.JSONDecodeError as e:
            issues.append(BundleIssue(where, f"document {n}", f"not valid JSON ({_clip(str(e))}); "
                                                              "it and the rest of the file skipped"))
            break
    return docs or None


def _clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _show(v: Any) -> str:
    """A value for a message: short strings as written, anything else by its type."""
    if isinstance(v, str):
        return repr(_clip(v, 80))
    if v is None or isinstance(v, bool | int | float):
        return repr(v)
    return f"a JSON {'object' if isinstance(v, dict) else 'array' if isinstance(v, list) else type(v).__name__}"


def _pages(docs: list[Any], key: str, path: Path, issues: list[BundleIssue]) -> Iterator[tuple[str, Any]]:
    """(location, entry) for every entry of ``key`` in every page."""
    found = False
    for p, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            continue
        found = True
        for i, entry in enumerate(doc[key], 1):
            where = f"{key}[{i}]" if len(docs) == 1 else f"page {p}, {key}[{i}]"
            yield where, entry
    if not found:
        issues.append(BundleIssue(str(path), "", f'expected {{"{key}": [...]}} (AWS CLI output)'))


def _tag_value(v: Any) -> str | None:
    """A tag value as text: strings as they are, numbers and booleans as Python writes them, nested
    JSON compactly (None when even that fails: nested too deep to write back out)."""
    if v is None:
        return ""
    if isinstance(v, str | int | float | bool):
        return str(v)
    try:
        return orjson.dumps(v).decode()
    except orjson.JSONEncodeError:
        return None


def _tag_dict(tags: Any) -> dict[str, str]:
    """[{"Key": k, "Value": v}] (or a plain mapping) -> {k: v}."""
    out: dict[str, str] = {}
    if isinstance(tags, dict):
        for k, v in tags.items():
            value = _tag_value(v)
            if value is not None:
                out[str(k)] = value
        return out
    if isinstance(tags, list):
        for t in tags:
            if isinstance(t, dict) and isinstance(t.get("Key"), str):
                value = _tag_value(t.get("Value"))
                if value is not None:
                    out[t["Key"]] = value
    return out


# ---------------------------------------------------------------------------------------------
# resourcegroupstaggingapi get-resources


def read_resources_json(path: Path, issues: list[BundleIssue]) -> list[Resource]:
    """Resources from ``aws resourcegroupstaggingapi get-resources`` output, tags merged per ARN.

    The tagging API lists only resources that carry or once carried tags: the rest of the
    inventory comes from CloudTrail, billing and ENIs.
    """
    docs = _documents(Path(path), issues)
    if docs is None:
        return []
    out: dict[str, Resource] = {}
    for where, entry in _pages(docs, "ResourceTagMappingList", Path(path), issues):
        if not isinstance(entry, dict):
            issues.append(BundleIssue(str(path), where, "entry is not a JSON object"))
            continue
        raw = entry.get("ResourceARN")
        a = parse_arn(raw) if isinstance(raw, str) else None
        if a is None:
            issues.append(BundleIssue(str(path), where, f"ResourceARN is missing or not an ARN ({_show(raw)})"))
            continue
        arn = canonical_arn(raw)
        tags = _tag_dict(entry.get("Tags"))
        r = out.get(arn)
        if r is None:
            rid = short_id(arn)
            r = out[arn] = Resource(arn=arn, id=rid, kind=resource_kind(arn), region=a.region, account=a.account,
                                    name=rid, sources={"tagging"})
        r.tags.update(tags)
        if r.tags.get("Name"):
            r.name = r.tags["Name"]
    return list(out.values())


# ---------------------------------------------------------------------------------------------
# iam get-account-authorization-details


@dataclass
class IamDetails:
    """Everything read from the authorization details: principals and managed policy documents."""

    principals: list[Principal] = field(default_factory=list)
    policies: dict[str, dict] = field(default_factory=dict)  # policy ARN -> default version document


def _policy_doc(doc: Any) -> dict | None:
    """A policy document as the CLI gives it (an object) or as the API does (URL-encoded JSON)."""
    if isinstance(doc, dict):
        return doc
    if isinstance(doc, str):
        for text in (doc, unquote(doc)):
            try:
                d = orjson.loads(text)  # not json.loads: a document nested thousands deep must not recurse
            except orjson.JSONDecodeError:
                continue
            if isinstance(d, dict):
                return d
    return None


def _statements(doc: dict | None) -> list[dict]:
    if not doc:
        return []
    st = doc.get("Statement")
    if isinstance(st, dict):
        st = [st]
    return [s for s in st if isinstance(s, dict)] if isinstance(st, list) else []


def _as_list(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str)]
    return []


def _allowed_resources(docs: list[dict | None]) -> tuple[str, ...]:
    out: list[str] = []
    for doc in docs:
        for s in _statements(doc):
            if s.get("Effect") == "Allow":
                out.extend(_as_list(s.get("Resource")))
    return tuple(dict.fromkeys(out))


def _trusted(doc: dict | None) -> tuple[str, ...]:
    out: list[str] = []
    for s in _statements(doc):
        if s.get("Effect") != "Allow":
            continue
        p = s.get("Principal")
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict):
            for v in p.values():
                out.extend(_as_list(v))
    return tuple(dict.fromkeys(out))


def read_iam_details(path: Path, issues: list[BundleIssue]) -> IamDetails:
    """Users, groups and roles from ``aws iam get-account-authorization-details`` output."""
    path = Path(path)
    docs = _documents(path, issues)
    out = IamDetails()
    if docs is None:
        return out
    if not any(isinstance(d, dict) and any(k in d for k in ("UserDetailList", "RoleDetailList", "GroupDetailList",
                                                            "Policies")) for d in docs):
        issues.append(BundleIssue(str(path), "", "expected get-account-authorization-details output "
                                                 "(UserDetailList, GroupDetailList, RoleDetailList, Policies)"))
        return out

    def entries(key: str) -> Iterator[tuple[str, dict]]:
        for p, doc in enumerate(docs, 1):
            lst = doc.get(key) if isinstance(doc, dict) else None
            if not isinstance(lst, list):
                continue
            for i, e in enumerate(lst, 1):
                where = f"{key}[{i}]" if len(docs) == 1 else f"page {p}, {key}[{i}]"
                if isinstance(e, dict):
                    yield where, e
                else:
                    issues.append(BundleIssue(str(path), where, "entry is not a JSON object"))

    for where, pol in entries("Policies"):
        arn = pol.get("Arn")
        if not isinstance(arn, str):
            issues.append(BundleIssue(str(path), where, "policy has no Arn"))
            continue
        default = pol.get("DefaultVersionId")
        doc = None
        for v in pol.get("PolicyVersionList") or []:
            if isinstance(v, dict) and (v.get("IsDefaultVersion") or v.get("VersionId") == default):
                doc = _policy_doc(v.get("Document"))
                break
        out.policies[arn] = doc or {}

    def managed(entry: dict) -> list[dict | None]:
        docs_: list[dict | None] = []
        for att in entry.get("AttachedManagedPolicies") or []:
            if isinstance(att, dict) and isinstance(att.get("PolicyArn"), str):
                docs_.append(out.policies.get(att["PolicyArn"]))
        return docs_

    def inline(entry: dict, key: str) -> list[dict | None]:
        return [_policy_doc(p.get("PolicyDocument")) for p in entry.get(key) or [] if isinstance(p, dict)]

    for kind, key, name_key, inline_key in (
        ("user", "UserDetailList", "UserName", "UserPolicyList"),
        ("group", "GroupDetailList", "GroupName", "GroupPolicyList"),
        ("role", "RoleDetailList", "RoleName", "RolePolicyList"),
    ):
        for where, e in entries(key):
            name = e.get(name_key)
            if not isinstance(name, str) or not name:
                issues.append(BundleIssue(str(path), where, f"{kind} has no {name_key}"))
                continue
            out.principals.append(
                Principal(
                    key=f"{kind}:{name}",
                    arn=e.get("Arn") if isinstance(e.get("Arn"), str) else "",
                    kind=kind,
                    tags=_tag_dict(e.get("Tags")),
                    groups=tuple(_as_list(e.get("GroupList"))),
                    policy_resources=_allowed_resources(inline(e, inline_key) + managed(e)),
                    trusted_by=_trusted(_policy_doc(e.get("AssumeRolePolicyDocument"))) if kind == "role" else (),
                )
            )
    return out


def read_iam_json(path: Path, issues: list[BundleIssue]) -> list[Principal]:
    """Principals ("user:NAME", "group:NAME", "role:NAME") with tags, groups and policy resources."""
    return read_iam_details(path, issues).principals


# ---------------------------------------------------------------------------------------------
# ec2 describe-network-interfaces

_LAMBDA_PREFIX = "AWS Lambda VPC ENI-"
_NAT_PREFIX = "Interface for NAT Gateway "


def region_of_az(az: str) -> str:
    """``us-east-1a`` -> ``us-east-1``; Local Zones (``us-west-2-lax-1a``) -> their parent region."""
    if not az or not az[-1].isalpha():
        return ""
    parts = az[:-1].split("-")
    for i in range(2, len(parts)):
        if parts[i].isdigit():
            return "-".join(parts[: i + 1])
    return ""


def _strip_uuid(text: str) -> str:
    """``name-332dc252-0000-0000-7e4d-4f0c0000c25f`` -> ``name`` (Lambda appends a UUID)."""
    bits = text.split("-")
    if len(bits) > 5 and [len(b) for b in bits[-5:]] == [8, 4, 4, 4, 12]:
        return "-".join(bits[:-5])
    return text


def _attached_to(eni: dict, region: str, account: str) -> str | None:
    """ARN of what the interface belongs to, from its attachment or AWS's own description."""
    att = eni.get("Attachment")
    if isinstance(att, dict) and isinstance(att.get("InstanceId"), str) and att["InstanceId"]:
        return build_arn("ec2:instance", att["InstanceId"], region, account)
    desc = eni.get("Description") if isinstance(eni.get("Description"), str) else ""
    itype = eni.get("InterfaceType") if isinstance(eni.get("InterfaceType"), str) else ""
    if desc.startswith(_LAMBDA_PREFIX):
        name = _strip_uuid(desc[len(_LAMBDA_PREFIX):])
        return build_arn("lambda:function", name, region, account) if name else None
    if itype == "lambda":
        return None
    if desc.startswith("RDSNetworkInterface"):
        # AWS writes no name; some exports (and people) append the DB identifier.
        rest = desc[len("RDSNetworkInterface"):].strip()
        return build_arn("rds:db", rest, region, account) if rest and " " not in rest else None
    if desc.startswith("ELB "):
        name = desc[4:].strip()
        return build_arn("elasticloadbalancing:loadbalancer", name, region, account) if name else None
    if desc.startswith(_NAT_PREFIX):
        nat = desc[len(_NAT_PREFIX):].strip()
        return build_arn("ec2:natgateway", nat, region, account) if nat.startswith("nat-") else None
    return None


def bundle_region(root: Path) -> str:
    """The one region a bundle's own layout names, or "" when it names none or several.

    CloudTrail's S3 layout (``AWSLogs/ACCT/CloudTrail/REGION/``) and flow-log names
    (``ACCT_vpcflowlogs_REGION_...``, ``AWSLogs/ACCT/vpcflowlogs/REGION/``) say where the logs
    come from; only directory and file names are read.
    """
    root = Path(root)
    regions: set[str] = set()
    for pattern in ("cloudtrail/AWSLogs/*/CloudTrail/*", "cloudtrail/AWSLogs/*/*/CloudTrail/*",
                    "flowlogs/AWSLogs/*/vpcflowlogs/*"):
        regions.update(p.name for p in root.glob(pattern) if p.is_dir())
    flow = root / "flowlogs"
    if flow.is_dir():
        for p in flow.iterdir():
            bits = p.name.split("_")
            if len(bits) > 2 and bits[1] == "vpcflowlogs":
                regions.add(bits[2].split(".")[0])
    regions = {r for r in regions if region_of_az(r + "a") == r}
    return regions.pop() if len(regions) == 1 else ""


def read_network_json(path: Path, issues: list[BundleIssue], default_region: str | None = None) -> list[Interface]:
    """Interfaces from ``aws ec2 describe-network-interfaces`` output.

    The region comes from each interface's AvailabilityZone. Some exports leave it out; then the
    region most interfaces of the file are in is used, else ``default_region``, else (when that
    is None) the one region the bundle the file sits in names (:func:`bundle_region`).
    """
    path = Path(path)
    if default_region is None:
        default_region = bundle_region(path.parent)
    docs = _documents(path, issues)
    if docs is None:
        return []
    raw: list[tuple[str, dict]] = []
    for where, e in _pages(docs, "NetworkInterfaces", path, issues):
        if not isinstance(e, dict):
            issues.append(BundleIssue(str(path), where, "entry is not a JSON object"))
        elif not isinstance(e.get("NetworkInterfaceId"), str) or not e["NetworkInterfaceId"]:
            issues.append(BundleIssue(str(path), where, "interface has no NetworkInterfaceId"))
        else:
            raw.append((where, e))
    regions = [region_of_az(e.get("AvailabilityZone") or "") for _, e in raw if isinstance(e.get("AvailabilityZone"), str)]
    regions = [r for r in regions if r]
    fallback = max(set(regions), key=regions.count) if regions else default_region
    out: list[Interface] = []
    for _, e in raw:
        az = e.get("AvailabilityZone")
        region = (region_of_az(az) if isinstance(az, str) else "") or fallback
        account = e.get("OwnerId") if isinstance(e.get("OwnerId"), str) else ""
        ips: list[str] = []
        if isinstance(e.get("PrivateIpAddress"), str):
            ips.append(e["PrivateIpAddress"])
        for p in e.get("PrivateIpAddresses") or []:
            if isinstance(p, dict) and isinstance(p.get("PrivateIpAddress"), str):
                ips.append(p["PrivateIpAddress"])
        for p in e.get("Ipv6Addresses") or []:
            if isinstance(p, dict) and isinstance(p.get("Ipv6Address"), str):
                ips.append(p["Ipv6Address"])
        groups = tuple(g["GroupId"] for g in e.get("Groups") or []
                       if isinstance(g, dict) and isinstance(g.get("GroupId"), str))
        out.append(
            Interface(
                eni_id=e["NetworkInterfaceId"],
                private_ips=tuple(dict.fromkeys(ips)),
                vpc_id=e.get("VpcId") or "",
                subnet_id=e.get("SubnetId") or "",
                resource=_attached_to(e, region, account),
                account=account,
                region=region,
                description=e.get("Description") or "",
                interface_type=e.get("InterfaceType") or "",
                security_groups=groups,
            )
        )
    return out

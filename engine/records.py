"""Normalized records every source is turned into.

Readers in ``engine.sources`` produce these; nothing downstream knows which export format a record
came from. Resources are keyed by canonical ARN (``engine.arns``). Large tables (CloudTrail events,
hourly cost lines) are streamed or kept columnar; the dataclasses here are for the rows people and
tests look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Event:
    """One CloudTrail record, reduced to what attribution needs."""

    event_id: str
    time: float | None  # epoch seconds, UTC; None when the record's time is missing or redacted
    event_source: str  # "ec2.amazonaws.com"
    event_name: str  # "RunInstances"
    principal: str  # canonical key: "role:NAME", "user:NAME", "service:HOST", "root:ACCOUNT", "federated:NAME", "account:ID", "unknown"
    principal_type: str  # userIdentity.type as given: AssumedRole, IAMUser, AWSService, Root, FederatedUser...
    role: str | None = None  # session issuer role name for assumed roles
    session: str | None = None  # role session name
    person: str | None = None  # a human behind the call when known: SSO/human session name, IAM user, federated user
    account: str | None = None  # caller's account id
    recipient_account: str | None = None
    region: str | None = None
    source_ip: str | None = None
    resources: tuple[str, ...] = ()  # canonical ARNs of the resources the event touches
    error_code: str | None = None
    read_only: bool | None = None
    user_agent: str | None = None


@dataclass(slots=True)
class Resource:
    """A resource in the inventory: the union of every source that mentions it."""

    arn: str
    id: str  # short id people use (engine.arns.short_id)
    kind: str  # "ec2:instance", "lambda:function", ...
    region: str = ""
    account: str = ""
    name: str = ""  # the Name tag or the id
    tags: dict[str, str] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)  # {"tagging", "cost", "cloudtrail", "network", "iam"}


@dataclass(slots=True)
class Principal:
    """An IAM identity (from iam.json or seen in CloudTrail)."""

    key: str  # same canonical key as Event.principal: "role:NAME" / "user:NAME"
    arn: str = ""
    kind: str = ""  # "role" | "user" | "group" | "service" | ...
    tags: dict[str, str] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    # Resource ARNs named in the identity's policies (inline and attached), wildcards left as written.
    policy_resources: tuple[str, ...] = ()
    trusted_by: tuple[str, ...] = ()  # principals/services in the role's trust policy


@dataclass(slots=True)
class Interface:
    """A network interface (describe-network-interfaces): maps flow-log IPs to resources."""

    eni_id: str
    private_ips: tuple[str, ...]
    vpc_id: str = ""
    subnet_id: str = ""
    resource: str | None = None  # canonical ARN of what it is attached to, when known
    account: str = ""
    region: str = ""
    description: str = ""
    interface_type: str = ""
    security_groups: tuple[str, ...] = ()


@dataclass(slots=True)
class Flow:
    """One VPC flow log record (only the fields attribution uses)."""

    interface_id: str
    src_addr: str
    dst_addr: str
    bytes: int
    packets: int
    start: int  # epoch seconds
    action: str = ""
    account: str = ""


@dataclass(slots=True)
class Deploy:
    """One deploy from deploys.jsonl."""

    time: float  # epoch seconds
    repo: str
    commit: str = ""
    actor: str = ""  # principal or person who deployed
    pipeline: str = ""
    resources: tuple[str, ...] = ()  # canonical ARNs named by resource/service hints, when resolvable
    hints: tuple[str, ...] = ()  # raw service/resource hints as written


@dataclass(slots=True)
class BundleIssue:
    """A problem with one input file. The rest of the bundle still loads unless strict."""

    path: str
    location: str  # "line 12", "record 40", "row 7", "" for whole-file problems
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: {self.location}" if self.location else self.path
        return f"{where}: {self.message}"


class BundleError(ValueError):
    """A bundle could not be read (or, with strict, any file had a problem)."""

    def __init__(self, issues: list[BundleIssue] | BundleIssue | str):
        if isinstance(issues, str):
            issues = [BundleIssue("", "", issues)]
        elif isinstance(issues, BundleIssue):
            issues = [issues]
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues[:5]) + (f" (+{len(issues) - 5} more)" if len(issues) > 5 else ""))

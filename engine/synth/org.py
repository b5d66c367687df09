"""The synthetic organisation: teams, people, roles, VPCs, resources and who touches what, when.

Everything here is a pure function of :class:`OrgParams`. The writers render the result into the
clouds' export formats and ``truth.csv``; nothing in this module knows a file format. What it does
decide is *behaviour*: which principals call which resource, how often, at which hours, when a
resource changes hands. Each hard case of ``truth.kind`` is planted on purpose here so that it can be
checked later from the written bundle alone.

Behaviour is a *plan*, kept columnar so a 100,000-resource organisation stays cheap:

* streams: (resource, principal group, event category, events/day, active hours, daily shape) —
  the generator samples Poisson counts per hour from them;
* scheduled events: one-off calls (creations, deploys, the few calls of a sparse resource);
* flows: pairs of resources that talk on the network, with a rate and active hours;
* deploys: what ``deploys.jsonl`` lists (each also leaves a CloudTrail call by its actor).

Names never contain a team name: roles, repos and resources use a per-team vocabulary
(payments -> ``ledger-worker``, ``gha-settlement-deployer``), so naming is evidence, not an answer.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from engine.arns import build_arn

MAIN_ACCOUNT = "111111111111"
SECOND_ACCOUNT = "222222222222"
VENDOR_ACCOUNT = "999999999999"
HOME_REGION = "us-east-1"
WEST_REGION = "us-west-2"
REGIONS = (HOME_REGION, WEST_REGION)
ORG_DOMAIN = "corp.example"
GITHUB_ORG = "corp"
DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)

UNOWNED = "unowned"
KINDS = (
    "clean", "shared_service", "cross_team", "reassigned", "sparse", "sso_only", "vendor", "orphan", "abandoned",
)  # fmt: skip
HARD_KINDS = KINDS[1:]
UNOWNED_KINDS = frozenset({"vendor", "orphan", "abandoned"})
HARD_FRACTION = 0.05  # of all resources, for each hard kind
WRONG_TAG_FRACTION = 0.04  # of clean resources: a copy-pasted tag naming another team

RTYPES = ("ec2", "ebs", "rds", "lambda", "s3", "dynamodb", "sqs", "sns", "ecs", "alb")
# Event categories a stream or scheduled call draws its event name from (per resource type).
CATEGORIES = (
    "svc", "mgmt", "ro", "ci", "deploy", "create", "attach", "custodian", "backup", "audit", "vendor",
)  # fmt: skip
CAT = {c: i for i, c in enumerate(CATEGORIES)}

# Daily shapes a stream's rate follows (see ``shapes``): machines, nightly jobs, people per timezone.
SHAPE_MACHINE = 0
SHAPE_NIGHTLY = 1
TIMEZONES = (-5, -8, 1, 5)  # team offsets from UTC; human shape id = 2 + index
_TZ_WEIGHTS = (0.45, 0.25, 0.2, 0.1)

SSO_POWER = "AWSReservedSSO_PowerUserAccess_{}"
SSO_READONLY = "AWSReservedSSO_ReadOnlyAccess_{}"
NOISE_ROLES = {
    "custodian": "cloud-custodian",
    "backup": "backup-runner",
    "scanner": "security-hub-scanner",
}
CONFIG_SERVICE = "config.amazonaws.com"
VENDOR_ROLE = "DatadogIntegrationRole"

# ------------------------------------------------------------------------------------------------
# vocabularies

# (team name, words its services/repos/resources are named after). Words that contain any team name
# are dropped at build time, and a word used by one team is never reused by another.
TEAM_POOL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("payments", ("ledger", "settlement", "payout", "remit", "acquirer", "refund", "treasury", "clearing")),
    ("search", ("indexer", "query", "ranking", "crawler", "autocomplete", "relevance", "synonym", "facet")),
    ("growth", ("referral", "funnel", "onboard", "campaign", "promo", "experiment", "invite", "lifecycle")),
    (
        "data-platform",
        ("lakehouse", "ingest", "warehouse", "compaction", "etl", "schema", "parquet", "lineage"),
    ),
    (
        "ml-infra",
        ("featurestore", "trainer", "inference", "modelreg", "embedding", "gpupool", "notebook", "tensor"),
    ),
    ("identity", ("auth", "token", "login", "mfa", "directory", "oidc", "credential", "passkey")),
    (
        "mobile",
        ("appconfig", "releasetrain", "crashlog", "deeplink", "buildfarm", "pushgw", "ios", "android"),
    ),
    (
        "analytics",
        ("clickstream", "dashboard", "rollup", "sessionizer", "cohort", "reporting", "kpi", "insight"),
    ),
    ("checkout", ("cart", "basket", "order", "taxcalc", "coupon", "fulfil", "quote", "pricing")),
    ("notifications", ("mailer", "smsrelay", "fanout", "digest", "inbox", "template", "courier", "alerting")),
    (
        "fraud",
        ("riskscore", "chargeback", "velocity", "blocklist", "review", "signals", "scoring", "sentinel"),
    ),
    ("logistics", ("shipment", "tracking", "carrier", "dispatch", "parcel", "depot", "manifest", "freight")),
    (
        "marketplace",
        ("listing", "seller", "offer", "storefront", "merchant", "catalogue", "bazaar", "vendorhub"),
    ),
    ("billing", ("meter", "rater", "subscription", "invoice", "proration", "dunning", "plans", "usagecalc")),
    ("media", ("transcode", "thumbnail", "encoder", "packager", "drm", "imagesvc", "cdnsync", "render")),
    (
        "messaging",
        ("chatrelay", "presence", "threads", "typing", "mailbox", "conversation", "roster", "relay"),
    ),
    ("maps", ("geocoder", "tiles", "places", "eta", "navigation", "geofence", "routing", "atlas")),
    (
        "observability",
        ("tracing", "logshipper", "metricsgw", "alertrouter", "spans", "telemetry", "pager", "probe"),
    ),
    ("devex", ("buildcache", "runner", "artifact", "lint", "previewenv", "monorepo", "sandbox", "scaffold")),
    ("inventory", ("stock", "sku", "replenish", "allocation", "reservation", "stockpile", "bin", "cycle")),
    (
        "recommendations",
        ("recsys", "candidates", "reranker", "personalize", "similar", "affinity", "bandit", "feed"),
    ),
    ("support", ("ticket", "helpdesk", "macro", "escalation", "chatbot", "kb", "triage", "csat")),
    (
        "finance",
        ("glexport", "accrual", "reconcile", "fxrates", "payroll", "closebook", "budget", "forecast"),
    ),
    ("infosec", ("secrets", "vault", "siem", "audit", "guard", "keyring", "certs", "detector")),
)
_SYLLABLES = (
    "ka", "lo", "mi", "ren", "dor", "vex", "zu", "tal", "quin", "bri", "sol", "nar", "pek", "ul", "fen",
    "gor", "yas", "tri", "vo", "lin", "mar", "osk", "dav", "rho", "cel", "tam", "ix", "bel", "nov", "sar",
)  # fmt: skip
_FIRST = (
    "priya", "liam", "sofia", "mateo", "aisha", "noah", "yuki", "omar", "elena", "lucas", "fatima",
    "ethan", "chen", "maya", "diego", "zara", "arjun", "nora", "kenji", "lea", "samir", "ingrid",
    "tomas", "amara", "felix", "hana", "ravi", "clara", "jonas", "leila", "marco", "ines", "kwame",
    "anya", "pablo", "mei", "oscar", "tara", "emil", "rosa",
)  # fmt: skip
_LAST = (
    "shah", "okafor", "garcia", "nguyen", "kim", "muller", "rossi", "tanaka", "silva", "cohen", "patel",
    "novak", "larsen", "haddad", "dubois", "kowalski", "mendes", "ito", "fischer", "osei", "reyes",
    "berg", "khan", "moreau", "lindqvist", "sato", "costa", "weber", "adeyemi", "park",
)  # fmt: skip
_ROLE_SUFFIX = ("api", "worker", "svc", "consumer", "processor", "service", "scheduler", "sync")
_NOUNS = {
    "ec2": ("worker", "bastion", "batch", "node", "runner", "host", "box"),
    "ebs": ("data", "scratch", "logs", "cache"),
    "rds": ("db", "pg", "mysql", "primary", "store", "replica"),
    "lambda": (
        "handler",
        "processor",
        "sync",
        "webhook",
        "cron",
        "resizer",
        "dispatcher",
        "validator",
        "exporter",
    ),
    "s3": (
        "exports",
        "archive",
        "artifacts",
        "raw",
        "staging",
        "snapshots",
        "reports",
        "uploads",
        "assets",
        "backups",
    ),
    "dynamodb": (
        "entries",
        "events",
        "sessions",
        "state",
        "index",
        "cache",
        "jobs",
        "records",
        "lookups",
        "config",
    ),
    "sqs": ("jobs", "events", "tasks", "inbound", "outbound", "retry", "work", "requests"),
    "sns": ("events", "alerts", "updates", "changes", "broadcast", "signals"),
    "ecs": ("api", "worker", "web", "consumer", "gateway", "scheduler"),
    "alb": ("alb", "public", "internal", "ingress"),
}
_LEGACY = ("legacy", "old", "tmp", "test", "poc", "scratch", "migration", "adhoc")

# Type mix of resources, and per hard kind the types that make sense for it.
_TYPE_MIX = {"ec2": .16, "ebs": .09, "rds": .06, "lambda": .16, "s3": .14, "dynamodb": .11, "sqs": .10,
             "sns": .05, "ecs": .08, "alb": .05}  # fmt: skip
_KIND_TYPES = {
    "shared_service": {
        "dynamodb": 3,
        "sqs": 2,
        "sns": 1.5,
        "s3": 2,
        "lambda": 1,
        "rds": 1.5,
        "alb": 1,
        "ecs": 1,
    },
    "cross_team": {
        "dynamodb": 2,
        "sqs": 2,
        "sns": 1,
        "s3": 2,
        "lambda": 1.5,
        "rds": 1,
        "ecs": 1,
        "ec2": 1,
        "alb": 0.5,
    },
    "sso_only": {"s3": 3, "dynamodb": 1.5, "ec2": 2, "rds": 1, "lambda": 1, "ebs": 0.5},
    "vendor": {"s3": 3, "lambda": 2, "sqs": 1.5, "sns": 1, "dynamodb": 0.5},
    "orphan": {"ebs": 3, "ec2": 2, "s3": 2, "rds": 1, "dynamodb": 1, "alb": 0.5},
}
_TYPE_ACTIVITY = {"ec2": .6, "ebs": .25, "rds": .7, "lambda": 1.3, "s3": 1.3, "dynamodb": 1.4, "sqs": 1.4,
                  "sns": .8, "ecs": .7, "alb": .5}  # fmt: skip
_KIND_ACTIVITY = {"clean": 1.0, "shared_service": 2.0, "cross_team": 1.3, "reassigned": 1.0, "sparse": 0.0,
                  "sso_only": .3, "vendor": .6, "orphan": 0.0, "abandoned": .12}  # fmt: skip
_ENI_TYPES = frozenset({"ec2", "rds", "lambda", "ecs", "alb"})
_CLIENT_TYPES = frozenset({"ec2", "ecs", "lambda"})
_SERVER_PORTS = {"rds": 5432, "alb": 443, "ec2": 8080, "ecs": 8080}
_INSTANCE_TYPES = (("t3.medium", .0416), ("m5.large", .096), ("m5.xlarge", .192), ("c5.2xlarge", .34),
                   ("r5.large", .126), ("m6i.2xlarge", .384))  # fmt: skip
# Planted spikes (issue 9): target types whose cost is a base level, and what engineers launch by hand.
SPIKE_TYPES = frozenset({"ec2", "rds", "ecs"})
COLDSTART_TYPES = (("p3.2xlarge", 3.06), ("p4d.24xlarge", 32.7726), ("g5.12xlarge", 5.672),
                   ("m5.24xlarge", 4.608), ("p3.8xlarge", 12.24), ("g5.48xlarge", 16.288))  # fmt: skip
_COLD_NOUNS = ("gpu", "train", "bench", "experiment", "scratch", "big")
_DB_CLASSES = (
    ("db.t3.medium", 0.068),
    ("db.m5.large", 0.171),
    ("db.r5.xlarge", 0.48),
    ("db.m6g.large", 0.152),
)

_TAG_KEYS = (
    ("team", 0.6),
    ("Team", 0.1),
    ("owner", 0.1),
    ("Owner", 0.05),
    ("team_name", 0.08),
    ("squad", 0.07),
)
OWNER_TAG_KEYS = frozenset(k for k, _ in _TAG_KEYS)
ACTIVATED_TAG_KEY = "team"  # the one cost allocation tag activated in billing (CUR shows user:team)

# Noise principals touch every owned resource: (group kind, share of the noise, category, shape, errors).
_NOISE = (
    ("custodian", 0.30, "custodian", SHAPE_MACHINE, 0.01),
    ("scanner", 0.30, "audit", SHAPE_MACHINE, 0.03),
    ("config", 0.20, "audit", SHAPE_MACHINE, 0.0),
    ("vendor", 0.12, "audit", SHAPE_MACHINE, 0.0),
    ("backup", 0.08, "backup", SHAPE_NIGHTLY, 0.005),
)


# ------------------------------------------------------------------------------------------------
# model


@dataclass(frozen=True, slots=True)
class OrgParams:
    """Everything the organisation and its behaviour depend on (and nothing else)."""

    seed: int = 0
    teams: int = 6
    resources_per_team: int = 40
    days: int = 14
    events_per_resource_day: float = 20.0
    start: datetime = DEFAULT_START
    tagged_fraction: float = 0.5

    @property
    def hours(self) -> int:
        return self.days * 24

    @property
    def epoch(self) -> int:
        return int(self.start.timestamp())


@dataclass(slots=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    az: str
    base: int  # first address of the block, as an int
    used: int = 0

    def next_ip(self) -> str:
        self.used += 1
        return _ip(self.base + 9 + self.used)


@dataclass(slots=True)
class Vpc:
    vpc_id: str
    account: str
    region: str
    cidr: str
    subnets: list[Subnet]
    teams: list[str]
    nat_id: str = ""
    nat_eni: Eni | None = None
    sgs: dict[str, str] = field(default_factory=dict)  # team -> security group id


@dataclass(slots=True)
class Eni:
    eni_id: str
    ip: str
    subnet_id: str
    vpc_id: str
    az: str
    account: str
    region: str
    sg: str
    interface_type: str = "interface"  # "interface" | "lambda" | "nat_gateway"
    description: str = ""
    requester: str = ""
    instance: str = ""  # EC2 instance id when attached to one
    tags: tuple[tuple[str, str], ...] = ()
    res: int = -1  # resource index, -1 for infrastructure (NAT)


@dataclass(slots=True)
class Team:
    name: str
    words: tuple[str, ...]
    account: str
    tz: int  # index into TIMEZONES
    service_roles: list[str]
    ci_role: str
    repos: list[str]
    people: list[str]  # emails
    iam_users: list[str]
    nat_ip: str
    cost_center: str
    west: float  # share of its resources in us-west-2
    ecs_cluster: str


@dataclass(slots=True)
class RoleDef:
    """An IAM role (or user) of the organisation, for iam.json and the principals that use it."""

    name: str
    account: str
    kind: str  # "service" | "ci" | "sso_power" | "sso_ro" | "noise" | "slr" | "user"
    team: str | None = None
    runtime: str = ""  # service roles: "ec2" | "ecs" | "lambda"
    path: str = "/"
    role_id: str = ""
    sessions: list[str] = field(default_factory=list)
    resources: set[int] = field(default_factory=set)  # resources its policies should name


@dataclass(slots=True)
class Principal:
    """One identity as CloudTrail shows it: a role session, an IAM user, or an AWS service."""

    idx: int
    kind: str  # svc | iam_user | ci | ci_cfn | sso_power | sso_ro | custodian | backup | scanner | config | vendor
    name: str  # role or user name (service host for AWSService)
    session: str
    account: str
    team: str | None
    person: str | None
    ip: str
    agent: str  # user-agent family
    path: str = "/"
    role_id: str = ""
    key_id: str = ""


@dataclass(slots=True)
class Resource:
    idx: int
    rtype: str
    name: str  # the name/id the service uses: i-0abc..., bucket, function, "cluster/service", ALB name
    arn: str
    account: str
    region: str
    kind: str
    team: str  # true current owner, or UNOWNED
    home: str  # team it was created by / placed with (A for reassigned; a VPC host for unowned)
    prev_team: str | None = None  # reassigned: the first user
    others: tuple[str, ...] = ()  # shared_service consumers; cross_team co-user
    switch_hour: int | None = None
    created_hour: int | None = None  # None: existed before the window
    activity: float = 0.0
    repo: str = ""
    prev_repo: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    prev_tags: dict[str, str] | None = None  # reassigned with an updated tag: the tags before the switch
    tag_key: str = ""
    tag_value: str = ""
    tag_correct: bool | None = None
    vpc_id: str = ""
    subnet_id: str = ""
    az: str = ""
    enis: list[Eni] = field(default_factory=list)
    parent: int | None = None  # EBS: the instance it is attached to
    attrs: dict[str, str] = field(default_factory=dict)
    schedule: str = "flat"  # cost shape: flat | office | diurnal | usage


@dataclass(slots=True)
class DeployRec:
    time: int  # epoch seconds
    repo: str
    commit: str
    actor: str
    pipeline: str
    resources: list[int]


@dataclass(slots=True)
class Plan:
    """Columnar behaviour plan (lists while building; the generator turns them into arrays)."""

    s_res: list[int] = field(default_factory=list)
    s_group: list[int] = field(default_factory=list)
    s_cat: list[int] = field(default_factory=list)
    s_rate: list[float] = field(default_factory=list)  # expected events per day
    s_h0: list[int] = field(default_factory=list)
    s_h1: list[int] = field(default_factory=list)
    s_shape: list[int] = field(default_factory=list)
    s_err: list[float] = field(default_factory=list)
    c_hour: list[int] = field(default_factory=list)
    c_sec: list[int] = field(default_factory=list)
    c_res: list[int] = field(default_factory=list)
    c_pid: list[int] = field(default_factory=list)
    c_cat: list[int] = field(default_factory=list)
    f_src: list[int] = field(default_factory=list)
    f_dst: list[int] = field(default_factory=list)
    f_rate: list[float] = field(default_factory=list)  # flows per day
    f_h0: list[int] = field(default_factory=list)
    f_h1: list[int] = field(default_factory=list)


@dataclass(slots=True)
class PlantedSpike:
    """A cost jump planted on purpose, with its cause: what the watch must find and explain.

    ``deploy``: the owner's deploy naming the resource lands 0-3 h before it; ``nocause``: no deploy
    names it (other teams deploy other resources around it); ``coldstart``: an engineer launches an
    expensive instance through the shared SSO role (cost from its launch hour, no history at all).
    """

    kind: str
    res: int
    h0: int  # first anomalous hour
    h1: int  # end hour, exclusive (the window's end for a level shift or a launch)
    ratio: float  # nominal multiplier of the resource's level (coldstart: 0, the level is its price)
    team: str  # owner
    commit: str = ""
    repo: str = ""
    actor: str = ""  # deploy actor (CI role or person), or the launching engineer's e-mail


@dataclass(slots=True)
class Rhythm:
    """A regular, material cost pattern (nightly batch, weekly job) present from the first day."""

    res: int
    kind: str  # nightly (01:00-03:59 UTC every day) | weekly (06:00-11:59 UTC on the first day's weekday)
    factor: float
    windows: list[tuple[int, int]]  # [h0, h1) hours at factor x the level


@dataclass(slots=True)
class Org:
    params: OrgParams
    teams: list[Team]
    roles: dict[str, RoleDef]
    principals: list[Principal]
    groups: list[tuple[list[int], list[float]]]  # group id -> (principal ids, weights)
    resources: list[Resource]
    vpcs: list[Vpc]
    plan: Plan
    deploys: list[DeployRec]
    accounts: list[str]
    sso_suffix: dict[str, tuple[str, str]]  # account -> (power hex, readonly hex)
    people_team: dict[str, str]  # email -> team
    by_name: dict[str, Team]
    spikes: list[PlantedSpike] = field(default_factory=list)  # planted cost spikes (ground truth)
    rhythms: list[Rhythm] = field(default_factory=list)  # regular cost rhythms that must not alert

    @property
    def team_names(self) -> list[str]:
        return [t.name for t in self.teams]


# ------------------------------------------------------------------------------------------------
# small helpers


def _ip(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _hex(rnd: random.Random, n: int) -> str:
    return f"{rnd.getrandbits(4 * n):0{n}x}"


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _aws_id(rnd: random.Random, prefix: str, n: int = 17) -> str:
    return prefix + "".join(_ALNUM[rnd.getrandbits(5)] for _ in range(n))


def _pick(rnd: random.Random, weighted: dict[str, float] | tuple[tuple[str, float], ...]) -> str:
    items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
    x = rnd.random() * sum(w for _, w in items)
    for k, w in items:
        x -= w
        if x < 0:
            return k
    return items[-1][0]


def tag_variants(team: str) -> tuple[tuple[str, float], ...]:
    """How people spell a team in a tag value (all normalise back to the team)."""
    return (
        (team, .5), (team.title(), .12), (f"{team}-team", .1), (f"team-{team}", .08), (team.upper(), .06),
        (f" {team} ", .05), (f"{team.replace('-', '_')}_eng", .09),
    )  # fmt: skip


def normalise_tag_value(value: str, teams: list[str]) -> str | None:
    """The team a messy tag value means (the inverse of ``tag_variants``), None when none."""
    v = value.strip().lower()
    for suffix in ("-team", "_eng"):
        v = v.removesuffix(suffix)
    v = v.removeprefix("team-")
    for t in teams:
        if v in (t, t.replace("-", "_")):
            return t
    return None


def shapes(params: OrgParams) -> np.ndarray:
    """Hourly multipliers (rows: machine, nightly, people per timezone); each row averages 1.

    Machines run around the clock with a mild traffic curve and quieter weekends; nightly jobs run
    01-05 UTC; people work 09-18 local on weekdays (a little in the evening, rarely at weekends).
    """
    hours = params.hours
    t = np.arange(hours)
    start = params.start
    hod = (start.hour + t) % 24
    dow = (start.weekday() + (start.hour + t) // 24) % 7
    weekend = dow >= 5
    rows = [1.0 + 0.3 * np.sin((hod - 9) / 24 * 2 * np.pi)]
    rows[0] = rows[0] * np.where(weekend, 0.75, 1.0)
    rows.append(np.where((hod >= 1) & (hod <= 4), 6.0, 0.0))
    for tz in TIMEZONES:
        local = (hod + tz) % 24
        work = np.where((local >= 9) & (local < 18), 1.0, np.where((local >= 7) & (local < 22), 0.25, 0.02))
        ldow = (start.weekday() + (start.hour + t + tz) // 24) % 7  # the local weekday shifts too
        rows.append(work * np.where(ldow >= 5, 0.06, 1.0))
    out = np.vstack(rows).astype(np.float64)
    # Normalise over whole weeks when possible so a row's mean per day is 1 whatever the window.
    mean = out[:, : max(24, (hours // 168) * 168 or hours)].mean(axis=1, keepdims=True)
    return out / np.where(mean > 0, mean, 1.0)


# ------------------------------------------------------------------------------------------------
# builder


class _Builder:
    """Builds an :class:`Org` step by step from one seeded RNG (order of calls is part of the seed)."""

    def __init__(self, p: OrgParams):
        self.p = p
        self.rnd = random.Random(p.seed * 1_000_003 + 17)
        self.np_rng = np.random.default_rng([p.seed, 0x5EED])
        self.hours = p.hours
        self.teams: list[Team] = []
        self.by_name: dict[str, Team] = {}
        self.roles: dict[str, RoleDef] = {}
        self.principals: list[Principal] = []
        self.pkey: dict[tuple, int] = {}
        self.groups: list[tuple[list[int], list[float]]] = []
        self.gkey: dict[tuple, int] = {}
        self.resources: list[Resource] = []
        self.vpcs: list[Vpc] = []
        self.vpc_of: dict[tuple[str, str], Vpc] = {}
        self.vpc_host: dict[str, str] = {}  # guest team -> host team (shared "core" VPC)
        self.plan = Plan()
        self.deploys: list[DeployRec] = []
        self.used_ids: set[str] = set()
        self.used_names: set[str] = set()
        self.sso: dict[str, tuple[str, str]] = {}
        self.forbidden: set[str] = set()
        self.people_team: dict[str, str] = {}
        self.person_weight: dict[str, float] = {}
        self._person_ips: dict[str, str] = {}
        self.spikes: list[PlantedSpike] = []
        self.rhythms: list[Rhythm] = []

    # ---- ids and names

    def uid(self, prefix: str, n: int = 17) -> str:
        while True:
            s = prefix + _hex(self.rnd, n)
            if s not in self.used_ids:
                self.used_ids.add(s)
                return s

    def clean_name(self, name: str) -> bool:
        low = name.lower()
        return not any(f in low for f in self.forbidden)

    def unique_name(self, base: str, sep: str = "-") -> str:
        name, n = base, 1
        while name in self.used_names or not self.clean_name(name):
            n += 1
            name = f"{base}{sep}{n}" if self.clean_name(base) else f"res-{_hex(self.rnd, 8)}"
        self.used_names.add(name)
        return name

    # ---- teams

    def build_teams(self) -> None:
        p, rnd = self.p, self.rnd
        pool = len(TEAM_POOL)
        names = [TEAM_POOL[i % pool][0] + ("" if i < pool else f"-{i // pool + 1}") for i in range(p.teams)]
        self.forbidden = {n.lower() for n in names} | {b for b, _ in TEAM_POOL}
        used_words: set[str] = set()
        second = set()
        if p.teams >= 4:
            k = max(1, round(0.2 * p.teams))
            second = set(rnd.sample(range(1, p.teams), k))
        for i, name in enumerate(names):
            words = [
                w for w in (TEAM_POOL[i][1] if i < pool else ()) if self.clean_name(w) and w not in used_words
            ]
            while len(words) < 6:
                w = "".join(rnd.choice(_SYLLABLES) for _ in range(rnd.choice((2, 3))))
                if self.clean_name(w) and w not in used_words and len(w) >= 4:
                    words.append(w)
            used_words.update(words)
            order = words[:]
            rnd.shuffle(order)
            account = SECOND_ACCOUNT if i in second else MAIN_ACCOUNT
            svc = []
            for w in order[: rnd.randint(1, 3)]:
                role = self.unique_name(f"{w}-{rnd.choice(_ROLE_SUFFIX)}")
                svc.append(role)
                self.roles[role] = RoleDef(role, account, "service", name, rnd.choice(("ec2", "ecs", "lambda")),
                                           role_id=_aws_id(rnd, "AROA"))  # fmt: skip
            ci = self.unique_name(
                rnd.choice(("gha-{}-deployer", "gha-{}-deploy", "{}-cicd")).format(order[0])
            )
            self.roles[ci] = RoleDef(ci, account, "ci", name, role_id=_aws_id(rnd, "AROA"))
            repos = []
            for w in order[: rnd.randint(1, 3)]:
                repos.append(
                    self.unique_name(
                        rnd.choice(("{}-service", "{}", "{}-infra", "{}-jobs", "{}-api")).format(w)
                    )
                )
            people = []
            for _ in range(rnd.randint(3, 8)):
                while True:
                    email = f"{rnd.choice(_FIRST)}.{rnd.choice(_LAST)}@{ORG_DOMAIN}"
                    if email not in self.people_team:
                        break
                people.append(email)
                self.people_team[email] = name
                self.person_weight[email] = math.exp(rnd.gauss(0, 0.7))
            users = []
            if rnd.random() < 0.25 or i == p.teams // 2:  # a few legacy IAM users, at least one
                u = self.unique_name(f"svc-{order[-1]}-batch")
                users.append(u)
                self.roles[u] = RoleDef(u, account, "user", name, role_id=_aws_id(rnd, "AIDA"))
            team = Team(
                name=name, words=tuple(order), account=account,
                tz=rnd.choices(range(len(TIMEZONES)), weights=_TZ_WEIGHTS)[0],
                service_roles=svc, ci_role=ci, repos=repos, people=people, iam_users=users,
                nat_ip=_ip((rnd.choice((3, 18, 34, 44, 52, 54)) << 24) + rnd.getrandbits(24)),
                cost_center=f"cc-{1000 + (i // 3) * 10}",
                west=0.25 if rnd.random() < 0.4 else 0.0,
                ecs_cluster=self.unique_name(f"{order[0]}-{rnd.choice(('prod', 'main', 'cluster'))}"),
            )  # fmt: skip
            self.teams.append(team)
            self.by_name[name] = team
        # About a third of teams live in another team's "core" VPC: a VPC is evidence, not proof.
        order = list(range(len(self.teams)))
        rnd.shuffle(order)
        guests = order[: round(len(self.teams) / 6)]
        hosts = [i for i in order if i not in guests]
        for g in guests:
            same = [h for h in hosts if self.teams[h].account == self.teams[g].account]
            if same:
                self.vpc_host[self.teams[g].name] = self.teams[rnd.choice(same)].name
        for acct in sorted({t.account for t in self.teams}):
            self.sso_hex(acct, False)
            for role in NOISE_ROLES.values():
                self.roles[role + "@" + acct] = RoleDef(role, acct, "noise", role_id=_aws_id(rnd, "AROA"))
        for acct in sorted({t.account for t in self.teams}):
            self.roles["breakglass-admin@" + acct] = RoleDef(
                "breakglass-admin", acct, "user", role_id=_aws_id(rnd, "AIDA")
            )

    # ---- network

    def vpc_for(self, team: str, region: str) -> Vpc:
        """The team's VPC in a region (its host's, for a team living in a shared "core" VPC)."""
        team = self.vpc_host.get(team, team)
        key = (team, region)
        vpc = self.vpc_of.get(key)
        if vpc is None:
            base = _vpc_base(len(self.vpcs))
            acct = self.by_name[team].account
            vpc_id = self.uid("vpc-")
            subnets = [
                Subnet(self.uid("subnet-"), vpc_id, region + az, base + (k << 14))
                for k, az in enumerate("abc")
            ]
            vpc = Vpc(vpc_id, acct, region, f"{_ip(base)}/16", subnets,
                      [team] + sorted(g for g, h in self.vpc_host.items() if h == team))  # fmt: skip
            vpc.nat_id = self.uid("nat-")
            sub = subnets[0]
            vpc.nat_eni = Eni(self.uid("eni-"), sub.next_ip(), sub.subnet_id, vpc_id, sub.az, acct, region, "",
                              "nat_gateway", f"Interface for NAT Gateway {vpc.nat_id}", "")  # fmt: skip
            self.vpcs.append(vpc)
            self.vpc_of[key] = vpc
        return vpc

    def sg_for(self, vpc: Vpc, team: str) -> str:
        sg = vpc.sgs.get(team)
        if sg is None:
            sg = vpc.sgs[team] = self.uid("sg-")
        return sg

    def add_eni(self, res: Resource, subnet: Subnet, sg: str, itype: str, desc: str, requester: str = "",
                instance: str = "", tags: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        res.enis.append(Eni(self.uid("eni-"), subnet.next_ip(), subnet.subnet_id, subnet.vpc_id, subnet.az,
                            res.account, res.region, sg, itype, desc, requester, instance, tags, res.idx))  # fmt: skip

    # ---- resources

    def build_resources(self) -> None:
        p, rnd = self.p, self.rnd
        n = p.teams * p.resources_per_team
        kinds: list[str] = []
        if n >= 9:
            per = max(1, round(HARD_FRACTION * n))
            for k in HARD_KINDS:
                kinds += [k] * per
        kinds = kinds[:n]
        kinds += ["clean"] * (n - len(kinds))
        rnd.shuffle(kinds)
        if p.teams < 2:  # nobody else to share with, take over, or co-use
            kinds = ["clean" if k in ("shared_service", "cross_team", "reassigned") else k for k in kinds]
        raw = self.np_rng.lognormal(-0.5 * 0.9**2, 0.9, size=n)
        names = [t.name for t in self.teams]
        for i in range(n):
            home = self.teams[i // p.resources_per_team]
            kind = kinds[i]
            rtype = _pick(rnd, _KIND_TYPES.get(kind, _TYPE_MIX))
            region = WEST_REGION if rnd.random() < home.west else HOME_REGION
            res = Resource(i, rtype, "", "", home.account, region, kind, home.name, home.name)
            others = [t for t in names if t != home.name]
            if kind in UNOWNED_KINDS:
                res.team = UNOWNED
            elif kind == "reassigned":
                res.prev_team = home.name
                res.team = rnd.choice(others)
                res.switch_hour = int(self.hours * rnd.uniform(0.28, 0.40))
            elif kind == "shared_service":
                res.others = tuple(rnd.sample(others, min(len(others), rnd.randint(2, 4))))
            elif kind == "cross_team":
                res.others = (rnd.choice(others),)
            res.activity = float(raw[i]) * _TYPE_ACTIVITY[rtype] * _KIND_ACTIVITY[kind]
            if kind not in UNOWNED_KINDS:
                if kind == "sparse" or (kind != "reassigned" and rnd.random() < 0.3):
                    res.created_hour = rnd.randrange(
                        0, max(1, self.hours - 2) if kind == "sparse" else max(1, self.hours // 2)
                    )
                elif kind == "reassigned" and rnd.random() < 0.3:
                    res.created_hour = rnd.randrange(0, max(1, int(res.switch_hour * 0.8)))  # type: ignore[operator]
            self.name_resource(res, home)
            self.resources.append(res)
        # Normalise activity so the organisation makes events_per_resource_day calls per resource-day
        # over the window (resources created inside it are only called for part of it).
        H = self.hours
        total = sum(
            r.activity * (H - (0 if r.created_hour is None else r.created_hour + 1)) / H
            for r in self.resources
        )
        if total > 0:
            scale = n / total
            for r in self.resources:
                r.activity *= scale
        self.place_resources()
        for r in self.resources:
            team = self.by_name[r.team] if r.team != UNOWNED else None
            if team is not None:
                r.repo = rnd.choice(team.repos)
            if r.prev_team:
                r.prev_repo = rnd.choice(self.by_name[r.prev_team].repos)
        self.tag_resources()

    def name_resource(self, res: Resource, home: Team) -> None:
        rnd, rt = self.rnd, res.rtype
        if res.kind == "vendor":
            word = rnd.choice(("datadog", "dd", "dd-forwarder", "dd-logs"))
        elif res.kind in ("orphan", "abandoned") and rnd.random() < 0.5:
            word = rnd.choice(_LEGACY)
        else:
            word = rnd.choice(home.words)
        noun = rnd.choice(_NOUNS[rt])
        acct, region = res.account, res.region
        a = res.attrs
        if rt == "ec2":
            res.name = self.uid("i-")
            a["Name"] = self.unique_name(f"{word}-{noun}")
            itype, price = rnd.choice(_INSTANCE_TYPES)
            a.update(itype=itype, price=str(price), image=self.uid("ami-"))
            res.schedule = "office" if rnd.random() < 0.2 and res.kind not in UNOWNED_KINDS else "flat"
            kind = "ec2:instance"
        elif rt == "ebs":
            res.name = self.uid("vol-")
            a["Name"] = self.unique_name(f"{word}-{noun}")
            a["size"] = str(rnd.choice((20, 50, 100, 200, 500, 1000)))
            kind = "ec2:volume"
        elif rt == "rds":
            res.name = self.unique_name(f"{word}-{noun}")
            cls, price = rnd.choice(_DB_CLASSES)
            a.update(dbclass=cls, price=str(price), engine=rnd.choice(("postgres", "mysql")))
            kind = "rds:db"
        elif rt == "lambda":
            res.name = self.unique_name(f"{word}-{noun}" + rnd.choice(("", "-fn")))
            a.update(runtime=rnd.choice(("python3.12", "nodejs20.x", "java21", "provided.al2023")),
                     memory=str(rnd.choice((128, 256, 512, 1024, 2048))))  # fmt: skip
            res.schedule = "usage"
            kind = "lambda:function"
        elif rt == "s3":
            res.name = self.unique_name(f"{word}-{noun}-{_hex(rnd, 4)}")
            a["gb"] = f"{math.exp(rnd.gauss(4, 2)):.1f}"
            kind = "s3:bucket"
        elif rt == "dynamodb":
            res.name = self.unique_name(f"{word}-{noun}")
            res.schedule = "usage"
            kind = "dynamodb:table"
        elif rt == "sqs":
            res.name = self.unique_name(f"{word}-{noun}" + rnd.choice(("", "-queue", "-dlq")))
            a["url"] = f"https://sqs.{region}.amazonaws.com/{acct}/{res.name}"
            res.schedule = "usage"
            kind = "sqs:queue"
        elif rt == "sns":
            res.name = self.unique_name(f"{word}-{noun}" + rnd.choice(("", "-topic")))
            res.schedule = "usage"
            kind = "sns:topic"
        elif rt == "ecs":
            svc = self.unique_name(f"{word}-{noun}")
            cluster = (
                home.ecs_cluster if res.kind not in ("vendor", "orphan", "abandoned") else f"{word}-cluster"
            )
            if not self.clean_name(cluster):
                cluster = "default"
            res.name = f"{cluster}/{svc}"
            a.update(cluster=cluster, service=svc, taskdef=f"{svc}:{rnd.randint(3, 90)}")
            res.schedule = "diurnal"
            kind = "ecs:service"
        else:  # alb
            lb = self.unique_name(f"{word}-{noun}")[:32]
            a.update(lbname=lb, lbid=_hex(rnd, 16))
            res.name = lb
            res.schedule = "diurnal"
            kind = "elasticloadbalancing:loadbalancer"
        ident = f"app/{res.name}/{a['lbid']}" if rt == "alb" else res.name
        res.arn = build_arn(kind, ident, region, acct)

    def place_resources(self) -> None:
        """Subnets and ENIs; EBS volumes attach to an instance of the same owner (same AZ)."""
        rnd = self.rnd
        instances: dict[tuple[str, str, str], list[Resource]] = defaultdict(list)
        for r in self.resources:
            vpc = self.vpc_for(r.home, r.region)
            sub = rnd.choice(vpc.subnets)
            r.vpc_id, r.subnet_id, r.az = vpc.vpc_id, sub.subnet_id, sub.az
            sg = self.sg_for(vpc, r.home)
            if r.rtype == "ec2":
                self.add_eni(r, sub, sg, "interface", "", instance=r.name)
                if r.kind in ("clean", "shared_service", "cross_team"):  # owned all along, called by CI
                    instances[(r.team, r.account, r.region)].append(r)
            elif r.rtype == "rds":
                self.add_eni(r, sub, sg, "interface", f"RDSNetworkInterface {r.name}", "amazon-rds")
            elif r.rtype == "lambda" and r.kind != "vendor" and rnd.random() < 0.6:
                self.add_eni(r, sub, sg, "lambda",
                             f"AWS Lambda VPC ENI-{r.name}-{_uuid(rnd)}", "")  # fmt: skip
                r.attrs["in_vpc"] = "1"
            elif r.rtype == "ecs":
                for _ in range(rnd.randint(1, 2)):
                    s = rnd.choice(vpc.subnets)
                    self.add_eni(r, s, sg, "interface",
                                 f"arn:aws:ecs:{r.region}:{r.account}:attachment/{_uuid(rnd)}", "",
                                 tags=(("aws:ecs:clusterName", r.attrs["cluster"]),
                                       ("aws:ecs:serviceName", r.attrs["service"])))  # fmt: skip
            elif r.rtype == "alb":
                lb = f"app/{r.attrs['lbname']}/{r.attrs['lbid']}"
                for s in vpc.subnets[:2]:
                    self.add_eni(r, s, sg, "interface", f"ELB {lb}", "amazon-elb")
            if r.rtype not in ("ec2", "rds", "ecs", "alb") and not r.enis:
                r.vpc_id = r.subnet_id = ""
                if r.rtype not in ("ebs",):
                    r.az = ""
        for r in self.resources:
            if r.rtype != "ebs":
                continue
            cands = instances.get((r.team, r.account, r.region), []) if r.kind not in UNOWNED_KINDS else []
            if r.kind != "orphan" and cands:
                parent = rnd.choice(cands)
                r.parent = parent.idx
                r.az, r.subnet_id, r.vpc_id = parent.az, parent.subnet_id, parent.vpc_id
                r.attrs["instance"] = parent.name

    def tag_resources(self) -> None:
        """Owner tags on ~tagged_fraction of owned resources: messy keys and values, some wrong or stale."""
        p, rnd = self.p, self.rnd
        names = [t.name for t in self.teams]
        owned = [r for r in self.resources if r.team != UNOWNED]
        order = owned[:]
        rnd.shuffle(order)
        tagged = set(id(r) for r in order[: round(p.tagged_fraction * len(owned))])
        clean_tagged = [r for r in order if id(r) in tagged and r.kind == "clean"]
        n_clean = sum(1 for r in owned if r.kind == "clean")
        wrong = (
            set(id(r) for r in clean_tagged[: round(WRONG_TAG_FRACTION * n_clean)])
            if len(names) > 1
            else set()
        )
        for r in self.resources:
            extra: dict[str, str] = {}
            if r.rtype in ("ec2", "ebs"):
                extra["Name"] = r.attrs["Name"]
            env = rnd.choice(("prod", "prod", "prod", "staging", "dev"))
            if id(r) in tagged:
                key = _pick(rnd, _TAG_KEYS)
                truth = r.team
                if id(r) in wrong:
                    shown = rnd.choice([t for t in names if t != truth])
                elif r.kind == "reassigned" and rnd.random() < 0.5:
                    shown = r.prev_team or truth  # stale: nobody updated it after the hand-over
                else:
                    shown = truth
                value = _pick(rnd, tag_variants(shown))
                r.tags = {key: value, "env": env, **extra}
                if rnd.random() < 0.5:
                    r.tags["cost-center"] = self.by_name[shown].cost_center
                r.tag_key, r.tag_value = key, value
                r.tag_correct = shown == truth
                if r.kind == "reassigned" and shown == truth and r.prev_team:
                    r.prev_tags = dict(r.tags)
                    r.prev_tags[key] = _pick(rnd, tag_variants(r.prev_team))
            elif r.kind == "vendor":
                if rnd.random() < 0.5:
                    r.tags = {"vendor": "datadog", "managed-by": "datadog-integration"}
            elif rnd.random() < 0.2:  # only non-owner tags: listed by the tagging API, still unowned
                r.tags = {"env": env, **extra} if extra else {"env": env}

    # ---- principals and groups

    def principal(self, kind: str, name: str, session: str, account: str, team: str | None, *,
                  person: str | None = None, path: str = "/", role_id: str = "") -> int:  # fmt: skip
        key = (kind, name, session, account)
        pid = self.pkey.get(key)
        if pid is not None:
            return pid
        rnd = self.rnd
        ip = _PRINCIPAL_IPS.get(kind, "")
        agent = kind
        if kind in ("svc", "iam_user"):
            ip = self.by_name[team].nat_ip if team else ip  # type: ignore[index]
            agent = "svc-" + (self.roles[name].runtime if name in self.roles else "ec2")
        elif kind in ("sso_power", "sso_ro"):
            ip = self.person_ip(person or session)
            agent = (
                rnd.choice(("console", "cli", "cli", "console", "sdk-py"))
                if kind == "sso_power"
                else "console"
            )
        elif kind in ("ci", "ci_cfn"):
            ip = (
                _ip((rnd.choice((4, 20, 52)) << 24) + rnd.getrandbits(24))
                if kind == "ci"
                else "cloudformation.amazonaws.com"
            )
            agent = "terraform" if kind == "ci" and rnd.random() < 0.6 else kind
        pid = len(self.principals)
        self.principals.append(Principal(pid, kind, name, session, account, team, person, ip, agent, path,
                                         role_id, _aws_id(rnd, "AKIA" if kind == "iam_user" else "ASIA", 16)))  # fmt: skip
        self.pkey[key] = pid
        return pid

    def person_ip(self, email: str) -> str:
        ip = self._person_ips.get(email)
        if ip is None:
            ip = self._person_ips[email] = _ip((self.rnd.choice((73, 81, 86, 98, 172, 185, 203)) << 24)
                                               + self.rnd.getrandbits(24))  # fmt: skip
        return ip

    def group(self, key: tuple, members: list[tuple[int, float]]) -> int:
        gid = self.gkey.get(key)
        if gid is None:
            gid = self.gkey[key] = len(self.groups)
            self.groups.append(([m for m, _ in members], [w for _, w in members]))
        return gid

    def svc_group(self, role: str) -> int:
        key = ("svc", role)
        if key in self.gkey:
            return self.gkey[key]
        rd = self.roles[role]
        return self.group(key, [(self.principal("svc", role, s, rd.account, rd.team, role_id=rd.role_id), 1.0)
                                for s in rd.sessions])  # fmt: skip

    def user_group(self, user: str) -> int:
        rd = self.roles[user]
        return self.group(("user", user), [(self.principal("iam_user", user, "", rd.account, rd.team,
                                                           role_id=rd.role_id), 1.0)])  # fmt: skip

    def ci_group(self, team: str, cfn: bool = False) -> int:
        t = self.by_name[team]
        rd = self.roles[t.ci_role]
        kind = "ci_cfn" if cfn else "ci"
        return self.group((kind, team), [(self.principal(kind, rd.name, "GitHubActions", rd.account, team,
                                                         role_id=rd.role_id), 1.0)])  # fmt: skip

    def people_group(self, team: str, account: str, ro: bool = False) -> int:
        key = ("sso_ro" if ro else "sso_power", team, account)
        if key in self.gkey:
            return self.gkey[key]
        rd = self.roles[(SSO_READONLY if ro else SSO_POWER).format(self.sso_hex(account, ro)) + "@" + account]
        members = []
        for email in self.by_name[team].people:
            pid = self.principal(
                key[0], rd.name, email, account, team, person=email, path=rd.path, role_id=rd.role_id
            )
            members.append((pid, self.person_weight[email]))
        return self.group(key, members)

    def sso_hex(self, account: str, ro: bool) -> str:
        if account not in self.sso:
            rnd = self.rnd
            self.sso[account] = (_hex(rnd, 16), _hex(rnd, 16))
            for kind, tmpl, h in (
                ("sso_power", SSO_POWER, self.sso[account][0]),
                ("sso_ro", SSO_READONLY, self.sso[account][1]),
            ):
                self.roles[tmpl.format(h) + "@" + account] = RoleDef(
                    tmpl.format(h), account, kind, path="/aws-reserved/sso.amazonaws.com/", role_id=_aws_id(rnd, "AROA"))  # fmt: skip
        return self.sso[account][1 if ro else 0]

    def person_principal(self, email: str, account: str) -> int:
        team = self.people_team[email]
        self.people_group(team, account)
        rd = self.roles[SSO_POWER.format(self.sso_hex(account, False)) + "@" + account]
        return self.principal(
            "sso_power", rd.name, email, account, team, person=email, path=rd.path, role_id=rd.role_id
        )

    def noise_group(self, kind: str, account: str) -> int:
        if kind == "vendor":
            return self.group(("vendor",), [(self.principal("vendor", VENDOR_ROLE, "DatadogAWSIntegration",
                                                            VENDOR_ACCOUNT, None, role_id="AROA" + "DDOGINTEGRATION01"), 1.0)])  # fmt: skip
        if kind == "config":
            return self.group(
                ("config", account), [(self.principal("config", CONFIG_SERVICE, "", account, None), 1.0)]
            )
        rd = self.roles[NOISE_ROLES[kind] + "@" + account]
        session = {
            "custodian": "CloudCustodian",
            "backup": "AWSBackup-backup-runner",
            "scanner": "SecurityHubScan",
        }[kind]
        return self.group(
            (kind, account),
            [(self.principal(kind, rd.name, session, account, None, role_id=rd.role_id), 1.0)],
        )

    # ---- behaviour

    def assign_sessions(self) -> None:
        """Service-role sessions name their host: an instance id, a function name or an ECS task id."""
        rnd = self.rnd
        hosts: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in self.resources:
            if r.kind == "clean" and r.rtype in ("ec2", "lambda", "ecs"):
                hosts[(r.team, r.rtype)].append(r.name)
        for rd in self.roles.values():
            if rd.kind != "service":
                continue
            cands = hosts.get((rd.team, rd.runtime), [])  # type: ignore[arg-type]
            if rd.runtime == "ecs" or not cands:
                rd.sessions = [_hex(rnd, 32) for _ in range(rnd.randint(2, 5))]
            else:
                rd.sessions = rnd.sample(cands, min(len(cands), rnd.randint(1, 6)))

    def stream(self, r: Resource, gid: int, cat: str, share: float, total: float, h0: int, h1: int, shape: int,
               err: float) -> None:  # fmt: skip
        rate = share * total
        if rate <= 0 or h1 <= h0:
            return
        pl = self.plan
        pl.s_res.append(r.idx)
        pl.s_group.append(gid)
        pl.s_cat.append(CAT[cat])
        pl.s_rate.append(rate)
        pl.s_h0.append(h0)
        pl.s_h1.append(h1)
        pl.s_shape.append(shape)
        pl.s_err.append(err)

    def team_use(self, r: Resource, team: str, weight: float, total: float, h0: int, h1: int,
                 roles: list[str] | None = None) -> None:  # fmt: skip
        """A team using a resource it owns: its service roles, its people (SSO), its CI."""
        t = self.by_name[team]
        rnd = self.rnd
        hshape = 2 + t.tz
        roles = roles or rnd.sample(t.service_roles, min(len(t.service_roles), rnd.choice((1, 1, 2))))
        svc_share = 0.72 if not t.iam_users else 0.68
        split = [rnd.uniform(0.5, 1.5) for _ in roles]
        for role, s in zip(roles, split, strict=True):
            self.stream(r, self.svc_group(role), "svc", weight * svc_share * s / sum(split), total, h0, h1,
                        SHAPE_MACHINE, .002)  # fmt: skip
            self.roles[role].resources.add(r.idx)
        if t.iam_users:
            self.stream(
                r, self.user_group(t.iam_users[0]), "svc", weight * 0.04, total, h0, h1, SHAPE_MACHINE, 0.002
            )
            self.roles[t.iam_users[0]].resources.add(r.idx)
        self.stream(
            r, self.people_group(team, r.account), "mgmt", weight * 0.14, total, h0, h1, hshape, 0.015
        )
        self.stream(
            r, self.people_group(team, r.account, ro=True), "ro", weight * 0.07, total, h0, h1, hshape, 0.01
        )
        self.stream(r, self.ci_group(team), "ci", weight * 0.05, total, h0, h1, hshape, 0.01)
        self.roles[t.ci_role].resources.add(r.idx)

    def noise(self, r: Resource, weight: float, total: float, h0: int) -> None:
        for kind, share, cat, shape, err in _NOISE:
            if kind == "backup" and r.rtype not in ("ebs", "rds", "dynamodb", "s3", "ec2"):
                continue
            self.stream(
                r, self.noise_group(kind, r.account), cat, weight * share, total, h0, self.hours, shape, err
            )

    def build_streams(self) -> None:
        rnd, p, H = self.rnd, self.p, self.hours
        E = p.events_per_resource_day
        for r in self.resources:
            total = E * r.activity
            h0 = 0 if r.created_hour is None else r.created_hour + 1
            k = r.kind
            if k == "clean":
                self.team_use(r, r.team, 0.84, total, h0, H)
                self.noise(r, 0.16, total, h0)
            elif k == "shared_service":
                t = self.by_name[r.team]
                self.stream(
                    r, self.svc_group(t.service_roles[0]), "svc", 0.05, total, h0, H, SHAPE_MACHINE, 0.002
                )
                self.roles[t.service_roles[0]].resources.add(r.idx)
                self.stream(
                    r, self.people_group(r.team, r.account), "mgmt", 0.05, total, h0, H, 2 + t.tz, 0.015
                )
                self.stream(
                    r, self.people_group(r.team, r.account, ro=True), "ro", 0.02, total, h0, H, 2 + t.tz, 0.01
                )
                self.stream(r, self.ci_group(r.team), "ci", 0.03, total, h0, H, 2 + t.tz, 0.01)
                self.roles[t.ci_role].resources.add(r.idx)
                # One main consumer out-calls the owner's whole team; the others add up to the majority.
                split = [rnd.uniform(0.4, 1.6) for _ in r.others]
                split[0] = max(sum(split[1:]), 1.0) * rnd.uniform(1.2, 1.6)
                for c, s in zip(r.others, split, strict=True):
                    role = rnd.choice(self.by_name[c].service_roles)
                    self.stream(
                        r,
                        self.svc_group(role),
                        "svc",
                        0.71 * s / sum(split),
                        total,
                        h0,
                        H,
                        SHAPE_MACHINE,
                        0.005,
                    )
                    self.roles[role].resources.add(r.idx)
                self.noise(r, 0.14, total, h0)
            elif k == "cross_team":
                self.team_use(r, r.team, 0.42, total, h0, H)
                b = self.by_name[r.others[0]]
                role = rnd.choice(b.service_roles)
                self.stream(
                    r,
                    self.svc_group(role),
                    "svc",
                    0.42 * rnd.uniform(1.05, 1.4),
                    total,
                    h0,
                    H,
                    SHAPE_MACHINE,
                    0.005,
                )
                self.roles[role].resources.add(r.idx)
                self.noise(r, 0.14, total, h0)
            elif k == "reassigned":
                s = r.switch_hour or 0
                self.team_use(r, r.prev_team or r.team, 0.85, total, h0, s)
                self.team_use(r, r.team, 0.85, total, max(h0, s), H)
                self.noise(r, 0.15, total, h0)
            elif k == "sso_only":
                t = self.by_name[r.team]
                self.stream(
                    r, self.people_group(r.team, r.account), "mgmt", 0.55, total, h0, H, 2 + t.tz, 0.015
                )
                self.stream(
                    r, self.people_group(r.team, r.account, ro=True), "ro", 0.30, total, h0, H, 2 + t.tz, 0.01
                )
                self.noise(r, 0.15, total, h0)
            elif k == "vendor":
                self.stream(
                    r, self.noise_group("vendor", r.account), "vendor", 1.0, total, 0, H, SHAPE_MACHINE, 0.003
                )
            elif k == "abandoned":
                # Only org-wide noise; the vendor integration is left out so "vendor only" stays distinct.
                for kind, share, cat, shape, err in _NOISE:
                    if kind != "vendor":
                        self.stream(
                            r, self.noise_group(kind, r.account), cat, share / 0.88, total, 0, H, shape, err
                        )
            # sparse and orphan: no streams (sparse gets scheduled calls below)

    def schedule(self, hour: int, sec: int, r: Resource, pid: int, cat: str) -> None:
        pl = self.plan
        pl.c_hour.append(hour)
        pl.c_sec.append(sec)
        pl.c_res.append(r.idx)
        pl.c_pid.append(pid)
        pl.c_cat.append(CAT[cat])

    def ci_pid(self, team: str, cfn: bool) -> int:
        g = self.groups[self.ci_group(team, cfn)]
        return g[0][0]

    def build_scheduled(self) -> None:
        """Creation calls inside the window, the few calls of sparse resources, and deploys."""
        rnd, H, epoch = self.rnd, self.hours, self.p.epoch
        for r in self.resources:
            if (
                r.kind == "reassigned"
                and r.rtype == "ebs"
                and r.parent is not None
                and r.switch_hour is not None
            ):
                # The hand-over is visible: the new owner attaches the volume to one of its instances.
                self.schedule(r.switch_hour, rnd.randrange(3600), r, self.ci_pid(r.team, cfn=False), "attach")
            if r.created_hour is None:
                continue
            creator = r.prev_team or r.team
            t = self.by_name[creator]
            sec = rnd.randrange(3600)
            if r.kind == "sso_only" or rnd.random() < 0.3:
                pid = self.person_principal(rnd.choice(t.people), r.account)
                actor = None
            else:
                cfn = rnd.random() < 0.5
                pid = self.ci_pid(creator, cfn)
                actor = t.ci_role
            self.schedule(r.created_hour, sec, r, pid, "create")
            if r.rtype == "ebs" and r.parent is not None and r.kind != "reassigned":
                self.schedule(r.created_hour, min(3599, sec + rnd.randint(5, 40)), r, pid, "attach")
            if actor is not None:
                repo = r.prev_repo or r.repo
                self.deploys.append(DeployRec(epoch + r.created_hour * 3600 + sec - rnd.randint(20, 300), repo,
                                              _hex(rnd, 7), actor, _pipeline(repo), [r.idx]))  # fmt: skip
            if r.kind == "sparse":
                made = 2 if r.rtype == "ebs" and r.parent is not None else 1
                for _ in range(min(3 - made, rnd.choice((0, 0, 1, 2)))):
                    h = rnd.randrange(r.created_hour, H)
                    if rnd.random() < 0.5:
                        reader = self.person_principal(rnd.choice(t.people), r.account)
                    else:
                        reader = self.groups[self.svc_group(rnd.choice(t.service_roles))][0][0]
                    self.schedule(h, rnd.randrange(3600), r, reader, "ro")
        self.build_deploys()

    def build_deploys(self) -> None:
        rnd, H, epoch = self.rnd, self.hours, self.p.epoch
        start = self.p.start
        by_repo: dict[str, list[tuple[Resource, int, int]]] = defaultdict(list)
        for r in self.resources:
            if r.kind not in ("clean", "shared_service", "cross_team", "reassigned"):
                continue
            h0 = 0 if r.created_hour is None else r.created_hour + 1
            if r.kind == "reassigned":
                by_repo[r.prev_repo].append((r, h0, r.switch_hour or 0))
                by_repo[r.repo].append((r, max(h0, r.switch_hour or 0), H))
            else:
                by_repo[r.repo].append((r, h0, H))
        for t in self.teams:
            for repo in t.repos:
                items = by_repo.get(repo, [])
                if not items:
                    continue
                lam = min(20.0, 0.5 + len(items) / 30)
                for day in range(self.p.days):
                    date = start + timedelta(days=day)
                    if date.weekday() >= 5 and rnd.random() > 0.1:
                        continue
                    for _ in range(_poisson(rnd, lam)):
                        local = rnd.uniform(9.5, 18.0)
                        h = int(day * 24 + local - TIMEZONES[t.tz] - start.hour)
                        if not 0 <= h < H:
                            continue
                        alive = [it for it in items if it[1] <= h < it[2]]
                        if not alive:
                            continue
                        chosen = rnd.sample(alive, min(len(alive), rnd.randint(1, 5)))
                        sec = rnd.randrange(3600)
                        if rnd.random() < 0.85:
                            actor = t.ci_role
                            pid = self.ci_pid(t.name, cfn=False)
                        else:
                            actor = rnd.choice(t.people)
                            pid = -1
                        for k, (r, _, _) in enumerate(chosen):
                            p = pid if pid >= 0 else self.person_principal(actor, r.account)
                            self.schedule(h, min(3599, sec + 30 + 7 * k), r, p, "deploy")
                        self.deploys.append(DeployRec(epoch + h * 3600 + sec, repo, _hex(rnd, 7), actor,
                                                      _pipeline(repo), [r.idx for r, _, _ in chosen]))  # fmt: skip
        self.deploys.sort(key=lambda d: (d.time, d.repo, d.commit))

    def build_flows(self) -> None:
        """Resources that talk: a team's services among themselves, consumers to shared services."""
        rnd, H = self.rnd, self.hours
        peers: dict[tuple[str, str, str], list[Resource]] = defaultdict(list)
        for r in self.resources:
            if r.enis and r.kind in ("clean", "shared_service", "cross_team"):
                peers[(r.team, r.account, r.region)].append(r)

        def pick(team: str, r: Resource, k: int) -> list[Resource]:
            cands = [c for c in peers.get((team, r.account, r.region), []) if c.idx != r.idx]
            if not cands:  # across accounts (peering / transit gateway) within the region
                cands = [c for (tm, _, rg), lst in peers.items() if tm == team and rg == r.region for c in lst
                         if c.idx != r.idx]  # fmt: skip
            return rnd.sample(cands, min(k, len(cands))) if cands else []

        def pair(a: Resource, b: Resource, rate: float, h0: int, h1: int) -> None:
            src, dst = a, b
            if dst.rtype == "lambda" or (src.rtype not in _CLIENT_TYPES and dst.rtype in _CLIENT_TYPES):
                src, dst = dst, src
            if dst.rtype == "lambda" or src.rtype not in _CLIENT_TYPES | {"alb"} or h1 <= h0:
                return
            pl = self.plan
            pl.f_src.append(src.idx)
            pl.f_dst.append(dst.idx)
            pl.f_rate.append(rate)
            pl.f_h0.append(h0)
            pl.f_h1.append(h1)

        for r in self.resources:
            if not r.enis or r.kind in UNOWNED_KINDS:
                continue
            h0 = 0 if r.created_hour is None else r.created_hour + 1
            rate = min(24.0, max(1.0, 6.0 * math.sqrt(max(r.activity, 0.05))))
            if r.kind in ("clean", "shared_service", "cross_team", "sso_only"):
                for q in pick(r.team, r, min(3, 1 + _poisson(rnd, 0.7))):
                    pair(r, q, rate * rnd.uniform(0.5, 1.5), h0, H)
            if r.kind == "shared_service":
                for c in r.others:
                    for q in pick(c, r, rnd.randint(1, 3)):
                        pair(q, r, rate * rnd.uniform(0.8, 1.6), h0, H)
            elif r.kind == "cross_team":
                for q in pick(r.others[0], r, rnd.randint(1, 3)):
                    pair(q, r, rate * rnd.uniform(0.8, 1.4), h0, H)
            elif r.kind == "reassigned":
                s = r.switch_hour or 0
                for q in pick(r.prev_team or r.team, r, rnd.randint(1, 2)):
                    pair(r, q, rate, h0, s)
                for q in pick(r.team, r, rnd.randint(1, 2)):
                    pair(r, q, rate, max(h0, s), H)
            elif r.kind == "sparse" and rnd.random() < 0.5:
                for q in pick(r.team, r, 1):
                    pair(r, q, 0.3, h0, H)

    # ---- planted cost spikes (the watch's ground truth)

    def plant_spikes(self) -> None:
        """Spikes (after the owner's deploy, or with no cause), rhythms and expensive cold-start launches.

        Uses its own RNG and runs after everything else, so the rest of the organisation (and the
        ownership quality measured on it) is the same as without them. Targets are clean resources
        whose cost is a flat-ish base (EC2 not stopped at night, RDS, ECS): a multiple of their level
        is a material jump, and their owner is known.
        """
        p, H, epoch = self.p, self.hours, self.p.epoch
        if H < 48 or not self.teams:
            return
        rnd = random.Random(p.seed * 1_000_003 + 0x5B1E)
        n = len(self.resources)
        lo = 96 if H >= 144 else int(H * 0.4)  # spikes need history before them (the detector's warm-up)
        hi = H - 4

        def level(r: Resource) -> float:
            return float(r.attrs["price"]) if "price" in r.attrs else 0.27  # ECS: base 0.04-0.5 $/h

        # (not on a copy-pasted wrong tag: the benchmark measures the watch, not the tag hygiene)
        cands = [r for r in self.resources if r.kind == "clean" and r.rtype in SPIKE_TYPES and r.schedule != "office"
                 and level(r) >= 0.09 and (r.created_hour is None or r.created_hour + 72 <= lo)
                 and r.tag_correct is not False]  # fmt: skip
        rnd.shuffle(cands)
        want = [("deploy", max(2, round(n / 100))), ("nocause", max(1, round(n / 200))),
                ("nightly", max(1, round(n / 300))), ("weekly", max(1, round(n / 400)))]  # fmt: skip
        picked: dict[str, list[Resource]] = {}
        k = 0
        for kind, count in want:
            picked[kind] = cands[k:k + count]
            k += count
        used = {r.idx for rs in picked.values() for r in rs}
        res_deploys: dict[int, list[int]] = defaultdict(list)
        repo_team = {repo: t.name for t in self.teams for repo in t.repos}
        team_deploys: dict[str, list[int]] = defaultdict(list)
        for d in self.deploys:
            for i in d.resources:
                res_deploys[i].append(d.time)
            team_deploys[repo_team.get(d.repo, "")].append(d.time)
        commits = {d.commit for d in self.deploys}

        def busy(times: list[int], a: int, b: int) -> bool:
            return any(a <= x < b for x in times)

        def commit() -> str:
            while True:
                c = _hex(rnd, 7)
                if c not in commits:
                    commits.add(c)
                    return c

        def window(s: int) -> tuple[int, float]:
            if rnd.random() < 0.25:  # a level shift that stays
                return H, rnd.uniform(3.0, 6.0)
            return min(H, s + rnd.randint(3, 24)), rnd.uniform(3.0, 15.0)

        def deploy(r: Resource, actor: str, pid: int, t: int, c: str) -> None:
            h, sec = divmod(t - epoch, 3600)
            self.schedule(h, min(3599, sec + 30), r, pid, "deploy")
            self.deploys.append(DeployRec(t, r.repo, c, actor, _pipeline(r.repo), [r.idx]))
            res_deploys[r.idx].append(t)
            team_deploys[r.team].append(t)

        def office_hour(team: Team, a: int, b: int) -> int | None:
            """An hour in [a, b] that is a weekday office hour of the team (None after many tries)."""
            for _ in range(80):
                day = rnd.randrange(max(1, H // 24))
                if (p.start + timedelta(days=day)).weekday() >= 5:
                    continue
                h = int(day * 24 + rnd.uniform(9.5, 17.0) - TIMEZONES[team.tz] - p.start.hour)
                if a <= h <= b:
                    return h
            return None

        for r in picked["deploy"]:
            t = self.by_name[r.team]
            for _ in range(60):
                hd = office_hour(t, lo - 3, hi - 1)
                if hd is None:
                    break
                s = hd + rnd.choice((1, 1, 2, 2, 3))  # the jump starts 0-3 h after the deploy
                if not lo <= s <= hi:
                    continue
                e, ratio = window(s)
                td = epoch + hd * 3600 + rnd.randrange(3600)
                if not busy(res_deploys[r.idx], td - 24 * 3600, epoch + e * 3600):
                    break
            else:
                continue
            if hd is None:
                continue
            if rnd.random() < 0.85:
                actor, pid = t.ci_role, self.ci_pid(t.name, cfn=False)
            else:
                actor = rnd.choice(t.people)
                pid = self.person_principal(actor, r.account)
            c = commit()
            deploy(r, actor, pid, td, c)
            self.spikes.append(PlantedSpike("deploy", r.idx, s, e, ratio, r.team, c, r.repo, actor))

        clean_by_team: dict[str, list[Resource]] = defaultdict(list)
        for r in self.resources:
            if r.kind == "clean" and r.idx not in used and r.repo:
                clean_by_team[r.team].append(r)
        for r in picked["nocause"]:
            for _ in range(60):
                s = rnd.randint(lo, hi)
                e, ratio = window(s)
                a = epoch + s * 3600
                if not busy(res_deploys[r.idx], a - 24 * 3600, epoch + e * 3600) and not busy(
                    team_deploys[r.team], a - 6 * 3600, a + 3600
                ):
                    break
            else:
                continue
            # Unrelated deploys just before it: other teams, other resources (a naive explainer blames them).
            others = [t for t in self.teams if t.name != r.team and clean_by_team.get(t.name)]
            for _ in range(rnd.randint(1, 2) if others else 0):
                t2 = rnd.choice(others)
                alive = [q for q in clean_by_team[t2.name] if q.created_hour is None or q.created_hour < s - 4]
                if not alive:
                    continue
                q = rnd.choice(alive)
                deploy(q, t2.ci_role, self.ci_pid(t2.name, cfn=False), a - rnd.randrange(600, 3 * 3600), commit())
            self.spikes.append(PlantedSpike("nocause", r.idx, s, e, ratio, r.team))

        # Nightly batch 01:00-03:59 UTC; a weekly job 06:00-11:59 UTC on the window's first weekday (a
        # Saturday when the window starts on one), so that both are in the data from the first day and a
        # weekly baseline has seen one occurrence before it judges the next.
        hod = (p.start.hour + np.arange(H)) % 24
        dow = (p.start.weekday() + (p.start.hour + np.arange(H)) // 24) % 7
        for kind, mask, (f0, f1) in (("nightly", (hod >= 1) & (hod <= 3), (5.0, 10.0)),
                                     ("weekly", (dow == p.start.weekday()) & (hod >= 6) & (hod < 12), (5.0, 5.0))):  # fmt: skip
            edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
            wins = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
            for r in picked[kind]:
                if wins:
                    self.rhythms.append(Rhythm(r.idx, kind, round(rnd.uniform(f0, f1), 2), wins))

        # Cold starts: an engineer launches an expensive instance through the shared SSO role. Untagged,
        # no other evidence than the RunInstances call: its owner is the team of the person behind it.
        # It takes the place of a sparse resource (created in the window, next to no calls), so the
        # organisation keeps its size and its mix of kinds.
        sparse = [r for r in self.resources if r.kind == "sparse" and r.team != UNOWNED]
        rnd.shuffle(sparse)
        pl, create = self.plan, CAT["create"]
        by_hand: dict[int, tuple[int, int, str]] = {}  # sparse resource -> (hour, second, person) of its launch
        for k, i in enumerate(pl.c_res):
            pr = self.principals[pl.c_pid[k]]
            if pl.c_cat[k] == create and pr.kind == "sso_power" and pr.person:
                by_hand[i] = (pl.c_hour[k], pl.c_sec[k], pr.person)
        # The least to change first: a sparse instance someone already launched by hand (same person, same
        # hour, now an expensive type), then any sparse instance, then any sparse resource.
        sparse.sort(key=lambda r: (r.rtype != "ec2" or r.idx not in by_hand or by_hand[r.idx][0] < 24,
                                   r.rtype != "ec2"))  # fmt: skip
        launches = []
        for r in sparse[: max(1, round(n / 500))]:
            hand = by_hand.get(r.idx)
            if r.rtype == "ec2" and hand and hand[0] >= 24:
                launches.append((r, hand[0], hand[1], hand[2]))
                continue
            h = office_hour(self.by_name[r.team], max(lo, H // 2), H - 6)
            if h is not None:
                people = sorted(self.by_name[r.team].people)
                email = rnd.choices(people, weights=[self.person_weight[x] for x in people])[0]
                launches.append((r, h, rnd.randrange(3600), email))
        self.forget({r.idx for r, *_ in launches})
        for r, h, sec, email in launches:
            t = self.by_name[r.team]
            itype, price = rnd.choice(COLDSTART_TYPES)
            r.created_hour, r.activity, r.home = h, 0.0, t.name
            r.schedule, r.parent = "flat", None
            r.tags, r.prev_tags, r.tag_key, r.tag_value, r.tag_correct = {}, None, "", "", None
            if r.rtype == "ec2":  # keep the instance (id, network), make it a big one
                r.attrs.update(itype=itype, price=str(price))
            else:
                r.rtype, r.account, r.region, r.enis = "ec2", t.account, HOME_REGION, []
                r.name = self.uid("i-")
                r.attrs = {"Name": self.unique_name(f"{rnd.choice(t.words)}-{rnd.choice(_COLD_NOUNS)}"),
                           "itype": itype, "price": str(price), "image": self.uid("ami-")}  # fmt: skip
                r.arn = build_arn("ec2:instance", r.name, r.region, r.account)
                vpc = self.vpc_for(t.name, r.region)
                sub = rnd.choice(vpc.subnets)
                r.vpc_id, r.subnet_id, r.az = vpc.vpc_id, sub.subnet_id, sub.az
                self.add_eni(r, sub, self.sg_for(vpc, t.name), "interface", "", instance=r.name)
            self.schedule(h, sec, r, self.person_principal(email, r.account), "create")
            self.spikes.append(PlantedSpike("coldstart", r.idx, h, H, 0.0, t.name, actor=email))
        self.spikes.sort(key=lambda x: (x.h0, x.res))
        self.deploys.sort(key=lambda d: (d.time, d.repo, d.commit))

    def forget(self, gone: set[int]) -> None:
        """Drop every planned call, flow, deploy and policy mention of the resources ``gone`` (to reuse them)."""
        if not gone:
            return
        pl = self.plan
        for cols, keep in (
            (("c_hour", "c_sec", "c_res", "c_pid", "c_cat"), [k for k, x in enumerate(pl.c_res) if x not in gone]),
            (("f_src", "f_dst", "f_rate", "f_h0", "f_h1"),
             [k for k, (a, b) in enumerate(zip(pl.f_src, pl.f_dst, strict=True)) if a not in gone and b not in gone]),
            (("s_res", "s_group", "s_cat", "s_rate", "s_h0", "s_h1", "s_shape", "s_err"),
             [k for k, x in enumerate(pl.s_res) if x not in gone]),
        ):  # fmt: skip
            for name in cols:
                col = getattr(pl, name)
                setattr(pl, name, [col[k] for k in keep])
        for d in self.deploys:
            d.resources[:] = [i for i in d.resources if i not in gone]
        self.deploys = [d for d in self.deploys if d.resources]
        for rd in self.roles.values():
            rd.resources -= gone

    def build(self) -> Org:
        self.build_teams()
        self.build_resources()
        self.assign_sessions()
        self.build_streams()
        self.build_scheduled()
        self.build_flows()
        # Noise roles are named in every account's IAM even where they never call anything.
        for acct in sorted({t.account for t in self.teams}):
            for kind in ("custodian", "backup", "scanner", "config"):
                self.noise_group(kind, acct)
        # Last, so that everything above is the same with or without planted spikes.
        self.plant_spikes()
        org = Org(self.p, self.teams, self.roles, self.principals, self.groups, self.resources, self.vpcs,
                  self.plan, self.deploys, sorted({t.account for t in self.teams}), self.sso, self.people_team,
                  self.by_name, self.spikes, self.rhythms)  # fmt: skip
        return org


_PRINCIPAL_IPS = {
    "custodian": "34.229.18.77",
    "backup": "backup.amazonaws.com",
    "scanner": "54.86.112.40",
    "config": "config.amazonaws.com",
    "vendor": "3.233.147.21",
}


def _vpc_base(n: int) -> int:
    """Address of the n-th VPC's /16: 10.0-255, then 172.16-31, then 100.64-127."""
    if n < 256:
        return (10 << 24) + (n << 16)
    n -= 256
    if n < 16:
        return (172 << 24) + ((16 + n) << 16)
    n -= 16
    return (100 << 24) + ((64 + n % 64) << 16)


def _uuid(rnd: random.Random) -> str:
    h = _hex(rnd, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pipeline(repo: str) -> str:
    return f"github-actions:{GITHUB_ORG}/{repo}/deploy.yml"


def _poisson(rnd: random.Random, lam: float) -> int:
    """Knuth's Poisson sampler: small lambdas only, from the builder's own RNG (keeps order stable)."""
    if lam > 30:
        return max(0, int(round(rnd.gauss(lam, math.sqrt(lam)))))
    limit, k, prod = math.exp(-lam), 0, rnd.random()
    while prod > limit:
        k += 1
        prod *= rnd.random()
    return k


def build_org(params: OrgParams) -> Org:
    """The whole organisation and its behaviour plan for ``params`` (pure: same params, same org)."""
    start = params.start
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if start != params.start:
        params = OrgParams(params.seed, params.teams, params.resources_per_team, params.days,
                           params.events_per_resource_day, start, params.tagged_fraction)  # fmt: skip
    return _Builder(params).build()

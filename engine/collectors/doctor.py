"""``costdna doctor``: try every call the collectors and the tag writer make, and say what to fix.

``await doctor(account, settings)`` returns a :class:`DoctorReport`: one :class:`Check` per call (and
per region where the call is regional), each ``ok``, ``denied`` (with the exact IAM action to add),
``error`` (the message), ``warn`` (the call works but something needs a look: stale exports, an owner
tag key not activated for billing) or ``skipped`` (not configured, or nothing to try it on). A check is
*needed* when a scan cannot work without it; :attr:`DoctorReport.ok` is true when no needed check is
denied or failed.

What is checked, in this order:

- the credentials: ``sts:GetCallerIdentity`` with the base credentials, then ``sts:AssumeRole`` with the
  account's ExternalId when the account has a role, and the assumed identity (its account id);
- ``ec2:DescribeRegions`` (are the configured regions enabled?), ``iam:GetAccountAuthorizationDetails``;
- each configured S3 source (``options.cloudtrail`` / ``cur`` / ``flowlogs``, ``s3://bucket/prefix``):
  ``s3:GetBucketLocation``, ``s3:ListBucket`` (walking the prefix's folders to its newest key: found?
  how many looked at, the newest key and its age) and ``s3:GetObject`` (one byte of the newest key);
- without a CloudTrail bucket: ``cloudtrail:DescribeTrails`` (to suggest the trail's bucket) and, per
  region, ``cloudtrail:LookupEvents`` (the newest management event's age);
- per region: ``tag:GetResources``, ``ec2:DescribeNetworkInterfaces``;
- ``ce:ListCostAllocationTags``: is each owner tag key (``settings.tag_key``, ``COSTDNA_OWNER_KEY``)
  activated as a cost allocation tag? (CUR 2.0 carries only activated keys);
- the tag writer (optional: only ``apply`` needs it), checked WITHOUT writing anything: first by IAM
  policy simulation (``iam:SimulatePrincipalPolicy`` on the role for tag:TagResources / UntagResources
  and each service's own tagging actions: exact, and per service); when simulation is not allowed or not
  available, by a ``tag:TagResources`` probe per region on an EC2 instance ARN that cannot exist
  (``i-00000000000000000``): an ``AccessDeniedException`` means the action is missing; a per-resource
  failure (not found) means it is allowed. Nothing can be written to a resource that does not exist.

How a denial is recognised: a ``ClientError`` whose code is ``AccessDenied``, ``AccessDeniedException``,
``UnauthorizedOperation`` (and the other codes in :data:`engine.collectors.aws_session.DENIED_CODES`), or
any HTTP 403 that is not a credentials error (``InvalidClientTokenId``, ``ExpiredToken``…). The action
named is the one AWS's message names ("not authorized to perform: tag:GetResources") when it names one
of the same service, else the IAM action the check calls (S3 says only "Access Denied": a ListObjectsV2
call needs ``s3:ListBucket``).

No check changes anything in the account. Credentials are never logged or reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlparse

from engine.collectors.aws_session import (
    CREDENTIAL_CODES,
    DENIED_CODES,
    AwsSession,
    CollectError,
    default_region,
    error_code,
    session_for,
)

log = logging.getLogger(__name__)

OK, DENIED, ERROR, WARN, SKIPPED = "ok", "denied", "error", "warn", "skipped"
FAILING = frozenset({DENIED, ERROR})
GLOBAL = "global"

READONLY_POLICY = "manifests/aws/readonly-policy.json"
TAG_WRITE_POLICY = "manifests/aws/tag-write-policy.json"
ROLE_TEMPLATE = "manifests/aws/costdna-role.yaml"
ROLE_TEMPLATE_URL_ENV = "COSTDNA_ROLE_TEMPLATE_URL"
QUICK_CREATE = "https://console.aws.amazon.com/cloudformation/home#/stacks/quickcreate"

# Every IAM action a check tries (tests keep the manifests in step with these).
READ_ACTIONS = (
    "sts:GetCallerIdentity", "ec2:DescribeRegions", "iam:GetAccountAuthorizationDetails",
    "s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject", "cloudtrail:DescribeTrails",
    "cloudtrail:LookupEvents", "tag:GetResources", "ec2:DescribeNetworkInterfaces",
    "ce:ListCostAllocationTags", "iam:SimulatePrincipalPolicy",
)
# The tagging API's own actions, then each service's tagging actions it calls on the role's behalf.
TAG_API_ACTIONS = ("tag:GetResources", "tag:TagResources", "tag:UntagResources")
SERVICE_TAG_ACTIONS = (
    "ec2:CreateTags", "ec2:DeleteTags", "rds:AddTagsToResource", "rds:RemoveTagsFromResource",
    "lambda:TagResource", "lambda:UntagResource", "s3:GetBucketTagging", "s3:PutBucketTagging",
    "dynamodb:TagResource", "dynamodb:UntagResource", "ecs:TagResource", "ecs:UntagResource",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
)
TAG_WRITE_ACTIONS = TAG_API_ACTIONS + SERVICE_TAG_ACTIONS
ASSUME_ACTION = "sts:AssumeRole"  # the caller's side (and the role's trust policy), not the role's policy

SOURCES = ("cloudtrail", "cur", "flowlogs")
SOURCE_NAMES = {"cloudtrail": "CloudTrail logs", "cur": "CUR 2.0 / FOCUS export", "flowlogs": "VPC flow logs"}
# How old the newest object may be before the source looks stalled (trails deliver every ~5 minutes,
# flow logs every 10, a data export up to three times a day).
STALE_AFTER_S = {"cloudtrail": 24 * 3600.0, "flowlogs": 24 * 3600.0, "cur": 2 * 24 * 3600.0}
LOOKUP_STALE_AFTER_S = 24 * 3600.0
LIST_CALL_BUDGET = 60  # ListObjectsV2 calls one source's walk may make
PROBE_INSTANCE = "i-00000000000000000"  # an instance id EC2 never hands out: the tag-write probe's target
PROBE_TAG = {"costdna-doctor-probe": "not-written"}
DEFAULT_TIMEOUT_S = 60.0
CONCURRENCY = 8  # calls in flight at once

ClientFactory = Callable[[str, str], Any]  # (service, region) -> async context manager yielding a client

_AUTH_ACTION = re.compile(r"not authorized to perform:?\s+([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
_XML_FIELD = re.compile(r"<(Code|Message)>(.*?)</\1>", re.S)
_ORDERED = re.compile(r"^(\d+|[A-Za-z_]+=[0-9T:-]+|\d{8}-\d{8})$")  # 2026, 11, BILLING_PERIOD=2026-11, ...


@dataclass
class Check:
    """One call tried (or not) and what came of it."""

    check: str  # what was tried, e.g. "tag:GetResources", "s3:ListBucket cloudtrail"
    what: str  # in words: "list tagged resources"
    region: str  # a region, or "global"
    status: str  # ok | denied | error | warn | skipped
    detail: str = ""  # what was found, or the error
    action: str = ""  # the IAM action the call needs
    fix: str = ""  # what to do about it ("" when nothing)
    needed: bool = True  # a scan cannot work without it
    facts: dict[str, Any] = field(default_factory=dict)  # newest_key, newest_at, age_s, count, ...

    @property
    def failing(self) -> bool:
        return self.status in FAILING


@dataclass
class DoctorReport:
    account: str
    regions: list[str]
    checks: list[Check]
    identity: str | None = None  # the ARN the calls ran as (the assumed role's session when there is one)
    account_id: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """No needed check denied or failed (warnings and optional checks do not count)."""
        return not any(c.needed and c.failing for c in self.checks)

    @property
    def denied_actions(self) -> list[str]:
        return sorted({c.action for c in self.checks if c.status == DENIED and c.action})

    def missing_actions(self, needed: bool) -> list[str]:
        """The denied IAM actions a scan needs (``needed=True``), or those only optional checks need."""
        need = {c.action for c in self.checks if c.status == DENIED and c.action and c.needed}
        if needed:
            return sorted(need)
        return sorted({c.action for c in self.checks if c.status == DENIED and c.action} - need)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.failing or c.status == WARN]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "account_id": self.account_id, "identity": self.identity,
            "regions": self.regions, "ok": self.ok, "denied_actions": self.denied_actions,
            "missing_needed_actions": self.missing_actions(True),
            "missing_optional_actions": self.missing_actions(False),
            "counts": self.counts(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "checks": [_jsonable(asdict(c)) for c in self.checks],
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    return v


# -- onboarding helpers (pure: the chat card and the CLI use them) ---------------------------------


def new_external_id() -> str:
    """A fresh ExternalId: 32 hex characters (the template accepts 2 to 1224 of [A-Za-z0-9+=,.@:/_-])."""
    return secrets.token_hex(16)


def quick_create_url(external_id: str, template_url: str, *, stack_name: str = "costdna",
                     trusted_principal: str | None = None, allow_tag_writes: bool = False) -> str:
    """The CloudFormation console's quick-create link for ``manifests/aws/costdna-role.yaml`` (hosted at
    ``template_url``: CloudFormation reads templates from S3 URLs) with the parameters filled in."""
    params = [("templateURL", template_url), ("stackName", stack_name), ("param_ExternalId", external_id)]
    if trusted_principal:
        params.append(("param_TrustedPrincipal", trusted_principal))
    if allow_tag_writes:
        params.append(("param_AllowTagWrites", "true"))
    return QUICK_CREATE + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``; ``ValueError`` for anything else."""
    u = urlparse(uri or "")
    if u.scheme != "s3" or not u.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix URI")
    return u.netloc, u.path.lstrip("/")


def account_regions(account: Any) -> list[str]:
    """The configured regions (else the default region: doctor then reads the enabled ones, as the
    collectors do)."""
    return list(dict.fromkeys(r for r in (getattr(account, "regions", None) or []) if r)) or [default_region()]


def lookup_enabled(options: dict[str, Any]) -> bool:
    """LookupEvents is the CloudTrail source when no trail bucket is given (``options.lookup_events``)."""
    value = options.get("lookup_events")
    return bool(value) if value is not None else not options.get("cloudtrail")


def owner_keys(settings: Any) -> list[str]:
    from engine.tagrules import owner_keys_from_env

    keys = [getattr(settings, "tag_key", None) or "team", *owner_keys_from_env()]
    return list(dict.fromkeys(k for k in keys if k))


# -- classifying failures ---------------------------------------------------------------------------


def _readable(message: str) -> tuple[str | None, str]:
    """(code, message) out of an XML error body some emulators put in a JSON protocol's message."""
    if "<Message>" not in message:
        return None, message
    parts = dict(_XML_FIELD.findall(message))
    return parts.get("Code"), " ".join(parts.get("Message", message).split())


def classify(e: BaseException, action: str) -> tuple[str, str, str]:
    """``(status, detail, action)`` for an exception a call raised: denied (and the IAM action) or error."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(e, CollectError):
        return (DENIED if e.denied else ERROR), str(e), (e.action or action)
    if isinstance(e, ClientError):
        code, message = error_code(e)
        inner_code, message = _readable(message)
        if inner_code and code.isdigit():
            code = inner_code
        status = (e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") if isinstance(e.response, dict) \
            else None
        named = _AUTH_ACTION.search(message)
        if message:
            detail = f"{code}: {' '.join(message.split())}"
        else:  # an HTTP status with no AWS error body (a proxy, an emulator's unimplemented call)
            detail = f"HTTP {status or code} from {e.operation_name}, no error message" if code.isdigit() else code
        if code in DENIED_CODES or (status == 403 and code not in CREDENTIAL_CODES):
            # AWS's own words win when they name an action of the same service (s3:ListBucket for a
            # ListObjectsV2 call); an emulator's invented prefix ("tagging:") does not.
            exact = named.group(1) if named and named.group(1).split(":")[0] == action.split(":")[0] else action
            return DENIED, detail, exact
        if code in CREDENTIAL_CODES:
            return ERROR, f"the credentials were refused ({detail})", action
        return ERROR, detail, action
    if isinstance(e, NoCredentialsError):
        return ERROR, ("no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), "
                       "or run where an instance or task role is available"), action
    if isinstance(e, BotoCoreError):
        return ERROR, str(e), action
    if isinstance(e, asyncio.TimeoutError | TimeoutError):
        return ERROR, "timed out", action
    return ERROR, f"{type(e).__name__}: {e}", action


def _deny_fix(action: str, policy: str = READONLY_POLICY) -> str:
    return f"add {action} to the role's policy ({policy})"


def _age(at: datetime, now: datetime) -> float:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return max(0.0, (now - at).total_seconds())


def human_age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# -- the run ----------------------------------------------------------------------------------------


class _Doctor:
    def __init__(self, account: Any, settings: Any, factory: ClientFactory, regions: list[str],
                 now: datetime, timeout_s: float):
        self.account, self.settings, self.factory = account, settings, factory
        self.regions, self.now, self.timeout_s = regions, now, timeout_s
        self.options: dict[str, Any] = dict(getattr(account, "options", None) or {})
        self.home = regions[0]
        self.account_id: str | None = None  # from sts:GetCallerIdentity, for the tag-write probe's ARN
        self.limit = asyncio.Semaphore(CONCURRENCY)

    async def call(self, service: str, region: str, op: str, **kwargs: Any) -> Any:
        async with self.limit, self.factory(service, region) as client:
            return await asyncio.wait_for(getattr(client, op)(**kwargs), self.timeout_s)

    async def attempt(self, check: Check, fn: Callable[[], Awaitable[Any]]) -> tuple[Check, Any]:
        """Run ``fn``; on failure fill ``check`` with denied/error (and its fix). Returns (check, result)."""
        try:
            return check, await fn()
        except Exception as e:  # every failure becomes the check's verdict, never the doctor's crash
            status, detail, action = classify(e, check.action)
            detail = " ".join(detail.split())
            check.status, check.detail = status, detail if len(detail) <= 300 else detail[:299] + "…"
            if status == DENIED:
                check.action = action
                check.fix = check.fix or _deny_fix(action)
            log.info("doctor %s %s in %s: %s", getattr(self.account, "name", "?"), check.check, check.region, status)
            return check, None

    # -- global checks ------------------------------------------------------------------------

    async def regions_check(self, configured: bool) -> list[Check]:
        """Without configured regions the collectors read every enabled one: then this call is needed,
        and the regions it lists are the ones checked."""
        c = Check("ec2:DescribeRegions", "regions enabled in the account", GLOBAL, OK,
                  action="ec2:DescribeRegions", needed=not configured)
        c, r = await self.attempt(c, lambda: self.call("ec2", self.home, "describe_regions"))
        if r is None:
            return [c]
        enabled = sorted(x["RegionName"] for x in r.get("Regions", []) if x.get("RegionName"))
        if not configured and enabled:
            self.regions = enabled
        missing = [x for x in self.regions if enabled and x not in enabled]
        c.facts["enabled"] = enabled
        if missing:
            c.status = WARN
            c.detail = f"{', '.join(missing)} not enabled in this account (enabled: {len(enabled)} regions)"
            c.fix = "fix the account's regions (`costdna accounts add … --regions r1,r2`)"
        else:
            c.detail = f"{len(enabled)} regions enabled; reading {', '.join(self.regions)}"
        return [c]

    async def iam_check(self) -> list[Check]:
        c = Check("iam:GetAccountAuthorizationDetails", "read IAM roles, users and policies", GLOBAL, OK,
                  action="iam:GetAccountAuthorizationDetails")
        c, r = await self.attempt(c, lambda: self.call("iam", self.home, "get_account_authorization_details",
                                                       MaxItems=100))
        if r is not None:
            n = sum(len(r.get(k) or []) for k in ("RoleDetailList", "UserDetailList", "GroupDetailList"))
            c.detail = f"{n}{'+' if r.get('IsTruncated') else ''} roles, users and groups readable"
        return [c]

    async def source_checks(self, kind: str) -> list[Check]:
        uri = self.options.get(kind)
        label = SOURCE_NAMES[kind]
        if not uri:
            return [Check(f"s3 {kind}", f"{label} in S3", GLOBAL, SKIPPED, detail="not configured",
                          fix=f"`costdna accounts add … --{kind} s3://bucket/prefix` to read them" +
                              (" (LookupEvents is used meanwhile)" if kind == "cloudtrail" else ""),
                          needed=False)]
        try:
            bucket, prefix = parse_s3_uri(str(uri))
        except ValueError as e:
            return [Check(f"s3 {kind}", f"{label} in S3", GLOBAL, ERROR, detail=str(e),
                          fix=f"give --{kind} as s3://bucket/prefix")]
        where = f"s3://{bucket}/{prefix}"
        loc = Check("s3:GetBucketLocation", f"{label}: the bucket's region", GLOBAL, OK,
                    action="s3:GetBucketLocation", needed=False)
        loc, r = await self.attempt(loc, lambda: self.call("s3", self.home, "get_bucket_location", Bucket=bucket))
        region = self.home
        if r is not None:
            constraint = r.get("LocationConstraint")
            region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)
            loc.detail = f"{bucket} is in {region}"
        listing = Check("s3:ListBucket", f"{label}: list {where}", region, OK, action="s3:ListBucket",
                        facts={"source": kind, "uri": where})
        listing, found = await self.attempt(listing, lambda: self._newest(bucket, prefix, region))
        out = [loc, listing]
        get = Check("s3:GetObject", f"{label}: read the newest object", region, SKIPPED, action="s3:GetObject",
                    facts={"source": kind})
        if found is None:
            get.detail = "nothing to read"
            out.append(get)
            return out
        newest, count, complete = found
        listing.facts.update(count=count, complete=complete)
        if newest is None:
            listing.status = ERROR
            listing.detail = f"no objects under {where}"
            listing.fix = (f"check the prefix: {label} should be under it"
                           + (" (AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/)" if kind == "cloudtrail" else ""))
            get.detail = "no object to read"
            out.append(get)
            return out
        key, at = newest["Key"], newest["LastModified"]
        age = _age(at, self.now)
        listing.facts.update(newest_key=key, newest_at=at, age_s=round(age, 1))
        listing.detail = (f"{'' if complete else 'looked at '}{count} objects; newest {key} "
                          f"({human_age(age)} old)")
        if age > STALE_AFTER_S[kind]:
            listing.status = WARN
            listing.fix = (f"the newest {label} object is {human_age(age)} old: is the "
                           f"{'trail' if kind == 'cloudtrail' else 'export' if kind == 'cur' else 'flow log'} "
                           "still delivering here?")
        get.status = OK
        get, body = await self.attempt(get, lambda: self.call("s3", region, "get_object", Bucket=bucket, Key=key,
                                                              Range="bytes=0-0"))
        if body is not None:
            with contextlib.suppress(Exception):
                body["Body"].close()
            get.detail = f"read {key}"
        out.append(get)
        return out

    async def _newest(self, bucket: str, prefix: str, region: str) -> tuple[dict | None, int, bool]:
        """(the newest object seen, objects seen, whether every object was seen) walking the prefix's
        folders: date-like folders (``2026``, ``11``, ``BILLING_PERIOD=2026-11``) only into the greatest,
        the others (accounts, regions, export names) all of them."""
        best: dict | None = None
        count, calls, complete = 0, 0, True
        todo = [prefix]
        async with self.limit, self.factory("s3", region) as s3:
            while todo:
                if calls >= LIST_CALL_BUDGET:
                    complete = False
                    break
                p = todo.pop()
                children: list[str] = []
                token = None
                while True:
                    kw: dict[str, Any] = {"Bucket": bucket, "Prefix": p, "Delimiter": "/", "MaxKeys": 1000}
                    if token:
                        kw["ContinuationToken"] = token
                    r = await asyncio.wait_for(s3.list_objects_v2(**kw), self.timeout_s)
                    calls += 1
                    for o in r.get("Contents") or []:
                        count += 1
                        if best is None or o["LastModified"] > best["LastModified"]:
                            best = o
                    children.extend(c["Prefix"] for c in r.get("CommonPrefixes") or [])
                    token = r.get("NextContinuationToken")
                    if not token or calls >= LIST_CALL_BUDGET:
                        complete = complete and not token
                        break
                segments = {c: c[len(p):].rstrip("/") for c in children}
                if len(children) > 1 and all(_ORDERED.match(s) for s in segments.values()):
                    complete = False
                    children = [max(children, key=lambda c: (len(segments[c]), segments[c]))]
                todo.extend(sorted(children, reverse=True))
        return best, count, complete

    async def trails_check(self) -> list[Check]:
        c = Check("cloudtrail:DescribeTrails", "find the trail's S3 bucket", GLOBAL, OK,
                  action="cloudtrail:DescribeTrails", needed=False)
        c, r = await self.attempt(c, lambda: self.call("cloudtrail", self.home, "describe_trails",
                                                       includeShadowTrails=True))
        if r is None:
            return [c]
        trails = [t for t in r.get("trailList") or [] if t.get("S3BucketName")]
        if not trails:
            c.detail = "no trail delivers to S3: only LookupEvents (management events, 90 days) can be read"
            c.fix = "create a trail (an organisation trail is best) to read data events too"
            return [c]
        best = sorted(trails, key=lambda t: (not t.get("IsOrganizationTrail"), not t.get("IsMultiRegionTrail")))[0]
        uri = f"s3://{best['S3BucketName']}/{best.get('S3KeyPrefix') or ''}".rstrip("/")
        c.facts["trails"] = [t.get("Name") for t in trails]
        c.detail = f"{len(trails)} trail(s) deliver to S3, e.g. {best.get('Name')} -> {uri}"
        c.fix = f"read the trail's files instead of LookupEvents: `--cloudtrail {uri}`"
        c.status = WARN
        return [c]

    async def cost_tags_check(self) -> list[Check]:
        keys = owner_keys(self.settings)
        c = Check("ce:ListCostAllocationTags", "owner tag keys activated for billing", GLOBAL, OK,
                  action="ce:ListCostAllocationTags", needed=False, facts={"keys": keys})

        async def fetch() -> dict[str, str]:
            status: dict[str, str] = {}
            token = None
            async with self.limit, self.factory("ce", "us-east-1") as ce:
                while True:
                    kw: dict[str, Any] = {"TagKeys": keys, "Type": "UserDefined", "MaxResults": 1000}
                    if token:
                        kw["NextToken"] = token
                    r = await asyncio.wait_for(ce.list_cost_allocation_tags(**kw), self.timeout_s)
                    for t in r.get("CostAllocationTags") or []:
                        status[t["TagKey"]] = t.get("Status", "")
                    token = r.get("NextToken")
                    if not token:
                        return status

        c, found = await self.attempt(c, fetch)
        if found is None:
            if c.status == DENIED:
                c.fix = _deny_fix(c.action) + " (optional: only to check the tags' billing status)"
            return [c]
        c.facts["status"] = found
        active = [k for k in keys if found.get(k) == "Active"]
        inactive = [k for k in keys if found.get(k) == "Inactive"]
        unseen = [k for k in keys if k not in found]
        parts = []
        if active:
            parts.append(f"active: {', '.join(active)}")
        if inactive:
            parts.append(f"NOT active: {', '.join(inactive)}")
        if unseen:
            parts.append(f"not seen by billing yet: {', '.join(unseen)}")
        c.detail = "; ".join(parts)
        if inactive or unseen:
            c.status = WARN
            todo = inactive or unseen
            c.fix = (f"activate {', '.join(todo)} in Billing > Cost allocation tags (or `aws ce "
                     f"update-cost-allocation-tags-status --cost-allocation-tags-status "
                     f"TagKey={todo[0]},Status=Active`); CUR 2.0 carries only activated keys, from then on")
            if unseen and not inactive:
                c.fix += "; a key appears there up to 24 h after a resource first carries it"
        return [c]

    # -- per region -------------------------------------------------------------------------------

    async def region_checks(self, region: str, lookup: bool) -> list[Check]:
        out: list[Check] = []
        c = Check("tag:GetResources", "list tagged resources", region, OK, action="tag:GetResources")
        c, r = await self.attempt(c, lambda: self.call("resourcegroupstaggingapi", region, "get_resources",
                                                       ResourcesPerPage=100))
        if r is not None:
            n = len(r.get("ResourceTagMappingList") or [])
            c.detail = f"{n}{'+' if r.get('PaginationToken') else ''} tagged resources"
        out.append(c)
        c = Check("ec2:DescribeNetworkInterfaces", "map flow-log IPs to resources", region, OK,
                  action="ec2:DescribeNetworkInterfaces")
        c, r = await self.attempt(c, lambda: self.call("ec2", region, "describe_network_interfaces", MaxResults=100))
        if r is not None:
            n = len(r.get("NetworkInterfaces") or [])
            c.detail = f"{n}{'+' if r.get('NextToken') else ''} network interfaces"
        out.append(c)
        if lookup:
            c = Check("cloudtrail:LookupEvents", "management events (no trail bucket given)", region, OK,
                      action="cloudtrail:LookupEvents")
            c, r = await self.attempt(c, lambda: self.call("cloudtrail", region, "lookup_events", MaxResults=1))
            if r is not None:
                events = r.get("Events") or []
                if events and isinstance(events[0].get("EventTime"), datetime):
                    age = _age(events[0]["EventTime"], self.now)
                    c.facts.update(newest_at=events[0]["EventTime"], age_s=round(age, 1))
                    c.detail = f"newest event {events[0].get('EventName', '?')} {human_age(age)} ago"
                    if age > LOOKUP_STALE_AFTER_S:
                        c.status = WARN
                        c.fix = "no management event for a day: is this region in use?"
                else:
                    c.detail = "no events in the last 90 days"
            out.append(c)
        return out

    # -- the tag writer ---------------------------------------------------------------------------

    async def tag_write_checks(self, principal: str | None) -> list[Check]:
        why = "only `apply` (writing approved owner tags) needs it: deploy the role with AllowTagWrites=true"
        sim = Check("iam:SimulatePrincipalPolicy", "tag writes (IAM policy simulation, nothing written)", GLOBAL,
                    OK, action="iam:SimulatePrincipalPolicy", needed=False)
        if not principal:
            sim.status, sim.detail = SKIPPED, "the role's ARN is unknown"
            results = None
        else:
            async def simulate() -> dict[str, str]:
                decisions: dict[str, str] = {}
                token = None
                async with self.limit, self.factory("iam", self.home) as iam:
                    while True:
                        kw: dict[str, Any] = {"PolicySourceArn": principal, "ActionNames": list(TAG_WRITE_ACTIONS)}
                        if token:
                            kw["Marker"] = token
                        r = await asyncio.wait_for(iam.simulate_principal_policy(**kw), self.timeout_s)
                        for e in r.get("EvaluationResults") or []:
                            decisions[e["EvalActionName"]] = e.get("EvalDecision", "")
                        token = r.get("Marker") if r.get("IsTruncated") else None
                        if not token:
                            return decisions

            sim, results = await self.attempt(sim, simulate)
        if results is not None:
            core = [a for a in TAG_API_ACTIONS if results.get(a) != "allowed"]
            per_service = [a for a in SERVICE_TAG_ACTIONS if results.get(a) != "allowed"]
            sim.facts["decisions"] = results
            if core:
                sim.status, sim.action = DENIED, core[0]
                sim.detail = f"the role may not {', '.join(core)} (simulated for {principal})"
                sim.fix = f"add {', '.join(core)} ({TAG_WRITE_POLICY}); {why}"
                sim.facts["denied"] = core + per_service
            elif per_service:
                sim.status = WARN
                sim.detail = f"tagging API allowed; these services' tagging actions are not: {', '.join(per_service)}"
                sim.fix = f"add {', '.join(per_service)} ({TAG_WRITE_POLICY}) to tag those resource types"
                sim.facts["denied"] = per_service
            else:
                sim.detail = f"every tagging action allowed (simulated for {principal}; nothing written)"
            return [sim]
        # Simulation unavailable: probe TagResources on an ARN that cannot exist, region by region.
        sim.status = SKIPPED
        sim.needed = False
        sim.detail = f"simulation unavailable ({sim.detail or 'no principal'}): probed instead"
        sim.fix = ""
        probes = await asyncio.gather(*(self._tag_probe(r, why) for r in self.regions))
        return [sim, *probes]

    async def _tag_probe(self, region: str, why: str) -> Check:
        account_id = self.account_id or "000000000000"
        arn = f"arn:aws:ec2:{region}:{account_id}:instance/{PROBE_INSTANCE}"
        c = Check("tag:TagResources", "tag writes (probe on a resource that does not exist)", region, OK,
                  action="tag:TagResources", needed=False, facts={"probe_arn": arn})
        c, r = await self.attempt(c, lambda: self.call("resourcegroupstaggingapi", region, "tag_resources",
                                                       ResourceARNList=[arn], Tags=PROBE_TAG))
        if r is None:
            if c.status == DENIED:
                c.fix = f"add tag:TagResources and tag:UntagResources ({TAG_WRITE_POLICY}); {why}"
            return c
        failed = (r.get("FailedResourcesMap") or {}).get(arn) or {}
        code = failed.get("ErrorCode", "")
        if code in DENIED_CODES or "denied" in code.lower() or "unauthorized" in code.lower():
            c.status, c.action = DENIED, "ec2:CreateTags"
            c.detail = f"tag:TagResources allowed; EC2 refused: {code}: {failed.get('ErrorMessage', '')}"
            c.fix = f"add the services' tagging actions, e.g. ec2:CreateTags ({TAG_WRITE_POLICY})"
        else:
            c.detail = "tag:TagResources allowed (probed on an instance that does not exist: nothing written)"
        return c


@contextlib.asynccontextmanager
async def _session_client(session: AwsSession, service: str, region: str) -> AsyncIterator[Any]:
    async with session.client(service, region) as c:
        yield c


def _doctor_config() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "adaptive", "max_attempts": 3}, connect_timeout=5, read_timeout=20)


async def doctor(account: Any, settings: Any, *, client_factory: ClientFactory | None = None,
                 config: Any = None, now: datetime | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 base_factory: Callable[[str], Any] | None = None) -> DoctorReport:
    """Try every call the collectors and the tag writer need for ``account`` and report each.

    By default the clients come from :func:`engine.collectors.aws_session.session_for` (boto's
    credential chain, the account's role assumed with its ExternalId, ``settings.aws_endpoint_url``).
    ``client_factory(service, region)``, when given, supplies every client instead (an async context
    manager yielding an aiobotocore client) and the role step is left to it. ``config`` is the botocore
    config (default: adaptive retries, 3 attempts, short timeouts); ``now`` the time ages are measured from.
    """
    regions = account_regions(account)
    report = DoctorReport(account=str(getattr(account, "name", "?")), regions=regions, checks=[])
    now = now or datetime.now(UTC)
    config = config or _doctor_config()
    role_arn = getattr(account, "role_arn", None) or None
    checks = report.checks

    if client_factory is None:
        session = await session_for(account, settings, config=config, base_factory=base_factory)
        endpoint = getattr(settings, "aws_endpoint_url", None) or None
        if role_arn:
            base = AwsSession(region=regions[0], endpoint_url=endpoint, config=config, base_factory=base_factory)
            c = Check("sts:GetCallerIdentity", "the credentials costdna runs with", GLOBAL, OK,
                      action="sts:GetCallerIdentity")
            d = _Doctor(account, settings, lambda s, r: _session_client(base, s, r), regions, now, timeout_s)
            c, who = await d.attempt(c, lambda: d.call("sts", regions[0], "get_caller_identity"))
            if who is not None:
                c.detail = f"running as {who.get('Arn')}"
                c.facts["caller"] = who.get("Arn")
            checks.append(c)
            if c.failing:
                return _finish(report, "the base credentials do not work")
            c = Check("sts:AssumeRole", f"assume {role_arn} with the ExternalId", GLOBAL, OK, action=ASSUME_ACTION)
            c, _ = await d.attempt(c, session.session)
            if c.status == DENIED:
                c.fix = (f"the role's trust policy must allow {who.get('Arn') if who else 'the caller'} with "
                         f"sts:ExternalId = the account's ExternalId ({ROLE_TEMPLATE}: TrustedPrincipal, "
                         f"ExternalId), and the caller's own policy must allow sts:AssumeRole on {role_arn}")
            elif c.status == OK:
                c.detail = "assumed" + (" with an ExternalId" if getattr(account, "external_id", None)
                                        else " (no ExternalId set: add one, the template requires it)")
            checks.append(c)
            if c.failing:
                return _finish(report, "the role cannot be assumed")
        factory: ClientFactory = lambda s, r: _session_client(session, s, r)  # noqa: E731
    else:
        factory = client_factory

    d = _Doctor(account, settings, factory, regions, now, timeout_s)
    c = Check("sts:GetCallerIdentity", "the identity that reads the account", GLOBAL, OK,
              action="sts:GetCallerIdentity")
    c, who = await d.attempt(c, lambda: d.call("sts", regions[0], "get_caller_identity"))
    if who is not None:
        report.identity, report.account_id = who.get("Arn"), who.get("Account")
        d.account_id = report.account_id
        c.detail = f"account {report.account_id} as {report.identity}"
    checks.append(c)
    if c.failing:
        return _finish(report, "no usable credentials")

    lookup = lookup_enabled(d.options)
    principal = role_arn or _principal_of(report.identity)
    configured = bool([r for r in (getattr(account, "regions", None) or []) if r])
    checks.extend(await d.regions_check(configured))
    regions = report.regions = list(d.regions)
    parts: list[Awaitable[list[Check]]] = [d.iam_check()]
    parts += [d.source_checks(k) for k in SOURCES]
    if not d.options.get("cloudtrail"):
        parts.append(d.trails_check())
    parts += [d.region_checks(r, lookup) for r in regions]
    parts += [d.cost_tags_check(), d.tag_write_checks(principal)]
    for group in await asyncio.gather(*parts):
        checks.extend(group)
    return _finish(report)


def _principal_of(arn: str | None) -> str | None:
    """The IAM principal an identity's policies belong to: an assumed-role session -> its role (no path)."""
    if not arn:
        return None
    m = re.match(r"^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/", arn)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn if ":iam::" in arn else None


def _finish(report: DoctorReport, stopped: str = "") -> DoctorReport:
    if stopped:
        report.checks.append(Check("(the rest)", "every other check", GLOBAL, SKIPPED, detail=stopped,
                                   fix="fix the credentials first, then run doctor again", needed=False))
    report.finished_at = datetime.now(UTC)
    bad = report.denied_actions
    log.info("doctor %s: %s%s", report.account, "ok" if report.ok else "problems",
             f" (denied: {', '.join(bad)})" if bad else "")
    return report

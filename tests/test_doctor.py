"""``costdna doctor``: every call the collectors and the tag writer make, against moto's real server.

- All permissions: every needed check is ok (an assumed role with an ExternalId, two regions, CloudTrail
  files in the AWSLogs layout, a CUR 2.0 export, flow logs), the newest key of each source is found.
- Denied permissions: moto enforces IAM when authentication is switched on (``POST /moto-api/reset-auth``
  with ``0``, the live form of ``INITIAL_NO_AUTH_ACTION_COUNT=0``) and requests are signed with the keys of
  an IAM user whose policy is the read-only manifest minus some actions: doctor names exactly those.
- moto implements neither ``ce:ListCostAllocationTags`` nor ``cloudtrail:LookupEvents``: a small local
  stand-in speaks their JSON 1.1 protocol, reached through botocore's own per-service endpoint variables
  (``AWS_ENDPOINT_URL_COST_EXPLORER``, ``AWS_ENDPOINT_URL_CLOUDTRAIL``) while ``AWS_ENDPOINT_URL`` points
  everything else at moto. moto has no ``iam:SimulatePrincipalPolicy`` either, so the tag writer is checked
  with the TagResources probe there.
- The manifests: policy JSON, the CloudFormation template (YAML with CFN short tags), and every action
  doctor tries present in them. The chat cards render as Block Kit.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from botocore.config import Config

from engine.collectors import doctor as doc
from engine.collectors.doctor import DENIED, ERROR, OK, SKIPPED, WARN, DoctorReport, doctor

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests" / "aws"
NO_RETRY = Config(retries={"max_attempts": 1})
ACCOUNT = "123456789012"
REGIONS = ["us-east-1", "eu-west-1"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/costdna-readonly"
EXTERNAL_ID = "doctor-ext-42"


# -- moto's server and a stand-in for what moto lacks ---------------------------------------------


def _post(url: str, body: bytes = b"") -> None:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url
    finally:
        _post(f"{url}/moto-api/reset-auth", b"inf")  # the auth switch is process-wide: leave it off
        server.stop()


class StandIn:
    """Cost Explorer's ListCostAllocationTags and CloudTrail's LookupEvents / DescribeTrails (JSON 1.1)."""

    def __init__(self) -> None:
        self.tags = {"team": "Active"}
        self.denied: set[str] = set()  # operation names answered with AccessDeniedException
        self.events: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        body = json.loads(await request.read() or b"{}")
        self.requests.append(op)
        prefix = "ce" if op == "ListCostAllocationTags" else "cloudtrail"
        if op in self.denied:
            return self._json(400, {"__type": "AccessDeniedException",
                                    "message": f"User: arn:aws:iam::{ACCOUNT}:user/x is not authorized to "
                                               f"perform: {prefix}:{op} because no identity-based policy allows "
                                               f"the {prefix}:{op} action"})
        if op == "ListCostAllocationTags":
            keys = body.get("TagKeys") or list(self.tags)
            return self._json(200, {"CostAllocationTags": [
                {"TagKey": k, "Type": "UserDefined", "Status": self.tags[k]} for k in keys if k in self.tags]})
        if op == "LookupEvents":
            return self._json(200, {"Events": self.events[: int(body.get("MaxResults", 50))]})
        if op == "DescribeTrails":
            return self._json(200, {"trailList": [{"Name": "org-trail", "S3BucketName": "trail-bucket",
                                                   "S3KeyPrefix": "org", "IsOrganizationTrail": True,
                                                   "IsMultiRegionTrail": True}]})
        return self._json(400, {"__type": "UnknownOperationException", "message": op})

    @staticmethod
    def _json(status: int, body: dict) -> web.Response:
        return web.Response(status=status, body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/x-amz-json-1.1"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    s = StandIn()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
def moto_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh moto (authentication off) and boto's standard chain pointed at it by AWS_ENDPOINT_URL."""
    _post(f"{moto_url}/moto-api/reset-auth", b"inf")
    _post(f"{moto_url}/moto-api/reset")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_ENDPOINT_URL": moto_url}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_REGION",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "COSTDNA_OWNER_KEY", "AWS_ENDPOINT_URL_COST_EXPLORER",
                "AWS_ENDPOINT_URL_CLOUDTRAIL", "COSTDNA_AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    return moto_url


@pytest.fixture
def aws(moto_env: str, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> str:
    """``moto_env``, with Cost Explorer and CloudTrail answered by the stand-in."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", standin.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", standin.url)
    return moto_env


def client(url: str, name: str, region: str = "us-east-1") -> Any:
    import boto3

    return boto3.client(name, region_name=region, endpoint_url=url, config=NO_RETRY,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _gz(obj: Any) -> bytes:
    return gzip.compress(json.dumps(obj).encode())


def populate(url: str) -> dict[str, str]:
    """Two regions of resources, a role, and three export buckets; returns the source URIs."""
    for region in REGIONS:
        client(url, "dynamodb", region).create_table(
            TableName=f"orders-{region}", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "team", "Value": "payments"}])
    ec2 = client(url, "ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                      TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "web"}]}])
    client(url, "iam").create_role(RoleName="costdna-readonly", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                "Action": "sts:AssumeRole",
                                                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}))
    s3 = client(url, "s3")
    for bucket in ("trail-bucket", "cur-bucket", "flow-bucket"):
        s3.create_bucket(Bucket=bucket)
    trail = {"Records": [{"eventVersion": "1.08", "eventID": "e1", "eventTime": "2026-12-06T10:00:00Z"}]}
    for day in ("2026/12/05", "2026/12/06", "2026/11/30"):
        for region in REGIONS:
            s3.put_object(Bucket="trail-bucket",
                          Key=f"org/AWSLogs/o-abc123/{ACCOUNT}/CloudTrail/{region}/{day}/"
                              f"{ACCOUNT}_CloudTrail_{region}_{day.replace('/', '')}T1000Z_x.json.gz",
                          Body=_gz(trail))
    newest_trail = (f"org/AWSLogs/o-abc123/{ACCOUNT}/CloudTrail/eu-west-1/2026/12/07/"
                    f"{ACCOUNT}_CloudTrail_eu-west-1_20261207T0900Z_y.json.gz")
    s3.put_object(Bucket="trail-bucket", Key=newest_trail, Body=_gz(trail))
    for period in ("2026-10", "2026-11", "2026-12"):
        s3.put_object(Bucket="cur-bucket", Key=f"exports/costdna/data/BILLING_PERIOD={period}/costdna-00001.csv.gz",
                      Body=gzip.compress(b"line_item_resource_id,line_item_unblended_cost\n"))
        s3.put_object(Bucket="cur-bucket", Key=f"exports/costdna/metadata/BILLING_PERIOD={period}/"
                                               "costdna-Manifest.json", Body=b"{}")
    s3.put_object(Bucket="flow-bucket", Key=f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2026/12/07/"
                                            f"{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20261207T0900Z_h.log.gz",
                  Body=gzip.compress(b"version account-id interface-id\n"))
    return {"cloudtrail": "s3://trail-bucket/org/AWSLogs", "cur": "s3://cur-bucket/exports",
            "flowlogs": "s3://flow-bucket/AWSLogs/", "newest_trail": newest_trail}


def account(options: dict[str, Any], *, role: bool = True, regions: list[str] | None = None) -> Any:
    return SimpleNamespace(name="prod", kind="aws", role_arn=ROLE if role else None,
                           external_id=EXTERNAL_ID if role else None, regions=regions or REGIONS,
                           options=options)


SETTINGS = SimpleNamespace(tag_key="team", aws_endpoint_url=None)


def by(report: DoctorReport, check: str, region: str | None = None) -> list[doc.Check]:
    return [c for c in report.checks if c.check == check and (region is None or c.region == region)]


def one(report: DoctorReport, check: str, region: str | None = None, source: str | None = None) -> doc.Check:
    found = [c for c in by(report, check, region) if source is None or c.facts.get("source") == source]
    assert len(found) == 1, (check, region, source, [(c.check, c.region, c.status) for c in report.checks])
    return found[0]


# -- all permissions ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_everything_needed_is_ok_through_an_assumed_role(aws: str, standin: StandIn) -> None:
    src = populate(aws)
    options = {k: src[k] for k in ("cloudtrail", "cur", "flowlogs")}
    report = await doctor(account(options), SETTINGS, config=NO_RETRY)
    failing = [(c.check, c.region, c.status, c.detail) for c in report.checks if c.needed and c.failing]
    assert report.ok, failing
    assert report.denied_actions == []
    assert report.account_id == ACCOUNT
    assert "assumed-role/costdna-readonly/" in (report.identity or "")
    assert one(report, "sts:AssumeRole").status == OK
    for region in REGIONS:
        assert one(report, "tag:GetResources", region).status == OK
        assert one(report, "ec2:DescribeNetworkInterfaces", region).status == OK
    assert "1 tagged resources" in one(report, "tag:GetResources", "eu-west-1").detail
    assert one(report, "iam:GetAccountAuthorizationDetails").status == OK
    assert one(report, "ec2:DescribeRegions").status == OK
    # the newest key of each source, found by walking only the newest date folders
    trail = one(report, "s3:ListBucket", source="cloudtrail")
    assert trail.status == OK and trail.facts["newest_key"] == src["newest_trail"], trail
    assert trail.facts["age_s"] < 3600
    cur = one(report, "s3:ListBucket", source="cur")
    assert "BILLING_PERIOD=2026-12/" in cur.facts["newest_key"]
    assert "BILLING_PERIOD=2026-10" not in " ".join(standin.requests)  # (the stand-in sees no S3 call)
    assert one(report, "s3:ListBucket", source="flowlogs").facts["newest_key"].endswith("_h.log.gz")
    assert all(c.status == OK for c in by(report, "s3:GetObject")), by(report, "s3:GetObject")
    # a trail bucket is given: LookupEvents and DescribeTrails are not needed, and not called
    assert not by(report, "cloudtrail:LookupEvents") and "LookupEvents" not in standin.requests
    tags = one(report, "ce:ListCostAllocationTags")
    assert tags.status == OK and "active: team" in tags.detail
    # moto has no policy simulation: the tag writer is probed per region, nothing written
    assert one(report, "iam:SimulatePrincipalPolicy").status == SKIPPED
    assert [c.status for c in by(report, "tag:TagResources")] == [OK, OK]
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


@pytest.mark.asyncio
async def test_lookup_events_stale_exports_and_inactive_keys(aws: str, standin: StandIn,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = populate(aws)
    monkeypatch.setenv("COSTDNA_OWNER_KEY", "cost-center")
    standin.tags = {"team": "Inactive"}
    standin.events = [{"EventId": "1", "EventName": "RunInstances",
                       "EventTime": (datetime.now(UTC) - timedelta(minutes=10)).timestamp(), "CloudTrailEvent": "{}"}]
    later = datetime.now(UTC) + timedelta(days=3)  # every export is three days old by then
    report = await doctor(account({"cur": src["cur"]}, role=False), SETTINGS, config=NO_RETRY, now=later)
    assert report.ok  # warnings do not stop a scan
    assert one(report, "s3 cloudtrail").status == SKIPPED
    for region in REGIONS:
        lookup = one(report, "cloudtrail:LookupEvents", region)
        # ten minutes before the real now is three days before ``later``: a quiet region
        assert lookup.status == WARN and "RunInstances" in lookup.detail and "3.0 days ago" in lookup.detail
    trails = one(report, "cloudtrail:DescribeTrails")
    assert trails.status == WARN and "--cloudtrail s3://trail-bucket/org" in trails.fix
    cur = one(report, "s3:ListBucket", source="cur")
    assert cur.status == WARN and "days old" in cur.fix
    tags = one(report, "ce:ListCostAllocationTags")
    assert tags.status == WARN and "NOT active: team" in tags.detail and "cost-center" in tags.detail
    assert "update-cost-allocation-tags-status" in tags.fix


@pytest.mark.asyncio
async def test_an_empty_prefix_and_a_missing_bucket_are_errors(aws: str) -> None:
    populate(aws)
    report = await doctor(account({"cloudtrail": "s3://trail-bucket/nothing-here", "cur": "s3://no-such-bucket/x",
                                   "flowlogs": "flow-bucket/AWSLogs"}), SETTINGS, config=NO_RETRY)
    assert not report.ok
    empty = one(report, "s3:ListBucket", source="cloudtrail")
    assert empty.status == ERROR and "no objects under s3://trail-bucket/nothing-here" in empty.detail
    missing = one(report, "s3:ListBucket", source="cur")
    assert missing.status == ERROR and "NoSuchBucket" in missing.detail
    assert one(report, "s3 flowlogs").status == ERROR  # not an s3:// URI


# -- denied permissions, enforced by moto ------------------------------------------------------------


# moto 5.2 authorises a few calls under names that are not IAM actions: ListObjectsV2 as
# "s3:ListObjectsV2" (AWS: s3:ListBucket), the tagging API as "tagging:*" (AWS: tag:*). The test user's
# policy carries those aliases beside the real actions it keeps, so moto allows what AWS would.
MOTO_ALIASES = {"s3:ListBucket": ["s3:ListObjectsV2"], "tag:GetResources": ["tagging:GetResources"],
                "tag:TagResources": ["tagging:TagResources"], "tag:UntagResources": ["tagging:UntagResources"]}


def _readonly_without(drop: set[str]) -> dict:
    policy = json.loads((MANIFESTS / "readonly-policy.json").read_text())
    for st in policy["Statement"]:
        st["Action"] = [a for a in st["Action"] if a not in drop]
        st["Action"] += [alias for a in st["Action"] for alias in MOTO_ALIASES.get(a, [])]
    policy["Statement"] = [st for st in policy["Statement"] if st["Action"]]
    return policy


def _restricted_role(url: str, name: str, drop: set[str], trusted: str) -> str:
    """A role trusting ``trusted`` with the ExternalId condition (as the template makes it), whose policy is
    the read-only manifest without the ``drop`` actions. moto checks both the principal and the condition."""
    iam = client(url, "iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted},
                                                "Action": "sts:AssumeRole",
                                                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}))
    iam.put_role_policy(RoleName=name, PolicyName="costdna", PolicyDocument=json.dumps(_readonly_without(drop)))
    return arn["Role"]["Arn"]


def _assumer(url: str, name: str) -> dict[str, str]:
    """An IAM user that may only assume roles: the base credentials costdna runs with."""
    return _restricted_user(url, name, set(), policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:GetCallerIdentity"], "Resource": "*"}]})


def _restricted_user(url: str, name: str, drop: set[str], policy: dict | None = None) -> dict[str, str]:
    """An IAM user whose only policy is the read-only manifest without the ``drop`` actions."""
    policy = policy or _readonly_without(drop)
    iam = client(url, "iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="costdna", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.mark.asyncio
async def test_denied_actions_are_named(aws: str, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    src = populate(aws)
    drop = {"tag:GetResources", "ec2:DescribeNetworkInterfaces", "s3:GetObject"}
    keys = _restricted_user(aws, "costdna-reader", drop)
    standin.denied = {"ListCostAllocationTags"}
    _post(f"{aws}/moto-api/reset-auth", b"0")  # from now on moto checks every request's signature and policy
    for k, v in keys.items():
        monkeypatch.setenv(k, v)
    options = {k: src[k] for k in ("cloudtrail", "cur", "flowlogs")}
    report = await doctor(account(options, role=False), SETTINGS, config=NO_RETRY)

    assert not report.ok
    needed_denied = {c.action for c in report.checks if c.needed and c.status == DENIED}
    assert needed_denied == drop, [(c.check, c.region, c.status, c.detail) for c in report.checks]
    for region in REGIONS:
        c = one(report, "tag:GetResources", region)
        assert c.status == DENIED and "add tag:GetResources" in c.fix
        assert one(report, "ec2:DescribeNetworkInterfaces", region).status == DENIED
    assert {c.status for c in by(report, "s3:GetObject")} == {DENIED}
    # what the policy allows still works under enforcement
    assert report.identity == f"arn:aws:iam::{ACCOUNT}:user/costdna-reader"
    for check in ("iam:GetAccountAuthorizationDetails", "ec2:DescribeRegions"):
        assert one(report, check).status == OK, one(report, check)
    assert {c.status for c in by(report, "s3:ListBucket")} == {OK}
    # optional checks: denied, named, not counted against the scan
    ce = one(report, "ce:ListCostAllocationTags")
    assert ce.status == DENIED and not ce.needed and "ce:ListCostAllocationTags" in ce.fix
    probes = by(report, "tag:TagResources")
    assert [p.status for p in probes] == [DENIED, DENIED] and not any(p.needed for p in probes)
    assert "tag:TagResources" in report.denied_actions
    assert set(report.denied_actions) == drop | {"ce:ListCostAllocationTags", "tag:TagResources"}
    assert report.missing_actions(True) == sorted(drop)
    assert report.missing_actions(False) == ["ce:ListCostAllocationTags", "tag:TagResources"]


@pytest.mark.asyncio
async def test_a_role_that_cannot_be_assumed_stops_there(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(aws)
    keys = _restricted_user(aws, "no-assume", set())  # the read-only policy has no sts:AssumeRole
    _post(f"{aws}/moto-api/reset-auth", b"0")
    for k, v in keys.items():
        monkeypatch.setenv(k, v)
    report = await doctor(account({}), SETTINGS, config=NO_RETRY)
    assert not report.ok
    assume = one(report, "sts:AssumeRole")
    assert assume.status == DENIED and assume.action == "sts:AssumeRole"
    assert "trust policy" in assume.fix and "sts:ExternalId" in assume.fix
    assert report.checks[-1].status == SKIPPED and report.denied_actions == ["sts:AssumeRole"]


@pytest.mark.asyncio
async def test_classify_reads_codes_statuses_and_the_named_action() -> None:
    from botocore.exceptions import ClientError, NoCredentialsError

    def err(code: str, message: str, status: int = 400) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert doc.classify(err("UnauthorizedOperation", "no"), "ec2:X")[0] == DENIED
    assert doc.classify(err("AccessDeniedException", "User: u is not authorized to perform: "
                                                     "ce:ListCostAllocationTags on resource"), "ce:Y") == (
        DENIED, "AccessDeniedException: User: u is not authorized to perform: ce:ListCostAllocationTags on resource",
        "ce:ListCostAllocationTags")
    xml = ("<?xml version='1.0'?><ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: u is not "
           "authorized to perform: tag:GetResources</Message></Error></Errors></ErrorResponse>")
    assert doc.classify(err("403", xml, 403), "tag:GetResources") == (
        DENIED, "AccessDenied: User: u is not authorized to perform: tag:GetResources", "tag:GetResources")
    assert doc.classify(err("InvalidClientTokenId", "bad", 403), "sts:X")[0] == ERROR
    assert doc.classify(err("ThrottlingException", "slow"), "x:Y")[0] == ERROR
    assert "no AWS credentials" in doc.classify(NoCredentialsError(), "sts:X")[1]


# -- the manifests -------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !If, !Equals, !GetAtt, ...) as plain values."""


def _cfn_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def _actions(policy: dict) -> set[str]:
    out: set[str] = set()
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        acts = st["Action"]
        out.update([acts] if isinstance(acts, str) else acts)
    return out


def test_policies_are_valid_and_cover_every_call() -> None:
    readonly = json.loads((MANIFESTS / "readonly-policy.json").read_text())
    tagwrite = json.loads((MANIFESTS / "tag-write-policy.json").read_text())
    for policy in (readonly, tagwrite):
        assert policy["Version"] == "2012-10-17"
        sids = [st["Sid"] for st in policy["Statement"]]
        assert len(sids) == len(set(sids))
    ro, tw = _actions(readonly), _actions(tagwrite)
    assert set(doc.READ_ACTIONS) <= ro, set(doc.READ_ACTIONS) - ro
    assert set(doc.TAG_WRITE_ACTIONS) <= tw, set(doc.TAG_WRITE_ACTIONS) - tw
    # read-only means read-only: no write action slips into it
    writes = ("Put", "Create", "Delete", "Tag", "Untag", "Add", "Remove", "Update")
    assert not [a for a in ro if a.split(":")[1].startswith(writes)], ro
    # the collectors' own calls (aws_session.iam_action) are all in the read-only policy
    from engine.collectors.aws_session import iam_action

    for service, op in (("resourcegroupstaggingapi", "GetResources"), ("iam", "GetAccountAuthorizationDetails"),
                        ("ec2", "DescribeNetworkInterfaces"), ("s3", "ListObjectsV2"), ("s3", "GetObject"),
                        ("s3", "HeadObject"), ("cloudtrail", "LookupEvents"), ("sts", "GetCallerIdentity")):
        assert iam_action(service, op) in ro


def test_every_action_a_check_names_is_in_a_manifest(moto_url: str) -> None:
    """The actions in a real report (all checks, both paths) are in the policies or the trust policy."""
    readonly = _actions(json.loads((MANIFESTS / "readonly-policy.json").read_text()))
    tagwrite = _actions(json.loads((MANIFESTS / "tag-write-policy.json").read_text()))
    named = {c.action for c in _all_checks() if c.action}
    assert named, "no checks"
    assert named - readonly - tagwrite <= {doc.ASSUME_ACTION}, named - readonly - tagwrite


def _all_checks() -> list[doc.Check]:
    """Every Check doctor can construct, read from its source (each ``action=\"…\"``)."""
    import re

    src = Path(doc.__file__).read_text()
    return [doc.Check("x", "x", "global", OK, action=a) for a in re.findall(r'action="([a-z0-9-]+:[A-Za-z]+)"', src)] + [
        doc.Check("x", "x", "global", OK, action=doc.ASSUME_ACTION)]


def test_the_role_template() -> None:
    tpl = yaml.load((MANIFESTS / "costdna-role.yaml").read_text(), Loader=CfnLoader)  # noqa: S506
    assert tpl["AWSTemplateFormatVersion"] == "2010-09-09"
    params = tpl["Parameters"]
    assert {"TrustedPrincipal", "ExternalId", "AllowTagWrites"} <= set(params)
    assert params["ExternalId"]["MinLength"] == 2
    assert params["AllowTagWrites"]["AllowedValues"] == ["true", "false"]
    assert params["AllowTagWrites"]["Default"] == "false"
    assert tpl["Conditions"]["TagWrites"] == {"Fn::Equals": [{"Ref": "AllowTagWrites"}, "true"]}

    role = tpl["Resources"]["CostdnaRole"]
    assert role["Type"] == "AWS::IAM::Role"
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {"AWS": {"Ref": "TrustedPrincipal"}}
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == {"Ref": "ExternalId"}
    [inline] = role["Properties"]["Policies"]
    assert _actions(inline["PolicyDocument"]) == _actions(json.loads((MANIFESTS / "readonly-policy.json").read_text()))

    writes = tpl["Resources"]["CostdnaTagWritePolicy"]
    assert writes["Condition"] == "TagWrites"
    assert writes["Properties"]["Roles"] == [{"Ref": "CostdnaRole"}]
    assert _actions(writes["Properties"]["PolicyDocument"]) == _actions(
        json.loads((MANIFESTS / "tag-write-policy.json").read_text()))
    outputs = tpl["Outputs"]
    assert outputs["RoleArn"]["Value"] == {"Fn::GetAtt": ["CostdnaRole", "Arn"]}
    assert outputs["ExternalId"]["Value"] == {"Ref": "ExternalId"}
    # every !Ref names a parameter or a resource
    refs: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if set(v) == {"Ref"}:
                refs.append(v["Ref"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(tpl)
    assert set(refs) <= set(params) | set(tpl["Resources"])


def test_quick_create_link() -> None:
    from urllib.parse import parse_qs, urlparse

    eid = doc.new_external_id()
    assert len(eid) == 32 and eid != doc.new_external_id()
    url = doc.quick_create_url(eid, "https://bucket.s3.amazonaws.com/costdna-role.yaml")
    assert url.startswith("https://console.aws.amazon.com/cloudformation/home#/stacks/quickcreate?")
    q = parse_qs(urlparse(url.split("#", 1)[1]).query)
    assert q["param_ExternalId"] == [eid] and q["stackName"] == ["costdna"]
    assert q["templateURL"] == ["https://bucket.s3.amazonaws.com/costdna-role.yaml"]


# -- chat -------------------------------------------------------------------------------------------


def _blocks_valid(msg: dict) -> None:
    from slack_sdk.models.blocks import Block

    assert msg["text"] and 0 < len(msg["blocks"]) <= 50
    for b in msg["blocks"]:
        block = Block.parse(b)
        assert block is not None
        block.validate_json()


@pytest.mark.asyncio
async def test_chat_cards_render(aws: str, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.slack.render import to_message
    from handlers.doctor import accounts_add_card, doctor_card

    src = populate(aws)
    good = await doctor(account({"cloudtrail": src["cloudtrail"]}), SETTINGS, config=NO_RETRY)
    keys = _restricted_user(aws, "chat-reader", {"tag:GetResources"})
    _post(f"{aws}/moto-api/reset-auth", b"0")
    for k, v in keys.items():
        monkeypatch.setenv(k, v)
    bad = await doctor(account({}, role=False), SETTINGS, config=NO_RETRY)
    for report in (good, bad):
        card = doctor_card(report)
        msg = to_message(card)
        _blocks_valid(msg)
        text = json.dumps(msg)
        if report is bad:
            assert "tag:GetResources" in text and "stop a scan" in text
        else:
            assert "everything a scan needs works" in text

    eid = doc.new_external_id()
    for url in (None, "https://bucket.s3.amazonaws.com/costdna-role.yaml"):
        card = accounts_add_card("prod", eid, url)
        msg = to_message(card)
        _blocks_valid(msg)
        text = json.dumps(msg)
        assert f"--external-id {eid}" in text and "costdna accounts add prod --aws" in text
        assert "doctor prod" in text
        assert ("quickcreate" in text) == bool(url)


@pytest.mark.asyncio
async def test_chat_commands(aws: str, tmp_path: Path) -> None:
    """``/costdna accounts add``, ``/costdna accounts``, ``/costdna doctor [name]`` through the router."""
    from bot.slack.render import to_message
    from config.settings import Settings
    from handlers.commands import handle_command
    from handlers.context import Services, Who
    from storage import repo
    from storage.db import Database

    src = populate(aws)
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", redis_url=None)
    db = await Database(settings.db_url()).init()
    try:
        svc = Services(db=db, queue=None, settings=settings)
        who = Who(platform="slack", workspace="T1", user_id="U1")
        reply = await handle_command(svc, who, "accounts add prod")
        text = json.dumps(to_message(reply.posts[0].card))
        assert "costdna accounts add prod --aws" in text and "--external-id " in text
        assert "No accounts yet" in (await handle_command(svc, who, "accounts")).posts[0].card.title
        async with db.session() as s:
            await repo.add_account(s, "files", "bundle", bundle_path=str(tmp_path), actor="test")
            await repo.add_account(s, "prod", "aws", role_arn=ROLE, external_id=EXTERNAL_ID, regions=REGIONS,
                                   options={"cloudtrail": src["cloudtrail"]}, actor="test")
        listing = (await handle_command(svc, who, "accounts list")).posts[0].card
        assert "prod" in listing.text() and ROLE in listing.text()
        refused = (await handle_command(svc, who, "doctor files")).posts[0].card
        assert refused.kind == "error" and "doctor checks live AWS accounts" in refused.text()
        card = (await handle_command(svc, who, "doctor prod")).posts[0].card
        assert "everything a scan needs works" in card.text(), card.text()
        assert card.ephemeral
        unknown = (await handle_command(svc, who, "doctor nope")).posts[0].card
        assert unknown.kind == "error"
        assert "doctor [account]" in (await handle_command(svc, who, "help")).posts[0].card.text()
    finally:
        await db.close()


# -- the command line ----------------------------------------------------------------------------


def test_cli_doctor(moto_env: str, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 0 when a scan would work (here Cost Explorer is moto's unimplemented call: optional), 1 when a
    needed call is denied, 2 for an account doctor cannot check; --json is one parseable object."""
    from typer.testing import CliRunner

    from bot.cli import app

    src = populate(moto_env)
    runner = CliRunner()
    _add_account("prod", "aws", role_arn=ROLE, external_id=EXTERNAL_ID, regions=["us-east-1"],
                 options={"cloudtrail": src["cloudtrail"]})
    keys = _assumer(moto_env, "cli-runner")
    limited = _restricted_role(moto_env, "costdna-limited", {"ec2:DescribeNetworkInterfaces"},
                               trusted=f"arn:aws:iam::{ACCOUNT}:user/cli-runner")
    _add_account("limited", "aws", role_arn=limited, external_id=EXTERNAL_ID, regions=["us-east-1"],
                 options={"cloudtrail": src["cloudtrail"]})
    _add_account("wrong-id", "aws", role_arn=limited, external_id="not-the-id", regions=["us-east-1"])
    _add_account("files", "synthetic")
    res = runner.invoke(app, ["doctor", "--account", "prod", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True and data["account_id"] == ACCOUNT
    assert {c["check"] for c in data["checks"]} >= {"sts:AssumeRole", "tag:GetResources", "s3:ListBucket", "s3 cur"}
    res = runner.invoke(app, ["doctor", "--account", "prod"])
    assert res.exit_code == 0, res.output
    assert "everything a scan needs works" in res.stdout and "tag:GetResources" in res.stdout

    _post(f"{moto_env}/moto-api/reset-auth", b"0")
    try:
        for k, v in keys.items():
            monkeypatch.setenv(k, v)
        res = runner.invoke(app, ["doctor", "--account", "limited"])
        assert res.exit_code == 1, res.output
        assert "IAM actions a scan needs: ec2:DescribeNetworkInterfaces\n" in res.stdout
        assert "optional IAM actions (tag writes, billing checks): tag:TagResources" in res.stdout
        assert "a scan of this account would fail" in res.stdout
        # moto evaluates the trust policy's sts:ExternalId condition: the wrong id is refused
        res = runner.invoke(app, ["doctor", "--account", "wrong-id", "--json"])
        assert res.exit_code == 1, res.output
        data = json.loads(res.stdout)
        assert data["denied_actions"] == ["sts:AssumeRole"]
        assume = next(c for c in data["checks"] if c["check"] == "sts:AssumeRole")
        assert "sts:ExternalId" in assume["fix"] and "user/cli-runner" in assume["fix"]
    finally:
        _post(f"{moto_env}/moto-api/reset-auth", b"inf")
    res = runner.invoke(app, ["doctor", "--account", "files"])
    assert res.exit_code == 2 and "doctor checks live AWS accounts" in res.output


def _add_account(name: str, kind: str, **kw: Any) -> None:
    import asyncio

    from config.settings import get_settings
    from storage import repo
    from storage.db import Database

    async def go() -> None:
        db = await Database(get_settings().db_url()).init()
        try:
            async with db.session() as s:
                await repo.add_account(s, name, kind, actor="test", **kw)
        finally:
            await db.close()

    asyncio.run(go())


@pytest.mark.asyncio
async def test_without_regions_every_enabled_region_is_checked(aws: str) -> None:
    populate(aws)
    acct = account({"cloudtrail": "s3://trail-bucket/org"})
    acct.regions = []
    report = await doctor(acct, SETTINGS, config=NO_RETRY)
    regions = one(report, "ec2:DescribeRegions")
    assert regions.needed and regions.status == OK
    assert report.regions == regions.facts["enabled"] and set(REGIONS) < set(report.regions)
    assert {c.region for c in by(report, "tag:GetResources")} == set(report.regions)
    assert report.ok


@pytest.mark.asyncio
async def test_a_given_client_factory_supplies_every_client(aws: str) -> None:
    """``client_factory(service, region)``: the caller's clients (here plain aioboto3 ones at moto), no
    role step of doctor's own."""
    import aioboto3

    populate(aws)
    session = aioboto3.Session()
    asked: list[tuple[str, str]] = []

    def factory(service: str, region: str) -> Any:
        asked.append((service, region))
        return session.client(service, region_name=region, endpoint_url=aws, config=NO_RETRY)

    report = await doctor(account({"cloudtrail": "s3://trail-bucket/org"}), SETTINGS, client_factory=factory)
    assert not by(report, "sts:AssumeRole")
    assert report.identity and ":user/" in report.identity  # the factory's own credentials, not the role
    assert ("resourcegroupstaggingapi", "eu-west-1") in asked and ("s3", "us-east-1") in asked
    assert one(report, "s3:ListBucket").status == OK

"""The live AWS collector (engine.collectors) against moto's real server on 127.0.0.1 (no internet).

moto facts these tests rely on (moto 5.2.6):
- With ``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0`` the in-process server checks every request's
  signature against its IAM: the role's trust policy, its ``sts:ExternalId`` condition included, and the
  role's permissions. moto names two actions its own way: the tagging API's ``GetResources`` is checked as
  ``tagging:GetResources`` and S3's ListObjectsV2 as ``s3:ListObjectsV2`` (IAM's are ``tag:GetResources``
  and ``s3:ListBucket``), so the test policies grant both spellings. A wrong ExternalId is refused by the
  condition; a request with no ExternalId at all passes it (AWS refuses that too).
- ``sts.assume_role`` returns working credentials (``DurationSeconds`` honoured: 900 s credentials are
  inside botocore's 15-minute refresh window at once, so every use re-assumes).

The same-predictions test: a synthetic org's CloudTrail files (``AWSLogs/<acct>/CloudTrail/<region>/
YYYY/MM/DD/``), its CUR 2.0 export (``<export>/data/BILLING_PERIOD=YYYY-MM/`` with the manifest under
``<export>/metadata/BILLING_PERIOD=YYYY-MM/``) and its VPC flow logs (``AWSLogs/<acct>/vpcflowlogs/...``)
are put in moto's S3, its tagged S3 buckets are created with their tags, and an ``aws`` account is
scanned through the real scan job (collect, then scan). The reference is the same synthetic bundle
scanned from disk as a ``bundle`` account, without its ``deploys.jsonl`` (a CI export no cloud API
gives) and with its inventory files (``resources.json``, ``iam.json``, ``network.json``) being what the
live APIs listed: moto cannot recreate the synthetic org's inventory
(two accounts, EC2 instance ids it chooses itself), so the inventory is the one input that differs by
construction and is held equal, while everything S3 carries is compared byte for byte and the
predictions (team, confidence, tag team, for every resource) must be identical.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.config import Config
from sqlalchemy import func as sa_func
from sqlalchemy import select

from config.settings import Settings
from engine.collectors import aws as aws_collector
from engine.collectors.aws import collect
from engine.collectors.aws_session import AwsSession, CollectError
from engine.collectors.s3mirror import STATE_FILE, load_state, parse_s3_uri
from jobs.accounts import aws_bundle_dir
from jobs.control import request_scan
from jobs.queue import LocalQueue, open_queue
from jobs.worker import job_context
from storage import repo
from storage.models import Prediction, Resource

NO_RETRY = Config(retries={"max_attempts": 1})
ACCOUNT = "123456789012"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/costdna-read"
EXTERNAL_ID = "costdna-7f3a9c2e"
READ_ACTIONS = ["tag:GetResources", "tagging:GetResources", "iam:GetAccountAuthorizationDetails",
                "ec2:DescribeNetworkInterfaces", "ec2:DescribeRegions", "s3:ListBucket", "s3:ListObjectsV2",
                "s3:GetObject", "sts:GetCallerIdentity"]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Aws:
    url: str

    def client(self, name: str, region: str = "us-east-1") -> Any:
        import boto3

        return boto3.client(name, region_name=region, endpoint_url=self.url, config=NO_RETRY,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def session(self, **kw: Any) -> AwsSession:
        kw.setdefault("role_arn", ROLE)
        kw.setdefault("external_id", EXTERNAL_ID)
        return AwsSession(region="us-east-1", endpoint_url=self.url, config=NO_RETRY, **kw)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Aws:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_ENDPOINT_URL": moto_url,
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION", "COSTDNA_AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10)
    return Aws(moto_url)


def _kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def account(**kw: Any) -> Any:
    kw.setdefault("name", "live")
    kw.setdefault("regions", REGIONS)
    kw.setdefault("role_arn", ROLE)
    kw.setdefault("external_id", EXTERNAL_ID)
    kw.setdefault("options", {"lookup_events": False})
    return SimpleNamespace(**kw)


def enforce_iam(aws: Aws, monkeypatch: pytest.MonkeyPatch, actions: list[str]) -> None:
    """From now on moto checks IAM: a user that may only assume the role (with the ExternalId), and
    the role allowed ``actions``. The process's credentials become the user's."""
    import moto.settings

    iam = aws.client("iam")
    iam.create_user(UserName="collector")
    iam.put_user_policy(UserName="collector", PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE}]}))
    key = iam.create_access_key(UserName="collector")["AccessKey"]
    iam.create_role(RoleName="costdna-read", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/collector"},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]}))
    iam.put_role_policy(RoleName="costdna-read", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


# -- inventory: several regions, pages merged ------------------------------------------------------


def _inventory(aws: Aws) -> dict[str, Any]:
    arns, enis = set(), set()
    for region in REGIONS:
        table = aws.client("dynamodb", region).create_table(
            TableName=f"orders-{region}", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
            Tags=_kv({"team": "payments", "region": region}))["TableDescription"]["TableArn"]
        arns.add(table)
        for i in range(2):
            sqs = aws.client("sqs", region)
            url = sqs.create_queue(QueueName=f"jobs-{i}", tags={"team": "growth"})["QueueUrl"]
            arns.add(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
        ec2 = aws.client("ec2", region)
        vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
        for _ in range(3):
            enis.add(ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"])
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="team-assets")
    s3.put_bucket_tagging(Bucket="team-assets", Tagging={"TagSet": _kv({"team": "web"})})
    arns.add("arn:aws:s3:::team-assets")
    iam = aws.client("iam")
    roles = {f"svc-{n}" for n in ("orders", "billing", "search", "ingest", "admin")}
    for r in roles:
        iam.create_role(RoleName=r, AssumeRolePolicyDocument="{}", Tags=_kv({"team": "platform"}))
    iam.create_user(UserName="alice")
    return {"arns": arns, "enis": enis, "roles": roles}


@pytest.mark.asyncio
async def test_collects_resources_iam_and_enis_of_every_region_page_by_page(
        aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    want = _inventory(aws)
    monkeypatch.setattr(aws_collector, "RESOURCES_PAGE", 2)  # many pages each: the merge is what is tested
    monkeypatch.setattr(aws_collector, "IAM_PAGE", 2)
    monkeypatch.setattr(aws_collector, "ENI_PAGE", 5)
    sent: list[dict[str, Any]] = []

    def base(region: str) -> Any:  # the standard chain, with a hook that records what AssumeRole sends
        import aioboto3

        s = aioboto3.Session(region_name=region)
        s._session.register("provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params)))
        return s

    session = AwsSession(role_arn=ROLE, external_id=EXTERNAL_ID, region="us-east-1", endpoint_url=aws.url,
                         config=NO_RETRY, base_factory=base)
    bundle = tmp_path / "bundle"
    report = await collect(account(), bundle, session=session)

    resources = json.loads((bundle / "resources.json").read_text())["ResourceTagMappingList"]
    assert {m["ResourceARN"] for m in resources} == want["arns"]
    assert len(resources) == len(want["arns"]), "each ARN once, however many regions list it"
    assert {r for m in resources for r in [m["ResourceARN"].split(":")[3]]} == set(REGIONS) | {""}
    by_arn = {m["ResourceARN"]: {t["Key"]: t["Value"] for t in m["Tags"]} for m in resources}
    assert by_arn["arn:aws:s3:::team-assets"] == {"team": "web"}
    iam = json.loads((bundle / "iam.json").read_text())
    assert {r["RoleName"] for r in iam["RoleDetailList"]} == want["roles"]
    assert [u["UserName"] for u in iam["UserDetailList"]] == ["alice"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", r["CreateDate"]) for r in iam["RoleDetailList"])
    enis = json.loads((bundle / "network.json").read_text())["NetworkInterfaces"]
    assert {e["NetworkInterfaceId"] for e in enis} == want["enis"]
    assert {e["AvailabilityZone"][:-1] for e in enis} == set(REGIONS)
    assert (report.resources, report.interfaces, report.regions) == (len(want["arns"]), 9, REGIONS)
    assert report.account_id == ACCOUNT

    # the role was assumed once, with the ExternalId, and every call ran as that role
    assert sent == [{"RoleArn": ROLE, "RoleSessionName": "costdna-collector", "ExternalId": EXTERNAL_ID}]
    async with session.client("sts") as sts:
        who = await sts.get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/costdna-read/costdna-collector"
    # the scan reads what was collected
    from engine.bundle import load_bundle

    loaded = load_bundle(bundle, workers=1)
    assert set(loaded.resources) >= want["arns"] and len(loaded.interfaces) == 9 and not loaded.issues


@pytest.mark.asyncio
async def test_assume_role_needs_the_external_id_and_refreshes(aws: Aws, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    enforce_iam(aws, monkeypatch, READ_ACTIONS)
    with pytest.raises(CollectError) as e:  # the trust policy's sts:ExternalId condition refuses a wrong one
        await collect(account(), tmp_path / "b1", session=aws.session(external_id="someone-elses"))
    assert e.value.denied and e.value.action == "sts:AssumeRole"
    assert f"sts:AssumeRole on {ROLE} denied" in str(e.value) and "trust policy" in str(e.value)
    # (moto lets a request WITHOUT the key through a StringEquals condition, unlike AWS: not tested here;
    # that the ExternalId is sent is asserted in the test above)

    session = aws.session(duration_s=900)  # inside botocore's refresh window: each use re-assumes
    report = await collect(account(), tmp_path / "b3", session=session)
    assert report.account_id == ACCOUNT and (tmp_path / "b3" / "resources.json").is_file()
    assert session.assumed >= 2, "the assumed credentials were refreshed before they expired"


# -- a synthetic org's files in S3: same predictions, incremental reads ---------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


_FLOW = re.compile(r"(\d{12})_vpcflowlogs_([a-z0-9-]+)_\d+\.log\.gz")


def upload_bundle(aws: Aws, bundle: Path) -> dict[str, str]:
    """The bundle's S3-delivered files into moto's S3, in the layouts AWS writes; its tagged S3 buckets
    created with their tags. Returns the account options pointing at them."""
    s3 = aws.client("s3")
    for b in ("org-trail", "billing", "flow-logs"):
        s3.create_bucket(Bucket=b)
    for path in sorted((bundle / "cloudtrail").rglob("*.json.gz")):
        key = "trails/" + path.relative_to(bundle / "cloudtrail").as_posix()
        assert "/CloudTrail/" in key
        s3.put_object(Bucket="org-trail", Key=key, Body=path.read_bytes())
        # what a trail bucket also holds, and must not be read as events
        s3.put_object(Bucket="org-trail", Key=key.replace("/CloudTrail/", "/CloudTrail-Digest/"), Body=b"{}")
    s3.put_object(Bucket="org-trail", Key="trails/AWSLogs/111111111111/CloudTrail/README.txt", Body=b"x")
    data_keys = {}
    for path in sorted((bundle / "cost").rglob("*.csv.gz")):
        rel = path.relative_to(bundle / "cost").as_posix()  # cur2/data/BILLING_PERIOD=2026-11/cur2-00001.csv.gz
        m = re.search(r"BILLING_PERIOD=(\d{4}-\d\d)", rel)
        assert m and rel.startswith("cur2/data/"), rel
        data_keys.setdefault(m[1], []).append("exports/" + rel)
        s3.put_object(Bucket="billing", Key="exports/" + rel, Body=path.read_bytes())
    for period, keys in data_keys.items():
        put_manifest(s3, period, keys)
    for path in sorted((bundle / "flowlogs").glob("*.log.gz")):
        m = _FLOW.fullmatch(path.name)
        assert m, path.name
        s3.put_object(Bucket="flow-logs", Key=f"AWSLogs/{m[1]}/vpcflowlogs/{m[2]}/2026/11/03/{path.name}",
                      Body=path.read_bytes())
    inventory = json.loads((bundle / "resources.json").read_text())["ResourceTagMappingList"]
    for m in inventory:
        if m["ResourceARN"].startswith("arn:aws:s3:::"):
            name = m["ResourceARN"].removeprefix("arn:aws:s3:::")
            s3.create_bucket(Bucket=name)
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": m["Tags"]})
    return {"cloudtrail": "s3://org-trail/trails", "cur": "s3://billing/exports", "flowlogs": "s3://flow-logs/",
            "lookup_events": False}


def put_manifest(s3: Any, period: str, keys: list[str]) -> None:
    """A CUR 2.0 data export manifest (the fields AWS writes that matter here)."""
    s3.put_object(Bucket="billing", Key=f"exports/cur2/metadata/BILLING_PERIOD={period}/cur2-Manifest.json",
                  Body=json.dumps({
                      "version": "2.0", "exportName": "cur2", "bucket": "billing",
                      "billingPeriod": {"start": f"{period}-01T00:00:00.000Z"},
                      "dataFiles": [f"s3://billing/{k}" for k in keys]}).encode())


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=sqlite_url, redis_url=None, job_timeout=300,
                    job_tries=1, workers=1)


async def _scan(ctx: dict[str, Any], queue: LocalQueue, name: str) -> Any:
    scan = await request_scan(ctx["db"], queue, name, requested_by="test")
    await queue.join()
    async with ctx["db"].session() as s:
        return await repo.get_scan(s, scan.id)


async def _predictions(ctx: dict[str, Any], scan_id: int) -> dict[str, tuple[str, float, str, str]]:
    async with ctx["db"].session() as s:
        rows = (await s.scalars(select(Prediction).where(Prediction.scan_id == scan_id))).all()
    return {p.arn: (p.team, round(p.confidence, 6), p.runner_up, p.tag_team) for p in rows}


async def _count(ctx: dict[str, Any], model: type, *where: Any) -> int:
    async with ctx["db"].session() as s:
        return int(await s.scalar(select(sa_func.count()).select_from(model).where(*where)) or 0)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.usefixtures("fast_model")
async def test_live_scan_predicts_as_the_bundle_from_disk_then_reads_only_new_keys(
        aws: Aws, tiny_org: Path, settings: Settings, tmp_path: Path) -> None:
    original = tiny_org / "bundle"
    options = upload_bundle(aws, original)
    ctx = await job_context(settings, notify=_quiet)
    queue = await open_queue(settings, ctx)
    try:
        async with ctx["db"].session() as s:
            live = await repo.add_account(s, "live", "aws", role_arn=ROLE, external_id=EXTERNAL_ID,
                                          regions=["us-east-1", "us-west-2"], options=options)
        done = await _scan(ctx, queue, "live")
        assert done.status == "succeeded", done.error
        mirror = aws_bundle_dir(live, settings.data_dir)

        # what S3 carried arrived byte for byte, where the scan looks for it, and nothing else did
        for sub in ("cloudtrail", "cost"):
            assert _files(mirror / sub) == _files(original / sub), sub
        assert sorted(_files(mirror / "flowlogs").values()) == sorted(_files(original / "flowlogs").values())
        assert all(p.startswith("AWSLogs/") and "/vpcflowlogs/" in p for p in _files(mirror / "flowlogs"))

        # the same files on disk, with the inventory the live APIs listed, scan to the same predictions
        ref = tmp_path / "ref"
        shutil.copytree(original, ref)
        for name in ("resources.json", "iam.json", "network.json"):
            shutil.copyfile(mirror / name, ref / name)
        (ref / "deploys.jsonl").unlink()  # deploys come from CI, not from the cloud: a live account has none
        assert not (mirror / "deploys.jsonl").exists()
        async with ctx["db"].session() as s:
            await repo.add_account(s, "disk", "bundle", bundle_path=str(ref))
        disk = await _scan(ctx, queue, "disk")
        assert disk.status == "succeeded", disk.error
        got, want = await _predictions(ctx, done.id), await _predictions(ctx, disk.id)
        assert len(want) > 50 and sum(1 for t in want.values() if t[0]) > 20, "a scan worth comparing"
        assert got == want
        assert done.counts == disk.counts

        # a second collection reads only what is new: one more CloudTrail file
        state_before = load_state(mirror)
        s3 = aws.client("s3")
        some = sorted((original / "cloudtrail").rglob("*.json.gz"))[0]
        new_key = ("trails/AWSLogs/111111111111/CloudTrail/us-east-1/2026/11/09/"
                   "111111111111_CloudTrail_us-east-1_20261109T0105Z_NewDeliveryAbc1.json.gz")
        s3.put_object(Bucket="org-trail", Key=new_key, Body=some.read_bytes())
        report = await collect(live, mirror, session=aws.session())
        ct, cur, flow = (report.sources[k] for k in ("cloudtrail", "cur", "flowlogs"))
        n_trail = len(list((original / "cloudtrail").rglob("*.json.gz")))
        assert (ct.downloaded, ct.skipped) == (1, ct.listed - 1)
        # each region folder is listed from the day before its newest day on, not whole
        days: dict[str, list[str]] = {}
        for f in (original / "cloudtrail").rglob("*.json.gz"):
            root, day = f.relative_to(original / "cloudtrail").as_posix().rsplit("/", 4)[0], f.parent
            days.setdefault(root, []).append(day.as_posix()[-10:])
        recent = sum(sum(1 for d in ds if d >= sorted(set(ds))[-min(2, len(set(ds)))]) for ds in days.values())
        assert ct.listed == recent + 1 < n_trail
        assert (cur.downloaded, cur.periods_read, cur.periods_skipped) == (0, 0, 1)
        assert (flow.downloaded, flow.skipped) == (0, len(list((original / "flowlogs").glob("*.log.gz"))))
        assert report.downloaded == 1
        assert (mirror / "cloudtrail" / new_key.removeprefix("trails/")).read_bytes() == some.read_bytes()
        assert len(load_state(mirror)["sources"]["cloudtrail"]["keys"]) == \
            len(state_before["sources"]["cloudtrail"]["keys"]) + 1

        # once a day the trail is listed whole again: nothing new, nothing downloaded
        state = json.loads((mirror / STATE_FILE).read_text())
        state["sources"]["cloudtrail"]["listed_whole_at"] = 0
        (mirror / STATE_FILE).write_text(json.dumps(state))
        report = await collect(live, mirror, session=aws.session())
        ct = report.sources["cloudtrail"]
        assert (ct.listed, ct.downloaded, ct.skipped, report.downloaded) == (n_trail + 1, 0, n_trail + 1, 0)

        # the CUR export is rewritten (a new file replaces the old one, the manifest changes): that period
        # alone is read again, and the superseded file leaves the mirror
        old_key = next(iter(load_state(mirror)["sources"]["cur"]["keys"]))
        body = gzip.compress(gzip.decompress(s3.get_object(Bucket="billing", Key=old_key)["Body"].read()))
        replacement = old_key.replace("-00001.", "-00002.")
        s3.put_object(Bucket="billing", Key=replacement, Body=body)
        s3.delete_object(Bucket="billing", Key=old_key)
        put_manifest(s3, "2026-11", [replacement])
        report = await collect(live, mirror, session=aws.session())
        cur = report.sources["cur"]
        assert (cur.periods_read, cur.downloaded, cur.removed) == (1, 1, 1)
        assert report.downloaded == 1
        assert list(_files(mirror / "cost")) == [replacement.removeprefix("exports/")]
        assert STATE_FILE not in _files(mirror / "cost")
    finally:
        await ctx["db"].close()


async def _quiet(kind: str, **payload: Any) -> None:
    return None


# -- a denied call: the scan fails with it, nothing stored -----------------------------------------


@pytest.mark.asyncio
@pytest.mark.usefixtures("fast_model")
async def test_denied_call_fails_the_scan_naming_the_action_and_stores_nothing(
        aws: Aws, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="org-trail")
    key = "trails/AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/03/123456789012_CloudTrail_us-east-1_" \
          "20261103T0000Z_abc.json.gz"
    s3.put_object(Bucket="org-trail", Key=key, Body=gzip.compress(b'{"Records": []}'))
    aws.client("dynamodb").create_table(
        TableName="orders", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        Tags=_kv({"team": "payments"}))
    enforce_iam(aws, monkeypatch, [a for a in READ_ACTIONS if a != "s3:GetObject"])
    ctx = await job_context(settings, notify=_quiet)
    queue = await open_queue(settings, ctx)
    try:
        async with ctx["db"].session() as s:
            acct = await repo.add_account(s, "live", "aws", role_arn=ROLE, external_id=EXTERNAL_ID,
                                          regions=["us-east-1"], options={"cloudtrail": "s3://org-trail/trails",
                                                                          "lookup_events": False})
        row = await _scan(ctx, queue, "live")
        assert row.status == "failed"
        assert f"s3:GetObject on s3://org-trail/{key} denied" in row.error, row.error
        assert "add s3:GetObject to the role's policy" in row.error
        assert row.attempts == 1, "a denied call is not retried"
        assert await _count(ctx, Prediction, Prediction.scan_id == row.id) == 0
        assert await _count(ctx, Resource, Resource.account_id == acct.id) == 0
        async with ctx["db"].session() as s:
            a = await repo.get_account(s, "live")
        assert a.status == "error" and "s3:GetObject" in a.status_reason
        mirror = aws_bundle_dir(acct, settings.data_dir)
        assert not (mirror / "resources.json").exists(), "no inventory from a failed collection"
        assert not list((mirror / "cloudtrail").rglob("*.json.gz")) if (mirror / "cloudtrail").exists() else True
        assert not (mirror / ".collect-tmp").exists() or not list((mirror / ".collect-tmp").iterdir())
    finally:
        await ctx["db"].close()


def test_s3_locations_parse() -> None:
    assert parse_s3_uri("s3://bucket/a/b") == parse_s3_uri("s3://bucket/a/b/")
    assert str(parse_s3_uri("s3://bucket")) == "s3://bucket/"
    for bad in ("bucket/prefix", "s3://", "https://bucket.s3.amazonaws.com/x", "s3://UPPER/x"):
        with pytest.raises(ValueError, match="s3://"):
            parse_s3_uri(bad)


@pytest.mark.asyncio
async def test_bad_location_option_is_a_clear_error(aws: Aws, tmp_path: Path) -> None:
    with pytest.raises(CollectError, match="account option cur: 'billing/x' is not an S3 location"):
        await collect(account(options={"cur": "billing/x"}), tmp_path / "b", session=aws.session(role_arn=None))


# -- no trail bucket: management events from LookupEvents ------------------------------------------


@pytest.mark.asyncio
async def test_without_a_trail_bucket_events_come_from_lookup_events(
        aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    """moto has no LookupEvents: botocore's per-service endpoint variable sends CloudTrail calls to the
    stand-in (tests/cloudtrail_standin.py) and everything else to moto, as a real deployment would
    resolve them."""
    from datetime import UTC, datetime, timedelta

    from tests.cloudtrail_standin import CloudTrailStandIn, real_records

    now = datetime.now(UTC).replace(microsecond=0)
    recs = real_records(shared_data / "cloudtrail" / "invictus")[:120]
    for i, r in enumerate(recs):  # recent, so they fall in the collector's window
        r["eventTime"] = (now - timedelta(minutes=5 + i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with CloudTrailStandIn(recs) as ct:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", ct.url)
        session = AwsSession(role_arn=ROLE, external_id=EXTERNAL_ID, region="us-east-1", config=NO_RETRY)
        bundle = tmp_path / "bundle"
        report = await collect(account(regions=["us-east-1"], options={}), bundle, session=session)
        assert report.lookup["us-east-1"]["events"] == 120 and report.sources == {}
        files = sorted((bundle / "cloudtrail" / "lookup" / "us-east-1").rglob("*.json.gz"))
        ids = [r["eventID"] for f in files for r in json.loads(gzip.decompress(f.read_bytes()))["Records"]]
        assert sorted(ids) == sorted(r["eventID"] for r in recs)
        assert load_state(bundle)["lookup_events"]["us-east-1"]["newest"]
        asked = len(ct.lookups())
        again = await collect(account(regions=["us-east-1"], options={}), bundle, session=session)
        assert again.lookup["us-east-1"]["events"] < 120, "the second run asks only from the last event on"
        assert len(ct.lookups()) > asked


# -- costdna accounts add --aws ------------------------------------------------------------------------


def _stored(name: str) -> Any:
    from config.settings import get_settings
    from storage.db import Database

    async def go() -> Any:
        db = await Database(get_settings().db_url()).init()
        try:
            async with db.session() as s:
                return await repo.get_account(s, name)
        finally:
            await db.close()

    import asyncio

    return asyncio.run(go())


def test_cli_accounts_add_aws_onboarding_then_the_role(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import parse_qs, urlsplit

    from typer.testing import CliRunner

    from bot.cli import app

    runner = CliRunner(env=cli_env)
    monkeypatch.setenv("COSTDNA_ROLE_TEMPLATE_URL", "https://templates.s3.amazonaws.com/costdna-role.yaml")
    res = runner.invoke(app, ["accounts", "add", "prod", "--aws", "--regions", "us-east-1,eu-west-1",
                              "--cloudtrail", "s3://org-trail/trails"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    link = next(w for w in text.split() if w.startswith("https://console.aws.amazon.com/cloudformation/"))
    assert link.startswith("https://console.aws.amazon.com/cloudformation/home#/stacks/quickcreate?")
    q = parse_qs(urlsplit(link.replace("#", "", 1)).query)
    external_id = q["param_ExternalId"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", external_id)
    assert q["templateURL"] == ["https://templates.s3.amazonaws.com/costdna-role.yaml"] and q["stackName"] == ["costdna"]
    assert (f"costdna accounts add prod --aws --role-arn <RoleArn output> --external-id {external_id} "
            "--regions us-east-1,eu-west-1 --cloudtrail s3://org-trail/trails/") in text
    again = runner.invoke(app, ["accounts", "add", "prod", "--aws"])
    assert again.exit_code == 0 and external_id in again.output, "the same ExternalId until the account is added"
    assert json.loads(runner.invoke(app, ["accounts", "list", "--json"]).stdout) == [], "no account yet"

    # the stack is made: add the account with its role; the ExternalId handed out is the one stored
    res = runner.invoke(app, ["accounts", "add", "prod", "--aws", "--role-arn", ROLE, "--regions", "us-east-1",
                              "--regions", "eu-west-1,ap-southeast-2", "--cloudtrail", "s3://org-trail/trails",
                              "--cur", "s3://billing/exports", "--flowlogs", "s3://flow-logs", "--no-lookup-events"])
    assert res.exit_code == 0, res.output
    assert "costdna doctor --account prod" in " ".join(res.output.split())
    acct = _stored("prod")
    assert (acct.kind, acct.role_arn, acct.external_id) == ("aws", ROLE, external_id)
    assert acct.regions == ["us-east-1", "eu-west-1", "ap-southeast-2"]
    assert acct.options == {"cloudtrail": "s3://org-trail/trails/", "cur": "s3://billing/exports/",
                            "flowlogs": "s3://flow-logs/", "lookup_events": False}

    # without a hosted template: the deploy command instead of a link
    monkeypatch.delenv("COSTDNA_ROLE_TEMPLATE_URL")
    res = runner.invoke(app, ["accounts", "add", "staging", "--aws", "--external-id", "my-own-id"])
    assert res.exit_code == 0 and "aws cloudformation deploy" in res.output and "ExternalId=my-own-id" in res.output
    assert "quickcreate" not in res.output


def test_cli_accounts_add_aws_rejects_bad_locations(cli_env: dict[str, str]) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    runner = CliRunner(env=cli_env)
    for args, needle in ((["--cur", "billing/exports"], "--cur: 'billing/exports' is not an S3 location"),
                         (["--regions", "us-east-1,mars"], "'mars' is not an AWS region"),
                         (["--cloudtrail", "s3://Bad_Bucket/x"], "--cloudtrail")):
        res = runner.invoke(app, ["accounts", "add", "prod", "--aws", "--role-arn", ROLE, *args])
        assert res.exit_code == 2 and needle in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["accounts", "add", "s", "--synthetic", "--cur", "s3://billing/x"])
    assert res.exit_code == 2 and "go with --aws" in res.output


# -- the S3 mirror's layouts -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_mirror_org_trails_legacy_cur_assemblies_and_a_moved_source(aws: Aws, tmp_path: Path) -> None:
    from engine.collectors.s3mirror import mirror

    s3 = aws.client("s3")
    s3.create_bucket(Bucket="logs")
    body = gzip.compress(b'{"Records": []}')
    org = "AWSLogs/o-abc123def4/111111111111/CloudTrail/eu-west-1/2026/11/03/" \
          "111111111111_CloudTrail_eu-west-1_20261103T0000Z_aaaa.json.gz"
    for key in (org, org.replace("/CloudTrail/", "/CloudTrail-Insight/"),
                "AWSLogs/o-abc123def4/111111111111/CloudTrail-Digest/eu-west-1/2026/11/03/d.json.gz"):
        s3.put_object(Bucket="logs", Key=key, Body=body)
    bundle, state = tmp_path / "b", {}
    session = aws.session(role_arn=None)
    r = await mirror(session, "cloudtrail", "s3://logs", bundle, "cloudtrail", state)
    assert (r.listed, r.downloaded) == (1, 1) and (bundle / "cloudtrail" / org).read_bytes() == body

    # legacy CUR: a new assembly folder per update, the period's manifest naming the current one
    s3.create_bucket(Bucket="cur-legacy")
    period = "reports/daily/20261101-20261201"

    def assembly(aid: str, text: bytes) -> str:
        key = f"{period}/{aid}/daily-1.csv.gz"
        s3.put_object(Bucket="cur-legacy", Key=key, Body=gzip.compress(text))
        manifest = json.dumps({"assemblyId": aid, "reportKeys": [key]}).encode()
        s3.put_object(Bucket="cur-legacy", Key=f"{period}/daily-Manifest.json", Body=manifest)
        s3.put_object(Bucket="cur-legacy", Key=f"{period}/{aid}/daily-Manifest.json", Body=manifest)
        return key

    first = assembly("aaaa", b"a,b\n1,2\n")
    r = await mirror(session, "cur", "s3://cur-legacy/reports", bundle, "cost", state)
    assert (r.periods_read, r.downloaded, r.removed) == (1, 1, 0)
    r = await mirror(session, "cur", "s3://cur-legacy/reports", bundle, "cost", state)
    assert (r.periods_read, r.periods_skipped, r.downloaded) == (0, 1, 0), "an unchanged manifest: not read"
    second = assembly("bbbb", b"a,b\n1,3\n")
    r = await mirror(session, "cur", "s3://cur-legacy/reports", bundle, "cost", state)
    assert (r.periods_read, r.downloaded, r.removed) == (1, 1, 1)
    assert [p.relative_to(bundle / "cost").as_posix() for p in (bundle / "cost").rglob("*.csv.gz")] == \
        [second.removeprefix("reports/")]
    assert first != second

    # the trail moves to another bucket: what came from the old one leaves the mirror
    s3.create_bucket(Bucket="logs2")
    other = org.replace("aaaa", "bbbb")
    s3.put_object(Bucket="logs2", Key=other, Body=body)
    r = await mirror(session, "cloudtrail", "s3://logs2/", bundle, "cloudtrail", state)
    assert r.downloaded == 1
    assert [p.name for p in (bundle / "cloudtrail").rglob("*.json.gz")] == [other.rsplit("/", 1)[1]]


def test_errors_name_the_call_and_whether_to_retry() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from engine.collectors.aws_session import collect_error, iam_action

    def err(code: str, status: int, message: str = "m") -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert iam_action("resourcegroupstaggingapi", "GetResources") == "tag:GetResources"
    e = collect_error(err("AccessDenied", 403, "Access Denied"), "s3", "GetObject", "s3://b/k")
    assert e.denied and not e.transient and str(e).startswith("s3:GetObject on s3://b/k denied (AccessDenied")
    xml = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized</Message></Error></ErrorResponse>"
    e = collect_error(err("403", 403, xml), "iam", "GetAccountAuthorizationDetails", "the account")
    assert e.denied and "(AccessDenied: not authorized)" in str(e) and "<" not in str(e)
    e = collect_error(err("UnauthorizedOperation", 403), "ec2", "DescribeNetworkInterfaces", "eu-west-1")
    assert e.denied and e.action == "ec2:DescribeNetworkInterfaces"
    assert collect_error(err("ThrottlingException", 400), "resourcegroupstaggingapi", "GetResources", "r").transient
    assert collect_error(err("InternalError", 500), "s3", "GetObject", "x").transient
    assert collect_error(EndpointConnectionError(endpoint_url="http://x"), "s3", "GetObject", "x").transient
    e = collect_error(err("ExpiredToken", 400), "s3", "GetObject", "x")
    assert not e.denied and not e.transient and "credentials were refused" in str(e)


@pytest.mark.asyncio
async def test_collect_aws_maps_failures_to_scan_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import engine.collectors.aws as collector
    from jobs.accounts import CollectUnavailable, ScanInputError, collect_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for transient, expected in ((True, CollectUnavailable), (False, ScanInputError)):
        async def failing(*a: Any, _t: bool = transient, **kw: Any) -> Any:
            raise CollectError("tag:GetResources on us-east-1 failed (X)", transient=_t)

        monkeypatch.setattr(collector, "collect", failing)
        with pytest.raises(expected, match="collecting AWS account 'live': tag:GetResources on us-east-1"):
            await collect_aws(account(id=7), tmp_path, Settings(data_dir=tmp_path))
    assert issubclass(CollectUnavailable, ConnectionError), "the scan task retries ConnectionErrors"

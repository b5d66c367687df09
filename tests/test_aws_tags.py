"""AwsTagWriter against moto's real server (no internet), plus a few stand-in client checks.

moto facts these tests rely on (moto 5.2.5):
- TagResources on a deleted S3 bucket fails the whole call with ``NoSuchBucket`` (moto has tagged
  the ARNs before it in the call, not those after).
- A deleted DynamoDB table or an unknown EC2 instance id is reported as tagged: not usable for
  failure tests. A resource of a service with nothing created yet comes back in FailedResourcesMap
  as ``InternalServiceException: Service not yet supported`` (a moto quirk, not used here).
- A tagging client in the wrong region reports success but changes nothing, so a tag that shows up
  on an eu-west-1 table proves the eu-west-1 client sent it.
- Lambda create_function works without docker (only invoking needs it).
"""

from __future__ import annotations

import io
import logging
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from jobs.aws_tags import AwsTagWriter
from jobs.tagwriter import TagWriteError

pytestmark = pytest.mark.asyncio

NO_RETRY = Config(retries={"max_attempts": 1})
ACCOUNT = "123456789012"
PREVIOUS = {"env": "prod", "owner-hint": "alice"}


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

        return boto3.client(name, region_name=region, endpoint_url=self.url, config=NO_RETRY)

    def session(self) -> Any:
        import aioboto3

        return aioboto3.Session()

    def writer(self, session: Any = None, **kw: Any) -> AwsTagWriter:
        kw.setdefault("default_region", "us-east-1")
        return AwsTagWriter(endpoint_url=self.url, config=NO_RETRY,
                            session_factory=(lambda: session) if session is not None else None, **kw)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Aws:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10)
    return Aws(moto_url)


def _kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _bucket(aws: Aws, name: str, tags: dict[str, str] | None = None) -> str:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=name)
    if tags:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _kv(tags)})
    return f"arn:aws:s3:::{name}"


def _table(aws: Aws, name: str, tags: dict[str, str] | None = None, region: str = "us-east-1") -> str:
    kw: dict[str, Any] = {"Tags": _kv(tags)} if tags else {}
    return aws.client("dynamodb", region).create_table(
        TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        **kw)["TableDescription"]["TableArn"]


def _five_services(aws: Aws) -> dict[str, str]:
    """kind -> ARN of an EC2 instance, RDS instance, Lambda function, S3 bucket and DynamoDB table."""
    ec2 = aws.client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": _kv(PREVIOUS)}])["Instances"][0]["InstanceId"]
    db = aws.client("rds").create_db_instance(
        DBInstanceIdentifier="orders-db", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="admin1", MasterUserPassword="password123", AllocatedStorage=20,
        Tags=_kv(PREVIOUS))["DBInstance"]["DBInstanceArn"]
    role = aws.client("iam").create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handle(event, context):\n    return 1\n")
    fn = aws.client("lambda").create_function(
        FunctionName="orders-fn", Runtime="python3.12", Role=role, Handler="handler.handle",
        Code={"ZipFile": buf.getvalue()}, Tags=PREVIOUS)["FunctionArn"]
    return {
        "ec2": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{instance}",
        "rds": db,
        "lambda": fn,
        "s3": _bucket(aws, "orders-bucket", PREVIOUS),
        "dynamodb": _table(aws, "orders-table", PREVIOUS),
    }


def _native_tags(aws: Aws, kind: str, arn: str) -> dict[str, str]:
    """The tags as the resource's own service reports them."""
    if kind == "ec2":
        instance = arn.rsplit("/", 1)[1]
        tags = aws.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [instance]}])["Tags"]
        return {t["Key"]: t["Value"] for t in tags}
    if kind == "rds":
        return {t["Key"]: t["Value"] for t in aws.client("rds").list_tags_for_resource(ResourceName=arn)["TagList"]}
    if kind == "lambda":
        return aws.client("lambda").list_tags(Resource=arn)["Tags"]
    if kind == "s3":
        try:
            tags = aws.client("s3").get_bucket_tagging(Bucket=arn.rsplit(":", 1)[1])["TagSet"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchTagSet":
                return {}
            raise
        return {t["Key"]: t["Value"] for t in tags}
    if kind == "dynamodb":
        region = arn.split(":")[3]
        tags = aws.client("dynamodb", region).list_tags_of_resource(ResourceArn=arn)["Tags"]
        return {t["Key"]: t["Value"] for t in tags}
    raise AssertionError(kind)


def _count(session: Any, operation: str) -> list[tuple[str, int]]:
    """(client region, number of ARNs) for each call of a tagging operation made through ``session``."""
    calls: list[tuple[str, int]] = []

    def hook(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        calls.append((context.get("client_region"), len(params["ResourceARNList"])))

    # before-parameter-build sees the API parameters (before-call sees the serialized request).
    session.events.register(f"before-parameter-build.resource-groups-tagging-api.{operation}", hook)
    return calls


# -- against moto ---------------------------------------------------------------------------------


async def test_write_shows_in_each_service_and_rollback_restores(aws: Aws) -> None:
    arns = _five_services(aws)
    writer = aws.writer()

    previous = await writer.read(arns.values())
    assert previous == dict.fromkeys(arns.values(), PREVIOUS)

    # The new set adds team, changes env and drops owner-hint: each resource must end up with exactly it.
    new = {arn: {"env": "production", "team": "payments"} for arn in arns.values()}
    assert await writer.write(new, previous=previous) == {}
    for kind, arn in arns.items():
        assert _native_tags(aws, kind, arn) == {"env": "production", "team": "payments"}, kind
    assert await writer.read(arns.values()) == new

    # Rollback: team is removed again, env and owner-hint get their old values back.
    assert await writer.write(previous, previous=new) == {}
    for kind, arn in arns.items():
        assert _native_tags(aws, kind, arn) == PREVIOUS, kind


async def test_rollback_removes_added_key_without_previous(aws: Aws) -> None:
    """Keys currently on the resource but not in the new set go, even when ``previous`` is not given."""
    arn = _table(aws, "plain", {"env": "dev"})
    writer = aws.writer()
    assert await writer.write({arn: {"env": "dev", "team": "data"}}) == {}
    assert await writer.write({arn: {"env": "dev"}}) == {}
    assert _native_tags(aws, "dynamodb", arn) == {"env": "dev"}


async def test_removing_every_tag(aws: Aws) -> None:
    arn = _bucket(aws, "tagged-bucket", {"team": "x", "env": "dev"})
    calls = _count(session := aws.session(), "TagResources")
    assert await aws.writer(session).write({arn: {}}) == {}
    assert calls == []  # TagResources needs at least one tag: only UntagResources is sent
    assert _native_tags(aws, "s3", arn) == {}


async def test_read_lists_untagged_and_unknown_as_empty(aws: Aws) -> None:
    tagged = _table(aws, "tagged", {"a": "1"})
    untagged = _table(aws, "untagged")
    missing = "arn:aws:s3:::never-created"
    assert await aws.writer().read([tagged, untagged, missing]) == {tagged: {"a": "1"}, untagged: {},
                                                                     missing: {}}


async def test_deleted_resource_fails_alone(aws: Aws) -> None:
    buckets = [_bucket(aws, f"bucket-{i}", {"env": "prod"}) for i in range(4)]
    table = _table(aws, "kept-table", {"env": "prod"})
    aws.client("s3").delete_bucket(Bucket="bucket-1")
    tags = {arn: {"env": "prod", "team": "web"} for arn in [*buckets, table]}

    errors = await aws.writer().write(tags)

    assert set(errors) == {buckets[1]}
    assert "NoSuchBucket" in errors[buckets[1]]
    for arn in [buckets[0], *buckets[2:]]:
        assert _native_tags(aws, "s3", arn) == {"env": "prod", "team": "web"}
    assert _native_tags(aws, "dynamodb", table) == {"env": "prod", "team": "web"}


async def test_45_buckets_take_three_calls(aws: Aws) -> None:
    arns = [_bucket(aws, f"chunk-bucket-{i:02d}") for i in range(45)]
    session = aws.session()
    calls = _count(session, "TagResources")

    errors = await aws.writer(session).write({arn: {"team": "platform"} for arn in arns})

    assert errors == {}
    assert sorted(n for _, n in calls) == [5, 20, 20]
    for arn in arns:
        assert _native_tags(aws, "s3", arn) == {"team": "platform"}


async def test_two_regions_two_clients(aws: Aws) -> None:
    east = _table(aws, "east-table", {"env": "prod"})
    west = _table(aws, "west-table", {"env": "prod"}, region="eu-west-1")
    bucket = _bucket(aws, "global-bucket")  # no region in the ARN: the default region's client
    session = aws.session()
    calls = _count(session, "TagResources")

    new = {east: {"team": "a"}, west: {"team": "a"}, bucket: {"team": "a"}}
    errors = await aws.writer(session, regions=["us-east-1", "eu-west-1"]).write(new)

    assert errors == {}
    assert sorted(calls) == [("eu-west-1", 1), ("us-east-1", 2)]
    # moto ignores a tag sent through another region's client: the tag proves the routing.
    assert _native_tags(aws, "dynamodb", west) == {"team": "a"}
    assert _native_tags(aws, "dynamodb", east) == {"team": "a"}
    assert _native_tags(aws, "s3", bucket) == {"team": "a"}


async def test_assumes_role_and_never_logs_credentials(aws: Aws, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="jobs.aws_tags")
    arn = _table(aws, "role-table", {"env": "prod"})
    role = aws.client("iam").create_role(RoleName="costdna-tagger", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session = aws.session()
    assumed: list[dict[str, Any]] = []
    issued: list[dict[str, Any]] = []
    session.events.register("before-parameter-build.sts.AssumeRole", lambda params, **_: assumed.append(dict(params)))
    session.events.register("after-call.sts.AssumeRole",
                            lambda parsed, **_: issued.append(dict(parsed.get("Credentials", {}))))
    writer = aws.writer(session, role_arn=role, external_id="ext-1234")

    assert await writer.write({arn: {"team": "db"}}) == {}
    assert await writer.write({arn: {"team": "db2"}}) == {}  # credentials are reused while valid

    assert assumed == [{"RoleArn": role, "RoleSessionName": "costdna-tagger", "ExternalId": "ext-1234"}]
    assert _native_tags(aws, "dynamodb", arn) == {"team": "db2"}
    assert issued and caplog.records
    text = caplog.text + repr(writer)
    for secret in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
        assert issued[0][secret] not in text


# -- stand-in clients: paths moto does not produce --------------------------------------------------


class _FakeClient:
    def __init__(self, owner: _FakeSession, region: str):
        self.owner, self.region = owner, region

    async def __aenter__(self) -> _FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_resources(self, **kw: Any) -> dict[str, Any]:
        self.owner.calls.append((self.region, "get_resources", kw))
        return {"ResourceTagMappingList": []}

    async def tag_resources(self, **kw: Any) -> dict[str, Any]:
        self.owner.calls.append((self.region, "tag_resources", kw))
        return await self.owner.answer(kw)

    async def untag_resources(self, **kw: Any) -> dict[str, Any]:
        self.owner.calls.append((self.region, "untag_resources", kw))
        return {"FailedResourcesMap": {}}


class _FakeSession:
    def __init__(self, answer: Any):
        self.answer = answer
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def client(self, service: str, region_name: str, **_: Any) -> _FakeClient:
        assert service == "resourcegroupstaggingapi"
        return _FakeClient(self, region_name)


def _fn(i: int) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:fn-{i}"


async def test_failed_resources_map_becomes_per_arn_errors() -> None:
    async def answer(kw: dict[str, Any]) -> dict[str, Any]:
        return {"FailedResourcesMap": {_fn(1): {"StatusCode": 400, "ErrorCode": "InvalidParameterException",
                                                 "ErrorMessage": "tag limit exceeded"}}}

    session = _FakeSession(answer)
    writer = AwsTagWriter(session_factory=lambda: session)
    errors = await writer.write({_fn(0): {"team": "a"}, _fn(1): {"team": "a"}, _fn(2): {"team": "b"}})
    assert errors == {_fn(1): "InvalidParameterException: tag limit exceeded"}
    tag_calls = [kw for _, op, kw in session.calls if op == "tag_resources"]
    assert sorted((tuple(kw["ResourceARNList"]), kw["Tags"]["team"]) for kw in tag_calls) == [
        ((_fn(0), _fn(1)), "a"), ((_fn(2),), "b")]  # one call per distinct tag set


async def test_call_wide_error_fails_the_chunk_without_retrying_one_by_one() -> None:
    async def answer(kw: dict[str, Any]) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "TagResources")

    session = _FakeSession(answer)
    errors = await AwsTagWriter(session_factory=lambda: session).write({_fn(i): {"team": "a"} for i in range(3)})
    assert errors == {_fn(i): "ThrottlingException: Rate exceeded" for i in range(3)}
    assert [op for _, op, _ in session.calls].count("tag_resources") == 1


async def test_bad_input_and_foreign_regions_are_reported_not_sent() -> None:
    async def answer(kw: dict[str, Any]) -> dict[str, Any]:
        return {"FailedResourcesMap": {}}

    session = _FakeSession(answer)
    writer = AwsTagWriter(regions=["eu-west-1"], session_factory=lambda: session)
    assert writer.default_region == "eu-west-1"
    foreign = f"arn:aws:dynamodb:ap-south-1:{ACCOUNT}:table/t"
    errors = await writer.write({"i-0abc": {"team": "a"}, foreign: {"team": "a"}})
    assert errors["i-0abc"] == "not an ARN"
    assert "ap-south-1" in errors[foreign]
    assert session.calls == []
    with pytest.raises(TagWriteError):
        await writer.read([foreign])


async def test_default_config_is_adaptive_with_eight_attempts() -> None:
    writer = AwsTagWriter()
    assert writer.config.retries == {"mode": "adaptive", "max_attempts": 8}
    assert AwsTagWriter(max_attempts=3).config.retries["max_attempts"] == 3
    assert writer.default_region == "us-east-1"

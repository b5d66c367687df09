"""CloudTrail reader: real samples (invictus, panther, costdna-synthetic), extraction rules, bad input."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import orjson
import pytest

from engine.arns import canonical_arn
from engine.records import BundleIssue
from engine.sources.cloudtrail import (
    cloudtrail_files,
    parse_record,
    parse_time,
    read_cloudtrail_file,
    sqs_arn_from_url,
)
from engine.sources.files import read_bytes

ACCT = "123456789012"
REGION = "us-east-1"


def rec(name: str = "DoThing", source: str = "ec2.amazonaws.com", req=None, resp=None, **extra) -> dict:
    r = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": ACCT,
                         "arn": f"arn:aws:iam::{ACCT}:user/alice"},
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "requestParameters": req,
        "responseElements": resp,
        "recipientAccountId": ACCT,
        "eventID": "e1",
    }
    r.update(extra)
    return r


def arn(kind_res: str, service: str = "ec2") -> str:
    return f"arn:aws:{service}:{REGION}:{ACCT}:{kind_res}"


# ---------------------------------------------------------------------------------------------
# real samples


@pytest.fixture(scope="module")
def invictus(shared_data: Path) -> tuple[list[Path], list, list[BundleIssue]]:
    files = sorted((shared_data / "cloudtrail/invictus/CloudTrail").glob("*.json"))
    issues: list[BundleIssue] = []
    events = [e for f in files for e in read_cloudtrail_file(f, issues)]
    return files, events, issues


def test_invictus_cloudtrail_every_file_parses_2900_records(invictus):
    files, events, issues = invictus
    assert len(files) == 55
    assert len(events) == 2900
    assert issues == []
    assert sum(1 for e in events if e.error_code) == 300
    assert len({e.event_source for e in events}) == 29
    assert len({e.event_name for e in events}) == 260
    assert all(e.time is not None and e.principal != "unknown" for e in events)


def test_invictus_cloudtrail_principals(invictus):
    _, events, _ = invictus
    keys = {e.principal for e in events}
    # The README counts 20 principals as (userIdentity.type, name) pairs; ec2.amazonaws.com appears
    # both as type AWSService and with no type at all, which are one canonical key here: 19.
    assert len(keys) == 19
    assert {"user:bert-jan", "user:benjamin", "service:secretsmanager.amazonaws.com",
            "role:stratus-red-team-ec2-get-password-data-role", "role:AWSServiceRoleForRDS"} <= keys
    by_key = {e.principal: e for e in events}
    assert by_key["user:bert-jan"].person == "bert-jan"
    steal = by_key["role:stratus-red-team-ec2-steal-credentials-role"]
    assert steal.role == "stratus-red-team-ec2-steal-credentials-role" and steal.session.startswith("i-")
    assert steal.person is None  # an instance session, not a human


def test_invictus_cloudtrail_resources_include_every_resources_array_arn(invictus, shared_data):
    files, events, _ = invictus
    raw = [r for f in files for r in orjson.loads(read_bytes(f))["Records"]]
    with_array = [(r, e) for r, e in zip(raw, events, strict=True) if r.get("resources")]
    assert len(with_array) == 693
    for r, e in with_array:
        for item in r["resources"]:
            a = item.get("ARN") or item.get("arn")
            if isinstance(a, str) and a.startswith("arn:"):
                assert canonical_arn(a) in e.resources, (a, e.resources)
    # requestParameters/responseElements add resources to records without a resources[] array.
    assert sum(1 for e in events if e.resources) == 1114


def test_invictus_cloudtrail_fast_path_matches_generic_parse(invictus):
    files, events, _ = invictus
    generic = [parse_record(r) for f in files for r in orjson.loads(read_bytes(f))["Records"]]
    assert generic == events


def test_panther_cloudtrail_455_records_none_lost(shared_data):
    path = shared_data / "cloudtrail/panther/panther_cloudtrail_test_events.json"
    raw = json.loads(path.read_text())["Records"]
    issues: list[BundleIssue] = []
    events = read_cloudtrail_file(path, issues)
    assert len(raw) == len(events) == 455
    assert issues == []
    redacted = [e for r, e in zip(raw, events, strict=True) if r.get("eventTime") == "redacted"]
    assert len(redacted) == 1 and redacted[0].time is None
    assert sum(1 for e in events if e.time is None) == 17  # 15 without eventTime, "redacted", "..."
    with_error = [r for r in raw if r.get("errorCode")]
    assert with_error and [e.error_code for e in events if e.error_code] == [r["errorCode"] for r in with_error]
    # Three sanitised records have no eventSource: kept, with an empty source.
    assert sum(1 for e in events if e.event_source == "") == 3


def test_panther_cloudtrail_every_identity_type_gives_a_principal(shared_data):
    events = read_cloudtrail_file(shared_data / "cloudtrail/panther/panther_cloudtrail_test_events.json", [])
    prefix = {"AssumedRole": "role:", "IAMUser": "user:", "Root": "root:", "FederatedUser": "federated:",
              "AWSAccount": "account:", "AWSService": "service:", "Unknown": "unknown", "": "unknown"}
    types = {e.principal_type for e in events}
    assert types == set(prefix)
    for t, want in prefix.items():
        keys = {e.principal for e in events if e.principal_type == t}
        assert keys and all(k.startswith(want) or k == "unknown" for k in keys), (t, keys)
        assert any(k.startswith(want) for k in keys), t
    # Sanitised identities that name nobody (an IAMUser with only a principalId) stay "unknown".
    nameless = [e for e in events if e.principal == "unknown" and e.principal_type not in ("", "Unknown")]
    assert len(nameless) == 8 and {e.principal_type for e in nameless} == {"IAMUser"}
    sso = [e for e in events if e.role and e.role.startswith("AWSReservedSSO_")]
    assert sso and all(e.person == e.session for e in sso)
    assert any(e.person == "bob.ross" for e in sso)
    fed = [e for e in events if e.principal_type == "FederatedUser"]
    assert fed[0].principal == "federated:federated-user" and fed[0].person == "federated-user"


def test_costdna_synthetic_seed0_cloudtrail_resources_match_truth(shared_data):
    seed = shared_data / "costdna-synthetic/seed0"
    truth = {r["arn"] for r in csv.DictReader((seed / "truth.csv").open())}
    files = cloudtrail_files(seed / "bundle")
    assert len(files) == 339
    issues: list[BundleIssue] = []
    events = [e for f in files for e in read_cloudtrail_file(f, issues)]
    assert len(events) == 68955 and issues == []
    seen = {a for e in events for a in e.resources}
    assert seen <= truth
    assert len(seen) == 66  # two truth resources (orphans) never appear in CloudTrail
    assert all(e.principal.startswith("role:") for e in events)
    # The generator's AWSReservedSSO_* is a session name under a normal role: not a person.
    assert not any(e.person for e in events)


def test_costdna_synthetic_seed0_cloudtrail_fast_path_matches_generic(shared_data):
    files = cloudtrail_files(shared_data / "costdna-synthetic/seed0/bundle")[:5]
    for f in files:
        assert [parse_record(r) for r in orjson.loads(read_bytes(f))["Records"]] == read_cloudtrail_file(f, [])


# ---------------------------------------------------------------------------------------------
# extraction rules, one small record each


def res(r: dict) -> tuple[str, ...]:
    return parse_record(r).resources


def test_run_instances_response_instances_set_and_request_subnet():
    r = rec("RunInstances", req={"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1}]},
                                 "subnetId": "subnet-0aa"},
            resp={"instancesSet": {"items": [{"instanceId": "i-0abc", "vpcId": "vpc-9"},
                                             {"instanceId": "i-0def"}]}})
    assert res(r) == (arn("subnet/subnet-0aa"), arn("instance/i-0abc"), arn("vpc/vpc-9"), arn("instance/i-0def"))


def test_describe_instances_request_instances_set():
    r = rec("StopInstances", req={"instancesSet": {"items": [{"instanceId": "i-1"}, {"instanceId": "i-1"}]}})
    assert res(r) == (arn("instance/i-1"),)  # deduplicated


def test_create_tags_resources_set_by_id_prefix():
    r = rec("CreateTags", req={"resourcesSet": {"items": [{"resourceId": "vol-1"}, {"resourceId": "snap-2"},
                                                          {"resourceId": "sg-3"}, {"resourceId": "weird"}]},
                               "tagSet": {"items": [{"key": "team", "value": "x"}]}})
    assert res(r) == (arn("volume/vol-1"), arn("snapshot/snap-2"), arn("security-group/sg-3"))


def test_ec2_top_level_ids_and_non_ec2_ids_ignored():
    r = rec("AttachVolume", req={"volumeId": "vol-9", "instanceId": "i-9", "networkInterfaceId": "eni-1",
                                 "groupId": "not-an-sg"})
    assert res(r) == (arn("volume/vol-9"), arn("instance/i-9"), arn("network-interface/eni-1"))
    connect = rec("DescribeInstance", source="connect.amazonaws.com", req={"instanceId": "5f2e-uuid"})
    assert res(connect) == ()


def test_rds_identifiers_and_response_arn():
    r = rec("CreateDBInstance", source="rds.amazonaws.com", req={"dBInstanceIdentifier": "orders-db"},
            resp={"dBInstanceArn": arn("db:orders-db", "rds"), "dBClusterIdentifier": "c1"})
    assert res(r) == (arn("db:orders-db", "rds"), arn("cluster:c1", "rds"))


def test_lambda_function_name_forms_and_alias_arn():
    name = rec("Invoke", source="lambda.amazonaws.com", req={"functionName": "resize"})
    alias = rec("UpdateAlias20150331", source="lambda.amazonaws.com",
                req={"functionName": arn("function:resize:live", "lambda")})
    qualified = rec("Invoke", source="lambda.amazonaws.com", req={"functionName": "resize:3"})
    partial = rec("Invoke", source="lambda.amazonaws.com", req={"functionName": f"{ACCT}:function:resize"})
    created = rec("CreateFunction20150331", source="lambda.amazonaws.com", req={"functionName": "resize"},
                  resp={"functionArn": arn("function:resize", "lambda")})
    want = (arn("function:resize", "lambda"),)
    for r in (name, alias, qualified, partial, created):
        assert res(r) == want, r
    assert parse_record(created).event_name == "CreateFunction20150331"


def test_s3_bucket_name_and_object_arn():
    r = rec("PutObject", source="s3.amazonaws.com", req={"bucketName": "logs", "key": "a/b"},
            resources=[{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::logs/a/b"}])
    assert res(r) == ("arn:aws:s3:::logs",)


def test_dynamodb_table_name_only_for_dynamodb():
    r = rec("PutItem", source="dynamodb.amazonaws.com", req={"tableName": "orders"})
    assert res(r) == (arn("table/orders", "dynamodb"),)
    glue = rec("GetPartitions", source="glue.amazonaws.com", req={"tableName": "orders", "databaseName": "d"})
    assert res(glue) == ()
    created = rec("CreateTable", source="dynamodb.amazonaws.com", req={"tableName": "t2"},
                  resp={"tableDescription": {"tableArn": arn("table/t2", "dynamodb"), "tableName": "t2"}})
    assert res(created) == (arn("table/t2", "dynamodb"),)


def test_ecs_cluster_service_task_definition():
    r = rec("UpdateService", source="ecs.amazonaws.com",
            req={"cluster": "prod", "service": "web", "taskDefinition": "web:7"},
            resp={"service": {"serviceArn": arn("service/prod/web", "ecs"),
                              "clusterArn": arn("cluster/prod", "ecs")}})
    assert res(r) == (arn("cluster/prod", "ecs"), arn("service/prod/web", "ecs"), arn("task-definition/web:7", "ecs"))


def test_elb_arns_names_and_lists():
    lb = arn("loadbalancer/app/web/abc", "elasticloadbalancing")
    r = rec("DescribeTags", source="elasticloadbalancing.amazonaws.com", req={"resourceArns": [lb]})
    assert res(r) == ()  # resourceArns is not a load-balancer key
    r = rec("DescribeLoadBalancers", source="elasticloadbalancing.amazonaws.com", req={"loadBalancerArns": [lb, 3]})
    assert res(r) == (lb,)
    created = rec("CreateLoadBalancer", source="elasticloadbalancing.amazonaws.com", req={"name": "web"},
                  resp={"loadBalancers": [{"loadBalancerArn": lb}]})
    assert res(created) == (lb,)
    classic = rec("DeleteLoadBalancer", source="elasticloadbalancing.amazonaws.com", req={"loadBalancerName": "old"})
    assert res(classic) == (arn("loadbalancer/old", "elasticloadbalancing"),)


def test_sqs_queue_url_and_name():
    r = rec("SendMessage", source="sqs.amazonaws.com",
            req={"queueUrl": f"https://sqs.eu-west-1.amazonaws.com/{ACCT}/jobs"})
    assert res(r) == (f"arn:aws:sqs:eu-west-1:{ACCT}:jobs",)
    assert sqs_arn_from_url(f"https://us-west-2.queue.amazonaws.com/{ACCT}/q") == f"arn:aws:sqs:us-west-2:{ACCT}:q"
    assert sqs_arn_from_url("https://sqs.amazonaws.com/", REGION, ACCT) is None
    created = rec("CreateQueue", source="sqs.amazonaws.com", req={"queueName": "jobs"})
    assert res(created) == (f"arn:aws:sqs:{REGION}:{ACCT}:jobs",)


def test_sns_topic_arn_and_create_topic_name():
    topic = f"arn:aws:sns:{REGION}:{ACCT}:alerts"
    assert res(rec("Publish", source="sns.amazonaws.com", req={"topicArn": topic})) == (topic,)
    assert res(rec("CreateTopic", source="sns.amazonaws.com", req={"name": "alerts"})) == (topic,)
    assert res(rec("CreatePlatformApplication", source="sns.amazonaws.com", req={"name": "app"})) == ()


def test_resources_array_lowercase_arn_and_non_strings_ignored():
    r = rec("X", req={"instanceId": 5, "bucketName": None, "volumeId": ["vol-1"]},
            resources=[{"arn": arn("instance/i-7")}, {"ARN": 12}, "nope"])
    assert res(r) == (arn("instance/i-7"),)


def test_region_and_account_for_built_arns_come_from_the_record():
    r = rec("Invoke", source="lambda.amazonaws.com", req={"functionName": "f"}, awsRegion="ap-south-1",
            recipientAccountId="999999999999")
    assert res(r) == ("arn:aws:lambda:ap-south-1:999999999999:function:f",)


def test_request_parameters_as_json_text():
    r = rec("X", req=json.dumps({"bucketName": "b"}))
    assert res(r) == ("arn:aws:s3:::b",)


# ---------------------------------------------------------------------------------------------
# principals and scalar fields


def who(ui: dict | None, **extra) -> tuple:
    e = parse_record(rec(userIdentity=ui, **extra))
    return e.principal, e.principal_type, e.role, e.session, e.person


def test_assumed_role_sso_and_email_sessions_are_people():
    sso = {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCT}:assumed-role/AWSReservedSSO_Admin_12ab/jane"}
    assert who(sso) == ("role:AWSReservedSSO_Admin_12ab", "AssumedRole", "AWSReservedSSO_Admin_12ab", "jane", "jane")
    email = {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCT}:assumed-role/okta-dev/jo@example.com",
             "sessionContext": {"sessionIssuer": {"userName": "okta-dev"}}}
    assert who(email)[4] == "jo@example.com"
    bot = {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCT}:assumed-role/ci-deployer/build-42",
           "sessionContext": {"sessionIssuer": {"userName": "ci-deployer"}}}
    assert who(bot) == ("role:ci-deployer", "AssumedRole", "ci-deployer", "build-42", None)
    issuer_only = {"type": "AssumedRole", "principalId": "AROAX:sess",
                   "sessionContext": {"sessionIssuer": {"userName": "r"}}}
    assert who(issuer_only) == ("role:r", "AssumedRole", "r", "sess", None)


def test_other_identity_types():
    assert who({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCT}:user/ops/bob"})[0::4] == ("user:bob", "bob")
    assert who({"type": "Root", "accountId": ACCT})[0] == f"root:{ACCT}"
    assert who({"type": "Root"})[0] == f"root:{ACCT}"  # falls back to the recipient account
    assert who({"type": "AWSService", "invokedBy": "events.amazonaws.com"})[0] == "service:events.amazonaws.com"
    assert who({"type": "AWSService"})[0] == "service:ec2.amazonaws.com"  # the event source
    assert who({"type": "FederatedUser", "arn": f"arn:aws:sts::{ACCT}:federated-user/carol"})[0::4] == (
        "federated:carol", "carol")
    assert who({"type": "AWSAccount", "accountId": "111122223333"})[0] == "account:111122223333"
    assert who({"invokedBy": "secretsmanager.amazonaws.com"})[0] == "service:secretsmanager.amazonaws.com"
    assert who(None)[0] == "unknown"
    assert who({"type": "Unknown", "userName": "x"})[0] == "unknown"


def test_scalar_fields_are_kept():
    e = parse_record(rec(errorCode="AccessDenied", readOnly="true", sourceIPAddress="1.2.3.4", userAgent="cli"))
    assert (e.error_code, e.read_only, e.source_ip, e.user_agent) == ("AccessDenied", True, "1.2.3.4", "cli")
    assert (e.account, e.recipient_account, e.region, e.event_id) == (ACCT, ACCT, REGION, "e1")
    assert parse_record(rec(awsRegion=None), default_region="eu-west-1").region == "eu-west-1"


def test_event_time_forms():
    assert parse_time("2024-05-01T10:00:05Z") == 1714557605.0
    assert parse_time("2020-11-05 21:21:46Z") == parse_time("2020-11-05T21:21:46Z")
    assert parse_time("2024-05-01T12:00:05+02:00") == 1714557605.0
    assert parse_time("2024-05-01T10:00:05") == 1714557605.0  # naive means UTC
    for bad in ("redacted", "...", "", None, 5, "2024-05-01T10:00:xxZ"):
        assert parse_time(bad) is None


def test_parse_record_rejects_unusable_records():
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_record(["x"])
    with pytest.raises(ValueError, match="no eventName"):
        parse_record({"eventSource": "s3.amazonaws.com"})


# ---------------------------------------------------------------------------------------------
# files and bad input


def write(p: Path, data: bytes, gz: bool = False) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


def test_cloudtrail_files_s3_layout(tmp_path):
    base = tmp_path / "cloudtrail/AWSLogs/111/CloudTrail/us-east-1/2024/05/01"
    names = ["a.json", "b.json.gz", "c.jsonl", "d.jsonl.gz", "digest.txt", "e.JSON.GZ"]
    for n in names:
        write(base / n, b"{}")
    got = [p.name for p in cloudtrail_files(tmp_path)]
    assert got == ["a.json", "b.json.gz", "c.jsonl", "d.jsonl.gz", "e.JSON.GZ"]
    assert cloudtrail_files(tmp_path / "missing") == []


def test_accepted_shapes(tmp_path):
    one, two = rec("A"), rec("B")
    shapes = {
        "records.json.gz": (orjson.dumps({"Records": [one, two]}), True),
        "list.json": (orjson.dumps([one, two]), False),
        "lines.jsonl": (orjson.dumps(one) + b"\n\n" + orjson.dumps(two) + b"\n", False),
        "lines.jsonl.gz": (orjson.dumps(one) + b"\n" + orjson.dumps(two), True),
        "wrapped-lines.jsonl": (orjson.dumps({"Records": [one]}) + b"\n" + orjson.dumps({"Records": [two]}), False),
    }
    for name, (data, gz) in shapes.items():
        issues: list[BundleIssue] = []
        events = read_cloudtrail_file(write(tmp_path / name, data, gz), issues)
        assert [e.event_name for e in events] == ["A", "B"], name
        assert issues == [], name
    single = read_cloudtrail_file(write(tmp_path / "one.json", orjson.dumps(one)), [])
    assert [e.event_name for e in single] == ["A"]
    assert read_cloudtrail_file(write(tmp_path / "empty.json", b"  \n"), []) == []


def test_broken_json_is_one_issue(tmp_path):
    issues: list[BundleIssue] = []
    p = write(tmp_path / "bad.json", b'{"Records": [{"eventName": "A", ')
    assert read_cloudtrail_file(p, issues) == []
    assert len(issues) == 1 and issues[0].path == str(p) and issues[0].location == ""
    assert "not valid JSON" in issues[0].message and '{"Records": [...]}' in issues[0].message


def test_wrong_shape_is_one_issue(tmp_path):
    for body in (b'{"Records": {"a": 1}}', b'{"hello": 1}', b"42"):
        issues: list[BundleIssue] = []
        assert read_cloudtrail_file(write(tmp_path / "shape.json", body), issues) == []
        assert len(issues) == 1 and "not CloudTrail" in issues[0].message, body


def test_truncated_gzip_is_one_issue(tmp_path):
    full = gzip.compress(orjson.dumps({"Records": [rec(str(i)) for i in range(200)]}))
    p = write(tmp_path / "cut.json.gz", full[: len(full) // 2])
    issues: list[BundleIssue] = []
    assert read_cloudtrail_file(p, issues) == []
    assert [(i.location, i.message) for i in issues] == [("", "truncated gzip stream")]


def test_bad_records_are_skipped_with_their_number(tmp_path):
    recs = [rec("A"), "not a record", {"eventSource": "x"}, rec("D"), rec("E", eventTime=17)]
    issues: list[BundleIssue] = []
    events = read_cloudtrail_file(write(tmp_path / "mixed.json", orjson.dumps({"Records": recs})), issues)
    assert [e.event_name for e in events] == ["A", "D", "E"]
    assert events[2].time is None
    assert [i.location for i in issues] == ["record 2", "record 3"]
    assert "not a JSON object" in issues[0].message and "no eventName" in issues[1].message


def test_json_lines_with_one_bad_line_keeps_the_rest(tmp_path):
    body = b"\n".join([orjson.dumps(rec("A")), b'{"eventName": "B", oops', orjson.dumps(rec("C")), b"[1, 2]",
                       orjson.dumps(rec("E", readOnly=1))])
    issues: list[BundleIssue] = []
    events = read_cloudtrail_file(write(tmp_path / "l.jsonl.gz", body, gz=True), issues)
    assert [e.event_name for e in events] == ["A", "C", "E"]
    assert [(i.location, i.message.split(" (")[0]) for i in issues] == [
        ("line 2", "not valid JSON"), ("line 4", "record is not a JSON object")]


def test_unreadable_file_is_one_issue(tmp_path):
    issues: list[BundleIssue] = []
    assert read_cloudtrail_file(tmp_path / "nope.json", issues) == []
    assert len(issues) == 1 and "cannot read file" in issues[0].message


def test_event_time_that_is_a_list_or_object_is_no_time(tmp_path):
    recs = [rec("A", eventTime=[1]), rec("B", eventTime={"a": 1}), rec("C")]
    issues: list[BundleIssue] = []
    events = read_cloudtrail_file(write(tmp_path / "t.json", orjson.dumps({"Records": recs})), issues)
    assert [e.time for e in events] == [None, None, 1714557600.0] and issues == []


def test_gzip_members_padding_and_damage():
    from engine.sources.files import UnreadableFile, gunzip

    body = orjson.dumps({"Records": [rec(str(i)) for i in range(50)]})
    assert gunzip(gzip.compress(body[:100]) + gzip.compress(body[100:]) + b"\0" * 8) == body
    with pytest.raises(UnreadableFile, match="^truncated gzip stream$"):
        gunzip(gzip.compress(body)[:-10])
    damaged = bytearray(gzip.compress(body))
    damaged[30:60] = b"\xff" * 30
    with pytest.raises(UnreadableFile, match=r"^corrupt gzip stream \(Error -3 while decompressing data"):
        gunzip(bytes(damaged))

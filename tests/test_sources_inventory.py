"""Tagging API and IAM authorization details readers: real samples and bad input."""

from __future__ import annotations

import csv
import gzip
import json
from urllib.parse import quote

from engine.records import BundleIssue
from engine.sources.inventory import read_iam_details, read_iam_json, read_resources_json


def test_costdna_synthetic_seed0_resources_json(shared_data):
    seed = shared_data / "costdna-synthetic/seed0"
    raw = json.loads((seed / "bundle/resources.json").read_text())["ResourceTagMappingList"]
    issues: list[BundleIssue] = []
    res = read_resources_json(seed / "bundle/resources.json", issues)
    assert issues == []
    assert len(res) == len(raw) == 41
    truth = {r["arn"]: r for r in csv.DictReader((seed / "truth.csv").open())}
    for r in res:
        t = truth[r.arn]
        assert r.tags == {"team": t["team"]} and t["split"] == "train"
        assert r.id == t["resource_id"] and r.sources == {"tagging"}
        assert r.name == r.id and r.region in ("us-east-1", "")
    kinds = {r.kind for r in res}
    assert kinds == {"ec2:instance", "rds:db", "lambda:function", "s3:bucket"}


def test_resources_json_pages_merge_and_bad_entries(tmp_path):
    page1 = {"ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:lambda:us-east-1:1:function:f:prod", "Tags": [{"Key": "team", "Value": "a"}]},
        "nope",
        {"ResourceARN": "i-123", "Tags": []},
    ]}
    page2 = {"ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:lambda:us-east-1:1:function:f", "Tags": [{"Key": "Name", "Value": "Resizer"}]},
        {"ResourceARN": "arn:aws:s3:::b"},
    ]}
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(page1, indent=1) + "\n" + json.dumps(page2))  # pages one after another
    issues: list[BundleIssue] = []
    res = {r.arn: r for r in read_resources_json(path, issues)}
    assert set(res) == {"arn:aws:lambda:us-east-1:1:function:f", "arn:aws:s3:::b"}
    f = res["arn:aws:lambda:us-east-1:1:function:f"]
    assert f.tags == {"team": "a", "Name": "Resizer"} and f.name == "Resizer" and f.id == "f"
    assert res["arn:aws:s3:::b"].kind == "s3:bucket" and res["arn:aws:s3:::b"].tags == {}
    assert [(i.location, i.message.split(" (")[0]) for i in issues] == [
        ("page 1, ResourceTagMappingList[2]", "entry is not a JSON object"),
        ("page 1, ResourceTagMappingList[3]", "ResourceARN is missing or not an ARN"),
    ]
    # A list of pages is the same thing.
    path.write_text(json.dumps([page1, page2]))
    assert len(read_resources_json(path, [])) == 2


def test_resources_json_unreadable(tmp_path):
    bad = tmp_path / "resources.json"
    bad.write_text('{"ResourceTagMappingList": [')
    issues: list[BundleIssue] = []
    assert read_resources_json(bad, issues) == []
    assert len(issues) == 1 and issues[0].message.startswith("not valid JSON")
    bad.write_text('{"Something": []}')
    issues = []
    assert read_resources_json(bad, issues) == []
    assert issues[0].message == 'expected {"ResourceTagMappingList": [...]} (AWS CLI output)'
    gz = tmp_path / "resources.json.gz"
    data = gzip.compress(b'{"ResourceTagMappingList": []}' * 2000)
    gz.write_bytes(data[:-30])
    issues = []
    assert read_resources_json(gz, issues) == [] and issues[0].message == "truncated gzip stream"


def test_iam_cloudsplaining_counts(shared_data):
    path = shared_data / "iam/cloudsplaining/example-authz-details.json"
    issues: list[BundleIssue] = []
    details = read_iam_details(path, issues)
    assert issues == []
    kinds = [p.kind for p in details.principals]
    assert (kinds.count("user"), kinds.count("group"), kinds.count("role")) == (3, 2, 3)
    assert len(details.policies) == 32
    assert read_iam_json(path, []) == details.principals
    by = {p.key: p for p in details.principals}
    assert set(by) == {"user:obama", "user:userwithlotsofpermissions", "user:biden", "group:admin", "group:biden",
                       "role:MyRole", "role:MyOtherRole", "role:OverprivilegedEC2"}
    assert by["user:obama"].groups == ("admin",)
    assert by["user:obama"].policy_resources == ("*",)  # AdministratorAccess, looked up in Policies
    assert by["group:biden"].policy_resources == ("*", "arn:aws:pi:*:*:metrics/rds/*")
    assert by["role:MyRole"].trusted_by == ("ssm.amazonaws.com",)
    assert by["role:OverprivilegedEC2"].trusted_by == ("ec2.amazonaws.com",)
    assert by["role:MyRole"].arn == "arn:aws:iam::012345678901:role/MyRole"


def test_iam_url_encoded_documents_tags_and_deny(tmp_path):
    policy_doc = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]},
                                {"Effect": "Deny", "Action": "*", "Resource": "arn:aws:s3:::secret"}]}
    doc = {
        "RoleDetailList": [{
            "RoleName": "etl", "Arn": "arn:aws:iam::1:role/etl",
            "Tags": [{"Key": "team", "Value": "data"}],
            "AssumeRolePolicyDocument": quote(json.dumps({"Statement": {"Effect": "Allow", "Principal": {
                "AWS": ["arn:aws:iam::1:root"], "Service": "lambda.amazonaws.com"}}})),
            "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": quote(json.dumps(policy_doc))}],
            "AttachedManagedPolicies": [{"PolicyArn": "arn:aws:iam::1:policy/q"}, {"PolicyArn": "arn:aws:iam::1:policy/gone"}],
        }, {"Arn": "no name"}, 7],
        "Policies": [{"Arn": "arn:aws:iam::1:policy/q", "DefaultVersionId": "v2", "PolicyVersionList": [
            {"VersionId": "v1", "Document": {"Statement": [{"Effect": "Allow", "Resource": "old"}]}},
            {"VersionId": "v2", "Document": {"Statement": [{"Effect": "Allow", "Resource": "arn:aws:dynamodb:*:1:table/t"}]}},
        ]}],
    }
    path = tmp_path / "iam.json"
    path.write_text(json.dumps(doc))
    issues: list[BundleIssue] = []
    (role,) = read_iam_json(path, issues)
    assert role.key == "role:etl" and role.tags == {"team": "data"}
    assert role.policy_resources == ("arn:aws:s3:::data", "arn:aws:s3:::data/*", "arn:aws:dynamodb:*:1:table/t")
    assert role.trusted_by == ("arn:aws:iam::1:root", "lambda.amazonaws.com")
    assert [(i.location, i.message) for i in issues] == [
        ("RoleDetailList[2]", "role has no RoleName"),
        ("RoleDetailList[3]", "entry is not a JSON object"),
    ]


def test_iam_wrong_document(tmp_path):
    path = tmp_path / "iam.json"
    path.write_text(json.dumps({"Users": []}))
    issues: list[BundleIssue] = []
    assert read_iam_json(path, issues) == []
    assert len(issues) == 1 and "get-account-authorization-details" in issues[0].message
    path.write_text("not json")
    issues = []
    assert read_iam_json(path, issues) == [] and issues[0].message.startswith("not valid JSON")

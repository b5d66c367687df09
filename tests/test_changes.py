"""engine.sources.changes: successful management events from CloudTrail files, fast and never raising."""

from __future__ import annotations

import copy
import gzip
import json
import time
from pathlib import Path

from engine.activity import USE, fold_files, relation_of
from engine.records import BundleIssue
from engine.sources.changes import (
    DEPLOY_LIKE,
    LAUNCHES,
    ChangeEvent,
    base_name,
    changes_from_bytes,
    changes_to_bytes,
    dedup_changes,
    instance_type_of,
    read_changes,
)
from engine.sources.cloudtrail import cloudtrail_files

ACCOUNT = "111111111111"
SSO = "AWSReservedSSO_PowerUserAccess_0123456789abcdef"


def _ident(session: str = "ana@corp.example", role: str = SSO) -> dict:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}", "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                                                 "accountId": ACCOUNT, "userName": role}}}


def _rec(name: str, source: str, req: dict | None = None, resp: dict | None = None, *, eid: str = "e1",
         t: str = "2026-11-01T10:15:00Z", ident: dict | None = None, **extra) -> dict:
    r = {"eventVersion": "1.09", "userIdentity": ident or _ident(), "eventTime": t, "eventSource": source,
         "eventName": name, "awsRegion": "us-east-1", "requestParameters": req, "responseElements": resp,
         "eventID": eid, "readOnly": False, "recipientAccountId": ACCOUNT}
    r.update(extra)
    return r


RUN = _rec("RunInstances", "ec2.amazonaws.com",
           {"instanceType": "p4d.24xlarge", "instancesSet": {"items": [{"imageId": "ami-1", "minCount": 1}]}},
           {"instancesSet": {"items": [{"instanceId": "i-0aaaabbbbccccdddd"}]}}, eid="run")
MODIFY = _rec("ModifyInstanceAttribute", "ec2.amazonaws.com",
              {"instanceId": "i-0aaaabbbbccccdddd", "instanceType": {"value": "m5.4xlarge"}}, None, eid="mod")
CREATE_DB = _rec("CreateDBInstance", "rds.amazonaws.com",
                 {"dBInstanceIdentifier": "ledger-db", "dBInstanceClass": "db.r6g.2xlarge", "engine": "postgres"},
                 {"dBInstanceIdentifier": "ledger-db"}, eid="db")
MODIFY_DB = _rec("ModifyDBInstance", "rds.amazonaws.com",
                 {"dBInstanceIdentifier": "ledger-db", "dBInstanceClass": "db.r6g.4xlarge"}, None, eid="mdb")
LAMBDA = _rec("UpdateFunctionCode20150331v2", "lambda.amazonaws.com", {"functionName": "ledger-writer"},
              {"functionName": "ledger-writer"}, eid="fn", ident=_ident("GitHubActions", "gha-payments-deploy"))
DENIED = _rec("UpdateService", "ecs.amazonaws.com", {"cluster": "c", "service": "api"}, None, eid="denied",
              errorCode="AccessDenied", errorMessage="no")
TRAFFIC = [_rec("GetObject", "s3.amazonaws.com", {"bucketName": "b", "key": "k"}, None, eid=f"g{i}") for i in range(5)]
TRAFFIC.append(_rec("PutObject", "s3.amazonaws.com", {"bucketName": "b", "key": "k"}, None, eid="put"))
ALL = [RUN, MODIFY, CREATE_DB, MODIFY_DB, LAMBDA, DENIED, *TRAFFIC]


def _by_id(evs: list[ChangeEvent]) -> dict[str, ChangeEvent]:
    return {e.event_id: e for e in evs}


def test_keeps_successful_management_events_only(tmp_path: Path) -> None:
    p = tmp_path / "ct.json"
    p.write_text(json.dumps({"Records": ALL}))
    issues: list[BundleIssue] = []
    evs = read_changes(p, issues)
    assert issues == []
    got = _by_id(evs)
    assert set(got) == {"run", "mod", "db", "mdb", "fn"}
    run = got["run"]
    assert run.event_name == "RunInstances" and run.is_launch and run.instance_type == "p4d.24xlarge"
    assert run.actor == f"role:{SSO}" and run.person == "ana@corp.example"
    assert f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0aaaabbbbccccdddd" in run.resources
    assert run.account == ACCOUNT and run.region == "us-east-1" and run.time == 1793528100.0
    assert got["mod"].instance_type == "m5.4xlarge" and got["mod"].is_deploy_like
    assert got["db"].instance_type == "db.r6g.2xlarge" and got["db"].resources == (
        f"arn:aws:rds:us-east-1:{ACCOUNT}:db:ledger-db",)
    assert got["mdb"].instance_type == "db.r6g.4xlarge"
    fn = got["fn"]
    assert fn.event_name == "UpdateFunctionCode" and fn.is_deploy_like and fn.instance_type is None
    assert fn.actor == "role:gha-payments-deploy" and fn.person is None
    assert fn.resources == (f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:ledger-writer",)


def test_every_format_gives_the_same_events(tmp_path: Path) -> None:
    want = _by_id(read_changes(_write(tmp_path / "a.json", json.dumps({"Records": ALL}).encode()), []))
    variants = {
        "list.json": json.dumps(ALL).encode(),
        "lines.jsonl": "\n".join(json.dumps(r) for r in ALL).encode(),
        "gz.json.gz": gzip.compress(json.dumps({"Records": ALL}).encode()),
        "utf16.json": json.dumps({"Records": ALL}).encode("utf-16"),
        "one.json": json.dumps(RUN).encode(),
    }
    for name, data in variants.items():
        issues: list[BundleIssue] = []
        got = _by_id(read_changes(_write(tmp_path / name, data), issues))
        if name == "one.json":
            assert list(got) == ["run"] and got["run"] == want["run"]
            continue
        assert got == want, name
        assert all("UTF-16" in i.message for i in issues), (name, issues)


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_bad_files_and_records_are_issues_never_exceptions(tmp_path: Path) -> None:
    bad_rec = copy.deepcopy(RUN)
    bad_rec["eventName"] = 42  # not a name: the generic path reports the record
    cases = {
        "empty.json": b"",
        "cut.json.gz": gzip.compress(json.dumps({"Records": ALL}).encode())[:-20],
        "notjson.json": b"this is not json at all",
        "binary.json": b"\x00\x01\x02\x03" * 10,
        "shape.json": b'{"foo": 1}',
        "badrec.json": json.dumps({"Records": [bad_rec, RUN, "nope"]}).encode(),
        "badline.jsonl": (json.dumps(RUN) + "\n{broken\n" + json.dumps(MODIFY)).encode(),
    }
    for name, data in cases.items():
        issues: list[BundleIssue] = []
        evs = read_changes(_write(tmp_path / name, data), issues)
        assert issues, name
        if name == "badrec.json":
            assert [e.event_id for e in evs] == ["run"] and len(issues) == 2
        if name == "badline.jsonl":
            assert {e.event_id for e in evs} == {"run", "mod"} and issues[0].location == "line 2"
    issues = []
    assert read_changes(tmp_path / "missing.json", issues) == [] and len(issues) == 1


def test_real_samples(shared_data: Path) -> None:
    files = sorted((shared_data / "cloudtrail/invictus/CloudTrail").glob("*.json"))
    files.append(shared_data / "cloudtrail/panther/panther_cloudtrail_test_events.json")
    issues: list[BundleIssue] = []
    evs = [e for f in files for e in read_changes(f, issues)]
    assert issues == []
    assert len(evs) > 200
    for e in evs:
        assert relation_of(e.event_name) != USE and e.resources and e.time > 0
    types = {(e.event_name, e.instance_type) for e in evs if e.instance_type}
    assert ("RunInstances", "t3.micro") in types  # invictus
    assert ("RunInstances", "p2.xlarge") in types  # panther, through an Auto Scaling service role
    assert ("CreateDBInstance", "db.t3.micro") in types
    assert any(e.event_name == "UpdateFunctionConfiguration" and e.is_deploy_like for e in evs)


def test_matches_the_scans_change_log(tiny_org: Path) -> None:
    """The same events, actors and resources as engine.activity's change log, less errors."""
    files = cloudtrail_files(tiny_org / "bundle")
    issues: list[BundleIssue] = []
    evs = dedup_changes(e for f in files for e in read_changes(f, issues))
    assert issues == []
    act, _ = fold_files(files)
    rows = [r for r in act.changes.to_pylist() if r["error_code"] is None and r["time"] is not None]
    want = {(r["event_id"], base_name(r["event_name"]), r["principal"], r["person"], tuple(r["resources"]))
            for r in rows}
    got = {(e.event_id, e.event_name, e.actor, e.person, e.resources) for e in evs}
    assert got == want
    assert any(e.event_name in DEPLOY_LIKE for e in evs)


def test_event_sets_and_names() -> None:
    assert {"UpdateFunctionCode", "UpdateService", "RegisterTaskDefinition", "ModifyInstanceAttribute",
            "ModifyDBInstance", "CreateDeployment", "UpdateStack", "PublishVersion"} <= DEPLOY_LIKE
    assert {"RunInstances", "CreateDBInstance"} <= LAUNCHES
    assert not DEPLOY_LIKE & {"GetObject", "PutObject", "Invoke", "Publish"}
    assert base_name("UpdateFunctionConfiguration20150331v2") == "UpdateFunctionConfiguration"
    assert base_name("PublishVersion20150331") == "PublishVersion"
    assert base_name("RunInstances") == "RunInstances"
    assert instance_type_of("ModifyInstanceAttribute", {"instanceType": {"value": "c5.large"}}) == "c5.large"
    assert instance_type_of("RunInstances", {"launchTemplate": {}}) is None
    assert instance_type_of("UpdateTable", {"instanceType": "x"}) is None


def test_bytes_round_trip_and_dedup() -> None:
    evs = [ChangeEvent(1.5, "a", "RunInstances", "ec2.amazonaws.com", "role:x", "ana@corp", ("arn:1", "arn:2"),
                       "m5.large", ACCOUNT, "us-east-1"),
           ChangeEvent(0.5, "b", "UpdateService", "ecs.amazonaws.com", "role:ci", None, ("arn:3",), None)]
    b = changes_to_bytes(evs)
    assert changes_from_bytes(b) == evs
    assert changes_from_bytes(changes_to_bytes([])) == [] and changes_from_bytes(b"") == []
    assert [e.event_id for e in dedup_changes(evs + evs)] == ["b", "a"]
    many = [ChangeEvent(float(i), f"id{i}", "UpdateFunctionCode", "lambda.amazonaws.com", "role:gha-deployer", None,
                        (f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:fn-{i % 500}",), None, ACCOUNT, "us-east-1")
            for i in range(20_000)]
    assert len(changes_to_bytes(many)) < 20_000 * 40  # a few dozen bytes an event at most


def test_an_hour_of_a_large_org_reads_fast(tmp_path: Path) -> None:
    """~80,000 records (nearly all traffic) in four files: well under a second or two."""
    traffic = [_rec("GetItem", "dynamodb.amazonaws.com", {"tableName": f"t{i % 3000}"}, None, eid=f"t{i}",
                    t=f"2026-11-01T10:{i % 60:02d}:{i % 59:02d}Z",
                    ident=_ident(f"session-{i % 400}", f"svc-{i % 200}"))
                for i in range(20_000)]
    changes = [copy.deepcopy(LAMBDA) | {"eventID": f"c{i}"} for i in range(200)]
    paths = []
    for k in range(4):
        p = tmp_path / f"{k}.json.gz"
        p.write_bytes(gzip.compress(json.dumps({"Records": traffic + changes}).encode(), 1))
        paths.append(p)
    t0 = time.perf_counter()
    issues: list[BundleIssue] = []
    evs = [e for p in paths for e in read_changes(p, issues)]
    took = time.perf_counter() - t0
    assert issues == [] and len(evs) == 800
    assert took < 2.0, f"{took:.2f} s for 80,800 records"


def _random_window(n: int = 3000, seed: int = 7) -> list[ChangeEvent]:
    """Events with repeats (same id and time), events without an id, time ties, shared roles behind
    several persons, launches, creations and type changes."""
    import random

    rnd = random.Random(seed)
    names = ["RunInstances", "CreateBucket", "UpdateFunctionCode", "ModifyInstanceAttribute", "PutBucketTagging",
             "CreateDBInstance", "UpdateService", "DeleteBucket", "StartInstances"]
    evs = []
    for i in range(n):
        name = rnd.choice(names)
        k = rnd.randint(1, 3)
        res = tuple(dict.fromkeys(f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-{rnd.randint(0, 60)}" for _ in range(k)))
        itype = rnd.choice(["m5.large", "m5.xlarge", "r5.2xlarge"]) if name in (
            "RunInstances", "ModifyInstanceAttribute", "CreateDBInstance") and rnd.random() < 0.7 else None
        ev = ChangeEvent(float(rnd.randint(0, 400) * 900), "" if rnd.random() < 0.05 else f"id{i}", name,
                         "ec2.amazonaws.com", f"role:r{rnd.randint(0, 6)}",
                         rnd.choice([None, "ana@corp", "bob@corp", "cy@corp", "dee"]), res, itype, ACCOUNT, "us-east-1")
        evs.append(ev)
        if rnd.random() < 0.05:
            evs.append(copy.copy(ev))  # CloudTrail delivered it twice
    return evs


def test_window_table_dedups_and_sorts_like_dedup_changes() -> None:
    from engine.sources.changes import changes_table, concat_tables, table_events, window_order

    evs = _random_window()
    half = len(evs) // 2
    table = concat_tables([changes_table(evs[:half]), changes_table(evs[half:])])  # two stored parts
    win = table.take(window_order(table, None))
    assert table_events(win) == dedup_changes(evs)
    cut = 200 * 900.0
    assert table_events(table.take(window_order(table, cut))) == [e for e in dedup_changes(evs) if e.time >= cut]
    assert table_events(win, [3, 1]) == [dedup_changes(evs)[3], dedup_changes(evs)[1]]
    assert table_events(table.slice(5, 4)) == evs[5:9]  # sliced tables too


def test_essential_rows_answer_as_the_whole_window() -> None:
    """Novelty, creators and their teams, and the people on a resource come out the same from the
    essential rows as from every event: the watch builds objects only for those."""
    from types import SimpleNamespace

    from engine.creators import acts_of_changes, creators_of_changes
    from engine.sources.changes import changes_table, essential_rows, rows_near, table_events, window_order
    from engine.spikes import _novelty
    from engine.watch import creator_teams
    from jobs.watch import _people

    table = changes_table(_random_window())
    win = table.take(window_order(table, None))
    full = table_events(win)
    rows = essential_rows(win)
    sub = table_events(win, rows)
    assert 0 < len(sub) < len(full)
    arns = sorted({a for e in full for a in e.resources})
    index = {a: i for i, a in enumerate(arns[:-5])}  # a few resources without cost
    series = SimpleNamespace(index=index.get)
    assert _novelty(series, sub, LAUNCHES) == _novelty(series, full, LAUNCHES)
    owners = {a: (f"team{i % 3}", 0.9, "tag") for i, a in enumerate(arns[::2])}
    assert creator_teams(sub, [], owners) == creator_teams(full, [], owners)
    assert _people(sub) == _people(full)
    assert creators_of_changes(sub) == creators_of_changes(full)
    assert set(acts_of_changes(sub)) == set(acts_of_changes(full))
    times = win.column("time").to_numpy()
    near = rows_near(win, [(9000.0, 18000.0), (300 * 900.0, 301 * 900.0)])
    assert [full[i] for i in near] == [e for e in full if 9000 <= e.time <= 18000 or 270000 <= e.time <= 270900]
    assert list(near) == sorted(near) and len(times) == len(full)

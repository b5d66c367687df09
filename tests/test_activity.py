"""engine.activity: folding events keeps who-did-what without keeping every event."""

import gzip
import hashlib
from pathlib import Path

import orjson
import pytest

import engine.activity as activity
from engine.activity import CREATE, MANAGE, USE, Activity, actors_of, fold_cloudtrail, fold_files, relation_of
from engine.records import Event
from engine.sources.cloudtrail import cloudtrail_files, read_cloudtrail_file

FN = "arn:aws:lambda:us-east-1:1:function:settle"


def ev(name, principal="role:ci", t=1_700_000_000.0, person=None, err=None, res=(FN,)):
    return Event(event_id=name + str(t), time=t, event_source="lambda.amazonaws.com", event_name=name,
                 principal=principal, principal_type="AssumedRole", person=person, resources=res, error_code=err,
                 account="1")


def test_relations_separate_administration_from_traffic():
    assert relation_of("CreateFunction20150331") == CREATE
    assert relation_of("RunInstances") == CREATE
    assert relation_of("UpdateFunctionCode20150331v2") == MANAGE
    assert relation_of("PutBucketPolicy") == MANAGE
    assert relation_of("PutObject") == USE  # a data-plane write is traffic
    assert relation_of("Publish") == USE
    assert relation_of("Invoke") == USE
    assert relation_of("GetItem") == USE


def test_people_behind_shared_roles_are_actors_too():
    a = Activity()
    a.add(ev("Invoke", principal="role:AWSReservedSSO_Power_1", person="ana@corp"))
    assert (FN, "role:AWSReservedSSO_Power_1", USE) in a.pairs
    assert (FN, "person:ana@corp", USE) in a.pairs
    assert a.actor_kinds["person:ana@corp"] == "person"


def test_fold_and_merge_agree():
    events = [ev("CreateFunction20150331", t=100.0), ev("Invoke", t=200.0), ev("Invoke", t=3600 * 5.0),
              ev("UpdateFunctionCode", principal="role:other", t=400.0, err="AccessDenied"),
              ev("ListFunctions", res=())]
    whole = Activity()
    for e in events:
        whole.add(e)
    left, right = Activity(), Activity()
    for e in events[:2]:
        left.add(e)
    for e in events[2:]:
        right.add(e)
    left.merge(right)
    for a in (whole, left):
        assert a.records == 5 and a.records_without_resource == 1
        inv = a.pairs[(FN, "role:ci", USE)]
        assert inv.count == 2 and inv.first == 200.0 and inv.last == 18000.0
        assert inv.mean_time == (200.0 + 18000.0) / 2
        assert a.pairs[(FN, "role:other", MANAGE)].errors == 1
        assert a.creators[FN][1] == "role:ci"
        assert sum(a.hours[FN]) == 4
        assert a.hours[FN][5] == 1
        assert a.first_time == 100.0 and a.last_time == 18000.0


def test_failed_create_does_not_make_a_creator():
    a = Activity()
    a.add(ev("CreateFunction20150331", principal="role:intruder", err="AccessDenied"))
    assert FN not in a.creators


# ---------------------------------------------------------------------------------------------
# The fused fold (engine.activity.fold_files) gives exactly what Activity.add gives over Events.

ACCT = "123456789012"


def by_events(paths, default_region=None, files_once=False):
    """The reference: Activity.add over the Events, each event once (by eventID, time, actors, resources
    and, but for use records, event name and source) and, with ``files_once``, each file's bytes once."""
    act, issues, seen, files = Activity(), [], set(), set()
    for p in paths:
        if files_once and Path(p).exists():
            digest = hashlib.blake2b(Path(p).read_bytes()).digest()
            if digest in files:
                continue
            files.add(digest)
        for e in read_cloudtrail_file(Path(p), issues, default_region):
            if e.event_id:
                named = relation_of(e.event_name) != USE  # use (data-plane) records: not by name
                key = (e.event_id, e.time, *((actors_of(e), e.resources, named and e.event_name,
                                              named and e.event_source) if e.resources else ()))
                if key in seen:
                    # A copy adds nothing but what its resources' first record says (event name and
                    # region), as the fold notes a spread's first record before checking copies; with
                    # real, unique eventIDs that is its original's name and region anyway.
                    for arn in e.resources:
                        act.event_names.setdefault(arn, set()).add(e.event_name)
                        if e.region and arn not in act.regions:
                            act.regions[arn] = e.region
                    continue
                seen.add(key)
            act.add(e)
    return act, issues


def assert_same(fused: Activity, folded: Activity) -> None:
    for name in ("hours", "weekdays", "days", "event_names", "creators", "regions", "actor_kinds", "actor_accounts",
                 "records", "records_without_resource", "first_time", "last_time"):
        assert getattr(fused, name) == getattr(folded, name), name
    # Same pairs, in the same order, with the same numbers (sums of whole seconds are exact).
    assert list(fused.pairs) == list(folded.pairs)
    for key, ps in folded.pairs.items():
        mine = fused.pairs[key]
        assert (mine.count, mine.errors, mine.first, mine.last, mine.time_sum, mine.timed) == (
            ps.count, ps.errors, ps.first, ps.last, ps.time_sum, ps.timed), key
    for name in ("event_names", "regions", "actor_kinds", "actor_accounts", "creators"):
        assert list(getattr(fused, name)) == list(getattr(folded, name)), name
    # The same create and manage events, in the same order.
    assert fused.changes.schema == folded.changes.schema == activity.CHANGE_SCHEMA
    assert fused.changes.to_pylist() == folded.changes.to_pylist()


def check(paths, default_region=None) -> tuple[Activity, list]:
    folded, want = by_events(paths, default_region)
    act, issues = Activity(), []
    fold = activity._Fold(act, default_region, seen=activity.SeenEvents())
    for p in paths:
        fold.file(str(p), issues)
    fold.flush()
    assert_same(act, folded)
    assert issues == want
    if default_region is None:
        once, want = by_events(paths, files_once=True)
        fused, issues = fold_files(paths)
        assert_same(fused, once)
        assert issues == want
    return act, issues


@pytest.fixture
def tiny_caches(monkeypatch):
    """Batches of 7 records, caches of 5 entries, a flush every 50 records: every path gets taken."""
    monkeypatch.setattr(activity, "_BATCH", 7)
    monkeypatch.setattr(activity, "_LOCAL_MAX", 5)
    monkeypatch.setattr(activity, "_RAW_MAX", 5)
    monkeypatch.setattr(activity, "_PENDING_MAX", 50)


def synthetic_files(shared_data: Path) -> list[Path]:
    return cloudtrail_files(shared_data / "costdna-synthetic/seed0/bundle")


def invictus_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "cloudtrail/invictus/CloudTrail").glob("*.json"))


def test_fused_fold_matches_events_on_costdna_synthetic(shared_data):
    act, issues = check(synthetic_files(shared_data))
    assert act.records == 68955 and issues == []
    assert len(act.pairs) > 300 and len(act.hours) == 66 and act.creators


def test_fused_fold_matches_events_on_invictus_and_panther(shared_data):
    act, issues = check(invictus_files(shared_data))
    assert act.records == 2900 and issues == [] and act.records_without_resource
    act, issues = check([shared_data / "cloudtrail/panther/panther_cloudtrail_test_events.json"])
    # Rule-test fixtures that reuse made-up eventIDs ("1", "1111"...): those of one time, actors,
    # resources and (but for data-plane use) event name count once, as do those naming no resource
    # of one time.
    assert act.records == 295 and act.duplicates == 455 - 295 and issues == []
    check([*invictus_files(shared_data)[:20], shared_data / "cloudtrail/panther/panther_cloudtrail_test_events.json"])


def test_fused_fold_matches_events_with_tiny_batches_and_caches(shared_data, tiny_caches):
    check(synthetic_files(shared_data)[:12])
    check([*invictus_files(shared_data), shared_data / "cloudtrail/panther/panther_cloudtrail_test_events.json"])


def test_fold_cloudtrail_in_one_process_matches_events(shared_data):
    paths = synthetic_files(shared_data)[:40]
    folded, want = by_events(paths)
    issues: list = []
    seen: list[float] = []
    assert_same(fold_cloudtrail(paths, issues, workers=1, progress=seen.append), folded)
    assert issues == want and seen[-1] == 1.0 and len(seen) == len(paths)


def rec(name="Invoke", t="2024-05-01T10:00:05Z", fn="f", **extra) -> dict:
    r = {"eventVersion": "1.08", "eventTime": t, "eventSource": "lambda.amazonaws.com", "eventName": name,
         "awsRegion": "us-east-1", "recipientAccountId": ACCT,
         "userIdentity": {"type": "AssumedRole", "accountId": ACCT,
                          "arn": f"arn:aws:sts::{ACCT}:assumed-role/ci/build-1",
                          "sessionContext": {"sessionIssuer": {"userName": "ci"}}},
         "requestParameters": {"functionName": fn}, "responseElements": None}
    r.update(extra)
    return {k: v for k, v in r.items() if v is not ...}


def write(tmp_path: Path, name: str, body: bytes, gz: bool = False) -> Path:
    p = tmp_path / name
    p.write_bytes(gzip.compress(body) if gz else body)
    return p


def test_fused_fold_matches_events_on_odd_records(tmp_path):
    sso = {"type": "AssumedRole", "accountId": "210987654321",
           "arn": "arn:aws:sts::210987654321:assumed-role/AWSReservedSSO_Dev_1/ana@corp"}
    recs = [
        rec("CreateFunction20150331", t="2024-05-01T09:59:59Z"),
        rec("CreateFunction20150331", t="2024-05-01T09:59:58Z", errorCode="AccessDenied"),  # no creator
        rec("CreateFunction20150331", fn="g", t=...),  # created at no known time
        rec(t="2024-05-01T10:00:05Z"), rec(t="2024-05-01T10:00:05Z"), rec(t="2024-05-01T10:59:59Z"),
        rec(t="2024-05-02T00:00:00Z", errorCode=""), rec(t="2024-05-02T00:00:00Z", errorCode=5),
        rec(t="redacted"), rec(t=None), rec(t=17), rec(t=[1, 2]), rec(t={"a": 1}),
        rec(t="2024-05-01T10:00:00.5Z"), rec(t="2024-05-01T10:00:00.25Z"), rec(t="2024-05-01T12:00:05+02:00"),
        rec(t="2024-05-01T10:00:60Z"), rec(t="2024-05-01T10:00:99Z"), rec(t="2024-05-01T10:00:٣٤Z"),
        rec(t="2024-05-01T10:01:²³Z"),  # parse_time raises: one issue
        rec(t="2020-11-05 21:21:46Z"), rec(t="2024-05-01T10:00:05"),
        rec(eventName=None), rec(eventName=""), rec(eventName=7),
        rec(userIdentity=sso), rec(userIdentity=sso, eventName="UpdateFunctionCode20150331v2"),
        rec(userIdentity=None), rec(userIdentity={"type": "AWSService"}),  # service: the event source
        rec(userIdentity={"type": "Root"}, recipientAccountId=...),  # root of no known account
        rec(userIdentity={"type": "Root"}),
        rec(recipientAccountId=..., fn="h"), rec(recipientAccountId=..., fn="h", userIdentity=sso),  # caller's account
        rec(awsRegion=..., fn="i"), rec(eventSource=..., fn="j"), rec(eventSource=5, fn="j"),
        rec("ListFunctions", requestParameters=None),
        rec("PutObject", eventSource="s3.amazonaws.com", requestParameters={"bucketName": "b", "key": "k1"}),
        rec("PutObject", eventSource="s3.amazonaws.com", requestParameters={"bucketName": "b", "key": "k2"},
            awsRegion="eu-west-1"),
        rec("PutObject", eventSource="s3.amazonaws.com", requestParameters=orjson.dumps({"bucketName": "c"}).decode()),
        rec("RunInstances", eventSource="ec2.amazonaws.com", requestParameters={},
            responseElements={"instancesSet": {"items": [{"instanceId": "i-0abc"}, {"instanceId": "i-0def"}]}}),
        rec("DoThing", resources=[{"ARN": f"arn:aws:sqs:us-east-1:{ACCT}:q"}, {"arn": 5}, "x"]),
    ]
    body = orjson.dumps({"Records": recs})
    _, issues = check([write(tmp_path, "a.json", body), write(tmp_path, "b.json.gz", body, gz=True)])
    assert [i.location for i in issues] == ["record 20", "record 23", "record 24", "record 25"] * 2
    _, issues = check([write(tmp_path, "c.json", body)], default_region="ap-south-1")
    assert len(issues) == 4


def test_fused_fold_matches_events_whatever_the_file(tmp_path):
    good = orjson.dumps({"Records": [rec(), rec("UpdateFunctionCode20150331v2", fn="g")]})
    lines = b"\n".join([orjson.dumps(rec()), b'{"eventName": "B", oops', orjson.dumps(rec(fn="k")), b"[1, 2]"])
    paths = [
        write(tmp_path, "good.json", good),
        write(tmp_path, "list.json", orjson.dumps([rec(), rec(fn="l")])),  # a bare list: the generic path
        write(tmp_path, "mixed.json", orjson.dumps({"Records": [rec(fn="m"), "not a record", {"eventSource": "x"}]})),
        write(tmp_path, "lines.jsonl.gz", lines, gz=True),
        write(tmp_path, "members.json.gz", gzip.compress(good) + gzip.compress(b" ") + b"\0\0"),
        write(tmp_path, "cut.json.gz", gzip.compress(good)[:40]),
        write(tmp_path, "empty.json", b"  \n"),
        write(tmp_path, "shape.json", b'{"Records": {"a": 1}}'),
        write(tmp_path, "broken.json", b'{"Records": [1'),
        write(tmp_path, "again.json", good),
        tmp_path / "missing.json",
    ]
    act, issues = check(paths)
    assert act.records == 2 + 2 + 1 + 2 + 2 + 2
    assert {Path(i.path).name for i in issues} == {"mixed.json", "lines.jsonl.gz", "cut.json.gz", "shape.json",
                                                   "broken.json", "missing.json"}


def test_fused_fold_first_seen_updates_follow_record_order(tmp_path):
    # The same bucket from two regions: the region of its first record wins, as with add; a bad
    # record in the batch sends it record by record and must not change that.
    s3 = {"eventSource": "s3.amazonaws.com", "requestParameters": {"bucketName": "b"}}
    recs = [rec("GetObject", awsRegion="eu-west-1", **s3), rec("GetObject", awsRegion="us-west-2", **s3),
            rec("PutObject", awsRegion="us-west-2", **s3)]
    act, _ = check([write(tmp_path, "a.json", orjson.dumps({"Records": recs}))])
    assert act.regions["arn:aws:s3:::b"] == "eu-west-1"
    bad = [rec("GetObject", awsRegion="us-west-2", t="2024-05-01T10:01:²³Z", **s3), *recs]
    act, issues = check([write(tmp_path, "b.json", orjson.dumps({"Records": bad}))])
    assert act.regions["arn:aws:s3:::b"] == "eu-west-1" and [i.location for i in issues] == ["record 1"]


def test_fold_cloudtrail_in_workers_matches_events(shared_data, monkeypatch):
    monkeypatch.setattr(activity, "_PARALLEL_BYTES", 0)
    paths = synthetic_files(shared_data)[:60]
    folded, want = by_events(paths)
    issues: list = []
    seen: list[float] = []
    assert_same(fold_cloudtrail(paths, issues, workers=2, progress=seen.append), folded)
    assert issues == want and seen == sorted(seen) and seen[-1] == 1.0
    runs = activity._partition(paths, [p.stat().st_size for p in paths], 2)
    assert [p for r in runs for p in r] == [str(p) for p in paths] and len(runs) == 2


# ---------------------------------------------------------------------------------------------
# Activity.changes: the create and manage events, with their CloudTrail eventID.


def test_changes_keep_create_and_manage_events_with_their_ids(tmp_path):
    sso = {"type": "AssumedRole", "accountId": ACCT,
           "arn": f"arn:aws:sts::{ACCT}:assumed-role/AWSReservedSSO_Dev_1/ana@corp"}
    fn = f"arn:aws:lambda:us-east-1:{ACCT}:function:f"
    recs = [
        rec("CreateFunction20150331", t="2024-05-01T09:00:00Z", eventID="e-create"),
        rec("Invoke", eventID="e-use"),  # data plane: not a change
        rec("UpdateFunctionCode20150331v2", t="2024-05-01T10:00:00Z", eventID="e-update"),
        rec("UpdateFunctionConfiguration20150331v2", t="2024-05-01T10:00:01Z", eventID="e-denied",
            errorCode="AccessDenied", userIdentity=sso),
        rec("UpdateFunctionCode20150331v2", eventID=None),  # no id: left out
        rec("UpdateFunctionCode20150331v2", eventID=""),
        rec("DeleteFunction20150331", t="redacted", eventID="e-delete"),
        rec("ListFunctions", requestParameters=None, eventID="e-list"),  # no resource: left out
        rec("UpdateFunctionCode20150331v2", t="2024-05-01T10:00:00Z", eventID="e-update"),  # a copy: once
    ]
    act, _ = check([write(tmp_path, "a.json", orjson.dumps({"Records": recs}))])
    rows = act.changes.to_pylist()
    assert [r["event_id"] for r in rows] == ["e-create", "e-update", "e-denied", "e-delete"]
    assert rows[0] == {"event_id": "e-create", "time": 1714554000.0, "event_name": "CreateFunction20150331",
                       "event_source": "lambda.amazonaws.com", "principal": "role:ci", "person": None,
                       "resources": [fn], "error_code": None}
    assert rows[2]["principal"] == "role:AWSReservedSSO_Dev_1" and rows[2]["person"] == "ana@corp"
    assert rows[2]["error_code"] == "AccessDenied" and rows[2]["event_name"].startswith("UpdateFunctionConf")
    assert rows[3]["time"] is None
    assert act.pairs[(fn, "role:ci", MANAGE)].count == 4  # splitting groups by event name changes no count
    assert act.duplicates == 1


def test_changes_come_from_real_cloudtrail_on_both_paths(shared_data):
    act, _ = check(invictus_files(shared_data)[:40])
    t = act.changes
    assert t.num_rows > 0 and t.column("event_id").null_count == 0
    names = set(t.column("event_name").to_pylist())
    assert all(relation_of(n) in (CREATE, MANAGE) for n in names)
    # Every kept id is the eventID of a record, and every create or manage record naming a resource is kept.
    want = []
    for p in invictus_files(shared_data)[:40]:
        want += [e.event_id for e in read_cloudtrail_file(p, []) if e.resources and e.event_id
                 and relation_of(e.event_name) != USE]
    assert t.column("event_id").to_pylist() == want


def test_changes_merge_in_order():
    a, b = Activity(), Activity()
    a.add(ev("UpdateFunctionCode", t=1.0))
    a.add(ev("Invoke", t=2.0))
    b.add(ev("CreateFunction20150331", t=3.0))
    b.add(ev("DeleteFunction", t=4.0, err="AccessDenied"))
    a.merge(b)
    a.add(ev("TagResource", t=5.0))
    t = a.changes
    assert t.column("event_id").to_pylist() == ["UpdateFunctionCode1.0", "CreateFunction201503313.0",
                                                "DeleteFunction4.0", "TagResource5.0"]
    assert t.column("error_code").to_pylist() == [None, None, "AccessDenied", None]
    assert t.column("resources").to_pylist() == [[FN]] * 4
    assert len(a.change_log) == 4 and sum(b.num_rows for b in a.iter_changes()) == 4


def test_changes_of_workers_spill_to_files_removed_with_the_activity(shared_data, monkeypatch):
    import gc
    import os

    monkeypatch.setattr(activity, "_PARALLEL_BYTES", 0)
    monkeypatch.setattr(activity, "_CHANGE_CHUNK", 100)
    paths = synthetic_files(shared_data)[:60]
    folded, _ = by_events(paths)
    act = fold_cloudtrail(paths, [], workers=2)
    spill = act.change_log.spill
    assert spill and all(isinstance(p, str) and p.startswith(spill) for p in act.change_log.parts)
    assert len(act.change_log.parts) == 2  # one file per worker
    assert act.changes.to_pylist() == folded.changes.to_pylist() and act.changes.num_rows > 100
    del act
    gc.collect()
    assert not os.path.exists(spill)

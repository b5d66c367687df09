"""engine.activity: folding events keeps who-did-what without keeping every event."""

from engine.activity import CREATE, MANAGE, USE, Activity, relation_of
from engine.records import Event

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

"""engine.creators: an identity's team from what it acts on, a new resource's owner from its creator,
the confidence's calibration on a synthetic org, and the scan's use of it (the user report in issue 9:
an instance launched by a payments engineer through the shared SSO role "fits no team")."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.creators import acts_of_changes, creator_owner, creators_of_changes, person_teams, team_lookup
from engine.scan import NO_TEAM_ANOMALY, PREDICTION_COLUMNS, scan_bundle
from engine.sources.changes import ChangeEvent
from engine.tagrules import TagRules


def test_person_teams_shares_and_smoothing() -> None:
    owner = {f"a{i}": "payments" for i in range(6)} | {"b0": "search", "b1": "search"} | {"c0": "growth"}
    acts = [("person:ana@corp", f"a{i}") for i in range(6)] + [("person:ana@corp", "a0")]  # a repeat counts once
    acts += [("person:bo@corp", "a0"), ("person:bo@corp", "b0"), ("person:bo@corp", "b1")]
    acts += [("role:sso", a) for a in owner] + [("role:ci", "unknown-arn")]
    teams = person_teams(acts, owner)
    assert teams["person:ana@corp"] == ("payments", pytest.approx(6.5 / 7))
    assert teams["person:bo@corp"][0] == "search" and teams["person:bo@corp"][1] == pytest.approx(2.5 / 4)
    assert teams["role:sso"][1] < 0.75  # a shared role spread over teams stays unsure
    assert "role:ci" not in teams  # nothing it touched has a known owner
    one = person_teams([("person:new@corp", "a0")], owner)["person:new@corp"]
    assert one[0] == "payments" and one[1] < teams["person:ana@corp"][1]


def test_creator_owner_prefers_the_person_over_the_role() -> None:
    teams = {"person:ana@corp": ("payments", 0.9), "role:sso": ("search", 0.3), "role:ci-recs": ("recs", 0.95)}
    creators = {"i-1": (1.0, "role:sso", "ana@corp"), "i-2": (1.0, "role:ci-recs", None),
                "i-3": (1.0, "role:sso", "stranger@corp"), "i-4": (1.0, "role:nobody", None)}
    assert creator_owner("i-1", creators, teams) == ("payments", 0.9)
    assert creator_owner("i-2", creators, teams) == ("recs", 0.95)
    assert creator_owner("i-3", creators, teams) == ("search", 0.3)  # the person is unknown: the role says little
    assert creator_owner("i-4", creators, teams) is None
    assert creator_owner("i-5", creators, teams) is None


def test_from_change_events_alone() -> None:
    """What the watch has between scans: change events. The launch's owner comes from the person."""
    sso = "role:AWSReservedSSO_PowerUserAccess_0a1b"
    owner = {f"fn{i}": "payments" for i in range(3)} | {f"tbl{i}": "search" for i in range(3)}
    evs = [ChangeEvent(10.0 + i, f"u{i}", "UpdateFunctionCode", "lambda.amazonaws.com", sso, "ana@corp",
                       (f"fn{i}",), None) for i in range(3)]
    evs += [ChangeEvent(5.0, f"s{i}", "UpdateTable", "dynamodb.amazonaws.com", sso, "bo@corp", (f"tbl{i}",), None)
            for i in range(3)]
    evs.append(ChangeEvent(50.0, "r1", "RunInstances", "ec2.amazonaws.com", sso, "ana@corp", ("i-new", "subnet-1"),
                           "p4d.24xlarge"))
    evs.append(ChangeEvent(60.0, "r2", "RunInstances", "ec2.amazonaws.com", "role:ci", None, ("i-new",), None))
    teams = person_teams(acts_of_changes(evs), owner)
    creators = creators_of_changes(evs)
    assert creators["i-new"] == (50.0, sso, "ana@corp") and "fn0" not in creators
    team, conf = creator_owner("i-new", creators, teams)
    assert team == "payments" and conf > 0.7
    team_of = team_lookup(teams)
    assert team_of("person:ana@corp") == "payments" and team_of(sso) is None and team_of("nobody") is None


def test_confidence_is_calibrated_on_a_synthetic_org(tiny_org: Path, tiny_bundle) -> None:
    """Leave one out: each created resource's owner from its creator, the other resources' owners known
    (as the scan knows them: tags, labels and confident predictions). Accuracy ~ mean confidence."""
    truth = {r["arn"]: r["team"] for r in csv.DictReader((tiny_org / "truth.csv").open())}
    owners = {a: t for a, t in truth.items() if t != "unowned"}
    act = tiny_bundle.activity
    acts = [(actor, arn) for arn, actor, _rel in act.pairs]
    confs, right = [], []
    for arn in act.creators:
        if arn not in truth:
            continue
        teams = person_teams([p for p in acts if p[1] != arn], {a: t for a, t in owners.items() if a != arn})
        hit = creator_owner(arn, act.creators, teams)
        if hit is not None:
            confs.append(hit[1])
            right.append(hit[0] == truth[arn])
    assert len(confs) >= 5
    assert abs(float(np.mean(right)) - float(np.mean(confs))) <= 0.1, (np.mean(right), np.mean(confs))


# ------------------------------------------------------------------------------------------------
# the scan: a payments engineer launches an expensive instance through the shared SSO role

ENGINEER = "dana.lopez@corp.example"
NEW_INSTANCE = "i-0feedfacecafe1234"


def _identity(account: str, role: str, session: str) -> dict:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLEEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEEXAMPLE",
                                                 "arn": f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}",
                                                 "accountId": account, "userName": role}}}


def _plant_launch(bundle: Path) -> tuple[str, str]:
    """Add a CloudTrail file: the engineer tags four of one team's tagged resources, then launches a
    p4d.24xlarge through the shared SSO PowerUser role of their account. Returns (instance ARN, team)."""
    from engine.bundle import load_bundle

    b = load_bundle(bundle, workers=1)
    rules = TagRules.default()
    sso = sorted(a[5:] for a in b.activity.actor_kinds if a.startswith("role:AWSReservedSSO_PowerUserAccess_"))
    assert sso, "the synthetic org has a shared SSO role"
    best: tuple[int, str, str, str, list[str]] | None = None
    for role in sso:
        account = b.activity.actor_accounts.get(f"role:{role}", "")
        by_team: dict[str, list[str]] = {}
        for a, r in sorted(b.resources.items()):
            t = rules.team_of(r.tags)[0]
            if t and f":{account}:" in a:
                by_team.setdefault(t, []).append(a)
        for t, arns in sorted(by_team.items()):
            if best is None or len(arns) > best[0]:
                best = (len(arns), role, account, t, arns)
    assert best is not None and best[0] >= 4
    _n, role, account, team, theirs = best
    t0 = b.period[0] + 3600
    ident = _identity(account, role, ENGINEER)
    recs = []
    for i, arn in enumerate(theirs[:4]):
        recs.append({"eventVersion": "1.09", "userIdentity": ident, "eventTime": _iso(t0 + 60 * i),
                     "eventSource": "tagging.amazonaws.com", "eventName": "TagResources", "awsRegion": "us-east-1",
                     "requestParameters": {"resourceARNList": [arn]}, "resources": [{"ARN": arn}],
                     "eventID": f"plant-{i}", "readOnly": False, "recipientAccountId": account})
    recs.append({"eventVersion": "1.09", "userIdentity": ident, "eventTime": _iso(t0 + 3600),
                 "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances", "awsRegion": "us-east-1",
                 "requestParameters": {"instanceType": "p4d.24xlarge", "instancesSet": {"items": [{"minCount": 1}]}},
                 "responseElements": {"instancesSet": {"items": [{"instanceId": NEW_INSTANCE,
                                                                  "instanceType": "p4d.24xlarge"}]}},
                 "eventID": "plant-launch", "readOnly": False, "recipientAccountId": account})
    (bundle / "cloudtrail" / "planted.json").write_text(json.dumps({"Records": recs}))
    return f"arn:aws:ec2:us-east-1:{account}:instance/{NEW_INSTANCE}", team


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.usefixtures("torch_one_thread")
def test_instance_launched_through_shared_sso_role_gets_the_engineers_team(tiny_org: Path, fast_model_config,
                                                                           tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle", bundle)
    arn, team = _plant_launch(bundle)
    result = scan_bundle(bundle, config=fast_model_config, workers=1)
    row = result.by_arn()[arn]
    assert row.tag_team == ""
    assert row.predicted_team == team, (row.predicted_team, row.confidence, row.owner_source)
    assert row.confidence > 0.7
    assert row.owner_source in ("creator", "model")
    assert row.anomaly_score < NO_TEAM_ANOMALY
    assert arn not in {r["arn"] for r in result.summary["no_team"]}
    assert "owner_source" not in PREDICTION_COLUMNS
    sources = {r.owner_source for r in result.rows}
    assert sources <= {"model", "creator", ""}
    assert all(r.owner_source == "model" for r in result.rows if r.predicted_team and r.owner_source != "creator")

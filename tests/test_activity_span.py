"""When anyone but an account-wide scanner last used a resource: what find_idle / find_abandoned read,
computed by the scan before the CloudTrail fold is released and stored with the owner evidence."""

from __future__ import annotations

from types import SimpleNamespace

from engine.activity import Activity, PairStats
from engine.scan import ResourcePrediction, activity_span
from storage.persist import _evidence

DAY = 86400.0


def _pair(*times: float) -> PairStats:
    st = PairStats()
    for t in times:
        st.add(t, False)
    return st


def test_a_scanner_on_most_resources_is_not_use() -> None:
    arns = [f"arn:aws:s3:::b{i}" for i in range(40)]
    act = Activity()
    for a in arns:  # the scanner reads all forty every day
        act.pairs[(a, "role:security-scanner", "use")] = _pair(1 * DAY, 20 * DAY)
    act.pairs[(arns[0], "role:app", "use")] = _pair(2 * DAY, 9 * DAY, 5 * DAY)
    act.pairs[(arns[0], "person:ana", "manage")] = _pair(3 * DAY)
    act.pairs[(arns[1], "role:app", "use")] = _pair(4 * DAY)
    spans = activity_span(SimpleNamespace(activity=act), arns)
    assert spans[arns[0]] == (2 * DAY, 9 * DAY, 4)
    assert spans[arns[1]] == (4 * DAY, 4 * DAY, 1)
    assert arns[2] not in spans  # only the scanner: never used


def test_a_busy_team_role_still_counts_as_use() -> None:
    """A service role on a fifth of the account is a team's, not a scanner (the owner-evidence rule
    would call it broad at 10%)."""
    arns = [f"arn:aws:s3:::b{i}" for i in range(100)]
    act = Activity()
    for a in arns[:20]:
        act.pairs[(a, "role:team-api", "use")] = _pair(7 * DAY)
    spans = activity_span(SimpleNamespace(activity=act), arns)
    assert set(spans) == set(arns[:20])


def test_released_fold_gives_nothing() -> None:
    act = Activity()
    act.pairs[("arn:x", "role:a", "use")] = _pair(DAY)
    act.release()
    assert activity_span(SimpleNamespace(activity=act), ["arn:x"]) == {}


def test_stored_with_the_evidence() -> None:
    row = ResourcePrediction("b0", "arn:aws:s3:::b0", "s3:bucket", "", 0.0, "", 0, 0.0, 1.0)
    assert _evidence(row, None) is None
    row.first_active, row.last_active, row.events = 2 * DAY, 9 * DAY, 4
    ev = _evidence(row, {"used_by": [["role:app", 3.0]]})
    assert ev["used_by"] == [["role:app", 3.0]]
    assert ev["activity"] == {"first": "1970-01-03T00:00:00+00:00", "last": "1970-01-10T00:00:00+00:00", "events": 4}


def test_recent_changes_keeps_the_last_k_per_resource_newest_first() -> None:
    import pyarrow as pa

    from engine.activity import CHANGE_SCHEMA
    from engine.scan import recent_changes

    rows = [  # (event_id, time, name, source, principal, person, resources, error)
        ("e1", 1 * DAY, "CreateBucket", "s3", "role:ci", None, ["arn:a", "arn:b"], None),
        ("e2", 3 * DAY, "PutBucketPolicy", "s3", "role:ci", "ana", ["arn:a"], None),
        ("e3", 2 * DAY, "PutBucketTagging", "s3", "role:ops", None, ["arn:a"], "AccessDenied"),
        ("e4", None, "DeleteBucketPolicy", "s3", "role:ops", None, ["arn:a"], None),
        ("e5", 5 * DAY, "PutBucketAcl", "s3", "role:x", None, ["arn:b"], None),
    ]
    tbl = pa.Table.from_pylist([dict(zip(CHANGE_SCHEMA.names, r, strict=True)) for r in rows], schema=CHANGE_SCHEMA)
    got = recent_changes(SimpleNamespace(changes=tbl), k=2)
    assert got["arn:a"] == [(3 * DAY, "PutBucketPolicy", "role:ci", "ana", None),
                            (2 * DAY, "PutBucketTagging", "role:ops", None, "AccessDenied")]
    assert [e[1] for e in got["arn:b"]] == ["PutBucketAcl", "CreateBucket"]
    assert recent_changes(SimpleNamespace(changes=tbl.slice(0, 0))) == {}

    row = ResourcePrediction("a", "arn:a", "s3:bucket", "", 0.0, "", 0, 0.0, 1.0)
    row.recent = got["arn:a"]
    assert _evidence(row, None)["recent_changes"][0] == ["1970-01-04T00:00:00+00:00", "PutBucketPolicy", "role:ci",
                                                        "ana", None]

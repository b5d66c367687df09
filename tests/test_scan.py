"""scan_bundle: the summary contract, predictions.csv, tag conflicts, degraded bundles, human labels.

Relations are checked against the rows and the ground truth the synthetic generator writes; nothing
here hard-codes a figure of one particular org.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from engine.scan import CONFIDENT, NO_TEAM_ANOMALY, PREDICTION_COLUMNS, scan_bundle, write_predictions

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CONTRACT_KEYS = ("resources", "total_cost_usd", "untagged_cost_usd", "unattributable_cost_usd",
                 "attributable_cost_usd", "teams", "period", "missing")


def _iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def check_summary_contract(summary: dict) -> None:
    """The `scan --json` contract (README): keys, types and the relations between the figures."""
    for k in CONTRACT_KEYS:
        assert k in summary, k
    assert isinstance(summary["resources"], int) and summary["resources"] >= 0
    for k in ("total_cost_usd", "untagged_cost_usd", "unattributable_cost_usd", "attributable_cost_usd"):
        assert isinstance(summary[k], int | float) and summary[k] >= 0, k
    cents = 0.011  # every figure is rounded to cents on its own
    assert summary["attributable_cost_usd"] <= summary["untagged_cost_usd"] + cents
    assert summary["untagged_cost_usd"] <= summary["total_cost_usd"] + cents
    assert summary["unattributable_cost_usd"] <= summary["total_cost_usd"] + cents
    teams = summary["teams"]
    assert isinstance(teams, dict)
    for team, t in teams.items():
        assert team and team == team.strip().lower() and " " not in team, team
        assert isinstance(t["resources"], int) and t["resources"] > 0, team
        assert t["cost_usd"] >= 0, team
    assert sum(t["resources"] for t in teams.values()) <= summary["resources"]
    assert sum(t["cost_usd"] for t in teams.values()) <= summary["total_cost_usd"] + cents * (len(teams) + 1)
    period = summary["period"]
    assert set(period) >= {"start", "end"}
    if summary["resources"]:
        assert isinstance(period["start"], str) and isinstance(period["end"], str)
        assert _iso(period["start"]) <= _iso(period["end"])
    assert isinstance(summary["missing"], list)


def _strip_owner_tags(bundle: Path) -> None:
    """Delete resources.json and blank the CUR's resource_tags column (keeping the column, so the format stays)."""
    (bundle / "resources.json").unlink()
    for p in sorted((bundle / "cost").rglob("*.csv.gz")):
        with gzip.open(p, "rt", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
        assert "resource_tags" in fields
        with gzip.open(p, "wt", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            for r in rows:
                r["resource_tags"] = ""
                w.writerow(r)


# ------------------------------------------------------------------------------------------------
# a full scan


def test_summary_contract(tiny_scan) -> None:
    s = tiny_scan.summary
    check_summary_contract(s)
    rows = tiny_scan.rows
    assert s["resources"] == len(rows) == len(tiny_scan.bundle.resources)
    assert s["total_cost_usd"] == pytest.approx(tiny_scan.bundle.costs.total, abs=0.006)
    assert s["untagged_cost_usd"] == pytest.approx(sum(r.cost_usd for r in rows if not r.tag_team), abs=0.006)
    attributable = sum(r.cost_usd for r in rows if not r.tag_team and r.predicted_team and r.confidence >= CONFIDENT)
    assert s["attributable_cost_usd"] == pytest.approx(attributable, abs=0.006)
    assert s["unattributable_cost_usd"] > 0  # the synthetic bill has tax/support lines
    assert s["teams"], "a scan of a tagged org attributes spend to teams"
    assert set(s["teams"]) <= set(tiny_scan.classes)
    assert s["missing"] == []  # the synthetic bundle has every source
    start, end = tiny_scan.bundle.period
    assert _iso(s["period"]["start"]).timestamp() == pytest.approx(start, abs=1)
    assert _iso(s["period"]["end"]).timestamp() == pytest.approx(end, abs=1)


@pytest.mark.parametrize("thr", [0.9, 0.5])
def test_summary_follows_the_threshold_it_is_given(tiny_scan, thr: float) -> None:
    """One threshold: summarize() counts attributable spend and teams at the number it is passed (the
    caller's COSTDNA_CONFIDENCE_THRESHOLD), and says which one it used; nothing passed is CONFIDENT."""
    from engine.scan import summarize

    res = tiny_scan
    assert res.summary["confidence_threshold"] == CONFIDENT
    s = summarize(res.bundle, res.rows, res.classes, res.prediction, [], threshold=thr)
    check_summary_contract(s)
    assert s["confidence_threshold"] == thr
    untagged = [r for r in res.rows if not r.tag_team]
    att = [r for r in untagged if r.predicted_team and r.confidence >= thr]
    assert s["attributable_resources"] == len(att)
    assert s["attributable_cost_usd"] == pytest.approx(sum(r.cost_usd for r in att), abs=0.006)
    inferred = sum(t["inferred_resources"] for t in s["teams"].values())
    assert inferred == sum(1 for r in res.rows if (not r.tag_team or r.tag_conflict)
                           and r.predicted_team and r.confidence >= thr)
    at_default = res.summary["attributable_resources"]
    # the threshold moves the figures the way it should (and the synthetic org has predictions in between)
    assert (s["attributable_resources"] < at_default) if thr > CONFIDENT else (s["attributable_resources"] > at_default)


def test_predictions_csv(tiny_scan, tmp_path: Path) -> None:
    path = tmp_path / "out" / "predictions.csv"
    write_predictions(tiny_scan.rows, path)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    assert tuple(header) == PREDICTION_COLUMNS
    rows = [dict(zip(header, r, strict=True)) for r in body]
    assert len(rows) == len(tiny_scan.bundle.resources)
    assert sorted(r["arn"] for r in rows) == sorted(tiny_scan.bundle.resources)  # one row per resource
    classes = set(tiny_scan.classes)
    for r in rows:
        assert r["resource_id"] and r["type"], r
        assert 0.0 <= float(r["confidence"]) <= 1.0, r
        assert r["tag_conflict"] in ("0", "1"), r
        assert 0.0 <= float(r["anomaly_score"]) <= 1.0, r
        assert float(r["monthly_cost_usd"]) >= 0.0, r
        if r["tag_team"]:
            assert r["tag_team"] == r["tag_team"].strip().lower() and " " not in r["tag_team"], r
            assert r["tag_team"] in classes, r
        if r["predicted_team"]:
            assert r["predicted_team"] in classes, r
        if r["tag_conflict"] == "1":
            assert r["tag_team"] and r["predicted_team"] and r["predicted_team"] != r["tag_team"], r
    # Unrounded: a team is left out only for resources that fit no team.
    for r in tiny_scan.rows:
        if not r.predicted_team:
            assert r.anomaly_score >= NO_TEAM_ANOMALY, r
        else:
            assert r.anomaly_score < NO_TEAM_ANOMALY, r


def test_every_resource_gets_a_prediction(tiny_scan) -> None:
    pred = tiny_scan.prediction
    assert pred is not None
    assert pred.proba.shape == (len(tiny_scan.rows), len(tiny_scan.classes))
    assert np.allclose(pred.proba.sum(axis=1), 1.0, atol=1e-6)
    tagged = [i for i, r in enumerate(tiny_scan.rows) if r.tag_team]
    untagged = [i for i, r in enumerate(tiny_scan.rows) if not r.tag_team]
    assert tagged and untagged
    for r in tiny_scan.rows:
        assert r.confidence > 0, r
        assert r.predicted_team or r.anomaly_score >= NO_TEAM_ANOMALY, r
    # Tagged resources are predicted by a fold model that never saw their own tag.
    assert pred.out_of_fold[tagged].all()
    assert (tiny_scan.labels[tagged] >= 0).all() and (tiny_scan.labels[untagged] == -1).all()
    # Most untagged resources with a real owner get one.
    assert sum(1 for i in untagged if tiny_scan.rows[i].predicted_team) > len(untagged) / 2


def test_wrong_tags_are_flagged_more_often_than_right_ones(tiny_org: Path, tiny_scan) -> None:
    truth = {a: row for a, row in _truth_rows(tiny_org).items() if row["tagged"] == "1"}
    rows = tiny_scan.by_arn()
    wrong = [a for a, t in truth.items() if t["tag_correct"] == "0"]
    right = [a for a, t in truth.items() if t["tag_correct"] == "1"]
    assert wrong and right, "the fixture org should have stale and correct owner tags"
    for a in wrong + right:  # every tagged resource is read as tagged
        assert rows[a].tag_team, a
    wrong_rate = sum(rows[a].tag_conflict for a in wrong) / len(wrong)
    right_rate = sum(rows[a].tag_conflict for a in right) / len(right)
    assert wrong_rate > right_rate, (wrong_rate, right_rate)
    assert tiny_scan.summary["tag_conflict_count"] == sum(r.tag_conflict for r in tiny_scan.rows)


def _truth_rows(org: Path) -> dict[str, dict[str, str]]:
    with (org / "truth.csv").open(newline="") as fh:
        return {r["arn"]: r for r in csv.DictReader(fh)}


# ------------------------------------------------------------------------------------------------
# degraded bundles: still scan, say what is missing


def test_cost_files_only(tiny_org: Path, tiny_bundle, fast_model_config, tmp_path: Path) -> None:
    """Only cost/ (CUR with its resource_tags): inventory and spend are reported, CloudTrail is missing."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle" / "cost", bundle / "cost")
    result = scan_bundle(bundle, config=fast_model_config, workers=1)
    s = result.summary
    check_summary_contract(s)
    assert s["resources"] > 0 and s["total_cost_usd"] > 0
    assert s["resources"] == len(tiny_bundle.costs.by_resource)
    assert s["total_cost_usd"] == pytest.approx(tiny_bundle.costs.total, abs=0.006)
    assert any("cloudtrail" in m.lower() for m in s["missing"]), s["missing"]
    if result.prediction is None:
        assert all(not r.predicted_team and r.confidence == 0 for r in result.rows)


def test_cost_files_only_without_owner_tags(tiny_org: Path, tiny_bundle, fast_model_config, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle" / "cost", bundle / "cost")
    (bundle / "resources.json").write_text('{"ResourceTagMappingList": []}')
    _strip_owner_tags(bundle)
    result = scan_bundle(bundle, config=fast_model_config, workers=1)
    s = result.summary
    check_summary_contract(s)
    assert s["resources"] > 0 and s["total_cost_usd"] > 0
    assert s["total_cost_usd"] == pytest.approx(tiny_bundle.costs.total, abs=0.006)
    assert result.prediction is None
    missing = " ".join(s["missing"]).lower()
    assert "owner tag" in missing and "cloudtrail" in missing, s["missing"]
    assert all(not r.predicted_team and not r.tag_team for r in result.rows)
    assert s["teams"] == {} and s["attributable_cost_usd"] == 0


def test_no_owner_tags(tiny_org: Path, tiny_bundle, fast_model_config, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle", bundle)
    _strip_owner_tags(bundle)
    result = scan_bundle(bundle, config=fast_model_config, workers=1)
    s = result.summary
    check_summary_contract(s)
    assert not result.bundle.has_owner_tags
    assert result.bundle.issues == []
    assert result.prediction is None
    assert any("owner tag" in m.lower() for m in s["missing"]), s["missing"]
    assert not any("cloudtrail" in m.lower() for m in s["missing"]), "CloudTrail is there"
    # The inventory is still the union of the other sources, and the spend is all there, all untagged.
    seen_elsewhere = {a for a, r in tiny_bundle.resources.items() if r.sources - {"tagging"}}
    assert set(result.bundle.resources) == seen_elsewhere
    assert s["total_cost_usd"] == pytest.approx(tiny_bundle.costs.total, abs=0.006)
    assert s["untagged_cost_usd"] == pytest.approx(sum(r.cost_usd for r in result.rows), abs=0.006)
    assert all(not r.tag_team and not r.predicted_team and not r.tag_conflict for r in result.rows)


def test_empty_directory_scans(tmp_path: Path) -> None:
    result = scan_bundle(tmp_path, workers=1)
    s = result.summary
    check_summary_contract(s)
    assert s["resources"] == 0 and s["total_cost_usd"] == 0
    assert result.prediction is None and result.rows == []
    assert s["missing"]


# ------------------------------------------------------------------------------------------------
# human labels


def test_human_labels_override_tags(tiny_scan, fast_model_config) -> None:
    classes = tiny_scan.classes
    rows = tiny_scan.rows
    tagged = next(i for i, r in enumerate(rows) if r.tag_team)
    untagged = next(i for i, r in enumerate(rows) if not r.tag_team)
    tag_team = rows[tagged].tag_team
    other = next(c for c in classes if c != tag_team)
    assert classes[tiny_scan.labels[tagged]] == tag_team
    assert tiny_scan.labels[untagged] == -1

    labels = {rows[tagged].arn: other, rows[untagged].arn: f"Team-{other.title()}"}  # normalized like a tag
    result = scan_bundle(tiny_scan.bundle, extra_labels=labels, config=fast_model_config, workers=1)
    assert result.classes == classes
    assert result.classes[result.labels[tagged]] == other
    assert result.classes[result.labels[untagged]] == other
    changed = np.flatnonzero(result.labels != tiny_scan.labels)
    assert sorted(changed.tolist()) == sorted([tagged, untagged])
    assert result.rows[tagged].tag_team == tag_team  # the tag itself is still reported as written


def test_human_label_with_a_new_team(tiny_scan, fast_model_config) -> None:
    rows = tiny_scan.rows
    untagged = [i for i, r in enumerate(rows) if not r.tag_team][:2]
    new = "zz-newteam"
    assert new not in tiny_scan.classes
    result = scan_bundle(tiny_scan.bundle, extra_labels={rows[i].arn: new for i in untagged},
                         config=fast_model_config, workers=1)
    assert new in result.classes
    for i in untagged:
        assert result.classes[result.labels[i]] == new
    # Tag labels keep pointing at the same team names after the class list grew.
    for i, r in enumerate(result.rows):
        if r.tag_team:
            assert result.classes[result.labels[i]] == r.tag_team


def test_scan_releases_the_fold_before_training_and_predicts_the_same(tiny_org: Path, tiny_scan, fast_model_config,
                                                                        torch_one_thread) -> None:
    """A bundle loaded by the scan drops its folded CloudTrail after the graph; a Bundle passed in
    (tiny_scan's) stays whole. Predictions do not change, counts and changes stay."""
    result = scan_bundle(tiny_org / "bundle", config=fast_model_config, workers=1)
    kept = scan_bundle(tiny_org / "bundle", config=fast_model_config, workers=1, keep_activity=True)
    act = result.bundle.activity
    assert act.released and not act.pairs and not act.hours
    assert act.records == tiny_scan.bundle.activity.records > 0
    assert act.changes.num_rows == tiny_scan.bundle.activity.changes.num_rows > 0
    assert not kept.bundle.activity.released and kept.bundle.activity.pairs
    assert not tiny_scan.bundle.activity.released and tiny_scan.bundle.activity.pairs
    assert [r.csv_row() for r in result.rows] == [r.csv_row() for r in kept.rows] == [
        r.csv_row() for r in tiny_scan.rows]
    assert result.summary["sources"] == tiny_scan.summary["sources"]

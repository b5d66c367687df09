"""load_bundle: the inventory is the union of every source, spend adds up, broken files are reported.

Expectations are computed from the written export files with the standard library (json, csv, gzip),
independently of the readers under test.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest

from engine.arns import arn_from_billing_id, canonical_arn
from engine.bundle import load_bundle
from engine.evaluate import load_truth
from engine.records import BundleError

# ------------------------------------------------------------------------------------------------
# helpers: read the export files as a user's own tooling would


def _cost_paths(bundle: Path) -> list[Path]:
    paths = sorted(p for p in (bundle / "cost").rglob("*") if p.is_file())
    assert paths, f"no cost files under {bundle / 'cost'}"
    assert all(p.name.endswith((".csv", ".csv.gz")) for p in paths), "the independent reader handles CSV only"
    return paths


def _open_text(path: Path):
    return gzip.open(path, "rt", newline="") if path.name.endswith(".gz") else path.open(newline="")


def _cur_rows(bundle: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for p in _cost_paths(bundle):
        with _open_text(p) as fh:
            rows += list(csv.DictReader(fh))
    return rows


def _cur_arns(rows: list[dict[str, str]]) -> set[str]:
    out = set()
    for r in rows:
        rid = r["line_item_resource_id"]
        if rid:
            arn = arn_from_billing_id(rid, r.get("product_region_code", ""), r.get("line_item_usage_account_id", ""),
                                      r.get("line_item_product_code", ""))
            assert arn, f"CUR resource id {rid!r} does not resolve to an ARN"
            out.add(arn)
    return out


def _tagging(bundle: Path) -> dict[str, dict[str, str]]:
    doc = json.loads((bundle / "resources.json").read_text())
    return {canonical_arn(m["ResourceARN"]): {t["Key"]: t["Value"] for t in m.get("Tags", [])}
            for m in doc["ResourceTagMappingList"]}


def _cloudtrail_arns(bundle: Path) -> set[str]:
    """ARNs named in the ``resources[]`` array of CloudTrail records (a subset of what the parser extracts)."""
    out = set()
    for p in sorted((bundle / "cloudtrail").rglob("*.json.gz")):
        with gzip.open(p, "rt") as fh:
            for rec in json.load(fh)["Records"]:
                for res in rec.get("resources") or []:
                    if res.get("ARN"):
                        out.add(canonical_arn(res["ARN"]))
    return out


def _eni_instances(bundle: Path) -> set[str]:
    doc = json.loads((bundle / "network.json").read_text())
    return {n["Attachment"]["InstanceId"] for n in doc["NetworkInterfaces"] if (n.get("Attachment") or {}).get("InstanceId")}


def _copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------
# inventory


def test_inventory_is_the_union_of_every_source(tiny_org: Path, tiny_bundle) -> None:
    bundle_dir = tiny_org / "bundle"
    truth = load_truth(tiny_org / "truth.csv")
    tagging = _tagging(bundle_dir)
    resources = tiny_bundle.resources

    # Every truth resource is in the inventory, including those the tagging API never listed.
    missing = sorted(set(truth) - set(resources))
    assert not missing, f"truth resources missing from the inventory: {missing[:5]}"
    untagged = [a for a in truth if a not in tagging]
    assert untagged, "the fixture org should have resources that resources.json does not list"
    for arn in untagged:
        srcs = resources[arn].sources
        assert "tagging" not in srcs, arn
        assert srcs & {"cloudtrail", "cost", "network"}, f"{arn} has no source: {srcs}"

    # Orphans make no API calls: they are known from the bill.
    orphans = [a for a, t in truth.items() if t.kind == "orphan"]
    assert orphans, "the fixture org should plant orphans"
    for arn in orphans:
        assert "cost" in resources[arn].sources, arn
        assert "cloudtrail" not in resources[arn].sources, arn

    # Everything resources.json lists is there, with its tags.
    for arn, tags in tagging.items():
        assert arn in resources, arn
        assert "tagging" in resources[arn].sources, arn
        for k, v in tags.items():
            assert resources[arn].tags.get(k) == v, (arn, k)


def test_sources_say_where_each_resource_was_seen(tiny_org: Path, tiny_bundle) -> None:
    bundle_dir = tiny_org / "bundle"
    resources = tiny_bundle.resources

    tagged = set(_tagging(bundle_dir))
    assert {a for a, r in resources.items() if "tagging" in r.sources} == tagged

    billed = _cur_arns(_cur_rows(bundle_dir))
    assert {a for a, r in resources.items() if "cost" in r.sources} == billed
    assert set(tiny_bundle.costs.by_resource) == billed

    called = _cloudtrail_arns(bundle_dir) & set(resources)
    assert called, "CloudTrail names no inventoried resource"
    not_marked = sorted(a for a in called if "cloudtrail" not in resources[a].sources)
    assert not not_marked, f"seen in CloudTrail but not marked so: {not_marked[:5]}"

    instances = _eni_instances(bundle_dir)
    assert instances, "the fixture org should have instances with network interfaces"
    for arn, r in resources.items():
        if r.kind == "ec2:instance" and r.id in instances:
            assert "network" in r.sources, arn
    for itf in tiny_bundle.interfaces:
        if itf.resource:
            assert "network" in resources[itf.resource].sources, itf.resource


# ------------------------------------------------------------------------------------------------
# spend


def test_cost_totals_match_the_cur_files(tiny_org: Path, tiny_bundle) -> None:
    rows = _cur_rows(tiny_org / "bundle")
    total = sum(float(r["line_item_unblended_cost"]) for r in rows)
    unattributable = sum(float(r["line_item_unblended_cost"]) for r in rows if not r["line_item_resource_id"])
    costs = tiny_bundle.costs
    assert costs.rows == len(rows)
    assert total > 0 and unattributable > 0, "the fixture org should bill tax/support lines without a resource"
    assert costs.total == pytest.approx(total, rel=1e-9)
    assert costs.unattributable == pytest.approx(unattributable, rel=1e-9)
    per_resource = sum(float(s.sum()) for s in costs.by_resource.values())
    assert per_resource + costs.unattributable == pytest.approx(costs.total, rel=1e-9)


def test_cost_per_resource_matches_the_cur_files(tiny_org: Path, tiny_bundle) -> None:
    expected: dict[str, float] = {}
    for r in _cur_rows(tiny_org / "bundle"):
        if r["line_item_resource_id"]:
            arn = next(iter(_cur_arns([r])))
            expected[arn] = expected.get(arn, 0.0) + float(r["line_item_unblended_cost"])
    got = {a: tiny_bundle.costs.resource_total(a) for a in expected}
    assert got == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# broken input


def _break_cloudtrail(bundle: Path) -> tuple[Path, int]:
    good = sorted((bundle / "cloudtrail").rglob("*.json.gz"))[0]
    bad = good.with_name("zz-truncated-" + good.name)
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bad, 0


def _break_cost(bundle: Path) -> tuple[Path, float]:
    """A plain CSV beside the CUR: header, a good row, a garbage line, another good row."""
    src = _cost_paths(bundle)[0]
    with _open_text(src) as fh:
        lines = fh.read().splitlines(keepends=True)
    bad = src.with_name("extra-export.csv")
    bad.write_text(lines[0] + lines[1] + "this line is garbage\n" + lines[2])
    return bad, 0.0  # its two good rows are copies of line items already in the bill: counted once


def _break_resources_json(bundle: Path) -> tuple[Path, float]:
    bad = bundle / "resources.json"
    bad.write_text('{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::x", "Tags": [ {oops')
    return bad, 0.0


BREAKERS = {"truncated-cloudtrail-gzip": _break_cloudtrail, "csv-garbage-line": _break_cost,
            "invalid-resources-json": _break_resources_json}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_a_broken_file_is_reported_and_the_rest_loads(case: str, tiny_org: Path, tiny_bundle, tmp_path: Path) -> None:
    bundle = _copy_bundle(tiny_org / "bundle", tmp_path / "bundle")
    bad, added_cost = BREAKERS[case](bundle)

    b = load_bundle(bundle, workers=1)
    assert b.issues, "a broken file must be reported"
    assert any(Path(i.path) == bad for i in b.issues), [str(i) for i in b.issues]
    assert all(str(bad) in str(i) for i in b.issues), "only the broken file has problems"

    # The rest still loads: every resource seen by another source, and the spend (plus good rows).
    seen_elsewhere = {a for a, r in tiny_bundle.resources.items() if r.sources - {"tagging"}}
    assert seen_elsewhere <= set(b.resources)
    assert b.costs.total == pytest.approx(tiny_bundle.costs.total + added_cost, rel=1e-9)
    assert b.activity.records > 0
    if case != "invalid-resources-json":
        assert set(b.resources) == set(tiny_bundle.resources)
        assert b.has_owner_tags

    with pytest.raises(BundleError) as err:
        load_bundle(bundle, strict=True, workers=1)
    assert str(bad) in str(err.value)
    assert any(Path(i.path) == bad for i in err.value.issues)


def test_missing_directory_raises(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle"
    with pytest.raises(BundleError) as err:
        load_bundle(missing)
    assert str(missing) in str(err.value)
    assert err.value.issues


def test_a_file_instead_of_a_directory_raises(tmp_path: Path) -> None:
    f = tmp_path / "bundle.json"
    f.write_text("{}")
    with pytest.raises(BundleError) as err:
        load_bundle(f)
    assert str(f) in str(err.value)


# ------------------------------------------------------------------------------------------------
# the external benchmark's bundle (costdna-synthetic, converted to our format)


def test_costdna_synthetic_seed0_bundle_loads_cleanly(shared_data: Path) -> None:
    root = shared_data / "costdna-synthetic" / "seed0"
    truth = load_truth(root / "truth.csv")
    b = load_bundle(root / "bundle", workers=1)
    assert [str(i) for i in b.issues] == []
    assert len(truth) == 68
    assert set(b.resources) == set(truth)
    rows = _cur_rows(root / "bundle")
    assert b.costs.total == pytest.approx(sum(float(r["line_item_unblended_cost"]) for r in rows), rel=1e-9)
    assert b.period is not None and b.period[0] < b.period[1]

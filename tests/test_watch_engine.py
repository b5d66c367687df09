"""The pure watch: new files only, what they hold, incremental combine, and the one-shot bundle report."""

from __future__ import annotations

import csv
import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from engine.hourly import CostPart, combine
from engine.sources.changes import ChangeEvent
from engine.spikes import SpikeConfig, detect
from engine.watch import SeenFile, bundle_spikes, list_files, new_files, read_new

T0 = datetime(2026, 11, 2, tzinfo=UTC)
ACCOUNT = "111111111111"
IID = "i-0aaaaaaaaaaaaaaaa"
EC2 = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{IID}"
HEADER = ["bill_payer_account_name", "line_item_usage_account_id", "line_item_line_item_type",
          "line_item_usage_start_date", "line_item_product_code", "line_item_usage_type", "line_item_resource_id",
          "line_item_unblended_cost", "product_region_code", "resource_tags"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_cur(path: Path, hours: range, level: float = 1.0, spike: dict[int, float] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(hours.start)
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for h in hours:
            c = (spike or {}).get(h, level * (1 + 0.03 * rng.standard_normal()))
            w.writerow(["payer", ACCOUNT, "Usage", iso(T0 + timedelta(hours=h)), "AmazonEC2", "BoxUsage:m5.large",
                        IID, round(c, 6), "us-east-1", ""])


def write_trail(path: Path, when: datetime, name: str = "ModifyInstanceAttribute") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {
        "eventVersion": "1.08", "eventTime": iso(when), "eventSource": "ec2.amazonaws.com", "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1", "userAgent": "cli", "eventID": f"ev-{name}-{when:%H}",
        "readOnly": False, "recipientAccountId": ACCOUNT,
        "userIdentity": {"type": "AssumedRole", "accountId": ACCOUNT,
                         "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/ana@corp.example",
                         "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ops",
                                                              "arn": f"arn:aws:iam::{ACCOUNT}:role/ops"}}},
        "requestParameters": {"instanceId": IID, "instanceType": {"value": "m5.4xlarge"}},
        "responseElements": {"_return": True},
    }
    path.write_bytes(orjson.dumps({"Records": [rec]}))


def bundle(root: Path) -> Path:
    write_cur(root / "cost" / "cur2" / "a.csv.gz", range(0, 7 * 24))
    write_cur(root / "cost" / "cur2" / "b.csv.gz", range(7 * 24, 10 * 24))
    write_trail(root / "cloudtrail" / "t1.json", T0 + timedelta(hours=3))
    (root / "deploys.jsonl").write_bytes(orjson.dumps({"time": iso(T0 + timedelta(hours=2)), "repo": "api",
                                                       "commit": "abc1234", "actor": "ci", "resource": EC2}) + b"\n")
    return root


def bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_new_files_only_new_or_changed(tmp_path):
    root = bundle(tmp_path)
    first = new_files(root, {})
    assert sorted((f.kind, f.path) for f in first) == [
        ("cloudtrail", "cloudtrail/t1.json"), ("cost", "cost/cur2/a.csv.gz"), ("cost", "cost/cur2/b.csv.gz"),
        ("deploys", "deploys.jsonl")]
    seen = {f.path: f for f in first}
    assert new_files(root, seen) == []
    write_cur(root / "cost" / "cur2" / "b.csv.gz", range(7 * 24, 10 * 24 + 1))  # one more hour appended
    write_trail(root / "cloudtrail" / "t2.json", T0 + timedelta(hours=5))
    assert sorted(f.path for f in new_files(root, seen)) == ["cloudtrail/t2.json", "cost/cur2/b.csv.gz"]
    seen = {f.path: f for f in list_files(root)}
    bump(root / "deploys.jsonl")  # same size, new modification time
    assert [f.path for f in new_files(root, seen)] == ["deploys.jsonl"]


def test_read_new_reads_what_it_is_given(tmp_path):
    root = bundle(tmp_path)
    files = new_files(root, {})
    inp = read_new(root, files, workers=1)
    assert inp.issues == []
    assert sorted(p.path for p in inp.cost_parts) == ["cost/cur2/a.csv.gz", "cost/cur2/b.csv.gz"]
    assert inp.rows["cost/cur2/a.csv.gz"] == 7 * 24
    assert [(e.event_name, e.resources, e.instance_type) for e in inp.changes] == [
        ("ModifyInstanceAttribute", (EC2,), "m5.4xlarge")]
    assert [(d.commit, d.resources) for d in inp.deploys] == [("abc1234", (EC2,))]
    only = read_new(root, [f for f in files if f.kind == "cost"][:1], workers=1)
    assert len(only.cost_parts) == 1 and only.changes == [] and only.deploys == []


def test_read_new_many_cloudtrail_files_in_a_process_pool(tmp_path, monkeypatch):
    import engine.watch

    monkeypatch.setattr(engine.watch, "_PROCESS_MIN_BYTES", 0)
    used = []
    real = engine.watch.ProcessPoolExecutor
    monkeypatch.setattr(engine.watch, "ProcessPoolExecutor", lambda *a, **k: used.append(a) or real(*a, **k))
    for i in range(20):
        write_trail(tmp_path / "cloudtrail" / f"t{i:02d}.json", T0 + timedelta(hours=i))
    files = new_files(tmp_path, {})
    inp = read_new(tmp_path, files, workers=2)
    assert used and len(inp.changes) == 20 and inp.rows["cloudtrail/t05.json"] == 1
    assert [e.time for e in inp.changes] == sorted(e.time for e in inp.changes)


def test_incremental_watch_equals_full_read(tmp_path):
    root = bundle(tmp_path)
    seen: dict[str, SeenFile] = {}
    stored: dict[str, bytes] = {}
    first = read_new(root, new_files(root, seen), workers=1)
    for p in first.cost_parts:
        stored[p.path] = p.to_bytes()
    seen = {f.path: f for f in first.files}
    # the last file is rewritten with a spike in its new hours
    write_cur(root / "cost" / "cur2" / "b.csv.gz", range(7 * 24, 10 * 24 + 6), spike={10 * 24 + h: 9.0 for h in range(6)})
    second = read_new(root, new_files(root, seen), workers=1)
    assert [f.path for f in second.files] == ["cost/cur2/b.csv.gz"]
    parts = [CostPart.from_bytes(b) for b in stored.values()] + second.cost_parts
    inc = combine(parts)
    full = combine(read_new(root, list_files(root), workers=1).cost_parts)
    assert inc.start_hour == full.start_hour and np.allclose(inc.cost, full.cost)
    out = detect(inc, since_hour=inc.start_hour + 10 * 24)
    assert len(out) == 1 and out[0].start_hour == inc.start_hour + 10 * 24 and out[0].ongoing


def test_real_change_events_feed_early_warning():
    new = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0bbbbbbbbbbbbbbbb"
    ev = ChangeEvent(time=T0.timestamp() + 3600 * 5, event_id="e1", event_name="RunInstances",
                     event_source="ec2.amazonaws.com", actor="role:AWSReservedSSO_Power", person="ana@corp.example",
                     resources=(new,), instance_type="p3.8xlarge")
    from engine.hourly import HourlySeries

    s = HourlySeries(int(T0.timestamp()) // 3600, [EC2], np.ones((1, 6)), np.ones(6, bool), np.zeros(1, bool), {})
    out = detect(s, changes=[ev])
    assert [(x.kind, x.severity, x.arn) for x in out] == [("early_warning", "warning", new)]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from engine.synth import generate

    out = tmp_path_factory.mktemp("synth100")
    generate(out, seed=100, teams=5, resources_per_team=20, days=14)
    return out


def test_bundle_spikes_on_a_synthetic_org(synth):
    truth_path = synth / "spikes_truth.csv"
    assert truth_path.exists(), "the generator writes spikes_truth.csv beside truth.csv"
    truth = list(csv.DictReader(truth_path.open()))
    owners = {r["arn"]: (r["team"], 0.9, "predicted") for r in csv.DictReader((synth / "truth.csv").open())
              if r["team"] and not r["team"].startswith("(")}
    out = bundle_spikes(synth / "bundle", owners, workers=1)
    got = {}
    for r in out:
        got.setdefault(r.spike.arn, []).append(r)
    planted = [t for t in truth if t["kind"] in ("deploy", "nocause", "coldstart")]
    assert planted
    found = 0
    for t in planted:
        start = datetime.fromisoformat(t["start"].replace("Z", "+00:00")).timestamp()
        hits = [r for r in got.get(t["arn"], []) if abs(r.spike.start - start) <= 2 * 3600]
        found += bool(hits)
        for r in hits:
            assert r.owner_team == t["owner_team"]
            if t["kind"] == "nocause":
                assert r.cause is None
    assert found / len(planted) >= 0.9
    known = {t["arn"] for t in truth if t["kind"] != "rhythm"}
    rhythm = {t["arn"] for t in truth if t["kind"] == "rhythm"}
    false = [r for r in out if r.spike.arn not in known]
    assert all(r.spike.arn in rhythm for r in false) and len(false) <= 1  # a weekly job's first run at most
    j = out[0].to_json()
    assert list(j)[:12] == ["resource_id", "arn", "start", "end", "peak_usd_per_hour", "baseline_usd_per_hour",
                            "extra_usd", "severity", "reasons", "owner_team", "owner_confidence", "cause"]
    assert j["start"].endswith("Z") and j["owner_source"] in ("predicted", "creator", "tag", "none")
    later = bundle_spikes(synth / "bundle", owners, since=out[-1].spike.start, workers=1)
    assert later and all(r.spike.end > out[-1].spike.start for r in later)


def test_bundle_spikes_creator_owner_for_unknown_resources(synth):
    truth_path = synth / "spikes_truth.csv"
    assert truth_path.exists(), "the generator writes spikes_truth.csv beside truth.csv"
    cold = [t for t in csv.DictReader(truth_path.open()) if t["kind"] == "coldstart"]
    owners = {r["arn"]: (r["team"], 0.9, "tag") for r in csv.DictReader((synth / "truth.csv").open())
              if r["team"] and not r["team"].startswith("(")}
    for t in cold:
        owners.pop(t["arn"], None)
    out = bundle_spikes(synth / "bundle", owners, workers=1, config=SpikeConfig())
    by = {r.spike.arn: r for r in out}
    for t in cold:
        r = by[t["arn"]]
        assert r.owner_source == "creator" and r.owner_team == t["owner_team"] and 0 < r.owner_confidence < 1


def test_owners_from_scan_tag_then_prediction():
    from types import SimpleNamespace

    from engine.watch import owners_from_scan

    rows = [SimpleNamespace(arn="a", tag_team="payments", predicted_team="search", confidence=0.9),
            SimpleNamespace(arn="b", tag_team="", predicted_team="search", confidence=0.8),
            SimpleNamespace(arn="c", tag_team="", predicted_team="growth", confidence=0.6, owner_source="creator"),
            SimpleNamespace(arn="d", tag_team="", predicted_team="", confidence=0.5)]
    assert owners_from_scan(SimpleNamespace(rows=rows)) == {
        "a": ("payments", 1.0, "tag"), "b": ("search", 0.8, "predicted"), "c": ("growth", 0.6, "creator")}


FOCUS_COLUMNS = ["BillingAccountId", "SubAccountId", "ProviderName", "ChargeCategory", "ChargeClass", "ChargePeriodStart",
                 "ChargePeriodEnd", "BilledCost", "EffectiveCost", "ResourceId", "ServiceName", "RegionId", "Tags",
                 "BillingCurrency", "x_UsageType"]


def write_focus(path: Path, hours: range, level: float = 1.0, spike: dict[int, float] | None = None) -> None:
    """``write_cur``'s bill (the same draws) as a FOCUS export."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(hours.start)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FOCUS_COLUMNS)
        for h in hours:
            c = round((spike or {}).get(h, level * (1 + 0.03 * rng.standard_normal())), 6)
            t = T0 + timedelta(hours=h)
            w.writerow([ACCOUNT, ACCOUNT, "AWS", "Usage", "", iso(t), iso(t + timedelta(hours=1)), c, c, IID,
                        "AmazonEC2", "us-east-1", "", "USD", "BoxUsage:m5.large"])


def test_cur_and_focus_of_one_bill_watch_like_one(tmp_path):
    """The same bill as CUR 2.0 and as FOCUS (or downloaded twice) gives the hourly series and the
    spikes of one copy, from the copy the scan counts (engine.costs)."""
    from engine.costs import load_costs

    spike = {9 * 24 + h: 9.0 for h in range(6)}
    one = tmp_path / "one"
    write_cur(one / "cost" / "cur2" / "data" / "cur2-00001.csv.gz", range(0, 5 * 24))
    write_cur(one / "cost" / "cur2" / "data" / "cur2-00002.csv.gz", range(5 * 24, 10 * 24), spike=spike)
    both = tmp_path / "both"
    write_cur(both / "cost" / "cur2" / "data" / "cur2-00001.csv.gz", range(0, 5 * 24))
    write_cur(both / "cost" / "cur2" / "data" / "cur2-00002.csv.gz", range(5 * 24, 10 * 24), spike=spike)
    focus = both / "cost" / "focus" / "focus-export.csv"
    write_focus(focus, range(0, 5 * 24))
    write_focus(both / "cost" / "focus" / "focus-export-2.csv", range(5 * 24, 10 * 24), spike=spike)
    for f in focus.parent.iterdir():
        bump(f)
    # and a second download of the CUR's first part, older than the FOCUS export
    (both / "cost" / "cur2" / "data" / "cur2-00001 (1).csv.gz").write_bytes(
        (both / "cost" / "cur2" / "data" / "cur2-00001.csv.gz").read_bytes())

    s1 = combine(read_new(one, list_files(one), workers=1).cost_parts)
    s2 = combine(read_new(both, list_files(both), workers=1).cost_parts)
    assert s1.arns == s2.arns == [EC2] and s1.start_hour == s2.start_hour
    assert np.allclose(s1.cost, s2.cost) and np.array_equal(s1.covered, s2.covered)
    # the day sums are the scan's, which counts each bill-day once too
    costs = load_costs(both, [])
    assert costs.duplicates
    assert np.allclose(s2.row(EC2).reshape(-1, 24).sum(axis=1), costs.by_resource[EC2])
    r1, r2 = bundle_spikes(one, {}, workers=1), bundle_spikes(both, {}, workers=1)
    assert r1, "the planted spike is found"
    assert [(r.spike.key, round(r.spike.extra_usd, 2), r.spike.severity) for r in r1] == \
        [(r.spike.key, round(r.spike.extra_usd, 2), r.spike.severity) for r in r2]

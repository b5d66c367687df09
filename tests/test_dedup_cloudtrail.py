"""Each CloudTrail event counts once, however often it was delivered (engine.activity, issue 8)."""

import gzip
import shutil
from pathlib import Path

import orjson
import pytest

import engine.activity as activity
from engine.activity import Activity, SeenEvents, fold_cloudtrail
from engine.sources.cloudtrail import cloudtrail_files, delivery_of, delivery_order
from tests.conftest import one_torch_thread
from tests.test_activity import assert_same


def twice(src: Path, dst: Path, identical: bool = False) -> Path:
    """``src`` bundle copied to ``dst`` with every CloudTrail file delivered once more, under another
    name in cloudtrail/copy/: re-compressed (other bytes, the same records), or ``identical``."""
    shutil.copytree(src, dst)
    for f in cloudtrail_files(dst):
        rel = f.relative_to(dst / "cloudtrail")
        d = delivery_of(f)
        name = f.name.replace("Z_", "Z_copy") if d else "copy-" + f.name
        out = dst / "cloudtrail" / "copy" / rel.parent / name
        out.parent.mkdir(parents=True, exist_ok=True)
        data = f.read_bytes()
        if not identical:
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            data = gzip.compress(raw, compresslevel=1, mtime=1)  # other bytes
        out.write_bytes(data)
    return dst


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> Path:
    """A small synthetic org: 4 teams x 10 resources, 7 days."""
    from engine.synth import generate

    out = tmp_path_factory.mktemp("dedup_org")
    generate(out, seed=0, teams=4, resources_per_team=10, days=7, workers=1)
    return out / "bundle"


@pytest.fixture(scope="module")
def org_twice(org, tmp_path_factory) -> Path:
    return twice(org, tmp_path_factory.mktemp("dedup_twice") / "bundle")


def fold(bundle: Path, workers: int = 1) -> tuple[Activity, list]:
    issues: list = []
    return fold_cloudtrail(cloudtrail_files(bundle), issues, workers=workers), issues


def test_every_file_delivered_twice_folds_as_once(org, org_twice, tmp_path):
    once, issues = fold(org)
    assert issues == [] and once.duplicates == 0 and once.records > 5_000
    again, issues = fold(org_twice)
    assert issues == []
    assert_same(again, once)  # pairs (counts, errors, first, last, mean), profiles, creators, change log...
    assert again.duplicates == once.records and again.duplicate_files == 0
    same, _ = fold(twice(org, tmp_path / "identical", identical=True))
    assert_same(same, once)
    assert same.duplicate_files == len(cloudtrail_files(org)) and same.duplicates == 0


def test_every_file_delivered_twice_folds_as_once_in_workers(org, org_twice, monkeypatch):
    monkeypatch.setattr(activity, "_PARALLEL_BYTES", 0)
    once, _ = fold(org)
    for workers in (2, 3):
        again, issues = fold(org_twice, workers)
        assert issues == []
        assert_same(again, once)
        assert again.duplicates == once.records


def test_every_file_delivered_twice_scans_as_once(org, org_twice, fast_model_config):
    from engine.scan import scan_bundle

    def predictions(bundle: Path) -> list[tuple]:
        with one_torch_thread():
            res = scan_bundle(bundle, config=fast_model_config, workers=1)
        return [(r.arn, r.predicted_team, r.confidence, r.runner_up, r.runner_up_confidence, r.anomaly_score,
                 r.tag_conflict) for r in res.rows]

    once = predictions(org)
    assert len(once) >= 40 and any(team for _, team, *_ in once)
    assert predictions(org_twice) == once  # teams and confidences, exactly


def test_invictus_delivered_twice_folds_as_once(shared_data, tmp_path):
    src = sorted((shared_data / "cloudtrail/invictus/CloudTrail").glob("*.json"))
    once = activity.fold_files(src)[0]
    copies = []
    for i, f in enumerate(src):
        out = tmp_path / "copy" / f.name.replace("Z_", "Z_copy")
        out.parent.mkdir(exist_ok=True)
        if i % 2:  # half byte for byte, half re-serialized (other bytes, the same records)
            out.write_bytes(f.read_bytes())
        else:
            out.write_bytes(orjson.dumps(orjson.loads(f.read_bytes()), option=orjson.OPT_INDENT_2))
        copies.append(out)
    both, issues = activity.fold_files([*src, *copies])
    assert issues == []
    assert_same(both, once)
    assert both.duplicate_files == len(src) // 2 and both.duplicates == once.records - sum(
        len(orjson.loads(f.read_bytes())["Records"]) for f in src[1::2])


def rec(i: int, t: str, name: str = "Invoke", fn: str = "f") -> dict:
    return {"eventTime": t, "eventSource": "lambda.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
            "recipientAccountId": "123456789012", "eventID": f"00000000-0000-0000-0000-{i:012d}",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/ci/b"},
            "requestParameters": {"functionName": fn}}


def delivered(d: Path, hour: str, suffix: str, recs: list[dict]) -> Path:
    p = d / f"123456789012_CloudTrail_us-east-1_20240501T{hour}Z_{suffix}.json.gz"
    p.write_bytes(gzip.compress(orjson.dumps({"Records": recs})))
    return p


def unordered(a: Activity) -> dict:
    """An Activity's numbers, whatever the order its records came in."""
    return {
        "pairs": {k: (v.count, v.errors, v.first, v.last, v.time_sum, v.timed) for k, v in a.pairs.items()},
        "hours": a.hours, "weekdays": a.weekdays, "days": a.days, "event_names": a.event_names,
        "creators": a.creators, "records": a.records, "without": a.records_without_resource,
        "span": (a.first_time, a.last_time),
        "changes": sorted(a.changes.to_pylist(), key=lambda r: (r["event_id"], r["time"])),
    }


def test_copies_within_a_file_and_overlapping_files_count_once(tmp_path):
    recs = [rec(i, f"2024-05-01T10:{i % 60:02d}:00Z", name=("UpdateFunctionCode20150331v2" if i % 7 == 0
                                                          else "Invoke"), fn=f"f{i % 5}") for i in range(300)]
    (tmp_path / "once").mkdir()
    once = activity.fold_files([delivered(tmp_path / "once", "1015", "a", recs)])[0]
    assert once.records == 300 and once.changes.num_rows > 0
    d = tmp_path / "twice"
    d.mkdir()
    # One file with a record twice, another holding a subset of the first, folded before or after it.
    within = activity.fold_files([delivered(d, "1015", "a", [*recs[:10], recs[3], *recs[10:]])])[0]
    assert_same(within, once)
    assert within.duplicates == 1
    for suffix in ("0", "z"):  # sorts before / after the full file
        sub = delivered(d, "1015", suffix, recs[50:120:3])
        both = activity.fold_files([d / "123456789012_CloudTrail_us-east-1_20240501T1015Z_a.json.gz", sub])[0]
        assert unordered(both) == unordered(once)
        assert both.duplicates == 1 + len(recs[50:120:3])
        sub.unlink()
    # A later delivery (next hour) that repeats the last records of the hour before.
    later = delivered(d, "1105", "b", [*recs[250:], rec(999, "2024-05-01T11:00:00Z")])
    both = activity.fold_files([d / "123456789012_CloudTrail_us-east-1_20240501T1015Z_a.json.gz", later])[0]
    assert both.records == 301 and both.duplicates == 1 + 50


def test_a_copy_past_the_horizon_is_not_looked_for_and_memory_stays_bounded(tmp_path):
    seen = SeenEvents()
    for h in range(100):  # 100 hourly deliveries of 200 events each
        seen.start(f"123456789012_CloudTrail_us-east-1_202405{1 + h // 24:02d}T{h % 24:02d}00Z_x.json.gz")
        ids = [f"e{h}-{i}" for i in range(200)]
        ts = [1714521600.0 + h * 3600 + i for i in range(200)]
        assert seen.fresh(ids, ts, [1] * 200) is None
        assert seen.fresh(ids[:3], ts[:3], [1] * 3) == [False] * 3  # a copy: caught
        assert len(seen) <= (activity._HORIZON_H + 2) * 200
    assert seen.fresh(["e0-1"], [1714521601.0], [1]) is None  # 100 h later: forgotten
    seen.start("123456789012_CloudTrail_eu-west-1_20240505T0300Z_x.json.gz")  # another stream
    assert len(seen) == 0


def test_delivery_order_groups_copies_of_a_stream(tmp_path):
    a = Path("AWSLogs/1/CloudTrail/us-east-1/2024/05/01/123456789012_CloudTrail_us-east-1_20240501T1015Z_a.json.gz")
    b = Path("copy/123456789012_CloudTrail_us-east-1_20240501T1005Z_b.json.gz")
    c = Path("AWSLogs/1/CloudTrail/eu-west-1/2024/05/01/123456789012_CloudTrail_eu-west-1_20240501T0900Z_c.json.gz")
    assert delivery_order([Path("z.jsonl"), a, b, c, Path("a.json")]) == [c, b, a, Path("z.jsonl"), Path("a.json")]
    assert delivery_of(a) == (("123456789012", "us-east-1"), 1714558500.0)
    assert delivery_of("123456789012_CloudTrail_us-east-1_20241301T1015Z_a.json.gz") is None


def test_a_run_starting_inside_a_stream_reads_the_day_before(tmp_path, monkeypatch):
    """Copies straddling the boundary between two workers' runs are caught all the same."""
    monkeypatch.setattr(activity, "_PARALLEL_BYTES", 0)
    paths = []
    for h in range(10):
        recs = [rec(h * 100 + i, f"2024-05-01T{h:02d}:{i % 60:02d}:05Z", fn=f"f{i % 4}") for i in range(100)]
        if h:  # each delivery repeats a third of the one before
            recs += [rec((h - 1) * 100 + i, f"2024-05-01T{h - 1:02d}:{i % 60:02d}:05Z", fn=f"f{i % 4}")
                     for i in range(0, 100, 3)]
        paths.append(delivered(tmp_path, f"{h:02d}10", "x", recs))
    one = fold_cloudtrail(paths, [], workers=1)
    assert one.records == 1000 and one.duplicates == 9 * 34
    for workers in (2, 4):
        assert activity._lookback([str(p) for p in paths], 5) == [str(p) for p in paths[:5]]
        assert_same(fold_cloudtrail(paths, [], workers=workers), one)

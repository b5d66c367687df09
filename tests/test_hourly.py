"""Cost files folded into resource-hour parts, stored as bytes, and combined into hourly series."""

from __future__ import annotations

import csv
import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from engine.hourly import CostPart, combine, instance_type_of, read_cost_part

T0 = datetime(2026, 11, 2, tzinfo=UTC)
H0 = int(T0.timestamp()) // 3600
ACCOUNT = "111111111111"
EC2 = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0aaaaaaaaaaaaaaaa"
DB = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders"

HEADER = ["bill_payer_account_name", "line_item_usage_account_id", "line_item_line_item_type",
          "line_item_usage_start_date", "line_item_product_code", "line_item_usage_type", "line_item_resource_id",
          "line_item_unblended_cost", "product_region_code", "resource_tags"]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_cur(path: Path, rows: list[tuple[datetime, str, str, str, float]]) -> Path:
    """rows: (start, product, usage type, resource id, cost)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for start, product, usage, rid, cost in rows:
            w.writerow(["payer", ACCOUNT, "Usage", iso(start), product, usage, rid, cost, "us-east-1", ""])
    return path


def hourly_rows(hours: range, level: float = 1.0) -> list:
    out = []
    for h in hours:
        t = T0 + timedelta(hours=h)
        out.append((t, "AmazonEC2", "BoxUsage:m5.large", "i-0aaaaaaaaaaaaaaaa", level))
        out.append((t, "AmazonEC2", "EBS:VolumeUsage.gp3", "i-0aaaaaaaaaaaaaaaa", 0.01))  # same resource, summed
        out.append((t, "AmazonRDS", "InstanceUsage:db.r5.large", DB, 0.25))
        out.append((t, "AWSSupport", "Support", "", 5.0))  # no resource: left out
    return out


def test_instance_type_of():
    assert instance_type_of("USE1-BoxUsage:m5.large") == "m5.large"
    assert instance_type_of("InstanceUsage:db.r5.2xlarge") == "db.r5.2xlarge"
    assert instance_type_of("SpotUsage:p4d.24xlarge") == "p4d.24xlarge"
    assert instance_type_of("EBS:VolumeUsage.gp3") is None
    assert instance_type_of("TimedStorage-ByteHrs") is None
    assert instance_type_of(None) is None


def test_read_cost_part_folds_resource_hours(tmp_path):
    p = write_cur(tmp_path / "cost" / "a.csv.gz", hourly_rows(range(48)))
    issues: list = []
    part = read_cost_part(p, issues)
    assert issues == [] and part is not None
    assert not part.daily
    assert sorted(part.arns) == sorted([EC2, DB])
    assert part.rows == 96
    ec2 = part.arns.index(EC2)
    m = part.res == ec2
    assert np.allclose(part.cost[m], 1.01)
    assert sorted(part.hours[m].tolist()) == list(range(H0, H0 + 48))
    assert part.usage_types == {EC2: "m5.large", DB: "db.r5.large"}


def test_cost_part_bytes_round_trip(tmp_path):
    part = read_cost_part(write_cur(tmp_path / "a.csv.gz", hourly_rows(range(100))), [])
    b = part.to_bytes()
    back = CostPart.from_bytes(b)
    assert back.path == part.path and back.arns == part.arns and back.daily == part.daily
    assert np.array_equal(back.hours, part.hours) and np.array_equal(back.res, part.res)
    assert np.array_equal(back.cost, part.cost)
    assert back.usage_types == part.usage_types
    assert back.hours.dtype == np.int64 and back.res.dtype == np.int32
    assert len(b) < part.rows * 20  # compact: well under the 20 bytes/row of the raw arrays
    empty = CostPart("x", [], np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0), False, {})
    e = CostPart.from_bytes(empty.to_bytes())
    assert e.rows == 0 and e.arns == []


def test_daily_file_is_spread_over_24_hours(tmp_path):
    rows = []
    for d in range(3):
        t = T0 + timedelta(days=d)
        rows.append((t, "AmazonEC2", "BoxUsage:m5.large", "i-0aaaaaaaaaaaaaaaa", 24.0 * (d + 1)))
    part = read_cost_part(write_cur(tmp_path / "daily.csv.gz", rows), [])
    assert part.daily
    assert part.rows == 72
    order = np.argsort(part.hours)
    assert part.hours[order].tolist() == list(range(H0, H0 + 72))
    assert part.cost[order][:24] == pytest.approx([1.0] * 24)
    assert part.cost[order][48:] == pytest.approx([3.0] * 24)
    s = combine([part])
    assert s.daily.tolist() == [True]
    # one day only is not enough to call a file daily (an hourly file may cover midnight alone)
    one = read_cost_part(write_cur(tmp_path / "one.csv.gz", rows[:1]), [])
    assert not one.daily and one.rows == 1


def test_combine_sums_parts_and_a_changed_file_replaces_its_part(tmp_path):
    a = read_cost_part(write_cur(tmp_path / "a.csv.gz", hourly_rows(range(0, 24))), [])
    b = read_cost_part(write_cur(tmp_path / "b.csv.gz", hourly_rows(range(24, 30))), [])
    s = combine([a, b])
    assert s.start_hour == H0 and s.n_hours == 30
    assert s.covered.all()
    assert s.row(EC2) == pytest.approx([1.01] * 30)
    assert s.hour_epoch(1) == (H0 + 1) * 3600
    # b.csv.gz is rewritten with more hours and a higher cost: its new part replaces the old one
    b2 = read_cost_part(write_cur(tmp_path / "b.csv.gz", hourly_rows(range(24, 36), level=2.0)), [])
    s2 = combine([a, b, b2])
    assert s2.n_hours == 36
    assert s2.row(EC2)[:24] == pytest.approx([1.01] * 24)
    assert s2.row(EC2)[24:] == pytest.approx([2.01] * 12)
    assert s2.row("arn:unknown").tolist() == [0.0] * 36


def test_combine_keeps_the_newest_window_and_marks_coverage(tmp_path):
    # two parts of one delivery (a bill-day split over two files of different deliveries counts once)
    a = read_cost_part(write_cur(tmp_path / "cur-00001.csv.gz", hourly_rows(range(0, 10))), [])
    b = read_cost_part(write_cur(tmp_path / "cur-00002.csv.gz", hourly_rows(range(20, 30))), [])
    s = combine([a, b])
    assert s.covered.tolist() == [True] * 10 + [False] * 10 + [True] * 10
    w = combine([a, b], window_hours=12)
    assert w.start_hour == H0 + 18 and w.n_hours == 12
    assert w.row(DB) == pytest.approx([0, 0] + [0.25] * 10)
    assert combine([]).n_hours == 0


def test_unreadable_file_is_an_issue(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("just,some,columns\n1,2,3\n")
    issues: list = []
    assert read_cost_part(p, issues) is None
    assert issues and "unrecognised" in issues[0].message


def test_fold_is_vectorised_on_a_million_rows():
    import time

    from engine.hourly import _fold

    rng = np.random.default_rng(0)
    n = 1_000_000
    hours = H0 + rng.integers(0, 336, n)
    res = rng.integers(0, 5000, n)
    cost = rng.random(n)
    t = time.perf_counter()
    h, r, c = _fold(hours, res, cost)
    assert time.perf_counter() - t < 3
    assert c.sum() == pytest.approx(cost.sum())
    assert len(np.unique(r * 10_000 + (h - H0))) == len(h)


def _touch_newer(path: Path, seconds: float = 60.0) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + seconds))


def test_parts_of_one_delivery_both_count_and_a_second_download_counts_once(tmp_path):
    rows = hourly_rows(range(48))
    ec2 = [r for r in rows if r[1] != "AmazonRDS"]  # the instance's lines and support
    db = [r for r in rows if r[1] == "AmazonRDS"]
    d = tmp_path / "cost" / "cur2" / "data"
    p1 = read_cost_part(write_cur(d / "cur2-00001.csv.gz", ec2), [])
    p2 = read_cost_part(write_cur(d / "cur2-00002.csv.gz", db), [])
    assert p1.delivery == p2.delivery
    s = combine([p1, p2])
    assert s.row(EC2) == pytest.approx([1.01] * 48) and s.row(DB) == pytest.approx([0.25] * 48)
    # a second download of the first part ("cur2-00001 (1)") is another delivery of the same bill-days
    again = write_cur(d / "cur2-00001 (1).csv.gz", ec2)
    _touch_newer(again)
    p3 = read_cost_part(again, [])
    assert p3.delivery != p1.delivery
    s3 = combine([p1, p2, p3])
    assert s3.row(EC2) == pytest.approx([1.01] * 48)  # not 2.02: the newest complete copy alone
    # ... as engine.costs picks it: the newer download's delivery wins those bill-days there too
    from engine.costs import bill_winners

    won = bill_winners([(p.delivery, p.mtime, p.coverage) for p in (p1, p2, p3)])
    assert won and {w for w, _ in won.values()} == {p3.delivery}
    # a fragment (a few rows of a day in a newer file of its own) never replaces the day
    frag = write_cur(tmp_path / "cost" / "pasted.csv.gz", ec2[:2])
    _touch_newer(frag, 120)
    s4 = combine([p1, p2, read_cost_part(frag, [])])
    assert s4.row(EC2) == pytest.approx([1.01] * 48)


def test_restated_newer_copy_wins_its_days_only(tmp_path):
    old = read_cost_part(write_cur(tmp_path / "v1" / "bill.csv.gz", hourly_rows(range(48))), [])
    new_path = write_cur(tmp_path / "v2" / "bill.csv.gz", hourly_rows(range(24, 48), level=2.0))
    _touch_newer(new_path)
    new = read_cost_part(new_path, [])
    s = combine([new, old])
    assert s.row(EC2) == pytest.approx([1.01] * 24 + [2.01] * 24)  # day 1 from v2, day 0 from v1 (v2 lacks it)
    assert s.row(DB) == pytest.approx([0.25] * 48)


def test_cost_part_bytes_carry_the_delivery_and_older_bytes_are_their_own(tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.ipc as ipc

    part = read_cost_part(write_cur(tmp_path / "cur2-00001.csv.gz", hourly_rows(range(30))), [])
    back = CostPart.from_bytes(part.to_bytes())
    assert (back.format, back.delivery, back.mtime, back.bills) == (part.format, part.delivery, part.mtime, part.bills)
    assert back.coverage == part.coverage and np.array_equal(back.bill, part.bill)
    assert part.bills == [("AWS", ACCOUNT)] and part.coverage[("AWS", ACCOUNT, H0 // 24)] == 4 * 24
    # bytes stored before the delivery fields: no bill column, no delivery metadata
    table = ipc.open_stream(pa.BufferReader(part.to_bytes())).read_all().drop_columns(["bill"])
    meta = {k: v for k, v in table.schema.metadata.items() if k in (b"path", b"daily", b"usage_types")}
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema.with_metadata(meta)) as w:
        w.write_table(table.replace_schema_metadata(meta))
    legacy = CostPart.from_bytes(sink.getvalue())
    assert legacy.bill is None and legacy.delivery == "" and legacy.coverage == {}
    assert legacy.delivery_key != part.delivery_key
    s = combine([legacy])
    assert s.row(EC2) == pytest.approx([1.01] * 30)

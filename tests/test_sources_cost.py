"""Billing readers: FOCUS, legacy CUR, CUR 2.0 (CSV and Parquet), Athena-style CUR, bad input."""

from __future__ import annotations

import csv
import gzip
import io
import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from engine.records import BundleIssue
from engine.sources.cost import COST_SCHEMA, cost_files, detect_format, read_cost_file


def read(path: Path) -> tuple:
    issues: list[BundleIssue] = []
    cf = read_cost_file(path, issues)
    return cf, issues


def total(cf) -> float:
    return pc.sum(cf.table.column("cost")).as_py() or 0.0


def test_focus_sample_1000_rows(shared_data):
    path = shared_data / "cost/focus/focus_sample.csv"
    cf, issues = read(path)
    assert issues == []
    assert cf.format == "focus" and cf.table.schema == COST_SCHEMA
    assert cf.table.num_rows == 1000
    assert cf.table.column("resource").null_count == 75  # 925 rows carry a ResourceId
    rows = list(csv.DictReader(path.open()))
    assert math.isclose(total(cf), sum(float(r["EffectiveCost"]) for r in rows), rel_tol=1e-9)
    tagged = {r["ResourceId"] for r in rows if r["Tags"] != "NULL" and r["ResourceId"] != "NULL"}
    assert sum(1 for r in rows if r["Tags"] != "NULL") == 711
    assert len(cf.tags) == len(tagged)
    aws = [t for a, t in cf.tags.items() if a.startswith("arn:")]
    assert aws and all(set(t) == {"application", "environment", "business_unit"} for t in aws)
    assert any(" org" in t for t in cf.tags.values())  # Azure rows: keys kept exactly as written
    assert cf.currency == "USD"
    starts = cf.table.column("start").to_pylist()
    assert starts[0] == datetime(2024, 9, 18, 22, tzinfo=UTC)  # "2024-09-18 22:00:00", no zone: UTC


def test_focus_sample_resource_ids(shared_data):
    cf, _ = read(shared_data / "cost/focus/focus_sample.csv")
    res = set(cf.table.column("resource").drop_null().to_pylist())
    # Scrambled ARNs stay ARNs; EC2 instance ids become instance ARNs in their region/sub-account.
    assert any(r.startswith("arn:ats:sqs:") for r in res)
    assert "arn:aws:ec2:us-east-2:79982682937:instance/i-037929a54982e113l" in res
    # Scrambled volume ids ("vom-") match no known prefix: kept addressable under the service name.
    assert "arn:aws:amazonelasticcomputecloud:us-west-2:85742851457:vom-0232l080lb22l218e" in res
    # Other clouds' ids are their own canonical keys, not fake AWS ARNs.
    assert any(r.startswith("/subscriptions/") for r in res)
    assert any(r.startswith("ocid") for r in res)


def test_cur_legacy_csv_1281_rows_all_unattributable(shared_data):
    path = shared_data / "cost/cur-legacy-csv/sample-anonymous-aws-export-dataset.csv"
    cf, issues = read(path)
    assert issues == []
    assert cf.format == "cur-legacy"
    assert cf.table.num_rows == 1281
    assert cf.table.column("resource").null_count == 1281
    with path.open(newline="") as f:
        want = sum(float(r["lineItem/UnblendedCost"]) for r in csv.DictReader(f))
    assert math.isclose(total(cf), want, rel_tol=1e-12)
    assert set(cf.table.column("line_type").to_pylist()) == {"Usage", "Tax"}
    regions = cf.table.column("region").to_pylist()
    assert "ca-central-1" in regions  # product/regionCode, with product/region filling its blanks
    assert cf.table.column("start").to_pylist()[0].year == 2023  # "2023-11-...T..:00:00.000Z"


def test_costdna_synthetic_seed0_cur2_csv(shared_data):
    seed = shared_data / "costdna-synthetic/seed0"
    files = cost_files(seed / "bundle")
    assert [f.name for f in files] == ["cur2-00001.csv.gz"]
    cf, issues = read(files[0])
    assert issues == []
    assert cf.format == "cur2" and cf.table.num_rows == 22848
    truth = {r["resource_id"]: r for r in csv.DictReader((seed / "truth.csv").open())}
    res = set(cf.table.column("resource").to_pylist())
    assert res == {r["arn"] for r in truth.values()}
    assert truth["i-6baa9455"]["arn"] in res  # bare EC2 id -> instance ARN
    # Only activated cost-allocation tags: `user_team` in CUR 2.0 -> `team`.
    train = {r["arn"]: r["team"] for r in truth.values() if r["split"] == "train"}
    assert {a: t["team"] for a, t in cf.tags.items()} == train


def test_cur2_parquet_with_map_tags(tmp_path):
    tags_type = pa.map_(pa.string(), pa.string())
    t = pa.table({
        "line_item_resource_id": ["i-0aa", "i-0aa", "orders", None],
        "line_item_unblended_cost": [1.5, 2.0, 0.25, 9.0],
        "line_item_usage_start_date": pa.array([datetime(2026, 1, 1, h) for h in (0, 5, 1, 2)], pa.timestamp("ms")),
        "line_item_product_code": ["AmazonEC2", "AmazonEC2", "AmazonDynamoDB", "AWSSupport"],
        "line_item_usage_account_id": ["111"] * 4,
        "product_region_code": ["eu-west-1"] * 4,
        "line_item_line_item_type": ["Usage"] * 3 + ["Fee"],
        "bill_payer_account_name": ["x"] * 4,
        "resource_tags": pa.array([[("user_team", "a"), ("user_env", "dev")], [("user_team", "b")],
                                   [("user:team", "c"), ("aws:createdBy", "me")], []], tags_type),
    })
    path = tmp_path / "cur.parquet"
    pq.write_table(t, path)
    cf, issues = read(path)
    assert issues == [] and cf.format == "cur2"
    assert cf.table.column("resource").to_pylist() == [
        "arn:aws:ec2:eu-west-1:111:instance/i-0aa", "arn:aws:ec2:eu-west-1:111:instance/i-0aa",
        "arn:aws:dynamodb:eu-west-1:111:table/orders", None]
    assert cf.tags == {
        "arn:aws:ec2:eu-west-1:111:instance/i-0aa": {"team": "b", "env": "dev"},  # latest line item wins per key
        "arn:aws:dynamodb:eu-west-1:111:table/orders": {"team": "c", "aws:createdBy": "me"},
    }
    assert cf.table.column("start").type == pa.timestamp("s", tz="UTC")
    assert total(cf) == 12.75


def test_cur_athena_parquet_with_tag_columns(tmp_path):
    t = pa.table({
        "line_item_resource_id": ["vol-1", "vol-1", "arn:aws:lambda:us-east-1:222:function:f:live"],
        "line_item_unblended_cost": pa.array([1, 2, 3], pa.decimal128(10, 2)),
        "line_item_usage_start_date": ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T00:00:00Z"],
        "line_item_product_code": ["AmazonEC2", "AmazonEC2", "AWSLambda"],
        "line_item_usage_account_id": ["222", "222", "222"],
        "product_region": ["us-east-1"] * 3,
        "resource_tags_user_team": ["data", None, "web"],
        "resource_tags_user_cost_center": [None, "42", ""],
    })
    path = tmp_path / "athena.parquet"
    pq.write_table(t, path)
    cf, issues = read(path)
    assert issues == [] and cf.format == "cur-athena"
    assert cf.tags == {
        "arn:aws:ec2:us-east-1:222:volume/vol-1": {"team": "data", "cost_center": "42"},
        "arn:aws:lambda:us-east-1:222:function:f": {"team": "web"},  # alias dropped by canonical_arn
    }
    assert cf.table.column("cost").to_pylist() == [1.0, 2.0, 3.0]


def test_cur_legacy_csv_with_resource_tag_columns(tmp_path):
    body = (
        "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/ResourceId,lineItem/ProductCode,"
        "lineItem/UsageAccountId,product/region,resourceTags/user:team,resourceTags/aws:createdBy\n"
        "2019-01-01T00:00:00Z,1.25,i-1,AmazonEC2,333,us-west-2,core,bob\n"
        "2019-01-01T01:00:00Z,0.75,my-bucket,AmazonS3,333,us-west-2,,\n"
    )
    path = tmp_path / "legacy.csv.gz"
    path.write_bytes(gzip.compress(body.encode()))
    cf, issues = read(path)
    assert issues == [] and cf.format == "cur-legacy"
    assert cf.table.column("resource").to_pylist() == ["arn:aws:ec2:us-west-2:333:instance/i-1", "arn:aws:s3:::my-bucket"]
    assert cf.tags == {"arn:aws:ec2:us-west-2:333:instance/i-1": {"team": "core", "aws:createdBy": "bob"}}


def test_detect_format():
    assert detect_format(["line_item_resource_id", "line_item_unblended_cost", "resource_tags"]) == "cur2"
    assert detect_format(["line_item_unblended_cost", "line_item_usage_account_name"]) == "cur2"
    assert detect_format(["line_item_unblended_cost", "resource_tags_user_team"]) == "cur-athena"
    assert detect_format(["lineItem/UnblendedCost"]) == "cur-legacy"
    assert detect_format(["ChargePeriodStart", "BilledCost", "ResourceId"]) == "focus"
    assert detect_format(["Date", "Cost"]) is None


# ---------------------------------------------------------------------------------------------
# bad input

HEADER = "line_item_usage_start_date,line_item_resource_id,line_item_unblended_cost,line_item_product_code,resource_tags\n"


def test_missing_required_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("line_item_usage_start_date,line_item_resource_id\n2026-01-01T00:00:00Z,i-1\n")
    cf, issues = read(path)
    assert cf is None
    assert [i.message for i in issues] == ["missing required column line_item_unblended_cost"]


def test_truncated_gzip(tmp_path):
    rows = "".join(f"2026-01-01T00:00:00Z,i-{i},1.0,AmazonEC2,\n" for i in range(50000))
    data = gzip.compress((HEADER + rows).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    cf, issues = read(path)
    assert cf is None
    assert [(i.location, i.message) for i in issues] == [("", "truncated gzip stream")]


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 but not really")
    cf, issues = read(path)
    assert cf is None and len(issues) == 1 and issues[0].message.startswith("not a readable Parquet file")


def test_empty_csv(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("")
    cf, issues = read(path)
    assert cf is None and issues[0].message == "empty file: no header line"


def test_bad_rows_are_skipped_and_named(tmp_path):
    body = HEADER + (
        "2026-01-01T00:00:00Z,i-1,1.0,AmazonEC2,\n"         # row 1 ok
        "2026-01-01T01:00:00Z,i-1,2.0\n"                    # row 2: too few fields
        "yesterday,i-1,4.0,AmazonEC2,\n"                    # row 3: bad time
        "2026-01-01T02:00:00Z,i-2,abc,AmazonEC2,\n"         # row 4: bad cost
        '2026-01-01T03:00:00Z,i-2,8.0,AmazonEC2,"[1]"\n'    # row 5: tags not an object
        "2026-01-01T04:00:00Z,,16.0,AWSSupport,\n"          # row 6: no resource: unattributable
    )
    path = tmp_path / "bad.csv"
    path.write_text(body)
    cf, issues = read(path)
    assert cf is not None
    assert cf.table.column("cost").to_pylist() == [1.0, 8.0, 16.0]
    assert cf.table.column("resource").null_count == 1
    got = sorted((i.location, i.message) for i in issues)
    assert got == [
        ("row 2", "expected 5 fields, got 3; row skipped"),
        ("row 3", "line_item_usage_start_date is not a time; row skipped"),
        ("row 4", "line_item_unblended_cost is not a finite number; row skipped"),
        ("row 5", "resource_tags is not a JSON object of tags"),
    ]


def test_many_bad_rows_are_summarised(tmp_path):
    rows = "".join(f"never,i-{i},1.0,AmazonEC2,\n" for i in range(30)) + "2026-01-01T00:00:00Z,i-x,1.0,AmazonEC2,\n"
    path = tmp_path / "many.csv"
    path.write_text(HEADER + rows)
    cf, issues = read(path)
    assert cf.table.num_rows == 1
    assert len(issues) == 21
    assert issues[-1].message == "10 more rows with an unreadable line_item_usage_start_date (not listed)"


def test_cost_files_layout(tmp_path):
    for name in ("a/x.csv", "b/y.csv.gz", "c/z.parquet", "c/manifest.json"):
        p = tmp_path / "cost" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    assert [p.name for p in cost_files(tmp_path)] == ["x.csv", "y.csv.gz", "z.parquet"]


@pytest.mark.parametrize("text", ["2026-11-08T21:00:00Z", "2026-11-08T21:00:00.000Z", "2026-11-08 21:00:00",
                                  "2026-11-08T23:00:00+02:00", "2026-11-08T21:00:00.000+0000"])
def test_start_time_forms(tmp_path, text):
    path = tmp_path / "t.csv"
    buf = io.StringIO()
    csv.writer(buf).writerows([["ChargePeriodStart", "BilledCost"], [text, "1"]])
    path.write_text(buf.getvalue())
    cf, issues = read(path)
    assert issues == []
    assert cf.table.column("start").to_pylist() == [datetime(2026, 11, 8, 21, tzinfo=UTC)]


def test_bom_and_crlf_header(tmp_path):
    path = tmp_path / "focus.csv"
    path.write_bytes(b"\xef\xbb\xbfChargePeriodStart,BilledCost,ResourceId\r\n2024-01-01T00:00:00Z,1.5,i-1\r\n")
    cf, issues = read(path)
    assert issues == [] and cf.format == "focus"
    assert cf.table.column("resource").to_pylist() == ["arn:aws:ec2:::instance/i-1"]  # no region/account given

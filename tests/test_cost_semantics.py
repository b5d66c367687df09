"""Cost semantics: every line item type lands in one model; billed and amortized totals reconcile.

The CUR below follows AWS's documented line items for Savings Plans (covered usage, its negation and
the recurring fee, whose amortized cost is the unused commitment), reservations (discounted usage at
the RI's effective cost, the RI fee with its unused parts, the upfront fee), a credit, a refund, an
EDP discount and tax. The expected figures are worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.bundle import load_bundle
from engine.costs import delivery_of
from engine.records import BundleError
from engine.scan import scan_bundle
from engine.sources.cost import charge_category, read_cost_file

FOCUS_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cost" / "focus" / "focus_sample.csv"

ACCT = "111122223333"
SP_ARN = f"arn:aws:savingsplans::{ACCT}:savingsplan/0b5c8d4e-1234-4cde-8f00-000000000001"
RI_ARN = f"arn:aws:ec2:us-east-1:{ACCT}:reserved-instances/4a1b2c3d-0000-4e5f-8a9b-000000000002"
COLUMNS = ["identity_line_item_id", "identity_time_interval", "bill_payer_account_id", "line_item_usage_account_id",
           "line_item_line_item_type", "line_item_usage_start_date", "line_item_product_code", "line_item_resource_id",
           "line_item_unblended_cost", "product_region_code", "resource_tags", "savings_plan_savings_plan_effective_cost",
           "savings_plan_total_commitment_to_date", "savings_plan_used_commitment", "reservation_reservation_a_r_n",
           "reservation_effective_cost", "reservation_unused_amortized_upfront_fee_for_billing_period",
           "reservation_unused_recurring_fee"]
T = "2026-11-03T10:00:00Z"
#        type                       product      resource   billed  sp_eff sp_commit sp_used ri_arn ri_eff unused_up unused_rec
LINES = [
    ("Usage",                   "AmazonEC2", "i-0aaa",   "0.50", "", "", "", "", "", "", ""),         # amortized 0.50
    ("SavingsPlanCoveredUsage", "AmazonEC2", "i-0bbb",   "1.00", "0.70", "", "", "", "", "", ""),     # 0.70 (SP rate)
    ("SavingsPlanNegation",     "AmazonEC2", "i-0bbb",   "-1.00", "", "", "", "", "", "", ""),        # 0 (discount)
    ("SavingsPlanRecurringFee", "ComputeSavingsPlans", SP_ARN, "0.80", "", "0.80", "0.70", "", "", "", ""),  # 0.10 unused
    ("DiscountedUsage",         "AmazonEC2", "i-0ccc",   "0", "", "", "", RI_ARN, "0.30", "", ""),     # 0.30 (RI rate)
    ("RIFee",                   "AmazonEC2", "",         "0.20", "", "", "", RI_ARN, "", "0.02", "0.05"),  # 0.07 unused
    ("Fee",                     "AmazonEC2", "",         "87.60", "", "", "", RI_ARN, "", "", ""),     # 0 (RI upfront)
    ("Credit",                  "AmazonEC2", "i-0aaa",   "-0.25", "", "", "", "", "", "", ""),        # -0.25
    ("Refund",                  "AmazonEC2", "",         "-3.00", "", "", "", "", "", "", ""),        # -3.00
    ("Tax",                     "AmazonEC2", "",         "6.20", "", "", "", "", "", "", ""),         # 6.20
    ("EdpDiscount",             "AmazonEC2", "i-0aaa",   "-0.03", "", "", "", "", "", "", ""),        # -0.03
]  # fmt: skip
# Billed: gross = usage 1.50 + fees 88.60 + tax 6.20 = 96.30; discounts -1.03; credits -0.25; refunds -3.00;
# net billed = 92.02. Amortized: 0.50+0.70+0+0.10+0.30+0.07+0-0.25-3.00+6.20-0.03 = 4.59, of which 3.27 on
# lines without a resource (RI fee 0.07, upfront 0, refund -3.00, tax 6.20) and 1.32 on resources:
# i-0aaa 0.22, i-0bbb 0.70, the Savings Plan 0.10, i-0ccc 0.30.


def cur_rows(start: str = T, account: str = ACCT, lines=LINES) -> list[dict[str, str]]:  # noqa: ANN001
    rows = []
    for n, (lt, prod, res, billed, sp_eff, sp_commit, sp_used, ri_arn, ri_eff, un_up, un_rec) in enumerate(lines):
        rows.append(dict(zip(COLUMNS, [
            f"li-{n}", f"{start}/{start}", account, account, lt, start, prod, res, billed, "us-east-1",
            json.dumps({"user_team": "payments"}) if res.startswith("i-") else "", sp_eff, sp_commit, sp_used, ri_arn,
            ri_eff, un_up, un_rec], strict=True)))
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def cur_bundle(tmp_path: Path) -> Path:
    write_csv(tmp_path / "b" / "cost" / "cur2" / "data" / "BILLING_PERIOD=2026-11" / "cur2-00001.csv", cur_rows())
    return tmp_path / "b"


def test_cur_line_items_reconcile_to_the_cent(cur_bundle: Path) -> None:
    c = load_bundle(cur_bundle).costs
    assert round(c.gross, 2) == 96.30
    assert round(c.breakdown["discount"], 2) == -1.03
    assert round(c.breakdown["credit"], 2) == -0.25
    assert round(c.breakdown["refund"], 2) == -3.00
    assert round(c.breakdown["tax"], 2) == 6.20
    assert round(c.breakdown["fee"], 2) == 88.60
    assert round(c.net_billed, 2) == 92.02
    assert round(c.total, 2) == 4.59
    assert round(c.unattributable, 2) == 3.27
    per_resource = {a.rsplit("/", 1)[-1].rsplit(":", 1)[-1]: round(c.resource_total(a), 2) for a in c.by_resource}
    assert per_resource == {"i-0aaa": 0.22, "i-0bbb": 0.70, "0b5c8d4e-1234-4cde-8f00-000000000001": 0.10,
                            "i-0ccc": 0.30}
    # per-resource amortized cost sums to the amortized total minus unattributable
    assert round(sum(c.resource_total(a) for a in c.by_resource), 2) == round(c.total - c.unattributable, 2)
    # billed per resource: the negation cancels the covered usage on the invoice
    bbb = next(a for a in c.by_resource if a.endswith("i-0bbb"))
    assert round(c.resource_billed(bbb), 2) == 0.0
    assert round(sum(c.resource_billed(a) for a in c.by_resource) + c.unattributable_billed, 2) == 92.02


def test_scan_summary_reports_every_measure(cur_bundle: Path) -> None:
    s = scan_bundle(cur_bundle).summary
    assert (s["gross_cost_usd"], s["discounts_usd"], s["credits_usd"], s["refunds_usd"]) == (96.30, -1.03, -0.25, -3.00)
    assert (s["tax_usd"], s["fees_usd"], s["net_billed_cost_usd"], s["amortized_cost_usd"]) == (6.20, 88.60, 92.02, 4.59)
    assert s["total_cost_usd"] == s["amortized_cost_usd"] == 4.59  # the existing field keeps one measure
    assert s["unattributable_cost_usd"] == 3.27
    assert s["measures"]["total_cost_usd"] == "amortized" and s["measures"]["net_billed_cost_usd"] == "billed"
    gross_parts = s["gross_cost_usd"] + s["discounts_usd"] + s["credits_usd"] + s["refunds_usd"] + s["adjustments_usd"]
    assert round(gross_parts, 2) == s["net_billed_cost_usd"]


def test_amortization_without_commitment_columns_keeps_billed_totals(tmp_path: Path) -> None:
    """An export made without the Savings Plan / RI columns: amortized falls back to billed, with a note."""
    cols = COLUMNS[:11]
    rows = [{k: r[k] for k in cols} for r in cur_rows()]
    write_csv(tmp_path / "b" / "cost" / "cur.csv", rows, cols)
    b = load_bundle(tmp_path / "b")
    assert round(b.costs.net_billed, 2) == 92.02
    assert round(b.costs.total, 2) == 92.02
    assert any("amortized cost is their billed cost" in i.message for i in b.issues)


def test_focus_sample_reconciles(tmp_path: Path) -> None:
    if not FOCUS_SAMPLE.exists():
        pytest.skip("../shared/data is not beside this checkout")
    (tmp_path / "b" / "cost").mkdir(parents=True)
    shutil.copy(FOCUS_SAMPLE, tmp_path / "b" / "cost" / FOCUS_SAMPLE.name)
    # Hand figures, summed from the sample's own columns by a separate reader (csv module):
    expect: dict[str, float] = {}
    eff_total = eff_unattr = 0.0
    with FOCUS_SAMPLE.open(newline="") as fh:
        for r in csv.DictReader(fh):
            billed, eff = float(r["BilledCost"]), float(r["EffectiveCost"])
            expect[r["ChargeCategory"]] = expect.get(r["ChargeCategory"], 0.0) + billed
            eff_total += eff
            if r["ResourceId"] in ("", "NULL"):
                eff_unattr += eff
    assert set(expect) == {"Usage", "Credit", "Adjustment"}
    s = scan_bundle(tmp_path / "b").summary
    assert s["gross_cost_usd"] == round(expect["Usage"], 2) == 22.86
    assert s["credits_usd"] == round(expect["Credit"], 2) == -2.61
    assert s["adjustments_usd"] == round(expect["Adjustment"], 2) == 0.27
    assert s["net_billed_cost_usd"] == round(sum(expect.values()), 2) == 20.52
    assert s["amortized_cost_usd"] == s["total_cost_usd"] == round(eff_total, 2) == 14.98
    assert s["unattributable_cost_usd"] == round(eff_unattr, 2) == -3.00
    # the untagged share can no longer exceed the resource spend it is a share of
    assert s["untagged_cost_usd"] <= round(s["total_cost_usd"] - s["unattributable_cost_usd"], 2)


@pytest.mark.parametrize("bad", ["NaN", "inf", "-Infinity", "nan", "1.7e308"])
def test_non_finite_cost_cells_are_issues_naming_row_and_column(tmp_path: Path, bad: str) -> None:
    rows = cur_rows()
    rows[2]["line_item_unblended_cost"] = bad
    rows[4]["reservation_effective_cost"] = bad
    path = write_csv(tmp_path / "b" / "cost" / "cur.csv", rows)
    issues: list = []
    cf = read_cost_file(path, issues)
    assert cf is not None and cf.table.num_rows == len(LINES) - 2
    got = sorted((i.location, i.message) for i in issues)
    assert got == [("row 3", "line_item_unblended_cost is not a finite number; row skipped"),
                   ("row 5", "reservation_effective_cost is not a finite number; row skipped")]
    assert all(i.path == str(path) for i in issues)
    with pytest.raises(BundleError, match="row 3"):
        load_bundle(tmp_path / "b", strict=True)


def test_non_finite_parquet_costs_are_skipped(tmp_path: Path) -> None:
    rows = cur_rows()
    table = pa.table({c: [r[c] for r in rows] for c in COLUMNS if c != "line_item_unblended_cost"})
    costs = [float(r["line_item_unblended_cost"]) for r in rows]
    costs[0], costs[7], costs[9] = math.nan, math.inf, 1.7e308  # the last: two of them sum to infinity
    table = table.append_column("line_item_unblended_cost", pa.array(costs, pa.float64()))
    path = tmp_path / "b" / "cost" / "cur.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    issues: list = []
    cf = read_cost_file(path, issues)
    assert cf is not None and cf.table.num_rows == len(LINES) - 3
    assert sorted(i.location for i in issues) == ["row 1", "row 10", "row 8"]
    assert all("line_item_unblended_cost" in i.message for i in issues)


def test_zero_and_negative_resource_costs_scan(cur_bundle: Path, fast_model) -> None:  # noqa: ANN001
    """A resource whose whole period nets to zero (i-0bbb billed) or below zero breaks nothing."""
    rows = cur_rows() + cur_rows("2026-11-03T11:00:00Z", lines=[
        ("Credit", "AmazonEC2", "i-0ddd", "-5000", "", "", "", "", "", "", "")])
    write_csv(cur_bundle / "cost" / "cur2" / "data" / "BILLING_PERIOD=2026-11" / "cur2-00001.csv", rows)
    s = scan_bundle(cur_bundle, config=fast_model).summary
    assert s["credits_usd"] == -5000.25
    assert s["resources"] == 5


def test_line_item_categories() -> None:
    cur = {"Usage": "usage", "DiscountedUsage": "usage", "SavingsPlanCoveredUsage": "usage", "RIFee": "fee",
           "SavingsPlanRecurringFee": "fee", "SavingsPlanUpfrontFee": "fee", "Fee": "fee", "Tax": "tax",
           "SavingsPlanNegation": "discount", "EdpDiscount": "discount", "BundledDiscount": "discount",
           "PrivateRateDiscount": "discount", "Credit": "credit", "Refund": "refund", "Something New": "other",
           None: "usage"}
    assert {k: charge_category(k, "cur2") for k in cur} == cur
    focus = {"Usage": "usage", "Purchase": "fee", "Tax": "tax", "Credit": "credit", "Adjustment": "adjustment"}
    assert {k: charge_category(k, "focus") for k in focus} == focus


# ---------------------------------------------------------------------------------------------
# one bill, counted once


def test_delivery_groups_parts_not_copies() -> None:
    d = Path("/b/cost/cur2/data/BILLING_PERIOD=2026-11")
    assert delivery_of(d / "cur2-00001.csv.gz", "cur2") == delivery_of(d / "cur2-00002.csv.gz", "cur2")
    assert delivery_of(d / "bill.csv", "cur2") != delivery_of(d / "bill (1).csv", "cur2")
    assert delivery_of(d / "bill.csv", "cur2") != delivery_of(d / "bill.csv", "focus")


def _touch_newer(path: Path, seconds: float = 60.0) -> None:
    for f in [path] if path.is_file() else path.rglob("*"):
        st = f.stat()
        os.utime(f, (st.st_atime, st.st_mtime + seconds))


def test_two_versions_of_a_billing_period_count_once_newest_wins(cur_bundle: Path) -> None:
    once = load_bundle(cur_bundle).costs
    v2 = cur_rows()
    v2[0]["line_item_unblended_cost"] = "0.60"  # the restated bill: usage 0.10 higher
    newer = write_csv(cur_bundle / "cost" / "cur2-v2" / "data" / "BILLING_PERIOD=2026-11" / "cur2-00001.csv", v2)
    _touch_newer(newer)
    b = load_bundle(cur_bundle)
    assert round(b.costs.net_billed, 2) == round(once.net_billed + 0.10, 2)
    assert round(b.costs.total, 2) == round(once.total + 0.10, 2)
    assert len(b.costs.duplicates) == 1 and "cur2-v2" in b.costs.duplicates[0]
    assert not b.issues  # a second copy is a note, not an error (strict still loads)
    s = scan_bundle(cur_bundle).summary
    assert s["duplicate_exports"] == b.costs.duplicates


def test_same_file_dropped_twice_in_one_folder(cur_bundle: Path) -> None:
    once = load_bundle(cur_bundle).costs
    src = next((cur_bundle / "cost").rglob("*.csv"))
    shutil.copy(src, src.with_name("cur2-00001 (1).csv"))
    twice = load_bundle(cur_bundle).costs
    assert round(twice.net_billed, 2) == round(once.net_billed, 2) == 92.02
    assert twice.duplicates


def test_split_by_date_range_is_not_a_duplicate(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "b" / "cost" / "nov-first-half.csv", cur_rows("2026-11-03T10:00:00Z"))
    write_csv(tmp_path / "b" / "cost" / "nov-second-half.csv", cur_rows("2026-11-20T10:00:00Z"))
    _touch_newer(a)
    c = load_bundle(tmp_path / "b").costs
    assert round(c.net_billed, 2) == round(2 * 92.02, 2)
    assert not c.duplicates


def cur_to_focus(cur_dir: Path, out: Path) -> None:
    """The same bill as a FOCUS 1.0 export (one FOCUS row per CUR line item)."""
    charge = {"Usage": "Usage", "Tax": "Tax", "Fee": "Purchase"}
    cols = ["BillingAccountId", "SubAccountId", "ProviderName", "ChargeCategory", "ChargeClass", "ChargePeriodStart",
            "ChargePeriodEnd", "BilledCost", "EffectiveCost", "ResourceId", "ServiceName", "RegionId", "Tags",
            "BillingCurrency"]
    files = sorted(cur_dir.rglob("*.csv*"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for f in files:
            data = f.read_bytes()
            if f.name.endswith(".gz"):
                data = gzip.decompress(data)
            for r in csv.DictReader(io.StringIO(data.decode())):
                tags = json.loads(r["resource_tags"]) if r["resource_tags"] else {}
                tags = {("user:" + k[5:] if k.startswith("user_") else k): v for k, v in tags.items()}
                w.writerow([r["line_item_usage_account_id"], r["line_item_usage_account_id"], "AWS",
                            charge[r["line_item_line_item_type"]], "", r["line_item_usage_start_date"],
                            r["line_item_usage_end_date"], r["line_item_unblended_cost"],
                            r["line_item_unblended_cost"], r["line_item_resource_id"], r["line_item_product_code"],
                            r["product_region_code"], json.dumps(tags) if tags else "", "USD"])


def test_cur_and_focus_of_one_bill_give_the_predictions_of_one(tiny_org: Path, tmp_path: Path, fast_model) -> None:  # noqa: ANN001
    once = tmp_path / "once"
    shutil.copytree(tiny_org / "bundle", once)
    both = tmp_path / "both"
    shutil.copytree(once, both)
    cur_to_focus(both / "cost", both / "cost" / "focus" / "focus-export.csv")
    _touch_newer(both / "cost" / "focus")
    a = scan_bundle(once, config=fast_model, workers=1)
    b = scan_bundle(both, config=fast_model, workers=1)
    assert b.bundle.costs.formats == {"cur2", "focus"}
    assert b.bundle.costs.duplicates, "the second export of the bill is noted"
    assert b.summary["total_cost_usd"] == a.summary["total_cost_usd"]
    assert b.summary["net_billed_cost_usd"] == a.summary["net_billed_cost_usd"]
    pa_, pb = a.by_arn(), b.by_arn()
    assert set(pa_) == set(pb)
    for arn, r in pa_.items():
        q = pb[arn]
        assert (q.predicted_team, q.tag_team, round(q.cost_usd, 6)) == (r.predicted_team, r.tag_team, round(r.cost_usd, 6)), arn
        assert q.confidence == pytest.approx(r.confidence, abs=1e-6), arn


@pytest.mark.parametrize("when", ["9999-12-31T00:00:00Z", "1601-01-01T00:00:00Z"])
def test_a_start_time_outside_1970_2100_is_an_issue_not_a_huge_matrix(tmp_path: Path, when: str) -> None:
    rows = cur_rows()
    rows[0]["line_item_usage_start_date"] = when
    write_csv(tmp_path / "b" / "cost" / "cur.csv", rows)
    b = load_bundle(tmp_path / "b")
    assert len(b.costs.days) == 1
    assert [(i.location, i.message) for i in b.issues] == [
        ("row 1", "line_item_usage_start_date is not a time; row skipped")]


def test_a_short_row_with_bytes_that_are_not_utf8_loses_only_itself(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """pyarrow cannot hand such a row to the invalid-row handler: the file is read again, repaired."""
    path = tmp_path / "b" / "cost" / "focus.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"ChargePeriodStart,BilledCost,ResourceId\n2026-11-01T00:00:00Z,1.0,a\n"
                     b"2026-11-01T00:00:00Z,1.0,b,caf\xe9\n2026-11-01T00:00:00Z,2.0,c\n")
    issues: list = []
    cf = read_cost_file(path, issues)
    assert cf is not None and cf.table.column("billed").to_pylist() == [1.0, 2.0]
    assert sorted(i.message for i in issues) == ["bytes that are not UTF-8 were replaced",
                                                 "expected 3 fields, got 4; row skipped"]
    assert "Traceback" not in capsys.readouterr().err

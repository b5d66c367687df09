"""Billing exports (CUR 2.0, legacy CUR, CUR in Athena/Parquet form, FinOps FOCUS, Azure EA/MCA cost
exports, GCP's BigQuery billing export) -> one cost table.

A month of hourly CUR for a real account is millions of rows, so nothing here loops over rows in
Python: pyarrow parses the file, string columns are read dictionary-encoded, and only the unique
values (resource ids, timestamps, tag sets) are turned into ARNs, epoch seconds and tag dicts.
Python row loops exist only on error paths, to name the rows that are wrong (and in the GCP billing
reader, whose nested credits and labels are read row by row: see :func:`read_gcp_billing`).

Azure's own exports (Cost Management "Cost and usage details", EA and MCA, actual or amortized) are
detected by header, case-insensitively: a cost column (``CostInBillingCurrency``, ``Cost``, ``PreTaxCost``),
a date (``Date``, ``UsageDate``, ``UsageDateTime``), a resource column (``ResourceId``, ``InstanceId``) and
one of ``SubscriptionId``/``SubscriptionGuid``, ``MeterCategory``, ``MeterId``, ``ConsumedService``,
``ResourceGroup``. A file is actual or amortized (the same columns): a manifest beside it naming
``ActualCost``/``AmortizedCost``, else the file's or its two folders' names ("amortized"/"amortised",
"actual"), else its rows (usage covered by a reservation or savings plan with a cost, or unused-commitment
rows: amortized; a commitment purchase with a cost: actual), else actual (Azure's default export). Each
file gives one measure exactly, the other the way FOCUS relates them: in an actual file
billed = ``Cost`` and amortized = billed (a commitment purchase stays where it was bought, as CUR without
its commitment columns); in an amortized file amortized = ``Cost``, billed = 0 for usage a commitment paid
for (and unused-commitment rows), a commitment purchase row counts 0 amortized. Resource ids become
``engine.sources.azure.normalize_resource_id`` keys (lower case), accounts ``/subscriptions/<id>`` (FOCUS's
``SubAccountId``), the provider "Microsoft", regions lower case without spaces; ``Tags`` is JSON, with or
without its braces (EA writes ``"k": "v","k2": "v2"``); dates are ``MM/DD/YYYY`` or ISO.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from engine.arns import arn_from_billing_id
from engine.records import BundleIssue
from engine.sources.azure import normalize_resource_id
from engine.sources.files import (
    UnreadableFile,
    is_gzip,
    list_files,
    open_binary,
    read_bytes,
    sniff_encoding,
    to_utf8,
)

COST_SCHEMA = pa.schema(
    [
        ("resource", pa.string()),
        ("start", pa.timestamp("s", tz="UTC")),
        ("cost", pa.float64()),  # amortized effective cost: what attribution, spikes and the digest use
        ("billed", pa.float64()),  # billed cost: what reconciles with the invoice
        ("service", pa.string()),
        ("account", pa.string()),
        ("region", pa.string()),
        ("line_type", pa.string()),  # as the export wrote it (CUR line item type, FOCUS ChargeCategory)
        ("category", pa.string()),  # one of CATEGORIES
        ("correction", pa.bool_()),  # FOCUS ChargeClass "Correction": fixes an earlier period's charge
        ("provider", pa.string()),  # "AWS", "Microsoft", ... (the bill a line belongs to)
    ]
)

# Where every line item of every format lands. gross = usage + fee + tax + other (billed, before any
# reduction); net billed = gross + discount + credit + refund + adjustment (= the invoice).
CATEGORIES = ("usage", "fee", "tax", "other", "discount", "credit", "refund", "adjustment")
GROSS_CATEGORIES = ("usage", "fee", "tax", "other")

COST_SUFFIXES = (".csv", ".csv.gz", ".parquet")
JSON_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")  # GCP billing export as JSON lines
_MAX_ROW_ISSUES = 20  # per file and problem; then one summary line
log = logging.getLogger("costdna.sources")


@dataclass
class CostFile:
    path: Path
    format: str  # "cur2" | "cur-legacy" | "cur-athena" | "focus" | "azure-actual" | "azure-amortized" | "gcp-billing"
    table: pa.Table  # COST_SCHEMA
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # resource ARN -> tags (latest wins)
    currency: str = "USD"


def cost_files(bundle: Path) -> list[Path]:
    """Every billing export under ``bundle/cost`` (CSV, gzipped CSV, Parquet, and JSON lines for GCP's
    billing export), sorted. JSON files named ``*manifest*`` are the exports' manifests, not data."""
    files = list_files(Path(bundle), "cost", (*COST_SUFFIXES, *JSON_SUFFIXES))
    return [f for f in files if not (f.name.lower().endswith(JSON_SUFFIXES) and "manifest" in f.name.lower())]


# ---------------------------------------------------------------------------------------------
# cost semantics


# CUR line item types -> category. Anything ending in "Discount" is a discount (EDP, bundled, private
# rate, distributor, SPP...); an unknown type is "other" and still counts in the billed totals.
_CUR_CATEGORY = {
    "usage": "usage", "discountedusage": "usage", "savingsplancoveredusage": "usage",
    "fee": "fee", "rifee": "fee", "savingsplanrecurringfee": "fee", "savingsplanupfrontfee": "fee",
    "tax": "tax", "savingsplannegation": "discount", "credit": "credit", "refund": "refund",
}  # fmt: skip
# FOCUS ChargeCategory (1.x; ChargeType in 0.5) -> category.
_FOCUS_CATEGORY = {"usage": "usage", "purchase": "fee", "tax": "tax", "credit": "credit",
                   "adjustment": "adjustment", "discount": "discount", "refund": "refund"}
# Azure ChargeType -> category (unused commitment is usage, as FOCUS counts it).
_AZURE_CATEGORY = {"usage": "usage", "unusedreservation": "usage", "unusedsavingsplan": "usage", "purchase": "fee",
                   "refund": "refund", "tax": "tax", "roundingadjustment": "adjustment", "adjustment": "adjustment",
                   "credit": "credit"}


def _type_key(line_type: str | None) -> str:
    """A line item type as the tables here spell it: lower case, no spaces or underscores."""
    return (line_type or "").replace(" ", "").replace("_", "").lower()


def charge_category(line_type: str | None, fmt: str) -> str:
    """The category of one line item type as the export names it (case and spaces ignored)."""
    if not line_type:
        return "usage"
    key = _type_key(line_type)
    table = _FOCUS_CATEGORY if fmt == "focus" else _AZURE_CATEGORY if fmt.startswith("azure") else _CUR_CATEGORY
    if key in table:
        return table[key]
    if key.endswith("discount"):
        return "discount"
    return "other"


# The CUR columns the amortized cost needs, per format (role -> column). The formula is AWS's own
# (Cost Explorer's "amortized cost", as in the CUDOS dashboards): commitment-covered usage costs its
# effective rate, the Savings Plan negation and upfront fee are spread over that usage (0), a
# commitment's recurring fee counts only for its unused part, an RI's upfront fee line counts 0.
_CUR2_COMMITMENT = {
    "sp_effective": "savings_plan_savings_plan_effective_cost",
    "sp_commitment": "savings_plan_total_commitment_to_date",
    "sp_used": "savings_plan_used_commitment",
    "ri_effective": "reservation_effective_cost",
    "ri_unused_upfront": "reservation_unused_amortized_upfront_fee_for_billing_period",
    "ri_unused_recurring": "reservation_unused_recurring_fee",
}
_LEGACY_COMMITMENT = {
    "sp_effective": "savingsPlan/SavingsPlanEffectiveCost",
    "sp_commitment": "savingsPlan/TotalCommitmentToDate",
    "sp_used": "savingsPlan/UsedCommitment",
    "ri_effective": "reservation/EffectiveCost",
    "ri_unused_upfront": "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
    "ri_unused_recurring": "reservation/UnusedRecurringFee",
}


# ---------------------------------------------------------------------------------------------
# formats


@dataclass(frozen=True)
class _Spec:
    """Where one format keeps each field: candidate columns in order of preference."""

    name: str
    billed: tuple[str, ...]  # what the invoice charges for the line
    start: tuple[str, ...]
    resource: tuple[str, ...]
    service: tuple[str, ...]
    account: tuple[str, ...]
    region: tuple[str, ...]
    line_type: tuple[str, ...]
    currency: tuple[str, ...]
    amortized: tuple[str, ...] = ()  # a ready amortized column (FOCUS EffectiveCost)
    commitment: tuple[tuple[str, str], ...] = ()  # CUR: (role, column) pairs for the amortization formula
    reservation_arn: tuple[str, ...] = ()
    charge_class: tuple[str, ...] = ()
    provider: tuple[str, ...] = ()
    tags_column: str | None = None  # one column of JSON text or a map
    tags_prefix: str | None = None  # one column per tag key
    pricing: tuple[str, ...] = ()  # Azure PricingModel (OnDemand, Reservation, SavingsPlan, Spot)

    @property
    def cost(self) -> tuple[str, ...]:
        """Every money column this format may carry (read as numbers)."""
        return (*self.billed, *self.amortized, *(c for _, c in self.commitment))


_CUR_SNAKE = dict(
    billed=("line_item_unblended_cost",),
    start=("line_item_usage_start_date",),
    resource=("line_item_resource_id",),
    service=("line_item_product_code", "product_servicecode"),
    account=("line_item_usage_account_id",),
    region=("product_region_code", "product_region"),
    line_type=("line_item_line_item_type",),
    currency=("line_item_currency_code",),
    commitment=tuple(_CUR2_COMMITMENT.items()),
    reservation_arn=("reservation_reservation_a_r_n",),
)
_SPECS = {
    "cur2": _Spec("cur2", tags_column="resource_tags", **_CUR_SNAKE),
    "cur-athena": _Spec("cur-athena", tags_prefix="resource_tags_", **_CUR_SNAKE),
    "cur-legacy": _Spec(
        "cur-legacy",
        billed=("lineItem/UnblendedCost",),
        start=("lineItem/UsageStartDate",),
        resource=("lineItem/ResourceId",),
        service=("lineItem/ProductCode", "product/servicecode"),
        account=("lineItem/UsageAccountId",),
        region=("product/regionCode", "product/region"),
        line_type=("lineItem/LineItemType",),
        currency=("lineItem/CurrencyCode",),
        commitment=tuple(_LEGACY_COMMITMENT.items()),
        reservation_arn=("reservation/ReservationARN",),
        tags_prefix="resourceTags/",
    ),
    "focus": _Spec(
        "focus",
        billed=("BilledCost",),
        amortized=("EffectiveCost",),
        start=("ChargePeriodStart",),
        resource=("ResourceId",),
        service=("ServiceName",),
        account=("SubAccountId",),
        region=("RegionId", "Region"),
        line_type=("ChargeCategory", "ChargeType"),
        charge_class=("ChargeClass",),
        currency=("BillingCurrency",),
        provider=("ProviderName",),
        tags_column="Tags",
    ),
}
# Columns only CUR 2.0 has (its nested map columns and the two name columns it added).
_CUR2_ONLY = {"bill_payer_account_name", "line_item_usage_account_name", "product", "discount", "cost_category"}
_FOCUS_MARKERS = {"ChargePeriodStart", "BilledCost", "EffectiveCost", "BillingAccountId", "ChargeCategory"}


def detect_format(columns: list[str]) -> str | None:
    """Which export a header belongs to, or None when it is none of the supported ones."""
    cols = set(columns)
    if any(c.startswith("lineItem/") for c in cols):
        return "cur-legacy"
    if any(c.startswith("line_item_") for c in cols):
        if "resource_tags" in cols:
            return "cur2"
        if any(c.startswith("resource_tags_") for c in cols):
            return "cur-athena"
        return "cur2" if cols & _CUR2_ONLY else "cur-athena"
    if len(cols & _FOCUS_MARKERS) >= 2:
        return "focus"
    lower = {c.strip().lower() for c in cols}
    if (lower & {r for r in _AZURE_ROLES["billed"]} and lower & set(_AZURE_ROLES["start"])
            and lower & set(_AZURE_ROLES["resource"]) and lower & _AZURE_MARKERS):
        return "azure"
    flat = {_gcp_key(c) for c in cols}
    if {"usage_start_time", "cost"} <= flat and flat & _GCP_MARKERS:
        return "gcp-billing"
    return None


# Azure cost export columns by role, lower case, in order of preference (EA and MCA spell them in
# PascalCase or camelCase; legacy EA exports say PreTaxCost, InstanceId, UsageDateTime, SubscriptionGuid).
_AZURE_ROLES: dict[str, tuple[str, ...]] = {
    "billed": ("costinbillingcurrency", "cost", "pretaxcost", "extendedcost"),
    "start": ("date", "usagedate", "usagedatetime"),
    "resource": ("resourceid", "instanceid"),
    "service": ("metercategory", "consumedservice", "servicename"),
    "account": ("subscriptionid", "subscriptionguid"),
    "region": ("resourcelocation", "resourcelocationnormalized", "location"),
    "line_type": ("chargetype",),
    "currency": ("billingcurrency", "billingcurrencycode", "currency"),
    "pricing": ("pricingmodel",),
}
_AZURE_MARKERS = {"subscriptionid", "subscriptionguid", "metercategory", "meterid", "consumedservice",
                  "resourcegroup", "resourcegroupname"}
_GCP_MARKERS = {"service_description", "service_id", "sku_description", "sku_id", "billing_account_id",
                "cost_type", "project_id"}


def _gcp_key(column: str) -> str:
    """A GCP billing column as flattened here: ``service.description`` -> ``service_description``."""
    return column.strip().lower().replace(".", "_")


def _azure_spec(header: list[str]) -> _Spec:
    """The Azure spec for this header: each role's columns as the file spells them."""
    by_lower: dict[str, str] = {}
    for c in header:
        by_lower.setdefault(c.strip().lower(), c)

    def role(name: str) -> tuple[str, ...]:
        return tuple(by_lower[c] for c in _AZURE_ROLES[name] if c in by_lower)

    return _Spec("azure", billed=role("billed")[:1], start=role("start")[:1], resource=role("resource")[:1],
                 service=role("service"), account=role("account")[:1], region=role("region")[:1],
                 line_type=role("line_type"), currency=role("currency")[:1], pricing=role("pricing"),
                 tags_column=by_lower.get("tags"))


def _pick(cands: tuple[str, ...], cols: set[str]) -> list[str]:
    return [c for c in cands if c in cols]


def _tag_key(key: str, fmt: str) -> str:
    """Tag keys as people wrote them: ``user:team`` and CUR 2.0's ``user_team`` -> ``team``."""
    if key.startswith("user:"):
        return key[5:]
    if fmt in ("cur2", "cur-athena") and key.startswith("user_"):
        return key[5:]
    return key


# ---------------------------------------------------------------------------------------------
# reading


class _RowIssues:
    """Row-level issues of one file, capped so one broken column cannot flood the report."""

    def __init__(self, path: str, issues: list[BundleIssue]):
        self.path, self.issues = path, issues
        self.counts: dict[str, int] = {}

    def add(self, row: int, problem: str, message: str) -> None:
        n = self.counts.get(problem, 0) + 1
        self.counts[problem] = n
        if n <= _MAX_ROW_ISSUES:
            self.issues.append(BundleIssue(self.path, f"row {row}", message))

    def mask(self, bad: np.ndarray, row_no: np.ndarray, problem: str, message: str) -> None:
        """Report the rows where ``bad`` is set (the first few by number, the rest counted)."""
        hits = np.flatnonzero(bad)
        for i in hits[:_MAX_ROW_ISSUES].tolist():
            self.add(int(row_no[i]), problem, message)
        if len(hits) > _MAX_ROW_ISSUES:
            self.counts[problem] = self.counts.get(problem, 0) + len(hits) - _MAX_ROW_ISSUES

    def close(self) -> None:
        for problem, n in self.counts.items():
            if n > _MAX_ROW_ISSUES:
                self.issues.append(
                    BundleIssue(self.path, "", f"{n - _MAX_ROW_ISSUES} more rows with {problem} (not listed)")
                )


_MAX_HEADER_BYTES = 1 << 20  # a CUR header of a thousand columns is ~40 KB


def _csv_header(path: Path) -> list[str]:
    with open_binary(path) as f:
        first = f.readline(_MAX_HEADER_BYTES + 1)  # bounded: a file of one enormous line is not held
    enc = sniff_encoding(first[3:] if first[:3] == b"\xef\xbb\xbf" else first)
    if enc is not None:
        codec, name, nul = enc
        if codec == "binary":
            raise UnreadableFile(f"binary data, not CSV (NUL byte at offset {nul})")
        raise UnreadableFile(f"encoded as {name}; a cost export must be UTF-8 CSV")
    if len(first) > _MAX_HEADER_BYTES and not first.endswith(b"\n"):
        raise UnreadableFile(f"first line longer than {_MAX_HEADER_BYTES} bytes: not a cost export header")
    text = first.decode("utf-8-sig", errors="replace").strip("\r\n")
    if not text.strip():
        raise UnreadableFile("empty file: no header line")
    try:
        return next(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise UnreadableFile(f"unreadable CSV header ({e})") from None


@contextmanager
def _quiet_unraisable() -> Iterator[None]:
    """pyarrow reports a row it cannot decode to ``on_invalid`` as an "Exception ignored" traceback on
    stderr, then fails the read (handled below): keep that traceback off the user's terminal."""
    import sys

    before = sys.unraisablehook
    sys.unraisablehook = lambda u: log.debug("pyarrow: %s", u.exc_value)
    try:
        yield
    finally:
        sys.unraisablehook = before


def _read_csv(path: Path, spec: _Spec, cols: list[str], header: list[str], rows: _RowIssues) -> tuple[pa.Table, list[int]]:
    """The needed columns; rows with the wrong number of fields are skipped and reported.

    Returns the table and the sorted data-row numbers that were skipped (to number later issues).
    """
    cost_cols = set(_pick(spec.cost, set(header)))
    # Text columns are read as plain strings (faster than dictionary conversion in the reader);
    # the few that need it are dictionary-encoded afterwards with one hash pass each.
    types = {c: (pa.float64() if c in cost_cols else pa.string()) for c in cols}
    skipped: list[tuple[int | None, int, int]] = []

    def on_invalid(row: Any) -> str:
        skipped.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    repaired: bytes | None = None  # the file with invalid UTF-8 replaced, when pyarrow needs that

    def read(threads: bool, types: dict[str, pa.DataType]) -> pa.Table:
        skipped.clear()
        if repaired is not None:
            src = pa.BufferReader(repaired)
        else:
            src = pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)
        with _quiet_unraisable():
            return pcsv.read_csv(
                src,
                read_options=pcsv.ReadOptions(use_threads=threads, block_size=4 << 20),
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(
                    include_columns=cols,
                    column_types=types,
                    null_values=["", "NULL", "null"],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )

    try:
        while True:  # each retry below changes what is read, once
            try:
                table = read(True, types)
                break
            except pa.ArrowInvalid as e:
                if "conversion error" in str(e) and any(t != pa.string() for t in types.values()):
                    # A cost cell that is not a number: read costs as text and name the bad rows later.
                    types = {c: pa.string() for c in cols}
                elif "columns, got" in str(e) and repaired is None:
                    # A row with the wrong number of fields and bytes that are not UTF-8: pyarrow cannot
                    # hand it to on_invalid, so read the file again with those bytes replaced.
                    repaired = read_bytes(path).decode("utf-8", errors="replace").encode("utf-8")
                    rows.issues.append(BundleIssue(rows.path, "", "bytes that are not UTF-8 were replaced"))
                else:
                    raise
        if any(n is None for n, _, _ in skipped):  # row numbers are only known single-threaded
            table = read(False, types)
    except OSError as e:
        msg = str(e)
        if "Truncated compressed stream" in msg or "truncated" in msg.lower():
            raise UnreadableFile("truncated gzip stream") from None
        raise UnreadableFile(f"cannot read CSV ({msg})") from None
    except pa.ArrowInvalid as e:
        raise UnreadableFile(f"cannot parse CSV ({e})") from None
    skipped_rows = []
    for number, expected, actual in skipped:
        data_row = (number or 0) - 1  # physical line -> data row (the header is line 1)
        skipped_rows.append(data_row)
        rows.add(data_row, "a wrong number of fields", f"expected {expected} fields, got {actual}; row skipped")
    return table, sorted(skipped_rows)


def _read_parquet(path: Path, cols: list[str]) -> pa.Table:
    try:
        schema = pq.read_schema(path)
        strings = [c for c in cols if pa.types.is_string(schema.field(c).type)]
        return pq.read_table(path, columns=cols, read_dictionary=strings)
    except (pa.ArrowException, OSError, KeyError, ValueError) as e:  # any Arrow error: a damaged file
        raise UnreadableFile(f"not a readable Parquet file ({str(e)[:300]})") from None


def _columns(path: Path) -> tuple[list[str], bool]:
    """(column names, is_parquet)."""
    if path.name.lower().endswith(".parquet"):
        try:
            return list(pq.read_schema(path).names), True
        except (pa.ArrowException, OSError, ValueError) as e:  # any Arrow error: a damaged file
            raise UnreadableFile(f"not a readable Parquet file ({str(e)[:300]})") from None
    return _csv_header(path), False


# ---------------------------------------------------------------------------------------------
# column helpers (all vectorised over unique values)


def _text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as plain strings, whatever Parquet or the CSV reader made of it."""
    t = col.type
    if pa.types.is_string(t):
        return col
    return pc.cast(col, pa.string())


def _codes(col: pa.ChunkedArray | None, n: int = 0) -> tuple[np.ndarray, list[str | None]]:
    """(int64 index per row into the unique values, -1 for null; the unique values)."""
    if col is None:
        return np.full(n, -1, np.int64), []
    if pa.types.is_dictionary(col.type) and pa.types.is_string(col.type.value_type):
        enc = col
    else:
        enc = pc.dictionary_encode(_text(col))
    if enc.num_chunks == 0:
        return np.zeros(0, np.int64), []
    if enc.num_chunks > 1:
        enc = enc.unify_dictionaries()
    dictionary = enc.chunk(0).dictionary.to_pylist()
    idx = pa.chunked_array([c.indices for c in enc.chunks], type=enc.type.index_type)
    if idx.null_count:
        idx = idx.fill_null(-1)
    return idx.to_numpy().astype(np.int64, copy=False), dictionary


def _coalesce(table: pa.Table, names: list[str]) -> pa.ChunkedArray | None:
    """The first present column as text, later ones filling its nulls (regionCode, then region)."""
    if not names:
        return None
    cols = [_text(table.column(c)) for c in names]
    return cols[0] if len(cols) == 1 else pc.coalesce(*cols)


def _per_row(codes: np.ndarray, values: list[str | None], test: Callable[[str], bool]) -> np.ndarray:
    """``test`` of each row's value, run once per unique value (False where the row is null)."""
    return np.array([test(v or "") for v in values] + [False], bool)[codes]  # code -1 -> the False


def _strings(codes: np.ndarray, values: list[str | None]) -> pa.Array:
    """A plain string column from codes into values (null where the code is -1)."""
    if not values:
        return pa.nulls(len(codes), pa.string())
    mask = codes < 0
    idx = pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask)
    return pc.take(pa.array(values, pa.string()), idx)


def _parse_ts(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        # CUR's "2026-11-08T21:00:00.000+0000" style offsets, and a trailing " UTC".
        try:
            dt = datetime.fromisoformat(t.removesuffix(" UTC").replace("+0000", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


_FIRST_SECOND, _LAST_SECOND = 0, 4_102_444_800  # 1970-01-01 .. 2100-01-01: outside it a time is a typo


def _start_seconds(col: pa.ChunkedArray, parse: Callable[[str | None], int | None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds per row, valid mask) from a text or timestamp column.

    A time outside 1970-2100 is invalid: one row dated 9999-12-31 would otherwise stretch the
    resources x days cost matrix over three million days.
    """
    t = col.type
    if pa.types.is_timestamp(t):
        col = pc.cast(col, pa.timestamp("s", tz="UTC"), safe=False)
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        secs = pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    elif pa.types.is_date(t):
        return _start_seconds(pa.chunked_array([pc.cast(c, pa.timestamp("s")) for c in col.chunks]))
    else:
        codes, values = _codes(col)
        parsed = [(parse or _parse_ts)(v) for v in values]
        lookup = np.array([p if p is not None else 0 for p in parsed] + [0], np.int64)
        ok = np.array([p is not None for p in parsed] + [False], bool)
        secs, valid = lookup[codes], ok[codes]  # code -1 indexes the trailing sentinel
    valid = valid & (secs >= _FIRST_SECOND) & (secs < _LAST_SECOND)
    return np.where(valid, secs, 0), valid


_MAX_AMOUNT = 1e15  # dollars on one line item: a thousand times any real bill, far below overflow


def _cost_values(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(amount per row, valid mask, null mask) from a numeric or text column.

    Valid means a finite number of plausible size: NaN and infinity (in Parquet doubles, or written
    "NaN", "inf" in a CSV) are not money, nor is anything past ``_MAX_AMOUNT`` (two such cells would
    sum to infinity), so they are invalid like any other unreadable cell. Invalid rows read 0.
    """
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        arr = pc.cast(col, pa.float64())
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        null = ~arr.is_valid().to_numpy(zero_copy_only=False)
        vals = arr.fill_null(0.0).to_numpy(zero_copy_only=False)
        ok = ~null & (np.abs(vals) < _MAX_AMOUNT)  # False for NaN too
        return np.where(ok, vals, 0.0), ok, null
    codes, values = _codes(col)
    parsed: list[float | None] = []
    for v in values:
        try:
            f = float(v) if v is not None else None
        except ValueError:
            f = None
        parsed.append(f if f is not None and abs(f) < _MAX_AMOUNT else None)  # NaN compares False
    lookup = np.array([p if p is not None else 0.0 for p in parsed] + [0.0], np.float64)
    ok = np.array([p is not None for p in parsed] + [False], bool)
    empty = np.array([v is None or not v.strip() for v in values] + [True], bool)  # "" in Parquet text
    return lookup[codes], ok[codes], empty[codes]


def _non_aws(raw: str) -> bool:
    """Resource ids of other clouds (Azure paths, OCI OCIDs, GCP names) are their own canonical key."""
    return raw.startswith(("/", "ocid")) or raw.startswith("//")


def _resources(table: pa.Table, spec: _Spec, cols: set[str], region: pa.ChunkedArray | None,
               account: pa.ChunkedArray | None, service: pa.ChunkedArray | None) -> tuple[np.ndarray, list[str]]:
    """(index per row into the unique ARNs, -1 where the line item names no resource; the ARNs).

    ``arn_from_billing_id`` runs once per unique (id, region, account, product, provider).
    """
    n = table.num_rows
    names = _pick(spec.resource, cols)
    if not names:
        return np.full(n, -1, np.int64), []
    provider = _coalesce(table, _pick(spec.provider, cols))
    columns = (table.column(names[0]), region, account, service, provider)
    # pyarrow releases the GIL: the five hash passes run side by side on the cores there are.
    with ThreadPoolExecutor(max_workers=min(5, os.cpu_count() or 1)) as pool:
        parts = list(pool.map(lambda c: _codes(c, n), columns))
    combos, inverse = _unique_rows([c for c, _ in parts], [len(v) + 1 for _, v in parts])
    rvals, gvals, avals, svals, pvals = (v for _, v in parts)

    def val(vals: list, i: int) -> str:
        return (vals[i] or "") if i >= 0 else ""

    arns: list[str] = []
    arn_index: dict[str, int] = {}
    combo_to_arn = np.full(len(combos) + 1, -1, np.int64)
    for j, (r, g, a, s, p) in enumerate(combos):
        raw = val(rvals, r).strip()
        if not raw:
            continue
        provider = val(pvals, p)
        if spec.name == "azure":
            arn: str | None = normalize_resource_id(raw)
        elif (provider and provider not in ("AWS", "Amazon Web Services")) or _non_aws(raw):
            arn = raw
        else:
            arn = arn_from_billing_id(raw, val(gvals, g), val(avals, a), val(svals, s).replace(" ", ""))
        if arn is None:
            continue
        k = arn_index.get(arn)
        if k is None:
            k = arn_index[arn] = len(arns)
            arns.append(arn)
        combo_to_arn[j] = k
    return combo_to_arn[inverse], arns


def _unique_rows(codes: list[np.ndarray], sizes: list[int]) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Unique rows of several code columns (-1 = null) and each row's index into them.

    The columns are packed into one int64 (mixed radix) and hashed once by pyarrow; only when the
    radix would overflow does it fall back to numpy's sort-based unique.
    """
    total = 1
    for s in sizes:
        total *= s
    if total < 2**62:
        # In place: every fresh array of millions of rows costs page faults, which are slow in VMs.
        key = codes[0] + 1
        for c, s in zip(codes[1:], sizes[1:], strict=True):
            key *= s
            if len(c) and s <= 2 and (s == 1 or c[0] >= 0) and bool((c == c[0]).all()):
                key += int(c[0]) + 1  # constant column (one account, one region): no array pass
            else:
                key += c
                key += 1
        enc = pc.dictionary_encode(pa.array(key))
        uniq = enc.dictionary.to_numpy(zero_copy_only=False)
        inverse = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        cols = []
        for s in reversed(sizes):
            uniq, rem = np.divmod(uniq, s)
            cols.append(rem - 1)
        return list(zip(*(c.tolist() for c in reversed(cols)), strict=True)), inverse
    stacked = np.stack(codes, axis=1)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    return [tuple(r) for r in uniq.tolist()], inverse.reshape(-1)


# ---------------------------------------------------------------------------------------------
# tags


def _latest(entries: pa.Table, groups: list[str]) -> pa.Table:
    return entries.group_by(groups, use_threads=False).aggregate([("t", "max"), ("row", "min")])


def _tags(table: pa.Table, spec: _Spec, fmt: str, cols: set[str], res: np.ndarray, arns: list[str],
          start: np.ndarray, keep: np.ndarray, rows: _RowIssues, row_no: np.ndarray) -> dict[str, dict[str, str]]:
    """Resource ARN -> {key: value}; for each key the value on the latest line item wins."""
    best: dict[tuple[int, str], tuple[int, str]] = {}

    def offer(r: int, key: str, value: Any, t: int) -> None:
        if value is None or key == "":
            return
        k = (r, _tag_key(key, fmt))
        cur = best.get(k)
        if cur is None or t >= cur[0]:
            best[k] = (t, str(value))

    has = keep & (res >= 0)
    if spec.tags_column and spec.tags_column in cols:
        col = table.column(spec.tags_column)
        if pa.types.is_map(col.type):
            arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
            # Parent row of every map entry, from the offsets (pc.list_parent_indices aborts on maps).
            # Offsets index the map's whole key/item children; null maps may still own entries.
            offsets = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
            parents = np.repeat(np.arange(len(arr), dtype=np.int64), np.diff(offsets))
            first, count = int(offsets[0]), int(offsets[-1] - offsets[0])
            kc, kv = _codes(pa.chunked_array([arr.keys.slice(first, count)]))
            vc, vv = _codes(pa.chunked_array([arr.items.slice(first, count)]))
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            sel = has[parents] & valid[parents] & (kc >= 0) & (vc >= 0)
            p = parents[sel]
            entries = pa.table({"r": res[p], "k": kc[sel], "v": vc[sel], "t": start[p], "row": row_no[p]})
            for r, k, v, t, _ in zip(*(_latest(entries, ["r", "k", "v"]).column(c).to_pylist()
                                      for c in ("r", "k", "v", "t_max", "row_min")), strict=True):
                offer(r, kv[k], vv[v], t)
        else:
            codes, texts = _codes(col)
            sel = has & (codes >= 0)
            entries = pa.table({"r": res[sel], "s": codes[sel], "t": start[sel], "row": row_no[sel]})
            parsed: dict[int, dict | None] = {}
            for r, s, t, row in zip(*(_latest(entries, ["r", "s"]).column(c).to_pylist()
                                     for c in ("r", "s", "t_max", "row_min")), strict=True):
                if s not in parsed:
                    parsed[s] = _tag_json(texts[s], fmt)
                    if parsed[s] is None:
                        rows.add(row, "unreadable tags", f"{spec.tags_column} is not a JSON object of tags")
                for k, v in (parsed[s] or {}).items():
                    offer(r, k, v, t)
    elif spec.tags_prefix:
        for name in sorted(c for c in cols if c.startswith(spec.tags_prefix)):
            key = name[len(spec.tags_prefix):]
            codes, values = _codes(table.column(name))
            sel = has & (codes >= 0)
            if not sel.any():
                continue
            entries = pa.table({"r": res[sel], "v": codes[sel], "t": start[sel], "row": row_no[sel]})
            for r, v, t in zip(*(_latest(entries, ["r", "v"]).column(c).to_pylist()
                                 for c in ("r", "v", "t_max")), strict=True):
                if values[v]:
                    offer(r, key, values[v], t)
    out: dict[str, dict[str, str]] = {}
    for (r, key), (_, value) in best.items():
        out.setdefault(arns[r], {})[key] = value
    return out


def _tag_json(text: str | None, fmt: str = "") -> dict | None:
    if text is None or not text.strip():
        return {}
    if fmt.startswith("azure") and not text.lstrip().startswith("{"):
        text = "{" + text + "}"  # EA writes the members without their braces
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


# ---------------------------------------------------------------------------------------------
# entry point


def read_cost_file(path: Path, issues: list[BundleIssue]) -> CostFile | None:
    """One billing export -> CostFile; None (and one issue) when the file cannot be read at all.

    Every line item gets its billed cost, its amortized effective cost and a category (see
    ``CATEGORIES``). Rows with an unreadable time or money cell (not a number, NaN, infinity), or the
    wrong number of fields, are skipped with an issue naming the row ("row N" counts data rows from 1,
    the header not included) and the column.
    """
    path = Path(path)
    where = str(path)
    if path.name.lower().endswith(JSON_SUFFIXES):
        return read_gcp_billing(path, issues)
    rows = _RowIssues(where, issues)
    try:
        header, is_parquet = _columns(path)
        fmt = detect_format(header)
        if fmt is None:
            shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
            raise UnreadableFile(f"unrecognised cost export format (columns: {shown})")
        if fmt == "gcp-billing":
            if is_parquet:
                raise UnreadableFile("GCP billing export as Parquet is not supported: export it as CSV or JSON lines")
            return read_gcp_billing(path, issues)
        spec = _azure_spec(header) if fmt == "azure" else _SPECS[fmt]
        cols = set(header)
        for cands in ((*spec.billed, *spec.amortized), spec.start):
            if not _pick(cands, cols):
                raise UnreadableFile(f"missing required column {' or '.join(cands)}")
        wanted = [
            c for c in header
            if c in {*spec.cost, *spec.start, *spec.resource, *spec.service, *spec.account, *spec.region,
                     *spec.line_type, *spec.currency, *spec.provider, *spec.charge_class, *spec.reservation_arn,
                     *spec.pricing}
            or c == spec.tags_column or (spec.tags_prefix and c.startswith(spec.tags_prefix))
        ]
        wanted = list(dict.fromkeys(wanted))
        if is_parquet:
            table, skipped = _read_parquet(path, wanted), []
        else:
            table, skipped = _read_csv(path, spec, wanted, header, rows)
    except UnreadableFile as e:
        issues.append(BundleIssue(where, "", str(e)))
        return None

    n = table.num_rows
    # Data-row numbers for issues, counting the skipped malformed rows back in.
    idx = np.arange(1, n + 1, dtype=np.int64)
    if skipped:  # kept row i is data row i + (number of skipped rows before it)
        sk = np.array(skipped, np.int64)
        idx = idx + np.searchsorted(sk - np.arange(len(sk)), idx, side="right")
    row_no = idx

    start, keep = _start_seconds(table.column(spec.start[0]), _parse_azure_date if fmt == "azure" else _parse_ts)
    rows.mask(~keep, row_no, f"an unreadable {spec.start[0]}", f"{spec.start[0]} is not a time; row skipped")

    def money(name: str, required: bool) -> tuple[np.ndarray, np.ndarray]:
        """(values, null mask) of a money column; rows where it is unreadable or not finite (or
        empty, when ``required``) leave ``keep``. An empty optional cell reads 0."""
        nonlocal keep
        vals, ok, null = _cost_values(table.column(name))
        bad = keep & ~ok & (True if required else ~null)
        rows.mask(bad, row_no, f"an unreadable {name}", f"{name} is not a finite number; row skipped")
        keep = keep & ~bad
        return vals, null

    billed_col = next(iter(_pick(spec.billed, cols)), None)
    amort_col = next(iter(_pick(spec.amortized, cols)), None)
    billed, _ = money(billed_col or amort_col, True)  # type: ignore[arg-type]
    amortized = billed
    if amort_col and billed_col:  # FOCUS: EffectiveCost, or the billed cost where it is empty
        eff, eff_null = money(amort_col, False)
        amortized = np.where(eff_null, billed, eff)
    commit = {role: money(col, False)[0] for role, col in spec.commitment if col in cols}

    region = _coalesce(table, _pick(spec.region, cols))
    account = _coalesce(table, _pick(spec.account, cols))
    service = _coalesce(table, _pick(spec.service, cols))
    line_type = _coalesce(table, _pick(spec.line_type, cols))
    provider = _coalesce(table, _pick(spec.provider, cols))
    lt_codes, lt_values = _codes(line_type, n)
    category = pc.fill_null(_strings(lt_codes, [charge_category(v, fmt) for v in lt_values]), "usage")
    if spec.commitment:
        amortized = _cur_amortized(table, spec, cols, billed, commit, lt_codes, lt_values, service, issues, where)
    if fmt == "azure":
        pricing = _codes(_coalesce(table, _pick(spec.pricing, cols)), n)
        fmt = _azure_kind(path, billed, lt_codes, lt_values, *pricing)
        billed, amortized = _azure_measures(fmt, billed, lt_codes, lt_values, *pricing)
        region = _map_text(region, lambda v: v.replace(" ", "").lower() or None)
        account = _map_text(account, lambda v: "/subscriptions/" + v.strip().lower() if v.strip() else None)
    correction = _per_row(*_codes(_coalesce(table, _pick(spec.charge_class, cols)), n),
                          lambda v: v.strip().lower() == "correction")
    res, arns = _resources(table, spec, cols, region, account, service)
    tags = _tags(table, spec, fmt, cols, res, arns, start, keep, rows, row_no)

    currency = "USD"
    cur = _coalesce(table, _pick(spec.currency, cols))
    if cur is not None:
        used = sorted(v for v in pc.unique(cur).to_pylist() if v)
        if len(used) > 1:
            issues.append(BundleIssue(where, "", f"several currencies ({', '.join(used)}); amounts are kept as given"))
        currency = used[0] if used else currency

    def text(col: pa.ChunkedArray | None) -> pa.ChunkedArray | pa.Array:
        return pa.nulls(n, pa.string()) if col is None else col

    if provider is None:
        name = "" if fmt == "focus" else AZURE_PROVIDER if fmt.startswith("azure") else "AWS"
        provider_col: pa.Array | pa.ChunkedArray = pa.repeat(pa.scalar(name), n)
    else:
        provider_col = pc.replace_substring_regex(pc.fill_null(provider, ""), r"^Amazon Web Services.*$", "AWS")
    out = pa.table(
        {
            "resource": _strings(res, arns),
            "start": pa.array(start, pa.timestamp("s", tz="UTC")),
            "cost": pa.array(amortized, pa.float64()),
            "billed": pa.array(billed, pa.float64()),
            "service": text(service),
            "account": text(account),
            "region": text(region),
            "line_type": text(line_type),
            "category": category,
            "correction": pa.array(correction, pa.bool_()),
            "provider": provider_col,
        },
        schema=COST_SCHEMA,
    )
    if not keep.all():
        out = out.filter(pa.array(keep))
    rows.close()
    return CostFile(path=path, format=fmt, table=out, tags=tags, currency=currency)


AZURE_PROVIDER = "Microsoft"  # FOCUS's ProviderName for Azure
GCP_PROVIDER = "Google Cloud"
_COMMITMENT_MODELS = ("reservation", "savingsplan")
_COVERED_TYPES = ("usage", "unusedreservation", "unusedsavingsplan")


def _map_text(col: pa.ChunkedArray | None, fn: Callable[[str], str | None]) -> pa.ChunkedArray | None:
    """``fn`` of each row's text, run once per unique value (nulls stay null)."""
    if col is None:
        return None
    codes, values = _codes(col)
    return pa.chunked_array([_strings(codes, [fn(v) if v is not None else None for v in values])], pa.string())


def _azure_rows(lt_codes: np.ndarray, lt_values: list[str | None], pr_codes: np.ndarray,
                pr_values: list[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(commitment-covered usage, unused-commitment rows, commitment purchases) of an Azure file."""
    commitment = _per_row(pr_codes, pr_values, lambda v: _type_key(v) in _COMMITMENT_MODELS)
    usage = _per_row(lt_codes, lt_values, lambda v: _type_key(v) == "usage")
    unused = _per_row(lt_codes, lt_values, lambda v: _type_key(v) in ("unusedreservation", "unusedsavingsplan"))
    purchase = _per_row(lt_codes, lt_values, lambda v: _type_key(v) == "purchase")
    return commitment & usage, unused, commitment & purchase


def _azure_kind(path: Path, cost: np.ndarray, lt_codes: np.ndarray, lt_values: list[str | None],
                pr_codes: np.ndarray, pr_values: list[str | None]) -> str:
    """"azure-actual" or "azure-amortized" (see the module docstring for the order of the clues)."""
    for m in sorted(path.parent.glob("*anifest*.json")):
        try:
            text = m.read_text("utf-8", errors="replace")[:1 << 20].lower()
        except OSError:
            continue
        if "amortizedcost" in text:
            return "azure-amortized"
        if "actualcost" in text:
            return "azure-actual"
    for name in (path.name, path.parent.name, path.parent.parent.name):
        low = name.lower()
        if "amortized" in low or "amortised" in low:
            return "azure-amortized"
        if "actual" in low:
            return "azure-actual"
    covered, unused, purchase = _azure_rows(lt_codes, lt_values, pr_codes, pr_values)
    if unused.any() or (covered & (cost != 0)).any():
        return "azure-amortized"
    return "azure-actual"


def _azure_measures(fmt: str, cost: np.ndarray, lt_codes: np.ndarray, lt_values: list[str | None],
                    pr_codes: np.ndarray, pr_values: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(billed, amortized) of an Azure file's ``Cost`` column (see the module docstring)."""
    if fmt == "azure-actual":
        return cost, cost
    covered, unused, purchase = _azure_rows(lt_codes, lt_values, pr_codes, pr_values)
    billed = np.where(covered | unused, 0.0, cost)
    amortized = np.where(purchase, 0.0, cost)
    return billed, amortized


def _parse_azure_date(text: str | None) -> int | None:
    """Azure's ``MM/DD/YYYY`` (EA; with a time in some legacy exports) or ISO 8601 (MCA) -> epoch seconds."""
    t = _parse_ts(text)
    if t is not None or text is None:
        return t
    v = text.strip()
    for fmt in ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M"):
        try:
            return int(datetime.strptime(v, fmt).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    return None


def _cur_amortized(table: pa.Table, spec: _Spec, cols: set[str], billed: np.ndarray,
                   commit: dict[str, np.ndarray], lt_codes: np.ndarray, lt_values: list[str | None],
                   service: pa.ChunkedArray | None, issues: list[BundleIssue], where: str) -> np.ndarray:
    """CUR's amortized cost per line item (Cost Explorer's formula; see ``_CUR2_COMMITMENT``).

    A file with commitment lines but without the columns the formula needs (an export made without
    them) keeps the billed cost for those lines, with one issue: totals still add up, only the
    spreading of the commitment over its usage is lost.
    """
    out = billed.copy()

    def rows_of(*types: str) -> np.ndarray:
        return _per_row(lt_codes, lt_values, lambda v: _type_key(v) in types)

    sp = rows_of("savingsplancoveredusage", "savingsplannegation", "savingsplanrecurringfee", "savingsplanupfrontfee")
    ri = rows_of("discountedusage", "rifee")
    ri_fee = rows_of("fee") & _per_row(*_codes(_coalesce(table, _pick(spec.reservation_arn, cols)), len(out)),
                                       lambda v: bool(v.strip()))
    missing: list[str] = []
    if sp.any():
        need = ("sp_effective", "sp_commitment", "sp_used")
        if all(r in commit for r in need):
            covered = rows_of("savingsplancoveredusage")
            out[covered] = commit["sp_effective"][covered]
            out[rows_of("savingsplannegation", "savingsplanupfrontfee")] = 0.0
            fee = rows_of("savingsplanrecurringfee")
            out[fee] = commit["sp_commitment"][fee] - commit["sp_used"][fee]
            # a refund of a Savings Plan purchase is spread like its fee
            out[rows_of("refund") & _per_row(*_codes(service, len(out)), lambda v: v == "ComputeSavingsPlans")] = 0.0
        else:
            missing += [dict(spec.commitment)[r] for r in need if r not in commit]
    if ri.any() or ri_fee.any():
        need = ("ri_effective", "ri_unused_upfront", "ri_unused_recurring")
        if all(r in commit for r in need):
            du = rows_of("discountedusage")
            out[du] = commit["ri_effective"][du]
            fee = rows_of("rifee")
            out[fee] = commit["ri_unused_upfront"][fee] + commit["ri_unused_recurring"][fee]
            out[ri_fee] = 0.0
        else:
            missing += [dict(spec.commitment)[r] for r in need if r not in commit]
    if missing:
        issues.append(BundleIssue(where, "", f"commitment line items without {', '.join(missing)}: their amortized "
                                             "cost is their billed cost (re-export with those columns to spread them)"))
    return out


# ---------------------------------------------------------------------------------------------
# GCP billing export (BigQuery "standard" or "detailed" usage cost export, as CSV or JSON lines)

# credits[].type -> category; any other type (PROMOTION, FREE_TIER...) is a credit.
_GCP_DISCOUNTS = frozenset({"SUSTAINED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE",
                            "DISCOUNT", "SUBSCRIPTION_BENEFIT", "RESELLER_MARGIN", "FEE_UTILIZATION_OFFSET"})
_GCP_COST_TYPES = {"regular": "usage", "tax": "tax", "adjustment": "adjustment", "roundingerror": "adjustment"}


def _gcp_row(rec: dict) -> dict[str, Any]:
    """A JSON-lines row flattened one level into the CSV's ``parent_child`` keys (lists kept as they are)."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        key = _gcp_key(k)
        if type(v) is dict:
            for k2, v2 in v.items():
                out[f"{key}_{_gcp_key(k2)}"] = v2
        else:
            out[key] = v
    return out


def _gcp_json(v: Any) -> Any:
    """A CSV cell holding JSON (credits, labels) -> its value; anything else as it is."""
    if type(v) is str and v.strip()[:1] in ("[", "{"):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def _gcp_labels(v: Any) -> dict[str, str] | None:
    """``[{"key": k, "value": v}, ...]`` or ``{k: v}`` -> tags; None when unreadable."""
    v = _gcp_json(v)
    if v is None or v == "":
        return {}
    if type(v) is dict:
        return {str(k): str(x) for k, x in v.items() if x is not None}
    if type(v) is list:
        out = {}
        for item in v:
            if type(item) is not dict or "key" not in item:
                return None
            if item.get("value") is not None:
                out[str(item["key"])] = str(item["value"])
        return out
    return None


def _gcp_money(v: Any) -> float | None:
    if type(v) in (int, float):
        f = float(v)
    elif type(v) is str and v.strip():
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    return f if abs(f) < _MAX_AMOUNT else None  # NaN compares False


def _gcp_records(path: Path, issues: list[BundleIssue]) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(data row number, flattened row or None when the row is unreadable) of a CSV or JSON-lines file.
    Raises UnreadableFile when the file as a whole is not a GCP billing export."""
    if path.name.lower().endswith(JSON_SUFFIXES):
        data = read_bytes(path)
        text, note = to_utf8(data, "a GCP billing export")
        if note:
            issues.append(BundleIssue(str(path), "", note))
        body = text.strip()
        if not body:
            raise UnreadableFile("empty file: no billing rows")
        if body[:1] == b"[":  # one JSON array of rows
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise UnreadableFile(f"not valid JSON ({str(e)[:200]})") from None
            lines: list[Any] = doc
        else:
            lines = body.split(b"\n")
        first = True
        for n, line in enumerate(lines, 1):
            if type(line) is bytes:
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    if first:
                        raise UnreadableFile(f"not JSON lines ({str(e)[:200]})") from None
                    issues.append(BundleIssue(str(path), f"line {n}", f"not valid JSON ({str(e)[:200]})"))
                    yield n, None
                    continue
            else:
                rec = line
            row = _gcp_row(rec) if type(rec) is dict else None
            if row is None and not first:
                issues.append(BundleIssue(str(path), f"line {n}", f"row is not a JSON object (got {type(rec).__name__})"))
            if first:
                if row is None or not {"usage_start_time", "cost"} <= row.keys():
                    shown = ", ".join(list(rec)[:12]) if type(rec) is dict else type(rec).__name__
                    raise UnreadableFile(f"unrecognised cost export format (JSON keys: {shown}); expected GCP's "
                                         "billing export (usage_start_time, cost, service, sku, ...)")
                first = False
            yield n, row
        return
    with open_binary(path) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""))
        try:
            header = [_gcp_key(c) for c in next(reader)]
            for n, cells in enumerate(reader, 1):
                if len(cells) != len(header):
                    if cells:
                        issues.append(BundleIssue(str(path), f"row {n}",
                                                  f"expected {len(header)} fields, got {len(cells)}; row skipped"))
                        yield n, None
                    continue
                yield n, dict(zip(header, cells, strict=True))
        except csv.Error as e:
            raise UnreadableFile(f"cannot parse CSV ({e})") from None


def read_gcp_billing(path: Path, issues: list[BundleIssue]) -> CostFile | None:
    """GCP's billing export (the BigQuery table exported as CSV, nested columns flattened as
    ``service.description`` or ``service_description``, or as JSON lines / a JSON array) -> CostFile.

    One usage row per line item (billed = amortized = ``cost``; ``cost_type`` tax / adjustment /
    rounding error go to those categories), and one row per entry of ``credits`` on the same resource
    and day (``amount``, negative: sustained/committed-use and other discounts are "discount", promotions
    and free tier "credit"), so a resource's spend is net of its credits and the billed total is the
    invoice's. The resource is ``resource.global_name`` (``//compute.googleapis.com/projects/…``, as
    engine.sources.gcp keys audit log resources), else ``resource.name`` as given; the standard export
    has neither, and its rows are project-level (no resource). Tags are ``labels`` (the resource's
    own), account ``project.id``, region ``location.region`` (else the location or the zone's region),
    service ``service.description``, provider "Google Cloud". Rows with an unreadable time or cost are
    skipped with an issue naming them; a file that is not this export is one issue.
    """
    from engine.sources.gcp import region_of_zone

    where = str(path)
    rows = _RowIssues(where, issues)
    cols: dict[str, list[Any]] = {k: [] for k in COST_SCHEMA.names}
    best: dict[tuple[str, str], tuple[int, str]] = {}  # (resource, key) -> (time, value): the latest wins
    currencies: set[str] = set()

    def add(resource: str | None, t: int, amount: float, service: str, account: str, region: str,
            line_type: str, category: str) -> None:
        for k, v in (("resource", resource), ("start", t), ("cost", amount), ("billed", amount), ("service", service),
                     ("account", account), ("region", region), ("line_type", line_type), ("category", category),
                     ("correction", False), ("provider", GCP_PROVIDER)):
            cols[k].append(v)

    def text(row: dict, *keys: str) -> str:
        for k in keys:
            v = row.get(k)
            if v is not None and str(v).strip():
                return str(v).strip()
        return ""

    try:
        for n, row in _gcp_records(path, issues):
            if row is None:
                continue
            t = _parse_ts(text(row, "usage_start_time"))
            if t is None or not _FIRST_SECOND <= t < _LAST_SECOND:
                rows.add(n, "an unreadable usage_start_time", "usage_start_time is not a time; row skipped")
                continue
            cost = _gcp_money(row.get("cost"))
            if cost is None:
                rows.add(n, "an unreadable cost", "cost is not a finite number; row skipped")
                continue
            resource = text(row, "resource_global_name", "resource_name") or None
            service = text(row, "service_description", "service_id")
            account = text(row, "project_id")
            region = text(row, "location_region", "location_location")
            if not region and (zone := text(row, "location_zone")):
                region = region_of_zone(zone)
            cost_type = text(row, "cost_type")
            currency = text(row, "currency")
            if currency:
                currencies.add(currency)
            category = _GCP_COST_TYPES.get(_type_key(cost_type), "usage") if cost_type else "usage"
            add(resource, t, cost, service, account, region, cost_type or "regular", category)
            credits = _gcp_json(row.get("credits"))
            if type(credits) is list:
                for c in credits:
                    amount = _gcp_money(c.get("amount")) if type(c) is dict else None
                    if amount is None:
                        rows.add(n, "an unreadable credit", "a credits entry has no readable amount; credit left out")
                        continue
                    kind = str(c.get("type") or "")
                    add(resource, t, amount, service, account, region, kind or "credit",
                        "discount" if kind in _GCP_DISCOUNTS else "credit")
            elif credits not in (None, ""):
                amount = _gcp_money(credits)
                if amount is None:
                    rows.add(n, "unreadable credits", "credits is neither a list of credits nor a number; left out")
                elif amount:
                    add(resource, t, amount, service, account, region, "credit", "credit")
            if resource:
                labels = _gcp_labels(row.get("labels"))
                if labels is None:
                    rows.add(n, "unreadable tags", "labels is not a list of {key, value} or an object")
                for k, v in (labels or {}).items():
                    if t >= best.get((resource, k), (-1, ""))[0]:
                        best[(resource, k)] = (t, v)
    except UnreadableFile as e:
        issues.append(BundleIssue(where, "", str(e)))
        return None
    rows.close()
    if len(currencies) > 1:
        issues.append(BundleIssue(where, "", f"several currencies ({', '.join(sorted(currencies))}); amounts are kept "
                                             "as given"))
    table = pa.table({k: pa.array(v, COST_SCHEMA.field(k).type) if k != "start" else
                      pa.array(v, pa.int64()).cast(pa.timestamp("s", tz="UTC")) for k, v in cols.items()},
                     schema=COST_SCHEMA)
    tags: dict[str, dict[str, str]] = {}
    for (r, k), (_, v) in best.items():
        tags.setdefault(r, {})[k] = v
    return CostFile(path=path, format="gcp-billing", table=table, tags=tags,
                    currency=min(currencies) if currencies else "USD")

"""Billing exports folded into per-resource hourly cost series: what the spike detector scores.

The watch reads each export file once and keeps its fold (a ``CostPart``: resource-hours and their
amortized cost) so that the next hour's watch only reads the new files and adds the stored parts back
(``combine``). A month of hourly CUR for a large org is millions of rows, so folding is numpy over
arrow columns; Python touches only the distinct ARNs and usage types.

Daily exports carry one line per resource and day. They are spread evenly over the day's 24 hours, so
a daily resource and an hourly one sit in the same matrix (``HourlySeries.daily`` says which ones
are only known per day).

A bundle may hold one bill twice (a CUR 2.0 and a FOCUS export of it, a second download
``bill (1).csv``). The scan counts each bill-day once (``engine.costs``: per provider, account and
day, the newest complete delivery); so does ``combine``, with the same rule and the same helpers,
from what each part keeps of its file: its delivery, when it was delivered, the bill of each row
and the line items it has per bill and day.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from engine.costs import Key, bill_days, bill_winners, coverage_of, delivered_at, delivery_of
from engine.records import BundleIssue
from engine.sources.cost import read_cost_file

# Usage-type columns per export format (CUR 2.0 / Athena, legacy CUR, FOCUS with AWS extensions).
_USAGE_COLUMNS = ("line_item_usage_type", "lineItem/UsageType", "x_UsageType", "x_usagetype")
# The part of a usage type after ':' that names an instance type or DB class ("BoxUsage:m5.large").
_ITYPE = re.compile(r"^(db\.)?[a-z][a-z0-9-]*\d[a-z0-9-]*\.(nano|micro|small|medium|large|\d*xlarge|metal[a-z0-9-]*)$")


def instance_type_of(usage_type: str | None) -> str | None:
    """``"USE1-BoxUsage:m5.large"`` -> ``"m5.large"``; None for usage types that name no instance."""
    if not usage_type or ":" not in usage_type:
        return None
    t = usage_type.rsplit(":", 1)[1].strip().lower()
    return t if _ITYPE.match(t) else None


@dataclass
class CostPart:
    """One cost file folded to (resource, hour) -> amortized $ — what the watch stores per file."""

    path: str
    arns: list[str]
    hours: np.ndarray  # int64 epoch hours, per row
    res: np.ndarray  # int32 index into arns, per row
    cost: np.ndarray  # float64 amortized $ in that hour (daily rows spread evenly over 24 h)
    daily: bool
    usage_types: dict[str, str] = field(default_factory=dict)  # arn -> latest instance type seen
    # What counting each bill once needs (engine.costs): without them (parts built by hand, bytes
    # stored before they existed) the part is a delivery of its own that competes for no bill-day.
    format: str = ""  # cur2 | cur | focus ...
    delivery: str = ""  # engine.costs.delivery_of; "" = the part's own path
    mtime: float = 0.0  # when delivered (engine.costs.delivered_at)
    bills: list[tuple[str, str]] = field(default_factory=list)  # (provider, account)
    bill: np.ndarray | None = None  # int32 index into bills, per row
    coverage: dict[Key, int] = field(default_factory=dict)  # line items per (provider, account, day), all rows

    @property
    def delivery_key(self) -> str:
        return self.delivery or f"{self.path}#part"

    def to_bytes(self) -> bytes:
        """Arrow IPC, zstd-compressed; ARNs travel as the dictionary of the resource column."""
        res = pa.DictionaryArray.from_arrays(pa.array(self.res, pa.int32()), pa.array(self.arns, pa.string()))
        meta = {b"path": self.path.encode(), b"daily": b"1" if self.daily else b"0",
                b"usage_types": orjson.dumps(self.usage_types), b"format": self.format.encode(),
                b"delivery": self.delivery.encode(), b"mtime": repr(float(self.mtime)).encode(),
                b"bills": orjson.dumps([list(b) for b in self.bills]),
                b"coverage": orjson.dumps([[p, a, d, n] for (p, a, d), n in self.coverage.items()])}
        cols = {"res": res, "hour": pa.array(self.hours, pa.int64()), "cost": pa.array(self.cost, pa.float64())}
        if self.bill is not None:
            cols["bill"] = pa.array(self.bill, pa.int32())
        table = pa.table(cols).replace_schema_metadata(meta)
        sink = io.BytesIO()
        with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as w:
            w.write_table(table)
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, b: bytes) -> CostPart:
        table = ipc.open_stream(pa.BufferReader(b)).read_all()
        meta = table.schema.metadata or {}
        res = table.column("res").combine_chunks()
        if isinstance(res, pa.DictionaryArray):
            arns = res.dictionary.to_pylist()
            idx = res.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        else:  # an empty table reads back as an empty chunk
            arns, idx = [], np.zeros(0, np.int32)
        bill = (table.column("bill").to_numpy().astype(np.int32) if "bill" in table.column_names else None)
        return cls(
            path=meta.get(b"path", b"").decode(),
            arns=arns,
            hours=table.column("hour").to_numpy().astype(np.int64),
            res=idx,
            cost=table.column("cost").to_numpy().astype(np.float64),
            daily=meta.get(b"daily") == b"1",
            usage_types=orjson.loads(meta.get(b"usage_types", b"{}")),
            format=meta.get(b"format", b"").decode(),
            delivery=meta.get(b"delivery", b"").decode() if bill is not None else "",
            mtime=float(meta.get(b"mtime", b"0") or 0),
            bills=[(p, a) for p, a in orjson.loads(meta.get(b"bills", b"[]"))],
            bill=bill,
            coverage={(p, a, int(d)): int(n) for p, a, d, n in orjson.loads(meta.get(b"coverage", b"[]"))}
            if bill is not None else {},
        )

    @property
    def rows(self) -> int:
        return len(self.cost)


def _usage_column(path: Path) -> pa.ChunkedArray | None:
    """The file's usage-type column, when it has one and its rows line up with the cost table's.

    ``read_cost_file`` does not keep usage types; they are read here in a second, one-column pass.
    When the reader skipped malformed rows the row counts differ and the caller does not trust it.
    """
    try:
        if path.name.endswith(".parquet"):
            names = pq.read_schema(path).names
            col = next((c for c in _USAGE_COLUMNS if c in names), None)
            if col is None:
                return None
            arr = pq.read_table(path, columns=[col]).column(0)
        else:
            from engine.sources.cost import _csv_header  # the header reader that copes with BOMs and gzip

            header = _csv_header(path)
            col = next((c for c in _USAGE_COLUMNS if c in header), None)
            if col is None:
                return None
            arr = pcsv.read_csv(
                str(path),
                read_options=pcsv.ReadOptions(block_size=16 << 20),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(include_columns=[col],
                                                    column_types={col: pa.dictionary(pa.int32(), pa.string())}),
            ).column(0)
    except Exception:  # noqa: BLE001 - usage types are a nicety; the cost fold never fails on them
        return None
    return arr


def _latest_types(usage: pa.ChunkedArray, keep: np.ndarray, res: np.ndarray, hours: np.ndarray,
                  arns: list[str]) -> dict[str, str]:
    """ARN -> the instance type of its latest usage row, over the instance-typed rows only."""
    enc = usage.combine_chunks()
    if not isinstance(enc, pa.DictionaryArray):
        enc = pc.dictionary_encode(enc)
    values = enc.dictionary.to_pylist()
    typed = np.array([instance_type_of(v) or "" for v in values] + [""], dtype=object)
    codes = enc.indices.to_numpy(zero_copy_only=False)
    codes = np.where(np.asarray(enc.indices.is_null()), len(values), codes)[keep]
    ok = typed[codes] != ""
    if not ok.any():
        return {}
    r, h, c = res[ok], hours[ok], codes[ok]
    order = np.lexsort((h, r))
    r, c = r[order], c[order]
    last = np.r_[r[1:] != r[:-1], True]
    return {arns[int(i)]: str(typed[int(k)]) for i, k in zip(r[last], c[last], strict=True)}


def read_cost_part(path: Path, issues: list[BundleIssue]) -> CostPart | None:
    """One billing export -> its CostPart (rows without a resource id are left out); None if unreadable."""
    path = Path(path)
    cf = read_cost_file(path, issues)
    if cf is None:
        return None
    table = cf.table
    n_all = table.num_rows
    keys = bill_days(table)
    coverage = coverage_of(keys)  # every line item, as engine.costs counts a delivery's share of a bill-day
    has_res = np.asarray(table.column("resource").is_valid())
    res_col = pc.dictionary_encode(table.column("resource").filter(pa.array(has_res))).combine_chunks()
    arns = res_col.dictionary.to_pylist()
    res = res_col.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    bill_col = pc.dictionary_encode(pc.binary_join_element_wise(
        keys.column("provider").filter(pa.array(has_res)), keys.column("account").filter(pa.array(has_res)),
        "\x1f")).combine_chunks()
    bills = [tuple(b.split("\x1f", 1)) for b in bill_col.dictionary.to_pylist()]
    bill = bill_col.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    secs = table.column("start").filter(pa.array(has_res)).cast(pa.int64()).to_numpy()
    cost = table.column("cost").filter(pa.array(has_res)).to_numpy().astype(np.float64)
    # Day granularity: every line starts at midnight and the file spans two days or more.
    daily = bool(len(secs)) and bool((secs % 86400 == 0).all()) and len(np.unique(secs // 86400)) >= 2
    hours = secs // 3600
    usage = _usage_column(path) if len(secs) else None
    if usage is not None and len(usage) != n_all:
        usage = None
    usage_types = _latest_types(usage, has_res, res, hours, arns) if usage is not None else {}
    n_bills = max(len(bills), 1)
    group = res * n_bills + bill  # (resource, bill): one resource seen in two accounts' bills stays apart
    if daily:  # spread each day evenly over its 24 hours
        hours = (hours[:, None] + np.arange(24)[None, :]).ravel()
        group = np.repeat(group, 24)
        cost = np.repeat(cost / 24.0, 24)
    hours, group, cost = _fold(hours, group, cost)
    return CostPart(path=str(path), arns=arns, hours=hours, res=(group // n_bills).astype(np.int32), cost=cost,
                    daily=daily, usage_types=usage_types, format=cf.format, delivery=delivery_of(path, cf.format),
                    mtime=delivered_at(path), bills=bills, bill=(group % n_bills).astype(np.int32), coverage=coverage)


def _fold(hours: np.ndarray, res: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the lines of each (group, hour); rows come back sorted by group then hour."""
    if not len(hours):
        return hours.astype(np.int64), res.astype(np.int64), cost.astype(np.float64)
    h0 = int(hours.min())
    span = int(hours.max()) - h0 + 1
    key = res.astype(np.int64) * span + (hours - h0)
    uniq, inv = np.unique(key, return_inverse=True)
    summed = np.bincount(inv, weights=cost, minlength=len(uniq))
    return uniq % span + h0, uniq // span, summed


def counted_parts(parts: Iterable[CostPart]) -> list[CostPart]:
    """What of the parts counts: the last part of each path, less the rows of bill-days another
    delivery holds and wins (``engine.costs``' rule). Anything that sums stored parts (the digest's
    daily cost too) sums these, or it counts a bill held twice twice."""
    by_path: dict[str, CostPart] = {}
    for p in parts:
        by_path.pop(p.path, None)
        by_path[p.path] = p
    parts = list(by_path.values())
    contested = bill_winners([(p.delivery_key, p.mtime, p.coverage) for p in parts])
    if not contested:
        return parts
    out = []
    for p in parts:
        d = p.delivery_key
        lost = [k for k in p.coverage if k in contested and contested[k][0] != d]
        if not lost or p.bill is None:
            out.append(p)
            continue
        index = {b: i for i, b in enumerate(p.bills)}
        codes = np.array([index[(pr, a)] * _DAYS + day for pr, a, day in lost if (pr, a) in index], np.int64)
        drop = np.isin(p.bill.astype(np.int64) * _DAYS + p.hours // 24, codes)
        if drop.all():
            continue
        keep = ~drop
        out.append(CostPart(path=p.path, arns=p.arns, hours=p.hours[keep], res=p.res[keep], cost=p.cost[keep],
                            daily=p.daily, usage_types=p.usage_types, format=p.format, delivery=p.delivery,
                            mtime=p.mtime, bills=p.bills, bill=p.bill[keep], coverage=p.coverage))
    return out


_DAYS = 1 << 32  # room for any epoch day in a (bill, day) code


@dataclass
class HourlySeries:
    """Per-resource hourly amortized cost over a window of hours (dense: resources x hours)."""

    start_hour: int  # epoch hour of column 0
    arns: list[str]
    cost: np.ndarray  # float64 (len(arns), n_hours)
    covered: np.ndarray  # bool (n_hours,): hours some cost data covers
    daily: np.ndarray  # bool (len(arns),): resource known only per day
    usage_types: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {a: i for i, a in enumerate(self.arns)}

    @property
    def n_hours(self) -> int:
        return int(self.cost.shape[1]) if self.cost.ndim == 2 else 0

    def index(self, arn: str) -> int | None:
        return self._index.get(arn)

    def row(self, arn: str) -> np.ndarray:
        """The resource's cost per hour (zeros for an ARN the series does not know)."""
        i = self._index.get(arn)
        return self.cost[i] if i is not None else np.zeros(self.n_hours)

    def hour_epoch(self, col: int) -> float:
        """Epoch seconds at the start of column ``col``."""
        return float((self.start_hour + int(col)) * 3600)

    def col_of(self, epoch_s: float) -> int:
        return int(epoch_s // 3600) - self.start_hour

    @property
    def first_covered_hour(self) -> int | None:
        """Epoch hour of the oldest hour with data."""
        cols = np.flatnonzero(self.covered)
        return int(self.start_hour + cols[0]) if len(cols) else None

    @property
    def last_covered_hour(self) -> int | None:
        """Epoch hour of the newest hour with data."""
        cols = np.flatnonzero(self.covered)
        return int(self.start_hour + cols[-1]) if len(cols) else None


def combine(parts: Iterable[CostPart], window_hours: int = 28 * 24) -> HourlySeries:
    """Sum the parts into one series, keeping the newest ``window_hours`` hours.

    A path given twice keeps its last part: a changed export file replaces what was read before.
    A bill-day that two deliveries hold (a CUR and a FOCUS export of one bill, a second download)
    counts once, from the delivery the scan counts it from (``engine.costs.bill_winners``).
    """
    parts_l = [p for p in counted_parts(parts) if p.rows]
    if not parts_l:
        return HourlySeries(0, [], np.zeros((0, 0)), np.zeros(0, bool), np.zeros(0, bool), {})
    end = max(int(p.hours.max()) for p in parts_l) + 1
    start = max(min(int(p.hours.min()) for p in parts_l), end - window_hours)
    n_h = end - start
    index: dict[str, int] = {}
    glob_idx: list[np.ndarray] = []
    for p in parts_l:
        glob_idx.append(np.array([index.setdefault(a, len(index)) for a in p.arns], np.int64))
    arns = list(index)
    n = len(arns)
    covered = np.zeros(n_h, bool)
    hourly_res = np.zeros(n, bool)
    daily_res = np.zeros(n, bool)
    usage: dict[str, str] = {}
    keys: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for p, g in sorted(zip(parts_l, glob_idx, strict=True), key=lambda pg: int(pg[0].hours.max())):
        m = p.hours >= start
        h = p.hours[m] - start
        r = g[p.res[m]]
        keys.append(r * n_h + h)
        weights.append(p.cost[m])
        covered[h] = True
        (daily_res if p.daily else hourly_res)[r] = True
        usage.update(p.usage_types)  # later parts win
    flat = np.bincount(np.concatenate(keys), weights=np.concatenate(weights), minlength=n * n_h)
    return HourlySeries(start_hour=start, arns=arns, cost=flat.reshape(n, n_h), covered=covered,
                        daily=daily_res & ~hourly_res, usage_types=usage)

"""Billing exports -> spend per resource and day, in two measures, each bill counted once.

Two measures, as the bill defines them (see ``engine.sources.cost`` for the per-format rules):

- **amortized** effective cost (``Costs.by_resource``, ``Costs.total``): commitment purchases spread
  over the usage they cover. Attribution, spikes and the digest use it: it says what a resource costs.
- **billed** cost (``Costs.by_resource_billed``, ``Costs.net_billed``): what the invoice charges, so
  it reconciles with the bill. ``breakdown`` splits it: gross (usage, fees, tax, other) then the
  reductions (discounts, credits, refunds) and adjustments; gross + reductions + adjustments = net.

People drop several exports of one bill into a bundle (a CUR 2.0 and a FOCUS export of the same
account, two versions of a billing period). Each file belongs to a *delivery* (the parts of one
export: the same folder and name but a part number); when two deliveries cover the same account on
the same day, only the newer one (by modification time of its files or their manifest) counts for
that day, and a note says so; a fragment (under half the line items of the fullest copy of that day)
never wins. Day granularity keeps an export split by date range whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.records import BundleIssue
from engine.sources.cost import CATEGORIES, GROSS_CATEGORIES, CostFile, cost_files, read_cost_file
from engine.sources.files import release_memory

_BILL = ("provider", "account")  # one bill: a provider's account (CUR usage account, FOCUS SubAccountId)
Key = tuple[str, str, int]  # (provider, account, epoch day): one bill on one day


@dataclass
class Costs:
    """Spend, per resource and day, plus what no resource can carry."""

    days: np.ndarray  # sorted epoch days covered by cost data
    by_resource: dict[str, np.ndarray]  # arn -> amortized cost per day (aligned with ``days``)
    total: float = 0.0  # amortized, every line item
    unattributable: float = 0.0  # amortized, line items without a resource id (tax, support, transfer...)
    unattributable_by_service: dict[str, float] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # arn -> tags seen on its line items
    formats: set[str] = field(default_factory=set)
    currency: str = "USD"
    rows: int = 0
    by_resource_billed: dict[str, np.ndarray] = field(default_factory=dict)  # arn -> billed cost per day
    breakdown: dict[str, float] = field(default_factory=dict)  # category -> billed cost (CATEGORIES)
    corrections: float = 0.0  # billed cost of lines that correct earlier periods (FOCUS ChargeClass)
    unattributable_billed: float = 0.0
    duplicates: list[str] = field(default_factory=list)  # notes on exports counted once

    def resource_total(self, arn: str) -> float:
        s = self.by_resource.get(arn)
        return float(s.sum()) if s is not None else 0.0

    def resource_billed(self, arn: str) -> float:
        s = self.by_resource_billed.get(arn)
        return float(s.sum()) if s is not None else 0.0

    def monthly(self, arn: str) -> float:
        """Amortized spend extrapolated to 30 days from the days the data covers."""
        if len(self.days) == 0:
            return 0.0
        return self.resource_total(arn) * 30.0 / len(self.days)

    @property
    def gross(self) -> float:
        """Billed cost before discounts, credits, refunds and adjustments."""
        return sum(self.breakdown.get(c, 0.0) for c in GROSS_CATEGORIES)

    @property
    def net_billed(self) -> float:
        return sum(self.breakdown.values())


# ---------------------------------------------------------------------------------------------
# one file, folded


@dataclass
class _Part:
    """One cost file folded to days: small tables keyed by (bill, day) so a duplicate can be dropped."""

    path: Path
    delivery: str
    mtime: float
    daily: pa.Table  # resource, provider, account, day, cost, billed
    unattr: pa.Table  # service, provider, account, day, cost, billed
    cats: pa.Table  # category, correction, provider, account, day, cost, billed
    coverage: dict[Key, int]  # line items the file has for each bill and day


_PART_NO = re.compile(r"^(.*?)[-_.]?(?:part[-_.]?)?\d+$", re.IGNORECASE)
_SUFFIXES = (".csv.gz", ".csv", ".parquet")


def delivery_of(path: Path, fmt: str) -> str:
    """The export a file is part of: its folder, format and name without a trailing part number.

    ``cur2-00001.csv.gz`` and ``cur2-00002.csv.gz`` are parts of one delivery; ``bill.csv`` and
    ``bill (1).csv`` (a second download of the same bill) are two.
    """
    name = path.name
    for suf in _SUFFIXES:
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    m = _PART_NO.match(name)
    return f"{path.parent}/{m.group(1) if m else name}#{fmt}"


def _manifest_time(folder: Path) -> float:
    """The modification time of the newest manifest in ``folder`` (0 when there is none)."""
    return max((m.stat().st_mtime for m in folder.glob("*anifest*.json")), default=0.0)


def delivered_at(path: Path, manifest_time: float | None = None) -> float:
    """When a cost file was delivered: it or a manifest beside it was last written, the later.

    ``manifest_time`` is the folder's :func:`_manifest_time` when the caller already knows it.
    """
    if manifest_time is None:
        manifest_time = _manifest_time(path.parent)
    return max(path.stat().st_mtime, manifest_time)


def bill_days(t: pa.Table) -> pa.Table:
    """A cost table's (provider, account, day) per line item: the key a bill is counted once by."""
    day = pc.cast(pc.floor(pc.divide(pc.cast(pc.cast(t.column("start"), pa.int64()), pa.float64()), 86400.0)),
                  pa.int64())
    return pa.table({"provider": pc.fill_null(t.column("provider"), ""), "account": pc.fill_null(t.column("account"), ""),
                     "day": day})


def coverage_of(t: pa.Table, count: str | None = None) -> dict[Key, int]:
    """Line items per (provider, account, day) of a table with those columns: each row one line item,
    or ``count`` of them when that column says how many (an already grouped table)."""
    if t.num_rows == 0:
        return {}
    g = t.group_by([*_BILL, "day"], use_threads=False).aggregate([(count, "sum")] if count else [([], "count_all")])
    n = g.column(f"{count}_sum" if count else "count_all").to_pylist()
    return {(p, a, int(d)): int(k)
            for p, a, d, k in zip(*(g.column(c).to_pylist() for c in (*_BILL, "day")), n, strict=True)}


def _fold(cf: CostFile, delivery: str, mtime: float) -> _Part:
    t = cf.table
    base = bill_days(t).append_column("cost", t.column("cost")).append_column("billed", t.column("billed"))
    no_res = pc.is_null(t.column("resource"))
    sums = [("cost", "sum"), ("billed", "sum")]
    # One thread: threads sum a group's line items in an order that varies from run to run, and the
    # rounding noise of a flat cost series is what its variation and autocorrelation features see.
    daily = base.append_column("resource", t.column("resource")).filter(pc.invert(no_res)).group_by(
        ["resource", *_BILL, "day"], use_threads=False).aggregate(sums)
    unattr = base.append_column("service", pc.fill_null(t.column("service"), "other")).filter(no_res).group_by(
        ["service", *_BILL, "day"], use_threads=False).aggregate(sums)
    cats = base.append_column("category", t.column("category")).append_column("correction", t.column("correction"))
    cats = cats.group_by(["category", "correction", *_BILL, "day"], use_threads=False).aggregate(
        [*sums, ("cost", "count")])
    return _Part(cf.path, delivery, mtime, daily, unattr, cats, coverage_of(cats, "cost_count"))


# ---------------------------------------------------------------------------------------------
# one bill once


def _bill_label(provider: str, account: str) -> str:
    return " ".join(x for x in (provider or "", f"account {account}" if account else "") if x) or "no account"


def _day_range(days: list[int]) -> str:
    def d(x: int) -> str:
        return datetime.fromtimestamp(x * 86400, UTC).strftime("%Y-%m-%d")

    lo, hi = min(days), max(days)
    return d(lo) if lo == hi else f"{d(lo)}..{d(hi)}"


def bill_winners(parts: Iterable[tuple[str, float, Mapping[Key, int]]]) -> dict[Key, tuple[str, set[str]]]:
    """The delivery that counts for each bill-day two or more deliveries cover.

    ``parts`` are (delivery, delivered at, line items per (provider, account, day)) per file; a
    delivery's time is its newest file's. Returns key -> (winner, every delivery covering it), for
    the contested keys only. The newest complete copy wins: a fragment (under half the line items
    of the fullest copy, e.g. a few rows pasted into a file of their own) never replaces a whole
    day of the bill; equal times go to the greater delivery name, so every reader picks the same.
    """
    when: dict[str, float] = {}
    covered: dict[Key, dict[str, int]] = {}  # bill and day -> delivery -> line items
    for delivery, mtime, coverage in parts:
        when[delivery] = max(when.get(delivery, mtime), mtime)
        for key, n in coverage.items():
            per = covered.setdefault(key, {})
            per[delivery] = per.get(delivery, 0) + n
    out: dict[Key, tuple[str, set[str]]] = {}
    for key, ds in covered.items():
        if len(ds) < 2:
            continue
        most = max(ds.values())
        winner = max((d for d, n in ds.items() if 2 * n >= most), key=lambda d: (when[d], d))
        out[key] = (winner, set(ds))
    return out


def _drop_duplicates(parts: list[_Part], root: Path) -> tuple[dict[int, pa.Table], list[str]]:
    """For each part, the (provider, account, day) keys it loses to a newer delivery; and the notes."""
    deliveries: dict[str, list[int]] = {}
    for i, p in enumerate(parts):
        deliveries.setdefault(p.delivery, []).append(i)
    covered = bill_winners([(p.delivery, p.mtime, p.coverage) for p in parts])
    losing: dict[str, set[Key]] = {}
    pairs: dict[tuple[str, str, str, str], list[int]] = {}  # (loser, winner, provider, account) -> days
    for key, (winner, ds) in covered.items():
        for d in ds - {winner}:
            losing.setdefault(d, set()).add(key)
            pairs.setdefault((d, winner, key[0], key[1]), []).append(key[2])

    def show(d: str) -> str:
        files = sorted({parts[i].path for i in deliveries[d]})
        try:
            shown = str(files[0].relative_to(root))
        except ValueError:
            shown = str(files[0])
        return shown + (f" (+{len(files) - 1} parts)" if len(files) > 1 else "")

    notes = [f"{show(lo)} and {show(win)} hold the same bill ({_bill_label(provider, account)}, "
             f"{_day_range(days)}): counted once, from {show(win)} (the newest complete copy)"
             for (lo, win, provider, account), days in sorted(pairs.items())]
    out: dict[int, pa.Table] = {}
    for d, keys in losing.items():
        provider, account, day = zip(*keys, strict=True)
        drop = pa.table({"provider": pa.array(provider, pa.string()), "account": pa.array(account, pa.string()),
                         "day": pa.array(day, pa.int64())})
        for i in deliveries[d]:
            out[i] = drop
    return out, notes


def _without(t: pa.Table, drop: pa.Table | None) -> pa.Table:
    """``t`` less its rows on the (provider, account, day) keys in ``drop``."""
    if drop is None or t.num_rows == 0:
        return t
    return t.join(drop, keys=[*_BILL, "day"], join_type="left anti", use_threads=False)


# ---------------------------------------------------------------------------------------------
# the whole bundle


def _matrix(g: pa.Table, col: str, all_days: np.ndarray, uniq: np.ndarray, inv: np.ndarray,
            day_idx: np.ndarray) -> dict[str, np.ndarray]:
    mat = np.zeros((len(uniq), len(all_days)))
    np.add.at(mat, (inv, day_idx), g.column(col).to_numpy())
    return {str(a): mat[i] for i, a in enumerate(uniq)}


def aggregate(parts: list[_Part], drop: dict[int, pa.Table], rows: int, tags: dict[str, dict[str, str]],
              formats: set[str], currency: str, notes: list[str]) -> Costs:
    if not parts:
        return Costs(days=np.zeros(0, dtype=np.int64), by_resource={}, formats=formats, rows=rows, currency=currency)
    daily = pa.concat_tables([_without(p.daily, drop.get(i)) for i, p in enumerate(parts)])
    unattr = pa.concat_tables([_without(p.unattr, drop.get(i)) for i, p in enumerate(parts)])
    cats = pa.concat_tables([_without(p.cats, drop.get(i)) for i, p in enumerate(parts)])

    g = daily.group_by(["resource", "day"], use_threads=False).aggregate([("cost_sum", "sum"), ("billed_sum", "sum")])
    res = g.column("resource").to_numpy(zero_copy_only=False)
    days_col = g.column("day").to_numpy()
    all_days = np.unique(days_col) if len(days_col) else np.zeros(0, dtype=np.int64)
    if len(all_days):
        all_days = np.arange(all_days.min(), all_days.max() + 1)
    day_idx = np.searchsorted(all_days, days_col)
    uniq, inv = np.unique(res, return_inverse=True)
    by_resource = _matrix(g, "cost_sum_sum", all_days, uniq, inv, day_idx)
    by_billed = _matrix(g, "billed_sum_sum", all_days, uniq, inv, day_idx)

    by_service: dict[str, float] = {}
    if unattr.num_rows:
        s = unattr.group_by("service", use_threads=False).aggregate([("cost_sum", "sum")])
        by_service = {str(k or "other"): float(v)
                      for k, v in zip(s.column("service").to_pylist(), s.column("cost_sum_sum").to_pylist(), strict=True)}
    c = cats.group_by(["category", "correction"], use_threads=False).aggregate([("cost_sum", "sum"), ("billed_sum", "sum")])
    breakdown = dict.fromkeys(CATEGORIES, 0.0)
    corrections = 0.0
    for cat, corr, billed in zip(c.column("category").to_pylist(), c.column("correction").to_pylist(),
                                 c.column("billed_sum_sum").to_pylist(), strict=True):
        breakdown[cat if cat in breakdown else "other"] += float(billed)
        if corr:
            corrections += float(billed)

    def total(t: pa.Table, col: str) -> float:
        return float(pc.sum(t.column(col)).as_py() or 0.0) if t.num_rows else 0.0

    return Costs(days=all_days, by_resource=by_resource, total=total(cats, "cost_sum"),
                 unattributable=total(unattr, "cost_sum"), unattributable_by_service=by_service, tags=tags,
                 formats=formats, currency=currency, rows=rows, by_resource_billed=by_billed, breakdown=breakdown,
                 corrections=corrections, unattributable_billed=total(unattr, "billed_sum"), duplicates=notes)


def load_costs(root: Path, issues: list[BundleIssue], say=lambda stage, frac: None) -> Costs:  # noqa: ANN001
    """Read every cost export of a bundle, fold each file as it is read, count each bill once.

    Folding per file keeps memory at resources × days instead of millions of hourly line items.
    """
    parts: list[_Part] = []
    rows, tags, formats, currency = 0, {}, set(), "USD"
    files = cost_files(root)
    manifests = {folder: _manifest_time(folder) for folder in {f.parent for f in files}}
    for i, f in enumerate(files):
        cf = read_cost_file(f, issues)
        if cf is not None:
            parts.append(_fold(cf, delivery_of(f, cf.format), delivered_at(f, manifests[f.parent])))
            rows += cf.table.num_rows
            tags.update(cf.tags)
            formats.add(cf.format)
            currency = cf.currency or currency
        del cf
        say("cost", (i + 1) / len(files))
    drop, notes = _drop_duplicates(parts, root)  # notes, not issues: a second copy is no error
    costs = aggregate(parts, drop, rows, tags, formats, currency, notes)
    del parts
    release_memory()  # a cost file read takes hundreds of MB that Arrow's pool would otherwise keep
    return costs

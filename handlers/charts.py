"""Small PNG charts for cards: a spike's hour-by-hour cost, the digest's spend by team per day.

matplotlib is imported on first use (it takes a moment to load and most processes never draw) with the
``Agg`` backend (no display). Charts are small on purpose: a chat client shows a thumbnail, and a PNG
of a few tens of kilobytes uploads fast; :func:`_png` lowers the resolution until the file is at most
``MAX_BYTES``. Every figure drawn is amortized cost (commitments spread over their usage), as the cards say.

Drawing never fails a card: on bad input (no points) the functions return None and the card goes out
without a picture.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("costdna.handlers")

MAX_BYTES = 100_000
WIDTH_IN, HEIGHT_IN = 6.0, 2.6
DPI = 100
_lock = threading.Lock()  # pyplot's state is global: one figure at a time per process
_PALETTE = ("#1d3b53", "#e07a5f", "#3d9970", "#f2cc8f", "#81b29a", "#6c5ce7", "#e17055", "#00a8cc", "#b8b8b8")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, plt: Any) -> bytes:
    """The figure as PNG bytes of at most ``MAX_BYTES`` (lower resolution until it fits)."""
    try:
        dpi = DPI
        while True:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
            data = buf.getvalue()
            if len(data) <= MAX_BYTES or dpi <= 40:
                return data
            dpi = int(dpi * 0.75)
    finally:
        plt.close(fig)


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC).replace(tzinfo=None)  # naive UTC: matplotlib's date axis


def spike_chart(series: Sequence[Sequence[float]], start: float, end: float, *, title: str = "") -> bytes | None:
    """Hour-by-hour amortized cost (line), the baseline (dashed) with a band up to twice it, and the spike
    window ``[start, end)`` (epoch seconds) shaded. ``series``: ``[[epoch_hour, cost, baseline], ...]``
    (epoch hours = epoch seconds // 3600), as the spike row stores it."""
    pts = sorted((int(p[0]), float(p[1]), float(p[2]) if len(p) > 2 and p[2] is not None else 0.0)
                 for p in series if p is not None and len(p) >= 2)
    if not pts:
        return None
    with _lock:
        plt = _pyplot()
        import matplotlib.dates as mdates

        xs = [_utc(h * 3600) for h, _, _ in pts]
        cost = [c for _, c, _ in pts]
        base = [b for _, _, b in pts]
        fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
        ax.fill_between(xs, [b * 0.5 for b in base], [b * 2.0 for b in base], step="post", color="#81b29a",
                        alpha=0.25, linewidth=0, label="usual range")
        ax.step(xs, base, where="post", color="#3d9970", linestyle="--", linewidth=1.0, label="baseline")
        ax.step(xs, cost, where="post", color="#1d3b53", linewidth=1.6, label="cost")
        ax.axvspan(_utc(start), _utc(max(end, start + 3600)), color="#e07a5f", alpha=0.22, linewidth=0,
                   label="spike")
        ax.set_ylabel("$ / hour (amortized)", fontsize=8)
        top = max(max(cost), 2.0 * max(base), 1e-6)
        ax.set_ylim(0, top * 1.3)  # headroom for the legend
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, linewidth=0.5)
        ax.legend(fontsize=7, loc="upper left", frameon=False, ncol=4)
        if title:
            ax.set_title(title, fontsize=9)
        fig.autofmt_xdate()
        return _png(fig, plt)


def team_spend_chart(by_team_day: Mapping[str, Sequence[Sequence[Any]]], *, max_teams: int = 8,
                     title: str = "") -> bytes | None:
    """Stacked bars: amortized spend by team per day. ``by_team_day``: ``{team: [[day (YYYY-MM-DD), usd],
    ...]}``. Teams beyond the ``max_teams`` costliest are summed as "other"."""
    totals: dict[str, float] = {}
    per: dict[str, dict[str, float]] = {}
    for team, rows in (by_team_day or {}).items():
        for row in rows or []:
            if row is None or len(row) < 2:
                continue
            day, usd = str(row[0]), float(row[1] or 0.0)
            per.setdefault(team or "no team", {})[day] = per.get(team or "no team", {}).get(day, 0.0) + usd
            totals[team or "no team"] = totals.get(team or "no team", 0.0) + usd
    days = sorted({d for rows in per.values() for d in rows})
    if not days:
        return None
    ranked = sorted(totals, key=lambda t: (-totals[t], t))
    keep, rest = ranked[:max_teams], ranked[max_teams:]
    stacks = [(t, [per[t].get(d, 0.0) for d in days]) for t in keep]
    if rest:
        stacks.append(("other", [sum(per[t].get(d, 0.0) for t in rest) for d in days]))
    with _lock:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
        bottom = [0.0] * len(days)
        labels = [d[5:] if len(d) == 10 else d for d in days]
        for i, (team, vals) in enumerate(stacks):
            ax.bar(labels, vals, bottom=bottom, color=_PALETTE[i % len(_PALETTE)], width=0.8, label=team)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("$ / day (amortized)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.25, linewidth=0.5)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        if title:
            ax.set_title(title, fontsize=9)
        return _png(fig, plt)

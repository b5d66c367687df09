"""handlers.charts: small PNGs (at most 100 KB) drawn with matplotlib's Agg backend, None without data."""

from __future__ import annotations

from handlers.charts import MAX_BYTES, spike_chart, team_spend_chart

H0 = 490_000  # an epoch hour
PNG = b"\x89PNG\r\n\x1a\n"


def test_spike_chart_is_a_small_png():
    series = [[H0 + i, 1.0 + (9.0 if 50 <= i < 56 else 0.0), 1.0] for i in range(72)]
    png = spike_chart(series, (H0 + 50) * 3600, (H0 + 56) * 3600, title="i-0abc")
    assert png is not None and png[:8] == PNG and len(png) <= MAX_BYTES
    # a point without a baseline, an unsorted series, a zero-length window: still drawn
    odd = [[H0 + 3, 2.0], [H0 + 1, 1.0, None], [H0 + 2, 0.0, 0.0]]
    assert spike_chart(odd, (H0 + 3) * 3600, (H0 + 3) * 3600)[:8] == PNG


def test_team_spend_chart_stacks_teams_and_folds_the_tail():
    by_team = {f"team{i}": [[f"2026-12-{d:02d}", d * i] for d in range(1, 15)] for i in range(20)}
    by_team[""] = [["2026-12-01", 5.0], None, ["2026-12-02"]]  # no team; malformed rows are skipped
    png = team_spend_chart(by_team, max_teams=5)
    assert png is not None and png[:8] == PNG and len(png) <= MAX_BYTES


def test_no_data_no_chart():
    assert spike_chart([], 0, 0) is None
    assert team_spend_chart({}) is None
    assert team_spend_chart({"web": []}) is None

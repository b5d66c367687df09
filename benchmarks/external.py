"""The published tool's own benchmark: ../shared/data/costdna-synthetic/seed0..4.

Each seed ships a bundle in our format and truth.csv with its train/test split: the 41 train
resources carry a `team` tag (the labels that tool's models saw), the 19 test resources are untagged.
We score accuracy on the test rows per kind, mean ± population std over the five seeds, against that
tool's published figures (its GraphSAGE: 95.8% ± 6.1 overall).

    .venv/bin/python benchmarks/external.py [--data ../shared/data/costdna-synthetic]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402

from bot.terminal import print_benchmark  # noqa: E402
from engine.evaluate import benchmark_orgs  # noqa: E402

PUBLISHED = {  # that tool's README, mean over seeds 0-4
    "its GraphSAGE": {"overall": 95.8, "clean": 98.7, "cross_team": 60, "reassigned": 100, "shared_service": 80, "sparse": 100},
    "its label propagation": {"overall": 100, "clean": 100, "cross_team": 100, "reassigned": 100, "shared_service": 100, "sparse": 100},
    "its logistic regression": {"overall": 95.8, "clean": 98.7, "cross_team": 60, "reassigned": 80, "shared_service": 100, "sparse": 100},
}


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "costdna-synthetic"
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=default)
    a = ap.parse_args()
    roots = sorted(p for p in a.data.glob("seed*") if (p / "truth.csv").exists())
    if not roots:
        sys.exit(f"no seed*/truth.csv under {a.data}")
    t0 = time.perf_counter()
    report = benchmark_orgs(roots)
    con = Console()
    print_benchmark(con, report)
    con.print("published figures of that tool on the same splits:")
    for name, row in PUBLISHED.items():
        con.print(f"  {name}: " + ", ".join(f"{k} {v}%" for k, v in row.items()))
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()

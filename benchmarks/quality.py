"""Attribution quality on our synthetic org: accuracy on untagged resources per hard kind, ECE.

Targets (issue 2): untagged accuracy >= 97% overall and >= 85% on every hard kind, ECE <= 0.03,
over 5 seeds. Each org: 8 teams x 80 resources (640), 14 days, 20 events/resource/day, half the owned
resources tagged (messily). Labels come only from those tags; scores are on resources without one.

    .venv/bin/python benchmarks/quality.py [--seeds 5] [--kfold 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402

from bot.cli import synthetic_bundle  # noqa: E402
from bot.terminal import print_benchmark  # noqa: E402
from engine.evaluate import benchmark_orgs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--kfold", type=int, default=0)
    ap.add_argument("--teams", type=int, default=8)
    ap.add_argument("--resources-per-team", type=int, default=80)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    roots = [synthetic_bundle(s, a.teams, a.resources_per_team, quiet=True) for s in range(a.seeds)]
    report = benchmark_orgs(roots, kfold=a.kfold)
    if a.json:
        print(json.dumps(report.as_dict()))
        return
    print_benchmark(Console(), report)
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()

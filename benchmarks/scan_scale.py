"""Wall time and peak RSS of `costdna scan --bundle` at 200, 2,000 and 20,000 resources.

Bundles have about 100 CloudTrail events per resource per day over 14 days (28 million records at
20,000 resources), hourly CUR 2.0, flow logs and the rest, generated once into .bench/. Each scan runs
as its own process; RSS is the peak of the whole process tree (parser workers included), sampled.
Targets (issue 2, 2 cores): 2,000 resources <= 20 s, 20,000 <= 4 min, peak RSS <= 2 GB, linear growth.

    .venv/bin/python benchmarks/scan_scale.py [--sizes 200,2000,20000] [--repeats 3] [--events 100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {200: (5, 40), 2000: (10, 200), 20000: (20, 1000)}  # resources -> (teams, resources per team)


def ensure_bundle(size: int, events: float, days: int) -> Path:
    from engine.synth import generate

    teams, per_team = SHAPES.get(size, (max(2, size // 100), 100))
    out = REPO / ".bench" / f"scale-{size}-e{events:g}-d{days}"
    if not (out / "truth.csv").exists():
        print(f"generating {size} resources ({events:g} events/resource/day, {days} days) into {out} ...", flush=True)
        t0 = time.perf_counter()
        generate(out, seed=0, teams=teams, resources_per_team=per_team, days=days, events_per_resource_day=events)
        print(f"  generated in {time.perf_counter() - t0:.0f}s", flush=True)
    return out / "bundle"


def run_scan(bundle: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB over the process tree)."""
    cmd = [str(REPO / ".venv" / "bin" / "costdna"), "scan", "--bundle", str(bundle), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"scan failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,2000,20000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--events", type=float, default=100.0)
    ap.add_argument("--days", type=int, default=14)
    a = ap.parse_args()
    rows = []
    for size in (int(s) for s in a.sizes.split(",")):
        bundle = ensure_bundle(size, a.events, a.days)
        runs = [run_scan(bundle) for _ in range(a.repeats if size < 20000 else 1)]
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        rows.append((size, wall, rss, len(runs)))
        print(f"{size:>7} resources: median wall {wall:7.1f}s over {len(runs)} run(s), peak RSS {rss:7.0f} MiB", flush=True)
    if len(rows) > 1:
        base = rows[0]
        for size, wall, _, _ in rows[1:]:
            print(f"  {size}/{base[0]} resources = x{size / base[0]:.0f} -> wall x{wall / base[1]:.1f}")


if __name__ == "__main__":
    main()

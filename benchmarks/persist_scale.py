"""How long persisting a scan takes next to the scan itself, on SQLite and on PostgreSQL.

Scans the scan-scale bundle once (in this process), then saves the result (resources, management
events, daily costs, predictions, tag labels) into a fresh database per run, in one transaction as
the scan job does, and prints the median save time and its ratio to the scan's wall time.
Target (issue 3): a small fraction of the scan on both back ends.

    .venv/bin/python benchmarks/persist_scale.py [--size 20000] [--repeats 3]
        [--pg postgresql://postgres@127.0.0.1:5432/test]   # admin URL: a scratch database is made beside it
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


async def save_once(url: str, result) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    from storage import repo
    from storage.db import Database
    from storage.persist import save_scan_result

    async with Database(url) as db:
        async with db.session() as s:
            account = await repo.add_account(s, "bench", "bundle", bundle_path=str(result.bundle.root))
            scan = await repo.create_scan(s, account)
        t0 = time.perf_counter()
        async with db.session() as s:
            counts = await save_scan_result(s, account.id, scan.id, result)
        return time.perf_counter() - t0, counts


async def pg_database(admin: str, create: bool, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    return admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"


def main() -> None:
    from scan_scale import ensure_bundle

    from engine.scan import scan_bundle

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--events", type=float, default=100.0)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    bundle = ensure_bundle(a.size, a.events, a.days)
    print(f"scanning {bundle} ...", flush=True)
    t0 = time.perf_counter()
    result = scan_bundle(bundle)
    scan_s = time.perf_counter() - t0
    print(f"scan: {scan_s:.1f}s, {len(result.rows):,} resources", flush=True)
    for backend in ("sqlite", "postgresql"):
        times, counts = [], {}
        for _ in range(a.repeats):
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as d:
                    took, counts = asyncio.run(save_once(f"sqlite+aiosqlite:///{d}/bench.db", result))
            else:
                name = f"costdna_bench_{uuid.uuid4().hex[:8]}"
                url = asyncio.run(pg_database(a.pg, True, name))
                try:
                    took, counts = asyncio.run(save_once(url, result))
                finally:
                    asyncio.run(pg_database(a.pg, False, name))
            times.append(took)
        med = statistics.median(times)
        print(f"{backend:>10}: save median {med:6.1f}s over {len(times)} runs "
              f"({', '.join(f'{t:.1f}' for t in times)}) = {100 * med / scan_s:.1f}% of the scan; rows {counts}",
              flush=True)


if __name__ == "__main__":
    main()

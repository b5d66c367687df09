"""Collecting a 20,000-resource org's export files from S3 (moto's server): wall time, peak RSS, and
the ratio to reading the same files from disk.

The org is the one ``benchmarks/scan_scale.py`` measures (20 teams x 1,000 resources, 100 CloudTrail
events per resource per day, 14 days, hourly CUR 2.0, flow logs), generated once into ``.bench/``
(``--size 2000``: 10 x 200, for a quick run; ``--data DIR``: an existing bundle). Its files go into
moto's S3 in the layouts AWS writes and the collector reads:

- ``s3://costdna-trail/AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz`` (the bundle's
  own ``cloudtrail/`` tree: the keys as CloudTrail writes them);
- ``s3://costdna-billing/exports/cur2/data/BILLING_PERIOD=YYYY-MM/<part>.csv.gz`` with a CUR 2.0
  manifest per period (``exports/cur2/metadata/BILLING_PERIOD=YYYY-MM/cur2-Manifest.json``, ``dataFiles``);
- ``s3://costdna-flowlogs/AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/<file>.log.gz``.

moto's server runs as its own process (``python -m moto.server``: it holds the objects, and its memory
is not the collector's); each collection runs as its own process too (``engine.collectors.aws.collect``,
the account's ``options`` naming the three locations, the settings' ``aws_endpoint_url`` pointing at
moto), so its peak RSS is the collector's alone: its own high-water mark (VmHWM) and the sampled peak
of its process tree. CPU seconds are the collector process's, and beside them (``+``) moto's server's
over the same run: on one 2-core machine the two share the cores. Measured:

1. a first collection into an empty mirror (``--repeats`` runs, each into a fresh directory: median);
2. a second collection with nothing new (listings only; nothing should be downloaded);
3. the same after one new hour of CloudTrail files arrives (the last hour's files of every account and
   region uploaded again one hour later, as the next hour's keys; exactly those must be downloaded);
4. the baseline: the same files read from disk, ``shutil.copytree`` of ``cloudtrail/``, ``cost/`` and
   ``flowlogs/`` into a fresh directory (a process of its own, same repeats), and ratio collection / copy;
   with ``--load`` (default at 2,000 resources and fewer) ``engine.bundle.load_bundle`` of the mirror
   and of the original (inventory files copied from the original: moto has no resources to list), which
   must read the same records, rows and flows.

The files are in the page cache for both (just generated, uploaded, read): the copy is a memory-speed
copy, the collection goes through HTTP and boto. Prints a table.

    .venv/bin/python benchmarks/collect_scale.py [--size 20000] [--repeats 3] [--concurrency 8] [--load]
        [--data DIR] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRAIL, BILLING, FLOWS = "costdna-trail", "costdna-billing", "costdna-flowlogs"
OPTIONS = {"cloudtrail": f"s3://{TRAIL}/", "cur": f"s3://{BILLING}/exports", "flowlogs": f"s3://{FLOWS}/",
           "lookup_events": False}
S3_DIRS = ("cloudtrail", "cost", "flowlogs")
INVENTORY = ("resources.json", "iam.json", "network.json", "deploys.jsonl")
CT_NAME = re.compile(r"^(?P<acct>\d{12})_CloudTrail_(?P<region>[a-z0-9-]+)_(?P<stamp>\d{8}T\d{4})Z_(?P<rest>.*)$")
FLOW_NAME = re.compile(r"^(?P<acct>\d{12})_vpcflowlogs_(?P<region>[a-z0-9-]+)_(?P<day>\d{4})\.log\.gz$")
SYNTH_START = datetime(2026, 11, 1)  # engine.synth.generate's default start: flow log file NNNN is day NNNN-1
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


# -- children: one process per measured thing ----------------------------------------------------------


def _maxrss_mib() -> float:
    """This process's own peak RSS: VmHWM (ru_maxrss would carry the parent's peak across fork + exec)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child_collect(url: str, bundle: Path, concurrency: int) -> dict[str, Any]:
    from types import SimpleNamespace

    from engine.collectors.aws import collect

    account = SimpleNamespace(name="bench", regions=["us-east-1"], role_arn=None, external_id=None,
                              options=dict(OPTIONS))
    settings = SimpleNamespace(aws_endpoint_url=url)
    t0 = time.perf_counter()
    report = asyncio.run(collect(account, bundle, settings, concurrency=concurrency))
    return {"seconds": time.perf_counter() - t0, "maxrss": _maxrss_mib(), "cpu": _cpu_s(), "report": report.as_dict()}


def child_copy(src: Path, dst: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    for sub in S3_DIRS:
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dst / sub)
    return {"seconds": time.perf_counter() - t0, "maxrss": _maxrss_mib(), "cpu": _cpu_s()}


def child_load(bundle: Path) -> dict[str, Any]:
    from engine.bundle import load_bundle

    t0 = time.perf_counter()
    b = load_bundle(bundle)
    return {"seconds": time.perf_counter() - t0, "maxrss": _maxrss_mib(), "summary": {
        "resources": len(b.resources), "records": b.activity.records, "duplicates": b.activity.duplicates,
        "cost_rows": b.costs.rows, "cost_total": round(b.costs.total, 2), "flows": len(b.flows),
        "issues": len(b.issues)}}


def run_child(*args: str) -> dict[str, Any]:
    """Run this script as ``--child ARGS``; its JSON result plus wall and the sampled peak RSS (MiB) of
    its process tree."""
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **ENV})
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed:\n{err.decode()[-3000:]}")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["wall"], res["peak"] = wall, max(peak / 2**20, res.get("maxrss", 0.0))
    return res


# -- moto's server and the upload ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server():  # type: ignore[no-untyped-def]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **ENV})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("moto's server did not start") from None
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def s3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(max_pool_connections=16,
                                                                       retries={"max_attempts": 3}))


def plan_upload(bundle: Path) -> list[tuple[str, str, Path]]:
    """(bucket, key, file) for every export file of the bundle, in the layouts AWS writes."""
    out: list[tuple[str, str, Path]] = []
    for p in sorted((bundle / "cloudtrail").rglob("*")):
        if p.is_file():
            out.append((TRAIL, p.relative_to(bundle / "cloudtrail").as_posix(), p))
    for p in sorted((bundle / "cost").rglob("*")):
        if p.is_file():
            out.append((BILLING, "exports/" + p.relative_to(bundle / "cost").as_posix(), p))
    for p in sorted((bundle / "flowlogs").rglob("*")):
        if not p.is_file():
            continue
        m = FLOW_NAME.match(p.name)
        if m:
            day = (SYNTH_START + timedelta(days=int(m["day"]) - 1)).strftime("%Y/%m/%d")
            key = f"AWSLogs/{m['acct']}/vpcflowlogs/{m['region']}/{day}/{p.name}"
        else:
            key = p.relative_to(bundle / "flowlogs").as_posix()
        out.append((FLOWS, key, p))
    return out


def manifests(plan: list[tuple[str, str, Path]]) -> list[tuple[str, str, bytes]]:
    """A CUR 2.0 manifest per billing period listing that period's data files."""
    periods: dict[tuple[str, str], list[str]] = {}
    for bucket, key, _ in plan:
        m = re.match(r"^(.*)/data/BILLING_PERIOD=(\d{4}-\d{2})/", key) if bucket == BILLING else None
        if m:
            periods.setdefault((m[1], m[2]), []).append(key)
    out = []
    for (root, period), keys in sorted(periods.items()):
        name = root.rsplit("/", 1)[-1]
        doc = {"version": "2.0", "exportName": name, "bucket": BILLING,
               "billingPeriod": {"start": f"{period}-01T00:00:00.000Z"},
               "dataFiles": [f"s3://{BILLING}/{k}" for k in keys]}
        out.append((BILLING, f"{root}/metadata/BILLING_PERIOD={period}/{name}-Manifest.json",
                    json.dumps(doc).encode()))
    return out


def upload(url: str, items: list[tuple[str, str, Path | bytes]]) -> None:
    s3 = s3_client(url)
    for bucket in sorted({b for b, _, _ in items}):
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)

    def put(item: tuple[str, str, Path | bytes]) -> None:
        bucket, key, body = item
        s3.put_object(Bucket=bucket, Key=key, Body=body if isinstance(body, bytes) else body.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        for _ in pool.map(put, items):
            pass


def next_hour(plan: list[tuple[str, str, Path]]) -> list[tuple[str, str, Path]]:
    """The last hour's CloudTrail files of every account and region, as keys of the hour after it."""
    stamps = {}
    for bucket, key, p in plan:
        m = CT_NAME.match(p.name) if bucket == TRAIL else None
        if m:
            stamps[key] = (m, p)
    last = max(m["stamp"][:11] for m, _ in stamps.values())
    out = []
    for key, (m, p) in stamps.items():
        if m["stamp"][:11] != last:
            continue
        when = datetime.strptime(m["stamp"], "%Y%m%dT%H%M") + timedelta(hours=1)
        folder = key.rsplit("/", 4)[0]  # .../CloudTrail/<region>
        name = f"{m['acct']}_CloudTrail_{m['region']}_{when:%Y%m%dT%H%M}Z_{m['rest']}"
        out.append((TRAIL, f"{folder}/{when:%Y/%m/%d}/{name}", p))
    return out


# -- the benchmark --------------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def resolve_bundle(a: argparse.Namespace) -> Path:
    if a.data:
        d = Path(a.data).resolve()
        return d / "bundle" if (d / "bundle").is_dir() else d
    from benchmarks.scan_scale import ensure_bundle

    return ensure_bundle(a.size, a.events, a.days)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--data", help="an existing bundle (or the folder holding bundle/) instead of generating one")
    ap.add_argument("--events", type=float, default=100.0)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--load", action=argparse.BooleanOptionalAction, default=None,
                    help="also time load_bundle on the mirror and the original (default: at <= 2,000 resources)")
    ap.add_argument("--keep", action="store_true", help="keep the mirror and the copy under .bench/")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "collect":
            res = child_collect(rest[0], Path(rest[1]), int(rest[2]))
        elif kind == "copy":
            res = child_copy(Path(rest[0]), Path(rest[1]))
        else:
            res = child_load(Path(rest[0]))
        print(json.dumps(res, default=str))
        return

    bundle = resolve_bundle(a)
    load = a.load if a.load is not None else a.size <= 2000
    work = REPO / ".bench" / f"collect-{bundle.parent.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    plan = plan_upload(bundle)
    extra = manifests(plan)
    total = sum(p.stat().st_size for _, _, p in plan)
    per_dir = {d: sum(1 for b, _, _ in plan if b == bk) for d, bk in zip(S3_DIRS, (TRAIL, BILLING, FLOWS), strict=True)}
    print(f"bundle {bundle}: {len(plan):,} files, {_mib(total)} "
          f"({', '.join(f'{d} {n:,}' for d, n in per_dir.items())}; {len(extra)} CUR manifest(s) added)", flush=True)
    rows: list[tuple[str, ...]] = []
    with moto_server() as (url, server):
        t0 = time.perf_counter()
        upload(url, [*plan, *extra])
        up_s = time.perf_counter() - t0
        import psutil

        moto = psutil.Process(server.pid)
        server_rss = moto.memory_info().rss

        def collect(mirror: Path) -> dict[str, Any]:
            c0 = sum(moto.cpu_times()[:2])
            r = run_child("collect", url, str(mirror), str(a.concurrency))
            r["moto_cpu"] = sum(moto.cpu_times()[:2]) - c0
            return r

        def cpu(runs: list[dict[str, Any]]) -> str:
            return (f"{statistics.median(r['cpu'] for r in runs):.1f}"
                    + (f" + {statistics.median(r['moto_cpu'] for r in runs):.1f}" if "moto_cpu" in runs[0] else ""))
        print(f"uploaded to moto's S3 ({url}) in {up_s:.0f}s; moto's server holds {_mib(server_rss)}", flush=True)

        # 1. first collections, each into an empty mirror
        firsts = []
        for i in range(a.repeats):
            mirror = work / f"mirror-{i}" / "bundle"
            if i:
                shutil.rmtree(work / f"mirror-{i - 1}", ignore_errors=True)
            r = collect(mirror)
            firsts.append(r)
            print(f"  first collection {i + 1}: {r['wall']:.1f}s, peak RSS {r['peak']:.0f} MiB, "
                  f"CPU {r['cpu']:.1f}s (moto {r['moto_cpu']:.1f}s), "
                  f"{r['report']['downloaded']:,} files downloaded", flush=True)
            if r["report"]["downloaded"] != len(plan):
                print(f"  WARNING: {len(plan):,} files in S3, {r['report']['downloaded']:,} downloaded", flush=True)
        first_wall = statistics.median(r["wall"] for r in firsts)
        rows.append(("first collection (empty mirror)", f"{first_wall:.1f} s", f"{max(r['peak'] for r in firsts):.0f} MiB",
                     cpu(firsts), f"{firsts[-1]['report']['downloaded']:,} dl", f"{len(firsts)}"))

        # 2. nothing new
        seconds = [collect(mirror) for _ in range(a.repeats)]
        dl = [s["report"]["downloaded"] for s in seconds]
        listed = sum(v["listed"] for v in seconds[-1]["report"]["sources"].values())
        rows.append(("second collection, nothing new", f"{statistics.median(s['wall'] for s in seconds):.1f} s",
                     f"{max(s['peak'] for s in seconds):.0f} MiB", cpu(seconds), f"{max(dl)} dl / {listed:,} listed",
                     f"{len(seconds)}"))

        # 4. the disk baseline (and load_bundle), before the mirror grows
        copies = []
        for i in range(a.repeats):
            dst = work / f"copy-{i}"
            shutil.rmtree(dst, ignore_errors=True)
            copies.append(run_child("copy", str(bundle), str(dst)))
            if i < a.repeats - 1 or not a.keep:
                shutil.rmtree(dst, ignore_errors=True)
        copy_wall = statistics.median(c["wall"] for c in copies)
        rows.append(("disk copy (copytree) of the same files", f"{copy_wall:.1f} s",
                     f"{max(c['peak'] for c in copies):.0f} MiB", cpu(copies), f"{len(plan):,} files", f"{len(copies)}"))
        loads = {}
        if load:
            for name in INVENTORY:
                if (bundle / name).exists():
                    shutil.copy2(bundle / name, mirror / name)
            for label, root in (("original", bundle), ("mirror", mirror)):
                loads[label] = run_child("load", str(root))
                rows.append((f"load_bundle, {label}", f"{loads[label]['wall']:.1f} s",
                             f"{loads[label]['peak']:.0f} MiB", "", "", "1"))

        # 3. one new hour of CloudTrail files
        new = next_hour(plan)
        upload(url, list(new))
        third = collect(mirror)
        ct = third["report"]["sources"]["cloudtrail"]
        rows.append(("second collection, +1 hour of CloudTrail", f"{third['wall']:.1f} s", f"{third['peak']:.0f} MiB",
                     cpu([third]), f"{third['report']['downloaded']} dl of {len(new)} new / {ct['listed']:,} listed",
                     "1"))
        server_rss = max(server_rss, moto.memory_info().rss)

    print()
    print(f"{'':42} {'wall':>8} {'peak RSS':>9} {'CPU s (+moto)':>14}  {'files':<36} runs")
    for what, wall, rss, cpus, files, runs in rows:
        print(f"{what:42} {wall:>8} {rss:>9} {cpus:>14}  {files:<36} {runs}")
    print(f"\ncollection / disk copy: x{first_wall / copy_wall:.1f} (medians); "
          f"{_mib(total / first_wall)}/s and {len(plan) / first_wall:,.0f} files/s collected; "
          f"moto's own RSS {_mib(server_rss)} (not counted above)")
    f0 = firsts[-1]["report"]
    print(f"collector's own time (collect() call) {statistics.median(r['seconds'] for r in firsts):.1f}s; "
          f"sources: " + ", ".join(f"{k} {v['downloaded']:,} files {_mib(v['bytes'])}" for k, v in f0["sources"].items()))
    if loads:
        same = loads["original"]["summary"] == loads["mirror"]["summary"]
        print(f"load_bundle mirror / original: x{loads['mirror']['wall'] / loads['original']['wall']:.2f}; "
              f"same records, rows and flows: {same} {loads['mirror']['summary']}"
              + ("" if same else f" vs {loads['original']['summary']}"))
    if third["report"]["downloaded"] != len(new):
        print(f"WARNING: {len(new)} new CloudTrail files, {third['report']['downloaded']} downloaded")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Entry point: build the organisation, sample its activity, write the bundle and truth.csv.

CloudTrail dominates (20,000 resources x 100 calls/day x 14 days is 28 million records), so it is
sampled per hour with numpy (Poisson counts per behaviour stream, then principal and event draws from
cumulative tables) and each hour is rendered and gzipped by a worker process. Every hour uses its own
RNG seeded from (seed, hour): the bundle is byte-identical whatever the number of workers. Workers
return per-resource call counts, from which the parent shapes the hourly CUR costs; flow logs are
written by the workers (one task per day) while the parent writes the CUR.

    python -m engine.synth.generate OUT [--seed 0 --teams 6 --resources-per-team 40 --days 14 ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from engine.synth import writers as W
from engine.synth.org import CATEGORIES, REGIONS, RTYPES, Org, OrgParams, build_org, shapes

MAX_RECORDS_PER_FILE = 25_000
Progress = Callable[[str, float], None]


@dataclass(slots=True)
class SynthSummary:
    """What was written, how much, and how long it took."""

    out: Path
    bundle: Path
    truth: Path
    resources: int
    events: int
    cost_rows: int
    files: int
    teams: list[str]
    seconds: float
    flow_records: int = 0
    deploys: int = 0
    bytes: int = 0
    spikes_truth: Path | None = None  # out/spikes_truth.csv: planted spikes, rhythms, shifts
    spikes: int = 0  # rows in it
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    """Everything a worker needs to render any hour: the org, its templates, the plan as arrays."""

    params: OrgParams
    bundle: Path
    org: Org
    cat: W.Catalogue
    heads: list[bytes]
    mids: list[bytes]
    fields: list[dict[bytes, bytes]]
    shapes: np.ndarray
    s_res: np.ndarray
    s_group: np.ndarray
    s_cat: np.ndarray
    s_rate: np.ndarray  # per hour
    s_h0: np.ndarray
    s_h1: np.ndarray
    s_shape: np.ndarray
    s_err: np.ndarray
    g_lo: np.ndarray
    g_hi: np.ndarray
    g_pid: np.ndarray
    g_cum: np.ndarray
    c_off: np.ndarray  # scheduled calls of hour h: [c_off[h], c_off[h+1])
    c_sec: np.ndarray
    c_res: np.ndarray
    c_pid: np.ndarray
    c_cat: np.ndarray
    res_type: np.ndarray
    res_region: np.ndarray
    res_group: np.ndarray  # index into files (account, region)
    file_groups: list[tuple[str, str]]


_STATE: _State | None = None


def _build_state(params: OrgParams, bundle: Path, org: Org | None = None) -> _State:
    org = org or build_org(params)
    params = org.params
    pl = org.plan
    heads, mids = W.principal_pieces(org)
    g_lo, g_hi, g_pid, g_w = [], [], [], []
    for pids, weights in org.groups:
        g_lo.append(len(g_pid))
        g_pid += pids
        g_w += weights
        g_hi.append(len(g_pid))
    c_hour = np.asarray(pl.c_hour, np.int64)
    order = np.argsort(c_hour, kind="stable")
    file_groups = sorted({(r.account, r.region) for r in org.resources})
    fg = {k: i for i, k in enumerate(file_groups)}
    return _State(
        params=params, bundle=bundle, org=org, cat=W.build_catalogue(), heads=heads, mids=mids,
        fields=W.resource_fields(org), shapes=shapes(params),
        s_res=np.asarray(pl.s_res, np.int64), s_group=np.asarray(pl.s_group, np.int64),
        s_cat=np.asarray(pl.s_cat, np.int64), s_rate=np.asarray(pl.s_rate, np.float64) / 24.0,
        s_h0=np.asarray(pl.s_h0, np.int64), s_h1=np.asarray(pl.s_h1, np.int64),
        s_shape=np.asarray(pl.s_shape, np.int64), s_err=np.asarray(pl.s_err, np.float64),
        g_lo=np.asarray(g_lo, np.int64), g_hi=np.asarray(g_hi, np.int64), g_pid=np.asarray(g_pid, np.int64),
        g_cum=np.cumsum(np.asarray(g_w, np.float64)),
        c_off=np.searchsorted(c_hour[order], np.arange(params.hours + 1)),
        c_sec=np.asarray(pl.c_sec, np.int64)[order], c_res=np.asarray(pl.c_res, np.int64)[order],
        c_pid=np.asarray(pl.c_pid, np.int64)[order], c_cat=np.asarray(pl.c_cat, np.int64)[order],
        res_type=np.array([RTYPES.index(r.rtype) for r in org.resources], np.int64),
        res_region=np.array([REGIONS.index(r.region) for r in org.resources], np.int64),
        res_group=np.array([fg[(r.account, r.region)] for r in org.resources], np.int64),
        file_groups=file_groups,
    )  # fmt: skip


def _init_worker(params: OrgParams, bundle: Path) -> None:
    """Forked workers inherit the parent's state; anything else (spawn) rebuilds it from the seed."""
    global _STATE
    if _STATE is None or _STATE.params != params or _STATE.bundle != bundle:
        _STATE = _build_state(params, bundle)


def _draw(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, cum: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """One weighted draw per row from the slice [lo, hi) of a cumulative weight table."""
    if len(lo) == 0:
        return np.zeros(0, np.int64)
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    x = base + rng.random(len(lo)) * (cum[hi - 1] - base)
    k = np.clip(np.searchsorted(cum, x, side="right"), lo, hi - 1)
    return values[k]


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _uuids(rng: np.random.Generator, n: int, tail: np.ndarray | None = None) -> list[bytes]:
    """n UUID-v4 strings (bytes); ``tail`` fills the last 12 hex digits so the ids are unique."""
    d = rng.integers(0, 16, (n, 32), dtype=np.uint8)
    if tail is not None:
        t = tail.astype(np.uint64)
        for k in range(12):
            d[:, 31 - k] = ((t >> np.uint64(4 * k)) & np.uint64(15)).astype(np.uint8)
    d[:, 12] = 4
    d[:, 16] = 8 + (d[:, 16] & 3)
    c = _HEX[d]
    out = np.full((n, 36), ord("-"), np.uint8)
    out[:, 0:8], out[:, 9:13], out[:, 14:18], out[:, 19:23], out[:, 24:36] = (
        c[:, 0:8], c[:, 8:12], c[:, 12:16], c[:, 16:20], c[:, 20:32])  # fmt: skip
    return out.view("S36").ravel().tolist()


_SUFFIX = np.frombuffer((string.ascii_letters + string.digits).encode(), np.uint8)


def sample_hour(
    st: _State, h: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """(resource, principal, event template, error?, second) of every call in hour ``h``, and its RNG."""
    rng = np.random.default_rng([st.params.seed, 0xC7, h])
    idx = np.nonzero((st.s_h0 <= h) & (h < st.s_h1))[0]
    lam = st.s_rate[idx] * st.shapes[st.s_shape[idx], h]
    n = rng.poisson(lam)
    sid = np.repeat(idx, n)
    res = st.s_res[sid]
    g = st.s_group[sid]
    pid = _draw(rng, st.g_lo[g], st.g_hi[g], st.g_cum, st.g_pid)
    ncat = len(CATEGORIES)
    ck = st.res_type[res] * ncat + st.s_cat[sid]
    cat = st.cat
    tj = _draw(rng, cat.cat_lo[ck], cat.cat_hi[ck], cat.cat_cum, cat.cat_tj)
    err = rng.random(len(sid)) < st.s_err[sid]
    sec = rng.integers(0, 3600, len(sid))
    a, b = st.c_off[h], st.c_off[h + 1]
    if b > a:
        cres = st.c_res[a:b]
        cck = st.res_type[cres] * ncat + st.c_cat[a:b]
        ctj = _draw(rng, cat.cat_lo[cck], cat.cat_hi[cck], cat.cat_cum, cat.cat_tj)
        res = np.concatenate([res, cres])
        pid = np.concatenate([pid, st.c_pid[a:b]])
        tj = np.concatenate([tj, ctj])
        err = np.concatenate([err, np.zeros(b - a, bool)])
        sec = np.concatenate([sec, st.c_sec[a:b]])
    return res, pid, tj, err, sec, rng


def _hour_task(h: int) -> tuple[int, np.ndarray, int, int, int]:
    """Render and write hour ``h``: returns (hour, calls per resource, records, files, bytes)."""
    st = _STATE
    assert st is not None
    res, pid, tj, err, sec, rng = sample_hour(st, h)
    n_res = len(st.org.resources)
    counts = np.bincount(res, minlength=n_res).astype(np.int32)
    if len(res) == 0:
        return h, counts, 0, 0, 0
    grp = st.res_group[res]
    order = np.lexsort((sec, grp))
    res, pid, tj, err, sec, grp = res[order], pid[order], tj[order], err[order], sec[order], grp[order]
    n = len(res)
    # Unique by construction: (hour, index) through a bijection of 48-bit integers, so ids look random.
    seq = (np.uint64(h) << np.uint64(28)) + np.arange(n, dtype=np.uint64)
    eid = _uuids(
        rng, n, (seq * np.uint64(0x9E3779B97F4B) + np.uint64(0x5DEECE66D)) & np.uint64((1 << 48) - 1)
    )
    rid = _uuids(rng, n)
    ehi = tj * st.cat.nreg + st.res_region[res]
    when = st.params.start + timedelta(hours=h)
    hour_prefix = when.strftime("%Y-%m-%dT%H:").encode()
    bounds = np.searchsorted(grp, np.arange(len(st.file_groups) + 1))
    files = nbytes = 0
    pid_l, tj_l, ehi_l, res_l, sec_l, err_l = (x.tolist() for x in (pid, tj, ehi, res, sec, err))
    for gi, (account, region) in enumerate(st.file_groups):
        a, b = int(bounds[gi]), int(bounds[gi + 1])
        for c0 in range(a, b, MAX_RECORDS_PER_FILE):
            c1 = min(b, c0 + MAX_RECORDS_PER_FILE)
            chunk = W.render_records(st.cat, st.heads, st.mids, st.fields, hour_prefix, pid_l[c0:c1], tj_l[c0:c1],
                                     ehi_l[c0:c1], res_l[c0:c1], sec_l[c0:c1], err_l[c0:c1], eid[c0:c1], rid[c0:c1])  # fmt: skip
            stamp = when + timedelta(minutes=(sec_l[c0] // 300) * 5)
            suffix = _SUFFIX[rng.integers(0, len(_SUFFIX), 16)].tobytes().decode()
            path = W.cloudtrail_path(st.bundle, account, region, stamp, suffix)
            nbytes += W.write_cloudtrail_file(path, [chunk])
            files += 1
    return h, counts, n, files, nbytes


def _flow_task(day: int) -> tuple[int, int, int]:
    st = _STATE
    assert st is not None
    n, paths = W.write_flow_day(st.org, day, st.bundle)
    return n, len(paths), sum(p.stat().st_size for p in paths)


def generate(
    out: Path,
    *,
    seed: int = 0,
    teams: int = 6,
    resources_per_team: int = 40,
    days: int = 14,
    events_per_resource_day: float = 20.0,
    start: datetime | None = None,
    tagged_fraction: float = 0.5,
    workers: int | None = None,
    progress: Progress | None = None,
) -> SynthSummary:
    """Write ``out/bundle/`` (every export format), ``out/truth.csv`` and ``out/spikes_truth.csv``.

    Same seed, same bytes. Planted cost spikes, rhythms and cold-start launches are always in (see
    ``org.PlantedSpike``); ``spikes_truth.csv`` is their ground truth (``writers.write_spikes_truth``).
    ``out/bundle`` and both truth files are replaced if they exist; nothing else under ``out`` is touched.
    """
    global _STATE
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    say = progress or (lambda stage, frac: None)
    if teams < 1 or resources_per_team < 1 or days < 1:
        raise ValueError("teams, resources_per_team and days must be at least 1")
    if not 0.0 <= tagged_fraction <= 1.0:
        raise ValueError("tagged_fraction must be between 0 and 1")
    start = start or datetime(2026, 11, 1, tzinfo=UTC)
    out = Path(out)
    bundle = out / "bundle"
    truth = out / "truth.csv"
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    say("organisation", 0.0)
    org = build_org(OrgParams(seed, teams, resources_per_team, days, float(events_per_resource_day), start,
                              float(tagged_fraction)))  # fmt: skip
    params = org.params
    _STATE = _build_state(params, bundle, org)
    timings["organisation"] = time.perf_counter() - t0

    t = time.perf_counter()
    W.write_truth(org, truth)
    spikes_truth = out / "spikes_truth.csv"
    n_spikes = W.write_spikes_truth(org, spikes_truth)
    W.write_resources_json(org, bundle / "resources.json")
    W.write_iam_json(org, bundle / "iam.json")
    W.write_network_json(org, bundle / "network.json")
    n_deploys = W.write_deploys(org, bundle / "deploys.jsonl")
    timings["static"] = time.perf_counter() - t
    say("static", 1.0)

    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    H = params.hours
    counts = np.zeros((len(org.resources), H), np.int32)
    events = files = nbytes = 0
    flows = flow_files = 0
    pool = None
    try:
        if workers > 1:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(params, bundle))
            hours = pool.imap_unordered(_hour_task, range(H), chunksize=1)
        else:
            hours = map(_hour_task, range(H))
        t = time.perf_counter()
        for done, (h, c, n, f, b) in enumerate(hours, 1):
            counts[:, h] = c
            events += n
            files += f
            nbytes += b
            say("cloudtrail", done / H)
        timings["cloudtrail"] = time.perf_counter() - t

        t = time.perf_counter()
        flow_async = pool.map_async(_flow_task, range(params.days)) if pool else None
        cost_rows, cur_files = W.write_cur(org, counts, bundle)
        say("cost", 1.0)
        timings["cost"] = time.perf_counter() - t
        flow_results = flow_async.get() if flow_async else [_flow_task(d) for d in range(params.days)]
        for n, f, b in flow_results:
            flows += n
            flow_files += f
            nbytes += b
        timings["cost+flowlogs"] = time.perf_counter() - t
        say("flowlogs", 1.0)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    nbytes += sum(p.stat().st_size for p in cur_files)
    static = [bundle / n for n in ("resources.json", "iam.json", "network.json", "deploys.jsonl")]
    nbytes += sum(p.stat().st_size for p in static)
    seconds = time.perf_counter() - t0
    say("done", 1.0)
    return SynthSummary(
        out=out, bundle=bundle, truth=truth, resources=len(org.resources), events=events, cost_rows=cost_rows,
        files=files + len(cur_files) + flow_files + len(static) + 1, teams=org.team_names, seconds=seconds,
        flow_records=flows, deploys=n_deploys, bytes=nbytes + truth.stat().st_size, timings=timings,
        spikes_truth=spikes_truth, spikes=n_spikes,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teams", type=int, default=6)
    ap.add_argument("--resources-per-team", type=int, default=40)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--events-per-resource-day", type=float, default=20.0)
    ap.add_argument("--tagged-fraction", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args(argv)
    s = generate(a.out, seed=a.seed, teams=a.teams, resources_per_team=a.resources_per_team, days=a.days,
                 events_per_resource_day=a.events_per_resource_day, tagged_fraction=a.tagged_fraction,
                 workers=a.workers)  # fmt: skip
    print(f"{s.resources} resources, {s.events} CloudTrail records, {s.cost_rows} CUR rows, "
          f"{s.flow_records} flow records, {s.deploys} deploys, {s.files} files, {s.bytes / 1e6:.1f} MB "
          f"in {s.seconds:.1f}s {({k: round(v, 1) for k, v in s.timings.items()})}")  # fmt: skip


if __name__ == "__main__":
    main()

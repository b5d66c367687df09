"""Fuzz the bundle readers: thousands of mutated bundles through load_bundle (and a sample through scan).

Every reader must turn a broken file into BundleIssues (or BundleError under ``strict``) and keep
going; any other exception is a crash. Each case copies a small base bundle (a synthetic org, plus
the real third-party samples in ../shared/data when present: FOCUS, legacy CUR, cloudsplaining IAM,
Panther and Invictus CloudTrail, and Parquet and JSON-lines forms of them), mutates one to three of
its files (byte flips, truncation, inserted garbage, duplicated or swapped lines, deep nesting,
NaN/inf/negative numbers in numeric cells and JSON values, UTF-16/UTF-32/Latin-1 re-encodings,
zero-byte files, a line past the line limit, a decompression bomb, cut or corrupt gzip, Parquet
tables with odd values and types) and loads it. Cases run in a child process, so a segfault or a
hang is a crash too. Prints the crashes (target 0), grouped by where they happen, non-finite values
that got past a reader, and the slowest cases.

    .venv/bin/python benchmarks/fuzz_exports.py [--cases 500] [--seed 0] [--scan-every 100]
    .venv/bin/python benchmarks/fuzz_exports.py --case 123 --keep /tmp/case123   # one case, kept
    .venv/bin/python benchmarks/fuzz_exports.py --huge                            # multi-GiB lines, peak RSS

By default a whole JSON document may decompress to at most 32 MiB here (``--doc-limit-mb``; the
readers' own limit is 1 GiB), so the refusal path of an oversized document is met in milliseconds;
``--huge`` checks the real limits with lines of several GiB (gzip bombs) and reports peak memory.
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import multiprocessing as mp
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"

# ---------------------------------------------------------------------------------------------
# the base bundle


def build_base(out: Path, seed: int = 3) -> Path:
    """A small bundle with every reader's format in it; returns its directory."""
    import orjson
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from engine.synth import generate

    generate(out / "org", seed=seed, teams=2, resources_per_team=6, days=2, events_per_resource_day=4.0,
             workers=1)
    b = out / "org" / "bundle"
    ct = sorted((b / "cloudtrail").rglob("*.json.gz"))
    for p in ct[12:]:  # a dozen gzipped CloudTrail files are plenty
        p.unlink()
    first = orjson.loads(gzip.decompress(ct[0].read_bytes()))["Records"]
    (b / "cloudtrail" / "plain.json").write_bytes(orjson.dumps({"Records": first[:20]}))
    (b / "cloudtrail" / "lines.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in first[20:40]) + b"\n")
    cur = next((b / "cost").rglob("*.csv.gz"))
    pq.write_table(pcsv.read_csv(cur), b / "cost" / "cur2.parquet")
    if SHARED.is_dir():
        for src, dst in (("cost/focus/focus_sample.csv", "cost/focus.csv"),
                         ("cost/cur-legacy-csv/sample-anonymous-aws-export-dataset.csv", "cost/legacy.csv"),
                         ("cloudtrail/panther/panther_cloudtrail_test_events.json", "cloudtrail/panther.json")):
            if (SHARED / src).is_file():  # the first 300 lines: every column, a few hundred rows
                head = (SHARED / src).read_bytes().split(b"\n")
                (b / dst).write_bytes(b"\n".join(head[:300] if dst.endswith(".csv") else head))
        inv = sorted((SHARED / "cloudtrail/invictus/CloudTrail").glob("*.json"))
        if inv:
            shutil.copyfile(inv[0], b / "cloudtrail" / "invictus.json")
        if (b / "cost/focus.csv").is_file():
            pq.write_table(pcsv.read_csv(b / "cost/focus.csv"), b / "cost" / "focus.parquet")
        iam = SHARED / "iam/cloudsplaining/example-authz-details.json"
        if iam.is_file():
            shutil.copyfile(iam, out / "iam-cloudsplaining.json")  # swapped in by some cases
    return b


# ---------------------------------------------------------------------------------------------
# mutations: (data, rng) -> data, on a file's decompressed content unless said otherwise

WEIRD_NUMBERS = [b"NaN", b"nan", b"-nan", b"Infinity", b"-Infinity", b"inf", b"-inf", b"1e400", b"-1e400",
                 b"1e308", b"-1", b"-0", b"-999999999999", b"99999999999999999999999999", b"", b"0x1F",
                 b"1_000", b"1,5", b"\xef\xbc\x91", b"1e-400", b"+5", b" 7 ", b"\xc2\xb2"]
WEIRD_JSON = [b"null", b"true", b"0", b"-1", b"1e308", b"-1e308", b"NaN", b"Infinity", b'""', b"[]", b"{}",
              b'"\\u0000"', b'"\\ud800"', b'"redacted"', b'{"a":[1,{"b":null}]}', b'"9999-12-31T23:59:59Z"',
              b'"0001-01-01T00:00:00+14:00"', b'"2026-11-17T02:00:\xc2\xb2\xc2\xb3Z"', b"12345678901234567890123"]
_NUM = re.compile(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_JSON_VALUE = re.compile(rb'(?<=:)\s*(?:"(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null)')


def m_flip(d: bytes, r: random.Random) -> bytes:
    if not d:
        return bytes([r.randrange(256)])
    b = bytearray(d)
    for _ in range(r.choice([1, 1, 2, 4, 16])):
        b[r.randrange(len(b))] ^= 1 << r.randrange(8)
    return bytes(b)


def m_truncate(d: bytes, r: random.Random) -> bytes:
    return d[: r.randrange(len(d) + 1)]


def m_garbage(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d) + 1)
    return d[:i] + r.randbytes(r.choice([1, 3, 16, 300])) + d[i:]


def m_delete(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d) + 1)
    return d[:i] + d[i + r.choice([1, 10, 100, 5000]):]


def m_dup_lines(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    for _ in range(r.choice([1, 3, 20])):
        i = r.randrange(len(lines))
        lines.insert(r.randrange(len(lines) + 1), lines[i])
    return b"\n".join(lines)


def m_swap_lines(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    for _ in range(r.choice([1, 5])):
        i, j = r.randrange(len(lines)), r.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def m_deep(d: bytes, r: random.Random) -> bytes:
    n = r.choice([600, 1100, 5000, 100_000])
    opener, closer = r.choice([(b"[", b"]"), (b'{"a":', b"}")])
    nest = opener * n + b"1" + closer * n if r.random() < 0.7 else opener * n
    ms = list(_JSON_VALUE.finditer(d))
    if ms and r.random() < 0.8:  # in place of a JSON value
        m = r.choice(ms)
        return d[:m.start()] + nest + d[m.end():]
    i = r.randrange(len(d) + 1)
    return d[:i] + nest + d[i:]


def m_numbers(d: bytes, r: random.Random) -> bytes:
    ms = list(_NUM.finditer(d))
    if not ms:
        return m_garbage(d, r)
    out, last = [], 0
    for m in sorted(r.sample(ms, min(len(ms), r.choice([1, 3, 30]))), key=lambda m: m.start()):
        out += [d[last:m.start()], r.choice(WEIRD_NUMBERS)]
        last = m.end()
    return b"".join(out) + d[last:]


def m_json_value(d: bytes, r: random.Random) -> bytes:
    ms = list(_JSON_VALUE.finditer(d))
    if not ms:
        return m_numbers(d, r)
    out, last = [], 0
    for m in sorted(r.sample(ms, min(len(ms), r.choice([1, 2, 10]))), key=lambda m: m.start()):
        out += [d[last:m.start()], r.choice(WEIRD_JSON)]
        last = m.end()
    return b"".join(out) + d[last:]


def m_csv_cell(d: bytes, r: random.Random) -> bytes:
    lines = d.split(b"\n")
    if len(lines) < 2:
        return m_numbers(d, r)
    for _ in range(r.choice([1, 3, 10])):
        i = r.randrange(1, len(lines))
        cells = lines[i].split(b",")
        j = r.randrange(len(cells))
        cells[j] = r.choice([*WEIRD_NUMBERS, b'"', b'"a,b"', b'"x\ny"', b"\xe9t\xe9", b"x" * 200_000,
                             b"9999-12-31T23:59:59Z", b"0001-01-01T00:00:00Z", b"not a time", b"{", b'"{""a"":'])
        lines[i] = b",".join(cells)
    return b"\n".join(lines)


def m_encoding(d: bytes, r: random.Random) -> bytes:
    text = d.decode("utf-8", "replace")
    kind = r.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig", "mixed"])
    if kind in ("latin-1", "cp1252"):
        text = text.replace("a", "\u00e9", 3)
        return text.encode(kind, "replace")
    if kind == "mixed":  # one Latin-1 byte in otherwise UTF-8 text
        i = r.randrange(len(d) + 1)
        return d[:i] + b"caf\xe9" + d[i:]
    return text.encode(kind)


def m_zero(d: bytes, r: random.Random) -> bytes:
    return b""


def m_whitespace(d: bytes, r: random.Random) -> bytes:
    return r.choice([b"\n", b"   \n\n", b"\r\n" * 10, b"\x00" * 10])


def m_binary(d: bytes, r: random.Random) -> bytes:
    return r.randbytes(r.choice([10, 1000, 100_000]))


def m_huge_line(d: bytes, r: random.Random) -> bytes:
    """A line (or JSON string) past the 1 MiB line limit, in place of a value or line."""
    n = r.choice([(1 << 20) + 1, 3 << 20])
    ms = list(_JSON_VALUE.finditer(d))
    if ms and r.random() < 0.5:
        m = r.choice(ms)
        return d[:m.start()] + b'"' + b"x" * n + b'"' + d[m.end():]
    lines = d.split(b"\n")
    lines.insert(r.randrange(len(lines) + 1), b"y" * n)
    return b"\n".join(lines)


TEXT_MUTATIONS = {
    "flip": (m_flip, 6), "truncate": (m_truncate, 5), "garbage": (m_garbage, 4), "delete": (m_delete, 3),
    "dup-lines": (m_dup_lines, 3), "swap-lines": (m_swap_lines, 2), "deep-nesting": (m_deep, 4),
    "numbers": (m_numbers, 6), "json-value": (m_json_value, 5), "csv-cell": (m_csv_cell, 4),
    "encoding": (m_encoding, 4), "zero-byte": (m_zero, 3), "whitespace": (m_whitespace, 1), "binary": (m_binary, 2),
    "huge-line": (m_huge_line, 1),
}


def gzip_bomb(size: int, line: bool = True) -> bytes:
    """Gzip of ``size`` bytes of one line ("x" * size), compressed in chunks (never held whole)."""
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = b"x" * (1 << 20)
    out = io.BytesIO()
    left = size
    while left > 0:
        out.write(c.compress(chunk[:left]))
        left -= len(chunk)
    out.write(c.compress(b"\n" if line else b""))
    out.write(c.flush())
    return out.getvalue()


def mutate_parquet(path: Path, r: random.Random) -> str:
    """Rewrite a Parquet cost file with odd values or types; returns what was done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path)
    except (pa.ArrowException, OSError):  # damaged by an earlier step of this case
        return "parquet-unreadable-already"
    n = t.num_rows
    cols = t.column_names
    kind = r.choice(["cost-values", "time-values", "cost-as-text", "drop-column", "nulls", "time-type",
                     "empty-table", "tags-map"])
    cost = next((c for c in cols if c in ("line_item_unblended_cost", "EffectiveCost", "BilledCost")), cols[0])
    start = next((c for c in cols if c in ("line_item_usage_start_date", "ChargePeriodStart")), cols[0])
    if kind == "cost-values":
        vals = [r.choice([math.nan, math.inf, -math.inf, -1.0, 1e308, -0.0, None, 1.5]) for _ in range(n)]
        t = t.set_column(cols.index(cost), cost, pa.array(vals, pa.float64()))
    elif kind == "time-values":
        vals = [r.choice([-(2**40), 2**40, 0, -1, 253402300799, 1700000000, None]) for _ in range(n)]
        t = t.set_column(cols.index(start), start, pa.array(vals, pa.timestamp("s", tz="UTC")))
    elif kind == "cost-as-text":
        t = t.set_column(cols.index(cost), cost, pa.array([r.choice(["1.5", "NaN", "inf", "abc", "", None])
                                                          for _ in range(n)], pa.string()))
    elif kind == "drop-column":
        t = t.drop_columns([r.choice(cols)])
    elif kind == "nulls":
        c = r.choice(cols)
        t = t.set_column(cols.index(c), c, pa.nulls(n, t.schema.field(c).type))
    elif kind == "time-type":
        t = t.set_column(cols.index(start), start, pa.array([r.choice([1.5, math.nan, -1e300]) for _ in range(n)]))
    elif kind == "empty-table":
        t = t.slice(0, 0)
    else:
        tags = next((c for c in cols if c in ("resource_tags", "Tags")), None)
        if tags is None:
            return "parquet-noop"
        m = pa.array([[("user_team", r.choice(["a", "", "x" * 5000])), ("", "v")] if r.random() < 0.7 else None
                      for _ in range(n)], pa.map_(pa.string(), pa.string()))
        t = t.set_column(cols.index(tags), tags, m)
    try:
        pq.write_table(t, path)
    except pa.ArrowException:
        return f"parquet-{kind}-unwritable"
    return f"parquet-{kind}"


@dataclass
class Case:
    index: int
    steps: list[str] = field(default_factory=list)


def mutate_bundle(root: Path, base_parent: Path, r: random.Random, case: Case) -> None:
    """Apply one to three mutations to files of the bundle at ``root``."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if (base_parent / "iam-cloudsplaining.json").is_file() and r.random() < 0.3:
        shutil.copyfile(base_parent / "iam-cloudsplaining.json", root / "iam.json")
        case.steps.append("iam.json<-cloudsplaining")
    names, weights = zip(*((k, w) for k, (_, w) in TEXT_MUTATIONS.items()), strict=True)
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        p = r.choice(files)
        rel = str(p.relative_to(root))
        raw = p.read_bytes()
        is_gz = raw[:2] == b"\x1f\x8b"
        roll = r.random()
        if p.suffix == ".parquet" and roll < 0.5:
            case.steps.append(f"{rel}:{mutate_parquet(p, r)}")
            continue
        if roll < 0.04:
            size = r.choice([40 << 20, 200 << 20])
            p.write_bytes(gzip_bomb(size))
            case.steps.append(f"{rel}:gzip-bomb({size >> 20} MiB line)")
            continue
        if is_gz and roll < 0.2:
            data = r.choice([m_flip, m_truncate, m_garbage])(raw, r)
            p.write_bytes(data)
            case.steps.append(f"{rel}:gzip-raw-damage")
            continue
        if p.suffix == ".parquet":
            name = r.choice(["flip", "truncate", "garbage", "delete", "zero-byte"])
            p.write_bytes(TEXT_MUTATIONS[name][0](raw, r))
            case.steps.append(f"{rel}:{name}")
            continue
        try:
            text = gzip.decompress(raw) if is_gz else raw
        except (OSError, EOFError, zlib.error):  # damaged by an earlier step of this case
            text, is_gz = raw, False
        name = r.choices(names, weights)[0]
        data = TEXT_MUTATIONS[name][0](text, r)
        wrap = is_gz if r.random() < 0.9 else not is_gz  # sometimes gzip a plain file or the other way
        p.write_bytes(gzip.compress(data, 1) if wrap and data else data)
        case.steps.append(f"{rel}:{name}{'+gz' if wrap != is_gz and wrap else '-gz' if wrap != is_gz else ''}")


# ---------------------------------------------------------------------------------------------
# running cases


def non_finite(bundle) -> list[str]:  # type: ignore[no-untyped-def]
    """Where a NaN or infinity got past a reader into the loaded tables."""
    import numpy as np

    out = []
    c = bundle.costs
    if not math.isfinite(c.total) or not math.isfinite(c.unattributable):
        out.append("cost totals")
    if any(not np.isfinite(v).all() for v in c.by_resource.values()):
        out.append("cost per resource")
    if any(not math.isfinite(v) for v in c.unattributable_by_service.values()):
        out.append("unattributable cost by service")
    if any(not math.isfinite(v) for v in bundle.flows.values()):
        out.append("flows")
    if any(not math.isfinite(d.time) for d in bundle.deploys):
        out.append("deploys")
    if bundle.period and not all(math.isfinite(t) for t in bundle.period):
        out.append("period")
    return out


def run_case(i: int, seed: int, base: Path, scan_every: int, config, keep: Path | None = None) -> dict:  # type: ignore[no-untyped-def]
    from engine.bundle import load_bundle
    from engine.records import BundleError

    r = random.Random(seed * 1_000_003 + i)
    case = Case(i)
    tmp = Path(tempfile.mkdtemp(prefix=f"fuzz-{i}-")) if keep is None else keep
    root = tmp / "bundle"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(base, root)
    try:
        out: dict = {"case": i, "steps": case.steps, "crash": None, "issues": 0, "leaks": []}
        try:
            mutate_bundle(root, base.parent.parent, r, case)
        except Exception as e:  # noqa: BLE001 - the fuzzer's own bug, not a reader's
            out["mutate_error"] = f"{type(e).__name__}: {e}"
        t0 = time.perf_counter()
        stage = "load"
        try:
            b = load_bundle(root, workers=1)
            out["issues"] = len(b.issues)
            out["leaks"] = non_finite(b)
            if r.random() < 0.25:
                stage = "load strict"
                try:
                    load_bundle(root, strict=True, workers=1)
                    out["strict"] = "loaded"
                except BundleError:
                    out["strict"] = "refused"
            if scan_every and i % scan_every == 0:
                from engine.scan import scan_bundle

                stage = "scan"
                scan_bundle(b, config=config, workers=1)
                out["scanned"] = True
        except BundleError:
            out["refused"] = True
        except BaseException as e:  # noqa: BLE001 - this is what is being counted
            tb = traceback.extract_tb(e.__traceback__)
            out["crash"] = {"stage": stage, "type": type(e).__name__, "message": str(e)[:300],
                            "frames": [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in tb[-4:]],
                            "trace": "".join(traceback.format_exception(e))[-4000:]}
        out["seconds"] = time.perf_counter() - t0
        return out
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _child(conn, cases: list[int], seed: int, base: str, scan_every: int, doc_limit: int) -> None:  # type: ignore[no-untyped-def]
    import engine.sources.files as files
    from engine.model import ModelConfig

    files.MAX_DOCUMENT_BYTES = doc_limit
    config = ModelConfig(folds=3, max_epochs=60)
    unraisable: list[str] = []  # exceptions a library swallowed (pyarrow's CSV row handler...)
    sys.unraisablehook = lambda u: unraisable.append(
        f"{type(u.exc_value).__name__} in {getattr(u.object, '__qualname__', type(u.object).__name__)}")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    for i in cases:
        conn.send(("start", i))
        out = run_case(i, seed, Path(base), scan_every, config)
        out["unraisable"], unraisable[:] = list(unraisable), []
        conn.send(("done", out))
    conn.send(("end", None))


def run_all(n: int, seed: int, base: Path, scan_every: int, doc_limit: int, timeout: float) -> list[dict]:
    ctx = mp.get_context("fork")
    todo = list(range(n))
    results: list[dict] = []
    t_start = time.perf_counter()
    while todo:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child, todo, seed, str(base), scan_every, doc_limit), daemon=True)
        proc.start()
        child.close()
        current = None
        while True:
            if not parent.poll(timeout):
                proc.kill()
                results.append({"case": current, "steps": [], "crash": {
                    "stage": "load", "type": "Hang", "message": f"no answer in {timeout:g} s", "frames": []},
                    "seconds": timeout})
                break
            try:
                kind, payload = parent.recv()
            except EOFError:
                proc.join()
                results.append({"case": current, "steps": [], "crash": {
                    "stage": "load", "type": "ProcessDied", "message": f"exit code {proc.exitcode}", "frames": []},
                    "seconds": 0.0})
                break
            if kind == "start":
                current = payload
            elif kind == "done":
                results.append(payload)
                current = None
                done = len(results)
                if done % 100 == 0:
                    print(f"  {done}/{n} cases, {time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)
            else:
                break
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
        finished = {r["case"] for r in results}
        todo = [i for i in todo if i not in finished]
    return sorted(results, key=lambda r: r["case"])


def report(results: list[dict], wall: float) -> int:
    crashes = [r for r in results if r["crash"]]
    leaks = Counter(src for r in results for src in r.get("leaks", []))
    steps = Counter(s.split(":", 1)[-1].split("(")[0] for r in results for s in r["steps"])
    strict = Counter(r["strict"] for r in results if r.get("strict"))
    print(f"cases: {len(results)} in {wall:.0f} s; scanned: {sum(1 for r in results if r.get('scanned'))}; "
          f"issues reported: {sum(r.get('issues', 0) for r in results)}; loaded again with strict: "
          f"{strict['refused']} refused with BundleError, {strict['loaded']} loaded (no issue)")
    print("mutations: " + ", ".join(f"{k} {v}" for k, v in steps.most_common()))
    bad_mutations = [r for r in results if r.get("mutate_error")]
    if bad_mutations:
        print(f"mutations that failed (fuzzer bugs, cases still loaded): {len(bad_mutations)}, e.g. "
              f"{bad_mutations[0]['mutate_error'][:150]}")
    print(f"crashes: {len(crashes)}")
    groups: dict[tuple, list[dict]] = {}
    for r in crashes:
        c = r["crash"]
        groups.setdefault((c["stage"], c["type"], c["frames"][-1] if c["frames"] else ""), []).append(r)
    for (stage, typ, frame), rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ex = rs[0]
        print(f"  {len(rs)} x {typ} in {stage} at {frame}: {ex['crash']['message'][:160]}")
        print(f"      e.g. case {ex['case']}: {'; '.join(ex['steps'])}")
        for f in ex["crash"]["frames"]:
            print(f"        {f}")
    if leaks:
        print("non-finite values past the readers (cases): " + ", ".join(f"{k} {v}" for k, v in leaks.most_common()))
        ex = next(r for r in results if r.get("leaks"))
        print(f"      e.g. case {ex['case']}: {'; '.join(ex['steps'])}")
    else:
        print("non-finite values past the readers: none")
    swallowed = Counter(u for r in results for u in r.get("unraisable", []))
    if swallowed:
        print("exceptions swallowed inside libraries (not crashes): "
              + ", ".join(f"{k} x{v}" for k, v in swallowed.most_common(3)))
    for label, pick in (("slowest load", lambda r: not r.get("scanned")), ("slowest load+scan", lambda r: r.get("scanned"))):
        slow = sorted((r for r in results if pick(r)), key=lambda r: -r.get("seconds", 0.0))[:2]
        if slow:
            print(f"{label}: " + "; ".join(f"case {r['case']} {r.get('seconds', 0):.2f} s ({', '.join(r['steps'])})"
                                         for r in slow))
    times = sorted(r.get("seconds", 0.0) for r in results if not r.get("scanned"))
    if times:
        print(f"load time per case: median {times[len(times) // 2] * 1000:.0f} ms, "
              f"p99 {times[int(len(times) * 0.99)] * 1000:.0f} ms")
    return len(crashes)


# ---------------------------------------------------------------------------------------------
# --huge: single lines of several GiB, under the readers' real limits


def _huge_child(kind: str, path: str, conn) -> None:  # type: ignore[no-untyped-def]
    import resource

    from engine.bundle import load_bundle

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        b = load_bundle(path, workers=1)
        result = [str(i)[:150] for i in b.issues if kind.split("/")[0] in i.path][:2]
    except Exception as e:  # noqa: BLE001
        result = [f"CRASH {type(e).__name__}: {e}"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((result, time.perf_counter() - t0, before / 1024, peak / 1024))


def run_huge(base: Path, gib: float) -> int:
    """One bundle per reader whose file is a gzip of one ``gib`` GiB line; peak RSS of each load."""
    size = int(gib * (1 << 30))
    print(f"compressing a {gib:g} GiB line ...", file=sys.stderr, flush=True)
    bomb = gzip_bomb(size)
    targets = {
        "iam.json": "iam.json", "resources.json": "resources.json", "network.json": "network.json",
        "deploys.jsonl": "deploys.jsonl", "flowlogs": "flowlogs/111111111111_vpcflowlogs_us-east-1_0001.log.gz",
        "cloudtrail": "cloudtrail/lines.jsonl", "cost/cur2 csv": None, "cost/focus.csv": "cost/focus.csv",
    }
    crashes = 0
    ctx = mp.get_context("fork")
    for label, rel in targets.items():
        with tempfile.TemporaryDirectory(prefix="fuzz-huge-") as tmp:
            root = Path(tmp) / "bundle"
            shutil.copytree(base, root)
            target = next((root / "cost").rglob("*.csv.gz")) if rel is None else root / rel
            if not target.exists() and rel is not None and not target.parent.is_dir():
                continue
            target.write_bytes(bomb)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_huge_child, args=(label, str(root), child))
            proc.start()
            issues, secs, before, peak = parent.recv()
            proc.join()
            crashes += any(i.startswith("CRASH") for i in issues)
            print(f"{label:16s} {secs:6.1f} s  peak RSS {peak:7.0f} MiB (at start {before:5.0f} MiB)  "
                  f"{issues[0] if issues else 'no issue!'}")
    return crashes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=500, help="mutated bundles to load (default 500; thousands: --cases 5000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scan-every", type=int, default=100, help="also scan every Nth case (0: never)")
    ap.add_argument("--doc-limit-mb", type=int, default=32, help="largest JSON document, decompressed")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one case may take")
    ap.add_argument("--case", type=int, default=None, help="run one case in this process, with its traceback")
    ap.add_argument("--keep", type=Path, default=None, help="with --case: keep its bundle in this directory")
    ap.add_argument("--huge", action="store_true", help="gzip bombs of one multi-GiB line per reader")
    ap.add_argument("--huge-gib", type=float, default=3.0)
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fuzz-base-"))
    try:
        t0 = time.perf_counter()
        base = build_base(work)
        print(f"base bundle: {sum(1 for p in base.rglob('*') if p.is_file())} files, "
              f"{sum(p.stat().st_size for p in base.rglob('*') if p.is_file()) >> 10} KiB "
              f"(built in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        if a.huge:
            sys.exit(1 if run_huge(base, a.huge_gib) else 0)
        if a.case is not None:
            import engine.sources.files as files
            from engine.model import ModelConfig

            files.MAX_DOCUMENT_BYTES = a.doc_limit_mb << 20
            if a.keep:
                a.keep.mkdir(parents=True, exist_ok=True)
            r = run_case(a.case, a.seed, base, a.scan_every, ModelConfig(folds=3, max_epochs=60), a.keep)
            print("; ".join(r["steps"]))
            print(r["crash"]["trace"] if r["crash"] else f"no crash ({r.get('issues', 0)} issues, "
                                                         f"{r['seconds']:.2f} s)")
            return
        t0 = time.perf_counter()
        results = run_all(a.cases, a.seed, base, a.scan_every, a.doc_limit_mb << 20, a.timeout)
        sys.exit(1 if report(results, time.perf_counter() - t0) else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

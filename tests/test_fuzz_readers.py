"""Every reader, fed mutations of a valid file: parsed with issues, or refused with one — never an exception.

Property-based (hypothesis) over real formats: CloudTrail JSON and JSON lines (generic and fused fold
paths), CUR 2.0 CSV and Parquet, legacy CUR, FOCUS, resources.json, iam.json, network.json, flow
logs and deploys. Seeds are a tiny synthetic org and the third-party samples in ../shared/data;
mutations are byte flips, truncation, inserted bytes, deleted ranges, duplicated lines, deep
nesting, NaN/inf/negative numbers, re-encodings and empty files. Then the named broken-file
classes one by one: deep nesting, one huge line in bounded memory, binary garbage, UTF-16 and
Latin-1, zero bytes, NaN and infinity in numeric cells.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
import shutil
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.sources.files as files
from engine.activity import fold_files
from engine.bundle import load_bundle
from engine.records import BundleError, BundleIssue
from engine.sources.cloudtrail import read_cloudtrail_file
from engine.sources.cost import read_cost_file
from engine.sources.deploys import read_deploys
from engine.sources.flowlogs import read_flow_file
from engine.sources.inventory import read_iam_json, read_network_json, read_resources_json

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# ------------------------------------------------------------------------------------------------
# seeds: one small valid file per reader


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.synth import generate

    out = tmp_path_factory.mktemp("fuzz_org")
    generate(out, seed=3, teams=2, resources_per_team=6, days=2, events_per_resource_day=4.0, workers=1)
    return out / "bundle"


def _head_lines(data: bytes, n: int) -> bytes:
    return b"\n".join(data.split(b"\n")[:n]) + b"\n"


@pytest.fixture(scope="module")
def seeds(org: Path) -> dict[str, bytes]:
    ct = sorted((org / "cloudtrail").rglob("*.json.gz"))
    recs = orjson.loads(gzip.decompress(ct[0].read_bytes()))["Records"][:12]
    cur = gzip.decompress(next((org / "cost").rglob("*.csv.gz")).read_bytes())
    out = {
        "cloudtrail.json": orjson.dumps({"Records": recs}),
        "cloudtrail.jsonl": b"\n".join(orjson.dumps(r) for r in recs) + b"\n",
        "cur2.csv": _head_lines(cur, 25),
        "resources.json": (org / "resources.json").read_bytes(),
        "iam.json": (org / "iam.json").read_bytes(),
        "network.json": (org / "network.json").read_bytes(),
        "flow.log": _head_lines(gzip.decompress(next((org / "flowlogs").glob("*.log.gz")).read_bytes()), 25),
        "deploys.jsonl": (org / "deploys.jsonl").read_bytes(),
    }
    buf = io.BytesIO()
    pq.write_table(pcsv.read_csv(io.BytesIO(out["cur2.csv"])), buf)
    out["cur2.parquet"] = buf.getvalue()
    for name, rel, n in (("focus.csv", "cost/focus/focus_sample.csv", 25),
                         ("legacy.csv", "cost/cur-legacy-csv/sample-anonymous-aws-export-dataset.csv", 25),
                         ("iam-cloudsplaining.json", "iam/cloudsplaining/example-authz-details.json", 0),
                         ("panther.json", "cloudtrail/panther/panther_cloudtrail_test_events.json", 0)):
        if (SHARED / rel).is_file():
            data = (SHARED / rel).read_bytes()
            if name == "panther.json":  # a slice of its records keeps examples fast
                data = orjson.dumps({"Records": orjson.loads(data)["Records"][:40]})
            out[name] = _head_lines(data, n) if n else data
    return out


def _fold(path: Path, issues: list[BundleIssue]) -> object:
    return fold_files([path], issues=issues)


def _flows(path: Path, issues: list[BundleIssue]) -> list:
    return list(read_flow_file(path, issues))


# seed name -> (file name to write, reader)
READERS: dict[str, tuple[str, Callable[[Path, list[BundleIssue]], object]]] = {
    "cloudtrail.json": ("ct.json", read_cloudtrail_file),
    "cloudtrail.jsonl": ("ct.jsonl", read_cloudtrail_file),
    "cloudtrail-fold": ("ct.json", _fold),
    "panther.json": ("panther.json", _fold),
    "cur2.csv": ("cur.csv", read_cost_file),
    "cur2.parquet": ("cur.parquet", read_cost_file),
    "focus.csv": ("focus.csv", read_cost_file),
    "legacy.csv": ("legacy.csv", read_cost_file),
    "resources.json": ("resources.json", read_resources_json),
    "iam.json": ("iam.json", read_iam_json),
    "iam-cloudsplaining.json": ("iam.json", read_iam_json),
    "network.json": ("network.json", read_network_json),
    "flow.log": ("flow.log", _flows),
    "deploys.jsonl": ("deploys.jsonl", read_deploys),
}


def _seed(seeds: dict[str, bytes], name: str) -> bytes:
    key = "cloudtrail.json" if name == "cloudtrail-fold" else name
    if key not in seeds:
        pytest.skip(f"{key}: shared sample not found")
    return seeds[key]


def _finite(result: object) -> None:
    """No NaN or infinity in what a reader hands on (costs are checked by the lead's cost tests)."""
    if isinstance(result, list):
        for x in result:
            for attr in ("time", "bytes", "packets", "start"):
                v = getattr(x, attr, None)
                if isinstance(v, float | int):
                    assert math.isfinite(v), (attr, x)


def check_reader(name: str, path: Path) -> list[BundleIssue]:
    """Run the reader; anything but issues is a failure. Issues name the file."""
    issues: list[BundleIssue] = []
    result = READERS[name][1](path, issues)
    assert all(isinstance(i, BundleIssue) and i.path == str(path) for i in issues), issues
    _finite(result)
    return issues


# ------------------------------------------------------------------------------------------------
# mutations, as hypothesis draws them (so failures shrink to a small edit)

WEIRD = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-inf", b"1e400", b"-1", b"-0", b"1e308",
         b"99999999999999999999999", b"", b'""', b"null", b"[]", b"{}", b"\xc2\xb2", b"caf\xe9", b"\x00",
         b'"9999-12-31T23:59:59Z"', b"0001-01-01T00:00:00+14:00", b'"', b",", b"\n", b"\r"]
_NUM = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")

fraction = st.floats(0, 1, allow_nan=False)
op = st.one_of(
    st.tuples(st.just("flip"), fraction, st.integers(0, 7)),
    st.tuples(st.just("truncate"), fraction),
    st.tuples(st.just("insert"), fraction, st.one_of(st.sampled_from(WEIRD), st.binary(min_size=1, max_size=12))),
    st.tuples(st.just("delete"), fraction, st.integers(1, 400)),
    st.tuples(st.just("dup-line"), fraction, fraction),
    st.tuples(st.just("number"), fraction, st.sampled_from(WEIRD)),
    st.tuples(st.just("deep"), fraction, st.sampled_from([1100, 5000, 60_000]), st.booleans()),
    st.tuples(st.just("encode"), st.sampled_from(["utf-16", "utf-16-be", "utf-32", "latin-1", "utf-8-sig"])),
    st.tuples(st.just("zero")),
)


def apply(data: bytes, ops: list[tuple]) -> bytes:
    for o in ops:
        kind, n = o[0], len(data)
        at = int(o[1] * n) if len(o) > 1 and isinstance(o[1], float) else 0
        if kind == "flip" and n:
            b = bytearray(data)
            b[min(at, n - 1)] ^= 1 << o[2]
            data = bytes(b)
        elif kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + o[2] + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + o[2]:]
        elif kind == "dup-line":
            lines = data.split(b"\n")
            lines.insert(int(o[2] * len(lines)), lines[min(int(o[1] * len(lines)), len(lines) - 1)])
            data = b"\n".join(lines)
        elif kind == "number":
            ms = list(_NUM.finditer(data))
            if ms:
                m = ms[min(int(o[1] * len(ms)), len(ms) - 1)]
                data = data[:m.start()] + o[2] + data[m.end():]
        elif kind == "deep":
            depth, closed = o[2], o[3]
            nest = b"[" * depth + (b"]" * depth if closed else b"")
            data = data[:at] + nest + data[at:]
        elif kind == "encode":
            data = data.decode("utf-8", "replace").replace("a", "\u00e9", 2).encode(o[1], "replace")
        elif kind == "zero":
            data = b""
    return data


# Modest and reproducible by default; COSTDNA_FUZZ_EXAMPLES=2000 hunts with fresh random draws.
EXAMPLES = int(os.environ.get("COSTDNA_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="COSTDNA_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.mark.parametrize("name", list(READERS))
@FUZZ
@given(ops=st.lists(op, min_size=1, max_size=3), gz=st.booleans())
def test_any_mutation_is_parsed_or_refused(seeds, tmp_path, name, ops, gz):
    data = apply(_seed(seeds, name), ops)
    path = tmp_path / READERS[name][0]
    if name == "cur2.parquet" and any(o[0] in ("encode", "dup-line", "number", "deep") for o in ops):
        gz = False  # bytes of a binary format: the text edits still apply, gzip of Parquet does not matter
    path.write_bytes(gzip.compress(data, 1) if gz and data else data)
    check_reader(name, path)


@pytest.mark.parametrize("name", ["cur2.parquet"])
@settings(max_examples=max(10, EXAMPLES // 2), deadline=None, derandomize="COSTDNA_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(costs=st.lists(st.one_of(st.none(), st.floats()), min_size=1, max_size=24),
       times=st.lists(st.one_of(st.none(), st.integers(0, 4_000_000_000)), min_size=1, max_size=24),
       drop=st.sampled_from([None, "line_item_resource_id", "resource_tags", "line_item_usage_start_date"]))
def test_parquet_values_and_schema(seeds, tmp_path, name, costs, times, drop):
    import pyarrow as pa

    t = pq.read_table(io.BytesIO(_seed(seeds, name)))
    n = t.num_rows
    cost = "line_item_unblended_cost"
    start = "line_item_usage_start_date"
    t = t.set_column(t.column_names.index(cost), cost, pa.array((costs * n)[:n], pa.float64()))
    t = t.set_column(t.column_names.index(start), start, pa.array((times * n)[:n], pa.timestamp("s", tz="UTC")))
    if drop:
        t = t.drop_columns([drop])
    path = tmp_path / "cur.parquet"
    pq.write_table(t, path)
    check_reader(name, path)


# ------------------------------------------------------------------------------------------------
# the named broken-file classes, one by one

JSON_READERS = ["cloudtrail.json", "cloudtrail-fold", "resources.json", "iam.json", "network.json"]


@pytest.mark.parametrize("name", JSON_READERS)
@pytest.mark.parametrize("closed", [True, False])
def test_deep_nesting_is_an_issue_not_a_recursion_error(tmp_path, name, closed):
    depth = 100_000
    path = tmp_path / READERS[name][0]
    path.write_bytes(b"[" * depth + (b"]" * depth if closed else b""))
    issues = check_reader(name, path)
    assert len(issues) == 1 and "not valid JSON" in issues[0].message, issues


def test_iam_json_deeply_nested_policy_and_pages(tmp_path):
    deep = b"[" * 50_000 + b"]" * 50_000
    role = {"RoleName": "r", "RolePolicyList": [{"PolicyDocument": (b"%5B" * 3000).decode()}],
            "AssumeRolePolicyDocument": deep.decode(), "Tags": [{"Key": "team", "Value": [[[1]]]}]}
    path = tmp_path / "iam.json"
    # two pages, the second nested far too deep: the first still loads
    path.write_bytes(orjson.dumps({"RoleDetailList": [role]}) + b"\n" + b'{"UserDetailList": ' + deep + b"}")
    issues: list[BundleIssue] = []
    principals = read_iam_json(path, issues)
    assert [p.key for p in principals] == ["role:r"] and principals[0].tags == {"team": "[[[1]]]"}
    assert [(i.location, "not valid JSON" in i.message) for i in issues] == [("document 2", True)]


def test_deep_tag_value_and_long_arn_in_resources_json(tmp_path):
    nested = b"[" * 900 + b"]" * 900  # parses (orjson allows 1024 levels), too deep to repr or write back
    path = tmp_path / "resources.json"
    path.write_bytes(b'{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "Tags": {"team": ' + nested
                     + b', "Name": "n"}}, {"ResourceARN": "' + b"x" * 100_000 + b'"}, {"ResourceARN": ' + nested
                     + b"}]}")
    issues: list[BundleIssue] = []
    res = read_resources_json(path, issues)
    assert [r.arn for r in res] == ["arn:aws:s3:::b"] and res[0].tags == {"Name": "n"}
    assert [i.location for i in issues] == ["ResourceTagMappingList[2]", "ResourceTagMappingList[3]"]
    assert all(len(i.message) < 300 for i in issues)


def _bomb(path: Path, size: int, prefix: bytes = b"", suffix: bytes = b"\n") -> None:
    """A gzip file of ``prefix`` + one ``size``-byte line + ``suffix``, written without holding it."""
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    chunk = b"x" * (1 << 20)
    with open(path, "wb") as f:
        f.write(c.compress(prefix))
        for _ in range(size >> 20):
            f.write(c.compress(chunk))
        f.write(c.compress(suffix))
        f.write(c.flush())


FLOW_OK = b"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 3 300 1700000000 1700000060 ACCEPT OK\n"


@pytest.mark.parametrize("reader", ["flow.log", "deploys.jsonl"])
def test_one_huge_line_is_skipped_in_bounded_memory(tmp_path, reader):
    good = FLOW_OK if reader == "flow.log" else b'{"time": "2024-01-01T00:00:00Z", "repo": "r"}\n'
    path = tmp_path / (READERS[reader][0] + ".gz")
    _bomb(path, 96 << 20, prefix=good, suffix=b"\n" + good)  # a 96 MiB line between two good ones
    tracemalloc.start()
    try:
        issues: list[BundleIssue] = []
        out = READERS[reader][1](path, issues)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == 2  # type: ignore[arg-type]
    assert [(i.location, i.message) for i in issues] == [("line 2", f"longer than {1 << 20} bytes; skipped")]
    assert peak < 16 << 20, f"peak {peak >> 20} MiB while skipping a 96 MiB line"


@pytest.mark.parametrize("name", ["cloudtrail.json", "cloudtrail-fold", "iam.json", "resources.json",
                                  "network.json"])
def test_document_over_the_limit_is_refused_before_it_is_held(tmp_path, monkeypatch, name):
    monkeypatch.setattr(files, "MAX_DOCUMENT_BYTES", 4 << 20)
    path = tmp_path / READERS[name][0]
    _bomb(path, 64 << 20, prefix=b'{"Records": [{"eventName": "', suffix=b'"}]}')
    tracemalloc.start()
    try:
        issues = check_reader(name, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(issues) == 1 and "refused" in issues[0].message and issues[0].location == ""
    assert peak < 16 << 20
    plain = tmp_path / "plain" / READERS[name][0]
    plain.parent.mkdir()
    plain.write_bytes(b'{"a": "' + b"x" * (5 << 20) + b'"}')
    issues = check_reader(name, plain)
    assert len(issues) == 1 and "refused" in issues[0].message


def test_cost_csv_of_one_huge_line(tmp_path):
    path = tmp_path / "cur.csv.gz"
    _bomb(path, 64 << 20, prefix=b"line_item_usage_start_date,")
    issues = check_reader("cur2.csv", path)
    assert len(issues) == 1 and "first line longer than" in issues[0].message


ALL_TEXT = ["cloudtrail.json", "cloudtrail.jsonl", "cloudtrail-fold", "cur2.csv", "focus.csv", "resources.json",
            "iam.json", "network.json", "flow.log", "deploys.jsonl"]


@pytest.mark.parametrize("name", [*ALL_TEXT, "cur2.parquet"])
@pytest.mark.parametrize("gz", [False, True])
def test_zero_byte_file_is_one_issue(tmp_path, name, gz):
    path = tmp_path / READERS[name][0]
    path.write_bytes(gzip.compress(b"") if gz else b"")
    issues = check_reader(name, path)
    assert len(issues) == 1 and "empty" in issues[0].message or "Parquet" in issues[0].message, issues


@pytest.mark.parametrize("name", [*ALL_TEXT, "cur2.parquet"])
def test_binary_garbage_is_one_issue(tmp_path, name):
    import random

    path = tmp_path / READERS[name][0]
    path.write_bytes(random.Random(7).randbytes(20_000) + b"\x00")
    issues = check_reader(name, path)
    assert 1 <= len(issues) <= 25 and all(i.path == str(path) for i in issues)  # cost files: capped row issues
    if name not in ("cur2.csv", "focus.csv", "flow.log", "deploys.jsonl", "cloudtrail.jsonl"):
        assert len(issues) == 1


@pytest.mark.parametrize("name", ["cloudtrail.json", "cloudtrail.jsonl", "cloudtrail-fold", "resources.json",
                                  "iam.json", "network.json", "flow.log", "deploys.jsonl"])
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_is_transcoded_with_an_issue(seeds, tmp_path, name, codec):
    seed = _seed(seeds, name)
    want = READERS[name][1](_write(tmp_path / "good", READERS[name][0], seed), [])
    path = _write(tmp_path, READERS[name][0], seed.decode().encode(codec))
    issues = check_reader(name, path)
    assert [(i.location, i.message) for i in issues] == [("", f"encoded as {codec[:6].upper()}, not UTF-8; transcoded")]
    assert _same(READERS[name][1](path, []), want)


@pytest.mark.parametrize("name", ["cur2.csv", "focus.csv"])
def test_utf16_cost_csv_is_refused_with_an_issue(seeds, tmp_path, name):
    path = _write(tmp_path, READERS[name][0], _seed(seeds, name).decode().encode("utf-16"))
    issues = check_reader(name, path)
    assert [i.message for i in issues] == ["encoded as UTF-16; a cost export must be UTF-8 CSV"]


@pytest.mark.parametrize("name", ["cloudtrail.json", "cloudtrail-fold", "resources.json", "iam.json",
                                  "network.json"])
def test_latin1_bytes_are_replaced_with_an_issue(seeds, tmp_path, name):
    seed = _seed(seeds, name)
    want = READERS[name][1](_write(tmp_path / "good", READERS[name][0], seed), [])
    m = re.search(rb'"(eventName|Value|Description|Path)":\s*"', seed)  # inside a string value readers use
    assert m, name
    i = m.end()
    path = _write(tmp_path, READERS[name][0], seed[:i] + b"caf\xe9 " + seed[i:])
    issues = check_reader(name, path)
    assert len(issues) == 1 and "not valid UTF-8" in issues[0].message, issues
    if name != "cloudtrail-fold":  # the fused fold skips just the record (its raw bytes are decoded late)
        assert issues[0].message.startswith("not valid UTF-8 (byte 0xe9 at offset")
    got = READERS[name][1](path, [])
    if isinstance(want, list):
        assert len(got) == len(want)  # type: ignore[arg-type]


def test_latin1_line_of_jsonl_and_flow_log(tmp_path):
    path = _write(tmp_path, "deploys.jsonl", b'{"time": 1700000000, "repo": "caf\xe9"}\n{"time": 1700000000, "repo": "r"}\n')
    issues: list[BundleIssue] = []
    assert [d.repo for d in read_deploys(path, issues)] == ["r"]
    assert [i.location for i in issues] == ["line 1"]
    path = _write(tmp_path, "flow.log", FLOW_OK.replace(b"eni-1", b"eni-\xe9") + FLOW_OK)
    issues = []
    assert len(list(read_flow_file(path, issues))) == 1
    assert [(i.location, i.message) for i in issues] == [("line 1", "a field holds bytes that are not ASCII text; "
                                                                     "line skipped")]


def _write(d: Path, name: str, data: bytes) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
    return d / name


def _same(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b)
    return type(a) is type(b)


# ------------------------------------------------------------------------------------------------
# NaN, infinity and other impossible numbers


@pytest.mark.parametrize("field,value", [("bytes", b"NaN"), ("bytes", b"inf"), ("bytes", b"-5"), ("bytes", b"1e3"),
                                         ("bytes", b"99999999999999999999999"), ("packets", b"-1"),
                                         ("packets", b"nan"), ("start", b"Infinity"), ("start", b"-1700000000"),
                                         ("start", b"99999999999"), ("bytes", b"1_000")])
def test_flow_log_impossible_numbers_name_line_and_field(tmp_path, field, value):
    cols = FLOW_OK.split()
    i = {"packets": 8, "bytes": 9, "start": 10}[field]
    bad = b" ".join([*cols[:i], value, *cols[i + 1:]]) + b"\n"
    path = _write(tmp_path, "flow.log", FLOW_OK + bad + FLOW_OK)
    issues: list[BundleIssue] = []
    flows = list(read_flow_file(path, issues))
    assert len(flows) == 2 and all(f.bytes == 300 for f in flows)
    assert len(issues) == 1 and issues[0].location == "line 2" and issues[0].message.startswith(f"{field} ")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "-1", "1e300", "9e15",
                                   '"9999-12-31T23:59:59Z"', '"0001-01-01T00:00:00+14:00"', '"1969-12-31T23:59:59Z"'])
def test_deploy_impossible_times_are_issues(tmp_path, value):
    good = b'{"time": "2024-01-01T00:00:00Z", "repo": "r"}\n'
    path = _write(tmp_path, "deploys.jsonl", good + b'{"time": ' + value.encode() + b', "repo": "x"}\n' + good)
    issues: list[BundleIssue] = []
    deploys = read_deploys(path, issues)
    assert [d.repo for d in deploys] == ["r", "r"] and all(math.isfinite(d.time) for d in deploys)
    assert len(issues) == 1 and issues[0].location == "line 2"
    assert "time" in issues[0].message or "not valid JSON" in issues[0].message


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "1900-01-01T00:00:00Z"])
def test_cloudtrail_times_outside_the_era_are_no_time(tmp_path, value):
    rec = {"eventName": "A", "eventTime": value, "eventSource": "s3.amazonaws.com"}
    path = _write(tmp_path, "ct.json", orjson.dumps({"Records": [rec]}))
    events = read_cloudtrail_file(path, [])
    assert [e.time for e in events] == [None]
    act, _ = fold_files([path])
    assert act.records == 1 and act.first_time == math.inf


# ------------------------------------------------------------------------------------------------
# a whole bundle: each broken file is one issue, the rest loads; strict refuses


def test_bundle_with_every_kind_of_broken_file_still_loads(org, tmp_path):
    root = tmp_path / "bundle"
    shutil.copytree(org, root)
    (root / "iam.json").write_bytes(b"[" * 100_000)
    (root / "network.json").write_bytes("{}".encode("utf-16"))
    (root / "deploys.jsonl").write_bytes(b"")
    flow = next((root / "flowlogs").glob("*.log.gz"))
    flow.write_bytes(gzip.compress(b"\x00\x01binary" * 100))
    ct = sorted((root / "cloudtrail").rglob("*.json.gz"))
    ct[0].write_bytes(gzip.compress(b'{"Records": [' + b"{" * 5000))
    ct[1].write_bytes(ct[1].read_bytes()[:50])
    cost = next((root / "cost").rglob("*.csv.gz"))
    shutil.copyfile(cost, root / "cost" / "copy.csv.gz")
    cost.write_bytes(b"\xff\xfe" + b"\x00" * 64)

    b = load_bundle(root, workers=1)
    by_file = {Path(i.path).name for i in b.issues}
    assert {"iam.json", "network.json", "deploys.jsonl", flow.name, ct[0].name, ct[1].name, cost.name} <= by_file
    assert b.resources and b.activity.records > 0 and b.costs.total > 0
    with pytest.raises(BundleError):
        load_bundle(root, strict=True, workers=1)

"""The watch on the command line: `costdna spikes` (its JSON contract), `costdna watch --once`, `costdna digest`.

A small synthetic org (3 teams x 6 resources, 8 days) with one spike of our own on top of whatever the
generator plants: a CUR 2.0 file that adds $40/h to a steady resource in the last three hours. The CLI
runs in-process (CliRunner) against a temporary data dir (``cli_env``): SQLite, in-process jobs.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

pytestmark = pytest.mark.usefixtures("fast_model")

CONTRACT = ("resource_id", "arn", "start", "end", "peak_usd_per_hour", "baseline_usd_per_hour", "extra_usd",
            "severity", "reasons", "owner_team", "owner_confidence", "cause")
CAUSE = ("commit", "repo", "actor", "time", "p_value")
DIGEST_KEYS = ("yesterday_usd", "avg7_usd", "movers", "untagged_by_day", "open_spikes", "drift", "queue",
               "by_team_day", "paused")
PLANTED_USD_PER_HOUR = 40.0
PLANTED_HOURS = 3


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _plant_spike(bundle: Path) -> str:
    """Add a CUR 2.0 part with $40/h more for the steadiest hourly resource in the last 3 hours of the
    export; returns that resource's id as the CUR names it."""
    src = next(p for p in sorted((bundle / "cost").rglob("*")) if p.name.endswith((".csv", ".csv.gz")))
    opener = gzip.open if src.name.endswith(".gz") else open
    with opener(src, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    hours: dict[str, set[str]] = defaultdict(set)
    sample: dict[str, dict] = {}
    for r in rows:
        if r["line_item_line_item_type"] == "Usage" and r["line_item_resource_id"]:
            start, end = _ts(r["line_item_usage_start_date"]), _ts(r["line_item_usage_end_date"])
            if end - start == timedelta(hours=1) and float(r["line_item_unblended_cost"]) > 0:
                hours[r["line_item_resource_id"]].add(r["line_item_usage_start_date"])
                sample[r["line_item_resource_id"]] = r
    last = max(max(h) for h in hours.values())
    rid = max((k for k, h in hours.items() if last in h), key=lambda k: (len(hours[k]), k))
    last_t = _ts(last)
    # a part of the same delivery (cur2-000NN): a file of its own name would be a second export of the
    # same bill, and the older, smaller copy of a day never counts (engine.costs)
    out = src.parent / "cur2-00099.csv.gz"
    with gzip.open(out, "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, quoting=csv.QUOTE_ALL)
        w.writeheader()
        for k in range(PLANTED_HOURS):
            t0 = last_t - timedelta(hours=PLANTED_HOURS - 1 - k)
            row = dict(sample[rid])
            row["line_item_usage_start_date"] = t0.strftime("%Y-%m-%dT%H:%M:%SZ")
            row["line_item_usage_end_date"] = (t0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for col in ("line_item_unblended_cost", "line_item_blended_cost"):
                if col in row:
                    row[col] = f"{PLANTED_USD_PER_HOUR:.2f}"
            for col in header:  # amortized columns of the CUR, if the generator writes them
                if col.endswith(("_effective_cost", "net_unblended_cost")) and row.get(col):
                    row[col] = f"{PLANTED_USD_PER_HOUR:.2f}"
            w.writerow(row)
    return rid


@pytest.fixture(scope="module")
def small_org(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(bundle, the resource id of the planted spike)."""
    from engine.synth.generate import generate

    out = tmp_path_factory.mktemp("watch_org")
    generate(out, seed=7, teams=3, resources_per_team=6, days=8, workers=1)
    return out / "bundle", _plant_spike(out / "bundle")


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner(env=cli_env)


def _json(res) -> dict:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)  # stdout is exactly one JSON object: progress goes to stderr
    assert isinstance(obj, dict)
    return obj


def _one_error_line(res) -> str:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.stdout == ""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    return lines[0]


def _is_iso_z(v: object) -> bool:
    return isinstance(v, str) and v.endswith("Z") and _ts(v).tzinfo is not None


def _check_item(item: dict) -> None:
    assert set(CONTRACT) <= set(item), sorted(set(CONTRACT) - set(item))
    assert isinstance(item["resource_id"], str) and item["resource_id"]
    assert isinstance(item["arn"], str) and item["arn"]
    assert _is_iso_z(item["start"]) and _is_iso_z(item["end"]), (item["start"], item["end"])
    assert _ts(item["start"]) < _ts(item["end"])
    for k in ("peak_usd_per_hour", "baseline_usd_per_hour", "extra_usd", "owner_confidence"):
        assert isinstance(item[k], float), (k, item[k])
    assert item["peak_usd_per_hour"] >= item["baseline_usd_per_hour"] >= 0.0
    assert item["extra_usd"] >= 0.0
    assert 0.0 <= item["owner_confidence"] <= 1.0
    assert item["severity"] in ("info", "warning", "critical")
    assert isinstance(item["reasons"], list) and all(isinstance(r, str) for r in item["reasons"])
    assert item["owner_team"] is None or isinstance(item["owner_team"], str)
    cause = item["cause"]
    assert cause is None or isinstance(cause, dict)
    if cause is not None:
        assert set(CAUSE) <= set(cause)
        assert cause["time"] is None or _is_iso_z(cause["time"])
        assert cause["p_value"] is None or isinstance(cause["p_value"], float)
        for k in ("commit", "repo", "actor"):
            assert cause[k] is None or isinstance(cause[k], str)


def _planted(items: list[dict], rid: str) -> dict:
    hits = [i for i in items if i["resource_id"] == rid or i["arn"].endswith(rid)]
    assert hits, f"the planted spike on {rid} was not reported: {[i['resource_id'] for i in items]}"
    return max(hits, key=lambda i: i["extra_usd"])


def test_spikes_bundle_json_contract(runner: CliRunner, small_org: tuple[Path, str]) -> None:
    bundle, rid = small_org
    obj = _json(runner.invoke(app, ["spikes", "--bundle", str(bundle), "--json"]))
    items = obj["spikes"]
    assert isinstance(items, list) and items
    for item in items:
        _check_item(item)
    hit = _planted(items, rid)
    # $40/h above a baseline of cents for 3 hours
    assert 0.8 * PLANTED_HOURS * PLANTED_USD_PER_HOUR <= hit["extra_usd"] <= 1.05 * PLANTED_HOURS * PLANTED_USD_PER_HOUR
    assert hit["peak_usd_per_hour"] >= PLANTED_USD_PER_HOUR
    assert [i["start"] for i in items] == sorted(i["start"] for i in items)


def test_spikes_since_filters(runner: CliRunner, small_org: tuple[Path, str]) -> None:
    bundle, rid = small_org
    every = _json(runner.invoke(app, ["spikes", "--bundle", str(bundle), "--json"]))["spikes"]
    hit = _planted(every, rid)
    since = hit["start"]
    later = _json(runner.invoke(app, ["spikes", "--bundle", str(bundle), "--json", "--since", since]))
    assert later["since"] == since
    expect = {(i["resource_id"], i["start"]) for i in every if _ts(i["end"]) > _ts(since)}
    assert {(i["resource_id"], i["start"]) for i in later["spikes"]} == expect
    _planted(later["spikes"], rid)
    after_all = max(_ts(i["end"]) for i in every)
    none = _json(runner.invoke(app, ["spikes", "--bundle", str(bundle), "--json", "--since",
                                     after_all.strftime("%Y-%m-%dT%H:%M:%S")]))  # no zone: UTC
    assert none["spikes"] == []


def test_spikes_table(runner: CliRunner, small_org: tuple[Path, str]) -> None:
    bundle, rid = small_org
    res = runner.invoke(app, ["spikes", "--bundle", str(bundle)], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert rid in res.stdout
    assert "$" in res.stdout and "amortized" in res.stdout


@pytest.mark.parametrize("args", [[], ["--bundle", "BUNDLE", "--account", "demo"]])
def test_spikes_needs_exactly_one_source(runner: CliRunner, small_org: tuple[Path, str], args: list[str]) -> None:
    bundle, _ = small_org
    line = _one_error_line(runner.invoke(app, ["spikes", *[str(bundle) if a == "BUNDLE" else a for a in args]]))
    assert "--bundle" in line and "--account" in line


@pytest.mark.parametrize("since", ["yesterday", "2026-13-45", "12/11/2026"])
def test_spikes_bad_since(runner: CliRunner, small_org: tuple[Path, str], since: str) -> None:
    bundle, _ = small_org
    line = _one_error_line(runner.invoke(app, ["spikes", "--bundle", str(bundle), "--since", since]))
    assert since in line and "ISO 8601" in line


def test_spikes_missing_bundle(runner: CliRunner, tmp_path: Path) -> None:
    line = _one_error_line(runner.invoke(app, ["spikes", "--bundle", str(tmp_path / "nope")]))
    assert "does not exist" in line


def test_spikes_bundle_names_the_rows_it_left_out(runner: CliRunner, tmp_path: Path) -> None:
    """A broken cost row is skipped and said on stderr (file, row, column); stdout stays one JSON object."""
    cost = tmp_path / "b" / "cost"
    cost.mkdir(parents=True)
    (cost / "x.csv").write_text("line_item_resource_id,line_item_unblended_cost,line_item_usage_start_date\n"
                                "i-1,abc,2026-13-99\n")
    res = runner.invoke(app, ["spikes", "--bundle", str(tmp_path / "b"), "--json"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert json.loads(res.stdout)["spikes"] == []
    assert "x.csv: row 1: line_item_usage_start_date is not a time; row skipped" in res.stderr


def test_watch_once_then_account_spikes_agree_with_bundle(runner: CliRunner, small_org: tuple[Path, str]) -> None:
    bundle, rid = small_org
    res = runner.invoke(app, ["accounts", "add", "small", "--bundle", str(bundle)])
    assert res.exit_code == 0, res.output
    line = _one_error_line(runner.invoke(app, ["spikes", "--account", "small", "--json"]))
    assert "no watch has run for account small" in line and "costdna watch --once" in line

    res = runner.invoke(app, ["watch", "--once"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert "new file(s) read" in res.stdout and "spike(s)" in res.stdout
    alerted = int(re.search(r"(\d+) alerted", res.stdout).group(1))  # type: ignore[union-attr]
    assert sum(1 for ln in res.stdout.splitlines() if ln.startswith("alert ")) == alerted  # each alert printed

    stored = _json(runner.invoke(app, ["spikes", "--account", "small", "--json"]))
    assert stored["account"] == "small"
    for item in stored["spikes"]:
        _check_item(item)
    from_bundle = _json(runner.invoke(app, ["spikes", "--bundle", str(bundle), "--json"]))["spikes"]
    a, b = _planted(stored["spikes"], rid), _planted(from_bundle, rid)
    assert round(a["extra_usd"], 2) == round(b["extra_usd"], 2)
    assert a["start"] == b["start"]
    by_key = {(i["resource_id"], i["start"]): i for i in from_bundle}
    same = [(i, by_key[(i["resource_id"], i["start"])]) for i in stored["spikes"]
            if (i["resource_id"], i["start"]) in by_key]
    assert same
    for x, y in same:  # the same spike, the same money (amortized), to the cent
        assert round(x["extra_usd"], 2) == round(y["extra_usd"], 2), (x, y)
        assert round(x["peak_usd_per_hour"], 2) == round(y["peak_usd_per_hour"], 2), (x, y)

    # --since over the stored spikes: every one (whatever its status) that ends after it
    since = _json(runner.invoke(app, ["spikes", "--account", "small", "--json", "--since", a["start"]]))
    assert all(_ts(i["end"]) > _ts(a["start"]) for i in since["spikes"])
    _planted(since["spikes"], rid)

    # a second watch reads nothing new and alerts nothing again
    res = runner.invoke(app, ["watch", "--once"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "watch: 0 new file(s) read" in res.stdout and "0 alerted" in res.stdout

    res = runner.invoke(app, ["spikes", "--account", "small"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert rid in res.stdout

    digest = _json(runner.invoke(app, ["digest", "--account", "small", "--json"]))
    assert set(DIGEST_KEYS) <= set(digest), sorted(set(DIGEST_KEYS) - set(digest))
    assert digest["account"] == "small"
    res = runner.invoke(app, ["digest", "--account", "small"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "digest" in res.stdout and "7-day average" in res.stdout


def test_digest_unknown_account(runner: CliRunner) -> None:
    line = _one_error_line(runner.invoke(app, ["digest", "--account", "nosuch"]))
    assert "nosuch" in line


def test_watch_in_the_foreground_runs_the_schedule(runner: CliRunner, small_org: tuple[Path, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`costdna watch`: one watch now, then the hourly schedule (here: a schedule that ends at once)."""
    import jobs.schedule

    ran: list[object] = []

    async def run(self, stop=None) -> None:  # type: ignore[no-untyped-def]
        ran.append(self.ctx)

    monkeypatch.setattr(jobs.schedule.Scheduler, "run", run)
    bundle, _ = small_org
    assert runner.invoke(app, ["accounts", "add", "small", "--bundle", str(bundle)]).exit_code == 0
    res = runner.invoke(app, ["watch"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "new file(s) read" in res.stdout
    assert len(ran) == 1 and "db" in ran[0] and "notify" in ran[0]  # type: ignore[operator]


def _served_app(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):  # type: ignore[no-untyped-def]
    from aiohttp import web

    from config.settings import get_settings

    served: list[web.Application] = []
    monkeypatch.setattr(web, "run_app", lambda app, **kw: served.append(app))
    get_settings.cache_clear()
    res = runner.invoke(app, ["serve"], env=env)
    get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    assert len(served) == 1
    return served[0], res


def test_serve_without_redis_runs_the_schedule(runner: CliRunner, cli_env: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from aiohttp import web

    web_app, res = _served_app(runner, monkeypatch, {})
    assert "in-process" in res.stderr

    async def start_stop() -> tuple[bool, bool]:
        r = web.AppRunner(web_app)
        await r.setup()
        running = any(t.get_name() == "costdna-schedule" and not t.done() for t in asyncio.all_tasks())
        await r.cleanup()
        left = any(t.get_name() == "costdna-schedule" and not t.done() for t in asyncio.all_tasks())
        return running, left

    assert asyncio.run(start_stop()) == (True, False)

    with_redis, res = _served_app(runner, monkeypatch, {"REDIS_URL": "redis://127.0.0.1:6379/15"})
    assert "in-process" not in res.stderr
    assert len(with_redis.cleanup_ctx) == len(web_app.cleanup_ctx) - 1  # the workers run the schedule

"""The `costdna` command line: synth, scan (JSON contract, predictions.csv, bad input), unknown commands.

Runs the typer app in-process with CliRunner; settings point at a temporary data dir (``cli_env``).
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bot.cli
from bot.cli import app
from engine.bundle import load_bundle
from engine.evaluate import load_truth
from engine.scan import PREDICTION_COLUMNS
from tests.test_scan import check_summary_contract

TINY_SYNTH = dict(teams=3, resources_per_team=12, days=3, events_per_day=5.0)


# Train the cheap model (conftest.fast_model): these tests are about what surrounds it.
pytestmark = pytest.mark.usefixtures("fast_model")


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner(env=cli_env)


def _flat(text: str) -> str:
    """Output with line breaks removed (the console folds long paths at its width)."""
    return "".join(text.splitlines())


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_synth_writes_bundle_and_truth(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "org"
    res = runner.invoke(app, ["synth", "--out", str(out), "--seed", "2", "--teams", "3", "--resources-per-team", "12",
                              "--days", "3", "--events-per-day", "5"])
    assert res.exit_code == 0, res.output
    bundle = out / "bundle"
    for p in ("resources.json", "iam.json", "network.json", "cloudtrail", "cost", "flowlogs"):
        assert (bundle / p).exists(), p
    with (out / "truth.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert {"resource_id", "arn", "type", "team", "kind", "tagged", "tag_correct"} <= set(reader.fieldnames or [])
    assert len({r["team"] for r in rows} - {"unowned"}) == 3
    assert len(rows) >= 3 * 12 * 0.8
    b = load_bundle(bundle, workers=1)
    assert b.issues == []
    assert set(load_truth(out / "truth.csv")) <= set(b.resources)


def test_scan_bundle_json_and_out(runner: CliRunner, tiny_org: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "predictions.csv"
    res = runner.invoke(app, ["scan", "--bundle", str(tiny_org / "bundle"), "--json", "--out", str(csv_path)])
    assert res.exit_code == 0, res.output
    _no_traceback(res)
    summary = json.loads(res.stdout)  # stdout is exactly one JSON object: progress and notes go to stderr
    assert isinstance(summary, dict)
    check_summary_contract(summary)
    assert summary["resources"] == len(load_bundle(tiny_org / "bundle", workers=1).resources)
    assert summary["teams"]
    with csv_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert tuple(header) == PREDICTION_COLUMNS
    assert len(rows) == summary["resources"]


def test_scan_bundle_follows_the_confidence_threshold(cli_env: dict[str, str], tiny_org: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`scan --json` counts attributable spend at COSTDNA_CONFIDENCE_THRESHOLD and says so."""
    from config.settings import get_settings

    monkeypatch.setenv("COSTDNA_CONFIDENCE_THRESHOLD", "0.9")
    get_settings.cache_clear()
    csv_path = tmp_path / "predictions.csv"
    res = CliRunner(env={**cli_env, "COSTDNA_CONFIDENCE_THRESHOLD": "0.9"}).invoke(
        app, ["scan", "--bundle", str(tiny_org / "bundle"), "--json", "--out", str(csv_path)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["confidence_threshold"] == 0.9
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    def attributable(at: float) -> int:  # the CSV rounds confidence to 4 decimals
        return sum(1 for r in rows if not r["tag_team"] and r["predicted_team"] and float(r["confidence"]) >= at)

    assert attributable(0.9001) <= summary["attributable_resources"] <= attributable(0.8999)
    assert summary["attributable_resources"] < attributable(0.7)  # fewer than at the 0.70 default


def test_scan_report_and_out(runner: CliRunner, tiny_org: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "sub" / "predictions.csv"
    res = runner.invoke(app, ["scan", "--bundle", str(tiny_org / "bundle"), "--out", str(csv_path)])
    assert res.exit_code == 0, res.output
    _no_traceback(res)
    assert csv_path.is_file()
    assert "predictions.csv" in _flat(res.stdout)
    with csv_path.open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == PREDICTION_COLUMNS


def test_scan_synthetic_uses_the_data_dir(runner: CliRunner, cli_env: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.cli, "synthetic_bundle", functools.partial(bot.cli.synthetic_bundle, **TINY_SYNTH))
    res = runner.invoke(app, ["scan", "--synthetic", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    check_summary_contract(json.loads(res.stdout))
    data = Path(cli_env["COSTDNA_DATA_DIR"])
    cached = [p.parent for p in data.rglob("truth.csv")]
    assert len(cached) == 1 and (cached[0] / "bundle").is_dir()
    assert not list(data.rglob("*.tmp")), "no half-written org is left behind"


def test_synthetic_org_is_cached(cli_env: dict[str, str]) -> None:
    first = bot.cli.synthetic_bundle(4, quiet=True, **TINY_SYNTH)
    assert first.is_relative_to(Path(cli_env["COSTDNA_DATA_DIR"]))
    stamp = (first / "truth.csv").stat().st_mtime_ns
    again = bot.cli.synthetic_bundle(4, quiet=True, **TINY_SYNTH)
    assert again == first and (again / "truth.csv").stat().st_mtime_ns == stamp
    other = bot.cli.synthetic_bundle(5, quiet=True, **TINY_SYNTH)
    assert other != first


# No source at all scans the default stored account (tests/test_cli_accounts.py).
@pytest.mark.parametrize("args", [["--bundle", "{bundle}", "--synthetic"], ["--synthetic", "--account", "x"]],
                         ids=["bundle+synthetic", "synthetic+account"])
def test_scan_needs_at_most_one_source(runner: CliRunner, tiny_org: Path, args: list[str]) -> None:
    args = [a.format(bundle=tiny_org / "bundle") for a in args]
    res = runner.invoke(app, ["scan", *args])
    assert res.exit_code != 0
    _no_traceback(res)
    assert "--bundle" in res.output and "--synthetic" in res.output
    assert res.stdout == ""


def test_scan_missing_bundle(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    res = runner.invoke(app, ["scan", "--bundle", str(missing), "--json"])
    assert res.exit_code != 0
    _no_traceback(res)
    assert str(missing) in _flat(res.output)
    assert res.stdout == "", "no JSON is printed for a failed scan"


@pytest.fixture
def broken_bundle(tiny_org: Path, tmp_path: Path) -> tuple[Path, Path]:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle", bundle)
    good = sorted((bundle / "cloudtrail").rglob("*.json.gz"))[0]
    bad = good.with_name("broken.json.gz")
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bundle, bad


def test_scan_strict_fails_on_a_broken_file(runner: CliRunner, broken_bundle: tuple[Path, Path]) -> None:
    bundle, bad = broken_bundle
    res = runner.invoke(app, ["scan", "--bundle", str(bundle), "--strict", "--json"])
    assert res.exit_code != 0
    _no_traceback(res)
    assert str(bad) in _flat(res.stderr)
    assert res.stdout == ""


def test_scan_without_strict_warns_about_a_broken_file(runner: CliRunner, broken_bundle: tuple[Path, Path]) -> None:
    bundle, bad = broken_bundle
    res = runner.invoke(app, ["scan", "--bundle", str(bundle), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    check_summary_contract(summary)
    assert summary["issue_count"] >= 1
    assert any(str(bad) in i for i in summary["issues"])
    assert str(bad) in _flat(res.stderr)


def test_error_paths_are_printed_on_one_line(runner: CliRunner, broken_bundle: tuple[Path, Path]) -> None:
    bundle, bad = broken_bundle
    assert len(str(bad)) > 80
    res = runner.invoke(app, ["scan", "--bundle", str(bundle), "--strict", "--json"])
    assert res.exit_code != 0
    assert str(bad) in res.stderr


def test_unknown_subcommand(runner: CliRunner) -> None:
    res = runner.invoke(app, ["frobnicate"])
    assert res.exit_code != 0
    assert "frobnicate" in res.output

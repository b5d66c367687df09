"""`costdna accounts add/list`, `status`, `scan --account`, `worker`: stored accounts through the CLI.

Runs the typer app in-process (CliRunner) against a SQLite database in a temporary data dir, with no
Redis configured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

# Train the cheap model (conftest.fast_model): these tests are about what surrounds it.
pytestmark = pytest.mark.usefixtures("fast_model")


@pytest.fixture
def runner(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for k in ("REDIS_URL", "COSTDNA_REDIS_URL", "DATABASE_URL", "COSTDNA_DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    return CliRunner(env=cli_env)


@pytest.fixture
def bundle_copy(tiny_org: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_org / "bundle", dst)
    return dst


def flat(text: str) -> str:
    return "".join(text.splitlines())


def ok(res) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output


def fails(res, *needles: str, code: int = 2) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    for n in needles:
        assert n in flat(res.output), (n, res.output)


def accounts(runner: CliRunner) -> list[dict]:
    res = runner.invoke(app, ["accounts", "list", "--json"])
    ok(res)
    return json.loads(res.stdout)


def test_accounts_add_each_kind_and_list(runner: CliRunner, bundle_copy: Path) -> None:
    assert accounts(runner) == []
    ok(runner.invoke(app, ["accounts", "add", "synth", "--synthetic", "--seed", "4", "--teams", "3",
                           "--resources-per-team", "12"]))
    res = runner.invoke(app, ["accounts", "add", "exports", "--bundle", str(bundle_copy)])
    ok(res)
    assert "exports" in res.stdout and "bundle" in res.stdout
    ok(runner.invoke(app, ["accounts", "add", "prod", "--aws", "--role-arn",
                           "arn:aws:iam::123456789012:role/costdna-read", "--regions", "eu-west-1",
                           "--regions", "us-east-1"]))
    rows = {r["name"]: r for r in accounts(runner)}
    assert set(rows) == {"synth", "exports", "prod"}
    assert rows["synth"]["kind"] == "synthetic" and rows["synth"]["status"] == "new"
    assert rows["exports"]["kind"] == "bundle" and rows["exports"]["source"] == str(bundle_copy.resolve())
    assert rows["prod"]["kind"] == "aws" and rows["prod"]["source"].endswith("role/costdna-read")
    assert rows["prod"]["regions"] == ["eu-west-1", "us-east-1"]
    ok(runner.invoke(app, ["accounts", "list"]))  # the table, too


def test_accounts_add_errors(runner: CliRunner, tmp_path: Path, bundle_copy: Path) -> None:
    missing = tmp_path / "no-such-dir"
    fails(runner.invoke(app, ["accounts", "add", "x", "--bundle", str(missing)]), str(missing), "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(runner.invoke(app, ["accounts", "add", "x", "--bundle", str(empty)]), "no export files")
    onboarding = runner.invoke(app, ["accounts", "add", "x", "--aws"])  # no role yet: how to create one
    ok(onboarding)
    assert "--role-arn" in onboarding.output and "--external-id" in onboarding.output
    fails(runner.invoke(app, ["accounts", "add", "x", "--aws", "--direct", "--role-arn", "arn:aws:iam::1:role/r"]),
          "--direct")
    fails(runner.invoke(app, ["accounts", "add", "x", "--synthetic", "--direct"]), "go with --aws")
    fails(runner.invoke(app, ["accounts", "add", "x", "--aws", "--role-arn", "not-an-arn"]), "--role-arn")
    fails(runner.invoke(app, ["accounts", "add", "x"]), "exactly one")
    fails(runner.invoke(app, ["accounts", "add", "x", "--synthetic", "--bundle", str(bundle_copy)]), "exactly one")
    assert accounts(runner) == [], "nothing was added by a failed command"
    ok(runner.invoke(app, ["accounts", "add", "dup", "--synthetic"]))
    fails(runner.invoke(app, ["accounts", "add", "dup", "--bundle", str(bundle_copy)]), "'dup' already exists")
    assert [r["kind"] for r in accounts(runner)] == ["synthetic"]
    ok(runner.invoke(app, ["accounts", "add", "mine", "--aws", "--direct", "--regions", "eu-west-1"]))
    assert [r["kind"] for r in accounts(runner)] == ["synthetic", "aws"]  # read with the caller's own credentials


def test_status_on_an_empty_database_creates_the_demo_account(runner: CliRunner) -> None:
    res = runner.invoke(app, ["status", "--json"])
    ok(res)
    report = json.loads(res.stdout)
    assert [(a["name"], a["kind"]) for a in report["accounts"]] == [("demo", "synthetic")]
    assert report["accounts"][0]["last_scan"] is None
    assert report["open_alerts"] == 0
    again = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert len(again["accounts"]) == 1, "created once"
    ok(runner.invoke(app, ["status"]))


@pytest.mark.slow
def test_scan_account_stores_and_prints_the_summary(runner: CliRunner, bundle_copy: Path, tmp_path: Path) -> None:
    ok(runner.invoke(app, ["accounts", "add", "exports", "--bundle", str(bundle_copy)]))
    csv_path = tmp_path / "predictions.csv"  # (a missing parent dir fails: see the report)
    res = runner.invoke(app, ["scan", "--account", "exports", "--json", "--out", str(csv_path)])
    ok(res)
    summary = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert summary["account"] == "exports" and isinstance(summary["scan_id"], int)
    assert summary["resources"] > 0 and summary["teams"]
    assert len(csv_path.read_text().splitlines()) == summary["resources"] + 1
    report = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    (acct,) = report["accounts"]
    assert acct["status"] == "ok"
    assert acct["last_scan"]["id"] == summary["scan_id"] and acct["last_scan"]["status"] == "succeeded"
    assert acct["last_scan"]["resources"] == summary["resources"] and acct["last_scan"]["progress"] == 100
    # the only account is the default
    res = runner.invoke(app, ["scan", "--json"])
    ok(res)
    assert json.loads(res.stdout)["scan_id"] == summary["scan_id"] + 1


def test_scan_account_errors(runner: CliRunner, bundle_copy: Path) -> None:
    ok(runner.invoke(app, ["accounts", "add", "exports", "--bundle", str(bundle_copy)]))
    res = runner.invoke(app, ["scan", "--account", "nope", "--json"])
    fails(res, "unknown account 'nope'", "exports")
    assert res.stdout == ""
    fails(runner.invoke(app, ["scan", "--account", "exports", "--enqueue"]), "REDIS_URL")
    fails(runner.invoke(app, ["scan", "--account", "exports", "--bundle", str(bundle_copy)]), "--account")
    fails(runner.invoke(app, ["worker"]), "REDIS_URL")
    fails(runner.invoke(app, ["worker", "--burst"]), "REDIS_URL")
    # a bundle deleted after it was added: the stored scan fails with the reason, exit code 2
    shutil.rmtree(bundle_copy)
    res = runner.invoke(app, ["scan", "--account", "exports", "--json"])
    fails(res, "failed", str(bundle_copy), "does not exist")
    assert res.stdout == ""
    rows = accounts(runner)
    assert rows[0]["status"] == "error" and "does not exist" in rows[0]["status_reason"]

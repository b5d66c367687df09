"""`costdna ask`: a question about a stored account, or a bundle (scanned once, then its stored scan reused).

Runs the typer app in-process (CliRunner) against SQLite in a temporary data dir, no Redis and no LLM
(offline router); the bundle is a copy of the session's tiny synthetic org, scanned with the cheap model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app, bundle_fingerprint

# Train the cheap model (conftest.fast_model): these tests are about what surrounds it.
pytestmark = pytest.mark.usefixtures("fast_model")


@pytest.fixture
def runner(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for k in ("OPENAI_API_KEY", "COSTDNA_ORG_FILE"):  # offline answers, no business hierarchy
        monkeypatch.delenv(k, raising=False)
    return CliRunner(env=cli_env)


@pytest.fixture
def shop(tiny_org: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "shop"
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
    assert res.stdout == "", "nothing on stdout when it fails"
    for n in needles:
        assert n in flat(res.output), (n, res.output)


def scans(cli_env: dict[str, str]) -> list[tuple[int, str, str]]:
    """(id, account, status) of every stored scan, read from the SQLite file itself."""
    with sqlite3.connect(Path(cli_env["COSTDNA_DATA_DIR"]) / "costdna.db") as c:
        return list(c.execute("SELECT scans.id, accounts.name, scans.status FROM scans "
                              "JOIN accounts ON accounts.id = scans.account_id ORDER BY scans.id"))


def money(v: float) -> str:
    return f"${v:,.2f}"


def test_ask_bundle_json_then_reuse_then_account(runner: CliRunner, cli_env: dict[str, str], shop: Path) -> None:
    res = runner.invoke(app, ["ask", "--bundle", str(shop), "top 3 spenders", "--json"])
    ok(res)
    a = json.loads(res.stdout)  # exactly one JSON object: progress and notes go to stderr
    assert {"answer", "tools", "citations", "figures"} <= set(a)
    assert a["ok"] is True and a["mode"] == "offline" and a["tools"] == ["top_spenders"]
    assert a["account"] == "bundle:shop"
    assert len(a["citations"]) == 3
    for c in a["citations"]:
        assert c in a["answer"], c
    assert a["figures"]
    for name, v in a["figures"].items():
        assert money(v) in a["answer"], (name, v)
    assert all(re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d\d", m) for m in re.findall(r"\$[\d,.]*\d", a["answer"]))
    first = scans(cli_env)
    assert [(acct, status) for _id, acct, status in first] == [("bundle:shop", "succeeded")]
    assert a["scan_id"] == first[0][0]

    # The same files again: the stored scan answers, nothing is rescanned.
    again = runner.invoke(app, ["ask", "--bundle", str(shop), "top 3 spenders", "--json"])
    ok(again)
    b = json.loads(again.stdout)
    assert scans(cli_env) == first
    assert b["scan_id"] == a["scan_id"]
    assert (b["answer"], b["citations"], b["figures"]) == (a["answer"], a["citations"], a["figures"])
    assert "reusing" in flat(again.stderr)

    # The stored account by name, readable output: title, text, note and sources.
    res = runner.invoke(app, ["ask", "--account", "bundle:shop", "top", "3", "spenders"])
    ok(res)
    text = flat(res.stdout)
    assert "Top spenders" in text and "sources: " + ", ".join(a["citations"]) in text
    assert "answered offline" in text
    assert scans(cli_env) == first

    # No --account, one account: that one. A write request is refused, and that is an answer (exit 0).
    res = runner.invoke(app, ["ask", "delete i-123", "--json"])
    ok(res)
    w = json.loads(res.stdout)
    assert w["ok"] is False and w["tools"] == [] and w["citations"] == [] and "read-only" in w["answer"]

    # Unknown account: one error line naming the accounts there are, exit 2.
    fails(runner.invoke(app, ["ask", "--account", "nope", "top 3 spenders", "--json"]), "nope", "bundle:shop")

    # A file changed: scanned again (the same account), and the new scan answers.
    cost = sorted((shop / "cost").rglob("*.*"))[0]
    st = cost.stat()
    os.utime(cost, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    res = runner.invoke(app, ["ask", "--bundle", str(shop), "top 3 spenders", "--json"])
    ok(res)
    after = scans(cli_env)
    assert len(after) == 2 and after[1][1:] == ("bundle:shop", "succeeded")
    assert json.loads(res.stdout)["scan_id"] == after[1][0]


def test_fingerprint_follows_the_files(shop: Path) -> None:
    fp = bundle_fingerprint(shop)
    assert fp == bundle_fingerprint(shop)
    (shop / "deploys.jsonl").write_text("")
    assert bundle_fingerprint(shop) != fp


def test_ask_broken_input(runner: CliRunner, tmp_path: Path, shop: Path) -> None:
    fails(runner.invoke(app, ["ask", "--bundle", str(tmp_path / "missing"), "top spenders"]), "does not exist")
    (tmp_path / "empty").mkdir()
    fails(runner.invoke(app, ["ask", "--bundle", str(tmp_path / "empty"), "top spenders"]), "no export files")
    fails(runner.invoke(app, ["ask", "--bundle", str(shop)]), "ask what?")
    fails(runner.invoke(app, ["ask", "--bundle", str(shop), "   "]), "ask what?")
    fails(runner.invoke(app, ["ask", "--bundle", str(shop), "--account", "x", "top spenders"]), "at most one")
    fails(runner.invoke(app, ["ask", "--now", "soon", "top spenders"]), "--now", "ISO 8601")
    fails(runner.invoke(app, ["ask", "top spenders"]), "no accounts yet")
    ok(runner.invoke(app, ["accounts", "add", "a1", "--bundle", str(shop)]))
    fails(runner.invoke(app, ["ask", "top spenders"]), "no finished scan", "costdna scan --account a1")
    ok(runner.invoke(app, ["accounts", "add", "a2", "--bundle", str(shop)]))
    fails(runner.invoke(app, ["ask", "top spenders", "--json"]), "several accounts", "--account", "a1", "a2")

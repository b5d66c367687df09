"""The CLI never shows a traceback (issue 8, point 6); the owner-key advice; the summary panel wraps.

- An exception no command handled: one `error:` line naming the command and a log file under
  ``<data dir>/logs`` that holds the traceback, exit code 2; ``--debug`` / ``COSTDNA_DEBUG`` let it
  through instead. Typer's own exits and usage errors are untouched; known errors keep their messages.
- No owner tag key: the scan lists the tag keys the bundle carries, with counts, and the exact option
  or setting (``--owner-key KEY``, ``COSTDNA_OWNER_KEY``) that makes one the owner key.
- The rich summary panel wraps long lines instead of cutting them, at 80 and at 160 columns.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot import terminal
from bot.cli import app
from engine.tagrules import OWNER_KEY_ENV, TagRules

LOG_RE = re.compile(r"details in (\S+\.log)")


@pytest.fixture
def runner(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("COSTDNA_DEBUG", raising=False)
    monkeypatch.delenv(OWNER_KEY_ENV, raising=False)
    return CliRunner(env=cli_env)


def _error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("error:")]


def _boom(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise TypeError("Expected state_dict to be dict-like, got <class 'NoneType'>.")


# -- unexpected failures ------------------------------------------------------------------------------

def test_an_unexpected_failure_is_one_line_a_log_file_and_exit_2(runner: CliRunner, cli_env: dict[str, str],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.scan

    monkeypatch.setattr(engine.scan, "scan_bundle", _boom)
    (tmp_path / "b").mkdir()
    res = runner.invoke(app, ["scan", "--bundle", str(tmp_path / "b")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)
    [line] = _error_lines(res.output)
    assert "TypeError" in line and "dict-like" in line
    assert f"costdna scan --bundle {tmp_path / 'b'}" in line  # the command (and so the bundle) concerned
    assert "--debug" in line  # what to do
    log = Path(LOG_RE.search(line).group(1))
    assert log.is_file()
    assert log.parent == Path(cli_env["COSTDNA_DATA_DIR"]) / "logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "_boom" in text
    assert f"command: costdna scan --bundle {tmp_path / 'b'}" in text


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_lets_the_traceback_through(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          how: str) -> None:
    import engine.scan

    monkeypatch.setattr(engine.scan, "scan_bundle", _boom)
    (tmp_path / "b").mkdir()
    args = ["scan", "--bundle", str(tmp_path / "b")]
    if how == "option":
        res = runner.invoke(app, ["--debug", *args])
    else:
        res = runner.invoke(app, args, env={"COSTDNA_DEBUG": "1"})
    assert isinstance(res.exception, TypeError), res.output
    assert res.exit_code == 1
    assert not _error_lines(res.output)


def test_nested_subcommands_are_covered_too(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.cli

    async def broken_db():  # type: ignore[no-untyped-def]
        raise RuntimeError("the storage layer fell over")

    monkeypatch.setattr(bot.cli, "_database", broken_db)
    res = runner.invoke(app, ["accounts", "list"])
    assert res.exit_code == 2, res.output
    [line] = _error_lines(res.output)
    assert "RuntimeError: the storage layer fell over" in line and "costdna accounts list" in line
    assert "Traceback" not in res.output


def test_a_malformed_setting_is_one_line_naming_the_variable(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["scan", "--bundle", str(tmp_path)], env={"COSTDNA_WORKERS": "many"})
    assert res.exit_code == 2, res.output
    [line] = _error_lines(res.output)
    assert "COSTDNA_WORKERS='many'" in line and "valid integer" in line
    assert "Traceback" not in res.output


def test_a_bad_tag_rules_file_is_one_line_naming_the_file(runner: CliRunner, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("keys: 3: [\n")
    (tmp_path / "b").mkdir()
    res = runner.invoke(app, ["scan", "--bundle", str(tmp_path / "b")], env={"COSTDNA_TAG_RULES": str(rules)})
    assert res.exit_code == 2, res.output
    [line] = _error_lines(res.output)
    assert str(rules) in line and "not valid YAML" in line
    assert len(res.output.strip().splitlines()) == 1


def test_known_errors_keep_their_messages(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["scan", "--bundle", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert "bundle directory not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["calibrate", "--bundle", str(tmp_path / "nope")])
    assert res.exit_code == 2, res.output
    assert str(tmp_path / "nope") in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["chat", "--script", str(tmp_path / "nope.txt")])
    assert res.exit_code == 2
    assert _error_lines(res.output) and "nope.txt" in res.output


def test_out_that_is_a_directory_fails_before_the_scan(runner: CliRunner, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.scan

    monkeypatch.setattr(engine.scan, "scan_bundle", _boom)  # never reached
    res = runner.invoke(app, ["scan", "--bundle", str(tmp_path), "--out", str(tmp_path)])
    assert res.exit_code == 2
    [line] = _error_lines(res.output)
    assert "is a directory" in line and "predictions.csv" in line


def test_usage_errors_and_help_are_typers_own(runner: CliRunner) -> None:
    res = runner.invoke(app, ["scan", "--no-such-option"])
    assert res.exit_code == 2 and "No such option" in res.output
    assert not _error_lines(res.output)
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "--debug" in res.output and "find the owner" in res.output


# -- owner tag keys (the FOCUS sample) ------------------------------------------------------------------

FOCUS_KEYS = ("business_unit", "application", "CostCenter", "org", "Project")


@pytest.fixture
def focus_bundle(shared_data: Path, tmp_path: Path) -> Path:
    src = shared_data / "cost" / "focus" / "focus_sample.csv"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    (tmp_path / "focus" / "cost").mkdir(parents=True)
    shutil.copy(src, tmp_path / "focus" / "cost" / "focus_sample.csv")
    return tmp_path / "focus"


def _owner_advice(summary: dict) -> str:
    [advice] = [m for m in summary["missing"] if m.startswith("owner tags")]
    return advice


def test_no_owner_key_lists_the_bundles_tag_keys_and_how_to_use_one(runner: CliRunner,
                                                                    focus_bundle: Path) -> None:
    res = runner.invoke(app, ["scan", "--bundle", str(focus_bundle), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["tagged_resources"] == 0
    advice = _owner_advice(s)
    for key in FOCUS_KEYS:
        m = re.search(rf"(?<!\w){re.escape(key)} \((\d+) resources?, (\d+) values?\)", advice)
        assert m and int(m.group(1)) > 0, (key, advice)
    assert "business_unit (568 resources" in advice
    assert "`costdna scan --owner-key business_unit`" in advice
    assert f"{OWNER_KEY_ENV}=business_unit" in advice


@pytest.mark.parametrize("how", ["option", "env"])
def test_the_suggested_owner_key_works(runner: CliRunner, focus_bundle: Path, how: str) -> None:
    args = ["scan", "--bundle", str(focus_bundle), "--json"]
    if how == "option":
        res = runner.invoke(app, [*args, "--owner-key", "business_unit"])
    else:
        res = runner.invoke(app, args, env={OWNER_KEY_ENV: "business_unit"})
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["tagged_resources"] == 568
    assert not any(m.startswith("owner tags") for m in s["missing"]), s["missing"]


def test_owner_keys_come_first_and_apply_to_a_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tags = {"team": "payments", "business_unit": "Search Team"}
    monkeypatch.delenv(OWNER_KEY_ENV, raising=False)
    assert TagRules.default().team_of(tags) == ("payments", "team")
    assert TagRules.default(["business_unit"]).team_of(tags) == ("search", "business_unit")
    monkeypatch.setenv(OWNER_KEY_ENV, " business_unit , CostCenter")
    assert TagRules.default().team_of(tags) == ("search", "business_unit")
    assert TagRules.default().team_of({"costcenter": "1234"}) == ("1234", "costcenter")
    rules = tmp_path / "rules.yaml"
    rules.write_text("keys: [squad]\n")
    assert TagRules.load(rules).with_owner_keys(["business_unit"]).keys == ["business_unit", "squad"]
    assert TagRules.load(rules).with_owner_keys([]) == TagRules.load(rules)


def test_tag_keys_fold_spellings_and_count_resources(focus_bundle: Path) -> None:
    from engine.bundle import load_bundle
    from engine.tagkeys import suggest_owner_key, tag_keys

    b = load_bundle(focus_bundle, workers=1)
    keys = tag_keys(b, sorted(b.resources), TagRules.default())
    by = {k.key: k for k in keys}
    assert by["business_unit"].resources == 568 and by["business_unit"].values > 1
    assert "org" in by and " org" not in by  # " org" folds into "org": counted once per resource
    assert by["org"].resources >= 35
    assert suggest_owner_key(keys).key == "business_unit"  # environment has 568 too, but is no owner


# -- the summary panel wraps --------------------------------------------------------------------------

@pytest.mark.parametrize("width", [80, 160])
def test_the_summary_panel_wraps_instead_of_cutting(runner: CliRunner, focus_bundle: Path, width: int) -> None:
    res = runner.invoke(app, ["scan", "--bundle", str(focus_bundle), "--json"])
    s = json.loads(res.stdout)
    assert s["missing"]
    buf = io.StringIO()
    # like the CLI's own stdout console: soft_wrap, so only the panel's explicit wrapping can save the text
    console = Console(file=buf, width=width, soft_wrap=True, force_terminal=False, color_system=None)
    terminal.print_summary(console, s)
    text = buf.getvalue()
    panel = text.split("╰")[0]
    assert all(len(ln) <= width for ln in panel.splitlines()), "the panel must fit the console"
    flat = " ".join(panel.replace("│", " ").split())
    for advice in s["missing"]:
        assert " ".join(advice.split()) in flat, advice
    for word in ("business_unit", "--owner-key", f"{OWNER_KEY_ENV}=business_unit", "chat."):
        assert word in flat


def test_a_chat_card_wraps_on_a_soft_wrapping_console() -> None:
    from handlers.cards import Card, Section
    from handlers.render_terminal import render

    advice = ("owner tags: no resource has an owner tag; the resources carry business_unit (568 resources) "
              "and application (568 resources); scan with costdna scan --owner-key business_unit to use one")
    buf = io.StringIO()
    render(Console(file=buf, width=60, soft_wrap=True, color_system=None), Card("scan", [Section(advice)]))
    flat = " ".join(buf.getvalue().replace("│", " ").split())
    assert advice in flat

"""The console chat (``costdna chat``): a scripted session end to end on SQLite with in-process jobs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot.chat import run_chat
from config.settings import Settings
from jobs.accounts import synthetic_dir
from jobs.tagwriter import BundleTagWriter
from jobs.worker import job_context
from storage import repo

SMALL = dict(seed=2, teams=3, resources_per_team=12, days=3, events_per_resource_day=6.0)

SCRIPT = """\
# comments and blank lines are skipped

help
status
/costdna scan
label 1
1
apply
2/1
ask top spenders
9
quit
status
"""


# Train the cheap model (conftest.fast_model): these tests are about what surrounds it.
pytestmark = pytest.mark.usefixtures("fast_model")


@pytest.mark.asyncio
async def test_scripted_session(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
                        redis_url=None, job_timeout=120, job_tries=1, workers=1, approvers="")
    ctx = await job_context(settings)
    async with ctx["db"].session() as s:
        await repo.add_account(s, "small", "synthetic", options=SMALL)
    await ctx["db"].close()

    buf = io.StringIO()
    console = Console(file=buf, width=120, color_system=None, force_terminal=False)
    session = await run_chat(settings, SCRIPT.splitlines(), console)
    out = buf.getvalue()

    assert "costdna> help" in out and "label [n]" in out
    assert "Scanning small" in out and "Scan of small finished" in out and "Untagged spend" in out
    assert "Who owns this?" in out and "labeled as" in out and "by console" in out
    assert "Tag " in out and "[1] Approve" in out and "Approved by console, writing tags" in out
    assert "Tags written in small" in out and "Roll back" in out
    assert "Top 5 resources" in out and "sources:" in out
    assert "no choice '9'" in out
    assert out.count("costdna> status") == 1, "the session ends at quit"
    assert "retrain" in out  # the label's debounced retrain is held, and said so

    db = (await job_context(settings))["db"]
    try:
        async with db.session() as s:
            acct = await repo.get_account(s, "small")
            labels = await repo.current_labels(s, acct.id)
            cs = await repo.get_change_set(s, 1)
            items = await repo.change_items(s, 1)
            audit = {a.action for a in await repo.audit_entries(s, limit=200)}
        assert len(labels) == 1 and cs.status == "applied" and cs.approver == "console"
        assert next(iter(labels)) in {i.arn for i in items}, "the person's label is proposed as a tag"
        tags = BundleTagWriter(synthetic_dir(acct, settings.data_dir) / "bundle").read()
        assert all(tags[i.arn]["team"] == i.team for i in items)
        assert {"label.add", "prompt.answered", "changeset.approved", "changeset.applied"} <= audit
    finally:
        await db.close()
    assert session.open_cards  # the applied card's Roll back button is still offered


def test_cli_chat_reads_stdin(cli_env: dict[str, str]) -> None:
    from bot.cli import app

    res = CliRunner().invoke(app, ["chat"], input="help\nbogus\nsettings\n")
    assert res.exit_code == 0, res.output
    assert "label [n]" in res.output and "I don't know bogus" in res.output and "costdna settings" in res.output
    assert "console" in res.output  # the console user is an approver


def test_cli_chat_script_missing(cli_env: dict[str, str], tmp_path: Path) -> None:
    from bot.cli import app

    res = CliRunner().invoke(app, ["chat", "--script", str(tmp_path / "nope.txt")])
    assert res.exit_code == 2 and "cannot read" in res.output

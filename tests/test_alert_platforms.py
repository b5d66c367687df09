"""With Slack and Discord both configured, each adapter delivers only its own workspaces' alerts and
digests: a Discord guild's digest never reaches Slack's Web API, a Slack workspace's does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.slack.alerts import SlackAlerts
from storage import repo
from storage.db import Database


class Recorder:
    """The Slack Web API boundary, recorded (what was posted where)."""

    token = "xoxb-test"

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    async def chat_postMessage(self, **kw: Any) -> dict[str, Any]:  # noqa: N802 - slack_sdk's name
        self.posts.append(kw)
        return {"ok": True, "channel": kw.get("channel"), "ts": f"{len(self.posts)}.0001"}

    def __getattr__(self, name: str) -> Any:
        async def call(**kw: Any) -> dict[str, Any]:
            self.posts.append({"method": name, **kw})
            return {"ok": True, "ts": "1.0", "channel": kw.get("channel", "")}
        return call


@pytest.mark.asyncio
async def test_slack_delivers_only_slack_workspaces(tmp_path: Path) -> None:
    db = await Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}").init()
    try:
        async with db.session() as s:
            slack_ws = await repo.get_or_create_workspace(s, "slack", "T1")
            guild = await repo.get_or_create_workspace(s, "discord", "G1")
            await s.commit()
            slack_id, guild_id = slack_ws.id, guild.id
        client = Recorder()
        alerts = SlackAlerts(db, client, interval_s=0)  # type: ignore[arg-type]
        data = {"day": "2026-11-30", "yesterday_usd": 12.5}
        await alerts("digest.ready", workspace_id=guild_id, account_id=None, channel="C-GUILD", data=data)
        assert client.posts == []  # the guild's digest is Discord's to post
        await alerts("digest.ready", workspace_id=slack_id, account_id=None, channel="C-SLACK", data=data)
        assert [p.get("channel") for p in client.posts if p.get("channel")][:1] == ["C-SLACK"]
    finally:
        await db.close()

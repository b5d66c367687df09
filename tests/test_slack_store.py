"""Slack OAuth mode: the installation store and OAuth state store over our database (SQLite), and the
whole install flow (GET /slack/install -> Slack -> GET /slack/oauth_redirect) against the stand-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import select, text

from bot.slack.installation_store import DbInstallationStore, DbOAuthStateStore, token_for_workspace
from config.settings import Settings, get_settings
from storage import crypto
from storage.db import Database
from storage.models import Installation as InstallationRow
from storage.models import Workspace
from tests.slack_standin import BOT_USER_ID, TEAM_ID, SlackClient, SlackStandIn, serve

TOKEN = "xoxb-1234-5678-very-secret-bot-token"
SECRET = "oauth-signing-secret"


@pytest.fixture
def secret_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """storage.crypto takes its key from the environment's settings: a fresh one per test."""
    monkeypatch.setenv("COSTDNA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COSTDNA_SECRET_KEY", "test-secret-key")
    get_settings.cache_clear()
    crypto.fernet.cache_clear()
    yield
    get_settings.cache_clear()
    crypto.fernet.cache_clear()


@pytest_asyncio.fixture
async def db(sqlite_url: str, secret_key: None) -> Any:
    database = await Database(sqlite_url).init()
    yield database
    await database.close()


def _installation(token: str = TOKEN, user: str = "W111") -> Installation:
    return Installation(app_id="A111", enterprise_id=None, team_id=TEAM_ID, team_name="Test Team", bot_token=token,
                        bot_id="B111", bot_user_id=BOT_USER_ID, bot_scopes=["commands", "chat:write"], user_id=user,
                        user_token="xoxp-user-token-not-kept", user_scopes=["search:read"],
                        is_enterprise_install=False, token_type="bot")


@pytest.mark.asyncio
async def test_installation_round_trips_with_the_token_encrypted_at_rest(db):
    store = DbInstallationStore(db)
    await store.async_save(_installation())

    bot = await store.async_find_bot(enterprise_id=None, team_id=TEAM_ID)
    assert bot is not None
    assert (bot.bot_token, bot.bot_id, bot.bot_user_id, bot.app_id, bot.team_id, bot.team_name) == (
        TOKEN, "B111", BOT_USER_ID, "A111", TEAM_ID, "Test Team")
    assert bot.bot_scopes == ["commands", "chat:write"]
    inst = await store.async_find_installation(enterprise_id=None, team_id=TEAM_ID)
    assert inst is not None and inst.bot_token == TOKEN and inst.user_id == "W111"
    assert inst.user_token is None  # user tokens are not kept
    assert await store.async_find_bot(enterprise_id=None, team_id="T_OTHER") is None

    # at rest: neither the raw column nor any other column holds the token (or the user token)
    async with db.session() as s:
        raw = (await s.execute(text("SELECT * FROM installations"))).all()
        ws = (await s.scalars(select(Workspace))).one()
    assert len(raw) == 1
    dump = repr(raw).encode()
    assert TOKEN.encode() not in dump and b"xoxp-" not in dump
    row = dict(raw[0]._mapping)
    assert TOKEN.encode() not in bytes(row["token_encrypted"])
    assert crypto.decrypt(row["token_encrypted"]) == TOKEN
    assert (ws.platform, ws.external_id, ws.name) == ("slack", TEAM_ID, "Test Team")
    assert ws.settings["approvers"] == ["W111"]  # the installer is the first approver
    assert await token_for_workspace(db, TEAM_ID) == TOKEN


@pytest.mark.asyncio
async def test_reinstall_replaces_and_uninstall_revokes(db):
    store = DbInstallationStore(db)
    await store.async_save(_installation())
    await store.async_save(_installation(token="xoxb-second-token", user="W222"))
    bot = await store.async_find_bot(enterprise_id=None, team_id=TEAM_ID)
    assert bot is not None and bot.bot_token == "xoxb-second-token"
    async with db.session() as s:
        rows = (await s.scalars(select(InstallationRow).order_by(InstallationRow.id))).all()
        ws = (await s.scalars(select(Workspace))).one()
    assert len(rows) == 2 and rows[0].revoked_at is not None and rows[1].revoked_at is None
    assert ws.settings["approvers"] == ["W111"]  # a re-install does not change the approvers
    await store.async_delete_all(enterprise_id=None, team_id=TEAM_ID)
    assert await store.async_find_bot(enterprise_id=None, team_id=TEAM_ID) is None
    assert await store.async_find_installation(enterprise_id=None, team_id=TEAM_ID) is None


@pytest.mark.asyncio
async def test_a_changed_key_means_no_token_rather_than_an_error(db, monkeypatch):
    store = DbInstallationStore(db)
    await store.async_save(_installation())
    monkeypatch.setenv("COSTDNA_SECRET_KEY", "another-key")
    get_settings.cache_clear()
    crypto.fernet.cache_clear()
    assert await store.async_find_bot(enterprise_id=None, team_id=TEAM_ID) is None


@pytest.mark.asyncio
async def test_oauth_state_is_consumed_once(db):
    states = DbOAuthStateStore(db)
    state = await states.async_issue()
    assert await states.async_consume(state) is True
    assert await states.async_consume(state) is False
    assert await states.async_consume("forged") is False


@pytest_asyncio.fixture
async def oauth_app(tmp_path: Path, sqlite_url: str, secret_key: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    from bot.web import DB_KEY, make_app

    for var in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    standin = await SlackStandIn().start()
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, redis_url=None, workers=1,
                        slack_bot_token=None, slack_signing_secret=SECRET, slack_client_id="111.222",
                        slack_client_secret="client-secret", slack_api_url=standin.api_url)
    app = make_app(settings)
    runner, base = await serve(app)
    try:
        yield base, standin, app[DB_KEY]
    finally:
        await runner.cleanup()
        await standin.stop()


@pytest.mark.asyncio
async def test_oauth_install_flow_stores_the_installation_and_authorizes_requests(oauth_app, shared_data):
    import aiohttp

    base, standin, db = oauth_app
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/slack/install", allow_redirects=False) as r:
            assert r.status == 200
            page = await r.text()
            cookie = r.headers.get("Set-Cookie", "")
        state = re.search(r"state=([A-Za-z0-9_-]+)", page).group(1)
        assert "client_id=111.222" in page and "commands" in page
        # the state cookie is secure-only: over plain http, forward it by hand (NOTES)
        name_value = cookie.split(";", 1)[0]
        async with http.get(f"{base}/slack/oauth_redirect?code=abc&state={state}", allow_redirects=False,
                            headers={"Cookie": name_value}) as r:
            assert r.status in (200, 302), await r.text()
        # replaying the callback with the same state fails
        async with http.get(f"{base}/slack/oauth_redirect?code=abc&state={state}", allow_redirects=False,
                            headers={"Cookie": name_value}) as r:
            assert r.status >= 400
    assert [c.body.get("code") for c in standin.of("oauth.v2.access")] == ["abc"]
    async with db.session() as s:
        row = (await s.scalars(select(InstallationRow))).one()
    assert row.bot_user_id == BOT_USER_ID and row.app_id == "A111" and row.installer_user_id == "W111"
    assert b"xoxb-installed-secret-token" not in bytes(row.token_encrypted)

    # a signed command from that workspace is authorized with the stored token
    from tests.slack_standin import Payloads

    client = SlackClient(f"{base}/slack/events", SECRET)
    try:
        status, _, _ = await client.post(Payloads(shared_data, standin).command("help"))
        assert status == 200
        await standin.wait_for(lambda: standin.of("response_url"), what="the help card")
        n = len(standin.calls)
        status, _, _ = await client.post(Payloads(shared_data, standin).command("help", team_id="T_UNKNOWN"))
        assert status == 200
        # nothing ran for a workspace that never installed the app; Bolt tells the person to install it
        new = await standin.wait_for(lambda: standin.calls[n:], what="Bolt's authorize error")
        assert [c.method for c in new] == ["response_url"] and "install" in new[0].body["text"]
    finally:
        await client.close()
    assert all(c.token == "xoxb-installed-secret-token" for c in standin.calls if c.method.startswith("chat."))

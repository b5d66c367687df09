"""The web process over real HTTP: health and the token-guarded status endpoint."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web import make_app
from config.settings import Settings


async def _client(settings: Settings) -> TestClient:
    client = TestClient(TestServer(make_app(settings)))
    await client.start_server()
    return client


@pytest.mark.asyncio
async def test_healthz_reports_database(db_url, tmp_path):
    client = await _client(Settings(data_dir=tmp_path, database_url=db_url))
    try:
        r = await client.get("/healthz")
        assert r.status == 200
        assert await r.json() == {"ok": True, "database": "ok"}
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_healthz_is_503_when_redis_is_down(sqlite_url, tmp_path):
    client = await _client(Settings(data_dir=tmp_path, database_url=sqlite_url, redis_url="redis://127.0.0.1:1/0"))
    try:
        r = await client.get("/healthz")
        body = await r.json()
        assert r.status == 503
        assert body["ok"] is False and body["database"] == "ok" and body["redis"] != "ok"
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_status_needs_the_bearer_token(sqlite_url, tmp_path):
    off = await _client(Settings(data_dir=tmp_path, database_url=sqlite_url))
    try:
        r = await off.get("/status")
        assert r.status == 403 and "COSTDNA_API_TOKEN" in (await r.json())["error"]
    finally:
        await off.close()
    client = await _client(Settings(data_dir=tmp_path, database_url=sqlite_url, api_token="s3cret"))
    try:
        assert (await client.get("/status")).status == 401
        assert (await client.get("/status", headers={"Authorization": "Bearer wrong"})).status == 401
        r = await client.get("/status", headers={"Authorization": "Bearer s3cret"})
        assert r.status == 200
        body = await r.json()
        assert body["accounts"] == [] and body["open_alerts"] == 0
    finally:
        await client.close()

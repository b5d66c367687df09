"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real third-party samples in ``../shared/data`` (see its README.md); skip when absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared test data not found at {path} (it lives beside the repository checkout)")
    return path


# ------------------------------------------------------------------------------------------------
# Tiny synthetic organisations, generated once per session (bundle/ + truth.csv). Small enough that
# a scan with ``fast_model_config`` takes a second or two.

TINY_ORG = dict(seed=1, teams=4, resources_per_team=20, days=4, events_per_resource_day=8.0)


@pytest.fixture(scope="session")
def tiny_org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic org (4 teams x 20 resources, 4 days): ``tiny_org / "bundle"`` and ``tiny_org / "truth.csv"``."""
    from engine.synth import generate

    out = tmp_path_factory.mktemp("tiny_org")
    generate(out, workers=1, **TINY_ORG)
    return out


@pytest.fixture(scope="session")
def fast_model_config():
    """A cheap model: 3 folds, at most 60 epochs."""
    from engine.model import ModelConfig

    return ModelConfig(folds=3, max_epochs=60)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_org: Path):
    """``tiny_org``'s bundle, loaded once (treat as read-only)."""
    from engine.bundle import load_bundle

    return load_bundle(tiny_org / "bundle", workers=1)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Train on one thread: on tiny graphs, and on a busy machine, more threads only wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_scan(tiny_bundle, fast_model_config):
    """``tiny_org`` scanned once with the fast model (treat as read-only)."""
    from engine.scan import scan_bundle

    with one_torch_thread():
        return scan_bundle(tiny_bundle, config=fast_model_config, workers=1)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point the CLI's settings at a fresh data dir (synthetic caches land there) and one parser process."""
    from config.settings import get_settings

    env = {"COSTDNA_DATA_DIR": str(tmp_path / "data"), "COSTDNA_WORKERS": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for var in ("COSTDNA_TAG_RULES", "DATABASE_URL", "REDIS_URL", "COSTDNA_DATABASE_URL", "COSTDNA_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)  # the default: SQLite in the data dir, in-process jobs
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


# ------------------------------------------------------------------------------------------------
# Real PostgreSQL and Redis on this machine. Unreachable: skip with the reason, except under CI=true,
# where CI runs beside them and an unreachable one is a failure.

PG_ADMIN_URL = os.environ.get("COSTDNA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("COSTDNA_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _unavailable(what: str, err: BaseException) -> None:
    msg = f"{what} is not reachable ({type(err).__name__}: {err})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{msg}; under CI=true integration tests need it", pytrace=False)
    pytest.skip(msg)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (asyncpg URL), dropped afterwards."""
    import asyncio
    import uuid

    try:
        import asyncpg
    except ImportError as e:  # pragma: no cover
        _unavailable("asyncpg", e)
    name = f"costdna_t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        _unavailable(f"PostgreSQL at {PG_ADMIN_URL}", e)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'costdna.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on both back ends."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Redis database 15, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as e:
        _unavailable(f"Redis at {REDIS_TEST_URL}", e)
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


@pytest.fixture
def fast_model(monkeypatch: pytest.MonkeyPatch, fast_model_config, torch_one_thread) -> None:
    """Every scan in the test trains the cheap model: for tests about what surrounds the engine (CLI,
    jobs, handlers, Slack), where the default model's quality is measured elsewhere."""
    import engine.scan

    real = engine.scan.fit_predict

    def fit(graph, y, classes, cfg=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real(graph, y, classes, cfg or fast_model_config, *args, **kwargs)

    monkeypatch.setattr(engine.scan, "fit_predict", fit)

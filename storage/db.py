"""Engines, sessions and migrations for SQLite (default) and PostgreSQL.

``Database(url)`` is what every process holds: ``await db.init()`` migrates to head (Alembic), and
``async with db.session() as s:`` gives a session whose transaction commits on leaving the block
and rolls back on an exception, so a failed step never leaves half its rows behind.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from storage.models import AuditEntry

MIGRATIONS = Path(__file__).parent / "migrations"


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _audit_is_append_only(session: Session, _ctx, _instances) -> None:  # type: ignore[no-untyped-def]
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry):
            raise AppendOnlyError("the audit log is append-only: entries cannot be changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _audit_no_bulk_changes(state) -> None:  # type: ignore[no-untyped-def]
    """``session.execute(update(AuditEntry))`` / ``delete(AuditEntry)`` bypass the flush: refuse them too."""
    if (state.is_update or state.is_delete) and any(m.class_ is AuditEntry for m in state.all_mappers):
        raise AppendOnlyError("the audit log is append-only: entries cannot be changed or deleted")


# Seconds a SQLite connection waits for another's lock (sqlite3's ``timeout``: its busy handler).
_SQLITE_TIMEOUT = 30.0


def _set_wal(dbapi_conn, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """``PRAGMA journal_mode=WAL``, waiting out other connections switching the same fresh file.

    The switch needs an exclusive lock, and SQLite does not call the busy handler for it: when the
    bot and workers open a new database together, all but one get "database is locked" at once,
    however long ``timeout`` is. So retry here, until ``timeout``. Once the file is in WAL mode (it
    stays so) the pragma is a no-op that takes no lock, so this only ever waits on a fresh file.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                raise
        finally:
            cur.close()
        # The connect event runs inside the async engine's greenlet: sleep without blocking the loop.
        await_only(asyncio.sleep(delay))
        delay = min(delay * 2, 0.05)


def make_engine(url: str) -> AsyncEngine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": _SQLITE_TIMEOUT})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            _set_wal(dbapi_conn, _SQLITE_TIMEOUT)  # readers (the bot) never wait for a writing worker

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# Any constant: the PostgreSQL advisory lock that serializes migrations between processes.
_MIGRATION_LOCK = 0x636F7374646E61  # "costdna"


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (Alembic, on this engine's connection).

    All of it in one transaction that first takes a database-wide lock, so processes starting
    together (the bot and a worker on a fresh database) migrate one after the other, the later ones
    finding the work done, and a migration that fails half-way leaves nothing of itself behind.
    SQLite needs ``BEGIN IMMEDIATE`` for both: its driver would otherwise run the DDL outside any
    transaction, committing each CREATE on its own.
    """
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def run(conn) -> None:  # type: ignore[no-untyped-def]
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


class Database:
    def __init__(self, url: str | None = None):
        if url is None:
            from config.settings import get_settings

            url = get_settings().db_url()
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def init(self) -> Database:
        await migrate(self.engine)
        return self

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s, s.begin():
            yield s

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return await self.init()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Database({redact(self.url)})"

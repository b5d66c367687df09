"""Alembic migrations: empty -> head on SQLite and PostgreSQL (``db_url``), the migrated schema is
exactly the models', migrating again is a no-op, and every migration script is additive."""

from __future__ import annotations

import ast
import asyncio
import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Text, inspect, text

from storage.db import MIGRATIONS, Database, alembic_config, current_revision
from storage.models import Base

VERSIONS = MIGRATIONS / "versions"
DESTRUCTIVE = ("drop_table", "drop_column", "alter_column", "drop_constraint", "drop_index")


def _head(url: str) -> str:
    heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads {heads}: merge them"
    return heads[0]


def _schema_diff(conn, metadata: MetaData = Base.metadata) -> list:  # type: ignore[no-untyped-def]
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
    return compare_metadata(ctx, metadata)


@pytest.mark.asyncio
async def test_upgrade_empty_to_head_matches_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert await current_revision(db.engine) is None  # empty
        await db.init()
        head = _head(db_url)
        assert await current_revision(db.engine) == head
        async with db.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            assert versions == [head]
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert tables == set(Base.metadata.tables) | {"alembic_version"}
            # No differences at all (types included); SQLite has reported none so far either, so any
            # difference here is a model change without its migration.
            diff = await conn.run_sync(_schema_diff)
            # ...and the comparison does look at the database: a model with one more column differs.
            more = MetaData(naming_convention=Base.metadata.naming_convention)
            for t in Base.metadata.sorted_tables:
                t.to_metadata(more)
            more.tables["accounts"].append_column(Column("notes", Text, nullable=True))
            extra = await conn.run_sync(lambda c: _schema_diff(c, more))
        assert diff == [], f"models and migrations differ (add a migration): {diff}"
        assert [d[0] for d in extra] == ["add_column"] and extra[0][3].name == "notes"
    finally:
        await db.close()


@pytest.mark.asyncio
async def test_init_twice_is_a_no_op(db_url: str) -> None:
    async with Database(db_url) as db:  # __aenter__ runs init()
        async with db.session() as s:
            await s.execute(text("INSERT INTO workspaces (platform, external_id, name, settings, created_at) "
                                 "VALUES ('console', 'local', 'kept', '{}', CURRENT_TIMESTAMP)"))
        async with db.engine.connect() as conn:
            before = await conn.run_sync(lambda c: {t: inspect(c).get_columns(t) for t in inspect(c).get_table_names()})
        await db.init()
        await db.init()
        assert await current_revision(db.engine) == _head(db_url)
        async with db.engine.connect() as conn:
            after = await conn.run_sync(lambda c: {t: inspect(c).get_columns(t) for t in inspect(c).get_table_names()})
            assert repr(after) == repr(before)
            assert (await conn.execute(text("SELECT name FROM workspaces"))).scalars().all() == ["kept"]
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar() == 1
    async with Database(db_url) as again:  # a new process on the migrated database
        assert await current_revision(again.engine) == _head(db_url)


def _scripts() -> list[Path]:
    return sorted(p for p in VERSIONS.glob("*.py") if not p.name.startswith("_"))


def _upgrade_calls(path: Path) -> list[str]:
    """Names of everything called inside ``upgrade()`` (``op.drop_table`` -> "drop_table")."""
    tree = ast.parse(path.read_text(), filename=str(path))
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"]
    names = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            names.append(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # op.execute("DROP ...")
            names.extend(w for w in ("DROP", "ALTER") if w in node.value.upper().split())
    return names


def test_scripts_exist_and_form_one_chain() -> None:
    scripts = _scripts()
    assert scripts, f"no migration scripts in {VERSIONS}"
    directory = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(directory.walk_revisions())
    assert len(revisions) == len(scripts)
    assert [r.revision for r in revisions if r.down_revision is None] == ["0001"]


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: p.stem)
def test_migrations_are_additive(script: Path) -> None:
    calls = _upgrade_calls(script)
    assert calls, f"{script.name}: upgrade() does nothing"
    bad = sorted({c for c in calls if c in DESTRUCTIVE or c in ("DROP", "ALTER")})
    assert not bad, f"{script.name}: upgrade() must be additive, found {', '.join(bad)}"


def test_additivity_check_catches_destructive_upgrades(tmp_path: Path) -> None:
    """The check above would notice: a script whose upgrade drops or alters something is flagged,
    while the same calls in downgrade() are not."""
    ok = tmp_path / "ok.py"
    ok.write_text("def upgrade():\n    op.add_column('t', sa.Column('c', sa.Text(), nullable=True))\n"
                  "def downgrade():\n    op.drop_column('t', 'c')\n")
    assert not set(_upgrade_calls(ok)) & set(DESTRUCTIVE)
    for call in ("op.drop_table('t')", "op.drop_column('t', 'c')", "op.alter_column('t', 'c', nullable=False)",
                 "op.drop_constraint('uq', 't')", "op.drop_index('ix')",
                 "with op.batch_alter_table('t') as b:\n        b.drop_column('c')"):
        bad = tmp_path / "bad.py"
        bad.write_text(f"def upgrade():\n    {call}\n")
        assert set(_upgrade_calls(bad)) & set(DESTRUCTIVE), call
    raw = tmp_path / "raw.py"
    raw.write_text("def upgrade():\n    op.execute('DROP TABLE t')\n")
    assert "DROP" in _upgrade_calls(raw)


@pytest.mark.asyncio
async def test_processes_starting_together_migrate_once(db_url: str) -> None:
    """The bot and workers starting at once on a fresh database: one migrates, the others wait for
    it and find the work done (before the migration lock, all but one failed on 'already exists')."""
    dbs = [Database(db_url) for _ in range(3)]
    try:
        # a bound, so that a regression fails instead of hanging (each waits out the one migrating)
        results = await asyncio.wait_for(asyncio.gather(*(d.init() for d in dbs), return_exceptions=True), 60)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert await current_revision(dbs[0].engine) == _head(db_url)
        async with dbs[1].engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar() == 1
    finally:
        for d in dbs:
            await d.close()


FAILING_MIGRATION = '''
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.add_column("accounts", sa.Column("half_done", sa.Text(), nullable=True))
    raise RuntimeError("migration failed half-way")
'''


@pytest.mark.asyncio
async def test_failed_migration_leaves_nothing(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.db

    db = await Database(db_url).init()
    try:
        head = _head(db_url)
        scripts = tmp_path / "migrations"
        shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
        (scripts / "versions" / "9999_fails.py").write_text(FAILING_MIGRATION.format(head=head))
        monkeypatch.setattr(storage.db, "MIGRATIONS", scripts)
        with pytest.raises(RuntimeError, match="half-way"):
            await db.init()
        assert await current_revision(db.engine) == head
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            columns = await conn.run_sync(lambda c: {x["name"] for x in inspect(c).get_columns("accounts")})
        assert "half_done" not in tables and "half_done" not in columns
    finally:
        await db.close()



@pytest.mark.asyncio
async def test_sqlite_connect_waits_for_the_switch_to_wal(tmp_path: Path) -> None:
    """Connecting switches the file to WAL, which needs an exclusive lock that SQLite does not wait
    for (no busy handler, whatever the timeout): processes opening a fresh file together, each
    switching it, got "database is locked" at once. Here another connection holds a write lock on a
    file not yet in WAL mode: connecting waits until it is let go, instead of failing."""
    import sqlite3

    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:

        async def mode() -> str:
            async with db.engine.connect() as conn:
                return (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()

        waiting = asyncio.create_task(mode())
        await asyncio.sleep(0.5)
        assert not waiting.done(), waiting.exception()  # still waiting: it did not give up at once
        other.execute("COMMIT")
        assert await asyncio.wait_for(waiting, 30) == "wal"
    finally:
        other.close()
        await db.close()

"""Bulk writes at driver speed, inside the session's transaction.

A 20,000-resource scan writes hundreds of thousands of cost and event rows; going through ORM
statements would take longer than the scan. PostgreSQL gets ``COPY`` into a temporary table and one
``INSERT ... SELECT ... ON CONFLICT``; SQLite gets the driver's ``executemany`` of
``INSERT ... ON CONFLICT``. Both run on the session's own connection, so they commit or roll back with
everything else the session did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Date, DateTime, Table, TypeDecorator, text
from sqlalchemy.ext.asyncio import AsyncSession

CHUNK = 50_000


def _dt_text(v: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DATETIME stores it (UTC, no offset)."""
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v.isoformat(sep=" ", timespec="microseconds")


def _json_text(v: Any) -> str:
    return orjson.dumps(v).decode()


def _converter(table: Table, columns: Sequence[str], pg: bool) -> Callable[[Sequence[Any]], tuple]:
    """Row -> driver values, converting only the columns whose type needs it (JSON always; dates and
    datetimes on SQLite, which stores them as text): a million rows pay for two conversions, not nine."""
    todo = []
    for i, c in enumerate(columns):
        t = table.c[c].type
        t = t.impl if isinstance(t, TypeDecorator) else t
        if isinstance(t, JSON):
            todo.append((i, _json_text))
        elif not pg and isinstance(t, DateTime):
            todo.append((i, _dt_text))
        elif not pg and isinstance(t, Date):
            todo.append((i, date.isoformat))
    if not todo:
        return tuple

    def convert(row: Sequence[Any]) -> tuple:
        r = list(row)
        for i, f in todo:
            v = r[i]
            if v is not None:
                r[i] = f(v)
        return tuple(r)

    return convert


def _pg_type(col: Any) -> str:
    return col.type.compile(dialect=_pg_dialect())


_PG = None


def _pg_dialect():  # type: ignore[no-untyped-def]
    global _PG
    if _PG is None:
        from sqlalchemy.dialects import postgresql

        _PG = postgresql.dialect()
    return _PG


async def _driver_connection(s: AsyncSession) -> Any:
    """The DB-API driver's connection under the session, with the session's transaction begun (the
    asyncpg adapter begins it lazily, at the first statement SQLAlchemy itself runs)."""
    conn = await s.connection()
    await conn.execute(text("SELECT 1"))
    return (await conn.get_raw_connection()).driver_connection


def _batches(rows: Iterable[Sequence[Any]], conv: Callable[[Sequence[Any]], tuple]) -> Iterable[list[tuple]]:
    batch: list[tuple] = []
    for r in rows:
        batch.append(conv(r))
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


async def upsert_rows(s: AsyncSession, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                      conflict: Sequence[str], update: Sequence[str] = ()) -> int:
    """Insert ``rows`` (tuples in ``columns`` order); on a ``conflict`` key either update the
    ``update`` columns from the new row or, with none, keep the old row. Returns rows offered."""
    raw = await _driver_connection(s)
    cols = ", ".join(columns)
    action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)) if update else "DO NOTHING"
    on_conflict = f"ON CONFLICT ({', '.join(conflict)}) {action}"
    pg = s.bind.dialect.name == "postgresql"
    n = 0
    if pg:
        tmp = f"_bulk_{table.name}"
        defs = ", ".join(f"{c} {_pg_type(table.c[c])}" for c in columns)
        await raw.execute(f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ({defs}) ON COMMIT DROP")
    sql = f"INSERT INTO {table.name} ({cols}) VALUES ({', '.join('?' * len(columns))}) {on_conflict}"
    for batch in _batches(rows, _converter(table, columns, pg)):
        if pg:
            await raw.copy_records_to_table(tmp, records=batch, columns=list(columns))
            await raw.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {tmp} {on_conflict}")
            await raw.execute(f"TRUNCATE {tmp}")
        else:
            await raw.executemany(sql, batch)
        n += len(batch)
    return n


async def insert_rows(s: AsyncSession, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Plain inserts (no conflict possible), at the same speed."""
    raw = await _driver_connection(s)
    pg = s.bind.dialect.name == "postgresql"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    n = 0
    for batch in _batches(rows, _converter(table, columns, pg)):
        if pg:
            await raw.copy_records_to_table(table.name, records=batch, columns=list(columns))
        else:
            await raw.executemany(sql, batch)
        n += len(batch)
    return n

"""Repository functions of the ask agent's threads: the context a follow-up in the same chat thread
starts from ("and last month?" after "top spenders").

One row per thread, keyed by (platform, channel, thread root ts). ``context`` is the previous answer's
``Answer.context``, stored as it is (nothing here reads it). A thread expires ``ttl`` after its last
answer: an expired row is never loaded again, and ``purge_expired`` deletes it.

A slash command's answer has no thread yet: it becomes the root of one once posted. ``start_thread``
stores the context under a provisional key and returns the row id, which the handler hands to the
adapter as ``Post.tracks = ("ask", id)``; after posting, the adapter calls ``attach_thread`` with the
message's ts. A provisional row that is never attached (an answer posted where it cannot be threaded)
simply expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AskThread, utcnow
from storage.repo import _dialect_insert, new_nonce

PENDING = "pending:"  # prefix of a provisional thread_ts (a slash command answer not yet posted)


async def load_thread(s: AsyncSession, platform: str, channel: str, thread_ts: str,
                      now: datetime | None = None) -> dict[str, Any] | None:
    """The stored context of a thread; None when there is none or it has expired."""
    if not channel or not thread_ts:
        return None
    now = now or utcnow()
    row = await s.scalar(select(AskThread).where(AskThread.platform == platform, AskThread.channel == channel,
                                                 AskThread.thread_ts == thread_ts, AskThread.expires_at > now)
                         .execution_options(populate_existing=True))
    return None if row is None else dict(row.context or {})


async def save_thread(s: AsyncSession, platform: str, workspace: str, channel: str, thread_ts: str,
                      context: dict[str, Any], ttl: timedelta, account: str | None = None, *,
                      now: datetime | None = None) -> None:
    """Store (insert or replace) a thread's context; it expires ``ttl`` from now."""
    if not channel or not thread_ts:
        raise ValueError("a thread needs a channel and a thread ts")
    now = now or utcnow()
    values = dict(workspace=workspace or "", account=account, context=dict(context or {}), updated_at=now,
                  expires_at=now + ttl)
    stmt = _dialect_insert(s, AskThread).values(platform=platform, channel=channel, thread_ts=thread_ts,
                                                created_at=now, **values)
    await s.execute(stmt.on_conflict_do_update(index_elements=["platform", "channel", "thread_ts"], set_=values))


async def start_thread(s: AsyncSession, platform: str, workspace: str, channel: str, context: dict[str, Any],
                       ttl: timedelta, account: str | None = None, *, now: datetime | None = None) -> int:
    """Store the context of an answer that is not posted yet (a slash command's); the row id to attach
    the posted message to with :func:`attach_thread`."""
    now = now or utcnow()
    row = AskThread(platform=platform, workspace=workspace or "", channel=channel or "",
                    thread_ts=PENDING + new_nonce(), account=account, context=dict(context or {}),
                    created_at=now, updated_at=now, expires_at=now + ttl)
    s.add(row)
    await s.flush()
    return row.id


async def attach_thread(s: AsyncSession, row_id: int, channel: str, ts: str) -> bool:
    """The answer of row ``row_id`` was posted as message ``ts`` in ``channel``: that message is now the
    thread's root. False when the row is gone (purged, or already attached)."""
    row = await s.get(AskThread, row_id, populate_existing=True)
    if row is None or not row.thread_ts.startswith(PENDING) or not ts:
        return False
    channel = channel or row.channel
    # a stale row under the same key (impossible for a fresh ts, but never fail on it)
    await s.execute(delete(AskThread).where(AskThread.platform == row.platform, AskThread.channel == channel,
                                            AskThread.thread_ts == ts, AskThread.id != row_id))
    res = await s.execute(update(AskThread).where(AskThread.id == row_id, AskThread.thread_ts == row.thread_ts)
                          .values(channel=channel, thread_ts=ts, updated_at=utcnow()))
    return res.rowcount == 1


async def purge_expired(s: AsyncSession, now: datetime | None = None) -> int:
    """Delete expired threads; how many."""
    res = await s.execute(delete(AskThread).where(AskThread.expires_at <= (now or utcnow())))
    return int(res.rowcount or 0)

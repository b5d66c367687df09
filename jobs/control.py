"""Asking for work: the checks and rows that come before a job is enqueued.

The CLI and the chat handlers call these rather than enqueueing directly, so "one scan per account at
a time", the default account and stale-scan recovery behave the same everywhere.
"""

from __future__ import annotations

from datetime import timedelta

from jobs.queue import JobQueue, retrain_job_id, scan_job_id, tags_job_id
from jobs.tasks import RETRAIN_DEBOUNCE_S
from storage import repo
from storage.db import Database
from storage.models import Account, Scan, utcnow


class ScanBusy(repo.Conflict):
    """A scan of this account is already queued or running."""

    def __init__(self, msg: str, scan: Scan | None = None):
        super().__init__(msg)
        self.scan = scan


async def resolve_account(s, ref: str | None) -> Account:  # type: ignore[no-untyped-def]
    """The named account; with no name, the only one (a synthetic demo account on first use)."""
    if ref == repo.DEMO_ACCOUNT:
        return await repo.ensure_demo_account(s)
    if ref:
        return await repo.get_account(s, ref)
    accounts = await repo.list_accounts(s)
    if not accounts:
        return await repo.ensure_demo_account(s)
    if len(accounts) == 1:
        return accounts[0]
    raise repo.NotFound(f"several accounts: name one of {', '.join(a.name for a in accounts)}")


async def request_scan(db: Database, queue: JobQueue, account_ref: str | None, *, requested_by: str = "",
                       in_process: bool = False, stale_after_s: float = 3600) -> Scan:
    """Create a scan row and enqueue its job; ``ScanBusy`` when one is already on its way.

    A scan whose worker died is normally taken by another worker within ``job_lease_s`` (jobs.lease)
    and stays busy meanwhile ("worker lost, retrying"). One left "running" longer than
    ``stale_after_s`` with no live heartbeat (no worker took it back), or left "queued" or with a lapsed
    lease by an in-process run that ended (nothing retries those), is marked failed so the account is
    not stuck. A running scan whose worker still renews its lease is never stale, however long it runs.
    """
    async with db.session() as s:
        account = await resolve_account(s, account_ref)
        active = await repo.active_scan(s, account.id)
        if active is not None:
            started = active.heartbeat_at or active.started_at or active.created_at
            alive = active.lease_expires_at is not None and not active.worker_lost
            stale = (in_process and (active.status == "queued" or active.worker_lost)) or (
                active.status == "running" and not alive and utcnow() - started > timedelta(seconds=stale_after_s))
            if not stale:
                s.expunge(active)  # detached as loaded: the rollback on raising would expire it
                state = repo.scan_state(active)
                raise ScanBusy(f"scan #{active.id} of {account.name} is already {active.status}"
                               f"{f' ({state}, {active.progress:.0f}%)' if state else ''}", active)
            await repo.fail_scan(s, active.id, "interrupted: its worker stopped before it finished")
        scan = await repo.create_scan(s, account, requested_by=requested_by)
    if not await queue.enqueue("scan_account", scan.id, job_id=scan_job_id(account.id)):
        async with db.session() as s:
            await repo.fail_scan(s, scan.id, "not started: another scan of this account is already queued")
        raise ScanBusy(f"a scan of {account.name} is already queued or running")
    return scan


async def request_retrain(queue: JobQueue, account_id: int, delay_s: float = RETRAIN_DEBOUNCE_S) -> bool:
    """Debounced: labels given within ``delay_s`` of each other lead to one retrain."""
    return await queue.enqueue("retrain", account_id, job_id=retrain_job_id(account_id), defer_by=delay_s)


async def request_tag_write(queue: JobQueue, change_set_id: int, rollback: bool = False) -> bool:
    return await queue.enqueue("apply_tag_changes", change_set_id, rollback, job_id=tags_job_id(change_set_id, rollback))

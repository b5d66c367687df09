"""Small repository functions over the models: the only way the rest of costdna reads and writes.

Each takes an ``AsyncSession`` inside a transaction (``Database.session()``) and does one thing.
State changes that a double click or a re-delivered job could race on (scan claims, change-set
decisions) are single conditional UPDATEs, so the second caller sees that it lost and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy import delete as sa_delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import crypto
from storage.models import (
    Account,
    Alert,
    AuditEntry,
    ChangeItem,
    ChangeSet,
    ChatEvent,
    Installation,
    Label,
    OAuthState,
    Prediction,
    Prompt,
    Scan,
    Workspace,
    utcnow,
)

ACCOUNT_KINDS = ("synthetic", "bundle", "aws")
LABEL_SOURCES = ("tag", "human", "import")
DEMO_ACCOUNT = "demo"


class NotFound(LookupError):
    """An unknown account, scan, change set...: the message says what exists instead."""


class Conflict(ValueError):
    """The row is not in the state the action needs (already decided, already running, exists)."""


def _dialect_insert(s: AsyncSession, model: type):  # type: ignore[no-untyped-def]
    """INSERT with ON CONFLICT support on both back ends."""
    if s.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


async def _fetch(s: AsyncSession, model: type, row_id: int, what: str):  # type: ignore[no-untyped-def]
    """A row by id, as the database has it now; ``NotFound`` naming ``what`` when there is none."""
    row = await s.get(model, row_id, populate_existing=True)
    if row is None:
        raise NotFound(f"unknown {what} {row_id}")
    return row


# -- audit --------------------------------------------------------------------------------------


async def audit(s: AsyncSession, action: str, *, actor: str = "", account_id: int | None = None,
                target: str = "", **details: Any) -> AuditEntry:
    entry = AuditEntry(action=action, actor=actor, account_id=account_id, target=target, details=details)
    s.add(entry)
    await s.flush()
    return entry


async def audit_entries(s: AsyncSession, *, account_id: int | None = None, action: str | None = None,
                        limit: int = 100) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if account_id is not None:
        q = q.where(AuditEntry.account_id == account_id)
    if action is not None:
        q = q.where(AuditEntry.action == action)
    return list((await s.scalars(q)).all())


# -- workspaces and installations ---------------------------------------------------------------


async def get_or_create_workspace(s: AsyncSession, platform: str, external_id: str, name: str = "") -> Workspace:
    """Race-safe: two first requests from a new workspace at once make one row."""
    q = select(Workspace).where(Workspace.platform == platform, Workspace.external_id == external_id)
    ws = await s.scalar(q)
    if ws is None:
        await s.execute(_dialect_insert(s, Workspace).values(
            platform=platform, external_id=external_id, name=name, created_at=utcnow(),
            settings={"approvers": [], "digest_channel": None, "digest_hour": 9, "governance_mode": "approve"})
            .on_conflict_do_nothing(index_elements=["platform", "external_id"]))
        ws = await s.scalar(q.execution_options(populate_existing=True))
    return ws


async def update_workspace_settings(s: AsyncSession, ws: Workspace, actor: str = "", **changes: Any) -> Workspace:
    ws.settings = {**ws.settings, **changes}  # a new dict: JSON columns track assignment, not mutation
    await audit(s, "settings.update", actor=actor, target=f"workspace:{ws.id}", changes=changes)
    return ws


async def save_installation(s: AsyncSession, ws: Workspace, token: str, *, bot_user_id: str = "",
                            installer_user_id: str = "", scopes: str = "") -> Installation:
    """Store a bot token encrypted; a re-install revokes the previous one. The installer becomes the
    first approver when the workspace has none."""
    await s.execute(update(Installation).where(Installation.workspace_id == ws.id, Installation.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    inst = Installation(workspace_id=ws.id, token_encrypted=crypto.encrypt(token), bot_user_id=bot_user_id,
                        installer_user_id=installer_user_id, scopes=scopes)
    s.add(inst)
    if installer_user_id and not ws.settings.get("approvers"):
        ws.settings = {**ws.settings, "approvers": [installer_user_id]}
    await s.flush()
    await audit(s, "install", actor=installer_user_id, target=f"workspace:{ws.id}", scopes=scopes)
    return inst


async def active_installation(s: AsyncSession, ws: Workspace) -> Installation | None:
    return await s.scalar(select(Installation).where(Installation.workspace_id == ws.id,
                                                     Installation.revoked_at.is_(None))
                          .order_by(Installation.id.desc()))


def installation_token(inst: Installation) -> str:
    return crypto.decrypt(inst.token_encrypted)


# -- accounts -----------------------------------------------------------------------------------


async def add_account(s: AsyncSession, name: str, kind: str, *, bundle_path: str | None = None,
                      role_arn: str | None = None, external_id: str | None = None,
                      regions: Iterable[str] = (), options: dict[str, Any] | None = None,
                      workspace_id: int | None = None, actor: str = "") -> Account:
    name = name.strip()
    if not name:
        raise ValueError("an account needs a name")
    if kind not in ACCOUNT_KINDS:
        raise ValueError(f"unknown account kind {kind!r}; use one of {', '.join(ACCOUNT_KINDS)}")
    if kind == "bundle" and not bundle_path:
        raise ValueError("a bundle account needs the bundle directory")
    if kind == "aws" and not (role_arn or "").startswith("arn:aws") and not (options or {}).get("direct"):
        raise ValueError("an aws account needs --role-arn arn:aws:iam::<account>:role/<name> (or --direct, to read "
                         "with your own credentials)")
    if await s.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise Conflict(f"an account named {name!r} already exists")
    acct = Account(name=name, kind=kind, bundle_path=bundle_path, role_arn=role_arn, external_id=external_id,
                   regions=list(regions), options=options or {}, workspace_id=workspace_id)
    s.add(acct)
    await s.flush()
    await audit(s, "account.add", actor=actor, account_id=acct.id, target=name, kind=kind)
    return acct


async def list_accounts(s: AsyncSession) -> list[Account]:
    return list((await s.scalars(select(Account).order_by(Account.name))).all())


async def get_account(s: AsyncSession, ref: str | int) -> Account:
    """By name or id; ``NotFound`` names the accounts that exist."""
    q = select(Account).where(Account.id == ref) if isinstance(ref, int) else select(Account).where(Account.name == ref)
    acct = await s.scalar(q)
    if acct is None:
        names = [a.name for a in await list_accounts(s)]
        known = f"known accounts: {', '.join(names)}" if names else "no accounts yet: add one with `costdna accounts add`"
        raise NotFound(f"unknown account {ref!r} ({known})")
    return acct


async def ensure_demo_account(s: AsyncSession) -> Account:
    """The synthetic account created on first use when none is configured."""
    acct = await s.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
    if acct is None:
        acct = await add_account(s, DEMO_ACCOUNT, "synthetic", options={"seed": 0}, actor="costdna")
    return acct


async def set_account_status(s: AsyncSession, account_id: int, status: str, reason: str = "") -> None:
    await s.execute(update(Account).where(Account.id == account_id).values(status=status, status_reason=reason))


# -- scans --------------------------------------------------------------------------------------


async def create_scan(s: AsyncSession, account: Account, requested_by: str = "") -> Scan:
    scan = Scan(account_id=account.id, requested_by=requested_by)
    s.add(scan)
    await s.flush()
    await audit(s, "scan.request", actor=requested_by, account_id=account.id, target=f"scan:{scan.id}")
    return scan


async def get_scan(s: AsyncSession, scan_id: int) -> Scan:
    return await _fetch(s, Scan, scan_id, "scan")


async def active_scan(s: AsyncSession, account_id: int) -> Scan | None:
    return await s.scalar(select(Scan).where(Scan.account_id == account_id, Scan.status.in_(("queued", "running")))
                          .order_by(Scan.id.desc()))


async def last_scan(s: AsyncSession, account_id: int, status: str | None = None) -> Scan | None:
    q = select(Scan).where(Scan.account_id == account_id).order_by(Scan.id.desc()).limit(1)
    if status:
        q = q.where(Scan.status == status)
    return await s.scalar(q)


async def claim_scan(s: AsyncSession, scan_id: int, job_id: str | None, *, lease_s: float | None = None,
                     worker: str | None = None) -> Scan | None:
    """Mark a queued (or interrupted running) scan as running; None when it already finished, so a
    re-delivered job does nothing. Each claim is a new attempt (the fencing number of
    :func:`finish_scan` and :func:`fail_scan`); with ``lease_s`` its worker holds a lease that the
    heartbeat (:func:`heartbeat_scan`) renews."""
    now = utcnow()
    res = await s.execute(update(Scan).where(Scan.id == scan_id, Scan.status.in_(("queued", "running")))
                          .values(status="running", job_id=job_id, attempts=Scan.attempts + 1, started_at=now,
                                  error="", worker=worker, heartbeat_at=now if lease_s else None,
                                  lease_expires_at=now + timedelta(seconds=lease_s) if lease_s else None))
    if res.rowcount == 0:
        return None
    return await get_scan(s, scan_id)


def _this_try(scan_id: int, attempt: int | None) -> list[Any]:
    """The scan row while ``attempt`` is the running try (any try when None)."""
    cond = [Scan.id == scan_id]
    if attempt is not None:
        cond += [Scan.attempts == attempt, Scan.status.in_(("queued", "running"))]
    return cond


async def heartbeat_scan(s: AsyncSession, scan_id: int, attempt: int, lease_s: float) -> bool:
    """The running try's worker is alive: its lease runs ``lease_s`` from now. False when the scan
    ended or another try took it."""
    now = utcnow()
    res = await s.execute(update(Scan).where(Scan.id == scan_id, Scan.status == "running", Scan.attempts == attempt)
                          .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s)))
    return bool(res.rowcount)


async def report_progress(s: AsyncSession, scan_id: int, stage: str, progress: float,
                          attempt: int | None = None) -> None:
    """The running scan's stage and progress (with ``attempt``: only while that try is the running one)."""
    await s.execute(update(Scan).where(*_this_try(scan_id, attempt), Scan.status == "running")
                    .values(stage=stage, progress=round(max(0.0, min(100.0, progress)), 1)))


async def finish_scan(s: AsyncSession, scan_id: int, summary: dict[str, Any], counts: dict[str, Any],
                      attempt: int | None = None) -> bool:
    """Succeed the scan; with ``attempt``, only while that try is still the running one (False: another
    try took the scan over or it ended, and the caller rolls its transaction back: nothing twice)."""
    res = await s.execute(update(Scan).where(*_this_try(scan_id, attempt)).values(
        status="succeeded", stage="done", progress=100.0, summary=summary, counts=counts, finished_at=utcnow(),
        error=""))
    return bool(res.rowcount)


async def fail_scan(s: AsyncSession, scan_id: int, error: str, attempt: int | None = None) -> bool:
    """Fail the scan with its reason; with ``attempt``, only while that try is the running one."""
    res = await s.execute(update(Scan).where(*_this_try(scan_id, attempt))
                          .values(status="failed", error=error, finished_at=utcnow()))
    if not res.rowcount:
        if attempt is None:
            await get_scan(s, scan_id)  # NotFound
        return False
    scan = await get_scan(s, scan_id)
    await set_account_status(s, scan.account_id, "error", error)
    await audit(s, "scan.fail", account_id=scan.account_id, target=f"scan:{scan_id}", error=error)
    return True


async def recent_scans(s: AsyncSession, limit: int = 10) -> list[Scan]:
    return list((await s.scalars(select(Scan).order_by(Scan.id.desc()).limit(limit))).all())


async def predictions(s: AsyncSession, scan_id: int) -> list[Prediction]:
    return list((await s.scalars(select(Prediction).where(Prediction.scan_id == scan_id)
                                 .order_by(Prediction.arn))).all())


async def prediction_for(s: AsyncSession, scan_id: int, ref: str) -> Prediction | None:
    """By ARN or short resource id."""
    return await s.scalar(select(Prediction).where(Prediction.scan_id == scan_id)
                          .where((Prediction.arn == ref) | (Prediction.resource_id == ref)).limit(1))


# -- labels -------------------------------------------------------------------------------------


async def add_label(s: AsyncSession, account_id: int, arn: str, team: str, *, source: str = "human",
                    actor: str = "") -> tuple[Label, bool]:
    """Record an owner label; (label, created). The same team from the same source as the current
    label is not a new label (a retried click adds nothing); anything else supersedes it."""
    if source not in LABEL_SOURCES:
        raise ValueError(f"unknown label source {source!r}")
    team = team.strip()
    if not team:
        raise ValueError("a label needs a team")
    # Tag labels follow the cloud on their own track (storage.persist.sync_tag_labels); human and
    # import labels supersede each other. Neither track's label may supersede the other's.
    track = Label.source == "tag" if source == "tag" else Label.source != "tag"
    current = await s.scalar(select(Label).where(Label.account_id == account_id, Label.arn == arn,
                                                 Label.superseded_at.is_(None), track).order_by(Label.id.desc()))
    if current is not None and current.team == team and current.source == source:
        return current, False
    now = utcnow()
    if current is not None:
        current.superseded_at = now
    label = Label(account_id=account_id, arn=arn, team=team, source=source, actor=actor, created_at=now)
    s.add(label)
    await s.flush()
    await audit(s, "label.add", actor=actor, account_id=account_id, target=arn, team=team, source=source,
                previous=current.team if current else None)
    return label, True


async def current_labels(s: AsyncSession, account_id: int, sources: Iterable[str] = ("human", "import")
                         ) -> dict[str, str]:
    """arn -> team of the labels in force from these sources (tags are read from the cloud itself)."""
    rows = await s.execute(select(Label.arn, Label.team).where(
        Label.account_id == account_id, Label.superseded_at.is_(None), Label.source.in_(tuple(sources)))
        .order_by(Label.id))  # should two be in force (a race), the newest wins
    return {arn: team for arn, team in rows}


async def label_history(s: AsyncSession, account_id: int, arn: str) -> list[Label]:
    return list((await s.scalars(select(Label).where(Label.account_id == account_id, Label.arn == arn)
                                 .order_by(Label.id))).all())


async def label_counts(s: AsyncSession, account_id: int | None = None) -> dict[str, int]:
    q = select(Label.source, func.count()).where(Label.superseded_at.is_(None)).group_by(Label.source)
    if account_id is not None:
        q = q.where(Label.account_id == account_id)
    return {k: int(v) for k, v in await s.execute(q)}


async def labels_since(s: AsyncSession, account_id: int, since: datetime | None) -> int:
    q = select(func.count()).select_from(Label).where(Label.account_id == account_id, Label.source == "human")
    if since is not None:
        q = q.where(Label.created_at > since)
    return int(await s.scalar(q) or 0)


# -- tag change sets ----------------------------------------------------------------------------

# The states a change set moves through, and from where.
TRANSITIONS = {
    "approved": ("proposed",),
    "rejected": ("proposed",),
    "applied": ("approved",),
    "failed": ("approved",),
    "rolled_back": ("applied", "failed"),
}


async def propose_change_set(s: AsyncSession, account_id: int, items: list[dict[str, Any]], *,
                             tag_key: str = "team", scan_id: int | None = None, proposed_by: str = "") -> ChangeSet:
    """``items``: dicts with arn, team, previous_tags, and optionally confidence, monthly_cost_usd."""
    if not items:
        raise ValueError("nothing to propose: no resource has a confident owner without a matching tag")
    cs = ChangeSet(account_id=account_id, scan_id=scan_id, tag_key=tag_key, proposed_by=proposed_by, nonce=new_nonce(),
                   summary={"resources": len(items),
                            "monthly_cost_usd": round(sum(i.get("monthly_cost_usd", 0.0) for i in items), 2)})
    s.add(cs)
    await s.flush()
    s.add_all(ChangeItem(change_set_id=cs.id, arn=i["arn"], team=i["team"], confidence=i.get("confidence", 0.0),
                         monthly_cost_usd=i.get("monthly_cost_usd", 0.0), previous_tags=dict(i.get("previous_tags", {})),
                         new_tags={**i.get("previous_tags", {}), tag_key: i["team"]}) for i in items)
    await s.flush()
    await audit(s, "changeset.propose", actor=proposed_by, account_id=account_id, target=f"changeset:{cs.id}",
                resources=len(items))
    return cs


async def get_change_set(s: AsyncSession, cs_id: int) -> ChangeSet:
    return await _fetch(s, ChangeSet, cs_id, "change set")


async def change_items(s: AsyncSession, cs_id: int) -> list[ChangeItem]:
    return list((await s.scalars(select(ChangeItem).where(ChangeItem.change_set_id == cs_id)
                                 .order_by(ChangeItem.id))).all())


async def transition_change_set(s: AsyncSession, cs_id: int, to: str, *, actor: str = "",
                                **summary: Any) -> ChangeSet:
    """Move a change set to ``to`` if it is in a state that allows it; ``Conflict`` otherwise (a
    second click on Approve, an approval after a rejection, a rollback of a rollback)."""
    allowed = TRANSITIONS.get(to)
    if allowed is None:
        raise ValueError(f"unknown change-set state {to!r}")
    now = utcnow()
    values: dict[str, Any] = {"status": to}
    if to in ("approved", "rejected"):
        values.update(approver=actor, decided_at=now)
    elif to in ("applied", "failed"):
        values["applied_at"] = now
    else:
        values["rolled_back_at"] = now
    res = await s.execute(update(ChangeSet).where(ChangeSet.id == cs_id, ChangeSet.status.in_(allowed))
                          .values(**values))
    cs = await get_change_set(s, cs_id)
    if res.rowcount == 0:
        raise Conflict(f"change set {cs_id} is {cs.status}; it cannot become {to}")
    if summary:
        cs.summary = {**cs.summary, **summary}
    await audit(s, f"changeset.{to}", actor=actor, account_id=cs.account_id, target=f"changeset:{cs_id}", **summary)
    return cs


async def record_item_results(s: AsyncSession, cs_id: int, errors: dict[str, str], *, rollback: bool = False) -> None:
    """After a write: items named in ``errors`` failed with that message, the others succeeded.

    Applying touches only pending items (a retried job does not redo what is recorded); a rollback
    touches only applied items, which become rolled_back (or keep a note of why they could not).
    """
    for item in await change_items(s, cs_id):
        err = errors.get(item.arn)
        if rollback:
            if item.status != "applied":
                continue
            if err:
                item.error = f"rollback failed: {err}"
            else:
                item.status, item.error = "rolled_back", ""
        elif item.status == "pending":
            item.status, item.error = ("failed", err) if err else ("applied", "")


async def change_set_counts(s: AsyncSession, account_id: int | None = None) -> dict[str, int]:
    q = select(ChangeSet.status, func.count()).group_by(ChangeSet.status)
    if account_id is not None:
        q = q.where(ChangeSet.account_id == account_id)
    return {k: int(v) for k, v in await s.execute(q)}


# -- alerts -------------------------------------------------------------------------------------


async def open_alert(s: AsyncSession, account_id: int, kind: str, arn: str | None, *, severity: str = "warning",
                     reason: str = "") -> tuple[Alert, bool]:
    """(alert, created): an open or snoozed alert of the same kind on the same resource is reused."""
    existing = await s.scalar(select(Alert).where(Alert.account_id == account_id, Alert.kind == kind,
                                                  Alert.arn == arn, Alert.status.in_(("open", "snoozed"))))
    if existing is not None:
        return existing, False
    alert = Alert(account_id=account_id, kind=kind, arn=arn, severity=severity, reason=reason)
    s.add(alert)
    await s.flush()
    await audit(s, "alert.open", account_id=account_id, target=arn or "", kind=kind, severity=severity)
    return alert, True


async def set_alert_status(s: AsyncSession, alert_id: int, status: str, *, actor: str = "",
                           snooze: timedelta | None = None) -> Alert:
    alert = await _fetch(s, Alert, alert_id, "alert")
    if status not in ("open", "expected", "snoozed", "resolved"):
        raise ValueError(f"unknown alert status {status!r}")
    alert.status, alert.updated_at = status, utcnow()
    alert.snooze_until = alert.updated_at + snooze if status == "snoozed" and snooze else None
    await audit(s, f"alert.{status}", actor=actor, account_id=alert.account_id, target=f"alert:{alert_id}")
    return alert


async def add_chat_ref(s: AsyncSession, alert_id: int, platform: str, channel: str, ts: str) -> None:
    await add_message_ref(s, Alert, alert_id, platform, channel, ts)


# -- status -------------------------------------------------------------------------------------


def scan_state(scan: Scan) -> str:
    """A running scan's state in words, for status lines and cards: "worker lost, retrying" while its
    worker's lease has lapsed (another worker takes the job), else its stage."""
    if scan.worker_lost:
        if (scan.worker or "").startswith("in-process"):
            return "interrupted: its process stopped"
        return "worker lost, retrying"
    return scan.stage


async def status_report(s: AsyncSession) -> dict[str, Any]:
    """Accounts with their last scan, label and change-set counts: what ``costdna status`` shows."""
    accounts = []
    for a in await list_accounts(s):
        last = await last_scan(s, a.id)
        accounts.append({
            "name": a.name, "kind": a.kind, "status": a.status, "status_reason": a.status_reason,
            "last_scan": None if last is None else {
                "id": last.id, "status": last.status, "stage": last.stage, "progress": last.progress,
                "error": last.error, "attempts": last.attempts, "worker": last.worker,
                "worker_lost": last.worker_lost, "state": scan_state(last),
                "heartbeat_at": last.heartbeat_at.isoformat() if last.heartbeat_at else None, "created_at": last.created_at.isoformat(),
                "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                "resources": last.counts.get("resources"), "attributable_cost_usd":
                    last.summary.get("attributable_cost_usd"), "untagged_cost_usd": last.summary.get("untagged_cost_usd")},
            "labels": await label_counts(s, a.id),
            "change_sets": await change_set_counts(s, a.id),
        })
    open_alerts = await s.scalar(select(func.count()).select_from(Alert).where(and_(Alert.status == "open")))
    return {"accounts": accounts, "labels": await label_counts(s), "change_sets": await change_set_counts(s),
            "open_alerts": int(open_alerts or 0)}


# -- chat: prompts, message references, event dedup, OAuth state ---------------------------------

PROMPT_TTL = timedelta(days=7)


def new_nonce() -> str:
    import secrets

    return secrets.token_urlsafe(12)


class Expired(Conflict):
    """A button whose question or proposal is no longer open (expired, answered, decided)."""


async def create_prompts(s: AsyncSession, account_id: int, arns: Iterable[str], *, scan_id: int | None = None,
                         asked_by: str = "", ttl: timedelta = PROMPT_TTL) -> list[Prompt]:
    now = utcnow()
    prompts = [Prompt(account_id=account_id, scan_id=scan_id, arn=arn, nonce=new_nonce(), asked_by=asked_by,
                      created_at=now, expires_at=now + ttl) for arn in arns]
    s.add_all(prompts)
    await s.flush()
    return prompts


async def open_prompt_arns(s: AsyncSession, account_id: int) -> set[str]:
    """Resources with an open, unexpired question: not asked again."""
    rows = await s.scalars(select(Prompt.arn).where(Prompt.account_id == account_id, Prompt.status == "open",
                                                    Prompt.expires_at > utcnow()))
    return set(rows.all())


async def get_prompt(s: AsyncSession, prompt_id: int) -> Prompt:
    return await _fetch(s, Prompt, prompt_id, "question")


async def close_prompt(s: AsyncSession, prompt_id: int, nonce: str, status: str, *, user: str,
                       team: str | None = None) -> Prompt:
    """Answer (or skip) an open question exactly once. ``NotFound`` for a forged id or nonce,
    ``Expired`` when it was already answered, skipped or is past its expiry."""
    import hmac

    if status not in ("answered", "skipped"):
        raise ValueError(f"unknown prompt outcome {status!r}")
    p = await s.get(Prompt, prompt_id, populate_existing=True)
    if p is None or not hmac.compare_digest(p.nonce.encode(), nonce.encode()):
        raise NotFound("this question is not one costdna asked (unknown or tampered button)")
    now = utcnow()
    res = await s.execute(update(Prompt).where(Prompt.id == prompt_id, Prompt.status == "open",
                                               Prompt.expires_at > now)
                          .values(status=status, answered_by=user, team=team, answered_at=now))
    p = await get_prompt(s, prompt_id)
    if res.rowcount == 0:
        if p.status == "open":
            raise Expired("this question expired; ask for new ones with `/costdna label`")
        who = f" by <@{p.answered_by}>" if p.answered_by else ""
        raise Expired(f"this question was already {p.status}{who}" + (f" as {p.team}" if p.team else ""))
    await audit(s, f"prompt.{status}", actor=user, account_id=p.account_id, target=p.arn, team=team)
    return p


async def check_change_set_nonce(s: AsyncSession, cs_id: int, nonce: str) -> ChangeSet:
    import hmac

    cs = await s.get(ChangeSet, cs_id, populate_existing=True)
    if cs is None or not cs.nonce or not hmac.compare_digest(cs.nonce.encode(), nonce.encode()):
        raise NotFound("this change set is not one costdna proposed (unknown or tampered button)")
    return cs


async def add_message_ref(s: AsyncSession, model: type, row_id: int, platform: str, channel: str, ts: str) -> None:
    """Remember a chat message that shows a scan, change set, prompt or alert, to update it later."""
    row = await _fetch(s, model, row_id, model.__tablename__[:-1])
    row.chat_refs = [*(row.chat_refs or []), {"platform": platform, "channel": channel, "ts": ts}]


async def first_time_event(s: AsyncSession, platform: str, event_id: str) -> bool:
    """True the first time an event id is seen; False for a retried delivery (also when two deliveries
    race: one insert wins, the other does nothing)."""
    res = await s.execute(_dialect_insert(s, ChatEvent).values(platform=platform, event_id=event_id,
                                                               received_at=utcnow())
                          .on_conflict_do_nothing(index_elements=["platform", "event_id"]))
    return res.rowcount == 1


async def issue_oauth_state(s: AsyncSession, ttl: timedelta = timedelta(minutes=10)) -> str:
    state = new_nonce() + new_nonce()
    s.add(OAuthState(state=state, expires_at=utcnow() + ttl))
    await s.flush()
    return state


async def consume_oauth_state(s: AsyncSession, state: str) -> bool:
    res = await s.execute(sa_delete(OAuthState).where(OAuthState.state == state, OAuthState.expires_at > utcnow()))
    return res.rowcount == 1


async def latest_predictions_scan(s: AsyncSession, account_id: int) -> Scan | None:
    """The newest succeeded scan: what questions, answers and proposals are based on."""
    return await last_scan(s, account_id, status="succeeded")


# -- chat handlers: read helpers ------------------------------------------------------------------


async def find_workspace(s: AsyncSession, platform: str, external_id: str) -> Workspace | None:
    """The workspace if it exists (read-only; ``get_or_create_workspace`` creates it)."""
    return await s.scalar(select(Workspace).where(Workspace.platform == platform,
                                                  Workspace.external_id == external_id))


async def resources_by_arn(s: AsyncSession, account_id: int, arns: Iterable[str] | None = None) -> dict[str, Any]:
    """arn -> Resource row of an account (all of them, or those named)."""
    from storage.models import Resource

    q = select(Resource).where(Resource.account_id == account_id)
    if arns is not None:
        q = q.where(Resource.arn.in_(list(arns)))
    return {r.arn: r for r in (await s.scalars(q)).all()}


async def change_set_arns(s: AsyncSession, account_id: int, statuses: Iterable[str] = ("proposed", "approved")
                          ) -> set[str]:
    """Resources already in a change set in one of these states (not proposed twice)."""
    rows = await s.scalars(select(ChangeItem.arn).join(ChangeSet, ChangeItem.change_set_id == ChangeSet.id)
                           .where(ChangeSet.account_id == account_id, ChangeSet.status.in_(tuple(statuses))))
    return set(rows.all())


async def open_prompt_count(s: AsyncSession, account_id: int | None = None) -> int:
    q = select(func.count()).select_from(Prompt).where(Prompt.status == "open", Prompt.expires_at > utcnow())
    if account_id is not None:
        q = q.where(Prompt.account_id == account_id)
    return int(await s.scalar(q) or 0)


async def daily_cost_rows(s: AsyncSession, account_id: int) -> list[tuple[str, Any, float]]:
    """(arn, day, cost_usd) of an account, oldest day first."""
    from storage.models import DailyCost

    rows = await s.execute(select(DailyCost.arn, DailyCost.day, DailyCost.cost_usd)
                           .where(DailyCost.account_id == account_id).order_by(DailyCost.day, DailyCost.arn))
    return [(a, d, float(c)) for a, d, c in rows]

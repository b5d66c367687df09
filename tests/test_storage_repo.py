"""storage.repo on SQLite and PostgreSQL: every test runs on both back ends (``db_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, text, update

from storage import crypto, repo
from storage.db import AppendOnlyError, Database
from storage.models import AuditEntry, ChangeItem, ChangeSet, Installation, Label, Scan, utcnow

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def secret_key(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A known encryption key and a private data dir (never the developer's key file)."""
    from config.settings import get_settings

    key = "test-secret-key"
    monkeypatch.setenv("COSTDNA_SECRET_KEY", key)
    monkeypatch.setenv("COSTDNA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    crypto.fernet.cache_clear()
    yield key
    get_settings.cache_clear()
    crypto.fernet.cache_clear()


@pytest_asyncio.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await Database(db_url).init()
    try:
        yield database
    finally:
        await database.close()


async def _account(db: Database, name: str = "acme") -> int:
    async with db.session() as s:
        return (await repo.add_account(s, name, "synthetic", actor="alice")).id


async def _count(db: Database, model: type, *where: object) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- workspaces and installations ---------------------------------------------------------------


async def test_workspace_get_or_create_is_idempotent_and_settings_persist(db: Database) -> None:
    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1", "Acme")
        again = await repo.get_or_create_workspace(s, "slack", "T1", "ignored")
        other = await repo.get_or_create_workspace(s, "discord", "T1")
        assert again.id == ws.id and other.id != ws.id
        assert ws.settings["governance_mode"] == "approve" and ws.settings["approvers"] == []
    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        assert ws.name == "Acme"
        await repo.update_workspace_settings(s, ws, actor="U1", digest_channel="C9", digest_hour=7)
    async with db.session() as s:  # a fresh session reads what was committed
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        assert ws.settings["digest_channel"] == "C9" and ws.settings["digest_hour"] == 7
        assert ws.settings["governance_mode"] == "approve"  # untouched keys stay
        [entry] = await repo.audit_entries(s, action="settings.update")
        assert entry.actor == "U1" and entry.target == f"workspace:{ws.id}"
        assert entry.details["changes"] == {"digest_channel": "C9", "digest_hour": 7}
    assert await _count(db, text("workspaces")) == 2


async def test_installation_token_is_encrypted_and_reinstall_revokes(db: Database,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import get_settings

    token = "xoxb-very-secret-token-123"
    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        first = await repo.save_installation(s, ws, token, bot_user_id="B1", installer_user_id="U1", scopes="chat:write")
    async with db.session() as s:
        raw = (await s.execute(text("SELECT token_encrypted FROM installations"))).scalars().all()
        assert len(raw) == 1
        blob = bytes(raw[0])
        assert token.encode() not in blob and b"very-secret" not in blob
        inst = await repo.active_installation(s, ws)
        assert inst is not None and inst.id == first.id
        assert repo.installation_token(inst) == token
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        assert ws.settings["approvers"] == ["U1"]  # the installer became the first approver

    async with db.session() as s:
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        second = await repo.save_installation(s, ws, "xoxb-new-token", installer_user_id="U2")
    async with db.session() as s:
        active = await repo.active_installation(s, ws)
        assert active is not None and active.id == second.id
        assert repo.installation_token(active) == "xoxb-new-token"
        old = await s.get(Installation, first.id)
        assert old.revoked_at is not None and second.revoked_at is None
        ws = await repo.get_or_create_workspace(s, "slack", "T1")
        assert ws.settings["approvers"] == ["U1"]  # a re-install does not replace approvers
        assert len(await repo.audit_entries(s, action="install")) == 2

    monkeypatch.setenv("COSTDNA_SECRET_KEY", "another-key")  # a lost key: the token cannot be read
    get_settings.cache_clear()
    crypto.fernet.cache_clear()
    async with db.session() as s:
        with pytest.raises(crypto.InvalidToken):
            repo.installation_token(await repo.active_installation(s, ws))


# -- accounts -----------------------------------------------------------------------------------


async def test_accounts_add_list_get(db: Database) -> None:
    async with db.session() as s:
        with pytest.raises(repo.NotFound, match="no accounts yet"):
            await repo.get_account(s, "nope")
        a = await repo.add_account(s, "  zeta ", "synthetic", options={"seed": 3}, actor="cli")
        b = await repo.add_account(s, "alpha", "bundle", bundle_path="/data/bundle")
        c = await repo.add_account(s, "prod", "aws", role_arn="arn:aws:iam::123456789012:role/costdna",
                                   regions=["eu-west-1"], external_id="ext")
    async with db.session() as s:
        assert [x.name for x in await repo.list_accounts(s)] == ["alpha", "prod", "zeta"]
        assert (await repo.get_account(s, "zeta")).id == a.id  # the name was stripped
        assert (await repo.get_account(s, b.id)).bundle_path == "/data/bundle"
        got = await repo.get_account(s, "prod")
        assert got.id == c.id and got.regions == ["eu-west-1"] and got.status == "new"
        with pytest.raises(repo.NotFound) as e:
            await repo.get_account(s, "missing")
        assert "'missing'" in str(e.value) and "alpha, prod, zeta" in str(e.value)
        with pytest.raises(repo.NotFound, match="alpha"):
            await repo.get_account(s, 99999)
        added = await repo.audit_entries(s, action="account.add")
        assert {(x.target, x.account_id) for x in added} == {("zeta", a.id), ("alpha", b.id), ("prod", c.id)}


async def test_account_validation(db: Database) -> None:
    async with db.session() as s:
        await repo.add_account(s, "acme", "synthetic")
    cases = [
        (dict(name="x", kind="azure"), "unknown account kind 'azure'; use one of synthetic, bundle, aws"),
        (dict(name="x", kind="bundle"), "a bundle account needs the bundle directory"),
        (dict(name="x", kind="aws"), "an aws account needs --role-arn"),
        (dict(name="x", kind="aws", role_arn="role/costdna"), "an aws account needs --role-arn"),
        (dict(name="  ", kind="synthetic"), "an account needs a name"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as e:
            async with db.session() as s:
                await repo.add_account(s, **kwargs)
        assert not isinstance(e.value, repo.Conflict)
        assert message in str(e.value)
    with pytest.raises(repo.Conflict, match="an account named 'acme' already exists"):
        async with db.session() as s:
            await repo.add_account(s, "acme", "bundle", bundle_path="/x")
    async with db.session() as s:
        assert [a.name for a in await repo.list_accounts(s)] == ["acme"]
        assert len(await repo.audit_entries(s, action="account.add")) == 1


async def test_ensure_demo_account_is_idempotent(db: Database) -> None:
    async with db.session() as s:
        first = await repo.ensure_demo_account(s)
    async with db.session() as s:
        second = await repo.ensure_demo_account(s)
        assert second.id == first.id and second.kind == "synthetic" and second.name == repo.DEMO_ACCOUNT
        assert len(await repo.list_accounts(s)) == 1
        assert len(await repo.audit_entries(s, action="account.add")) == 1


# -- scans --------------------------------------------------------------------------------------


async def test_scan_lifecycle(db: Database) -> None:
    acct_id = await _account(db)
    async with db.session() as s:
        acct = await repo.get_account(s, acct_id)
        scan = await repo.create_scan(s, acct, requested_by="U1")
        assert scan.status == "queued" and scan.attempts == 0
        assert (await repo.active_scan(s, acct_id)).id == scan.id
        [req] = await repo.audit_entries(s, action="scan.request")
        assert req.target == f"scan:{scan.id}" and req.actor == "U1"

    async with db.session() as s:
        claimed = await repo.claim_scan(s, scan.id, "job-1")
        assert claimed is not None and claimed.status == "running" and claimed.attempts == 1
        assert claimed.job_id == "job-1" and claimed.started_at is not None
    async with db.session() as s:  # a re-delivered job resumes an interrupted run
        claimed = await repo.claim_scan(s, scan.id, "job-2")
        assert claimed.attempts == 2 and claimed.job_id == "job-2"

    async with db.session() as s:
        await repo.report_progress(s, scan.id, "model", 42.04)
        got = await repo.get_scan(s, scan.id)
        assert (got.stage, got.progress) == ("model", 42.0)
        await repo.report_progress(s, scan.id, "model", 250)
        assert (await repo.get_scan(s, scan.id)).progress == 100.0
        await repo.report_progress(s, scan.id, "load", -5)
        assert (await repo.get_scan(s, scan.id)).progress == 0.0

    async with db.session() as s:
        await repo.finish_scan(s, scan.id, {"attributable_cost_usd": 12.5}, {"resources": 80})
    async with db.session() as s:
        done = await repo.get_scan(s, scan.id)
        assert done.status == "succeeded" and done.progress == 100.0 and done.stage == "done"
        assert done.counts == {"resources": 80} and done.summary == {"attributable_cost_usd": 12.5}
        assert done.finished_at is not None and done.finished_at >= done.started_at
        assert await repo.active_scan(s, acct_id) is None
        assert (await repo.last_scan(s, acct_id, "succeeded")).id == scan.id
        assert await repo.claim_scan(s, scan.id, "job-3") is None  # finished: a late job does nothing
        await repo.report_progress(s, scan.id, "model", 5)  # ignored: not running
    async with db.session() as s:
        done = await repo.get_scan(s, scan.id)
        assert done.attempts == 2 and done.job_id == "job-2" and done.progress == 100.0
        with pytest.raises(repo.NotFound, match="unknown scan 424242"):
            await repo.get_scan(s, 424242)
        assert await repo.claim_scan(s, 424242, "job") is None


async def test_fail_scan_sets_error_and_account_status(db: Database) -> None:
    acct_id = await _account(db)
    async with db.session() as s:
        scan = await repo.create_scan(s, await repo.get_account(s, acct_id))
        await repo.claim_scan(s, scan.id, "j")
    async with db.session() as s:
        await repo.fail_scan(s, scan.id, "AccessDenied: cannot assume role")
    async with db.session() as s:
        failed = await repo.get_scan(s, scan.id)
        assert failed.status == "failed" and failed.error == "AccessDenied: cannot assume role"
        assert failed.finished_at is not None
        acct = await repo.get_account(s, acct_id)
        assert (acct.status, acct.status_reason) == ("error", "AccessDenied: cannot assume role")
        [entry] = await repo.audit_entries(s, account_id=acct_id, action="scan.fail")
        assert entry.details == {"error": "AccessDenied: cannot assume role"}
        assert await repo.claim_scan(s, scan.id, "j2") is None
        assert [x.id for x in await repo.recent_scans(s)] == [scan.id]


# -- labels -------------------------------------------------------------------------------------


ARN = "arn:aws:lambda:eu-west-1:123456789012:function:checkout"
ARN2 = "arn:aws:s3:::assets"


async def test_labels_history_dedup_and_supersede(db: Database) -> None:
    acct = await _account(db)
    async with db.session() as s:
        first, created = await repo.add_label(s, acct, ARN, " payments ", actor="U1")
        assert created and first.team == "payments"
    async with db.session() as s:  # a retried click
        again, created = await repo.add_label(s, acct, ARN, "payments", actor="U1")
        assert not created and again.id == first.id
        assert len(await repo.label_history(s, acct, ARN)) == 1
        # the same team from another source is a new label
        imp, created = await repo.add_label(s, acct, ARN, "payments", source="import", actor="csv")
        assert created
    async with db.session() as s:
        newer, created = await repo.add_label(s, acct, ARN, "search", actor="U2")
        assert created
    async with db.session() as s:
        history = await repo.label_history(s, acct, ARN)
        assert [(x.team, x.source) for x in history] == [("payments", "human"), ("payments", "import"),
                                                         ("search", "human")]
        assert history[0].superseded_at is not None and history[1].superseded_at is not None
        assert history[2].superseded_at is None
        assert await repo.current_labels(s, acct) == {ARN: "search"}
        assert await repo.current_labels(s, acct, sources=("import",)) == {}
        await repo.add_label(s, acct, ARN2, "data", source="import")
        assert await repo.current_labels(s, acct) == {ARN: "search", ARN2: "data"}
        assert await repo.label_counts(s, acct) == {"human": 1, "import": 1}
        assert await repo.label_counts(s) == {"human": 1, "import": 1}
        assert await repo.labels_since(s, acct, None) == 2  # human labels ever given
        assert await repo.labels_since(s, acct, history[1].created_at) == 1
        entries = await repo.audit_entries(s, account_id=acct, action="label.add")
        assert len(entries) == 4  # the retried click wrote nothing
        assert entries[1].details["previous"] == "payments" and entries[1].details["team"] == "search"
        with pytest.raises(ValueError, match="unknown label source 'guess'"):
            await repo.add_label(s, acct, ARN, "x", source="guess")
        with pytest.raises(ValueError, match="needs a team"):
            await repo.add_label(s, acct, ARN, "   ")


async def test_human_labels_are_not_disturbed_by_tag_labels(db: Database) -> None:
    """Tag labels follow the cloud on their own track: a human label given after a tag label
    supersedes the previous human label, not the tag, and the newest human label is in force."""
    from storage.persist import sync_tag_labels

    acct = await _account(db)
    async with db.session() as s:
        await repo.add_label(s, acct, ARN, "payments", actor="U1")
        assert await sync_tag_labels(s, acct, {ARN: "platform"}) == 1
    async with db.session() as s:
        _, created = await repo.add_label(s, acct, ARN, "search", actor="U2")
        assert created
    async with db.session() as s:
        for _ in range(3):  # whatever order the database hands rows back in
            assert await repo.current_labels(s, acct) == {ARN: "search"}
        assert await repo.current_labels(s, acct, sources=("tag",)) == {ARN: "platform"}
        assert await repo.label_counts(s, acct) == {"human": 1, "tag": 1}
        # the tag label is still current, so the next scan adds no tag label
        assert await sync_tag_labels(s, acct, {ARN: "platform"}) == 0
        # a retried click on the current human team adds nothing, even with a newer tag label about
        _, created = await repo.add_label(s, acct, ARN, "search", actor="U2")
        assert not created


# -- change sets --------------------------------------------------------------------------------


def _items() -> list[dict]:
    return [
        {"arn": "arn:a", "team": "payments", "previous_tags": {"env": "prod"}, "confidence": 0.9,
         "monthly_cost_usd": 10.004},
        {"arn": "arn:b", "team": "search", "previous_tags": {}, "monthly_cost_usd": 5.0},
        {"arn": "arn:c", "team": "data", "previous_tags": {"team": "old"}},
    ]


async def test_change_set_approve_apply_rollback(db: Database) -> None:
    acct = await _account(db)
    async with db.session() as s:
        with pytest.raises(ValueError, match="nothing to propose"):
            await repo.propose_change_set(s, acct, [])
        cs = await repo.propose_change_set(s, acct, _items(), tag_key="owner", proposed_by="bot")
    async with db.session() as s:
        cs = await repo.get_change_set(s, cs.id)
        assert cs.status == "proposed" and cs.summary == {"resources": 3, "monthly_cost_usd": 15.0}
        items = await repo.change_items(s, cs.id)
        assert [(i.arn, i.status) for i in items] == [("arn:a", "pending"), ("arn:b", "pending"),
                                                      ("arn:c", "pending")]
        assert items[0].new_tags == {"env": "prod", "owner": "payments"} and items[0].previous_tags == {"env": "prod"}
        assert items[2].new_tags == {"team": "old", "owner": "data"}

    async with db.session() as s:
        approved = await repo.transition_change_set(s, cs.id, "approved", actor="U1")
        assert approved.status == "approved" and approved.approver == "U1"
    decided_at = approved.decided_at

    # a second click on Approve and a late Reject: Conflict, and nothing changes
    for to, actor in (("approved", "U2"), ("rejected", "U3")):
        with pytest.raises(repo.Conflict, match=f"change set {cs.id} is approved; it cannot become {to}"):
            async with db.session() as s:
                await repo.transition_change_set(s, cs.id, to, actor=actor)
    async with db.session() as s:
        cs = await repo.get_change_set(s, cs.id)
        assert cs.status == "approved" and cs.approver == "U1" and cs.decided_at == decided_at
        assert len(await repo.audit_entries(s, action="changeset.approved")) == 1
        assert await repo.audit_entries(s, action="changeset.rejected") == []

    async with db.session() as s:  # the write: arn:b failed
        await repo.record_item_results(s, cs.id, {"arn:b": "AccessDenied"})
        await repo.transition_change_set(s, cs.id, "applied", actor="worker", applied=2, failed=1)
    async with db.session() as s:  # a retried job records nothing new
        await repo.record_item_results(s, cs.id, {"arn:a": "Throttled"})
    async with db.session() as s:
        cs = await repo.get_change_set(s, cs.id)
        assert cs.status == "applied" and cs.applied_at is not None
        assert cs.summary == {"resources": 3, "monthly_cost_usd": 15.0, "applied": 2, "failed": 1}
        items = {i.arn: (i.status, i.error) for i in await repo.change_items(s, cs.id)}
        assert items == {"arn:a": ("applied", ""), "arn:b": ("failed", "AccessDenied"), "arn:c": ("applied", "")}
        assert await repo.change_set_counts(s, acct) == {"applied": 1}

    async with db.session() as s:  # rollback touches only applied items; arn:c could not be restored
        await repo.record_item_results(s, cs.id, {"arn:c": "Throttled"}, rollback=True)
        await repo.transition_change_set(s, cs.id, "rolled_back", actor="U1")
    async with db.session() as s:
        cs = await repo.get_change_set(s, cs.id)
        assert cs.status == "rolled_back" and cs.rolled_back_at is not None
        items = {i.arn: (i.status, i.error) for i in await repo.change_items(s, cs.id)}
        assert items == {"arn:a": ("rolled_back", ""), "arn:b": ("failed", "AccessDenied"),
                         "arn:c": ("applied", "rollback failed: Throttled")}
        with pytest.raises(repo.Conflict, match="is rolled_back; it cannot become rolled_back"):
            await repo.transition_change_set(s, cs.id, "rolled_back")
        with pytest.raises(ValueError, match="unknown change-set state 'done'"):
            await repo.transition_change_set(s, cs.id, "done")
        with pytest.raises(repo.NotFound, match="unknown change set 31337"):
            await repo.get_change_set(s, 31337)
        actions = [e.action for e in await repo.audit_entries(s, account_id=acct)]
        assert actions[:4] == ["changeset.rolled_back", "changeset.applied", "changeset.approved",
                               "changeset.propose"]


async def test_change_set_transitions_table(db: Database) -> None:
    """Every (from, to) pair: allowed exactly when TRANSITIONS lists ``from`` for ``to``."""
    acct = await _account(db)
    states = ["proposed", *repo.TRANSITIONS]
    async with db.session() as s:
        for to, allowed in repo.TRANSITIONS.items():
            for frm in states:
                cs = await repo.propose_change_set(s, acct, _items()[:1])
                await s.execute(update(ChangeSet).where(ChangeSet.id == cs.id).values(status=frm))
                if frm in allowed:
                    assert (await repo.transition_change_set(s, cs.id, to)).status == to
                else:
                    with pytest.raises(repo.Conflict):
                        await repo.transition_change_set(s, cs.id, to)
                    assert (await repo.get_change_set(s, cs.id)).status == frm
    assert await _count(db, ChangeItem) == len(states) * len(repo.TRANSITIONS)

    # a rejection is final: a later Approve conflicts and changes nothing
    async with db.session() as s:
        cs = await repo.propose_change_set(s, acct, _items())
        rejected = await repo.transition_change_set(s, cs.id, "rejected", actor="U9")
        assert rejected.status == "rejected" and rejected.approver == "U9"
    with pytest.raises(repo.Conflict, match="is rejected; it cannot become approved"):
        async with db.session() as s:
            await repo.transition_change_set(s, cs.id, "approved", actor="U1")
    async with db.session() as s:
        cs = await repo.get_change_set(s, cs.id)
        assert cs.status == "rejected" and cs.approver == "U9"


# -- alerts -------------------------------------------------------------------------------------


async def test_alerts_dedup_snooze_and_chat_refs(db: Database) -> None:
    acct = await _account(db)
    async with db.session() as s:
        a, created = await repo.open_alert(s, acct, "spike", ARN, severity="critical", reason="x3 cost")
        assert created and a.status == "open"
        same, created = await repo.open_alert(s, acct, "spike", ARN)
        assert not created and same.id == a.id
        other, created = await repo.open_alert(s, acct, "spike", ARN2)
        assert created and other.id != a.id
        unowned, created = await repo.open_alert(s, acct, "no_team", None)
        assert created
        again, created = await repo.open_alert(s, acct, "no_team", None)  # NULL arn is matched too
        assert not created and again.id == unowned.id

    before = utcnow()
    async with db.session() as s:
        snoozed = await repo.set_alert_status(s, a.id, "snoozed", actor="U1", snooze=timedelta(days=2))
        assert snoozed.status == "snoozed"
    async with db.session() as s:
        got, created = await repo.open_alert(s, acct, "spike", ARN)  # a snoozed alert is reused
        assert not created and got.id == a.id and got.status == "snoozed"
        assert got.snooze_until is not None
        assert before + timedelta(days=2) <= got.snooze_until <= utcnow() + timedelta(days=2)
        await repo.add_chat_ref(s, a.id, "slack", "C1", "111.1")
    async with db.session() as s:
        await repo.add_chat_ref(s, a.id, "discord", "42", "999")
    async with db.session() as s:
        got, _ = await repo.open_alert(s, acct, "spike", ARN)
        assert got.chat_refs == [{"platform": "slack", "channel": "C1", "ts": "111.1"},
                                 {"platform": "discord", "channel": "42", "ts": "999"}]
        reopened = await repo.set_alert_status(s, a.id, "open")
        assert reopened.snooze_until is None
        await repo.set_alert_status(s, a.id, "resolved", actor="U1")
        with pytest.raises(ValueError, match="unknown alert status 'gone'"):
            await repo.set_alert_status(s, a.id, "gone")
        with pytest.raises(repo.NotFound):
            await repo.set_alert_status(s, 777, "open")
        with pytest.raises(repo.NotFound):
            await repo.add_chat_ref(s, 777, "slack", "C", "1")
    async with db.session() as s:
        fresh, created = await repo.open_alert(s, acct, "spike", ARN)  # resolved: a new alert
        assert created and fresh.id != a.id
        actions = [e.action for e in await repo.audit_entries(s, account_id=acct) if e.target == f"alert:{a.id}"]
        assert actions == ["alert.resolved", "alert.open", "alert.snoozed"]
        opened = await repo.audit_entries(s, action="alert.open")  # 4 alerts opened, 1 reopened by hand
        assert sorted(e.target for e in opened) == sorted([ARN, ARN2, "", ARN, f"alert:{a.id}"])


# -- audit log ----------------------------------------------------------------------------------


async def test_audit_log_is_append_only(db: Database) -> None:
    acct = await _account(db)
    async with db.session() as s:
        entry = await repo.audit(s, "custom.action", actor="U1", account_id=acct, target="t", n=1, why="because")
    async with db.session() as s:
        [got] = await repo.audit_entries(s, action="custom.action")
        assert (got.actor, got.account_id, got.target, got.details) == ("U1", acct, "t", {"n": 1, "why": "because"})
        assert got.at is not None and got.at.tzinfo is not None
        assert [e.action for e in await repo.audit_entries(s, limit=1)] == ["custom.action"]

    with pytest.raises(AppendOnlyError, match="append-only"):
        async with db.session() as s:
            got = await s.get(AuditEntry, entry.id)
            got.actor = "mallory"
            await s.flush()
    with pytest.raises(AppendOnlyError):
        async with db.session() as s:
            got = await s.get(AuditEntry, entry.id)
            got.details = {}
    with pytest.raises(AppendOnlyError):
        async with db.session() as s:
            await s.delete(await s.get(AuditEntry, entry.id))
    with pytest.raises(AppendOnlyError):
        async with db.session() as s:
            await s.execute(update(AuditEntry).where(AuditEntry.id == entry.id).values(actor="mallory"))
    with pytest.raises(AppendOnlyError):
        async with db.session() as s:
            await s.execute(delete(AuditEntry))
    assert await _count(db, AuditEntry) == 2  # account.add + custom.action, untouched
    async with db.session() as s:
        [got] = await repo.audit_entries(s, action="custom.action")
        assert got.actor == "U1" and got.details == {"n": 1, "why": "because"}


# -- status -------------------------------------------------------------------------------------


async def test_status_report(db: Database) -> None:
    async with db.session() as s:
        empty = await repo.status_report(s)
        assert empty == {"accounts": [], "labels": {}, "change_sets": {}, "open_alerts": 0}
    acct = await _account(db, "acme")
    other = await _account(db, "beta")
    async with db.session() as s:
        scan = await repo.create_scan(s, await repo.get_account(s, acct))
        await repo.claim_scan(s, scan.id, "j")
        await repo.finish_scan(s, scan.id, {"attributable_cost_usd": 100.0, "untagged_cost_usd": 25.0},
                               {"resources": 80})
        await repo.add_label(s, acct, ARN, "payments")
        await repo.add_label(s, acct, ARN2, "data", source="import")
        await repo.add_label(s, other, ARN, "search")
        await repo.propose_change_set(s, acct, _items())
        await repo.open_alert(s, acct, "spike", ARN)
        resolved, _ = await repo.open_alert(s, other, "spike", ARN)
        await repo.set_alert_status(s, resolved.id, "resolved")
    async with db.session() as s:
        report = await repo.status_report(s)
    assert set(report) == {"accounts", "labels", "change_sets", "open_alerts"}
    assert report["open_alerts"] == 1
    assert report["labels"] == {"human": 2, "import": 1}
    assert report["change_sets"] == {"proposed": 1}
    acme, beta = report["accounts"]
    assert (acme["name"], acme["kind"], acme["status"]) == ("acme", "synthetic", "new")
    assert acme["labels"] == {"human": 1, "import": 1} and acme["change_sets"] == {"proposed": 1}
    last = acme["last_scan"]
    assert last["id"] == scan.id and last["status"] == "succeeded" and last["progress"] == 100.0
    assert last["resources"] == 80 and last["attributable_cost_usd"] == 100.0 and last["untagged_cost_usd"] == 25.0
    assert last["finished_at"] is not None and last["created_at"] <= last["finished_at"]
    assert beta["name"] == "beta" and beta["last_scan"] is None
    assert beta["labels"] == {"human": 1} and beta["change_sets"] == {}


async def test_failed_transaction_leaves_nothing(db: Database) -> None:
    acct = await _account(db)
    with pytest.raises(RuntimeError, match="boom"):
        async with db.session() as s:
            await repo.add_label(s, acct, ARN, "payments")
            await repo.create_scan(s, await repo.get_account(s, acct))
            raise RuntimeError("boom")
    assert await _count(db, Label) == 0
    assert await _count(db, Scan) == 0
    assert await _count(db, AuditEntry) == 1  # only account.add


@pytest.mark.asyncio
async def test_first_requests_racing_make_one_workspace_and_one_event(db: Database) -> None:
    """Concurrent first commands from a new workspace, and two deliveries of one Slack event at once."""
    import asyncio

    async def one() -> tuple[int, bool]:
        async with db.session() as s:
            ws = await repo.get_or_create_workspace(s, "slack", "T_RACE")
            return ws.id, await repo.first_time_event(s, "slack", "Ev_RACE")

    results = await asyncio.gather(*[one() for _ in range(6)])
    assert len({ws for ws, _ in results}) == 1
    assert sorted(first for _, first in results) == [False] * 5 + [True]
    async with db.session() as s:
        assert await repo.first_time_event(s, "slack", "Ev_OTHER") is True

"""The tables costdna keeps: what survives restarts, shared by the bot, the workers and the CLI.

SQLAlchemy 2 declarative models, one class per table. Every schema change is an additive Alembic
migration (``storage/migrations``). Types are portable between SQLite and PostgreSQL: JSON columns,
timezone-aware datetimes stored in UTC, text keys. Resources are keyed per account by canonical ARN,
the key the engine uses everywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them on both back ends.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An id column that is BIGINT on PostgreSQL and the rowid alias on SQLite (which autoincrements
# only an INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both back ends (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


# -- chat side ----------------------------------------------------------------------------------


class Workspace(Base):
    """A Slack team, a Discord guild or the local console: where settings and approvers live."""

    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))  # slack | discord | console
    external_id: Mapped[str] = mapped_column(String(64))  # team id / guild id
    name: Mapped[str] = mapped_column(String(200), default="")
    # digest_channel, digest_hour (0-23 UTC), approvers (platform user ids), governance_mode
    # ("approve" = every tag write needs an approver's click; "off" = never write tags)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Installation(Base):
    """A bot installation; the token is Fernet-encrypted (``storage.crypto``), never stored plain."""

    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    bot_user_id: Mapped[str] = mapped_column(String(64), default="")
    installer_user_id: Mapped[str] = mapped_column(String(64), default="")
    scopes: Mapped[str] = mapped_column(Text, default="")
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    installed_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    bot_id: Mapped[str | None] = mapped_column(String(64), default=None, nullable=True)  # (0002)
    app_id: Mapped[str | None] = mapped_column(String(64), default=None, nullable=True)  # (0002)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)  # non-secret fields (0002)


# -- cloud side ---------------------------------------------------------------------------------


class Account(Base):
    """A cloud account to scan: a synthetic org, a bundle directory, or a live AWS account."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # synthetic | bundle | aws
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspaces.id"), default=None)
    bundle_path: Mapped[str | None] = mapped_column(Text, default=None)  # bundle dir (synthetic: generated)
    role_arn: Mapped[str | None] = mapped_column(Text, default=None)
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    regions: Mapped[list[Any]] = mapped_column(default=list)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # synthetic: seed, teams, ...
    status: Mapped[str] = mapped_column(String(16), default="new")  # new | ok | error
    status_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Scan(Base):
    """One scan of an account, from queued to succeeded or failed, with its live stage and progress."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | succeeded | failed
    stage: Mapped[str] = mapped_column(String(32), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..100 over the whole scan
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(100), default=None)
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # resources, events, cost_days, predictions
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # engine.scan.summarize output
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # chat messages showing this scan's progress: [{platform, channel, ts}] (0002)
    chat_refs: Mapped[list[Any] | None] = mapped_column(JSON, default=list, nullable=True)
    # The running try's worker (host:pid) and its heartbeat (jobs.lease): past lease_expires_at with no
    # new heartbeat, the worker is lost and another worker takes the job (0003).
    worker: Mapped[str | None] = mapped_column(String(100), default=None, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None, nullable=True)

    @property
    def worker_lost(self) -> bool:
        """Running, but its worker stopped renewing its lease: it died, and the job waits for another
        worker (arq takes it back as the lease lapses)."""
        return (self.status == "running" and self.lease_expires_at is not None
                and self.lease_expires_at < utcnow())


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("account_id", "arn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    arn: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[str] = mapped_column(Text)  # the short id people use
    type: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """A CloudTrail management event (create/administer) kept as evidence; data-plane traffic is
    only folded into counts. Keyed by CloudTrail's eventID: ingesting a file twice adds nothing."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("account_id", "event_id"), Index("ix_events_account_time", "account_id", "time"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    event_id: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime | None] = mapped_column(default=None)
    event_name: Mapped[str] = mapped_column(String(128), default="")
    event_source: Mapped[str] = mapped_column(String(128), default="")
    principal: Mapped[str] = mapped_column(Text, default="")
    person: Mapped[str | None] = mapped_column(Text, default=None)
    resources: Mapped[list[Any]] = mapped_column(default=list)  # canonical ARNs
    error_code: Mapped[str | None] = mapped_column(String(128), default=None)


class DailyCost(Base):
    __tablename__ = "daily_costs"
    __table_args__ = (UniqueConstraint("account_id", "arn", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    arn: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("scan_id", "arn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    arn: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(64), default="")
    team: Mapped[str] = mapped_column(String(100), default="")  # "" when it fits no team
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    runner_up: Mapped[str] = mapped_column(String(100), default="")
    runner_up_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    probabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)  # team -> p (top few)
    tag_team: Mapped[str] = mapped_column(String(100), default="")
    tag_conflict: Mapped[bool] = mapped_column(default=False)
    anomaly_score: Mapped[float] = mapped_column(Float, default=0.0)
    monthly_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)  # (0002)


class Label(Base):
    """An owner label. History is kept: a new label supersedes the previous one, which stays."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_account_arn", "account_id", "arn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    arn: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))  # tag | human | import
    actor: Mapped[str] = mapped_column(String(100), default="")  # who gave it (chat user id, "cli", ...)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(default=None)


class ChangeSet(Base):
    """Proposed owner-tag writes: proposed -> approved | rejected -> applied | failed -> rolled_back."""

    __tablename__ = "change_sets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    tag_key: Mapped[str] = mapped_column(String(128), default="team")
    proposed_by: Mapped[str] = mapped_column(String(100), default="")
    approver: Mapped[str | None] = mapped_column(String(100), default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # counts, dollars, applied/failed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
    rolled_back_at: Mapped[datetime | None] = mapped_column(default=None)
    nonce: Mapped[str | None] = mapped_column(String(32), default=None, nullable=True)  # in buttons (0002)
    chat_refs: Mapped[list[Any] | None] = mapped_column(JSON, default=list, nullable=True)  # (0002)


class ChangeItem(Base):
    """One resource's tag write within a change set, with the tags it had before (for rollback)."""

    __tablename__ = "change_items"
    __table_args__ = (UniqueConstraint("change_set_id", "arn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"))
    arn: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(String(100))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    monthly_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    previous_tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    new_tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | applied | failed | rolled_back
    error: Mapped[str] = mapped_column(Text, default="")


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_account_status", "account_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(32))  # spike | no_team | tag_conflict | ...
    arn: Mapped[str | None] = mapped_column(Text, default=None)
    severity: Mapped[str] = mapped_column(String(16), default="info")  # info | warning | critical
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | expected | snoozed | resolved
    snooze_until: Mapped[datetime | None] = mapped_column(default=None)
    chat_refs: Mapped[list[Any]] = mapped_column(default=list)  # [{platform, channel, ts}]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Append-only: rows are inserted, never updated or deleted (enforced in ``storage.db``)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    action: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    target: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Prompt(Base):
    """A "who owns this?" question put to people: answered once, by one click, before it expires."""

    __tablename__ = "prompts"
    __table_args__ = (Index("ix_prompts_account_status", "account_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id"), default=None)
    arn: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | skipped | expired
    asked_by: Mapped[str] = mapped_column(String(100), default="")
    answered_by: Mapped[str | None] = mapped_column(String(100), default=None)
    team: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    chat_refs: Mapped[list[Any]] = mapped_column(default=list)


class ChatEvent(Base):
    """Chat events already handled (Slack retries unacknowledged events with the same event_id)."""

    __tablename__ = "chat_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthState(Base):
    """One-time OAuth ``state`` values (CSRF protection of the install flow)."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    state: Mapped[str] = mapped_column(String(100), unique=True)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- the watch (0004) ---------------------------------------------------------------------------


class Spike(Base):
    """A cost spike the hourly watch found on one resource, with its owner, cause and alert state.

    ``key`` (``arn@start_hour``) is the same across watches, so a spike is stored and alerted once;
    ``delivery`` says what governance did with it (pending | sent | held_strict | held_panic |
    held_storm | unrouted) and ``status`` what people decided (open | expected | snoozed | not_ours |
    resolved). ``series`` keeps the last hours of cost and baseline for the chart.
    """

    __tablename__ = "spikes"
    __table_args__ = (UniqueConstraint("account_id", "key"), Index("ix_spikes_account_status", "account_id", "status"),
                      Index("ix_spikes_account_arn", "account_id", "arn"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    key: Mapped[str] = mapped_column(String(400))
    arn: Mapped[str] = mapped_column(Text)
    resource_id: Mapped[str] = mapped_column(Text, default="")
    resource_type: Mapped[str] = mapped_column(String(64), default="")
    instance_type: Mapped[str | None] = mapped_column(String(64), default=None, nullable=True)
    kind: Mapped[str] = mapped_column(String(32), default="statistical")  # statistical | cold_start | early_warning
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()  # exclusive: last anomalous hour + 1 h
    ongoing: Mapped[bool] = mapped_column(default=False)
    peak_usd_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    baseline_usd_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    extra_usd: Mapped[float] = mapped_column(Float, default=0.0)
    severity: Mapped[str] = mapped_column(String(16), default="info")  # info | warning | critical
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    history_hours: Mapped[int] = mapped_column(Integer, default=0)
    owner_team: Mapped[str] = mapped_column(String(100), default="")
    owner_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    owner_source: Mapped[str] = mapped_column(String(16), default="none")  # tag | label | predicted | creator | none
    cause: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)
    people: Mapped[list[Any]] = mapped_column(default=list)  # who launched/deployed it (CloudTrail person, deploy actor)
    status: Mapped[str] = mapped_column(String(16), default="open")
    snooze_until: Mapped[datetime | None] = mapped_column(default=None, nullable=True)
    delivery: Mapped[str] = mapped_column(String(16), default="pending")
    notified_at: Mapped[datetime | None] = mapped_column(default=None, nullable=True)
    nonce: Mapped[str] = mapped_column(String(32), default="")
    chat_refs: Mapped[list[Any]] = mapped_column(default=list)
    series: Mapped[list[Any]] = mapped_column(default=list)  # [[epoch_hour, cost, baseline], ...] last 72 h
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WatchFile(Base):
    """An export file the watch has read (keyed by path; a new size or mtime means read it again),
    with its cost folded to resource-hours (``engine.hourly.CostPart.to_bytes``) for cost files."""

    __tablename__ = "watch_files"
    __table_args__ = (UniqueConstraint("account_id", "path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    kind: Mapped[str] = mapped_column(String(16), default="")  # cost | cloudtrail | deploys
    rows: Mapped[int] = mapped_column(Integer, default=0)
    read_at: Mapped[datetime] = mapped_column(default=utcnow)
    part: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, nullable=True)


class WatchChanges(Base):
    """The retained deploys and the watch's state, one row per account (the change events are in
    ``watch_change_parts``)."""

    __tablename__ = "watch_changes"
    __table_args__ = (UniqueConstraint("account_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    deploys: Mapped[list[Any]] = mapped_column(default=list)  # [{time, repo, commit, actor, resources}]
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)  # last_scored_hour, first_hour, ...
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WatchChangePart(Base):
    """The CloudTrail change events one watch read (``engine.sources.changes.table_to_bytes``): each
    watch adds its own part instead of rewriting the whole window; parts whose newest event left the
    window are deleted, and many small parts are merged now and then."""

    __tablename__ = "watch_change_parts"
    __table_args__ = (Index("ix_watch_change_parts_account", "account_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    events: Mapped[int] = mapped_column(Integer, default=0)
    min_time: Mapped[float] = mapped_column(Float, default=0.0)
    max_time: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamRoute(Base):
    """Who hears about a team's spikes in a workspace: people to DM and/or a channel."""

    __tablename__ = "team_routes"
    __table_args__ = (UniqueConstraint("workspace_id", "team"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    team: Mapped[str] = mapped_column(String(100))
    users: Mapped[list[Any]] = mapped_column(default=list)  # chat user ids
    channel: Mapped[str | None] = mapped_column(String(100), default=None, nullable=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpectedLevel(Base):
    """A resource's cost level that people marked expected: at or below it is baseline, not a spike."""

    __tablename__ = "expected_levels"
    __table_args__ = (UniqueConstraint("account_id", "arn"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    arn: Mapped[str] = mapped_column(Text)
    usd_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppSwitch(Base):
    """A global switch (``alerts.panic``): read by every process, changed by a person (audited)."""

    __tablename__ = "app_switches"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- the ask agent (0005) -----------------------------------------------------------------------


class AskThread(Base):
    """The context of a conversation with the ask agent in one chat thread, so that a follow-up in the
    same thread ("and last month?", "who owns the second one?") starts from the previous answer.

    Keyed by where the thread lives (platform, channel, the thread root's ts); ``context`` is the last
    answer's ``Answer.context`` (opaque here) and the row is ignored after ``expires_at`` and purged
    later. A slash command's answer becomes a thread root only once it is posted: until the adapter
    attaches the posted message's ts, ``thread_ts`` holds a provisional ``pending:…`` key.
    """

    __tablename__ = "ask_threads"
    __table_args__ = (UniqueConstraint("platform", "channel", "thread_ts"),
                      Index("ix_ask_threads_expires_at", "expires_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(String(64), default="")  # Slack team id / Discord guild id
    channel: Mapped[str] = mapped_column(String(100))
    thread_ts: Mapped[str] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(100), default=None, nullable=True)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)

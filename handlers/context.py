"""What a handler gets and gives back, on every platform.

A platform adapter (Slack, Discord, the console) turns a slash command, a mention or a button click
into a call ``handle_command(services, who, text)`` / ``handle_action(services, who, action_id, value)``
and renders the ``Reply``: cards to post (each possibly ephemeral), a card that replaces the message
the button was on, and what posted messages show (a scan, a change set, a prompt), so the adapter can
remember the message and the job notifier can update it later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from handlers.cards import Card


@dataclass(frozen=True)
class Who:
    """The person (and place) behind a request."""

    platform: str  # slack | discord | console
    workspace: str  # Slack team id / Discord guild id / "local"
    user_id: str
    user_name: str = ""
    channel_id: str = ""
    thread_ts: str = ""  # the chat thread the request came from (its root's ts), "" when none
    roles: tuple[str, ...] = ()  # Discord: the role ids the member holds (an approver may be a role)

    def is_among(self, approvers: Iterable[str]) -> bool:
        """One of ``approvers``: by user id, or (Discord) by a role they hold, listed as ``role:<id>``."""
        allowed = set(approvers)
        return self.user_id in allowed or any(f"role:{r}" in allowed for r in self.roles)

    def mention(self) -> str:
        return f"<@{self.user_id}>" if self.platform in ("slack", "discord") else (self.user_name or self.user_id)


@dataclass
class Services:
    """Shared, long-lived: the database, the job queue, settings."""

    db: Any  # storage.db.Database
    queue: Any  # jobs.queue.JobQueue
    settings: Any  # config.settings.Settings


@dataclass
class Post:
    card: Card
    # ("scan" | "changeset" | "prompt", row id) the message shows; ("ask", ask thread id): the posted
    # message becomes the root of that ask thread (storage.ask_repo.attach_thread)
    tracks: tuple[str, int] | None = None


@dataclass
class Reply:
    posts: list[Post] = field(default_factory=list)  # new messages, in order
    replace: Card | None = None  # for a button: the card that replaces the clicked message
    ephemeral: Card | None = None  # for a button: a note only the clicker sees (refusals, errors)

    @classmethod
    def of(cls, *cards: Card, tracks: tuple[str, int] | None = None) -> Reply:
        return cls(posts=[Post(c, tracks if i == 0 else None) for i, c in enumerate(cards)])

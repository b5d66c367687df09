"""Where a spike alert goes: the owning team's mapped people (DM) and channel, plus the person who
launched or deployed the resource when CloudTrail names them by e-mail; else the alerts channel with
an "assign team" button.

Routing reads the workspace's ``team_routes`` (``/costdna settings team <team> @user… #channel``).
The chat adapter turns ``emails`` into user ids (Slack: ``users.lookupByEmail``). A low-confidence
owner (predicted or inferred from the creator) is flagged a guess, so the card says so.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage import watch_repo
from storage.models import Workspace

EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
GUESS_SOURCES = ("predicted", "creator")


def looks_like_email(s: str | None) -> bool:
    return bool(s) and bool(EMAIL.match(s.strip()))  # type: ignore[union-attr]


@dataclass
class Route:
    """Who hears about one spike. ``fallback``: no mapping for the team: the alerts channel, with an
    "assign team" button. ``guess``: the owner is a low-confidence inference."""

    users: list[str] = field(default_factory=list)  # chat user ids to DM
    emails: list[str] = field(default_factory=list)  # people to look up by e-mail and DM
    channel: str | None = None
    fallback: bool = False
    guess: bool = False
    team: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Route:
        return cls(**{k: d[k] for k in ("users", "emails", "channel", "fallback", "guess", "team") if k in d})

    @property
    def empty(self) -> bool:
        """Nobody and nowhere to send to."""
        return not (self.users or self.emails or self.channel)


def spike_people(spike: Any) -> list[str]:
    """E-mails of the people behind the spike's resource: who launched it (stored ``people``) and who
    deployed the change named as its cause."""
    out = [p for p in (getattr(spike, "people", None) or []) if looks_like_email(p)]
    cause = getattr(spike, "cause", None) or {}
    actor = cause.get("actor") if isinstance(cause, dict) else None
    if looks_like_email(actor):
        out.append(actor)
    return list(dict.fromkeys(p.strip().lower() for p in out))


async def route_for(s: AsyncSession, account: Any, spike: Any, *, threshold: float | None = None) -> Route:
    """The route of one spike (a ``storage.models.Spike`` or anything with owner_team,
    owner_confidence, owner_source, people, cause) for ``account``'s workspace."""
    if threshold is None:
        from config.settings import get_settings

        threshold = get_settings().confidence_threshold
    team = getattr(spike, "owner_team", "") or ""
    source = getattr(spike, "owner_source", "") or "none"
    guess = bool(team) and source in GUESS_SOURCES and float(getattr(spike, "owner_confidence", 0.0)) < threshold
    emails = spike_people(spike)
    ws = await account_workspace(s, account)
    fallback_channel = alerts_channel(ws)
    mapped = await watch_repo.team_route(s, ws.id, team) if (ws is not None and team) else None
    if mapped is not None and (mapped.users or mapped.channel):
        return Route(users=list(mapped.users), emails=emails, channel=mapped.channel, fallback=False, guess=guess,
                     team=team)
    return Route(users=[], emails=emails, channel=fallback_channel, fallback=True, guess=guess, team=team)


async def account_workspace(s: AsyncSession, account: Any) -> Workspace | None:
    return await s.get(Workspace, account.workspace_id) if account.workspace_id else None


def alerts_channel(ws: Workspace | None) -> str | None:
    """Where unrouted alerts and storm summaries go: the workspace's alerts channel, else its digest channel."""
    st = (ws.settings or {}) if ws is not None else {}
    return st.get("alerts_channel") or st.get("digest_channel") or None


__all__ = ["Route", "route_for", "spike_people", "looks_like_email", "account_workspace", "alerts_channel"]

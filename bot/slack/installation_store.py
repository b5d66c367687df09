"""Bolt's installation and OAuth-state stores over costdna's own database (OAuth mode).

An installation is one row of ``installations`` (``storage.models.Installation``) under the
workspace's row of ``workspaces``: the bot token Fernet-encrypted (``storage.crypto``, via
``repo.save_installation``), bot user id, bot id, app id, scopes and the installer; other non-secret
fields (team and enterprise names, user scopes) in ``details``. A re-install revokes the previous row;
an uninstall (``tokens_revoked`` / ``app_uninstalled``, handled by Bolt) marks the row revoked.
User tokens and refresh tokens are not kept: costdna acts as its bot only, without token rotation.
Tokens are never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from sqlalchemy import select, update

from storage import repo
from storage.models import Installation as InstallationRow
from storage.models import Workspace, utcnow

log = logging.getLogger("costdna.slack")
PLATFORM = "slack"


def workspace_key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> str:
    """The workspace row's external id: the team, or the org for an org-wide (Enterprise Grid) install."""
    if is_enterprise_install and enterprise_id:
        return enterprise_id
    return team_id or enterprise_id or ""


def _scopes(value: Any) -> str:
    if not value:
        return ""
    return value if isinstance(value, str) else ",".join(value)


def _ts(when: datetime | None) -> float:
    if when is None:
        return datetime.now(UTC).timestamp()
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class DbInstallationStore(AsyncInstallationStore):
    def __init__(self, db: Any) -> None:
        self.db = db
        self._logger = log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    # -- save --------------------------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        if not installation.bot_token:
            log.warning("slack: installation for %s has no bot token (user-only install): not stored",
                        installation.team_id or installation.enterprise_id)
            return
        details = {
            "enterprise_id": installation.enterprise_id,
            "enterprise_name": installation.enterprise_name,
            "team_id": installation.team_id,
            "team_name": installation.team_name,
            "is_enterprise_install": bool(installation.is_enterprise_install),
            "token_type": installation.token_type,
            "user_scopes": _scopes(installation.user_scopes),
            "incoming_webhook_channel_id": installation.incoming_webhook_channel_id,
        }
        await self._save(installation.enterprise_id, installation.team_id, installation.is_enterprise_install,
                         installation.team_name or installation.enterprise_name or "",
                         token=installation.bot_token, bot_user_id=installation.bot_user_id or "",
                         bot_id=installation.bot_id, app_id=installation.app_id,
                         installer=installation.user_id or "", scopes=_scopes(installation.bot_scopes),
                         details=details)

    async def async_save_bot(self, bot: Bot) -> None:
        details = {"enterprise_id": bot.enterprise_id, "enterprise_name": bot.enterprise_name,
                   "team_id": bot.team_id, "team_name": bot.team_name,
                   "is_enterprise_install": bool(bot.is_enterprise_install)}
        await self._save(bot.enterprise_id, bot.team_id, bot.is_enterprise_install,
                         bot.team_name or bot.enterprise_name or "", token=bot.bot_token,
                         bot_user_id=bot.bot_user_id or "", bot_id=bot.bot_id, app_id=bot.app_id, installer="",
                         scopes=_scopes(bot.bot_scopes), details=details)

    async def _save(self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None,
                    name: str, *, token: str, bot_user_id: str, bot_id: str | None, app_id: str | None,
                    installer: str, scopes: str, details: dict[str, Any]) -> None:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install)
        async with self.db.session() as s:
            ws = await repo.get_or_create_workspace(s, PLATFORM, key, name)
            if name and ws.name != name:
                ws.name = name
            inst = await repo.save_installation(s, ws, token, bot_user_id=bot_user_id, installer_user_id=installer,
                                                scopes=scopes)
            inst.bot_id, inst.app_id, inst.details = bot_id, app_id, details
        log.info("slack: installed in %s (%s) by %s", key, name or "?", installer or "?")

    # -- find --------------------------------------------------------------------------------------

    async def _active(self, enterprise_id: str | None, team_id: str | None,
                      is_enterprise_install: bool | None) -> tuple[Workspace, InstallationRow, str] | None:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install)
        if not key:
            return None
        async with self.db.session() as s:
            ws = await s.scalar(select(Workspace).where(Workspace.platform == PLATFORM, Workspace.external_id == key))
            if ws is None:
                return None
            row = await repo.active_installation(s, ws)
            if row is None:
                return None
            try:
                token = repo.installation_token(row)
            except Exception:  # the key changed (COSTDNA_SECRET_KEY): the workspace must re-install
                log.error("slack: the stored token for %s cannot be decrypted; re-install the app there", key)
                return None
            return ws, row, token

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        found = await self._active(enterprise_id, team_id, is_enterprise_install)
        if found is None:
            return None
        ws, row, token = found
        d = row.details or {}
        return Bot(app_id=row.app_id, enterprise_id=d.get("enterprise_id", enterprise_id),
                   enterprise_name=d.get("enterprise_name"), team_id=d.get("team_id", team_id),
                   team_name=d.get("team_name") or ws.name, bot_token=token, bot_id=row.bot_id or "",
                   bot_user_id=row.bot_user_id, bot_scopes=row.scopes,
                   is_enterprise_install=bool(d.get("is_enterprise_install")), installed_at=_ts(row.installed_at))

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        found = await self._active(enterprise_id, team_id, is_enterprise_install)
        if found is None:
            return None
        ws, row, token = found
        if user_id is not None and user_id != row.installer_user_id:
            return None  # only the installer's installation is stored (no user tokens)
        d = row.details or {}
        return Installation(
            app_id=row.app_id, enterprise_id=d.get("enterprise_id", enterprise_id),
            enterprise_name=d.get("enterprise_name"), team_id=d.get("team_id", team_id),
            team_name=d.get("team_name") or ws.name, bot_token=token, bot_id=row.bot_id,
            bot_user_id=row.bot_user_id, bot_scopes=row.scopes, user_id=row.installer_user_id,
            user_scopes=d.get("user_scopes", ""), incoming_webhook_channel_id=d.get("incoming_webhook_channel_id"),
            is_enterprise_install=bool(d.get("is_enterprise_install")), token_type=d.get("token_type"),
            installed_at=_ts(row.installed_at))

    # -- delete (uninstall, token revocation) -------------------------------------------------------

    async def _revoke(self, enterprise_id: str | None, team_id: str | None) -> None:
        key = workspace_key(enterprise_id, team_id, is_enterprise_install=not team_id)
        async with self.db.session() as s:
            ws = await s.scalar(select(Workspace).where(Workspace.platform == PLATFORM, Workspace.external_id == key))
            if ws is None:
                return
            await s.execute(update(InstallationRow).where(InstallationRow.workspace_id == ws.id,
                                                          InstallationRow.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))
            await repo.audit(s, "uninstall", target=f"workspace:{ws.id}")
        log.info("slack: installation in %s revoked", key)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._revoke(enterprise_id, team_id)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        if user_id is None:
            await self._revoke(enterprise_id, team_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._revoke(enterprise_id, team_id)


class DbOAuthStateStore(AsyncOAuthStateStore):
    """OAuth ``state`` values: issued per install attempt, consumed once, expiring after 10 minutes."""

    def __init__(self, db: Any) -> None:
        self.db = db

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        async with self.db.session() as s:
            return await repo.issue_oauth_state(s)

    async def async_consume(self, state: str) -> bool:
        async with self.db.session() as s:
            return await repo.consume_oauth_state(s, state)


async def token_for_workspace(db: Any, team_id: str | None) -> str | None:
    """The active bot token of a workspace (or, without ``team_id``, of the newest Slack installation)."""
    async with db.session() as s:
        q = (select(InstallationRow).join(Workspace, Workspace.id == InstallationRow.workspace_id)
             .where(Workspace.platform == PLATFORM, InstallationRow.revoked_at.is_(None))
             .order_by(InstallationRow.id.desc()).limit(1))
        if team_id:
            q = q.where(Workspace.external_id == team_id)
        row = await s.scalar(q)
        if row is None:
            return None
        try:
            return repo.installation_token(row)
        except Exception:
            log.error("slack: a stored token cannot be decrypted (was COSTDNA_SECRET_KEY changed?)")
            return None

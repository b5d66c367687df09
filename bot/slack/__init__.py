"""The Slack adapter: a Bolt ``AsyncApp`` that translates slash commands, button clicks, mentions and
App Home visits into calls to the platform-neutral handlers, and renders their cards as Block Kit.

- ``bot.slack.app``: ``build_slack_app(svc, settings)`` and the listeners.
- ``bot.slack.installation_store``: Bolt's installation and OAuth-state stores over our database.
- ``bot.slack.notify``: ``SlackNotifier``, which updates posted messages as jobs progress.
- ``bot.slack.server``: mounting on the web process (``/slack/events``, OAuth routes) or Socket Mode.
"""

from __future__ import annotations

from typing import Any


def slack_mode(settings: Any) -> str | None:
    """``"oauth"`` (multi-workspace), ``"single"`` (one bot token) or None when Slack is not configured."""
    if settings.slack_client_id and settings.slack_client_secret and settings.slack_signing_secret:
        return "oauth"
    if settings.slack_bot_token and settings.slack_signing_secret:
        return "single"
    return None


def missing_settings(settings: Any, socket: bool = False) -> list[str]:
    """Environment variables still needed for Slack (HTTP, or Socket Mode with ``socket``)."""
    missing = []
    if socket:
        if not settings.slack_bot_token:
            missing.append("SLACK_BOT_TOKEN")
        if not settings.slack_app_token:
            missing.append("SLACK_APP_TOKEN")
        return missing
    if not settings.slack_signing_secret:
        missing.append("SLACK_SIGNING_SECRET")
    if not settings.slack_bot_token and not (settings.slack_client_id and settings.slack_client_secret):
        missing.append("SLACK_BOT_TOKEN (or SLACK_CLIENT_ID + SLACK_CLIENT_SECRET)")
    return missing

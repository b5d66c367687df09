"""The Discord adapter: a discord.py client that translates ``/costdna`` application commands, button and
select clicks and ``@costdna`` mentions into calls to the platform-neutral handlers, and renders their
cards as embeds with persistent components.

- ``bot.discord.app``: ``build_client(svc, settings)``, ``run(settings)`` (what ``costdna discord`` runs),
  the ``/costdna`` command tree (:func:`bot.discord.app.command_group`) and the interaction flow.
- ``bot.discord.render``: Card -> embeds + View + files, within Discord's limits; the dynamic items.
- ``bot.discord.alerts``: spike alerts as DMs to mapped users (closed DMs -> the alerts channel), storm
  summaries and digests to channels, and the job notifier that edits the messages showing a scan.
"""

from __future__ import annotations

from typing import Any

DEFAULT_API_URL = "https://discord.com/api/v10"


def missing_settings(settings: Any) -> list[str]:
    """Environment variables still needed for Discord."""
    return [] if getattr(settings, "discord_token", None) else ["DISCORD_TOKEN"]


def configure_api(settings: Any) -> str:
    """Point discord.py's REST calls at ``DISCORD_API_URL`` (a local stand-in in tests); the gateway URL
    then comes from that server's ``GET /gateway/bot``. The base URL in use."""
    import discord.http

    url = (getattr(settings, "discord_api_url", None) or DEFAULT_API_URL).rstrip("/")
    discord.http.Route.BASE = url
    return url


async def follow_gateway(http: Any, settings: Any) -> str | None:
    """With ``DISCORD_API_URL`` set to anything but Discord's, connect the gateway where that server's
    ``GET /gateway/bot`` says (discord.py itself always connects to ``DiscordWebSocket.DEFAULT_GATEWAY``).
    ``http``: a logged-in client's ``client.http``. The gateway URL set, or None (Discord's own)."""
    url = (getattr(settings, "discord_api_url", None) or DEFAULT_API_URL).rstrip("/")
    if url == DEFAULT_API_URL:
        return None
    import discord.gateway
    import yarl

    _, gateway, _ = await http.get_bot_gateway()
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    return gateway

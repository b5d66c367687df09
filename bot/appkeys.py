"""The keys of the web process's aiohttp application, shared by ``bot.web`` and every adapter mounted on it.

They live here, below both, so an adapter's server module (``bot.slack.server``) reads the database that
``bot.web.make_app`` opened without importing ``bot.web``, which imports the adapter to mount it.
"""

from __future__ import annotations

from aiohttp import web

from config.settings import Settings

DB_KEY = web.AppKey("db", object)  # the storage.db.Database opened on start-up
SETTINGS_KEY = web.AppKey("settings", Settings)

"""The settings live in ``config.settings`` (below every layer); this name is kept for the CLI's users."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]

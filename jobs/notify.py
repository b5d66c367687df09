"""Notifiers: how a running job tells the world about itself (progress, results, failures).

A notifier is any ``async def notify(kind: str, **payload)``. Jobs call it at every stage; the chat
adapters register theirs to update a message, the CLI to draw a progress bar. A notifier that fails
never fails the job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("costdna.jobs")


class Notifier(Protocol):
    async def __call__(self, kind: str, **payload: Any) -> None: ...


async def log_notifier(kind: str, **payload: Any) -> None:
    brief = {k: v for k, v in payload.items() if k not in ("summary",)}
    log.info("%s %s", kind, brief)


class Fanout:
    """Calls every registered notifier in turn; one that raises is logged and skipped."""

    def __init__(self, *notifiers: Callable[..., Awaitable[None]]):
        self.notifiers = list(notifiers)

    def add(self, notifier: Callable[..., Awaitable[None]]) -> None:
        self.notifiers.append(notifier)

    async def __call__(self, kind: str, **payload: Any) -> None:
        for n in self.notifiers:
            try:
                await n(kind, **payload)
            except Exception:
                log.exception("notifier %r failed on %s", n, kind)

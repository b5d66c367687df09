"""``costdna chat``: the chat surface in a terminal, driving the same handlers as Slack and Discord.

Type a subcommand (``status``, ``/costdna scan``, ``ask top spenders``…); cards are drawn with
:mod:`handlers.render_terminal`. A card's buttons and select options are numbered: ``2`` presses
choice 2 of the newest card that still has choices, ``K/2`` choice 2 of card K (shown above each
interactive card). Jobs run in this process; after a scan or a tag write the chat waits for it and
shows the finished card, as the Slack notifier would update the message. ``home`` shows the App
Home cards; ``quit`` (or the end of the input) ends the session.

Scriptable: ``costdna chat --script FILE`` or lines on stdin (``#`` starts a comment line). The
console user is ``console``, an approver. Debounced retrains (after labels) are not run here: the
labels are stored and the next ``scan`` learns from them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from handlers import views
from handlers.actions import handle_action
from handlers.cards import Button, Card
from handlers.commands import handle_command
from handlers.context import Reply, Services, Who
from handlers.home import home_cards
from handlers.render_terminal import render

CONSOLE_USER = Who(platform="console", workspace="local", user_id="console", user_name="console")
FINISHED = {"scan.finished": "scan", "scan.failed": "scan", "changeset.applied": "changeset",
            "changeset.failed": "changeset", "changeset.rolled_back": "changeset"}


class ChatQueue:
    """The in-process queue, except that deferred jobs (debounced retrains) are held, not slept on:
    a console session never waits 30 s for a debounce. ``held`` lists them; ``release`` runs them."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.held: dict[str, tuple[str, tuple]] = {}

    async def enqueue(self, name: str, *args: Any, job_id: str | None = None, defer_by: float | None = None) -> bool:
        if defer_by:
            key = job_id or f"{name}:{args}"
            if key in self.held:
                return False
            self.held[key] = (name, args)
            return True
        return await self.inner.enqueue(name, *args, job_id=job_id)

    async def release(self) -> None:
        held, self.held = self.held, {}
        for job_id, (name, args) in held.items():
            await self.inner.enqueue(name, *args, job_id=job_id)

    async def wait(self) -> None:
        """Wait for every job that is queued or running (held ones are not)."""
        await self.inner.join()

    async def join(self) -> None:
        await self.inner.join()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class _Open:
    number: int
    card: Card
    choices: list[tuple[int, Any]]


@dataclass
class ChatSession:
    console: Console
    svc: Services
    queue: ChatQueue
    who: Who = CONSOLE_USER
    events: list[tuple[str, dict]] = field(default_factory=list)
    open_cards: list[_Open] = field(default_factory=list)
    next_card: int = 1
    last_stage: dict[int, str] = field(default_factory=dict)

    async def notify(self, kind: str, **payload: Any) -> None:
        self.events.append((kind, payload))
        if kind == "scan.progress":
            sid, stage = payload.get("scan_id"), payload.get("stage", "")
            if self.last_stage.get(sid) != stage:
                self.last_stage[sid] = stage
                self.console.print(f"[dim]  scan #{sid}: {stage} {payload.get('progress', 0):.0f}%[/]")

    def show(self, card: Card) -> None:
        numbered = render(self.console, card)
        if numbered:
            n = self.next_card
            self.next_card += 1
            self.open_cards.append(_Open(n, card, numbered))
            self.console.print(f"[dim]card {n}: type a number to choose, or {n}/N[/]")

    async def show_reply(self, reply: Reply, replaced: _Open | None = None) -> None:
        if reply.replace is not None:
            if replaced is not None and replaced in self.open_cards:
                self.open_cards.remove(replaced)
            self.console.print("[dim](the message above is updated:)[/]")
            self.show(reply.replace)
        if reply.ephemeral is not None:
            self.show(reply.ephemeral)
        for post in reply.posts:
            self.show(post.card)
        await self.after()

    async def after(self) -> None:
        """Wait for jobs started by the last input, then show the cards they finished (the notifier's job)."""
        await self.queue.wait()
        seen: set[tuple[str, int]] = set()
        events, self.events = self.events, []
        for kind, payload in events:
            what = FINISHED.get(kind)
            if what is None:
                continue
            row = payload.get("scan_id") if what == "scan" else payload.get("change_set_id")
            if row is None or (what, row) in seen:
                continue
            seen.add((what, row))
            card, _refs = await views.refreshed(self.svc.db, what, int(row))
            self.console.print(f"[dim]({kind}:)[/]")
            self.show(card)

    def pick(self, text: str) -> tuple[_Open, Any] | None:
        card_no, _, n = text.rpartition("/")
        if not n.isdigit() or (card_no and not card_no.isdigit()):
            return None
        if card_no:
            target = next((o for o in self.open_cards if o.number == int(card_no)), None)
        else:
            target = self.open_cards[-1] if self.open_cards else None
        if target is None:
            return None
        choice = dict(target.choices).get(int(n))
        return (target, choice) if choice is not None else None

    async def handle(self, line: str) -> bool:
        """One line of input; False to end the session."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if text.lower() in ("quit", "exit", "/quit", "bye"):
            return False
        if text[0].isdigit():
            picked = self.pick(text)
            if picked is None:
                self.console.print(f"[yellow]no choice {text!r} on the cards shown; type a subcommand or a "
                                   "number from the newest card[/]")
                return True
            target, choice = picked
            if isinstance(choice, Button):
                action_id, value, label = choice.action_id, choice.value, choice.text
            else:
                select, option = choice
                action_id, value, label = select.action_id, option.value, option.text
            self.console.print(f"[dim]→ {label}[/]")
            await self.show_reply(await handle_action(self.svc, self.who, action_id, value), replaced=target)
            return True
        if text.lower() in ("home", "/costdna home"):
            for card in await home_cards(self.svc, self.who):
                self.show(card)
            return True
        await self.show_reply(await handle_command(self.svc, self.who, text))
        return True


async def open_session(settings: Any, console: Console) -> ChatSession:
    from jobs.queue import open_queue
    from jobs.worker import job_context

    approvers = ",".join(dict.fromkeys([*settings.approver_ids(), CONSOLE_USER.user_id]))
    local = settings.model_copy(update={"redis_url": None, "approvers": approvers})
    holder: dict[str, ChatSession] = {}

    async def notify(kind: str, **payload: Any) -> None:
        if "s" in holder:
            await holder["s"].notify(kind, **payload)

    ctx = await job_context(local, notify=notify)
    inner = await open_queue(local, ctx)
    queue = ChatQueue(inner)
    session = ChatSession(console=console, svc=Services(db=ctx["db"], queue=queue, settings=local), queue=queue)
    holder["s"] = session
    return session


async def close_session(session: ChatSession) -> None:
    if session.queue.held:
        session.console.print(f"[dim]{len(session.queue.held)} retrain(s) after new labels not run here: the labels "
                              "are stored and the next `scan` learns from them[/]")
    await session.queue.close()
    await session.svc.db.close()


async def run_chat(settings: Any, lines: Iterable[str] | None, console: Console, *, echo: bool = True) -> ChatSession:
    """Run a chat session over ``lines`` (a script), or interactively when ``lines`` is None."""
    session = await open_session(settings, console)
    try:
        if lines is None:
            console.print("[bold]costdna chat[/]: type `help`, a subcommand, or a number to press a button; "
                          "`quit` to leave")
            while True:
                try:
                    line = await asyncio.to_thread(console.input, "[bold cyan]costdna>[/] ")
                except (EOFError, KeyboardInterrupt):
                    break
                if not await session.handle(line):
                    break
        else:
            for line in lines:
                if echo and line.strip() and not line.strip().startswith("#"):
                    console.print(f"[bold cyan]costdna>[/] {line.strip()}")
                if not await session.handle(line):
                    break
    finally:
        await close_session(session)
    return session

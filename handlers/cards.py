"""Cards: the one thing handlers return, rendered by each platform (Block Kit, Discord, terminal).

A card is a title, sections of markdown text with optional fields, buttons and selects that carry an
action id and a value, an optional image (a PNG chart), a context line, and whether only the asking
person should see it. Nothing here
knows a platform; the renderers enforce each platform's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    text: str
    action_id: str  # what the click does: routed to handlers.actions
    value: str = ""  # the database row it acts on (and a nonce), checked on click
    style: str = ""  # "" | "primary" | "danger"


@dataclass(frozen=True)
class Option:
    text: str
    value: str


@dataclass(frozen=True)
class Select:
    placeholder: str
    action_id: str
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Image:
    """A small PNG (a chart). Block Kit cannot embed bytes, so Slack uploads it beside the message (in its
    thread); the terminal writes it to a file and prints the path."""

    png: bytes
    alt: str  # what the picture shows, for screen readers and text-only clients
    filename: str = "chart.png"


@dataclass
class Section:
    text: str = ""  # markdown (platform-neutral subset: *bold*, _italic_, `code`, links <url|text>)
    fields: list[tuple[str, str]] = field(default_factory=list)  # (label, value) pairs


@dataclass
class Card:
    title: str
    sections: list[Section] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    selects: list[Select] = field(default_factory=list)
    context: str = ""  # a small grey line at the bottom
    ephemeral: bool = False  # only the person who asked sees it
    kind: str = "info"  # info | progress | summary | prompt | changeset | error | help | alert | digest
    image: Image | None = None  # a chart, uploaded (Slack) or written (terminal) beside the card

    def text(self) -> str:
        """Plain-text fallback (notifications, screen readers, logs)."""
        parts = [self.title]
        for s in self.sections:
            if s.text:
                parts.append(s.text)
            parts.extend(f"{k}: {v}" for k, v in s.fields)
        return "\n".join(parts)


def error_card(message: str, hint: str = "") -> Card:
    return Card(title="costdna couldn't do that", sections=[Section(message)], context=hint, ephemeral=True,
                kind="error")


def progress_bar(pct: float, width: int = 20) -> str:
    done = int(round(width * max(0.0, min(100.0, pct)) / 100))
    return "▓" * done + "░" * (width - done) + f" {pct:.0f}%"

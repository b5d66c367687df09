"""Render a platform-neutral :class:`~handlers.cards.Card` in a terminal with rich.

``render(console, card)`` draws the card as a panel (title, text, fields as a small table, numbered
buttons and numbered select options, the context line) and returns the numbered choices, so a console
chat can ask "choose a number" and act on ``choices[n]``: a :class:`Button`, or ``(Select, Option)``.
Numbers start at 1 and run through the buttons in order, then every select's options in order.

A card's image (a PNG chart) cannot be drawn in a terminal: it is written to a file
(``image_dir``, default ``$TMPDIR/costdna-charts``) and the panel prints its path.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from handlers.cards import Button, Card, Option, Select

Choice = Button | tuple[Select, Option]

BORDER = {
    "error": "red",
    "progress": "blue",
    "summary": "green",
    "prompt": "magenta",
    "changeset": "yellow",
    "help": "cyan",
}
BUTTON_STYLE = {"primary": "bold green", "danger": "bold red", "": "bold"}

# Neutral markdown: ```block```, `code`, *bold*, _italic_, <url|text>, <url>, Slack-style <@U123> mentions.
_MD = re.compile(
    r"```\n?(?P<block>.*?)```"
    r"|`(?P<code>[^`\n]+)`"
    r"|(?<![\w*])\*(?P<bold>[^*\n]+?)\*(?![\w*])"
    r"|(?<![\w])_(?P<italic>[^_\n]+?)_(?![\w])"
    r"|<(?P<url>[^<>|\s]+)\|(?P<label>[^<>]+)>"
    r"|<(?P<bare>(?:https?://|mailto:)[^<>\s]+)>"
    r"|<(?P<mention>[@#!][^<>]+)>",
    re.DOTALL,
)


def styled(text: str) -> Text:
    """Neutral markdown as a rich ``Text`` (styles applied to spans; no rich markup is interpreted)."""
    out = Text()
    pos = 0
    for m in _MD.finditer(text):
        out.append(text[pos : m.start()])
        g = m.groupdict()
        if g["block"] is not None:
            out.append(g["block"].rstrip("\n"), style="cyan")
        elif g["code"] is not None:
            out.append(g["code"], style="bold cyan")
        elif g["bold"] is not None:
            out.append(g["bold"], style="bold")
        elif g["italic"] is not None:
            out.append(g["italic"], style="italic")
        elif g["url"] is not None:
            out.append(g["label"], style=f"underline link {g['url']}")
            out.append(f" ({g['url']})", style="dim")
        elif g["bare"] is not None:
            out.append(g["bare"], style=f"underline link {g['bare']}")
        else:
            mention = g["mention"]
            _, _, label = mention.partition("|")
            out.append(label or mention, style="bold blue")
        pos = m.end()
    out.append(text[pos:])
    return out


def _fields(fields: list[tuple[str, str]]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0), pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in fields:
        table.add_row(styled(label), styled(value))
    return table


def choices(card: Card) -> list[tuple[int, Choice]]:
    """The card's numbered choices, as :func:`render` shows them (without drawing anything)."""
    items: list[Choice] = list(card.buttons)
    for s in card.selects:
        items.extend((s, o) for o in s.options)
    return list(enumerate(items, 1))


def save_image(card: Card, image_dir: Path | None = None) -> Path | None:
    """Write the card's image to ``image_dir`` (created; default ``$TMPDIR/costdna-charts``); its path."""
    img = card.image
    if img is None or not img.png:
        return None
    d = Path(image_dir) if image_dir is not None else Path(tempfile.gettempdir()) / "costdna-charts"
    d.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(img.filename or "chart.png").name) or "chart.png"
    path = d / name
    path.write_bytes(img.png)
    return path


def render(console: Console, card: Card, image_dir: Path | None = None) -> list[tuple[int, Choice]]:
    """Draw ``card`` on ``console`` and return its numbered choices: ``[(1, Button), (2, (Select, Option))...]``.
    A card's image is written to a file (see :func:`save_image`) and its path printed."""
    numbered = choices(card)
    parts: list[RenderableType] = []
    for s in card.sections:
        if s.text.strip():
            parts.append(styled(s.text))
        if s.fields:
            parts.append(Padding(_fields(s.fields), (0, 0, 0, 2)))
    if card.image is not None:
        try:
            path = save_image(card, image_dir)
        except OSError as e:
            parts.append(Text(f"[chart not written: {e}]", style="dim"))
        else:
            if path is not None:
                line = Text("chart: ", style="bold")
                line.append(str(path), style="underline")
                line.append(f"  ({card.image.alt})", style="dim")
                parts.append(line)

    n = 0
    if card.buttons:
        line = Text()
        for b in card.buttons:
            n += 1
            if line:
                line.append("  ")
            line.append(f"[{n}] ", style="bold yellow")
            line.append(b.text or b.action_id, style=BUTTON_STYLE.get(b.style, "bold"))
        parts.append(Text())
        parts.append(line)
    for s in card.selects:
        parts.append(Text())
        parts.append(Text(s.placeholder or "Choose one", style="bold"))
        opts = Table.grid(padding=(0, 3))
        cols = 1 if len(s.options) <= 10 else 3
        for _ in range(cols):
            opts.add_column(no_wrap=True, overflow="ellipsis")
        cells: list[Text] = []
        for o in s.options:
            n += 1
            cells.append(Text.assemble((f"[{n}] ", "bold yellow"), o.text or o.value))
        for i in range(0, len(cells), cols):
            row = cells[i : i + cols]
            opts.add_row(*row, *[Text()] * (cols - len(row)))
        parts.append(Padding(opts, (0, 0, 0, 2)))

    footer = [x for x in (card.context.strip(), "only you can see this" if card.ephemeral else "") if x]
    if footer:
        parts.append(Text())
        line = styled(" · ".join(footer))
        line.style = "dim"
        parts.append(line)
    if numbered:
        parts.append(Text(f"Choose a number (1-{len(numbered)}).", style="dim italic"))

    console.print(
        Panel(
            Group(*parts) if parts else Text(""),
            title=styled(card.title),
            title_align="left",
            border_style=BORDER.get(card.kind, "white"),
            expand=True,
        ),
        soft_wrap=False,  # wrap inside the panel even on a soft-wrapping console: never cut a card's text
    )
    return numbered

"""Render a platform-neutral :class:`~handlers.cards.Card` as a Slack Block Kit message.

``to_message(card)`` gives ``{"text": fallback, "blocks": [...]}`` for ``chat.postMessage`` /
``respond()`` / ``say()`` (whether it is ephemeral is the caller's choice: ``card.ephemeral``).

A card's ``image`` (a PNG chart) is left out of the blocks: Block Kit's image block needs a public URL,
and the chart is bytes. The adapter uploads it with ``files_upload_v2`` in the posted message's thread
(:func:`image_upload` gives the arguments); the message says so in its context line.

Slack rejects a whole message when one limit is exceeded, so every limit is enforced here by cutting
text with an ellipsis (never inside a link or an ``&amp;`` entity), splitting what can be split (more
than 10 fields, more than 25 buttons, more than 100 select options) and, as a last resort, dropping the
tail of the content with a note. Every block and every child element is checked with the SDK's
``validate_json()`` (``Block.parse(d).validate_json()`` alone does not look at children).

Duplicate ``action_id``\\s get a suffix, the first one keeping its id: ``label_team``, ``label_team:1``,
``label_team:2``. Route with a prefix or ``^label_team(:\\d+)?$``.

``check_message(msg)`` lists the limit violations of any message dict (used by whole-bot tests).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

from handlers.cards import Button, Card, Select

log = logging.getLogger(__name__)

ELLIPSIS = "…"

MAX_BLOCKS = 50  # per message
MAX_HEADER = 150  # header block text (plain_text)
MAX_TEXT = 3000  # any text object, section text
MAX_FIELDS = 10  # per section
MAX_FIELD = 2000  # per field text
MAX_ACTIONS = 25  # elements per actions block
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ID = 255
MAX_PLACEHOLDER = 150
MAX_OPTIONS = 100  # per static select
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_BLOCK_ID = 255
MAX_FALLBACK = 4000  # top-level text: Slack truncates at 40k, recommends at most 4k
BUTTON_STYLES = ("primary", "danger")

# Control sequences kept as they are (one unit each, never cut): links <url> / <url|text>, mentions
# <@U123>, channels <#C123|name>, special mentions <!here>, user groups <!subteam^S123>.
_CONTROL = re.compile(
    r"<(?:(?:https?://|mailto:)[^\s<>|]+(?:\|[^<>]*)?"
    r"|[@#][A-Z0-9]+(?:\|[^<>]*)?"
    r"|!(?:here|channel|everyone)(?:\|[^<>]*)?"
    r"|!subteam\^[A-Z0-9]+(?:\|[^<>]*)?)>"
)
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


# --------------------------------------------------------------------------------------------------------
# text


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack (plain text that is not a control sequence)."""
    return "".join(_ENTITIES.get(c, c) for c in text)


def _units(text: str) -> list[str]:
    """Neutral markdown as Slack mrkdwn, split into units that truncation must not split."""
    out: list[str] = []
    pos = 0
    for m in _CONTROL.finditer(text):
        out.extend(_ENTITIES.get(c, c) for c in text[pos : m.start()])
        inner = m.group(0)[1:-1]
        target, bar, label = inner.partition("|")
        out.append("<" + target.replace("&", "&amp;") + (bar + escape(label) if bar else "") + ">")
        pos = m.end()
    out.extend(_ENTITIES.get(c, c) for c in text[pos:])
    return out


def _take(units: list[str], budget: int) -> str:
    """The longest prefix of whole units within ``budget`` characters, backed off to a nearby space."""
    size = 0
    n = 0
    for u in units:
        if size + len(u) > budget:
            break
        size += len(u)
        n += 1
    if n < len(units) and units[n] in (" ", "\n"):  # already at a word boundary
        return "".join(units[:n]).rstrip()
    for back in range(n - 1, max(0, n - 40) - 1, -1):  # a word boundary among the last 40 units
        if back > 0 and units[back] in (" ", "\n"):
            n = back
            break
    return "".join(units[:n]).rstrip()


def mrkdwn(text: str, limit: int = MAX_TEXT) -> str:
    """Convert neutral markdown (``*bold*``, ``_italic_``, `` `code` ``, ``<url|text>``) to Slack mrkdwn of
    at most ``limit`` characters: plain text escaped, links kept whole, cut with an ellipsis if too long."""
    units = _units(text)
    if sum(map(len, units)) <= limit:
        return "".join(units)
    cut = _take(units, limit - len(ELLIPSIS))
    if cut.count("```") % 2:  # cut inside a code block: close it, or the note after it reads as code
        fence = "\n```"
        cut = _take(units, limit - len(ELLIPSIS) - len(fence))
        if cut.count("```") % 2:
            return cut + ELLIPSIS + fence
    return cut + ELLIPSIS


def plain(text: str, limit: int, default: str = " ") -> str:
    """Plain text (not parsed by Slack) of 1..limit characters, cut with an ellipsis."""
    text = " ".join(text.split()) if "\n" in text else text
    if not text.strip():
        return default
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _hard_cut(value: str, limit: int, what: str) -> str:
    """Machine values (button values, option values, action ids): cut without an ellipsis, and warn."""
    if len(value) <= limit:
        return value
    log.warning("slack: %s of %d characters cut to %d: %.60s...", what, len(value), limit, value)
    return value[:limit]


# --------------------------------------------------------------------------------------------------------
# validation


def _children(obj: JsonObject) -> Iterator[JsonObject]:
    for value in vars(obj).values():
        items = value if isinstance(value, list | tuple) else [value]
        for v in items:
            if isinstance(v, JsonObject):
                yield v


def validate_deep(obj: JsonObject) -> None:
    """``validate_json()`` on an object and, recursively, on every child object (elements, options, text)."""
    obj.validate_json()
    for child in _children(obj):
        validate_deep(child)


# --------------------------------------------------------------------------------------------------------
# blocks


class _Ids:
    """Unique action ids within one message: the first keeps its id, repeats get ``:1``, ``:2``..."""

    def __init__(self, reserved: set[str]) -> None:
        self.reserved = reserved  # every id the card asks for, so a suffix never takes one of them
        self.used: set[str] = set()

    def take(self, action_id: str) -> str:
        base = _hard_cut(action_id or "action", MAX_ACTION_ID, "action_id")
        if base not in self.used:
            self.used.add(base)
            return base
        n = 1
        while True:
            suffix = f":{n}"
            cand = base[: MAX_ACTION_ID - len(suffix)] + suffix
            if cand not in self.used and cand not in self.reserved:
                self.used.add(cand)
                return cand
            n += 1


def _button(b: Button, ids: _Ids) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=plain(b.text, MAX_BUTTON_TEXT, default=b.action_id or "OK"), emoji=True),
        action_id=ids.take(b.action_id),
        value=_hard_cut(b.value, MAX_BUTTON_VALUE, "button value") or None,
        style=b.style if b.style in BUTTON_STYLES else None,
    )


def _selects(s: Select, ids: _Ids) -> list[StaticSelectElement]:
    """One select, or several (``(1/3)``...) when it has more than 100 options."""
    opts = [
        Option(
            text=PlainTextObject(text=plain(o.text, MAX_OPTION_TEXT, default=o.value or "-"), emoji=True),
            value=_hard_cut(o.value, MAX_OPTION_VALUE, "option value") or "-",
        )
        for o in s.options
    ]
    if not opts:  # a select needs at least one option
        return []
    pages = [opts[i : i + MAX_OPTIONS] for i in range(0, len(opts), MAX_OPTIONS)]
    out = []
    for n, page in enumerate(pages, 1):
        suffix = f" ({n}/{len(pages)})" if len(pages) > 1 else ""
        placeholder = plain(s.placeholder, MAX_PLACEHOLDER - len(suffix), default="Choose") + suffix
        out.append(
            StaticSelectElement(
                placeholder=PlainTextObject(text=placeholder, emoji=True),
                action_id=ids.take(s.action_id),
                options=page,
            )
        )
    return out


def _field(label: str, value: str) -> MarkdownTextObject:
    head = f"*{mrkdwn(label.strip(), 200)}*" if label.strip() else ""
    if not value.strip():
        return MarkdownTextObject(text=head or "-")
    if head:
        head += "\n"
    return MarkdownTextObject(text=head + mrkdwn(value, MAX_FIELD - len(head)))


def _content(card: Card) -> list[Block]:
    blocks: list[Block] = []
    for s in card.sections:
        fields = [_field(k, v) for k, v in s.fields if k.strip() or v.strip()]
        chunks = [fields[i : i + MAX_FIELDS] for i in range(0, len(fields), MAX_FIELDS)] or [[]]
        text = mrkdwn(s.text) if s.text.strip() else ""
        for i, chunk in enumerate(chunks):
            t = MarkdownTextObject(text=text) if (i == 0 and text) else None
            if t is None and not chunk:
                continue
            blocks.append(SectionBlock(text=t, fields=chunk or None))
    return blocks


def _build(card: Card) -> list[Block]:
    reserved = {b.action_id for b in card.buttons} | {s.action_id for s in card.selects}
    ids = _Ids(reserved)
    header = HeaderBlock(
        text=PlainTextObject(text=plain(card.title, MAX_HEADER, default="costdna"), emoji=True)
    )
    content = _content(card)
    elements: list[ButtonElement | StaticSelectElement] = [_button(b, ids) for b in card.buttons]
    for s in card.selects:
        elements.extend(_selects(s, ids))
    notes: list[str] = []

    fixed = 2  # the header, and the context line (kept free: notes about anything dropped go there)
    max_action_blocks = MAX_BLOCKS - fixed - (1 if content else 0)
    if len(elements) > max_action_blocks * MAX_ACTIONS:
        dropped = len(elements) - max_action_blocks * MAX_ACTIONS
        elements = elements[: max_action_blocks * MAX_ACTIONS]
        notes.append(f"{dropped} more choices not shown")
    actions = [
        ActionsBlock(elements=elements[i : i + MAX_ACTIONS]) for i in range(0, len(elements), MAX_ACTIONS)
    ]

    room = MAX_BLOCKS - fixed - len(actions)
    divider = bool(content and actions)
    if len(content) + divider > room:
        divider = False
    if len(content) > room:
        dropped = len(content) - (room - 1)
        content = content[: room - 1] + [
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"_{ELLIPSIS} {dropped} more sections not shown; ask for a narrower view._"
                )
            )
        ]

    blocks: list[Block] = [header, *content]
    if divider:
        blocks.append(DividerBlock())
    blocks.extend(actions)
    if card.image is not None:
        notes.append("chart in the thread")
    context = " · ".join(x for x in [card.context.strip(), *notes] if x)
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=mrkdwn(context))]))
    return blocks


def to_blocks(card: Card) -> list[dict]:
    """The card as Block Kit blocks (dicts), within Slack's limits, each validated with its children."""
    blocks = _build(card)
    for b in blocks:
        validate_deep(b)
    out = [b.to_dict() for b in blocks]
    assert len(out) <= MAX_BLOCKS
    return out


def fallback_text(card: Card) -> str:
    """The message's top-level ``text``: notifications, screen readers, clients without blocks."""
    return mrkdwn(card.text(), MAX_FALLBACK) or "costdna"


def to_message(card: Card) -> dict:
    """``{"text": fallback, "blocks": [...]}``: pass as ``**kwargs`` to chat.postMessage, say(), respond()."""
    return {"text": fallback_text(card), "blocks": to_blocks(card)}


def image_upload(card: Card) -> dict | None:
    """``files_upload_v2`` keyword arguments for the card's image (add ``channel`` and ``thread_ts``),
    or None when the card has none."""
    img = card.image
    if img is None or not img.png:
        return None
    return {"content": img.png, "filename": img.filename or "chart.png", "title": plain(card.title, 200),
            "alt_txt": plain(img.alt, 1000, default="chart")}


# --------------------------------------------------------------------------------------------------------
# checking any message


def _walk(node: Any, path: str) -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def check_message(msg: dict) -> list[str]:
    """Slack limit violations of a message dict (``text`` + ``blocks``); empty when it would be accepted.

    Checks what the SDK checks (every block *and* child via ``validate_json``) plus what it does not:
    at most 50 blocks, unique action ids and block ids, non-empty text objects of at most 3000 characters,
    fields of at most 2000, a non-empty ``text`` fallback.
    """
    problems: list[str] = []
    text = msg.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("text: missing fallback text")
    elif len(text) > 40000:
        problems.append(f"text: {len(text)} characters (Slack truncates above 40000)")
    blocks = msg.get("blocks", [])
    if not isinstance(blocks, list):
        return [*problems, "blocks: not a list"]
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"blocks: {len(blocks)} blocks (at most {MAX_BLOCKS})")

    action_ids: dict[str, str] = {}
    block_ids: dict[str, str] = {}
    for i, d in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(d, dict):
            problems.append(f"{where}: not an object")
            continue
        where = f"{where}({d.get('type')})"
        try:
            block = Block.parse(d)
            if block is None:
                problems.append(f"{where}: unknown block type")
            else:
                validate_deep(block)
        except (SlackObjectFormationError, TypeError, KeyError, ValueError) as e:
            problems.append(f"{where}: {e}")
        if d.get("block_id") is not None:
            bid = str(d["block_id"])
            if bid in block_ids:
                problems.append(f"{where}: duplicate block_id {bid!r}")
            block_ids[bid] = where
        for sub, node in _walk(d, where):
            aid = node.get("action_id")
            if aid is not None:
                if aid in action_ids:
                    problems.append(f"{sub}: duplicate action_id {aid!r} (also {action_ids[aid]})")
                else:
                    action_ids[aid] = sub
            if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
                n = len(node["text"])
                if n == 0:
                    problems.append(f"{sub}: empty text")
                elif n > MAX_TEXT:
                    problems.append(f"{sub}: text of {n} characters (at most {MAX_TEXT})")
        if d.get("type") == "section":
            for j, f in enumerate(d.get("fields") or []):
                if isinstance(f, dict) and len(f.get("text", "")) > MAX_FIELD:
                    problems.append(f"{where}.fields[{j}]: {len(f['text'])} characters (at most {MAX_FIELD})")
        if d.get("type") == "context" and len(d.get("elements") or []) > MAX_CONTEXT_ELEMENTS:
            problems.append(f"{where}: more than {MAX_CONTEXT_ELEMENTS} elements")
    return problems

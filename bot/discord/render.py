"""Render a platform-neutral :class:`~handlers.cards.Card` as a Discord message: embeds, a View, files.

``to_message(card) -> Message`` gives ``embeds`` (one embed, within Discord's limits), ``view`` (the
card's buttons and selects as persistent :class:`~discord.ui.DynamicItem`\\ s in a :class:`CardView`, or None) and ``files``
(the card's chart, shown in the embed through ``attachment://<filename>``). ``message.kwargs()`` is what
``send`` / ``followup.send`` / ``edit_original_response`` / ``PartialMessage.edit`` take.

Discord validates nothing on our side and rejects a whole message over a limit, so every limit is
checked here: title 256, description 4096, 25 fields, field name 256, field value 1024, footer 2048,
6000 characters per message (``len(embed)``), 5 rows of 5 components (a select fills a row), 25 options
per select, button label 80, option label / value 100, placeholder 150. Text over a limit is cut with an
ellipsis and the message says so; components over the 5 rows are left out, logged, and the footer says
so.

Buttons are persistent across restarts: the action id and its value live in the ``custom_id``
(``cd:<action_id>:<value>``; a select: ``cds:<action_id>#<n>:`` with the value in each option). A
``custom_id`` is at most 100 characters: a button whose value does not fit is **refused** (left out,
logged at error level, and the footer says a button is missing): a machine value is never cut, since a
cut value would act on the wrong row or fail its nonce check. The click is dispatched by
:class:`CardButton` / :class:`CardSelect` (registered with ``client.add_dynamic_items`` in
``bot.discord.app``), which call the handler registered with :func:`set_action_handler`.

The View is a :class:`CardView`, which tells discord.py it is not dispatchable: discord.py then does not
also store it per message, so each click is dispatched once, by the dynamic items.

Neutral markdown becomes Discord markdown: ``*bold*`` -> ``**bold**``, ``<url|text>`` -> ``[text](url)``,
``<!here>`` -> ``@here``; ``_italic_``, `` `code` ``, ``<@id>`` and ``<#id>`` are the same on both.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from handlers.cards import Button, Card, Select

log = logging.getLogger("costdna.discord")

ELLIPSIS = "…"
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_MESSAGE = 6000  # all embeds of a message together (len(embed))
MAX_ROWS = 5
MAX_PER_ROW = 5
MAX_OPTIONS = 25
MAX_BUTTON_LABEL = 80
MAX_OPTION_LABEL = 100
MAX_OPTION_VALUE = 100
MAX_PLACEHOLDER = 150
MAX_CUSTOM_ID = 100
MAX_CONTENT = 2000

BUTTON_PREFIX = "cd:"
SELECT_PREFIX = "cds:"
ACTION_RE = r"[a-z][a-z0-9_]*"
BUTTON_TEMPLATE = re.compile(rf"^cd:(?P<action>{ACTION_RE})(?:#(?P<n>\d{{1,2}}))?:(?P<value>.*)$", re.S)
SELECT_TEMPLATE = re.compile(rf"^cds:(?P<action>{ACTION_RE})#(?P<n>\d{{1,2}}):$")

COLOURS = {"error": 0xD93F3F, "alert": 0xE8912D, "progress": 0x5865F2, "summary": 0x2EB67D,
           "changeset": 0xECB22E, "prompt": 0x36C5F0, "digest": 0x2EB67D, "help": 0x99AAB5, "info": 0x5865F2}
STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}


class CustomIdTooLong(ValueError):
    """A button's action id and value do not fit Discord's 100-character custom_id."""


# --------------------------------------------------------------------------------------------------
# custom ids


def button_custom_id(action_id: str, value: str, n: int = 0) -> str:
    """``cd:<action_id>[#n]:<value>``; :class:`CustomIdTooLong` when over 100 characters (never cut)."""
    if not re.fullmatch(ACTION_RE, action_id or ""):
        raise ValueError(f"action id {action_id!r} is not of the form {ACTION_RE}")
    cid = f"{BUTTON_PREFIX}{action_id}{f'#{n}' if n else ''}:{value}"
    if len(cid) > MAX_CUSTOM_ID:
        raise CustomIdTooLong(f"custom_id for {action_id} would be {len(cid)} characters (the most is "
                              f"{MAX_CUSTOM_ID}): value {value[:40]!r}… is too long")
    return cid


def select_custom_id(action_id: str, n: int = 0) -> str:
    if not re.fullmatch(ACTION_RE, action_id or ""):
        raise ValueError(f"action id {action_id!r} is not of the form {ACTION_RE}")
    return f"{SELECT_PREFIX}{action_id}#{n}:"


def parse_custom_id(custom_id: str) -> tuple[str, str] | None:
    """(action id, value) of a button's custom_id; (action id, "") for a select's; None for anything else."""
    m = BUTTON_TEMPLATE.match(custom_id or "")
    if m:
        return m.group("action"), m.group("value")
    m = SELECT_TEMPLATE.match(custom_id or "")
    if m:
        return m.group("action"), ""
    return None


# --------------------------------------------------------------------------------------------------
# dispatch: the app registers what a click does

ActionHandler = Callable[[discord.Interaction, str, str], Awaitable[Any]]
_handler: list[ActionHandler] = []


def set_action_handler(fn: ActionHandler) -> None:
    """What a click on a card's button or select runs: ``fn(interaction, action_id, value)``."""
    _handler[:] = [fn]


async def _dispatch(interaction: discord.Interaction, action: str, value: str) -> None:
    if not _handler:
        log.error("discord: a click on %s but no action handler is registered", action)
        return
    await _handler[0](interaction, action, value)


class CardButton(discord.ui.DynamicItem[discord.ui.Button], template=BUTTON_TEMPLATE):
    """A card's button; its state (action id and value) is its custom_id."""

    def __init__(self, action_id: str, value: str, label: str = "…", style: str = "", *, n: int = 0,
                 row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=label, style=STYLES.get(style, discord.ButtonStyle.secondary),
                                           custom_id=button_custom_id(action_id, value, n)), row=row)
        self.action_id, self.value = action_id, value

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> CardButton:
        return cls(match.group("action"), match.group("value"), label=item.label or "…",
                   n=int(match.group("n") or 0))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _dispatch(interaction, self.action_id, self.value)


class CardSelect(discord.ui.DynamicItem[discord.ui.Select], template=SELECT_TEMPLATE):
    """A card's select menu; the chosen option's value is the action's value."""

    def __init__(self, action_id: str, options: list[discord.SelectOption] | None = None, placeholder: str = "",
                 *, n: int = 0, row: int | None = None) -> None:
        super().__init__(discord.ui.Select(custom_id=select_custom_id(action_id, n), placeholder=placeholder or None,
                                           options=options or [discord.SelectOption(label="…", value="-")]),
                         row=row)
        self.action_id = action_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select,
                             match: re.Match[str], /) -> CardSelect:
        return cls(match.group("action"), n=int(match.group("n")))

    async def callback(self, interaction: discord.Interaction) -> None:
        values = (interaction.data or {}).get("values") or []  # type: ignore[union-attr]
        await _dispatch(interaction, self.action_id, str(values[0]) if values else "")


# --------------------------------------------------------------------------------------------------
# text

_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_LINK = re.compile(r"<((?:https?://|mailto:)[^\s<>|]+)(?:\|([^<>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^<>]*)?>")
_BOLD = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")


def markdown(text: str) -> str:
    """Neutral markdown as Discord markdown (code spans left alone)."""
    out = []
    for i, part in enumerate(_CODE.split(text or "")):
        if i % 2:  # a code span
            out.append(part)
            continue
        part = _LINK.sub(lambda m: f"[{m.group(2)}]({m.group(1)})" if m.group(2) else m.group(1), part)
        part = _SPECIAL.sub(lambda m: "@" + ("everyone" if m.group(1) == "channel" else m.group(1)), part)
        out.append(_BOLD.sub(r"**\1**", part))
    return "".join(out)


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a line or word boundary with an ellipsis (code fence closed)."""
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    head = text[:room]
    for sep in ("\n", " "):
        at = head.rfind(sep)
        if at > room * 0.6:
            head = head[:at]
            break
    head = head.rstrip()
    if head.count("```") % 2:
        head = head[: room - 4].rstrip() + ELLIPSIS + "\n```"
        return head[:limit]
    return head + ELLIPSIS


def plain(text: str, limit: int, default: str = "…") -> str:
    text = " ".join((text or "").split())
    if not text:
        return default
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


# --------------------------------------------------------------------------------------------------
# the message


@dataclass
class Message:
    embeds: list[discord.Embed]
    view: discord.ui.View | None = None
    files: list[discord.File] = field(default_factory=list)
    content: str | None = None
    notes: list[str] = field(default_factory=list)  # what was cut or left out (also in the footer)

    def kwargs(self, *, edit: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``send`` (or, with ``edit``, an edit: ``attachments`` instead of
        ``files``, and an absent view written as None so old buttons go away)."""
        out: dict[str, Any] = {"embeds": self.embeds}
        if self.content is not None:
            out["content"] = self.content
        if edit:
            out["view"] = self.view
            out["attachments"] = list(self.files)
        else:
            if self.view is not None:
                out["view"] = self.view
            if self.files:
                out["files"] = list(self.files)
        return out


def _fields(embed: discord.Embed, name: str, value: str, inline: bool, notes: list[str]) -> None:
    if len(embed.fields) >= MAX_FIELDS:
        if "fields" not in notes:
            notes.append("fields")
        return
    embed.add_field(name=plain(name, MAX_FIELD_NAME, "\u200b"), value=cut(value or "—", MAX_FIELD_VALUE),
                    inline=inline)


def _embed(card: Card, notes: list[str]) -> discord.Embed:
    embed = discord.Embed(title=plain(markdown(card.title), MAX_TITLE, "costdna"),
                          colour=COLOURS.get(card.kind, COLOURS["info"]))
    description: list[str] = []
    for section in card.sections:
        text = markdown(section.text).strip()
        if text:
            if not embed.fields and sum(len(d) + 2 for d in description) + len(text) <= MAX_DESCRIPTION:
                description.append(text)
            elif not embed.fields and not description:
                description.append(cut(text, MAX_DESCRIPTION))
                notes.append("text")
            else:  # after fields (or past the description): a field without a name, in 1024-char pieces
                chunks = _chunks(text, MAX_FIELD_VALUE)
                for chunk in chunks:
                    _fields(embed, "\u200b", chunk, False, notes)
        for label, value in section.fields:
            _fields(embed, markdown(label), markdown(str(value)), len(str(value)) <= 60, notes)
    if description:
        embed.description = "\n\n".join(description)
    return embed


def _chunks(text: str, size: int) -> list[str]:
    out: list[str] = []
    rest = text
    while rest:
        if len(rest) <= size:
            out.append(rest)
            break
        at = rest.rfind("\n", 0, size)
        if at < size // 2:
            at = rest.rfind(" ", 0, size)
        if at < size // 2:
            at = size
        out.append(rest[:at].rstrip())
        rest = rest[at:].lstrip("\n ")
    return out


def _footer(card: Card, notes: list[str]) -> str:
    parts = [markdown(card.context)] if card.context else []
    said: list[str] = []
    if "fields" in notes or "text" in notes or "size" in notes:
        said.append("shortened to fit Discord: `/costdna` commands show more")
    if "components" in notes:
        said.append("some buttons did not fit; `/costdna spikes` or `/costdna label` shows them")
    if "custom_id" in notes:
        said.append("a button could not be shown (its value is too long); it has been logged")
    note = " · ".join(said)
    if not parts:
        return note
    context = cut(parts[0], MAX_FOOTER - len(note) - 3) if note else parts[0]
    return " · ".join([context, note]) if note else context


def _view(card: Card, notes: list[str]) -> discord.ui.View | None:
    rows: list[list[discord.ui.Item]] = []
    seen: dict[str, int] = {}

    def add_button(b: Button) -> discord.ui.Item | None:
        cid = f"{b.action_id}:{b.value}"
        n = seen.get(cid, -1) + 1
        seen[cid] = n
        try:
            return CardButton(b.action_id, b.value, plain(b.text, MAX_BUTTON_LABEL), b.style, n=n)
        except CustomIdTooLong as e:
            log.error("discord: button %r on card %r refused: %s", b.text[:40], card.title[:60], e)
            notes.append("custom_id")
        except ValueError as e:
            log.error("discord: button %r on card %r refused: %s", b.text[:40], card.title[:60], e)
            notes.append("custom_id")
        return None

    buttons = [i for i in (add_button(b) for b in card.buttons) if i is not None]
    for start in range(0, len(buttons), MAX_PER_ROW):
        rows.append(buttons[start:start + MAX_PER_ROW])
    n_select = 0
    for sel in card.selects:
        opts = _options(sel, card, notes)
        for start in range(0, len(opts), MAX_OPTIONS):
            rows.append([CardSelect(sel.action_id, opts[start:start + MAX_OPTIONS],
                                    plain(sel.placeholder, MAX_PLACEHOLDER), n=n_select)])
            n_select += 1
    if not rows:
        return None
    if len(rows) > MAX_ROWS:
        dropped = sum(len(r) for r in rows[MAX_ROWS:])
        log.warning("discord: card %r has %d rows of components; %d components left out (5 rows at most)",
                    card.title[:60], len(rows), dropped)
        notes.append("components")
        rows = rows[:MAX_ROWS]
    view = CardView(timeout=None)
    for r, items in enumerate(rows):
        for item in items:
            item.row = r
            view.add_item(item)
    return view


class CardView(discord.ui.View):
    """A card's components. Never stored per message by discord.py (not "dispatchable"): each click is
    dispatched once, by the registered dynamic items, whether the message is new or from before a restart."""

    def is_dispatchable(self) -> bool:
        return False


def _options(sel: Select, card: Card, notes: list[str]) -> list[discord.SelectOption]:
    out = []
    for o in sel.options:
        if len(o.value) > MAX_OPTION_VALUE:
            log.error("discord: option %r of select %s on card %r refused: value of %d characters (the most "
                      "is %d)", o.text[:40], sel.action_id, card.title[:60], len(o.value), MAX_OPTION_VALUE)
            notes.append("custom_id")
            continue
        out.append(discord.SelectOption(label=plain(o.text, MAX_OPTION_LABEL), value=o.value))
    return out


def to_message(card: Card) -> Message:
    """The card as one embed, a CardView of persistent components, and its chart as a file."""
    notes: list[str] = []
    embed = _embed(card, notes)
    view = _view(card, notes)
    files: list[discord.File] = []
    if card.image is not None:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", card.image.filename or "chart.png") or "chart.png"
        files.append(discord.File(io.BytesIO(card.image.png), filename=name, description=card.image.alt[:1024]))
        embed.set_image(url=f"attachment://{name}")
    _fit(embed, card, notes)
    return Message(embeds=[embed], view=view, files=files, notes=notes)


def _fit(embed: discord.Embed, card: Card, notes: list[str]) -> None:
    """Footer last, then the whole embed within 6000 characters (trailing fields dropped, then the
    description cut)."""
    footer = cut(_footer(card, notes), MAX_FOOTER)
    if footer:
        embed.set_footer(text=footer)
    while len(embed) > MAX_MESSAGE:
        if "size" not in notes:
            notes.append("size")
            footer = cut(_footer(card, notes), MAX_FOOTER)
            embed.set_footer(text=footer)
        if embed.fields:
            embed.remove_field(len(embed.fields) - 1)
            continue
        over = len(embed) - MAX_MESSAGE
        desc = embed.description or ""
        embed.description = cut(desc, max(1, len(desc) - over - 1))
        if len(embed) > MAX_MESSAGE and not embed.description:
            break


def check_message(msg: Message) -> list[str]:
    """Discord's limits violated by ``msg`` (empty when it would be accepted)."""
    bad: list[str] = []
    total = 0
    for e in msg.embeds:
        total += len(e)
        if e.title and len(e.title) > MAX_TITLE:
            bad.append(f"title {len(e.title)}")
        if e.description and len(e.description) > MAX_DESCRIPTION:
            bad.append(f"description {len(e.description)}")
        if len(e.fields) > MAX_FIELDS:
            bad.append(f"{len(e.fields)} fields")
        for f in e.fields:
            if len(f.name or "") > MAX_FIELD_NAME or not f.name:
                bad.append(f"field name {len(f.name or '')}")
            if len(f.value or "") > MAX_FIELD_VALUE or not f.value:
                bad.append(f"field value {len(f.value or '')}")
        if e.footer and e.footer.text and len(e.footer.text) > MAX_FOOTER:
            bad.append(f"footer {len(e.footer.text)}")
    if total > MAX_MESSAGE:
        bad.append(f"message {total}")
    if len(msg.embeds) > 10:
        bad.append(f"{len(msg.embeds)} embeds")
    if msg.view is not None:
        comps = msg.view.to_components()
        if len(comps) > MAX_ROWS:
            bad.append(f"{len(comps)} rows")
        ids = []
        for row in comps:
            kids = row.get("components", [])
            if len(kids) > MAX_PER_ROW:
                bad.append(f"row of {len(kids)}")
            for c in kids:
                cid = c.get("custom_id", "")
                ids.append(cid)
                if len(cid) > MAX_CUSTOM_ID:
                    bad.append(f"custom_id {len(cid)}")
                if len(c.get("label") or "") > MAX_BUTTON_LABEL:
                    bad.append(f"label {len(c['label'])}")
                if len(c.get("options") or []) > MAX_OPTIONS:
                    bad.append(f"{len(c['options'])} options")
                for o in c.get("options") or []:
                    if len(o["value"]) > MAX_OPTION_VALUE or len(o["label"]) > MAX_OPTION_LABEL:
                        bad.append("option")
        if len(ids) != len(set(ids)):
            bad.append("duplicate custom_id")
    return bad

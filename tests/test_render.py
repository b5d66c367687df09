"""Card renderers: Slack Block Kit (bot.slack.render) and the terminal (handlers.render_terminal)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block

from bot.slack.render import check_message, mrkdwn, to_blocks, to_message
from handlers.cards import Button, Card, Option, Section, Select, error_card, progress_bar
from handlers.render_terminal import render

# ------------------------------------------------------------------------------------------------
# helpers (independent of the renderer's own checks)


def _validate_tree(obj: JsonObject) -> None:
    obj.validate_json()
    for value in vars(obj).values():
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, JsonObject):
                _validate_tree(v)


def _action_ids(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["action_id"]] if "action_id" in node else []) + [
            i for v in node.values() for i in _action_ids(v)
        ]
    if isinstance(node, list):
        return [i for v in node for i in _action_ids(v)]
    return []


def _text_objects(node) -> list[dict]:
    if isinstance(node, dict):
        own = [node] if node.get("type") in ("plain_text", "mrkdwn") else []
        return own + [t for v in node.values() for t in _text_objects(v)]
    if isinstance(node, list):
        return [t for v in node for t in _text_objects(v)]
    return []


def assert_slack_ok(msg: dict) -> None:
    assert isinstance(msg["text"], str) and msg["text"].strip(), "text fallback missing"
    blocks = msg["blocks"]
    assert 1 <= len(blocks) <= 50
    for d in blocks:
        block = Block.parse(d)
        assert block is not None, d
        _validate_tree(block)  # the block and every child element (the SDK's own check skips children)
        assert block.to_dict() == d  # round-trips
    ids = _action_ids(blocks)
    assert len(ids) == len(set(ids)), f"duplicate action ids: {ids}"
    assert all(len(i) <= 255 for i in ids)
    for t in _text_objects(blocks):
        assert 1 <= len(t["text"]) <= 3000
    for d in blocks:
        if d["type"] == "header":
            assert len(d["text"]["text"]) <= 150
        if d["type"] == "section":
            assert len(d.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in d.get("fields", []))
        if d["type"] == "actions":
            assert len(d["elements"]) <= 25
            for e in d["elements"]:
                if e["type"] == "button":
                    assert len(e["text"]["text"]) <= 75 and len(e.get("value", "")) <= 2000
                else:
                    assert len(e["options"]) <= 100
                    assert all(len(o["text"]["text"]) <= 75 and len(o["value"]) <= 150 for o in e["options"])
    assert check_message(msg) == []


def _all_buttons(blocks):
    return [e for d in blocks if d["type"] == "actions" for e in d["elements"] if e["type"] == "button"]


def _all_selects(blocks):
    return [
        e for d in blocks if d["type"] == "actions" for e in d["elements"] if e["type"] == "static_select"
    ]


def normal_card() -> Card:
    return Card(
        title="Owner of i-0abc123",
        sections=[
            Section(
                "*payments* owns it (confidence _92%_), see <https://costdna.example/r/1?a=1&b=2|why>",
                fields=[("Cost", "$12.30/day"), ("Since", "`2024-01-02`")],
            ),
            Section(progress_bar(40)),
        ],
        buttons=[
            Button("Tag it payments", "label_confirm", "row:17:n0nce", style="primary"),
            Button("Wrong team", "label_reject", "row:17:n0nce", style="danger"),
            Button("Later", "label_later", "row:17"),
        ],
        selects=[Select("Another team", "label_team", (Option("payments", "t1"), Option("search", "t2")))],
        context="scan 2024-05-01 · account 1234",
        kind="prompt",
    )


# ------------------------------------------------------------------------------------------------
# Slack


def test_normal_card_keeps_its_content() -> None:
    msg = to_message(normal_card())
    assert_slack_ok(msg)
    blocks = msg["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Owner of i-0abc123", "emoji": True},
    }
    section = blocks[1]
    assert section["type"] == "section"
    assert section["text"]["text"] == (
        "*payments* owns it (confidence _92%_), see <https://costdna.example/r/1?a=1&amp;b=2|why>"
    )
    assert [f["text"] for f in section["fields"]] == ["*Cost*\n$12.30/day", "*Since*\n`2024-01-02`"]
    assert blocks[2]["text"]["text"] == progress_bar(40)
    buttons = _all_buttons(blocks)
    assert [(b["text"]["text"], b["action_id"], b.get("value"), b.get("style")) for b in buttons] == [
        ("Tag it payments", "label_confirm", "row:17:n0nce", "primary"),
        ("Wrong team", "label_reject", "row:17:n0nce", "danger"),
        ("Later", "label_later", "row:17", None),
    ]
    (select,) = _all_selects(blocks)
    assert select["action_id"] == "label_team"
    assert select["placeholder"]["text"] == "Another team"
    assert [(o["text"]["text"], o["value"]) for o in select["options"]] == [
        ("payments", "t1"),
        ("search", "t2"),
    ]
    assert blocks[-1]["type"] == "context"
    assert blocks[-1]["elements"][0]["text"] == "scan 2024-05-01 · account 1234"
    assert any(d["type"] == "divider" for d in blocks)
    assert "Owner of i-0abc123" in msg["text"] and "Cost: $12.30/day" in msg["text"]


def test_escaping_keeps_links_and_mentions() -> None:
    assert mrkdwn("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    assert mrkdwn("see <https://x.io/?q=1&r=2|a & b> now") == "see <https://x.io/?q=1&amp;r=2|a &amp; b> now"
    assert mrkdwn("ask <@U123ABC> in <#C0456|ops>, <!here>") == "ask <@U123ABC> in <#C0456|ops>, <!here>"
    assert mrkdwn("<script>") == "&lt;script&gt;"
    assert mrkdwn("*bold* _it_ `x<y`") == "*bold* _it_ `x&lt;y`"
    msg = to_message(Card(title="a < b", sections=[Section("x & y")]))
    assert msg["blocks"][0]["text"]["text"] == "a < b"  # plain_text is not parsed: no escaping
    assert msg["blocks"][1]["text"]["text"] == "x &amp; y"
    assert "x &amp; y" in msg["text"]


def test_truncation_never_splits_a_link_or_an_entity() -> None:
    text = " ".join(f"<https://costdna.example/resource/{i}?a=1&b=2|resource {i} & more>" for i in range(200))
    out = mrkdwn(text, 3000)
    assert len(out) <= 3000 and out.endswith("…")
    assert re.sub(r"<https://[^<>|]+\|[^<>]*>", "", out).count("<") == 0  # only whole links remain
    assert re.search(r"&(?!amp;|lt;|gt;)", out) is None  # no cut entity
    code = "```\n" + "line of code\n" * 1000 + "```"
    out = mrkdwn(code, 500)
    assert len(out) <= 500 and out.count("```") % 2 == 0  # an open code block gets closed


def _stress_cards() -> dict[str, Card]:
    long_word = "x" * 5000
    return {
        "long texts": Card(
            title="T" * 400,
            sections=[
                Section("word " * 2000 + "<https://example.com|end>", fields=[("L" * 300, "v" * 5000)])
            ],
            buttons=[Button("B" * 200, "a" * 300, "v" * 3000, style="primary")],
            selects=[Select("P" * 300, "sel", (Option("o" * 200, "w" * 400),))],
            context="c & " * 2000,
        ),
        "many fields": Card(
            title="fields", sections=[Section("s", fields=[(f"k{i}", f"v{i}") for i in range(37)])]
        ),
        "many buttons": Card(
            title="buttons", buttons=[Button(f"b{i}", f"act_{i}", str(i)) for i in range(60)]
        ),
        "duplicate action ids": Card(
            title="dups",
            buttons=[Button(f"b{i}", "label_team", str(i)) for i in range(5)] + [Button("x", "label_team:1")],
            selects=[Select("p", "label_team", (Option("o", "1"),))],
        ),
        "100+ select options": Card(
            title="teams",
            selects=[
                Select(
                    "Pick a team",
                    "pick_team",
                    tuple(Option(f"team {i} " + "z" * 90, f"t{i}") for i in range(250)),
                )
            ],
        ),
        "many sections": Card(
            title="sections",
            sections=[Section(f"section {i}", fields=[("a", "b")]) for i in range(80)],
            buttons=[Button("Apply", "apply", "1", style="primary")],
            context="ctx",
        ),
        "everything at once": Card(
            title="all",
            sections=[
                Section(long_word, fields=[(f"k{i}", long_word) for i in range(25)]) for _ in range(30)
            ],
            buttons=[Button(long_word, "dup", long_word) for _ in range(80)],
            selects=[
                Select(long_word, "dup", tuple(Option(long_word, f"v{i}") for i in range(450)))
                for _ in range(3)
            ],
            context=long_word,
        ),
        "empty strings": Card(
            title="",
            sections=[Section(""), Section("", fields=[("", "v"), ("k", "")])],
            buttons=[Button("", "")],
            selects=[Select("", "s", (Option("", ""),)), Select("", "e", ())],
        ),
        "error": error_card(
            "that account is not connected: <arn:aws:iam::1:role/x>", hint="run `/costdna settings`"
        ),
    }


@pytest.mark.parametrize("name", list(_stress_cards()))
def test_stress_cards_stay_within_slack_limits(name: str) -> None:
    card = _stress_cards()[name]
    msg = to_message(card)
    assert_slack_ok(msg)
    assert to_blocks(card) == msg["blocks"]


def test_long_texts_are_cut_with_an_ellipsis() -> None:
    blocks = to_blocks(_stress_cards()["long texts"])
    assert blocks[0]["text"]["text"].endswith("…") and len(blocks[0]["text"]["text"]) == 150
    assert blocks[1]["text"]["text"].endswith("…")
    assert blocks[1]["fields"][0]["text"].endswith("…")
    (button,) = _all_buttons(blocks)
    assert button["text"]["text"] == "B" * 74 + "…"
    assert len(button["value"]) == 2000 and len(button["action_id"]) == 255


def test_many_fields_are_split_into_sections_of_ten() -> None:
    blocks = to_blocks(_stress_cards()["many fields"])
    sections = [d for d in blocks if d["type"] == "section"]
    assert [len(d["fields"]) for d in sections] == [10, 10, 10, 7]
    assert sections[0]["text"]["text"] == "s" and all("text" not in d for d in sections[1:])
    texts = [f["text"] for d in sections for f in d["fields"]]
    assert texts == [f"*k{i}*\nv{i}" for i in range(37)]


def test_many_buttons_are_split_into_actions_of_25_and_all_kept() -> None:
    blocks = to_blocks(_stress_cards()["many buttons"])
    actions = [d for d in blocks if d["type"] == "actions"]
    assert [len(d["elements"]) for d in actions] == [25, 25, 10]
    assert [b["action_id"] for b in _all_buttons(blocks)] == [f"act_{i}" for i in range(60)]


def test_duplicate_action_ids_get_a_suffix() -> None:
    blocks = to_blocks(_stress_cards()["duplicate action ids"])
    ids = _action_ids(blocks)
    # the card's own "label_team:1" is kept; the generated suffixes skip it
    assert ids == [
        "label_team",
        "label_team:2",
        "label_team:3",
        "label_team:4",
        "label_team:5",
        "label_team:1",
        "label_team:6",
    ]
    route = re.compile(r"^label_team(:\d+)?$")
    assert all(route.match(i) for i in ids)
    assert [b.get("value") for b in _all_buttons(blocks)] == ["0", "1", "2", "3", "4", None]


def test_more_than_100_options_are_split_into_several_selects() -> None:
    blocks = to_blocks(_stress_cards()["100+ select options"])
    selects = _all_selects(blocks)
    assert [len(s["options"]) for s in selects] == [100, 100, 50]
    assert [s["placeholder"]["text"] for s in selects] == [
        "Pick a team (1/3)",
        "Pick a team (2/3)",
        "Pick a team (3/3)",
    ]
    assert [s["action_id"] for s in selects] == ["pick_team", "pick_team:1", "pick_team:2"]
    assert [o["value"] for s in selects for o in s["options"]] == [f"t{i}" for i in range(250)]
    assert all(
        len(o["text"]["text"]) == 75 and o["text"]["text"].endswith("…")
        for s in selects
        for o in s["options"]
    )


def test_too_many_sections_keep_header_actions_and_context() -> None:
    blocks = to_blocks(_stress_cards()["many sections"])
    assert len(blocks) == 50
    assert blocks[0]["type"] == "header"
    assert blocks[-1]["type"] == "context" and blocks[-1]["elements"][0]["text"] == "ctx"
    assert blocks[-2]["type"] == "actions" and blocks[-2]["elements"][0]["action_id"] == "apply"
    assert "more sections not shown" in blocks[-3]["text"]["text"]
    assert blocks[1]["text"]["text"] == "section 0"


def test_check_message_reports_violations() -> None:
    ok = to_message(normal_card())
    assert check_message(ok) == []

    assert any("fallback" in p for p in check_message({"blocks": ok["blocks"]}))
    assert any("at most 50" in p for p in check_message({"text": "t", "blocks": [{"type": "divider"}] * 51}))

    dup = {
        "text": "t",
        "blocks": [
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "a"}, "action_id": "x"},
                    {"type": "button", "text": {"type": "plain_text", "text": "b"}, "action_id": "x"},
                ],
            }
        ],
    }
    assert any("duplicate action_id 'x'" in p for p in check_message(dup))

    # a button text over 75 characters: the block's own validate_json() misses it, its child's catches it
    long_button = {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b" * 80}, "action_id": "y"}],
    }
    Block.parse(long_button).validate_json()  # passes: children are not checked
    with pytest.raises(SlackObjectFormationError):
        _validate_tree(Block.parse(long_button))
    assert check_message({"text": "t", "blocks": [long_button]})

    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}
    assert check_message({"text": "t", "blocks": [long_section]})
    long_field = {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}
    assert any("at most 2000" in p for p in check_message({"text": "t", "blocks": [long_field]}))
    assert check_message({"text": "t", "blocks": [{"type": "no_such_block"}]})


# ------------------------------------------------------------------------------------------------
# terminal


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=100), buf


def test_terminal_numbers_buttons_then_options_in_order() -> None:
    card = normal_card()
    console, buf = _console()
    numbered = render(console, card)
    assert [n for n, _ in numbered] == [1, 2, 3, 4, 5]
    assert [c for _, c in numbered[:3]] == card.buttons
    assert numbered[3] == (4, (card.selects[0], Option("payments", "t1")))
    assert numbered[4] == (5, (card.selects[0], Option("search", "t2")))
    out = buf.getvalue()
    assert "[1] Tag it payments" in out and "[2] Wrong team" in out and "[3] Later" in out
    assert "[4] payments" in out and "[5] search" in out
    assert out.index("[1]") < out.index("[2]") < out.index("[3]") < out.index("[4]")
    for text in (
        "Owner of i-0abc123",
        "payments owns it",
        "Cost",
        "$12.30/day",
        "2024-01-02",
        "40%",
        "scan 2024-05-01",
        "Another team",
    ):
        assert text in out
    assert "*payments*" not in out  # markdown markers are rendered as styles, not shown


def test_terminal_many_options_and_no_rich_markup_injection() -> None:
    card = Card(
        title="[bold]t[/bold]",
        sections=[Section("[red]not markup[/red] a<b & c")],
        selects=[Select("Pick", "pick", tuple(Option(f"team-{i}", f"t{i}") for i in range(120)))],
    )
    console, buf = _console()
    numbered = render(console, card)
    assert [n for n, _ in numbered] == list(range(1, 121))
    assert [o.value for _, (_, o) in numbered] == [f"t{i}" for i in range(120)]
    out = buf.getvalue()
    assert "[120] team-119" in out
    assert "[red]not markup[/red] a<b & c" in out and "[bold]t[/bold]" in out


def test_terminal_card_without_choices() -> None:
    console, buf = _console()
    assert render(console, error_card("nope", hint="try `help`")) == []
    out = buf.getvalue()
    assert "costdna couldn't do that" in out and "nope" in out and "try help" in out
    assert "Choose a number" not in out

"""The grounding check: every resource id and money figure in an LLM answer must come from a tool result."""

from __future__ import annotations

from decimal import Decimal

from engine.ask.grounding import check, ids_in, money_in, quoted_figures
from engine.ask.tools import ToolResult

ARN = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"


def spenders() -> ToolResult:
    return ToolResult(
        tool="top_spenders", args={"n": 2}, ok=True,
        text="Top spenders this month:\n1. `i-0123456789abcdef0` (*payments*) $1,234.56\n2. `orders-db` $98.10",
        data={"rows": [{"arn": ARN, "id": "i-0123456789abcdef0", "team": "payments", "usd": 1234.5649},
                       {"arn": "arn:aws:rds:us-east-1:123456789012:db:orders-db", "id": "orders-db",
                        "team": "checkout", "usd": 98.1}],
              "total_usd": 1332.66, "credits": [{"usd": -12.5}], "count": 2},
        citations=["i-0123456789abcdef0", "orders-db"],
        figures={"total_usd": 1332.66, "top_usd": 1234.56})


def test_grounded_answer_passes() -> None:
    text = ("The top spender is `i-0123456789abcdef0` (payments) at $1,234.56, then `orders-db` at $98.10; "
            f"together $1,332.66 (about $1,333, or $1.3k), 93% from the first. Full ARN: {ARN}. "
            "A credit of -$12.50 applied. `payments` owns it.")
    assert check(text, [spenders()]) == []


def test_invented_id_fails() -> None:
    problems = check("The top spender is `i-0fedcba9876543210` at $1,234.56.", [spenders()])
    assert problems == ["resource id `i-0fedcba9876543210` not found in any tool result"]
    # bare AWS ids and ARNs are checked without backticks too
    assert check("i-0aaaaaaaaaaaaaaaa costs $98.10", [spenders()]) == [
        "resource id `i-0aaaaaaaaaaaaaaaa` not found in any tool result"]
    bad_arn = "arn:aws:s3:::invented-bucket"
    assert check(f"See {bad_arn}.", [spenders()]) == [f"resource id `{bad_arn}` not found in any tool result"]


def test_id_prefix_of_a_real_id_is_not_grounded() -> None:
    assert check("`i-0123456789` and `orders`", [spenders()]) == [
        "resource id `i-0123456789` not found in any tool result", "resource id `orders` not found in any tool result"]


def test_invented_dollar_figure_fails() -> None:
    assert check("`orders-db` costs $4,321.00 a month.", [spenders()]) == [
        "money figure $4,321.00 not found in any tool result"]
    assert check("about USD 5,000", [spenders()]) == ["money figure USD 5,000 not found in any tool result"]


def test_rounded_but_different_figure_fails() -> None:
    # 1,234.56 rounded to the dollar is 1,235: "$1,234" is not that, nor is "$1,234.60" to the cent
    assert check("`i-0123456789abcdef0` costs $1,234.", [spenders()]) == [
        "money figure $1,234 not found in any tool result"]
    assert check("`i-0123456789abcdef0` costs $1,234.60.", [spenders()]) == [
        "money figure $1,234.60 not found in any tool result"]
    assert check("`i-0123456789abcdef0` costs $1,235.", [spenders()]) == []
    assert check("total $1.4k", [spenders()]) == ["money figure $1.4k not found in any tool result"]


def test_percentages_bare_numbers_commands_and_tool_names_are_not_checked() -> None:
    text = "`top_spenders` says 87% of 17 resources; run `/costdna ask top spenders` or `42%`."
    assert check(text, [spenders()]) == []


def test_no_results_grounds_nothing_but_the_question_ids() -> None:
    assert check("`i-0123456789abcdef0` costs $5.", []) == [
        "money figure $5 not found in any tool result",
        "resource id `i-0123456789abcdef0` not found in any tool result"]
    assert check("I found nothing about `i-0aaaaaaaaaaaaaaaa`.", [],
                 question="who owns i-0aaaaaaaaaaaaaaaa?") == []


def test_figures_in_failed_results_and_data_strings_count() -> None:
    r = ToolResult(tool="team_spend", args={}, ok=True, text="", data={"note": "budget is $2,000.00"},
                   citations=[], figures={})
    assert check("The budget is $2,000.00.", [r]) == []


def test_parsers() -> None:
    got = [(m.raw, m.value, m.step) for m in money_in("$1,234.56, $1234.5, -$12.50, $1.2k, $3 million, 45.10 USD")]
    assert got == [("$1,234.56", Decimal("1234.56"), Decimal("0.01")), ("$1234.5", Decimal("1234.5"), Decimal("0.1")),
                   ("-$12.50", Decimal("12.50"), Decimal("0.01")), ("$1.2k", Decimal("1200.0"), Decimal("100.0")),
                   ("$3 million", Decimal("3000000"), Decimal("1000000")),
                   ("45.10 USD", Decimal("45.10"), Decimal("0.01"))]
    assert ids_in(f"`a-b`, {ARN}. vol-0123456789abcdef0 `$12` `12%` `/costdna`") == [
        ARN, "vol-0123456789abcdef0", "a-b"]
    assert quoted_figures("total $1,332.66 over 2", {"total_usd": 1332.66, "count": 2, "x": 7.0}) == {
        "total_usd": 1332.66, "count": 2}


def test_short_id_inside_an_arn_dates_and_tags() -> None:
    r = ToolResult(tool="what_changed", args={}, ok=True, text="one resource appeared",
                   data={"appeared": [ARN], "period": {"start": "2026-11-01T00:00:00+00:00"},
                         "tags": {"team": "payments"}},
                   citations=[ARN], figures={})
    assert check("`i-0123456789abcdef0` appeared on `2026-11-01`, tagged `team=payments`.", [r]) == []
    assert check("`i-0123456789abcdef` appeared", [r]) == [
        "resource id `i-0123456789abcdef` not found in any tool result"]
    assert check("tagged `team=billing`", [r]) == ["resource id `team=billing` not found in any tool result"]

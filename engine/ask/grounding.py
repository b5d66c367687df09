"""The grounding check for LLM answers: every resource id and every money figure must come from a tool.

``check(text, results)`` returns the problems (an empty list: grounded). It is pure (no I/O) and strict:

- Money: every amount written with ``$`` (``$1,234.56``, ``$1234.56``, ``-$12.50``, ``$1.2k``, ``$3 million``)
  or ``USD`` must equal some number found in a tool result -- its ``figures``, any JSON number in its
  ``data``, or an amount written in its ``text`` or in a string of its ``data`` -- at the precision it is
  written: ``$1,234.56`` to the cent, ``$1,235`` to the dollar, ``$1.2k`` to the hundred. A figure that is
  rounded differently (``$1,234`` for 1,234.56) or invented fails. Signs are ignored (a credit of $12.50 is
  -12.50 in the data). Percentages and bare numbers are not checked.
- Resource ids: every ARN (``arn:aws:...``), every AWS-style id (``i-0abc...``, ``vol-...``, ``sg-...``) and
  every token in backticks (``payments-db``; not money, numbers, percentages, commands or tool names)
  must appear in some result's citations, ``data`` (any string or key) or ``text``, as a whole token
  (``i-0abc`` is not grounded by ``i-0abcdef``; it is by ``arn:...:instance/i-0abc``); a backticked tag
  ``key=value`` needs both halves. Dates in backticks are not ids. Ids in the ``question`` count as grounded too: the model may
  repeat what the person asked about.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol


class _Result(Protocol):  # engine.ask.tools.ToolResult, structurally
    text: str
    data: Any
    citations: list[str]
    figures: dict[str, float]


_SUFFIX = {"k": 10**3, "thousand": 10**3, "m": 10**6, "mn": 10**6, "million": 10**6,
           "b": 10**9, "bn": 10**9, "billion": 10**9}
_AMT = r"(?P<amount>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?"
_DOLLARS = re.compile(r"(?<![\w$])-?(?:US)?\$\s?-?" + _AMT
                      + r"(?:\s?(?P<suffix>k|K|mn|M|m|bn|B|b)(?![A-Za-z0-9])|\s(?P<word>thousand|million|billion)\b)?")
_USD_BEFORE = re.compile(r"\bUSD\s?-?" + _AMT + r"(?![\d.,]\d)")
_USD_AFTER = re.compile(r"(?<![\w.,$])-?" + _AMT + r"\s?USD\b")
_NUMBER = re.compile(r"(?<![\w.,$])-?" + _AMT + r"(?![\d.,]\d)")
_ARN = re.compile(r"\barn:aws[\w-]*:[\w-]*:[\w-]*:\d{0,12}:[^\s`'\"<>()\[\]{},;|*]+")
_AWS_PREFIXES = ("i", "vol", "sg", "snap", "ami", "eni", "subnet", "vpc", "igw", "nat", "rtb", "acl", "eipalloc",
                 "eipassoc", "lt", "tgw", "tgw-attach", "pcx", "vpce", "fs", "fsap", "elb", "r", "db", "cluster",
                 "dopt", "eigw", "cgw", "vgw", "vpn", "sir", "fleet", "host", "cr", "pl", "key")
_AWS_ID = re.compile(r"(?<![\w/:.-])(?:" + "|".join(sorted(map(re.escape, _AWS_PREFIXES), key=len, reverse=True))
                     + r")-(?:[0-9a-f]{17}|[0-9a-f]{8})(?![\w-])")
_BACKTICK = re.compile(r"`([^`\n]+)`")
_NUMBERISH = re.compile(r"^[-+−]?(?:US)?\$?\s?[\d,.]+\s?(?:%|[kKmMbB]|USD)?$")
_DATEISH = re.compile(r"^\d{4}-\d{2}(?:-\d{2})?(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$")
_TOOL_NAMES = frozenset({
    "top_spenders", "attribute_resource", "find_cost_spikes", "find_anomalies", "find_idle", "find_abandoned",
    "compare_teams", "signal_history", "search_resources", "summarize_account", "team_spend", "untagged_spend",
    "tag_compliance", "what_changed"})
_TRAILING = ".,;:!?)]}'\""


@dataclass(frozen=True)
class Money:
    """One amount as written: its absolute value and the precision it was written at."""
    raw: str
    value: Decimal
    step: Decimal  # 0.01 for $1,234.56; 1 for $1,235; 100 for $1.2k

    def matches(self, number: float | Decimal) -> bool:
        """True when ``number`` (sign ignored), written at this precision, is this amount."""
        try:
            n = abs(Decimal(str(number)))
        except InvalidOperation:
            return False
        return abs(n - self.value) <= self.step / 2


def _money(m: re.Match[str]) -> Money | None:
    amount, decimals = m.group("amount"), m.group("decimals")
    suffix = m.groupdict().get("suffix") or m.groupdict().get("word")
    try:
        value = Decimal(amount.replace(",", "") + (decimals or ""))
    except InvalidOperation:
        return None
    step = Decimal(1).scaleb(-(len(decimals) - 1)) if decimals else Decimal(1)
    if suffix:
        mult = _SUFFIX[suffix.lower()]
        value, step = value * mult, step * mult
    return Money(raw=m.group(0).strip(), value=value, step=step)


def _amounts(text: str, patterns: Iterable[re.Pattern[str]]) -> list[Money]:
    found: list[tuple[int, int, Money]] = []
    for pattern in patterns:
        for m in pattern.finditer(text or ""):
            if any(s < m.end() and m.start() < e for s, e, _ in found):
                continue  # the same amount, already read by an earlier pattern
            money = _money(m)
            if money is not None:
                found.append((m.start(), m.end(), money))
    return [money for _, _, money in sorted(found, key=lambda t: t[0])]


def money_in(text: str) -> list[Money]:
    """Every money amount written in ``text`` (with ``$`` or ``USD``), in order."""
    return _amounts(text, (_DOLLARS, _USD_BEFORE, _USD_AFTER))


def _clean(token: str) -> str:
    return token.strip().rstrip(_TRAILING).strip()


def ids_in(text: str) -> list[str]:
    """Every resource-id-like token in ``text``: ARNs, AWS-style ids and backticked tokens, in order, once each."""
    seen: dict[str, None] = {}
    text = text or ""
    for m in _ARN.finditer(text):
        seen.setdefault(_clean(m.group(0)), None)
    for m in _AWS_ID.finditer(text):
        seen.setdefault(m.group(0), None)
    for m in _BACKTICK.finditer(text):
        token = m.group(1).strip()
        if not token or any(c.isspace() for c in token) or _NUMBERISH.match(token) or _DATEISH.match(token):
            continue
        if token.startswith("/") or token.startswith("--") or token in _TOOL_NAMES or token.endswith("%"):
            continue
        seen.setdefault(token, None)
    return [t for t in seen if t]


def _walk(value: Any) -> Iterator[Any]:
    """Every scalar (and dict key) in a JSON-able value."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                yield k
                stack.append(x)
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        else:
            yield v


@dataclass
class Evidence:
    """What a set of tool results makes available to quote."""
    numbers: list[Decimal]
    tokens: set[str]
    haystack: str  # all the texts and strings, for whole-token search

    @classmethod
    def of(cls, results: Iterable[_Result], question: str = "") -> Evidence:
        numbers: list[Decimal] = []
        tokens: set[str] = set()
        texts: list[str] = []

        def number(x: Any) -> None:
            if isinstance(x, bool) or not isinstance(x, (int, float, Decimal)):
                return
            if isinstance(x, float) and not math.isfinite(x):
                return
            numbers.append(abs(Decimal(str(x))))

        def string(s: str) -> None:
            texts.append(s)
            tokens.add(s.strip())
            numbers.extend(m.value for m in money_in(s))

        for r in results:
            string(getattr(r, "text", "") or "")
            for c in getattr(r, "citations", None) or []:
                string(str(c))
            for v in (getattr(r, "figures", None) or {}).values():
                number(v)
            for v in _walk(getattr(r, "data", None)):
                if isinstance(v, str):
                    string(v)
                else:
                    number(v)
        if question:
            tokens.update(ids_in(question))
            texts.append(" ".join(ids_in(question)))
        return cls(numbers=numbers, tokens=tokens, haystack="\n".join(texts))

    def has_money(self, m: Money) -> bool:
        return any(m.matches(n) for n in self.numbers)

    def has_id(self, token: str) -> bool:
        if token in self.tokens or mentions(self.haystack, token):
            return True
        key, eq, value = token.partition("=")  # a tag written key=value: both halves must be there
        return bool(eq and key and value) and all(self.has_id(part) for part in (key, value))


def mention_at(text: str, token: str) -> int:
    """Where ``token`` first occurs in ``text`` as a whole token (it may end an ARN: ``.../i-0abc``), not as a
    prefix or suffix of a longer id; -1 when it does not."""
    m = re.search(r"(?<![\w\-.])" + re.escape(token) + r"(?![\w\-/:]|\.\w)", text)
    return m.start() if m else -1


def mentions(text: str, token: str) -> bool:
    return mention_at(text, token) >= 0


def check(text: str, results: list[_Result], *, question: str = "") -> list[str]:
    """The grounding problems of ``text`` against ``results`` (empty: every id and money figure is grounded)."""
    ev = Evidence.of(results, question)
    problems: list[str] = []
    seen: set[str] = set()
    for m in money_in(text):
        if m.raw not in seen and not ev.has_money(m):
            problems.append(f"money figure {m.raw} not found in any tool result")
        seen.add(m.raw)
    for token in ids_in(text):
        if not ev.has_id(token):
            problems.append(f"resource id `{token}` not found in any tool result")
    return problems


def quoted_figures(text: str, figures: dict[str, float]) -> dict[str, float]:
    """The entries of ``figures`` whose values ``text`` quotes (money or a bare number, at the precision quoted)."""
    amounts = _amounts(text, (_DOLLARS, _USD_BEFORE, _USD_AFTER, _NUMBER))
    return {k: v for k, v in figures.items()
            if not isinstance(v, bool) and any(m.matches(v) for m in amounts)}

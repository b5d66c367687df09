"""Time periods in free-text cost questions, for the offline ``ask`` router.

``parse_period(text, now, data_end=None)`` finds the period a question is about and returns it with
the question's text minus the period words, so the router can read the rest::

    >>> p, rest = parse_period("why did our bill spike Tuesday?", now)
    >>> p.label, rest
    ('Tuesday 2026-12-01', 'why did our bill spike?')

Every ``Period`` is a half-open UTC interval ``[start, end)`` with a human label and, when the question
asks for a comparison, ``compare``: the period to compare against.

Supported phrases (case-insensitive, anywhere in a sentence; "in", "on", "for", "during", "over the"
in front of a phrase are removed with it):

* **Days.** ``today`` (midnight to now), ``yesterday``, ``the day before yesterday``; weekday names
  ``Tuesday``, ``last Tuesday``, ``this Tuesday``, ``on tue`` (abbreviations ``tue``, ``tues``,
  ``wed``, ``thu``, ``thur``, ``thurs``, ``fri`` anywhere; ``mon``, ``sat``, ``sun`` only after
  "on"/"last"/"this"/"since"): the most recent Tuesday strictly before today, the whole UTC day.
  ``Tuesday last week``: that weekday of the previous ISO week.
* **Dates.** ``2026-11-03`` (also ``2026/11/03``), ``Nov 3``, ``November 3rd, 2026``, ``3 Nov``,
  ``the 3rd of November``: that whole day. Without a year, the latest such date not after today.
* **Ranges.** ``2026-11-01 to 2026-11-07``, ``from Nov 1 to Nov 7``, ``Nov 1 - 7``,
  ``between Nov 1 and Nov 7``, ``2026-11-01 through 2026-11-07``: both ends inclusive days.
* **Since.** ``since Nov 3``, ``since 2026-11-03``, ``since Monday``, ``since yesterday``,
  ``since October``: from the start of that day (or month) to now.
* **Weeks** (ISO weeks, Monday first). ``this week``, ``week to date``, ``WTD`` (Monday to now);
  ``last week``, ``previous week``; ``the week before last``; ``last weekend`` / ``this weekend``
  (the most recent Saturday and Sunday that have started).
* **Months.** ``this month``, ``month to date``, ``MTD``; ``last month``, ``previous month``;
  month names with or without a year: ``in October``, ``October``, ``oct 2026``, ``October, 2026``,
  ``2026-10``. Without a year, the latest such month that has begun (the current month to date when
  it is the current month). ``may`` and the three-letter abbreviations need a year, a leading
  "in"/"during"/"for"/"since"/"of"/"last"/"this", since they are ordinary words too.
* **Quarters and years.** ``this quarter``, ``last quarter``, ``Q3 2026``, ``Q3`` (latest begun);
  ``this year``, ``YTD``, ``last year``, ``in 2025``.
* **Rolling windows, counted back from now.** ``last 7 days``, ``past 2 weeks``, ``last 30d``,
  ``past 24 hours``, ``over the last three months``, ``trailing 14 days``, ``past week``,
  ``past month`` (numbers as digits or the words one to twelve, "a").
* **Comparisons.** ``MoM`` / ``month over month``, ``WoW`` / ``week over week``, ``DoD`` /
  ``day over day``, ``YoY`` / ``year over year``: the named period against the one before it (or the
  same one a year before for YoY); alone, the current month / week / day / year against the previous.
  ``vs the day before``, ``compared to the previous week``, ``versus the month before``, ``vs prior
  period``: the period just before the main one, the same length. ``vs last week``, ``compared with
  October``, ``against 2026-11-01 to 2026-11-07``: that period; when the question names no other
  period, the main one is the period right after it ("spend vs last week" is this week vs last week).
  The comparison period is always whole (a month to date compares with the whole previous month).

Typos: a word of five letters or more within one edit (insert, delete, substitute, swap two
neighbours) of a keyword of five letters or more is read as that keyword ("yesterady", "Tuesdy",
"Octobr", "mnoth"; when two keywords are that close, the one missing a letter wins: "tursday" is
Thursday), except real words listed in ``_NOT_TYPOS`` ("match", "mouth", "sundry"...).

Data that ends before now (``data_end``): periods that run up to now (today, this week / month /
quarter / year and their to-date forms, a named month that is the current one) end at ``data_end``
instead (never before their start). Rolling windows and "since" still count from / to ``now``.

When several phrases are present, the first kind in this order wins: ranges, "since", rolling
windows, day words, weeks / months / quarters / years, dates, month names, weekdays; the others
stay in the returned text. No period found gives ``(None, text)`` unchanged. ``parse_period`` never
raises: any failure reads as "no period".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["Period", "parse_period"]


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval ``[start, end)`` with a label and, optionally, the period to compare."""

    start: datetime
    end: datetime
    label: str
    compare: Period | None = None


# ---------------------------------------------------------------------------------------------- words

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}
_MONTH_ABBR = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
               "sept": 9, "oct": 10, "nov": 11, "dec": 12}
_MONTH_NAMES = [""] + [m.capitalize() for m in _MONTHS]
_WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
             "sunday": 6}
_WEEKDAY_ABBR = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4,
                 "sat": 5, "sun": 6}
_WEEKDAY_NAMES = [d.capitalize() for d in _WEEKDAYS]
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}

# Keywords that typos are corrected to (five letters or more).
_VOCAB = sorted({
    *(w for w in _MONTHS if len(w) >= 5), *_WEEKDAYS, "today", "yesterday", "month", "months",
    "weeks", "since", "between", "previous", "before", "versus", "compared", "through", "weekend",
    "quarter", "trailing", "against",
})
# Real words one edit away from a keyword: never "corrected".
_NOT_TYPOS = frozenset({
    "match", "mouth", "mouths", "sundry", "sundae", "monthy", "toady", "singe", "mince", "wince",
    "geeks", "weeds", "weens", "reeks", "seeks", "peeks", "march", "marches", "quartet", "quarters",
    "compare", "compares", "monday", "mondays", "fridays", "sundays", "beforehand", "weekends",
    "trading", "tailing",
})


def _osa_distance_le1(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are within one insert, delete, substitution or adjacent swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    # b is one longer: deleting one char of b gives a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


def _correct(word: str) -> str | None:
    low = word.lower()
    if len(low) < 5 or low in _VOCAB or low in _NOT_TYPOS:
        return None
    hits = [v for v in _VOCAB if _osa_distance_le1(low, v)]
    if len(hits) > 1:  # "tursday": a dropped letter is the likelier typo than a wrong one
        hits = [v for v in hits if len(v) == len(low) + 1] or hits
    return hits[0] if len(hits) == 1 else None


class _Text:
    """The question with typos corrected; positions map back to the original text."""

    def __init__(self, original: str) -> None:
        self.original = original
        pieces: list[str] = []
        self._edits: list[tuple[int, int, int, int]] = []  # norm_start, norm_len, orig_start, orig_len
        last = 0
        npos = 0
        for m in re.finditer(r"[A-Za-z]+", original):
            fix = _correct(m.group())
            if fix is None:
                continue
            pieces.append(original[last:m.start()])
            npos += m.start() - last
            self._edits.append((npos, len(fix), m.start(), len(m.group())))
            pieces.append(fix)
            npos += len(fix)
            last = m.end()
        pieces.append(original[last:])
        self.norm = "".join(pieces)
        self.removed: list[tuple[int, int]] = []  # original spans

    def to_orig(self, p: int) -> int:
        delta = 0
        for ns, nl, os_, ol in self._edits:
            if p < ns:
                break
            if p < ns + nl:
                return os_ + min(p - ns, ol)
            delta = (os_ + ol) - (ns + nl)
        return p + delta

    def remove(self, start: int, end: int) -> None:
        """Blank ``norm[start:end]`` (keeping offsets) and remember the original span to drop."""
        self.norm = self.norm[:start] + " " * (end - start) + self.norm[end:]
        self.removed.append((self.to_orig(start), self.to_orig(end)))

    def rest(self) -> str:
        out = self.original
        for s, e in sorted(self.removed, reverse=True):
            out = out[:s] + " " + out[e:]
        out = re.sub(r"[ \t]{2,}", " ", out)
        out = re.sub(r" +([?!.,;:])", r"\1", out)
        out = re.sub(r"\(\s*\)", "", out)
        out = re.sub(r"^'s\b\s*", "", re.sub(r"[ \t]{2,}", " ", out).strip(" \t,;"))
        return out


# --------------------------------------------------------------------------------------- patterns

_MONTH_RE = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
             r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_FULL_MONTH_RE = r"(?:january|february|march|april|june|july|august|september|october|november|december)"
_ORD = r"(?:st|nd|rd|th)?"
_ISO_DATE = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}"
_MD = rf"{_MONTH_RE}\.?\s+\d{{1,2}}{_ORD}(?!\d)(?:,?\s+\d{{4}})?"
_DM = rf"(?:the\s+)?\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH_RE}\b\.?(?:,?\s+\d{{4}})?"
_DATE = rf"(?:{_ISO_DATE}|{_MD}|{_DM})"
_WEEKDAY_RE = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_WD_SHORT_FREE = r"(?:tues?|wed|thu(?:rs?)?|fri)"
_WD_SHORT_ANY = r"(?:mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)"
_NUM = r"(?:\d{1,6}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_LEAD = r"(?:(?:in|on|for|during|over|from|of|within)\s+)?(?:the\s+)?"


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=UTC)


def _iso(d: date) -> str:
    return d.isoformat()


def _dayname(d: date) -> str:
    return f"{_WEEKDAY_NAMES[d.weekday()]} {d.isoformat()}"


@dataclass
class _P:
    start: datetime
    end: datetime
    label: str
    unit: str  # day, week, month, quarter, year, span
    current: bool = False  # runs up to now: clipped at data_end

    def freeze(self, compare: Period | None = None) -> Period:
        return Period(self.start, self.end, self.label, compare)


class _Ctx:
    def __init__(self, now: datetime, data_end: datetime | None) -> None:
        self.now = now
        self.today = now.date()
        self.data_end = data_end

    def clip(self, p: _P) -> _P:
        if not p.current:
            return p
        end = min(p.end, self.now)
        label = p.label
        if self.data_end is not None and self.data_end < end:
            end = max(p.start, self.data_end)
            label = f"{label}, data to {self.data_end:%Y-%m-%d %H:%M} UTC"
        return _P(p.start, end, label, p.unit, True)


def _month_of(s: str) -> int | None:
    s = s.lower().rstrip(".")
    return _MONTHS.get(s) or _MONTH_ABBR.get(s) or next(
        (n for name, n in _MONTHS.items() if len(s) >= 3 and name.startswith(s)), None)


def _date_from(s: str, ctx: _Ctx) -> tuple[date, bool] | None:
    """A date phrase -> (date, had an explicit year)."""
    s = s.strip().lower()
    m = re.fullmatch(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", s)
    if m:
        return date(int(m[1]), int(m[2]), int(m[3])), True
    m = re.fullmatch(rf"({_MONTH_RE})\.?\s+(\d{{1,2}}){_ORD}(?:,?\s+(\d{{4}}))?", s)
    if m:
        mon, day, year = _month_of(m[1]), int(m[2]), m[3]
    else:
        m = re.fullmatch(rf"(?:the\s+)?(\d{{1,2}}){_ORD}\s+(?:of\s+)?({_MONTH_RE})\.?(?:,?\s+(\d{{4}}))?", s)
        if not m:
            return None
        mon, day, year = _month_of(m[2]), int(m[1]), m[3]
    if mon is None:
        return None
    if year:
        return date(int(year), mon, day), True
    for y in range(ctx.today.year, ctx.today.year - 9, -1):
        try:
            d = date(y, mon, day)
        except ValueError:
            continue
        if d <= ctx.today:
            return d, False
    return None


def _day(d: date, label: str | None = None) -> _P:
    return _P(_day_start(d), _day_start(d + timedelta(days=1)), label or _dayname(d), "day")


def _week(monday: date, label: str | None = None) -> _P:
    sunday = monday + timedelta(days=6)
    return _P(_day_start(monday), _day_start(monday + timedelta(days=7)),
              label or f"week {_iso(monday)} – {_iso(sunday)}", "week")


def _month(y: int, m: int, label: str | None = None) -> _P:
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return _P(_day_start(date(y, m, 1)), _day_start(date(ny, nm, 1)),
              label or f"{_MONTH_NAMES[m]} {y}", "month")


def _quarter(y: int, q: int, label: str | None = None) -> _P:
    m = 3 * (q - 1) + 1
    end = date(y + 1, 1, 1) if q == 4 else date(y, m + 3, 1)
    return _P(_day_start(date(y, m, 1)), _day_start(end), label or f"Q{q} {y}", "quarter")


def _year(y: int, label: str | None = None) -> _P:
    return _P(_day_start(date(y, 1, 1)), _day_start(date(y + 1, 1, 1)), label or str(y), "year")


def _span(start: datetime, end: datetime, label: str) -> _P:
    return _P(start, end, label, "span")


def _latest_month(mon: int, ctx: _Ctx) -> tuple[int, int]:
    y = ctx.today.year if mon <= ctx.today.month else ctx.today.year - 1
    return y, mon


def _mark_current(p: _P, ctx: _Ctx) -> _P:
    if p.start <= ctx.now < p.end:
        p.current = True
    return p


# ------------------------------------------------------------------------------------- builders

_Builder = Callable[[re.Match[str], _Ctx], _P | None]


def _b_between(m: re.Match[str], ctx: _Ctx) -> _P | None:
    a = _date_from(m["a"], ctx)
    if a is None:
        return None
    b_text = m["b"].strip()
    if re.fullmatch(rf"\d{{1,2}}{_ORD}", b_text):  # "Nov 1 - 7": same month and year as the start
        d1 = a[0]
        b = (date(d1.year, d1.month, int(re.match(r"\d+", b_text)[0])), True)  # type: ignore[index]
    else:
        b = _date_from(b_text, ctx)
        if b is None:
            return None
    d1, d2 = a[0], b[0]
    if d1 > d2 and not a[1]:
        d1 = d1.replace(year=d1.year - 1)
    if d1 > d2:
        return None
    return _span(_day_start(d1), _day_start(d2 + timedelta(days=1)), f"{_iso(d1)} – {_iso(d2)}")


def _b_since(m: re.Match[str], ctx: _Ctx) -> _P | None:
    what = m["what"].strip().lower()
    start: date | None = None
    if what == "yesterday":
        start = ctx.today - timedelta(days=1)
    elif what == "today":
        start = ctx.today
    elif re.fullmatch(_WEEKDAY_RE + r"|" + _WD_SHORT_ANY, what):
        wd = _WEEKDAYS.get(what, _WEEKDAY_ABBR.get(what))
        if wd is None:
            return None
        start = ctx.today - timedelta(days=(ctx.today.weekday() - wd) % 7 or 7)
    elif what in ("last week", "the start of the week", "monday"):
        start = ctx.today - timedelta(days=ctx.today.weekday() + 7)
    elif what == "last month":
        y, mo = (ctx.today.year - 1, 12) if ctx.today.month == 1 else (ctx.today.year, ctx.today.month - 1)
        start = date(y, mo, 1)
    else:
        got = _date_from(what, ctx)
        if got is not None:
            start = got[0]
        else:
            mm = re.fullmatch(rf"({_MONTH_RE})\.?(?:,?\s+(\d{{4}}))?", what)
            if not mm:
                return None
            mon = _month_of(mm[1])
            if mon is None:
                return None
            y = int(mm[2]) if mm[2] else _latest_month(mon, ctx)[0]
            start = date(y, mon, 1)
    s = _day_start(start)
    if s >= ctx.now:
        return None
    return _span(s, ctx.now, f"since {_iso(start)}")


_UNITS = {"h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
          "d": "days", "day": "days", "days": "days", "w": "weeks", "wk": "weeks", "wks": "weeks",
          "week": "weeks", "weeks": "weeks", "m": "months", "mo": "months", "mos": "months",
          "month": "months", "months": "months"}


def _shift_months(dt: datetime, n: int) -> datetime:
    total = dt.year * 12 + (dt.month - 1) - n
    y, mo = divmod(total, 12)
    mo += 1
    day = dt.day
    while True:
        try:
            return dt.replace(year=y, month=mo, day=day)
        except ValueError:
            day -= 1


def _b_rolling(m: re.Match[str], ctx: _Ctx) -> _P | None:
    raw = m["n"].lower() if m["n"] else "1"
    n = int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]
    if n <= 0:
        return None
    unit = _UNITS[m["unit"].lower()]
    start = _shift_months(ctx.now, n) if unit == "months" else ctx.now - timedelta(**{unit: n})
    words = f"past {unit[:-1]}" if not m["n"] else f"last {n} {unit[:-1] if n == 1 else unit}"
    label = f"{words} ({start:%Y-%m-%d %H:%M} – {ctx.now:%Y-%m-%d %H:%M} UTC)"
    return _span(start, ctx.now, label)


def _b_dayword(m: re.Match[str], ctx: _Ctx) -> _P | None:
    w = re.sub(r"\s+", " ", m["w"].lower())
    if w == "today":
        return _P(_day_start(ctx.today), _day_start(ctx.today + timedelta(days=1)),
                  f"today ({_dayname(ctx.today)})", "day", True)
    if w == "yesterday":
        d = ctx.today - timedelta(days=1)
        return _day(d, f"yesterday ({_dayname(d)})")
    d = ctx.today - timedelta(days=2)
    return _day(d, f"the day before yesterday ({_dayname(d)})")


def _b_named_unit(m: re.Match[str], ctx: _Ctx) -> _P | None:
    which = re.sub(r"\s+", " ", m["which"].lower())
    unit = m["unit"].lower()
    back = 1 if which in ("last", "previous", "prior", "the previous", "the last") else 0
    if which == "the week before":
        back = 2
    t = ctx.today
    if unit == "week":
        monday = t - timedelta(days=t.weekday() + 7 * back)
        p = _week(monday)
        word = {0: "this week", 1: "last week"}.get(back, "the week before last")
        p.label = f"{word} ({_iso(monday)} – {_iso(min(monday + timedelta(days=6), t))})"
    elif unit == "weekend":
        # the most recent weekend that has started; "last weekend" on a weekend is the one before
        sat = t - timedelta(days=(t.weekday() - 5) % 7)
        if back:
            if t.weekday() >= 5:
                sat -= timedelta(days=7)
            p = _P(_day_start(sat), _day_start(sat + timedelta(days=2)),
                   f"last weekend ({_iso(sat)} – {_iso(sat + timedelta(days=1))})", "span")
        else:
            p = _P(_day_start(sat), _day_start(sat + timedelta(days=2)),
                   f"this weekend ({_iso(sat)} – {_iso(sat + timedelta(days=1))})", "span")
    elif unit == "month":
        total = t.year * 12 + t.month - 1 - back
        y, mo = divmod(total, 12)
        p = _month(y, mo + 1)
        p.label = f"{'last' if back else 'this'} month ({_MONTH_NAMES[mo + 1]} {y})"
    elif unit == "quarter":
        q = (t.month - 1) // 3 + 1 - back
        y = t.year
        if q == 0:
            y, q = y - 1, 4
        p = _quarter(y, q)
        p.label = f"{'last' if back else 'this'} quarter (Q{q} {y})"
    else:
        y = t.year - back
        p = _year(y, f"{'last' if back else 'this'} year ({y})")
    return _mark_current(p, ctx)


def _b_to_date(m: re.Match[str], ctx: _Ctx) -> _P | None:
    w = m["w"].lower().replace(" ", "").replace("-", "")
    t = ctx.today
    if w.startswith("w"):
        p = _week(t - timedelta(days=t.weekday()))
        p.label = f"this week ({_iso(p.start.date())} – {_iso(t)})"
    elif w.startswith("m"):
        p = _month(t.year, t.month, f"this month ({_MONTH_NAMES[t.month]} {t.year})")
    else:
        p = _year(t.year, f"this year ({t.year})")
    p.current = True
    return p


def _b_weekday_of_last_week(m: re.Match[str], ctx: _Ctx) -> _P | None:
    wd = _WEEKDAYS[m["wd"].lower()]
    monday = ctx.today - timedelta(days=ctx.today.weekday() + 7)
    return _day(monday + timedelta(days=wd))


def _b_date(m: re.Match[str], ctx: _Ctx) -> _P | None:
    got = _date_from(m["d"], ctx)
    if got is None:
        return None
    return _mark_current(_day(got[0]), ctx)


def _b_iso_month(m: re.Match[str], ctx: _Ctx) -> _P | None:
    return _mark_current(_month(int(m["y"]), int(m["m"])), ctx)


def _b_month(m: re.Match[str], ctx: _Ctx) -> _P | None:
    name = m["mon"].lower().rstrip(".")
    lead = (m["lead"] or "").strip().lower()
    if (name == "may" or name in _MONTH_ABBR) and lead in ("", "last", "this") and not m["y"]:
        return None
    mon = _month_of(name)
    if mon is None:
        return None
    if m["y"]:
        y = int(m["y"])
    elif lead == "last":
        y = ctx.today.year if mon < ctx.today.month else ctx.today.year - 1
    else:
        y = _latest_month(mon, ctx)[0]
    return _mark_current(_month(y, mon), ctx)


def _b_quarter(m: re.Match[str], ctx: _Ctx) -> _P | None:
    q = int(m["q"])
    if m["y"]:
        y = int(m["y"])
    else:
        cur = (ctx.today.month - 1) // 3 + 1
        y = ctx.today.year if q <= cur else ctx.today.year - 1
    return _mark_current(_quarter(y, q), ctx)


def _b_year(m: re.Match[str], ctx: _Ctx) -> _P | None:
    return _mark_current(_year(int(m["y"])), ctx)


def _b_weekday(m: re.Match[str], ctx: _Ctx) -> _P | None:
    lead = (m["lead"] or "").strip().lower()
    name = m["wd"].lower()
    wd = _WEEKDAYS.get(name)
    if wd is None:
        if not lead and not re.fullmatch(_WD_SHORT_FREE, name):
            return None
        wd = _WEEKDAY_ABBR.get(name)
        if wd is None:
            return None
    d = ctx.today - timedelta(days=(ctx.today.weekday() - wd) % 7 or 7)
    return _day(d)


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_B = r"(?<![\w-])"  # start boundary: not inside a word, id or ISO date
_E = r"(?![\w-]*\w)"  # end boundary

_PATTERNS: list[tuple[re.Pattern[str], _Builder]] = [
    (_c(rf"{_B}(?:(?:in|for|during|over)\s+)?(?:the\s+(?:period|days?)\s+)?between\s+(?P<a>{_DATE})\s+and\s+"
        rf"(?P<b>{_DATE}|\d{{1,2}}{_ORD}){_E}"), _b_between),
    (_c(rf"{_B}(?:(?:in|for|during|over)\s+)?(?:the\s+(?:period|days?)\s+)?(?:from\s+)?(?P<a>{_DATE})\s*"
        rf"(?:to|through|thru|until|till|up\s+to|–|—|-|\.\.)\s*(?P<b>{_DATE}|\d{{1,2}}{_ORD}){_E}"), _b_between),
    (_c(rf"{_B}(?:ever\s+)?since\s+(?:the\s+)?(?P<what>{_DATE}|yesterday|today|last\s+week|last\s+month"
        rf"|start\s+of\s+the\s+week|{_WEEKDAY_RE}|{_WD_SHORT_ANY}|{_MONTH_RE}\.?(?:,?\s+\d{{4}})?){_E}"), _b_since),
    (_c(rf"{_B}from\s+(?P<what>{_DATE}){_E}"), _b_since),
    (_c(rf"{_B}(?:(?:in|over|during|for|within)\s+)?(?:the\s+)?(?:last|past|previous|prior|trailing|recent)\s+"
        rf"(?P<n>{_NUM})\s*(?P<unit>hours?|hrs?|h|days?|d|weeks?|wks?|w|months?|mos?){_E}"), _b_rolling),
    (_c(rf"{_B}(?:(?:in|over|during|for|within)\s+)?(?:the\s+)?(?:past|trailing)\s+"
        rf"(?P<n>)(?P<unit>hour|day|week|month){_E}"), _b_rolling),
    (_c(rf"{_B}(?:(?:on|for|during)\s+)?(?:the\s+)?(?P<w>day\s+before\s+yesterday|yesterday|today){_E}"), _b_dayword),
    (_c(rf"{_B}(?:(?:on|for)\s+)?(?:the\s+)?(?P<wd>{_WEEKDAY_RE})\s+(?:of\s+)?(?:last|previous)\s+week{_E}"),
     _b_weekday_of_last_week),
    (_c(rf"{_B}(?:(?:in|for|during|over)\s+)?(?P<which>the\s+week\s+before)\s+(?P<unit>last){_E}"),
     lambda m, c: _b_named_unit(_FakeMatch({"which": "the week before", "unit": "week"}), c)),
    (_c(rf"{_B}(?:so\s+far\s+)?(?:(?:in|for|during|over)\s+)?(?:the\s+)?(?P<which>this|current|last|previous|prior)\s+"
        rf"(?P<unit>week(?:end)?|month|quarter|year){_E}(?:\s+so\s+far)?(?:\s+to\s+date)?"), _b_named_unit),
    (_c(rf"{_B}(?:(?:in|for|during|over)\s+)?(?:the\s+)?(?P<w>week[\s-]to[\s-]date|month[\s-]to[\s-]date"
        rf"|year[\s-]to[\s-]date|wtd|mtd|ytd){_E}"), _b_to_date),
    (_c(rf"{_B}(?:(?:on|for|of)\s+)?(?P<d>{_DATE}){_E}"), _b_date),
    (_c(rf"{_B}(?:(?:in|for|during|of)\s+)?(?P<y>\d{{4}})-(?P<m>0?[1-9]|1[0-2]){_E}"), _b_iso_month),
    (_c(rf"{_B}(?:(?P<lead>in|during|for|since|of|last|this)\s+)?(?:the\s+month\s+of\s+)?(?P<mon>{_MONTH_RE})\b\.?"
        rf"(?:,?\s+(?P<y>\d{{4}}))?{_E}"), _b_month),
    (_c(rf"{_B}(?:(?:in|for|during|of)\s+)?q(?P<q>[1-4])(?:\s*,?\s*(?P<y>\d{{4}}))?{_E}"), _b_quarter),
    (_c(rf"{_B}(?:in|during|for)\s+(?:the\s+year\s+)?(?P<y>(?:19|20)\d\d){_E}"), _b_year),
    (_c(rf"{_B}(?:(?P<lead>on|last|this|past|previous|since)\s+)?(?P<wd>{_WEEKDAY_RE}|{_WD_SHORT_ANY})s?{_E}"),
     _b_weekday),
]


class _FakeMatch:
    def __init__(self, groups: dict[str, str]) -> None:
        self._g = groups

    def __getitem__(self, k: str) -> str:
        return self._g[k]


def _find(text: str, ctx: _Ctx, *, anchored_at: int | None = None) -> tuple[_P, int, int] | None:
    """The first pattern (in priority order) that yields a period: (period, start, end) in ``text``."""
    for pattern, build in _PATTERNS:
        if anchored_at is not None:
            m = pattern.match(text, anchored_at)
            matches = [m] if m else []
        else:
            matches = list(pattern.finditer(text))
        for m in matches:
            try:
                p = build(m, ctx)
            except (ValueError, OverflowError, KeyError, TypeError, IndexError):
                p = None
            if p is not None and p.start < p.end or (p is not None and p.current):
                return p, m.start(), m.end()
    return None


# ---------------------------------------------------------------------------------- comparisons

_OVER = _c(rf"{_B}(?:(?P<abbr>mom|wow|dod|yoy)|(?P<unit>month|week|day|year)[\s-]+(?:over|on|vs\.?)[\s-]+"
           rf"(?P=unit)){_E}")
_VS = _c(rf"{_B}(?:vs\.?|versus|compared?\s+(?:to|with)|against|relative\s+to)\s+")
_VS_REL = _c(r"(?:the\s+)?(?:(?:previous|prior|preceding)\s+(?:day|week|month|quarter|year|period|one)"
             r"|last\s+(?:period|one)"
             r"|(?:day|week|month|quarter|year|period|one)\s+before)(?![\w-]*\w)")


def _previous(p: _P) -> _P:
    s = p.start.date()
    if p.unit == "day":
        return _day(s - timedelta(days=1))
    if p.unit == "week":
        return _week(s - timedelta(days=7))
    if p.unit == "month":
        y, m = (s.year - 1, 12) if s.month == 1 else (s.year, s.month - 1)
        return _month(y, m)
    if p.unit == "quarter":
        q = (s.month - 1) // 3 + 1
        return _quarter(s.year - 1, 4) if q == 1 else _quarter(s.year, q - 1)
    if p.unit == "year":
        return _year(s.year - 1)
    length = p.end - p.start
    start = p.start - length
    return _span(start, p.start, f"{start:%Y-%m-%d %H:%M} – {p.start:%Y-%m-%d %H:%M} UTC"
                 if length % timedelta(days=1) or p.start.time() != time() else f"{_iso(start.date())} – {_iso((p.start - timedelta(days=1)).date())}")


def _next(p: _P, ctx: _Ctx) -> _P:
    s = p.start.date()
    if p.unit == "day":
        q = _day(s + timedelta(days=1))
    elif p.unit == "week":
        q = _week(s + timedelta(days=7))
    elif p.unit == "month":
        q = _month(*((s.year + 1, 1) if s.month == 12 else (s.year, s.month + 1)))
    elif p.unit == "quarter":
        qn = (s.month - 1) // 3 + 1
        q = _quarter(s.year + 1, 1) if qn == 4 else _quarter(s.year, qn + 1)
    elif p.unit == "year":
        q = _year(s.year + 1)
    else:
        length = p.end - p.start
        q = _span(p.end, p.end + length, f"{p.end:%Y-%m-%d %H:%M} – {p.end + length:%Y-%m-%d %H:%M} UTC")
    q = _mark_current(q, ctx)
    if q.current and q.unit in ("day", "week", "month", "year"):
        return _default_for(q.unit, ctx)
    return q


def _year_before(p: _P) -> _P:
    def back(dt: datetime) -> datetime:
        try:
            return dt.replace(year=dt.year - 1)
        except ValueError:
            return dt.replace(year=dt.year - 1, day=28)

    if p.unit == "month":
        return _month(p.start.year - 1, p.start.month)
    if p.unit == "year":
        return _year(p.start.year - 1)
    if p.unit == "quarter":
        return _quarter(p.start.year - 1, (p.start.month - 1) // 3 + 1)
    s, e = back(p.start), back(p.end)
    if p.unit == "day":
        return _day(s.date())
    if p.unit == "week":
        e = s + timedelta(days=7)
    label = _dayname(s.date()) if p.unit == "day" else f"{_iso(s.date())} – {_iso((e - timedelta(microseconds=1)).date())}"
    return _P(s, e, label, p.unit)


def _default_for(unit: str, ctx: _Ctx) -> _P:
    t = ctx.today
    if unit == "day":
        return _P(_day_start(t), _day_start(t + timedelta(days=1)), f"today ({_dayname(t)})", "day", True)
    if unit == "week":
        p = _week(t - timedelta(days=t.weekday()))
        p.label = f"this week ({_iso(p.start.date())} – {_iso(t)})"
    elif unit == "year":
        p = _year(t.year, f"this year ({t.year})")
    else:
        p = _month(t.year, t.month, f"this month ({_MONTH_NAMES[t.month]} {t.year})")
    p.current = True
    return p


def _interjection(m: re.Match[str], text: str) -> bool:
    """"wow, the bill!" is not week over week."""
    if (m["abbr"] or "").lower() != "wow":
        return False
    if re.match(r"\s*[!,.]", text[m.end():]):
        return True
    return m["abbr"] in ("wow", "Wow") and not text[:m.start()].strip() and bool(text[m.end():].strip())


_ABBR_UNIT = {"mom": "month", "wow": "week", "dod": "day", "yoy": "year"}


def _parse(text: str, now: datetime, data_end: datetime | None) -> tuple[Period | None, str]:
    ctx = _Ctx(now, data_end)
    t = _Text(text)

    over_unit: str | None = None
    m = next((o for o in _OVER.finditer(t.norm) if not _interjection(o, t.norm)), None)
    if m:
        over_unit = _ABBR_UNIT[m["abbr"].lower()] if m["abbr"] else m["unit"].lower()
        t.remove(m.start(), m.end())

    compare: _P | None = None
    relative = False
    for vm in _VS.finditer(t.norm):
        rm = _VS_REL.match(t.norm, vm.end())
        if rm:
            relative = True
            t.remove(vm.start(), rm.end())
            break
        found = _find(t.norm, ctx, anchored_at=vm.end())
        if found:
            compare, _, end = found
            compare.current = False  # compare against the whole period
            t.remove(vm.start(), end)
            break

    main: _P | None = None
    found = _find(t.norm, ctx)
    if found:
        main, s, e = found
        t.remove(s, e)

    if main is None:
        if compare is not None:
            main = _next(compare, ctx)
        elif over_unit is not None:
            main = _default_for(over_unit, ctx)
        else:
            return None, text
    main = ctx.clip(main)

    cmp_period: Period | None = None
    if compare is not None:
        cmp_period = compare.freeze()
    elif over_unit == "year":
        cmp_period = _year_before(main).freeze()
    elif over_unit is not None or relative:
        cmp_period = _previous(main).freeze()
    if cmp_period is not None and cmp_period.start >= cmp_period.end:
        cmp_period = None
    return main.freeze(cmp_period), t.rest()


def _as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_period(text: str, now: datetime, *, data_end: datetime | None = None) -> tuple[Period | None, str]:
    """The period ``text`` asks about (see the module docstring) and ``text`` without its words.

    ``now`` and ``data_end`` may be naive (read as UTC) or aware. Never raises: returns
    ``(None, text)`` when no period is found or anything goes wrong.
    """
    try:
        if not isinstance(text, str) or not text:
            return None, text
        return _parse(text, _as_utc(now), _as_utc(data_end) if data_end is not None else None)
    except Exception:  # noqa: BLE001 - documented contract: never raise on any input
        return None, text

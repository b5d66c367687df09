"""Period parsing for the offline ask router: phrases, typos, comparisons, data_end, and never raising."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.periods import Period, parse_period

NOW = datetime(2026, 12, 7, 18, 22, tzinfo=UTC)  # a Monday


def d(y: int, m: int, day: int) -> datetime:
    return datetime(y, m, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("Tuesday", d(2026, 12, 1), d(2026, 12, 2), "Tuesday 2026-12-01"),
        ("what happened last Tuesday", d(2026, 12, 1), d(2026, 12, 2), "Tuesday 2026-12-01"),
        ("on tue", d(2026, 12, 1), d(2026, 12, 2), "Tuesday 2026-12-01"),
        ("on Monday", d(2026, 11, 30), d(2026, 12, 1), "Monday 2026-11-30"),  # strictly before today
        ("yesterday", d(2026, 12, 6), d(2026, 12, 7), "yesterday (Sunday 2026-12-06)"),
        ("the day before yesterday", d(2026, 12, 5), d(2026, 12, 6), None),
        ("TODAY", d(2026, 12, 7), NOW, "today (Monday 2026-12-07)"),
        ("last week", d(2026, 11, 30), d(2026, 12, 7), "last week (2026-11-30 – 2026-12-06)"),
        ("this week", d(2026, 12, 7), NOW, None),
        ("the week before last", d(2026, 11, 23), d(2026, 11, 30), None),
        ("Tuesday last week", d(2026, 12, 1), d(2026, 12, 2), None),
        ("last month", d(2026, 11, 1), d(2026, 12, 1), "last month (November 2026)"),
        ("this month", d(2026, 12, 1), NOW, None),
        ("in October", d(2026, 10, 1), d(2026, 11, 1), "October 2026"),
        ("October", d(2026, 10, 1), d(2026, 11, 1), "October 2026"),
        ("oct 2025", d(2025, 10, 1), d(2025, 11, 1), "October 2025"),
        ("in jan", d(2026, 1, 1), d(2026, 2, 1), "January 2026"),
        ("2026-10", d(2026, 10, 1), d(2026, 11, 1), "October 2026"),
        ("in December", d(2026, 12, 1), NOW, "December 2026"),  # the current month, to date
        ("since Nov 3", d(2026, 11, 3), NOW, "since 2026-11-03"),
        ("since 2026-11-03", d(2026, 11, 3), NOW, "since 2026-11-03"),
        ("since Monday", d(2026, 11, 30), NOW, None),
        ("2026-11-03", d(2026, 11, 3), d(2026, 11, 4), "Tuesday 2026-11-03"),
        ("Nov 3rd", d(2026, 11, 3), d(2026, 11, 4), None),
        ("the 3rd of November", d(2026, 11, 3), d(2026, 11, 4), None),
        ("Dec 25", d(2025, 12, 25), d(2025, 12, 26), None),  # latest Dec 25 not after today
        ("2026-11-01 to 2026-11-07", d(2026, 11, 1), d(2026, 11, 8), "2026-11-01 – 2026-11-07"),
        ("between Nov 1 and Nov 7", d(2026, 11, 1), d(2026, 11, 8), "2026-11-01 – 2026-11-07"),
        ("from Nov 1 to Nov 7", d(2026, 11, 1), d(2026, 11, 8), None),
        ("Nov 1 - 7", d(2026, 11, 1), d(2026, 11, 8), None),
        ("Dec 28 to Jan 3", d(2025, 12, 28), d(2026, 1, 4), None),
        ("last 7 days", NOW - timedelta(days=7), NOW, None),
        ("past 2 weeks", NOW - timedelta(weeks=2), NOW, None),
        ("last 30d", NOW - timedelta(days=30), NOW, None),
        ("over the last three months", datetime(2026, 9, 7, 18, 22, tzinfo=UTC), NOW, None),
        ("past 24 hours", NOW - timedelta(hours=24), NOW, None),
        ("past week", NOW - timedelta(days=7), NOW, None),
        ("last quarter", d(2026, 7, 1), d(2026, 10, 1), None),
        ("Q2 2025", d(2025, 4, 1), d(2025, 7, 1), None),
        ("in 2025", d(2025, 1, 1), d(2026, 1, 1), None),
        ("YTD", d(2026, 1, 1), NOW, None),
        ("MTD", d(2026, 12, 1), NOW, None),
        ("last weekend", d(2026, 12, 5), d(2026, 12, 7), None),
    ],
)
def test_phrases(text: str, start: datetime, end: datetime, label: str | None) -> None:
    p, rest = parse_period(text, NOW)
    assert p is not None, text
    assert (p.start, p.end) == (start, end)
    if label is not None:
        assert p.label == label
    assert rest == "" or text.startswith("what happened")


@pytest.mark.parametrize(
    ("text", "start", "rest"),
    [
        ("why did our bill spike Tuesday?", d(2026, 12, 1), "why did our bill spike?"),
        ("Hey, what did team payments spend last week on EC2?", d(2026, 11, 30),
         "Hey, what did team payments spend on EC2?"),
        ("top 5 spenders in October please", d(2026, 10, 1), "top 5 spenders please"),
        ("untagged spend since Nov 3 by team", d(2026, 11, 3), "untagged spend by team"),
        ("spend by team month over month", d(2026, 12, 1), "spend by team"),
        ("who owns i-0abc123 yesterday", d(2026, 12, 6), "who owns i-0abc123"),
    ],
)
def test_chatty_sentences_keep_the_rest(text: str, start: datetime, rest: str) -> None:
    p, got = parse_period(text, NOW)
    assert p is not None and p.start == start
    assert got == rest


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("yesterady", "yesterday (Sunday 2026-12-06)"),
        ("spike on Tuesdy", "Tuesday 2026-12-01"),
        ("Octobr spend", "October 2026"),
        ("spend in Novmeber", "November 2026"),
        ("Wendesday", "Wednesday 2026-12-02"),
        ("last mnoth", "last month (November 2026)"),
    ],
)
def test_typos_in_keywords(text: str, label: str) -> None:
    p, _ = parse_period(text, NOW)
    assert p is not None and p.label == label


@pytest.mark.parametrize(
    "text",
    ["top 5 spenders", "who owns the second one?", "", "the match job",
     "it sat idle", "this may be wrong", "Wow, that bill!", "sundry costs", "arn:aws:ec2:us-east-1:1:i-0mon",
     "last 5", "decrease", "wedding budget", "i-2026-11-03x"],
)
def test_no_period(text: str) -> None:
    assert parse_period(text, NOW) == (None, text)


def test_mom_this_month_vs_previous() -> None:
    p, rest = parse_period("spend by team MoM", NOW)
    assert p is not None and p.compare is not None
    assert (p.start, p.end) == (d(2026, 12, 1), NOW)
    assert (p.compare.start, p.compare.end) == (d(2026, 11, 1), d(2026, 12, 1))
    assert rest == "spend by team"


def test_mom_of_a_named_month() -> None:
    p, _ = parse_period("payments BU in October, month over month", NOW)
    assert p is not None and p.compare is not None
    assert p.label == "October 2026" and p.compare.label == "September 2026"


def test_wow_and_week_over_week() -> None:
    for text in ("WoW", "week over week", "spend week-over-week"):
        p, _ = parse_period(text, NOW)
        assert p is not None and p.compare is not None, text
        assert p.start == d(2026, 12, 7) and (p.compare.start, p.compare.end) == (d(2026, 11, 30), d(2026, 12, 7))
    p, _ = parse_period("last week WoW", NOW)
    assert p is not None and p.compare is not None
    assert p.compare.start == d(2026, 11, 23)


def test_yesterday_vs_the_day_before() -> None:
    p, rest = parse_period("yesterday vs the day before", NOW)
    assert p is not None and p.compare is not None
    assert (p.start, p.compare.start, p.compare.end) == (d(2026, 12, 6), d(2026, 12, 5), d(2026, 12, 6))
    assert rest == ""


def test_vs_last_week() -> None:
    p, rest = parse_period("spend vs last week", NOW)
    assert p is not None and p.compare is not None
    assert (p.start, p.end) == (d(2026, 12, 7), NOW)
    assert (p.compare.start, p.compare.end) == (d(2026, 11, 30), d(2026, 12, 7))
    assert rest == "spend"
    p, _ = parse_period("spend in Nov compared with October", NOW)
    assert p is not None and p.compare is not None
    assert (p.label, p.compare.label) == ("November 2026", "October 2026")


def test_yoy() -> None:
    p, _ = parse_period("October YoY", NOW)
    assert p is not None and p.compare is not None and p.compare.label == "October 2025"


def test_data_end_clips_current_periods_only() -> None:
    data_end = datetime(2026, 12, 7, 6, tzinfo=UTC)
    p, _ = parse_period("today", NOW, data_end=data_end)
    assert p is not None and (p.start, p.end) == (d(2026, 12, 7), data_end)
    p, _ = parse_period("this week", NOW, data_end=datetime(2026, 12, 5, tzinfo=UTC))
    assert p is not None and p.start == p.end == d(2026, 12, 7)  # no data this week yet: empty, not reversed
    p, _ = parse_period("this month", NOW, data_end=data_end)
    assert p is not None and p.end == data_end
    p, _ = parse_period("last 7 days", NOW, data_end=data_end)
    assert p is not None and (p.start, p.end) == (NOW - timedelta(days=7), NOW)  # relative: from now
    p, _ = parse_period("yesterday", NOW, data_end=data_end)
    assert p is not None and p.end == d(2026, 12, 7)


def test_naive_and_other_timezones() -> None:
    p1, _ = parse_period("yesterday", NOW.replace(tzinfo=None))
    p2, _ = parse_period("yesterday", NOW.astimezone(timezone(timedelta(hours=-5))))
    p3, _ = parse_period("yesterday", NOW)
    assert p1 == p2 == p3


# -------------------------------------------------------------------------------- properties

_nows = st.datetimes(min_value=datetime(2001, 3, 1), max_value=datetime(2098, 12, 31)).map(
    lambda x: x.replace(tzinfo=UTC))
_words = st.sampled_from([
    "today", "yesterday", "tuesday", "last", "this", "week", "month", "since", "nov", "3", "2026-11-03",
    "to", "between", "and", "MoM", "WoW", "vs", "the", "day", "before", "in", "october", "past", "7",
    "days", "q3", "spend", "-", "?", "on", "tue", "2026-10", "of", "compared", "with", "year", "oct",
])


def _check(p: Period | None, rest: str, text: str) -> None:
    assert isinstance(rest, str)
    if p is None:
        assert rest == text
        return
    assert p.start.tzinfo is not None and p.end.tzinfo is not None
    assert p.start.utcoffset() == timedelta(0)
    assert p.start <= p.end
    assert p.label
    if p.compare is not None:
        assert p.compare.start < p.compare.end
        assert p.compare.compare is None


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(text=st.text(max_size=80), now=_nows)
def test_never_raises_on_random_text(text: str, now: datetime) -> None:
    p, rest = parse_period(text, now)
    _check(p, rest, text)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(_words, max_size=8), now=_nows, lag=st.integers(min_value=-100, max_value=2000))
def test_never_raises_on_keyword_soup(words: list[str], now: datetime, lag: int) -> None:
    text = " ".join(words)
    p, rest = parse_period(text, now, data_end=now - timedelta(hours=lag))
    _check(p, rest, text)


def test_never_raises_at_the_edges_of_time() -> None:
    for now in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)):
        for text in ("last month", "MoM", "yesterday vs the day before", "last 999999 days", "next year",
                     "since Dec 31", "2026-02-30", "YoY", "Feb 29", "last year", "q4 9999"):
            p, rest = parse_period(text, now)
            _check(p, rest, text)
    assert parse_period(None, NOW) == (None, None)  # type: ignore[arg-type]


@given(now=_nows, wd=st.sampled_from(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                       "sunday"]), lead=st.sampled_from(["", "last ", "on ", "this "]))
def test_weekday_is_the_most_recent_past_one(now: datetime, wd: str, lead: str) -> None:
    p, rest = parse_period(f"{lead}{wd.upper() if len(lead) % 2 else wd}", now)
    assert p is not None and rest == ""
    day = p.start.date()
    assert p.end - p.start == timedelta(days=1) and p.start.time().hour == 0
    assert day.strftime("%A").lower() == wd
    assert now.date() - timedelta(days=7) <= day < now.date()


@given(now=_nows, month=st.integers(1, 12))
def test_month_name_is_the_latest_begun(now: datetime, month: int) -> None:
    name = date(2000, month, 1).strftime("%B")
    p, _ = parse_period(f"spend in {name}", now)
    assert p is not None
    assert p.start.day == 1 and p.start.month == month and p.start <= now
    assert now - p.start < timedelta(days=366)
    assert p.end <= now or p.start.month == now.month


@given(now=_nows, data=st.data())
def test_one_letter_dropped_still_parses(now: datetime, data: st.DataObject) -> None:
    word = data.draw(st.sampled_from(["yesterday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                      "sunday", "october", "november", "september", "january"]))
    i = data.draw(st.integers(0, len(word) - 1))
    typo = word[:i] + word[i + 1:]
    assert parse_period(word, now)[0] == parse_period(typo, now)[0]


@given(now=_nows, data_lag_h=st.integers(0, 24 * 40))
def test_current_periods_never_pass_data_end(now: datetime, data_lag_h: int) -> None:
    data_end = now - timedelta(hours=data_lag_h)
    for text in ("today", "this week", "this month", "MTD"):
        p, _ = parse_period(text, now, data_end=data_end)
        assert p is not None
        assert p.start <= p.end <= max(p.start, data_end)


@given(now=_nows)
def test_mom_compare_is_the_whole_previous_month(now: datetime) -> None:
    p, _ = parse_period("MoM", now)
    assert p is not None and p.compare is not None
    assert p.compare.end == p.start and p.compare.start.day == 1
    assert 28 <= (p.compare.end - p.compare.start).days <= 31

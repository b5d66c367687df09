"""Period-aware spend answers of the offline ``ask`` router, checked to the cent against figures
computed independently from the stored daily costs (amortized) of a stored synthetic scan.

The scan's own daily costs cover 2026-11-01..03; the tests add October days (each resource's Nov 1
cost times a per-day factor) so month-over-month and week questions have two periods to compare.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.slack.render import check_message, to_message
from handlers import ask, views
from jobs.worker import job_context
from storage import repo, watch_repo
from storage.models import DailyCost
from tests.test_handlers import _settings, scanned  # noqa: F401 - the module-scoped stored scan

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("fast_model")]

NOW = datetime(2026, 11, 4, 15, 30, tzinfo=UTC)  # a Wednesday; the data's last day is Tue 2026-11-03


class World:
    def __init__(self, db: Any, acct: Any, scan: Any, preds: list[Any], labels: dict[str, str]):
        self.db, self.acct, self.scan, self.preds, self.labels = db, acct, scan, preds, labels
        self.rows: list[tuple[str, date, float]] = []

    async def ask(self, q: str, now: datetime = NOW) -> Any:
        card = await ask.answer(self.db, q, now=now)
        assert check_message(to_message(card)) == [], card.title
        return card

    def spend(self, start: date, end: date, arns: set[str] | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for arn, day, usd in self.rows:
            if start <= day < end and (arns is None or arn in arns):
                out[arn] = out.get(arn, 0.0) + usd
        return out

    def owner(self, p: Any) -> str:
        if p.arn in self.labels:
            return self.labels[p.arn]
        if p.tag_team and not p.tag_conflict:
            return p.tag_team
        return p.team if p.team and p.confidence >= 0.7 else ""

    def rid(self, arn: str) -> str:
        return next((p.resource_id for p in self.preds if p.arn == arn), arn)


@pytest_asyncio.fixture
async def world(scanned: Path, tmp_path: Path):  # noqa: F811
    data = tmp_path / "data"
    shutil.copytree(scanned, data)
    ctx = await job_context(_settings(data))
    db = ctx["db"]
    try:
        async with db.session() as s:
            acct = (await repo.list_accounts(s))[0]
            rows = await repo.daily_cost_rows(s, acct.id)
            nov1 = {a: c for a, d, c in rows if d == date(2026, 11, 1)}
            for k in range(31):  # October: Nov 1's costs scaled by a factor that varies by day
                day = date(2026, 10, 1) + timedelta(days=k)
                for i, (arn, c) in enumerate(sorted(nov1.items())):
                    s.add(DailyCost(account_id=acct.id, arn=arn, day=day, cost_usd=round(c * (0.5 + ((i + k) % 5) / 10), 4)))
            await s.commit()
        async with db.session() as s:
            scan = await repo.latest_predictions_scan(s, acct.id)
            w = World(db, acct, scan, await repo.predictions(s, scan.id), await repo.current_labels(s, acct.id))
            w.rows = await repo.daily_cost_rows(s, acct.id)
        yield w
    finally:
        await db.close()


def text_of(card: Any) -> str:
    return card.text() + "\n" + card.context


def pct(cur: float, prev: float) -> str:
    d = round(cur, 2) - round(prev, 2)
    return f"{'+' if d >= 0 else '-'}{views.money(abs(d))} ({'+' if d >= 0 else '-'}{abs(d) / abs(prev):.1%})"


async def test_top_spenders_in_october_and_last_week(world: World) -> None:
    oct_ = world.spend(date(2026, 10, 1), date(2026, 11, 1))
    card = await world.ask("top 5 spenders in October")
    t = text_of(card)
    assert "October 2026" in card.title and "amortized" in t
    assert views.money(sum(oct_.values())) in t
    for arn in sorted(oct_, key=lambda a: (-oct_[a], a))[:5]:
        assert f"`{world.rid(arn)}`: {views.money(oct_[arn])}" in t
        assert f"`{world.rid(arn)}`" in card.context
    # last week (ISO) of Wed Nov 4 is Oct 26..Nov 1
    week = world.spend(date(2026, 10, 26), date(2026, 11, 2))
    t = text_of(await world.ask("top spenders last week"))
    assert views.money(sum(week.values())) in t and "amortized" in t


async def test_team_spend_yesterday_and_mom(world: World) -> None:
    team = sorted(world.scan.summary["teams"])[0]
    mine = {p.arn for p in world.preds if world.owner(p) == team}
    y = world.spend(date(2026, 11, 3), date(2026, 11, 4), mine)
    card = await world.ask(f"spend of team {team} yesterday")
    assert f"Spend of {team}" in card.title and "2026-11-03" in card.title
    assert views.money(sum(y.values())) in text_of(card)
    # MoM: November to date (clipped at the data's end) against the whole of October
    nov = world.spend(date(2026, 11, 1), date(2026, 11, 4), mine)
    oct_ = world.spend(date(2026, 10, 1), date(2026, 11, 1), mine)
    card = await world.ask(f"{team} spend MoM")
    t = text_of(card)
    assert "vs" in card.title and "October 2026" in card.title
    assert views.money(sum(nov.values())) in t and views.money(sum(oct_.values())) in t
    assert pct(sum(nov.values()), sum(oct_.values())) in t
    top = max(nov, key=lambda a: (nov[a], a))
    assert f"`{world.rid(top)}`" in card.context


async def test_spend_by_team_month_over_month_is_not_a_team_called_month(world: World) -> None:
    card = await world.ask("spend by team month over month")
    t = text_of(card)
    assert "Spend by team" in card.title and "no team called" not in t
    nov = world.spend(date(2026, 11, 1), date(2026, 11, 4))
    oct_ = world.spend(date(2026, 10, 1), date(2026, 11, 1))
    per: dict[str, float] = {}
    for p in world.preds:
        per[world.owner(p) or "no owner"] = per.get(world.owner(p) or "no owner", 0.0) + nov.get(p.arn, 0.0)
    assert views.money(sum(nov.values())) in t and pct(sum(nov.values()), sum(oct_.values())) in t
    best = max(per, key=lambda k: per[k])
    assert f"*{best}*: {views.money(per[best])}" in t


async def test_untagged_last_7_days(world: World) -> None:
    untagged = {p.arn for p in world.preds if not p.tag_team}
    # 7 days back from Nov 4 15:30: the days whose midnight is after Oct 28 15:30 (Oct 29..Nov 4)
    got = world.spend(date(2026, 10, 29), date(2026, 11, 5), untagged)
    t = text_of(await world.ask("untagged spend last 7 days"))
    assert "amortized" in t and views.money(sum(got.values())) in t


async def test_period_without_data_says_so(world: World) -> None:
    card = await world.ask("top spenders in September")
    t = text_of(card)
    assert "No daily costs are stored for September 2026" in t
    assert "2026-10-01 to 2026-11-03" in t and "$0.00" not in t
    assert "no resources cited" in card.context


async def test_spike_on_tuesday_against_the_seven_days_before(world: World) -> None:
    day = date(2026, 11, 3)
    cur = world.spend(day, day + timedelta(days=1))
    base = {a: v / 7 for a, v in world.spend(day - timedelta(days=7), day).items()}
    async with world.db.session() as s:
        arn = max(cur, key=lambda a: cur[a])
        await watch_repo.upsert_spike(s, world.acct.id, f"{arn}@x", arn=arn, resource_id=world.rid(arn),
                                      start=datetime(2026, 11, 3, 9, tzinfo=UTC), end=datetime(2026, 11, 3, 12, tzinfo=UTC),
                                      extra_usd=12.5, cause={"kind": "deploy", "commit": "abc123def456", "repo": "pay"})
        await s.commit()
    card = await world.ask("why did our bill spike Tuesday?")
    t = text_of(card)
    assert "2026-11-03 (Tuesday)" in t
    assert views.money(sum(cur.values())) in t and views.money(sum(base.values())) in t
    assert pct(sum(cur.values()), sum(base.values())) in t
    delta = {a: cur.get(a, 0.0) - base.get(a, 0.0) for a in set(cur) | set(base)}
    mover = sorted(delta, key=lambda a: (-abs(delta[a]), a))[0]
    assert f"`{world.rid(mover)}`" in card.context
    assert "abc123def456" in t and "+$12.50" in t

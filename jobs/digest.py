"""The daily digest: yesterday's spend against the 7-day average, top movers, the untagged burn-down,
open spikes, drift since the previous scan, the labelling queue and pending approvals.

``digest_data`` builds it (JSON-able; the chat handlers draw the card and chart from it). Spend comes
from the watch's hourly series (the stored cost parts) when the account is watched, else from the
daily costs of the last scan. ``digest`` posts one per account of a workspace (``digest.ready``);
``digest_due`` runs every hour and posts the digests of the workspaces whose ``digest_hour`` (UTC) is
now, once a day (``digest_last``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from storage import repo, watch_repo
from storage.models import Account, Resource, Scan, Workspace

log = logging.getLogger("costdna.jobs.digest")

DAYS = 14  # days of the burn-down and of spend by team
MOVERS = 5
DRIFT_LIST = 25
NO_TEAM = "(no team)"


async def _daily_by_arn(s: Any, account: Account) -> tuple[dict[str, dict[date, float]], str]:
    """arn -> day -> amortized $, and where it came from ("watch" | "scan" | "none")."""
    parts = await watch_repo.load_parts(s, account.id)
    out: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    if parts:
        import numpy as np

        from engine.hourly import CostPart, combine

        # The watch's own series (each bill-day counted once, as the scan counts it): the digest, the
        # spike cards and `costdna spikes` quote the same dollars.
        series = combine(CostPart.from_bytes(b) for b in parts.values())
        if series.cost.size:
            day_of = (series.start_hour + np.arange(series.cost.shape[1])) // 24
            starts = np.flatnonzero(np.r_[True, day_of[1:] != day_of[:-1]])
            per_day = np.add.reduceat(series.cost, starts, axis=1)
            days = [date(1970, 1, 1) + timedelta(days=int(d)) for d in day_of[starts]]
            for i, arn in enumerate(series.arns):
                row = per_day[i]
                for j in np.flatnonzero(row):
                    out[arn][days[j]] += float(row[j])
        return out, "watch"
    rows = await repo.daily_cost_rows(s, account.id)
    for arn, day, usd in rows:
        out[arn][day] += usd
    return out, ("scan" if rows else "none")


async def _owners(s: Any, account: Account) -> tuple[dict[str, str], set[str]]:
    """arn -> team (label > tag > prediction) and the ARNs that carry an owner tag."""
    from jobs.watch import owner_map

    om = await owner_map(s, account)
    return {a: t for a, (t, _c, _src) in om.items() if t}, {a for a, (_t, _c, src) in om.items() if src == "tag"}


async def drift(s: Any, account_id: int) -> dict[str, Any]:
    """New and gone resources and changed owners between the last two succeeded scans."""
    scans = list((await s.scalars(select(Scan).where(Scan.account_id == account_id,
                                                          Scan.status == "succeeded")
                                  .order_by(Scan.id.desc()).limit(2))).all())
    empty = {"new": [], "gone": [], "owner_changed": [], "counts": {"new": 0, "gone": 0, "owner_changed": 0},
             "scans": [sc.id for sc in scans]}
    if len(scans) < 2:
        return empty
    cur = {p.arn: p for p in await repo.predictions(s, scans[0].id)}
    prev = {p.arn: p for p in await repo.predictions(s, scans[1].id)}
    new = sorted(set(cur) - set(prev))
    gone = sorted(set(prev) - set(cur))
    changed = []
    for arn in sorted(set(cur) & set(prev)):
        a = prev[arn].tag_team or prev[arn].team
        b = cur[arn].tag_team or cur[arn].team
        if a != b:
            changed.append({"arn": arn, "resource_id": cur[arn].resource_id, "from": a, "to": b,
                            "confidence": round(float(cur[arn].confidence), 3)})
    return {"new": [{"arn": a, "resource_id": cur[a].resource_id, "team": cur[a].tag_team or cur[a].team}
                    for a in new[:DRIFT_LIST]],
            "gone": [{"arn": a, "resource_id": prev[a].resource_id} for a in gone[:DRIFT_LIST]],
            "owner_changed": changed[:DRIFT_LIST],
            "counts": {"new": len(new), "gone": len(gone), "owner_changed": len(changed)},
            "scans": [scans[1].id, scans[0].id]}


def _spike_json(sp: Any) -> dict[str, Any]:
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {"id": sp.id, "arn": sp.arn, "resource_id": sp.resource_id, "severity": sp.severity,
            "status": sp.status, "delivery": sp.delivery, "kind": sp.kind, "owner_team": sp.owner_team,
            "start": sp.start.astimezone(UTC).strftime(iso), "end": sp.end.astimezone(UTC).strftime(iso),
            "peak_usd_per_hour": round(sp.peak_usd_per_hour, 4), "extra_usd": round(sp.extra_usd, 2),
            "snooze_until": sp.snooze_until.astimezone(UTC).strftime(iso) if sp.snooze_until else None}


async def digest_data(s: Any, account: Account, now: float | datetime | None = None, *,
                      settings: Any = None) -> dict[str, Any]:
    """The digest of one account at ``now`` (JSON-able). "Yesterday" is the last full day before
    ``now`` that has cost data (an export lags by hours to a day). With a business hierarchy configured
    (``jobs.org.org_for``; ``settings`` defaults to the process's), ``units`` is yesterday's spend by
    business unit: the same dollars as spend by team, rolled up."""
    now_dt = (now if isinstance(now, datetime) else
              datetime.fromtimestamp(time.time() if now is None else float(now), UTC))
    daily, source = await _daily_by_arn(s, account)
    owner, tagged = await _owners(s, account)
    all_days = sorted({d for per in daily.values() for d in per})
    today = now_dt.astimezone(UTC).date()
    past = [d for d in all_days if d < today]
    yday = past[-1] if past else today - timedelta(days=1)
    week = [yday - timedelta(days=i) for i in range(1, 8)]
    with_data = [d for d in week if d in set(all_days)]

    def total(day: date, arns: Any = None) -> float:
        return sum(per.get(day, 0.0) for a, per in daily.items() if arns is None or a in arns)

    y_usd = total(yday)
    avg7 = (sum(total(d) for d in with_data) / len(with_data)) if with_data else 0.0
    res_moves = []
    for a, per in daily.items():
        y = per.get(yday, 0.0)
        base = (sum(per.get(d, 0.0) for d in with_data) / len(with_data)) if with_data else 0.0
        if y or base:
            res_moves.append({"arn": a, "resource_id": a.rsplit("/", 1)[-1].rsplit(":", 1)[-1],
                              "team": owner.get(a, ""), "yesterday_usd": round(y, 2), "avg7_usd": round(base, 2),
                              "delta_usd": round(y - base, 2)})
    res_moves.sort(key=lambda m: -abs(m["delta_usd"]))
    team_y: dict[str, float] = defaultdict(float)
    team_b: dict[str, float] = defaultdict(float)
    days14 = [yday - timedelta(days=i) for i in range(DAYS - 1, -1, -1)]
    by_team_day: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    untagged: dict[date, float] = defaultdict(float)
    d14 = set(days14)
    for a, per in daily.items():
        team = owner.get(a) or NO_TEAM
        team_y[team] += per.get(yday, 0.0)
        if with_data:
            team_b[team] += sum(per.get(d, 0.0) for d in with_data) / len(with_data)
        for d, v in per.items():
            if d in d14:
                by_team_day[team][d] += v
                if a not in tagged:
                    untagged[d] += v
    team_moves = [{"team": t, "yesterday_usd": round(team_y[t], 2), "avg7_usd": round(team_b[t], 2),
                   "delta_usd": round(team_y[t] - team_b[t], 2)} for t in set(team_y) | set(team_b)]
    team_moves.sort(key=lambda m: -abs(m["delta_usd"]))
    spikes = await watch_repo.open_spikes(s, account.id, limit=50)
    counts = await repo.change_set_counts(s, account.id)
    units = await _units(s, account, daily, owner, yday, settings)
    return {
        "account": account.name, "account_id": account.id, "day": yday.isoformat(),
        "generated_at": now_dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "source": source,
        "yesterday_usd": round(y_usd, 2), "avg7_usd": round(avg7, 2),
        "change_pct": round(100.0 * (y_usd - avg7) / avg7, 1) if avg7 else None,
        "movers": {"resources": res_moves[:MOVERS], "teams": team_moves[:MOVERS]},
        "untagged_by_day": [[d.isoformat(), round(untagged.get(d, 0.0), 2)] for d in days14],
        "open_spikes": [_spike_json(sp) for sp in spikes],
        "drift": await drift(s, account.id),
        "queue": {"prompts": await repo.open_prompt_count(s, account.id), "approvals": int(counts.get("proposed", 0))},
        "by_team_day": {t: [[d.isoformat(), round(per.get(d, 0.0), 2)] for d in days14]
                        for t, per in sorted(by_team_day.items())},
        "paused": await watch_repo.panic(s),
        **({"units": units} if units is not None else {}),
    }


async def _workspace_of(s: Any, account: Account) -> Workspace | None:
    """The account's workspace; for an account added without one (the CLI) in a one-workspace install,
    that workspace (as ``_accounts_of`` assigns it)."""
    if account.workspace_id is not None:
        return await s.get(Workspace, account.workspace_id)
    rows = (await s.scalars(select(Workspace).order_by(Workspace.id).limit(2))).all()
    return rows[0] if len(rows) == 1 else None


async def _units(s: Any, account: Account, daily: dict[str, dict[date, float]], owner: dict[str, str], day: date,
                 settings: Any) -> list[dict[str, Any]] | None:
    """``day``'s spend by business unit (None: no hierarchy configured): each resource's amortized dollars
    under its team's unit, or the unit its ``business_unit`` tag names, so the units add up to the day's
    total; "(no unit)" last."""
    from engine.org import NO_UNIT, bucket, rollup_items
    from jobs.org import org_for

    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    org = await org_for(s, await _workspace_of(s, account), settings)
    if org.empty:
        return None
    tags = {arn: tg for arn, tg in (await s.execute(select(Resource.arn, Resource.tags)
                                                    .where(Resource.account_id == account.id))).all()
            if isinstance(tg, dict) and tg}
    items = [(owner.get(a, ""), tags.get(a), per[day]) for a, per in daily.items() if per.get(day)]
    by_unit = rollup_items(items, org, "unit")
    teams: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for team, tg, usd in items:
        teams[bucket(org, "unit", team, tg)][team or NO_TEAM] += usd
    out = [{"unit": u, "group": org.group_of_unit(u) if u != NO_UNIT else "", "cost_usd": round(v, 2),
            "teams": [t for t, _ in sorted(teams[u].items(), key=lambda kv: (-kv[1], kv[0]))]}
           for u, v in by_unit.items()]
    out.sort(key=lambda r: (r["unit"] == NO_UNIT, -r["cost_usd"], r["unit"]))
    return out


def _channel(ws: Workspace) -> str | None:
    st = ws.settings or {}
    return st.get("digest_channel") or st.get("alerts_channel")


async def _accounts_of(s: Any, ws: Workspace) -> list[Account]:
    """The workspace's accounts; in a one-workspace install whose accounts were added without one (the
    CLI), those unassigned accounts."""
    rows = list((await s.scalars(select(Account).where(Account.workspace_id == ws.id).order_by(Account.id))).all())
    if not rows:
        n_ws = len((await s.scalars(select(Workspace.id))).all())
        if n_ws == 1:
            rows = list((await s.scalars(select(Account).where(Account.workspace_id.is_(None))
                                         .order_by(Account.id))).all())
    return rows


async def digest(ctx: dict, workspace_id: int, now: float | None = None, account_id: int | None = None
                 ) -> dict[str, Any]:
    """arq task: build and post the digest of each of the workspace's accounts (or the one named) now;
    records ``digest_last`` (today, UTC) so the scheduled one does not post again the same day."""
    now = time.time() if now is None else float(now)
    today = datetime.fromtimestamp(now, UTC).date().isoformat()
    out = []
    async with ctx["db"].session() as s:
        ws = await s.get(Workspace, workspace_id)
        if ws is None:
            raise repo.NotFound(f"unknown workspace {workspace_id}")
        accounts = ([await repo.get_account(s, account_id)] if account_id is not None else await _accounts_of(s, ws))
        for account in accounts:
            out.append((account.id, await digest_data(s, account, now, settings=ctx.get("settings"))))
        ws.settings = {**(ws.settings or {}), "digest_last": today}
        channel = _channel(ws)
    for acct_id, data in out:
        await ctx["notify"]("digest.ready", workspace_id=workspace_id, account_id=acct_id, channel=channel,
                            data=data)
    log.info("digest: workspace %s, %d accounts, channel %s", workspace_id, len(out), channel)
    return {"workspace_id": workspace_id, "accounts": [a for a, _ in out], "channel": channel, "day": today}


async def digest_due(ctx: dict, now: float | None = None) -> dict[str, Any]:
    """Hourly: post the digest of every workspace whose ``digest_hour`` (UTC) is now's hour and that has
    not had today's (``digest_last``), and that has a channel to post to."""
    now = time.time() if now is None else float(now)
    at = datetime.fromtimestamp(now, UTC)
    today = at.date().isoformat()
    due = []
    async with ctx["db"].session() as s:
        for ws in (await s.scalars(select(Workspace).order_by(Workspace.id))).all():
            st = ws.settings or {}
            try:
                hour = int(st.get("digest_hour", 9))
            except (TypeError, ValueError):
                continue
            if hour != at.hour or st.get("digest_last") == today:
                continue
            if not _channel(ws):
                log.info("digest: workspace %s is due but has no digest channel (/costdna settings digest #channel)",
                         ws.id)
                continue
            due.append(ws.id)
    posted = []
    for ws_id in due:
        try:
            await digest(ctx, ws_id, now)
            posted.append(ws_id)
        except Exception:
            log.exception("digest: workspace %s failed", ws_id)
    return {"posted": posted, "hour": at.hour, "day": today}


# The daily amortized costs every surface quotes (the digest, `ask`): the watch's series, else the scan's.
daily_by_arn = _daily_by_arn

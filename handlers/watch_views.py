"""Cards of the watch: a cost spike alert, an alert storm, the daily digest, the open spikes, an explanation.

Pure functions of the rows and dicts they are given (no queries). A spike is the storage row (
``storage.models.Spike``) or anything with the same attributes (a dict works too): ``id``, ``nonce``,
``arn``, ``resource_id``, ``resource_type``, ``kind``, ``start``/``end`` (epoch seconds or datetimes),
``peak_usd_per_hour``, ``baseline_usd_per_hour``, ``extra_usd``, ``severity``, ``reasons``, ``owner_team``,
``owner_confidence``, ``owner_source``, ``cause`` (``engine.explain.Cause.to_json()`` or None), ``status``,
``snooze_until``, ``series`` (``[[epoch_hour, cost, baseline], ...]``).

Every dollar figure is amortized cost (commitments spread over their usage) and the cards say so.
Button values are ``spike_id.nonce[.arg]`` (see :mod:`handlers.actions`); action ids never contain ``:``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from handlers.cards import Button, Card, Image, Option, Section, Select
from handlers.views import SEP, mention, money

# Action ids (see handlers.actions / handlers.spikes).
SPIKE_EXPECTED = "spike_expected"
SPIKE_SNOOZE = "spike_snooze"  # arg: 24h | 7d
SPIKE_EXPLAIN = "spike_explain"
SPIKE_NOT_OURS = "spike_not_ours"
SPIKE_ASSIGN = "spike_assign"  # a select; arg: team
SPIKE_ACTIONS = (SPIKE_EXPECTED, SPIKE_SNOOZE, SPIKE_EXPLAIN, SPIKE_NOT_OURS, SPIKE_ASSIGN)
SNOOZES = {"24h": 24 * 3600, "7d": 7 * 24 * 3600}

GUESS_BELOW = 0.7  # the default of COSTDNA_CONFIDENCE_THRESHOLD: an owner under it (or from the creator alone) is a guess
AMORTIZED = "figures are amortized cost"
MAX_LIST = 10  # spikes with their buttons in one list card (5 buttons each: 50 blocks at most)
SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
STATUS_TEXT = {"open": "open", "expected": "marked expected", "snoozed": "snoozed", "not_ours": "not ours",
               "resolved": "resolved"}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def epoch(value: Any) -> float | None:
    """Epoch seconds from a float, a datetime (naive = UTC) or an ISO 8601 string."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    try:
        return epoch(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def when(value: Any) -> str:
    """``2026-12-07 14:00 UTC``."""
    t = epoch(value)
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC") if t is not None else "?"


def _ago(t: float | None, now: float | None) -> str:
    if t is None or now is None:
        return ""
    mins = int(max(0.0, now - t) // 60)
    if mins < 60:
        return f"{mins} min ago"
    hours = mins // 60
    return f"{hours} h ago" if hours < 48 else f"{hours // 24} days ago"


def per_hour(x: Any) -> str:
    return f"{money(float(x or 0.0))}/h"


def spike_value(spike: Any, arg: str = "") -> str:
    """A button value: ``spike_id.nonce`` (``.arg`` when given)."""
    base = f"{_get(spike, 'id')}{SEP}{_get(spike, 'nonce') or ''}"
    return f"{base}{SEP}{arg}" if arg else base


def guess_below() -> float:
    """The confidence under which an owner is a guess: ``COSTDNA_CONFIDENCE_THRESHOLD``, the one threshold
    that apply, ask, owner, teams and the scan summary also follow."""
    try:
        from config.settings import get_settings

        return float(get_settings().confidence_threshold)
    except Exception:  # settings that do not load (a bad environment) must not break a card
        return GUESS_BELOW


def is_guess(spike: Any, threshold: float | None = None) -> bool:
    """An owner known only from who created the resource, or a prediction below ``threshold`` (default: the
    configured confidence threshold): said to be a guess (a tag or a person's label never is)."""
    src = _get(spike, "owner_source") or ""
    conf = float(_get(spike, "owner_confidence") or 0.0)
    if not _get(spike, "owner_team") or src in ("tag", "label"):
        return False
    return src == "creator" or conf < (guess_below() if threshold is None else threshold)


def owner_line(spike: Any, route: Any = None) -> str:
    team = _get(spike, "owner_team") or (_get(route, "team") if route is not None else "") or ""
    if not team:
        return "_unknown: no tag, label or confident prediction_"
    conf = float(_get(spike, "owner_confidence") or 0.0)
    src = _get(spike, "owner_source") or ""
    how = {"tag": "owner tag", "label": "labeled by a person", "predicted": "predicted",
           "creator": "from who created it"}.get(src, src or "inferred")
    guess = is_guess(spike) or bool(route is not None and _get(route, "guess"))
    if src in ("tag", "label"):
        return f"*{team}* ({how})"
    if guess:
        return f"probably *{team}* — a guess ({how}, {conf:.0%} confident)"
    return f"*{team}* ({how}, {conf:.0%} confident)"


def cause_line(cause: Mapping[str, Any] | None) -> str:
    if not cause:
        return "_no cause found_ (no deploy or change before it fits)"
    what = cause.get("kind") or "change"
    parts = []
    if cause.get("commit"):
        parts.append(f"commit `{str(cause['commit'])[:12]}`")
    if cause.get("repo"):
        parts.append(f"of `{cause['repo']}`")
    if cause.get("event_name") and not cause.get("commit"):
        parts.append(f"`{cause['event_name']}`")
    if cause.get("actor"):
        parts.append(f"by `{_short_actor(str(cause['actor']))}`")
    if cause.get("time"):
        parts.append(f"at {when(cause['time'])}")
    p = cause.get("p_value")
    if p is not None:
        parts.append(f"(Granger p = {float(p):.3g})")
    return f"{what} " + " ".join(parts) if parts else what


def _short_actor(actor: str) -> str:
    if actor.startswith("arn:"):
        return actor.split(":", 5)[-1]
    return actor


def _resource(spike: Any) -> str:
    rid = _get(spike, "resource_id") or _get(spike, "arn") or "?"
    rtype = _get(spike, "resource_type") or ""
    inst = _get(spike, "instance_type") or ""
    return f"`{rid}`" + (f" ({rtype}{', ' + inst if inst else ''})" if rtype or inst else "")


def chart_image(spike: Any) -> Image | None:
    """The spike's chart (None when it has no series or drawing failed)."""
    from handlers.charts import spike_chart

    series = _get(spike, "series") or []
    start, end = epoch(_get(spike, "start")), epoch(_get(spike, "end"))
    if not series or start is None:
        return None
    try:
        png = spike_chart(series, start, end or start + 3600)
    except Exception:  # a card without its picture beats no card
        import logging

        logging.getLogger("costdna.handlers").exception("spike chart for %s failed", _get(spike, "id"))
        return None
    if not png:
        return None
    rid = _get(spike, "resource_id") or "resource"
    return Image(png=png, alt=f"hourly amortized cost of {rid} with its baseline; the spike is shaded",
                 filename=f"spike-{_get(spike, 'id')}.png")


def spike_buttons(spike: Any) -> list[Button]:
    return [Button("Mark expected", SPIKE_EXPECTED, spike_value(spike), "primary"),
            Button("Snooze 24 h", SPIKE_SNOOZE, spike_value(spike, "24h")),
            Button("Snooze 7 d", SPIKE_SNOOZE, spike_value(spike, "7d")),
            Button("Explain", SPIKE_EXPLAIN, spike_value(spike)),
            Button("Not ours", SPIKE_NOT_OURS, spike_value(spike), "danger")]


def assign_select(spike: Any, teams: Iterable[str]) -> Select | None:
    opts = tuple(Option(t, spike_value(spike, t)) for t in sorted(set(teams)) if t)
    return Select("assign team…", SPIKE_ASSIGN, opts) if opts else None


def _figures(spike: Any, now: float | None) -> list[tuple[str, str]]:
    peak, base = float(_get(spike, "peak_usd_per_hour") or 0.0), float(_get(spike, "baseline_usd_per_hour") or 0.0)
    ratio = f" ({peak / base:.1f}×)" if base > 0 else ""
    start = epoch(_get(spike, "start"))
    since = when(start) + (f" ({_ago(start, now)})" if now is not None and start is not None else "")
    ongoing = _get(spike, "ongoing")
    kind = _get(spike, "kind") or ""
    now_label = ("Expected from list price" if kind == "early_warning"
                 else "Cost now vs baseline" if ongoing in (None, True) else "Peak vs baseline")
    return [(now_label, f"*{per_hour(peak)}* vs {per_hour(base)}{ratio}"),
            ("Extra so far", money(_get(spike, "extra_usd"))),
            ("Since", since + ("" if ongoing in (None, True) else f", until {when(_get(spike, 'end'))}")),
            ("Severity", f"{SEVERITY_ICON.get(_get(spike, 'severity') or '', '')} {_get(spike, 'severity') or '?'}"
                         .strip())]


def alert_card(spike: Any, account: Any = None, route: Any = None, *, teams: Iterable[str] = (),
               now: float | None = None, chart: bool = True) -> Card:
    """The alert for one spike: figures, owner (a guess when it is one), cause, chart and buttons.
    When the route fell back to the alerts channel (no team mapping), an "assign team…" select with
    ``teams`` (the account's known teams) lets someone route it."""
    name = _get(account, "name") if account is not None else None
    rid = _get(spike, "resource_id") or "a resource"
    kind = _get(spike, "kind") or ""
    title = (f"Early warning: {rid} launched as an expensive type" if kind == "early_warning"
             else f"Cost spike: {rid}")
    reasons = [str(r) for r in (_get(spike, "reasons") or [])][:5]
    head = _resource(spike) + (f" in *{name}*" if name else "")
    if reasons:
        head += "\n" + "; ".join(reasons)
    fields = _figures(spike, now) + [("Owner", owner_line(spike, route)),
                                    ("Cause", cause_line(_get(spike, "cause")))]
    sections = [Section(head, fields=fields)]
    selects: list[Select] = []
    fallback = bool(route is not None and _get(route, "fallback"))
    if fallback:
        why = ("No one is mapped for its team" if _get(spike, "owner_team") else "costdna doesn't know who owns it")
        sections.append(Section(f"{why}, so it came to the alerts channel. Pick the team it belongs to and "
                                "costdna routes it there."))
        sel = assign_select(spike, teams)
        if sel is not None:
            selects.append(sel)
    status = _get(spike, "status") or "open"
    buttons = spike_buttons(spike) if status == "open" else []
    if status != "open":
        sections.append(Section(f"_{status_line(spike)}_"))
    ctx = f"spike #{_get(spike, 'id')} · {AMORTIZED} · {_get(spike, 'arn') or ''}".rstrip(" ·")
    return Card(title=title, sections=sections, buttons=buttons, selects=selects, context=ctx, kind="alert",
                image=chart_image(spike) if chart else None)


def status_line(spike: Any) -> str:
    status = _get(spike, "status") or "open"
    text = STATUS_TEXT.get(status, status)
    if status == "snoozed" and _get(spike, "snooze_until"):
        text += f" until {when(_get(spike, 'snooze_until'))}"
    by = _get(spike, "decided_by") or ""
    return text + (f" by {mention(by)}" if by else "")


def decided_card(spike: Any, note: str, account: Any = None) -> Card:
    """What replaces an alert once someone decided on it: the figures, no buttons, who did what."""
    card = alert_card(spike, account, chart=False)
    card.buttons, card.selects = [], []
    card.sections = [card.sections[0], Section(note)]
    return card


def storm_card(account: Any, spikes: Sequence[Any], count: int | None = None, *, held: str = "storm") -> Card:
    """One summary instead of many alerts when an account's alerts in an hour run far above usual."""
    name = _get(account, "name") if account is not None else None
    n = count if count is not None else len(spikes)
    total = sum(float(_get(s, "extra_usd") or 0.0) for s in spikes)
    top = sorted(spikes, key=lambda s: -float(_get(s, "extra_usd") or 0.0))[:8]
    lines = [f"• `{_get(s, 'resource_id') or _get(s, 'arn')}`: {per_hour(_get(s, 'peak_usd_per_hour'))} vs "
             f"{per_hour(_get(s, 'baseline_usd_per_hour'))}, {money(_get(s, 'extra_usd'))} extra"
             + (f" — {_get(s, 'owner_team')}" if _get(s, 'owner_team') else "") for s in top]
    if n > len(top):
        lines.append(f"_… and {n - len(top)} more_")
    text = (f"*{n}* cost spikes{' in *' + str(name) + '*' if name else ''} this hour, far more than usual, so "
            f"costdna held the individual alerts and sends this summary instead"
            + (f" ({money(total)} extra so far)." if spikes else "."))
    return Card(title=f"Alert storm{': ' + str(name) if name else ''}", kind="alert",
                sections=[Section(text)] + ([Section("\n".join(lines))] if lines else []),
                context=f"`/costdna spikes` lists them with their buttons · {AMORTIZED}")


def spikes_list_card(spikes: Sequence[Any], account: Any = None, *, now: float | None = None) -> Card:
    """Open spikes, costliest first, each with its buttons (the first ``MAX_LIST``)."""
    name = _get(account, "name") if account is not None else None
    title = f"Open cost spikes{' in ' + str(name) if name else ''}"
    if not spikes:
        return Card(title=title, sections=[Section("No open spikes: nothing is costing more than usual.")],
                    context=AMORTIZED)
    ranked = sorted(spikes, key=lambda s: -float(_get(s, "extra_usd") or 0.0))
    shown = ranked[:MAX_LIST]
    sections, buttons = [], []
    for s in shown:
        start = epoch(_get(s, "start"))
        sections.append(Section(
            f"{SEVERITY_ICON.get(_get(s, 'severity') or '', '•')} #{_get(s, 'id')} {_resource(s)}: "
            f"*{per_hour(_get(s, 'peak_usd_per_hour'))}* vs {per_hour(_get(s, 'baseline_usd_per_hour'))}, "
            f"{money(_get(s, 'extra_usd'))} extra since {when(start)}"
            + (f" ({_ago(start, now)})" if now else "")
            + f" — owner {owner_line(s)}; {status_line(s)}"))
    for s in shown:  # a card's buttons form one list: label each with its spike
        sid = _get(s, "id")
        if (_get(s, "status") or "open") != "open":
            continue
        buttons.extend([Button(f"#{sid} expected", SPIKE_EXPECTED, spike_value(s)),
                        Button(f"#{sid} snooze 24 h", SPIKE_SNOOZE, spike_value(s, "24h")),
                        Button(f"#{sid} explain", SPIKE_EXPLAIN, spike_value(s)),
                        Button(f"#{sid} not ours", SPIKE_NOT_OURS, spike_value(s))])
    ctx = AMORTIZED + (f" · {len(ranked) - len(shown)} more not shown" if len(ranked) > len(shown) else "")
    return Card(title=title, sections=sections, buttons=buttons, context=ctx, kind="alert")


def explain_card(spike: Any) -> Card:
    """The evidence behind a spike's alert: reasons, the cause and its evidence lines, the owner's basis."""
    cause = _get(spike, "cause") or None
    lines = [f"• {r}" for r in (_get(spike, "reasons") or [])] or ["• _no reasons recorded_"]
    sections = [Section(f"Why costdna flagged {_resource(spike)}\n" + "\n".join(lines), fields=[
        ("Peak vs baseline", f"{per_hour(_get(spike, 'peak_usd_per_hour'))} vs "
                             f"{per_hour(_get(spike, 'baseline_usd_per_hour'))}"),
        ("Extra so far", money(_get(spike, "extra_usd"))),
        ("Detected by", str(_get(spike, "kind") or "?")),
        ("Score", f"{float(_get(spike, 'score') or 0.0):.1f}")])]
    cause_text = "*Cause*: " + cause_line(cause)
    evidence = list((cause or {}).get("evidence") or [])
    if evidence:
        cause_text += "\n" + "\n".join(f"• {e}" for e in evidence[:8])
    elif cause is None:
        cause_text += ("\nNo deploy or deploy-like change targeting this resource or coming from its team came "
                       "in the hours before it; costdna does not blame an unrelated deploy.")
    sections.append(Section(cause_text))
    sections.append(Section("*Owner*: " + owner_line(spike)))
    return Card(title=f"Why {_get(spike, 'resource_id') or 'this'} costs more", sections=sections,
                context=f"spike #{_get(spike, 'id')} · {AMORTIZED}", kind="info")


# -- the digest -----------------------------------------------------------------------------------------


def _pct(now: float, before: float) -> str:
    if before <= 0:
        return ""
    d = (now - before) / before
    return f" ({'+' if d >= 0 else ''}{d:.0%})"


def digest_card(data: Mapping[str, Any], account: Any = None, *, chart: bool = True) -> Card:
    """The daily digest from ``jobs.digest.digest_data`` output."""
    name = _get(account, "name") if account is not None else data.get("account")
    y, avg = float(data.get("yesterday_usd") or 0.0), float(data.get("avg7_usd") or 0.0)
    day = data.get("day") or data.get("yesterday") or ""
    sections = []
    if data.get("paused"):
        sections.append(Section("⏸ *Alerts are paused* (panic switch): spikes are still scored and stored, "
                                "but nobody is notified. `/costdna settings alerts resume` resumes them."))
    sections.append(Section(f"Yesterday{' (' + str(day) + ')' if day else ''}: *{money(y)}* vs a 7-day average of "
                            f"{money(avg)}{_pct(y, avg)}."))
    movers = data.get("movers") or {}
    mv_lines = []
    for m in (movers.get("resources") or [])[:5]:
        team = f" ({_get(m, 'team')})" if _get(m, "team") else ""
        mv_lines.append(f"• `{_get(m, 'resource_id') or _get(m, 'arn') or '?'}`{team}: {money(_y(m))} "
                        f"({_signed(_get(m, 'delta_usd'))} vs average)")
    for m in (movers.get("teams") or [])[:5]:
        mv_lines.append(f"• team *{_get(m, 'team') or 'no team'}*: {money(_y(m))} "
                        f"({_signed(_get(m, 'delta_usd'))} vs average)")
    if mv_lines:
        sections.append(Section("*Top movers*\n" + "\n".join(mv_lines)))
    units = [u for u in (data.get("units") or []) if _get(u, "unit")]
    if units:  # a business hierarchy is configured (jobs.digest: the same dollars as spend by team)
        shown = " · ".join(f"{_get(u, 'unit')} {money(_get(u, 'cost_usd'))}" for u in units[:8])
        sections.append(Section(f"*By business unit*: {shown}" + (f" · _{len(units) - 8} more_" if len(units) > 8
                                                                      else "")))
    untagged = [r for r in (data.get("untagged_by_day") or []) if r and len(r) >= 2]
    if untagged:
        first, last = float(untagged[0][1] or 0.0), float(untagged[-1][1] or 0.0)
        spark = _spark([float(r[1] or 0.0) for r in untagged])
        sections.append(Section(f"*Untagged spend*, last {len(untagged)} days: {money(first)} → {money(last)} "
                                f"per day{_pct(last, first)} `{spark}`"))
    spikes = list(data.get("open_spikes") or [])
    if spikes:
        lines = [f"• #{_get(s, 'id')} `{_get(s, 'resource_id') or _get(s, 'arn')}`: {money(_get(s, 'extra_usd'))} "
                 f"extra, {_get(s, 'owner_team') or 'no owner'}, {status_line(s)}" for s in spikes[:8]]
        if len(spikes) > 8:
            lines.append(f"_… and {len(spikes) - 8} more (`/costdna spikes`)_")
        sections.append(Section("*Open spikes*\n" + "\n".join(lines)))
    else:
        sections.append(Section("*Open spikes*: none"))
    drift = data.get("drift") or {}
    new, gone, changed = (list(drift.get(k) or []) for k in ("new", "gone", "owner_changed"))
    if new or gone or changed:
        parts = []
        if new:
            parts.append(f"{len(new)} new resources ({_ids(new)})")
        if gone:
            parts.append(f"{len(gone)} gone ({_ids(gone)})")
        if changed:
            parts.append(f"{len(changed)} changed owner ({_ids(changed)})")
        sections.append(Section("*Since the previous scan*: " + "; ".join(parts)))
    q = data.get("queue") or {}
    sections.append(Section(f"*Queues*: {int(q.get('prompts') or 0)} \"who owns this?\" questions open, "
                            f"{int(q.get('approvals') or 0)} tag change sets awaiting approval."))
    image = None
    if chart and data.get("by_team_day"):
        from handlers.charts import team_spend_chart

        try:
            png = team_spend_chart(data["by_team_day"])
        except Exception:
            import logging

            logging.getLogger("costdna.handlers").exception("digest chart failed")
            png = None
        if png:
            image = Image(png=png, alt="amortized spend by team per day, stacked bars",
                          filename=f"digest-{day or 'spend'}.png")
    return Card(title=f"costdna daily digest{': ' + str(name) if name else ''}", sections=sections,
                context=f"{AMORTIZED} · `/costdna spikes` · `/costdna label`", kind="digest", image=image)


def _y(m: Any) -> float:
    v = _get(m, "yesterday_usd")
    return float(v if v is not None else _get(m, "usd") or 0.0)


def _signed(x: Any) -> str:
    v = float(x or 0.0)
    return "+" + money(v) if v >= 0 else money(v)


def _ids(items: Sequence[Any], n: int = 3) -> str:
    out = []
    for it in items[:n]:
        if isinstance(it, str):
            out.append(f"`{it.rsplit('/', 1)[-1].rsplit(':', 1)[-1]}`")
        else:
            out.append(f"`{_get(it, 'resource_id') or _get(it, 'arn') or '?'}`")
    return ", ".join(out) + (", …" if len(items) > n else "")


def _spark(values: Sequence[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    hi = max(values) if values else 0.0
    if hi <= 0:
        return "▁" * len(values)
    return "".join(bars[min(len(bars) - 1, int(v / hi * (len(bars) - 1)))] for v in values)

"""Rich renderings of engine results for the terminal (scan summary, benchmark, calibration, curves)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from handlers.views import bill_line, money
from handlers.watch_views import is_guess

_usd = money  # ``$1,234.56``; a credit reads ``-$3.00``: as every chat card says it


def print_synth(out: Console, s) -> None:
    out.print(Panel.fit(
        f"[bold]{s.resources}[/] resources in [bold]{len(s.teams)}[/] teams, {s.events:,} CloudTrail events, "
        f"{s.cost_rows:,} cost rows, {s.files} files, {s.seconds:.1f}s\n"
        f"bundle: {s.out / 'bundle'}\ntruth:  {s.out / 'truth.csv'}", title="synthetic organisation"))


def print_summary(out: Console, result) -> None:
    """A scan's executive summary; ``result`` is a ScanResult or a stored summary dict."""
    s = result if isinstance(result, dict) else result.summary
    total = s["total_cost_usd"] or 0.0
    on_resources = total - (s["unattributable_cost_usd"] or 0.0)  # the spend an owner can be found for
    pct = (lambda v: f" ({100 * v / on_resources:.0f}% of resource spend)") if on_resources > 0 else (lambda v: "")
    lines = [
        f"[bold]{s['resources']:,}[/] resources, [bold]{s['untagged_resources']:,}[/] without an owner tag",
        f"amortized spend {_usd(total)} from {s['period']['start'] or '?'} to {s['period']['end'] or '?'}",
        f"untagged spend {_usd(s['untagged_cost_usd'])}{pct(s['untagged_cost_usd'])}; "
        f"[green]{_usd(s['attributable_cost_usd'])}[/] of it attributable at ≥{s['confidence_threshold']:.0%} confidence "
        f"({s['attributable_resources']:,} resources)",
        f"unattributable (no resource id: tax, support, transfer, refunds) {_usd(s['unattributable_cost_usd'])}",
    ]
    if bill := bill_line(s):
        lines.append(escape(bill))
    for note in s.get("duplicate_exports") or []:
        lines.append(f"[yellow]counted once:[/] {escape(note)}")
    if s["tag_conflict_count"]:
        lines.append(f"[yellow]{s['tag_conflict_count']}[/] owner tags disagree with behaviour")
    if s["no_team_count"]:
        lines.append(f"[yellow]{s['no_team_count']}[/] resources fit no team (vendor, orphaned or abandoned?)")
    for m in s["missing"]:
        lines.append(f"[yellow]missing:[/] {escape(m)}")
    # Wrapped at the console's width, even on a soft-wrapping console (the CLI's keeps long paths whole):
    # a cut-off "missing:" line loses the very advice it exists for.
    body = Text.from_markup("\n".join(lines), overflow="fold")
    body.no_wrap = False
    out.print(Panel(body, title="costdna scan", expand=False), soft_wrap=False)
    if s["teams"]:
        t = Table(title="by owning team (tag, or prediction ≥ threshold)")
        for col in ("team", "resources", "spend", "inferred", "inferred spend"):
            t.add_column(col, justify="right" if col != "team" else "left")
        for team, v in sorted(s["teams"].items(), key=lambda kv: -kv[1]["cost_usd"]):
            t.add_row(team, str(v["resources"]), _usd(v["cost_usd"]), str(v["inferred_resources"]),
                      _usd(v["inferred_cost_usd"]))
        out.print(t)
    if s["recommendations"]:
        out.print("[bold]recommendations[/]")
        for r in s["recommendations"][:10]:
            out.print(f"  • {r['text']}")
    if s["no_team"]:
        t = Table(title="fits no team (highest spend first)")
        for col in ("resource", "spend", "anomaly"):
            t.add_column(col)
        for r in s["no_team"][:8]:
            t.add_row(r["resource_id"], _usd(r["cost_usd"]), f"{r['anomaly_score']:.2f}")
        out.print(t)
    if s["tag_conflicts"]:
        t = Table(title="owner tags that disagree with behaviour")
        for col in ("resource", "tag says", "behaviour says", "confidence"):
            t.add_column(col)
        for r in s["tag_conflicts"][:8]:
            t.add_row(r["resource_id"], r["tag_team"], r["predicted_team"], f"{r['confidence']:.0%}")
        out.print(t)


def _pm(mean: float, std: float) -> str:
    return "—" if mean != mean else f"{100 * mean:.1f}±{100 * std:.0f}"


_SHORT = {"label_propagation": "label prop", "logistic_regression": "log. reg.", "role_vote": "role vote"}


def print_benchmark(out: Console, report) -> None:
    # kinds as rows, models as columns: fits 80 columns with six models
    t = Table(title=f"accuracy % on hidden labels, mean ± std over {report.seeds} seed(s)", box=box.SIMPLE_HEAD,
              pad_edge=False)
    t.add_column("kind", no_wrap=True)
    models = list(report.rows)
    for m in models:
        t.add_column(_SHORT.get(m, m), justify="right", no_wrap=True)
    t.add_row("[bold]overall[/]", *[f"[bold]{_pm(*report.rows[m]['overall'])}[/]" for m in models])
    for k in report.kinds:
        t.add_row(k, *[_pm(*report.rows[m]["per_kind"].get(k, (float("nan"), 0.0))) for m in models])
    out.print(t)
    extra = []
    if report.ece is not None:
        extra.append(f"GNN calibration: ECE {report.ece[0]:.3f} ± {report.ece[1]:.3f}")
    if report.unowned_detection is not None:
        extra.append(f"unowned resources flagged 'fits no team': {report.unowned_detection:.0%}; "
                     f"owned ones wrongly flagged: {report.owned_false_no_team:.0%}")
    extra.append(f"evaluated resources per seed: {report.evaluated}")
    for line in extra:
        out.print(line)


def print_calibration(out: Console, rep) -> None:
    out.print(f"evaluated on [bold]{rep.n}[/] resources ({rep.against}); temperature T = {rep.temperature:.3f}")
    out.print(f"ECE before temperature scaling: [bold]{rep.ece_before:.4f}[/]; after: [bold]{rep.ece_after:.4f}[/]")
    t = Table(title="reliability (after temperature scaling)")
    for col in ("confidence bin", "resources", "mean confidence", "accuracy"):
        t.add_column(col, justify="right")
    for b in rep.table:
        if b.count:
            t.add_row(f"{b.lo:.1f}–{b.hi:.1f}", str(b.count), f"{b.mean_confidence:.3f}", f"{b.accuracy:.3f}")
    out.print(t)


def print_curve(out: Console, curve, method: str) -> None:
    t = Table(title=f"active learning ({method}): accuracy on still-unlabelled resources")
    for col in ("round", "labels", "accuracy", "cost-weighted accuracy"):
        t.add_column(col, justify="right")
    for p in curve:
        t.add_row(str(p.round), str(p.n_labels), f"{p.accuracy:.1%}", f"{p.cost_weighted_accuracy:.1%}")
    out.print(t)


def print_accounts(out: Console, rows: list[dict]) -> None:
    if not rows:
        out.print("no accounts yet: `costdna accounts add NAME --synthetic | --bundle DIR | --aws --role-arn ARN`")
        return
    t = Table(title="accounts")
    for col in ("name", "kind", "source", "status"):
        t.add_column(col)
    for r in rows:
        st = r["status"] + (f": {r['status_reason']}" if r["status_reason"] else "")
        t.add_row(r["name"], r["kind"], r["source"], st)
    out.print(t)


def _bar(pct: float, width: int = 12) -> str:
    done = int(round(width * pct / 100))
    return "█" * done + "░" * (width - done) + f" {pct:.0f}%"


def print_status(out: Console, report: dict) -> None:
    t = Table(title="costdna status")
    for col in ("account", "kind", "last scan", "resources", "attributable", "labels", "change sets"):
        t.add_column(col, no_wrap=col in ("account", "last scan"))
    problems = []
    for a in report["accounts"]:
        sc = a["last_scan"]
        if sc is None:
            last, res, attr = "never scanned", "", ""
        else:
            last = f"#{sc['id']} {sc['status']}"
            if sc.get("worker_lost"):  # its worker died: another takes the job as the lease lapses
                last += f" [yellow]{sc['state']}[/] {_bar(sc['progress'], 8)} {sc['stage']}"
            elif sc["status"] in ("queued", "running"):
                last += f" {_bar(sc['progress'], 8)} {sc['stage']}"
            res = f"{sc['resources']:,}" if sc["resources"] is not None else ""
            attr = _usd(sc["attributable_cost_usd"]) if sc["attributable_cost_usd"] is not None else ""
            if sc["error"]:
                problems.append(f"[red]{a['name']}[/] scan #{sc['id']}: {sc['error']}")
        labels = ", ".join(f"{k} {v}" for k, v in sorted(a["labels"].items())) or "—"
        sets = ", ".join(f"{k} {v}" for k, v in sorted(a["change_sets"].items())) or "—"
        t.add_row(a["name"], a["kind"], last, res, attr, labels, sets)
    out.print(t)
    for p in problems:
        out.print(p)
    out.print(f"open alerts: {report['open_alerts']}")


def write_stored_predictions(rows: list, path) -> None:
    """predictions.csv (the engine's column contract) from stored prediction rows."""
    import csv
    from pathlib import Path

    from engine.scan import PREDICTION_COLUMNS

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PREDICTION_COLUMNS)
        w.writeheader()
        for p in rows:
            w.writerow({"resource_id": p.resource_id, "arn": p.arn, "type": p.type, "predicted_team": p.team,
                        "confidence": f"{p.confidence:.4f}", "tag_team": p.tag_team,
                        "tag_conflict": int(p.tag_conflict), "anomaly_score": f"{p.anomaly_score:.4f}",
                        "monthly_cost_usd": f"{p.monthly_cost_usd:.4f}"})


# -- the watch: spikes, alerts, digest ----------------------------------------------------------------


def _when(iso: str | None) -> str:
    """``2026-11-05T14:00:00Z`` -> ``2026-11-05 14:00`` (every time here is UTC)."""
    return (iso or "?").replace("T", " ")[:16]


def _owner(item: dict) -> str:
    team = item.get("owner_team")
    if not team:
        return "[yellow]no owner[/]"
    conf = float(item.get("owner_confidence") or 0.0)
    guess = " [dim](guess)[/]" if is_guess(item) else ""  # the cards' rule: the surfaces agree
    return f"{escape(str(team))} {conf:.0%}{guess}"


def _cause(c: dict | None) -> str:
    if not c:
        return "[dim]no cause found[/]"
    what = c.get("commit") or c.get("event_name") or c.get("kind") or "change"
    where = f" of {c['repo']}" if c.get("repo") else ""
    who = f" by {c['actor']}" if c.get("actor") else ""
    pv = c.get("p_value")
    p = "" if pv is None else " (p<0.001)" if pv < 0.001 else f" (p={pv:.3g})"
    return escape(f"{str(what)[:12]}{where}{who} at {_when(c.get('time'))}{p}")


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _duration(item: dict) -> str:
    if item.get("ongoing"):
        return "ongoing"
    try:
        from datetime import datetime

        a, b = (datetime.fromisoformat(str(item[k]).replace("Z", "+00:00")) for k in ("start", "end"))
    except (KeyError, ValueError):
        return ""
    h = (b - a).total_seconds() / 3600
    return f"for {h:.0f} h" if h < 48 else f"for {h / 24:.1f} days"


def print_spikes(out: Console, items: list[dict], head: dict, since: str | None = None) -> None:
    """The spikes table (``costdna spikes``): what costs more than its baseline, in amortized $.

    Two lines a spike (resource and severity; start and duration; $/h now and baseline; owner and cause)
    keep it readable in 80 columns, and the resource id is never cut (people copy it).
    """
    src = f"bundle {head['bundle']}" if head.get("source") == "bundle" else f"account {head.get('account')}"
    scope = f"ending after {_when(since)} UTC" if since else ("open" if head.get("source") == "account" else "all")
    if not items:
        out.print(f"no cost spikes ({scope}) in {escape(src)}")
        return
    out.print(f"[bold]cost spikes[/] in {escape(src)} ({scope}); amortized $, times UTC")
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("resource\nseverity, since", no_wrap=True, min_width=min(48, max(len(i["resource_id"]) for i in items)))
    t.add_column("$/h now\nbaseline", justify="right", no_wrap=True)
    t.add_column("extra", justify="right", no_wrap=True)
    t.add_column("owner\ncause", ratio=1, min_width=20)
    for i in items:
        sev = i.get("severity") or ""
        status = i.get("status")
        state = f" [dim]({escape(str(status).replace('_', ' '))})[/]" if status and status != "open" else ""
        t.add_row(f"{escape(i['resource_id'])}\n[{_SEVERITY_STYLE.get(sev, '')}]{escape(sev)}[/]{state} "
                  f"{_when(i.get('start'))}, {_duration(i)}",
                  f"{_usd(i['peak_usd_per_hour'])}\n[dim]{_usd(i['baseline_usd_per_hour'])}[/]", _usd(i["extra_usd"]),
                  f"{_owner(i)}\n{_cause(i.get('cause'))}")
    out.print(t)
    total = sum(i["extra_usd"] for i in items)
    out.print(f"{len(items)} spike(s), {_usd(total)} above baseline")


def print_alert(out: Console, item: dict | None, route: dict, spike_id) -> None:  # type: ignore[no-untyped-def]
    """One alert the watch sends, as a line: what, how much, whose, to whom."""
    to = ", ".join([*(route.get("users") or []), *(route.get("emails") or [])] +
                   ([f"#{route['channel'].lstrip('#')}"] if route.get("channel") else [])) or "nobody mapped"
    if item is None:
        out.print(f"[bold]alert[/] spike #{spike_id} -> {escape(to)}")
        return
    sev = item.get("severity") or ""
    out.print(f"[bold]alert[/] [{_SEVERITY_STYLE.get(sev, '')}]{escape(sev)}[/] {escape(item['resource_id'])}: "
              f"{_usd(item['peak_usd_per_hour'])}/h vs {_usd(item['baseline_usd_per_hour'])}/h baseline, "
              f"{_usd(item['extra_usd'])} extra since {_when(item.get('start'))} UTC; "
              f"{'owner ' + _owner(item) if item.get('owner_team') else _owner(item)}; "
              f"cause: {_cause(item.get('cause'))} -> {escape(to)}"
              + (" [dim](fallback: assign a team)[/]" if route.get("fallback") else ""))


def print_storm(out: Console, p: dict) -> None:
    out.print(f"[bold red]alert storm[/]: {p.get('count', len(p.get('spike_ids') or []))} alert(s) of account "
              f"#{p.get('account_id')} held; one summary sent instead")


def _watch_line(r: dict) -> tuple[int, int, int, int, str]:
    """(files read, spikes, alerted, held, held detail) of one account's watch result."""
    files = r.get("files_read") or []
    held = r.get("held") or {}
    if isinstance(held, dict):
        held_n, held_txt = sum(int(v) for v in held.values()), ", ".join(f"{k} {v}" for k, v in sorted(held.items()) if v)
    else:
        held_n, held_txt = int(held or 0), ""
    return (files if isinstance(files, int) else len(files)), int(r.get("spikes") or 0), int(r.get("alerted") or 0), \
        held_n, held_txt


def print_watch_result(out: Console, result: dict, seconds: float) -> None:
    """What one ``costdna watch --once`` did, per account and in all: files read, spikes scored, alerts
    sent and held (strict mode, panic, storm)."""
    per = result.get("accounts")
    per = per if isinstance(per, dict) and per else {"": result}
    totals, held_detail, modes = [0, 0, 0, 0], "", []
    for name, r in per.items():
        label = f"[bold]{escape(str(name))}[/]: " if name else ""
        if not isinstance(r, dict):
            continue
        if r.get("error"):
            out.print(f"{label}[red]failed[/]: {escape(str(r['error']))}")
            continue
        if r.get("skipped"):
            out.print(f"{label}[dim]skipped: {escape(str(r['skipped']))}[/]")
            continue
        files, spikes, alerted, held, held_txt = _watch_line(r)
        for k, v in enumerate((files, spikes, alerted, held)):
            totals[k] += v
        mode = f", mode {r['mode']}" if r.get("mode") else ""
        modes.append(mode)
        held_detail = f" ({held_txt})" if held_txt else ""
        if len(per) > 1:
            out.print(f"{label}{files:,} new file(s) read, {spikes} spike(s) scored, {alerted} alerted, "
                      f"{held} held{held_detail}{mode}")
    if len(per) > 1:
        held_detail, modes = "", []
    out.print(f"watch: {totals[0]:,} new file(s) read, {totals[1]} spike(s) scored, {totals[2]} alerted, "
              f"{totals[3]} held{held_detail}{''.join(modes)} in {seconds:.1f}s")


def _named(row, *keys: str) -> str:  # type: ignore[no-untyped-def]
    if not isinstance(row, dict):
        return escape(str(row))
    for k in keys:
        if row.get(k):
            return escape(str(row[k]))
    return "?"


def _delta(row) -> str:  # type: ignore[no-untyped-def]
    if not isinstance(row, dict):
        return ""
    for k in ("delta_usd", "change_usd", "delta"):
        if row.get(k) is not None:
            v = float(row[k])
            return ("+" if v >= 0 else "") + _usd(v)
    return ""


def _spark(values: list[float]) -> str:
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join("▁▂▃▄▅▆▇█"[min(7, int(8 * v / top))] if v > 0 else " " for v in values)


def print_digest(out: Console, account: str, d: dict) -> None:
    """The daily digest in the terminal: the same figures as the channel's (amortized $, UTC days)."""
    y, avg = d.get("yesterday_usd"), d.get("avg7_usd")
    day = f" ({d['day']})" if d.get("day") else ""
    lines = [f"yesterday{day} {_usd(y)} vs 7-day average {_usd(avg)}"
             + (f" ({100 * (y - avg) / avg:+.0f}%)" if y is not None and avg else "")]
    if d.get("paused"):
        lines.append("[bold red]alerts are paused (panic switch): spikes are scored and stored, nobody is told[/]")
    q = d.get("queue") or {}
    if q:
        lines.append(f"queue: {q.get('prompts', 0)} who-owns-this question(s), {q.get('approvals', 0)} change set(s) "
                     "awaiting approval")
    out.print(Panel("\n".join(lines), title=f"costdna digest: {escape(account)} (amortized $)", expand=False))
    movers = d.get("movers") or {}
    for kind, keys in (("resources", ("resource_id", "arn", "name")), ("teams", ("team", "name"))):
        rows = movers.get(kind) or []
        if rows:
            t = Table(title=f"top movers: {kind} (yesterday vs 7-day average)", box=box.SIMPLE_HEAD)
            t.add_column(kind[:-1])
            t.add_column("yesterday", justify="right")
            t.add_column("change", justify="right")
            for r in rows[:10]:
                t.add_row(_named(r, *keys), _usd(r.get("yesterday_usd", r.get("usd"))) if isinstance(r, dict) else "",
                          _delta(r))
            out.print(t)
    burn = d.get("untagged_by_day") or []
    if burn:
        vals = [float(v or 0.0) for _, v in burn]
        out.print(f"untagged spend, last {len(burn)} days: {_spark(vals)}  {_usd(vals[0])} -> {_usd(vals[-1])}/day")
    spikes = d.get("open_spikes") or []
    if spikes:
        t = Table(title="open spikes", box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("resource\nseverity, since", no_wrap=True,
                     min_width=min(48, max(len(str(s.get("resource_id") or "")) for s in spikes)))
        t.add_column("extra", justify="right", no_wrap=True)
        t.add_column("owner\nstate", min_width=12)
        for sp in spikes[:15]:
            sev = str(sp.get("severity") or "")
            state = str(sp.get("status") or sp.get("state") or "").replace("_", " ")
            if sp.get("snooze_until"):
                state += f" until {_when(sp['snooze_until'])}"
            t.add_row(f"{_named(sp, 'resource_id', 'arn')}\n[{_SEVERITY_STYLE.get(sev, '')}]{escape(sev)}[/] "
                      f"{_when(sp.get('start'))}", _usd(sp.get("extra_usd")),
                      f"{escape(str(sp.get('owner_team') or 'no owner'))}\n{escape(state)}")
        out.print(t)
        if len(spikes) > 15:
            out.print(f"… and {len(spikes) - 15} more: `costdna spikes --account ACCOUNT`")
    else:
        out.print("no open spikes")
    drift = d.get("drift") or {}
    counts = drift.get("counts") or {k: len(drift.get(k) or []) for k in ("new", "gone", "owner_changed")}
    if any(counts.get(k) for k in ("new", "gone", "owner_changed")):
        out.print(f"drift since the previous scan: {counts.get('new', 0)} new, {counts.get('gone', 0)} gone, "
                  f"{counts.get('owner_changed', 0)} owner(s) changed")
        for r in (drift.get("owner_changed") or [])[:5]:
            out.print(f"  • {_named(r, 'resource_id', 'arn')}: {_named(r, 'before', 'old', 'from')} -> "
                      f"{_named(r, 'after', 'new', 'to')}")
    by_team = d.get("by_team_day") or {}
    if by_team:
        t = Table(title="spend by team per day", box=box.SIMPLE_HEAD)
        t.add_column("team")
        t.add_column("days")
        t.add_column("last day", justify="right")
        for team, series in sorted(by_team.items(), key=lambda kv: -sum(v or 0 for _, v in kv[1])):
            vals = [float(v or 0.0) for _, v in series]
            t.add_row(escape(str(team)), _spark(vals), _usd(vals[-1] if vals else 0.0))
        out.print(t)

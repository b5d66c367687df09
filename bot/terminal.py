"""Rich renderings of engine results for the terminal (scan summary, benchmark, calibration, curves)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from handlers.views import bill_line, money

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

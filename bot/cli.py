"""`costdna` on the command line: synth, scan, benchmark, calibrate, learn, demo.

The CLI only parses arguments, shows progress and prints; every computation is an engine call.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot import terminal
from bot.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="costdna: find the owner of every cloud resource, from behaviour.")
# soft_wrap: never break a long path across lines (people grep and copy these)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


@contextmanager
def stage_progress(enabled: bool = True):
    """A rich progress bar per engine stage; yields the ``progress(stage, fraction)`` callback."""
    if not enabled:
        yield lambda stage, frac: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<12}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def cb(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=min(1.0, frac))

        yield cb


def synthetic_bundle(seed: int, teams: int = 6, resources_per_team: int = 40, days: int = 14,
                     events_per_day: float = 20.0, quiet: bool = False) -> Path:
    """Generate (once, cached in the data dir) a synthetic org and return its directory (bundle + truth)."""
    from engine.synth import generate

    root = get_settings().data_dir / "synthetic" / f"s{seed}-t{teams}-r{resources_per_team}-d{days}-e{events_per_day:g}"
    if (root / "truth.csv").exists() and (root / "bundle").is_dir():
        return root
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    with stage_progress(not quiet) as cb:
        generate(tmp, seed=seed, teams=teams, resources_per_team=resources_per_team, days=days,
                 events_per_resource_day=events_per_day, progress=cb)
    if root.exists():
        import shutil

        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _rules():
    from engine.tagrules import TagRules

    path = get_settings().tag_rules
    return TagRules.load(path) if path else TagRules.default()


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write (bundle/ and truth.csv)")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    teams: Annotated[int, typer.Option(help="number of teams")] = 6,
    resources_per_team: Annotated[int, typer.Option(help="resources per team")] = 40,
    days: Annotated[int, typer.Option(help="days of history")] = 14,
    events_per_day: Annotated[float, typer.Option(help="CloudTrail events per resource per day")] = 20.0,
) -> None:
    """Write a synthetic organisation as a bundle of real export formats, with ground truth."""
    from engine.synth import generate

    with stage_progress() as cb:
        s = generate(out_dir, seed=seed, teams=teams, resources_per_team=resources_per_team, days=days,
                     events_per_resource_day=events_per_day, progress=cb)
    terminal.print_synth(out, s)


@app.command()
def scan(
    bundle: Annotated[Path | None, typer.Option(help="bundle directory of export files")] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="scan a generated synthetic org")] = False,
    seed: Annotated[int, typer.Option(help="seed of the synthetic org")] = 0,
    out_csv: Annotated[Path | None, typer.Option("--out", help="write predictions.csv here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of the report")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="fail on any malformed input file")] = False,
    workers: Annotated[int | None, typer.Option(help="parser processes (default: all cores)")] = None,
) -> None:
    """Scan a bundle: inventory, spend, and the inferred owner of every resource."""
    from engine.records import BundleError
    from engine.scan import scan_bundle, write_predictions

    if bool(bundle) == synthetic:
        _fail("give exactly one of --bundle DIR or --synthetic")
    root = synthetic_bundle(seed, quiet=as_json) / "bundle" if synthetic else bundle
    try:
        with stage_progress(not as_json) as cb:
            result = scan_bundle(root, rules=_rules(), strict=strict, workers=workers or get_settings().workers,
                                 progress=cb)
    except BundleError as e:
        for issue in e.issues[:20]:
            console.print(f"[red]✗[/] {issue}")
        _fail(f"could not read bundle {root} ({len(e.issues)} problem(s))")
    except ValueError as e:
        _fail(str(e))
    if out_csv:
        write_predictions(result.rows, out_csv)
    if as_json:
        out.print_json(json.dumps(result.summary))
    else:
        terminal.print_summary(out, result)
        if out_csv:
            out.print(f"predictions written to [bold]{out_csv}[/] ({len(result.rows)} rows)")
    for issue in result.bundle.issues[:10]:
        console.print(f"[yellow]![/] {issue}")
    if len(result.bundle.issues) > 10:
        console.print(f"[yellow]![/] … and {len(result.bundle.issues) - 10} more input problems")


@app.command()
def benchmark(
    synthetic: Annotated[bool, typer.Option("--synthetic", help="benchmark on generated orgs")] = True,
    seeds: Annotated[int, typer.Option(help="number of seeds (0..N-1)")] = 5,
    kfold: Annotated[int, typer.Option(help="also score tagged resources by K-fold label hiding")] = 0,
    teams: Annotated[int, typer.Option(help="teams per org")] = 8,
    resources_per_team: Annotated[int, typer.Option(help="resources per team")] = 80,
    days: Annotated[int, typer.Option(help="days of history")] = 14,
    events_per_day: Annotated[float, typer.Option(help="CloudTrail events per resource per day")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Accuracy ± std per hard-case kind, GNN vs every baseline, on labels hidden from training."""
    from engine.evaluate import benchmark_orgs

    if not synthetic:
        _fail("only --synthetic is supported here; use benchmarks/external.py for the external data set")
    roots = [synthetic_bundle(s, teams, resources_per_team, days, events_per_day, quiet=as_json) for s in range(seeds)]
    with stage_progress(not as_json) as cb:
        report = benchmark_orgs(roots, kfold=kfold, rules=_rules(), progress=cb)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        terminal.print_benchmark(out, report)


@app.command()
def calibrate(
    bundle: Annotated[Path | None, typer.Option(help="bundle directory (scored against its owner tags)")] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    bins: Annotated[int, typer.Option(help="reliability table bins")] = 10,
) -> None:
    """Expected calibration error and the reliability table, before and after temperature scaling."""
    from engine.evaluate import calibration_report

    if bool(bundle) == synthetic:
        _fail("give exactly one of --bundle DIR or --synthetic")
    root = synthetic_bundle(seed) if synthetic else bundle
    with stage_progress() as cb:
        try:
            rep = calibration_report(root, rules=_rules(), bins=bins, progress=cb)
        except ValueError as e:
            _fail(str(e))
    terminal.print_calibration(out, rep)


@app.command()
def learn(
    synthetic: Annotated[bool, typer.Option("--synthetic", help="simulate on a generated org")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    rounds: Annotated[int, typer.Option(help="labelling rounds")] = 6,
    batch: Annotated[int, typer.Option(help="resources a human labels per round")] = 10,
    method: Annotated[str, typer.Option(help="least_confidence | margin | entropy | random")] = "least_confidence",
) -> None:
    """Simulate the "who owns this?" loop: ask about the costliest uncertain resources, retrain, repeat."""
    from engine.evaluate import simulate_active_learning

    if method not in ("least_confidence", "margin", "entropy", "random"):
        _fail(f"unknown method {method!r}: use least_confidence, margin, entropy or random")
    root = synthetic_bundle(seed)
    with stage_progress() as cb:
        curve = simulate_active_learning(root, rules=_rules(), rounds=rounds, batch=batch, method=method,
                                         progress=cb)
    terminal.print_curve(out, curve, method)


@app.command()
def demo(
    seed: Annotated[int, typer.Option()] = 0,
    seeds: Annotated[int, typer.Option(help="seeds for the closing benchmark")] = 2,
) -> None:
    """Generate an org, scan it, print the summary and a short benchmark."""
    from engine.evaluate import benchmark_orgs
    from engine.scan import scan_bundle, write_predictions

    t0 = time.perf_counter()
    out.rule("[bold]costdna demo[/]: a synthetic organisation, scanned")
    root = synthetic_bundle(seed)
    out.print(f"synthetic org in [bold]{root}[/] (CloudTrail, CUR 2.0, tagging API, IAM, ENIs, flow logs, deploys)")
    with stage_progress() as cb:
        result = scan_bundle(root / "bundle", rules=_rules(), progress=cb)
    terminal.print_summary(out, result)
    csv_path = root / "predictions.csv"
    write_predictions(result.rows, csv_path)
    out.print(f"predictions: [bold]{csv_path}[/]")
    out.rule("[bold]benchmark[/]: accuracy on resources whose owner was hidden from training")
    roots = [synthetic_bundle(s) for s in range(seeds)]
    with stage_progress() as cb:
        report = benchmark_orgs(roots, rules=_rules(), progress=cb)
    terminal.print_benchmark(out, report)
    out.print(f"[dim]demo finished in {time.perf_counter() - t0:.0f}s[/]")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()

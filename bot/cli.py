"""`costdna` on the command line: synth, scan, benchmark, calibrate, learn, demo, spikes, digest, watch.

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
from bot.cli_errors import CommandGroup, console, fail
from config.settings import get_settings

out = Console(soft_wrap=True)  # soft_wrap: never break a long path across lines (people grep and copy these)


app = typer.Typer(cls=CommandGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="costdna: find the owner of every cloud resource, from behaviour.")


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", envvar="COSTDNA_DEBUG",
                                        help="show the full traceback of an unexpected failure")] = False,
) -> None:
    get_settings()  # a malformed COSTDNA_* variable fails here, as one `error:` line, before any work


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


def _rules(owner_keys: list[str] | None = None):  # type: ignore[no-untyped-def]
    """The tag rules: COSTDNA_TAG_RULES or the built-in ones, with ``--owner-key`` (else COSTDNA_OWNER_KEY)
    tried before their own keys."""
    from engine.tagrules import TagRules, owner_keys_from_env

    path = get_settings().tag_rules
    keys = owner_keys or owner_keys_from_env()
    return TagRules.load(path).with_owner_keys(keys) if path else TagRules.default(keys)


@contextmanager
def _bundle_errors(root: Path):  # type: ignore[no-untyped-def]
    """A bundle that cannot be read (its first problems listed) or a bad option value: one ``error:`` line."""
    from engine.records import BundleError

    try:
        yield
    except BundleError as e:
        for issue in e.issues[:20]:
            console.print(f"[red]✗[/] {issue}")
        fail(f"could not read bundle {root} ({len(e.issues)} problem(s))")
    except ValueError as e:
        fail(str(e))


def _say_issues(issues: list) -> None:
    """The input problems a read left out (rows or files skipped), on stderr: the output stays parseable."""
    for issue in issues[:10]:
        console.print(f"[yellow]![/] {issue}")
    if len(issues) > 10:
        console.print(f"[yellow]![/] … and {len(issues) - 10} more input problems")


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
    account: Annotated[str | None, typer.Option(help="scan a configured account and store the results")] = None,
    enqueue: Annotated[bool, typer.Option("--enqueue", help="with --account: hand the scan to `costdna worker`")] = False,
    owner_key: Annotated[list[str] | None, typer.Option(
        "--owner-key", metavar="KEY", help="a tag key that names the owning team (e.g. business_unit), tried before the built-in "
                            "keys; repeatable (default: $COSTDNA_OWNER_KEY)")] = None,
) -> None:
    """Scan a bundle: inventory, spend, and the inferred owner of every resource.

    With --bundle or --synthetic the scan runs here and stores nothing; with --account (or no source
    at all: the only configured account, a synthetic demo account on first use) it is stored.
    """
    from engine.scan import scan_bundle, write_predictions

    if sum(map(bool, (bundle, synthetic, account))) > 1:
        fail("give one of --bundle DIR, --synthetic or --account NAME")
    if enqueue and (bundle or synthetic):
        fail("--enqueue works with stored accounts: use --account NAME")
    if out_csv is not None and out_csv.is_dir():  # say so now, not after the scan
        fail(f"--out {out_csv} is a directory: give a file path, e.g. --out {out_csv / 'predictions.csv'}")
    if not (bundle or synthetic):
        if owner_key:
            if enqueue:
                fail("--owner-key applies to scans run here; for `costdna worker`, set "
                      f"COSTDNA_OWNER_KEY={','.join(owner_key)} in the workers' environment")
            import os

            from engine.tagrules import OWNER_KEY_ENV

            os.environ[OWNER_KEY_ENV] = ",".join(owner_key)  # the in-process job reads the tag rules from it
        _run(_scan_account(account, enqueue, as_json, out_csv))
        return
    root = synthetic_bundle(seed, quiet=as_json) / "bundle" if synthetic else bundle
    with _bundle_errors(root), stage_progress(not as_json) as cb:
        settings = get_settings()
        result = scan_bundle(root, rules=_rules(owner_key), strict=strict, workers=workers or settings.workers,
                             progress=cb, threshold=settings.confidence_threshold)
    if out_csv:
        write_predictions(result.rows, out_csv)
    if as_json:
        out.print_json(json.dumps(result.summary))
    else:
        terminal.print_summary(out, result)
        if out_csv:
            out.print(f"predictions written to [bold]{out_csv}[/] ({len(result.rows)} rows)")
    _say_issues(result.bundle.issues)


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
        fail("only --synthetic is supported here; use benchmarks/external.py for the external data set")
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
    owner_key: Annotated[list[str] | None, typer.Option(
        "--owner-key", metavar="KEY", help="a tag key that names the owning team (e.g. business_unit), tried before the built-in "
                            "keys; repeatable (default: $COSTDNA_OWNER_KEY)")] = None,
) -> None:
    """Expected calibration error and the reliability table, before and after temperature scaling."""
    from engine.evaluate import calibration_report

    if bool(bundle) == synthetic:
        fail("give exactly one of --bundle DIR or --synthetic")
    root = synthetic_bundle(seed) if synthetic else bundle
    with stage_progress() as cb:
        try:
            rep = calibration_report(root, rules=_rules(owner_key), bins=bins, progress=cb)
        except ValueError as e:
            fail(str(e))
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
        fail(f"unknown method {method!r}: use least_confidence, margin, entropy or random")
    root = synthetic_bundle(seed)
    with stage_progress() as cb:
        curve = simulate_active_learning(root, rules=_rules(), rounds=rounds, batch=batch, method=method,
                                         progress=cb)
    terminal.print_curve(out, curve, method)


DEMO_CHAT = """\
# a console chat: the same handlers and cards as Slack
status
scan
label 1
1
apply
1
spikes
digest
"""


@app.command()
def demo(
    seeds: Annotated[int, typer.Option(help="seeds for the closing benchmark")] = 2,
) -> None:
    """Scan the synthetic demo account (SQLite, in-process jobs), show status, watch it for cost spikes,
    a short benchmark and a scripted chat: status, a scan summary, a "who owns this?" answered, a tag
    change set approved, the open spikes and the daily digest."""
    from engine.evaluate import benchmark_orgs

    t0 = time.perf_counter()
    settings = get_settings()
    from storage.db import redact

    out.rule("[bold]costdna demo[/]: a synthetic organisation, scanned and stored")
    out.print(f"database [bold]{redact(settings.db_url())}[/]; jobs "
              f"{'in-process' if not settings.redis_url else 'in-process (this command does not use REDIS_URL)'}")
    csv_path = settings.data_dir / "demo-predictions.csv"
    _run(_scan_account("demo", False, False, csv_path))
    out.print(f"predictions: [bold]{csv_path}[/]")
    status()
    out.rule("[bold]watch[/]: the hourly watch over the same files — spikes, their owners and causes")
    watch(once=True)
    spikes(account="demo")
    out.rule("[bold]benchmark[/]: accuracy on resources whose owner was hidden from training")
    roots = [synthetic_bundle(s) for s in range(seeds)]
    with stage_progress() as cb:
        report = benchmark_orgs(roots, rules=_rules(), progress=cb)
    terminal.print_benchmark(out, report)
    out.rule("[bold]chat[/]: `costdna chat` drives the Slack handlers in this terminal")
    from bot.chat import run_chat

    _run(run_chat(settings, DEMO_CHAT.splitlines(), Console()))  # wrapping, unlike `out`
    _demo_tags(settings)
    out.print(f"[dim]demo finished in {time.perf_counter() - t0:.0f}s[/]")


def _demo_tags(settings) -> None:  # type: ignore[no-untyped-def]
    """Show that the approved change set reached the demo bundle's resources.json."""
    from jobs.accounts import synthetic_dir
    from jobs.tagwriter import BundleTagWriter
    from storage import repo

    async def go():  # type: ignore[no-untyped-def]
        db = await _database()
        try:
            async with db.session() as s:
                acct = await repo.get_account(s, "demo")
                return synthetic_dir(acct, settings.data_dir) / "bundle"
        finally:
            await db.close()

    bundle = _run(go())
    tags = BundleTagWriter(bundle).read()
    tagged = sum(1 for t in tags.values() if t.get(settings.tag_key))
    out.print(f"{bundle / 'resources.json'}: {tagged} resources carry a `{settings.tag_key}` tag")


@app.command()
def chat(
    script: Annotated[Path | None, typer.Option("--script", help="a file of chat lines to run, then exit")] = None,
) -> None:
    """Chat with costdna in this terminal: the same subcommands, cards and buttons as in Slack.

    Type `status`, `scan`, `label`, `apply`, `ask top spenders`...; press a card's buttons by number.
    Reads a script with --script FILE, or lines from stdin when it is not a terminal.
    """
    from bot.chat import run_chat

    if script is not None:
        try:
            lines: list[str] | None = script.read_text().splitlines()
        except OSError as e:
            fail(f"cannot read {script}: {e}")
    elif not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        lines = None
    _run(run_chat(get_settings(), lines, Console()))  # wrapping, unlike `out`


# -- accounts, stored scans, workers, status -------------------------------------------------------

accounts_app = typer.Typer(no_args_is_help=True, help="Cloud accounts costdna scans.")
app.add_typer(accounts_app, name="accounts")


def _run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine; storage and job errors become one clear line, not a traceback."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from storage import repo

    try:
        return asyncio.run(coro)
    except (repo.NotFound, repo.Conflict, ValueError) as e:
        fail(str(e))
    except (SQLAlchemyError, OSError) as e:
        from storage.db import redact

        fail(f"database {redact(get_settings().db_url())}: {type(e).__name__}: {str(e).splitlines()[0]}")


async def _database():  # type: ignore[no-untyped-def]
    from storage.db import Database

    return await Database(get_settings().db_url()).init()


@accounts_app.command("add")
def accounts_add(
    name: Annotated[str, typer.Argument(help="a short name for the account")],
    synthetic: Annotated[bool, typer.Option("--synthetic", help="a generated organisation")] = False,
    bundle: Annotated[Path | None, typer.Option(help="a directory of export files")] = None,
    aws: Annotated[bool, typer.Option("--aws", help="a live AWS account, read through a role")] = False,
    role_arn: Annotated[str | None, typer.Option(help="with --aws: the read-only role to assume (without it: "
                                                      "how to create one, with a new ExternalId)")] = None,
    external_id: Annotated[str | None, typer.Option(help="with --aws: the role's ExternalId")] = None,
    regions: Annotated[list[str] | None, typer.Option(help="with --aws: regions to read, r1,r2 (repeatable; "
                                                           "default: every enabled region)")] = None,
    cloudtrail: Annotated[str | None, typer.Option(help="with --aws: the trail's bucket, s3://bucket/prefix")] = None,
    cur: Annotated[str | None, typer.Option(help="with --aws: the CUR 2.0 / FOCUS data export, "
                                                 "s3://bucket/prefix")] = None,
    flowlogs: Annotated[str | None, typer.Option(help="with --aws: VPC flow logs, s3://bucket/prefix")] = None,
    lookup_events: Annotated[bool | None, typer.Option(
        "--lookup-events/--no-lookup-events",
        help="with --aws: read CloudTrail LookupEvents (default: only when no --cloudtrail is given)")] = None,
    direct: Annotated[bool, typer.Option("--direct", help="with --aws: read with your own credentials (boto's "
                                                          "chain: AWS_PROFILE, SSO, instance role), no role to "
                                                          "assume")] = False,
    template_url: Annotated[str | None, typer.Option(help="with --aws and no --role-arn: the S3 URL of "
                                                          "manifests/aws/costdna-role.yaml, for the console "
                                                          "link (default: $COSTDNA_ROLE_TEMPLATE_URL)")] = None,
    seed: Annotated[int, typer.Option(help="with --synthetic: seed")] = 0,
    teams: Annotated[int, typer.Option(help="with --synthetic: teams")] = 6,
    resources_per_team: Annotated[int, typer.Option(help="with --synthetic: resources per team")] = 40,
) -> None:
    """Add an account: --synthetic | --bundle DIR | --aws --role-arn ARN [--cloudtrail/--cur/--flowlogs s3://...].

    --aws without --role-arn prints how to create the read-only role (the CloudFormation quick-create
    link) with a new ExternalId, kept for this name until the account is added with --role-arn."""
    import re

    from jobs.accounts import ScanInputError, check_bundle_dir
    from storage import repo

    if sum(map(bool, (synthetic, bundle, aws))) != 1:
        fail("give exactly one of --synthetic, --bundle DIR or --aws --role-arn ARN")
    if bundle:
        bundle = bundle.expanduser().resolve()
        try:
            check_bundle_dir(bundle)
        except ScanInputError as e:
            fail(str(e))
    kind = "synthetic" if synthetic else "bundle" if bundle else "aws"
    region_list = [r.strip() for item in regions or [] for r in item.split(",") if r.strip()]
    options: dict = {"seed": seed, "teams": teams, "resources_per_team": resources_per_team} if synthetic else {}
    if aws:
        from engine.collectors.s3mirror import parse_s3_uri

        for r in region_list:
            if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", r):
                fail(f"--regions: {r!r} is not an AWS region name (such as us-east-1)")
        for option, value in (("cloudtrail", cloudtrail), ("cur", cur), ("flowlogs", flowlogs)):
            if value:
                try:
                    options[option] = str(parse_s3_uri(value))
                except ValueError as e:
                    fail(f"--{option}: {e}")
        if lookup_events is not None:
            options["lookup_events"] = lookup_events
        pending = get_settings().data_dir / "accounts" / f"pending-aws-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.json"
        if direct:
            if role_arn or external_id:
                fail("--direct reads with your own credentials: leave out --role-arn and --external-id")
            options["direct"] = True
        elif not role_arn:
            _aws_onboarding(name, pending, external_id, template_url, region_list, options)
            return
        if not external_id and pending.is_file():  # the ExternalId handed out with the quick-create link
            try:
                external_id = json.loads(pending.read_text()).get("external_id") or None
            except (OSError, ValueError):
                external_id = None
    elif any((role_arn, external_id, regions, cloudtrail, cur, flowlogs, lookup_events is not None, template_url,
              direct)):
        fail("--role-arn, --external-id, --direct, --regions, --cloudtrail, --cur, --flowlogs, --lookup-events and "
             "--template-url go with --aws")

    async def go():  # type: ignore[no-untyped-def]
        db = await _database()
        try:
            async with db.session() as s:
                return await repo.add_account(
                    s, name, kind, bundle_path=str(bundle) if bundle else None, role_arn=role_arn,
                    external_id=external_id, regions=region_list, actor="cli", options=options)
        finally:
            await db.close()

    acct = _run(go())
    if aws:
        pending.unlink(missing_ok=True)
        reads = ", ".join(f"{k} {v}" for k, v in options.items() if k in ("cloudtrail", "cur", "flowlogs"))
        out.print(f"added aws account [bold]{acct.name}[/] ({acct.role_arn}"
                  f"{', ExternalId set' if acct.external_id else ', no ExternalId'}; reads "
                  f"{reads or 'the APIs and CloudTrail LookupEvents'}); check it with `costdna doctor --account "
                  f"{acct.name}`, then scan it with `costdna scan --account {acct.name}`")
        return
    out.print(f"added {acct.kind} account [bold]{acct.name}[/]; scan it with `costdna scan --account {acct.name}`")


def _aws_onboarding(name: str, pending: Path, external_id: str | None, template_url: str | None,
                    regions: list[str], options: dict) -> None:
    """`accounts add NAME --aws` with no role yet: a new ExternalId (kept in ``pending`` for this name), the
    console quick-create link for the role template, and the command that finishes the job."""
    import os
    import shlex

    from engine.collectors.doctor import (
        ROLE_TEMPLATE,
        ROLE_TEMPLATE_URL_ENV,
        new_external_id,
        quick_create_url,
    )

    if not external_id and pending.is_file():  # asked twice: the same ExternalId, not a new one each time
        try:
            external_id = json.loads(pending.read_text()).get("external_id") or None
        except (OSError, ValueError):
            external_id = None
    external_id = external_id or new_external_id()
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_text(json.dumps({"name": name, "external_id": external_id}))
    url = template_url or os.environ.get(ROLE_TEMPLATE_URL_ENV)
    out.print(f"To connect AWS account [bold]{name}[/], create the read-only role in it with ExternalId "
              f"[bold]{external_id}[/] (kept for `{name}`; keep it private):")
    if url:
        out.print(f"  1. open {quick_create_url(external_id, url)}")
        out.print("     set TrustedPrincipal to what `aws sts get-caller-identity` prints where costdna runs, "
                  "and create the stack")
    else:
        out.print(f"  1. aws cloudformation deploy --template-file {ROLE_TEMPLATE} --stack-name costdna "
                  f"--capabilities CAPABILITY_NAMED_IAM --parameter-overrides "
                  f"TrustedPrincipal=<ARN costdna runs as> ExternalId={external_id}")
        out.print(f"     (for a console quick-create link, host the template in S3 and set {ROLE_TEMPLATE_URL_ENV} "
                  "or pass --template-url)")
    finish = ["costdna", "accounts", "add", name, "--aws", "--role-arn", "<RoleArn output>",
              "--external-id", external_id]
    if regions:
        finish += ["--regions", ",".join(regions)]
    for option in ("cloudtrail", "cur", "flowlogs"):
        if option in options:
            finish += [f"--{option}", options[option]]
    if "lookup_events" in options:
        finish.append("--lookup-events" if options["lookup_events"] else "--no-lookup-events")
    out.print("  2. then add it with the stack's RoleArn output:")
    out.print("     " + " ".join(a if a == "<RoleArn output>" else shlex.quote(a) for a in finish))


@accounts_app.command("list")
def accounts_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The configured accounts."""
    from storage import repo

    async def go():  # type: ignore[no-untyped-def]
        db = await _database()
        try:
            async with db.session() as s:
                return [{"name": a.name, "kind": a.kind, "source": a.bundle_path or a.role_arn or "",
                         "regions": a.regions, "status": a.status, "status_reason": a.status_reason}
                        for a in await repo.list_accounts(s)]
        finally:
            await db.close()

    rows = _run(go())
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        terminal.print_accounts(out, rows)


@app.command()
def doctor(
    account: Annotated[str | None, typer.Option(help="the AWS account to check (default: the only account)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Try every AWS call the collectors and the tag writer make: what works, what is denied (the IAM
    action to add), how fresh the exports are. Exit code 0 when everything a scan needs works, else 1."""
    from rich.table import Table

    from engine.collectors.doctor import doctor as run_doctor

    async def go():  # type: ignore[no-untyped-def]
        db = await _database()
        try:
            acct = await _stored_account(db, account)
        finally:
            await db.close()
        if acct.kind != "aws":
            fail(f"{acct.name} is a {acct.kind} account: doctor checks live AWS accounts "
                 "(`costdna accounts add NAME --aws --role-arn ARN --external-id ID`)")
        return await run_doctor(acct, get_settings())

    report = _run(go())
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        style = {"ok": "green", "denied": "bold red", "error": "red", "warn": "yellow", "skipped": "dim"}
        t = Table(title=f"costdna doctor: {report.account}"
                        + (f" (account {report.account_id} as {report.identity})" if report.identity else ""))
        for col in ("check", "region", "status", "what to do"):
            t.add_column(col, overflow="fold")
        for c in report.checks:
            status = f"[{style.get(c.status, '')}]{c.status}[/]" + ("" if c.needed or c.status == "ok" else " (optional)")
            todo = c.fix or c.detail
            t.add_row(f"{c.check}\n[dim]{c.what}[/]", c.region, status,
                      todo if not c.fix or not c.detail else f"{c.detail}\n→ {c.fix}")
        out.print(t)
        if report.missing_actions(True):
            out.print("IAM actions a scan needs: " + ", ".join(report.missing_actions(True)))
        if report.missing_actions(False):
            out.print("[dim]optional IAM actions (tag writes, billing checks): "
                      + ", ".join(report.missing_actions(False)) + "[/]")
        out.print("[green]everything a scan needs works[/]" if report.ok else
                  "[red]a scan of this account would fail: fix the denied/error rows above[/]")
    raise typer.Exit(0 if report.ok else 1)


async def _scan_account(name: str | None, enqueue: bool, as_json: bool, out_csv: Path | None) -> None:
    from jobs.control import request_scan
    from jobs.notify import Fanout, log_notifier
    from jobs.queue import open_queue
    from jobs.worker import job_context
    from storage import repo

    settings = get_settings()
    if enqueue and not settings.redis_url:
        fail("--enqueue needs REDIS_URL (a Redis that `costdna worker` processes listen on); "
              "without it, leave out --enqueue and the scan runs here")
    with stage_progress(not as_json and not enqueue) as bar:
        async def show(kind: str, **p) -> None:  # type: ignore[no-untyped-def]
            if kind == "scan.progress":
                bar("scan", p["progress"] / 100)

        ctx = await job_context(settings, notify=Fanout(log_notifier, show))
        db = ctx["db"]
        try:
            if enqueue:
                from jobs.queue import ArqQueue

                queue = await ArqQueue.connect(settings.redis_url, settings.queue_name)
            else:
                settings_local = settings.model_copy(update={"redis_url": None})
                queue = await open_queue(settings_local, ctx)
            try:
                scan = await request_scan(db, queue, name, requested_by="cli", in_process=not enqueue,
                                          stale_after_s=settings.job_timeout + 60)
                if not enqueue:
                    await queue.join()
            finally:
                await queue.close()
            async with db.session() as s:
                scan = await repo.get_scan(s, scan.id)
                account = await repo.get_account(s, scan.account_id)
                rows = await repo.predictions(s, scan.id) if out_csv and scan.status == "succeeded" else []
        finally:
            await db.close()
    if enqueue:
        out.print(f"scan #{scan.id} of [bold]{account.name}[/] queued; follow it with `costdna status`")
        return
    if scan.status != "succeeded":
        fail(f"scan #{scan.id} of {account.name} failed: {scan.error or scan.status}")
    if out_csv:
        terminal.write_stored_predictions(rows, out_csv)
    if as_json:
        out.print_json(json.dumps({"scan_id": scan.id, "account": account.name, **scan.summary}))
    else:
        terminal.print_summary(out, scan.summary)
        out.print(f"[dim]scan #{scan.id} of {account.name} stored: {scan.counts}[/]")


@app.command()
def worker(
    burst: Annotated[bool, typer.Option("--burst", help="exit once the queue is empty")] = False,
) -> None:
    """Run an arq worker: takes scans, retrains and tag writes from REDIS_URL's queue."""
    import logging

    from arq.worker import create_worker

    from jobs.worker import worker_settings

    settings = get_settings()
    if not settings.redis_url:
        fail("`costdna worker` needs REDIS_URL; without Redis, `costdna scan --account NAME` runs jobs in-process")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.discord.alerts import worker_notifier as discord_notifier  # each: None when not configured
    from bot.slack.notify import worker_notifier as slack_notifier

    create_worker(worker_settings(settings, notifiers=[slack_notifier, discord_notifier]), burst=burst).run()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option(envvar="PORT", help="port (default: $PORT or 8080)")] = 8080,
    socket: Annotated[bool, typer.Option("--socket", help="connect to Slack over Socket Mode (SLACK_APP_TOKEN) "
                                                          "instead of serving /slack/events")] = False,
) -> None:
    """The web process: /healthz, /status and the Slack app (POST /slack/events, or Socket Mode)."""
    import logging

    from aiohttp import web

    from bot.slack import missing_settings, slack_mode
    from bot.web import make_app

    settings = get_settings()
    if socket and missing_settings(settings, socket=True):
        fail("--socket needs " + " and ".join(missing_settings(settings, socket=True)) +
              " (an app-level token with connections:write, from the app's Basic Information page)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if socket:
        console.print("Slack: Socket Mode")
    elif slack_mode(settings) is None:
        console.print("Slack is not configured (set " + ", ".join(missing_settings(settings)) +
                      "): serving /healthz and /status only")
    else:
        mode = {"single": "single workspace", "oauth": "OAuth, any workspace; installs at GET /slack/install"}
        console.print(f"Slack: POST /slack/events ({mode[slack_mode(settings)]})")
    web_app = make_app(settings, slack="socket" if socket else "http")
    if not settings.redis_url:  # no workers: the hourly watch and the digests run in this process
        schedule_beside(web_app, settings)
        console.print("jobs in-process (no REDIS_URL): the hourly watch and the daily digests run here")
    web.run_app(web_app, host=host, port=port, print=lambda m: console.print(m))


@app.command("discord")
def discord_bot(
    schedule: Annotated[bool, typer.Option("--schedule", help="also run the hourly watch and the daily digests "
                                                              "here (no Redis workers and no `costdna serve`)")] = False,
) -> None:
    """The Discord bot: connects with DISCORD_TOKEN, syncs /costdna (to DISCORD_GUILD_ID when set, else
    globally) and answers commands, buttons and @costdna mentions until Ctrl-C."""
    import asyncio
    import logging

    from bot.discord import missing_settings

    settings = get_settings()
    if missing_settings(settings):
        fail("`costdna discord` needs " + " and ".join(missing_settings(settings)) +
             " (the bot token from the Discord application's Bot page; see README, Discord)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.discord.app import run

    where = f"guild {settings.discord_guild_id}" if settings.discord_guild_id else "every guild (global sync)"
    console.print(f"Discord: /costdna for {where}" + ("" if settings.redis_url else "; jobs in-process (no REDIS_URL)"))
    try:
        asyncio.run(run(settings, schedule=schedule))
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Accounts, their last scans (status and progress), label and change-set counts."""
    from jobs.control import resolve_account
    from storage import repo

    async def go():  # type: ignore[no-untyped-def]
        db = await _database()
        try:
            async with db.session() as s:
                if not await repo.list_accounts(s):
                    await resolve_account(s, None)  # the demo account, on first use
                return await repo.status_report(s)
        finally:
            await db.close()

    report = _run(go())
    if as_json:
        out.print_json(json.dumps(report, default=str))
    else:
        terminal.print_status(out, report)


# -- the watch: spikes, digest, watch ---------------------------------------------------------------


def _parse_since(text: str | None) -> float | None:
    """``--since`` as epoch seconds; a time without a zone is UTC (what every figure here is in)."""
    if text is None:
        return None
    from datetime import UTC, datetime

    raw = text.strip()
    try:
        dt = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw)
    except ValueError:
        fail(f"--since {text!r} is not an ISO 8601 time: give e.g. 2026-11-05, 2026-11-05T14:00 or "
             "2026-11-05T14:00:00Z (UTC unless it names a zone)")
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _iso(t) -> str | None:  # type: ignore[no-untyped-def]
    """ISO 8601 UTC with ``Z`` from epoch seconds, a datetime (naive = UTC, as stored) or an ISO string."""
    from datetime import UTC, datetime

    if t is None:
        return None
    if isinstance(t, str):
        t = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith("Z") else t)
    if isinstance(t, datetime):
        t = (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    return datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(t) -> float:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    if isinstance(t, str):
        t = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith("Z") else t)
    if isinstance(t, datetime):
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    return float(t)


CAUSE_KEYS = ("commit", "repo", "actor", "time", "p_value")


def _cause_json(cause) -> dict | None:  # type: ignore[no-untyped-def]
    """The contract's cause object ({commit, repo, actor, time (ISO Z), p_value}, extra keys kept) or None."""
    if cause is None:
        return None
    c = dict(cause.to_json() if hasattr(cause, "to_json") else cause)
    if not c:
        return None
    for k in CAUSE_KEYS:
        c.setdefault(k, None)
    c["time"] = _iso(c["time"])
    c["p_value"] = None if c["p_value"] is None else float(c["p_value"])
    return c


def _spike_item(d: dict) -> dict:
    """One item of ``costdna spikes --json`` from a ReportedSpike's JSON or a stored spike's columns: the
    contract's fields with their types (times ISO 8601 UTC ``Z``, money floats in amortized $)."""
    item = dict(d)
    item["resource_id"] = str(d.get("resource_id") or d.get("arn") or "")
    item["arn"] = str(d.get("arn") or "")
    item["start"], item["end"] = _iso(d["start"]), _iso(d["end"])
    for k, places in (("peak_usd_per_hour", 4), ("baseline_usd_per_hour", 4), ("extra_usd", 2)):
        item[k] = round(float(d.get(k) or 0.0), places)  # as engine.watch.ReportedSpike.to_json rounds them
    item["severity"] = str(d.get("severity") or "")
    reasons = d.get("reasons") or []
    item["reasons"] = [str(r) for r in (json.loads(reasons) if isinstance(reasons, str) else reasons)]
    item["owner_team"] = d.get("owner_team") or None
    item["owner_confidence"] = round(float(d.get("owner_confidence") or 0.0), 4)
    cause = d.get("cause")
    item["cause"] = _cause_json(json.loads(cause) if isinstance(cause, str) else cause)
    for k, v in list(item.items()):  # stored extras (created_at, snooze_until...) as ISO too; no bytes
        if k not in ("start", "end") and hasattr(v, "isoformat"):
            item[k] = _iso(v)
    return item


def _bundle_spikes(root: Path, since: float | None, workers: int | None, quiet: bool,
                   owner_key: list[str] | None) -> list[dict]:
    """Scan the bundle for owners (progress on stderr), then the one-shot spike detection over it."""
    from config.flags import enabled_rules
    from engine.scan import scan_bundle
    from engine.spikes import SpikeConfig
    from engine.watch import bundle_spikes, owners_from_scan

    settings = get_settings()
    workers = workers or settings.workers
    with _bundle_errors(root), stage_progress(not quiet) as cb:
        result = scan_bundle(root, rules=_rules(owner_key), workers=workers, progress=cb,
                             threshold=settings.confidence_threshold)
        cb("spikes", 0.0)
        found = bundle_spikes(root, owners_from_scan(result), since=since, workers=workers,
                              config=SpikeConfig(rules=enabled_rules()))
        cb("spikes", 1.0)
    _say_issues(result.bundle.issues)
    return [_spike_item(r.to_json()) for r in found]


def _stored_spike_dict(row) -> dict:  # type: ignore[no-untyped-def]
    """A stored spike row (ORM object or mapping) as a plain dict of its columns."""
    if isinstance(row, dict):
        return dict(row)
    if hasattr(row, "to_json"):
        return dict(row.to_json())
    from sqlalchemy import inspect as sa_inspect

    d = {a.key: getattr(row, a.key) for a in sa_inspect(row).mapper.column_attrs
         if a.key not in ("series", "chat_refs", "nonce", "account_id")}
    if isinstance(d.get("score"), float):
        d["score"] = round(d["score"], 2)  # as the engine's own to_json
    return d


async def _account_spikes(name: str, since: float | None) -> tuple[str, list[dict]]:
    """The stored spikes of an account: the open (or snoozed) ones, or with ``since`` every one, whatever
    people decided, that ends after it."""
    from jobs.control import resolve_account
    from storage import watch_repo

    db = await _database()
    try:
        async with db.session() as s:
            account = await resolve_account(s, name)
            if not await watch_repo.seen_files(s, account.id) and not await watch_repo.watch_state(s, account.id):
                raise ValueError(f"no watch has run for account {account.name} yet; run `costdna watch --once`")
            if since is None:
                rows = await watch_repo.open_spikes(s, account.id, limit=100_000)
            else:
                rows = await watch_repo.spikes_for(s, account.id, since, limit=100_000)
            return account.name, [_stored_spike_dict(r) for r in rows]
    finally:
        await db.close()


@app.command()
def spikes(
    bundle: Annotated[Path | None, typer.Option(help="bundle directory: scan it and report its spikes (stores nothing)")] = None,
    account: Annotated[str | None, typer.Option(help="a watched account: its stored spikes")] = None,
    since: Annotated[str | None, typer.Option(metavar="ISO", help="only spikes that end after this time "
                                              "(ISO 8601; UTC unless it names a zone)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object {\"spikes\": [...]}")] = False,
    workers: Annotated[int | None, typer.Option(help="with --bundle: parser processes (default: all cores)")] = None,
    owner_key: Annotated[list[str] | None, typer.Option(
        "--owner-key", metavar="KEY", help="with --bundle: a tag key that names the owning team; repeatable")] = None,
) -> None:
    """Cost spikes (amortized $): of a bundle (--bundle DIR) or stored by the watch of an account (--account A).

    --account lists the open spikes, or with --since every spike that ended after that time.
    """
    if (bundle is None) == (account is None):
        fail("give exactly one of --bundle DIR or --account NAME")
    since_t = _parse_since(since)
    if bundle is not None:
        if not bundle.is_dir():
            fail(f"bundle directory {bundle} does not exist" if not bundle.exists() else
                 f"{bundle} is not a directory; a bundle is a directory of export files")
        items = _bundle_spikes(bundle, since_t, workers, as_json, owner_key)
        head: dict = {"source": "bundle", "bundle": str(bundle)}
    else:
        name, rows = _run(_account_spikes(account, since_t))
        items = [_spike_item(r) for r in rows]
        head = {"source": "account", "account": name}
    if since_t is not None:  # "ending after": a spike still running ends after any past time
        items = [i for i in items if _epoch(i["end"]) > since_t]
    items.sort(key=lambda i: (i["start"], i["resource_id"]))
    if as_json:
        out.print_json(json.dumps({"spikes": items, "count": len(items), **head, "since": _iso(since_t)}))
    else:
        terminal.print_spikes(out, items, head, _iso(since_t))


async def _digest(name: str) -> tuple[str, dict]:
    from jobs.control import resolve_account
    from jobs.digest import digest_data

    db = await _database()
    try:
        async with db.session() as s:
            account = await resolve_account(s, name)
            return account.name, await digest_data(s, account, time.time())
    finally:
        await db.close()


@app.command()
def digest(
    account: Annotated[str, typer.Option(help="the account to digest")],
    as_json: Annotated[bool, typer.Option("--json", help="print the digest as one JSON object")] = False,
) -> None:
    """The daily digest of an account, now: yesterday vs the 7-day average, movers, untagged burn-down,
    open spikes, drift since the previous scan, the labelling and approval queues."""
    name, data = _run(_digest(account))
    if as_json:
        out.print_json(json.dumps({"account": name, **data}, default=str))
    else:
        terminal.print_digest(out, name, data)


@app.command()
def discover(
    account: Annotated[str | None, typer.Option(help="the account to read (default: the only account)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object {\"teams\": [...], ...}")] = False,
) -> None:
    """Propose the account's teams, for a person to confirm: from owner tag values, IAM role names
    (<team>-ci, <team>-api, svc-<team>-…) and IAM Identity Center permission sets, each with its evidence.
    Reads the account's bundle (a live AWS account's collected mirror); writes nothing."""
    from handlers.discover import bundle_dir_of, discover_account, ignored_lines
    from jobs.accounts import ScanInputError

    async def go():  # type: ignore[no-untyped-def]
        db = await _database()
        try:
            return await _stored_account(db, account)
        finally:
            await db.close()

    acct = _run(go())
    settings = get_settings()
    try:
        root = bundle_dir_of(acct, settings)
    except ScanInputError as e:
        fail(str(e))
    with _bundle_errors(root):
        found = discover_account(acct, settings, _rules())
    if as_json:
        out.print_json(json.dumps({"account": acct.name, **found.as_dict()}))
        return
    if not found.teams:
        out.print(f"no team proposed for {acct.name}: no owner tags among {found.resources} resources, no role "
                  "named <team>-ci / <team>-api / svc-<team>-…, no permission set named after a team")
        return
    out.print(f"[bold]{len(found.teams)} team(s) proposed for {acct.name}[/] "
              f"({found.tagged_resources} of {found.resources} resources carry an owner tag):")
    for t in found.teams:
        out.print(f"• [bold]{t.team}[/] [dim]{t.confidence}[/]")
        tags = [e for e in t.evidence if e.kind == "tag"]
        if tags:
            more = f", +{len(tags) - 6} more" if len(tags) > 6 else ""
            out.print(f"    tags: {t.tagged_resources} resource(s): "
                      + ", ".join(f"{e.value} ×{e.count}" for e in tags[:6]) + more)
        for e in [e for e in t.evidence if e.kind != "tag"]:
            out.print(f"    {e.kind}: {e.detail}")
    if found.ignored:
        out.print("[dim]not teams: " + "; ".join(ignored_lines(found.ignored)) + "[/]")
    out.print("[dim]confirm a team by tagging its resources (`/costdna label`, `/costdna apply`); merge or rename "
              "proposals with `rewrites:` in the tag rules file (COSTDNA_TAG_RULES)[/]")


# -- ask: a question about an account's stored results ---------------------------------------------


def bundle_fingerprint(root: Path) -> str:
    """What ``ask --bundle`` compares to tell whether a stored scan read these very files: a SHA-256 over
    the relative path, size and mtime (ns) of every file under ``root``."""
    import hashlib
    import os

    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for f in filenames:
            p = Path(dirpath) / f
            try:
                st = p.stat()
            except OSError:  # vanished or a broken link: the scan will not read it either
                continue
            entries.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    h = hashlib.sha256()
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


ASK_FINGERPRINT = "bundle_fingerprint"  # account.options keys: the files' fingerprint when scan #... read them
ASK_FINGERPRINT_SCAN = "bundle_fingerprint_scan"


def _parse_now(text: str | None):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    if text is None:
        return None
    raw = text.strip()
    try:
        dt = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw)
    except ValueError:
        fail(f"--now {text!r} is not an ISO 8601 time: give e.g. 2026-11-05, 2026-11-05T14:00 or "
             "2026-11-05T14:00:00Z (UTC unless it names a zone)")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


async def _stored_account(db, name: str | None):  # type: ignore[no-untyped-def]
    """``--account NAME`` (``NotFound`` lists the accounts), or the only account there is."""
    from storage import repo

    async with db.session() as s:
        if name:
            return await repo.get_account(s, name)
        accounts = await repo.list_accounts(s)
    if not accounts:
        fail("no accounts yet: add one with `costdna accounts add NAME --bundle DIR` and scan it, or ask about "
             "a bundle directly with `costdna ask --bundle DIR \"...\"`")
    if len(accounts) > 1:
        fail(f"several accounts: give --account NAME (one of {', '.join(a.name for a in accounts)})")
    return accounts[0]


async def _bundle_account(ctx: dict, root: Path, show: bool, bars: dict):  # type: ignore[no-untyped-def]
    """The stored account of bundle directory ``root`` and a succeeded scan of its current files: reused
    when the files are unchanged since a scan read them, else scanned now (in-process, as `costdna scan
    --account`, its progress bar put in ``bars["scan"]``). A new account is named ``bundle:<directory
    name>``. Returns (account, scan, reused)."""
    from rich.markup import escape

    from jobs.control import request_scan
    from jobs.queue import open_queue
    from storage import repo

    settings, db = ctx["settings"], ctx["db"]
    fp = bundle_fingerprint(root)
    async with db.session() as s:
        mine = [a for a in await repo.list_accounts(s) if a.kind == "bundle" and a.bundle_path
                and Path(a.bundle_path).expanduser().resolve() == root]
        for a in mine:
            opts = a.options or {}
            last = await repo.latest_predictions_scan(s, a.id)
            if opts.get(ASK_FINGERPRINT) == fp and last is not None and last.id >= int(opts.get(ASK_FINGERPRINT_SCAN) or 0):
                console.print(f"[dim]{escape(str(root))}: files unchanged since scan #{last.id} of account "
                              f"{escape(a.name)}; reusing it[/]")
                return a, last, True
        base = "bundle:" + (root.name or "root")[:80]
        if mine:
            acct = sorted(mine, key=lambda a: (a.name != base, a.name))[0]
        else:
            taken = {a.name for a in await repo.list_accounts(s)}
            name = next(n for n in (base, *(f"{base}-{i}" for i in range(2, 10_000))) if n not in taken)
            acct = await repo.add_account(s, name, "bundle", bundle_path=str(root), actor="cli")
            console.print(f"[dim]added bundle account {escape(name)} for {escape(str(root))}[/]")
    console.print(f"[dim]scanning {escape(str(root))} as account {escape(acct.name)}[/]")
    with stage_progress(show) as bar:
        bars["scan"] = bar
        queue = await open_queue(settings.model_copy(update={"redis_url": None}), ctx)
        try:
            scan = await request_scan(db, queue, acct.name, requested_by="cli", in_process=True,
                                      stale_after_s=settings.job_timeout + 60)
            await queue.join()
        finally:
            await queue.close()
            bars.pop("scan", None)
    async with db.session() as s:
        scan = await repo.get_scan(s, scan.id)
        if scan.status != "succeeded":
            fail(f"scan #{scan.id} of {acct.name} failed: {scan.error or scan.status}")
        row = await repo.get_account(s, acct.id)
        row.options = {**(row.options or {}), ASK_FINGERPRINT: fp, ASK_FINGERPRINT_SCAN: scan.id}
    _say_issues(list((scan.summary or {}).get("issues") or []))
    return acct, scan, False


async def _ask(question: str, account: str | None, root: Path | None, threshold: float, now, show: bool):  # type: ignore[no-untyped-def]
    """(answer, account name, scan id): the account's stored results (a bundle's scanned first when needed)
    asked ``question`` through handlers.ask, offline or with the LLM as the settings say."""
    from handlers.ask import ask as ask_question
    from jobs.notify import Fanout, log_notifier
    from jobs.worker import job_context
    from storage import repo

    settings = get_settings()
    bars: dict = {}

    async def progress(kind: str, **p) -> None:  # type: ignore[no-untyped-def]
        if kind == "scan.progress" and "scan" in bars:
            bars["scan"]("scan", p["progress"] / 100)

    ctx = await job_context(settings, notify=Fanout(log_notifier, progress))
    db = ctx["db"]
    try:
        if root is not None:
            acct, scan, _reused = await _bundle_account(ctx, root, show, bars)
        else:
            acct = await _stored_account(db, account)
            async with db.session() as s:
                scan = await repo.latest_predictions_scan(s, acct.id)
            if scan is None:
                fail(f"account {acct.name} has no finished scan yet, so there is nothing to answer from: run "
                     f"`costdna scan --account {acct.name}` first")
        answer = await ask_question(db, question, account=acct.name, threshold=threshold, now=now, settings=settings)
        return answer, acct.name, scan.id
    finally:
        await db.close()


@app.command()
def ask(
    question: Annotated[list[str] | None, typer.Argument(metavar="QUESTION", help="the question, e.g. \"top 5 spenders "
                                                         "last month\" (quoted or not)")] = None,
    account: Annotated[str | None, typer.Option(help="a stored account (default: the only one)")] = None,
    bundle: Annotated[Path | None, typer.Option(help="a bundle directory: its stored scan when the files are "
                                                "unchanged, else scanned now and stored")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (answer, tools, citations, "
                                          "figures, ...)")] = False,
    now: Annotated[str | None, typer.Option(metavar="ISO", help="answer as of this time, for periods such as "
                                            "\"last week\" (ISO 8601; UTC unless it names a zone; default: now)")] = None,
    threshold: Annotated[float | None, typer.Option(help="owner confidence threshold (default: "
                                                    "COSTDNA_CONFIDENCE_THRESHOLD)")] = None,
) -> None:
    """Ask about an account's costs and owners: answered from its stored scan by read-only tools, citing
    the resource ids the answer rests on (offline, or with the LLM when OPENAI_API_KEY is set)."""
    from jobs.accounts import ScanInputError, check_bundle_dir

    text = " ".join(question or []).strip()
    if not text:
        fail("ask what? e.g. `costdna ask --account NAME \"top 5 spenders last month\"`")
    if account is not None and bundle is not None:
        fail("give at most one of --account NAME or --bundle DIR")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        fail(f"--threshold {threshold} is not between 0 and 1")
    at = _parse_now(now)
    root = None
    if bundle is not None:
        root = bundle.expanduser().resolve()
        try:
            check_bundle_dir(root)
        except ScanInputError as e:
            fail(str(e))
    limit = get_settings().confidence_threshold if threshold is None else threshold
    answer, name, scan_id = _run(_ask(text, account, root, limit, at, not as_json))
    if as_json:
        out.print_json(json.dumps({**answer.to_json(), "account": name, "scan_id": scan_id}))
        return
    from rich.text import Text

    from handlers.render_terminal import styled

    out.print(Text(answer.title, style="bold" if answer.ok else "bold yellow"))
    out.print(styled(answer.text))
    if answer.note:
        note = styled(answer.note)
        note.stylize("dim")
        out.print(note)
    if answer.citations:
        out.print(Text("sources: " + ", ".join(answer.citations), style="dim"))
    elif not answer.ok:
        out.print(Text("no resources cited: the stored results hold no evidence for this", style="dim"))


class _AlertPrinter:
    """A notifier that prints each alert the watch sends (and each storm it holds) to the terminal."""

    def __init__(self) -> None:
        self.db = None  # set once the job context exists: an alert names its spike, read back for the line

    async def __call__(self, kind: str, **p) -> None:  # type: ignore[no-untyped-def]
        if kind == "spike.alert":
            from storage import watch_repo

            item = None
            if self.db is not None:
                try:
                    async with self.db.session() as s:
                        item = _spike_item(_stored_spike_dict(await watch_repo.get_spike(s, int(p["spike_id"]))))
                except Exception:  # the line is printed anyway, without the figures
                    item = None
            terminal.print_alert(out, item, p.get("route") or {}, p["spike_id"])
        elif kind == "spike.storm":
            terminal.print_storm(out, p)
        elif kind == "digest.ready":
            out.print(f"digest of account #{p.get('account_id')} ready"
                      + (f" for {p['channel']}" if p.get("channel") else ""))


async def _watch_context(settings, printer: _AlertPrinter):  # type: ignore[no-untyped-def]
    """The job context of a watch run here: the database, and a notifier that prints alerts and, when Slack
    is configured, delivers them there (as `costdna worker` does)."""
    from bot.slack.notify import worker_notifier
    from jobs.notify import Fanout, log_notifier
    from jobs.worker import job_context

    ctx = await job_context(settings, notify=Fanout(log_notifier, printer), notifiers=[worker_notifier])
    printer.db = ctx["db"]
    return ctx


async def _watch_once() -> dict:
    from jobs.control import resolve_account
    from jobs.watch import watch as watch_task
    from storage import repo

    printer = _AlertPrinter()
    ctx = await _watch_context(get_settings(), printer)
    try:
        async with ctx["db"].session() as s:
            if not await repo.list_accounts(s):
                await resolve_account(s, None)  # the synthetic demo account, on first use (as `status`)
        return await watch_task(ctx)
    finally:
        await ctx["db"].close()


async def _watch_forever() -> None:
    """One watch now, then the hourly schedule (jobs.schedule, in this process) until Ctrl-C."""
    from jobs.schedule import Scheduler
    from jobs.watch import watch as watch_task

    printer = _AlertPrinter()
    ctx = await _watch_context(get_settings(), printer)
    try:
        t0 = time.perf_counter()
        terminal.print_watch_result(out, await watch_task(ctx), time.perf_counter() - t0)
        await Scheduler(ctx).run()
    finally:
        await ctx["db"].close()


def schedule_beside(app, settings) -> None:  # type: ignore[no-untyped-def]
    """Run the hourly schedule (watch at :05, digest check at :00) inside the web process, for `costdna
    serve` without REDIS_URL (with Redis, `costdna worker` processes run it as arq cron jobs).

    Started when the application starts, after its database; stopped (the running job cancelled if it does
    not finish in a few seconds) when it cleans up. Alerts and digests go to Slack when it is configured.
    """
    import asyncio
    import contextlib
    import logging

    from bot.slack.notify import notifier_for
    from bot.web import DB_KEY
    from jobs.notify import Fanout, log_notifier
    from jobs.schedule import Scheduler

    log = logging.getLogger("costdna.web")

    async def schedule(app):  # type: ignore[no-untyped-def]
        db = app[DB_KEY]
        notify = Fanout(log_notifier)
        slack = notifier_for(settings, db)
        if slack is not None:
            notify.add(slack)
        scheduler = Scheduler({"settings": settings, "db": db, "notify": notify})
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop), name="costdna-schedule")
        log.info("hourly schedule running in this process (watch at :05, digests at :00)")
        yield
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning("the scheduled job still running at shutdown was cancelled")

    app.cleanup_ctx.append(schedule)


@app.command()
def watch(
    once: Annotated[bool, typer.Option("--once", help="watch every account once, print the result and exit")] = False,
) -> None:
    """Watch for cost spikes: read only the export files not seen yet, score the new hours, alert the owners.

    --once runs one watch over every account here; without it the hourly schedule (watch at minute 5,
    digests at their hour) runs in this terminal until Ctrl-C. Alerts print here, and go to Slack when
    it is configured.
    """
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if once:
        t0 = time.perf_counter()
        result = _run(_watch_once())
        terminal.print_watch_result(out, result, time.perf_counter() - t0)
        return
    console.print("watching: one watch now, then every hour at minute 5 (digests at their hour); Ctrl-C stops")
    try:
        _run(_watch_forever())
    except KeyboardInterrupt:
        console.print("stopped")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()

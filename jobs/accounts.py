"""Where an account's data comes from: a generated synthetic org, a bundle directory, or live AWS.

A live AWS account is collected into its own mirror (``<data_dir>/accounts/<id>-<name>/bundle``,
``engine.collectors.aws``) every time its bundle is asked for, so scans and the watch read new files.

``account_bundle`` turns an account row into a bundle directory the engine can scan, or raises
``ScanInputError`` with a message a person can act on. Those errors are permanent: retrying a scan of
a directory that does not exist would only fail again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# What a bundle directory holds (see DESIGN.md); one of them is enough to scan.
BUNDLE_ENTRIES = ("cloudtrail", "cost", "resources.json", "iam.json", "network.json", "flowlogs", "deploys.jsonl",
                  "azure-activity", "gcp-audit")
SYNTHETIC_DEFAULTS = {"seed": 0, "teams": 6, "resources_per_team": 40, "days": 14, "events_per_resource_day": 20.0}


class ScanInputError(Exception):
    """The account's data cannot be read; the message says why and what to do."""


def synthetic_dir(account: Any, data_dir: Path) -> Path:
    """Each synthetic account has its own copy, so tag writes to it touch nothing else."""
    return data_dir / "accounts" / f"{account.id}-{account.name}"


def check_bundle_dir(path: Path) -> None:
    if not path.exists():
        raise ScanInputError(f"bundle directory {path} does not exist")
    if not path.is_dir():
        raise ScanInputError(f"{path} is not a directory; a bundle is a directory of export files")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ScanInputError(f"bundle directory {path} is not readable (permissions)")
    if not any((path / e).exists() for e in BUNDLE_ENTRIES):
        raise ScanInputError(f"no export files in {path}: expected at least one of {', '.join(BUNDLE_ENTRIES)}")


def aws_credentials_problem() -> str | None:
    """Why boto's default chain finds no credentials, or None when it finds some. The instance
    metadata service is not asked (no network probing from a CLI or a test)."""
    import botocore.session

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    try:
        creds = botocore.session.get_session().get_credentials()
    except Exception as e:  # a broken profile or config file
        return f"AWS credentials could not be loaded ({e})"
    if creds is None:
        return ("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for a "
                "principal that may assume the account's role")
    return None


class CollectUnavailable(ConnectionError):
    """A live collection failed for a reason worth another try (throttled past the retries, a 5xx, the
    network): a ``ConnectionError``, so the scan task retries it with backoff."""


def aws_bundle_dir(account: Any, data_dir: Path) -> Path:
    """A live AWS account's local mirror: the bundle its collections write and its scans read."""
    return synthetic_dir(account, data_dir) / "bundle"


async def collect_aws(account: Any, data_dir: Path, settings: Any = None, progress: Any = None) -> Path:
    """Collect a live AWS account into its mirror (only what changed since the last collection) and
    return the mirror. A denied call or a bad option raises ``ScanInputError`` naming the call and the
    IAM action; a transient failure raises ``CollectUnavailable``. On failure nothing is scanned: the
    inventory files are only replaced by a complete collection."""
    from engine.collectors.aws import collect
    from engine.collectors.aws_session import CollectError

    problem = aws_credentials_problem()
    if problem:
        raise ScanInputError(problem)
    if settings is None:
        from config.settings import get_settings

        settings = get_settings()
    bundle = aws_bundle_dir(account, data_dir)
    say = progress or (lambda stage, frac: None)
    try:
        await collect(account, bundle, settings, progress=lambda stage, frac: say("collect", frac))
    except CollectError as e:
        message = f"collecting AWS account {account.name!r}: {e}"
        if e.transient:
            raise CollectUnavailable(message) from e
        raise ScanInputError(message) from e
    return bundle


def _run_blocking(coro: Any) -> Any:
    """Run a coroutine to completion from sync code (the scan calls ``account_bundle`` in a thread)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called on a loop's thread: run beside it
        return pool.submit(asyncio.run, coro).result()


def account_bundle(account: Any, data_dir: Path, progress: Any = None, settings: Any = None) -> Path:
    """The bundle directory to scan for ``account`` (generating a synthetic one on first use; collecting
    a live AWS account into its mirror first, with ``settings``' endpoint, default the global settings)."""
    if account.kind == "synthetic":
        from engine.synth import generate

        root = synthetic_dir(account, data_dir)
        bundle = root / "bundle"
        if not (bundle / "resources.json").exists():
            opts = {**SYNTHETIC_DEFAULTS, **{k: v for k, v in (account.options or {}).items()
                                             if k in SYNTHETIC_DEFAULTS}}
            # Generated beside and renamed into place whole: generate() writes resources.json first,
            # so a worker killed half-way must not leave a bundle the retry would take as complete.
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".generating-"))
            try:
                generate(tmp, workers=1, progress=progress, **opts)
                if not (bundle / "resources.json").exists():  # else another job finished first: keep it
                    if bundle.exists():
                        shutil.rmtree(bundle)
                    (tmp / "truth.csv").replace(root / "truth.csv")
                    (tmp / "bundle").rename(bundle)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return bundle
    if account.kind == "bundle":
        path = Path(account.bundle_path or "").expanduser()
        check_bundle_dir(path)
        return path
    if account.kind == "aws":
        return _run_blocking(collect_aws(account, data_dir, settings, progress=progress))
    raise ScanInputError(f"account {account.name!r} has unknown kind {account.kind!r}")

"""Where an account's data comes from: a generated synthetic org, a bundle directory, or live AWS.

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
BUNDLE_ENTRIES = ("cloudtrail", "cost", "resources.json", "iam.json", "network.json", "flowlogs", "deploys.jsonl")
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


def account_bundle(account: Any, data_dir: Path, progress: Any = None) -> Path:
    """The bundle directory to scan for ``account`` (generating a synthetic one on first use)."""
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
        problem = aws_credentials_problem()
        if problem:
            raise ScanInputError(problem)
        raise ScanInputError(
            "live AWS collection is not available in this version: export a bundle (CloudTrail from S3, "
            "CUR 2.0, `aws resourcegroupstaggingapi get-resources`, ...) and add it with "
            "`costdna accounts add NAME --bundle DIR`")
    raise ScanInputError(f"account {account.name!r} has unknown kind {account.kind!r}")

"""Collect a live AWS account into a bundle directory (its local mirror), read-only.

``collect(account, bundle_dir, settings)`` writes exactly what a bundle holds (DESIGN.md):

- ``resources.json``: ``resourcegroupstaggingapi get_resources`` of every region, pages merged
  (``{"ResourceTagMappingList": [...]}``, one entry per ARN);
- ``iam.json``: ``iam get_account_authorization_details``, pages merged;
- ``network.json``: ``ec2 describe_network_interfaces`` of every region (``{"NetworkInterfaces": [...]}``);
- ``cloudtrail/``, ``cost/``, ``flowlogs/``: the objects under the account's ``cloudtrail``, ``cur`` and
  ``flowlogs`` S3 locations (``Account.options``), keys kept as they are below the prefix, mirrored
  incrementally (``s3mirror``);
- with no CloudTrail bucket (or ``options["lookup_events"]``), management events from
  ``cloudtrail:LookupEvents`` written as CloudTrail log files (``engine.collectors.lookup``).

The inventory files are written (each atomically) only when every call succeeded; a failed call raises
``CollectError`` naming the call and, when denied, the IAM action. The scan and the watch then read the
directory unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.collectors.aws_session import AwsSession, CollectError, collect_error, session_for
from engine.collectors.s3mirror import (
    DEFAULT_CONCURRENCY,
    TMP_DIR,
    MirrorReport,
    load_state,
    mirror,
    parse_s3_uri,
    save_state,
)

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
S3_SOURCES = (("cloudtrail", "cloudtrail"), ("cur", "cost"), ("flowlogs", "flowlogs"))  # option -> bundle dir
RESOURCES_PAGE = 100  # GetResources ResourcesPerPage (its maximum)
IAM_PAGE = 1000  # GetAccountAuthorizationDetails MaxItems
ENI_PAGE = 1000  # DescribeNetworkInterfaces MaxResults
LOOKUP_DAYS = 14  # LookupEvents' first read goes this far back (it keeps 90 days)


@dataclass
class CollectReport:
    """What one collection read and wrote."""

    bundle: str
    account_id: str = ""
    regions: list[str] = field(default_factory=list)
    resources: int = 0
    principals: int = 0
    interfaces: int = 0
    sources: dict[str, MirrorReport] = field(default_factory=dict)
    lookup: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def downloaded(self) -> int:
        return sum(r.downloaded for r in self.sources.values())

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "sources"}
        d["sources"] = {k: v.as_dict() for k, v in self.sources.items()}
        d["downloaded"] = self.downloaded
        return d


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def write_json(path: Path, doc: Any) -> None:
    """``doc`` as JSON at ``path``, through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- inventory ---------------------------------------------------------------------------------------


async def regions_of(session: AwsSession, account: Any) -> list[str]:
    """The account's configured regions, else the regions enabled for it (``ec2:DescribeRegions``)."""
    given = [r for r in (getattr(account, "regions", None) or []) if r]
    if given:
        return list(dict.fromkeys(given))
    try:
        async with session.client("ec2") as ec2:
            resp = await ec2.describe_regions()
    except Exception as e:
        raise collect_error(e, "ec2", "DescribeRegions", session.region) from e
    return sorted(r["RegionName"] for r in resp.get("Regions", []))


async def _pages(client: Any, operation: str, page_size: int, service: str, action: str, target: str
                 ) -> AsyncIterator[dict[str, Any]]:
    """Every page of a listing, through botocore's own paginator (its tokens and limit key); a failure
    names the call and the IAM action, as every collection error does."""
    try:
        async for page in client.get_paginator(operation).paginate(PaginationConfig={"PageSize": page_size}):
            yield page
    except Exception as e:
        raise collect_error(e, service, action, target) from e


async def get_resources(session: AwsSession, region: str) -> list[dict[str, Any]]:
    async with session.client("resourcegroupstaggingapi", region) as tagging:
        return [m async for page in _pages(tagging, "get_resources", RESOURCES_PAGE, "resourcegroupstaggingapi",
                                           "GetResources", region)
                for m in page.get("ResourceTagMappingList") or []]


IAM_LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")


async def get_iam(session: AwsSession) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {k: [] for k in IAM_LISTS}
    async with session.client("iam") as iam:
        async for page in _pages(iam, "get_account_authorization_details", IAM_PAGE, "iam",
                                 "GetAccountAuthorizationDetails", "the account"):
            for k in IAM_LISTS:
                merged[k].extend(page.get(k) or [])
    return merged


async def get_interfaces(session: AwsSession, region: str) -> list[dict[str, Any]]:
    async with session.client("ec2", region) as ec2:
        return [n async for page in _pages(ec2, "describe_network_interfaces", ENI_PAGE, "ec2",
                                           "DescribeNetworkInterfaces", region)
                for n in page.get("NetworkInterfaces") or []]


# -- the collection ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _locked(bundle: Path):  # type: ignore[no-untyped-def]
    """One collection of a bundle at a time (a scan and the watch may both ask), across processes."""
    bundle.mkdir(parents=True, exist_ok=True)
    f = open(bundle / ".collect.lock", "a+")  # noqa: SIM115 - held for the whole block
    try:
        await asyncio.to_thread(fcntl.flock, f.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


async def _all(coros: Any) -> list[Any]:
    """``gather`` that cancels the others when one fails (nothing keeps writing after a failure)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _options(account: Any) -> dict[str, Any]:
    opts = getattr(account, "options", None) or {}
    return dict(opts) if isinstance(opts, dict) else {}


async def collect(account: Any, bundle_dir: Path | str, settings: Any = None, progress: Progress | None = None, *,
                  session: AwsSession | None = None, concurrency: int = DEFAULT_CONCURRENCY) -> CollectReport:
    """Collect ``account`` into ``bundle_dir``; see the module docstring. Raises ``CollectError``."""
    bundle = Path(bundle_dir)
    say = progress or (lambda stage, frac: None)
    t0 = time.perf_counter()
    report = CollectReport(bundle=str(bundle))
    opts = _options(account)
    locations = {}
    for option, _sub in S3_SOURCES:
        if opts.get(option):
            try:
                locations[option] = parse_s3_uri(str(opts[option]))
            except ValueError as e:
                raise CollectError(f"account option {option}: {e}") from e
    session = session or await session_for(account, settings)
    async with _locked(bundle):
        say("collect", 0.0)
        report.account_id = await session.account_id()
        regions = await regions_of(session, account)
        report.regions = regions
        say("collect", 0.05)

        # Inventory: every region at once, the whole of it before anything is written.
        per_region = await _all(get_resources(session, r) for r in regions)
        iam = await get_iam(session)
        enis = await _all(get_interfaces(session, r) for r in regions)
        say("collect", 0.2)
        resources: dict[str, dict[str, Any]] = {}
        for rows in per_region:
            for m in rows:
                arn = m.get("ResourceARN")
                if arn and arn not in resources:  # global resources come back from several regions
                    resources[arn] = m
        interfaces: dict[str, dict[str, Any]] = {}
        for rows in enis:
            for eni in rows:
                interfaces.setdefault(eni.get("NetworkInterfaceId") or str(len(interfaces)), eni)

        # S3 mirrors: each file renamed into place when whole; the state saved as files land.
        state = load_state(bundle)
        semaphore = asyncio.Semaphore(max(1, concurrency))  # shared: at most `concurrency` downloads in all

        def save() -> None:
            save_state(bundle, state)

        async def one(option: str, sub: str) -> None:
            report.sources[option] = await mirror(session, option, locations[option], bundle, sub, state,
                                                  semaphore=semaphore, save=save)
            report.warnings.extend(report.sources[option].warnings)
            say("collect", 0.2 + 0.6 * len(report.sources) / max(1, len(locations)))

        try:
            await _all(one(option, sub) for option, sub in S3_SOURCES if option in locations)
            lookup_on = opts.get("lookup_events")
            if lookup_on is None:
                lookup_on = "cloudtrail" not in locations
            if lookup_on:
                report.lookup = await _lookup(session, regions, bundle, state, report)
        finally:
            state["last_attempt"] = datetime.now(UTC).isoformat()
            save()

        write_json(bundle / "resources.json", {"ResourceTagMappingList": list(resources.values())})
        write_json(bundle / "iam.json", iam)
        write_json(bundle / "network.json", {"NetworkInterfaces": list(interfaces.values())})
        state["last_collect"] = state["last_attempt"]
        save()
        _clean_tmp(bundle)
    report.resources, report.interfaces = len(resources), len(interfaces)
    report.principals = len(iam["UserDetailList"]) + len(iam["RoleDetailList"])
    report.seconds = round(time.perf_counter() - t0, 3)
    say("collect", 1.0)
    log.info("collected %s into %s: %d resources, %d principals, %d interfaces, %d files downloaded in %.1fs",
             report.account_id, bundle, report.resources, report.principals, report.interfaces,
             report.downloaded, report.seconds)
    return report


async def _lookup(session: AwsSession, regions: list[str], bundle: Path, state: dict[str, Any],
                  report: CollectReport) -> dict[str, Any]:
    """Management events from ``cloudtrail:LookupEvents`` (``engine.collectors.lookup``), every region at
    once (its throttling is per account and region), incremental through the shared state file."""
    try:
        from engine.collectors import lookup
    except ImportError:  # pragma: no cover - shipped together
        report.warnings.append("LookupEvents collection is not available in this build")
        return {}
    end = datetime.now(UTC)
    start = end - timedelta(days=LOOKUP_DAYS)

    async def one(region: str) -> tuple[str, dict[str, Any]]:
        try:
            result = await lookup.lookup_events(session, region, start, end, bundle, state=state)
        except lookup.LookupThrottled as e:  # what it fetched stays; the next collection resumes
            report.warnings.append(f"cloudtrail:LookupEvents in {region} stayed throttled: {e}")
            return region, e.report.as_dict()
        except Exception as e:
            raise collect_error(e, "cloudtrail", "LookupEvents", region) from e
        return region, result.as_dict()

    return dict(await _all(one(r) for r in regions))


def _clean_tmp(bundle: Path) -> None:
    tmp = bundle / TMP_DIR
    if tmp.is_dir():
        for p in tmp.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            tmp.rmdir()

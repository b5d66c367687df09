"""CloudTrail management events through ``LookupEvents``, written as CloudTrail log files.

When an account gives no trail bucket, ``LookupEvents`` is the fallback: it serves the last 90 days of
management events of one region, newest first, at most 50 per page (``NextToken`` paging), and is
throttled hard (about 2 calls per second per account and region). :func:`lookup_events` turns its pages
into files the bundle reader already knows, so the scan and the watch need nothing new::

    <out_dir>/cloudtrail/lookup/<region>/YYYY/MM/DD/<first-event-time>-<n>.json.gz
        {"Records": [json.loads(event["CloudTrailEvent"]), ...]}

``<first-event-time>`` is the time of the page's first (newest) event as ``20230710T114512Z``, its day
the folder's; ``<n>`` is a per-region sequence number kept in the state, so no run ever overwrites
another run's file.

- **Streamed**: one page is in memory at a time; each is written to a temporary file in its folder and
  renamed into place, so a crash leaves no half file.
- **Incremental**: the state (``state["lookup_events"][region]``) keeps ``newest``, the newest event time
  fetched with everything after it up to the run's end also fetched. The next run asks from
  ``newest - overlap`` (events reach LookupEvents minutes late; the overlap picks up the stragglers).
  Events fetched twice are harmless: the bundle reader keeps one record per ``eventID``.
- **Bounded**: at most ``max_pages`` pages per run. A run that stops early keeps what it did not reach
  (the older part of its window) as a ``backlog`` window in the state; later runs work the backlog off
  after the new events, so nothing in the asked range is skipped. The new events (overlap included)
  come first, so ``max_pages`` must leave room beyond the overlap's pages for a backlog to shrink.
- **Throttling**: the client should use botocore's adaptive retries (:func:`client_config`); a
  ``ThrottlingException`` (or any HTTP 429) that botocore gives up on is retried here with capped
  exponential backoff and full jitter, ``max_retries`` times, before :class:`LookupThrottled` is raised
  (files and state written until then stay valid: the next run resumes).

Any other error (``AccessDenied``...) propagates unchanged, after the state of the pages already written
was saved.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

SERVICE = "cloudtrail"
STATE_KEY = "lookup_events"
PAGE_SIZE_MAX = 50  # LookupEvents' MaxResults limit
DEFAULT_OVERLAP = timedelta(minutes=15)
THROTTLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown",
})

ClientFactory = Callable[[], Any]  # () -> async context manager yielding a cloudtrail client


def client_config(max_attempts: int = 10) -> Config:
    """The botocore config a LookupEvents client should have: adaptive retries (client-side rate limiting
    on top of backoff for throttling)."""
    return Config(retries={"mode": "adaptive", "max_attempts": max_attempts})


class LookupThrottled(RuntimeError):
    """LookupEvents stayed throttled through every retry; ``report`` says what the run did until then."""

    def __init__(self, message: str, report: LookupReport):
        super().__init__(message)
        self.report = report


@dataclass
class LookupReport:
    region: str
    start: datetime  # the window asked of LookupEvents this run (after the incremental cut)
    end: datetime
    pages: int = 0  # LookupEvents pages fetched
    events: int = 0  # records written
    bad_events: int = 0  # events whose CloudTrailEvent was not a JSON object (left out)
    files: list[Path] = field(default_factory=list)
    throttled: int = 0  # throttling errors absorbed by this module's own backoff
    newest: datetime | None = None  # the state's high-water mark after the run
    backlog: list[tuple[datetime, datetime]] = field(default_factory=list)  # windows left for later runs
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)  # windows asked this run

    @property
    def complete(self) -> bool:
        """Everything asked for is fetched (no backlog left)."""
        return not self.backlog

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region, "start": _iso(self.start), "end": _iso(self.end), "pages": self.pages,
            "events": self.events, "bad_events": self.bad_events, "files": len(self.files),
            "throttled": self.throttled, "newest": _iso(self.newest) if self.newest else None,
            "backlog": [[_iso(a), _iso(b)] for a, b in self.backlog], "complete": self.complete,
        }


# ---------------------------------------------------------------------------------------------
# helpers


def _utc(t: datetime | float | int | str) -> datetime:
    if isinstance(t, datetime):
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    if isinstance(t, (int, float)):
        return datetime.fromtimestamp(float(t), UTC)
    if isinstance(t, str):
        raw = t.strip()
        return _utc(datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "Zz" else raw))
    raise TypeError(f"not a time: {t!r}")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_throttle(e: ClientError) -> bool:
    resp = e.response if isinstance(e.response, dict) else {}
    code = str((resp.get("Error") or {}).get("Code") or "")
    status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code in THROTTLE_CODES or status == 429 or code == "429"


def _open_client(source: Any, region: str) -> Any:
    """An async context manager yielding a cloudtrail client, from whatever the caller gave."""
    client = getattr(source, "client", None)
    if client is None:
        if callable(source):  # a factory: () -> async context manager
            return source()
        raise TypeError("expected a client factory (callable), an AwsSession or an aioboto3.Session")
    try:
        import aioboto3
    except ImportError:  # pragma: no cover - aioboto3 is a dependency
        aioboto3 = None
    if aioboto3 is not None and isinstance(source, aioboto3.Session):
        return source.client(SERVICE, region_name=region, config=client_config())
    return client(SERVICE, region)  # engine.collectors.aws_session.AwsSession.client(service, region)


def _region_state(state: MutableMapping[str, Any], region: str) -> MutableMapping[str, Any]:
    return state.setdefault(STATE_KEY, {}).setdefault(region, {})


def _load_state_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ValueError(f"state file {path} is unreadable ({e}); delete it to collect from scratch") from e
    if not isinstance(data, dict):
        raise ValueError(f"state file {path} does not hold a JSON object; delete it to collect from scratch")
    return data


def _save_state_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_page(out_root: Path, region: str, first: datetime, seq: int, records: list[dict]) -> Path:
    """``{"Records": [...]}`` gzipped into its day folder, through a temporary file renamed into place."""
    folder = out_root / "cloudtrail" / "lookup" / region / f"{first:%Y}" / f"{first:%m}" / f"{first:%d}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{first:%Y%m%dT%H%M%SZ}-{seq}.json.gz"
    while path.exists():  # a state file lost or copied: never overwrite another run's page
        seq += 1
        path = folder / f"{first:%Y%m%dT%H%M%SZ}-{seq}.json.gz"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".page-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(json.dumps({"Records": records}, separators=(",", ":")).encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _event_time(e: dict, rec: dict) -> datetime | None:
    t = e.get("EventTime")
    if t is None:
        t = rec.get("eventTime")
    try:
        return _utc(t) if t is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


# ---------------------------------------------------------------------------------------------
# the collector


async def lookup_events(
    client_factory_or_session: Any,
    region: str,
    start: datetime | float | str,
    end: datetime | float | str | None,
    out_dir: Path | str,
    *,
    state: MutableMapping[str, Any] | Path | str | None = None,
    page_size: int = PAGE_SIZE_MAX,
    max_pages: int | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    max_retries: int = 8,
    backoff_base: float = 1.0,
    backoff_cap: float = 30.0,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> LookupReport:
    """Fetch one region's management events in ``[start, end]`` into CloudTrail log files under ``out_dir``.

    ``client_factory_or_session`` is one of:

    - a callable taking no arguments and returning an async context manager that yields a cloudtrail
      client, e.g. ``lambda: session.client("cloudtrail", region_name=region, endpoint_url=url,
      config=client_config())`` (give it botocore's adaptive retries: :func:`client_config`);
    - an object with ``client(service, region)`` returning such a context manager
      (``engine.collectors.aws_session.AwsSession``);
    - an ``aioboto3.Session`` (the client gets :func:`client_config`).

    ``out_dir`` is the bundle directory: pages go to ``out_dir/cloudtrail/lookup/<region>/...``.
    ``end`` None means now. ``state`` is a mapping updated in place (under ``state["lookup_events"][region]``:
    ``newest``, ``backlog``, ``seq``) or the path of a JSON state file read and rewritten atomically;
    None collects the whole window with no memory of it. ``page_size`` is MaxResults (1-50);
    ``max_pages`` bounds the LookupEvents calls of this run (None: no bound). ``sleep`` and the backoff
    numbers exist for tests.
    """
    if not 1 <= page_size <= PAGE_SIZE_MAX:
        raise ValueError(f"page_size must be 1-{PAGE_SIZE_MAX}, got {page_size}")
    if max_pages is not None and max_pages < 1:
        raise ValueError(f"max_pages must be at least 1, got {max_pages}")
    out_root = Path(out_dir)
    state_path: Path | None = None
    if isinstance(state, (str, Path)):
        state_path = Path(state)
        whole: MutableMapping[str, Any] = _load_state_file(state_path)
    else:
        whole = state if state is not None else {}
    rs = _region_state(whole, region)

    start_t = _utc(start)
    end_t = _utc(end) if end is not None else datetime.now(UTC)
    if end_t < start_t:
        raise ValueError(f"end {_iso(end_t)} is before start {_iso(start_t)}")
    newest = _utc(rs["newest"]) if rs.get("newest") else None
    fresh_start = max(start_t, newest - overlap) if newest is not None else start_t
    backlog = [(_utc(a), _utc(b)) for a, b in rs.get("backlog", [])]
    # New events first (their window may be cut by max_pages too), then the older windows left before.
    has_fresh = fresh_start <= end_t
    windows = [(fresh_start, end_t)] if has_fresh else []
    windows += [w for w in backlog if w[0] <= w[1]]
    report = LookupReport(region=region, start=fresh_start, end=end_t, windows=list(windows))
    seq = int(rs.get("seq", 0))
    high = newest  # the new high-water mark
    done = 0  # windows finished
    oldest: datetime | None = None  # the oldest event time seen in the window in progress

    def remaining() -> list[tuple[datetime, datetime]]:
        """The windows still to fetch, the one in progress cut at the oldest event it reached."""
        out: list[tuple[datetime, datetime]] = []
        for i in range(done, len(windows)):
            w_start, w_end = windows[i]
            if i == done and oldest is not None:
                # EndTime is inclusive: the events of the oldest second reached are asked again, not lost.
                out.append((w_start, min(w_end, oldest)))
            elif not (i == 0 and has_fresh):  # an untouched fresh window: the next run's asks it again
                out.append((w_start, w_end))
        return out

    def save() -> None:
        left = remaining()
        rs["seq"] = seq
        rs["newest"] = _iso(high) if high is not None else None
        rs["backlog"] = [[_iso(a), _iso(b)] for a, b in left]
        report.newest, report.backlog = high, left
        if state_path is not None:
            _save_state_file(state_path, dict(whole))

    async def call(client: Any, params: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return await client.lookup_events(**params)
            except ClientError as e:
                if not _is_throttle(e):
                    raise
                attempt += 1
                report.throttled += 1
                if attempt > max_retries:
                    raise LookupThrottled(
                        f"LookupEvents in {region} still throttled after {max_retries} retries: "
                        f"{e.response.get('Error', {}).get('Message') or e}", report) from e
                await sleep(random.uniform(0, min(backoff_cap, backoff_base * 2 ** (attempt - 1))))

    try:
        async with _open_client(client_factory_or_session, region) as client:
            while done < len(windows):
                if max_pages is not None and report.pages >= max_pages:
                    break
                w_start, w_end = windows[done]
                token: str | None = None
                while True:
                    params: dict[str, Any] = {"StartTime": w_start, "EndTime": w_end, "MaxResults": page_size}
                    if token:
                        params["NextToken"] = token
                    page = await call(client, params)
                    report.pages += 1
                    records: list[dict] = []
                    first: datetime | None = None
                    last: datetime | None = None
                    for ev in page.get("Events") or ():
                        try:
                            rec = json.loads(ev["CloudTrailEvent"])
                        except (KeyError, TypeError, ValueError):
                            report.bad_events += 1
                            continue
                        if not isinstance(rec, dict):
                            report.bad_events += 1
                            continue
                        t = _event_time(ev, rec)
                        if t is not None:
                            first = t if first is None or t > first else first
                            last = t if last is None or t < last else last
                        records.append(rec)
                    if records:
                        seq += 1
                        report.files.append(_write_page(out_root, region, first or w_end, seq, records))
                        report.events += len(records)
                        if last is not None and (oldest is None or last < oldest):
                            oldest = last
                        if done == 0 and has_fresh and first is not None and (high is None or first > high):
                            high = first  # only once the page is on disk
                    del records
                    token = page.get("NextToken") or None
                    if not token:
                        done += 1
                        oldest = None
                        break
                    if max_pages is not None and report.pages >= max_pages:
                        break
    finally:
        # On success, a max_pages cut or any error alike: the pages written are whole files; remember
        # them, and the part of the range not reached yet.
        save()
    return report

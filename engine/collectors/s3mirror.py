"""Mirror export files from S3 into a bundle directory, incrementally.

``mirror(...)`` lists ``s3://bucket/prefix`` and downloads the objects a source keeps (CloudTrail log
files, CUR 2.0 / FOCUS data files, VPC flow logs) to ``<dest>/<key relative to the prefix>``. The state
(``<bundle>/.collect-state.json``) records each mirrored key's ETag and size, so the next run downloads
only new or changed keys. A download streams to a temporary file under ``<bundle>/.collect-tmp`` and is
renamed into place only when complete (a reader never sees half a file); at most ``concurrency``
downloads run at once.

Billing exports are manifest-aware: CUR 2.0 and FOCUS data exports write one folder per
``BILLING_PERIOD=YYYY-MM`` with a manifest (``metadata/BILLING_PERIOD=.../*Manifest.json``) listing that
period's current data files. A period is read again only when its manifest's ETag changed; then the files
it lists are fetched (unchanged ones skipped by ETag) and the period's local files it no longer lists are
removed (they were superseded). Legacy CUR (``<report>/<YYYYMMDD-YYYYMMDD>/`` with ``reportKeys`` in the
period's manifest and a new assembly folder per update) is read the same way. Data files with no
manifest fall back to key-by-key reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from engine.collectors.aws_session import AwsSession, CollectError, collect_error

log = logging.getLogger(__name__)

STATE_FILE = ".collect-state.json"
TMP_DIR = ".collect-tmp"
DEFAULT_CONCURRENCY = 8
CHUNK = 1 << 20

CLOUDTRAIL_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
FLOWLOG_SUFFIXES = (".log", ".log.gz", ".txt", ".txt.gz")
COST_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".parquet", ".snappy.parquet", ".gz.parquet")
_PERIOD = re.compile(r"BILLING_PERIOD=(\d{4}-\d{2})")
_LEGACY_PERIOD = re.compile(r"(?:^|/)(\d{8}-\d{8})/")  # legacy CUR: <report>/<YYYYMMDD-YYYYMMDD>/
SAVE_EVERY_S = 15.0  # a long first mirror saves its state this often (resumable, not rewritten per file)


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def parse_s3_uri(text: str) -> S3Uri:
    """``s3://bucket[/prefix]`` -> S3Uri; ``ValueError`` with the expected form otherwise."""
    t = (text or "").strip()
    if not t.startswith("s3://") or len(t) <= 5:
        raise ValueError(f"{text!r} is not an S3 location: expected s3://bucket/prefix")
    bucket, _, prefix = t[5:].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,254}", bucket):
        raise ValueError(f"{text!r}: {bucket!r} is not an S3 bucket name")
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Uri(bucket, prefix)


@dataclass
class MirrorReport:
    """What one source's mirror did: keys listed, downloaded, skipped (unchanged), removed, bytes read."""

    source: str
    uri: str
    listed: int = 0
    downloaded: int = 0
    skipped: int = 0
    removed: int = 0
    bytes: int = 0
    periods_read: int = 0
    periods_skipped: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# -- state ------------------------------------------------------------------------------------------


def load_state(bundle: Path) -> dict[str, Any]:
    """The collection state of a bundle (``{}`` when there is none or it is unreadable)."""
    path = Path(bundle) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("%s unreadable (%s): collecting everything again", path, e)
        return {}
    return data if isinstance(data, dict) else {}


def save_state(bundle: Path, state: dict[str, Any]) -> None:
    """Write the state atomically (a temporary file renamed over the old one)."""
    bundle = Path(bundle)
    bundle.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=bundle, prefix=".collect-state.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, separators=(",", ":"))
        os.replace(tmp, bundle / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- listing and downloading ------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Object:
    key: str
    etag: str
    size: int


def _etag(v: Any) -> str:
    return str(v or "").strip('"')


async def list_objects(s3: Any, uri: S3Uri, *, prefix: str | None = None,
                       start_after: str | None = None) -> list[S3Object]:
    """Every object under the prefix (ListObjectsV2, paginated), from after ``start_after`` when given."""
    out: list[S3Object] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"Bucket": uri.bucket, "Prefix": uri.prefix if prefix is None else prefix}
        if start_after:
            kw["StartAfter"] = start_after
        if token:
            kw["ContinuationToken"] = token
        try:
            resp = await s3.list_objects_v2(**kw)
        except Exception as e:
            raise collect_error(e, "s3", "ListObjectsV2", str(uri)) from e
        for o in resp.get("Contents") or []:
            if not o["Key"].endswith("/"):
                out.append(S3Object(o["Key"], _etag(o.get("ETag")), int(o.get("Size") or 0)))
        token = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
        if not token:
            return out


async def list_folders(s3: Any, uri: S3Uri, prefix: str) -> list[str]:
    """The "folders" directly under ``prefix`` (ListObjectsV2 with a ``/`` delimiter), each ending in ``/``."""
    out: list[str] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"Bucket": uri.bucket, "Prefix": prefix, "Delimiter": "/"}
        if token:
            kw["ContinuationToken"] = token
        try:
            resp = await s3.list_objects_v2(**kw)
        except Exception as e:
            raise collect_error(e, "s3", "ListObjectsV2", uri.key_uri(prefix)) from e
        out.extend(p["Prefix"] for p in resp.get("CommonPrefixes") or [])
        token = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
        if not token:
            return out


async def download(s3: Any, uri: S3Uri, obj: S3Object, dest: Path, tmp_dir: Path) -> int:
    """Stream one object to ``dest`` through a temporary file; returns the bytes written."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="dl-", suffix=".part")
    written = 0
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                resp = await s3.get_object(Bucket=uri.bucket, Key=obj.key)
                body = resp["Body"]
                try:
                    while chunk := await body.read(CHUNK):
                        try:
                            f.write(chunk)
                        except OSError as e:  # the local disk, not S3: say so
                            raise CollectError(f"writing {dest} (from {uri.key_uri(obj.key)}): {e}") from e
                        written += len(chunk)
                finally:
                    body.close()
            except Exception as e:
                raise collect_error(e, "s3", "GetObject", uri.key_uri(obj.key)) from e
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


async def read_small(s3: Any, uri: S3Uri, key: str) -> bytes:
    try:
        resp = await s3.get_object(Bucket=uri.bucket, Key=key)
        body = resp["Body"]
        try:
            return await body.read()
        finally:
            body.close()
    except Exception as e:
        raise collect_error(e, "s3", "GetObject", uri.key_uri(key)) from e


# -- the mirror ---------------------------------------------------------------------------------------


def _relative(uri: S3Uri, key: str) -> str:
    rel = key[len(uri.prefix):] if uri.prefix and key.startswith(uri.prefix) else key
    parts = [p for p in PurePosixPath(rel).parts if p not in ("", ".", "..")]
    return "/".join(parts)


_DAY = re.compile(r"^(\d{4}/\d{2}/\d{2})/")
_TRAIL_STEP = re.compile(r"^(AWSLogs|\d{12}|o-[a-z0-9]{4,32})/$")
FULL_LIST_EVERY_S = 24 * 3600.0  # a trail is listed whole at least this often (late or odd keys)
TRAIL_MARGIN_DAYS = 1  # an incremental listing starts this many day folders before the newest seen


async def trail_roots(s3: Any, uri: S3Uri) -> list[str]:
    """The ``.../CloudTrail/<region>/`` folders of a trail bucket (``[prefix/]AWSLogs/[o-id/]<acct>/``),
    found with delimiter listings (a few calls, not one per thousand keys)."""
    roots: list[str] = []
    frontier = [uri.prefix]
    for _ in range(4):
        nxt: list[str] = []
        for folder in frontier:
            for sub in await list_folders(s3, uri, folder):
                step = sub[len(folder):]
                if step == "CloudTrail/":
                    roots.extend(await list_folders(s3, uri, sub))
                elif _TRAIL_STEP.match(step):
                    nxt.append(sub)
        frontier = nxt
        if not frontier:
            break
    return roots


def cloudtrail_key(key: str) -> bool:
    """A CloudTrail log file (not a digest or Insights file): ``.../CloudTrail/<region>/...json.gz``."""
    return "CloudTrail" in key.split("/") and key.lower().endswith(CLOUDTRAIL_SUFFIXES)


def flowlog_key(key: str) -> bool:
    return key.lower().endswith(FLOWLOG_SUFFIXES)


def cost_key(key: str) -> bool:
    return key.lower().endswith(COST_SUFFIXES)


def manifest_key(key: str) -> bool:
    name = key.rsplit("/", 1)[-1].lower()
    return name.endswith(".json") and "manifest" in name


def _period_group(key: str) -> str | None:
    """``<export root>|<period>`` for a key inside a ``BILLING_PERIOD=`` folder (CUR 2.0, FOCUS) or a
    legacy CUR ``<YYYYMMDD-YYYYMMDD>/`` folder, else None."""
    m = _PERIOD.search(key)
    if m is None:
        legacy = _LEGACY_PERIOD.search(key)
        return f"{key[:legacy.start(1)].rstrip('/')}|{legacy[1]}" if legacy else None
    root = key[:m.start()].rstrip("/")
    for tail in ("/data", "/metadata"):
        if root.endswith(tail):
            root = root[: -len(tail)]
            break
    return f"{root}|{m[1]}"


class Mirror:
    """One source's mirror run: ``source`` names it in the state and reports."""

    def __init__(self, session: AwsSession, source: str, uri: S3Uri, bundle: Path, subdir: str,
                 state: dict[str, Any], *, semaphore: asyncio.Semaphore,
                 save: Callable[[], None] | None = None, region: str | None = None):
        self.session, self.source, self.uri = session, source, uri
        self.bundle, self.dest = Path(bundle), Path(bundle) / subdir
        self.tmp_dir = Path(bundle) / TMP_DIR
        self.semaphore = semaphore
        self.region = region
        self._save = save or (lambda: None)
        sources = state.setdefault("sources", {})
        entry = sources.get(source)
        if not isinstance(entry, dict) or entry.get("uri") != str(uri):
            if isinstance(entry, dict):  # the source moved: what came from the old place goes
                for info in (entry.get("keys") or {}).values():
                    self._remove(info.get("path"))
            entry = {"uri": str(uri), "keys": {}, "manifests": {}}
            sources[source] = entry
        self.entry = entry
        self.keys: dict[str, dict[str, Any]] = entry.setdefault("keys", {})
        self.manifests: dict[str, dict[str, Any]] = entry.setdefault("manifests", {})
        self.report = MirrorReport(source, str(uri))
        self._saved_at = time.monotonic()

    def _remove(self, rel: str | None) -> bool:
        if not rel:
            return False
        path = (self.bundle / rel)
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def _unchanged(self, obj: S3Object) -> bool:
        info = self.keys.get(obj.key)
        return (info is not None and info.get("etag") == obj.etag and info.get("size") == obj.size
                and (self.bundle / info.get("path", "")).is_file())

    async def _fetch(self, s3: Any, obj: S3Object) -> None:
        rel_in_dest = _relative(self.uri, obj.key)
        if not rel_in_dest:
            return
        dest = self.dest / rel_in_dest
        async with self.semaphore:
            n = await download(s3, self.uri, obj, dest, self.tmp_dir)
        self.keys[obj.key] = {"etag": obj.etag, "size": obj.size,
                              "path": dest.relative_to(self.bundle).as_posix()}
        self.report.downloaded += 1
        self.report.bytes += n
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:  # an interrupted first mirror resumes from here
            self._saved_at = time.monotonic()
            self._save()

    async def _fetch_all(self, s3: Any, objs: Iterable[S3Object]) -> None:
        todo = []
        for obj in objs:
            if self._unchanged(obj):
                self.report.skipped += 1
            else:
                todo.append(obj)
        if not todo:
            return
        tasks = [asyncio.create_task(self._fetch(s3, o)) for o in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def run(self, keep: Callable[[str], bool]) -> MirrorReport:
        """Mirror the keys ``keep`` accepts, key by key."""
        async with self.session.client("s3", self.region) as s3:
            objs = [o for o in await list_objects(s3, self.uri) if keep(o.key)]
            self.report.listed = len(objs)
            await self._fetch_all(s3, objs)
        return self.report

    async def run_trail(self) -> MirrorReport:
        """Mirror a trail bucket. Once it was listed whole, later runs list each ``CloudTrail/<region>/``
        folder only from a day before the newest day folder mirrored (``StartAfter``): an hourly
        collection of a year-long trail reads a few pages, not the whole bucket. It is listed whole
        again once a day, and whenever its layout is not the one CloudTrail writes."""
        entry = self.entry
        now = time.time()
        if not self.keys or now - float(entry.get("listed_whole_at") or 0) >= FULL_LIST_EVERY_S:
            await self.run(cloudtrail_key)
            entry["listed_whole_at"] = now
            return self.report
        newest: dict[str, str] = {}  # region folder -> newest YYYY/MM/DD mirrored
        async with self.session.client("s3", self.region) as s3:
            roots = await trail_roots(s3, self.uri)
            if not roots:
                await self.run(cloudtrail_key)
                entry["listed_whole_at"] = now
                return self.report
            for key in self.keys:
                i = key.find("/CloudTrail/")
                j = key.find("/", i + 12) if i >= 0 else -1
                if j < 0:
                    continue
                m = _DAY.match(key[j + 1:])
                if m and m[1] > newest.get(key[:j + 1], ""):
                    newest[key[:j + 1]] = m[1]
            objs: list[S3Object] = []
            for root in roots:
                after = None
                if root in newest:
                    day = datetime.strptime(newest[root], "%Y/%m/%d") - timedelta(days=TRAIL_MARGIN_DAYS)
                    after = root + day.strftime("%Y/%m/%d")  # every key of that day and later sorts after it
                objs.extend(o for o in await list_objects(s3, self.uri, prefix=root, start_after=after)
                            if cloudtrail_key(o.key))
            self.report.listed = len(objs)
            await self._fetch_all(s3, objs)
        return self.report

    async def run_billing(self) -> MirrorReport:
        """Mirror a CUR 2.0 / FOCUS export: period by period, read again only when its manifest changed."""
        async with self.session.client("s3", self.region) as s3:
            listed = await list_objects(s3, self.uri)
            manifests: dict[str, S3Object] = {}
            data: dict[str | None, list[S3Object]] = {}
            for o in listed:
                group = _period_group(o.key)
                if manifest_key(o.key) and group is not None:
                    # the period's own manifest, not a copy inside an assembly folder (legacy CUR)
                    if group not in manifests or (o.key.count("/"), o.key) < (manifests[group].key.count("/"),
                                                                                manifests[group].key):
                        manifests[group] = o
                elif cost_key(o.key):
                    data.setdefault(group, []).append(o)
            self.report.listed = sum(len(v) for v in data.values())
            loose: list[S3Object] = list(data.pop(None, []))
            for group, objs in sorted(data.items()):
                if group not in manifests:
                    loose.extend(objs)
            await self._fetch_all(s3, loose)
            for group, man in sorted(manifests.items()):
                await self._period(s3, group, man, data.get(group, []))
        return self.report

    async def _period(self, s3: Any, group: str, man: S3Object, objs: list[S3Object]) -> None:
        seen = self.manifests.get(group) or {}
        local = [k for k, info in self.keys.items() if info.get("group") == group]
        if (seen.get("etag") == man.etag and seen.get("key") == man.key
                and all((self.bundle / self.keys[k]["path"]).is_file() for k in local)):
            self.report.periods_skipped += 1
            self.report.skipped += len(objs)
            return
        self.report.periods_read += 1
        listed = {o.key: o for o in objs}
        wanted = self._manifest_files(await read_small(s3, self.uri, man.key), group)
        if wanted is None:  # a manifest without a file list: every data file of the period
            current = list(listed.values())
        else:
            current = []
            for key in wanted:
                if key in listed:
                    current.append(listed[key])
                else:
                    self.report.warnings.append(f"{self.uri.key_uri(key)} is in {man.key} but not in the bucket "
                                                "(still being written?): the period is read again next time")
            if len(current) < len(wanted):
                await self._fetch_all(s3, current)
                self._tag(current, group)
                return  # the manifest is not recorded: its period is read again next run
        await self._fetch_all(s3, current)
        self._tag(current, group)
        keep = {o.key for o in current}
        for key in local:
            if key not in keep:
                info = self.keys.pop(key)
                if self._remove(info.get("path")):
                    self.report.removed += 1
        self.manifests[group] = {"key": man.key, "etag": man.etag, "size": man.size}

    def _tag(self, objs: list[S3Object], group: str) -> None:
        for o in objs:
            if o.key in self.keys:
                self.keys[o.key]["group"] = group

    def _manifest_files(self, raw: bytes, group: str) -> list[str] | None:
        """The data-file keys a manifest lists (CUR 2.0 ``dataFiles``, legacy ``reportKeys``), or None."""
        try:
            doc = json.loads(raw)
        except ValueError:
            self.report.warnings.append(f"manifest for {group} is not JSON: reading every file of the period")
            return None
        files = doc.get("dataFiles") if isinstance(doc, dict) else None
        if files is None and isinstance(doc, dict):
            files = doc.get("reportKeys")
        if not isinstance(files, list):
            return None
        keys = []
        for f in files:
            f = str(f)
            if f.startswith("s3://"):
                bucket, _, key = f[5:].partition("/")
                if bucket != self.uri.bucket:
                    continue
                f = key
            keys.append(f)
        return keys


async def mirror(session: AwsSession, source: str, uri: S3Uri | str, bundle: Path, subdir: str,
                 state: dict[str, Any], *, semaphore: asyncio.Semaphore | None = None,
                 save: Callable[[], None] | None = None, region: str | None = None) -> MirrorReport:
    """Mirror one source (``cloudtrail`` | ``cur`` | ``flowlogs``) into ``bundle/subdir``."""
    if isinstance(uri, str):
        uri = parse_s3_uri(uri)
    m = Mirror(session, source, uri, bundle, subdir, state,
               semaphore=semaphore or asyncio.Semaphore(DEFAULT_CONCURRENCY), save=save, region=region)
    if source == "cur":
        return await m.run_billing()
    if source == "cloudtrail":
        return await m.run_trail()
    if source == "flowlogs":
        return await m.run(flowlog_key)
    raise CollectError(f"unknown S3 source {source!r}")

"""engine.collectors.lookup against a local CloudTrail stand-in (moto has no LookupEvents), serving the
real records of data/cloudtrail/invictus (2,900 records, 2023-07-10 11:42-12:37 UTC, us-east-1)."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aioboto3
import pytest
import pytest_asyncio
from botocore.config import Config
from botocore.exceptions import ClientError

from engine.collectors.lookup import LookupReport, LookupThrottled, client_config, lookup_events
from engine.records import BundleIssue
from engine.sources.cloudtrail import cloudtrail_files, read_cloudtrail_file
from tests.cloudtrail_standin import CloudTrailStandIn, real_records

pytestmark = pytest.mark.asyncio

REGION = "us-east-1"
DAY = datetime(2023, 7, 10, tzinfo=UTC)
NAME = re.compile(r"cloudtrail/lookup/us-east-1/2023/07/10/20230710T\d{6}Z-\d+\.json\.gz")


@pytest.fixture(scope="module")
def records(shared_data: Path) -> list[dict]:
    recs = real_records(shared_data / "cloudtrail" / "invictus")
    assert len(recs) == 2900
    return recs


@pytest_asyncio.fixture
async def ct(records: list[dict]):
    async with CloudTrailStandIn(records) as standin:
        yield standin


def _time(rec: dict) -> datetime:
    return datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00"))


def _ids_in(records: list[dict], start: datetime, end: datetime) -> set[str]:
    return {r["eventID"] for r in records if start <= _time(r) <= end}


def factory(url: str, attempts: int = 1, config: Config | None = None):
    """A client factory as the collector takes it; botocore's own retries off unless asked for."""
    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    cfg = config or Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return lambda: session.client("cloudtrail", region_name=REGION, endpoint_url=url, config=cfg)


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def read_back(out: Path) -> tuple[list[dict], list[BundleIssue]]:
    """Every record of the written files as engine.sources.cloudtrail reads them (and the raw ids)."""
    issues: list[BundleIssue] = []
    events = []
    for f in cloudtrail_files(out):
        events.extend(read_cloudtrail_file(f, issues))
    return events, issues


async def test_pages_become_cloudtrail_files_the_reader_reads(ct, records, tmp_path):
    start, end = DAY.replace(hour=12), DAY.replace(hour=12, minute=30)
    want = _ids_in(records, start, end)
    assert len(want) > 500  # several pages of 50
    rep = await lookup_events(factory(ct.url), REGION, start, end, tmp_path, page_size=50)

    assert isinstance(rep, LookupReport) and rep.complete
    assert rep.events == len(want) and rep.pages == math.ceil(len(want) / 50) == len(rep.files)
    for f in rep.files:
        assert NAME.fullmatch(f.relative_to(tmp_path).as_posix()), f
    events, issues = read_back(tmp_path)
    assert issues == []
    assert len(events) == len(want) and {e.event_id for e in events} == want
    # Requests: the same window every page, NextToken from the second page on, epoch numbers on the wire.
    bodies = ct.lookups()
    assert len(bodies) == rep.pages
    assert all(b["StartTime"] == start.timestamp() and b["EndTime"] == end.timestamp() for b in bodies)
    assert "NextToken" not in bodies[0] and all("NextToken" in b for b in bodies[1:])
    assert all(b["MaxResults"] == 50 for b in bodies)
    # Each file is a whole {"Records": [...]} page, newest event first, named after it.
    first = rep.files[0]
    import gzip
    doc = json.loads(gzip.decompress(first.read_bytes()))
    assert len(doc["Records"]) == 50
    newest = max(_time(r) for r in doc["Records"])
    assert first.name.startswith(newest.strftime("%Y%m%dT%H%M%SZ-"))


async def test_the_bundle_loader_counts_the_records(ct, records, tmp_path):
    from engine.bundle import load_bundle

    start, end = DAY.replace(hour=11), DAY.replace(hour=13)
    rep = await lookup_events(factory(ct.url), REGION, start, end, tmp_path, page_size=50)
    assert rep.events == 2900 and rep.pages == 58
    bundle = load_bundle(tmp_path, workers=1)
    assert bundle.activity.records == 2900 and bundle.activity.duplicates == 0
    assert not [i for i in bundle.issues if "lookup" in i.path]


async def test_throttling_is_backed_off_with_jitter_then_succeeds(ct, records, tmp_path):
    start, end = DAY.replace(hour=12, minute=20), DAY.replace(hour=12, minute=40)
    want = _ids_in(records, start, end)
    ct.fail_next(3)  # ThrottlingException, HTTP 400
    ct.fail_next(1, code="TooManyRequestsException", status=429)
    sleeps = Sleeps()
    rep = await lookup_events(factory(ct.url), REGION, start, end, tmp_path, sleep=sleeps,
                              backoff_base=0.5, backoff_cap=2.0)
    assert rep.throttled == 4 and len(sleeps) == 4
    caps = [0.5, 1.0, 2.0, 2.0]  # exponential, capped; full jitter below each cap
    assert all(0 <= s <= c for s, c in zip(sleeps, caps, strict=True))
    assert rep.events == len(want) and rep.complete
    assert [r["status"] for r in ct.requests[:5]] == [400, 400, 400, 429, 200]


async def test_botocore_adaptive_retries_absorb_throttling_first(ct, records, tmp_path):
    start, end = DAY.replace(hour=12, minute=30), DAY.replace(hour=12, minute=40)
    ct.fail_next(2)
    sleeps = Sleeps()
    rep = await lookup_events(factory(ct.url, config=client_config(max_attempts=4)), REGION, start, end, tmp_path,
                              sleep=sleeps)
    assert rep.throttled == 0 and sleeps == []  # botocore retried them itself
    assert rep.events == len(_ids_in(records, start, end))
    assert len(ct.requests) == rep.pages + 2


async def test_throttled_past_every_retry_keeps_what_it_wrote_and_resumes(ct, records, tmp_path):
    start, end = DAY.replace(hour=11), DAY.replace(hour=13)
    state: dict = {}
    # Two pages succeed, then the service stays throttled.
    rep1 = await lookup_events(factory(ct.url), REGION, start, end, tmp_path, state=state, max_pages=2)
    ct.fail_next(5)
    sleeps = Sleeps()
    with pytest.raises(LookupThrottled, match="still throttled after 2 retries") as e:
        await lookup_events(factory(ct.url), REGION, start, end, tmp_path, state=state, max_retries=2,
                            sleep=sleeps)
    assert e.value.report.throttled == 3 and len(sleeps) == 2
    assert state["lookup_events"][REGION]["backlog"]  # the unfetched part is remembered
    ct.requests.clear()
    rep3 = await lookup_events(factory(ct.url), REGION, start, end, tmp_path, state=state, sleep=sleeps)
    assert rep3.complete and rep1.events + rep3.events >= 2900
    events, issues = read_back(tmp_path)
    assert issues == [] and {e.event_id for e in events} == {r["eventID"] for r in records}


async def test_a_denied_call_propagates_and_writes_nothing(ct, tmp_path):
    ct.fail_next(1, code="AccessDeniedException", message="not authorized to perform: cloudtrail:LookupEvents")
    state: dict = {}
    with pytest.raises(ClientError, match="cloudtrail:LookupEvents"):
        await lookup_events(factory(ct.url), REGION, DAY, DAY + timedelta(days=1), tmp_path, state=state)
    assert cloudtrail_files(tmp_path) == []
    assert state["lookup_events"][REGION]["newest"] is None and state["lookup_events"][REGION]["backlog"] == []


async def test_second_run_fetches_only_newer_events(records, tmp_path):
    cut = DAY.replace(hour=12, minute=20)
    old = [r for r in records if _time(r) <= cut]
    new = [r for r in records if _time(r) > cut]
    start, end = DAY, DAY + timedelta(days=1)
    overlap = timedelta(minutes=1)
    state_file = tmp_path / ".collect-state.json"
    out = tmp_path / "bundle"
    async with CloudTrailStandIn(old) as ct:
        rep1 = await lookup_events(factory(ct.url), REGION, start, end, out, state=state_file, overlap=overlap)
        assert rep1.events == len(old) and rep1.pages == math.ceil(len(old) / 50)
        newest1 = max(_time(r) for r in old)
        saved = json.loads(state_file.read_text())
        assert saved["lookup_events"][REGION]["newest"] == newest1.strftime("%Y-%m-%dT%H:%M:%SZ")

        ct.add_records(new)  # events happen after the first run
        ct.requests.clear()
        rep2 = await lookup_events(factory(ct.url), REGION, start, end, out, state=state_file, overlap=overlap)
        bodies = ct.lookups()
        assert all(b["StartTime"] == (newest1 - overlap).timestamp() for b in bodies)
        again = _ids_in(records, newest1 - overlap, end)  # the new events and the overlap's old ones
        assert rep2.events == len(again) and len(bodies) == math.ceil(len(again) / 50)
        assert len(again) < len(new) + 100  # far less than the history
        assert rep2.newest == max(_time(r) for r in records)

        # A third run with nothing new asks only the overlap again.
        ct.requests.clear()
        rep3 = await lookup_events(factory(ct.url), REGION, start, end, out, state=state_file, overlap=overlap)
        assert len(ct.lookups()) == 1 and rep3.events == len(_ids_in(records, rep2.newest - overlap, end))

    events, issues = read_back(out)
    assert issues == []
    assert {e.event_id for e in events} == {r["eventID"] for r in records}
    names = [f.name for f in cloudtrail_files(out)]
    assert len(names) == len(set(names)) == len(rep1.files) + len(rep2.files) + len(rep3.files)  # nothing overwritten

    from engine.bundle import load_bundle

    loaded = load_bundle(out, workers=1)
    assert loaded.activity.records == 2900  # the overlap's copies are dropped by eventID


async def test_bounded_runs_leave_a_backlog_and_work_it_off(ct, records, tmp_path):
    start, end = DAY, DAY + timedelta(days=1)
    state: dict = {}
    runs = []
    while True:
        rep = await lookup_events(factory(ct.url), REGION, start, end, tmp_path, state=state, max_pages=10,
                                  overlap=timedelta(minutes=1))
        runs.append(rep)
        assert rep.pages <= 10
        if rep.complete:
            break
        assert len(runs) < 20
    assert len(runs) >= 6 and not runs[0].complete and runs[0].backlog
    # The first run saw the newest events; later runs walk the backlog back in time.
    assert runs[0].newest == max(_time(r) for r in records)
    events, issues = read_back(tmp_path)
    assert issues == [] and {e.event_id for e in events} == {r["eventID"] for r in records}


async def test_a_time_window(ct, records, tmp_path):
    start, end = DAY.replace(hour=12, minute=5, second=30), DAY.replace(hour=12, minute=7)
    want = _ids_in(records, start, end)
    assert 0 < len(want) < 400
    rep = await lookup_events(factory(ct.url), REGION, start.isoformat(), end.timestamp(), tmp_path, page_size=20)
    assert rep.events == len(want) and rep.pages == math.ceil(len(want) / 20)
    events, _ = read_back(tmp_path)
    assert {e.event_id for e in events} == want
    assert all(start.timestamp() <= e.time <= end.timestamp() for e in events)


async def test_an_empty_result(ct, tmp_path):
    state: dict = {}
    start = datetime(2022, 1, 1, tzinfo=UTC)
    rep = await lookup_events(factory(ct.url), REGION, start, start + timedelta(days=1), tmp_path, state=state)
    assert rep.pages == 1 and rep.events == 0 and rep.files == [] and rep.complete
    assert rep.newest is None and state["lookup_events"][REGION]["newest"] is None
    assert cloudtrail_files(tmp_path) == []
    assert rep.as_dict()["complete"] is True


async def test_takes_a_session_with_client_service_region(ct, records, tmp_path):
    """The shape of engine.collectors.aws_session.AwsSession: ``client(service, region)``."""
    class FakeAwsSession:
        def __init__(self, url: str):
            self.url, self.calls = url, []
            self.session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")

        def client(self, service: str, region: str):
            self.calls.append((service, region))
            return self.session.client(service, region_name=region, endpoint_url=self.url,
                                       config=Config(retries={"mode": "standard", "total_max_attempts": 1}))

    s = FakeAwsSession(ct.url)
    start, end = DAY.replace(hour=12, minute=10), DAY.replace(hour=12, minute=12)
    rep = await lookup_events(s, REGION, start, end, tmp_path)
    assert s.calls == [("cloudtrail", REGION)] and rep.events == len(_ids_in(records, start, end))
    assert ct.requests[0]["region"] == REGION


async def test_bad_arguments(ct, tmp_path):
    with pytest.raises(ValueError, match="page_size"):
        await lookup_events(factory(ct.url), REGION, DAY, DAY, tmp_path, page_size=51)
    with pytest.raises(ValueError, match="before start"):
        await lookup_events(factory(ct.url), REGION, DAY, DAY - timedelta(1), tmp_path)
    assert ct.requests == []

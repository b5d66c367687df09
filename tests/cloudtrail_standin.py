"""A local stand-in for CloudTrail's ``LookupEvents`` (moto does not implement it).

An aiohttp server on 127.0.0.1 (random port) speaking the AWS JSON 1.1 protocol as botocore sends it:
``POST /`` with ``X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents``
and a JSON body (``StartTime`` / ``EndTime`` as epoch seconds, ``MaxResults``, ``NextToken``,
``LookupAttributes``). It answers as CloudTrail does: events newest first,
``{"Events": [{"EventId", "EventName", "ReadOnly", "AccessKeyId", "EventTime", "EventSource",
"Username", "Resources", "CloudTrailEvent"}], "NextToken"}``, at most 50 per page, with the start and
end times inclusive, a ``NextToken`` that only fits the same query (else ``InvalidNextTokenException``),
and errors as ``{"__type": ..., "message": ...}``.

The events are real CloudTrail records (:func:`real_records` reads ``data/cloudtrail/``); failures are
scripted with :meth:`CloudTrailStandIn.fail_next` (``ThrottlingException`` 400s by default, or a 429);
every request is recorded in ``requests``. Point a botocore/aioboto3 client at ``url`` with
``endpoint_url`` and any dummy credentials::

    async with CloudTrailStandIn(records) as ct:
        async with aioboto3.Session(aws_access_key_id="x", aws_secret_access_key="x").client(
                "cloudtrail", region_name="us-east-1", endpoint_url=ct.url) as client:
            await client.lookup_events(StartTime=..., EndTime=...)
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_RESULTS = 50


def real_records(folder: Path) -> list[dict]:
    """Every record of the CloudTrail log files (``{"Records": [...]}``, .json) under ``folder``."""
    out: list[dict] = []
    for f in sorted(Path(folder).rglob("*.json")):
        out.extend(json.loads(f.read_text(encoding="utf-8"))["Records"])
    return out


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _username(rec: dict) -> str:
    ui = rec.get("userIdentity") or {}
    if ui.get("userName"):
        return ui["userName"]
    arn = ui.get("arn") or ""
    if "assumed-role/" in arn:
        return arn.rsplit("/", 1)[-1]
    pid = ui.get("principalId") or ""
    return pid.split(":", 1)[-1] if pid else ui.get("invokedBy", "")


def to_event(rec: dict) -> dict[str, Any]:
    """A record as LookupEvents returns it (the record itself as the ``CloudTrailEvent`` string)."""
    ev: dict[str, Any] = {
        "EventId": rec["eventID"],
        "EventName": rec.get("eventName", ""),
        "ReadOnly": str(rec.get("readOnly", "false")).lower(),
        "EventTime": _epoch(rec["eventTime"]),
        "EventSource": rec.get("eventSource", ""),
        "Username": _username(rec),
        "Resources": [{"ResourceType": r.get("type", ""), "ResourceName": r.get("ARN", "")}
                      for r in rec.get("resources") or () if isinstance(r, dict)],
        "CloudTrailEvent": json.dumps(rec, separators=(",", ":")),
    }
    key = (rec.get("userIdentity") or {}).get("accessKeyId")
    if key:
        ev["AccessKeyId"] = key
    return ev


_ATTRIBUTES = {"EventId": "EventId", "EventName": "EventName", "EventSource": "EventSource",
               "Username": "Username", "ReadOnly": "ReadOnly", "AccessKeyId": "AccessKeyId"}


class CloudTrailStandIn:
    """LookupEvents over a fixed (but extendable) set of records; see the module docstring."""

    def __init__(self, records: list[dict] | None = None, *, region: str = "us-east-1"):
        self.region = region
        self.requests: list[dict[str, Any]] = []  # {"target", "body", "status", "region"} per request
        self._failures: deque[tuple[int, str, str]] = deque()
        self._events: list[dict[str, Any]] = []
        self.add_records(records or [])
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- scripting -------------------------------------------------------------------------------

    def add_records(self, records: list[dict]) -> None:
        """More records (new events arriving); kept newest first, as LookupEvents lists them."""
        self._events.extend(to_event(r) for r in records)
        self._events.sort(key=lambda e: (-e["EventTime"], e["EventId"]))

    def fail_next(self, n: int = 1, code: str = "ThrottlingException", status: int = 400,
                  message: str = "Rate exceeded") -> None:
        """The next ``n`` requests get this error instead of an answer."""
        self._failures.extend([(status, code, message)] * n)

    def lookups(self) -> list[dict[str, Any]]:
        """The bodies of the LookupEvents requests that were answered with events (not scripted errors)."""
        return [r["body"] for r in self.requests if r["target"] == "LookupEvents" and r["status"] == 200]

    @property
    def event_count(self) -> int:
        return len(self._events)

    # -- server ----------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> CloudTrailStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- protocol --------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        body = json.dumps({"__type": code, "message": message})
        return web.Response(status=status, body=body.encode(), content_type=CONTENT_TYPE)

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        auth = request.headers.get("Authorization", "")
        region = auth.split("/")[2] if auth.count("/") >= 3 else ""  # Credential=KEY/DATE/REGION/SERVICE/...
        rec: dict[str, Any] = {"target": op, "body": body, "status": 200, "region": region}
        self.requests.append(rec)

        def fail(status: int, code: str, message: str) -> web.Response:
            rec["status"] = status
            return self._error(status, code, message)

        if not auth.startswith("AWS4-HMAC-SHA256"):
            return fail(400, "MissingAuthenticationTokenException", "Request is missing Authentication Token")
        if self._failures:
            return fail(*self._failures.popleft())
        if op != "LookupEvents":
            return fail(400, "UnknownOperationException", f"operation {op!r} is not served by this stand-in")
        if not isinstance(body, dict):
            return fail(400, "SerializationException", "body is not a JSON object")
        return self._lookup(body, fail)

    def _lookup(self, body: dict[str, Any], fail: Any) -> web.Response:
        start = body.get("StartTime")
        end = body.get("EndTime")
        if (start is not None and not isinstance(start, (int, float))) or (
                end is not None and not isinstance(end, (int, float))):
            return fail(400, "SerializationException", "StartTime and EndTime must be epoch numbers")
        if start is not None and end is not None and start > end:
            return fail(400, "InvalidTimeRangeException", "StartTime is after EndTime")
        size = body.get("MaxResults", MAX_RESULTS)
        if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS:
            return fail(400, "InvalidMaxResultsException", f"MaxResults must be 1-{MAX_RESULTS}")
        attrs = body.get("LookupAttributes") or []
        query = json.dumps([start, end, attrs], sort_keys=True)
        qhash = hashlib.sha256(query.encode()).hexdigest()[:16]
        offset = 0
        if body.get("NextToken"):
            try:
                tok = json.loads(base64.urlsafe_b64decode(body["NextToken"].encode()))
                offset, ok = int(tok["o"]), tok["q"] == qhash
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                return fail(400, "InvalidNextTokenException", "the NextToken does not fit this query")
        events = [e for e in self._events
                  if (start is None or e["EventTime"] >= start) and (end is None or e["EventTime"] <= end)]
        for a in attrs:
            field = _ATTRIBUTES.get(a.get("AttributeKey", ""))
            if field is None:
                return fail(400, "InvalidLookupAttributesException", f"unknown AttributeKey {a!r}")
            events = [e for e in events if e.get(field) == a.get("AttributeValue")]
        page = events[offset:offset + size]
        out: dict[str, Any] = {"Events": page}
        if offset + size < len(events):
            out["NextToken"] = base64.urlsafe_b64encode(
                json.dumps({"o": offset + size, "q": qhash}).encode()).decode()
        return web.Response(body=json.dumps(out).encode(), content_type=CONTENT_TYPE)

"""deploys.jsonl -> :class:`Deploy`: when which repo shipped, by whom, to what.

Deploy records come from many CI systems, so the reader is lenient about where the target is
written (``resource``, ``resources``, ``resource_arn``, ``service``, ``services``, ``target``) and
strict only about what attribution cannot do without: a time and a repo.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from engine.arns import canonical_arn, parse_arn
from engine.records import BundleIssue, Deploy
from engine.sources.files import MAX_LINE_BYTES, UnreadableFile, iter_text_lines

HINT_KEYS = ("resource", "resources", "resource_arn", "service", "services", "target")


# Deploy times a CI system can have written: from 1970 to 2100, in epoch seconds.
_LATEST = 4102444800.0  # 2100-01-01T00:00:00Z


def _time(v: Any) -> float:
    """Epoch seconds from ISO 8601 text (``Z`` or an offset; naive means UTC) or a number.

    Only finite times between 1970 and 2100 pass: NaN, infinity or a year 9999 would poison every
    time series and date conversion downstream.
    """
    if isinstance(v, bool):
        raise ValueError("time is not a time")
    if isinstance(v, int | float):
        try:
            t = float(v)
        except OverflowError:
            raise ValueError("time is out of range (1970 to 2100 expected)") from None
        if not math.isfinite(t):
            raise ValueError(f"time {v!r} is not a finite number")
    elif not isinstance(v, str) or not v.strip():
        raise ValueError("time is missing")
    else:
        shown = v if len(v) <= 60 else v[:60] + "..."
        try:
            dt = datetime.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"time {shown!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:
            t = dt.timestamp()
        except (OverflowError, ValueError):
            raise ValueError(f"time {shown!r} is out of range") from None
    if not 0.0 <= t < _LATEST:
        raise ValueError(f"time {v!r} is out of range (1970 to 2100 expected)" if not isinstance(v, str)
                         else f"time {shown!r} is out of range (1970 to 2100 expected)")
    return t


def _hints(rec: dict) -> list[str]:
    out: list[str] = []
    for k in HINT_KEYS:
        v = rec.get(k)
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, str))
    return [h.strip() for h in dict.fromkeys(out) if h.strip()]


def parse_deploy(rec: Any) -> Deploy:
    """One deploys.jsonl object -> Deploy; ValueError saying what is wrong."""
    if not isinstance(rec, dict):
        raise ValueError(f"not a JSON object (got {type(rec).__name__})")
    t = _time(rec.get("time"))
    repo = rec.get("repo")
    if not isinstance(repo, str) or not repo.strip():
        raise ValueError("repo is missing")

    def text(k: str) -> str:
        v = rec.get(k)
        return v if isinstance(v, str) else ""

    hints = _hints(rec)
    arns = tuple(dict.fromkeys(canonical_arn(h) for h in hints if parse_arn(h) is not None))
    return Deploy(time=t, repo=repo.strip(), commit=text("commit"), actor=text("actor"), pipeline=text("pipeline"),
                  resources=arns, hints=tuple(hints))


def read_deploys(path: Path, issues: list[BundleIssue]) -> list[Deploy]:
    """Every usable line of a deploys.jsonl; a bad line is one issue ("line N") and is skipped.

    The file is streamed line by line; a line over ``MAX_LINE_BYTES`` is skipped unread. An empty
    file, binary data or a file that cannot be read to its end (a cut gzip) is one issue for the
    whole file, and none of it is used.
    """
    where = str(path)
    out: list[Deploy] = []
    first = len(issues)
    try:
        for n, line in iter_text_lines(Path(path), lambda msg: issues.append(BundleIssue(where, "", msg)),
                                       "JSON lines"):
            if line is None:
                issues.append(BundleIssue(where, f"line {n}", f"longer than {MAX_LINE_BYTES} bytes; skipped"))
                continue
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                msg = str(e)
                issues.append(BundleIssue(where, f"line {n}", f"not valid JSON ({msg[:200]})"))
                continue
            try:
                out.append(parse_deploy(rec))
            except ValueError as e:
                issues.append(BundleIssue(where, f"line {n}", str(e)))
    except UnreadableFile as e:  # a cut gzip is a half-written file: none of it is trusted
        del issues[first:]
        issues.append(BundleIssue(where, "", str(e)))
        return []
    except OSError as e:
        issues.append(BundleIssue(where, "", f"cannot read file ({e.strerror or e})"))
    return out

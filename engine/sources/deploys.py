"""deploys.jsonl -> :class:`Deploy`: when which repo shipped, by whom, to what.

Deploy records come from many CI systems, so the reader is lenient about where the target is
written (``resource``, ``resources``, ``resource_arn``, ``service``, ``services``, ``target``) and
strict only about what attribution cannot do without: a time and a repo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from engine.arns import canonical_arn, parse_arn
from engine.records import BundleIssue, Deploy
from engine.sources.files import UnreadableFile, read_bytes

HINT_KEYS = ("resource", "resources", "resource_arn", "service", "services", "target")


def _time(v: Any) -> float:
    """Epoch seconds from ISO 8601 text (``Z`` or an offset; naive means UTC) or a number."""
    if isinstance(v, bool):
        raise ValueError("time is not a time")
    if isinstance(v, int | float):
        return float(v)
    if not isinstance(v, str) or not v.strip():
        raise ValueError("time is missing")
    try:
        dt = datetime.fromisoformat(v.strip())
    except ValueError:
        raise ValueError(f"time {v!r} is not ISO 8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


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
    """Every usable line of a deploys.jsonl; a bad line is one issue ("line N") and is skipped."""
    try:
        data = read_bytes(Path(path))
    except UnreadableFile as e:
        issues.append(BundleIssue(str(path), "", str(e)))
        return []
    out: list[Deploy] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            issues.append(BundleIssue(str(path), f"line {n}", f"not valid JSON ({e})"))
            continue
        try:
            out.append(parse_deploy(rec))
        except ValueError as e:
            issues.append(BundleIssue(str(path), f"line {n}", str(e)))
    return out

"""The pure heart of an incremental watch: which export files are new, what they hold, and the one-shot
spike report over a whole bundle.

An hourly watch must not re-read a month of exports to score one new hour. Files are keyed by their
path (relative to the bundle root), size and modification time; only new or changed ones are read.
Each cost file becomes a ``CostPart`` the jobs layer stores; the next watch combines stored parts with
the new ones (a changed file's part replaces its old one) and scores the new hours.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.costs import delivery_of
from engine.hourly import CostPart, combine, read_cost_part
from engine.records import BundleIssue, Deploy
from engine.sources.cloudtrail import cloudtrail_files
from engine.sources.cost import cost_files
from engine.sources.deploys import read_deploys
from engine.spikes import Spike, SpikeConfig, detect

if TYPE_CHECKING:
    from engine.explain import Cause
    from engine.scan import ScanResult
    from engine.sources.changes import ChangeEvent

DEPLOY_FILES = ("deploys.jsonl", "deploys.jsonl.gz")
CONFIDENT_OWNER = 0.70  # owners at or above this teach the creator model (engine.creators) who is on which team
_PROCESS_MIN_FILES = 8  # fewer CloudTrail files than this are read in this process
_PROCESS_MIN_BYTES = 32 << 20  # and less than this much CloudTrail (compressed) too: a pool costs ~1 s to start


@dataclass
class SeenFile:
    path: str  # relative to the bundle root, "/"-separated
    size: int
    mtime: float
    kind: str  # "cost" | "cloudtrail" | "deploys"


def _rel(root: Path, p: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def list_files(root: Path) -> list[SeenFile]:
    """Every watchable file of a bundle with its size and modification time, cost first."""
    root = Path(root)
    out: list[SeenFile] = []
    groups: list[tuple[str, Iterable[Path]]] = [
        ("cost", cost_files(root)),
        ("cloudtrail", cloudtrail_files(root)),
        ("deploys", [root / n for n in DEPLOY_FILES if (root / n).is_file()]),
    ]
    for kind, paths in groups:
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                continue  # vanished between listing and stat: the next watch sees it again
            out.append(SeenFile(_rel(root, p), int(st.st_size), float(st.st_mtime), kind))
    return out


def new_files(root: Path, seen: Mapping[str, SeenFile]) -> list[SeenFile]:
    """Files that are new, or whose size or modification time changed since they were seen."""
    out = []
    for f in list_files(root):
        old = seen.get(f.path)
        if old is None or old.size != f.size or abs(old.mtime - f.mtime) > 1e-6:
            out.append(f)
    return out


@dataclass
class WatchInput:
    """What one watch read: only the new files."""

    cost_parts: list[CostPart]
    changes: list[ChangeEvent]
    deploys: list[Deploy]
    issues: list[BundleIssue]
    files: list[SeenFile]
    rows: dict[str, int] = field(default_factory=dict)  # path -> resource-hour rows (cost) or events read


def _read_changes_batch(paths: list[str]) -> tuple[list[tuple[str, list[ChangeEvent]]], list[BundleIssue]]:
    """Worker: CloudTrail files -> their change events (runs in a process pool for many files)."""
    from engine.sources.changes import read_changes

    issues: list[BundleIssue] = []
    return [(p, read_changes(Path(p), issues)) for p in paths], issues


def read_new(root: Path, files: list[SeenFile], workers: int | None = None) -> WatchInput:
    """Read the given files of the bundle at ``root``: cost parts, change events and deploys.

    Cost files are read in threads (pyarrow releases the GIL); many CloudTrail files go to a process
    pool (JSON decoding holds it). A file that cannot be read is an issue, never an exception.
    """
    root = Path(root)
    issues: list[BundleIssue] = []
    rows: dict[str, int] = {}
    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    cost = [f for f in files if f.kind == "cost"]
    trail = [f for f in files if f.kind == "cloudtrail"]
    deploy = [f for f in files if f.kind == "deploys"]

    parts: list[CostPart] = []

    def one_cost(f: SeenFile) -> tuple[CostPart | None, list[BundleIssue]]:
        iss: list[BundleIssue] = []
        part = read_cost_part(root / f.path, iss)
        if part is not None:
            part.path = f.path  # relative: the same delivery wherever the bundle is mounted
            if part.delivery:
                part.delivery = delivery_of(Path(f.path), part.format)
        return part, iss

    if len(cost) > 1 and n_workers > 1:
        with ThreadPoolExecutor(min(n_workers, len(cost), 4)) as ex:
            results = list(ex.map(one_cost, cost))
    else:
        results = [one_cost(f) for f in cost]
    for f, (part, iss) in zip(cost, results, strict=True):
        issues += iss
        if part is not None:
            parts.append(part)
            rows[f.path] = part.rows

    changes: list[ChangeEvent] = []
    if trail:
        abs_paths = [str(root / f.path) for f in trail]
        big = sum(f.size for f in trail) >= _PROCESS_MIN_BYTES
        if len(trail) >= _PROCESS_MIN_FILES and big and n_workers > 1:
            k = min(n_workers, len(trail))
            batches = [abs_paths[i::k] for i in range(k)]
            # forkserver: the watch runs inside a worker with threads and an event loop, where fork is unsafe
            with ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("forkserver")) as ex:
                got = list(ex.map(_read_changes_batch, batches))
        else:
            got = [_read_changes_batch(abs_paths)]
        by_path: dict[str, list[ChangeEvent]] = {}
        for pairs, iss in got:
            issues += iss
            by_path.update(pairs)
        for f, p in zip(trail, abs_paths, strict=True):
            evs = by_path.get(p, [])
            changes += evs
            rows[f.path] = len(evs)
        changes.sort(key=lambda e: e.time)

    deploys: list[Deploy] = []
    for f in deploy:
        got_d = read_deploys(root / f.path, issues)
        deploys += got_d
        rows[f.path] = len(got_d)
    deploys.sort(key=lambda d: d.time)
    return WatchInput(cost_parts=parts, changes=changes, deploys=deploys, issues=issues, files=list(files), rows=rows)


# ---------------------------------------------------------------------------------------------
# one shot over a bundle (costdna spikes --bundle, benchmarks/spikes.py)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ReportedSpike:
    spike: Spike
    cause: Cause | None
    owner_team: str
    owner_confidence: float
    owner_source: str  # tag | label | predicted | creator | none

    def to_json(self) -> dict[str, Any]:
        """The ``costdna spikes --json`` item (plus kind, key and owner_source)."""
        s = self.spike
        return {
            "resource_id": s.resource_id, "arn": s.arn, "start": _iso(s.start), "end": _iso(s.end),
            "peak_usd_per_hour": round(s.peak_usd_per_hour, 4),
            "baseline_usd_per_hour": round(s.baseline_usd_per_hour, 4), "extra_usd": round(s.extra_usd, 2),
            "severity": s.severity, "reasons": list(s.reasons), "owner_team": self.owner_team,
            "owner_confidence": round(self.owner_confidence, 4),
            "cause": self.cause.to_json() if self.cause is not None else None,
            "kind": s.kind, "key": s.key, "owner_source": self.owner_source,
        }


def owners_from_scan(result: ScanResult) -> dict[str, tuple[str, float, str]]:
    """arn -> (team, confidence, source) from a scan: the owner tag first, else the predicted team."""
    out: dict[str, tuple[str, float, str]] = {}
    for r in result.rows:
        if r.tag_team:
            out[r.arn] = (r.tag_team, 1.0, "tag")
        elif r.predicted_team:
            src = getattr(r, "owner_source", "") or "model"
            out[r.arn] = (r.predicted_team, float(r.confidence), "creator" if src == "creator" else "predicted")
    return out


def creator_teams(changes: Sequence[ChangeEvent], deploys: Sequence[Deploy],
                  owners: Mapping[str, tuple[str, float, str]]
                  ) -> tuple[dict[str, tuple[float, str, str | None]], dict[str, tuple[str, float]]]:
    """(creators: arn -> (time, actor, person), teams: identity -> (team, confidence)) from the changes.

    engine.creators does both, as the scan does: who created a resource is its earliest creating
    event (engine.activity's CREATE), which team an identity works for comes from the resources it
    changed whose owner is known with confidence. The watch adds what deploy records say their
    actors touched.
    """
    from engine.creators import acts_of_changes, creators_of_changes, person_teams

    owner_of = {a: t for a, (t, c, src) in owners.items() if t and (c >= CONFIDENT_OWNER or src in ("tag", "label"))}
    acts = list(acts_of_changes(changes))
    acts += [(d.actor, arn) for d in deploys if d.actor for arn in d.resources]
    return creators_of_changes(changes), person_teams(acts, owner_of)


def report_spikes(series: Any, spikes: Sequence[Spike], changes: Sequence[ChangeEvent], deploys: Sequence[Deploy],
                  owners: Mapping[str, tuple[str, float, str]]) -> list[ReportedSpike]:
    """Owner (given map, else the creator's team) and cause (engine.explain) of each spike."""
    from engine.creators import creator_owner, team_lookup
    from engine.explain import explain

    creators, teams = creator_teams(changes, deploys, owners)
    team_of = team_lookup(teams)  # a shared role (low confidence) is nobody's team
    out = []
    for s in spikes:
        team, conf, src = owners.get(s.arn, ("", 0.0, "none"))
        if not team:
            hit = creator_owner(s.arn, creators, teams)
            if hit is not None:
                team, conf, src = hit[0], float(hit[1]), "creator"
            else:
                team, conf, src = "", 0.0, "none"
        cause = explain(s, series.row(s.arn), series.start_hour, deploys, changes, team, team_of)
        out.append(ReportedSpike(s, cause, team, conf, src))
    return out


def bundle_spikes(root: Path, owners: Mapping[str, tuple[str, float, str]], *, since: float | None = None,
                  config: SpikeConfig | None = None, workers: int | None = None) -> list[ReportedSpike]:
    """Every spike in a bundle (overlapping ``since`` and later), with its owner and cause, by start."""
    from engine.sources.changes import dedup_changes

    root = Path(root)
    inp = read_new(root, list_files(root), workers=workers)
    series = combine(inp.cost_parts, window_hours=1 << 20)
    changes = dedup_changes(inp.changes)
    since_hour = int(since // 3600) if since is not None else None
    spikes = detect(series, since_hour=since_hour, changes=changes, config=config or SpikeConfig())
    out = report_spikes(series, spikes, changes, inp.deploys, owners)
    out.sort(key=lambda r: (r.spike.start, r.spike.arn))
    return out

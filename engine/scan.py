"""A scan: bundle -> owner labels from tags -> graph -> model -> one row per resource + a summary.

This is the only place the engine stages are wired together; the CLI, jobs and chat handlers all call
``scan_bundle`` and read a ``ScanResult``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.bundle import Bundle, load_bundle
from engine.creators import creator_owner, identity_keys, person_teams
from engine.graph import OwnershipGraph, build_graph
from engine.model import ModelConfig, Prediction, fit_predict, relation_names
from engine.sources.files import release_memory
from engine.tagkeys import owner_tags_advice
from engine.tagrules import TagRules

CONFIDENT = 0.70  # "attributable" means a predicted owner at or above this confidence
NO_TEAM_ANOMALY = 0.4  # at or above this, a resource fits no team and gets no predicted owner

# Which measure each money figure of the summary is (README: "What each money figure means").
# Amortized effective cost is what a resource costs (commitments spread over their usage): attribution,
# teams, spikes and the digest use it. Billed cost is what the invoice says.
MEASURES = {
    "total_cost_usd": "amortized", "untagged_cost_usd": "amortized", "unattributable_cost_usd": "amortized",
    "attributable_cost_usd": "amortized", "teams.cost_usd": "amortized", "teams.inferred_cost_usd": "amortized",
    "no_team.cost_usd": "amortized", "amortized_cost_usd": "amortized", "monthly_cost_usd": "amortized",
    "gross_cost_usd": "billed", "discounts_usd": "billed", "credits_usd": "billed", "refunds_usd": "billed",
    "adjustments_usd": "billed", "tax_usd": "billed", "fees_usd": "billed", "corrections_usd": "billed",
    "net_billed_cost_usd": "billed", "unattributable_billed_cost_usd": "billed",
}  # fmt: skip

PREDICTION_COLUMNS = ("resource_id", "arn", "type", "predicted_team", "confidence", "tag_team", "tag_conflict",
                      "anomaly_score", "monthly_cost_usd")

Progress = Callable[[str, float], None]


@dataclass
class ResourcePrediction:
    resource_id: str
    arn: str
    type: str
    predicted_team: str  # "" when it fits no team (or nothing could be learned)
    confidence: float
    tag_team: str  # normalized owner tag, "" if untagged
    tag_conflict: int  # 1 when behaviour confidently says another team than the tag
    anomaly_score: float
    monthly_cost_usd: float
    cost_usd: float = 0.0  # amortized spend over the scanned period
    billed_cost_usd: float = 0.0  # billed spend over the scanned period
    runner_up: str = ""
    runner_up_confidence: float = 0.0
    owner_source: str = ""  # where predicted_team comes from: "model" | "creator" | "" (none); not a CSV column
    # When someone other than a broad actor (scanners, config recorders) last used or changed it: epoch
    # seconds, None when never; with ``events``, what the ask tools' find_idle / find_abandoned read.
    first_active: float | None = None
    last_active: float | None = None
    events: int = 0
    # Its last few create/manage events, newest first: (epoch s, event name, principal, person, error code).
    recent: list[tuple] = field(default_factory=list)

    def csv_row(self) -> dict[str, object]:
        d = asdict(self)
        return {k: (f"{d[k]:.4f}" if isinstance(d[k], float) else d[k]) for k in PREDICTION_COLUMNS}


@dataclass
class ScanResult:
    bundle: Bundle
    rows: list[ResourcePrediction]
    classes: list[str]
    labels: np.ndarray  # class index per row from tags, -1 untagged
    graph: OwnershipGraph | None
    prediction: Prediction | None
    summary: dict
    seconds: dict[str, float] = field(default_factory=dict)

    def by_arn(self) -> dict[str, ResourcePrediction]:
        return {r.arn: r for r in self.rows}


def owner_labels(bundle: Bundle, arns: list[str], rules: TagRules) -> tuple[list[str], np.ndarray, list[str]]:
    """Canonical team per resource from its tags; returns (classes, label index or -1, team or "")."""
    teams = []
    for arn in arns:
        team, _key = rules.team_of(bundle.resources[arn].tags)
        teams.append(team or "")
    classes = sorted({t for t in teams if t})
    idx = {c: i for i, c in enumerate(classes)}
    y = np.array([idx[t] if t else -1 for t in teams], dtype=np.int64)
    return classes, y, teams


def scan_bundle(
    root: Path | str | Bundle,
    *,
    rules: TagRules | None = None,
    extra_labels: dict[str, str] | None = None,
    config: ModelConfig | None = None,
    strict: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    keep_activity: bool = False,
    threshold: float = CONFIDENT,
) -> ScanResult:
    """Scan one bundle. ``extra_labels`` (arn -> team) are human labels; they win over tags.

    ``threshold``: the confidence a prediction needs to count as an owner (attributable, a team's, a tag
    conflict); callers with settings pass ``confidence_threshold`` so every surface agrees with it.

    Once the graph is built, a bundle loaded here keeps in ``bundle.activity`` only its counts, time
    span and ``changes`` (see ``Activity.release``), unless ``keep_activity``: the model then trains
    without the fold's hundreds of MB beside it. A ``Bundle`` passed in is left whole.
    """
    say = progress or (lambda stage, frac: None)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    bundle = root if isinstance(root, Bundle) else load_bundle(root, strict=strict, workers=workers, progress=say)
    seconds["load"] = time.perf_counter() - t0
    seconds.update({f"load.{k}": v for k, v in bundle.seconds.items()})
    rules = rules or TagRules.default()
    arns = sorted(bundle.resources)
    classes, y, tag_teams = owner_labels(bundle, arns, rules)
    if extra_labels:
        pos = {a: i for i, a in enumerate(arns)}
        # Only labels for resources in this bundle, naming a real team, count; the rest are ignored.
        human = {arn: team for arn, t in extra_labels.items() if arn in pos and (team := rules.canonical(t))}
        classes = sorted(set(classes) | set(human.values()))
        idx = {c: i for i, c in enumerate(classes)}
        y = np.array([idx[t] if t else -1 for t in tag_teams], dtype=np.int64)
        for arn, team in human.items():
            y[pos[arn]] = idx[team]

    say("graph", 0.0)
    t0 = time.perf_counter()
    graph = build_graph(bundle, arns) if arns else None
    seconds["graph"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    created = creation_only(bundle, arns, y)  # before the fold is released: it reads the pairs
    active = activity_span(bundle, arns)
    seconds["creators"] = time.perf_counter() - t0
    if not keep_activity and not isinstance(root, Bundle):  # a Bundle passed in is the caller's to keep
        bundle.activity.release()
        release_memory()
    prediction = None
    missing: list[str] = []
    has_links = graph is not None and bool(relation_names(graph))
    can_learn = has_links and len(classes) >= 2 and int((y >= 0).sum()) >= 4
    if not arns:
        missing.append("no resources found in any source")
    elif not can_learn and (advice := owner_tags_advice(bundle, arns, rules, classes, y)):
        missing.append(advice)
    if not bundle.activity.records:
        missing.append("CloudTrail: no activity, so owners can only be read from tags")
    if arns and not has_links:
        missing.append("behaviour: no CloudTrail, network, IAM or deploy links between resources and the "
                       "people and roles that use them, so no owner can be inferred")
    if not bundle.costs.rows:
        missing.append("cost data: no CUR or FOCUS files, so spend is unknown")
    if can_learn:
        say("model", 0.0)
        t0 = time.perf_counter()
        prediction = fit_predict(graph, y, classes, config, progress=lambda f: say("model", f))
        seconds["model"] = time.perf_counter() - t0

    rows = _rows(bundle, arns, classes, tag_teams, prediction, threshold)
    recent = recent_changes(bundle.activity)
    for r in rows:
        if (span := active.get(r.arn)) is not None:
            r.first_active, r.last_active, r.events = span
        r.recent = recent.get(r.arn, [])
    t0 = time.perf_counter()
    apply_creators(rows, created, arns, classes, y)
    seconds["creators"] += time.perf_counter() - t0
    summary = summarize(bundle, rows, classes, prediction, missing, threshold=threshold)
    summary["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    say("done", 1.0)
    return ScanResult(bundle=bundle, rows=rows, classes=classes, labels=y, graph=graph, prediction=prediction,
                      summary=summary, seconds=seconds)


def _rows(bundle: Bundle, arns: list[str], classes: list[str], tag_teams: list[str],
          pred: Prediction | None, threshold: float = CONFIDENT) -> list[ResourcePrediction]:
    rows = []
    for i, arn in enumerate(arns):
        r = bundle.resources[arn]
        team, conf, anomaly, conflict, ru, ru_conf = "", 0.0, 0.0, 0, "", 0.0
        if pred is not None:
            p = pred.proba[i]
            order = np.argsort(-p)
            conf = float(p[order[0]])
            anomaly = float(pred.anomaly[i])
            if anomaly < NO_TEAM_ANOMALY:
                team = classes[order[0]]
            if len(order) > 1:
                ru, ru_conf = classes[order[1]], float(p[order[1]])
            if tag_teams[i] and team and team != tag_teams[i] and conf >= threshold:
                conflict = 1
        rows.append(ResourcePrediction(
            resource_id=r.id, arn=arn, type=r.kind, predicted_team=team, confidence=conf, tag_team=tag_teams[i],
            tag_conflict=conflict, anomaly_score=anomaly, monthly_cost_usd=bundle.costs.monthly(arn),
            cost_usd=bundle.costs.resource_total(arn), billed_cost_usd=bundle.costs.resource_billed(arn),
            runner_up=ru, runner_up_confidence=ru_conf, owner_source="model" if team else ""))
    return rows


# A role or person acting on at least this share of the resources (and at least BROAD_MIN of them):
# scanners, config recorders, shared SSO roles. What they touch says nothing about its owner.
BROAD_SHARE, BROAD_MIN = 0.10, 20
SCANNER_SHARE = 0.5  # an actor on half the resources or more: a scanner, config recorder or audit role


@dataclass
class CreatedOnly:
    """Untagged resources whose only owner evidence is their creation, and what the creators did."""

    creators: dict[str, tuple[float, str, str | None]]  # arn -> Activity.creators entry
    acts: list[tuple[str, str]]  # (identity, arn) of every creator identity's activity


def broad_actors(pairs: Iterable[tuple[str, str, str]], n_resources: int, share: float = BROAD_SHARE) -> set[str]:
    """Actors that touch at least ``share`` of the resources (and BROAD_MIN of them)."""
    touched: dict[str, set[str]] = {}
    for arn, actor, _rel in pairs:
        s = touched.get(actor)
        if s is None:
            s = touched[actor] = set()
        s.add(arn)
    broad_at = max(BROAD_MIN, share * n_resources)
    return {a for a, s in touched.items() if len(s) >= broad_at}


def activity_span(bundle: Bundle, arns: list[str]) -> dict[str, tuple[float | None, float | None, int]]:
    """arn -> (first, last epoch seconds, events) of its use or change by anyone but a broad actor.

    A scanner touching everything every day says nothing about whether anyone still uses a resource;
    idle and abandoned resources are told by the rest. Scanners touch most of an account (SCANNER_SHARE);
    a team's service role, however busy, touches its own team's share. Read before the fold is released."""
    act = bundle.activity
    if act.released or not act.pairs:
        return {}
    broad = broad_actors(act.pairs, len(arns), SCANNER_SHARE)
    out: dict[str, list] = {}
    for (arn, actor, _rel), st in act.pairs.items():
        if actor in broad:
            continue
        cur = out.get(arn)
        if cur is None:
            cur = out[arn] = [float("inf"), float("-inf"), 0]
        cur[0] = min(cur[0], st.first)
        cur[1] = max(cur[1], st.last)
        cur[2] += int(st.count)
    return {a: (None if v[0] == float("inf") else v[0], None if v[1] == float("-inf") else v[1], v[2])
            for a, v in out.items()}


RECENT_CHANGES = 5


def recent_changes(act: Any, k: int = RECENT_CHANGES) -> dict[str, list[tuple]]:
    """arn -> its last ``k`` create/manage events, newest first, from the change log (columnar: a
    million events take a sort, not a Python object each). ``ask``'s signal_history reads them from
    the stored evidence instead of searching every stored event for the resource."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        tbl = act.changes
    except Exception:  # noqa: BLE001 - no change log (a fold without one): nothing to show
        return {}
    if tbl is None or tbl.num_rows == 0:
        return {}
    lists = tbl.column("resources").combine_chunks()
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    times = pc.fill_null(pc.take(tbl.column("time"), parents), float("-inf"))
    order = pc.sort_indices(pa.table({"a": flat, "t": times}), sort_keys=[("a", "ascending"), ("t", "descending")])
    arns = pc.take(flat, order).to_pylist()
    rows = pc.take(parents, order).to_numpy()
    keep: list[int] = []
    prev, n = None, 0
    for i, a in enumerate(arns):
        if a != prev:
            prev, n = a, 0
        if n < k:
            keep.append(i)
            n += 1
    idx = pa.array(rows[keep])
    cols = {c: pc.take(tbl.column(c), idx).to_pylist()
            for c in ("time", "event_name", "principal", "person", "error_code")}
    out: dict[str, list[tuple]] = {}
    for j, i in enumerate(keep):
        out.setdefault(arns[i], []).append((cols["time"][j], cols["event_name"][j] or "", cols["principal"][j] or "",
                                            cols["person"][j], cols["error_code"][j]))
    return out


def creation_only(bundle: Bundle, arns: list[str], y: np.ndarray) -> CreatedOnly:
    """The untagged, unlabelled resources with a creation event and nothing else that tells an owner:
    no change or use by anyone but their creator (broad actors aside), no flow traffic, no deploy
    naming them. Read from ``bundle.activity`` before it is released; one pass over its pairs."""
    act = bundle.activity
    if not act.creators or act.released:
        return CreatedOnly({}, [])
    unlabelled = {a for a, lab in zip(arns, y.tolist(), strict=True) if lab < 0}
    cands = {a: c for a, c in act.creators.items() if a in unlabelled}
    if not cands:
        return CreatedOnly({}, [])
    touched: dict[str, set[str]] = {}
    for arn, actor, _rel in act.pairs:
        s = touched.get(actor)
        if s is None:
            s = touched[actor] = set()
        s.add(arn)
    broad_at = max(BROAD_MIN, BROAD_SHARE * len(arns))
    broad = {a for a, s in touched.items() if len(s) >= broad_at}
    ids = {a: set(identity_keys(c[1], c[2])) for a, c in cands.items()}
    other = {arn for arn, actor, _rel in act.pairs if arn in cands and actor not in ids[arn] and actor not in broad}
    for a, b in bundle.flows:
        other.add(a)
        other.add(b)
    for d in bundle.deploys:
        other.update(d.resources)
    creators = {a: c for a, c in cands.items() if a not in other}
    wanted = set().union(*(ids[a] for a in creators)) if creators else set()
    acts = [(actor, arn) for actor in wanted for arn in touched.get(actor, ())]
    return CreatedOnly(creators, acts)


def apply_creators(rows: list[ResourcePrediction], created: CreatedOnly, arns: list[str], classes: list[str],
                   y: np.ndarray) -> int:
    """Give each creation-only resource its creator's team (engine.creators), where the model found
    none or was less sure. Owners known to the creators: tags, human labels and the model's confident
    predictions. Returns how many rows changed."""
    if not created.creators:
        return 0
    owner_of: dict[str, str] = {}
    for i, (arn, lab) in enumerate(zip(arns, y.tolist(), strict=True)):
        r = rows[i]
        if lab >= 0:
            owner_of[arn] = classes[lab]
        elif r.tag_team:
            owner_of[arn] = r.tag_team
        elif r.predicted_team and r.confidence >= CONFIDENT and arn not in created.creators:
            owner_of[arn] = r.predicted_team
    teams = person_teams(created.acts, owner_of)
    changed = 0
    for r in rows:
        if r.arn not in created.creators:
            continue
        hit = creator_owner(r.arn, created.creators, teams)
        if hit is None or (r.predicted_team and r.confidence >= hit[1]):
            continue
        r.predicted_team, r.confidence = hit
        r.anomaly_score = min(r.anomaly_score, CREATOR_ANOMALY)
        r.owner_source = "creator"
        if r.runner_up == r.predicted_team:
            r.runner_up, r.runner_up_confidence = "", 0.0
        changed += 1
    return changed


CREATOR_ANOMALY = round(NO_TEAM_ANOMALY * 0.75, 3)  # a creator-owned resource fits its creator's team


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z") if t is not None else None


def team_rollup(entries: Iterable[tuple[str, bool, str, float, float]], threshold: float
                ) -> dict[str, dict[str, float]]:
    """The summary's ``teams``: per owner, resources and spend, tagged and inferred. ``entries``: (tag team,
    tag conflicts with behaviour, predicted team, confidence, cost) per resource. The owner is the tag
    unless behaviour contradicts it, else a prediction at or above ``threshold``."""
    teams: dict[str, dict[str, float]] = {}
    for tag_team, conflict, predicted, confidence, cost in entries:
        tagged = bool(tag_team and not conflict)
        owner = tag_team if tagged else (predicted if predicted and confidence >= threshold else "")
        if not owner:
            continue
        t = teams.setdefault(owner, {"resources": 0, "cost_usd": 0.0, "tagged_resources": 0,
                                     "inferred_resources": 0, "inferred_cost_usd": 0.0})
        t["resources"] += 1
        t["cost_usd"] += cost
        if tagged:
            t["tagged_resources"] += 1
        else:
            t["inferred_resources"] += 1
            t["inferred_cost_usd"] += cost
    for t in teams.values():
        t["cost_usd"] = round(t["cost_usd"], 2)
        t["inferred_cost_usd"] = round(t["inferred_cost_usd"], 2)
    return teams


def summarize(bundle: Bundle, rows: list[ResourcePrediction], classes: list[str], pred: Prediction | None,
              missing: list[str], *, threshold: float = CONFIDENT) -> dict:
    """The executive summary, as one JSON-able dict (the `scan --json` contract). ``threshold``: the
    confidence a prediction needs to be attributable or a team's; it is reported as ``confidence_threshold``."""
    untagged = [r for r in rows if not r.tag_team]
    attributable = [r for r in untagged if r.predicted_team and r.confidence >= threshold]
    teams = team_rollup(((r.tag_team, bool(r.tag_conflict), r.predicted_team, r.confidence, r.cost_usd)
                         for r in rows), threshold)
    no_team = sorted((r for r in rows if pred is not None and not r.predicted_team), key=lambda r: -r.cost_usd)
    conflicts = [r for r in rows if r.tag_conflict]
    recs = []
    for team, t in sorted(teams.items(), key=lambda kv: -kv[1]["inferred_cost_usd"]):
        if t["inferred_resources"]:
            recs.append({"team": team, "action": "tag", "resources": t["inferred_resources"],
                         "cost_usd": t["inferred_cost_usd"],
                         "text": f"tag {t['inferred_resources']} resources (${t['inferred_cost_usd']:,.2f}) as team={team}"})
    period = bundle.period
    c = bundle.costs
    return {
        "resources": len(rows),
        "tagged_resources": len(rows) - len(untagged),
        "untagged_resources": len(untagged),
        "total_cost_usd": round(bundle.costs.total, 2),
        "untagged_cost_usd": round(sum(r.cost_usd for r in untagged), 2),
        "unattributable_cost_usd": round(bundle.costs.unattributable, 2),
        "attributable_cost_usd": round(sum(r.cost_usd for r in attributable), 2),
        "attributable_resources": len(attributable),
        "confidence_threshold": float(threshold),
        "currency": bundle.costs.currency,
        # The bill, as it defines itself: gross + discounts + credits + refunds + adjustments = net billed.
        "gross_cost_usd": round(c.gross, 2),
        "discounts_usd": round(c.breakdown.get("discount", 0.0), 2),
        "credits_usd": round(c.breakdown.get("credit", 0.0), 2),
        "refunds_usd": round(c.breakdown.get("refund", 0.0), 2),
        "adjustments_usd": round(c.breakdown.get("adjustment", 0.0), 2),
        "tax_usd": round(c.breakdown.get("tax", 0.0), 2),
        "fees_usd": round(c.breakdown.get("fee", 0.0), 2),
        "corrections_usd": round(c.corrections, 2),
        "net_billed_cost_usd": round(c.net_billed, 2),
        "amortized_cost_usd": round(c.total, 2),
        "unattributable_billed_cost_usd": round(c.unattributable_billed, 2),
        "measures": MEASURES,
        "duplicate_exports": list(c.duplicates),
        "teams": teams,
        "recommendations": recs,
        "no_team": [{"resource_id": r.resource_id, "arn": r.arn, "cost_usd": round(r.cost_usd, 2),
                     "anomaly_score": round(r.anomaly_score, 3)} for r in no_team[:50]],
        "no_team_count": len(no_team),
        "tag_conflicts": [{"resource_id": r.resource_id, "arn": r.arn, "tag_team": r.tag_team,
                           "predicted_team": r.predicted_team, "confidence": round(r.confidence, 3)}
                          for r in conflicts[:50]],
        "tag_conflict_count": len(conflicts),
        "period": {"start": _iso(period[0]) if period else None, "end": _iso(period[1]) if period else None},
        "sources": {"cloudtrail_records": bundle.activity.records, "cost_rows": bundle.costs.rows,
                    "cost_formats": sorted(bundle.costs.formats), "interfaces": len(bundle.interfaces),
                    "principals": len(bundle.principals), "deploys": len(bundle.deploys)},
        "model": None if pred is None else {"temperature": round(pred.temperature, 3),
                                            "out_of_fold_accuracy": round(pred.oof_accuracy, 4),
                                            "teams": classes, "epochs": pred.epochs},
        "missing": missing,
        "issues": [str(i) for i in bundle.issues[:20]],
        "issue_count": len(bundle.issues),
    }


def write_predictions(rows: list[ResourcePrediction], path: Path) -> None:
    """predictions.csv: the column contract other tools rely on (PREDICTION_COLUMNS, in that order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(PREDICTION_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow(r.csv_row())

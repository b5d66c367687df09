"""Measure attribution quality against ground truth, on labels the models never saw.

Used by ``costdna benchmark`` and ``benchmarks/``. The synthetic generator writes ``truth.csv`` beside
its bundle; the external costdna-synthetic data ships one with a train/test split. Accuracy is always
scored on resources whose owner label was hidden from training: untagged resources, and with
``kfold`` also held-out folds of the tagged ones.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from engine import baselines
from engine.calibration import expected_calibration_error
from engine.graph import OwnershipGraph
from engine.model import ModelConfig, Prediction, fit_predict
from engine.scan import NO_TEAM_ANOMALY

UNOWNED = "unowned"
MODELS = ("gnn", "role_vote", "label_propagation", "logistic_regression", "knn", "majority")


@dataclass
class TruthRow:
    arn: str
    team: str
    kind: str
    split: str = ""  # external data: train / test / unlabeled


def load_truth(path: Path) -> dict[str, TruthRow]:
    with Path(path).open(newline="") as fh:
        return {r["arn"]: TruthRow(r["arn"], r["team"], r["kind"], r.get("split", "")) for r in csv.DictReader(fh)}


def baseline_features(graph: OwnershipGraph) -> sp.csr_matrix:
    """Behavioural fingerprint plus the resource's caller/network profile, for the sklearn baselines."""
    blocks = [sp.csr_matrix(graph.x)]
    for name, rel in graph.relations.items():
        if name == "flow" or len(rel.src) == 0:
            continue
        n_src = int(rel.src.max()) + 1
        m = sp.csr_matrix((np.log1p(rel.weight), (rel.dst, rel.src)), shape=(graph.n, n_src))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1
        blocks.append(sp.diags(1 / norms) @ m)
    return sp.hstack(blocks).tocsr()


def predict_all(graph: OwnershipGraph, y: np.ndarray, classes: list[str], models: tuple[str, ...] = MODELS,
                config: ModelConfig | None = None) -> tuple[dict[str, np.ndarray], Prediction | None]:
    """Class probabilities per model, every model trained on the same visible labels ``y``."""
    k = len(classes)
    out: dict[str, np.ndarray] = {}
    X = None
    gnn = None
    for m in models:
        if m == "gnn":
            gnn = fit_predict(graph, y, classes, config)
            out[m] = gnn.proba
        elif m == "role_vote":
            C, _ = graph.role_calls()
            out[m] = baselines.role_vote(C, y, k)
        elif m == "label_propagation":
            A = graph.bipartite_adjacency()
            y_full = np.concatenate([y, -np.ones(A.shape[0] - graph.n, dtype=np.int64)])
            out[m] = baselines.label_propagation(A, y_full, k)[: graph.n]
        elif m == "majority":
            out[m] = baselines.majority(y, k)
        else:
            X = baseline_features(graph).toarray() if X is None else X
            fn = baselines.logistic_regression if m == "logistic_regression" else baselines.knn
            out[m] = fn(X, y, k)
    return out, gnn


@dataclass
class Score:
    overall: float
    per_kind: dict[str, float]
    counts: dict[str, int]
    ece: float | None = None


def score(proba: np.ndarray, classes: list[str], truth_team: list[str], kinds: list[str], mask: np.ndarray) -> Score:
    """Accuracy on ``mask`` rows whose true owner is one of the known teams."""
    idx = {c: i for i, c in enumerate(classes)}
    pred = proba.argmax(axis=1)
    ok: list[bool] = []
    per_kind: dict[str, list[bool]] = {}
    rows = [i for i in np.flatnonzero(mask) if truth_team[i] in idx]
    for i in rows:
        hit = pred[i] == idx[truth_team[i]]
        ok.append(hit)
        per_kind.setdefault(kinds[i], []).append(hit)
    conf = proba[rows].max(axis=1) if rows else np.zeros(0)
    return Score(
        overall=float(np.mean(ok)) if ok else float("nan"),
        per_kind={k: float(np.mean(v)) for k, v in sorted(per_kind.items())},
        counts={k: len(v) for k, v in sorted(per_kind.items())},
        ece=expected_calibration_error(conf, np.asarray(ok, dtype=float)) if rows else None,
    )


@dataclass
class RunResult:
    scores: dict[str, Score]
    unowned_detection: float | None = None  # share of truly unowned resources flagged "fits no team"
    owned_false_no_team: float | None = None  # share of owned, untagged resources wrongly flagged
    extra: dict = field(default_factory=dict)


def evaluate_scan(graph: OwnershipGraph, y: np.ndarray, classes: list[str], truth: dict[str, TruthRow],
                  eval_mask: np.ndarray | None = None, models: tuple[str, ...] = MODELS,
                  config: ModelConfig | None = None, kfold: int = 0, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> RunResult:
    """Train every model on the visible labels ``y`` and score on hidden ones.

    Default evaluation rows: resources without a visible label whose truth is a known team. With
    ``kfold`` > 1, tagged resources are also scored, each from a run where its fold's labels were hidden.
    """
    arns = graph.resources
    team = [truth[a].team if a in truth else "" for a in arns]
    kinds = [truth[a].kind if a in truth else "" for a in arns]
    if eval_mask is None:
        eval_mask = (y < 0) & np.array([t not in ("", UNOWNED) for t in team])
    runs: list[tuple[np.ndarray, np.ndarray]] = [(y, eval_mask)]
    if kfold > 1:
        rng = np.random.default_rng(seed)
        lab = rng.permutation(np.flatnonzero(y >= 0))
        for f in range(kfold):
            hide = lab[f::kfold]
            y_f = y.copy()
            y_f[hide] = -1
            m = np.zeros(len(y), dtype=bool)
            m[hide] = True
            runs.append((y_f, m))
    collected: dict[str, np.ndarray] = {}
    union = np.zeros(len(y), dtype=bool)
    res = RunResult(scores={})
    for j, (y_run, m) in enumerate(runs):
        if progress:
            progress(f"run {j + 1}/{len(runs)}")
        probas, gnn = predict_all(graph, y_run, classes, models, config)
        for name, p in probas.items():
            acc = collected.setdefault(name, np.zeros((len(y), len(classes))))
            acc[m] = p[m]
        union |= m
        if j == 0 and gnn is not None:
            flagged = gnn.anomaly >= NO_TEAM_ANOMALY
            unowned = np.array([t == UNOWNED for t in team])
            if unowned.any():
                res.unowned_detection = float(flagged[unowned].mean())
            res.owned_false_no_team = float(flagged[m].mean()) if m.any() else None
            res.extra["temperature"] = gnn.temperature
    res.scores = {name: score(p, classes, team, kinds, union) for name, p in collected.items()}
    return res


# --------------------------------------------------------------------------------------------------
# Whole-org runs: what `costdna benchmark / calibrate / learn` and benchmarks/ print.


@dataclass
class OrgData:
    graph: OwnershipGraph
    y: np.ndarray
    classes: list[str]
    truth: dict[str, TruthRow]
    monthly_cost: np.ndarray


def load_org(root: Path, rules=None, workers: int | None = None) -> OrgData:
    """A generated (or external) org directory: ``bundle/`` and ``truth.csv``."""
    from engine.bundle import load_bundle
    from engine.graph import build_graph
    from engine.scan import owner_labels
    from engine.tagrules import TagRules

    root = Path(root)
    bundle = load_bundle(root / "bundle", workers=workers)
    truth = load_truth(root / "truth.csv")
    arns = sorted(bundle.resources)
    classes, y, _ = owner_labels(bundle, arns, rules or TagRules.default())
    graph = build_graph(bundle, arns)
    cost = np.array([bundle.costs.monthly(a) for a in arns])
    return OrgData(graph, y, classes, truth, cost)


def _mean_std(v: list[float]) -> tuple[float, float]:
    a = np.asarray([x for x in v if x == x], dtype=float)
    return (float(a.mean()), float(a.std())) if len(a) else (float("nan"), 0.0)


@dataclass
class BenchmarkReport:
    seeds: int
    kinds: list[str]
    rows: dict[str, dict]  # model -> {"overall": (mean, std), "per_kind": {kind: (mean, std)}}
    ece: tuple[float, float] | None
    unowned_detection: float | None
    owned_false_no_team: float | None
    evaluated: list[int]
    per_seed: list[RunResult] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"seeds": self.seeds, "kinds": self.kinds,
                "models": {m: {"overall": list(r["overall"]), "per_kind": {k: list(v) for k, v in r["per_kind"].items()}}
                           for m, r in self.rows.items()},
                "gnn_ece": list(self.ece) if self.ece else None, "unowned_detection": self.unowned_detection,
                "owned_false_no_team": self.owned_false_no_team, "evaluated": self.evaluated}


def benchmark_orgs(roots: list[Path], *, kfold: int = 0, rules=None, models: tuple[str, ...] = MODELS,
                   config: ModelConfig | None = None, progress=None) -> BenchmarkReport:
    """Score every model on every org (one seed each) and aggregate mean ± population std."""
    results: list[RunResult] = []
    evaluated: list[int] = []
    for i, root in enumerate(roots):
        if progress:
            progress("benchmark", i / len(roots))
        org = load_org(root, rules)
        res = evaluate_scan(org.graph, org.y, org.classes, org.truth, models=models, config=config, kfold=kfold,
                            seed=i)
        results.append(res)
        evaluated.append(sum(res.scores[models[0]].counts.values()))
    if progress:
        progress("benchmark", 1.0)
    kinds = sorted({k for r in results for s in r.scores.values() for k in s.per_kind})
    rows = {}
    for m in models:
        rows[m] = {"overall": _mean_std([r.scores[m].overall for r in results]),
                   "per_kind": {k: _mean_std([r.scores[m].per_kind.get(k, float("nan")) for r in results])
                                for k in kinds}}
    eces = [r.scores["gnn"].ece for r in results if "gnn" in r.scores and r.scores["gnn"].ece is not None]
    det = [r.unowned_detection for r in results if r.unowned_detection is not None]
    fal = [r.owned_false_no_team for r in results if r.owned_false_no_team is not None]
    return BenchmarkReport(seeds=len(roots), kinds=kinds, rows=rows, ece=_mean_std(eces) if eces else None,
                           unowned_detection=float(np.mean(det)) if det else None,
                           owned_false_no_team=float(np.mean(fal)) if fal else None,
                           evaluated=evaluated, per_seed=results)



@dataclass
class CalibrationReport:
    n: int
    against: str
    temperature: float
    ece_before: float
    ece_after: float
    table: list


def calibration_report(root: Path, *, rules=None, bins: int = 10, config: ModelConfig | None = None,
                       progress=None) -> CalibrationReport:
    """ECE before/after temperature scaling: against truth on hidden labels when the org has a
    truth.csv, otherwise against owner tags using out-of-fold predictions."""
    from engine.calibration import apply_temperature, reliability_table

    root = Path(root)
    if (root / "truth.csv").exists():
        org = load_org(root, rules)
        pred = fit_predict(org.graph, org.y, org.classes, config, progress=lambda f: progress and progress("model", f))
        idx = {c: i for i, c in enumerate(org.classes)}
        truth = [org.truth[a].team if a in org.truth else "" for a in org.graph.resources]
        rows = np.array([i for i, t in enumerate(truth) if org.y[i] < 0 and t in idx])
        target = np.array([idx[truth[i]] for i in rows])
        against = "ground truth of untagged resources"
    else:
        from engine.scan import scan_bundle

        res = scan_bundle(root, rules=rules, progress=progress)
        if res.prediction is None:
            raise ValueError("nothing to calibrate: " + "; ".join(res.summary["missing"]))
        pred = res.prediction
        rows = np.flatnonzero(pred.out_of_fold)
        target = res.labels[rows]
        against = "owner tags, out-of-fold"
    if len(rows) == 0:
        raise ValueError("no resources to evaluate calibration on")
    before = apply_temperature(pred.logits[rows], 1.0)
    after = pred.proba[rows]
    ok_b = (before.argmax(1) == target).astype(float)
    ok_a = (after.argmax(1) == target).astype(float)
    return CalibrationReport(n=len(rows), against=against, temperature=pred.temperature,
                             ece_before=expected_calibration_error(before.max(1), ok_b),
                             ece_after=expected_calibration_error(after.max(1), ok_a),
                             table=reliability_table(after.max(1), ok_a, bins))


def simulate_active_learning(root: Path, *, rules=None, rounds: int = 6, batch: int = 10,
                             method: str = "least_confidence", config: ModelConfig | None = None, progress=None):
    """Replay the "who owns this?" loop on a synthetic org with its truth as the oracle."""
    from engine.active import simulate_learning_curve

    org = load_org(root, rules)
    idx = {c: i for i, c in enumerate(org.classes)}
    y_true = np.array([idx.get(org.truth[a].team, -1) if a in org.truth else -1 for a in org.graph.resources])
    cfg = config or ModelConfig(folds=3)
    calls = [0]

    def fit(y_obs: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if progress:
            progress("learn", calls[0] / (rounds + 1))
        return fit_predict(org.graph, y_obs, org.classes, cfg).proba

    eval_mask = (org.y < 0) & (y_true >= 0)
    return simulate_learning_curve(fit, y_true, org.y >= 0, org.monthly_cost, eval_mask, batch=batch,
                                   rounds=rounds, method=method)
